/*-------------------------------------------------------------------------
 *
 * fleet.c
 *		The engine of tenant_migrate: target resolution, one tenant, every
 *		tenant, and a result row per tenant and step.
 *
 * One tenant: errors propagate to the caller and change nothing (but for a
 * database tenant, whose executor commits each step inside the tenant).
 *
 * Every tenant: schema tenants are migrated in this backend, each step in a
 * subtransaction, so that one tenant's failure is recorded (event log,
 * catalog last_error, a result row) and the others go on; database tenants
 * by one executor each, up to tenant_mgr.max_workers at a time.  A tenant
 * the catalog already shows at the target is answered from the catalog,
 * untouched.  A tenant locked by another transaction is reported "skipped".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "tenant_mgr.h"

/* What a run reports to, and with. */
typedef struct TmReport
{
	ReturnSetInfo *rsinfo;
	int64		run_id;
	List	   *migrations;
	int64		target;
} TmReport;

/* State of one schema tenant's migration, shared with subtransactions. */
typedef struct TmMigrateState
{
	TmTenant   *tenant;
	TmReport   *report;
	List	   *steps;
	int64		current;
	TmStep	   *step;
} TmMigrateState;

static int64 tm_resolve_target(List *migrations, bool has_target, int64 target);
static void tm_put_row(TmReport *r, const char *tenant, const TmStep *step,
					   const char *status, const ErrorData *edata);
static bool tm_migrate_schema_tenant(TmMigrateState *ms, bool fleet);
static void tm_migrate_database_tenant(TmTenant *t, TmReport *r);
static void tm_report_db_run(TmTenant *t, TmExecRun *run, TmReport *r);
static void tm_migrate_database_fleet(List *tenants, TmReport *r,
									  bool stop_on_error);
static void tm_migrate_all(TmReport *r, bool stop_on_error);

/*
 * Migrates tenant name, or every tenant when name is NULL, towards target
 * (the latest registered version unless has_target), writing result rows
 * into rsinfo.  Expects an SPI connection.
 */
void
tm_fleet_migrate(const char *name, bool has_target, int64 target,
				 bool stop_on_error, ReturnSetInfo *rsinfo)
{
	TmReport	r;

	r.rsinfo = rsinfo;
	r.migrations = tm_migration_list();
	r.target = tm_resolve_target(r.migrations, has_target, target);
	r.run_id = tm_run_id();

	if (name == NULL)
		tm_migrate_all(&r, stop_on_error);
	else
	{
		TmTenant   *t = tm_tenant_fetch(name, false);

		tm_tenant_require_ready(t);
		if (t->isolation == TM_DATABASE)
			tm_migrate_database_tenant(t, &r);
		else
		{
			TmMigrateState ms = {t, &r, NIL, t->version, NULL};

			(void) tm_migrate_schema_tenant(&ms, false);
		}
	}
}

/* The target: the latest version by default, else a registered one or 0. */
static int64
tm_resolve_target(List *migrations, bool has_target, int64 target)
{
	ListCell   *lc;
	bool		found = false;

	if (!has_target)
		return migrations ? ((TmMigration *) llast(migrations))->version : 0;
	if (target < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target version must not be negative")));
	if (target == 0)
		return 0;
	foreach(lc, migrations)
		found |= ((TmMigration *) lfirst(lc))->version == target;
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration " INT64_FORMAT " does not exist", target),
				 errhint("The target is a registered version, or 0 to revert every migration.")));
	return target;
}

/* One result row of tenant_migrate. */
static void
tm_put_row(TmReport *r, const char *tenant, const TmStep *step,
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
	tuplestore_putvalues(r->rsinfo->setResult, r->rsinfo->setDesc, values, nulls);
}

/* Reports a step: its event and its result row. */
static void
tm_report_step(TmReport *r, const char *tenant, TmStep *s, ErrorData *edata)
{
	tm_event_log(r->run_id, tenant, s->up ? TM_EV_UP : TM_EV_DOWN,
				 s->migration->version, edata ? TM_EV_FAILED : TM_EV_OK,
				 edata, s->ms);
	tm_put_row(r, tenant, s,
			   edata ? "failed" : (s->up ? "applied" : "reverted"), edata);
}

/* Reports a tenant that failed or was skipped before any step. */
static void
tm_report_tenant(TmReport *r, const char *tenant, bool down, ErrorData *edata)
{
	bool		skipped = edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;

	tm_event_log(r->run_id, tenant, down ? TM_EV_DOWN : TM_EV_UP, 0,
				 skipped ? TM_EV_SKIPPED : TM_EV_FAILED, edata, 0);
	tm_put_row(r, tenant, NULL, skipped ? "skipped" : "failed", edata);
}

static void
tm_lock_and_plan(void *arg)
{
	TmMigrateState *ms = (TmMigrateState *) arg;
	Oid			nspoid;

	tm_check_acts_as_owner(ms->tenant);
	tm_tenant_lock(ms->tenant->name);
	nspoid = tm_schematenant_require(ms->tenant);
	if (nspoid != ms->tenant->object_oid)
		tm_tenant_set_oid(ms->tenant->name, nspoid);	/* a stale OID */
	ms->steps = tm_migration_plan(ms->tenant, ms->report->migrations,
								  ms->report->target, &ms->current);
}

static void
tm_apply_step(void *arg)
{
	TmMigrateState *ms = (TmMigrateState *) arg;

	tm_migration_apply(ms->tenant, ms->step);
}

/* Runs fn(arg): in a subtransaction when errors are caught, else plainly. */
static ErrorData *
tm_run_part(void (*fn) (void *), void *arg, bool catch)
{
	if (catch)
		return tm_try(fn, arg);
	fn(arg);
	return NULL;
}

/*
 * Migrates one schema tenant, in the caller's transaction.  In a fleet run
 * every part runs in a subtransaction and a failure is reported, not
 * raised (but for cancels); returns false if the tenant failed, true if it
 * succeeded or was skipped.  Alone, errors propagate.
 */
static bool
tm_migrate_schema_tenant(TmMigrateState *ms, bool fleet)
{
	const char *name = ms->tenant->name;
	TmReport   *r = ms->report;
	ErrorData  *edata;
	ListCell   *lc;

	edata = tm_run_part(tm_lock_and_plan, ms, fleet);
	if (edata)
	{
		tm_report_tenant(r, name, r->target < ms->tenant->version, edata);
		if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
			return true;
		tm_tenant_set_version(name, ms->tenant->version, edata->message);
		return false;
	}

	foreach(lc, ms->steps)
	{
		instr_time	start;

		ms->step = lfirst(lc);
		INSTR_TIME_SET_CURRENT(start);
		edata = tm_run_part(tm_apply_step, ms, fleet);
		if (edata)
			ms->step->ms = tm_elapsed_ms(start);
		tm_report_step(r, name, ms->step, edata);
		if (edata)
			break;
		ms->current = tm_version_after(ms->steps, lc, r->target);
	}
	/* alone, the catalog changes only when reality differs from it */
	if (fleet || ms->steps != NIL || ms->current != ms->tenant->version)
		tm_tenant_set_version(name, ms->current, edata ? edata->message : NULL);
	return edata == NULL;
}

/*
 * Migrates one database tenant through its executor; the executor's error,
 * once reported, is raised.
 */
static void
tm_migrate_database_tenant(TmTenant *t, TmReport *r)
{
	TmExecRun  *run;
	bool		launched;

	tm_require_control_database();
	tm_check_acts_as_owner(t);
	tm_tenant_lock(t->name);
	run = tm_dbtenant_migrate_start(t, r->migrations, r->target, &launched);
	if (!launched)
		tm_exec_run(run);		/* raises the out-of-slots error */
	tm_exec_wait(run);
	tm_report_db_run(t, run, r);
	tm_exec_raise(run);
	tm_exec_release(run);
}

/*
 * Records what the MIGRATE executor of a database tenant did: result rows,
 * events, and the catalog's copy of the version its ledger now has.
 */
static void
tm_report_db_run(TmTenant *t, TmExecRun *run, TmReport *r)
{
	ErrorData  *edata = tm_exec_error(run->task);
	ListCell   *lc;

	foreach(lc, tm_exec_steps(run->task, r->migrations))
		tm_report_step(r, t->name, lfirst(lc), NULL);
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
					 failed && !failed->up ? TM_EV_DOWN : TM_EV_UP,
					 failed ? failed->migration->version : 0, TM_EV_FAILED,
					 edata, 0);
		tm_put_row(r, t->name, failed, "failed", edata);
	}
	if (edata || run->task->version != t->version)
		tm_tenant_set_version(t->name, run->task->version,
							  edata ? edata->message : NULL);
}

static void
tm_lock_for_migration(void *arg)
{
	TmTenant   *t = (TmTenant *) arg;

	tm_check_acts_as_owner(t);
	tm_tenant_lock(t->name);
}

/*
 * Migrates every tenant that is ready and not at the target: schema tenants
 * first, one by one, then database tenants in parallel.
 */
static void
tm_migrate_all(TmReport *r, bool stop_on_error)
{
	MemoryContext tenant_cxt = AllocSetContextCreate(CurrentMemoryContext,
													 "tenant_mgr migrate",
													 ALLOCSET_DEFAULT_SIZES);
	List	   *databases = NIL;
	List	   *locked = NIL;
	ListCell   *lc;

	foreach(lc, tm_tenant_list())
	{
		TmTenant   *t = lfirst(lc);
		TmMigrateState ms = {t, r, NIL, t->version, NULL};
		MemoryContext oldcxt;
		bool		ok;

		/* the catalog answers for tenants with nothing to do */
		if (t->version == r->target || t->state != TM_READY)
			continue;
		if (t->isolation == TM_DATABASE)
		{
			databases = lappend(databases, t);
			continue;
		}
		oldcxt = MemoryContextSwitchTo(tenant_cxt);
		ok = tm_migrate_schema_tenant(&ms, true);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(tenant_cxt);
		if (!ok && stop_on_error)
			return;
	}
	if (databases == NIL)
		return;

	tm_require_control_database();
	foreach(lc, databases)
	{
		TmTenant   *t = lfirst(lc);
		ErrorData  *edata = tm_try(tm_lock_for_migration, t);

		if (edata)
			tm_report_tenant(r, t->name, false, edata);
		else
			locked = lappend(locked, t);
	}
	tm_migrate_database_fleet(locked, r, stop_on_error);
}

/*
 * Migrates database tenants in parallel, at most tenant_mgr.max_workers
 * executors at a time, and reports each finished run.  Stops starting new
 * ones after a failure if stop_on_error.  Running out of worker slots waits
 * for one of ours; with none of ours running it is an error.
 */
static void
tm_migrate_database_fleet(List *tenants, TmReport *r, bool stop_on_error)
{
	int			max = Max(tm_max_workers, 1);
	TmExecRun **runs = palloc0(sizeof(TmExecRun *) * max);
	TmTenant  **owners = palloc0(sizeof(TmTenant *) * max);
	ListCell   *next = list_head(tenants);
	int			active = 0;
	bool		stop = false;

	while (active > 0 || (next != NULL && !stop))
	{
		int			i;
		bool		started_one = false;

		/* fill free slots */
		for (i = 0; i < max && next != NULL && !stop; i++)
		{
			bool		launched;

			if (runs[i] != NULL)
				continue;
			owners[i] = lfirst(next);
			runs[i] = tm_dbtenant_migrate_start(owners[i], r->migrations,
												r->target, &launched);
			if (!launched)
			{
				tm_exec_release(runs[i]);
				runs[i] = NULL;
				if (active == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
							 errmsg("could not start a tenant_mgr executor"),
							 errdetail("All background worker slots are in use."),
							 errhint("Raise max_worker_processes, or try again later.")));
				break;			/* wait for one of ours to finish */
			}
			next = lnext(tenants, next);
			active++;
			started_one = true;
		}

		/* collect finished ones */
		for (i = 0; i < max; i++)
		{
			pid_t		pid;
			BgwHandleStatus status;

			if (runs[i] == NULL)
				continue;
			status = GetBackgroundWorkerPid(runs[i]->handle, &pid);
			if (status != BGWH_STOPPED && status != BGWH_POSTMASTER_DIED)
				continue;
			tm_exec_wait(runs[i]);	/* returns at once; marks silent deaths */
			tm_report_db_run(owners[i], runs[i], r);
			if (runs[i]->task->state == TM_EXEC_FAILED && stop_on_error)
				stop = true;
			tm_exec_release(runs[i]);
			runs[i] = NULL;
			active--;
		}

		if (active > 0 && !started_one)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 100L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
}
