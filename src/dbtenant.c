/*-------------------------------------------------------------------------
 *
 * dbtenant.c
 *		Database tenants: the flows that create, migrate and drop a tenant
 *		that is a whole database, driven from a backend or the launcher.
 *
 * Create, interactive: an executor in the control database commits an
 * intent naming the caller's transaction, creates the owner role and the
 * database; a second executor, connected to the new database, writes the
 * ledger and applies the migrations; the caller then records the tenant
 * and deletes the intent in its own transaction.  If that transaction
 * aborts, the intent survives it and the launcher removes the orphan.
 *
 * Create, queued: the caller's transaction inserts a catalog row in state
 * "creating" and a job; the launcher runs the same executors after commit
 * and records the result.  A job interrupted by a crash runs again from the
 * start; every executor step resumes what an earlier run left.
 *
 * Drop: the caller's transaction detaches the database (renames it out of
 * the way and closes it to connections) and queues a job; after commit the
 * launcher drops it.  Rolling back the detach undoes it.
 *
 * All of this runs in the control database (tenant_mgr.database) of a
 * server that preloads tenant_mgr.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/comment.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "tenant_mgr.h"

/*
 * Raises an error unless database tenants can be managed from here: the
 * library is preloaded and this is the control database.
 */
void
tm_require_control_database(const char *what)
{
	char	   *here;

	if (!tm_preloaded())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s need tenant_mgr in shared_preload_libraries", what),
				 errhint("Add tenant_mgr to shared_preload_libraries and restart the server.")));
	here = get_database_name(MyDatabaseId);
	if (strcmp(here, tm_control_database) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s are managed from database \"%s\"",
						what, tm_control_database),
				 errdetail("This is database \"%s\"; tenant_mgr.database names the control database.",
						   here),
				 errhint("Connect to database \"%s\", or change tenant_mgr.database and restart.",
						 tm_control_database)));
}

/*
 * Raises an error unless role may create a database tenant: it needs the
 * rights of CREATE DATABASE and CREATE ROLE, as if it ran them itself.
 */
void
tm_check_dbtenant_privileges(Oid role, const char *tenant)
{
	HeapTuple	tup;
	Form_pg_authid form;
	bool		ok;

	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u does not exist", role)));
	form = (Form_pg_authid) GETSTRUCT(tup);
	ok = form->rolsuper || (form->rolcreatedb && form->rolcreaterole);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to create database tenant \"%s\"", tenant),
				 errdetail("Role \"%s\" needs the CREATEDB and CREATEROLE attributes.",
						   NameStr(form->rolname))));
	ReleaseSysCache(tup);
}

/*
 * Returns the OID of the tenant's database, or InvalidOid when there is no
 * database that tenant_mgr created for it: the OID recorded at creation, or
 * (after a dump and restore) the database of that name with tenant_mgr's
 * comment.
 */
Oid
tm_database_find(const TmTenant *t)
{
	Oid			dboid;
	char	   *comment;

	if (OidIsValid(t->object_oid) && get_database_name(t->object_oid) != NULL)
		return t->object_oid;
	dboid = get_database_oid(t->object_name, true);
	if (!OidIsValid(dboid))
		return InvalidOid;
	comment = tm_shared_comment(dboid, DatabaseRelationId);
	if (comment == NULL || strcmp(comment, tm_schema_marker(t->name)) != 0)
		return InvalidOid;
	return dboid;
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
	edata->message = pstrdup(task->message);
	edata->detail = task->detail[0] ? pstrdup(task->detail) : NULL;
	edata->hint = task->hint[0] ? pstrdup(task->hint) : NULL;
	return edata;
}

/* Logs the steps an executor took. */
static void
tm_log_steps(int64 run_id, const char *tenant, List *steps)
{
	ListCell   *lc;

	foreach(lc, steps)
	{
		TmStep	   *s = lfirst(lc);

		tm_event_log(run_id, tenant, s->up ? "up" : "down",
					 s->migration->version, "ok", NULL, s->ms);
	}
}

static TmTenant *
tm_new_dbtenant(const char *name)
{
	TmTenant   *t = palloc0(sizeof(TmTenant));

	t->name = pstrdup(name);
	t->isolation = TM_ISOLATION_DATABASE;
	t->object_name = tm_object_name(name);
	t->owner = t->object_name;	/* its own role, named like the database */
	t->state = "creating";
	t->schema = "public";
	return t;
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
				(errmsg("could not remove what the failed creation of tenant \"%s\" left: %s",
						t->name, run->task->message),
				 errdetail("The launcher will try again.")));
	tm_exec_release(run);
}

/*
 * Creates a database tenant for the caller, whose transaction holds the
 * tenant's lock and has checked that no tenant of that name exists.  With
 * wait, returns when the tenant is ready and recorded in the caller's
 * transaction; without, records it as "creating" and queues a job.
 */
void
tm_dbtenant_create(const char *name, const char *metadata, bool wait)
{
	TmTenant   *t = tm_new_dbtenant(name);
	List	   *migrations;
	TmExecRun  *create;
	TmExecRun  *migrate;
	Oid			types[1] = {NAMEOID};
	Datum		values[1];
	int64		run_id;
	List	   *steps;
	instr_time	start;
	instr_time	elapsed;

	INSTR_TIME_SET_CURRENT(start);
	tm_require_control_database("database tenants");
	tm_check_dbtenant_privileges(GetUserId(), name);

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(t->object_name));
	tm_catalog_exec("SELECT 1 FROM tenant_mgr.intent WHERE object_name = $1",
					1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("an earlier attempt to create tenant \"%s\" is still being cleaned up", name),
				 errhint("Try again in a moment.")));
	if (OidIsValid(get_database_oid(t->object_name, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_DATABASE),
				 errmsg("database \"%s\" already exists", t->object_name),
				 errdetail("It was not created by tenant_mgr, which never adopts an existing database."),
				 errhint("Choose another tenant name.")));

	if (!wait)
	{
		if (!tm_tenant_reserve(name, TM_ISOLATION_DATABASE, t->object_name,
							   t->owner, metadata))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("tenant \"%s\" already exists", name)));
		(void) tm_job_queue(name, "create", t->object_name, InvalidOid,
							t->owner, true, false);
		return;
	}

	migrations = tm_migration_list();

	/* the intent names this transaction: if it aborts, the orphan goes */
	create = tm_exec_prepare(TM_EXEC_CREATE_DATABASE, MyDatabaseId, t, NIL);
	create->task->xid = U64FromFullTransactionId(GetTopFullTransactionId());
	tm_wake_at_abort();
	tm_exec_run(create);
	tm_exec_raise(create);

	migrate = tm_exec_prepare(TM_EXEC_MIGRATE, create->task->result_oid, t,
							  migrations);
	tm_exec_run(migrate);
	if (migrate->task->state == TM_EXEC_FAILED)
	{
		tm_cleanup_creation(t, create->task->result_oid, create->task->intent);
		tm_exec_raise(migrate);
	}

	tm_tenant_insert(name, TM_ISOLATION_DATABASE, t->object_name,
					 create->task->result_oid, t->owner,
					 migrate->task->version, metadata, "ready");
	tm_catalog_exec(psprintf("DELETE FROM tenant_mgr.intent WHERE id = " INT64_FORMAT,
							 create->task->intent),
					0, NULL, NULL, NULL, SPI_OK_DELETE);
	run_id = tm_run_id();
	steps = tm_exec_steps(migrate->task, migrations);
	tm_log_steps(run_id, name, steps);
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	tm_event_log(run_id, name, "create", 0, "ok", NULL,
				 INSTR_TIME_GET_MILLISEC(elapsed));
	tm_exec_release(migrate);
	tm_exec_release(create);
}

/*
 * Starts the MIGRATE executor for one database tenant, towards target.
 * Returns the run; the caller waits for it and releases it.
 */
TmExecRun *
tm_dbtenant_migrate_start(const TmTenant *t, List *migrations, int64 target,
						  bool *launched)
{
	Oid			dboid = tm_database_find(t);
	TmExecRun  *run;

	if (!OidIsValid(dboid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_DATABASE),
				 errmsg("database of tenant \"%s\" does not exist", t->name),
				 errhint("Compare the catalog with reality: SELECT * FROM tenant_mgr.verify().")));
	run = tm_exec_prepare(TM_EXEC_MIGRATE, dboid, t, migrations);
	run->task->target = target;
	*launched = tm_exec_launch(run);
	return run;
}

/*
 * Migrates database tenants in parallel, at most tenant_mgr.max_workers
 * executors at a time, and hands each finished run to report().  Stops
 * starting new ones after a failure if stop_on_error.
 */
void
tm_dbtenant_migrate_fleet(List *tenants, List *migrations, int64 target,
						  bool stop_on_error,
						  void (*report) (TmTenant *, TmExecRun *, void *),
						  void *arg)
{
	int			max = Max(tm_max_workers, 1);
	TmExecRun **runs = palloc0(sizeof(TmExecRun *) * max);
	TmTenant  **owners = palloc0(sizeof(TmTenant *) * max);
	ListCell   *next = list_head(tenants);
	int			active = 0;
	bool		stop = false;

	while (active > 0 || (next != NULL && !stop))
	{
		int			i;
		bool		started_one = false;

		/* fill free slots */
		for (i = 0; i < max && next != NULL && !stop; i++)
		{
			bool		launched;

			if (runs[i] != NULL)
				continue;
			owners[i] = lfirst(next);
			runs[i] = tm_dbtenant_migrate_start(owners[i], migrations, target,
												&launched);
			if (!launched)
			{
				tm_exec_release(runs[i]);
				runs[i] = NULL;
				if (active == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
							 errmsg("could not start a tenant_mgr executor"),
							 errdetail("All background worker slots are in use."),
							 errhint("Raise max_worker_processes, or try again later.")));
				break;			/* wait for one of ours to finish */
			}
			next = lnext(tenants, next);
			active++;
			started_one = true;
		}

		/* collect finished ones */
		for (i = 0; i < max; i++)
		{
			pid_t		pid;
			BgwHandleStatus status;

			if (runs[i] == NULL)
				continue;
			status = GetBackgroundWorkerPid(runs[i]->handle, &pid);
			if (status != BGWH_STOPPED && status != BGWH_POSTMASTER_DIED)
				continue;
			tm_exec_wait(runs[i]);	/* returns at once; marks silent deaths */
			report(owners[i], runs[i], arg);
			if (runs[i]->task->state == TM_EXEC_FAILED && stop_on_error)
				stop = true;
			tm_exec_release(runs[i]);
			runs[i] = NULL;
			active--;
		}

		if (active > 0 && !started_one)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 100L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
}

/*
 * Detaches a database tenant in the caller's transaction: terminates
 * tenant_mgr's own executors there (and other sessions if force, with the
 * caller's right to do so), renames the database out of the way and closes
 * it to connections; with drop, also queues its removal.  Returns false
 * when there is no database of tenant_mgr's to detach.
 */
bool
tm_dbtenant_detach(TmTenant *t, bool force, bool drop)
{
	Oid			dboid;
	char	   *dbname;
	char	   *detached;
	Oid			types[1] = {OIDOID};
	Datum		values[1];
	uint64		i;
	uint64		others = 0;

	tm_require_control_database("database tenants");
	dboid = tm_database_find(t);
	if (!OidIsValid(dboid))
		return false;
	dbname = get_database_name(dboid);

	values[0] = ObjectIdGetDatum(dboid);
	if (SPI_execute_with_args("SELECT pid, backend_type = 'tenant_mgr executor'"
							  "  FROM pg_catalog.pg_stat_activity"
							  " WHERE datid = $1 AND pid <> pg_catalog.pg_backend_pid()",
							  1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_stat_activity");
	for (i = 0; i < SPI_processed; i++)
		if (strcmp(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2), "f") == 0)
			others++;
	if (others > 0 && !force)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("database \"%s\" of tenant \"%s\" is being accessed by other users",
						dbname, t->name),
				 errdetail_plural("There is " UINT64_FORMAT " other session using the database.",
								  "There are " UINT64_FORMAT " other sessions using the database.",
								  others, others),
				 errhint("Disconnect them, or call tenant_drop(..., force => true).")));

	if (SPI_processed > 0)
	{
		SPITupleTable *sessions = SPI_tuptable;
		uint64		n = SPI_processed;

		for (i = 0; i < n; i++)
		{
			char	   *pid = SPI_getvalue(sessions->vals[i], sessions->tupdesc, 1);

			if (SPI_execute(psprintf("SELECT pg_catalog.pg_terminate_backend(%s)", pid),
							false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not call pg_terminate_backend");
			if (strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("could not terminate session %s using database \"%s\"",
								pid, dbname),
						 errhint("Only roles with the privileges of pg_signal_backend, or of the session's role, may terminate it.")));
		}
	}

	/* renaming waits a few seconds for terminated sessions to go */
	detached = psprintf(drop ? "tenant_mgr_drop_%u" : "tenant_mgr_detached_%u", dboid);
	if (strcmp(dbname, detached) != 0)
		tm_utility(psprintf("ALTER DATABASE %s RENAME TO %s",
							quote_identifier(dbname), quote_identifier(detached)));
	tm_utility(psprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS false",
						quote_identifier(detached)));

	if (drop)
		(void) tm_job_queue(t->name, "drop", detached, dboid, t->owner, true, force);
	return true;
}

/*
 * Attaches a detached database tenant again: its name back, connections
 * allowed.  Raises an error when its database is gone or the name taken.
 */
void
tm_dbtenant_attach(TmTenant *t)
{
	Oid			dboid;
	char	   *dbname;

	tm_require_control_database("database tenants");
	dboid = tm_database_find(t);
	if (!OidIsValid(dboid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_DATABASE),
				 errmsg("database of tenant \"%s\" does not exist", t->name)));
	dbname = get_database_name(dboid);
	if (strcmp(dbname, t->object_name) != 0)
	{
		if (OidIsValid(get_database_oid(t->object_name, true)))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_DATABASE),
					 errmsg("database \"%s\" already exists", t->object_name)));
		tm_utility(psprintf("ALTER DATABASE %s RENAME TO %s",
							quote_identifier(dbname), quote_identifier(t->object_name)));
	}
	tm_utility(psprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS true",
						quote_identifier(t->object_name)));
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
