/*-------------------------------------------------------------------------
 *
 * history.c
 *		How long tenant_mgr remembers: erasing a dropped customer's name
 *		(tenant_purge), and pruning old events and finished jobs
 *		(history_prune, and the launcher hourly under
 *		tenant_mgr.history_retention_days).
 *
 * The history (tenant_mgr.event), the finished jobs and the fleet runs
 * name tenants.  For a customer that invoked its right to erasure, its
 * tenant is dropped and then its name purged from all three; nothing else
 * in the catalog keeps it.
 * Queued and running work is never pruned.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "tenant_mgr.h"

PG_FUNCTION_INFO_V1(tenant_purge);
PG_FUNCTION_INFO_V1(history_prune);

/* When the launcher pruned last (its own process). */
static TimestampTz tm_last_prune = 0;

/*
 * tenant_purge(name) returns bigint
 *
 * Removes every event and finished job naming a tenant that no longer
 * exists; returns how many rows went.  A tenant still in the catalog, or
 * with work queued, running or being cleaned up, is an error.
 */
Datum
tenant_purge(PG_FUNCTION_ARGS)
{
	char	   *name;
	int64		removed;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	tm_spi_connect();
	tm_tenant_lock(name);
	if (tm_tenant_fetch(name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("tenant \"%s\" still exists", name),
				 errhint("Drop it first with tenant_mgr.tenant_drop('%s').", name)));
	if (tm_jobs_pending(name))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("work on tenant \"%s\" is not finished", name),
				 errhint("Wait for it with tenant_mgr.tenant_wait('%s'), then purge.", name)));
	removed = tm_events_prune(name, (Datum) 0);
	removed += tm_jobs_prune(name, (Datum) 0);
	removed += tm_runs_prune(name, (Datum) 0);
	tm_spi_finish();
	PG_RETURN_INT64(removed);
}

/*
 * history_prune(older_than) returns bigint
 *
 * Removes events older than older_than and jobs finished longer ago;
 * returns how many rows went.
 */
Datum
history_prune(PG_FUNCTION_ARGS)
{
	Interval   *older_than;
	int64		removed;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the age of what to prune must not be null")));
	older_than = PG_GETARG_INTERVAL_P(0);
	if (older_than->time < 0 || older_than->day < 0 || older_than->month < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the age of what to prune must not be negative")));

	tm_spi_connect();
	removed = tm_events_prune(NULL, IntervalPGetDatum(older_than));
	removed += tm_jobs_prune(NULL, IntervalPGetDatum(older_than));
	removed += tm_runs_prune(NULL, IntervalPGetDatum(older_than));
	tm_spi_finish();
	PG_RETURN_INT64(removed);
}

/*
 * For the launcher, outside a transaction: prunes what is older than
 * tenant_mgr.history_retention_days, at most once an hour.
 */
void
tm_history_prune_due(void)
{
	TimestampTz current = GetCurrentTimestamp();
	Interval   *age;
	int64		removed;

	if (tm_history_retention_days <= 0 ||
		!TimestampDifferenceExceeds(tm_last_prune, current, 3600 * 1000))
		return;
	tm_last_prune = current;
	age = palloc0(sizeof(Interval));
	age->day = tm_history_retention_days;
	tm_xact_begin();
	removed = tm_events_prune(NULL, IntervalPGetDatum(age));
	removed += tm_jobs_prune(NULL, IntervalPGetDatum(age));
	removed += tm_runs_prune(NULL, IntervalPGetDatum(age));
	tm_xact_commit();
	if (removed > 0)
		ereport(LOG,
				(errmsg("tenant_mgr removed " INT64_FORMAT " events and finished jobs older than %d days",
						removed, tm_history_retention_days)));
}
