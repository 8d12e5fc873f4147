/*-------------------------------------------------------------------------
 *
 * import.c
 *		tenant_import: taking back a schema tenant restored from a per-tenant
 *		dump, on this server or another, under its name or a new one.
 *
 * A per-tenant export is a pg_dump of the tenant's schema, which carries
 * its security label ("tenant <name> <id>", marker.c) and its ledger.
 * Restored with --no-owner, its objects belong to whoever restored it.
 * tenant_import finds the schema by its label (never by name alone: a
 * schema without tenant_mgr's label is never adopted), gives the tenant an
 * owner role of its own and every object in the schema to it, then checks
 * the ledger (its shape, and every row against the registry: no unknown or
 * altered migration, no gap) before it records the tenant.  All of it in
 * the caller's transaction: any failure leaves nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
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
 * tenant_import(name, new_name) returns tenant_mgr.tenant
 *
 * Takes back the restored schema labelled for tenant name, as tenant
 * new_name (default: name).  Under its own name a tenant keeps its id if no
 * tenant here has it; under a new name, or when its id is taken here, it
 * gets a new one.
 */
Datum
tenant_import(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *as;
	TmTenant   *t;
	TmTenant   *found;
	Oid			nspoid;
	char	   *id;
	int64		current;
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
	tm_tenant_lock(as);
	if (tm_tenant_fetch(as, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("tenant \"%s\" already exists", as)));

	/* the restored schema: by its label only */
	found = tm_tenant_make(name, TM_SCHEMA, "", "");
	found->id = NULL;
	nspoid = tm_schema_find_labelled(found);
	id = OidIsValid(nspoid) ? tm_schema_label_id(nspoid) : NULL;
	if (id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("no schema carries tenant_mgr's label for tenant \"%s\"", name),
				 errhint("Restore the tenant's schema from its pg_dump on a server that preloads tenant_mgr, so that its security label comes with it.")));

	t = tm_tenant_make(as, TM_SCHEMA, tm_object_name(as), tm_object_name(as));
	if (strcmp(as, name) == 0 && !tm_tenant_id_taken(id))
		t->id = id;
	t->object_oid = nspoid;

	/* an owner role of its own, owning everything in the schema */
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

	/* the ledger: its shape, and every row against the registry */
	t->schema = t->object_name;
	(void) tm_migration_plan(t, tm_migration_list(), PG_INT64_MAX, &current);
	t->version = current;
	t->state = TM_READY;
	tm_tenant_insert(t, "{}");
	{
		ErrorData	note;

		memset(&note, 0, sizeof(note));
		note.sqlerrcode = ERRCODE_SUCCESSFUL_COMPLETION;
		note.message = psprintf("imported from a schema labelled for tenant \"%s\"", name);
		tm_event_log(tm_run_id(), as, TM_EV_IMPORT, 0, TM_EV_OK, &note,
					 tm_elapsed_ms(start));
	}
	result = tm_tenant_row(as);
	tm_spi_finish();
	PG_RETURN_DATUM(result);
}
