/*-------------------------------------------------------------------------
 *
 * executor.c
 *		The executor: a short-lived background worker connected to one
 *		database, running one step of work on a database tenant.
 *
 * It runs what PostgreSQL forbids inside the requesting transaction
 * (CREATE DATABASE, DROP DATABASE) as top-level statements, each committed
 * on its own, and applies migrations inside a tenant database through
 * migrate.c, each migration committed with its ledger row.  DDL that needs
 * a privilege runs as the role that asked, so an executor never does what
 * that role could not do by connecting; migrations run as the tenant's
 * owner.
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
		strlcpy(tm_task->message, edata->message ? edata->message : "", TM_MSG_LEN);
		strlcpy(tm_task->detail, edata->detail ? edata->detail : "", TM_MSG_LEN);
		strlcpy(tm_task->hint, edata->hint ? edata->hint : "", TM_MSG_LEN);
		strlcpy(tm_task->context, edata->context ? edata->context : "", TM_MSG_LEN);
		pg_write_barrier();
		tm_task->state = TM_EXEC_FAILED;
		SetLatch(&ProcGlobal->allProcs[tm_task->driver_procno].procLatch);
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * Runs one utility statement as a top-level command in a transaction of its
 * own, as the given role (the exec_simple_query path: never through SPI,
 * which would make it non-top-level).
 */
static void
tm_run_toplevel(const char *sql, Oid role)
{
	List	   *raw;
	ListCell   *lc;
	Oid			save_userid;
	int			save_sec_context;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, sql);
	debug_query_string = sql;
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(role, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);

	raw = pg_parse_query(sql);
	foreach(lc, raw)
	{
		RawStmt    *rs = lfirst_node(RawStmt, lc);
		PlannedStmt *pstmt = makeNode(PlannedStmt);

		pstmt->commandType = CMD_UTILITY;
		pstmt->canSetTag = true;
		pstmt->utilityStmt = rs->stmt;
		pstmt->stmt_location = rs->stmt_location;
		pstmt->stmt_len = rs->stmt_len;
		ProcessUtility(pstmt, sql, false, PROCESS_UTILITY_TOPLEVEL, NULL, NULL,
					   None_Receiver, NULL);
	}

	SetUserIdAndSecContext(save_userid, save_sec_context);
	CommitTransactionCommand();
	debug_query_string = NULL;
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Runs SQL through SPI as the given role; expects an open transaction. */
static void
tm_spi_as(const char *sql, Oid role)
{
	Oid			save_userid;
	int			save_sec_context;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(role, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_execute(sql, false, 0) < 0)
		elog(ERROR, "SPI_execute failed for \"%s\"", sql);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * Returns the OID of a role created by tenant_mgr for tenant, InvalidOid if
 * there is no role of that name; a role of that name that tenant_mgr did
 * not create is an error unless missing_ok (then InvalidOid too).
 */
static Oid
tm_our_role(const char *role, const char *tenant, bool missing_ok)
{
	Oid			roleid = get_role_oid(role, true);

	if (!OidIsValid(roleid) || tm_role_is_ours(role, tenant))
		return roleid;
	if (missing_ok)
		return InvalidOid;
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_OBJECT),
			 errmsg("role \"%s\" already exists", role),
			 errdetail("It was not created by tenant_mgr, which never adopts an existing role."),
			 errhint("Choose another tenant name.")));
	return InvalidOid;			/* keep compiler quiet */
}

/*
 * CREATE_DATABASE, in the control database: an intent row first, then the
 * owner role, the database (top-level) and its marks.  Resumes whatever an
 * earlier run of the same job left.
 */
static void
tm_exec_create_database(TmExecTask *task)
{
	Oid			types[7] = {TEXTOID, NAMEOID, NAMEOID, NAMEOID, TEXTOID, INT8OID, INT8OID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	const char *marker = tm_schema_marker(task->tenant);
	Oid			dboid;
	Oid			roleid;

	/* 1. the intent, committed before anything exists */
	tm_xact_begin();
	tm_check_dbtenant_privileges(task->requester, task->tenant);
	values[0] = CStringGetTextDatum(task->tenant);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(task->object_name));
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(task->owner));
	values[3] = DirectFunctionCall1(namein,
									CStringGetDatum(GetUserNameFromId(task->requester, false)));
	values[4] = CStringGetTextDatum(psprintf(UINT64_FORMAT, task->xid));
	values[5] = Int64GetDatum(task->job_id);
	if (task->xid == 0)
		nulls[4] = 'n';
	if (task->job_id == 0)
		nulls[5] = 'n';
	task->intent = 0;
	if (task->job_id != 0)
	{
		if (SPI_execute_with_args("SELECT id FROM tenant_mgr.intent WHERE job_id = $6",
								  7, types, values, nulls, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read tenant_mgr.intent");
		if (SPI_processed > 0)
			task->intent = strtoi64(SPI_getvalue(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1), NULL, 10);
	}
	if (task->intent == 0)
	{
		if (SPI_execute_with_args("INSERT INTO tenant_mgr.intent"
								  " (tenant, object_name, owner, requested_by, xid, job_id)"
								  " VALUES ($1, $2, $3, $4, $5::xid8, $6) RETURNING id",
								  7, types, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "could not insert into tenant_mgr.intent");
		task->intent = strtoi64(SPI_getvalue(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1), NULL, 10);
	}

	/* never adopt: a role or database of that name must be ours */
	roleid = tm_our_role(task->owner, task->tenant, false);
	dboid = get_database_oid(task->object_name, true);
	if (OidIsValid(dboid) &&
		(!OidIsValid(roleid) || !pg_database_ownercheck(dboid, roleid)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_DATABASE),
				 errmsg("database \"%s\" already exists", task->object_name),
				 errdetail("It was not created by tenant_mgr, which never adopts an existing database."),
				 errhint("Choose another tenant name.")));
	tm_xact_commit();

	/* 2. the owner role, as the requester */
	if (!OidIsValid(roleid))
	{
		tm_xact_begin();
		tm_spi_as(psprintf("CREATE ROLE %s NOLOGIN", quote_identifier(task->owner)),
				  task->requester);
		tm_spi_as(psprintf("COMMENT ON ROLE %s IS %s", quote_identifier(task->owner),
						   quote_literal_cstr(marker)),
				  task->requester);
		if (!superuser_arg(task->requester))
			tm_spi_as(psprintf("GRANT %s TO %s", quote_identifier(task->owner),
							   quote_identifier(GetUserNameFromId(task->requester, false))),
					  task->requester);
		tm_xact_commit();
	}

	/* 3. the database, top-level, as the requester */
	if (!OidIsValid(dboid))
		tm_run_toplevel(psprintf("CREATE DATABASE %s OWNER %s",
								 quote_identifier(task->object_name),
								 quote_identifier(task->owner)),
						task->requester);

	/* 4. its marks, and the intent learns the database's OID */
	tm_xact_begin();
	dboid = get_database_oid(task->object_name, false);
	tm_spi_as(psprintf("REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC",
					   quote_identifier(task->object_name)), BOOTSTRAP_SUPERUSERID);
	tm_spi_as(psprintf("COMMENT ON DATABASE %s IS %s",
					   quote_identifier(task->object_name),
					   quote_literal_cstr(marker)), BOOTSTRAP_SUPERUSERID);
	tm_spi_as(psprintf("UPDATE tenant_mgr.intent SET database_oid = %u WHERE id = " INT64_FORMAT,
					   dboid, task->intent), BOOTSTRAP_SUPERUSERID);
	tm_xact_commit();
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
	Oid			dboid = InvalidOid;
	char	   *dbname = NULL;
	Oid			roleid;

	tm_xact_begin();
	roleid = tm_our_role(task->owner, task->tenant, true);
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
	if (OidIsValid(dboid))
	{
		char	   *comment = tm_shared_comment(dboid, DatabaseRelationId);
		bool		ours = (comment && strcmp(comment, tm_schema_marker(task->tenant)) == 0) ||
			(OidIsValid(roleid) && pg_database_ownercheck(dboid, roleid));

		if (!ours)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("database \"%s\" was not created by tenant_mgr", dbname),
					 errdetail("tenant_mgr drops only databases that carry its marks.")));
	}
	tm_xact_commit();

	if (OidIsValid(dboid))
		tm_run_toplevel(psprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)",
								 quote_identifier(dbname)),
						task->requester);

	tm_xact_begin();
	roleid = tm_our_role(task->owner, task->tenant, true);
	if (OidIsValid(roleid))
	{
		Oid			save_userid;
		int			save_sec_context;

		/* as the requester; the role goes only when nothing depends on it */
		GetUserIdAndSecContext(&save_userid, &save_sec_context);
		SetUserIdAndSecContext(task->requester,
							   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
		tm_login_role_drop(task->owner, task->tenant);
		tm_owner_role_drop(task->owner, task->tenant);
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	if (task->intent_id != 0)
		tm_spi_as(psprintf("DELETE FROM tenant_mgr.intent WHERE id = " INT64_FORMAT,
						   task->intent_id), BOOTSTRAP_SUPERUSERID);
	tm_xact_commit();
}

/* The tenant this executor works on, as migrate.c wants it. */
static TmTenant *
tm_task_tenant(TmExecTask *task)
{
	TmTenant   *t = palloc0(sizeof(TmTenant));

	t->name = task->tenant;
	t->isolation = TM_ISOLATION_DATABASE;
	t->object_name = task->object_name;
	t->object_oid = MyDatabaseId;
	t->owner = task->owner;
	t->state = "ready";
	t->version = task->version;
	t->schema = "public";
	return t;
}

/*
 * MIGRATE, in a tenant database: the ledger if there is none yet, then
 * each step in a transaction of its own with its ledger row.
 */
static void
tm_exec_migrate(TmExecTask *task)
{
	TmTenant   *t = tm_task_tenant(task);
	List	   *migrations = tm_task_migrations(task);
	List	   *steps;
	ListCell   *lc;
	int64		current;

	tm_xact_begin();
	if (!OidIsValid(get_relname_relid(TM_LEDGER_NAME, PG_PUBLIC_NAMESPACE)))
		tm_ledger_create(t);
	steps = tm_migration_plan(t, migrations, task->target, &current);
	tm_xact_commit();
	task->version = current;

	foreach(lc, steps)
	{
		TmStep	   *s = lfirst(lc);

		task->failing = s->migration->version;
		task->failing_up = s->up;
		tm_xact_begin();
		tm_migration_apply(t, s);
		tm_xact_commit();
		task->failing = 0;

		task->steps[task->nsteps].version = s->migration->version;
		task->steps[task->nsteps].up = s->up;
		task->steps[task->nsteps].ms = s->ms;
		task->nsteps++;
		task->version = tm_version_after(steps, lc, task->target);
	}
}

/* READ_LEDGER, in a tenant database: compare the ledger with the registry. */
static void
tm_exec_read_ledger(TmExecTask *task)
{
	List	   *migrations = tm_task_migrations(task);
	uint64		i;

	tm_xact_begin();
	if (!OidIsValid(get_relname_relid(TM_LEDGER_NAME, PG_PUBLIC_NAMESPACE)))
		task->no_ledger = true;
	else
	{
		if (SPI_execute("SELECT version, checksum FROM public." TM_LEDGER_NAME
						" ORDER BY version", true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the ledger");
		for (i = 0; i < SPI_processed; i++)
		{
			int64		v = strtoi64(SPI_getvalue(SPI_tuptable->vals[i],
												  SPI_tuptable->tupdesc, 1),
									 NULL, 10);
			char	   *checksum = SPI_getvalue(SPI_tuptable->vals[i],
												SPI_tuptable->tupdesc, 2);
			ListCell   *lc;
			bool		found = false;

			foreach(lc, migrations)
			{
				TmMigration *m = lfirst(lc);

				if (m->version == v)
				{
					found = true;
					if (strcmp(m->checksum, checksum) != 0)
						task->mismatched++;
				}
			}
			if (!found)
				task->unknown++;
			task->version = v;
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
	}
	pg_write_barrier();
	tm_task->state = TM_EXEC_DONE;
	SetLatch(&ProcGlobal->allProcs[tm_task->driver_procno].procLatch);
	proc_exit(0);
}
