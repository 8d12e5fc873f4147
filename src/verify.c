/*-------------------------------------------------------------------------
 *
 * verify.c
 *		Compare the catalog with reality: pg_namespace and every ledger.
 *
 * The catalog is a cache; the schemas and their ledgers are the truth.
 * verify() reports every disagreement as a row and changes nothing, so an
 * empty result means the catalog can be trusted.  It reads each tenant's
 * ledger (a database tenant's through an executor), so its cost grows with
 * the number of tenants.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "tenant_mgr.h"

PG_FUNCTION_INFO_V1(verify);

static void
tm_report(ReturnSetInfo *rsinfo, const char *tenant, const char *problem,
		  const char *detail)
{
	Datum		values[3];
	bool		nulls[3] = {tenant == NULL, false, false};

	values[0] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	values[1] = CStringGetTextDatum(problem);
	values[2] = CStringGetTextDatum(detail);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* A ledger read inside tm_try. */
typedef struct TmLedgerRead
{
	const TmTenant *tenant;
	List	   *rows;
} TmLedgerRead;

static void
tm_read_rows(void *arg)
{
	TmLedgerRead *read = (TmLedgerRead *) arg;

	read->rows = tm_ledger_rows(read->tenant);
}

/*
 * Reports a ledger that is not the table tenant_mgr made, or that cannot be
 * read (a tenant holding it locked), and returns false; otherwise sets
 * *rows to its rows.  Reading it raises nothing: one tenant never stops
 * verify().
 */
static bool
tm_verify_ledger(ReturnSetInfo *rsinfo, const TmTenant *t, List **rows)
{
	char	   *problem = tm_ledger_problem(t);
	TmLedgerRead read = {t, NIL};
	ErrorData  *edata;

	if (problem)
	{
		tm_report(rsinfo, t->name, "tampered",
				  psprintf("the ledger is not the table tenant_mgr made: %s", problem));
		return false;
	}
	/* its lock goes with the read: verify() reads every ledger */
	edata = tm_try_discard(tm_read_rows, &read);
	if (edata)
	{
		tm_report(rsinfo, t->name,
				  edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ? "locked" : "unreadable",
				  psprintf("the ledger could not be read: %s", edata->message));
		return false;
	}
	*rows = read.rows;
	return true;
}

/* Reports registered migrations missing from a ledger below its latest. */
static void
tm_verify_gaps(ReturnSetInfo *rsinfo, const TmTenant *t, List *migrations,
			   List *rows)
{
	int64		latest = rows ? ((TmLedgerRow *) llast(rows))->version : 0;
	ListCell   *mc;

	foreach(mc, migrations)
	{
		TmMigration *m = lfirst(mc);
		ListCell   *rc;
		bool		found = false;

		if (m->version >= latest)
			continue;
		foreach(rc, rows)
			found |= ((TmLedgerRow *) lfirst(rc))->version == m->version;
		if (!found)
			tm_report(rsinfo, t->name, "missing_migration",
					  psprintf("the ledger lacks migration " INT64_FORMAT ", below its latest " INT64_FORMAT,
							   m->version, latest));
	}
}

/* The highest registered version, 0 when none is. */
static int64
tm_registry_latest(List *migrations)
{
	return migrations ? ((TmMigration *) llast(migrations))->version : 0;
}

/*
 * Reports a ledger ahead of the registry: the tenant was migrated by a newer
 * release, or migrations were removed from the registry.  what says which
 * of the ledger's versions are above the latest registered one.
 */
static void
tm_report_ahead(ReturnSetInfo *rsinfo, const TmTenant *t, List *migrations,
				const char *what)
{
	int64		latest = tm_registry_latest(migrations);

	if (latest == 0)
		tm_report(rsinfo, t->name, "ledger_ahead",
				  psprintf("%s, and no migration is registered", what));
	else
		tm_report(rsinfo, t->name, "ledger_ahead",
				  psprintf("%s, above the latest registered version " INT64_FORMAT,
						   what, latest));
}

/*
 * Reports a ledger whose latest version is below the one the label of its
 * schema or database records: its latest rows were deleted.
 */
static void
tm_verify_label_version(ReturnSetInfo *rsinfo, const TmTenant *t,
						Oid classid, Oid objid, int64 latest)
{
	int64		labelled = tm_label_version(classid, objid);

	if (labelled > latest)
		tm_report(rsinfo, t->name, "missing_migration",
				  psprintf("the ledger lacks migration " INT64_FORMAT ", which its label records as applied; its latest row is " INT64_FORMAT,
						   labelled, latest));
}

/* Checks one schema tenant's object and ledger against its catalog row. */
static void
tm_verify_schema_tenant(ReturnSetInfo *rsinfo, const TmTenant *t,
						List *migrations)
{
	Oid			nspoid = tm_schema_find(t);
	TmTenant	found = *t;
	int64		ledger_version = 0;
	List	   *rows;
	ListCell   *lc;
	StringInfoData ahead;
	int			nahead = 0;

	if (!OidIsValid(nspoid))
	{
		Oid			labelled = tm_schema_find_labelled(t);

		if (OidIsValid(labelled))
			tm_report(rsinfo, t->name, "no_ledger",
					  psprintf("schema \"%s\" has no table \"%s\"",
							   get_namespace_name(labelled), TM_LEDGER_NAME));
		else if (OidIsValid(get_namespace_oid(t->object_name, true)))
			tm_report(rsinfo, t->name, "not_ours",
					  psprintf("schema \"%s\" exists but was not created by tenant_mgr",
							   t->object_name));
		else
			tm_report(rsinfo, t->name, "missing",
					  psprintf("schema \"%s\" does not exist", t->object_name));
		return;
	}
	found.schema = get_namespace_name(nspoid);
	if (strcmp(found.schema, t->object_name) != 0)
		tm_report(rsinfo, t->name, "renamed",
				  psprintf("schema \"%s\" is now named \"%s\"",
						   t->object_name, found.schema));

	if (tm_citus_mode())
	{
		List	   *problems = tm_citus_verify_schema(nspoid);

		for (lc = list_head(problems); lc != NULL; lc = lnext(problems, lnext(problems, lc)))
			tm_report(rsinfo, t->name, lfirst(lc), lfirst(lnext(problems, lc)));
	}
	if (!tm_verify_ledger(rsinfo, &found, &rows))
		return;
	tm_verify_gaps(rsinfo, t, migrations, rows);
	tm_verify_label_version(rsinfo, t, NamespaceRelationId, nspoid,
							rows ? ((TmLedgerRow *) llast(rows))->version : 0);
	initStringInfo(&ahead);
	foreach(lc, rows)
	{
		TmLedgerRow *row = lfirst(lc);
		TmMigration *registered = NULL;
		ListCell   *mc;

		foreach(mc, migrations)
			if (((TmMigration *) lfirst(mc))->version == row->version)
				registered = lfirst(mc);
		if (registered == NULL)
			tm_report(rsinfo, t->name, "unknown_migration",
					  psprintf("the ledger records migration " INT64_FORMAT ", which is not registered",
							   row->version));
		else if (strcmp(row->checksum, registered->checksum) != 0)
			tm_report(rsinfo, t->name, "checksum_mismatch",
					  psprintf("migration " INT64_FORMAT " was applied with checksum %s, the registered one is %s",
							   row->version, row->checksum, registered->checksum));
		if (row->version > tm_registry_latest(migrations))
		{
			appendStringInfo(&ahead, "%s" INT64_FORMAT,
							 nahead > 0 ? ", " : "", row->version);
			nahead++;
		}
		ledger_version = row->version;
	}
	if (nahead > 0)
		tm_report_ahead(rsinfo, t, migrations,
						psprintf("the ledger records %s %s",
								 nahead > 1 ? "migrations" : "migration",
								 ahead.data));
	if (ledger_version != t->version)
		tm_report(rsinfo, t->name, "version_mismatch",
				  psprintf("the catalog says version " INT64_FORMAT ", the ledger says " INT64_FORMAT,
						   t->version, ledger_version));
}

/*
 * Checks one database tenant's database and ledger (read by an executor)
 * against its catalog row.
 */
static void
tm_verify_database_tenant(ReturnSetInfo *rsinfo, const TmTenant *t,
						  List *migrations)
{
	Oid			dboid = tm_database_find(t);
	char	   *dbname;
	TmExecRun  *run;

	if (!OidIsValid(dboid))
	{
		if (OidIsValid(get_database_oid(t->object_name, true)))
			tm_report(rsinfo, t->name, "not_ours",
					  psprintf("database \"%s\" exists but was not created by tenant_mgr",
							   t->object_name));
		else
			tm_report(rsinfo, t->name, "missing",
					  psprintf("database \"%s\" does not exist", t->object_name));
		return;
	}
	dbname = get_database_name(dboid);
	if (strcmp(dbname, t->object_name) != 0)
		tm_report(rsinfo, t->name, "renamed",
				  psprintf("database \"%s\" is now named \"%s\"",
						   t->object_name, dbname));

	run = tm_dbtenant_read_ledger(t, migrations);
	if (run->task->state == TM_EXEC_FAILED)
		tm_report(rsinfo, t->name,
				  run->task->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ? "locked" : "unreadable",
				  psprintf("the ledger could not be read: %s", tm_task_text(run->task, run->task->message)));
	else if (run->task->problem)
		tm_report(rsinfo, t->name, "tampered",
				  psprintf("the ledger is not the table tenant_mgr made: %s",
						   tm_task_text(run->task, run->task->problem)));
	else if (run->task->no_ledger)
		tm_report(rsinfo, t->name, "no_ledger",
				  psprintf("database \"%s\" has no table \"public.%s\"",
						   dbname, TM_LEDGER_NAME));
	else
	{
		if (run->task->unknown > 0)
			tm_report(rsinfo, t->name, "unknown_migration",
					  run->task->unknown == 1 ?
					  "the ledger records 1 migration that is not registered" :
					  psprintf("the ledger records %d migrations that are not registered",
							   run->task->unknown));
		if (run->task->missing > 0)
			tm_report(rsinfo, t->name, "missing_migration",
					  run->task->missing == 1 ?
					  "the ledger lacks 1 registered migration below its latest" :
					  psprintf("the ledger lacks %d registered migrations below its latest",
							   run->task->missing));
		/* the executor counts rows; of their versions it returns the latest */
		if (run->task->version > tm_registry_latest(migrations))
			tm_report_ahead(rsinfo, t, migrations,
							psprintf("the ledger's latest migration is " INT64_FORMAT,
									 run->task->version));
		tm_verify_label_version(rsinfo, t, DatabaseRelationId, dboid,
								run->task->version);
		if (run->task->mismatched > 0)
			tm_report(rsinfo, t->name, "checksum_mismatch",
					  run->task->mismatched == 1 ?
					  "1 migration was applied with another checksum than the registered one" :
					  psprintf("%d migrations were applied with another checksum than the registered one",
							   run->task->mismatched));
		if (run->task->version != t->version)
			tm_report(rsinfo, t->name, "version_mismatch",
					  psprintf("the catalog says version " INT64_FORMAT ", the ledger says " INT64_FORMAT,
							   t->version, run->task->version));
	}
	tm_exec_release(run);
}

/*
 * verify() returns table (tenant text, problem text, detail text)
 */
/*
 * Roles with tenant_mgr's mark (an owner or login role) that nothing
 * accounts for: no tenant, spare, intent or job in flight of this catalog.
 * Roles are cluster-wide and the extension may also be created in other
 * databases, whose catalogs this one cannot read: a role that owns objects
 * (or, for a login role, whose owner role owns objects) in a database that
 * is neither this one nor one of tenant_mgr's databases belongs to a schema
 * tenant there and is left to that database's verify().  A role whose
 * database went away with everything in it owns nothing and is reported.
 */
static void
tm_verify_roles(ReturnSetInfo *rsinfo)
{
	uint64		i;

	tm_catalog_exec(psprintf("SELECT r.rolname::pg_catalog.text"
							 "  FROM pg_catalog.pg_shseclabel l"
							 "  JOIN pg_catalog.pg_roles r ON r.oid = l.objoid"
							 " WHERE l.classoid = 'pg_catalog.pg_authid'::pg_catalog.regclass"
							 "   AND l.provider = 'tenant_mgr'"
							 "   AND pg_catalog.split_part(l.label, ' ', 1) IN ('tenant', 'login')"
							 "   AND pg_catalog.split_part(l.label, ' ', 3) NOT IN"
							 "       (SELECT tenant_id::pg_catalog.text FROM tenant_mgr.tenant"
							 "         WHERE tenant_id IS NOT NULL"
							 "        UNION ALL SELECT tenant_id::pg_catalog.text FROM tenant_mgr.intent"
							 "         WHERE tenant_id IS NOT NULL%s)"
							 "   AND r.rolname NOT IN (SELECT owner FROM tenant_mgr.intent"
							 "        UNION ALL SELECT owner FROM tenant_mgr.job"
							 "         WHERE state IN ('queued', 'running'))"
							 "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_shdepend d"
							 "        WHERE d.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass"
							 "          AND d.deptype = 'o'"
							 "          AND d.refobjid IN (SELECT r.oid UNION ALL"
							 "              SELECT m.roleid FROM pg_catalog.pg_auth_members m"
							 "               WHERE m.member = r.oid)"
							 "          AND d.dbid NOT IN (0, %u)"
							 "          AND d.dbid NOT IN (SELECT objoid FROM pg_catalog.pg_shseclabel"
							 "               WHERE classoid = 'pg_catalog.pg_database'::pg_catalog.regclass"
							 "                 AND provider = 'tenant_mgr'))"
							 " ORDER BY 1",
							 tm_catalog_has_spares() ?
							 " UNION ALL SELECT id::pg_catalog.text FROM tenant_mgr.spare" : "",
							 MyDatabaseId),
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
		tm_report(rsinfo, NULL, "orphan",
				  psprintf("role \"%s\" carries tenant_mgr's mark but belongs to no tenant",
						   tm_get_text(i, 1)));
}

Datum
verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListCell   *lc;
	List	   *migrations = NIL;
	uint64		i;

	InitMaterializedSRF(fcinfo, 0);
	tm_spi_connect();
	migrations = tm_migration_list();

	foreach(lc, tm_tenant_list())
	{
		TmTenant   *t = lfirst(lc);

		if (t->state == TM_FAILED)
			tm_report(rsinfo, t->name, "failed",
					  psprintf("its creation failed: %s", t->last_error ? t->last_error : ""));
		else if (t->state != TM_READY)
			continue;			/* work in progress */
		else if (t->isolation == TM_SCHEMA)
			tm_verify_schema_tenant(rsinfo, t, migrations);
		else
		{
			tm_require_control_database();
			tm_verify_database_tenant(rsinfo, t, migrations);
		}
	}

	/*
	 * ready spares of the warm pool, checked as tenants under their object
	 * names (the launcher rebuilds or updates the others)
	 */
	if (tm_catalog_has_spares())
	{
		List	   *spares = NIL;

		tm_catalog_exec("SELECT id::pg_catalog.text, object_name, object_oid, version, isolation"
						"  FROM tenant_mgr.spare WHERE state = 'ready' ORDER BY object_name",
						0, NULL, NULL, NULL, SPI_OK_SELECT);
		for (i = 0; i < SPI_processed; i++)
		{
			MemoryContext old = MemoryContextSwitchTo(tm_result_cxt());
			char	   *object = tm_get_text(i, 2);
			TmTenant   *t = tm_tenant_make(object, tm_isolation_parse(tm_get_text(i, 5)),
										   object, object);

			t->id = tm_get_text(i, 1);
			t->object_oid = tm_get_oid(i, 3);
			t->version = tm_get_int64(i, 4);
			t->state = TM_READY;
			spares = lappend(spares, t);
			MemoryContextSwitchTo(old);
		}
		foreach(lc, spares)
		{
			TmTenant   *t = lfirst(lc);

			if (t->isolation == TM_SCHEMA)
				tm_verify_schema_tenant(rsinfo, t, migrations);
			else
				tm_verify_database_tenant(rsinfo, t, migrations);
		}
	}

	/* what aborted requests left and the launcher has not removed yet */
	foreach(lc, tm_intent_orphans())
	{
		TmIntent   *intent = lfirst(lc);

		tm_report(rsinfo, NULL, "orphan",
				  psprintf("%s \"%s\" of an aborted request awaits removal by the launcher",
						   intent->isolation == TM_SCHEMA ? "schema" : "database",
						   intent->object_name));
	}

	/*
	 * a database with tenant_mgr's label that nothing accounts for (database
	 * tenants are in the control database's catalog only)
	 */
	if (tm_is_control_database())
	{
		List	   *queued = tm_queue_databases();
		char	   *detail;

		tm_catalog_exec(psprintf("SELECT d.datname::pg_catalog.text, d.oid FROM pg_catalog.pg_database d"
								 "  JOIN pg_catalog.pg_shseclabel l"
								 "    ON l.objoid = d.oid AND l.classoid = 'pg_catalog.pg_database'::pg_catalog.regclass"
								 "   AND l.provider = 'tenant_mgr'"
								 " WHERE %s NOT IN (SELECT %s FROM tenant_mgr.tenant%s)"
								 /* the template database is nobody's tenant */
								 "   AND pg_catalog.split_part(l.label, ' ', 1) <> 'template'"
								 " ORDER BY 1",
								 /* by id; before 1.1, by name */
								 tm_catalog_has_ids() ? "pg_catalog.split_part(l.label, ' ', 3)" :
								 "pg_catalog.split_part(l.label, ' ', 2)",
								 tm_catalog_has_ids() ? "tenant_id::pg_catalog.text" : "name",
								 /* spares of the warm pool are accounted for */
								 tm_catalog_has_runs() ?
								 " UNION ALL SELECT id::pg_catalog.text FROM tenant_mgr.spare" : ""),
						0, NULL, NULL, NULL, SPI_OK_SELECT);
		for (i = 0; i < SPI_processed; i++)
			if (!list_member_oid(queued, tm_get_oid(i, 2)))
				tm_report(rsinfo, NULL, "orphan",
						  psprintf("database \"%s\" carries tenant_mgr's mark but belongs to no tenant",
								   tm_get_text(i, 1)));
		/* one named like the template database, not made by tenant_mgr */
		if ((detail = tm_template_problem()) != NULL)
			tm_report(rsinfo, NULL, "not_ours", detail);
		if (tm_catalog_has_ids())
			tm_verify_roles(rsinfo);
	}

	/*
	 * a ledger in a schema the catalog does not know: never adopted (one
	 * being built has an intent, reported above once it is an orphan)
	 */
	tm_catalog_exec(psprintf("SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_class c"
							 " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
							 " WHERE c.relname = '" TM_LEDGER_NAME "' AND c.relkind = 'r'"
							 "   AND n.oid NOT IN (SELECT object_oid FROM tenant_mgr.tenant"
							 "                      WHERE isolation = 'schema')"
							 "   AND n.nspname NOT IN (SELECT object_name FROM tenant_mgr.tenant"
							 "                          WHERE isolation = 'schema')%s"
							 " ORDER BY 1",
							 tm_catalog_has_runs() ?
							 "   AND n.nspname NOT IN (SELECT object_name FROM tenant_mgr.intent"
							 "                          WHERE isolation = 'schema')"
							 "   AND n.nspname NOT IN (SELECT object_name FROM tenant_mgr.spare)" : ""),
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
		tm_report(rsinfo, NULL, "orphan",
				  psprintf("schema \"%s\" has a tenant_mgr ledger but no catalog row",
						   tm_get_text(i, 1)));

	tm_spi_finish();
	return (Datum) 0;
}
