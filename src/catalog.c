/*-------------------------------------------------------------------------
 *
 * catalog.c
 *		Reads and writes of the tenant_mgr catalog tables through SPI.
 *
 * Every function here expects an open SPI connection (tm_spi_connect) and
 * returns data allocated in the current SPI procedure context, so it lives
 * until tm_spi_finish.  Statements run often are prepared once per backend
 * and kept; the plan cache re-plans them if the extension is re-created.
 *
 * Per-tenant locks are transaction-scoped advisory locks in the control
 * database, taken without waiting: two operations on one tenant never
 * interleave, and one busy tenant never blocks the others.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/snapmgr.h"

#include "tenant_mgr.h"

/* Statements prepared once per backend. */
typedef enum TmPlanId
{
	TM_PLAN_TENANT_FETCH,
	TM_PLAN_TENANT_SET_VERSION,
	TM_PLAN_EVENT_LOG,
	TM_PLAN_TENANT_RESERVE,
	TM_PLAN_JOB_QUEUE,
	TM_NUM_PLANS
} TmPlanId;

static SPIPlanPtr tm_plans[TM_NUM_PLANS];

/* Lock tag field4 that sets tenant_mgr's advisory locks apart from users'. */
#define TM_LOCK_FIELD4 0x746d

#define TENANT_COLUMNS \
	"name, isolation, object_name, object_oid, owner, state, version, last_error"

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
 * For background workers: starts a transaction with a snapshot and an SPI
 * connection, and commits it.  In between, the caller's memory context
 * stays current, so what it reads survives the commit.
 */
static MemoryContext tm_xact_caller_cxt = NULL;

void
tm_xact_begin(void)
{
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	tm_spi_connect();
	/* results must outlive the transaction: see tm_result_cxt() */
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
 * Returns the role that owns the catalog (the owner of tenant_mgr.tenant,
 * that is, whoever created the extension).
 */
static Oid
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
 * answers "expected".  With a plan id, the statement is prepared once.
 *
 * The catalog is read and written as its owner: callers need EXECUTE on
 * tenant_mgr's functions, never privileges on its tables, so direct DML on
 * the catalog or the queue is no way around the checks the functions make.
 * Everything else (the DDL on tenants) runs as the caller.  The search_path
 * is pinned to pg_catalog, so that nothing a caller planted runs with the
 * owner's rights.  An error restores the caller's identity and settings
 * with the (sub)transaction's abort.
 */
static void
tm_exec(int planid, const char *sql, int nargs, Oid *types, Datum *values,
		const char *nulls, int expected)
{
	int			rc;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(tm_catalog_owner(),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	/* a caller's search_path must not pick the functions we call */
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	if (planid >= 0)
	{
		if (tm_plans[planid] == NULL)
		{
			/*
			 * Lookups by name always get a custom plan: a generic one made
			 * while the catalog was small would scan it whole for every
			 * tenant of a large run.  Plain INSERTs need no such care.
			 */
			bool		lookup = (planid == TM_PLAN_TENANT_FETCH ||
								  planid == TM_PLAN_TENANT_SET_VERSION);
			SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types,
												  lookup ? CURSOR_OPT_CUSTOM_PLAN : 0);

			if (plan == NULL)
				elog(ERROR, "SPI_prepare failed for \"%s\": %s",
					 sql, SPI_result_code_string(SPI_result));
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "SPI_keepplan failed");
			tm_plans[planid] = plan;
		}
		rc = SPI_execute_plan(tm_plans[planid], values, nulls, false, 0);
	}
	else
		rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	AtEOXact_GUC(true, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (rc != expected)
		elog(ERROR, "SPI_execute failed for \"%s\": %s",
			 sql, SPI_result_code_string(rc));
}

/* tm_exec for the other files: one catalog statement, not prepared. */
void
tm_catalog_exec(const char *sql, int nargs, Oid *types, Datum *values,
				const char *nulls, int expected)
{
	tm_exec(-1, sql, nargs, types, values, nulls, expected);
}


/* Column "col" of row "row" of the last result, as a string or NULL. */
static char *
tm_value(int row, int col)
{
	MemoryContext old = MemoryContextSwitchTo(tm_result_cxt());
	char	   *v = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);

	MemoryContextSwitchTo(old);
	return v;
}

static TmTenant *
tm_tenant_from_row(int row)
{
	TmTenant   *t = MemoryContextAllocZero(tm_result_cxt(), sizeof(TmTenant));

	t->name = tm_value(row, 1);
	t->isolation = tm_value(row, 2);
	t->object_name = tm_value(row, 3);
	t->object_oid = (Oid) strtoul(tm_value(row, 4), NULL, 10);
	t->owner = tm_value(row, 5);
	t->state = tm_value(row, 6);
	t->version = strtoi64(tm_value(row, 7), NULL, 10);
	t->last_error = tm_value(row, 8);
	t->schema = strcmp(t->isolation, TM_ISOLATION_DATABASE) == 0 ?
		"public" : t->object_name;
	return t;
}

/*
 * Returns the catalog row of a tenant, or NULL when there is none and
 * missing_ok; otherwise a missing tenant is an error.
 */
TmTenant *
tm_tenant_fetch(const char *name, bool missing_ok)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	tm_exec(TM_PLAN_TENANT_FETCH,
			"SELECT " TENANT_COLUMNS " FROM tenant_mgr.tenant WHERE name = $1",
			1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" does not exist", name)));
	}
	return tm_tenant_from_row(0);
}

/* Returns every tenant, ordered by name. */
List *
tm_tenant_list(void)
{
	List	   *result = NIL;
	uint64		i;

	MemoryContext old;

	tm_exec(-1, "SELECT " TENANT_COLUMNS " FROM tenant_mgr.tenant ORDER BY name",
			0, NULL, NULL, NULL, SPI_OK_SELECT);
	old = MemoryContextSwitchTo(tm_result_cxt());
	for (i = 0; i < SPI_processed; i++)
		result = lappend(result, tm_tenant_from_row(i));
	MemoryContextSwitchTo(old);
	return result;
}

void
tm_tenant_insert(const char *name, const char *isolation,
				 const char *object_name, Oid object_oid,
				 const char *owner, int64 version, const char *metadata,
				 const char *state)
{
	Oid			types[8] = {TEXTOID, TEXTOID, NAMEOID, OIDOID, NAMEOID,
	INT8OID, TEXTOID, TEXTOID};
	Datum		values[8];

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(isolation);
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(object_name));
	values[3] = ObjectIdGetDatum(object_oid);
	values[4] = DirectFunctionCall1(namein, CStringGetDatum(owner));
	values[5] = Int64GetDatum(version);
	values[6] = CStringGetTextDatum(metadata);
	values[7] = CStringGetTextDatum(state);

	tm_exec(-1,
			"INSERT INTO tenant_mgr.tenant"
			" (name, isolation, object_name, object_oid, owner, version, metadata, state)"
			" VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)",
			8, types, values, NULL, SPI_OK_INSERT);
}

/*
 * Records a new tenant in state "creating", for queued work.  Returns false
 * if a tenant of that name exists (after waiting for a transaction that is
 * inserting it).
 */
bool
tm_tenant_reserve(const char *name, const char *isolation,
				  const char *object_name, const char *owner,
				  const char *metadata)
{
	Oid			types[5] = {TEXTOID, TEXTOID, NAMEOID, NAMEOID, TEXTOID};
	Datum		values[5];

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(isolation);
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(object_name));
	values[3] = DirectFunctionCall1(namein, CStringGetDatum(owner));
	values[4] = CStringGetTextDatum(metadata);
	tm_exec(TM_PLAN_TENANT_RESERVE,
			"INSERT INTO tenant_mgr.tenant"
			" (name, isolation, object_name, object_oid, owner, version, metadata, state)"
			" VALUES ($1, $2, $3, 0, $4, 0, $5::jsonb, 'creating')"
			" ON CONFLICT DO NOTHING",
			5, types, values, NULL, SPI_OK_INSERT);
	return SPI_processed == 1;
}

/*
 * Inserts a job, run by the launcher once the current transaction commits,
 * with the rights of the current user; returns its id.
 */
int64
tm_job_insert(const char *tenant, const char *action, const char *object_name,
			  Oid database_oid, const char *owner, bool own_role, bool force)
{
	Oid			types[8] = {TEXTOID, TEXTOID, TEXTOID, OIDOID, TEXTOID, BOOLOID, TEXTOID, BOOLOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(tenant);
	values[1] = CStringGetTextDatum(action);
	values[2] = CStringGetTextDatum(object_name);
	values[3] = ObjectIdGetDatum(database_oid);
	if (!OidIsValid(database_oid))
		nulls[3] = 'n';
	values[4] = CStringGetTextDatum(owner);
	values[5] = BoolGetDatum(force);
	values[6] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	values[7] = BoolGetDatum(own_role);
	tm_exec(TM_PLAN_JOB_QUEUE,
			"INSERT INTO tenant_mgr.job"
			" (tenant, action, object_name, database_oid, owner, force, requested_by, own_role)"
			" VALUES ($1, $2, $3::name, $4, $5::name, $6, $7::name, $8) RETURNING id",
			8, types, values, nulls, SPI_OK_INSERT_RETURNING);
	return strtoi64(tm_value(0, 1), NULL, 10);
}

/* Records a tenant's version (the ledger's, just written) and last error. */
void
tm_tenant_set_version(const char *name, int64 version, const char *last_error)
{
	Oid			types[3] = {TEXTOID, INT8OID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = CStringGetTextDatum(name);
	values[1] = Int64GetDatum(version);
	if (last_error)
		values[2] = CStringGetTextDatum(last_error);
	else
	{
		values[2] = (Datum) 0;
		nulls[2] = 'n';
	}
	tm_exec(TM_PLAN_TENANT_SET_VERSION,
			"UPDATE tenant_mgr.tenant"
			" SET version = $2, last_error = $3, updated_at = now()"
			" WHERE name = $1",
			3, types, values, nulls, SPI_OK_UPDATE);
}

/* Records a tenant's state (ready, detached). */
void
tm_tenant_set_state(const char *name, const char *state)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(name), CStringGetTextDatum(state)};

	tm_exec(-1, "UPDATE tenant_mgr.tenant SET state = $2, updated_at = now() WHERE name = $1",
			2, types, values, NULL, SPI_OK_UPDATE);
}

void
tm_tenant_delete(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	tm_exec(-1, "DELETE FROM tenant_mgr.tenant WHERE name = $1",
			1, types, values, NULL, SPI_OK_DELETE);
}

/*
 * Returns the catalog row of a tenant as a composite Datum allocated in the
 * caller's (pre-SPI) memory context, ready to be returned after SPI_finish.
 */
Datum
tm_tenant_row(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;

	tm_exec(-1, "SELECT t FROM tenant_mgr.tenant t WHERE name = $1",
			1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "tenant \"%s\" vanished from the catalog", name);
	return SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1,
										   &isnull),
							 false, -1);
}

/* Returns every registered migration, ordered by version. */
List *
tm_migration_list(void)
{
	List	   *result = NIL;
	uint64		i;
	MemoryContext old;

	tm_exec(-1,
			"SELECT version, name, up_sql, down_sql, transactional, checksum"
			" FROM tenant_mgr.migration ORDER BY version",
			0, NULL, NULL, NULL, SPI_OK_SELECT);
	old = MemoryContextSwitchTo(tm_result_cxt());
	for (i = 0; i < SPI_processed; i++)
	{
		TmMigration *m = palloc0(sizeof(TmMigration));

		m->version = strtoi64(tm_value(i, 1), NULL, 10);
		m->name = tm_value(i, 2);
		m->up_sql = tm_value(i, 3);
		m->down_sql = tm_value(i, 4);
		m->transactional = strcmp(tm_value(i, 5), "t") == 0;
		m->checksum = tm_value(i, 6);
		result = lappend(result, m);
	}
	MemoryContextSwitchTo(old);
	return result;
}

/* Returns the highest registered version, 0 when there is none. */
int64
tm_migration_latest(void)
{
	tm_exec(-1, "SELECT coalesce(max(version), 0) FROM tenant_mgr.migration",
			0, NULL, NULL, NULL, SPI_OK_SELECT);
	return strtoi64(tm_value(0, 1), NULL, 10);
}

/* Returns a new run id, which groups the events of one call. */
int64
tm_run_id(void)
{
	tm_exec(-1, "SELECT nextval('tenant_mgr.run_id_seq')",
			0, NULL, NULL, NULL, SPI_OK_SELECT);
	return strtoi64(tm_value(0, 1), NULL, 10);
}

/*
 * Appends a row to tenant_mgr.event.  edata, when given, supplies the
 * SQLSTATE and message of a failure; version 0 means "no migration".
 */
void
tm_event_log(int64 run_id, const char *tenant, const char *action,
			 int64 version, const char *status, ErrorData *edata, double ms)
{
	Oid			types[9] = {INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID,
	TEXTOID, TEXTOID, FLOAT8OID, TEXTOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(run_id);
	values[1] = CStringGetTextDatum(tenant);
	values[2] = CStringGetTextDatum(action);
	values[3] = Int64GetDatum(version);
	if (version == 0)
		nulls[3] = 'n';
	values[4] = CStringGetTextDatum(status);
	if (edata)
	{
		/* a note on a success (a rename's old name) has no SQLSTATE */
		if (edata->sqlerrcode == ERRCODE_SUCCESSFUL_COMPLETION)
			nulls[5] = 'n';
		else
			values[5] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
		values[6] = CStringGetTextDatum(edata->message ? edata->message : "");
	}
	else
	{
		nulls[5] = 'n';
		nulls[6] = 'n';
	}
	values[7] = Float8GetDatum(ms);
	values[8] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));

	tm_exec(TM_PLAN_EVENT_LOG,
			"INSERT INTO tenant_mgr.event"
			" (run_id, tenant, action, version, status, sqlstate, message, duration, run_by)"
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8 * interval '1 millisecond', $9::name)",
			9, types, values, nulls, SPI_OK_INSERT);
}

/*
 * Takes the tenant's lock for the rest of the transaction, or raises
 * lock_not_available at once if another transaction holds it.
 */
void
tm_tenant_lock(const char *name)
{
	LOCKTAG		tag;
	uint64		h = hash_bytes_extended((const unsigned char *) name,
										strlen(name), 0);

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 TM_LOCK_FIELD4);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("tenant \"%s\" is busy", name),
				 errdetail("Another transaction is creating, migrating or dropping it."),
				 errhint("Try again when that transaction has ended.")));
}
