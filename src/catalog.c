/*-------------------------------------------------------------------------
 *
 * catalog.c
 *		The tenant_mgr catalog: tenant rows, registered migrations, the event
 *		log, and per-tenant locks.
 *
 * Every function here expects an open SPI connection and runs its statement
 * as the catalog owner (spi.c: tm_catalog_exec).  Results are allocated in
 * tm_result_cxt().  The enums of tenant_mgr.h meet their text values here
 * (and in queue.c for jobs), nowhere else.
 *
 * Per-tenant locks are transaction-scoped advisory locks in the control
 * database, taken without waiting: two operations on one tenant never
 * interleave, and one busy tenant never blocks the others.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "tenant_mgr.h"

/* Lock tag field4 that sets tenant_mgr's advisory locks apart from users'. */
#define TM_LOCK_FIELD4 0x746d

#define TENANT_COLUMNS \
	"name, isolation, object_name, object_oid, owner, state, version, last_error,"
#define TENANT_ID_COLUMN " tenant_id::pg_catalog.text"
#define TENANT_NO_ID_COLUMN " NULL::pg_catalog.text"

static const char *const tm_isolation_names[] = {"schema", "database"};
static const char *const tm_state_names[] = {"creating", "ready", "failed", "detached"};
static const char *const tm_event_action_names[] = {
	"create", "up", "down", "drop", "rename", "detach", "attach", "import"
};
static const char *const tm_event_status_names[] = {"ok", "failed", "skipped"};

/* Statements run often, prepared once per backend. */
static SPIPlanPtr tm_plan_tenant_fetch = NULL;
static SPIPlanPtr tm_plan_tenant_fetch_1_0 = NULL;
static SPIPlanPtr tm_plan_tenant_set_version = NULL;
static SPIPlanPtr tm_plan_tenant_reserve = NULL;
static SPIPlanPtr tm_plan_tenant_reserve_1_0 = NULL;
static SPIPlanPtr tm_plan_event_log = NULL;

/*
 * True once the catalog has tenant ids (version 1.1).  Until ALTER
 * EXTENSION tenant_mgr UPDATE, the library works with a 1.0 catalog: its
 * tenants have no id, and are recognized by the marks 1.0 went by.
 */
bool
tm_catalog_has_ids(void)
{
	Oid			relid = get_relname_relid("tenant", get_namespace_oid("tenant_mgr", false));

	return OidIsValid(relid) && get_attnum(relid, "tenant_id") != InvalidAttrNumber;
}

/* True once the catalog has the tables of fleet runs (version 1.1). */
bool
tm_catalog_has_runs(void)
{
	return OidIsValid(get_relname_relid("run", get_namespace_oid("tenant_mgr", false)));
}

/* True once the catalog has the warm pool's table of spares (version 1.1). */
bool
tm_catalog_has_spares(void)
{
	return OidIsValid(get_relname_relid("spare", get_namespace_oid("tenant_mgr", false)));
}

const char *
tm_isolation_name(TmIsolation isolation)
{
	return tm_isolation_names[isolation];
}

/* Parses an isolation given by a user; an unknown one is an error. */
TmIsolation
tm_isolation_parse(const char *isolation)
{
	if (strcmp(isolation, "schema") == 0)
		return TM_SCHEMA;
	if (strcmp(isolation, "database") == 0)
		return TM_DATABASE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid isolation \"%s\"", isolation),
			 errhint("Valid values are \"schema\" and \"database\".")));
	return TM_SCHEMA;			/* keep compiler quiet */
}

const char *
tm_state_name(TmTenantState state)
{
	return tm_state_names[state];
}

/* The index of value in names[n]; the catalog's CHECKs allow nothing else. */
static int
tm_parse_value(const char *const *names, int n, const char *value)
{
	int			i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], value) == 0)
			return i;
	elog(ERROR, "unexpected catalog value \"%s\"", value);
	return 0;					/* keep compiler quiet */
}

/* A new random tenant id. */
static char *
tm_new_id(void)
{
	uint8		b[16];

	if (!pg_strong_random(b, sizeof(b)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random tenant id")));
	b[6] = (b[6] & 0x0f) | 0x40;	/* a version 4 UUID */
	b[8] = (b[8] & 0x3f) | 0x80;
	return psprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
					b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
					b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/*
 * Returns a new TmTenant (state "creating", no object yet, a new id).  Its schema is
 * where its ledger and migrations go: its own schema, or "public" of its
 * own database.
 */
TmTenant *
tm_tenant_make(const char *name, TmIsolation isolation,
			   const char *object_name, const char *owner)
{
	TmTenant   *t = palloc0(sizeof(TmTenant));

	t->name = pstrdup(name);
	t->id = tm_new_id();
	t->isolation = isolation;
	t->object_name = pstrdup(object_name);
	t->owner = pstrdup(owner);
	t->state = TM_CREATING;
	t->schema = isolation == TM_SCHEMA ? t->object_name : "public";
	return t;
}

static TmTenant *
tm_tenant_from_row(uint64 row)
{
	MemoryContext old = MemoryContextSwitchTo(tm_result_cxt());
	TmTenant   *t;

	t = tm_tenant_make(tm_get_text(row, 1),
					   tm_parse_value(tm_isolation_names, lengthof(tm_isolation_names),
									  tm_get_text(row, 2)),
					   tm_get_text(row, 3), tm_get_text(row, 5));
	t->object_oid = tm_get_oid(row, 4);
	t->state = tm_parse_value(tm_state_names, lengthof(tm_state_names),
							  tm_get_text(row, 6));
	t->version = tm_get_int64(row, 7);
	t->last_error = tm_get_text(row, 8);
	t->id = tm_get_text(row, 9);
	MemoryContextSwitchTo(old);
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

	if (tm_catalog_has_ids())
		tm_catalog_exec_kept(&tm_plan_tenant_fetch, CURSOR_OPT_CUSTOM_PLAN,
							 "SELECT " TENANT_COLUMNS TENANT_ID_COLUMN
							 " FROM tenant_mgr.tenant WHERE name = $1",
							 1, types, values, NULL, SPI_OK_SELECT);
	else
		tm_catalog_exec_kept(&tm_plan_tenant_fetch_1_0, CURSOR_OPT_CUSTOM_PLAN,
							 "SELECT " TENANT_COLUMNS TENANT_NO_ID_COLUMN
							 " FROM tenant_mgr.tenant WHERE name = $1",
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

	tm_catalog_exec(tm_catalog_has_ids() ?
					"SELECT " TENANT_COLUMNS TENANT_ID_COLUMN " FROM tenant_mgr.tenant ORDER BY name" :
					"SELECT " TENANT_COLUMNS TENANT_NO_ID_COLUMN " FROM tenant_mgr.tenant ORDER BY name",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	old = MemoryContextSwitchTo(tm_result_cxt());
	for (i = 0; i < SPI_processed; i++)
		result = lappend(result, tm_tenant_from_row(i));
	MemoryContextSwitchTo(old);
	return result;
}

/* Only tenants in state "ready" can be migrated, used, renamed or detached. */
void
tm_tenant_require_ready(const TmTenant *t)
{
	if (t->state != TM_READY)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tenant \"%s\" is not ready", t->name),
				 errdetail("Its state is \"%s\".", tm_state_name(t->state)),
				 t->state == TM_CREATING ?
				 errhint("Wait for it with tenant_mgr.tenant_wait('%s').", t->name) : 0));
}

/*
 * Records a tenant built in the current transaction, as it is in t.  Waits
 * for a transaction inserting the same name, and fails if it commits.
 */
void
tm_tenant_insert(const TmTenant *t, const char *metadata)
{
	Oid			types[9] = {TEXTOID, TEXTOID, NAMEOID, OIDOID, NAMEOID,
	INT8OID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[9];

	values[0] = CStringGetTextDatum(t->name);
	values[1] = CStringGetTextDatum(tm_isolation_name(t->isolation));
	values[2] = tm_name_datum(t->object_name);
	values[3] = ObjectIdGetDatum(t->object_oid);
	values[4] = tm_name_datum(t->owner);
	values[5] = Int64GetDatum(t->version);
	values[6] = CStringGetTextDatum(metadata);
	values[7] = CStringGetTextDatum(tm_state_name(t->state));
	values[8] = CStringGetTextDatum(t->id ? t->id : "");

	if (tm_catalog_has_ids())
		tm_catalog_exec("INSERT INTO tenant_mgr.tenant"
						" (name, isolation, object_name, object_oid, owner, version, metadata, state,"
						" tenant_id)"
						" VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9::uuid)"
						" ON CONFLICT (name) DO NOTHING",
						9, types, values, NULL, SPI_OK_INSERT);
	else
		tm_catalog_exec("INSERT INTO tenant_mgr.tenant"
						" (name, isolation, object_name, object_oid, owner, version, metadata, state)"
						" VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)"
						" ON CONFLICT (name) DO NOTHING",
						8, types, values, NULL, SPI_OK_INSERT);

	/*
	 * A queued request for the name (which takes no tenant lock) committed
	 * while this one was building: the name is taken, as if it had been
	 * seen at the start.
	 */
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("tenant \"%s\" already exists", t->name)));
}

/*
 * Records a new tenant in state "creating", for queued work.  Returns false
 * if a tenant of that name exists (after waiting for a transaction that is
 * inserting it).
 */
bool
tm_tenant_reserve(const TmTenant *t, const char *metadata)
{
	Oid			types[6] = {TEXTOID, TEXTOID, NAMEOID, NAMEOID, TEXTOID, TEXTOID};
	Datum		values[6];

	values[0] = CStringGetTextDatum(t->name);
	values[1] = CStringGetTextDatum(tm_isolation_name(t->isolation));
	values[2] = tm_name_datum(t->object_name);
	values[3] = tm_name_datum(t->owner);
	values[4] = CStringGetTextDatum(metadata);
	values[5] = CStringGetTextDatum(t->id ? t->id : "");
	if (tm_catalog_has_ids())
		tm_catalog_exec_kept(&tm_plan_tenant_reserve, 0,
							 "INSERT INTO tenant_mgr.tenant"
							 " (name, isolation, object_name, object_oid, owner, version, metadata, state,"
							 " tenant_id)"
							 " VALUES ($1, $2, $3, 0, $4, 0, $5::jsonb, 'creating', $6::uuid)"
							 " ON CONFLICT DO NOTHING",
							 6, types, values, NULL, SPI_OK_INSERT);
	else
		tm_catalog_exec_kept(&tm_plan_tenant_reserve_1_0, 0,
							 "INSERT INTO tenant_mgr.tenant"
							 " (name, isolation, object_name, object_oid, owner, version, metadata, state)"
							 " VALUES ($1, $2, $3, 0, $4, 0, $5::jsonb, 'creating')"
							 " ON CONFLICT DO NOTHING",
							 5, types, values, NULL, SPI_OK_INSERT);
	return SPI_processed == 1;
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
	tm_catalog_exec_kept(&tm_plan_tenant_set_version, CURSOR_OPT_CUSTOM_PLAN,
						 "UPDATE tenant_mgr.tenant"
						 " SET version = $2, last_error = $3, updated_at = now()"
						 " WHERE name = $1",
						 3, types, values, nulls, SPI_OK_UPDATE);
}

/* Records a tenant's state (ready, detached). */
void
tm_tenant_set_state(const char *name, TmTenantState state)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(name),
	CStringGetTextDatum(tm_state_name(state))};

	tm_catalog_exec("UPDATE tenant_mgr.tenant SET state = $2, updated_at = now() WHERE name = $1",
					2, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * Records the OID a tenant's object has now, found by its label after a
 * restore or an upgrade changed it: the fast path again for what follows.
 */
void
tm_tenant_set_oid(const char *name, Oid object_oid)
{
	Oid			types[2] = {TEXTOID, OIDOID};
	Datum		values[2] = {CStringGetTextDatum(name), ObjectIdGetDatum(object_oid)};

	tm_catalog_exec("UPDATE tenant_mgr.tenant SET object_oid = $2 WHERE name = $1",
					2, types, values, NULL, SPI_OK_UPDATE);
}

/* True if a tenant here has that id. */
bool
tm_tenant_id_taken(const char *id)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(id)};

	tm_catalog_exec("SELECT 1 FROM tenant_mgr.tenant WHERE tenant_id = $1::pg_catalog.uuid",
					1, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/* A queued tenant, still "creating", is built: it becomes "ready". */
void
tm_tenant_set_ready(const char *name, Oid object_oid, int64 version)
{
	Oid			types[3] = {TEXTOID, OIDOID, INT8OID};
	Datum		values[3] = {CStringGetTextDatum(name),
		ObjectIdGetDatum(object_oid),
	Int64GetDatum(version)};

	tm_catalog_exec("UPDATE tenant_mgr.tenant SET state = 'ready', object_oid = $2,"
					" version = $3, last_error = NULL, updated_at = now()"
					" WHERE name = $1 AND state = 'creating'",
					3, types, values, NULL, SPI_OK_UPDATE);
}

/* A queued tenant, still "creating", could not be built. */
void
tm_tenant_set_failed(const char *name, const char *message)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(name),
	CStringGetTextDatum(message)};

	tm_catalog_exec("UPDATE tenant_mgr.tenant SET state = 'failed', last_error = $2,"
					" updated_at = now() WHERE name = $1 AND state = 'creating'",
					2, types, values, NULL, SPI_OK_UPDATE);
}

/* A renamed tenant: its name, object name and owner. */
void
tm_tenant_rename_row(const char *name, const char *new_name,
					 const char *object, const char *owner)
{
	Oid			types[4] = {TEXTOID, TEXTOID, NAMEOID, NAMEOID};
	Datum		values[4];

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(new_name);
	values[2] = tm_name_datum(object);
	values[3] = tm_name_datum(owner);
	tm_catalog_exec("UPDATE tenant_mgr.tenant SET name = $2, object_name = $3,"
					" owner = $4, updated_at = now() WHERE name = $1",
					4, types, values, NULL, SPI_OK_UPDATE);
}

void
tm_tenant_delete(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	tm_catalog_exec("DELETE FROM tenant_mgr.tenant WHERE name = $1",
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

	tm_catalog_exec("SELECT t FROM tenant_mgr.tenant t WHERE name = $1",
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

	tm_catalog_exec("SELECT version, name, up_sql, down_sql, transactional, checksum"
					" FROM tenant_mgr.migration ORDER BY version",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	old = MemoryContextSwitchTo(tm_result_cxt());
	for (i = 0; i < SPI_processed; i++)
	{
		TmMigration *m = palloc0(sizeof(TmMigration));

		m->version = tm_get_int64(i, 1);
		m->name = tm_get_text(i, 2);
		m->up_sql = tm_get_text(i, 3);
		m->down_sql = tm_get_text(i, 4);
		m->transactional = tm_get_bool(i, 5);
		m->checksum = tm_get_text(i, 6);
		result = lappend(result, m);
	}
	MemoryContextSwitchTo(old);
	return result;
}

/* Returns the highest registered version, 0 when there is none. */
int64
tm_migration_latest(void)
{
	tm_catalog_exec("SELECT coalesce(max(version), 0) FROM tenant_mgr.migration",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	return tm_get_int64(0, 1);
}

/* Returns a new run id, which groups the events of one call. */
int64
tm_run_id(void)
{
	tm_catalog_exec("SELECT nextval('tenant_mgr.run_id_seq')",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	return tm_get_int64(0, 1);
}

/*
 * Appends a row to tenant_mgr.event.  edata, when given, supplies the
 * SQLSTATE and message of a failure (or, with SQLSTATE 00000, a note on a
 * success); version 0 means "no migration".
 */
void
tm_event_log(int64 run_id, const char *tenant, TmEventAction action,
			 int64 version, TmEventStatus status, ErrorData *edata, double ms)
{
	Oid			types[9] = {INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID,
	TEXTOID, TEXTOID, FLOAT8OID, TEXTOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(run_id);
	values[1] = CStringGetTextDatum(tenant);
	values[2] = CStringGetTextDatum(tm_event_action_names[action]);
	values[3] = Int64GetDatum(version);
	if (version == 0)
		nulls[3] = 'n';
	values[4] = CStringGetTextDatum(tm_event_status_names[status]);
	if (edata)
	{
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

	tm_catalog_exec_kept(&tm_plan_event_log, 0,
						 "INSERT INTO tenant_mgr.event"
						 " (run_id, tenant, action, version, status, sqlstate, message, duration, run_by)"
						 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8 * interval '1 millisecond', $9::name)",
						 9, types, values, nulls, SPI_OK_INSERT);
}

/*
 * Deletes events: those of tenant (any age) when tenant is given, else
 * those older than older_than (an interval Datum).  Returns how many.
 */
int64
tm_events_prune(const char *tenant, Datum older_than)
{
	Oid			types[1];
	Datum		values[1];

	if (tenant)
	{
		types[0] = TEXTOID;
		values[0] = CStringGetTextDatum(tenant);
		tm_catalog_exec("DELETE FROM tenant_mgr.event WHERE tenant = $1",
						1, types, values, NULL, SPI_OK_DELETE);
	}
	else
	{
		types[0] = INTERVALOID;
		values[0] = older_than;
		tm_catalog_exec("DELETE FROM tenant_mgr.event WHERE at < pg_catalog.now() - $1",
						1, types, values, NULL, SPI_OK_DELETE);
	}
	return (int64) SPI_processed;
}

/* Logs each of steps (TmStep) that succeeded, in order. */
void
tm_event_log_steps(int64 run_id, const char *tenant, List *steps)
{
	ListCell   *lc;

	foreach(lc, steps)
	{
		TmStep	   *s = lfirst(lc);

		tm_event_log(run_id, tenant, s->up ? TM_EV_UP : TM_EV_DOWN,
					 s->migration->version, TM_EV_OK, NULL, s->ms);
	}
}

/*
 * Takes the tenant's lock for the rest of the transaction, or raises
 * lock_not_available at once if another transaction holds it.
 */
void
tm_tenant_lock(const char *name)
{
	tm_tenant_lock_in(MyDatabaseId, name);
}

/* The tag of a tenant's lock, in the lock space of database dboid. */
static void
tm_tenant_locktag(LOCKTAG *tag, Oid dboid, const char *name)
{
	uint64		h = hash_bytes_extended((const unsigned char *) name,
										strlen(name), 0);

	SET_LOCKTAG_ADVISORY(*tag, dboid, (uint32) (h >> 32), (uint32) h,
						 TM_LOCK_FIELD4);
}

/* Takes a tenant's lock without waiting, for the transaction or session. */
static void
tm_tenant_lock_acquire(Oid dboid, const char *name, bool session)
{
	LOCKTAG		tag;

	tm_tenant_locktag(&tag, dboid, name);
	if (LockAcquire(&tag, ExclusiveLock, session, true) == LOCKACQUIRE_NOT_AVAIL)
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("tenant \"%s\" is busy", name),
				 errdetail("Another transaction is creating, migrating or dropping it."),
				 errhint("Try again when that transaction has ended.")));
}

/*
 * The same lock, taken from another database: an executor migrating a
 * database tenant locks it where the control database's sessions do.
 */
void
tm_tenant_lock_in(Oid dboid, const char *name)
{
	tm_tenant_lock_acquire(dboid, name, false);
}

/*
 * The same lock held by the session, across the transactions of one
 * non-transactional migration (it runs top-level, between two of them).
 */
void
tm_tenant_lock_session(Oid dboid, const char *name)
{
	tm_tenant_lock_acquire(dboid, name, true);
}

void
tm_tenant_unlock_session(Oid dboid, const char *name)
{
	LOCKTAG		tag;

	tm_tenant_locktag(&tag, dboid, name);
	LockRelease(&tag, ExclusiveLock, true);
}
