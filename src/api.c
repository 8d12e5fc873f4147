/*-------------------------------------------------------------------------
 *
 * api.c
 *		SQL-callable tenant functions: tenant_create, tenant_migrate,
 *		tenant_drop, tenant_use.
 *
 * Everything runs in the caller's transaction with the caller's
 * privileges: a rollback leaves nothing behind.  Every operation on a
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
 * tenant_create(name, isolation, owner, metadata, wait) returns tenant_mgr.tenant
 *
 * A schema tenant is created in the caller's transaction.  A database
 * tenant is created by executors (dbtenant.c), or queued when not wait.
 */
Datum
tenant_create(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	char	   *isolation = tm_arg_cstring(fcinfo, 1, "isolation");
	char	   *owner;
	char	   *metadata = "{}";
	TmTenant	t;
	List	   *steps;
	ListCell   *lc;
	int64		current;
	int64		run_id;
	instr_time	start;
	Datum		result;

	bool		database;
	bool		wait = PG_ARGISNULL(4) || PG_GETARG_BOOL(4);

	INSTR_TIME_SET_CURRENT(start);
	database = tm_is_database(isolation);
	tm_check_tenant_name(name);

	if (database && !PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the owner of a database tenant cannot be chosen"),
				 errdetail("Each database tenant gets an owner role of its own, named like its database.")));
	if (PG_ARGISNULL(2))
		owner = GetUserNameFromId(GetUserId(), false);
	else
	{
		owner = NameStr(*PG_GETARG_NAME(2));
		/* the role must exist and the caller must be able to become it */
		check_is_member_of_role(GetUserId(), get_role_oid(owner, false));
	}

	if (!PG_ARGISNULL(3))
	{
		Jsonb	   *jb = PG_GETARG_JSONB_P(3);

		if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tenant metadata must be a JSON object")));
		metadata = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}

	memset(&t, 0, sizeof(t));
	t.name = name;
	t.isolation = TM_ISOLATION_SCHEMA;
	t.object_name = tm_object_name(name);
	t.owner = owner;
	t.schema = t.object_name;

	tm_spi_connect();
	tm_tenant_lock(name);
	if (tm_tenant_fetch(name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("tenant \"%s\" already exists", name)));
	if (database)
	{
		tm_dbtenant_create(name, metadata, wait);
		result = tm_tenant_row(name);
		tm_spi_finish();
		PG_RETURN_DATUM(result);
	}
	if (OidIsValid(get_namespace_oid(t.object_name, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_SCHEMA),
				 errmsg("schema \"%s\" already exists", t.object_name),
				 errdetail("It was not created by tenant_mgr, which never adopts an existing schema."),
				 errhint("Choose another tenant name.")));

	if (SPI_execute(psprintf("CREATE SCHEMA %s AUTHORIZATION %s",
							 quote_identifier(t.object_name),
							 quote_identifier(owner)),
					false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create schema \"%s\"", t.object_name);
	t.object_oid = get_namespace_oid(t.object_name, false);
	if (SPI_execute(psprintf("COMMENT ON SCHEMA %s IS %s",
							 quote_identifier(t.object_name),
							 quote_literal_cstr(tm_schema_marker(name))),
					false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not comment on schema \"%s\"", t.object_name);

	tm_ledger_create(&t);
	steps = tm_migration_plan(&t, tm_migration_list(), PG_INT64_MAX, &current);
	foreach(lc, steps)
	{
		TmStep	   *s = lfirst(lc);

		tm_migration_apply(&t, s);
		current = s->migration->version;
	}

	tm_tenant_insert(name, TM_ISOLATION_SCHEMA, t.object_name, t.object_oid,
					 owner, current, metadata, "ready");
	run_id = tm_run_id();
	foreach(lc, steps)
	{
		TmStep	   *s = lfirst(lc);

		tm_event_log(run_id, name, "up", s->migration->version, "ok", NULL, s->ms);
	}
	tm_event_log(run_id, name, "create", 0, "ok", NULL, tm_elapsed_ms(start));

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

static void
tm_lock_and_plan(void *arg)
{
	TmMigrateState *ms = (TmMigrateState *) arg;

	tm_tenant_lock(ms->tenant->name);
	ms->steps = tm_migration_plan(ms->tenant, ms->migrations, ms->target,
								  &ms->current);
}

static void
tm_lock_only(void *arg)
{
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

			tm_require_control_database();
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

			tm_require_control_database();
			foreach(lc, databases)
			{
				TmTenant   *t = lfirst(lc);

				ms.tenant = t;
				if (tm_try(tm_lock_only, &ms) == NULL)
					unlocked = lappend(unlocked, t);
				else
				{
					ErrorData  *edata = palloc0(sizeof(ErrorData));

					edata->sqlerrcode = ERRCODE_LOCK_NOT_AVAILABLE;
					edata->message = psprintf("tenant \"%s\" is busy", t->name);
					tm_event_log(run_id, t->name, "up", 0, "skipped", edata, 0);
					tm_put_row(rsinfo, t->name, NULL, "skipped", edata);
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
 * Raises an error listing objects outside the schema that depend on objects
 * inside it: DROP SCHEMA ... CASCADE would take them along, and tenant_mgr
 * touches nothing it did not create.
 */
static void
tm_check_no_outside_dependents(const TmTenant *t, Oid nspoid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(nspoid)};
	StringInfoData list;
	uint64		i;

	if (SPI_execute_with_args(
							  "SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, 0)"
							  "  FROM pg_catalog.pg_depend d"
							  "  JOIN (SELECT 'pg_catalog.pg_class'::pg_catalog.regclass AS cls, oid FROM pg_catalog.pg_class WHERE relnamespace = $1"
							  "        UNION ALL SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, oid FROM pg_catalog.pg_type WHERE typnamespace = $1"
							  "        UNION ALL SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, oid FROM pg_catalog.pg_proc WHERE pronamespace = $1) o"
							  "    ON d.refclassid = o.cls AND d.refobjid = o.oid"
							  " WHERE d.deptype IN ('n', 'a')"
							  "   AND COALESCE(CASE d.classid"
							  "     WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_type'::pg_catalog.regclass THEN (SELECT typnamespace FROM pg_catalog.pg_type WHERE oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN (SELECT pronamespace FROM pg_catalog.pg_proc WHERE oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN (SELECT connamespace FROM pg_catalog.pg_constraint WHERE oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class WHERE r.oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid WHERE g.oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_attrdef a JOIN pg_catalog.pg_class c ON c.oid = a.adrelid WHERE a.oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid WHERE p.oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass THEN (SELECT stxnamespace FROM pg_catalog.pg_statistic_ext WHERE oid = d.objid)"
							  "   END, 0) OPERATOR(pg_catalog.<>) $1"
							  " ORDER BY 1",
							  1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_depend");
	if (SPI_processed == 0)
		return;

	initStringInfo(&list);
	for (i = 0; i < SPI_processed && i < 10; i++)
		appendStringInfo(&list, "%s%s", i > 0 ? ", " : "",
						 SPI_getvalue(SPI_tuptable->vals[i],
									  SPI_tuptable->tupdesc, 1));
	if (SPI_processed > 10)
		appendStringInfoString(&list, ", ...");
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot drop tenant \"%s\" because objects outside its schema depend on it",
					t->name),
			 errdetail("Objects outside schema \"%s\": %s.", t->object_name, list.data),
			 errhint("Drop those objects first; tenant_mgr drops only what it created.")));
}

/*
 * tenant_drop(name, if_exists, force) returns bool
 *
 * A database tenant is detached in the caller's transaction and dropped by
 * the launcher after commit (dbtenant.c); force terminates other sessions
 * using it.
 * Drops the schema only if it carries tenant_mgr's marks (marker.c).  If
 * there is no such schema, the catalog row goes and whatever now has the
 * name is left alone.
 */
Datum
tenant_drop(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	bool		if_exists = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	bool		force = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	TmTenant   *t;
	Oid			nspoid;
	int			save_nestlevel;
	instr_time	start;

	INSTR_TIME_SET_CURRENT(start);
	tm_spi_connect();
	tm_tenant_lock(name);
	t = tm_tenant_fetch(name, if_exists);
	if (t == NULL)
	{
		ereport(NOTICE,
				(errmsg("tenant \"%s\" does not exist, skipping", name)));
		tm_spi_finish();
		PG_RETURN_BOOL(false);
	}
	if (tm_is_database(t->isolation))
	{
		if (strcmp(t->state, "creating") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("tenant \"%s\" is still being created", name),
					 errhint("Wait for it with tenant_mgr.tenant_wait('%s'), then drop it.", name)));
		if (!tm_dbtenant_detach(t, force))
			ereport(NOTICE,
					(errmsg("database of tenant \"%s\" no longer exists", name),
					 errdetail("Only its catalog row is removed.")));
		/* the launcher drops the database after commit and logs the event */
		tm_tenant_delete(name);
		tm_spi_finish();
		PG_RETURN_BOOL(true);
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
	}
	else
	{
		char	   *nspname = get_namespace_name(nspoid);

		tm_check_no_outside_dependents(t, nspoid);

		/* the cascade's list of dropped objects is noise here */
		save_nestlevel = NewGUCNestLevel();
		(void) set_config_option("client_min_messages", "warning",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
		if (SPI_execute(psprintf("DROP SCHEMA %s CASCADE",
								 quote_identifier(nspname)),
						false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not drop schema \"%s\"", nspname);
		AtEOXact_GUC(true, save_nestlevel);
	}

	tm_tenant_delete(name);
	tm_event_log(tm_run_id(), name, "drop", 0, "ok", NULL, tm_elapsed_ms(start));
	tm_spi_finish();
	PG_RETURN_BOOL(true);
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
	path = tm_search_path(t->object_name);
	(void) set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION,
							 is_local ? GUC_ACTION_LOCAL : GUC_ACTION_SET,
							 true, 0, false);
	tm_spi_finish();
	PG_RETURN_TEXT_P(cstring_to_text(GetConfigOption("search_path", false, false)));
}
