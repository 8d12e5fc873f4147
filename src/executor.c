/*-------------------------------------------------------------------------
 *
 * executor.c
 *		The executor: a short-lived background worker connected to one
 *		database, running one step of work on a database tenant.
 *
 * It runs what PostgreSQL forbids inside the requesting transaction
 * (CREATE DATABASE, DROP DATABASE) as top-level statements, each committed
 * on its own, and applies migrations inside a tenant database through
 * migrate.c, each migration committed with its ledger row.  Its DDL on
 * roles and databases runs as the extension's owner (spi.c: tm_ddl), for a
 * request whose rights were checked when it was made and, for a job, again
 * when the job started; migrations and ledgers run as the tenant's owner in
 * a security-restricted operation, never with more.
 *
 * Whatever ends the executor with an error, even a FATAL while connecting,
 * passes through emit_log_hook and lands in the task's result, where the
 * driver reads it.  Every step is idempotent: a job interrupted by a crash
 * is simply run again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#include "commands/dbcommands.h"
#include "catalog/pg_type.h"
#include "commands/comment.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "tenant_mgr.h"

static TmExecTask *tm_task = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

/* Copies the first error that ends this executor into the task. */
static void
tm_executor_log_hook(ErrorData *edata)
{
	if (tm_task && edata->elevel >= ERROR && tm_task->state == TM_EXEC_PENDING)
	{
		tm_task->sqlerrcode = edata->sqlerrcode;
		tm_task_set_text(tm_task, &tm_task->message, edata->message ? edata->message : "");
		if (edata->detail)
			tm_task_set_text(tm_task, &tm_task->detail, edata->detail);
		if (edata->hint)
			tm_task_set_text(tm_task, &tm_task->hint, edata->hint);
		if (edata->context)
			tm_task_set_text(tm_task, &tm_task->context, edata->context);
		pg_write_barrier();
		tm_task->state = TM_EXEC_FAILED;
		SetLatch(&ProcGlobal->allProcs[tm_task->driver_procno].procLatch);
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* The tenant this executor works on, as the other files want it. */
static TmTenant *
tm_task_tenant(TmExecTask *task)
{
	TmTenant   *t = tm_tenant_make(task->tenant, TM_DATABASE,
								   task->object_name, task->owner);

	t->id = task->tenant_id[0] ? pstrdup(task->tenant_id) : NULL;
	t->object_oid = task->action == TM_EXEC_DROP_DATABASE ? task->database_oid : MyDatabaseId;
	t->state = TM_READY;
	t->version = task->version;
	return t;
}

/*
 * CREATE_DATABASE, in the control database: an intent row first, then the
 * owner role (which the requester may act as), the database (top-level)
 * and its marks, as the extension's owner.  Resumes whatever an earlier run
 * of the same job left.  CLONE_DATABASE copies the template database
 * instead, when it can (template.c).
 */
static void
tm_exec_create_database(TmExecTask *task)
{
	TmTenant   *t = tm_task_tenant(task);
	Oid			dboid;
	Oid			roleid;
	Oid			ext_owner;

	/* 1. the intent, committed before anything exists (a spare has its row) */
	tm_xact_begin();
	ext_owner = tm_catalog_owner();
	if (!task->spare)
		task->intent = tm_intent_record(task);

	/* never adopt: a role or database of that name must be ours */
	roleid = tm_our_role(t, false);
	dboid = get_database_oid(task->object_name, true);
	if (OidIsValid(dboid) &&
		(!OidIsValid(roleid) || !pg_database_ownercheck(dboid, roleid)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_DATABASE),
				 errmsg("database \"%s\" already exists", task->object_name),
				 errdetail("It was not created by tenant_mgr, which never adopts an existing database."),
				 errhint("Choose another tenant name.")));
	tm_xact_commit();
	tm_pause_point("dbcreate:after-intent");

	/* 2. the owner role, granted to the requester */
	if (!OidIsValid(roleid))
	{
		TmIdentity	saved;

		tm_xact_begin();
		tm_become(task->requester, 0, &saved);
		tm_owner_role_create(t);
		tm_restore(&saved);
		tm_xact_commit();
	}
	tm_pause_point("dbcreate:after-role");

	/* 3. the database, top-level: a copy of the template, or from scratch */
	if (!OidIsValid(dboid) &&
		!(task->action == TM_EXEC_CLONE_DATABASE &&
		  tm_template_clone(task, ext_owner)))
		tm_utility_toplevel(psprintf("CREATE DATABASE %s OWNER %s",
									 quote_identifier(task->object_name),
									 quote_identifier(task->owner)),
							ext_owner);
	tm_pause_point("dbcreate:after-database");

	/* 4. its marks, and the intent learns the database's OID */
	tm_xact_begin();
	dboid = get_database_oid(task->object_name, false);
	tm_ddl(psprintf("REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC",
						quote_identifier(task->object_name)));
	tm_mark("DATABASE", task->object_name, t, false);
	if (task->intent != 0)
		tm_intent_set_database(task->intent, dboid);
	tm_xact_commit();
	tm_pause_point("dbcreate:after-marks");
	task->result_oid = dboid;
}

/*
 * DROP_DATABASE, in the control database: the database (top-level, after
 * terminating whatever is connected to it) and then the owner role, if
 * both carry tenant_mgr's marks.  Nothing to drop is not an error.
 */
static void
tm_exec_drop_database(TmExecTask *task)
{
	TmTenant   *t = tm_task_tenant(task);
	Oid			dboid = InvalidOid;
	char	   *dbname = NULL;
	Oid			roleid;
	Oid			ext_owner;

	tm_xact_begin();
	ext_owner = tm_catalog_owner();
	roleid = tm_our_role(t, true);
	if (OidIsValid(task->database_oid))
		dbname = get_database_name(task->database_oid);
	if (dbname)
		dboid = task->database_oid;
	else if (OidIsValid(roleid))
	{
		/* an intent that never learned the OID: the database of our role */
		dboid = get_database_oid(task->object_name, true);
		if (OidIsValid(dboid) && pg_database_ownercheck(dboid, roleid))
			dbname = get_database_name(dboid);
		else
			dboid = InvalidOid;
	}
	if (OidIsValid(dboid) && !tm_database_is_ours(dboid, t, roleid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("database \"%s\" was not created by tenant_mgr", dbname),
				 errdetail("tenant_mgr drops only databases that carry its marks.")));
	tm_xact_commit();

	if (OidIsValid(dboid))
		tm_utility_toplevel(psprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)",
									 quote_identifier(dbname)),
							ext_owner);
	tm_pause_point("dbdrop:after-database");

	tm_xact_begin();
	/* the roles go only when nothing depends on them any more */
	if (OidIsValid(tm_our_role(t, true)))
	{
		/* the job names the detached database; roles follow the owner */
		TmTenant	named = *t;

		named.object_name = t->owner;
		tm_login_role_drop(&named);
		tm_owner_role_drop(t);
	}
	if (task->intent_id != 0)
		tm_intent_delete(task->intent_id);
	tm_xact_commit();
}

/*
 * MIGRATE, in a tenant database: the ledger if there is none yet, then
 * each step in a transaction of its own with its ledger row.  In a fleet
 * run, each step takes the tenant's lock where the control database's
 * sessions take it, under the run's lock_timeout and statement_timeout,
 * and the driver may ask it to stop after the step it is in; the plan is
 * made under that lock, in the transaction of the first step, so that no
 * other session can have migrated the tenant in between.  A dry run
 * applies every step in one transaction and rolls it back.
 */
static void
tm_exec_migrate(TmExecTask *task)
{
	TmTenant   *t = tm_task_tenant(task);
	List	   *migrations = tm_task_migrations(task);
	List	   *steps;
	ListCell   *lc;
	int64		current;
	bool		locking = OidIsValid(task->control_db) && !task->dry_run;
	bool		held;

	if (task->run_id != 0)
	{
		char	   *appname = psprintf("tenant_mgr run " INT64_FORMAT, task->run_id);

		pgstat_report_appname(appname);
		SetConfigOption("application_name", appname, PGC_USERSET, PGC_S_SESSION);
		/*
		 * Each migration still commits with its ledger row; the run's last
		 * transaction is synchronous and, the WAL being the cluster's,
		 * flushes these commits too before the run reports them.
		 */
		SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION);
	}

	tm_xact_begin();
	if (locking)
	{
		tm_migration_timeouts(task->lock_timeout_ms, task->statement_timeout_ms);
		tm_tenant_lock_in(task->control_db, t->name);

		/*
		 * A rename that committed while this executor of a run waited to
		 * connect leaves it in a database that is another name's now.
		 */
		if (task->run_id != 0 && tm_database_find(t) != MyDatabaseId)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("tenant \"%s\" does not exist", t->name),
					 errdetail("Its database was renamed while the run waited to connect to it.")));
	}
	if (!OidIsValid(get_relname_relid(TM_LEDGER_NAME, PG_PUBLIC_NAMESPACE)))
		tm_ledger_create(t);
	steps = tm_migration_plan(t, migrations, task->target, &current);
	task->version = current;
	/* the first step goes on in this transaction, under the lock */
	held = locking && steps != NIL &&
		((TmStep *) linitial(steps))->migration->transactional;
	if (!held)
		tm_xact_commit();

	if (task->dry_run)
		tm_xact_begin();
	foreach(lc, steps)
	{
		TmStep	   *s = lfirst(lc);

		if (task->cancel)
			break;
		task->failing = s->migration->version;
		task->failing_up = s->up;
		if (!s->migration->transactional)
		{
			bool		in_effect;

			/* top-level, between two transactions, under a session lock */
			if (task->dry_run)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("a dry run cannot apply non-transactional migration " INT64_FORMAT " (%s)",
								s->migration->version, s->migration->name),
						 errdetail("It runs outside a transaction, so it cannot be rolled back.")));
			tm_xact_begin();
			if (OidIsValid(task->control_db))
				tm_tenant_lock_session(task->control_db, t->name);
			in_effect = tm_migration_nt_prepare(t, s);
			tm_xact_commit();
			if (!in_effect)
				tm_migration_nt_run(t, s, task->lock_timeout_ms,
									task->statement_timeout_ms);
			tm_xact_begin();
			tm_migration_nt_finish(t, s);
			tm_xact_commit();
			if (OidIsValid(task->control_db))
				tm_tenant_unlock_session(task->control_db, t->name);
		}
		else if (held)
			held = false;
		else if (!task->dry_run)
		{
			tm_xact_begin();
			if (OidIsValid(task->control_db))
			{
				tm_migration_timeouts(task->lock_timeout_ms,
									  task->statement_timeout_ms);
				tm_tenant_lock_in(task->control_db, t->name);
				/* another session may have migrated it meanwhile */
				if (tm_migration_plan(t, migrations, task->target, &current) == NIL ||
					current != task->version)
				{
					tm_xact_commit();
					task->failing = 0;
					break;
				}
			}
		}
		if (s->migration->transactional)
		{
			tm_migration_apply(t, s);
			if (!task->dry_run)
				tm_xact_commit();
			tm_pause_point("migrate:after-commit");
		}
		task->failing = 0;

		task->steps[task->nsteps].version = s->migration->version;
		task->steps[task->nsteps].up = s->up;
		task->steps[task->nsteps].ms = s->ms;
		task->nsteps++;
		task->version = tm_version_after(steps, lc, task->target);
	}
	if (held)
		tm_xact_commit();		/* cancelled before its first step */
	if (task->dry_run)
	{
		AbortCurrentTransaction();
		task->version = current;
	}
}

/*
 * BUILD_SCHEMA, in the control database: an intent row first, naming the
 * caller's transaction, then the schema tenant, each migration committed
 * on its own (build.c).  The caller claims it, or the launcher removes it.
 */
static void
tm_exec_build_schema(TmExecTask *task)
{
	TmTenant   *t = tm_tenant_make(task->tenant, TM_SCHEMA, task->object_name,
								   task->owner);
	List	   *migrations = tm_task_migrations(task);
	List	   *steps;
	ListCell   *lc;

	t->id = pstrdup(task->tenant_id);
	tm_xact_begin();
	task->intent = tm_intent_record(task);
	tm_xact_commit();
	tm_pause_point("build:after-intent");

	steps = tm_build_schema(t, migrations, task->requester, task->own_role);
	foreach(lc, steps)
	{
		TmStep	   *s = lfirst(lc);

		task->steps[task->nsteps].version = s->migration->version;
		task->steps[task->nsteps].up = s->up;
		task->steps[task->nsteps].ms = s->ms;
		task->nsteps++;
	}
	task->result_oid = t->object_oid;
	task->version = t->version;
}

/*
 * READ_LEDGER, in a tenant database: compare the ledger with the registry,
 * once it is checked to be the table tenant_mgr made (ledger.c).
 */
static void
tm_exec_read_ledger(TmExecTask *task)
{
	TmTenant   *t = tm_task_tenant(task);
	List	   *migrations = tm_task_migrations(task);
	char	   *problem;
	ListCell   *lc;

	tm_xact_begin();
	if (!OidIsValid(get_relname_relid(TM_LEDGER_NAME, PG_PUBLIC_NAMESPACE)))
		task->no_ledger = true;
	else if ((problem = tm_ledger_problem(t)) != NULL)
		tm_task_set_text(task, &task->problem, problem);
	else
	{
		List	   *rows = tm_ledger_rows(t);
		int64		latest = rows ? ((TmLedgerRow *) llast(rows))->version : 0;

		foreach(lc, migrations)
		{
			TmMigration *m = lfirst(lc);
			TmLedgerRow *row = NULL;
			ListCell   *rc;

			foreach(rc, rows)
				if (((TmLedgerRow *) lfirst(rc))->version == m->version)
					row = lfirst(rc);
			if (row && strcmp(m->checksum, row->checksum) != 0)
				task->mismatched++;
			if (!row && m->version < latest)
				task->missing++;	/* a gap: rows deleted by hand */
		}
		foreach(lc, rows)
		{
			TmLedgerRow *row = lfirst(lc);
			ListCell   *mc;
			bool		found = false;

			foreach(mc, migrations)
				found |= ((TmMigration *) lfirst(mc))->version == row->version;
			if (!found)
				task->unknown++;
			task->version = row->version;
		}
	}
	tm_xact_commit();
}

/*
 * Entry point of an executor.  The argument is the handle of the segment
 * holding its task.
 */
void
tm_executor_main(Datum arg)
{
	dsm_segment *seg;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not map the task of a tenant_mgr executor")));
	dsm_pin_mapping(seg);
	tm_task = dsm_segment_address(seg);
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = tm_executor_log_hook;

	BackgroundWorkerInitializeConnectionByOid(tm_task->dboid, BOOTSTRAP_SUPERUSERID,
											  BGWORKER_BYPASS_ALLOWCONN);
	/* no database or role setting may pick what a superuser runs */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);

	switch (tm_task->action)
	{
		case TM_EXEC_CREATE_DATABASE:
			tm_exec_create_database(tm_task);
			break;
		case TM_EXEC_MIGRATE:
			tm_exec_migrate(tm_task);
			break;
		case TM_EXEC_DROP_DATABASE:
			tm_exec_drop_database(tm_task);
			break;
		case TM_EXEC_READ_LEDGER:
			tm_exec_read_ledger(tm_task);
			break;
		case TM_EXEC_RUN_LEAD:
			tm_run_lead(tm_task);
			break;
		case TM_EXEC_RUN_HELP:
			tm_run_help(tm_task);
			break;
		case TM_EXEC_BUILD_SCHEMA:
			tm_exec_build_schema(tm_task);
			break;
		case TM_EXEC_CLONE_DATABASE:
			tm_exec_create_database(tm_task);
			break;
		case TM_EXEC_TEMPLATE_ADOPT:
			tm_template_adopt(tm_task);
			tm_exec_migrate(tm_task);
			break;
		case TM_EXEC_TEMPLATE_MIGRATE:
			tm_template_prepare(tm_task);
			tm_exec_migrate(tm_task);
			break;
	}
	pg_write_barrier();
	tm_task->state = TM_EXEC_DONE;
	SetLatch(&ProcGlobal->allProcs[tm_task->driver_procno].procLatch);
	proc_exit(0);
}
