/*-------------------------------------------------------------------------
 *
 * tenant_mgr.c
 *		Module load: GUC definitions, and the launcher and shared memory when
 *		preloaded.
 *
 * The library may be loaded without shared_preload_libraries (pg_upgrade
 * loads every library, and schema tenants need no background process), so
 * nothing here may fail in that case.  Whatever needs preloading checks for
 * it when it is called.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "tenant_mgr.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *tm_control_database = NULL;
char	   *tm_prefix = NULL;
char	   *tm_shared_schemas = NULL;
int			tm_max_workers = 4;
int			tm_pool_schema = 0;
int			tm_pool_database = 0;
int			tm_poll_interval = 10;
int			tm_job_timeout = 600;
int			tm_history_retention_days = 0;
int			tm_lock_timeout = 5000;
int			tm_lock_retries = 3;
int			tm_statement_timeout = 0;
bool		tm_build_in_transaction = true;
bool		tm_use_citus = true;
bool		tm_database_template = false;
int			tm_template_strategy = TM_STRATEGY_WAL_LOG;
char	   *tm_pause_at = NULL;

static const struct config_enum_entry tm_strategy_options[] = {
	{"wal_log", TM_STRATEGY_WAL_LOG, false},
	{"file_copy", TM_STRATEGY_FILE_COPY, false},
	{NULL, 0, false}
};

/*
 * The prefix becomes part of every object name, so it obeys the tenant name
 * rules: lower-case letters, digits and underscores, and never "pg_".
 */
static bool
tm_check_prefix(char **newval, void **extra pg_attribute_unused(),
				GucSource source pg_attribute_unused())
{
	const char *p;

	if (strlen(*newval) > NAMEDATALEN / 2)
	{
		GUC_check_errdetail("The prefix may be at most %d bytes long.",
							NAMEDATALEN / 2);
		return false;
	}
	for (p = *newval; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
			  *p == '_'))
		{
			GUC_check_errdetail("The prefix may contain only lower-case ASCII letters, digits and underscores.");
			return false;
		}
	}
	if ((*newval)[0] >= '0' && (*newval)[0] <= '9')
	{
		GUC_check_errdetail("The prefix must not begin with a digit.");
		return false;
	}
	if (strncmp(*newval, "pg_", 3) == 0)
	{
		GUC_check_errdetail("Names beginning with \"pg_\" are reserved for system schemas.");
		return false;
	}
	return true;
}

/* The shared schemas are a comma-separated list of identifiers. */
static bool
tm_check_shared_schemas(char **newval, void **extra pg_attribute_unused(),
						GucSource source pg_attribute_unused())
{
	char	   *copy = pstrdup(*newval);
	List	   *names;
	bool		ok = SplitIdentifierString(copy, ',', &names);

	list_free(names);
	pfree(copy);
	if (!ok)
		GUC_check_errdetail("List syntax is invalid.");
	return ok;
}

/*
 * Raises an error unless database tenants and queued work can be managed
 * from here: the library is preloaded (its launcher and executors are
 * background workers) and this is the control database.
 */
void
tm_require_control_database(void)
{
	char	   *here;

	if (!tm_preloaded())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tenant_mgr is not loaded via shared_preload_libraries"),
				 errdetail("Database tenants and queued work need its background workers."),
				 errhint("Add tenant_mgr to shared_preload_libraries and restart the server.")));
	here = get_database_name(MyDatabaseId);
	if (strcmp(here, tm_control_database) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("database tenants and queued work are managed from database \"%s\"",
						tm_control_database),
				 errdetail("This is database \"%s\"; tenant_mgr.database names the control database.",
						   here),
				 errhint("Connect to database \"%s\", or change tenant_mgr.database and restart.",
						 tm_control_database)));
}

/* True in the control database of a server that preloads tenant_mgr. */
bool
tm_is_control_database(void)
{
	return tm_preloaded() &&
		strcmp(get_database_name(MyDatabaseId), tm_control_database) == 0;
}

void
_PG_init(void)
{
	DefineCustomStringVariable("tenant_mgr.database",
							   "Database that holds the tenant_mgr catalog.",
							   "Background workers connect to it; schema tenants live in it.",
							   &tm_control_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("tenant_mgr.prefix",
							   "Prefix of the schema or database name of every new tenant.",
							   "The object name is the prefix followed by the tenant name; it is never truncated.",
							   &tm_prefix,
							   "tenant_",
							   PGC_SUSET,
							   0,
							   tm_check_prefix, NULL, NULL);

	DefineCustomStringVariable("tenant_mgr.shared_schemas",
							   "Schemas placed after the tenant's schema on the search_path.",
							   "Used by tenant_use() and while migrations run in a schema tenant.",
							   &tm_shared_schemas,
							   "",
							   PGC_USERSET,
							   GUC_LIST_INPUT,
							   tm_check_shared_schemas, NULL, NULL);

	DefineCustomIntVariable("tenant_mgr.max_workers",
							"Maximum number of executors one call or the launcher runs at once.",
							"Each executor is a background worker: leave room in max_worker_processes.",
							&tm_max_workers,
							4, 1, 64,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("tenant_mgr.pool_schema",
							"Number of spare schema tenants the launcher keeps built and migrated.",
							"tenant_create claims a spare instead of building a schema tenant; 0 keeps none.",
							&tm_pool_schema,
							0, 0, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("tenant_mgr.pool_database",
							"Number of spare database tenants the launcher keeps built and migrated.",
							"tenant_create claims a spare instead of creating a database tenant; 0 keeps none.",
							&tm_pool_database,
							0, 0, 1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("tenant_mgr.poll_interval",
							"Time between two looks of the launcher at its queue when nothing wakes it.",
							"Committed work wakes the launcher at once; this is the safety net.",
							&tm_poll_interval,
							10, 1, 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("tenant_mgr.job_timeout",
							"Time after which an executor is terminated and its step fails.",
							"0 means no limit.",
							&tm_job_timeout,
							600, 0, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("tenant_mgr.history_retention_days",
							"Days after which the launcher removes events and finished jobs.",
							"0 keeps them forever; the launcher prunes at most once an hour.",
							&tm_history_retention_days,
							0, 0, 36500,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("tenant_mgr.lock_timeout",
							"Time a migration in a fleet run waits for a lock before it is retried.",
							"Nothing is committed when a lock wait times out; the tenant is tried again later in the run, tenant_mgr.lock_retries times. 0 waits forever.",
							&tm_lock_timeout,
							5000, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("tenant_mgr.lock_retries",
							"How many times a fleet run tries a tenant again after a lock timeout.",
							NULL,
							&tm_lock_retries,
							3, 0, 100,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("tenant_mgr.statement_timeout",
							"statement_timeout of each migration in a fleet run.",
							"0 means no limit.",
							&tm_statement_timeout,
							0, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("tenant_mgr.database_template",
							 "Creates database tenants as copies of a template database kept at the latest migration.",
							 "The launcher keeps database tenant_mgr_template; off drops it.",
							 &tm_database_template,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("tenant_mgr.template_strategy",
							 "STRATEGY of the CREATE DATABASE that copies the template database.",
							 NULL,
							 &tm_template_strategy,
							 TM_STRATEGY_WAL_LOG,
							 tm_strategy_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("tenant_mgr.build_in_transaction",
							 "Builds a schema tenant in the caller's transaction when its migrations can share it.",
							 "Off: every schema tenant is built outside it, each migration committed on its own, and claimed.",
							 &tm_build_in_transaction,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("tenant_mgr.pause_at",
							   "Pause points at which tenant_mgr's processes wait, for tests.",
							   "A comma-separated list of pause points; empty (the default) pauses nowhere.",
							   &tm_pause_at,
							   "",
							   PGC_SUSET,
							   GUC_NOT_IN_SAMPLE,
							   tm_pause_check, NULL, NULL);
	DefineCustomBoolVariable("tenant_mgr.citus",
							 "Places schema tenants on Citus workers when the citus extension is installed in the control database.",
							 "Off: schema tenants stay plain schemas of this server even where Citus is installed.",
							 &tm_use_citus,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("tenant_mgr");

	tm_queue_init();
	tm_marker_init();
	tm_guard_init();

	/* background work only when preloaded; pg_upgrade loads us otherwise */
	if (process_shared_preload_libraries_in_progress)
	{
		tm_shmem_init();
		tm_launcher_register_worker();
	}
}
