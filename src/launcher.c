/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The launcher: one background worker connected to the control
 *		database that runs queued jobs and reconciles after failures.
 *
 * Each iteration: remove the orphans of aborted requests (intents whose
 * transaction or job is over without a tenant to show for it), give a new
 * leader to fleet runs a crash left without one (run.c), then run the
 * oldest runnable job.  It sleeps on its latch, which backends set when they
 * commit queued work, with tenant_mgr.poll_interval as the safety net.  At
 * start it requeues jobs a crash interrupted (every step is idempotent) and
 * corrects the catalog's versions of database tenants from their ledgers.
 *
 * An error in an iteration is logged, the job at hand is marked failed and
 * the loop goes on: one bad row never turns into a crash-restart loop.  The
 * launcher waits quietly while the extension does not exist, and starts only
 * once recovery has finished, so never on a standby.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "tenant_mgr.h"

/* The job being run, so that an error can be recorded against it. */
static int64 tm_current_job = 0;

static void tm_run_create_schema(TmJob *job, TmTenant *t);
/* What one look at the queue found. */
typedef enum TmQueueLook
{
	TM_QUEUE_EMPTY,				/* no runnable job */
	TM_QUEUE_RAN,				/* ran one */
	TM_QUEUE_NO_SLOT			/* its job went back for want of a worker slot */
} TmQueueLook;

static TmQueueLook tm_run_next_job(void);
static bool tm_job_allowed(TmJob *job);
static void tm_reconcile_intents(void);
static bool tm_reconcile_at_start(void);
static void tm_launcher_recover(MemoryContext loop_cxt);

void
tm_launcher_register_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strcpy(worker.bgw_library_name, "tenant_mgr");
	strcpy(worker.bgw_function_name, "tm_launcher_main");
	strcpy(worker.bgw_name, "tenant_mgr launcher");
	strcpy(worker.bgw_type, "tenant_mgr launcher");
	RegisterBackgroundWorker(&worker);
}

/*
 * A queued schema tenant: built and recorded in one transaction of the
 * launcher (schematenant.c).  A busy tenant goes back to the queue for a
 * second; any other failure is the job's.
 */
static void
tm_run_create_schema(TmJob *job, TmTenant *t)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		tm_xact_begin();
		tm_schematenant_create(t, NULL, job->own_role, job, job->started);
		tm_xact_commit();
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
 * True if the role that queued the job still exists and may still ask for
 * it (EXECUTE on the function that queues such work); otherwise the job
 * fails, changing nothing.
 */
static bool
tm_job_allowed(TmJob *job)
{
	ErrorData	denied;
	const char *function = job->action == TM_JOB_CREATE ? TM_FN_CREATE : TM_FN_DROP;
	bool		allowed;

	memset(&denied, 0, sizeof(denied));
	if (!OidIsValid(job->requester))
	{
		denied.sqlerrcode = ERRCODE_UNDEFINED_OBJECT;
		denied.message = psprintf("role \"%s\" that requested the job does not exist any more",
								  job->requested_by);
	}
	else
	{
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

/* Claims the oldest runnable job and runs it. */
static TmQueueLook
tm_run_next_job(void)
{
	TmJob		job;

	if (!tm_job_claim(&job))
		return TM_QUEUE_EMPTY;
	tm_current_job = job.id;
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("job " INT64_FORMAT ": %s of tenant \"%s\"",
									job.id,
									job.action == TM_JOB_CREATE ? "create" : "drop",
									job.tenant));

	/* the requester's rights are checked again now */
	if (tm_job_allowed(&job))
	{
		TmTenant   *t = job.action == TM_JOB_CREATE ? tm_job_tenant(&job) : NULL;

		if (job.action == TM_JOB_DROP)
			tm_dbtenant_remove(&job);
		else if (t->isolation == TM_SCHEMA)
			tm_run_create_schema(&job, t);
		else
			tm_dbtenant_build(t, NULL, &job, job.started);
	}

	tm_current_job = 0;
	pgstat_report_activity(STATE_IDLE, NULL);
	return job.requeued ? TM_QUEUE_NO_SLOT : TM_QUEUE_RAN;
}

/*
 * Removes the orphans of requests that are over: intents whose transaction
 * has ended, or whose job is finished, without a tenant that uses the
 * database.  The executor deletes the intent once the objects are gone.
 */
static void
tm_reconcile_intents(void)
{
	List	   *orphans;
	ListCell   *lc;

	tm_xact_begin();
	tm_intents_settle();
	orphans = tm_intent_orphans();
	tm_xact_commit();

	foreach(lc, orphans)
	{
		if (!tm_dbtenant_remove_orphan(lfirst(lc)))
			break;				/* no slot: next iteration */
	}
}

/*
 * After a (re)start: requeue jobs a crash interrupted, and take every
 * database tenant's version from its ledger.  Returns false when a worker
 * slot was missing for some tenant: then the next iteration does it again.
 */
static bool
tm_reconcile_at_start(void)
{
	List	   *tenants = NIL;
	List	   *migrations;
	ListCell   *lc;

	tm_xact_begin();
	tm_jobs_requeue_interrupted();
	foreach(lc, tm_tenant_list())
	{
		TmTenant   *t = lfirst(lc);

		if (t->isolation == TM_DATABASE && t->state == TM_READY)
			tenants = lappend(tenants, t);
	}
	migrations = tm_migration_list();
	tm_xact_commit();

	foreach(lc, tenants)
	{
		if (!tm_dbtenant_correct_version(lfirst(lc), migrations))
			return false;
	}
	return true;
}

/* True once CREATE EXTENSION tenant_mgr has run in this database. */
static bool
tm_extension_exists(void)
{
	bool		exists;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	exists = OidIsValid(get_extension_oid("tenant_mgr", true));
	CommitTransactionCommand();
	return exists;
}

/*
 * After an error in an iteration: logs it, cleans up (the transaction, our
 * executors and their segments) and records it against the job at hand,
 * then pauses a second so that a persistent error cannot make the loop spin.
 */
static void
tm_launcher_recover(MemoryContext loop_cxt)
{
	ErrorData  *edata;
	int64		job = tm_current_job;

	HOLD_INTERRUPTS();
	MemoryContextSwitchTo(loop_cxt);
	edata = CopyErrorData();
	EmitErrorReport();
	AbortOutOfAnyTransaction();
	FlushErrorState();
	tm_exec_release_all();
	RESUME_INTERRUPTS();
	tm_current_job = 0;

	if (job != 0)
	{
		PG_TRY();
		{
			tm_job_fail(job, edata);
		}
		PG_CATCH();
		{
			EmitErrorReport();
			AbortOutOfAnyTransaction();
			FlushErrorState();
		}
		PG_END_TRY();
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000L,
					 PG_WAIT_EXTENSION);
}

void
tm_launcher_main(Datum arg pg_attribute_unused())
{
	MemoryContext loop_cxt;
	volatile bool started = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (!tm_launcher_register())
	{
		ereport(LOG, (errmsg("another tenant_mgr launcher is already running")));
		proc_exit(0);
	}
	on_shmem_exit(tm_launcher_unregister, (Datum) 0);

	BackgroundWorkerInitializeConnection(tm_control_database, NULL, 0);
	/* no database or role setting may pick what a superuser runs */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);
	pgstat_report_appname("tenant_mgr launcher");

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "tenant_mgr launcher",
									 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		volatile TmQueueLook look = TM_QUEUE_EMPTY;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextSwitchTo(loop_cxt);
		PG_TRY();
		{
			if (tm_extension_exists())
			{
				if (!started)
					started = tm_reconcile_at_start();
				tm_reconcile_intents();
				tm_runs_resume();
				tm_history_prune_due();
				look = tm_run_next_job();
			}
			else
				started = false;
		}
		PG_CATCH();
		{
			tm_launcher_recover(loop_cxt);
		}
		PG_END_TRY();
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(loop_cxt);

		/* out of slots: look again soon, but do not spin through the queue */
		if (look != TM_QUEUE_RAN)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 look == TM_QUEUE_NO_SLOT ? Min(1000L, tm_poll_interval * 1000L) :
							 tm_poll_interval * 1000L,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}
