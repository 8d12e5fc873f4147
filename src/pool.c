/*-------------------------------------------------------------------------
 *
 * pool.c
 *		The warm pool of schema tenants: spares the launcher builds and keeps
 *		at the latest migration, which tenant_create claims.
 *
 * A spare is a schema tenant without a name: schema and owner role named
 * tenant_mgr_spare_<n>, labelled for that name and the spare's id, with
 * its ledger and every migration (built as build.c builds, each migration
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
 * its schema and role are renamed to the tenant's names and labelled for
 * it, and the row is deleted.  A rollback gives the spare back, names and
 * all.  The launcher marks a spare "building" (under the same row lock)
 * before it changes it, so a spare being built or migrated is never
 * claimed, and a claim never hands out a spare behind the registry.
 *
 * tenant_mgr.pool_schema says how many spares to keep (0: none, and the
 * launcher removes those left).  Database tenants have no pool yet.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "tenant_mgr.h"

/* A row of tenant_mgr.spare, as the launcher and a claim need it. */
typedef struct TmSpare
{
	char	   *id;
	char	   *object_name;
	Oid			object_oid;
	char	   *state;
	int64		version;
} TmSpare;

/* True once the catalog has the pool (version 1.1). */
static bool
tm_pool_exists(void)
{
	return OidIsValid(get_relname_relid("spare", get_namespace_oid("tenant_mgr", false)));
}

/* The spare as a tenant named after its objects, for build.c and marker.c. */
static TmTenant *
tm_spare_tenant(const TmSpare *s)
{
	TmTenant   *t = tm_tenant_make(s->object_name, TM_SCHEMA, s->object_name,
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
		result = lappend(result, s);
	}
	MemoryContextSwitchTo(old);
	return result;
}

#define TM_SPARE_COLUMNS "id::pg_catalog.text, object_name, coalesce(object_oid, 0::pg_catalog.oid), state, version"

/* The latest registered version, 0 with none. */
static int64
tm_latest_version(void)
{
	tm_catalog_exec("SELECT coalesce(max(version), 0) FROM tenant_mgr.migration",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	return tm_get_int64(0, 1);
}

/*
 * Claims a spare for schema tenant t (owned by a role of its own) in the
 * caller's transaction, in a subtransaction: renames the spare's schema
 * and owner role to t's names, labels them for t, grants the role to a
 * caller who is not a superuser, and brings it to the registry's latest
 * migration.  Sets t->object_oid, t->schema, t->version and *steps (the
 * migrations applied after the claim) and returns true; returns false,
 * having changed nothing, when no spare is ready or the claim failed (it
 * is logged; the caller builds the tenant instead).
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
	List	   *spares;
	TmSpare    *s;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	List	   *steps;
	ListCell   *lc;
	int64		current;

	tm_catalog_exec("SELECT " TM_SPARE_COLUMNS " FROM tenant_mgr.spare"
					" WHERE isolation = 'schema' AND state = 'ready'"
					"   AND version = (SELECT coalesce(max(version), 0) FROM tenant_mgr.migration)"
					" ORDER BY created_at, object_name LIMIT 1 FOR UPDATE SKIP LOCKED",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	spares = tm_spares_read();
	if (spares == NIL)
		return;
	s = linitial(spares);

	/* the spare's objects, still under its own name and label */
	if (tm_schema_find(tm_spare_tenant(s)) != s->object_oid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("spare \"%s\" has no schema created by tenant_mgr", s->object_name)));
	tm_rename_object("SCHEMA", s->object_name, t->object_name, t, false);
	tm_rename_object("ROLE", s->object_name, t->owner, t, false);
	if (!superuser())
		tm_ddl(psprintf("GRANT %s TO %s", quote_identifier(t->owner),
						quote_identifier(GetUserNameFromId(GetUserId(), false))));
	t->object_oid = s->object_oid;
	t->schema = t->object_name;

	/* a migration registered meanwhile is applied now, as for any tenant */
	steps = tm_migration_plan(t, c->migrations, PG_INT64_MAX, &current);
	foreach(lc, steps)
	{
		TmStep	   *step = lfirst(lc);

		tm_migration_apply(t, step);
		current = step->migration->version;
	}
	t->version = current;
	c->steps = steps;

	values[0] = CStringGetTextDatum(s->id);
	tm_catalog_exec("DELETE FROM tenant_mgr.spare WHERE id = $1::pg_catalog.uuid",
					1, types, values, NULL, SPI_OK_DELETE);
	c->claimed = true;
}

bool
tm_pool_claim_schema(TmTenant *t, List *migrations, List **steps)
{
	TmClaim		c = {t, migrations, false, NIL};
	ErrorData  *edata;

	if (tm_pool_schema <= 0 || !tm_pool_exists())
		return false;
	/* a name taken is the build's error to raise */
	if (OidIsValid(get_namespace_oid(t->object_name, true)) ||
		OidIsValid(get_role_oid(t->owner, true)))
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
tm_spare_take(const char *query)
{
	List	   *spares;
	TmSpare    *s = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	tm_xact_begin();
	tm_catalog_exec(query, 0, NULL, NULL, NULL, SPI_OK_SELECT);
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
 * Builds or brings up to date a spare marked "building" (build.c resumes
 * what is there), then marks it ready, or failed with the error (build.c
 * has then removed its objects).
 */
static void
tm_spare_build(TmSpare *s)
{
	MemoryContext cxt = CurrentMemoryContext;
	TmTenant   *t = tm_spare_tenant(s);
	Oid			types[3] = {TEXTOID, OIDOID, INT8OID};
	Datum		values[3];
	List	   *migrations;

	tm_xact_begin();
	migrations = tm_migration_list();
	tm_xact_commit();

	values[0] = CStringGetTextDatum(s->id);
	PG_TRY();
	{
		(void) tm_build_schema(t, migrations, BOOTSTRAP_SUPERUSERID, true);
		values[1] = ObjectIdGetDatum(t->object_oid);
		values[2] = Int64GetDatum(t->version);
		tm_xact_begin();
		tm_catalog_exec("UPDATE tenant_mgr.spare SET state = 'ready', object_oid = $2, version = $3"
						" WHERE id = $1::pg_catalog.uuid",
						3, types, values, NULL, SPI_OK_UPDATE);
		tm_xact_commit();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		tm_xact_abort();
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("tenant_mgr could not build spare \"%s\": %s",
						s->object_name, edata->message),
				 errdetail("No spare is built again until the registered migrations change.")));
		types[1] = TEXTOID;
		values[1] = CStringGetTextDatum(edata->message ? edata->message : "");
		tm_xact_begin();
		values[2] = Int64GetDatum(tm_latest_version());
		tm_catalog_exec("UPDATE tenant_mgr.spare SET state = 'failed', object_oid = NULL,"
						" version = 0, failed_at = $3, last_error = $2"
						" WHERE id = $1::pg_catalog.uuid",
						3, types, values, NULL, SPI_OK_UPDATE);
		tm_xact_commit();
	}
	PG_END_TRY();
}

/*
 * For the launcher, in a transaction of its own: removes one ready spare
 * beyond tenant_mgr.pool_schema (its schema and role, then its row).
 * Returns true if it removed one.
 */
static bool
tm_pool_shrink(void)
{
	List	   *spares;
	TmSpare    *s;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	tm_xact_begin();
	tm_catalog_exec(psprintf("SELECT " TM_SPARE_COLUMNS " FROM tenant_mgr.spare"
							 " WHERE isolation = 'schema' AND state <> 'failed'"
							 " ORDER BY created_at DESC, object_name DESC OFFSET %d FOR UPDATE SKIP LOCKED",
							 tm_pool_schema),
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	spares = tm_spares_read();
	if (spares == NIL)
	{
		tm_xact_commit();
		return false;
	}
	s = linitial(spares);
	tm_schematenant_drop(tm_spare_tenant(s));
	values[0] = CStringGetTextDatum(s->id);
	tm_catalog_exec("DELETE FROM tenant_mgr.spare WHERE id = $1::pg_catalog.uuid",
					1, types, values, NULL, SPI_OK_DELETE);
	tm_xact_commit();
	return true;
}

/*
 * For the launcher: one step of pool upkeep.  In order: a spare left
 * "building" (by a crash, or being migrated), a ready spare behind the
 * registry, a spare too many, a missing spare.  Returns true if it did
 * something, so that the launcher comes back at once.
 */
bool
tm_pool_upkeep(void)
{
	TmSpare    *s;
	int64		spares;
	bool		failed;
	Oid			types[1] = {BOOLOID};
	Datum		values[1] = {BoolGetDatum(tm_pool_schema <= 0)};

	tm_xact_begin();
	if (!tm_pool_exists())
	{
		tm_xact_commit();
		return false;
	}
	/* a failed build is tried again only once the migrations changed */
	tm_catalog_exec("DELETE FROM tenant_mgr.spare WHERE state = 'failed'"
					" AND (failed_at IS DISTINCT FROM (SELECT coalesce(max(version), 0) FROM tenant_mgr.migration)"
					"      OR $1)",
					1, types, values, NULL, SPI_OK_DELETE);
	tm_catalog_exec("SELECT count(*) FILTER (WHERE state <> 'failed'),"
					" count(*) FILTER (WHERE state = 'failed') > 0"
					" FROM tenant_mgr.spare WHERE isolation = 'schema'",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	spares = tm_get_int64(0, 1);
	failed = tm_get_bool(0, 2);
	tm_xact_commit();

	if (spares == 0 && (tm_pool_schema <= 0 || failed))
		return false;

	s = tm_spare_take("SELECT " TM_SPARE_COLUMNS " FROM tenant_mgr.spare"
					  " WHERE isolation = 'schema' AND (state = 'building'"
					  "   OR (state = 'ready' AND version <> (SELECT coalesce(max(version), 0) FROM tenant_mgr.migration)))"
					  " ORDER BY created_at, object_name LIMIT 1 FOR UPDATE SKIP LOCKED");
	if (s != NULL)
	{
		tm_spare_build(s);
		return true;
	}
	if (spares > tm_pool_schema)
		return tm_pool_shrink();
	if (spares < tm_pool_schema && !failed)
	{
		tm_xact_begin();
		tm_catalog_exec("INSERT INTO tenant_mgr.spare (isolation, object_name, owner, state)"
						" SELECT 'schema', n, n, 'building'"
						"   FROM (SELECT 'tenant_mgr_spare_' || nextval('tenant_mgr.spare_seq') AS n) s"
						" RETURNING " TM_SPARE_COLUMNS,
						0, NULL, NULL, NULL, SPI_OK_INSERT_RETURNING);
		s = linitial(tm_spares_read());
		tm_xact_commit();
		tm_spare_build(s);
		return true;
	}
	return false;
}
