/*-------------------------------------------------------------------------
 *
 * run.c
 *		Fleet runs in the background: the leader executor and its helpers.
 *
 * A fleet run of tenant_migrate is carried out by executors in the control
 * database, never in the caller's transaction.  The leader records the run
 * (tenant_mgr.run) and its tenants (tenant_mgr.run_tenant, one row each,
 * "pending"), then works through them with helpers: schema tenants are
 * claimed from the pending rows by the leader and up to
 * tenant_mgr.max_workers - 1 helpers, each pulling many tenants (a worker
 * start costs more than one schema tenant's migration); database tenants
 * are migrated by one MIGRATE executor each in their own database, up to
 * tenant_mgr.max_workers at a time, driven by the leader.
 *
 * Each migration of each tenant commits on its own, with its ledger row,
 * its event and the catalog's version (invariant 1); no transaction spans
 * two tenants, and no lock outlives the migration that took it.  A lock
 * that cannot be had within the run's lock_timeout rolls back nothing but
 * that migration: the tenant goes back to the pending rows, to be tried
 * again after a jittered back-off, and is reported "skipped" once its
 * retries are spent.  One tenant's failure is recorded and the others go
 * on, unless the run stops on errors.  The run's rows are the queue, so a
 * run cut short by a crash is taken up again by the launcher: the ledgers
 * say what is done.
 *
 * Migrations commit asynchronously (the ledger row and the DDL still commit
 * together); the run's last transaction is synchronous, so whatever the run
 * reports is on disk before the caller hears of it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "tenant_mgr.h"

/* Distinguishes a run's lock from tenant locks (catalog.c) and others. */
#define TM_RUN_LOCK_FIELD4 0x746e

/* Below this many schema tenants per helper, starting one is not worth it. */
#define TM_TENANTS_PER_HELPER 20

/* What an executor of a run knows about it. */
typedef struct TmRun
{
	int64		id;
	Oid			requester;
	int64		target;
	bool		stop_on_error;
	int32		canary;
	bool		dry_run;
	int			lock_timeout_ms;
	int			lock_retries;
	int			statement_timeout_ms;
	List	   *migrations;
	TmExecTask *task;			/* this executor's own task */
} TmRun;

/* What a look for the next tenant of a run found. */
typedef enum TmClaim
{
	TM_CLAIMED,					/* a tenant to work on */
	TM_CLAIM_LATER,				/* only tenants waiting for a retry */
	TM_CLAIM_NONE				/* nothing left, or the run is stopping */
} TmClaim;

static SPIPlanPtr tm_plan_claim = NULL;
static SPIPlanPtr tm_plan_outcome = NULL;
static SPIPlanPtr tm_plan_going = NULL;

/* The tag of a run's lock, in this database's lock space. */
static void
tm_run_locktag(LOCKTAG *tag, int64 run_id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (run_id >> 32),
						 (uint32) run_id, TM_RUN_LOCK_FIELD4);
}

/*
 * Takes the run's session lock, which its leader holds as long as it lives:
 * the launcher resumes only runs whose lock is free.  False if another
 * leader has it.
 */
static bool
tm_run_lock_try(int64 run_id)
{
	LOCKTAG		tag;

	tm_run_locktag(&tag, run_id);
	return LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
}

static void
tm_run_unlock(int64 run_id)
{
	LOCKTAG		tag;

	tm_run_locktag(&tag, run_id);
	LockRelease(&tag, ExclusiveLock, true);
}

/* True while the run is "running" (neither stopping nor over). */
bool
tm_run_is_going(int64 run_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(run_id)};

	tm_catalog_exec_kept(&tm_plan_going, 0,
						 "SELECT 1 FROM tenant_mgr.run WHERE id = $1 AND state = 'running'",
						 1, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/* Sets the run "stopping": its executors take no more tenants. */
static void
tm_run_stop(TmRun *run, const char *message, bool cancelled)
{
	Oid			types[3] = {INT8OID, TEXTOID, BOOLOID};
	Datum		values[3];

	values[0] = Int64GetDatum(run->id);
	values[1] = CStringGetTextDatum(message);
	values[2] = BoolGetDatum(cancelled);
	tm_catalog_exec("UPDATE tenant_mgr.run SET state = 'stopping',"
					" message = coalesce(message, $2),"
					" cancelled_by = CASE WHEN $3 THEN requested_by ELSE cancelled_by END"
					" WHERE id = $1 AND state = 'running'",
					3, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * Records a new run from the leader's task: the run row and a pending row
 * for each tenant it takes, those the options select that are ready and
 * not at the target, in name order.
 */
static void
tm_run_record(TmExecTask *task)
{
	Oid			types[4] = {INT8OID, NAMEOID, INT8OID, JSONBOID};
	Datum		values[4];

	values[0] = Int64GetDatum(task->run_id);
	values[1] = tm_name_datum(GetUserNameFromId(task->requester, false));
	values[2] = Int64GetDatum(task->target);
	values[3] = DirectFunctionCall1(jsonb_in,
									CStringGetDatum(tm_task_text(task, task->options)));
	tm_catalog_exec("INSERT INTO tenant_mgr.run (id, requested_by, target, options)"
					" VALUES ($1, $2, $3, $4)",
					4, types, values, NULL, SPI_OK_INSERT);
	tm_catalog_exec("INSERT INTO tenant_mgr.run_tenant"
					" (run_id, tenant, ord, isolation, from_version)"
					" SELECT $1, t.name, row_number() OVER (ORDER BY t.name),"
					"        t.isolation, t.version"
					"   FROM tenant_mgr.tenant t"
					"  WHERE t.state = 'ready' AND t.version <> $3"
					"    AND ($4->'names' IS NULL OR t.name = ANY"
					"         (ARRAY(SELECT jsonb_array_elements_text($4->'names'))))"
					"    AND ($4->>'pattern' IS NULL OR t.name LIKE $4->>'pattern')"
					"    AND ($4->'metadata' IS NULL OR t.metadata @> ($4->'metadata'))",
					4, types, values, NULL, SPI_OK_INSERT);
}

/*
 * Reads what the run asks for and whom for; the requester must still exist
 * and may still run tenant_migrate (queued work re-checks rights).
 */
static void
tm_run_load(TmRun *run)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(run->id)};
	char	   *requested_by;

	tm_catalog_exec("SELECT r.target, r.requested_by::text,"
					" coalesce((r.options->>'stop_on_error')::boolean, false),"
					" coalesce((r.options->>'canary')::integer, 0),"
					" coalesce((r.options->>'dry_run')::boolean, false),"
					" coalesce((r.options->>'lock_timeout')::integer, 0),"
					" coalesce((r.options->>'lock_retries')::integer, 0),"
					" coalesce((r.options->>'statement_timeout')::integer, 0)"
					" FROM tenant_mgr.run r WHERE r.id = $1",
					1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("run " INT64_FORMAT " does not exist", run->id)));
	run->target = tm_get_int64(0, 1);
	requested_by = tm_get_text(0, 2);
	run->stop_on_error = tm_get_bool(0, 3);
	run->canary = tm_get_int32(0, 4);
	run->dry_run = tm_get_bool(0, 5);
	run->lock_timeout_ms = tm_get_int32(0, 6);
	run->lock_retries = tm_get_int32(0, 7);
	run->statement_timeout_ms = tm_get_int32(0, 8);

	run->requester = get_role_oid(requested_by, true);
	if (!OidIsValid(run->requester))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\", which started run " INT64_FORMAT ", no longer exists",
						requested_by, run->id)));
	if (!tm_may(run->requester, TM_FN_MIGRATE))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\", which started run " INT64_FORMAT ", may no longer run tenant_migrate",
						requested_by, run->id)));
	run->migrations = tm_migration_list();
}

/*
 * Claims the next pending tenant of the run of the given isolation, up to
 * max_ord in the run's order, for this executor.  A tenant waiting for a
 * retry is taken once its time has come.
 */
static TmClaim
tm_run_claim(TmRun *run, const char *isolation, int32 max_ord,
			 char **name, int *attempts)
{
	Oid			types[3] = {INT8OID, TEXTOID, INT4OID};
	Datum		values[3];
	TmClaim		result = TM_CLAIM_NONE;
	MemoryContext cxt = CurrentMemoryContext;

	values[0] = Int64GetDatum(run->id);
	values[1] = CStringGetTextDatum(isolation);
	values[2] = Int32GetDatum(max_ord);

	tm_xact_begin();
	if (run->task->cancel)
		tm_run_stop(run, "cancelled by its caller", true);
	/* only while the run is going; one statement, as it is once per tenant */
	tm_catalog_exec_kept(&tm_plan_claim, 0,
						 "UPDATE tenant_mgr.run_tenant SET status = 'running',"
						 " attempts = attempts + 1,"
						 " started_at = coalesce(started_at, clock_timestamp())"
						 " WHERE run_id = $1 AND tenant = ("
						 "  SELECT tenant FROM tenant_mgr.run_tenant"
						 "   WHERE run_id = $1 AND status = 'pending'"
						 "     AND isolation = $2 AND ord <= $3"
						 "     AND not_before <= clock_timestamp()"
						 "   ORDER BY ord LIMIT 1 FOR UPDATE SKIP LOCKED)"
						 " AND EXISTS (SELECT 1 FROM tenant_mgr.run"
						 "   WHERE id = $1 AND state = 'running')"
						 " RETURNING tenant, attempts",
						 3, types, values, NULL, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		*name = tm_get_text(0, 1);
		*attempts = tm_get_int32(0, 2);
		MemoryContextSwitchTo(old);
		result = TM_CLAIMED;
	}
	else if (tm_run_is_going(run->id))
	{
		tm_catalog_exec("SELECT 1 FROM tenant_mgr.run_tenant"
						" WHERE run_id = $1 AND status = 'pending'"
						" AND isolation = $2 AND ord <= $3 LIMIT 1",
						3, types, values, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
			result = TM_CLAIM_LATER;
	}
	tm_xact_commit();
	if (result == TM_CLAIMED)
		tm_pause_point("run:after-claim");
	return result;
}

/*
 * Records a tenant's outcome in the run: status, the version it is at (-1:
 * unknown, as the tenant was not found: the version it had when the run
 * began), and for a failure its SQLSTATE and message.  Inside a
 * transaction.
 */
static void
tm_run_outcome(TmRun *run, const char *tenant, const char *status,
			   int64 version, ErrorData *edata)
{
	Oid			types[6] = {INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', 'n', 'n'};

	values[0] = Int64GetDatum(run->id);
	values[1] = CStringGetTextDatum(tenant);
	values[2] = CStringGetTextDatum(status);
	values[3] = Int64GetDatum(version);
	if (edata)
	{
		values[4] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
		values[5] = CStringGetTextDatum(edata->message ? edata->message : "");
		nulls[4] = nulls[5] = ' ';
	}
	tm_catalog_exec_kept(&tm_plan_outcome, 0,
						 "UPDATE tenant_mgr.run_tenant SET status = $3,"
						 " to_version = CASE WHEN $4 < 0 THEN from_version ELSE $4 END,"
						 " sqlstate = $5, message = $6,"
						 " finished_at = clock_timestamp(),"
						 " duration = clock_timestamp() - started_at"
						 " WHERE run_id = $1 AND tenant = $2",
						 6, types, values, nulls, SPI_OK_UPDATE);
}

/*
 * A tenant whose lock could not be had goes back to the pending rows, to be
 * tried again after a back-off that doubles with each attempt, jittered so
 * that executors do not come back together; after its last retry it is
 * reported skipped.  Nothing of the migration was committed.
 */
static void
tm_run_lock_missed(TmRun *run, const char *tenant, int attempts,
				   int64 version, bool down, ErrorData *edata)
{
	tm_xact_begin();
	if (attempts <= run->lock_retries)
	{
		Oid			types[3] = {INT8OID, TEXTOID, FLOAT8OID};
		Datum		values[3];
		double		backoff_ms = 200.0 * (1 << Min(attempts - 1, 8));

		values[0] = Int64GetDatum(run->id);
		values[1] = CStringGetTextDatum(tenant);
		values[2] = Float8GetDatum(backoff_ms * (0.5 + pg_prng_double(&pg_global_prng_state)));
		tm_catalog_exec("UPDATE tenant_mgr.run_tenant SET status = 'pending',"
						" not_before = clock_timestamp() + $3 * interval '1 millisecond'"
						" WHERE run_id = $1 AND tenant = $2",
						3, types, values, NULL, SPI_OK_UPDATE);
	}
	else
	{
		tm_event_log(run->id, tenant, down ? TM_EV_DOWN : TM_EV_UP, 0,
					 TM_EV_SKIPPED, edata, 0);
		tm_run_outcome(run, tenant, "skipped", version, edata);
	}
	tm_xact_commit();
}

/*
 * Sets, for the current transaction, the settings each migration of a
 * fleet run runs under (executors of schema and database tenants alike).
 */
void
tm_migration_timeouts(int lock_timeout_ms, int statement_timeout_ms)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), "%d", lock_timeout_ms);
	(void) set_config_option("lock_timeout", buf, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	snprintf(buf, sizeof(buf), "%d", statement_timeout_ms);
	(void) set_config_option("statement_timeout", buf, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * Says in pg_stat_activity which tenant this executor is on (migrate.c adds
 * the migration).
 */
static void
tm_run_report_activity(const char *tenant)
{
	char	   *activity = psprintf("tenant \"%s\"", tenant);

	pgstat_report_activity(STATE_RUNNING, activity);
	pfree(activity);
}

/* A schema tenant of the run, and how far it got. */
typedef struct TmRunTenant
{
	TmRun	   *run;
	const char *name;
	TmTenant   *tenant;
	int64		current;
	TmStep	   *step;			/* the step being applied, if any */
	bool		finished;
	TmStep	   *nt;				/* a non-transactional step to run next */
	bool		nt_last;		/* it is the tenant's last step */
	bool		nt_in_effect;	/* it took effect before its ledger row */
	bool		session_locked; /* the tenant's lock is held across it */
} TmRunTenant;

/*
 * One transaction of a schema tenant: checks and locks it, plans, and
 * applies the first step with its ledger row, event and catalog version;
 * with nothing left to do, records the outcome.  A dry run applies every
 * step and leaves the rollback to the caller.
 */
static void
tm_run_schema_step(TmRunTenant *rt)
{
	TmRun	   *run = rt->run;
	TmTenant   *t;
	List	   *steps;
	Oid			nspoid;

	tm_migration_timeouts(run->lock_timeout_ms, run->statement_timeout_ms);
	rt->step = NULL;
	t = rt->tenant = tm_tenant_fetch(rt->name, false);
	rt->current = t->version;	/* until the ledger says */
	tm_tenant_require_ready(t);
	tm_check_acts_as_owner(t);
	tm_tenant_lock(t->name);
	nspoid = tm_schematenant_require(t);
	/* the tenant outlives this transaction's SPI memory, its schema too */
	t->schema = MemoryContextStrdup(tm_result_cxt(), t->schema);
	if (nspoid != t->object_oid)
		tm_tenant_set_oid(t->name, nspoid);	/* a stale OID */
	steps = tm_migration_plan(t, run->migrations, run->target, &rt->current);

	if (run->dry_run)
	{
		ListCell   *lc;

		foreach(lc, steps)
		{
			rt->step = lfirst(lc);
			if (!rt->step->migration->transactional)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("a dry run cannot apply non-transactional migration " INT64_FORMAT " (%s)",
								rt->step->migration->version, rt->step->migration->name),
						 errdetail("It runs outside a transaction, so it cannot be rolled back.")));
			tm_migration_apply(t, rt->step);
		}
		rt->step = NULL;
		rt->finished = true;
		return;
	}

	if (steps != NIL && !((TmStep *) linitial(steps))->migration->transactional)
	{
		/* run top-level between this transaction and the next */
		rt->step = rt->nt = linitial(steps);
		rt->nt_last = list_length(steps) == 1;
		tm_tenant_lock_session(MyDatabaseId, t->name);
		rt->session_locked = true;
		rt->nt_in_effect = tm_migration_nt_prepare(t, rt->nt);
		return;
	}
	if (steps != NIL)
	{
		rt->step = linitial(steps);
		tm_migration_apply(t, rt->step);
		tm_event_log(run->id, t->name, rt->step->up ? TM_EV_UP : TM_EV_DOWN,
					 rt->step->migration->version, TM_EV_OK, NULL, rt->step->ms);
		rt->current = tm_version_after(steps, list_head(steps), run->target);
		rt->finished = list_length(steps) == 1;
	}
	else
		rt->finished = true;
	if (rt->current != t->version || t->last_error != NULL)
		tm_tenant_set_version(t->name, rt->current, NULL);
	if (rt->finished)
		tm_run_outcome(run, t->name, "migrated", rt->current, NULL);
}

/*
 * The non-transactional step tm_run_schema_step found: run top-level
 * (unless a crash left it in effect without its ledger row), then checked
 * and recorded in a transaction of its own, with its event and the
 * catalog's version; the tenant's session lock covers both.
 */
static void
tm_run_schema_nt(TmRunTenant *rt)
{
	TmRun	   *run = rt->run;
	TmTenant   *t = rt->tenant;
	TmStep	   *step = rt->nt;

	if (!rt->nt_in_effect)
		tm_migration_nt_run(t, step, run->lock_timeout_ms, run->statement_timeout_ms);
	tm_xact_begin();
	tm_migration_nt_finish(t, step);
	tm_event_log(run->id, t->name, step->up ? TM_EV_UP : TM_EV_DOWN,
				 step->migration->version, TM_EV_OK, NULL, step->ms);
	rt->current = step->up ? step->migration->version :
		(rt->nt_last ? run->target : rt->current);
	if (!step->up && !rt->nt_last)
	{
		int64		below = 0;
		ListCell   *lc;

		/* reverted: the tenant is at the highest applied version below */
		foreach(lc, run->migrations)
		{
			TmMigration *m = lfirst(lc);

			if (m->version < step->migration->version)
				below = m->version;
		}
		rt->current = below;
	}
	tm_tenant_set_version(t->name, rt->current, NULL);
	rt->finished = rt->nt_last;
	if (rt->finished)
		tm_run_outcome(run, t->name, "migrated", rt->current, NULL);
	tm_xact_commit();
	tm_tenant_unlock_session(MyDatabaseId, t->name);
	rt->session_locked = false;
	rt->nt = NULL;
}

/*
 * Works on one claimed schema tenant until it is at the target, failed,
 * went back for a lock, or the run stops: one transaction per migration.
 */
static void
tm_run_schema_tenant(TmRun *run, const char *name, int attempts)
{
	TmRunTenant rt;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "tenant_mgr run tenant",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

	memset(&rt, 0, sizeof(rt));
	rt.run = run;
	rt.name = name;

	while (!rt.finished)
	{
		ErrorData  *volatile edata = NULL;	/* set in PG_CATCH */
		volatile bool going = true;

		tm_run_report_activity(name);
		tm_xact_begin();
		PG_TRY();
		{
			if (run->task->cancel)
				tm_run_stop(run, "cancelled by its caller", true);
			/* between migrations, a stopped run stops this tenant too */
			if (rt.tenant != NULL && !tm_run_is_going(run->id))
				going = false;
			else
				tm_run_schema_step(&rt);
			if (run->dry_run)
			{
				/* nothing a dry run did stays */
				tm_xact_abort();
				tm_xact_begin();
				tm_run_outcome(run, name, "checked", rt.current, NULL);
			}
			else if (!going)
				tm_run_outcome(run, name, "stopped", rt.current, NULL);
			tm_xact_commit();
			tm_pause_point("migrate:after-commit");
			if (rt.nt)
				tm_run_schema_nt(&rt);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			tm_xact_abort();
			/* a top-level statement may have ended in another identity */
			SetUserIdAndSecContext(run->requester, SECURITY_LOCAL_USERID_CHANGE);
			if (rt.session_locked)
				tm_tenant_unlock_session(MyDatabaseId, name);
			rt.session_locked = false;
			rt.nt = NULL;
		}
		PG_END_TRY();
		if (!going)
			break;
		if (edata == NULL)
			continue;

		if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
			tm_run_lock_missed(run, name, attempts,
							   rt.tenant ? rt.tenant->version : 0,
							   run->target < (rt.tenant ? rt.tenant->version : 0),
							   edata);
		else
		{
			bool		down = rt.step ? !rt.step->up :
				run->target < (rt.tenant ? rt.tenant->version : 0);

			tm_xact_begin();
			if (!run->dry_run)
			{
				tm_event_log(run->id, name, down ? TM_EV_DOWN : TM_EV_UP,
							 rt.step ? rt.step->migration->version : 0,
							 TM_EV_FAILED, edata, 0);
				if (rt.tenant)
					tm_tenant_set_version(name, rt.current, edata->message);
			}
			tm_run_outcome(run, name, "failed", rt.tenant ? rt.current : -1, edata);
			if (run->stop_on_error || run->canary > 0)
				tm_run_stop(run, psprintf("tenant \"%s\" failed", name), false);
			tm_xact_commit();
		}
		break;
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
}

/* Works through the run's schema tenants, up to max_ord, until none is left. */
static void
tm_run_schemas(TmRun *run, int32 max_ord)
{
	for (;;)
	{
		char	   *name = NULL;
		int			attempts = 0;
		TmClaim		claim = tm_run_claim(run, "schema", max_ord, &name, &attempts);

		if (claim == TM_CLAIM_NONE)
			break;
		if (claim == TM_CLAIMED)
			tm_run_schema_tenant(run, name, attempts);
		else
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 50L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* A database tenant of the run, with the executor migrating it. */
typedef struct TmRunDb
{
	char	   *name;
	int			attempts;
	TmTenant   *tenant;
	TmExecRun  *exec;
} TmRunDb;

/* What starting the executor of a database tenant came to. */
typedef enum TmDbStart
{
	TM_DB_STARTED,
	TM_DB_FAILED,				/* recorded as the tenant's outcome */
	TM_DB_NO_SLOT				/* back to the pending rows */
} TmDbStart;

/* Times a tenant is claimed again for want of a worker slot. */
#define TM_SLOT_ATTEMPTS 30

/*
 * Starts the MIGRATE executor of a claimed database tenant.  A tenant that
 * cannot be migrated has its failure recorded; with no worker slot free it
 * goes back to the pending rows for a while.
 */
static TmDbStart
tm_run_db_start(TmRun *run, TmRunDb *db)
{
	ErrorData  *volatile edata = NULL;
	volatile Oid dboid = InvalidOid;
	MemoryContext cxt = CurrentMemoryContext;

	db->tenant = NULL;
	db->exec = NULL;
	tm_xact_begin();
	PG_TRY();
	{
		db->tenant = tm_tenant_fetch(db->name, false);
		tm_tenant_require_ready(db->tenant);
		tm_check_acts_as_owner(db->tenant);
		dboid = tm_dbtenant_require(db->tenant);
		if (dboid != db->tenant->object_oid)
			tm_tenant_set_oid(db->name, dboid);	/* a stale OID */
		tm_xact_commit();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		tm_xact_abort();
	}
	PG_END_TRY();

	if (edata)
	{
		tm_xact_begin();
		tm_event_log(run->id, db->name, TM_EV_UP, 0, TM_EV_FAILED, edata, 0);
		tm_run_outcome(run, db->name, "failed",
					   db->tenant ? db->tenant->version : -1, edata);
		if (run->stop_on_error || run->canary > 0)
			tm_run_stop(run, psprintf("tenant \"%s\" failed", db->name), false);
		tm_xact_commit();
		return TM_DB_FAILED;
	}

	db->exec = tm_exec_prepare(TM_EXEC_MIGRATE, dboid, db->tenant, run->migrations);
	db->exec->task->target = run->target;
	db->exec->task->run_id = run->id;
	db->exec->task->dry_run = run->dry_run;
	db->exec->task->control_db = MyDatabaseId;
	db->exec->task->requester = run->requester;
	db->exec->task->lock_timeout_ms = run->lock_timeout_ms;
	db->exec->task->statement_timeout_ms = run->statement_timeout_ms;
	if (tm_exec_launch(db->exec))
		return TM_DB_STARTED;

	tm_exec_release(db->exec);
	db->exec = NULL;
	tm_xact_begin();
	if (db->attempts >= TM_SLOT_ATTEMPTS)
	{
		edata = palloc0(sizeof(ErrorData));
		edata->sqlerrcode = ERRCODE_INSUFFICIENT_RESOURCES;
		edata->message = pstrdup("could not start a tenant_mgr executor: all background worker slots are in use");
		tm_event_log(run->id, db->name, TM_EV_UP, 0, TM_EV_FAILED, edata, 0);
		tm_run_outcome(run, db->name, "failed", db->tenant->version, edata);
		tm_xact_commit();
		return TM_DB_FAILED;
	}
	tm_catalog_exec(psprintf("UPDATE tenant_mgr.run_tenant SET status = 'pending',"
							 " not_before = clock_timestamp() + interval '1 second'"
							 " WHERE run_id = " INT64_FORMAT " AND tenant = %s",
							 run->id, quote_literal_cstr(db->name)),
					0, NULL, NULL, NULL, SPI_OK_UPDATE);
	tm_xact_commit();
	return TM_DB_NO_SLOT;
}

/*
 * Records what the MIGRATE executor of a database tenant did: an event per
 * step, the catalog's version, and the tenant's outcome (a lock it could
 * not get: back to the pending rows).
 */
static void
tm_run_db_finish(TmRun *run, TmRunDb *db)
{
	TmExecTask *task = db->exec->task;
	ErrorData  *edata;
	bool		lock_missed;

	tm_exec_wait(db->exec);		/* returns at once; marks silent deaths */
	edata = tm_exec_error(task);
	lock_missed = edata && edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;

	tm_xact_begin();
	if (!run->dry_run)
	{
		ListCell   *lc;

		foreach(lc, tm_exec_steps(task, run->migrations))
		{
			TmStep	   *s = lfirst(lc);

			tm_event_log(run->id, db->name, s->up ? TM_EV_UP : TM_EV_DOWN,
						 s->migration->version, TM_EV_OK, NULL, s->ms);
		}
		if (edata && !lock_missed)
			tm_event_log(run->id, db->name,
						 task->failing && !task->failing_up ? TM_EV_DOWN : TM_EV_UP,
						 task->failing, TM_EV_FAILED, edata, 0);
		if ((edata && !lock_missed) || task->version != db->tenant->version ||
			db->tenant->last_error)
			tm_tenant_set_version(db->name, task->version,
								  edata && !lock_missed ? edata->message : NULL);
	}
	if (lock_missed)
		;						/* below, once this is committed */
	else if (edata)
	{
		tm_run_outcome(run, db->name, "failed", task->version, edata);
		if (run->stop_on_error || run->canary > 0)
			tm_run_stop(run, psprintf("tenant \"%s\" failed", db->name), false);
	}
	else if (run->dry_run)
		tm_run_outcome(run, db->name, "checked", task->version, NULL);
	else
		tm_run_outcome(run, db->name,
					   task->version == run->target ? "migrated" : "stopped",
					   task->version, NULL);
	tm_xact_commit();

	/* nothing of the step that waited was committed: try it again later */
	if (lock_missed)
		tm_run_lock_missed(run, db->name, db->attempts, task->version,
						   run->target < task->version, edata);
}

/* How often a leader waiting for executors looks whether its run stopped. */
#define TM_RUN_GOING_CHECK_MS 100

/*
 * Migrates the run's database tenants, up to max_ord, at most
 * tenant_mgr.max_workers executors at a time.  An executor's result is
 * taken as soon as it has reported (it sets our latch), but its place goes
 * to the next tenant only once it has exited (the postmaster sets our
 * latch), so that the run never has more executors than that.  No
 * executor of the run is left when this returns, so that whatever the
 * caller does next finds the tenants' databases and locks free.
 */
static void
tm_run_databases(TmRun *run, int32 max_ord)
{
	int			max = Max(tm_max_workers, 1);
	TmRunDb    *slots = palloc0(sizeof(TmRunDb) * max);
	List	   *exiting = NIL;
	int			active = 0;
	bool		more = true;
	TimestampTz checked = GetCurrentTimestamp();
	ListCell   *lc;

	for (;;)
	{
		bool		later = false;
		int			i;

		/* collect those that have reported */
		for (i = 0; i < max; i++)
		{
			if (slots[i].exec == NULL)
				continue;
			if (run->task->cancel)
				slots[i].exec->task->cancel = true;
			if (!tm_exec_reported(slots[i].exec))
				continue;
			tm_run_db_finish(run, &slots[i]);
			exiting = lappend(exiting, slots[i].exec->handle);
			tm_exec_release(slots[i].exec);
			slots[i].exec = NULL;
			active--;
			more = true;
		}

		/* forget those that have exited */
		foreach(lc, exiting)
		{
			pid_t		pid;

			if (GetBackgroundWorkerPid(lfirst(lc), &pid) == BGWH_STOPPED)
				exiting = foreach_delete_current(exiting, lc);
		}

		/* fill free slots, counting those still exiting */
		for (i = 0; i < max && more; i++)
		{
			TmClaim		claim;
			TmDbStart	start;

			if (slots[i].exec != NULL)
				continue;
			if (active + list_length(exiting) >= max)
			{
				later = true;	/* one exits: the postmaster sets our latch */
				more = false;
				break;
			}
			claim = tm_run_claim(run, "database", max_ord, &slots[i].name,
								 &slots[i].attempts);
			if (claim != TM_CLAIMED)
			{
				later = claim == TM_CLAIM_LATER;
				more = false;
				break;
			}
			start = tm_run_db_start(run, &slots[i]);
			if (start == TM_DB_STARTED)
				active++;
			else if (start == TM_DB_NO_SLOT)
			{
				later = true;	/* wait for a slot, ours or another's */
				more = false;
				break;
			}
		}

		if (more && active < max)
			continue;			/* a tenant failed to start: fill its slot */
		if (active == 0 && !more && !later)
			break;

		/* a stopped run: executors stop after their migration */
		if (active > 0 &&
			TimestampDifferenceExceeds(checked, GetCurrentTimestamp(),
									   TM_RUN_GOING_CHECK_MS))
		{
			bool		going;

			tm_xact_begin();
			going = tm_run_is_going(run->id) && !run->task->cancel;
			tm_xact_commit();
			for (i = 0; i < max && !going; i++)
				if (slots[i].exec)
					slots[i].exec->task->cancel = true;
			checked = GetCurrentTimestamp();
		}

		/* executors set our latch when they report, the postmaster when they exit */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 active == 0 ? 50L : TM_RUN_GOING_CHECK_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (later)
			more = true;
	}

	foreach(lc, exiting)
		(void) WaitForBackgroundWorkerShutdown(lfirst(lc));
	list_free(exiting);
	pfree(slots);
}

/* How many pending tenants of an isolation the run has. */
static int64
tm_run_pending(TmRun *run, const char *isolation)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	int64		n;

	values[0] = Int64GetDatum(run->id);
	values[1] = CStringGetTextDatum(isolation);
	tm_xact_begin();
	tm_catalog_exec("SELECT count(*) FROM tenant_mgr.run_tenant"
					" WHERE run_id = $1 AND isolation = $2 AND status = 'pending'",
					2, types, values, NULL, SPI_OK_SELECT);
	n = tm_get_int64(0, 1);
	tm_xact_commit();
	return n;
}

/* True if a tenant of the run failed (or, with skipped, could not be had). */
static bool
tm_run_any_failed(TmRun *run)
{
	bool		failed;

	tm_xact_begin();
	tm_catalog_exec(psprintf("SELECT 1 FROM tenant_mgr.run_tenant"
							 " WHERE run_id = " INT64_FORMAT
							 " AND status IN ('failed', 'skipped') LIMIT 1", run->id),
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	failed = SPI_processed > 0;
	tm_xact_commit();
	return failed;
}

/*
 * Starts helpers for the run's schema tenants, as many as the tenants
 * justify, up to tenant_mgr.max_workers - 1 (the leader works too).
 */
static List *
tm_run_start_helpers(TmRun *run)
{
	int64		pending = tm_run_pending(run, "schema");
	int64		wanted = Min(pending / TM_TENANTS_PER_HELPER, tm_max_workers - 1);
	List	   *helpers = NIL;

	for (int64 i = 0; i < wanted; i++)
	{
		TmExecRun  *h = tm_exec_prepare(TM_EXEC_RUN_HELP, MyDatabaseId, NULL, NIL);

		h->task->run_id = run->id;
		h->task->requester = run->requester;
		if (!tm_exec_launch(h))
		{
			tm_exec_release(h);
			break;				/* the leader and those started do the rest */
		}
		helpers = lappend(helpers, h);
	}
	return helpers;
}

/* Waits for the helpers to exit, passing on a cancel, and releases them. */
static void
tm_run_wait_helpers(TmRun *run, List *helpers)
{
	ListCell   *lc;

	foreach(lc, helpers)
	{
		TmExecRun  *h = lfirst(lc);

		for (;;)
		{
			pid_t		pid;
			BgwHandleStatus status = GetBackgroundWorkerPid(h->handle, &pid);

			if (status == BGWH_STOPPED || status == BGWH_POSTMASTER_DIED)
				break;
			if (run->task->cancel)
				h->task->cancel = true;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 100L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		if (h->task->state == TM_EXEC_FAILED)
			ereport(LOG,
					(errmsg("tenant_mgr helper of run " INT64_FORMAT " failed: %s",
							run->id, tm_task_text(h->task, h->task->message))));
		tm_exec_release(h);
	}
}

/*
 * Tenants a dead helper had claimed go back to the pending rows; true if
 * there were any.  Only once no helper lives.
 */
static bool
tm_run_reclaim(TmRun *run)
{
	bool		found;

	tm_xact_begin();
	tm_catalog_exec(psprintf("UPDATE tenant_mgr.run_tenant SET status = 'pending'"
							 " WHERE run_id = " INT64_FORMAT " AND status = 'running'",
							 run->id),
					0, NULL, NULL, NULL, SPI_OK_UPDATE);
	found = SPI_processed > 0;
	tm_xact_commit();
	return found;
}

/*
 * Ends the run: tenants it did not get to are "stopped", and the run is
 * done, failed or cancelled.  Synchronous, so that everything the run
 * committed before is on disk when its caller reads the outcome.
 */
static void
tm_run_finish(TmRun *run, const char *failure)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', failure ? ' ' : 'n'};

	values[0] = Int64GetDatum(run->id);
	values[1] = failure ? CStringGetTextDatum(failure) : (Datum) 0;
	SetConfigOption("synchronous_commit", "on", PGC_USERSET, PGC_S_SESSION);
	tm_xact_begin();
	tm_catalog_exec("UPDATE tenant_mgr.run_tenant SET status = 'stopped'"
					" WHERE run_id = $1 AND status IN ('pending', 'running')",
					1, types, values, NULL, SPI_OK_UPDATE);
	tm_catalog_exec("UPDATE tenant_mgr.run r SET finished_at = clock_timestamp(),"
					" state = CASE"
					"   WHEN r.cancelled_by IS NOT NULL THEN 'cancelled'"
					"   WHEN $2 IS NOT NULL OR EXISTS (SELECT 1 FROM tenant_mgr.run_tenant rt"
					"        WHERE rt.run_id = r.id"
					"          AND rt.status IN ('failed', 'skipped', 'stopped'))"
					"   THEN 'failed' ELSE 'done' END,"
					" message = coalesce($2, r.message)"
					" WHERE r.id = $1",
					2, types, values, nulls, SPI_OK_UPDATE);
	tm_xact_commit();
}

/* Common start of a run's executors: who they act for, how they commit. */
static void
tm_run_begin(TmRun *run, TmExecTask *task)
{
	char	   *appname = psprintf("tenant_mgr run " INT64_FORMAT, task->run_id);

	memset(run, 0, sizeof(TmRun));
	run->id = task->run_id;
	run->task = task;
	pgstat_report_appname(appname);
	SetConfigOption("application_name", appname, PGC_USERSET, PGC_S_SESSION);
	/* each migration commits with its ledger row; the run's end flushes */
	SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION);
}

/* Loads the run and acts as its requester from now on. */
static void
tm_run_act_for_requester(TmRun *run)
{
	tm_xact_begin();
	tm_run_load(run);
	tm_xact_commit();
	SetUserIdAndSecContext(run->requester, SECURITY_LOCAL_USERID_CHANGE);
}

/*
 * The leader of a run: records it (or takes up an interrupted one), tells
 * its driver, and works through the tenants with helpers and executors.
 */
void
tm_run_lead(TmExecTask *task)
{
	TmRun		run;
	ErrorData  *volatile edata = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	tm_run_begin(&run, task);
	if (!tm_run_lock_try(run.id))
	{
		/* another leader has it: nothing to do here */
		task->started = true;
		return;
	}

	/* the run is on disk before its id is given out */
	SetConfigOption("synchronous_commit", "on", PGC_USERSET, PGC_S_SESSION);
	tm_xact_begin();
	if (!task->resume)
		tm_run_record(task);
	else
		tm_catalog_exec(psprintf("UPDATE tenant_mgr.run_tenant SET status = 'pending'"
								 " WHERE run_id = " INT64_FORMAT " AND status = 'running'",
								 run.id),
						0, NULL, NULL, NULL, SPI_OK_UPDATE);
	tm_xact_commit();
	SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION);
	pg_write_barrier();
	task->started = true;
	SetLatch(&ProcGlobal->allProcs[task->driver_procno].procLatch);

	PG_TRY();
	{
		tm_run_act_for_requester(&run);

		/* a canary: the first tenants alone, and no further if one fails */
		if (run.canary > 0)
		{
			tm_run_schemas(&run, run.canary);
			tm_run_databases(&run, run.canary);
			if (tm_run_any_failed(&run))
			{
				tm_xact_begin();
				tm_run_stop(&run, psprintf("a tenant among the first %d (the canary) failed",
										   run.canary), false);
				tm_xact_commit();
			}
		}

		do
		{
			List	   *helpers = tm_run_start_helpers(&run);

			tm_run_schemas(&run, PG_INT32_MAX);
			tm_run_wait_helpers(&run, helpers);
		} while (tm_run_reclaim(&run));
		tm_run_databases(&run, PG_INT32_MAX);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (IsTransactionState())
			tm_xact_abort();
		tm_exec_release_all();	/* executors of database tenants */
	}
	PG_END_TRY();

	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, 0);
	tm_run_finish(&run, edata ? edata->message : NULL);
	tm_run_unlock(run.id);
}

/* A helper of a run: schema tenants, until none is left. */
void
tm_run_help(TmExecTask *task)
{
	TmRun		run;

	tm_run_begin(&run, task);
	tm_run_act_for_requester(&run);
	tm_run_schemas(&run, PG_INT32_MAX);
}

/*
 * For the launcher: runs left "running" or "stopping" by a crash (no
 * leader holds their lock) are taken up again by a new leader, which
 * continues from the pending rows.
 */
void
tm_runs_resume(void)
{
	List	   *ids = NIL;
	ListCell   *lc;
	uint64		i;

	tm_xact_begin();
	if (!tm_catalog_has_runs())
	{
		tm_xact_commit();
		return;					/* a 1.0 catalog has no runs */
	}
	tm_catalog_exec("SELECT id FROM tenant_mgr.run WHERE state IN ('running', 'stopping')"
					" ORDER BY id",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		int64		id = tm_get_int64(i, 1);
		MemoryContext old = MemoryContextSwitchTo(tm_result_cxt());

		ids = lappend(ids, palloc(sizeof(int64)));
		*(int64 *) llast(ids) = id;
		MemoryContextSwitchTo(old);
	}
	tm_xact_commit();

	foreach(lc, ids)
	{
		int64		id = *(int64 *) lfirst(lc);
		TmExecRun  *lead;

		if (!tm_run_lock_try(id))
			continue;			/* its leader lives */
		tm_run_unlock(id);

		lead = tm_exec_prepare(TM_EXEC_RUN_LEAD, MyDatabaseId, NULL, NIL);
		lead->task->run_id = id;
		lead->task->resume = true;
		if (tm_exec_launch(lead))
		{
			/* wait until it holds the run's lock, then leave it to it */
			for (int n = 0; n < 600 && !lead->task->started; n++)
			{
				pid_t		pid;

				if (GetBackgroundWorkerPid(lead->handle, &pid) == BGWH_STOPPED)
					break;
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 100L, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
			ereport(LOG,
					(errmsg("tenant_mgr resumed run " INT64_FORMAT, id)));
		}
		tm_exec_release(lead);
	}
}

/*
 * Forgets runs: the rows naming tenant (any age, and its name in the
 * options of runs that listed it) when tenant is given, else the finished
 * runs older than older_than (an interval Datum).  Runs going on are kept.
 * Returns how many rows went.
 */
int64
tm_runs_prune(const char *tenant, Datum older_than)
{
	Oid			types[1];
	Datum		values[1];
	int64		removed;

	if (!tm_catalog_has_runs())
		return 0;				/* a 1.0 catalog has no runs */
	if (tenant)
	{
		types[0] = TEXTOID;
		values[0] = CStringGetTextDatum(tenant);
		tm_catalog_exec("DELETE FROM tenant_mgr.run_tenant rt WHERE rt.tenant = $1"
						" AND rt.status NOT IN ('pending', 'running')",
						1, types, values, NULL, SPI_OK_DELETE);
		removed = (int64) SPI_processed;
		tm_catalog_exec("UPDATE tenant_mgr.run SET options = jsonb_set(options, '{names}',"
						" (SELECT coalesce(jsonb_agg(n), '[]') FROM jsonb_array_elements(options->'names') n"
						"   WHERE n <> to_jsonb($1)))"
						" WHERE options->'names' ? $1",
						1, types, values, NULL, SPI_OK_UPDATE);
	}
	else
	{
		types[0] = INTERVALOID;
		values[0] = older_than;
		tm_catalog_exec("DELETE FROM tenant_mgr.run"
						" WHERE state NOT IN ('running', 'stopping')"
						" AND finished_at < pg_catalog.now() - $1",
						1, types, values, NULL, SPI_OK_DELETE);
		removed = (int64) SPI_processed;
	}
	return removed;
}
