/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  Refuses DROP EXTENSION tenant_mgr while work is in flight.
 *
 * Queued jobs, intents (databases and schemas an executor is building or
 * removing), fleet runs and spares being built all stand for objects that
 * are half made: a database created but not yet marked and closed to
 * PUBLIC, say.  Dropping the catalog under them would leave such objects
 * with nothing to finish or remove them, and with no record that
 * verify() could find after a later CREATE EXTENSION.  So the drop waits
 * for the work to end: the caller is told what is in flight and tries
 * again.
 *
 * Only in the control database of a server that preloads tenant_mgr: there
 * the launcher and its workers finish the work.  Elsewhere nothing would
 * ever finish it, and refusing would make the extension impossible to drop.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"

#include "tenant_mgr.h"

/* how many times, 10 ms apart, the extension's lock is tried */
#define TM_GUARD_LOCK_TRIES 200

static ProcessUtility_hook_type tm_prev_utility = NULL;

/* True if the names a DROP statement lists include tenant_mgr. */
static bool
tm_names_us(List *objects)
{
	ListCell   *lc;

	foreach(lc, objects)
	{
		Node	   *obj = lfirst(lc);

		if (IsA(obj, String) && strcmp(strVal(obj), "tenant_mgr") == 0)
			return true;
	}
	return false;
}

/*
 * True if the catalog table relname exists (runs and spares are new in
 * 1.1); with lock, locks it against writers until the end of the
 * transaction: callers that would queue or record work wait, and find the
 * catalog gone if the drop commits.
 */
static bool
tm_guard_table(Oid nspoid, const char *relname, bool lock)
{
	Oid			relid = get_relname_relid(relname, nspoid);

	if (!OidIsValid(relid))
		return false;
	if (lock)
		LockRelationOid(relid, ShareRowExclusiveLock);
	return true;
}

/* Appends "n thing" (or things) to a list being built, unless n is 0. */
static void
tm_count_append(StringInfo buf, int64 n, const char *one, const char *many)
{
	if (n == 0)
		return;
	appendStringInfo(buf, "%s" INT64_FORMAT " %s", buf->len > 0 ? ", " : "",
					 n, n == 1 ? one : many);
}

/* Raises an error if tenant_mgr has work in flight in this database. */
static void
tm_guard_drop_extension(void)
{
	Oid			extoid;
	Oid			nspoid;
	int			tries;
	bool		busy = false;
	bool		has_runs;
	bool		has_spares;
	int64		jobs;
	int64		intents;
	int64		runs;
	int64		spares;

	extoid = get_extension_oid("tenant_mgr", true);
	if (!OidIsValid(extoid) || !tm_is_control_database())
		return;

	/*
	 * The extension's lock, as the drop would take it, but first: the
	 * launcher's and job workers' catalog transactions take it shared
	 * (tm_xact_begin), so they end before the drop touches a table they
	 * use, and none starts until it is over.  Theirs last milliseconds,
	 * unless one is in the middle of work, which is in flight too.
	 */
	for (tries = 0;; tries++)
	{
		if (ConditionalLockDatabaseObject(ExtensionRelationId, extoid, 0,
										  AccessExclusiveLock))
			break;
		if (tries >= TM_GUARD_LOCK_TRIES)
		{
			busy = true;
			break;
		}
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10 * 1000L);
	}
	nspoid = get_namespace_oid("tenant_mgr", true);
	if (!OidIsValid(nspoid) ||
		!tm_guard_table(nspoid, "job", !busy) || !tm_guard_table(nspoid, "intent", !busy))
		return;
	has_runs = tm_guard_table(nspoid, "run", !busy);
	has_spares = tm_guard_table(nspoid, "spare", !busy);

	tm_spi_connect();
	/* the latest snapshot: what committed before the locks were granted */
	tm_catalog_read_latest(psprintf("SELECT"
									" (SELECT count(*) FROM tenant_mgr.job"
									"   WHERE state IN ('queued', 'running')),"
									" (SELECT count(*) FROM tenant_mgr.intent),"
									" %s, %s",
									has_runs ?
									"(SELECT count(*) FROM tenant_mgr.run"
									"   WHERE state IN ('running', 'stopping'))" :
									"0::bigint",
									has_spares ?
									"(SELECT count(*) FROM tenant_mgr.spare"
									"   WHERE state = 'building')" :
									"0::bigint"),
						   0, NULL, NULL);
	jobs = tm_get_int64(0, 1);
	intents = tm_get_int64(0, 2);
	runs = tm_get_int64(0, 3);
	spares = tm_get_int64(0, 4);
	tm_spi_finish();

	if (busy || jobs + intents + runs + spares > 0)
	{
		StringInfoData what;

		initStringInfo(&what);
		tm_count_append(&what, jobs, "queued or running job", "queued or running jobs");
		tm_count_append(&what, intents, "database or schema being built or removed",
						"databases or schemas being built or removed");
		tm_count_append(&what, runs, "migration run going on", "migration runs going on");
		tm_count_append(&what, spares, "spare tenant being built", "spare tenants being built");
		if (what.len == 0)
			appendStringInfoString(&what, "a tenant_mgr background worker's transaction");
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("cannot drop extension tenant_mgr while it has work in progress"),
				 errdetail("In progress: %s.", what.data),
				 errhint("Wait until the views tenant_mgr.jobs and tenant_mgr.runs show nothing queued or running and tenant_mgr.pool nothing building, then drop the extension again.")));
	}
}

static void
tm_guard_utility(PlannedStmt *pstmt, const char *queryString,
				 bool readOnlyTree, ProcessUtilityContext context,
				 ParamListInfo params, QueryEnvironment *queryEnv,
				 DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	/* DROP SCHEMA tenant_mgr CASCADE drops the extension too */
	if (IsA(parsetree, DropStmt))
	{
		DropStmt   *stmt = (DropStmt *) parsetree;

		if ((stmt->removeType == OBJECT_EXTENSION ||
			 (stmt->removeType == OBJECT_SCHEMA && stmt->behavior == DROP_CASCADE)) &&
			tm_names_us(stmt->objects))
			tm_guard_drop_extension();
	}

	if (tm_prev_utility)
		tm_prev_utility(pstmt, queryString, readOnlyTree, context, params,
						queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/* Installs the guard; from _PG_init. */
void
tm_guard_init(void)
{
	tm_prev_utility = ProcessUtility_hook;
	ProcessUtility_hook = tm_guard_utility;
}
