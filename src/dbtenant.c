/*-------------------------------------------------------------------------
 *
 * dbtenant.c
 *		Database tenants: a whole database, built by executors, renamed,
 *		detached, attached and removed, from a backend or the launcher.
 *
 * Build (tm_dbtenant_build), the same for a caller and for a queued job: an
 * executor in the control database commits an intent, creates the owner
 * role and the database (with tenant_mgr.database_template, a copy of the
 * template database: template.c); a second executor, connected to the new
 * database, writes the ledger (or takes over the copy's) and applies the
 * migrations, each in a transaction of its own.  A caller then records the tenant and deletes the intent in its
 * own transaction; if that aborts, the intent survives it and the launcher
 * removes the orphan.  For a job, the launcher records the result itself;
 * a job interrupted by a crash runs again from the start, and every
 * executor step resumes what an earlier run left.
 *
 * Drop: the caller's transaction detaches the database (renames it out of
 * the way and closes it to connections) and queues a job; after commit the
 * launcher removes it (tm_dbtenant_remove).  Rolling back the detach undoes
 * it.
 *
 * Import (tm_dbtenant_import): a database restored with its label and its
 * owner role is taken back once an executor has checked its ledger.
 *
 * All of this runs in the control database (tenant_mgr.database) of a
 * server that preloads tenant_mgr.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "tenant_mgr.h"

static bool tm_dbtenant_exec(TmExecRun *run, TmJob *job);
static void tm_dbtenant_record(TmTenant *t, const char *metadata, TmJob *job,
							   int64 intent, List *steps, instr_time start);
static void tm_cleanup_creation(const TmTenant *t, Oid dboid, int64 intent);
static void tm_terminate_sessions(const TmTenant *t, Oid dboid, bool force);

/*
 * Creates database tenant t for the caller, whose transaction holds the
 * tenant's lock and has checked that no tenant of that name exists.  With
 * wait, returns when the tenant is ready and recorded in the caller's
 * transaction; without, records it as "creating" and queues a job.
 */
void
tm_dbtenant_create(TmTenant *t, const char *metadata, bool wait)
{
	instr_time	start;
	List	   *steps;

	INSTR_TIME_SET_CURRENT(start);
	tm_require_control_database();
	/* queued requests take no lock: a tenant of that name is an error now */
	if (!wait && tm_tenant_fetch(t->name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("tenant \"%s\" already exists", t->name)));
	if (tm_intent_in_progress(t->object_name))
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("tenant \"%s\" is busy", t->name),
				 errdetail("Another transaction is creating it."),
				 errhint("Try again when that transaction has ended.")));
	if (tm_intent_pending(t->object_name))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("an earlier attempt to create tenant \"%s\" is still being cleaned up", t->name),
				 errhint("Try again in a moment.")));
	if (OidIsValid(get_database_oid(t->object_name, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_DATABASE),
				 errmsg("database \"%s\" already exists", t->object_name),
				 errdetail("It was not created by tenant_mgr, which never adopts an existing database."),
				 errhint("Choose another tenant name.")));

	if (!wait)
		tm_job_queue_create(t, metadata, true);
	else if (tm_pool_claim(t, NIL, &steps))
	{
		/* a spare of the warm pool, renamed in this transaction */
		t->state = TM_READY;
		tm_dbtenant_record(t, metadata, NULL, 0, NIL, start);
	}
	else
		tm_dbtenant_build(t, metadata, NULL, start);
}

/*
 * For a queued create: claims a spare of the warm pool for the role that
 * queued it and records the tenant, all in one transaction (the claim and
 * the "ready" row commit together).  False, having changed nothing, when
 * there was no spare to claim.
 */
static bool
tm_dbtenant_claim_for_job(TmTenant *t, TmJob *job)
{
	TmIdentity	saved;
	List	   *steps;
	bool		claimed;
	int64		run_id;

	tm_xact_begin();
	tm_become(job->requester, 0, &saved);
	claimed = tm_pool_claim(t, NIL, &steps);
	tm_restore(&saved);
	if (!claimed)
	{
		tm_xact_commit();
		return false;
	}
	tm_tenant_set_ready(t->name, t->object_oid, t->version);
	tm_owner_role_grant(t);
	run_id = tm_run_id();
	tm_xact_commit();
	job->run_id = run_id;
	tm_job_finish(job, NULL);
	return true;
}

/*
 * Builds database tenant t and records it: for the caller (job NULL), in
 * its transaction, where any failure is raised once what it left is
 * removed; or for a queued job, from the launcher outside any transaction,
 * where a failure is recorded against the job (its intent then makes the
 * launcher remove what was left) and a missing worker slot sends the job
 * back to the queue.
 */
void
tm_dbtenant_build(TmTenant *t, const char *metadata, TmJob *job,
				  instr_time start)
{
	List	   *migrations;
	TmExecRun  *create;
	TmExecRun  *migrate;
	bool		clone;

	if (job)
	{
		bool		other;

		/*
		 * An aborted interactive create of the same name may have left a
		 * role and a database that the launcher is about to remove: wait
		 * for that rather than fail on them.
		 */
		tm_xact_begin();
		other = tm_intent_pending_other(t->object_name, job->id);
		tm_xact_commit();
		if (other)
		{
			tm_job_requeue(job, 1);
			return;
		}
		if (tm_dbtenant_claim_for_job(t, job))
			return;
	}
	if (job)
		tm_xact_begin();
	migrations = tm_migration_list();
	clone = tm_template_wanted();
	if (job)
		tm_xact_commit();

	/* a clone of the template, handed to its owner, then what is pending */
	create = tm_exec_prepare(clone ? TM_EXEC_CLONE_DATABASE : TM_EXEC_CREATE_DATABASE,
							 MyDatabaseId, t, clone ? migrations : NIL);
	if (job == NULL)
	{
		/* the intent names this transaction: if it aborts, the orphan goes */
		create->task->xid = U64FromFullTransactionId(GetTopFullTransactionId());
		tm_wake_at_abort();
	}
	if (!tm_dbtenant_exec(create, job))
		return;
	tm_pause_point("dbcreate:before-migrate");

	/*
	 * TEMPLATE_ADOPT is MIGRATE after taking over a copy of the template, if
	 * the database is one: also for a job resuming a copy made before the
	 * setting went off.
	 */
	migrate = tm_exec_prepare(TM_EXEC_TEMPLATE_ADOPT, create->task->result_oid,
							  t, migrations);
	if (job == NULL)
	{
		tm_exec_run(migrate);
		if (migrate->task->state == TM_EXEC_FAILED)
			tm_cleanup_creation(t, create->task->result_oid, create->task->intent);
	}
	if (!tm_dbtenant_exec(migrate, job))
	{
		tm_exec_release(create);
		return;
	}

	t->object_oid = create->task->result_oid;
	t->version = migrate->task->version;
	t->state = TM_READY;
	tm_pause_point("dbcreate:before-record");
	tm_dbtenant_record(t, metadata, job, create->task->intent,
					   tm_exec_steps(migrate->task, migrations), start);
	tm_exec_release(migrate);
	tm_exec_release(create);
}

/*
 * Runs an executor (unless the caller already has) and returns true if it
 * succeeded.  For the caller a failure is raised; for a job it is recorded,
 * or the job requeued when no worker slot was free, and the run released.
 */
static bool
tm_dbtenant_exec(TmExecRun *run, TmJob *job)
{
	if (job == NULL)
	{
		if (run->task->state == TM_EXEC_PENDING)
			tm_exec_run(run);
		tm_exec_raise(run);
		return true;
	}
	if (!tm_exec_for_job(run, job))
		return false;
	if (run->task->state == TM_EXEC_FAILED)
	{
		tm_job_finish(job, tm_exec_error(run->task));
		tm_exec_release(run);
		return false;
	}
	return true;
}

/*
 * Records a built database tenant, its steps and its creation: for the
 * caller a new catalog row, for a job its "creating" row made "ready" and
 * the job finished.  The intent is deleted either way.
 */
static void
tm_dbtenant_record(TmTenant *t, const char *metadata, TmJob *job,
				   int64 intent, List *steps, instr_time start)
{
	int64		run_id;

	if (job)
	{
		tm_xact_begin();
		tm_tenant_set_ready(t->name, t->object_oid, t->version);
		tm_intent_delete_for_job(job->id);
	}
	else
	{
		tm_tenant_insert(t, metadata);
		tm_intent_delete(intent);
	}
	tm_owner_role_grant(t);
	run_id = tm_run_id();
	tm_event_log_steps(run_id, t->name, steps);
	if (job)
	{
		tm_xact_commit();
		job->run_id = run_id;
		tm_job_finish(job, NULL);
	}
	else
		tm_event_log(run_id, t->name, TM_EV_CREATE, 0, TM_EV_OK, NULL,
					 tm_elapsed_ms(start));
}

/*
 * Removes a spare database tenant of the warm pool (its database and owner
 * role, if they carry its marks) through an executor, for the launcher.
 * Returns false when no worker slot was free or the executor was
 * terminated (57P01), so that the spare's row stays for the next look; any
 * other failure is a warning.
 */
bool
tm_dbtenant_remove_spare(TmTenant *t)
{
	TmExecRun  *drop = tm_exec_prepare(TM_EXEC_DROP_DATABASE, MyDatabaseId, t, NIL);
	bool		again;

	if (!tm_exec_launch(drop))
	{
		tm_exec_release(drop);
		return false;
	}
	tm_exec_wait(drop);
	again = drop->task->state == TM_EXEC_FAILED &&
		drop->task->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN;
	if (drop->task->state == TM_EXEC_FAILED)
		ereport(WARNING,
				(errcode(drop->task->sqlerrcode),
				 errmsg("could not remove spare database \"%s\": %s", t->object_name,
						tm_task_text(drop->task, drop->task->message))));
	tm_exec_release(drop);
	return !again;
}

/*
 * Builds (or finishes building) a spare database tenant of the warm pool
 * (pool.c) for the launcher, outside any transaction: its owner role and
 * database by one executor (no intent: the spare's row stands for them),
 * every migration by a second one.  Sets t->object_oid and t->version and
 * returns true; returns false when no worker slot was free (what is built
 * stays for the next attempt).  An executor's error is raised once what
 * was built is removed.
 */
bool
tm_dbtenant_build_spare(TmTenant *t, List *migrations)
{
	TmExecRun  *create = tm_exec_prepare(TM_EXEC_CREATE_DATABASE, MyDatabaseId, t, NIL);
	TmExecRun  *migrate;
	ErrorData  *edata;

	create->task->spare = true;
	if (!tm_exec_launch(create))
	{
		tm_exec_release(create);
		return false;
	}
	tm_exec_wait(create);
	if (create->task->state == TM_EXEC_FAILED)
	{
		edata = tm_exec_error(create->task);
		tm_exec_release(create);
		(void) tm_dbtenant_remove_spare(t);
		ReThrowError(edata);
	}
	t->object_oid = create->task->result_oid;
	tm_exec_release(create);

	migrate = tm_exec_prepare(TM_EXEC_MIGRATE, t->object_oid, t, migrations);
	if (!tm_exec_launch(migrate))
	{
		tm_exec_release(migrate);
		return false;
	}
	tm_exec_wait(migrate);
	if (migrate->task->state == TM_EXEC_FAILED)
	{
		edata = tm_exec_error(migrate->task);
		tm_exec_release(migrate);
		(void) tm_dbtenant_remove_spare(t);
		ReThrowError(edata);
	}
	t->version = migrate->task->version;
	tm_exec_release(migrate);
	return true;
}

/*
 * Runs the DROP_DATABASE executor on what a failed creation left behind;
 * a failure here is only a warning, the launcher tries again later.
 */
static void
tm_cleanup_creation(const TmTenant *t, Oid dboid, int64 intent)
{
	TmTenant	copy = *t;
	TmExecRun  *run;

	copy.object_oid = dboid;
	run = tm_exec_prepare(TM_EXEC_DROP_DATABASE, MyDatabaseId, &copy, NIL);
	run->task->intent_id = intent;
	if (!tm_exec_launch(run))
		return;
	tm_exec_wait(run);
	if (run->task->state == TM_EXEC_FAILED)
		ereport(WARNING,
				(errcode(run->task->sqlerrcode),
				 errmsg("could not remove what the failed creation of tenant \"%s\" left: %s",
						t->name, tm_task_text(run->task, run->task->message)),
				 errdetail("The launcher will try again.")));
	tm_exec_release(run);
}

/*
 * Returns the OID of t's database, created by tenant_mgr; an error when
 * there is none.
 */
Oid
tm_dbtenant_require(const TmTenant *t)
{
	Oid			dboid;

	tm_require_control_database();
	dboid = tm_database_find(t);
	if (!OidIsValid(dboid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_DATABASE),
				 errmsg("database of tenant \"%s\" does not exist", t->name),
				 errhint("Compare the catalog with reality: SELECT * FROM tenant_mgr.verify().")));
	return dboid;
}

/*
 * Starts the MIGRATE executor for one database tenant, towards target.
 * Returns the run; the caller waits for it and releases it.
 */
TmExecRun *
tm_dbtenant_migrate_start(const TmTenant *t, List *migrations, int64 target,
						  bool *launched)
{
	TmExecRun  *run;
	Oid			dboid = tm_dbtenant_require(t);

	if (dboid != t->object_oid)
		tm_tenant_set_oid(t->name, dboid);	/* a stale OID */
	run = tm_exec_prepare(TM_EXEC_MIGRATE, dboid, t, migrations);
	run->task->target = target;
	*launched = tm_exec_launch(run);
	return run;
}

/* Renames the database of t to object, marked for tenant new_name. */
void
tm_dbtenant_rename(TmTenant *t, const char *object, const char *new_name)
{
	Oid			dboid = tm_dbtenant_require(t);
	TmTenant	renamed = *t;

	if (OidIsValid(get_database_oid(object, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_DATABASE),
				 errmsg("database \"%s\" already exists", object)));
	renamed.name = (char *) new_name;
	tm_rename_object("DATABASE", get_database_name(dboid), object, &renamed,
					 false);
}

/*
 * Moves the database of t out of the way in the caller's transaction:
 * terminates tenant_mgr's own executors there (and other sessions if
 * force), renames it to name and closes it to connections.
 */
static void
tm_dbtenant_set_aside(TmTenant *t, Oid dboid, const char *name, bool force)
{
	tm_terminate_sessions(t, dboid, force);
	/* renaming waits a few seconds for terminated sessions to go */
	tm_rename_object("DATABASE", get_database_name(dboid), name, NULL, false);
	tm_ddl(psprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS false",
						quote_identifier(name)));
}

/* Detaches t, keeping its data: tenant_mgr_detached_<oid>. */
void
tm_dbtenant_detach(TmTenant *t, bool force)
{
	Oid			dboid = tm_dbtenant_require(t);

	tm_dbtenant_set_aside(t, dboid, psprintf("tenant_mgr_detached_%u", dboid),
						  force);
}

/*
 * Drops t: detaches its database to tenant_mgr_drop_<oid> and queues its
 * removal after commit.  Without a database of tenant_mgr's, says so.
 */
void
tm_dbtenant_drop(TmTenant *t, bool force)
{
	Oid			dboid;
	char	   *name;

	tm_require_control_database();
	dboid = tm_database_find(t);

	/*
	 * The launcher may be removing it right now (what a failed queued
	 * creation left): wait for that, as the rename below would, and find
	 * it gone rather than fail on its name.
	 */
	if (OidIsValid(dboid))
	{
		LockSharedObject(DatabaseRelationId, dboid, 0, AccessExclusiveLock);
		if (!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dboid)))
			dboid = InvalidOid;
	}
	if (!OidIsValid(dboid))
	{
		ereport(NOTICE,
				(errmsg("database of tenant \"%s\" no longer exists", t->name),
				 errdetail("Only its catalog row is removed.")));
		return;
	}
	name = psprintf("tenant_mgr_drop_%u", dboid);
	tm_dbtenant_set_aside(t, dboid, name, force);
	tm_pause_point("drop:after-detach");
	tm_job_queue(t->name, TM_JOB_DROP, name, dboid, t->owner, true, force, NULL);
}

/*
 * Terminates the sessions using database dboid of t: tenant_mgr's own
 * executors always, others only with force and the caller's right to
 * signal them; without force, other sessions are an error.
 */
static void
tm_terminate_sessions(const TmTenant *t, Oid dboid, bool force)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(dboid)};
	List	   *pids = NIL;
	List	   *executors = NIL;
	uint64		others = 0;
	uint64		i;
	ListCell   *lc;

	/*
	 * Autovacuum workers are left out: ALTER and DROP DATABASE make them
	 * exit themselves (a new tenant database often has one at once).
	 */
	tm_user_query("SELECT pid, backend_type = 'tenant_mgr executor'"
				  "  FROM pg_catalog.pg_stat_activity"
				  " WHERE datid = $1 AND pid <> pg_catalog.pg_backend_pid()"
				  "   AND backend_type <> 'autovacuum worker'",
				  1, types, values);
	for (i = 0; i < SPI_processed; i++)
	{
		pids = lappend_int(pids, tm_get_int32(i, 1));
		if (tm_get_bool(i, 2))
			executors = lappend_int(executors, tm_get_int32(i, 1));
		else
			others++;
	}
	if (others > 0 && !force)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("database \"%s\" of tenant \"%s\" is being accessed by other users",
						get_database_name(dboid), t->name),
				 errdetail_plural("There is " UINT64_FORMAT " other session using the database.",
								  "There are " UINT64_FORMAT " other sessions using the database.",
								  others, others),
				 errhint("Disconnect them, or call tenant_drop(..., force => true).")));

	/* our executors as the extension's owner, other sessions as the caller */
	types[0] = INT4OID;
	foreach(lc, pids)
	{
		bool		executor = list_member_int(executors, lfirst_int(lc));
		TmIdentity	saved;

		/*
		 * A session may end by itself meanwhile (an executor that has just
		 * reported is on its way out): gone is what was wanted.
		 */
		if (BackendPidGetProc(lfirst_int(lc)) == NULL)
			continue;
		values[0] = Int32GetDatum(lfirst_int(lc));
		if (executor)
			tm_become(tm_catalog_owner(), 0, &saved);
		tm_user_query("SELECT pg_catalog.pg_terminate_backend($1)", 1, types, values);
		if (executor)
			tm_restore(&saved);
		if (!tm_get_bool(0, 1) && BackendPidGetProc(lfirst_int(lc)) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("could not terminate session %d using database \"%s\"",
							lfirst_int(lc), get_database_name(dboid)),
					 errhint("Only roles with the privileges of pg_signal_backend, or of the session's role, may terminate it.")));
	}
}

/*
 * Attaches a detached database tenant again: its name back, connections
 * allowed.  Raises an error when its database is gone or the name taken.
 */
void
tm_dbtenant_attach(TmTenant *t)
{
	Oid			dboid = tm_dbtenant_require(t);
	char	   *dbname = get_database_name(dboid);

	if (strcmp(dbname, t->object_name) != 0 &&
		OidIsValid(get_database_oid(t->object_name, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_DATABASE),
				 errmsg("database \"%s\" already exists", t->object_name)));
	tm_rename_object("DATABASE", dbname, t->object_name, NULL, false);
	tm_ddl(psprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS true",
						quote_identifier(t->object_name)));
}

/* A queued drop of a detached database, run by the launcher. */
void
tm_dbtenant_remove(TmJob *job)
{
	TmTenant   *t = tm_tenant_make(job->tenant, TM_DATABASE, job->object_name,
								   job->owner);
	TmExecRun  *drop;

	/* its catalog row is gone: the name in the labels identifies it */
	t->id = NULL;
	t->object_oid = job->database_oid;
	drop = tm_exec_prepare(TM_EXEC_DROP_DATABASE, MyDatabaseId, t, NIL);
	if (!tm_exec_for_job(drop, job))
		return;
	/*
	 * An executor terminated (57P01) was not refused: failing the job would
	 * leave what it had not dropped yet (the role, after the database) to
	 * nobody, so the next attempt goes on.
	 */
	if (drop->task->state == TM_EXEC_FAILED &&
		drop->task->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
		tm_job_requeue(job, 1);
	else
		tm_job_finish(job, tm_exec_error(drop->task));
	tm_exec_release(drop);
}

/*
 * Removes what the request of an orphan intent left (the database and the
 * owner role, if they carry tenant_mgr's marks) and the intent itself.
 * Returns false when no worker slot was free.
 */
bool
tm_dbtenant_remove_orphan(TmIntent *intent)
{
	TmTenant   *t = tm_tenant_make(intent->tenant, TM_DATABASE,
								   intent->object_name, intent->owner);
	TmExecRun  *run;

	t->object_oid = intent->database_oid;
	t->id = intent->tenant_id;
	run = tm_exec_prepare(TM_EXEC_DROP_DATABASE, MyDatabaseId, t, NIL);
	run->task->intent_id = intent->id;
	if (!tm_exec_launch(run))
	{
		tm_exec_release(run);
		return false;
	}
	tm_exec_wait(run);
	if (run->task->state == TM_EXEC_FAILED)
		ereport(WARNING,
				(errcode(run->task->sqlerrcode),
				 errmsg("could not remove the orphan database of tenant \"%s\": %s",
						t->name, tm_task_text(run->task, run->task->message))));
	else
		ereport(LOG,
				(errmsg("tenant_mgr removed what an aborted creation of tenant \"%s\" left",
						t->name)));
	tm_exec_release(run);
	return true;
}

/*
 * Reads a database tenant's ledger through an executor.  Returns the
 * finished run (the caller releases it), or NULL without a database.
 */
TmExecRun *
tm_dbtenant_read_ledger(const TmTenant *t, List *migrations)
{
	Oid			dboid = tm_database_find(t);
	TmExecRun  *run;

	if (!OidIsValid(dboid))
		return NULL;
	run = tm_exec_prepare(TM_EXEC_READ_LEDGER, dboid, t, migrations);
	tm_exec_run(run);
	return run;
}

/*
 * For the launcher, outside a transaction: takes the version of t from its
 * ledger when the catalog's copy differs.  Returns false when no worker
 * slot was free.
 */
bool
tm_dbtenant_correct_version(TmTenant *t, List *migrations)
{
	Oid			dboid;
	TmExecRun  *run;

	tm_xact_begin();
	dboid = tm_database_find(t);
	tm_xact_commit();
	if (!OidIsValid(dboid))
		return true;
	/* segments made outside a transaction live until released */
	run = tm_exec_prepare(TM_EXEC_READ_LEDGER, dboid, t, migrations);
	if (!tm_exec_launch(run))
	{
		tm_exec_release(run);
		return false;
	}
	tm_exec_wait(run);
	if (run->task->state == TM_EXEC_DONE && !run->task->no_ledger &&
		!run->task->problem && run->task->version != t->version)
	{
		tm_xact_begin();
		tm_tenant_set_version(t->name, run->task->version, NULL);
		tm_xact_commit();
		ereport(LOG,
				(errmsg("tenant_mgr corrected the version of tenant \"%s\" from " INT64_FORMAT " to " INT64_FORMAT " from its ledger",
						t->name, t->version, run->task->version)));
	}
	tm_exec_release(run);
	return true;
}

/*
 * Takes back, as tenant t (its new name, object name, owner role name and
 * id), the restored database dboid that carries the label of tenant
 * label_name with id label_id.  The database must be owned by the owner
 * role tenant_mgr made for that tenant, restored with its label (pg_dumpall
 * --roles-only), as every object inside it is: tenant_mgr never changes
 * owners inside a tenant database from here.  Its ledger is read by an
 * executor and checked against the registry first; then, in the caller's
 * transaction, the database and the role get t's names and labels, PUBLIC
 * loses CONNECT and TEMPORARY, and the caller may act as the owner.  Sets
 * t->object_oid and t->version; the caller records the tenant.
 */
void
tm_dbtenant_import(TmTenant *t, const char *label_name, const char *label_id,
				   Oid dboid)
{
	TmTenant   *restored;
	HeapTuple	tup;
	char	   *dbname = get_database_name(dboid);
	char	   *owner;
	TmExecRun  *run;
	TmExecTask *task;
	int64		version;
	int64		labelled;

	tm_require_control_database();
	/* a dropped tenant's database awaiting its job is gone, not restored */
	if (tm_database_has_work(dboid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("database \"%s\" is being dropped or created by tenant_mgr", dbname),
				 errdetail("A queued drop of tenant \"%s\", or a creation or its clean-up, names it.",
						   label_name),
				 errhint("Wait until that work is over (see tenant_mgr.jobs), then try again.")));
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for database %u", dboid);
	owner = GetUserNameFromId(((Form_pg_database) GETSTRUCT(tup))->datdba, false);
	ReleaseSysCache(tup);

	/* the restored objects, as they are named and labelled */
	restored = tm_tenant_make(label_name, TM_DATABASE, dbname, owner);
	restored->id = pstrdup(label_id);
	restored->object_oid = dboid;
	if (!tm_role_is_ours(owner, restored, false))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("database \"%s\" is not owned by the owner role of tenant \"%s\"",
						dbname, label_name),
				 errdetail("Its owner \"%s\" does not carry tenant_mgr's label for the tenant.", owner),
				 errhint("Restore the tenant's owner role from pg_dumpall --roles-only first, then the database with its owners (pg_restore --create, without --no-owner).")));

	/* the ledger, before anything changes: an executor cannot wait for us */
	run = tm_dbtenant_read_ledger(restored, tm_migration_list());
	task = run->task;
	tm_exec_raise(run);
	if (task->no_ledger)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("database \"%s\" has no table \"public.%s\"", dbname, TM_LEDGER_NAME),
				 errdetail("tenant_mgr takes back only a tenant whose ledger says which migrations it has.")));
	if (task->problem)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger of tenant \"%s\" is not the table tenant_mgr made", label_name),
				 errdetail("In database \"%s\", %s.", dbname, tm_task_text(task, task->problem))));
	if (task->unknown > 0 || task->mismatched > 0 || task->missing > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger of tenant \"%s\" disagrees with the registered migrations", label_name),
				 errdetail("It records %d unregistered migrations and %d with another checksum, and lacks %d below its latest.",
						   task->unknown, task->mismatched, task->missing),
				 errhint("Register the migrations the tenant has, as they were, before importing it.")));
	version = task->version;
	labelled = tm_label_version(DatabaseRelationId, dboid);
	if (labelled > version)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger of tenant \"%s\" lacks its latest migration " INT64_FORMAT,
						label_name, labelled),
				 errdetail("The database's security label records version " INT64_FORMAT " as applied, but the ledger's latest row is version " INT64_FORMAT ".",
						   labelled, version)));
	tm_exec_release(run);

	/* t's names and labels */
	if (strcmp(dbname, t->object_name) != 0 &&
		OidIsValid(get_database_oid(t->object_name, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_DATABASE),
				 errmsg("database \"%s\" already exists", t->object_name)));
	if (strcmp(owner, t->owner) != 0 && OidIsValid(get_role_oid(t->owner, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("role \"%s\" already exists", t->owner)));
	/* renaming waits a few seconds for the executor to leave */
	tm_rename_object("DATABASE", dbname, t->object_name, t, false);
	tm_rename_object("ROLE", owner, t->owner, t, false);
	tm_ddl(psprintf("REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC",
					quote_identifier(t->object_name)));
	if (!superuser())
		tm_ddl(psprintf("GRANT %s TO %s", quote_identifier(t->owner),
						quote_identifier(GetUserNameFromId(GetUserId(), false))));
	CommandCounterIncrement();
	if (labelled < 0)
		tm_label_set_version(DatabaseRelationId, dboid, t, version);
	t->object_oid = dboid;
	t->version = version;
}
