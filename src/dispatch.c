/*-------------------------------------------------------------------------
 *
 * dispatch.c
 *		Starting executors and collecting what they report.
 *
 * A driver (a backend running an interactive call, or the launcher) puts a
 * TmExecTask with the registered migrations into a dynamic shared memory
 * segment, starts a dynamic background worker with the segment's handle,
 * and waits for it to exit; the executor writes its result, or its error,
 * into the same segment.  A driver interrupted while waiting terminates its
 * executor before the error propagates, so no executor outlives the
 * request that started it unnoticed.
 *
 * The segment belongs to the current resource owner: a backend's
 * transaction, or the launcher's long-lived owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "tenant_mgr.h"

/*
 * Runs whose segments no resource owner will release (made outside a
 * transaction, as the launcher does), so that an error can release them.
 */
static List *tm_untracked_runs = NIL;

/* Serialized strings are stored as a length (-1 for NULL) and the bytes. */
static char *
tm_put_string(char *p, const char *s)
{
	int32		len = s ? (int32) strlen(s) : -1;

	memcpy(p, &len, sizeof(len));
	p += sizeof(len);
	if (len > 0)
	{
		memcpy(p, s, len);
		p += len;
	}
	return p;
}

static const char *
tm_get_string(const char **p)
{
	int32		len;
	char	   *s;

	memcpy(&len, *p, sizeof(len));
	*p += sizeof(len);
	if (len < 0)
		return NULL;
	s = pnstrdup(*p, len);
	*p += len;
	return s;
}

static Size
tm_string_size(const char *s)
{
	return sizeof(int32) + (s ? strlen(s) : 0);
}

/*
 * Creates the segment of one executor run: the task for tenant (may be
 * NULL) in database dboid, and the migrations it may need.  Nothing is
 * started yet.
 */
TmExecRun *
tm_exec_prepare(TmExecAction action, Oid dboid, const TmTenant *tenant,
				List *migrations)
{
	TmExecRun  *run = MemoryContextAllocZero(CurrentResourceOwner ?
											 CurrentMemoryContext : TopMemoryContext,
											 sizeof(TmExecRun));
	TmExecTask *task;
	Size		size;
	Size		steps;
	Size		texts_off;
	ListCell   *lc;
	char	   *p;

	steps = mul_size(sizeof(TmExecStep), list_length(migrations));
	size = add_size(offsetof(TmExecTask, steps), steps);
	foreach(lc, migrations)
	{
		TmMigration *m = lfirst(lc);

		size = add_size(size, sizeof(int64) + sizeof(bool) +
						tm_string_size(m->name) + tm_string_size(m->checksum) +
						tm_string_size(m->up_sql) + tm_string_size(m->down_sql));
	}

	/* the texts of the result (error, ledger problem) go last */
	texts_off = size;
	size = add_size(size, TM_TEXTS_SIZE);

	run->seg = dsm_create(size, 0);
	task = dsm_segment_address(run->seg);
	memset(task, 0, offsetof(TmExecTask, steps));
	task->action = action;
	task->dboid = dboid;
	task->requester = GetUserId();
	if (tenant)
	{
		strlcpy(task->tenant, tenant->name, NAMEDATALEN);
		if (tenant->id)
			strlcpy(task->tenant_id, tenant->id, TM_ID_LEN);
		strlcpy(task->object_name, tenant->object_name, NAMEDATALEN);
		strlcpy(task->owner, tenant->owner, NAMEDATALEN);
		task->database_oid = tenant->object_oid;
		task->version = tenant->version;
	}
	task->target = PG_INT64_MAX;
	task->driver_procno = MyProc->pgprocno;
	task->state = TM_EXEC_PENDING;
	task->nmigrations = list_length(migrations);
	task->migrations_off = offsetof(TmExecTask, steps) + steps;
	task->texts_off = texts_off;
	task->texts_used = 0;

	p = (char *) task + task->migrations_off;
	foreach(lc, migrations)
	{
		TmMigration *m = lfirst(lc);

		memcpy(p, &m->version, sizeof(int64));
		p += sizeof(int64);
		memcpy(p, &m->transactional, sizeof(bool));
		p += sizeof(bool);
		p = tm_put_string(p, m->name);
		p = tm_put_string(p, m->checksum);
		p = tm_put_string(p, m->up_sql);
		p = tm_put_string(p, m->down_sql);
	}

	run->task = task;
	if (CurrentResourceOwner == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

		tm_untracked_runs = lappend(tm_untracked_runs, run);
		MemoryContextSwitchTo(oldcxt);
		/* the run itself must outlive the caller's memory context too */
	}
	return run;
}

/*
 * Stores s as one of the result texts of task (*field: message, detail,
 * hint, context or problem).  What does not fit in the text area is cut,
 * on a character boundary of the database encoding, so that what the
 * driver stores is always valid text.  Safe in an executor's error path:
 * it allocates nothing.
 */
void
tm_task_set_text(TmExecTask *task, Size *field, const char *s)
{
	char	   *area = (char *) task + task->texts_off;
	int			len = (int) strlen(s);
	int			avail = (int) (TM_TEXTS_SIZE - task->texts_used) - 1;

	if (avail <= 0)
		return;
	if (len > avail)
		len = pg_mbcliplen(s, len, avail);
	memcpy(area + task->texts_used, s, len);
	area[task->texts_used + len] = '\0';
	*field = task->texts_used + 1;	/* 0 means none */
	task->texts_used += len + 1;
}

/* One of the result texts of task, "" when it has none. */
const char *
tm_task_text(const TmExecTask *task, Size field)
{
	return field == 0 ? "" : (const char *) task + task->texts_off + field - 1;
}

/* Returns the migrations of a task as a List of TmMigration. */
List *
tm_task_migrations(TmExecTask *task)
{
	const char *p = (const char *) task + task->migrations_off;
	List	   *result = NIL;
	int			i;

	for (i = 0; i < task->nmigrations; i++)
	{
		TmMigration *m = palloc0(sizeof(TmMigration));

		memcpy(&m->version, p, sizeof(int64));
		p += sizeof(int64);
		memcpy(&m->transactional, p, sizeof(bool));
		p += sizeof(bool);
		m->name = (char *) tm_get_string(&p);
		m->checksum = (char *) tm_get_string(&p);
		m->up_sql = (char *) tm_get_string(&p);
		m->down_sql = (char *) tm_get_string(&p);
		result = lappend(result, m);
	}
	return result;
}

/*
 * Starts the executor of a prepared run.  Returns false, starting nothing,
 * when no background worker slot is free within a second.
 */
bool
tm_exec_launch(TmExecRun *run)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strcpy(worker.bgw_library_name, "tenant_mgr");
	strcpy(worker.bgw_function_name, "tm_executor_main");
	if (run->task->action == TM_EXEC_RUN_LEAD)
		snprintf(worker.bgw_name, BGW_MAXLEN, "tenant_mgr leader of run " INT64_FORMAT,
				 run->task->run_id);
	else if (run->task->action == TM_EXEC_RUN_HELP)
		snprintf(worker.bgw_name, BGW_MAXLEN, "tenant_mgr helper of run " INT64_FORMAT,
				 run->task->run_id);
	else if (run->task->action == TM_EXEC_BUILD_SCHEMA)
		snprintf(worker.bgw_name, BGW_MAXLEN, "tenant_mgr builder of %s",
				 run->task->tenant);
	else
		snprintf(worker.bgw_name, BGW_MAXLEN, "tenant_mgr executor for %s",
				 run->task->tenant[0] ? run->task->tenant : "reconcile");
	strcpy(worker.bgw_type, "tenant_mgr executor");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(run->seg));
	worker.bgw_notify_pid = MyProcPid;

	if (RegisterDynamicBackgroundWorker(&worker, &run->handle))
		return true;

	/*
	 * A driver stops waiting as soon as its executor reports, before the
	 * executor has exited and given its slot back; give that exit a moment
	 * (the postmaster sets our latch when one of our workers is gone).
	 */
	for (int i = 0; i < 20; i++)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 50L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (RegisterDynamicBackgroundWorker(&worker, &run->handle))
			return true;
	}
	return false;
}

/* Marks a run failed by the driver (the executor could not say why). */
static void
tm_exec_fail(TmExecRun *run, int sqlerrcode, const char *message)
{
	if (run->task->state != TM_EXEC_PENDING)
		return;
	run->task->sqlerrcode = sqlerrcode;
	tm_task_set_text(run->task, &run->task->message, message);
	run->task->state = TM_EXEC_FAILED;
}

/*
 * Waits until the executor has reported its result (it sets our latch) or
 * has exited, at most tenant_mgr.job_timeout.  An executor that exits
 * without a result, or runs out of time, leaves a failure in the task.  On
 * interrupts the executor is terminated first.
 */
void
tm_exec_wait(TmExecRun *run)
{
	TimestampTz start = GetCurrentTimestamp();

	PG_TRY();
	{
		for (;;)
		{
			pid_t		pid;
			BgwHandleStatus status;

			/* the result counts, not the exit, which takes a while */
			pg_read_barrier();
			if (run->task->state != TM_EXEC_PENDING)
				break;
			status = GetBackgroundWorkerPid(run->handle, &pid);
			if (status == BGWH_STOPPED || status == BGWH_POSTMASTER_DIED)
				break;
			if (tm_job_timeout > 0 &&
				TimestampDifferenceExceeds(start, GetCurrentTimestamp(),
										   tm_job_timeout * 1000))
			{
				TerminateBackgroundWorker(run->handle);
				(void) WaitForBackgroundWorkerShutdown(run->handle);

				/*
				 * Dying of our SIGTERM, the executor reports 57P01 itself;
				 * the timeout is what happened.  Where it was stays in the
				 * context.  A result it reached first stands.
				 */
				if (run->task->state == TM_EXEC_FAILED &&
					run->task->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
				{
					run->task->detail = run->task->hint = 0;
					run->task->state = TM_EXEC_PENDING;
				}
				tm_exec_fail(run, ERRCODE_QUERY_CANCELED,
							 psprintf("executor did not finish within tenant_mgr.job_timeout (%d s)",
									  tm_job_timeout));
				break;
			}
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1000L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_CATCH();
	{
		TerminateBackgroundWorker(run->handle);
		PG_RE_THROW();
	}
	PG_END_TRY();

	tm_exec_fail(run, ERRCODE_CONNECTION_FAILURE,
				 "executor exited without reporting a result");
}

/*
 * True once the executor has reported its result, or exited without one
 * (tm_exec_wait then marks it failed, at once).  Its exit may still be
 * going on: a driver can collect the result and reuse the executor's place
 * without waiting for it.
 */
bool
tm_exec_reported(TmExecRun *run)
{
	pid_t		pid;
	BgwHandleStatus status;

	pg_read_barrier();
	if (run->task->state != TM_EXEC_PENDING)
		return true;
	status = GetBackgroundWorkerPid(run->handle, &pid);
	return status == BGWH_STOPPED || status == BGWH_POSTMASTER_DIED;
}

/* Starts an executor and waits for it; no free slot is an error. */
void
tm_exec_run(TmExecRun *run)
{
	if (!tm_exec_launch(run))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a tenant_mgr executor"),
				 errdetail("All background worker slots are in use."),
				 errhint("Raise max_worker_processes, or try again later.")));
	tm_exec_wait(run);
}

/*
 * Starts the executor of a prepared run for a claimed job, as the role that
 * queued it, and waits for it.  Returns false when no worker slot was free:
 * then the run is released and the job goes back to the queue, with a
 * delay that grows with its attempts (job->requeued tells the launcher).
 */
bool
tm_exec_for_job(TmExecRun *run, TmJob *job)
{
	run->task->requester = job->requester;
	run->task->job_id = job->id;
	if (tm_exec_launch(run))
	{
		tm_exec_wait(run);
		return true;
	}
	tm_exec_release(run);
	ereport(WARNING,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("could not start a tenant_mgr executor for job " INT64_FORMAT " (%s of tenant \"%s\")",
					job->id, job->action == TM_JOB_CREATE ? "create" : "drop", job->tenant),
			 errdetail("All background worker slots are in use; the job stays queued."),
			 errhint("Raise max_worker_processes (now %d).", max_worker_processes)));
	tm_job_requeue(job, Min(job->attempts, 10));
	job->requeued = true;
	tm_slots_short();
	return false;
}

/* Raises the error an executor reported, as if it had happened here. */
void
tm_exec_raise(TmExecRun *run)
{
	TmExecTask *task = run->task;

	if (task->state != TM_EXEC_FAILED)
		return;
	ereport(ERROR,
			(errcode(task->sqlerrcode),
			 errmsg_internal("%s", tm_task_text(task, task->message)),
			 task->detail ? errdetail_internal("%s", tm_task_text(task, task->detail)) : 0,
			 task->hint ? errhint("%s", tm_task_text(task, task->hint)) : 0,
			 task->context ? errcontext("%s", tm_task_text(task, task->context)) : 0));
}

/* An executor's error as ErrorData, for the event log and result rows. */
ErrorData *
tm_exec_error(TmExecTask *task)
{
	ErrorData  *edata;

	if (task->state != TM_EXEC_FAILED)
		return NULL;
	edata = palloc0(sizeof(ErrorData));
	edata->elevel = ERROR;
	edata->sqlerrcode = task->sqlerrcode;
	edata->message = pstrdup(tm_task_text(task, task->message));
	edata->detail = task->detail ? pstrdup(tm_task_text(task, task->detail)) : NULL;
	edata->hint = task->hint ? pstrdup(tm_task_text(task, task->hint)) : NULL;
	edata->context = task->context ? pstrdup(tm_task_text(task, task->context)) : NULL;
	return edata;
}

/* Migration steps an executor reported, as TmStep with their migrations. */
List *
tm_exec_steps(TmExecTask *task, List *migrations)
{
	List	   *steps = NIL;
	int			i;

	for (i = 0; i < task->nsteps; i++)
	{
		TmStep	   *s = palloc0(sizeof(TmStep));
		ListCell   *lc;

		foreach(lc, migrations)
		{
			if (((TmMigration *) lfirst(lc))->version == task->steps[i].version)
				s->migration = lfirst(lc);
		}
		Assert(s->migration != NULL);
		s->up = task->steps[i].up;
		s->ms = task->steps[i].ms;
		steps = lappend(steps, s);
	}
	return steps;
}

void
tm_exec_release(TmExecRun *run)
{
	tm_untracked_runs = list_delete_ptr(tm_untracked_runs, run);
	dsm_detach(run->seg);
	pfree(run);
}

/*
 * After an error outside a transaction: terminates the executors of runs
 * that were still open and releases their segments.
 */
void
tm_exec_release_all(void)
{
	while (tm_untracked_runs != NIL)
	{
		TmExecRun  *run = linitial(tm_untracked_runs);

		if (run->handle)
			TerminateBackgroundWorker(run->handle);
		tm_exec_release(run);
	}
}
