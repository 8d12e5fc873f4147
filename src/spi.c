/*-------------------------------------------------------------------------
 *
 * spi.c
 *		SQL plumbing: SPI connections, transactions of background workers,
 *		statement runners named by the identity they run as, and typed
 *		getters for their results.
 *
 * Runners, by identity:
 *	tm_catalog_exec[_kept]	the catalog owner, search_path pinned: every
 *							read and write of tenant_mgr's own tables
 *	tm_user_query			the current user, read-only: system views
 *	tm_ddl					the extension's owner, search_path pinned: DDL
 *							on tenants' roles, schemas and databases
 *	tm_utility_toplevel		a given role, top-level, in a transaction of
 *							its own (CREATE/DROP DATABASE, in executors)
 *	tm_sql_restricted		a tenant's owner, in a security-restricted
 *							operation: migrations and ledgers
 *	tm_sql_restricted_toplevel	the same, some statements top-level in the
 *							current transaction (Citus mode, citus.c)
 *
 * Results of reads are allocated in tm_result_cxt(), so they outlive both
 * SPI_finish and the transactions of tm_xact_begin/commit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "tenant_mgr.h"

/* The caller's context inside tm_xact_begin/commit (see tm_result_cxt). */
static MemoryContext tm_xact_caller_cxt = NULL;

void
tm_spi_connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
tm_spi_finish(void)
{
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
}

/*
 * Locks the extension object, if there is one, until the end of the
 * transaction.  Background workers take it shared before they touch the
 * catalog, and DROP EXTENSION takes it exclusively (guard.c) before it
 * locks any catalog table: a worker's transaction either ends before the
 * drop begins or begins after it ended, and the two never hold each
 * other's tables.
 */
void
tm_extension_lock(LOCKMODE mode)
{
	Oid			extoid = get_extension_oid("tenant_mgr", true);

	if (OidIsValid(extoid))
		LockDatabaseObject(ExtensionRelationId, extoid, 0, mode);
}

/*
 * For background workers: starts a transaction with a snapshot and an SPI
 * connection, and commits it.  In between, the caller's memory context
 * stays current, so what it reads survives the commit.
 */
void
tm_xact_begin(void)
{
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	tm_extension_lock(AccessShareLock);
	PushActiveSnapshot(GetTransactionSnapshot());
	tm_spi_connect();
	tm_xact_caller_cxt = cxt;
	MemoryContextSwitchTo(cxt);
}

void
tm_xact_commit(void)
{
	MemoryContext cxt = tm_xact_caller_cxt;

	tm_spi_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	tm_xact_caller_cxt = NULL;
}

/*
 * After an error caught inside tm_xact_begin/commit: aborts the transaction
 * (which ends the SPI connection and pops the snapshot) and goes back to
 * the caller's memory context.
 */
void
tm_xact_abort(void)
{
	MemoryContext cxt = tm_xact_caller_cxt;

	AbortCurrentTransaction();
	if (cxt)
		MemoryContextSwitchTo(cxt);
	tm_xact_caller_cxt = NULL;
}

/*
 * The memory context for results of SPI reads.  Every SPI call leaves the
 * SPI procedure context current, which SPI_finish frees; inside
 * tm_xact_begin/commit, results go to the caller's context instead.
 */
MemoryContext
tm_result_cxt(void)
{
	return tm_xact_caller_cxt ? tm_xact_caller_cxt : CurrentMemoryContext;
}

/*
 * Acts as role from now on, saving the current identity; extra_sec_context
 * adds flags to SECURITY_LOCAL_USERID_CHANGE.  An error restores the
 * identity with the (sub)transaction's abort; otherwise tm_restore does.
 */
void
tm_become(Oid role, int extra_sec_context, TmIdentity *saved)
{
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(role, saved->sec_context |
						   SECURITY_LOCAL_USERID_CHANGE | extra_sec_context);
}

void
tm_restore(const TmIdentity *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}

/*
 * Returns the role that owns the catalog (the owner of tenant_mgr.tenant,
 * that is, whoever created the extension: a superuser).
 */
Oid
tm_catalog_owner(void)
{
	Oid			nspoid = get_namespace_oid("tenant_mgr", false);
	Oid			relid = get_relname_relid("tenant", nspoid);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the tenant_mgr catalog is missing"),
				 errhint("Run CREATE EXTENSION tenant_mgr in this database.")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Runs a catalog statement with parameters; raises an error unless SPI
 * answers "expected".  With plan, the statement is prepared once per
 * backend and kept in *plan (the plan cache re-plans it if the extension is
 * re-created).
 *
 * The catalog is read and written as its owner: callers need EXECUTE on
 * tenant_mgr's functions, never privileges on its tables, so direct DML on
 * the catalog or the queue is no way around the checks the functions make.
 * The search_path is pinned to pg_catalog, so that nothing a caller planted
 * runs with the owner's rights.  An error restores the caller's identity
 * and settings with the (sub)transaction's abort.
 */
static void
tm_catalog_run(SPIPlanPtr *plan, int cursor_options, const char *sql,
			   int nargs, Oid *types, Datum *values, const char *nulls,
			   int expected, Snapshot snapshot)
{
	TmIdentity	saved;
	int			save_nestlevel;
	int			rc;

	tm_become(tm_catalog_owner(), 0, &saved);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	if (plan != NULL)
	{
		if (*plan == NULL)
		{
			SPIPlanPtr	p = SPI_prepare_cursor(sql, nargs, types, cursor_options);

			if (p == NULL)
				elog(ERROR, "SPI_prepare failed for \"%s\": %s",
					 sql, SPI_result_code_string(SPI_result));
			if (SPI_keepplan(p) != 0)
				elog(ERROR, "SPI_keepplan failed");
			*plan = p;
		}
		rc = SPI_execute_plan(*plan, values, nulls, false, 0);
	}
	else if (snapshot != InvalidSnapshot)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		rc = SPI_execute_snapshot(p, values, nulls, snapshot, InvalidSnapshot,
								  true, false, 0);
	}
	else
		rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	AtEOXact_GUC(true, save_nestlevel);
	tm_restore(&saved);
	if (rc != expected)
		elog(ERROR, "SPI_execute failed for \"%s\": %s",
			 sql, SPI_result_code_string(rc));
}

/* One catalog statement, planned each time. */
void
tm_catalog_exec(const char *sql, int nargs, Oid *types, Datum *values,
				const char *nulls, int expected)
{
	tm_catalog_run(NULL, 0, sql, nargs, types, values, nulls, expected,
				   InvalidSnapshot);
}

/*
 * One catalog read with the latest snapshot, not the transaction's: what
 * executors committed after it started (in REPEATABLE READ, the
 * transaction's snapshot would not show it).
 */
void
tm_catalog_read_latest(const char *sql, int nargs, Oid *types, Datum *values)
{
	tm_catalog_run(NULL, 0, sql, nargs, types, values, NULL, SPI_OK_SELECT,
				   GetLatestSnapshot());
}

/*
 * One catalog statement run often, prepared once.  Lookups by name pass
 * CURSOR_OPT_CUSTOM_PLAN: a generic plan made while the catalog was small
 * would scan it whole for every tenant of a large run.
 */
void
tm_catalog_exec_kept(SPIPlanPtr *plan, int cursor_options, const char *sql,
					 int nargs, Oid *types, Datum *values, const char *nulls,
					 int expected)
{
	tm_catalog_run(plan, cursor_options, sql, nargs, types, values, nulls,
				   expected, InvalidSnapshot);
}

/*
 * A read-only query as the current user, for system catalogs and views
 * (every object in it must be schema-qualified).
 */
void
tm_user_query(const char *sql, int nargs, Oid *types, Datum *values)
{
	if (SPI_execute_with_args(sql, nargs, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed for \"%s\"", sql);
}

/*
 * Acts as role in a security-restricted operation (as maintenance commands
 * run table owners' code), with search_path and (unless NULL) lock_timeout
 * set at a new GUC nesting level; returns that level for
 * tm_restricted_leave.  An error undoes both with the (sub)transaction.
 */
static int
tm_restricted_enter(Oid role, const char *search_path, const char *lock_timeout,
					TmIdentity *saved)
{
	int			save_nestlevel;

	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(role, saved->sec_context | SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", search_path,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	if (lock_timeout)
		(void) set_config_option("lock_timeout", lock_timeout,
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
	return save_nestlevel;
}

static void
tm_restricted_leave(const TmIdentity *saved, int save_nestlevel)
{
	AtEOXact_GUC(true, save_nestlevel);
	tm_restore(saved);
}

/* A utility statement wrapped as exec_simple_query would run it. */
static PlannedStmt *
tm_utility_pstmt(Node *stmt, int location, int len)
{
	PlannedStmt *pstmt = makeNode(PlannedStmt);

	pstmt->commandType = CMD_UTILITY;
	pstmt->canSetTag = true;
	pstmt->utilityStmt = stmt;
	pstmt->stmt_location = location;
	pstmt->stmt_len = len;
	return pstmt;
}

/*
 * Runs sql through SPI as role inside a security-restricted operation, with
 * search_path and (unless NULL) lock_timeout set at a new GUC nesting level,
 * so that nothing the statement sets outlives it: for anything a tenant's
 * roles can influence.  An SPI error code is an error; an error restores
 * the identity and settings with the (sub)transaction's abort.
 */
void
tm_sql_restricted(Oid role, const char *search_path, const char *lock_timeout,
				  const char *sql, int nargs, Oid *types, Datum *values,
				  bool read_only)
{
	TmIdentity	saved;
	int			save_nestlevel;
	int			rc;

	save_nestlevel = tm_restricted_enter(role, search_path, lock_timeout, &saved);
	rc = SPI_execute_with_args(sql, nargs, types, values, NULL, read_only, 0);
	if (rc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("SQL could not be executed in a tenant: %s",
						SPI_result_code_string(rc))));
	tm_restricted_leave(&saved, save_nestlevel);
}

/*
 * Runs sql as tm_sql_restricted does, but statement by statement, those
 * for which toplevel(stmt) is true as top-level utility commands inside the
 * current transaction (Citus makes a table created in a distributed schema
 * a tenant table only for a top-level CREATE TABLE).  toplevel must choose
 * only statements that cannot end the transaction; the rest go through SPI.
 */
void
tm_sql_restricted_toplevel(Oid role, const char *search_path,
						   const char *lock_timeout, const char *sql,
						   bool (*toplevel) (Node *stmt))
{
	TmIdentity	saved;
	int			save_nestlevel;
	ListCell   *lc;

	save_nestlevel = tm_restricted_enter(role, search_path, lock_timeout, &saved);
	foreach(lc, pg_parse_query(sql))
	{
		RawStmt    *rs = lfirst_node(RawStmt, lc);

		if (toplevel(rs->stmt))
		{
			ListCell   *pc;
			List	   *plans;

			PushActiveSnapshot(GetTransactionSnapshot());
			plans = pg_plan_queries(pg_analyze_and_rewrite_fixedparams(rs, sql, NULL, 0, NULL),
									sql, CURSOR_OPT_PARALLEL_OK, NULL);
			foreach(pc, plans)
			{
				PlannedStmt *pstmt = lfirst_node(PlannedStmt, pc);

				if (pstmt->commandType != CMD_UTILITY)
					elog(ERROR, "a top-level migration statement must be a utility command");
				ProcessUtility(pstmt, sql, false, PROCESS_UTILITY_TOPLEVEL, NULL,
							   NULL, None_Receiver, NULL);
				CommandCounterIncrement();
			}
			PopActiveSnapshot();
		}
		else
		{
			char	   *text = rs->stmt_len > 0 ?
				pnstrdup(sql + rs->stmt_location, rs->stmt_len) :
				pstrdup(sql + rs->stmt_location);
			int			rc = SPI_execute(text, false, 0);

			if (rc < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
						 errmsg("SQL could not be executed in a tenant: %s",
								SPI_result_code_string(rc))));
		}
	}
	tm_restricted_leave(&saved, save_nestlevel);
}

/*
 * One parsed utility statement (stmt, of the text sql), run the same way:
 * as role, restricted, with search_path, inside the current transaction
 * (a non-transactional migration on a tenant built in it, whose statement
 * was made transactional).
 */
void
tm_utility_restricted(Node *stmt, const char *sql, Oid role,
					  const char *search_path)
{
	TmIdentity	saved;
	int			save_nestlevel;

	save_nestlevel = tm_restricted_enter(role, search_path, NULL, &saved);
	ProcessUtility(tm_utility_pstmt(stmt, -1, 0), sql, false,
				   PROCESS_UTILITY_QUERY, NULL, NULL, None_Receiver, NULL);
	CommandCounterIncrement();
	tm_restricted_leave(&saved, save_nestlevel);
}

/*
 * Runs one utility statement through SPI as the extension's owner, with
 * search_path pinned: tenant_mgr's own DDL on roles, schemas and databases,
 * done for callers that hold only EXECUTE on its functions.  Every name in
 * sql is one tenant_mgr made or checked, quoted; nothing in it runs code a
 * caller or a tenant chose.
 */
void
tm_ddl(const char *sql)
{
	TmIdentity	saved;
	int			save_nestlevel;

	tm_become(tm_catalog_owner(), 0, &saved);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not run \"%s\"", sql);
	AtEOXact_GUC(true, save_nestlevel);
	tm_restore(&saved);
}

/*
 * A tenant's non-transactional migration (CREATE INDEX CONCURRENTLY and
 * the like): one statement run top-level, outside any transaction block,
 * as the tenant's owner in a security-restricted operation with the
 * tenant's search_path.  The statement commits transactions of its own,
 * after which an error would restore the identity of the last of them, so
 * an error restores the executor's own identity and search_path first.
 */
void
tm_utility_toplevel_restricted(const char *sql, const char *role,
							   const char *search_path)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext parse_cxt;
	volatile Snapshot snapshot = NULL;
	TmIdentity	saved;
	char	   *saved_path;
	List	   *raw;
	RawStmt    *rs;
	PlannedStmt *pstmt;

	GetUserIdAndSecContext(&saved.userid, &saved.sec_context);
	saved_path = pstrdup(GetConfigOption("search_path", false, false));

	/*
	 * The statement commits transactions of its own (CREATE INDEX
	 * CONCURRENTLY does), so its parse tree must outlive them, as
	 * exec_simple_query's does in MessageContext.
	 */
	parse_cxt = AllocSetContextCreate(TopMemoryContext, "tenant_mgr top-level statement",
									  ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(parse_cxt);
	raw = pg_parse_query(sql);
	if (list_length(raw) != 1)
		elog(ERROR, "a non-transactional migration must be exactly one statement");
	rs = linitial_node(RawStmt, raw);
	pstmt = tm_utility_pstmt(rs->stmt, rs->stmt_location, rs->stmt_len);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		pgstat_report_activity(STATE_RUNNING, sql);
		debug_query_string = sql;
		SetConfigOption("search_path", search_path, PGC_SUSET, PGC_S_SESSION);
		SetUserIdAndSecContext(get_role_oid(role, false),
							   saved.sec_context | SECURITY_RESTRICTED_OPERATION);
		MemoryContextSwitchTo(parse_cxt);

		/*
		 * As for a statement a client sends: a snapshot when the statement
		 * needs one, which CONCURRENTLY pops from under us before it commits.
		 */
		if (PlannedStmtRequiresSnapshot(pstmt))
		{
			PushActiveSnapshot(GetTransactionSnapshot());
			snapshot = GetActiveSnapshot();
		}
		ProcessUtility(pstmt, sql, false, PROCESS_UTILITY_TOPLEVEL, NULL, NULL,
					   None_Receiver, NULL);
		if (snapshot && ActiveSnapshotSet() && GetActiveSnapshot() == snapshot)
			PopActiveSnapshot();
		SetUserIdAndSecContext(saved.userid, saved.sec_context);
		SetConfigOption("search_path", saved_path, PGC_SUSET, PGC_S_SESSION);
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		AbortCurrentTransaction();
		SetUserIdAndSecContext(saved.userid, saved.sec_context);
		SetConfigOption("search_path", saved_path, PGC_SUSET, PGC_S_SESSION);
		debug_query_string = NULL;
		MemoryContextSwitchTo(caller);
		MemoryContextDelete(parse_cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	debug_query_string = NULL;
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(parse_cxt);
}

/*
 * Runs one utility statement as a top-level command in a transaction of its
 * own, as role (the exec_simple_query path: never through SPI, which would
 * make it non-top-level).  For background workers outside a transaction.
 */
void
tm_utility_toplevel(const char *sql, Oid role)
{
	List	   *raw;
	ListCell   *lc;
	TmIdentity	saved;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, sql);
	debug_query_string = sql;
	tm_become(role, 0, &saved);

	raw = pg_parse_query(sql);
	foreach(lc, raw)
	{
		RawStmt    *rs = lfirst_node(RawStmt, lc);

		ProcessUtility(tm_utility_pstmt(rs->stmt, rs->stmt_location, rs->stmt_len),
					   sql, false, PROCESS_UTILITY_TOPLEVEL, NULL, NULL,
					   None_Receiver, NULL);
	}

	tm_restore(&saved);
	CommitTransactionCommand();
	debug_query_string = NULL;
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Runs fn(arg) in a subtransaction: released (kept) if it succeeds unless
 * discard, rolled back otherwise; returns the error, if any, as ErrorData
 * (a cancel is raised again).
 */
static ErrorData *
tm_try_sub(void (*fn) (void *), void *arg, bool discard)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
		if (!discard)
			ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (!discard)
			RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	if (discard)
		RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;

	if (edata && edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		ReThrowError(edata);
	return edata;
}

/*
 * Runs fn(arg) in a subtransaction.  Returns NULL on success, or the error
 * (allocated in the current memory context) after rolling the
 * subtransaction back.  A query cancel is not swallowed.
 */
ErrorData *
tm_try(void (*fn) (void *), void *arg)
{
	return tm_try_sub(fn, arg, false);
}

/*
 * Runs fn(arg), read-only work whose results go to memory outside it, in
 * a subtransaction that is always rolled back: the locks it took go with
 * it, so that reading the ledgers of 10,000 tenants in one transaction
 * (verify()) holds none of them at the end.  Returns the error, if any.
 */
ErrorData *
tm_try_discard(void (*fn) (void *), void *arg)
{
	return tm_try_sub(fn, arg, true);
}

/*
 * Typed getters for column col (1-based) of row row of the last result.
 * Each checks the column's type: a mismatch is a bug in a statement here.
 */
static Datum
tm_get(uint64 row, int col, Oid type, bool *isnull)
{
	Oid			actual = SPI_gettypeid(SPI_tuptable->tupdesc, col);

	if (actual != type)
		elog(ERROR, "column %d has type %u, not %u", col, actual, type);
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col,
						 isnull);
}

/* A text or name column as a C string in tm_result_cxt(), NULL for NULL. */
char *
tm_get_text(uint64 row, int col)
{
	Oid			type = SPI_gettypeid(SPI_tuptable->tupdesc, col);
	bool		isnull;
	Datum		d = tm_get(row, col, type == NAMEOID ? NAMEOID : TEXTOID, &isnull);
	MemoryContext old;
	char	   *result;

	if (isnull)
		return NULL;
	old = MemoryContextSwitchTo(tm_result_cxt());
	result = type == NAMEOID ? pstrdup(NameStr(*DatumGetName(d))) :
		TextDatumGetCString(d);
	MemoryContextSwitchTo(old);
	return result;
}

/* A bigint column; NULL reads as 0. */
int64
tm_get_int64(uint64 row, int col)
{
	bool		isnull;
	Datum		d = tm_get(row, col, INT8OID, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/* An integer column; NULL reads as 0. */
int32
tm_get_int32(uint64 row, int col)
{
	bool		isnull;
	Datum		d = tm_get(row, col, INT4OID, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

/* An oid column; NULL reads as InvalidOid. */
Oid
tm_get_oid(uint64 row, int col)
{
	bool		isnull;
	Datum		d = tm_get(row, col, OIDOID, &isnull);

	return isnull ? InvalidOid : DatumGetObjectId(d);
}

/* A boolean column; NULL reads as false. */
bool
tm_get_bool(uint64 row, int col)
{
	bool		isnull;
	Datum		d = tm_get(row, col, BOOLOID, &isnull);

	return !isnull && DatumGetBool(d);
}

/* A C string as a Datum of type name, for statement parameters. */
Datum
tm_name_datum(const char *s)
{
	return DirectFunctionCall1(namein, CStringGetDatum(s));
}

/* Milliseconds since start. */
double
tm_elapsed_ms(instr_time start)
{
	instr_time	elapsed;

	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	return INSTR_TIME_GET_MILLISEC(elapsed);
}
