/*-------------------------------------------------------------------------
 *
 * build.c
 *		Building a schema tenant outside the caller's transaction, each
 *		migration committed on its own with its ledger row.
 *
 * A schema tenant is built in one transaction when every pending migration
 * can share it (schematenant.c).  Some migration sets cannot: PostgreSQL
 * refuses a new enum value in the transaction that added it (55P04), and
 * real migration sets add a value in one migration and use it in the next.
 * Those tenants are built here instead, by a job worker for a queued create
 * or by an executor for an interactive one, which then claims the tenant
 * in its own transaction (the catalog row, the intent deleted):
 *
 *	1. in one transaction: the owner role, the schema with tenant_mgr's
 *	   label, the ledger;
 *	2. each pending migration in a transaction of its own (migrate.c), a
 *	   non-transactional one too, without CONCURRENTLY: nobody uses a
 *	   tenant being built, and CREATE INDEX CONCURRENTLY would wait for
 *	   every older snapshot of the database, the waiting caller's among
 *	   them (an executor building for a caller never finished).
 *
 * A build that finds the schema carrying the tenant's label goes on from
 * its ledger, so a job interrupted by a crash resumes.  A build that fails
 * removes what it made before it raises the error; what a killed process
 * leaves is removed by the launcher, through the intent of an interactive
 * create or on the next attempt of a job.
 *
 * Nobody else works on the tenant meanwhile: it has no catalog row yet
 * (interactive create, whose caller holds the tenant's lock) or is
 * "creating" (queued create), which neither fleet runs nor any other call
 * touches.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "tenant_mgr.h"

/*
 * True for an error that says a migration needs a transaction of its own
 * rather than one shared with those before it.
 */
bool
tm_build_needs_own_transactions(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_UNSAFE_NEW_ENUM_VALUE_USAGE;
}

/*
 * Step 1, in a transaction of its own, as role requester: the owner role
 * (own_role), the schema with tenant_mgr's label and the ledger, unless an
 * earlier attempt made them.  Sets t->object_oid and t->schema.
 *
 * In Citus mode the ledger comes in a second transaction: Citus creates
 * its shard on the schema's worker connecting as the tenant's owner, which
 * sees the role and the schema there only once they are committed.
 */
static void
tm_build_start(TmTenant *t, Oid requester, bool own_role)
{
	TmIdentity	saved;
	Oid			nspoid;
	bool		citus;

	tm_xact_begin();
	citus = tm_citus_mode();
	tm_become(requester, 0, &saved);
	/* an earlier attempt left it under its name, or nothing (no label scan) */
	if (!OidIsValid(t->object_oid))
		t->object_oid = get_namespace_oid(t->object_name, true);
	nspoid = !OidIsValid(t->object_oid) ? InvalidOid :
		citus ? tm_schema_find_labelled(t) : tm_schema_find(t);
	if (!OidIsValid(nspoid))
	{
		tm_schematenant_make(t, own_role, !citus);
		nspoid = t->object_oid;
	}
	tm_restore(&saved);
	t->object_oid = nspoid;
	t->schema = MemoryContextStrdup(tm_result_cxt(), get_namespace_name(nspoid));
	tm_xact_commit();

	if (citus)
	{
		tm_xact_begin();
		if (!OidIsValid(get_relname_relid(TM_LEDGER_NAME, nspoid)))
		{
			tm_become(requester, 0, &saved);
			tm_ledger_create(t);
			tm_restore(&saved);
		}
		tm_xact_commit();
	}
	tm_pause_point("build:after-start");
}

/*
 * Drops the schema carrying t's label that a build left before its ledger
 * (Citus mode makes it in a transaction of its own), if empty, for
 * tm_schematenant_drop, which takes a schema without its ledger for
 * someone else's.
 */
static void
tm_build_drop_unfinished(const TmTenant *t)
{
	Oid			nspoid = tm_schema_find_labelled(t);

	if (OidIsValid(nspoid) &&
		!OidIsValid(get_relname_relid(TM_LEDGER_NAME, nspoid)))
		tm_ddl(psprintf("DROP SCHEMA %s",
						quote_identifier(get_namespace_name(nspoid))));
}

/*
 * Removes what a failed build made, in a transaction of its own: the
 * schema carrying t's label and t's roles, if tenant_mgr's.  Its own
 * failure is only logged: the error that matters is the build's.
 */
static void
tm_build_remove(TmTenant *t)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		tm_xact_begin();
		tm_build_drop_unfinished(t);
		tm_schematenant_drop(t);
		tm_xact_commit();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		tm_xact_abort();
	}
	PG_END_TRY();
}

/*
 * Builds schema tenant t outside any transaction: steps 1 and 2 above.
 * Sets t->object_oid, t->schema and t->version and returns the steps
 * applied (TmStep).  On failure, removes what it made and raises the
 * error; the tenant's catalog row is the caller's.
 */
List *
tm_build_schema(TmTenant *t, List *migrations, Oid requester, bool own_role)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *volatile applied = NIL;

	PG_TRY();
	{
		tm_build_start(t, requester, own_role);
		for (;;)
		{
			List	   *steps;
			TmStep	   *s;
			int64		current;

			tm_xact_begin();
			steps = tm_migration_plan(t, migrations, PG_INT64_MAX, &current);
			t->version = current;
			if (steps == NIL)
			{
				tm_xact_commit();
				break;
			}
			s = linitial(steps);
			s->fresh = true;	/* nobody uses it yet (see above) */
			tm_migration_apply(t, s);
			tm_xact_commit();
			applied = lappend(applied, s);
			tm_pause_point("build:after-migration");
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		tm_xact_abort();
		tm_build_remove(t);
		ReThrowError(edata);
	}
	PG_END_TRY();
	return applied;
}

/*
 * For the launcher: removes what the build of an orphan intent left (the
 * schema carrying the tenant's label and its roles, if tenant_mgr's), and
 * the intent, in a transaction of its own.
 */
void
tm_build_remove_orphan(TmIntent *intent)
{
	TmTenant   *t = tm_tenant_make(intent->tenant, TM_SCHEMA,
								   intent->object_name, intent->owner);

	t->id = intent->tenant_id;
	tm_xact_begin();
	tm_build_drop_unfinished(t);
	tm_schematenant_drop(t);
	tm_intent_delete(intent->id);
	tm_xact_commit();
	ereport(LOG,
			(errmsg("tenant_mgr removed what an aborted creation of tenant \"%s\" left",
					t->name)));
}
