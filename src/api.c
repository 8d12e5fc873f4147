/*-------------------------------------------------------------------------
 *
 * api.c
 *		SQL-callable tenant functions: tenant_create, tenant_migrate,
 *		tenant_drop, tenant_rename, tenant_detach, tenant_attach,
 *		tenant_login_role, tenant_use, and the tm_create, tm_drop, tm_rename
 *		and tm_detach they share with the customers-table trigger.
 *
 * Schema tenants are handled in the caller's transaction with the caller's
 * privileges, so a rollback leaves nothing behind; what PostgreSQL forbids
 * there for database tenants goes through dbtenant.c.  Every operation on a
 * tenant first takes the tenant's lock without waiting (catalog.c), so two
 * operations on one tenant fail fast instead of interleaving.
 *
 * tenant_migrate(NULL) walks every tenant.  Each step on each tenant runs in
 * a subtransaction: one tenant's failure is recorded (event log, catalog
 * last_error, a result row) and the others go on.  A tenant the catalog
 * already shows at the target is answered from the catalog, untouched.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "tenant_mgr.h"

PG_FUNCTION_INFO_V1(tenant_create);
PG_FUNCTION_INFO_V1(tenant_migrate);
PG_FUNCTION_INFO_V1(tenant_drop);
PG_FUNCTION_INFO_V1(tenant_use);
PG_FUNCTION_INFO_V1(tenant_rename);
PG_FUNCTION_INFO_V1(tenant_detach);
PG_FUNCTION_INFO_V1(tenant_attach);
PG_FUNCTION_INFO_V1(tenant_login_role);

/* Returns text argument argno as a C string; NULL is an error. */
static char *
tm_arg_cstring(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* Returns true for a database tenant; an unknown isolation is an error. */
static bool
tm_is_database(const char *isolation)
{
	if (strcmp(isolation, TM_ISOLATION_SCHEMA) == 0)
		return false;
	if (strcmp(isolation, TM_ISOLATION_DATABASE) == 0)
		return true;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid isolation \"%s\"", isolation),
			 errhint("Valid values are \"schema\" and \"database\".")));
	return false;				/* keep compiler quiet */
}

/*
 * Points t->schema at the tenant's schema as it is named now, if it carries
 * tenant_mgr's marks; anything else is never migrated or used.
 */
static void
tm_resolve_schema(TmTenant *t)
{
	Oid			nspoid = tm_schema_find(t);

	if (!OidIsValid(nspoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tenant \"%s\" has no schema created by tenant_mgr", t->name),
				 errhint("Compare the catalog with reality: SELECT * FROM tenant_mgr.verify().")));
	t->schema = get_namespace_name(nspoid);
}

/* Only tenants in state "ready" can be migrated or used. */
static void
tm_require_ready(const TmTenant *t)
{
	if (strcmp(t->state, "ready") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tenant \"%s\" is not ready", t->name),
				 errdetail("Its state is \"%s\".", t->state),
				 strcmp(t->state, "creating") == 0 ?
				 errhint("Wait for it with tenant_mgr.tenant_wait('%s').", t->name) : 0));
}

static double
tm_elapsed_ms(instr_time start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	return INSTR_TIME_GET_MILLISEC(now);
}

/*
 * Runs fn(arg) in a subtransaction.  Returns NULL on success, or the error
 * (allocated in the current memory context) after rolling the
 * subtransaction back.  A query cancel is not swallowed.
 */
static ErrorData *
tm_try(void (*fn) (void *), void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;

	if (edata && edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		ReThrowError(edata);
	return edata;
}

/*
 * Creates a tenant (see tenant_create); returns nothing, the catalog row
 * tells the result.  With wait false, only records the tenant as
 * "creating" and queues a job: no per-tenant lock is taken, so a bulk
 * INSERT through a trigger stays cheap; a concurrent creation of the same
 * name waits for the other transaction and then fails.  Expects an SPI
 * connection.
 */
void
tm_create(const char *name, const char *isolation, const char *owner,
		  const char *metadata, bool wait)
{
	bool		database = tm_is_database(isolation);
	bool		own_role = (owner == NULL);
	TmTenant	t;
	List	   *steps;
	ListCell   *lc;
	int64		run_id;
	instr_time	start;

	INSTR_TIME_SET_CURRENT(start);
	tm_check_tenant_name(name);
	if (database && owner != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the owner of a database tenant cannot be chosen"),
				 errdetail("Each database tenant gets an owner role of its own, named like its database.")));
	if (owner != NULL)
		/* the role must exist and the caller must be able to become it */
		check_is_member_of_role(GetUserId(), get_role_oid(owner, false));

	memset(&t, 0, sizeof(t));
	t.name = (char *) name;
	t.isolation = database ? TM_ISOLATION_DATABASE : TM_ISOLATION_SCHEMA;
	t.object_name = tm_object_name(name);
	t.owner = owner ? (char *) owner : t.object_name;
	t.schema = database ? "public" : t.object_name;

	if (database)
	{
		if (wait)
		{
			tm_tenant_lock(name);
			if (tm_tenant_fetch(name, true) != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_OBJECT),
						 errmsg("tenant \"%s\" already exists", name)));
		}
		tm_dbtenant_create(name, metadata, wait);
		return;
	}

	if (!wait)
	{
		/* what the launcher would find out later, found out now */
		if (tm_tenant_fetch(name, true) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("tenant \"%s\" already exists", name)));
		tm_require_control_database("queued tenants");
		if (own_role)
			tm_check_owner_role(t.owner, name);
		if (OidIsValid(get_namespace_oid(t.object_name, true)))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_SCHEMA),
					 errmsg("schema \"%s\" already exists", t.object_name),
					 errdetail("It was not created by tenant_mgr, which never adopts an existing schema."),
					 errhint("Choose another tenant name.")));
		if (!tm_tenant_reserve(name, TM_ISOLATION_SCHEMA, t.object_name,
							   t.owner, metadata))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("tenant \"%s\" already exists", name)));
		(void) tm_job_queue(name, "create", t.object_name, InvalidOid,
							t.owner, own_role, false);
		return;
	}

	tm_tenant_lock(name);
	if (tm_tenant_fetch(name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("tenant \"%s\" already exists", name)));
	steps = tm_schematenant_build(&t, tm_migration_list(), own_role);
	tm_tenant_insert(name, TM_ISOLATION_SCHEMA, t.object_name, t.object_oid,
					 t.owner, t.version, metadata, "ready");
	run_id = tm_run_id();
	foreach(lc, steps)
	{
		TmStep	   *s = lfirst(lc);

		tm_event_log(run_id, name, "up", s->migration->version, "ok", NULL, s->ms);
	}
	tm_event_log(run_id, name, "create", 0, "ok", NULL, tm_elapsed_ms(start));
}

/*
 * tenant_create(name, isolation, owner, metadata, wait) returns tenant_mgr.tenant
 *
 * A schema tenant is created in the caller's transaction.  A database
 * tenant is created by executors (dbtenant.c).  Either is only queued, for
 * the launcher to create after commit, when not wait.
 */
Datum
tenant_create(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	char	   *isolation = tm_arg_cstring(fcinfo, 1, "isolation");
	char	   *owner = PG_ARGISNULL(2) ? NULL : pstrdup(NameStr(*PG_GETARG_NAME(2)));
	char	   *metadata = "{}";
	bool		wait = PG_ARGISNULL(4) || PG_GETARG_BOOL(4);
	Datum		result;

	if (!PG_ARGISNULL(3))
	{
		Jsonb	   *jb = PG_GETARG_JSONB_P(3);

		if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tenant metadata must be a JSON object")));
		metadata = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}

	tm_spi_connect();
	tm_create(name, isolation, owner, metadata, wait);
	result = tm_tenant_row(name);
	tm_spi_finish();
	PG_RETURN_DATUM(result);
}

/* One result row of tenant_migrate. */
static void
tm_put_row(ReturnSetInfo *rsinfo, const char *tenant, const TmStep *step,
		   const char *status, const ErrorData *edata)
{
	Datum		values[8];
	bool		nulls[8];

	memset(nulls, 0, sizeof(nulls));
	values[0] = CStringGetTextDatum(tenant);
	if (step)
	{
		Interval   *iv = palloc0(sizeof(Interval));

		iv->time = (TimeOffset) (step->ms * 1000.0);
		values[1] = Int64GetDatum(step->migration->version);
		values[2] = CStringGetTextDatum(step->migration->name);
		values[3] = CStringGetTextDatum(step->up ? "up" : "down");
		values[5] = IntervalPGetDatum(iv);
	}
	else
		nulls[1] = nulls[2] = nulls[3] = nulls[5] = true;
	values[4] = CStringGetTextDatum(status);
	if (edata)
	{
		values[6] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
		values[7] = CStringGetTextDatum(edata->message ? edata->message : "");
	}
	else
		nulls[6] = nulls[7] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* State of one tenant's migration, shared with the subtransaction bodies. */
typedef struct TmMigrateState
{
	TmTenant   *tenant;
	List	   *migrations;
	int64		target;
	List	   *steps;
	int64		current;
	TmStep	   *step;
} TmMigrateState;

/*
 * Migrations run as the tenant's owner: only a caller who could act as that
 * role may have them run.
 */
static void
tm_check_acts_as_owner(const TmTenant *t)
{
	if (!is_member_of_role(GetUserId(), get_role_oid(t->owner, false)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to migrate tenant \"%s\"", t->name),
				 errdetail("Migrations run as the tenant's owner \"%s\", and role \"%s\" is not a member of it.",
						   t->owner, GetUserNameFromId(GetUserId(), false))));
}

static void
tm_lock_and_plan(void *arg)
{
	TmMigrateState *ms = (TmMigrateState *) arg;

	tm_check_acts_as_owner(ms->tenant);
	tm_tenant_lock(ms->tenant->name);
	tm_resolve_schema(ms->tenant);
	ms->steps = tm_migration_plan(ms->tenant, ms->migrations, ms->target,
								  &ms->current);
}

static void
tm_lock_only(void *arg)
{
	tm_check_acts_as_owner(((TmMigrateState *) arg)->tenant);
	tm_tenant_lock(((TmMigrateState *) arg)->tenant->name);
}

static void
tm_apply_step(void *arg)
{
	TmMigrateState *ms = (TmMigrateState *) arg;

	tm_migration_apply(ms->tenant, ms->step);
}

/*
 * Migrates one tenant of a fleet run; never raises (but for cancels).
 * Returns false if the tenant failed.
 */
static bool
tm_migrate_fleet_member(TmMigrateState *ms, int64 run_id,
						ReturnSetInfo *rsinfo)
{
	const char *name = ms->tenant->name;
	ErrorData  *edata;
	ListCell   *lc;

	edata = tm_try(tm_lock_and_plan, ms);
	if (edata)
	{
		const char *status =
			edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ? "skipped" : "failed";

		tm_event_log(run_id, name, ms->target >= ms->tenant->version ? "up" : "down",
					 0, status, edata, 0);
		if (strcmp(status, "failed") == 0)
			tm_tenant_set_version(name, ms->tenant->version, edata->message);
		tm_put_row(rsinfo, name, NULL, status, edata);
		return strcmp(status, "skipped") == 0;
	}

	foreach(lc, ms->steps)
	{
		instr_time	start;

		ms->step = lfirst(lc);
		INSTR_TIME_SET_CURRENT(start);
		edata = tm_try(tm_apply_step, ms);
		if (edata)
			ms->step->ms = tm_elapsed_ms(start);
		tm_event_log(run_id, name, ms->step->up ? "up" : "down",
					 ms->step->migration->version, edata ? "failed" : "ok",
					 edata, ms->step->ms);
		tm_put_row(rsinfo, name, ms->step,
				   edata ? "failed" : (ms->step->up ? "applied" : "reverted"),
				   edata);
		if (edata)
			break;

		ms->current = tm_version_after(ms->steps, lc, ms->target);
	}
	tm_tenant_set_version(name, ms->current, edata ? edata->message : NULL);
	return edata == NULL;
}

/* What the report of a database tenant's executor needs. */
typedef struct TmDbReport
{
	int64		run_id;
	ReturnSetInfo *rsinfo;
	List	   *migrations;
} TmDbReport;

/*
 * Records what the MIGRATE executor of a database tenant did: result rows,
 * events, and the catalog's copy of the version its ledger now has.
 */
static void
tm_report_db_run(TmTenant *t, TmExecRun *run, void *arg)
{
	TmDbReport *r = (TmDbReport *) arg;
	ErrorData  *edata = tm_exec_error(run->task);
	ListCell   *lc;


	foreach(lc, tm_exec_steps(run->task, r->migrations))
	{
		TmStep	   *s = lfirst(lc);

		tm_event_log(r->run_id, t->name, s->up ? "up" : "down",
					 s->migration->version, "ok", NULL, s->ms);
		tm_put_row(r->rsinfo, t->name, s, s->up ? "applied" : "reverted", NULL);
	}
	if (edata)
	{
		TmStep	   *failed = NULL;

		/* the migration that failed, if it got that far */
		foreach(lc, r->migrations)
		{
			TmMigration *m = lfirst(lc);

			if (m->version == run->task->failing)
			{
				failed = palloc0(sizeof(TmStep));
				failed->migration = m;
				failed->up = run->task->failing_up;
			}
		}
		tm_event_log(r->run_id, t->name,
					 failed && !failed->up ? "down" : "up",
					 failed ? failed->migration->version : 0, "failed", edata, 0);
		tm_put_row(r->rsinfo, t->name, failed, "failed", edata);
	}
	if (edata || run->task->version != t->version)
		tm_tenant_set_version(t->name, run->task->version,
							  edata ? edata->message : NULL);
}

/*
 * tenant_migrate(name, target, stop_on_error) returns setof record
 *
 * Schema tenants are migrated in this backend; database tenants by one
 * executor each, up to tenant_mgr.max_workers at a time.
 */
Datum
tenant_migrate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		stop_on_error = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	TmMigrateState ms;
	List	   *migrations;
	int64		target;
	int64		run_id;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	tm_spi_connect();

	migrations = tm_migration_list();
	if (PG_ARGISNULL(1))
		target = migrations ? ((TmMigration *) llast(migrations))->version : 0;
	else
	{
		target = PG_GETARG_INT64(1);
		if (target < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("target version must not be negative")));
		if (target > 0)
		{
			bool		found = false;

			foreach(lc, migrations)
				found |= ((TmMigration *) lfirst(lc))->version == target;
			if (!found)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("migration " INT64_FORMAT " does not exist", target),
						 errhint("The target is a registered version, or 0 to revert every migration.")));
		}
	}

	memset(&ms, 0, sizeof(ms));
	ms.migrations = migrations;
	ms.target = target;
	run_id = tm_run_id();

	if (!PG_ARGISNULL(0))
	{
		/* One tenant: errors propagate to the caller, changing nothing. */
		char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

		ms.tenant = tm_tenant_fetch(name, false);
		tm_require_ready(ms.tenant);
		if (tm_is_database(ms.tenant->isolation))
		{
			TmDbReport	r = {run_id, rsinfo, migrations};
			TmExecRun  *run;
			bool		launched;

			tm_require_control_database("database tenants");
			tm_check_acts_as_owner(ms.tenant);
			tm_tenant_lock(name);
			run = tm_dbtenant_migrate_start(ms.tenant, migrations, target, &launched);
			if (!launched)
				tm_exec_run(run);	/* raises the out-of-slots error */
			tm_exec_wait(run);
			tm_report_db_run(ms.tenant, run, &r);
			tm_exec_raise(run);
			tm_exec_release(run);
			tm_spi_finish();
			return (Datum) 0;
		}
		tm_lock_and_plan(&ms);
		foreach(lc, ms.steps)
		{
			TmStep	   *s = lfirst(lc);

			tm_migration_apply(ms.tenant, s);
			tm_event_log(run_id, name, s->up ? "up" : "down",
						 s->migration->version, "ok", NULL, s->ms);
			tm_put_row(rsinfo, name, s, s->up ? "applied" : "reverted", NULL);
		}
		if (ms.steps != NIL)
			tm_tenant_set_version(name, target, NULL);
		else if (ms.current != ms.tenant->version)
			tm_tenant_set_version(name, ms.current, NULL);	/* reality wins */
	}
	else
	{
		MemoryContext tenant_cxt = AllocSetContextCreate(CurrentMemoryContext,
														 "tenant_mgr migrate",
														 ALLOCSET_DEFAULT_SIZES);
		MemoryContext oldcxt;
		List	   *databases = NIL;
		bool		failed = false;

		foreach(lc, tm_tenant_list())
		{
			TmTenant   *t = lfirst(lc);
			bool		ok;

			/* the catalog answers for tenants with nothing to do */
			if (t->version == target || strcmp(t->state, "ready") != 0)
				continue;
			if (tm_is_database(t->isolation))
			{
				databases = lappend(databases, t);
				continue;
			}

			oldcxt = MemoryContextSwitchTo(tenant_cxt);
			ms.tenant = t;
			ms.steps = NIL;
			ms.current = t->version;
			ok = tm_migrate_fleet_member(&ms, run_id, rsinfo);
			MemoryContextSwitchTo(oldcxt);
			MemoryContextReset(tenant_cxt);
			if (!ok && stop_on_error)
			{
				failed = true;
				break;
			}
		}

		if (databases != NIL && !failed)
		{
			TmDbReport	r = {run_id, rsinfo, migrations};
			List	   *unlocked = NIL;

			tm_require_control_database("database tenants");
			foreach(lc, databases)
			{
				TmTenant   *t = lfirst(lc);
				ErrorData  *edata;

				ms.tenant = t;
				edata = tm_try(tm_lock_only, &ms);

				if (edata == NULL)
					unlocked = lappend(unlocked, t);
				else
				{
					const char *status =
						edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ? "skipped" : "failed";

					tm_event_log(run_id, t->name, "up", 0, status, edata, 0);
					tm_put_row(rsinfo, t->name, NULL, status, edata);
				}
			}
			tm_dbtenant_migrate_fleet(unlocked, migrations, target, stop_on_error,
									  tm_report_db_run, &r);
		}
	}

	tm_spi_finish();
	return (Datum) 0;
}

/*
 * Drops a tenant (see tenant_drop).  Returns false when there was no such
 * tenant and if_exists.  Expects an SPI connection.
 */
bool
tm_drop(const char *name, bool if_exists, bool force)
{
	TmTenant   *t;
	Oid			nspoid;
	instr_time	start;

	INSTR_TIME_SET_CURRENT(start);
	tm_tenant_lock(name);
	t = tm_tenant_fetch(name, if_exists);
	if (t == NULL)
	{
		ereport(NOTICE,
				(errmsg("tenant \"%s\" does not exist, skipping", name)));
		return false;
	}
	if (strcmp(t->state, "creating") == 0)
	{
		Oid			types[1] = {TEXTOID};
		Datum		values[1] = {CStringGetTextDatum(name)};

		/* not started yet: the creation is simply called off */
		tm_catalog_exec("DELETE FROM tenant_mgr.job WHERE tenant = $1"
						" AND action = 'create' AND state = 'queued'",
						1, types, values, NULL, SPI_OK_DELETE);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("tenant \"%s\" is still being created", name),
					 errhint("Wait for it with tenant_mgr.tenant_wait('%s'), then drop it.", name)));
		tm_tenant_delete(name);
		tm_event_log(tm_run_id(), name, "drop", 0, "ok", NULL, tm_elapsed_ms(start));
		return true;
	}

	if (tm_is_database(t->isolation))
	{
		if (!tm_dbtenant_detach(t, force, true))
			ereport(NOTICE,
					(errmsg("database of tenant \"%s\" no longer exists", name),
					 errdetail("Only its catalog row is removed.")));
		/* the launcher drops the database after commit and logs the event */
		tm_tenant_delete(name);
		return true;
	}

	nspoid = tm_schema_find(t);
	if (!OidIsValid(nspoid))
	{
		if (OidIsValid(get_namespace_oid(t->object_name, true)))
			ereport(NOTICE,
					(errmsg("schema \"%s\" is left in place", t->object_name),
					 errdetail("It does not carry tenant_mgr's marks (the ledger table \"%s\" and the OID or comment given at creation); only the catalog row of tenant \"%s\" is removed.",
							   TM_LEDGER_NAME, name)));
		else
			ereport(NOTICE,
					(errmsg("schema of tenant \"%s\" no longer exists", name),
					 errdetail("Only its catalog row is removed.")));
		tm_login_role_drop(t->object_name, t->name);
		tm_owner_role_drop(t->owner, t->name);
	}
	else
		tm_schematenant_drop(t, nspoid);

	tm_tenant_delete(name);
	tm_event_log(tm_run_id(), name, "drop", 0, "ok", NULL, tm_elapsed_ms(start));
	return true;
}

/*
 * tenant_drop(name, if_exists, force) returns bool
 *
 * Drops the schema only if it carries tenant_mgr's marks (marker.c), then
 * its owner role if tenant_mgr created it.  If there is no such schema, the
 * catalog row goes and whatever now has the name is left alone.  A
 * database tenant is detached in the caller's transaction and dropped by
 * the launcher after commit (dbtenant.c); force terminates other sessions
 * using it.
 */
Datum
tenant_drop(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	bool		if_exists = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	bool		force = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	bool		dropped;

	tm_spi_connect();
	dropped = tm_drop(name, if_exists, force);
	tm_spi_finish();
	PG_RETURN_BOOL(dropped);
}

/*
 * Renames a tenant in the caller's transaction: its schema or database, its
 * owner role when tenant_mgr created it, their marks, and the catalog row.
 * A database being used by other sessions cannot be renamed.  Expects an
 * SPI connection.
 */
void
tm_rename(const char *name, const char *new_name)
{
	TmTenant   *t;
	char	   *object;
	char	   *owner;
	char	   *marker = tm_schema_marker(new_name);
	bool		database;
	Oid			types[4] = {TEXTOID, TEXTOID, NAMEOID, NAMEOID};
	Datum		values[4];
	instr_time	start;

	INSTR_TIME_SET_CURRENT(start);
	tm_check_tenant_name(new_name);
	/* both names, in a fixed order */
	tm_tenant_lock(strcmp(name, new_name) < 0 ? name : new_name);
	tm_tenant_lock(strcmp(name, new_name) < 0 ? new_name : name);
	t = tm_tenant_fetch(name, false);
	tm_require_ready(t);
	if (tm_tenant_fetch(new_name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("tenant \"%s\" already exists", new_name)));
	database = tm_is_database(t->isolation);
	object = tm_object_name(new_name);
	owner = t->owner;

	if (database)
	{
		Oid			dboid;

		tm_require_control_database("database tenants");
		dboid = tm_database_find(t);
		if (!OidIsValid(dboid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_DATABASE),
					 errmsg("database of tenant \"%s\" does not exist", name)));
		if (OidIsValid(get_database_oid(object, true)))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_DATABASE),
					 errmsg("database \"%s\" already exists", object)));
		tm_utility(psprintf("ALTER DATABASE %s RENAME TO %s",
							quote_identifier(get_database_name(dboid)),
							quote_identifier(object)));
		tm_utility(psprintf("COMMENT ON DATABASE %s IS %s",
							quote_identifier(object), quote_literal_cstr(marker)));
	}
	else
	{
		Oid			nspoid = tm_schema_find(t);

		if (!OidIsValid(nspoid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_SCHEMA),
					 errmsg("schema of tenant \"%s\" does not exist", name)));
		if (OidIsValid(get_namespace_oid(object, true)))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_SCHEMA),
					 errmsg("schema \"%s\" already exists", object)));
		tm_utility(psprintf("ALTER SCHEMA %s RENAME TO %s",
							quote_identifier(get_namespace_name(nspoid)),
							quote_identifier(object)));
		tm_utility(psprintf("COMMENT ON SCHEMA %s IS %s",
							quote_identifier(object), quote_literal_cstr(marker)));
	}

	/* the owner role follows when it is tenant_mgr's */
	if (tm_role_is_ours(t->owner, name))
	{
		if (OidIsValid(get_role_oid(object, true)))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("role \"%s\" already exists", object)));
		tm_utility(psprintf("ALTER ROLE %s RENAME TO %s",
							quote_identifier(t->owner), quote_identifier(object)));
		tm_utility(psprintf("COMMENT ON ROLE %s IS %s",
							quote_identifier(object), quote_literal_cstr(marker)));
		owner = object;
	}
	tm_login_role_rename(t->object_name, name, object, new_name);

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(new_name);
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(object));
	values[3] = DirectFunctionCall1(namein, CStringGetDatum(owner));
	tm_catalog_exec("UPDATE tenant_mgr.tenant SET name = $2, object_name = $3,"
					" owner = $4, updated_at = now() WHERE name = $1",
					4, types, values, NULL, SPI_OK_UPDATE);
	{
		/* the history keeps the old name: say where this one comes from */
		ErrorData	note;

		memset(&note, 0, sizeof(note));
		note.sqlerrcode = ERRCODE_SUCCESSFUL_COMPLETION;
		note.message = psprintf("renamed from \"%s\"", name);
		tm_event_log(tm_run_id(), new_name, "rename", 0, "ok", &note,
					 tm_elapsed_ms(start));
	}
}

/*
 * tenant_rename(name, new_name) returns tenant_mgr.tenant
 */
Datum
tenant_rename(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	char	   *new_name = tm_arg_cstring(fcinfo, 1, "new tenant name");
	Datum		result;

	tm_spi_connect();
	tm_rename(name, new_name);
	result = tm_tenant_row(new_name);
	tm_spi_finish();
	PG_RETURN_DATUM(result);
}

/*
 * Detaches a tenant in the caller's transaction, keeping its data: the
 * schema or database is renamed out of the way (tenant_mgr_detached_<oid>;
 * a database is also closed to connections) and the tenant's state becomes
 * "detached".  tenant_attach undoes it, tenant_drop finishes it.  Returns
 * false when there was no such tenant and if_exists.
 */
bool
tm_detach(const char *name, bool if_exists, bool force)
{
	TmTenant   *t;
	instr_time	start;

	INSTR_TIME_SET_CURRENT(start);
	tm_tenant_lock(name);
	t = tm_tenant_fetch(name, if_exists);
	if (t == NULL)
	{
		ereport(NOTICE,
				(errmsg("tenant \"%s\" does not exist, skipping", name)));
		return false;
	}
	tm_require_ready(t);
	if (tm_is_database(t->isolation))
	{
		if (!tm_dbtenant_detach(t, force, false))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_DATABASE),
					 errmsg("database of tenant \"%s\" does not exist", name)));
	}
	else
	{
		tm_resolve_schema(t);
		tm_utility(psprintf("ALTER SCHEMA %s RENAME TO %s",
							quote_identifier(t->schema),
							quote_identifier(psprintf("tenant_mgr_detached_%u",
													  tm_schema_find(t)))));
	}
	tm_tenant_set_state(name, "detached");
	tm_event_log(tm_run_id(), name, "detach", 0, "ok", NULL, tm_elapsed_ms(start));
	return true;
}

/*
 * tenant_detach(name, if_exists, force) returns bool
 */
Datum
tenant_detach(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	bool		if_exists = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	bool		force = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	bool		detached;

	tm_spi_connect();
	detached = tm_detach(name, if_exists, force);
	tm_spi_finish();
	PG_RETURN_BOOL(detached);
}

/*
 * tenant_attach(name) returns tenant_mgr.tenant
 *
 * Gives a detached tenant its schema or database name back.
 */
Datum
tenant_attach(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	TmTenant   *t;
	Datum		result;
	instr_time	start;

	INSTR_TIME_SET_CURRENT(start);
	tm_spi_connect();
	tm_tenant_lock(name);
	t = tm_tenant_fetch(name, false);
	if (strcmp(t->state, "detached") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tenant \"%s\" is not detached", name),
				 errdetail("Its state is \"%s\".", t->state)));
	if (tm_is_database(t->isolation))
		tm_dbtenant_attach(t);
	else
	{
		Oid			nspoid = tm_schema_find(t);

		if (!OidIsValid(nspoid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_SCHEMA),
					 errmsg("schema of tenant \"%s\" does not exist", name)));
		if (OidIsValid(get_namespace_oid(t->object_name, true)))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_SCHEMA),
					 errmsg("schema \"%s\" already exists", t->object_name)));
		tm_utility(psprintf("ALTER SCHEMA %s RENAME TO %s",
							quote_identifier(get_namespace_name(nspoid)),
							quote_identifier(t->object_name)));
	}
	tm_tenant_set_state(name, "ready");
	tm_event_log(tm_run_id(), name, "attach", 0, "ok", NULL, tm_elapsed_ms(start));
	result = tm_tenant_row(name);
	tm_spi_finish();
	PG_RETURN_DATUM(result);
}

/*
 * tenant_login_role(name) returns name
 *
 * Creates (or returns) the tenant's LOGIN role for the application:
 * <object>_login, a member of the tenant's owner role.
 */
Datum
tenant_login_role(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	TmTenant   *t;
	char	   *role;

	tm_spi_connect();
	tm_tenant_lock(name);
	t = tm_tenant_fetch(name, false);
	tm_require_ready(t);
	if (tm_is_database(t->isolation))
		tm_require_control_database("database tenants");
	role = tm_login_role_create(t);
	tm_spi_finish();
	PG_RETURN_DATUM(DirectFunctionCall1(namein, CStringGetDatum(role)));
}

/*
 * tenant_use(name, is_local) returns text
 *
 * Sets search_path to the tenant's schema followed by the shared schemas,
 * for the session or, with is_local, for the transaction.  Returns the new
 * search_path.
 */
Datum
tenant_use(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	bool		is_local = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	TmTenant   *t;
	char	   *path;

	tm_spi_connect();
	t = tm_tenant_fetch(name, false);
	if (strcmp(t->isolation, TM_ISOLATION_SCHEMA) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("tenant \"%s\" is a database tenant", name),
				 errhint("Connect to database \"%s\" instead.", t->object_name)));
	tm_require_ready(t);
	tm_resolve_schema(t);
	path = tm_search_path(t->schema);
	(void) set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION,
							 is_local ? GUC_ACTION_LOCAL : GUC_ACTION_SET,
							 true, 0, false);
	tm_spi_finish();
	PG_RETURN_TEXT_P(cstring_to_text(GetConfigOption("search_path", false, false)));
}
