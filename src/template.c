/*-------------------------------------------------------------------------
 *
 * template.c
 *		The template database: a database kept at the latest migration, from
 *		which new database tenants are cloned instead of replaying every
 *		migration (tenant_mgr.database_template).
 *
 * The template is database TM_TEMPLATE_NAME, owned by the extension's owner
 * and closed to connections (datallowconn false: only tenant_mgr's
 * executors, which bypass it, get in; PUBLIC has no CONNECT either).
 * Everything inside it belongs to the NOLOGIN role TM_TEMPLATE_NAME, which
 * applies the migrations there as tenants' owners do theirs: through
 * migrate.c, restricted, with a ledger.  Both carry labels of their own
 * (marker.c): "template" on the role, "template <version> <digest>" on the
 * database, where version is the ledger's latest and digest a hash chained
 * over its rows' versions and checksums, both rewritten in the transaction
 * of every ledger row (ledger.c).  So the control database sees, without
 * connecting, whether the template matches the registry: the digest of the
 * registered migrations up to that version must be the label's.  Anything
 * without the label is never used, whatever its name.
 *
 * Maintenance: the launcher (tm_template_tend, once per iteration) starts
 * a maintainer, a background worker in the control database, when the
 * template is missing, behind, or differs from the registry (a migration
 * removed or replaced), or when the setting is off and one exists.  The
 * maintainer drops what must go, creates the role and the database, and has
 * an executor apply the pending migrations inside.  An interruption leaves
 * a template at some version, consistent by its label, or a database owned
 * by the template role without the label, which the next maintainer drops.
 *
 * Cloning: the CLONE_DATABASE executor runs CREATE DATABASE ... OWNER
 * <tenant's owner> TEMPLATE ... STRATEGY (tenant_mgr.template_strategy)
 * instead of a plain CREATE DATABASE, when the template's label matches the
 * migrations it was given; otherwise, or when the template is busy, it
 * falls back to the plain one.  The TEMPLATE_ADOPT executor then, inside
 * the clone, hands everything the template role owns to the tenant's owner
 * (REASSIGN OWNED), revokes what the template role was granted there, makes
 * the ledger say that the owner applied its rows, and applies what is
 * pending like any MIGRATE executor.
 *
 * Locking: CREATE DATABASE ... TEMPLATE fails while anyone is connected to
 * the template.  Clones hold the template lock (an advisory session lock in
 * the control database) in share mode across the copy; the maintainer holds
 * it exclusively while it or its executor is connected to the template, and
 * waits for its executor to exit before it lets go.  A clone that cannot
 * have the lock within a moment, or still meets another session (55006)
 * after a few tries, creates the tenant from scratch.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "tenant_mgr.h"

/* Lock tag field4 of the template lock, apart from tenants' and jobs'. */
#define TM_TEMPLATE_LOCK_FIELD4 0x7470

/* The digest of an empty ledger: the start of the chain. */
#define TM_TEMPLATE_DIGEST_ZERO "0000000000000000"

/* How long a clone waits for the template lock before building from scratch. */
#define TM_TEMPLATE_CLONE_WAIT_MS 2000

/* How often a clone meeting another session in the template tries again. */
#define TM_TEMPLATE_CLONE_TRIES 3

/* How long a maintainer waits for clones to finish before it gives up. */
#define TM_TEMPLATE_MAINTAIN_WAIT_MS 30000

/* The longest pause between two failed maintenances of one registry. */
#define TM_TEMPLATE_MAX_BACKOFF_MS 300000

PGDLLEXPORT void tm_template_main(Datum arg);

/* The launcher's view of its maintainer (tm_template_tend). */
static BackgroundWorkerHandle *tm_maintainer = NULL;
static char *tm_tended_state = NULL;	/* what the last maintainer was for */
static int	tm_failures = 0;
static TimestampTz tm_retry_at = 0;
static bool tm_warned_foreign = false;

/*
 * The next link of the digest chain: a hash of the previous digest and one
 * ledger row (a reverted one never matches a registry).
 */
char *
tm_template_digest_step(const char *prev, const TmMigration *m, bool up)
{
	char	   *input = psprintf("%s " INT64_FORMAT " %s%s", prev, m->version,
								 m->checksum, up ? "" : " down");
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *hex = palloc(TM_TEMPLATE_DIGEST_LEN + 1);
	int			i;

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) input, strlen(input)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute a SHA-256 digest");
	pg_cryptohash_free(ctx);
	for (i = 0; i < TM_TEMPLATE_DIGEST_LEN / 2; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	return hex;
}

/*
 * The digest a template's ledger holding exactly the migrations (in
 * version order) up to version upto would have.
 */
char *
tm_template_digest(List *migrations, int64 upto)
{
	char	   *digest = TM_TEMPLATE_DIGEST_ZERO;
	ListCell   *lc;

	foreach(lc, migrations)
	{
		TmMigration *m = lfirst(lc);

		if (m->version <= upto)
			digest = tm_template_digest_step(digest, m, true);
	}
	return digest;
}

/* The highest version of migrations, 0 for none. */
static int64
tm_template_latest(List *migrations)
{
	return migrations ? ((TmMigration *) llast(migrations))->version : 0;
}

/*
 * True if a template at version with digest holds exactly the migrations
 * up to version: a clone of it needs only what is above.
 */
static bool
tm_template_matches(List *migrations, int64 version, const char *digest)
{
	return version <= tm_template_latest(migrations) &&
		strcmp(digest, tm_template_digest(migrations, version)) == 0;
}

/* The template lock, in the control database's lock space. */
static void
tm_template_locktag(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, 0, 0, TM_TEMPLATE_LOCK_FIELD4);
}

/*
 * Takes the template lock for the session in mode (ShareLock: a clone,
 * ExclusiveLock: maintenance), trying for up to wait_ms.  Returns false
 * when it could not be had.
 */
static bool
tm_template_lock(LOCKMODE mode, int wait_ms)
{
	LOCKTAG		tag;
	TimestampTz start = GetCurrentTimestamp();

	tm_template_locktag(&tag);
	for (;;)
	{
		if (LockAcquire(&tag, mode, true, true) != LOCKACQUIRE_NOT_AVAIL)
			return true;
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), wait_ms))
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 50L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static void
tm_template_unlock(LOCKMODE mode)
{
	LOCKTAG		tag;

	tm_template_locktag(&tag);
	LockRelease(&tag, mode, true);
}

/* The template as a tenant, for migrate.c and ledger.c. */
static TmTenant *
tm_template_tenant(void)
{
	TmTenant   *t = tm_tenant_make(TM_TEMPLATE_NAME, TM_DATABASE,
								   TM_TEMPLATE_NAME, TM_TEMPLATE_NAME);

	t->id = NULL;
	return t;
}

/*
 * True when new database tenants should be cloned from the template: the
 * setting is on and the catalog is 1.1's (tenants have ids).  Expects a
 * transaction.
 */
bool
tm_template_wanted(void)
{
	return tm_database_template && tm_catalog_has_ids();
}

/*
 * Returns the OID of the role TM_TEMPLATE_NAME if it carries the template
 * label, else InvalidOid; *foreign says whether a role of that name
 * without the label exists.
 */
static Oid
tm_template_role(bool *foreign)
{
	Oid			roleid = get_role_oid(TM_TEMPLATE_NAME, true);

	*foreign = false;
	if (!OidIsValid(roleid))
		return InvalidOid;
	if (tm_template_labelled(AuthIdRelationId, roleid, NULL, NULL))
		return roleid;
	*foreign = true;
	return InvalidOid;
}

/*
 * A database named TM_TEMPLATE_NAME without the template label: InvalidOid
 * if there is none, and *ours tells whether it is one an interrupted
 * maintainer left (owned by the template role) rather than someone else's.
 */
static Oid
tm_template_unlabelled(Oid roleid, bool *ours)
{
	Oid			dboid = get_database_oid(TM_TEMPLATE_NAME, true);

	*ours = false;
	if (!OidIsValid(dboid) ||
		tm_template_labelled(DatabaseRelationId, dboid, NULL, NULL))
		return InvalidOid;
	*ours = OidIsValid(roleid) && pg_database_ownercheck(dboid, roleid);
	return dboid;
}

/*
 * For verify(), in the control database: what makes a database or role
 * named TM_TEMPLATE_NAME someone else's, or NULL.  tenant_mgr never uses
 * them.
 */
char *
tm_template_problem(void)
{
	bool		foreign;
	bool		ours;
	Oid			roleid = tm_template_role(&foreign);

	if (foreign)
		return psprintf("role \"%s\" does not carry tenant_mgr's template label; tenant_mgr never uses it",
						TM_TEMPLATE_NAME);
	if (OidIsValid(tm_template_unlabelled(roleid, &ours)) && !ours)
		return psprintf("database \"%s\" does not carry tenant_mgr's template label; tenant_mgr never uses it",
						TM_TEMPLATE_NAME);
	return NULL;
}

/*
 * Runs a top-level statement as role (spi.c) and returns its error instead
 * of raising it, with the failed transaction cleaned up.
 */
static ErrorData *
tm_template_try_toplevel(const char *sql, Oid role)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorData  *volatile edata = NULL;

	PG_TRY();
	{
		tm_utility_toplevel(sql, role);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		debug_query_string = NULL;
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_END_TRY();
	return edata;
}

/*
 * For the CLONE_DATABASE executor, in the control database, outside a
 * transaction: creates the tenant's database (task->object_name, owned by
 * task->owner) as a copy of the template, as role, under the template lock.
 * Returns false, having created nothing, when there is no template that
 * matches the task's migrations, the template is being maintained, or
 * another session is in it: then the caller creates the database from
 * scratch.  Other errors are raised.
 */
bool
tm_template_clone(TmExecTask *task, Oid role)
{
	List	   *migrations = tm_task_migrations(task);
	int64		version = 0;
	char	   *digest = NULL;
	char	   *source = NULL;
	char	   *sql;
	Oid			dboid;
	int			attempt;

	if (!tm_template_lock(ShareLock, TM_TEMPLATE_CLONE_WAIT_MS))
		return false;
	tm_pause_point("clone:locked");
	tm_xact_begin();
	dboid = tm_template_find(&version, &digest);
	if (OidIsValid(dboid) && tm_template_matches(migrations, version, digest))
		source = get_database_name(dboid);
	tm_xact_commit();
	if (source == NULL)
	{
		tm_template_unlock(ShareLock);
		return false;
	}

	sql = psprintf("CREATE DATABASE %s OWNER %s TEMPLATE %s STRATEGY %s",
				   quote_identifier(task->object_name),
				   quote_identifier(task->owner), quote_identifier(source),
				   tm_template_strategy == TM_STRATEGY_FILE_COPY ? "file_copy" : "wal_log");
	for (attempt = 1;; attempt++)
	{
		ErrorData  *edata = tm_template_try_toplevel(sql, role);

		if (edata == NULL)
			break;
		if (edata->sqlerrcode != ERRCODE_OBJECT_IN_USE)
		{
			tm_template_unlock(ShareLock);
			ReThrowError(edata);
		}
		if (attempt == TM_TEMPLATE_CLONE_TRIES)
		{
			tm_template_unlock(ShareLock);
			ereport(LOG,
					(errmsg("tenant_mgr creates database \"%s\" from scratch: %s",
							task->object_name, edata->message)));
			return false;
		}
		/* CREATE DATABASE has waited 5 s for the session already */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 200L * attempt, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	tm_pause_point("clone:after-copy");
	tm_template_unlock(ShareLock);
	return true;
}

/* The owner of relation relid. */
static Oid
tm_template_relowner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* A statement of tenant_mgr's own, as the executor's superuser. */
static void
tm_template_exec(const char *sql)
{
	if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not run \"%s\"", sql);
}

/*
 * For the TEMPLATE_ADOPT executor, inside a new tenant database, before
 * its pending migrations: if it is a clone of the template (its ledger
 * belongs to the template role), hands it to the tenant's owner in one
 * transaction, so that it is what a tenant built from scratch would be:
 * every object the template role owns goes to the owner (REASSIGN OWNED,
 * which also rewrites their privileges), the template role's grant on
 * schema public is revoked, and the ledger's rows say that the owner
 * applied them.  Anything else still tying the database to the template
 * role is an error.  The database's label gets the ledger's version.  A
 * database created from scratch, or one already adopted, is left alone.
 */
void
tm_template_adopt(TmExecTask *task)
{
	TmTenant   *t = tm_tenant_make(task->tenant, TM_DATABASE, task->object_name,
								   task->owner);
	bool		foreign;
	Oid			roleid;
	Oid			relid;
	Oid			types[2] = {OIDOID, OIDOID};
	Datum		values[2];
	List	   *rows;

	t->id = task->tenant_id[0] ? pstrdup(task->tenant_id) : NULL;
	t->object_oid = MyDatabaseId;
	tm_xact_begin();
	roleid = tm_template_role(&foreign);
	relid = get_relname_relid(TM_LEDGER_NAME, PG_PUBLIC_NAMESPACE);
	if (!OidIsValid(roleid) || !OidIsValid(relid) ||
		tm_template_relowner(relid) != roleid)
	{
		tm_xact_commit();
		return;
	}

	pgstat_report_activity(STATE_RUNNING,
						   psprintf("tenant \"%s\": taking over the template's objects",
									task->tenant));
	tm_template_exec(psprintf("REASSIGN OWNED BY %s TO %s",
							  quote_identifier(TM_TEMPLATE_NAME),
							  quote_identifier(task->owner)));
	tm_template_exec(psprintf("REVOKE ALL ON SCHEMA public FROM %s",
							  quote_identifier(TM_TEMPLATE_NAME)));
	CommandCounterIncrement();

	values[0] = ObjectIdGetDatum(MyDatabaseId);
	values[1] = ObjectIdGetDatum(roleid);
	/* not read-only: a fresh snapshot sees what REASSIGN OWNED changed */
	if (SPI_execute_with_args("SELECT count(*) FROM pg_catalog.pg_shdepend"
							  " WHERE dbid = $1 AND refobjid = $2"
							  "   AND refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass",
							  2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_shdepend");
	if (tm_get_int64(0, 1) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the copy of the template database for tenant \"%s\" still depends on role \"%s\"",
						task->tenant, TM_TEMPLATE_NAME),
				 errdetail("%lld privileges or default privileges of that role remain after its objects were reassigned.",
						   (long long) tm_get_int64(0, 1)),
				 errhint("A migration grants the role running it privileges on objects it does not own, or sets its default privileges; set tenant_mgr.database_template to off.")));

	tm_ledger_take_over(t);
	rows = tm_ledger_rows(t);
	tm_label_set_version(DatabaseRelationId, MyDatabaseId, t,
						 rows ? ((TmLedgerRow *) llast(rows))->version : 0);
	tm_pause_point("adopt:before-commit");
	tm_xact_commit();
}

/*
 * For the TEMPLATE_MIGRATE executor, inside the template, before its
 * migrations run: the template role may create in schema public, as a
 * tenant's owner may through pg_database_owner (clones revoke it).
 */
void
tm_template_prepare(TmExecTask *task pg_attribute_unused())
{
	tm_xact_begin();
	tm_template_exec(psprintf("GRANT CREATE ON SCHEMA public TO %s",
							  quote_identifier(TM_TEMPLATE_NAME)));
	tm_xact_commit();
}


/*
 * Maintenance
 */

/*
 * What the template needs, seen from the control database in a
 * transaction: nothing (false), or a maintainer (true).  *state names the
 * registry and setting it was judged for, so that a failure is retried at
 * once when they change.
 */
static bool
tm_template_needs_work(char **state)
{
	List	   *migrations;
	int64		version = 0;
	char	   *digest = NULL;
	bool		foreign;
	bool		ours;
	Oid			roleid;
	Oid			dboid;

	if (!tm_catalog_has_ids())
	{
		*state = "";
		return false;
	}
	if (!tm_database_template)
	{
		/* only something to drop: no need to read the registry */
		*state = "off";
		roleid = tm_template_role(&foreign);
		return OidIsValid(tm_template_find(NULL, NULL)) || OidIsValid(roleid) ||
			(OidIsValid(tm_template_unlabelled(roleid, &ours)) && ours);
	}
	migrations = tm_migration_list();
	*state = psprintf("on " INT64_FORMAT " %s", tm_template_latest(migrations),
					  tm_template_digest(migrations, PG_INT64_MAX));
	roleid = tm_template_role(&foreign);
	dboid = tm_template_find(&version, &digest);
	if (!OidIsValid(dboid) &&
		OidIsValid(tm_template_unlabelled(roleid, &ours)) && !ours)
		foreign = true;
	if (foreign && !OidIsValid(dboid))
	{
		if (!tm_warned_foreign)
			ereport(WARNING,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("tenant_mgr cannot make its template database: %s", tm_template_problem()),
					 errhint("Rename or drop it; until then, database tenants are created from scratch.")));
		tm_warned_foreign = true;
		return false;
	}
	tm_warned_foreign = false;
	return !OidIsValid(dboid) || version != tm_template_latest(migrations) ||
		!tm_template_matches(migrations, version, digest);
}

/*
 * For the launcher, once per iteration, outside a transaction: starts a
 * maintainer when the template needs one and none is running.  A
 * maintainer that left work undone (it failed, or clones kept the template
 * busy) is tried again after a pause that doubles, unless the registry or
 * the setting changed meanwhile.
 */
void
tm_template_tend(void)
{
	BackgroundWorker worker;
	bool		finished = false;
	bool		needed;
	char	   *state;
	pid_t		pid;
	MemoryContext oldcxt;

	if (tm_maintainer != NULL)
	{
		BgwHandleStatus status = GetBackgroundWorkerPid(tm_maintainer, &pid);

		if (status == BGWH_STARTED || status == BGWH_NOT_YET_STARTED)
			return;
		pfree(tm_maintainer);
		tm_maintainer = NULL;
		finished = true;
	}

	tm_xact_begin();
	needed = tm_template_needs_work(&state);
	tm_xact_commit();
	if (!needed)
	{
		tm_failures = 0;
		tm_retry_at = 0;
		return;
	}
	if (tm_tended_state == NULL || strcmp(state, tm_tended_state) != 0)
	{
		tm_failures = 0;
		tm_retry_at = 0;
	}
	else if (finished)
	{
		tm_failures = Min(tm_failures + 1, 20);
		tm_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  Min(1000L << Min(tm_failures, 9),
													  TM_TEMPLATE_MAX_BACKOFF_MS));
	}
	if (GetCurrentTimestamp() < tm_retry_at)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strcpy(worker.bgw_library_name, "tenant_mgr");
	strcpy(worker.bgw_function_name, "tm_template_main");
	strcpy(worker.bgw_name, "tenant_mgr template maintainer");
	strcpy(worker.bgw_type, "tenant_mgr executor");
	worker.bgw_notify_pid = MyProcPid;

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	if (tm_tended_state)
		pfree(tm_tended_state);
	tm_tended_state = pstrdup(state);
	/* no slot: the next iteration tries again */
	if (!RegisterDynamicBackgroundWorker(&worker, &tm_maintainer))
		tm_maintainer = NULL;
	MemoryContextSwitchTo(oldcxt);
}

/* Drops the template database dbname (top-level), as role. */
static void
tm_template_drop(const char *dbname, Oid role, const char *why)
{
	tm_utility_toplevel(psprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)",
								 quote_identifier(dbname)), role);
	ereport(LOG,
			(errmsg("tenant_mgr dropped its template database \"%s\": %s", dbname, why)));
}

static void
tm_template_drop_role_stmt(void *arg pg_attribute_unused())
{
	tm_ddl(psprintf("DROP ROLE %s", quote_identifier(TM_TEMPLATE_NAME)));
}

/*
 * Creates the template database, empty but for what template1 holds, with
 * its label at version 0.  It is created owned by the template role, so
 * that an interruption before its label leaves something recognizably
 * ours, then given to the extension's owner (role): REASSIGN OWNED in a
 * clone would hand over a database the template role owned.
 */
static Oid
tm_template_create(Oid role)
{
	const char *name = quote_identifier(TM_TEMPLATE_NAME);
	Oid			dboid;

	tm_utility_toplevel(psprintf("CREATE DATABASE %s OWNER %s", name, name), role);
	tm_pause_point("template:after-database");
	tm_xact_begin();
	dboid = get_database_oid(TM_TEMPLATE_NAME, false);
	tm_ddl(psprintf("ALTER DATABASE %s OWNER TO %s", name,
					quote_identifier(GetUserNameFromId(role, false))));
	tm_ddl(psprintf("REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC", name));
	/* CREATE SCHEMA in a migration, as a tenant's owner may in its database */
	tm_ddl(psprintf("GRANT CREATE ON DATABASE %s TO %s", name, name));
	tm_ddl(psprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS false", name));
	tm_ddl(psprintf("COMMENT ON DATABASE %s IS 'tenant_mgr template'", name));
	CommandCounterIncrement();
	tm_template_mark(DatabaseRelationId, dboid, 0, TM_TEMPLATE_DIGEST_ZERO);
	tm_xact_commit();
	tm_pause_point("template:after-label");
	return dboid;
}

/*
 * The maintainer's work, under the exclusive template lock: removes a
 * template that must go (the setting is off, its ledger differs from the
 * registry, or an interrupted maintainer left it unlabelled), makes the
 * role and the database if they are missing, and has an executor bring
 * the template to the latest registered migration, waiting for it to exit.
 * A ledger the executor finds inconsistent gets the template rebuilt next
 * time.
 */
static void
tm_template_maintain(void)
{
	List	   *migrations;
	int64		version = 0;
	char	   *digest = NULL;
	char	   *dbname = NULL;
	const char *why = NULL;
	bool		foreign;
	bool		ours;
	Oid			owner;
	Oid			roleid;
	Oid			dboid;
	Oid			unlabelled;
	TmExecRun  *run;

	tm_xact_begin();
	if (!OidIsValid(get_extension_oid("tenant_mgr", true)) || !tm_catalog_has_ids())
	{
		tm_xact_commit();
		return;
	}
	owner = tm_catalog_owner();
	migrations = tm_migration_list();
	roleid = tm_template_role(&foreign);
	dboid = tm_template_find(&version, &digest);
	unlabelled = tm_template_unlabelled(roleid, &ours);
	if (OidIsValid(dboid))
	{
		dbname = get_database_name(dboid);
		if (!tm_database_template)
			why = "tenant_mgr.database_template is off";
		else if (!tm_template_matches(migrations, version, digest))
			why = "its migrations differ from the registered ones";
	}
	else if (OidIsValid(unlabelled) && ours)
	{
		dboid = unlabelled;
		dbname = get_database_name(dboid);
		why = "an interrupted maintenance left it unlabelled";
	}
	else if (tm_database_template && (foreign || OidIsValid(unlabelled)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("tenant_mgr cannot make its template database: %s", tm_template_problem())));
	tm_xact_commit();

	if (why)
	{
		tm_template_drop(dbname, owner, why);
		tm_pause_point("template:after-drop");
		dboid = InvalidOid;
		version = 0;
	}
	if (!tm_database_template)
	{
		if (OidIsValid(roleid))
		{
			ErrorData  *edata;

			tm_xact_begin();
			edata = tm_try(tm_template_drop_role_stmt, NULL);
			tm_xact_commit();
			if (edata)
				ereport(WARNING,
						(errcode(edata->sqlerrcode),
						 errmsg("role \"%s\" of the template database was kept: %s",
								TM_TEMPLATE_NAME, edata->message),
						 edata->detail ? errdetail_internal("%s", edata->detail) : 0));
		}
		return;
	}

	if (!OidIsValid(roleid))
	{
		tm_xact_begin();
		tm_ddl(psprintf("CREATE ROLE %s NOLOGIN", quote_identifier(TM_TEMPLATE_NAME)));
		CommandCounterIncrement();
		roleid = get_role_oid(TM_TEMPLATE_NAME, false);
		tm_template_mark(AuthIdRelationId, roleid, -1, NULL);
		tm_ddl(psprintf("COMMENT ON ROLE %s IS 'tenant_mgr template'",
						quote_identifier(TM_TEMPLATE_NAME)));
		tm_xact_commit();
		tm_pause_point("template:after-role");
	}
	if (!OidIsValid(dboid))
		dboid = tm_template_create(owner);
	if (version >= tm_template_latest(migrations))
		return;

	run = tm_exec_prepare(TM_EXEC_TEMPLATE_MIGRATE, dboid, tm_template_tenant(),
						  migrations);
	tm_exec_run(run);
	/* the lock is let go only once nothing of ours is in the template */
	(void) WaitForBackgroundWorkerShutdown(run->handle);
	if (run->task->state == TM_EXEC_FAILED &&
		run->task->sqlerrcode == ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE)
		tm_template_drop(TM_TEMPLATE_NAME, owner,
						 psprintf("its ledger disagrees with the registry: %s",
								  tm_task_text(run->task, run->task->message)));
	tm_exec_raise(run);
	tm_exec_release(run);
}

/*
 * Entry point of the maintainer, a background worker in the control
 * database started by the launcher.  It exits when done; an error ends it,
 * and the launcher tries again later.
 */
void
tm_template_main(Datum arg pg_attribute_unused())
{
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(tm_control_database, NULL, 0);
	/* no database or role setting may pick what a superuser runs */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);
	pgstat_report_appname("tenant_mgr template");

	if (!tm_template_lock(ExclusiveLock, TM_TEMPLATE_MAINTAIN_WAIT_MS))
		proc_exit(0);			/* clones kept it busy: the launcher retries */
	tm_pause_point("template:locked");
	tm_template_maintain();
	tm_template_unlock(ExclusiveLock);
	proc_exit(0);
}
