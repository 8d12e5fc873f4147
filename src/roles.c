/*-------------------------------------------------------------------------
 *
 * roles.c
 *		Owner and login roles of tenants, and the privilege checks that
 *		decide who may create, migrate and provision tenants.
 *
 * Unless an owner is given, a tenant gets a NOLOGIN owner role of its own,
 * named like its schema or database and carrying the tenant's mark
 * (marker.c); a role without that mark is never adopted, renamed or
 * dropped.  A login role <object>_login, made on request for the
 * application, is a member of the owner role and carries a login mark.
 *
 * Roles are created, renamed and dropped by tenant_mgr itself, as the
 * extension's owner (spi.c: tm_ddl): callers need EXECUTE on tenant_mgr's
 * functions, never CREATEROLE, which reaches superuser on PostgreSQL 15.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "tenant_mgr.h"

/*
 * True if role may still do what it asked tenant_mgr to do (a job, a
 * trigger firing): it holds EXECUTE on function, the SQL function a caller
 * would use for it.  Callers need nothing else: tenant_mgr does the
 * privileged DDL itself.
 */
bool
tm_may(Oid role, const char *function)
{
	/* the last function looked up, valid for the rest of its transaction */
	static const char *cached_function = NULL;
	static LocalTransactionId cached_lxid = InvalidLocalTransactionId;
	static Oid	cached_oid = InvalidOid;

	if (function != cached_function || MyProc->lxid != cached_lxid)
	{
		TmIdentity	saved;

		/* found as the extension's owner: role needs no USAGE on its schema */
		tm_become(tm_catalog_owner(), 0, &saved);
		cached_oid = DatumGetObjectId(DirectFunctionCall1(regprocedurein,
														  CStringGetDatum(function)));
		tm_restore(&saved);
		cached_function = function;
		cached_lxid = MyProc->lxid;
	}
	return pg_proc_aclcheck(cached_oid, role, ACL_EXECUTE) == ACLCHECK_OK;
}

/* For a trigger firing as role: the error when it may not (see tm_may). */
void
tm_check_may(Oid role, const char *function)
{
	if (!tm_may(role, function))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", function),
				 errdetail("The trigger acts as role \"%s\", which may not execute that function.",
						   GetUserNameFromId(role, false)),
				 errhint("Grant EXECUTE on it to that role, or provision through tenant_mgr.provisioning_trigger(..., definer => a role that has it).")));
}

/* A role of that name that tenant_mgr did not create is never adopted. */
void
tm_check_role_free(const char *role)
{
	if (OidIsValid(get_role_oid(role, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("role \"%s\" already exists", role),
				 errdetail("It was not created by tenant_mgr, which never adopts an existing role."),
				 errhint("Choose another tenant name, or pass owner => that role.")));
}

/*
 * Migrations run as the tenant's owner.  An owner role tenant_mgr made for
 * the tenant does what the tenant's migrations say, for any caller allowed
 * to run them (EXECUTE); an owner chosen at creation may be anyone, so only
 * a caller who could act as it may have them run.
 */
void
tm_check_acts_as_owner(const TmTenant *t)
{
	if (tm_role_is_ours(t->owner, t, false))
		return;
	if (!is_member_of_role(GetUserId(), get_role_oid(t->owner, false)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to migrate tenant \"%s\"", t->name),
				 errdetail("Migrations run as the tenant's owner \"%s\", and role \"%s\" is not a member of it.",
						   t->owner, GetUserNameFromId(GetUserId(), false))));
}

/*
 * Returns the OID of t's owner role, created by tenant_mgr, or InvalidOid
 * if there is no role of that name; a role of that name that tenant_mgr did
 * not create is an error unless missing_ok (then InvalidOid too).
 */
Oid
tm_our_role(const TmTenant *t, bool missing_ok)
{
	const char *role = t->owner;
	Oid			roleid = get_role_oid(role, true);

	if (!OidIsValid(roleid) || tm_role_is_ours(role, t, false))
		return roleid;
	if (missing_ok)
		return InvalidOid;
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_OBJECT),
			 errmsg("role \"%s\" already exists", role),
			 errdetail("It was not created by tenant_mgr, which never adopts an existing role."),
			 errhint("Choose another tenant name.")));
	return InvalidOid;			/* keep compiler quiet */
}

/*
 * Creates the NOLOGIN owner role of a new tenant, marked as tenant_mgr's,
 * and lets the current user (the caller, or the role that queued the work)
 * act as it, unless it is a superuser.
 */
void
tm_owner_role_create(const TmTenant *t)
{
	const char *role = t->owner;

	tm_check_role_free(role);
	/* Citus reaches the tenant's worker as this role (citus.c) */
	tm_ddl(psprintf("CREATE ROLE %s %s", quote_identifier(role),
					t->isolation == TM_SCHEMA && tm_citus_mode() ? "LOGIN" : "NOLOGIN"));
	tm_mark("ROLE", role, t, false);
	if (!superuser())
		tm_ddl(psprintf("GRANT %s TO %s", quote_identifier(role),
						quote_identifier(GetUserNameFromId(GetUserId(), false))));
}

/*
 * Renames a tenant's owner role along with the tenant, when it is
 * tenant_mgr's.  Returns the owner's name afterwards.
 */
char *
tm_owner_role_rename(const TmTenant *t, const char *object,
					 const char *new_name)
{
	TmTenant	renamed = *t;

	if (!tm_role_is_ours(t->owner, t, false))
		return t->owner;
	if (OidIsValid(get_role_oid(object, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("role \"%s\" already exists", object)));
	renamed.name = (char *) new_name;
	tm_rename_object("ROLE", t->owner, object, &renamed, false);
	return pstrdup(object);
}

static void
tm_drop_role_stmt(void *arg)
{
	tm_ddl(psprintf("DROP ROLE %s", quote_identifier((const char *) arg)));
}

/*
 * Drops role if it is t's owner role (login: its login role) and nothing
 * depends on it any more; otherwise keeps it with a warning.
 */
static void
tm_role_drop_marked(const char *role, const TmTenant *t, bool login)
{
	const char *tenant = t->name;
	ErrorData  *edata;

	if (!tm_role_is_ours(role, t, login))
		return;
	edata = tm_try(tm_drop_role_stmt, (void *) role);
	if (edata)
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("role \"%s\" of tenant \"%s\" was kept: %s",
						role, tenant, edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0));
}

/* Drops a tenant's owner role if tenant_mgr created it (see above). */
void
tm_owner_role_drop(const TmTenant *t)
{
	tm_role_drop_marked(t->owner, t, false);
}

/* The name of the login role of the tenant whose object is object_name. */
static char *
tm_login_role_name(const char *object_name)
{
	return psprintf("%s_login", object_name);
}

/*
 * Gives a schema tenant's login role its tenant's search_path (the schema,
 * then tenant_mgr.shared_schemas), so that a pool of connections per login
 * role never reaches into another tenant's tables.  schema NULL: a
 * database tenant's, whose default search_path is its own.
 */
static void
tm_login_search_path(const char *role, const char *schema)
{
	if (schema)
		tm_ddl(psprintf("ALTER ROLE %s SET search_path = %s",
						quote_identifier(role), tm_search_path(schema)));
}

/*
 * Creates the LOGIN role an application uses for tenant t: named
 * <object>_login, marked, a member of the owner role (so it has the owner's
 * privileges on the tenant's objects) and, for a database tenant, allowed
 * to connect.  Returns its name; a role tenant_mgr already made for the
 * tenant is returned with its search_path set again.
 */
char *
tm_login_role_create(const TmTenant *t)
{
	char	   *role = tm_login_role_name(t->object_name);
	char	   *existing;

	/* a member of a shared owner would reach every tenant of that owner */
	if (!tm_role_is_ours(t->owner, t, false))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tenant \"%s\" has no owner role of its own", t->name),
				 errdetail("Its owner \"%s\" was chosen at creation and may own other objects; a login role that is a member of it could reach them.",
						   t->owner),
				 errhint("Create the tenant without owner => ..., so that tenant_mgr gives it an owner role of its own.")));
	/* one kept its name through renames; only a new one is measured */
	existing = tm_login_role_of(t);
	if (existing)
	{
		/* one made before 1.1 gets its search_path now */
		tm_login_search_path(existing, t->isolation == TM_SCHEMA ? t->object_name : NULL);
		return existing;
	}
	if (strlen(role) > NAMEDATALEN - 1)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("login role name \"%s\" would be too long", role),
				 errdetail("Role names are limited to %d bytes.", NAMEDATALEN - 1)));
	if (OidIsValid(get_role_oid(role, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("role \"%s\" already exists", role),
				 errdetail("It was not created by tenant_mgr, which never adopts an existing role.")));
	tm_ddl(psprintf("CREATE ROLE %s LOGIN", quote_identifier(role)));
	tm_mark("ROLE", role, t, true);
	tm_login_search_path(role, t->isolation == TM_SCHEMA ? t->object_name : NULL);
	tm_ddl(psprintf("GRANT %s TO %s", quote_identifier(t->owner),
						quote_identifier(role)));
	if (t->isolation == TM_DATABASE)
		tm_ddl(psprintf("GRANT CONNECT ON DATABASE %s TO %s",
							quote_identifier(get_database_name(tm_database_find(t))),
							quote_identifier(role)));
	return role;
}

/*
 * A role a trigger names with grant=<role> (or tenant_create's grant_to)
 * gets each tenant the trigger creates: it must exist, and may not be a
 * superuser (nothing to grant) or a tenant's own role, nor have one among
 * its members, direct or indirect: that tenant would reach the new one.
 */
void
tm_check_grantee(const char *grantee)
{
	Oid			roleid = get_role_oid(grantee, false);
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(roleid)};

	if (superuser_arg(roleid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("grant=%s names a superuser", grantee),
				 errdetail("A superuser reaches every tenant already; grant= is for the application's role.")));
	tm_user_query("WITH RECURSIVE m(role) AS ("
				  "  SELECT $1 UNION SELECT a.member FROM pg_catalog.pg_auth_members a"
				  "   JOIN m ON a.roleid = m.role)"
				  " SELECT r.rolname::pg_catalog.text FROM m"
				  "  JOIN pg_catalog.pg_shseclabel l ON l.objoid = m.role"
				  "   AND l.classoid = 'pg_catalog.pg_authid'::pg_catalog.regclass"
				  "   AND l.provider = 'tenant_mgr'"
				  "  JOIN pg_catalog.pg_roles r ON r.oid = m.role"
				  " ORDER BY 1 LIMIT 1",
				  1, types, values);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot grant tenants to role \"%s\"", grantee),
				 errdetail("Role \"%s\", which tenant_mgr made for a tenant, is that role or a member of it: that tenant would reach the tenants granted to it.",
						   tm_get_text(0, 1)),
				 errhint("Name the application's role, one that no tenant's role is a member of.")));
}

/*
 * Grants t's owner role to t->grantee, if there is one: the application
 * role then uses the tenants it provisions, and no other.  Only a tenant's
 * own owner role is granted, never a shared one.
 */
void
tm_owner_role_grant(const TmTenant *t)
{
	if (t->grantee == NULL)
		return;
	if (!tm_role_is_ours(t->owner, t, false))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tenant \"%s\" has no owner role of its own to grant to \"%s\"",
						t->name, t->grantee)));
	tm_ddl(psprintf("GRANT %s TO %s", quote_identifier(t->owner),
					quote_identifier(t->grantee)));
}

/* The name of t's login role, if tenant_mgr made one, or NULL. */
char *
tm_login_role_of(const TmTenant *t)
{
	char	   *role = tm_login_role_find(t);

	if (role == NULL && t->id == NULL)
	{
		/* before 1.1: the role of the name 1.0 gave it, by its comment */
		role = tm_login_role_name(t->object_name);
		if (!tm_role_is_ours(role, t, true))
			role = NULL;
	}
	return role;
}

/*
 * A tenant's login role follows a rename of its tenant, if it has one: it
 * keeps its name (the application's credentials go on working), and gets
 * the tenant's new name in its label and comment and the new schema in its
 * search_path.
 */
void
tm_login_role_rename(const TmTenant *t, const char *object,
					 const char *new_name)
{
	char	   *role = tm_login_role_of(t);
	TmTenant	renamed = *t;

	if (role == NULL)
		return;
	renamed.name = (char *) new_name;
	tm_mark("ROLE", role, &renamed, true);
	tm_login_search_path(role, t->isolation == TM_SCHEMA ? object : NULL);
}

/* Drops a tenant's login role, if it has one (see above). */
void
tm_login_role_drop(const TmTenant *t)
{
	char	   *role = tm_login_role_of(t);

	if (role)
		tm_role_drop_marked(role, t, true);
}
