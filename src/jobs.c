/*-------------------------------------------------------------------------
 *
 * jobs.c
 *		Queued jobs (create, drop), run in parallel by job workers that the
 *		launcher starts.
 *
 * A job worker is a dynamic background worker connected to the control
 * database.  It claims the oldest runnable job (queue.c), runs it, and
 * goes on until nothing is runnable, then exits: a worker start costs more
 * than a schema tenant's creation, so each worker takes many jobs.  The
 * launcher keeps up to tenant_mgr.max_workers of them going while jobs are
 * runnable.  When no worker can be started at all, or a job lately found no
 * slot for its executor (a worker would only take that slot), the launcher
 * runs jobs itself, one at a time, so that queued work goes on with few
 * worker slots.
 *
 * A runner holds its job's session lock from the claim to the end of the
 * job: a job left "running" whose lock is free lost its runner (killed, or
 * the server crashed) and goes back to the queue (tm_jobs_requeue_interrupted).
 * Every step of a job resumes what an earlier attempt left, so a job may
 * run again, but never twice at once; claims take turns, so a tenant's jobs
 * run in the order they were queued.
 *
 * An error while running a job is recorded against it and the runner goes
 * on with the next one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "tenant_mgr.h"

/* The launcher's job workers (BackgroundWorkerHandle *), in TopMemoryContext. */
static List *tm_job_workers = NIL;

/*
 * A queued schema tenant: built and recorded in one transaction, or, when
 * its migrations need transactions of their own, built outside any
 * (build.c) and then recorded.  A busy tenant goes back to the queue for a
 * second; any other failure is the job's.
 */
static void
tm_jobs_create_schema(TmJob *job, TmTenant *t)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		List	   *migrations;

		tm_xact_begin();
		migrations = tm_migration_list();
		if (tm_schematenant_create_job(t, job, migrations))
			tm_xact_commit();
		else
		{
			List	   *steps;

			tm_xact_commit();
			steps = tm_build_schema(t, migrations, job->requester, job->own_role);
			tm_xact_begin();
			tm_tenant_lock(t->name);
			tm_schematenant_record_job(t, job, steps);
			tm_xact_commit();
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);

		if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
			tm_job_requeue(job, 1);
		else
			tm_job_finish(job, edata);
	}
	PG_END_TRY();
}

/*
 * True if the role that queued a create still exists and may still ask
 * for it (EXECUTE on the function that queues such work); otherwise the
 * job fails, changing nothing.
 */
static bool
tm_job_allowed(TmJob *job)
{
	ErrorData	denied;

	memset(&denied, 0, sizeof(denied));
	if (!OidIsValid(job->requester))
	{
		denied.sqlerrcode = ERRCODE_UNDEFINED_OBJECT;
		denied.message = psprintf("role \"%s\" that requested the job does not exist any more",
								  job->requested_by);
	}
	else
	{
		const char *function = TM_FN_CREATE;
		bool		allowed;

		tm_xact_begin();
		allowed = tm_may(job->requester, function);
		tm_xact_commit();
		if (allowed)
			return true;
		denied.sqlerrcode = ERRCODE_INSUFFICIENT_PRIVILEGE;
		denied.message = psprintf("role \"%s\" that requested the job may no longer execute %s",
								  job->requested_by, function);
	}
	tm_job_finish(job, &denied);
	return false;
}

/*
 * The tenant a queued create builds: its isolation and id as its catalog
 * row says (a database tenant if the row is gone), object and owner as the
 * job says.
 */
static TmTenant *
tm_job_tenant(TmJob *job)
{
	TmTenant   *row;
	TmTenant   *t;

	tm_xact_begin();
	row = tm_tenant_fetch(job->tenant, true);
	tm_xact_commit();
	t = tm_tenant_make(job->tenant, row ? row->isolation : TM_DATABASE,
					   job->object_name, job->owner);
	if (row)
		t->id = row->id;
	t->object_oid = job->database_oid;
	t->grantee = job->grantee;
	return t;
}

/* Runs a claimed job, the requester's rights checked again first. */
static void
tm_job_run(TmJob *job)
{
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("job " INT64_FORMAT ": %s of tenant \"%s\"",
									job->id,
									job->action == TM_JOB_CREATE ? "create" : "drop",
									job->tenant));
	/*
	 * A drop was decided by a transaction that committed: the tenant left
	 * the catalog and its database was closed and renamed then.  The job
	 * only removes what nobody can reach any more, so it is finished even
	 * when its requester is gone or lost its rights since: failing it
	 * would leave an orphan that no call removes.
	 */
	if (job->action == TM_JOB_DROP)
		tm_dbtenant_remove(job);
	else if (!tm_job_allowed(job))
		return;
	else
	{
		TmTenant   *t = tm_job_tenant(job);

		if (t->isolation == TM_SCHEMA)
			tm_jobs_create_schema(job, t);
		else
			tm_dbtenant_build(t, NULL, job, job->started);
	}
}

/*
 * Claims the oldest runnable job and runs it, outside any transaction.  An
 * error is logged and recorded against the job, and the transaction, the
 * job's executors and its lock are let go; the caller goes on.
 */
TmQueueLook
tm_jobs_run_one(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	TmJob		job;
	volatile bool claimed = false;
	volatile TmQueueLook look = TM_QUEUE_EMPTY;

	memset(&job, 0, sizeof(job));
	PG_TRY();
	{
		if (tm_job_claim(&job))
		{
			claimed = true;
			tm_pause_point("job:after-claim");
			tm_job_run(&job);
			look = job.requeued ? TM_QUEUE_NO_SLOT : TM_QUEUE_RAN;
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		EmitErrorReport();
		AbortOutOfAnyTransaction();
		FlushErrorState();
		tm_exec_release_all();
		RESUME_INTERRUPTS();
		if (claimed)
		{
			PG_TRY();
			{
				tm_job_fail(job.id, edata);
			}
			PG_CATCH();
			{
				EmitErrorReport();
				AbortOutOfAnyTransaction();
				FlushErrorState();
			}
			PG_END_TRY();
			look = TM_QUEUE_RAN;
		}
	}
	PG_END_TRY();

	if (claimed)
		tm_job_unlock(job.id);
	pgstat_report_activity(STATE_IDLE, NULL);
	return look;
}

void
tm_jobs_worker_main(Datum arg)
{
	MemoryContext cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	/* no database or role setting may pick what a superuser runs */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);
	pgstat_report_appname("tenant_mgr job worker");

	cxt = AllocSetContextCreate(TopMemoryContext, "tenant_mgr job worker",
								ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		TmQueueLook look;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextSwitchTo(cxt);
		look = tm_jobs_run_one();
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(cxt);

		/* nothing left, or no slot for an executor: give the slot back */
		if (look != TM_QUEUE_RAN)
			break;
	}
	proc_exit(0);
}

/* Starts one job worker; false when no background worker slot is free. */
static bool
tm_jobs_start_worker(void)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	MemoryContext old;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strcpy(worker.bgw_library_name, "tenant_mgr");
	strcpy(worker.bgw_function_name, "tm_jobs_worker_main");
	strcpy(worker.bgw_name, "tenant_mgr job worker");
	strcpy(worker.bgw_type, "tenant_mgr job worker");
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	worker.bgw_notify_pid = MyProcPid;

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		MemoryContextSwitchTo(old);
		return false;
	}
	tm_job_workers = lappend(tm_job_workers, handle);
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * For the launcher: forgets job workers that have exited and returns how
 * many still live.
 */
static int
tm_jobs_live_workers(void)
{
	ListCell   *lc;

	foreach(lc, tm_job_workers)
	{
		BackgroundWorkerHandle *handle = lfirst(lc);
		pid_t		pid;

		if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
		{
			tm_job_workers = foreach_delete_current(tm_job_workers, lc);
			pfree(handle);
		}
	}
	return list_length(tm_job_workers);
}

/*
 * For the launcher: requeues jobs whose runner died, then starts job
 * workers for the runnable jobs, up to tenant_mgr.max_workers.  When jobs
 * are runnable but no worker lives or can start, it runs one itself.
 * Returns what it found or did.
 */
TmQueueLook
tm_jobs_dispatch(void)
{
	int			live;
	int			runnable;

	tm_jobs_requeue_interrupted();
	live = tm_jobs_live_workers();
	runnable = tm_jobs_runnable(tm_max_workers);
	if (runnable == 0)
		return TM_QUEUE_EMPTY;

	/*
	 * Slots are short: a job worker would take the slot its executor needs,
	 * so the launcher runs jobs itself, one at a time, as long as that lasts.
	 */
	if (tm_slots_short_within(10000))
		return tm_jobs_run_one();

	/* a worker per runnable job, up to max_workers, those alive included */
	for (int i = live; i < Min(runnable, tm_max_workers); i++)
	{
		if (!tm_jobs_start_worker())
			break;
		live++;
	}
	if (live > 0)
		return TM_QUEUE_WORKING;
	return tm_jobs_run_one();
}
