/*-------------------------------------------------------------------------
 *
 * marker.c
 *		How tenant_mgr recognizes the schemas it created.
 *
 * A schema is a tenant's when it carries tenant_mgr's ledger table and
 * either has the OID recorded in the catalog at creation, or carries the
 * comment tenant_mgr put on it (a dump and restore, or pg_upgrade, gives
 * the schema a new OID but keeps the comment and the ledger).  A schema
 * with the right name and no such marks is someone else's, and is never
 * migrated, dropped or adopted.  A database tenant's database and owner role
 * carry the same comment (in pg_shdescription, as they are shared objects).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_shdescription.h"
#include "commands/comment.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "tenant_mgr.h"

/* The comment tenant_mgr puts on the schema of a tenant. */
char *
tm_schema_marker(const char *tenant)
{
	return psprintf("tenant_mgr tenant %s", tenant);
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
	if (comment == NULL || strcmp(comment, tm_schema_marker(t->name)) != 0)
		return InvalidOid;
	return nspoid;
}

/*
 * Returns the comment on a shared object (a database or a role), or NULL.
 * GetComment() reads only pg_description.
 */
char *
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
