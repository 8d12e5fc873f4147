/*-------------------------------------------------------------------------
 *
 * fleet.c
 *		The caller's side of tenant_migrate: target and options, one tenant,
 *		every tenant, and a result row per tenant and step.
 *
 * One tenant: migrated in the caller's transaction, where every pending
 * step can share it; errors propagate and change nothing (but for a
 * database tenant, whose executor commits each step inside the tenant).
 * When a pending step cannot share a transaction with the next one (it adds
 * an enum value, which PostgreSQL lets no later statement of the same
 * transaction use), the tenant is migrated as a run of one, step by step.
 *
 * Every tenant (or a subset): a fleet run, carried out in the background
 * by executors (run.c), one transaction per migration per tenant.  The
 * caller's transaction only starts it and, unless wait is false, waits for
 * it and reads what it recorded: it holds no tenant's lock, and its
 * rollback undoes no tenant the run migrated.  A run with nothing to do is
 * answered from the catalog without starting anything.
 *
 * A 1.0 catalog, until ALTER EXTENSION UPDATE, has no run tables: there the
 * fleet is migrated as 1.0 did, in the caller's transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
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

static void tm_put_row(TmReport *r, const char *tenant, const TmStep *step,
					   const char *status, const ErrorData *edata);
static bool tm_migrate_schema_tenant(TmMigrateState *ms, bool fleet);
static void tm_migrate_database_tenant(TmTenant *t, TmReport *r);
static void tm_report_db_run(TmTenant *t, TmExecRun *run, TmReport *r);
static void tm_migrate_database_fleet(List *tenants, TmReport *r,
									  bool stop_on_error);
static void tm_migrate_all(TmReport *r, bool stop_on_error);
static SPIPlanPtr tm_plan_target = NULL;
static SPIPlanPtr tm_plan_behind = NULL;

static void tm_fleet_run(TmTenant *one, TmRunOptions *opts, TmReport *r);
static int64 tm_resolve_target(bool has_target, int64 target);
static bool tm_metadata_is_object(Datum jsonb);

/* True if migration m is a step from version `from` towards target. */
static bool
tm_is_step(const TmMigration *m, int64 from, int64 target)
{
	return target >= from ? (m->version > from && m->version <= target) :
		(m->version <= from && m->version > target);
}

/*
 * True if some pending step from version `from` towards target cannot share
 * a transaction with the step after it: it adds an enum value (which no
 * later statement of its transaction may use), or it is not transactional.
 */
static bool
tm_steps_need_own_xacts(List *migrations, int64 from, int64 target)
{
	ListCell   *lc;
	int			n = 0;
	int			pending = 0;

	foreach(lc, migrations)
		pending += tm_is_step(lfirst(lc), from, target);
	foreach(lc, migrations)
	{
		TmMigration *m = lfirst(lc);
		const char *sql;
		ListCell   *sc;

		if (!tm_is_step(m, from, target))
			continue;
		n++;
		if (!m->transactional)
			return true;
		sql = target >= from ? m->up_sql : m->down_sql;
		if (sql == NULL || n == pending)
			continue;
		foreach(sc, raw_parser(sql, RAW_PARSE_DEFAULT))
		{
			Node	   *stmt = ((RawStmt *) lfirst(sc))->stmt;

			if (IsA(stmt, AlterEnumStmt) && ((AlterEnumStmt *) stmt)->newVal != NULL)
				return true;
		}
	}
	return false;
}

/*
 * Migrates tenant name, or every tenant (or those the options select) when
 * name is NULL, towards the target (the latest registered version unless
 * opts->has_target), writing result rows into rsinfo.  Expects an SPI
 * connection.
 */
void
tm_fleet_migrate(const char *name, TmRunOptions *opts, ReturnSetInfo *rsinfo)
{
	TmReport	r;
	bool		runs = tm_catalog_has_runs();

	r.rsinfo = rsinfo;
	r.migrations = NIL;
	if (opts->canary < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("canary must not be negative")));
	if (name != NULL && (opts->names || opts->pattern || opts->metadata ||
						 opts->canary > 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a tenant name cannot be combined with names, pattern, metadata or canary"),
				 errhint("Pass name => NULL to select tenants by names, pattern or metadata.")));
	if (!runs && (opts->names || opts->pattern || opts->metadata ||
				  opts->canary > 0 || !opts->wait || opts->dry_run))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("fleet run options need version 1.1 of tenant_mgr's catalog"),
				 errhint("Run ALTER EXTENSION tenant_mgr UPDATE.")));

	r.target = tm_resolve_target(opts->has_target, opts->target);
	/* a fleet run needs the registered migrations only in its executors */
	if (name == NULL && runs)
	{
		tm_fleet_run(NULL, opts, &r);
		return;
	}
	r.migrations = tm_migration_list();
	if (name == NULL)
	{
		r.run_id = tm_run_id();
		tm_migrate_all(&r, opts->stop_on_error);
		return;
	}

	{
		TmTenant   *t = tm_tenant_fetch(name, false);

		tm_tenant_require_ready(t);
		if (runs && (!opts->wait || opts->dry_run ||
					 (t->isolation == TM_SCHEMA &&
					  tm_steps_need_own_xacts(r.migrations, t->version, r.target))))
		{
			tm_fleet_run(t, opts, &r);
			return;
		}
		r.run_id = tm_run_id();
		if (t->isolation == TM_DATABASE)
			tm_migrate_database_tenant(t, &r);
		else
		{
			TmMigrateState ms = {t, &r, NIL, t->version, NULL};

			(void) tm_migrate_schema_tenant(&ms, false);
		}
	}
}

/*
 * Executors read the registered migrations committed; migrations this
 * transaction registered or removed would be a different set.  A row of
 * the registry written or deleted by this transaction (or a subtransaction
 * of it still alive) says so; a snapshot would not, as it shows the
 * transaction its own changes.
 */
static void
tm_check_registry_committed(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	bool		changed = false;

	rel = table_open(get_relname_relid("migration", get_namespace_oid("tenant_mgr", false)),
					 AccessShareLock);
	scan = table_beginscan(rel, SnapshotAny, 0, NULL);
	while (!changed && (tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		HeapTupleHeader h = tuple->t_data;

		if (TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetRawXmin(h)))
			changed = true;
		else if (!(h->t_infomask & HEAP_XMAX_INVALID) &&
				 !HEAP_XMAX_IS_LOCKED_ONLY(h->t_infomask) &&
				 !(h->t_infomask & HEAP_XMAX_IS_MULTI) &&
				 TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetRawXmax(h)))
			changed = true;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	if (changed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this transaction has registered or removed migrations"),
				 errdetail("A fleet run is carried out by executors, which see only committed migrations."),
				 errhint("Commit the transaction that registers or removes migrations before tenant_migrate.")));
}

/*
 * The selection of a run, as query parameters: the target, then the names
 * (the one tenant's, or the option's), pattern and metadata, NULL when not
 * given.  A name in names that is no tenant, or metadata that is not an
 * object, is an error.
 */
static void
tm_run_selection(const TmTenant *one, TmRunOptions *opts, int64 target,
				 Datum *values, char *nulls)
{
	values[0] = Int64GetDatum(target);
	nulls[0] = ' ';
	nulls[1] = nulls[2] = nulls[3] = 'n';
	if (one)
	{
		Datum		name = CStringGetTextDatum(one->name);

		values[1] = PointerGetDatum(construct_array(&name, 1, TEXTOID, -1, false,
													TYPALIGN_INT));
		nulls[1] = ' ';
	}
	else if (opts->names)
	{
		Oid			types[1] = {TEXTARRAYOID};

		values[1] = PointerGetDatum(opts->names);
		nulls[1] = ' ';
		tm_catalog_exec("SELECT n FROM unnest($1::text[]) n"
						" WHERE n IS NULL OR NOT EXISTS"
						" (SELECT 1 FROM tenant_mgr.tenant t WHERE t.name = n) LIMIT 1",
						1, types, &values[1], NULL, SPI_OK_SELECT);
		if (SPI_processed > 0 && tm_get_text(0, 1) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("names must not contain null")));
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("tenant \"%s\" does not exist", tm_get_text(0, 1))));
	}
	if (opts->pattern)
	{
		values[2] = CStringGetTextDatum(opts->pattern);
		nulls[2] = ' ';
	}
	if (opts->metadata)
	{
		values[3] = DirectFunctionCall1(jsonb_in, CStringGetDatum(opts->metadata));
		nulls[3] = ' ';
		if (!tm_metadata_is_object(values[3]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("metadata must be a JSON object"),
					 errhint("Tenants are selected whose metadata contains it (@>).")));
	}
}

/*
 * The options of a run as jsonb text, what tenant_mgr.run.options keeps:
 * the selection, the switches and the lock settings of this session.
 */
static char *
tm_run_options(TmRunOptions *opts, const Datum *selection, const char *selnulls)
{
	Oid			types[9] = {BOOLOID, INT4OID, TEXTARRAYOID, TEXTOID, JSONBOID,
	BOOLOID, INT4OID, INT4OID, INT4OID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', selnulls[1], selnulls[2], selnulls[3],
	' ', ' ', ' ', ' '};

	values[0] = BoolGetDatum(opts->stop_on_error);
	values[1] = Int32GetDatum(opts->canary);
	values[2] = selection[1];
	values[3] = selection[2];
	values[4] = selection[3];
	values[5] = BoolGetDatum(opts->dry_run);
	values[6] = Int32GetDatum(tm_lock_timeout);
	values[7] = Int32GetDatum(tm_lock_retries);
	values[8] = Int32GetDatum(tm_statement_timeout);
	tm_catalog_exec("SELECT jsonb_strip_nulls(jsonb_build_object("
					"  'stop_on_error', $1, 'canary', nullif($2, 0),"
					"  'names', to_jsonb($3), 'pattern', $4, 'metadata', $5,"
					"  'dry_run', $6, 'lock_timeout', $7, 'lock_retries', $8,"
					"  'statement_timeout', $9))::text",
					9, types, values, nulls, SPI_OK_SELECT);
	return tm_get_text(0, 1);
}

/* True if a jsonb Datum is an object (metadata selects by @> on one). */
static bool
tm_metadata_is_object(Datum jsonb)
{
	return strcmp(text_to_cstring(DatumGetTextPP(DirectFunctionCall1(jsonb_typeof, jsonb))),
				  "object") == 0;
}

/* Puts a row with the run's id only: what wait => false returns. */
static void
tm_put_run_row(TmReport *r)
{
	Datum		values[9];
	bool		nulls[9] = {true, true, true, true, false, true, true, true, false};

	values[4] = CStringGetTextDatum("running");
	values[8] = Int64GetDatum(r->run_id);
	tuplestore_putvalues(r->rsinfo->setResult, r->rsinfo->setDesc, values, nulls);
}

/*
 * Waits for the leader of a run: until it has recorded the run (started),
 * or until it is over.  Interrupted, the caller asks the run to stop (its
 * executors finish the migration they are in) and the error propagates.
 */
static void
tm_run_wait(TmExecRun *lead, bool until_started)
{
	PG_TRY();
	{
		for (;;)
		{
			pid_t		pid;
			BgwHandleStatus status;

			pg_read_barrier();
			if (lead->task->state != TM_EXEC_PENDING ||
				(until_started && lead->task->started))
				break;
			status = GetBackgroundWorkerPid(lead->handle, &pid);
			if (status == BGWH_STOPPED || status == BGWH_POSTMASTER_DIED)
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1000L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_CATCH();
	{
		lead->task->cancel = true;
		PG_RE_THROW();
	}
	PG_END_TRY();
	pg_read_barrier();
	if (lead->task->state == TM_EXEC_FAILED)
		tm_exec_raise(lead);
	if (!lead->task->started)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("the leader of run " INT64_FORMAT " exited without recording it",
						lead->task->run_id)));
}

/* The result rows of a finished run, from what its executors recorded. */
static void
tm_report_run(TmReport *r, bool dry_run)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(r->run_id)};
	uint64		i;

	if (dry_run)
		tm_catalog_read_latest("SELECT rt.tenant, rt.to_version, NULL::text,"
							   " CASE WHEN r.target < rt.from_version THEN 'down' ELSE 'up' END,"
							   " rt.status, rt.duration, rt.sqlstate, rt.message, rt.run_id"
							   " FROM tenant_mgr.run_tenant rt"
							   " JOIN tenant_mgr.run r ON r.id = rt.run_id"
							   " WHERE rt.run_id = $1 ORDER BY rt.ord",
							   1, types, values);
	else
		tm_catalog_read_latest("SELECT e.tenant, e.version, m.name,"
							   " CASE WHEN e.version IS NOT NULL THEN e.action END,"
							   " CASE WHEN e.status <> 'ok' THEN e.status"
							   "      WHEN e.action = 'up' THEN 'applied' ELSE 'reverted' END,"
							   " CASE WHEN e.version IS NOT NULL THEN e.duration END,"
							   " e.sqlstate, e.message, e.run_id, e.id"
							   " FROM tenant_mgr.event e"
							   " LEFT JOIN tenant_mgr.migration m ON m.version = e.version"
							   " WHERE e.run_id = $1"
							   " UNION ALL"
							   " SELECT rt.tenant, NULL, NULL, NULL, rt.status, NULL, NULL,"
							   " NULL, rt.run_id, NULL"
							   " FROM tenant_mgr.run_tenant rt"
							   " WHERE rt.run_id = $1 AND rt.status = 'stopped'"
							   " ORDER BY 10, 1",
							   1, types, values);
	for (i = 0; i < SPI_processed; i++)
	{
		Datum		row[9];
		bool		nulls[9];

		for (int c = 0; c < 9; c++)
			row[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
								   c + 1, &nulls[c]);
		tuplestore_putvalues(r->rsinfo->setResult, r->rsinfo->setDesc, row, nulls);
	}
}

/*
 * A fleet run (or a run of the one tenant `one`): recorded and carried out
 * by a leader executor in the control database.  Nothing to do is answered
 * at once.  With wait, the call returns the run's rows when it is over;
 * without, one row with its id once it is recorded.  A run of one tenant
 * that failed raises the tenant's error, as a migration in the caller's
 * transaction would.
 */
static void
tm_fleet_run(TmTenant *one, TmRunOptions *opts, TmReport *r)
{
	Oid			types[4] = {INT8OID, TEXTARRAYOID, TEXTOID, JSONBOID};
	Datum		selection[4];
	char		selnulls[4];
	TmExecRun  *lead;

	/*
	 * Nothing to do is answered from the catalog, by one prepared query: a
	 * no-op run costs the same for 100 tenants as for 10,000.  The same
	 * query tells whether a schema tenant has a non-transactional step
	 * pending.
	 */
	tm_run_selection(one, opts, r->target, selection, selnulls);
	tm_catalog_exec_kept(&tm_plan_behind, 0,
						 "WITH t AS (SELECT t.version, t.isolation FROM tenant_mgr.tenant t"
						 "  WHERE t.state = 'ready' AND t.version <> $1"
						 "    AND ($2 IS NULL OR t.name = ANY ($2))"
						 "    AND ($3 IS NULL OR t.name LIKE $3)"
						 "    AND ($4 IS NULL OR t.metadata @> $4))"
						 " SELECT EXISTS (SELECT 1 FROM t),"
						 "  EXISTS (SELECT 1 FROM t JOIN tenant_mgr.migration m"
						 "   ON NOT m.transactional"
						 "  AND ((m.version > t.version AND m.version <= $1)"
						 "    OR (m.version <= t.version AND m.version > $1))"
						 "   WHERE t.isolation = 'schema')",
						 4, types, selection, selnulls, SPI_OK_SELECT);
	if (!tm_get_bool(0, 1))
		return;					/* nothing to do */

	/*
	 * CREATE INDEX CONCURRENTLY waits for every transaction of its database
	 * that holds an older snapshot: in the control database, the caller's,
	 * were it to wait.
	 */
	if (tm_get_bool(0, 2) && opts->wait && !opts->dry_run)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a run with a non-transactional migration for schema tenants cannot be waited for in a transaction"),
				 errdetail("CREATE INDEX CONCURRENTLY and the like wait until every transaction of the database that began before them has ended, this one included."),
				 errhint("Start it with wait => false, then wait with CALL tenant_mgr.run_wait(run_id), outside a transaction block.")));
	tm_check_registry_committed();

	/*
	 * The leader connects to this database, which any database with the
	 * extension can be; only the control database's launcher resumes a run
	 * after a crash.
	 */
	r->run_id = tm_run_id();
	lead = tm_exec_prepare(TM_EXEC_RUN_LEAD, MyDatabaseId, NULL, NIL);
	lead->task->run_id = r->run_id;
	lead->task->target = r->target;
	tm_task_set_text(lead->task, &lead->task->options,
					 tm_run_options(opts, selection, selnulls));
	if (!tm_exec_launch(lead))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a tenant_mgr executor"),
				 errdetail("All background worker slots are in use."),
				 errhint("Raise max_worker_processes, or try again later.")));

	tm_run_wait(lead, !opts->wait);
	tm_exec_release(lead);
	if (!opts->wait)
	{
		tm_put_run_row(r);
		return;
	}
	tm_report_run(r, opts->dry_run);

	if (one && !opts->dry_run)
	{
		Oid			argtypes[2] = {INT8OID, TEXTOID};
		Datum		values[2] = {Int64GetDatum(r->run_id), CStringGetTextDatum(one->name)};

		tm_catalog_read_latest("SELECT sqlstate, message FROM tenant_mgr.run_tenant"
							   " WHERE run_id = $1 AND tenant = $2"
							   " AND status IN ('failed', 'skipped')",
							   2, argtypes, values);
		if (SPI_processed > 0)
		{
			char	   *state = tm_get_text(0, 1);

			ereport(ERROR,
					(errcode(state ? MAKE_SQLSTATE(state[0], state[1], state[2],
												   state[3], state[4]) :
							 ERRCODE_INTERNAL_ERROR),
					 errmsg_internal("%s", tm_get_text(0, 2)),
					 errcontext("migrating tenant \"%s\" in run " INT64_FORMAT,
								one->name, r->run_id)));
		}
	}
}

/*
 * run_wait: waits until a run is over or timeout_ms (0: no limit) has
 * passed, and returns its state, allocated in result_cxt.  For a procedure
 * with a non-atomic SPI connection: each look at the run is a transaction
 * of its own, committed before the wait, so that this session holds no
 * snapshot that the run's non-transactional migrations would wait for.
 */
char *
tm_run_wait_state(int64 run_id, int64 timeout_ms, MemoryContext result_cxt)
{
	TimestampTz start = GetCurrentTimestamp();

	for (;;)
	{
		Oid			types[1] = {INT8OID};
		Datum		values[1] = {Int64GetDatum(run_id)};
		char	   *state;

		tm_catalog_exec("SELECT state FROM tenant_mgr.run WHERE id = $1",
						1, types, values, NULL, SPI_OK_SELECT);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("run " INT64_FORMAT " does not exist", run_id)));
		state = MemoryContextStrdup(result_cxt, tm_get_text(0, 1));
		if ((strcmp(state, "running") != 0 && strcmp(state, "stopping") != 0) ||
			(timeout_ms > 0 &&
			 TimestampDifferenceExceeds(start, GetCurrentTimestamp(), timeout_ms)))
			return state;
		SPI_commit();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * run_cancel: asks a run to stop; its executors finish the migration they
 * are in and take no more.  True if the run was going on.
 */
bool
tm_run_cancel(int64 run_id)
{
	Oid			types[2] = {INT8OID, NAMEOID};
	Datum		values[2];

	if (!tm_catalog_has_runs())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("fleet runs need version 1.1 of tenant_mgr's catalog"),
				 errhint("Run ALTER EXTENSION tenant_mgr UPDATE.")));
	values[0] = Int64GetDatum(run_id);
	values[1] = tm_name_datum(GetUserNameFromId(GetUserId(), false));
	tm_catalog_exec("SELECT 1 FROM tenant_mgr.run WHERE id = $1",
					1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("run " INT64_FORMAT " does not exist", run_id)));
	tm_catalog_exec("UPDATE tenant_mgr.run SET state = 'stopping', cancelled_by = $2,"
					" message = coalesce(message, 'cancelled by ' || $2)"
					" WHERE id = $1 AND state = 'running'",
					2, types, values, NULL, SPI_OK_UPDATE);
	return SPI_processed > 0;
}

/*
 * The target: the latest registered version by default, else a registered
 * one or 0; from one aggregate over the registry, not the migrations' SQL.
 */
static int64
tm_resolve_target(bool has_target, int64 target)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(target)};

	if (has_target && target < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target version must not be negative")));
	if (has_target && target == 0)
		return 0;
	tm_catalog_exec_kept(&tm_plan_target, 0,
						 "SELECT coalesce(max(version), 0), coalesce(bool_or(version = $1), false)"
						 " FROM tenant_mgr.migration",
						 1, types, values, NULL, SPI_OK_SELECT);
	if (!has_target)
		return tm_get_int64(0, 1);
	if (!tm_get_bool(0, 2))
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
	Datum		values[9];
	bool		nulls[9];

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
	values[8] = Int64GetDatum(r->run_id);	/* not in 1.0's result */
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
