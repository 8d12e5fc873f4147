/*-------------------------------------------------------------------------
 *
 * import.c
 *		tenant_import: taking back a schema or database tenant restored from
 *		a per-tenant dump, on this server or another, under its name or a
 *		new one.
 *
 * A per-tenant export of a schema tenant is a pg_dump of its schema, which
 * carries its security label ("tenant <name> <id> [<version>]", marker.c)
 * and its ledger.  Restored with --no-owner, its objects belong to whoever
 * restored it.  tenant_import finds the schema by its label (never by name
 * alone: a schema without tenant_mgr's label is never adopted), gives the
 * tenant an owner role of its own and every object in the schema to it,
 * then checks the ledger (its shape, and every row against the registry:
 * no unknown or altered migration, no gap, nothing its label says was
 * deleted) before it records the tenant.
 *
 * A database tenant's export is pg_dump --create of its database, which
 * then carries the database's label, and its owner role from pg_dumpall
 * --roles-only, with the role's label.  Restored with owners, everything in
 * the database belongs to that role; dbtenant.c checks the role's label and
 * the ledger (through an executor) and renames and relabels both.
 *
 * All of it in the caller's transaction: any failure leaves nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "tenant_mgr.h"

PG_FUNCTION_INFO_V1(tenant_import);

/*
 * Gives every object of schema nspoid that can have an owner of its own to
 * role: tables, views, materialized views, sequences not owned by a column,
 * foreign tables, routines, domains, enum, range and composite types.
 */
static void
tm_reassign_schema(Oid nspoid, const char *role)
{
	Oid			types[2] = {OIDOID, NAMEOID};
	Datum		values[2] = {ObjectIdGetDatum(nspoid), tm_name_datum(role)};
	List	   *stmts = NIL;
	ListCell   *lc;
	uint64		i;

	tm_user_query("SELECT pg_catalog.format('ALTER %s %s OWNER TO %I', kind, ident, $2) FROM ("
				  " SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'"
				  "        WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind,"
				  "        pg_catalog.format('%I.%I', n.nspname, c.relname) AS ident"
				  "   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
				  "  WHERE c.relnamespace = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
				  "    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
				  "                     WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
				  "                       AND d.objid = c.oid AND d.deptype IN ('a', 'i'))"
				  " UNION ALL"
				  " SELECT 'ROUTINE', p.oid::pg_catalog.regprocedure::pg_catalog.text"
				  "   FROM pg_catalog.pg_proc p WHERE p.pronamespace = $1"
				  " UNION ALL"
				  " SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,"
				  "        pg_catalog.format('%I.%I', n.nspname, t.typname)"
				  "   FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
				  "  WHERE t.typnamespace = $1"
				  "    AND (t.typtype IN ('d', 'e', 'r')"
				  "         OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_catalog.pg_class c"
				  "                                   WHERE c.oid = t.typrelid) = 'c'))"
				  ") x ORDER BY 1",
				  2, types, values);
	for (i = 0; i < SPI_processed; i++)
		stmts = lappend(stmts, tm_get_text(i, 1));
	foreach(lc, stmts)
		tm_ddl((const char *) lfirst(lc));
}

/*
 * A restored object carrying the label of an existing tenant of that name,
 * with its id, is that tenant's own: never taken from it.
 */
static void
tm_check_not_live(const char *kind, const char *object, const char *name,
				  const char *id)
{
	TmTenant   *live = tm_tenant_fetch(name, true);

	if (live && live->id && strcmp(live->id, id) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("%s \"%s\" belongs to tenant \"%s\"", kind, object, name),
				 errdetail("It carries the label of that tenant, which exists here."),
				 errhint("Drop or rename tenant \"%s\" first, or restore the export on another server.", name)));
}

/*
 * Takes back the restored schema nspoid, labelled for tenant name, as t.
 * Its objects were restored with --no-owner: t gets an owner role of its
 * own, owning the schema and everything in it.
 */
static void
tm_import_schema(TmTenant *t, Oid nspoid)
{
	int64		current;

	/* a creation building it, or what an aborted one left, awaiting removal */
	if (tm_intent_pending(get_namespace_name(nspoid)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("schema \"%s\" is being created or removed by tenant_mgr",
						get_namespace_name(nspoid)),
				 errdetail("A creation of the tenant, or its clean-up, names it."),
				 errhint("Wait until that work is over, then try again.")));
	if (strcmp(get_namespace_name(nspoid), t->object_name) != 0 &&
		OidIsValid(get_namespace_oid(t->object_name, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_SCHEMA),
				 errmsg("schema \"%s\" already exists", t->object_name)));
	tm_owner_role_create(t);
	/* under its restored name: tm_user_query reads with the call's snapshot */
	tm_ddl(psprintf("ALTER SCHEMA %s OWNER TO %s",
					quote_identifier(get_namespace_name(nspoid)),
					quote_identifier(t->owner)));
	tm_reassign_schema(nspoid, t->owner);
	tm_rename_object("SCHEMA", get_namespace_name(nspoid), t->object_name, t, false);

	/* the ledger: its shape, every row against the registry and its label */
	t->schema = t->object_name;
	(void) tm_migration_plan(t, tm_migration_list(), PG_INT64_MAX, &current);
	if (tm_label_version(NamespaceRelationId, nspoid) < 0)
		tm_label_set_version(NamespaceRelationId, nspoid, t, current);
	t->object_oid = nspoid;
	t->version = current;
}

/*
 * tenant_import(name, new_name) returns tenant_mgr.tenant
 *
 * Takes back the restored schema or database labelled for tenant name, as
 * tenant new_name (default: name).  Under its own name a tenant keeps its
 * id if no tenant here has it; under a new name, or when its id is taken
 * here, it gets a new one.
 */
Datum
tenant_import(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *as;
	TmTenant   *t;
	TmTenant   *found;
	Oid			nspoid;
	Oid			dboid = InvalidOid;
	char	   *id;
	Datum		result;
	instr_time	start;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant name must not be null")));
	INSTR_TIME_SET_CURRENT(start);
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	as = PG_ARGISNULL(1) ? name : text_to_cstring(PG_GETARG_TEXT_PP(1));
	tm_check_tenant_name(as);

	tm_spi_connect();

	/*
	 * Both names, in a fixed order, as tm_rename takes them: whoever is
	 * creating, dropping or renaming the tenant the label names holds its
	 * lock, and its objects are not for the taking meanwhile.
	 */
	tm_tenant_lock(strcmp(name, as) < 0 ? name : as);
	if (strcmp(name, as) != 0)
		tm_tenant_lock(strcmp(name, as) < 0 ? as : name);
	if (tm_tenant_fetch(as, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("tenant \"%s\" already exists", as)));

	/* the restored schema, else database: by its label only */
	found = tm_tenant_make(name, TM_SCHEMA, "", "");
	found->id = NULL;
	nspoid = tm_schema_find_labelled(found);
	id = OidIsValid(nspoid) ? tm_label_id(NamespaceRelationId, nspoid) : NULL;
	if (id == NULL)
	{
		found->isolation = TM_DATABASE;
		dboid = tm_database_find(found);
		id = OidIsValid(dboid) ? tm_label_id(DatabaseRelationId, dboid) : NULL;
	}
	if (id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("no schema or database carries tenant_mgr's label for tenant \"%s\"", name),
				 errhint("Restore the tenant's schema or database from its pg_dump on a server that preloads tenant_mgr, so that its security label comes with it.")));
	if (OidIsValid(dboid))
		tm_check_not_live("database", get_database_name(dboid), name, id);
	else
		tm_check_not_live("schema", get_namespace_name(nspoid), name, id);

	t = tm_tenant_make(as, OidIsValid(dboid) ? TM_DATABASE : TM_SCHEMA,
					   tm_object_name(as), tm_object_name(as));
	if (strcmp(as, name) == 0 && !tm_tenant_id_taken(id))
		t->id = id;
	if (OidIsValid(dboid))
		tm_dbtenant_import(t, name, id, dboid);
	else
		tm_import_schema(t, nspoid);
	t->state = TM_READY;
	tm_tenant_insert(t, "{}");
	{
		ErrorData	note;

		memset(&note, 0, sizeof(note));
		note.sqlerrcode = ERRCODE_SUCCESSFUL_COMPLETION;
		note.message = psprintf("imported from a %s labelled for tenant \"%s\"",
								OidIsValid(dboid) ? "database" : "schema", name);
		tm_event_log(tm_run_id(), as, TM_EV_IMPORT, 0, TM_EV_OK, &note,
					 tm_elapsed_ms(start));
	}
	result = tm_tenant_row(as);
	tm_spi_finish();
	PG_RETURN_DATUM(result);
}
