/*-------------------------------------------------------------------------
 *
 * marker.c
 *		What makes an object tenant_mgr's: every "is this ours?" rule, and
 *		putting the marks on.
 *
 * A schema is a tenant's when it carries tenant_mgr's ledger table and
 * either has the OID recorded in the catalog at creation, or carries the
 * mark tenant_mgr put on it as a comment, "tenant_mgr tenant <name>" (a
 * dump and restore, or pg_upgrade, gives the schema a new OID but keeps the
 * comment and the ledger).  A database tenant's database and owner role
 * carry the same mark (in pg_shdescription, as they are shared objects); a
 * login role carries "tenant_mgr login <name>".  An object with the right
 * name and no such marks is someone else's, and is never migrated, renamed,
 * dropped or adopted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_shdescription.h"
#include "commands/comment.h"
#include "commands/dbcommands.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "tenant_mgr.h"

/* The mark of a tenant's schema, database and owner role. */
char *
tm_tenant_mark(const char *tenant)
{
	return psprintf(TM_MARK_PREFIX "%s", tenant);
}

/* The mark of a tenant's application login role. */
char *
tm_login_mark(const char *tenant)
{
	return psprintf("tenant_mgr login %s", tenant);
}

/*
 * Returns the comment on a shared object (a database or a role), or NULL.
 * GetComment() reads only pg_description.
 */
static char *
tm_shared_comment(Oid objoid, Oid classoid)
{
	Relation	rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *comment = NULL;

	rel = table_open(SharedDescriptionRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_shdescription_objoid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(objoid));
	ScanKeyInit(&key[1], Anum_pg_shdescription_classoid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(classoid));
	scan = systable_beginscan(rel, SharedDescriptionObjIndexId, true, NULL, 2, key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_shdescription_description,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			comment = TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return comment;
}

/* True if the shared object carries mark. */
static bool
tm_shared_marked(Oid objoid, Oid classoid, const char *mark)
{
	char	   *comment = tm_shared_comment(objoid, classoid);

	return comment != NULL && strcmp(comment, mark) == 0;
}

/*
 * Returns the OID of the tenant's schema, or InvalidOid when there is no
 * schema that tenant_mgr created for it.
 */
Oid
tm_schema_find(const TmTenant *t)
{
	Oid			nspoid;
	char	   *comment;

	/* the schema created, possibly renamed since */
	if (get_namespace_name(t->object_oid) != NULL &&
		OidIsValid(get_relname_relid(TM_LEDGER_NAME, t->object_oid)))
		return t->object_oid;

	/* the same schema after a dump and restore */
	nspoid = get_namespace_oid(t->object_name, true);
	if (!OidIsValid(nspoid) ||
		!OidIsValid(get_relname_relid(TM_LEDGER_NAME, nspoid)))
		return InvalidOid;
	comment = GetComment(nspoid, NamespaceRelationId, 0);
	if (comment == NULL || strcmp(comment, tm_tenant_mark(t->name)) != 0)
		return InvalidOid;
	return nspoid;
}

/*
 * Returns the OID of the tenant's database, or InvalidOid when there is no
 * database that tenant_mgr created for it: the OID recorded at creation, or
 * (after a dump and restore) the database of that name with the tenant's
 * mark.
 */
Oid
tm_database_find(const TmTenant *t)
{
	Oid			dboid;

	if (OidIsValid(t->object_oid) && get_database_name(t->object_oid) != NULL)
		return t->object_oid;
	dboid = get_database_oid(t->object_name, true);
	if (!OidIsValid(dboid) ||
		!tm_shared_marked(dboid, DatabaseRelationId, tm_tenant_mark(t->name)))
		return InvalidOid;
	return dboid;
}

/*
 * True if database dboid is tenant's: it carries the tenant's mark, or is
 * owned by roleid, the tenant's own owner role (a database an interrupted
 * creation left before marking it).
 */
bool
tm_database_is_ours(Oid dboid, const char *tenant, Oid roleid)
{
	return tm_shared_marked(dboid, DatabaseRelationId, tm_tenant_mark(tenant)) ||
		(OidIsValid(roleid) && pg_database_ownercheck(dboid, roleid));
}

/* True if role exists and carries mark. */
bool
tm_role_marked(const char *role, const char *mark)
{
	Oid			roleid = get_role_oid(role, true);

	return OidIsValid(roleid) &&
		tm_shared_marked(roleid, AuthIdRelationId, mark);
}

/* True if role is an owner role tenant_mgr created for tenant. */
bool
tm_role_is_ours(const char *role, const char *tenant)
{
	return tm_role_marked(role, tm_tenant_mark(tenant));
}

/*
 * Puts mark on object, of kind SCHEMA, DATABASE or ROLE, as the current
 * user (who owns it, or has just created it).
 */
void
tm_mark(const char *kind, const char *object, const char *mark)
{
	tm_ddl(psprintf("COMMENT ON %s %s IS %s", kind,
						quote_identifier(object), quote_literal_cstr(mark)));
}

/*
 * Renames an object of kind SCHEMA, DATABASE or ROLE, and puts mark on it
 * under its new name unless mark is NULL.
 */
void
tm_rename_object(const char *kind, const char *old_name, const char *new_name,
				 const char *mark)
{
	if (strcmp(old_name, new_name) != 0)
		tm_ddl(psprintf("ALTER %s %s RENAME TO %s", kind,
							quote_identifier(old_name),
							quote_identifier(new_name)));
	if (mark)
		tm_mark(kind, new_name, mark);
}
