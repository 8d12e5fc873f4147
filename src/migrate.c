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

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "tenant_mgr.h"

/* What the error context of a running migration says. */
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
 * Runs sql inside the tenant: as its owner, restricted, with the tenant's
 * search_path.  Everything the SQL sets is undone afterwards; an error
 * propagates (the enclosing (sub)transaction restores the user id).
 */
static void
tm_run_in_tenant(const TmTenant *tenant, const TmStep *step, const char *sql,
				 int nargs, Oid *types, Datum *values)
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	Oid			owner = get_role_oid(tenant->owner, false);
	TmApplyContext ac = {tenant, step};
	ErrorContextCallback errcb;
	int			rc;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", tm_search_path(tenant->schema),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	errcb.callback = tm_apply_error_callback;
	errcb.arg = &ac;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	if (nargs > 0)
		rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);
	else
		rc = SPI_execute(sql, false, 0);
	if (rc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("migration SQL could not be executed: %s",
						SPI_result_code_string(rc))));

	error_context_stack = errcb.previous;
	AtEOXact_GUC(true, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * Creates the (empty) ledger inside a new schema tenant, owned by the
 * tenant's owner.  Its primary key is the version: no sequence, nothing
 * that ties the tenant to the server it was created on.
 */
void
tm_ledger_create(const TmTenant *tenant)
{
	tm_run_in_tenant(tenant, NULL,
					 "CREATE TABLE " TM_LEDGER_NAME " ("
					 " version bigint PRIMARY KEY,"
					 " name text NOT NULL,"
					 " checksum text NOT NULL,"
					 " applied_at timestamptz NOT NULL DEFAULT now(),"
					 " applied_by name NOT NULL DEFAULT current_user,"
					 " duration interval)",
					 0, NULL, NULL);
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
 * Reads the tenant's ledger and checks it against the registered
 * migrations: returns the applied ones (TmMigration), in version order.
 * An unknown or altered migration is an error.
 */
static List *
tm_ledger_read(const TmTenant *tenant, List *migrations)
{
	List	   *applied = NIL;
	uint64		i;
	MemoryContext oldcxt;

	if (SPI_execute(psprintf("SELECT version, checksum FROM %s." TM_LEDGER_NAME
							 " ORDER BY version",
							 quote_identifier(tenant->schema)),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the ledger of tenant \"%s\"", tenant->name);
	oldcxt = MemoryContextSwitchTo(tm_result_cxt());
	for (i = 0; i < SPI_processed; i++)
	{
		int64		v = tm_get_int64(i, 1);
		char	   *checksum = tm_get_text(i, 2);
		TmMigration *m = tm_find_migration(migrations, v);

		if (m == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("tenant \"%s\" has migration " INT64_FORMAT " applied, which is not registered",
							tenant->name, v),
					 errhint("Register the migration again, or check the ledger %s." TM_LEDGER_NAME ".",
							 quote_identifier(tenant->schema))));
		if (strcmp(m->checksum, checksum) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration " INT64_FORMAT " applied to tenant \"%s\" differs from the registered one",
							v, tenant->name),
					 errdetail("The ledger's checksum is %s, the registered one is %s.",
							   checksum, m->checksum)));
		applied = lappend(applied, m);
	}
	MemoryContextSwitchTo(oldcxt);
	return applied;
}

/*
 * Reads the tenant's ledger, checks it against the registered migrations and
 * returns the steps (TmStep) that bring it to target, in the order they must
 * run.  *current is set to the ledger's version.  Raises an error, changing
 * nothing, when the ledger names an unknown or altered migration or when a
 * step down has no down SQL.
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
 * Applies or reverts one migration in a schema tenant, together with its
 * ledger row, and records the time it took in step->ms.
 */
void
tm_migration_apply(const TmTenant *tenant, TmStep *step)
{
	TmMigration *m = step->migration;
	instr_time	start;
	instr_time	duration;
	Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, FLOAT8OID};
	Datum		values[4];

	INSTR_TIME_SET_CURRENT(start);
	tm_run_in_tenant(tenant, step, step->up ? m->up_sql : m->down_sql,
					 0, NULL, NULL);
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	step->ms = INSTR_TIME_GET_MILLISEC(duration);

	values[0] = Int64GetDatum(m->version);
	if (step->up)
	{
		values[1] = CStringGetTextDatum(m->name);
		values[2] = CStringGetTextDatum(m->checksum);
		values[3] = Float8GetDatum(step->ms);
		tm_run_in_tenant(tenant, step,
						 "INSERT INTO " TM_LEDGER_NAME
						 " (version, name, checksum, duration)"
						 " VALUES ($1, $2, $3, $4 * interval '1 millisecond')",
						 4, types, values);
	}
	else
		tm_run_in_tenant(tenant, step,
						 "DELETE FROM " TM_LEDGER_NAME " WHERE version = $1",
						 1, types, values);
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
