/*-------------------------------------------------------------------------
 *
 * pool.c
 *		The warm pool: spare schema and database tenants the launcher builds
 *		and keeps at the latest migration, which tenant_create claims.
 *
 * A spare is a tenant without a name: its schema or database and owner
 * role named tenant_mgr_spare_<n>, labelled for that name and the spare's
 * id, with its ledger and every migration (a schema built as build.c
 * builds, a database by executors as dbtenant.c builds, each migration
 * committed on its own), and a row in tenant_mgr.spare.  Its states:
 *
 *	building --built--> ready --claimed--> (a tenant; the row is gone)
 *	   |  ^                |
 *	   |  +-- migrations --+	(new migrations registered: the launcher
 *	   v						 brings it up to date, then it is ready)
 *	 failed						(a migration failed on it: not built again
 *								 until the migration set changes)
 *
 * A claim happens in the caller's transaction: the oldest ready spare at
 * the latest version is locked (FOR UPDATE SKIP LOCKED, so that two claims
 * never take one spare and a spare the launcher works on is never taken),
 * its schema or database and its role are renamed to the tenant's names
 * (ALTER DATABASE ... RENAME is transactional too) and labelled for it,
 * and the row is deleted.  A rollback gives the spare back, names and
 * all.  The launcher marks a spare "building" (under the same row lock)
 * before it changes it, so a spare being built or migrated is never
 * claimed, and a claim never hands out a spare behind the registry.
 *
 * tenant_mgr.pool_schema and tenant_mgr.pool_database say how many spares
 * of each kind to keep (0: none, and the launcher removes those left).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "tenant_mgr.h"

/* A row of tenant_mgr.spare, as the launcher and a claim need it. */
typedef struct TmSpare
{
	TmIsolation isolation;
	char	   *id;
	char	   *object_name;
	Oid			object_oid;
	char	   *state;
	int64		version;
} TmSpare;

/* The spare as a tenant named after its objects, for build.c and marker.c. */
static TmTenant *
tm_spare_tenant(const TmSpare *s)
{
	TmTenant   *t = tm_tenant_make(s->object_name, s->isolation, s->object_name,
								   s->object_name);

	t->id = pstrdup(s->id);
	t->object_oid = s->object_oid;
	return t;
}

/* Reads the spares of the last query into a list of TmSpare. */
static List *
tm_spares_read(void)
{
	List	   *result = NIL;
	MemoryContext old = MemoryContextSwitchTo(tm_result_cxt());

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		TmSpare    *s = palloc0(sizeof(TmSpare));

		s->id = tm_get_text(i, 1);
		s->object_name = tm_get_text(i, 2);
		s->object_oid = tm_get_oid(i, 3);
		s->state = tm_get_text(i, 4);
		s->version = tm_get_int64(i, 5);
		s->isolation = tm_isolation_parse(tm_get_text(i, 6));
		result = lappend(result, s);
	}
	MemoryContextSwitchTo(old);
	return result;
}

#define TM_SPARE_COLUMNS "id::pg_catalog.text, object_name, coalesce(object_oid, 0::pg_catalog.oid), state, version, isolation"

/* The spares wanted of a kind. */
static int
tm_pool_size(TmIsolation isolation)
{
	return isolation == TM_SCHEMA ? tm_pool_schema : tm_pool_database;
}

/*
 * Claims a spare for tenant t (owned by a role of its own) in the caller's
 * transaction, in a subtransaction: renames the spare's schema or database
 * and its owner role to t's names, labels them for t, and grants the role
 * to a caller who is not a superuser; a schema spare is also brought to the
 * registry's latest migration (one registered since the spare was found).
 * Sets t->object_oid, t->schema, t->version and *steps (the migrations
 * applied after the claim) and returns true; returns false, having changed
 * nothing, when no spare is ready or the claim failed (it is logged; the
 * caller builds the tenant instead).
 */
typedef struct TmClaim
{
	TmTenant   *tenant;
	List	   *migrations;
	bool		claimed;
	List	   *steps;			/* migrations applied after the claim */
} TmClaim;

static void
tm_pool_claim_cb(void *arg)
{
	TmClaim    *c = arg;
	TmTenant   *t = c->tenant;
	bool		schema = t->isolation == TM_SCHEMA;
	const char *kind = schema ? "SCHEMA" : "DATABASE";
	List	   *spares;
	TmSpare    *s;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	Oid			found;

	values[0] = CStringGetTextDatum(tm_isolation_name(t->isolation));
	tm_catalog_exec("SELECT " TM_SPARE_COLUMNS " FROM tenant_mgr.spare"
					" WHERE isolation = $1 AND state = 'ready'"
					"   AND version = (SELECT coalesce(max(version), 0) FROM tenant_mgr.migration)"
					" ORDER BY created_at, object_name LIMIT 1 FOR UPDATE SKIP LOCKED",
					1, types, values, NULL, SPI_OK_SELECT);
	spares = tm_spares_read();
	if (spares == NIL)
		return;
	s = linitial(spares);

	/* the spare's objects, still under its own name and label */
	found = schema ? tm_schema_find(tm_spare_tenant(s)) :
		tm_database_find(tm_spare_tenant(s));
	if (found != s->object_oid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("spare \"%s\" has no %s created by tenant_mgr", s->object_name,
						schema ? "schema" : "database")));
	tm_rename_object(kind, s->object_name, t->object_name, t, false);
	tm_rename_object("ROLE", s->object_name, t->owner, t, false);
	tm_pause_point("claim:after-rename");
	if (!superuser())
		tm_ddl(psprintf("GRANT %s TO %s", quote_identifier(t->owner),
						quote_identifier(GetUserNameFromId(GetUserId(), false))));
	t->object_oid = s->object_oid;
	t->version = s->version;

	if (schema)
	{
		int64		current;
		ListCell   *lc;

		t->schema = t->object_name;
		c->steps = tm_migration_plan(t, c->migrations, PG_INT64_MAX, &current);
		foreach(lc, c->steps)
		{
			TmStep	   *step = lfirst(lc);

			tm_migration_apply(t, step);
			current = step->migration->version;
		}
		t->version = current;
	}

	values[0] = CStringGetTextDatum(s->id);
	tm_catalog_exec("DELETE FROM tenant_mgr.spare WHERE id = $1::pg_catalog.uuid",
					1, types, values, NULL, SPI_OK_DELETE);
	c->claimed = true;
}

bool
tm_pool_claim(TmTenant *t, List *migrations, List **steps)
{
	TmClaim		c = {t, migrations, false, NIL};
	ErrorData  *edata;
	bool		taken;

	if (tm_pool_size(t->isolation) <= 0 || !tm_catalog_has_spares())
		return false;
	/* a name taken is the build's error to raise */
	taken = t->isolation == TM_SCHEMA ?
		OidIsValid(get_namespace_oid(t->object_name, true)) :
		OidIsValid(get_database_oid(t->object_name, true));
	if (taken || OidIsValid(get_role_oid(t->owner, true)))
		return false;
	edata = tm_try(tm_pool_claim_cb, &c);
	if (edata != NULL)
	{
		ereport(LOG,
				(errmsg("tenant_mgr could not claim a spare for tenant \"%s\": %s",
						t->name, edata->message),
				 errdetail("The tenant is built instead.")));
		return false;
	}
	*steps = c.steps;
	return c.claimed;
}

/*
 * For the launcher, in a transaction of its own: takes the spare of the
 * first row the query finds (locked FOR UPDATE SKIP LOCKED, so a spare a
 * caller is claiming is left alone) and marks it "building".  NULL if none.
 */
static TmSpare *
tm_spare_take(const char *query, TmIsolation isolation)
{
	List	   *spares;
	TmSpare    *s = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	tm_xact_begin();
	values[0] = CStringGetTextDatum(tm_isolation_name(isolation));
	tm_catalog_exec(query, 1, types, values, NULL, SPI_OK_SELECT);
	spares = tm_spares_read();
	if (spares != NIL)
	{
		s = linitial(spares);
		values[0] = CStringGetTextDatum(s->id);
		tm_catalog_exec("UPDATE tenant_mgr.spare SET state = 'building', last_error = NULL"
						" WHERE id = $1::pg_catalog.uuid",
						1, types, values, NULL, SPI_OK_UPDATE);
	}
	tm_xact_commit();
	return s;
}

/*
 * Builds or brings up to date a spare marked "building" (what is there is
 * resumed), then marks it ready, or failed with the error (what was built
 * is then removed).  Returns false when a database spare found no worker
 * slot or its executor was terminated: it stays "building" for the next
 * look.
 */
static bool
tm_spare_build(TmSpare *s)
{
	MemoryContext cxt = CurrentMemoryContext;
	TmTenant   *t = tm_spare_tenant(s);
	Oid			types[3] = {TEXTOID, OIDOID, INT8OID};
	Datum		values[3];
	List	   *migrations;
	volatile bool built = true;

	tm_xact_begin();
	migrations = tm_migration_list();
	tm_xact_commit();

	values[0] = CStringGetTextDatum(s->id);
	PG_TRY();
	{
		if (s->isolation == TM_SCHEMA)
			(void) tm_build_schema(t, migrations, BOOTSTRAP_SUPERUSERID, true);
		else
			built = tm_dbtenant_build_spare(t, migrations);
		if (built)
		{
			tm_pause_point("pool:before-ready");
			values[1] = ObjectIdGetDatum(t->object_oid);
			values[2] = Int64GetDatum(t->version);
			tm_xact_begin();
			tm_catalog_exec("UPDATE tenant_mgr.spare SET state = 'ready', object_oid = $2, version = $3"
							" WHERE id = $1::pg_catalog.uuid",
							3, types, values, NULL, SPI_OK_UPDATE);
			tm_xact_commit();
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		bool		retry;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		tm_xact_abort();
		tm_exec_release_all();
		/* an executor terminated (57P01) was not refused: it stays "building" */
		retry = edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN;
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("tenant_mgr could not build spare \"%s\": %s",
						s->object_name, edata->message),
				 retry ? errdetail("It is built again at the next look.") :
				 errdetail("No spare is built again until the registered migrations change.")));
		built = !retry;		/* a retry waits for the next look */
		if (!retry)
		{
			types[1] = TEXTOID;
			values[1] = CStringGetTextDatum(edata->message ? edata->message : "");
			tm_xact_begin();
			values[2] = Int64GetDatum(tm_migration_latest());
			tm_catalog_exec("UPDATE tenant_mgr.spare SET state = 'failed', object_oid = NULL,"
							" version = 0, failed_at = $3, last_error = $2"
							" WHERE id = $1::pg_catalog.uuid",
							3, types, values, NULL, SPI_OK_UPDATE);
			tm_xact_commit();
		}
	}
	PG_END_TRY();
	return built;
}

/*
 * For the launcher: removes one ready spare of a kind beyond its pool size
 * (its objects, then its row), holding its row's lock throughout so that
 * no claim takes it meanwhile.  Returns true if it removed one.
 */
static bool
tm_pool_shrink(TmIsolation isolation)
{
	List	   *spares;
	TmSpare    *s;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	tm_xact_begin();
	values[0] = CStringGetTextDatum(tm_isolation_name(isolation));
	tm_catalog_exec(psprintf("SELECT " TM_SPARE_COLUMNS " FROM tenant_mgr.spare"
							 " WHERE isolation = $1 AND state <> 'failed'"
							 " ORDER BY created_at DESC, object_name DESC OFFSET %d FOR UPDATE SKIP LOCKED",
							 Max(tm_pool_size(isolation), 0)),
					1, types, values, NULL, SPI_OK_SELECT);
	spares = tm_spares_read();
	if (spares == NIL)
	{
		tm_xact_commit();
		return false;
	}
	s = linitial(spares);
	values[0] = CStringGetTextDatum(s->id);
	if (isolation == TM_SCHEMA)
		tm_schematenant_drop(tm_spare_tenant(s));
	else if (!tm_dbtenant_remove_spare(tm_spare_tenant(s)))
	{
		/* no worker slot, or its executor terminated: the next look goes on */
		tm_xact_commit();
		return false;
	}
	tm_pause_point("pool:after-shrink-drop");
	tm_catalog_exec("DELETE FROM tenant_mgr.spare WHERE id = $1::pg_catalog.uuid",
					1, types, values, NULL, SPI_OK_DELETE);
	tm_xact_commit();
	return true;
}

/*
 * One step of upkeep of the spares of a kind.  In order: a spare left
 * "building" (by a crash, or being migrated), a ready spare behind the
 * registry, a spare too many, a missing spare.  Returns true if it did
 * something.
 */
static bool
tm_pool_upkeep_kind(TmIsolation isolation)
{
	int			size = tm_pool_size(isolation);
	TmSpare    *s;
	int64		spares;
	bool		failed;
	Oid			types[2] = {TEXTOID, BOOLOID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(tm_isolation_name(isolation));
	values[1] = BoolGetDatum(size <= 0);
	tm_xact_begin();
	/* a failed build is tried again only once the migrations changed */
	tm_catalog_exec("DELETE FROM tenant_mgr.spare WHERE isolation = $1 AND state = 'failed'"
					" AND (failed_at IS DISTINCT FROM (SELECT coalesce(max(version), 0) FROM tenant_mgr.migration)"
					"      OR $2)",
					2, types, values, NULL, SPI_OK_DELETE);
	tm_catalog_exec("SELECT count(*) FILTER (WHERE state <> 'failed'),"
					" count(*) FILTER (WHERE state = 'failed') > 0"
					" FROM tenant_mgr.spare WHERE isolation = $1",
					1, types, values, NULL, SPI_OK_SELECT);
	spares = tm_get_int64(0, 1);
	failed = tm_get_bool(0, 2);
	tm_xact_commit();

	if (spares == 0 && (size <= 0 || failed))
		return false;

	s = tm_spare_take("SELECT " TM_SPARE_COLUMNS " FROM tenant_mgr.spare"
					  " WHERE isolation = $1 AND (state = 'building'"
					  "   OR (state = 'ready' AND version <> (SELECT coalesce(max(version), 0) FROM tenant_mgr.migration)))"
					  " ORDER BY created_at, object_name LIMIT 1 FOR UPDATE SKIP LOCKED",
					  isolation);
	if (s != NULL)
	{
		tm_pause_point("pool:after-take");
		return tm_spare_build(s);
	}
	if (spares > size)
		return tm_pool_shrink(isolation);
	if (spares < size && !failed)
	{
		tm_xact_begin();
		tm_catalog_exec("INSERT INTO tenant_mgr.spare (isolation, object_name, owner, state)"
						" SELECT $1, n, n, 'building'"
						"   FROM (SELECT 'tenant_mgr_spare_' || nextval('tenant_mgr.spare_seq') AS n) s"
						" RETURNING " TM_SPARE_COLUMNS,
						1, types, values, NULL, SPI_OK_INSERT_RETURNING);
		s = linitial(tm_spares_read());
		tm_xact_commit();
		tm_pause_point("pool:after-insert");
		return tm_spare_build(s);
	}
	return false;
}

/*
 * For the launcher: one step of pool upkeep, schema spares first.  Returns
 * true if it did something, so that the launcher comes back at once.
 */
bool
tm_pool_upkeep(void)
{
	bool		exists;

	tm_xact_begin();
	exists = tm_catalog_has_spares();
	tm_xact_commit();
	if (!exists)
		return false;
	return tm_pool_upkeep_kind(TM_SCHEMA) || tm_pool_upkeep_kind(TM_DATABASE);
}
