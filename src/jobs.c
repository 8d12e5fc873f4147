/*-------------------------------------------------------------------------
 *
 * jobs.c
 *		The job queue: queueing work in the caller's transaction, waking
 *		the launcher at commit, and waiting for the work to finish.
 *
 * A job is a row of tenant_mgr.job inserted in the caller's transaction:
 * if that transaction rolls back, the job never existed.  A transaction
 * callback sets the launcher's latch when a transaction that queued work
 * commits, and when one that asked an executor for a database aborts (so
 * that the orphan goes at once rather than at the next poll).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "tenant_mgr.h"

PG_FUNCTION_INFO_V1(tenant_wait);

/* What the current transaction did that the launcher must hear of. */
static bool tm_queued_in_xact = false;
static bool tm_intent_in_xact = false;

static void
tm_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (tm_queued_in_xact)
				tm_wake_launcher();
			tm_queued_in_xact = tm_intent_in_xact = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (tm_intent_in_xact)
				tm_wake_launcher();
			tm_queued_in_xact = tm_intent_in_xact = false;
			break;
		default:
			break;
	}
}

/* Registers the transaction callback; called from _PG_init. */
void
tm_jobs_init(void)
{
	RegisterXactCallback(tm_xact_callback, NULL);
}

/* The launcher must look at the queue when this transaction commits. */
void
tm_wake_at_commit(void)
{
	tm_queued_in_xact = true;
}

/* An executor made an intent for this transaction: wake on abort. */
void
tm_wake_at_abort(void)
{
	tm_intent_in_xact = true;
}

/*
 * Queues a job in the current transaction and returns its id.  Expects an
 * SPI connection.
 */
int64
tm_job_queue(const char *tenant, const char *action, const char *object_name,
			 Oid database_oid, const char *owner, bool own_role, bool force)
{
	int64		id = tm_job_insert(tenant, action, object_name, database_oid,
								   owner, own_role, force);

	tm_wake_at_commit();
	return id;
}

/*
 * tenant_wait(name, timeout) returns bool
 *
 * Waits until no job of the tenant is queued or running.  Returns true if
 * its last job succeeded (or it never had one), false if it failed.
 */
Datum
tenant_wait(PG_FUNCTION_ARGS)
{
	char	   *name;
	Interval   *timeout;
	TimestampTz deadline;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		result = true;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	timeout = PG_ARGISNULL(1) ? NULL : PG_GETARG_INTERVAL_P(1);
	if (tm_queued_in_xact)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot wait for work queued by the current transaction"),
				 errhint("Commit the transaction first.")));
	if (!tm_preloaded())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tenant_mgr must be loaded via shared_preload_libraries to run queued work"),
				 errhint("Add tenant_mgr to shared_preload_libraries and restart the server.")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tenant_wait() cannot be used in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("Its snapshot would never show the work finishing.")));

	deadline = timeout ?
		DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												TimestampTzGetDatum(GetCurrentTimestamp()),
												IntervalPGetDatum(timeout))) :
		DT_NOEND;
	values[0] = CStringGetTextDatum(name);

	tm_spi_connect();
	for (;;)
	{
		/* each query takes a new snapshot: read committed */
		tm_catalog_exec("SELECT count(*) FILTER (WHERE state IN ('queued', 'running')),"
						" (array_agg(state ORDER BY id DESC))[1]"
						" FROM tenant_mgr.job WHERE tenant = $1",
						1, types, values, NULL, SPI_OK_SELECT);
		if (strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "0") == 0)
		{
			char	   *last = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

			result = last == NULL || strcmp(last, "done") == 0;
			break;
		}
		if (GetCurrentTimestamp() >= deadline)
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("timed out waiting for tenant \"%s\"", name),
					 errhint("See tenant_mgr.jobs for the work still queued or running.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 50L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	tm_spi_finish();
	PG_RETURN_BOOL(result);
}
