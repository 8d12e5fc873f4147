/*-------------------------------------------------------------------------
 *
 * marker.c
 *		What makes an object tenant_mgr's: every "is this ours?" rule, and
 *		putting the marks on.
 *
 * An object is a tenant's only if it carries tenant_mgr's security label
 * (provider "tenant_mgr"), "tenant <name> <id>" on its schema, database and
 * owner role and "login <name> <id>" on its login role, where the id is the
 * random tenant id of its catalog row.  The label of the schema or database
 * holding the ledger may end in " <version>": the ledger's latest version,
 * rewritten with every ledger row tenant_mgr writes or deletes (ledger.c),
 * so that a tenant deleting its latest ledger row is caught.  A label
 * without a version (1.0's tenants until their next migration, older
 * dumps) says nothing about the ledger.  The library registers the provider,
 * which refuses every label but a superuser's: tenant_mgr sets its labels
 * directly, and pg_dump, pg_restore and pg_upgrade (run as superusers)
 * carry them over, while OIDs change.  So a tenant's own roles can neither
 * forge, move nor remove a label, as they could a comment or their ledger.
 * Recorded OIDs are a fast path, always checked against the label.  A
 * schema must also still hold its ledger to be used as a tenant.
 *
 * The template database (template.c) and its role carry labels of a kind
 * of their own, never a tenant's: "template <version> <digest>" on the
 * database, where the version and the digest of its ledger are rewritten
 * with every ledger row, and "template" on the role owning what is inside.
 *
 * The comment "tenant_mgr tenant <name>" (or "tenant_mgr login <name>")
 * stays on every object for people reading \dn+ or \l+; nothing relies on
 * it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_seclabel.h"
#include "catalog/pg_shdescription.h"
#include "catalog/pg_shseclabel.h"
#include "commands/comment.h"
#include "commands/dbcommands.h"
#include "commands/seclabel.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "tenant_mgr.h"

#define TM_LABEL_PROVIDER "tenant_mgr"

static Oid	tm_find_labeled_as(Oid classid, const TmTenant *t, bool login);

/*
 * Splits a label of ours, "tenant <name> <id> [<version>]" or "login <name>
 * <id>", into its parts (each may be NULL).  *version is -1 when the label
 * has none.  Returns false for anything else.
 */
static bool
tm_label_parse(const char *label, bool *login, char **name, char **id,
			   int64 *version)
{
	char	   *copy;
	char	   *fields[5];
	int			n = 0;
	char	   *tok;
	char	   *save;
	const char *c;

	if (label == NULL)
		return false;
	copy = pstrdup(label);
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
	{
		if (n == lengthof(fields))
			return false;
		fields[n++] = tok;
	}
	/* one blank between fields and none around them, as tenant_mgr writes */
	if (n < 3 || label[0] == ' ' || label[strlen(label) - 1] == ' ' ||
		strstr(label, "  ") != NULL)
		return false;
	if (strcmp(fields[0], "tenant") != 0 && strcmp(fields[0], "login") != 0)
		return false;
	if (n > (strcmp(fields[0], "tenant") == 0 ? 4 : 3))
		return false;
	if (!(fields[1][0] >= 'a' && fields[1][0] <= 'z'))
		return false;
	for (c = fields[1]; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
			return false;
	if (n == 4)
	{
		if (strspn(fields[3], "0123456789") != strlen(fields[3]) ||
			strlen(fields[3]) > 18)
			return false;
	}
	if (login)
		*login = (fields[0][0] == 'l');
	if (name)
		*name = fields[1];
	if (id)
		*id = fields[2];
	if (version)
		*version = n == 4 ? strtoi64(fields[3], NULL, 10) : -1;
	return true;
}

/*
 * Splits a template label, "template" (its role) or "template <version>
 * <digest>" (its database), where digest is TM_TEMPLATE_DIGEST_LEN
 * lower-case hex digits.  *database says which; *version is -1 for the
 * role.  Returns false for anything else.
 */
static bool
tm_template_label_parse(const char *label, bool *database, int64 *version,
						char **digest)
{
	char	   *copy;
	char	   *fields[3];
	int			n = 0;
	char	   *tok;
	char	   *save;

	if (label == NULL)
		return false;
	if (strcmp(label, "template") == 0)
	{
		if (database)
			*database = false;
		if (version)
			*version = -1;
		if (digest)
			*digest = NULL;
		return true;
	}
	copy = pstrdup(label);
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
	{
		if (n == lengthof(fields))
			return false;
		fields[n++] = tok;
	}
	if (n != 3 || strcmp(fields[0], "template") != 0 ||
		strstr(label, "  ") != NULL || label[strlen(label) - 1] == ' ')
		return false;
	if (strspn(fields[1], "0123456789") != strlen(fields[1]) ||
		strlen(fields[1]) > 18)
		return false;
	if (strlen(fields[2]) != TM_TEMPLATE_DIGEST_LEN ||
		strspn(fields[2], "0123456789abcdef") != TM_TEMPLATE_DIGEST_LEN)
		return false;
	if (database)
		*database = true;
	if (version)
		*version = strtoi64(fields[1], NULL, 10);
	if (digest)
		*digest = fields[2];
	return true;
}

/*
 * The label provider's check: only superusers may set or remove a label of
 * provider tenant_mgr by SQL (restores do; tenant_mgr itself sets labels
 * without SQL), and only one of the form tenant_mgr writes.
 */
static void
tm_label_check(const ObjectAddress *object pg_attribute_unused(),
			   const char *seclabel)
{
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set a security label of provider \"%s\"",
						TM_LABEL_PROVIDER),
				 errdetail("These labels say which tenant an object belongs to; only tenant_mgr sets them.")));
	if (seclabel != NULL && !tm_label_parse(seclabel, NULL, NULL, NULL, NULL) &&
		!tm_template_label_parse(seclabel, NULL, NULL, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid security label \"%s\" for provider \"%s\"",
						seclabel, TM_LABEL_PROVIDER),
				 errhint("Labels read \"tenant <name> <id>\", \"tenant <name> <id> <version>\", \"login <name> <id>\", \"template\" or \"template <version> <digest>\".")));
}

/* Registers the label provider; called from _PG_init. */
void
tm_marker_init(void)
{
	register_label_provider(TM_LABEL_PROVIDER, tm_label_check);
}

/* The label of a tenant's objects, or of its login role. */
static char *
tm_label(const char *tenant, const char *id, bool login)
{
	return psprintf("%s %s %s", login ? "login" : "tenant", tenant, id);
}

/* The comment of a tenant's objects, or of its login role, for people. */
static char *
tm_comment(const char *tenant, bool login)
{
	return psprintf("tenant_mgr %s %s", login ? "login" : "tenant", tenant);
}

/*
 * True if label is the label of tenant (with id, or any id when id is NULL:
 * an intent of an earlier version did not record one), with a ledger
 * version or without.
 */
static bool
tm_label_matches(const char *label, const char *tenant, const char *id,
				 bool login)
{
	bool		is_login;
	char	   *name;
	char	   *label_id;

	return tm_label_parse(label, &is_login, &name, &label_id, NULL) &&
		is_login == login && strcmp(name, tenant) == 0 &&
		(id == NULL || strcmp(label_id, id) == 0);
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

/*
 * True if object (classid, objid) carries the label of tenant.  Without an
 * id (a catalog still at version 1.0, whose tenants have none yet, or an
 * object whose catalog row is gone), an object without any label of ours
 * is recognized by the comment version 1.0 went by.
 */
static bool
tm_labeled(Oid classid, Oid objid, const char *tenant, const char *id,
		   bool login)
{
	ObjectAddress addr;
	char	   *label;
	char	   *comment;

	addr.classId = classid;
	addr.objectId = objid;
	addr.objectSubId = 0;
	label = GetSecurityLabel(&addr, TM_LABEL_PROVIDER);
	if (label != NULL || id != NULL)
		return tm_label_matches(label, tenant, id, login);
	comment = classid == NamespaceRelationId ?
		GetComment(objid, classid, 0) : tm_shared_comment(objid, classid);
	return comment != NULL && strcmp(comment, tm_comment(tenant, login)) == 0;
}

/*
 * Finds the object of class classid carrying the label of tenant t, by a
 * scan of pg_seclabel or pg_shseclabel (they have no index on the label):
 * the slow path, after a restore or an upgrade changed its OID.
 */
static Oid
tm_find_labeled(Oid classid, const TmTenant *t)
{
	return tm_find_labeled_as(classid, t, false);
}

/* The same, for the label of t's objects or (login) of its login role. */
static Oid
tm_find_labeled_as(Oid classid, const TmTenant *t, bool login)
{
	bool		shared = (classid != NamespaceRelationId);
	Relation	rel = table_open(shared ? SharedSecLabelRelationId : SecLabelRelationId,
								 AccessShareLock);
	SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	HeapTuple	tup;
	Oid			found = InvalidOid;

	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		TupleDesc	desc = RelationGetDescr(rel);
		bool		isnull;
		Oid			objclass;
		Oid			objoid;
		char	   *provider;
		char	   *objlabel;

		objoid = DatumGetObjectId(heap_getattr(tup, shared ? Anum_pg_shseclabel_objoid : Anum_pg_seclabel_objoid,
											   desc, &isnull));
		objclass = DatumGetObjectId(heap_getattr(tup, shared ? Anum_pg_shseclabel_classoid : Anum_pg_seclabel_classoid,
												 desc, &isnull));
		if (objclass != classid)
			continue;
		provider = TextDatumGetCString(heap_getattr(tup, shared ? Anum_pg_shseclabel_provider : Anum_pg_seclabel_provider,
													desc, &isnull));
		objlabel = TextDatumGetCString(heap_getattr(tup, shared ? Anum_pg_shseclabel_label : Anum_pg_seclabel_label,
													desc, &isnull));
		if (strcmp(provider, TM_LABEL_PROVIDER) == 0 &&
			tm_label_matches(objlabel, t->name, t->id, login))
		{
			found = objoid;
			break;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	/* a tenant without an id yet: its object of that name, by 1.0's comment */
	if (!OidIsValid(found) && t->id == NULL && classid != AuthIdRelationId)
	{
		Oid			objoid = shared ? get_database_oid(t->object_name, true) :
			get_namespace_oid(t->object_name, true);

		if (OidIsValid(objoid) && tm_labeled(classid, objoid, t->name, NULL, false))
			found = objoid;
	}
	return found;
}

/*
 * Returns the OID of the schema carrying the tenant's label, ledger or not,
 * or InvalidOid.
 */
Oid
tm_schema_find_labelled(const TmTenant *t)
{
	if (get_namespace_name(t->object_oid) != NULL &&
		tm_labeled(NamespaceRelationId, t->object_oid, t->name, t->id, false))
		return t->object_oid;
	return tm_find_labeled(NamespaceRelationId, t);
}

/*
 * Returns the OID of the tenant's schema, or InvalidOid when there is no
 * schema that tenant_mgr created for it (its label) still holding its
 * ledger.
 */
Oid
tm_schema_find(const TmTenant *t)
{
	Oid			nspoid = tm_schema_find_labelled(t);

	if (!OidIsValid(nspoid) ||
		!OidIsValid(get_relname_relid(TM_LEDGER_NAME, nspoid)))
		return InvalidOid;
	return nspoid;
}

/*
 * Returns the OID of the tenant's database, or InvalidOid when there is no
 * database that tenant_mgr created for it (its label).
 */
Oid
tm_database_find(const TmTenant *t)
{
	if (OidIsValid(t->object_oid) && get_database_name(t->object_oid) != NULL &&
		tm_labeled(DatabaseRelationId, t->object_oid, t->name, t->id, false))
		return t->object_oid;
	return tm_find_labeled(DatabaseRelationId, t);
}

/*
 * True if database dboid is t's: it carries t's label, or is owned by
 * roleid, t's own owner role (a database an interrupted creation left
 * before labelling it).
 */
bool
tm_database_is_ours(Oid dboid, const TmTenant *t, Oid roleid)
{
	return tm_labeled(DatabaseRelationId, dboid, t->name, t->id, false) ||
		(OidIsValid(roleid) && pg_database_ownercheck(dboid, roleid));
}

/*
 * Returns the name of the role carrying t's login label, or NULL.  A login
 * role keeps its name when its tenant is renamed, so it is found by label.
 */
char *
tm_login_role_find(const TmTenant *t)
{
	Oid			roleid = tm_find_labeled_as(AuthIdRelationId, t, true);

	return OidIsValid(roleid) ? GetUserNameFromId(roleid, false) : NULL;
}

/* The tenant_mgr label of object (classid, objid), or NULL. */
static char *
tm_object_label(Oid classid, Oid objid)
{
	ObjectAddress addr;

	addr.classId = classid;
	addr.objectId = objid;
	addr.objectSubId = 0;
	return GetSecurityLabel(&addr, TM_LABEL_PROVIDER);
}

/*
 * The tenant id in the tenant_mgr label of a schema or database (classid,
 * objid), or NULL.
 */
char *
tm_label_id(Oid classid, Oid objid)
{
	bool		login;
	char	   *id;

	if (!tm_label_parse(tm_object_label(classid, objid),
						&login, NULL, &id, NULL) || login)
		return NULL;
	return id;
}

/*
 * The ledger version in the tenant_mgr label of a schema or database
 * (classid, objid), or -1 when its label has none (or it has no label).
 */
int64
tm_label_version(Oid classid, Oid objid)
{
	char	   *label = tm_object_label(classid, objid);
	int64		version;

	if (!tm_label_parse(label, NULL, NULL, NULL, &version) &&
		!tm_template_label_parse(label, NULL, &version, NULL))
		return -1;
	return version;
}

/*
 * Records version, the latest of its ledger, in the label of t's schema or
 * database (classid, objid), in the current transaction.  An object
 * without t's label (a tenant of a 1.0 catalog) is left alone.
 */
void
tm_label_set_version(Oid classid, Oid objid, const TmTenant *t, int64 version)
{
	ObjectAddress addr;
	char	   *label = tm_object_label(classid, objid);
	char	   *id;

	if (!tm_label_matches(label, t->name, t->id, false))
		return;
	(void) tm_label_parse(label, NULL, NULL, &id, NULL);
	addr.classId = classid;
	addr.objectId = objid;
	addr.objectSubId = 0;
	SetSecurityLabel(&addr, TM_LABEL_PROVIDER,
					 psprintf("%s " INT64_FORMAT, tm_label(t->name, id, false),
							  version));
}

/* True if role exists and is t's owner role (login: its login role). */
bool
tm_role_is_ours(const char *role, const TmTenant *t, bool login)
{
	Oid			roleid = get_role_oid(role, true);

	return OidIsValid(roleid) &&
		tm_labeled(AuthIdRelationId, roleid, t->name, t->id, login);
}

/* The catalog class and OID of object of kind SCHEMA, DATABASE or ROLE. */
static ObjectAddress
tm_object_address(const char *kind, const char *object)
{
	ObjectAddress addr;

	addr.objectSubId = 0;
	if (strcmp(kind, "SCHEMA") == 0)
	{
		addr.classId = NamespaceRelationId;
		addr.objectId = get_namespace_oid(object, false);
	}
	else if (strcmp(kind, "DATABASE") == 0)
	{
		addr.classId = DatabaseRelationId;
		addr.objectId = get_database_oid(object, false);
	}
	else
	{
		addr.classId = AuthIdRelationId;
		addr.objectId = get_role_oid(object, false);
	}
	return addr;
}

/*
 * Marks object, of kind SCHEMA, DATABASE or ROLE, as t's (login: as its
 * login role): the label, set directly, and the comment for people.  The
 * ledger version its label records, if any, stays: the ledger in it is
 * the same.
 */
void
tm_mark(const char *kind, const char *object, const TmTenant *t, bool login)
{
	ObjectAddress addr = tm_object_address(kind, object);
	char	   *label = tm_label(t->name, t->id, login);
	int64		version = login ? -1 : tm_label_version(addr.classId, addr.objectId);

	if (version >= 0)
		label = psprintf("%s " INT64_FORMAT, label, version);
	SetSecurityLabel(&addr, TM_LABEL_PROVIDER, label);
	tm_ddl(psprintf("COMMENT ON %s %s IS %s", kind, quote_identifier(object),
					quote_literal_cstr(tm_comment(t->name, login))));
}

/*
 * Renames an object of kind SCHEMA, DATABASE or ROLE and, unless t is NULL,
 * marks it under its new name for t (whose name may be new, its id stays).
 */
void
tm_rename_object(const char *kind, const char *old_name, const char *new_name,
				 const TmTenant *t, bool login)
{
	if (strcmp(old_name, new_name) != 0)
		tm_ddl(psprintf("ALTER %s %s RENAME TO %s", kind,
						quote_identifier(old_name),
						quote_identifier(new_name)));
	if (t)
	{
		CommandCounterIncrement();
		tm_mark(kind, new_name, t, login);
	}
}


/*
 * True if object (classid, objid) carries a template label: the template
 * database's (then *version and *digest are set, unless NULL) or its
 * role's.
 */
bool
tm_template_labelled(Oid classid, Oid objid, int64 *version, char **digest)
{
	bool		database;
	int64		v;
	char	   *d;

	if (!tm_template_label_parse(tm_object_label(classid, objid), &database,
								 &v, &d))
		return false;
	if (database != (classid == DatabaseRelationId))
		return false;
	if (version)
		*version = v;
	if (digest)
		*digest = d ? pstrdup(d) : NULL;
	return true;
}

/*
 * Returns the OID of the database carrying the template label, setting
 * *version and *digest from it, or InvalidOid.  Found by a scan of
 * pg_shseclabel, never by name: a database merely named like the template
 * is never used.  Of several (none is ever made), the lowest OID.
 */
Oid
tm_template_find(int64 *version, char **digest)
{
	Relation	rel = table_open(SharedSecLabelRelationId, AccessShareLock);
	SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	HeapTuple	tup;
	Oid			found = InvalidOid;

	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_shseclabel form = (Form_pg_shseclabel) GETSTRUCT(tup);
		bool		isnull;
		char	   *provider;
		char	   *objlabel;

		if (form->classoid != DatabaseRelationId ||
			(OidIsValid(found) && form->objoid > found))
			continue;
		provider = TextDatumGetCString(heap_getattr(tup, Anum_pg_shseclabel_provider,
													RelationGetDescr(rel), &isnull));
		objlabel = TextDatumGetCString(heap_getattr(tup, Anum_pg_shseclabel_label,
													RelationGetDescr(rel), &isnull));
		if (strcmp(provider, TM_LABEL_PROVIDER) == 0 &&
			strncmp(objlabel, "template ", 9) == 0 &&
			get_database_name(form->objoid) != NULL &&
			tm_template_labelled(DatabaseRelationId, form->objoid, version, digest))
			found = form->objoid;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Labels the template database (classid DatabaseRelationId) with its
 * ledger's version and digest, or its role (version -1, digest NULL), in
 * the current transaction.
 */
void
tm_template_mark(Oid classid, Oid objid, int64 version, const char *digest)
{
	ObjectAddress addr;

	addr.classId = classid;
	addr.objectId = objid;
	addr.objectSubId = 0;
	SetSecurityLabel(&addr, TM_LABEL_PROVIDER,
					 version < 0 ? "template" :
					 psprintf("template " INT64_FORMAT " %s", version, digest));
}
