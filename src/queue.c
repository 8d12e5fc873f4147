/*-------------------------------------------------------------------------
 *
 * queue.c
 *		The job queue and the intents: every statement on tenant_mgr.job and
 *		tenant_mgr.intent, waking the launcher, and tenant_wait().
 *
 * A job is one step of work on one tenant (create, drop), inserted in the
 * caller's transaction: if that transaction rolls back, the job never
 * existed.  Its states:
 *
 *	queued --claim--> running --finish--> done | failed
 *	   ^                 |
 *	   +---- requeue ----+	(no worker slot, tenant busy, or a crash:
 *							 every step of a job resumes what it left)
 *
 * An intent is committed by an executor before it creates a database, and
 * names the transaction (xid) or the job that asked.  It is deleted when
 * the database becomes a ready tenant or is removed; an intent whose
 * request is over without that is an orphan (tm_intent_orphans), which the
 * launcher removes and verify() reports.
 *
 * Every statement runs as the catalog owner (spi.c).  A transaction
 * callback sets the launcher's latch when a transaction that queued work
 * commits, and when one that asked an executor for a database aborts (so
 * that the orphan goes at once rather than at the next poll).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "tenant_mgr.h"

PG_FUNCTION_INFO_V1(tenant_wait);

/* Advisory lock space of job locks (tm_job_locktag). */
#define TM_JOB_LOCK_FIELD4 0x746f

static const char *const tm_job_action_names[] = {"create", "drop"};
static const char *const tm_job_state_names[] = {"queued", "running", "done", "failed"};

/* What the current transaction did that the launcher must hear of. */
static bool tm_queued_in_xact = false;
static bool tm_intent_in_xact = false;

static SPIPlanPtr tm_plan_job_insert = NULL;
static SPIPlanPtr tm_plan_job_insert_1_0 = NULL;

static void
tm_xact_callback(XactEvent event, void *arg pg_attribute_unused())
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
tm_queue_init(void)
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
 * Queues a job in the current transaction, run by the launcher once it
 * commits, with the rights of the current user.  Expects an SPI connection.
 */
void
tm_job_queue(const char *tenant, TmJobAction action, const char *object_name,
			 Oid database_oid, const char *owner, bool own_role, bool force,
			 const char *grantee)
{
	Oid			types[9] = {TEXTOID, TEXTOID, NAMEOID, OIDOID, NAMEOID, BOOLOID,
	NAMEOID, BOOLOID, NAMEOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(tenant);
	values[1] = CStringGetTextDatum(tm_job_action_names[action]);
	values[2] = tm_name_datum(object_name);
	values[3] = ObjectIdGetDatum(database_oid);
	if (!OidIsValid(database_oid))
		nulls[3] = 'n';
	values[4] = tm_name_datum(owner);
	values[5] = BoolGetDatum(force);
	values[6] = tm_name_datum(GetUserNameFromId(GetUserId(), false));
	values[7] = BoolGetDatum(own_role);
	values[8] = tm_name_datum(grantee ? grantee : "");
	if (grantee == NULL)
		nulls[8] = 'n';
	if (tm_catalog_has_ids())
		tm_catalog_exec_kept(&tm_plan_job_insert, 0,
							 "INSERT INTO tenant_mgr.job"
							 " (tenant, action, object_name, database_oid, owner, force, requested_by, own_role,"
							 " grant_to)"
							 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
							 9, types, values, nulls, SPI_OK_INSERT);
	else
	{
		/* a 1.0 catalog has no grant_to */
		if (grantee)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("grant=%s needs the tenant_mgr catalog at version 1.1", grantee),
					 errhint("Run ALTER EXTENSION tenant_mgr UPDATE.")));
		tm_catalog_exec_kept(&tm_plan_job_insert_1_0, 0,
							 "INSERT INTO tenant_mgr.job"
							 " (tenant, action, object_name, database_oid, owner, force, requested_by, own_role)"
							 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
							 8, types, values, nulls, SPI_OK_INSERT);
	}
	tm_wake_at_commit();
}

/*
 * Records tenant t as "creating" and queues the job that builds it; a
 * tenant of that name (even one another transaction is inserting) is an
 * error.  Takes no per-tenant lock, so a bulk INSERT through a trigger
 * stays cheap.
 */
void
tm_job_queue_create(const TmTenant *t, const char *metadata, bool own_role)
{
	if (!tm_tenant_reserve(t, metadata))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("tenant \"%s\" already exists", t->name)));
	tm_job_queue(t->name, TM_JOB_CREATE, t->object_name, InvalidOid, t->owner,
				 own_role, false, t->grantee);
}

/*
 * Calls off the queued creation of a tenant in the current transaction.
 * Returns false when its job has already started (or is gone).
 */
bool
tm_job_cancel_create(const char *tenant)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(tenant)};

	tm_catalog_exec("DELETE FROM tenant_mgr.job WHERE tenant = $1"
					" AND action = 'create' AND state = 'queued'",
					1, types, values, NULL, SPI_OK_DELETE);
	return SPI_processed > 0;
}

/*
 * The tag of a job's lock, in the control database's lock space.  Job 0
 * (no job has that id) is the claim lock, which serializes claims so that
 * each claimer sees what the one before it committed.
 */
static void
tm_job_locktag(LOCKTAG *tag, int64 job_id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (job_id >> 32),
						 (uint32) job_id, TM_JOB_LOCK_FIELD4);
}

/* Gives up the session lock its runner holds on a job (tm_job_claim). */
void
tm_job_unlock(int64 job_id)
{
	LOCKTAG		tag;

	tm_job_locktag(&tag, job_id);
	LockRelease(&tag, ExclusiveLock, true);
}

/*
 * Jobs that are "running" while nobody holds their lock go back to the
 * queue: their runner (a job worker, or the launcher) died with them.
 * Every step of a job resumes what an earlier attempt left.  The state is
 * read again under the lock, as the runner may just have finished.
 */
void
tm_jobs_requeue_interrupted(void)
{
	List	   *running = NIL;
	ListCell   *lc;

	tm_xact_begin();
	tm_catalog_exec("SELECT id FROM tenant_mgr.job WHERE state = 'running'",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		int64		id = tm_get_int64(i, 1);
		MemoryContext old = MemoryContextSwitchTo(tm_result_cxt());

		running = lappend(running, palloc(sizeof(int64)));
		*(int64 *) llast(running) = id;
		MemoryContextSwitchTo(old);
	}
	tm_xact_commit();

	foreach(lc, running)
	{
		int64		id = *(int64 *) lfirst(lc);
		LOCKTAG		tag;
		Oid			types[1] = {INT8OID};
		Datum		values[1] = {Int64GetDatum(id)};

		tm_job_locktag(&tag, id);
		if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
			continue;			/* its runner lives */
		tm_xact_begin();
		tm_catalog_exec("UPDATE tenant_mgr.job SET state = 'queued'"
						" WHERE id = $1 AND state = 'running'",
						1, types, values, NULL, SPI_OK_UPDATE);
		if (SPI_processed > 0)
			ereport(LOG,
					(errmsg("tenant_mgr job " INT64_FORMAT " was interrupted and goes back to the queue",
							id)));
		tm_xact_commit();
		LockRelease(&tag, ExclusiveLock, true);
	}
}

/*
 * What makes a queued job j runnable now: it is due, and no job of its
 * tenant runs or was queued before it (a tenant's jobs run in order).
 * Written so that the test reads the index of pending jobs by tenant
 * (job_pending_idx), the candidates coming in id order from job_queued_idx:
 * a claim reads a few index entries however long the queue.
 */
#define TM_JOB_RUNNABLE \
	"j.state = 'queued' AND j.not_before <= now()" \
	" AND NOT EXISTS (SELECT 1 FROM tenant_mgr.job r" \
	"                  WHERE r.tenant = j.tenant AND r.state IN ('queued', 'running')" \
	"                    AND (r.state = 'running' OR r.id < j.id))"

/* How many jobs are runnable now, counting up to limit. */
int
tm_jobs_runnable(int limit)
{
	int			n;

	tm_xact_begin();
	tm_catalog_exec(psprintf("SELECT count(*) FROM (SELECT 1 FROM tenant_mgr.job j"
							 " WHERE " TM_JOB_RUNNABLE " LIMIT %d) s", limit),
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	n = (int) tm_get_int64(0, 1);
	tm_xact_commit();
	return n;
}

/*
 * Milliseconds until the first queued job is due (0 if one is), or -1
 * when nothing is queued.
 */
long
tm_jobs_next_due_ms(void)
{
	long		ms = -1;
	char	   *due;

	tm_xact_begin();
	tm_catalog_exec("SELECT ceil(greatest(extract(epoch FROM min(not_before) - now()), 0) * 1000)::bigint::text"
					" FROM tenant_mgr.job WHERE state = 'queued'",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	due = tm_get_text(0, 1);
	if (due)
		ms = strtol(due, NULL, 10);
	tm_xact_commit();
	return ms;
}

/*
 * Claims the oldest runnable job in a transaction of its own (outside
 * any), for this process: it holds the job's session lock until the job is
 * over (tm_job_unlock), so that tm_jobs_requeue_interrupted can tell a job
 * whose runner died.  Claims take turns (the claim lock), so that two
 * runners never take two jobs of one tenant.  Fills job and returns true,
 * or returns false when there is none.  The requester's role is looked up
 * now, so that its rights are those it has when the job runs.
 */
bool
tm_job_claim(TmJob *job)
{
	MemoryContext old;
	LOCKTAG		tag;

	tm_xact_begin();
	tm_job_locktag(&tag, 0);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	/* the statement's snapshot is taken now, after the claim before ours */
	tm_catalog_exec(psprintf("UPDATE tenant_mgr.job SET state = 'running', started_at = now(),"
							 "       attempts = attempts + 1"
							 " WHERE id = (SELECT j.id FROM tenant_mgr.job j"
							 "              WHERE " TM_JOB_RUNNABLE
							 "              ORDER BY j.id LIMIT 1 FOR UPDATE SKIP LOCKED)"
							 " RETURNING id, tenant, action, object_name, database_oid, owner,"
							 "           requested_by, attempts, own_role, %s",
							 tm_catalog_has_ids() ? "grant_to" : "NULL::pg_catalog.name"),
					0, NULL, NULL, NULL, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 0)
	{
		tm_xact_commit();
		return false;
	}
	memset(job, 0, sizeof(TmJob));
	old = MemoryContextSwitchTo(tm_result_cxt());
	job->id = tm_get_int64(0, 1);
	job->tenant = tm_get_text(0, 2);
	job->action = strcmp(tm_get_text(0, 3), "drop") == 0 ? TM_JOB_DROP : TM_JOB_CREATE;
	job->object_name = tm_get_text(0, 4);
	job->database_oid = tm_get_oid(0, 5);
	job->owner = tm_get_text(0, 6);
	job->requested_by = tm_get_text(0, 7);
	job->attempts = tm_get_int32(0, 8);
	job->own_role = tm_get_bool(0, 9);
	job->grantee = tm_get_text(0, 10);
	MemoryContextSwitchTo(old);
	INSTR_TIME_SET_CURRENT(job->started);
	job->requester = get_role_oid(job->requested_by, true);
	tm_job_locktag(&tag, job->id);
	(void) LockAcquire(&tag, ExclusiveLock, true, false);
	tm_xact_commit();
	return true;
}

/* Marks a job done in the current transaction (with what it built). */
void
tm_job_done(const TmJob *job)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job->id)};

	tm_catalog_exec("UPDATE tenant_mgr.job SET state = 'done', finished_at = now()"
					" WHERE id = $1",
					1, types, values, NULL, SPI_OK_UPDATE);
}

/* Sets a job's end state and error, in the current transaction. */
static void
tm_job_set_end(int64 job_id, ErrorData *failure)
{
	Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(job_id);
	values[1] = CStringGetTextDatum(tm_job_state_names[failure ? TM_JOB_FAILED : TM_JOB_DONE]);
	if (failure)
	{
		values[2] = CStringGetTextDatum(unpack_sql_state(failure->sqlerrcode));
		values[3] = CStringGetTextDatum(failure->message ? failure->message : "");
	}
	else
		nulls[2] = nulls[3] = 'n';
	tm_catalog_exec("UPDATE tenant_mgr.job SET state = $2, finished_at = now(),"
					" sqlstate = $3, message = $4 WHERE id = $1",
					4, types, values, nulls, SPI_OK_UPDATE);
}

/*
 * Records the end of a job in a transaction of its own: its state, the
 * failed creation of its tenant, and the event.
 */
void
tm_job_finish(TmJob *job, ErrorData *failure)
{
	tm_xact_begin();
	tm_job_set_end(job->id, failure);
	if (job->action == TM_JOB_CREATE && failure)
		tm_tenant_set_failed(job->tenant, failure->message ? failure->message : "");
	tm_event_log(job->run_id ? job->run_id : tm_run_id(), job->tenant,
				 job->action == TM_JOB_CREATE ? TM_EV_CREATE : TM_EV_DROP, 0,
				 failure ? TM_EV_FAILED : TM_EV_OK, failure,
				 tm_elapsed_ms(job->started));
	tm_xact_commit();
}

/* Puts a job back in the queue, to run again after delay_s seconds. */
void
tm_job_requeue(TmJob *job, int delay_s)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(job->id), Int32GetDatum(delay_s)};

	tm_xact_begin();
	tm_catalog_exec("UPDATE tenant_mgr.job SET state = 'queued',"
					" not_before = now() + interval '1 second' * $2"
					" WHERE id = $1",
					2, types, values, NULL, SPI_OK_UPDATE);
	tm_xact_commit();
}

/*
 * Marks a job failed after an error that ended its run, in a transaction of
 * its own (the launcher's error recovery).
 */
void
tm_job_fail(int64 job_id, ErrorData *edata)
{
	tm_xact_begin();
	tm_job_set_end(job_id, edata);
	tm_xact_commit();
}

/* True if an intent for a database of that name awaits its end. */
bool
tm_intent_pending(const char *object_name)
{
	Oid			types[1] = {NAMEOID};
	Datum		values[1] = {tm_name_datum(object_name)};

	tm_catalog_exec("SELECT 1 FROM tenant_mgr.intent WHERE object_name = $1",
					1, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * True if an intent for an object of that name is held by another request
 * than job job_id: what it stands for is being built, or awaits removal.
 */
bool
tm_intent_pending_other(const char *object_name, int64 job_id)
{
	Oid			types[2] = {NAMEOID, INT8OID};
	Datum		values[2] = {tm_name_datum(object_name), Int64GetDatum(job_id)};

	tm_catalog_exec("SELECT 1 FROM tenant_mgr.intent"
					" WHERE object_name = $1 AND job_id IS DISTINCT FROM $2",
					2, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * True if an intent for a database of that name belongs to a transaction
 * still in progress: another caller is creating the tenant right now.
 */
bool
tm_intent_in_progress(const char *object_name)
{
	Oid			types[1] = {NAMEOID};
	Datum		values[1] = {tm_name_datum(object_name)};

	tm_catalog_exec("SELECT 1 FROM tenant_mgr.intent WHERE object_name = $1"
					" AND xid IS NOT NULL"
					" AND pg_catalog.pg_xact_status(xid) = 'in progress'",
					1, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * Records the intent of an executor's CREATE_DATABASE or BUILD_SCHEMA task
 * (for a job, the one an earlier run of the same job left, if any) and
 * returns its id.
 */
int64
tm_intent_record(const TmExecTask *task)
{
	Oid			types[7] = {TEXTOID, NAMEOID, NAMEOID, NAMEOID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

	if (task->job_id != 0)
	{
		values[0] = Int64GetDatum(task->job_id);
		tm_catalog_exec("SELECT id FROM tenant_mgr.intent WHERE job_id = $1",
						1, &types[5], values, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
			return tm_get_int64(0, 1);
	}
	values[0] = CStringGetTextDatum(task->tenant);
	values[1] = tm_name_datum(task->object_name);
	values[2] = tm_name_datum(task->owner);
	values[3] = tm_name_datum(GetUserNameFromId(task->requester, false));
	values[4] = CStringGetTextDatum(psprintf(UINT64_FORMAT, task->xid));
	values[5] = Int64GetDatum(task->job_id);
	if (task->xid == 0)
		nulls[4] = 'n';
	if (task->job_id == 0)
		nulls[5] = 'n';
	values[6] = CStringGetTextDatum(task->tenant_id);
	if (task->tenant_id[0] == '\0')
		nulls[6] = 'n';
	if (tm_catalog_has_runs())
		tm_catalog_exec(psprintf("INSERT INTO tenant_mgr.intent"
								 " (tenant, object_name, owner, requested_by, xid, job_id, tenant_id,"
								 "  isolation)"
								 " VALUES ($1, $2, $3, $4, $5::xid8, $6, $7::uuid, '%s') RETURNING id",
								 task->action == TM_EXEC_BUILD_SCHEMA ? "schema" : "database"),
						7, types, values, nulls, SPI_OK_INSERT_RETURNING);
	else if (tm_catalog_has_ids())
		tm_catalog_exec("INSERT INTO tenant_mgr.intent"
						" (tenant, object_name, owner, requested_by, xid, job_id, tenant_id)"
						" VALUES ($1, $2, $3, $4, $5::xid8, $6, $7::uuid) RETURNING id",
						7, types, values, nulls, SPI_OK_INSERT_RETURNING);
	else
		tm_catalog_exec("INSERT INTO tenant_mgr.intent"
						" (tenant, object_name, owner, requested_by, xid, job_id)"
						" VALUES ($1, $2, $3, $4, $5::xid8, $6) RETURNING id",
						6, types, values, nulls, SPI_OK_INSERT_RETURNING);
	return tm_get_int64(0, 1);
}

/* The intent learns the OID of the database it stands for. */
void
tm_intent_set_database(int64 id, Oid dboid)
{
	Oid			types[2] = {INT8OID, OIDOID};
	Datum		values[2] = {Int64GetDatum(id), ObjectIdGetDatum(dboid)};

	tm_catalog_exec("UPDATE tenant_mgr.intent SET database_oid = $2 WHERE id = $1",
					2, types, values, NULL, SPI_OK_UPDATE);
}

/* True if intent id still exists (read with a new snapshot). */
bool
tm_intent_exists(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	tm_catalog_exec("SELECT 1 FROM tenant_mgr.intent WHERE id = $1",
					1, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

void
tm_intent_delete(int64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	tm_catalog_exec("DELETE FROM tenant_mgr.intent WHERE id = $1",
					1, types, values, NULL, SPI_OK_DELETE);
}

void
tm_intent_delete_for_job(int64 job_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job_id)};

	tm_catalog_exec("DELETE FROM tenant_mgr.intent WHERE job_id = $1",
					1, types, values, NULL, SPI_OK_DELETE);
}

/*
 * Deletes the intents whose database is a ready tenant: a caller that
 * committed, or a job that got as far as recording its tenant.
 */
void
tm_intents_settle(void)
{
	tm_catalog_exec("DELETE FROM tenant_mgr.intent i"
					" WHERE EXISTS (SELECT 1 FROM tenant_mgr.tenant t"
					"                WHERE t.isolation = 'database' AND t.state = 'ready'"
					"                  AND t.object_oid = i.database_oid)",
					0, NULL, NULL, NULL, SPI_OK_DELETE);
}

/*
 * Returns the intents (TmIntent) of requests that are over: their
 * transaction has ended, or their job is finished.  Whatever they stand for
 * is an orphan; the same rule serves the launcher and verify().
 */
List *
tm_intent_orphans(void)
{
	List	   *result = NIL;
	uint64		i;
	MemoryContext old;

	tm_catalog_exec(psprintf("SELECT i.id, i.tenant, i.object_name, i.owner, i.database_oid, %s, %s"
							 "  FROM tenant_mgr.intent i"
							 "  LEFT JOIN tenant_mgr.job j ON j.id = i.job_id"
							 " WHERE (i.xid IS NULL OR pg_catalog.pg_xact_status(i.xid) <> 'in progress')"
							 "   AND (j.id IS NULL OR j.state NOT IN ('queued', 'running'))"
							 " ORDER BY i.id",
							 tm_catalog_has_ids() ? "i.tenant_id::pg_catalog.text" :
							 "NULL::pg_catalog.text",
							 tm_catalog_has_runs() ? "i.isolation" : "'database'::pg_catalog.text"),
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	old = MemoryContextSwitchTo(tm_result_cxt());
	for (i = 0; i < SPI_processed; i++)
	{
		TmIntent   *intent = palloc0(sizeof(TmIntent));

		intent->id = tm_get_int64(i, 1);
		intent->tenant = tm_get_text(i, 2);
		intent->object_name = tm_get_text(i, 3);
		intent->owner = tm_get_text(i, 4);
		intent->database_oid = tm_get_oid(i, 5);
		intent->tenant_id = tm_get_text(i, 6);
		intent->isolation = tm_isolation_parse(tm_get_text(i, 7));
		result = lappend(result, intent);
	}
	MemoryContextSwitchTo(old);
	return result;
}

/*
 * Returns the OIDs of the databases the queue accounts for: those of
 * intents, and those that queued or running jobs work on.
 */
List *
tm_queue_databases(void)
{
	List	   *result = NIL;
	uint64		i;
	MemoryContext old;

	tm_catalog_exec("SELECT database_oid FROM tenant_mgr.intent"
					" WHERE database_oid IS NOT NULL"
					" UNION SELECT database_oid FROM tenant_mgr.job"
					" WHERE database_oid IS NOT NULL AND state IN ('queued', 'running')",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	old = MemoryContextSwitchTo(tm_result_cxt());
	for (i = 0; i < SPI_processed; i++)
		result = lappend_oid(result, tm_get_oid(i, 1));
	MemoryContextSwitchTo(old);
	return result;
}

/*
 * Deletes finished jobs: those of tenant (any age) when tenant is given,
 * else those finished longer than older_than (an interval Datum) ago.
 * Queued and running jobs stay.  Returns how many.
 */
int64
tm_jobs_prune(const char *tenant, Datum older_than)
{
	Oid			types[1];
	Datum		values[1];

	if (tenant)
	{
		types[0] = TEXTOID;
		values[0] = CStringGetTextDatum(tenant);
		tm_catalog_exec("DELETE FROM tenant_mgr.job WHERE tenant = $1"
						" AND state IN ('done', 'failed')",
						1, types, values, NULL, SPI_OK_DELETE);
	}
	else
	{
		types[0] = INTERVALOID;
		values[0] = older_than;
		tm_catalog_exec("DELETE FROM tenant_mgr.job WHERE state IN ('done', 'failed')"
						" AND finished_at < pg_catalog.now() - $1",
						1, types, values, NULL, SPI_OK_DELETE);
	}
	return (int64) SPI_processed;
}

/*
 * True if work of tenant_mgr names database dboid: a drop queued or
 * running, or an intent (a creation building it, or what an aborted one
 * left, awaiting removal).  Such a database is not for the taking.
 */
bool
tm_database_has_work(Oid dboid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(dboid)};

	tm_catalog_exec("SELECT 1 FROM tenant_mgr.job WHERE database_oid = $1"
					"   AND action = 'drop' AND state IN ('queued', 'running')"
					" UNION ALL SELECT 1 FROM tenant_mgr.intent WHERE database_oid = $1",
					1, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/* True if a job of tenant is queued or running, or an intent names it. */
bool
tm_jobs_pending(const char *tenant)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(tenant)};

	tm_catalog_exec("SELECT 1 FROM tenant_mgr.job WHERE tenant = $1 AND state IN ('queued', 'running')"
					" UNION ALL SELECT 1 FROM tenant_mgr.intent WHERE tenant = $1",
					1, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * How many jobs of a tenant are queued or running; *last_ok tells whether
 * its newest job succeeded (true when it never had one), *known whether it
 * has a catalog row or ever had a job.
 */
static int64
tm_job_poll(const char *tenant, bool *last_ok, bool *known)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(tenant)};
	char	   *last;

	tm_catalog_exec("SELECT count(*) FILTER (WHERE state IN ('queued', 'running')),"
					" (array_agg(state ORDER BY id DESC))[1],"
					" count(*) > 0 OR EXISTS (SELECT FROM tenant_mgr.tenant WHERE name = $1)"
					" FROM tenant_mgr.job WHERE tenant = $1",
					1, types, values, NULL, SPI_OK_SELECT);
	last = tm_get_text(0, 2);
	*last_ok = last == NULL || strcmp(last, tm_job_state_names[TM_JOB_DONE]) == 0;
	*known = tm_get_bool(0, 3);
	return tm_get_int64(0, 1);
}

/*
 * tenant_wait(name, timeout) returns bool
 *
 * Waits until no job of the tenant is queued or running.  Returns true if
 * its last job succeeded (or it never had one), false if it failed.  A name
 * with neither a catalog row nor a job is an error: a typo must not read as
 * a ready tenant.
 */
Datum
tenant_wait(PG_FUNCTION_ARGS)
{
	char	   *name;
	Interval   *timeout;
	TimestampTz deadline;
	bool		result = true;
	bool		known;
	int64		pending;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	timeout = PG_ARGISNULL(1) ? NULL : PG_GETARG_INTERVAL_P(1);
	if (timeout &&
		DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(timeout),
										  IntervalPGetDatum(palloc0(sizeof(Interval))))) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must not be negative"),
				 errhint("Pass NULL to wait without a limit.")));
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

	tm_spi_connect();
	/* each query takes a new snapshot: read committed */
	pending = tm_job_poll(name, &result, &known);
	if (!known)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" does not exist", name),
				 errdetail("No tenant of that name is in the catalog, and none has a job.")));
	while (pending > 0)
	{
		if (GetCurrentTimestamp() >= deadline)
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("timed out waiting for tenant \"%s\"", name),
					 errhint("See tenant_mgr.jobs for the work still queued or running.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 50L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		pending = tm_job_poll(name, &result, &known);
	}
	tm_spi_finish();
	PG_RETURN_BOOL(result);
}
