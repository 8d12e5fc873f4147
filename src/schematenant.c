/*-------------------------------------------------------------------------
 *
 * schematenant.c
 *		Schema tenants: building, dropping and renaming a tenant that is a
 *		schema of the control database.
 *
 * Everything here runs in the current transaction with the current user's
 * privileges (the caller's, or in the launcher the role that queued the
 * work), so a rollback leaves nothing and nothing is done that the role
 * could not do by hand.  The tenant's lock is held by the caller.
 *
 * Unless an owner is given, a tenant gets a NOLOGIN owner role of its own,
 * named like its schema and carrying the same comment as the schema
 * ("tenant_mgr tenant <name>"); a role without that comment is never
 * adopted, renamed or dropped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

#include "tenant_mgr.h"

/* Runs one utility statement through SPI as the current user. */
void
tm_utility(const char *sql)
{
	if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not run \"%s\"", sql);
}

/*
 * True if role is a role tenant_mgr created for tenant (it carries the
 * tenant's mark).
 */
static bool
tm_role_marked(const char *role, const char *marker)
{
	Oid			roleid = get_role_oid(role, true);
	char	   *comment;

	if (!OidIsValid(roleid))
		return false;
	comment = tm_shared_comment(roleid, AuthIdRelationId);
	return comment != NULL && strcmp(comment, marker) == 0;
}

bool
tm_role_is_ours(const char *role, const char *tenant)
{
	return tm_role_marked(role, tm_schema_marker(tenant));
}

/* The mark of a tenant's application login role. */
char *
tm_login_marker(const char *tenant)
{
	return psprintf("tenant_mgr login %s", tenant);
}

/* The name of the login role of the tenant whose object is object_name. */
char *
tm_login_role_name(const char *object_name)
{
	return psprintf("%s_login", object_name);
}

/*
 * Raises an error unless the current user may create the owner role of a
 * new tenant: the name is free, and the user is a superuser or has
 * CREATEROLE.
 */
void
tm_check_owner_role(const char *role, const char *tenant)
{
	HeapTuple	tup;
	bool		may;

	if (OidIsValid(get_role_oid(role, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("role \"%s\" already exists", role),
				 errdetail("It was not created by tenant_mgr, which never adopts an existing role."),
				 errhint("Choose another tenant name, or pass owner => that role.")));

	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(GetUserId()));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for role %u", GetUserId());
	may = ((Form_pg_authid) GETSTRUCT(tup))->rolsuper ||
		((Form_pg_authid) GETSTRUCT(tup))->rolcreaterole;
	ReleaseSysCache(tup);
	if (!may)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to create tenant \"%s\"", tenant),
				 errdetail("Role \"%s\" needs the CREATEROLE attribute to create the tenant's owner role.",
						   GetUserNameFromId(GetUserId(), false)),
				 errhint("Pass owner => a role you are a member of.")));
}

/*
 * Creates the NOLOGIN owner role of a new tenant, marked as tenant_mgr's,
 * and lets the current user act as it (CREATEROLE alone does not).
 */
void
tm_owner_role_create(const char *role, const char *tenant)
{
	tm_check_owner_role(role, tenant);
	tm_utility(psprintf("CREATE ROLE %s NOLOGIN", quote_identifier(role)));
	tm_utility(psprintf("COMMENT ON ROLE %s IS %s", quote_identifier(role),
						quote_literal_cstr(tm_schema_marker(tenant))));
	if (!superuser())
		tm_utility(psprintf("GRANT %s TO %s", quote_identifier(role),
							quote_identifier(GetUserNameFromId(GetUserId(), false))));
}

/*
 * Drops a role that carries marker if nothing depends on it any more;
 * otherwise keeps it with a warning.
 */
static void
tm_role_drop_marked(const char *role, const char *marker, const char *tenant)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	if (!tm_role_marked(role, marker))
		return;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		tm_utility(psprintf("DROP ROLE %s", quote_identifier(role)));
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("role \"%s\" of tenant \"%s\" was kept: %s",
						role, tenant, edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0));
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
}

/* Drops a tenant's owner role if tenant_mgr created it (see above). */
void
tm_owner_role_drop(const char *role, const char *tenant)
{
	tm_role_drop_marked(role, tm_schema_marker(tenant), tenant);
}

/* Drops a tenant's login role, if it has one (see above). */
void
tm_login_role_drop(const char *object_name, const char *tenant)
{
	tm_role_drop_marked(tm_login_role_name(object_name), tm_login_marker(tenant),
						tenant);
}

/* Renames a tenant's login role along with the tenant, if it has one. */
void
tm_login_role_rename(const char *old_object, const char *old_tenant,
					 const char *new_object, const char *new_tenant)
{
	char	   *old_role = tm_login_role_name(old_object);
	char	   *new_role = tm_login_role_name(new_object);

	if (!tm_role_marked(old_role, tm_login_marker(old_tenant)))
		return;
	if (strlen(new_role) > NAMEDATALEN - 1 || OidIsValid(get_role_oid(new_role, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("login role of tenant \"%s\" cannot be renamed to \"%s\"",
						old_tenant, new_role),
				 errdetail("The name is taken or longer than %d bytes.", NAMEDATALEN - 1)));
	tm_utility(psprintf("ALTER ROLE %s RENAME TO %s",
						quote_identifier(old_role), quote_identifier(new_role)));
	tm_utility(psprintf("COMMENT ON ROLE %s IS %s", quote_identifier(new_role),
						quote_literal_cstr(tm_login_marker(new_tenant))));
}

/*
 * Creates the LOGIN role an application uses for tenant t: named
 * <object>_login, marked, a member of the owner role (so it has the owner's
 * privileges on the tenant's objects) and, for a database tenant, allowed
 * to connect.  Returns its name; a role tenant_mgr already made for the
 * tenant is returned as is.
 */
char *
tm_login_role_create(const TmTenant *t)
{
	char	   *role = tm_login_role_name(t->object_name);

	if (strlen(role) > NAMEDATALEN - 1)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("login role name \"%s\" would be too long", role),
				 errdetail("Role names are limited to %d bytes.", NAMEDATALEN - 1)));
	if (tm_role_marked(role, tm_login_marker(t->name)))
		return role;
	if (OidIsValid(get_role_oid(role, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("role \"%s\" already exists", role),
				 errdetail("It was not created by tenant_mgr, which never adopts an existing role.")));
	tm_utility(psprintf("CREATE ROLE %s LOGIN", quote_identifier(role)));
	tm_utility(psprintf("COMMENT ON ROLE %s IS %s", quote_identifier(role),
						quote_literal_cstr(tm_login_marker(t->name))));
	tm_utility(psprintf("GRANT %s TO %s", quote_identifier(t->owner),
						quote_identifier(role)));
	if (strcmp(t->isolation, TM_ISOLATION_DATABASE) == 0)
		tm_utility(psprintf("GRANT CONNECT ON DATABASE %s TO %s",
							quote_identifier(get_database_name(tm_database_find(t))),
							quote_identifier(role)));
	return role;
}

/*
 * Builds a schema tenant: its owner role (when t->owner is the object name,
 * that is, no owner was given), the schema with tenant_mgr's mark, the
 * ledger, and every migration.  Sets t->object_oid and t->version and
 * returns the steps taken.  Expects an SPI connection.
 */
List *
tm_schematenant_build(TmTenant *t, List *migrations, bool own_role)
{
	List	   *steps;
	ListCell   *lc;
	int64		current;

	if (OidIsValid(get_namespace_oid(t->object_name, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_SCHEMA),
				 errmsg("schema \"%s\" already exists", t->object_name),
				 errdetail("It was not created by tenant_mgr, which never adopts an existing schema."),
				 errhint("Choose another tenant name.")));
	if (own_role)
		tm_owner_role_create(t->owner, t->name);

	tm_utility(psprintf("CREATE SCHEMA %s AUTHORIZATION %s",
						quote_identifier(t->object_name),
						quote_identifier(t->owner)));
	t->object_oid = get_namespace_oid(t->object_name, false);
	tm_utility(psprintf("COMMENT ON SCHEMA %s IS %s",
						quote_identifier(t->object_name),
						quote_literal_cstr(tm_schema_marker(t->name))));

	tm_ledger_create(t);
	steps = tm_migration_plan(t, migrations, PG_INT64_MAX, &current);
	foreach(lc, steps)
	{
		TmStep	   *s = lfirst(lc);

		tm_migration_apply(t, s);
		current = s->migration->version;
	}
	t->version = current;
	return steps;
}

/*
 * Raises an error listing objects outside the schema that depend on objects
 * inside it: DROP SCHEMA ... CASCADE would take them along, and tenant_mgr
 * touches nothing it did not create.
 */
void
tm_check_no_outside_dependents(const TmTenant *t, Oid nspoid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(nspoid)};
	StringInfoData list;
	uint64		i;

	if (SPI_execute_with_args(
							  "SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, 0)"
							  "  FROM pg_catalog.pg_depend d"
							  "  JOIN (SELECT 'pg_catalog.pg_class'::pg_catalog.regclass AS cls, oid FROM pg_catalog.pg_class WHERE relnamespace = $1"
							  "        UNION ALL SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, oid FROM pg_catalog.pg_type WHERE typnamespace = $1"
							  "        UNION ALL SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, oid FROM pg_catalog.pg_proc WHERE pronamespace = $1) o"
							  "    ON d.refclassid = o.cls AND d.refobjid = o.oid"
							  " WHERE d.deptype IN ('n', 'a')"
							  "   AND COALESCE(CASE d.classid"
							  "     WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_type'::pg_catalog.regclass THEN (SELECT typnamespace FROM pg_catalog.pg_type WHERE oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN (SELECT pronamespace FROM pg_catalog.pg_proc WHERE oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN (SELECT connamespace FROM pg_catalog.pg_constraint WHERE oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class WHERE r.oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid WHERE g.oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_attrdef a JOIN pg_catalog.pg_class c ON c.oid = a.adrelid WHERE a.oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid WHERE p.oid = d.objid)"
							  "     WHEN 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass THEN (SELECT stxnamespace FROM pg_catalog.pg_statistic_ext WHERE oid = d.objid)"
							  "   END, 0) OPERATOR(pg_catalog.<>) $1"
							  " ORDER BY 1",
							  1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_depend");
	if (SPI_processed == 0)
		return;

	initStringInfo(&list);
	for (i = 0; i < SPI_processed && i < 10; i++)
		appendStringInfo(&list, "%s%s", i > 0 ? ", " : "",
						 SPI_getvalue(SPI_tuptable->vals[i],
									  SPI_tuptable->tupdesc, 1));
	if (SPI_processed > 10)
		appendStringInfoString(&list, ", ...");
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot drop tenant \"%s\" because objects outside its schema depend on it",
					t->name),
			 errdetail("Objects outside schema \"%s\": %s.", t->object_name, list.data),
			 errhint("Drop those objects first; tenant_mgr drops only what it created.")));
}

/*
 * Drops the schema nspoid of tenant t (tenant_mgr's marks checked by the
 * caller) with everything in it, then its owner role if it is ours.
 */
void
tm_schematenant_drop(const TmTenant *t, Oid nspoid)
{
	char	   *nspname = get_namespace_name(nspoid);
	int			save_nestlevel;

	tm_check_no_outside_dependents(t, nspoid);

	/* the cascade's list of dropped objects is noise here */
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("client_min_messages", "warning",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	tm_utility(psprintf("DROP SCHEMA %s CASCADE", quote_identifier(nspname)));
	AtEOXact_GUC(true, save_nestlevel);

	tm_login_role_drop(t->object_name, t->name);
	tm_owner_role_drop(t->owner, t->name);
}
