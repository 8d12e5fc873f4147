/*-------------------------------------------------------------------------
 *
 * migrate.c
 *		The one place where migrations are applied to and reverted from a
 *		tenant.
 *
 * A tenant's ledger (TM_LEDGER_NAME inside the tenant) is the truth about
 * which migrations it has: each step runs the migration's SQL and writes or
 * deletes its ledger row in the same transaction, so the two cannot
 * disagree.  The catalog's copy of the version is updated by the caller.
 *
 * Migration SQL runs as the tenant's owner inside a security-restricted
 * operation (no SET ROLE, no SET SESSION AUTHORIZATION, no temporary
 * objects), with a search_path of the tenant's schema and the shared
 * schemas, set at a new GUC nesting level so that nothing the migration sets
 * outlives it.  The caller holds the tenant's lock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "postmaster/bgworker.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "tenant_mgr.h"

/* What the error context of a running migration says. */
static void tm_statement_timeout_arm(void);
static void tm_statement_timeout_disarm(void);

typedef struct TmApplyContext
{
	const TmTenant *tenant;
	const TmStep *step;
} TmApplyContext;

static void
tm_apply_error_callback(void *arg)
{
	TmApplyContext *ac = (TmApplyContext *) arg;

	if (ac->step)
		errcontext("%s migration " INT64_FORMAT " (%s) of tenant \"%s\"",
				   ac->step->up ? "applying" : "reverting",
				   ac->step->migration->version, ac->step->migration->name,
				   ac->tenant->name);
	else
		errcontext("creating the ledger of tenant \"%s\"", ac->tenant->name);
}

/*
 * Runs a migration's SQL inside the tenant: as its owner, restricted, with
 * the tenant's search_path.  Everything the SQL sets is undone afterwards;
 * an error propagates (the enclosing (sub)transaction restores the user id).
 */
static void
tm_run_in_tenant(const TmTenant *tenant, const char *sql)
{
	tm_statement_timeout_arm();
	if (tenant->isolation == TM_SCHEMA && tm_citus_mode())
		tm_citus_run_in_tenant(get_role_oid(tenant->owner, false),
							   tm_search_path(tenant->schema), sql);
	else
		tm_sql_restricted(get_role_oid(tenant->owner, false),
						  tm_search_path(tenant->schema), NULL, sql, 0, NULL,
						  NULL, false);
	tm_statement_timeout_disarm();
}

/*
 * statement_timeout is armed per statement by the client protocol, which
 * executors do not go through: they arm it for each migration themselves.
 */
static void
tm_statement_timeout_arm(void)
{
	if (IsBackgroundWorker && StatementTimeout > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, StatementTimeout);
}

static void
tm_statement_timeout_disarm(void)
{
	if (IsBackgroundWorker && get_timeout_active(STATEMENT_TIMEOUT))
		disable_timeout(STATEMENT_TIMEOUT, false);
}

static TmMigration *
tm_find_migration(List *migrations, int64 version)
{
	ListCell   *lc;

	foreach(lc, migrations)
	{
		TmMigration *m = lfirst(lc);

		if (m->version == version)
			return m;
	}
	return NULL;
}

/*
 * Migrations are applied in version order and reverted from the top, so a
 * ledger lacks no registered migration below its latest: a gap means rows
 * were deleted by hand.  Raises an error rather than applying it again.
 */
static void
tm_check_no_gap(const TmTenant *tenant, List *migrations, List *applied)
{
	int64		latest = applied ? ((TmMigration *) llast(applied))->version : 0;
	ListCell   *lc;

	foreach(lc, migrations)
	{
		TmMigration *m = lfirst(lc);

		if (m->version < latest && !list_member_ptr(applied, m))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("ledger of tenant \"%s\" lacks migration " INT64_FORMAT ", below its latest " INT64_FORMAT,
							tenant->name, m->version, latest),
					 errdetail("Its row was deleted from the ledger; tenant_mgr does not apply the migration again."),
					 errhint("Put the row back into %s." TM_LEDGER_NAME " if the migration is in effect.",
							 quote_identifier(tenant->schema))));
	}
}

/*
 * The latest ledger row deleted leaves no gap, but the label of the schema
 * or database holding the ledger, which no tenant role can set, records the
 * latest version tenant_mgr wrote (ledger.c).  A ledger behind it is an
 * error rather than the migration applied again.  A label without a
 * version (1.0's tenants until their next migration) checks nothing.
 */
static void
tm_check_label_version(const TmTenant *tenant, List *applied)
{
	int64		latest = applied ? ((TmMigration *) llast(applied))->version : 0;
	int64		labelled = tm_ledger_label_version(tenant);

	if (labelled > latest)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger of tenant \"%s\" lacks its latest migration " INT64_FORMAT,
						tenant->name, labelled),
				 errdetail("The tenant's security label records version " INT64_FORMAT " as applied, but the ledger's latest row is version " INT64_FORMAT "; tenant_mgr does not apply migrations again.",
						   labelled, latest),
				 errhint("Put the deleted rows back into %s." TM_LEDGER_NAME " if their migrations are in effect.",
						 quote_identifier(tenant->schema))));
}

/*
 * Reads the tenant's ledger (ledger.c) and checks it against the registered
 * migrations: returns the applied ones (TmMigration), in version order.
 * An unknown or altered migration is an error.
 */
static List *
tm_ledger_read(const TmTenant *tenant, List *migrations)
{
	List	   *applied = NIL;
	ListCell   *lc;
	MemoryContext oldcxt = MemoryContextSwitchTo(tm_result_cxt());

	foreach(lc, tm_ledger_rows(tenant))
	{
		TmLedgerRow *row = lfirst(lc);
		TmMigration *m = tm_find_migration(migrations, row->version);

		if (m == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("tenant \"%s\" has migration " INT64_FORMAT " applied, which is not registered",
							tenant->name, row->version),
					 errhint("Register the migration again, or check the ledger %s." TM_LEDGER_NAME ".",
							 quote_identifier(tenant->schema))));
		if (strcmp(m->checksum, row->checksum) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration " INT64_FORMAT " applied to tenant \"%s\" differs from the registered one",
							row->version, tenant->name),
					 errdetail("The ledger's checksum is %s, the registered one is %s.",
							   row->checksum, m->checksum)));
		applied = lappend(applied, m);
	}
	MemoryContextSwitchTo(oldcxt);
	tm_check_no_gap(tenant, migrations, applied);
	tm_check_label_version(tenant, applied);
	return applied;
}

/*
 * Reads the tenant's ledger, checks it against the registered migrations and
 * returns the steps (TmStep) that bring it to target, in the order they must
 * run.  *current is set to the ledger's version.  Raises an error, changing
 * nothing, when the ledger names an unknown or altered migration, lacks one
 * (a gap, or a version its label records) or when a step down has no down
 * SQL.
 */
List *
tm_migration_plan(const TmTenant *tenant, List *migrations, int64 target,
				  int64 *current)
{
	List	   *applied = tm_ledger_read(tenant, migrations);
	List	   *steps = NIL;
	ListCell   *lc;
	MemoryContext oldcxt = MemoryContextSwitchTo(tm_result_cxt());

	*current = applied ? ((TmMigration *) llast(applied))->version : 0;
	if (target >= *current)
	{
		foreach(lc, migrations)
		{
			TmMigration *m = lfirst(lc);

			if (m->version > *current && m->version <= target)
			{
				TmStep	   *s = palloc0(sizeof(TmStep));

				s->migration = m;
				s->up = true;
				steps = lappend(steps, s);
			}
		}
	}
	else
	{
		foreach(lc, applied)
		{
			TmMigration *m = lfirst(lc);
			TmStep	   *s;

			if (m->version <= target)
				continue;
			if (m->down_sql == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("migration " INT64_FORMAT " (%s) cannot be reverted",
								m->version, m->name),
						 errdetail("It was registered without down SQL."),
						 errhint("Tenant \"%s\" stays at version " INT64_FORMAT ".",
								 tenant->name, *current)));
			s = palloc0(sizeof(TmStep));
			s->migration = m;
			s->up = false;
			steps = lcons(s, steps);
		}
	}
	MemoryContextSwitchTo(oldcxt);
	return steps;
}

/*
 * The one statement of a non-transactional migration (registry.c checked
 * there is exactly one).
 */
static Node *
tm_nt_statement(const TmStep *step)
{
	const char *sql = step->up ? step->migration->up_sql : step->migration->down_sql;
	List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);

	if (list_length(raw) != 1)
		elog(ERROR, "non-transactional migration " INT64_FORMAT " is not one statement",
			 step->migration->version);
	return ((RawStmt *) linitial(raw))->stmt;
}

/*
 * The index a CREATE INDEX CONCURRENTLY or DROP INDEX CONCURRENTLY names,
 * in the tenant's schema unless the statement says another; InvalidOid if
 * there is none (*name tells which it looked for).
 */
static Oid
tm_nt_index(const TmTenant *tenant, Node *stmt, char **name)
{
	const char *schema = tenant->schema;
	Oid			nspoid;

	if (IsA(stmt, IndexStmt))
	{
		IndexStmt  *is = (IndexStmt *) stmt;

		*name = is->idxname;
		if (is->relation->schemaname)
			schema = is->relation->schemaname;
	}
	else if (IsA(stmt, DropStmt) && ((DropStmt *) stmt)->removeType == OBJECT_INDEX)
	{
		List	   *qualified = linitial(((DropStmt *) stmt)->objects);

		*name = strVal(llast(qualified));
		if (list_length(qualified) > 1)
			schema = strVal(list_nth(qualified, list_length(qualified) - 2));
	}
	else
		return InvalidOid;
	nspoid = get_namespace_oid(schema, true);
	return OidIsValid(nspoid) ? get_relname_relid(*name, nspoid) : InvalidOid;
}

static bool
tm_index_is_valid(Oid indexoid)
{
	HeapTuple	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	bool		valid;

	if (!HeapTupleIsValid(tuple))
		return false;
	valid = ((Form_pg_index) GETSTRUCT(tuple))->indisvalid;
	ReleaseSysCache(tuple);
	return valid;
}

/*
 * A non-transactional migration on a tenant being built in this
 * transaction: nobody else can see its tables, so the statement runs here
 * without CONCURRENTLY (and VACUUM of its new tables is skipped), as the
 * tenant's owner, restricted, with the tenant's search_path.
 */
static void
tm_run_fresh(const TmTenant *tenant, const TmStep *step)
{
	Node	   *stmt = tm_nt_statement(step);

	if (IsA(stmt, VacuumStmt))
		return;
	if (IsA(stmt, IndexStmt))
		((IndexStmt *) stmt)->concurrent = false;
	else if (IsA(stmt, DropStmt))
		((DropStmt *) stmt)->concurrent = false;
	else if (IsA(stmt, ReindexStmt))
	{
		ReindexStmt *rs = (ReindexStmt *) stmt;
		ListCell   *lc;

		foreach(lc, rs->params)
		{
			if (strcmp(((DefElem *) lfirst(lc))->defname, "concurrently") == 0)
				rs->params = foreach_delete_current(rs->params, lc);
		}
	}
	tm_utility_restricted(stmt, step->up ? step->migration->up_sql : step->migration->down_sql,
						  get_role_oid(tenant->owner, false),
						  tm_search_path(tenant->schema));
}

/*
 * Applies or reverts one migration in a tenant, together with its ledger
 * row, and records the time it took in step->ms.  A non-transactional
 * migration goes through tm_migration_nt_* instead, but on a tenant being
 * built (step->fresh), which runs it here without CONCURRENTLY.
 */
void
tm_migration_apply(const TmTenant *tenant, TmStep *step)
{
	TmMigration *m = step->migration;
	TmApplyContext ac = {tenant, step};
	ErrorContextCallback errcb;
	instr_time	start;
	instr_time	duration;

	if (!m->transactional && !step->fresh)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("migration " INT64_FORMAT " (%s) is not transactional and cannot be applied to tenant \"%s\" in a transaction",
						m->version, m->name, tenant->name),
				 errhint("Fleet runs and tenant_migrate('%s') apply it top-level.", tenant->name)));

	/* an executor shows in pg_stat_activity the migration it is on */
	if (IsBackgroundWorker)
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("tenant \"%s\": %s migration " INT64_FORMAT " (%s)",
										tenant->name, step->up ? "applying" : "reverting",
										m->version, m->name));

	errcb.callback = tm_apply_error_callback;
	errcb.arg = &ac;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	INSTR_TIME_SET_CURRENT(start);
	if (m->transactional)
		tm_run_in_tenant(tenant, step->up ? m->up_sql : m->down_sql);
	else
		tm_run_fresh(tenant, step);
	INSTR_TIME_SET_CURRENT(duration);
	error_context_stack = errcb.previous;

	INSTR_TIME_SUBTRACT(duration, start);
	step->ms = INSTR_TIME_GET_MILLISEC(duration);
	tm_ledger_write(tenant, m, step->up, step->ms);
	tm_pause_point("migrate:before-commit");
}

/*
 * Before a non-transactional step, in a transaction holding the tenant's
 * session lock: returns true if the step is already in effect (a crash
 * came between the statement and its ledger row), so that only the row is
 * missing.  An invalid index a crash or a cancel left of the step's CREATE
 * INDEX CONCURRENTLY is dropped, so that the step runs again.
 */
bool
tm_migration_nt_prepare(const TmTenant *tenant, TmStep *step)
{
	Node	   *stmt = tm_nt_statement(step);
	char	   *name = NULL;
	Oid			indexoid = tm_nt_index(tenant, stmt, &name);

	if (IsA(stmt, IndexStmt))
	{
		if (!OidIsValid(indexoid))
			return false;
		if (tm_index_is_valid(indexoid))
			return true;
		tm_sql_restricted(get_role_oid(tenant->owner, false),
						  tm_search_path(tenant->schema), NULL,
						  psprintf("DROP INDEX %s.%s",
								   quote_identifier(get_namespace_name(get_rel_namespace(indexoid))),
								   quote_identifier(name)),
						  0, NULL, NULL, false);
		return false;
	}
	if (IsA(stmt, DropStmt) && name != NULL)
		return !OidIsValid(indexoid);
	return false;
}

/*
 * Runs a non-transactional step top-level, outside any transaction, as the
 * tenant's owner in a security-restricted operation (spi.c), under the
 * given timeouts (0: those of the session), and records the time it took.
 * A lock wait that times out leaves an invalid index, which the next
 * attempt drops (tm_migration_nt_prepare).
 */
void
tm_migration_nt_run(const TmTenant *tenant, TmStep *step, int lock_timeout_ms,
					int statement_timeout_ms)
{
	char	   *saved_lock = pstrdup(GetConfigOption("lock_timeout", false, false));
	char	   *saved_statement = pstrdup(GetConfigOption("statement_timeout", false, false));
	char		buf[32];
	TmMigration *m = step->migration;
	TmApplyContext ac = {tenant, step};
	ErrorContextCallback errcb;
	instr_time	start;
	instr_time	duration;

	errcb.callback = tm_apply_error_callback;
	errcb.arg = &ac;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	tm_pause_point("migrate:nt-before");
	INSTR_TIME_SET_CURRENT(start);
	if (lock_timeout_ms > 0)
	{
		snprintf(buf, sizeof(buf), "%d", lock_timeout_ms);
		SetConfigOption("lock_timeout", buf, PGC_SUSET, PGC_S_SESSION);
	}
	if (statement_timeout_ms > 0)
	{
		snprintf(buf, sizeof(buf), "%d", statement_timeout_ms);
		SetConfigOption("statement_timeout", buf, PGC_SUSET, PGC_S_SESSION);
	}
	PG_TRY();
	{
		tm_statement_timeout_arm();
		tm_utility_toplevel_restricted(step->up ? m->up_sql : m->down_sql,
									   tenant->owner, tm_search_path(tenant->schema));
	}
	PG_FINALLY();
	{
		tm_statement_timeout_disarm();
		SetConfigOption("lock_timeout", saved_lock, PGC_SUSET, PGC_S_SESSION);
		SetConfigOption("statement_timeout", saved_statement, PGC_SUSET, PGC_S_SESSION);
	}
	PG_END_TRY();
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	step->ms = INSTR_TIME_GET_MILLISEC(duration);
	error_context_stack = errcb.previous;
	tm_pause_point("migrate:nt-after");
}

/*
 * After a non-transactional step, in a transaction: checks that it took
 * effect (an index it creates exists and is valid, one it drops is gone)
 * and only then writes its ledger row.
 */
void
tm_migration_nt_finish(const TmTenant *tenant, TmStep *step)
{
	Node	   *stmt = tm_nt_statement(step);
	char	   *name = NULL;
	Oid			indexoid = tm_nt_index(tenant, stmt, &name);

	if (IsA(stmt, IndexStmt) && (!OidIsValid(indexoid) || !tm_index_is_valid(indexoid)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration " INT64_FORMAT " (%s) did not leave a valid index \"%s\" in tenant \"%s\"",
						step->migration->version, step->migration->name, name,
						tenant->name),
				 errdetail("Its ledger row is not written; the next run drops an invalid index and tries again.")));
	if (IsA(stmt, DropStmt) && name != NULL && OidIsValid(indexoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration " INT64_FORMAT " (%s) did not drop index \"%s\" in tenant \"%s\"",
						step->migration->version, step->migration->name, name,
						tenant->name)));
	tm_ledger_write(tenant, step->migration, step->up, step->ms);
}

/*
 * Returns the tenant's version once the step at lc of steps (a plan for
 * target) has committed.  Up: that migration's version.  Down: the next
 * version to revert, or the target after the last one (a tenant's ledger
 * holds every registered version up to its own, so a registered target
 * below it is in the ledger).
 */
int64
tm_version_after(List *steps, ListCell *lc, int64 target)
{
	TmStep	   *s = lfirst(lc);

	if (s->up)
		return s->migration->version;
	if (lnext(steps, lc) != NULL)
		return ((TmStep *) lfirst(lnext(steps, lc)))->migration->version;
	return target;
}
