/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The launcher: one background worker connected to the control
 *		database that dispatches queued jobs and reconciles after failures.
 *
 * Each iteration: remove the orphans of aborted requests (intents whose
 * transaction or job is over without a tenant to show for it), give a new
 * leader to fleet runs a crash left without one (run.c), start a maintainer
 * of the template database when it needs one (template.c), then requeue
 * jobs whose runner died and start job workers for the runnable ones
 * (jobs.c).
 * It sleeps on its latch, which backends set when they commit queued work
 * and job workers set as they exit, until the next requeued job is due or
 * tenant_mgr.poll_interval at most.  At start it corrects the catalog's
 * versions of database tenants from their ledgers.
 *
 * An error in an iteration is logged and the loop goes on: one bad row
 * never turns into a crash-restart loop.  The launcher waits quietly while
 * the extension does not exist, and starts only once recovery has
 * finished, so never on a standby.
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

static void tm_reconcile_intents(void);
static bool tm_reconcile_at_start(void);
static void tm_launcher_recover(MemoryContext loop_cxt);
static long tm_launcher_nap_ms(TmQueueLook look);

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
 * Removes the orphans of requests that are over: intents whose transaction
 * has ended, or whose job is finished, without a tenant that uses the
 * database.  The executor deletes the intent once the objects are gone.
 *
 * A caller that claims what was built deletes the intent in the same
 * transaction, so an intent whose transaction committed is no orphan if
 * that commit deleted it.  The query finding orphans reads the intents
 * with a snapshot taken before it asks whether their transactions ended:
 * one that committed in between still shows its intent there.  So each
 * orphan is looked up again with a snapshot taken afterwards, and only
 * one still there is removed.
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
	if (orphans == NIL)
		return;

	tm_xact_begin();
	foreach(lc, orphans)
	{
		if (!tm_intent_exists(((TmIntent *) lfirst(lc))->id))
			orphans = foreach_delete_current(orphans, lc);
	}
	tm_xact_commit();

	foreach(lc, orphans)
	{
		TmIntent   *intent = lfirst(lc);

		if (intent->isolation == TM_SCHEMA)
			tm_build_remove_orphan(intent);
		else if (!tm_dbtenant_remove_orphan(intent))
			break;				/* no slot: next iteration */
	}
}

/*
 * After a (re)start: take every database tenant's version from its ledger.  Returns false when a worker
 * slot was missing for some tenant: then the next iteration does it again.
 */
static bool
tm_reconcile_at_start(void)
{
	List	   *tenants = NIL;
	List	   *migrations;
	ListCell   *lc;

	tm_xact_begin();
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
 * After an error in an iteration: logs it and cleans up (the transaction,
 * our executors and their segments), then pauses a second so that a
 * persistent error cannot make the loop spin.  (A job's errors are its
 * runner's: jobs.c.)
 */
static void
tm_launcher_recover(MemoryContext loop_cxt)
{
	HOLD_INTERRUPTS();
	MemoryContextSwitchTo(loop_cxt);
	EmitErrorReport();
	AbortOutOfAnyTransaction();
	FlushErrorState();
	tm_exec_release_all();
	RESUME_INTERRUPTS();
	pgstat_report_activity(STATE_IDLE, NULL);
	(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000L,
					 PG_WAIT_EXTENSION);
}

/*
 * How long the launcher may sleep when its latch stays quiet: until the
 * next requeued job is due, a second when a job waits for a worker slot,
 * tenant_mgr.poll_interval at most.  Job workers set the latch as they exit.
 */
static long
tm_launcher_nap_ms(TmQueueLook look)
{
	volatile long nap = tm_poll_interval * 1000L;
	volatile long due = -1;

	if (look == TM_QUEUE_NO_SLOT)
		nap = Min(nap, 1000L);
	PG_TRY();
	{
		if (tm_extension_exists())
			due = tm_jobs_next_due_ms();
	}
	PG_CATCH();
	{
		/* a catalog in the middle of changing: the poll interval will do */
		EmitErrorReport();
		AbortOutOfAnyTransaction();
		FlushErrorState();
	}
	PG_END_TRY();
	if (due >= 0)
		nap = Min(nap, Max(due, 10L));
	return nap;
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
				tm_template_tend();
				look = tm_jobs_dispatch();
				/* spares only once queued work has what it needs */
				if (look == TM_QUEUE_EMPTY && tm_pool_upkeep())
					look = TM_QUEUE_RAN;
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

		if (look != TM_QUEUE_RAN)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 tm_launcher_nap_ms(look), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}
