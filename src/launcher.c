/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The launcher: one background worker connected to the control
 *		database that runs queued jobs and reconciles after failures.
 *
 * Each iteration: remove the orphans of aborted requests (intents whose
 * transaction or job is over without a tenant to show for it), then run the
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

/* A claimed job. */
typedef struct TmJob
{
	int64		id;
	char	   *tenant;
	char	   *action;
	char	   *object_name;
	Oid			database_oid;
	char	   *owner;
	Oid			requester;
	bool		own_role;
	int			attempts;
	instr_time	started;
	int64		run_id;			/* groups the job's events; 0 until known */
} TmJob;

/* The job being run, so that an error can be recorded against it. */
static int64 tm_current_job = 0;

/* Set when a job went back to the queue for want of a worker slot. */
static bool tm_out_of_slots = false;

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

/* The tenant a job works on, as the flows want it. */
static void
tm_job_tenant(TmJob *job, const char *isolation, TmTenant *t)
{
	memset(t, 0, sizeof(TmTenant));
	t->name = job->tenant;
	t->isolation = (char *) isolation;
	t->object_name = job->object_name;
	t->object_oid = job->database_oid;
	t->owner = job->owner;
	t->schema = strcmp(isolation, TM_ISOLATION_SCHEMA) == 0 ? job->object_name : "public";
}

/* Runs one SQL statement in the launcher's open transaction. */
static void
tm_sql(const char *sql, int expected)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute failed for \"%s\": %s", sql,
			 SPI_result_code_string(rc));
}

/* Records the end of a job, and of the tenant row a create job made. */
static void
tm_job_finish(TmJob *job, TmExecTask *failed)
{
	char	   *message = failed ? quote_literal_cstr(failed->message) : "NULL";
	char	   *sqlstate = failed ?
		quote_literal_cstr(unpack_sql_state(failed->sqlerrcode)) : "NULL";

	tm_xact_begin();
	tm_sql(psprintf("UPDATE tenant_mgr.job SET state = %s, finished_at = now(),"
					" sqlstate = %s, message = %s WHERE id = " INT64_FORMAT,
					failed ? "'failed'" : "'done'", sqlstate, message, job->id),
		   SPI_OK_UPDATE);
	if (strcmp(job->action, "create") == 0 && failed)
		tm_sql(psprintf("UPDATE tenant_mgr.tenant SET state = 'failed', last_error = %s,"
						" updated_at = now() WHERE name = %s AND state = 'creating'",
						message, quote_literal_cstr(job->tenant)),
			   SPI_OK_UPDATE);
	{
		instr_time	elapsed;

		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, job->started);
		tm_event_log(job->run_id ? job->run_id : tm_run_id(), job->tenant,
					 job->action, 0, failed ? "failed" : "ok",
					 failed ? tm_exec_error(failed) : NULL,
					 INSTR_TIME_GET_MILLISEC(elapsed));
	}
	tm_xact_commit();
	tm_current_job = 0;
}

/*
 * Puts a job back in the queue because no executor could start, with a
 * delay that grows with its attempts.
 */
static void
tm_job_requeue(TmJob *job)
{
	ereport(WARNING,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("could not start a tenant_mgr executor for job " INT64_FORMAT " (%s of tenant \"%s\")",
					job->id, job->action, job->tenant),
			 errdetail("All background worker slots are in use; the job stays queued."),
			 errhint("Raise max_worker_processes (now %d).", max_worker_processes)));
	tm_xact_begin();
	tm_sql(psprintf("UPDATE tenant_mgr.job SET state = 'queued',"
					" not_before = now() + interval '1 second' * least(%d, 10)"
					" WHERE id = " INT64_FORMAT, job->attempts, job->id),
		   SPI_OK_UPDATE);
	tm_xact_commit();
	tm_current_job = 0;
	tm_out_of_slots = true;
}

/* Starts and waits for one executor of a job; false if none could start. */
static bool
tm_job_exec(TmJob *job, TmExecRun *run)
{
	run->task->requester = job->requester;
	run->task->job_id = job->id;
	if (!tm_exec_launch(run))
	{
		tm_exec_release(run);
		tm_job_requeue(job);
		return false;
	}
	tm_exec_wait(run);
	return true;
}

/*
 * A queued schema tenant: built in one transaction of the launcher, as the
 * role that queued it, together with its catalog row becoming "ready" and
 * its job "done" (so a crash cannot leave the one without the other).
 */
static void
tm_run_create_schema(TmJob *job)
{
	MemoryContext cxt = CurrentMemoryContext;
	TmTenant	t;

	tm_job_tenant(job, TM_ISOLATION_SCHEMA, &t);

	PG_TRY();
	{
		Oid			save_userid;
		int			save_sec_context;
		List	   *steps;
		ListCell   *lc;
		int64		run_id;
		instr_time	elapsed;

		tm_xact_begin();
		GetUserIdAndSecContext(&save_userid, &save_sec_context);
		SetUserIdAndSecContext(job->requester,
							   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
		tm_tenant_lock(t.name);
		steps = tm_schematenant_build(&t, tm_migration_list(), job->own_role);
		SetUserIdAndSecContext(save_userid, save_sec_context);

		tm_sql(psprintf("UPDATE tenant_mgr.tenant SET state = 'ready', object_oid = %u,"
						" version = " INT64_FORMAT ", last_error = NULL, updated_at = now()"
						" WHERE name = %s AND state = 'creating'",
						t.object_oid, t.version, quote_literal_cstr(t.name)),
			   SPI_OK_UPDATE);
		tm_sql(psprintf("UPDATE tenant_mgr.job SET state = 'done', finished_at = now()"
						" WHERE id = " INT64_FORMAT, job->id),
			   SPI_OK_UPDATE);
		run_id = tm_run_id();
		foreach(lc, steps)
		{
			TmStep	   *s = lfirst(lc);

			tm_event_log(run_id, t.name, "up", s->migration->version, "ok", NULL, s->ms);
		}
		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, job->started);
		tm_event_log(run_id, t.name, "create", 0, "ok", NULL,
					 INSTR_TIME_GET_MILLISEC(elapsed));
		tm_xact_commit();
		tm_current_job = 0;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		TmExecTask	failed;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);

		if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
		{
			/* another transaction holds the tenant a moment: try again */
			tm_xact_begin();
			tm_sql(psprintf("UPDATE tenant_mgr.job SET state = 'queued',"
							" not_before = now() + interval '1 second'"
							" WHERE id = " INT64_FORMAT, job->id),
				   SPI_OK_UPDATE);
			tm_xact_commit();
			tm_current_job = 0;
		}
		else
		{
			memset(&failed, 0, sizeof(failed));
			failed.state = TM_EXEC_FAILED;
			failed.sqlerrcode = edata->sqlerrcode;
			strlcpy(failed.message, edata->message ? edata->message : "", TM_MSG_LEN);
			tm_job_finish(job, &failed);
		}
	}
	PG_END_TRY();
}

/*
 * A queued create of a database tenant: the same executors as an
 * interactive one, then the tenant row becomes "ready".  A failure leaves an intent of a failed job,
 * which the next reconciliation turns into a removed orphan.
 */
static void
tm_run_create(TmJob *job)
{
	TmTenant	t;
	List	   *migrations;
	TmExecRun  *create;
	TmExecRun  *migrate;
	int64		run_id;
	ListCell   *lc;

	tm_job_tenant(job, TM_ISOLATION_DATABASE, &t);

	tm_xact_begin();
	migrations = tm_migration_list();
	tm_xact_commit();

	create = tm_exec_prepare(TM_EXEC_CREATE_DATABASE, MyDatabaseId, &t, NIL);
	if (!tm_job_exec(job, create))
		return;
	if (create->task->state == TM_EXEC_FAILED)
	{
		tm_job_finish(job, create->task);
		tm_exec_release(create);
		return;
	}

	migrate = tm_exec_prepare(TM_EXEC_MIGRATE, create->task->result_oid, &t,
							  migrations);
	if (!tm_job_exec(job, migrate))
	{
		tm_exec_release(create);
		return;
	}
	if (migrate->task->state == TM_EXEC_FAILED)
	{
		tm_job_finish(job, migrate->task);
		tm_exec_release(migrate);
		tm_exec_release(create);
		return;
	}

	tm_xact_begin();
	tm_sql(psprintf("UPDATE tenant_mgr.tenant SET state = 'ready', object_oid = %u,"
					" version = " INT64_FORMAT ", last_error = NULL, updated_at = now()"
					" WHERE name = %s AND state = 'creating'",
					create->task->result_oid, migrate->task->version,
					quote_literal_cstr(job->tenant)),
		   SPI_OK_UPDATE);
	tm_sql(psprintf("DELETE FROM tenant_mgr.intent WHERE job_id = " INT64_FORMAT, job->id),
		   SPI_OK_DELETE);
	run_id = job->run_id = tm_run_id();
	foreach(lc, tm_exec_steps(migrate->task, migrations))
	{
		TmStep	   *s = lfirst(lc);

		tm_event_log(run_id, job->tenant, "up", s->migration->version, "ok", NULL, s->ms);
	}
	tm_xact_commit();
	tm_job_finish(job, NULL);
	tm_exec_release(migrate);
	tm_exec_release(create);
}

/* A queued drop of a detached database. */
static void
tm_run_drop(TmJob *job)
{
	TmTenant	t;
	TmExecRun  *drop;

	tm_job_tenant(job, TM_ISOLATION_DATABASE, &t);

	drop = tm_exec_prepare(TM_EXEC_DROP_DATABASE, MyDatabaseId, &t, NIL);
	if (!tm_job_exec(job, drop))
		return;
	tm_job_finish(job, drop->task->state == TM_EXEC_FAILED ? drop->task : NULL);
	tm_exec_release(drop);
}

/* True if the job creates a schema tenant (its catalog row says so). */
static bool
tm_job_is_schema(TmJob *job)
{
	bool		schema;

	tm_xact_begin();
	tm_sql(psprintf("SELECT isolation = 'schema' FROM tenant_mgr.tenant WHERE name = %s",
					quote_literal_cstr(job->tenant)),
		   SPI_OK_SELECT);
	schema = SPI_processed > 0 &&
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") == 0;
	tm_xact_commit();
	return schema;
}

/*
 * Claims the oldest runnable job (at most one running per tenant) and runs
 * it.  Returns false when there was none.
 */
static bool
tm_run_next_job(void)
{
	TmJob		job;
	HeapTuple	tup;
	TupleDesc	desc;
	char	   *requested_by;

	tm_xact_begin();
	tm_sql("UPDATE tenant_mgr.job SET state = 'running', started_at = now(),"
		   "       attempts = attempts + 1"
		   " WHERE id = (SELECT j.id FROM tenant_mgr.job j"
		   "              WHERE j.state = 'queued' AND j.not_before <= now()"
		   "                AND NOT EXISTS (SELECT 1 FROM tenant_mgr.job r"
		   "                                 WHERE r.tenant = j.tenant AND r.state = 'running')"
		   "              ORDER BY j.id LIMIT 1 FOR UPDATE SKIP LOCKED)"
		   " RETURNING id, tenant, action, object_name, database_oid, owner,"
		   "           requested_by, attempts, own_role",
		   SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 0)
	{
		tm_xact_commit();
		return false;
	}
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	MemoryContextSwitchTo(tm_result_cxt());
	job.id = strtoi64(SPI_getvalue(tup, desc, 1), NULL, 10);
	job.tenant = SPI_getvalue(tup, desc, 2);
	job.action = SPI_getvalue(tup, desc, 3);
	job.object_name = SPI_getvalue(tup, desc, 4);
	job.database_oid = SPI_getvalue(tup, desc, 5) ?
		(Oid) strtoul(SPI_getvalue(tup, desc, 5), NULL, 10) : InvalidOid;
	job.owner = SPI_getvalue(tup, desc, 6);
	requested_by = SPI_getvalue(tup, desc, 7);
	job.attempts = atoi(SPI_getvalue(tup, desc, 8));
	job.own_role = strcmp(SPI_getvalue(tup, desc, 9), "t") == 0;
	job.run_id = 0;
	INSTR_TIME_SET_CURRENT(job.started);
	tm_current_job = job.id;

	/* the requester's rights are checked again now, by the executors */
	job.requester = get_role_oid(requested_by, true);
	tm_xact_commit();

	if (!OidIsValid(job.requester))
	{
		TmExecTask	failed;

		memset(&failed, 0, sizeof(failed));
		failed.sqlerrcode = ERRCODE_UNDEFINED_OBJECT;
		snprintf(failed.message, TM_MSG_LEN,
				 "role \"%s\" that requested the job does not exist any more",
				 requested_by);
		tm_job_finish(&job, &failed);
		return true;
	}

	if (strcmp(job.action, "drop") == 0)
		tm_run_drop(&job);
	else if (tm_job_is_schema(&job))
		tm_run_create_schema(&job);
	else
		tm_run_create(&job);
	return true;
}

/*
 * Removes the orphans of requests that are over: intents whose transaction
 * has ended, or whose job is finished, without a tenant that uses the
 * database.  The executor deletes the intent once the objects are gone.
 */
static void
tm_reconcile_intents(void)
{
	List	   *orphans = NIL;
	ListCell   *lc;
	uint64		i;

	tm_xact_begin();
	tm_sql("DELETE FROM tenant_mgr.intent i"
		   " WHERE EXISTS (SELECT 1 FROM tenant_mgr.tenant t"
		   "                WHERE t.isolation = 'database' AND t.state = 'ready'"
		   "                  AND t.object_oid = i.database_oid)",
		   SPI_OK_DELETE);
	tm_sql("SELECT i.id, i.tenant, i.object_name, i.owner, i.database_oid"
		   "  FROM tenant_mgr.intent i"
		   "  LEFT JOIN tenant_mgr.job j ON j.id = i.job_id"
		   " WHERE (i.xid IS NULL OR pg_catalog.pg_xact_status(i.xid) <> 'in progress')"
		   "   AND (j.id IS NULL OR j.state NOT IN ('queued', 'running'))"
		   " ORDER BY i.id",
		   SPI_OK_SELECT);
	MemoryContextSwitchTo(tm_result_cxt());
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		TmTenant   *t = palloc0(sizeof(TmTenant));
		char	   *oid = SPI_getvalue(tup, desc, 5);

		t->version = strtoi64(SPI_getvalue(tup, desc, 1), NULL, 10);	/* intent id */
		t->name = SPI_getvalue(tup, desc, 2);
		t->object_name = SPI_getvalue(tup, desc, 3);
		t->owner = SPI_getvalue(tup, desc, 4);
		t->object_oid = oid ? (Oid) strtoul(oid, NULL, 10) : InvalidOid;
		t->isolation = TM_ISOLATION_DATABASE;
		t->schema = "public";
		orphans = lappend(orphans, t);
	}
	tm_xact_commit();

	foreach(lc, orphans)
	{
		TmTenant   *t = lfirst(lc);
		TmExecRun  *run = tm_exec_prepare(TM_EXEC_DROP_DATABASE, MyDatabaseId, t, NIL);

		run->task->intent_id = t->version;
		if (!tm_exec_launch(run))
		{
			tm_exec_release(run);
			break;				/* no slot: next iteration */
		}
		tm_exec_wait(run);
		if (run->task->state == TM_EXEC_FAILED)
			ereport(WARNING,
					(errmsg("could not remove the orphan database of tenant \"%s\": %s",
							t->name, run->task->message)));
		else
			ereport(LOG,
					(errmsg("tenant_mgr removed what an aborted creation of tenant \"%s\" left",
							t->name)));
		tm_exec_release(run);
	}
}

/*
 * After a (re)start: requeue jobs a crash interrupted, and take every
 * database tenant's version from its ledger.
 */
static void
tm_reconcile_at_start(void)
{
	List	   *all;
	List	   *tenants = NIL;
	List	   *migrations;
	ListCell   *lc;

	tm_xact_begin();
	tm_sql("UPDATE tenant_mgr.job SET state = 'queued' WHERE state = 'running'",
		   SPI_OK_UPDATE);
	all = tm_tenant_list();
	migrations = tm_migration_list();
	MemoryContextSwitchTo(tm_result_cxt());
	foreach(lc, all)
	{
		TmTenant   *t = lfirst(lc);

		if (strcmp(t->isolation, TM_ISOLATION_DATABASE) == 0 &&
			strcmp(t->state, "ready") == 0)
			tenants = lappend(tenants, t);
	}
	tm_xact_commit();

	foreach(lc, tenants)
	{
		TmTenant   *t = lfirst(lc);
		TmExecRun  *run;

		Oid			dboid;

		tm_xact_begin();
		dboid = tm_database_find(t);
		tm_xact_commit();
		if (!OidIsValid(dboid))
			continue;
		/* segments made outside a transaction live until released */
		run = tm_exec_prepare(TM_EXEC_READ_LEDGER, dboid, t, migrations);
		if (!tm_exec_launch(run))
		{
			tm_exec_release(run);
			break;
		}
		tm_exec_wait(run);
		if (run->task->state == TM_EXEC_DONE && !run->task->no_ledger &&
			run->task->version != t->version)
		{
			tm_xact_begin();
			tm_tenant_set_version(t->name, run->task->version, NULL);
			tm_xact_commit();
			ereport(LOG,
					(errmsg("tenant_mgr corrected the version of tenant \"%s\" from " INT64_FORMAT " to " INT64_FORMAT " from its ledger",
							t->name, t->version, run->task->version)));
		}
		tm_exec_release(run);
	}
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

void
tm_launcher_main(Datum arg)
{
	MemoryContext loop_cxt;
	bool		started = false;

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
		bool		busy = false;

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
				{
					tm_reconcile_at_start();
					started = true;
				}
				tm_reconcile_intents();
				busy = tm_run_next_job();
			}
			else
				started = false;
		}
		PG_CATCH();
		{
			ErrorData  *edata;
			int64		job = tm_current_job;

			/* log it, clean up, and record it against the job at hand */
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
					tm_xact_begin();
					tm_sql(psprintf("UPDATE tenant_mgr.job SET state = 'failed', finished_at = now(),"
									" sqlstate = %s, message = %s WHERE id = " INT64_FORMAT,
									quote_literal_cstr(unpack_sql_state(edata->sqlerrcode)),
									quote_literal_cstr(edata->message ? edata->message : ""),
									job),
						   SPI_OK_UPDATE);
					tm_xact_commit();
				}
				PG_CATCH();
				{
					EmitErrorReport();
					AbortOutOfAnyTransaction();
					FlushErrorState();
				}
				PG_END_TRY();
			}
			/* do not spin on a persistent error */
			(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000L,
							 PG_WAIT_EXTENSION);
		}
		PG_END_TRY();
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(loop_cxt);

		/* out of slots: look again soon, but do not spin through the queue */
		if (!busy || tm_out_of_slots)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 tm_out_of_slots ? Min(1000L, tm_poll_interval * 1000L) :
							 tm_poll_interval * 1000L,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			tm_out_of_slots = false;
		}
	}
}
