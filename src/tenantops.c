/*-------------------------------------------------------------------------
 *
 * tenantops.c
 *		Operations on one tenant, shared by the SQL functions (api.c) and the
 *		customers-table trigger (trigger.c): create, drop, rename, detach,
 *		attach.
 *
 * Each takes the tenant's lock without waiting (catalog.c), so two
 * operations on one tenant fail fast instead of interleaving, checks the
 * catalog row, and hands the object to its kind: schematenant.c or
 * dbtenant.c, which offer the same operations.  Everything runs in the
 * caller's transaction; what PostgreSQL forbids there for database tenants
 * is queued (dbtenant.c).  Each expects an SPI connection.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/acl.h"

#include "tenant_mgr.h"

/* The tenant's lock, then its row; NULL (with a notice) if missing_ok. */
static TmTenant *
tm_lock_and_fetch(const char *name, bool missing_ok)
{
	TmTenant   *t;

	tm_tenant_lock(name);
	t = tm_tenant_fetch(name, missing_ok);
	if (t == NULL)
		ereport(NOTICE,
				(errmsg("tenant \"%s\" does not exist, skipping", name)));
	return t;
}

/* A tenant of that name exists: an error. */
static void
tm_check_no_tenant(const char *name)
{
	if (tm_tenant_fetch(name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("tenant \"%s\" already exists", name)));
}

/*
 * Creates a tenant (see tenant_create); the catalog row tells the result.
 * grantee, when given (a trigger's grant=<role>), is granted the new owner
 * role once the tenant is built.  With wait false, the tenant is only
 * recorded as "creating" and a job queued: no per-tenant lock is taken, so a bulk INSERT through a trigger
 * stays cheap, and a concurrent creation of the same name waits for the
 * other transaction and then fails.  from_trigger: no work may start before
 * the transaction commits (a schema tenant that cannot be built in it is
 * queued instead).
 */
void
tm_create(const char *name, const char *isolation, const char *owner,
		  const char *metadata, bool wait, const char *grantee,
		  bool from_trigger)
{
	TmIsolation kind = tm_isolation_parse(isolation);
	bool		own_role = (owner == NULL);
	char	   *object;
	TmTenant   *t;
	instr_time	start;

	INSTR_TIME_SET_CURRENT(start);
	tm_check_tenant_name(name);
	if (kind == TM_DATABASE && owner != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the owner of a database tenant cannot be chosen"),
				 errdetail("Each database tenant gets an owner role of its own, named like its database.")));
	if (owner != NULL)
		/* the role must exist and the caller must be able to become it */
		check_is_member_of_role(GetUserId(), get_role_oid(owner, false));

	if (grantee != NULL)
		tm_check_grantee(grantee);
	object = tm_object_name(name);
	t = tm_tenant_make(name, kind, object, owner ? owner : object);
	t->grantee = grantee;

	if (!wait && kind == TM_SCHEMA)
	{
		tm_schematenant_queue(t, metadata, own_role);
		return;
	}
	if (wait)
	{
		tm_tenant_lock(name);
		tm_check_no_tenant(name);
	}
	if (kind == TM_DATABASE)
		tm_dbtenant_create(t, metadata, wait);
	else
		tm_schematenant_create(t, metadata, own_role, from_trigger, start);
}

/*
 * Drops a tenant (see tenant_drop).  Returns false when there was no such
 * tenant and if_exists.
 */
bool
tm_drop(const char *name, bool if_exists, bool force)
{
	TmTenant   *t;
	instr_time	start;

	INSTR_TIME_SET_CURRENT(start);
	t = tm_lock_and_fetch(name, if_exists);
	if (t == NULL)
		return false;

	if (t->state == TM_CREATING)
	{
		/* not started yet: the creation is simply called off */
		if (!tm_job_cancel_create(name))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("tenant \"%s\" is still being created", name),
					 errhint("Wait for it with tenant_mgr.tenant_wait('%s'), then drop it.", name)));
	}
	else if (t->isolation == TM_DATABASE)
	{
		/* the launcher drops the database after commit and logs the event */
		tm_dbtenant_drop(t, force);
		tm_tenant_delete(name);
		return true;
	}
	else
		tm_schematenant_drop(t);

	tm_tenant_delete(name);
	tm_event_log(tm_run_id(), name, TM_EV_DROP, 0, TM_EV_OK, NULL,
				 tm_elapsed_ms(start));
	return true;
}

/*
 * Renames a tenant in the caller's transaction: its schema or database, its
 * owner and login roles when tenant_mgr created them, their marks, and the
 * catalog row.  A database being used by other sessions cannot be renamed.
 */
void
tm_rename(const char *name, const char *new_name)
{
	TmTenant   *t;
	char	   *object;
	char	   *owner;
	ErrorData	note;
	instr_time	start;

	INSTR_TIME_SET_CURRENT(start);
	tm_check_tenant_name(new_name);
	/* both names, in a fixed order */
	tm_tenant_lock(strcmp(name, new_name) < 0 ? name : new_name);
	tm_tenant_lock(strcmp(name, new_name) < 0 ? new_name : name);
	t = tm_tenant_fetch(name, false);
	tm_tenant_require_ready(t);
	tm_check_no_tenant(new_name);
	object = tm_object_name(new_name);

	if (t->isolation == TM_DATABASE)
		tm_dbtenant_rename(t, object, new_name);
	else
		tm_schematenant_rename(t, object, new_name);
	owner = tm_owner_role_rename(t, object, new_name);
	tm_login_role_rename(t, object, new_name);
	tm_tenant_rename_row(name, new_name, object, owner);

	/* the history keeps the old name: say where this one comes from */
	memset(&note, 0, sizeof(note));
	note.sqlerrcode = ERRCODE_SUCCESSFUL_COMPLETION;
	note.message = psprintf("renamed from \"%s\"", name);
	tm_event_log(tm_run_id(), new_name, TM_EV_RENAME, 0, TM_EV_OK, &note,
				 tm_elapsed_ms(start));
}

/*
 * Detaches a tenant in the caller's transaction, keeping its data: the
 * schema or database is renamed out of the way (tenant_mgr_detached_<oid>;
 * a database is also closed to connections) and the tenant's state becomes
 * "detached".  tm_attach undoes it, tm_drop finishes it.  Returns false when
 * there was no such tenant and if_exists.
 */
bool
tm_detach(const char *name, bool if_exists, bool force)
{
	TmTenant   *t;
	instr_time	start;

	INSTR_TIME_SET_CURRENT(start);
	t = tm_lock_and_fetch(name, if_exists);
	if (t == NULL)
		return false;
	tm_tenant_require_ready(t);
	if (t->isolation == TM_DATABASE)
		tm_dbtenant_detach(t, force);
	else
		tm_schematenant_detach(t);
	tm_tenant_set_state(name, TM_DETACHED);
	tm_event_log(tm_run_id(), name, TM_EV_DETACH, 0, TM_EV_OK, NULL,
				 tm_elapsed_ms(start));
	return true;
}

/* Gives a detached tenant its schema or database name back. */
void
tm_attach(const char *name)
{
	TmTenant   *t;
	instr_time	start;

	INSTR_TIME_SET_CURRENT(start);
	t = tm_lock_and_fetch(name, false);
	if (t->state != TM_DETACHED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tenant \"%s\" is not detached", name),
				 errdetail("Its state is \"%s\".", tm_state_name(t->state))));
	if (t->isolation == TM_DATABASE)
		tm_dbtenant_attach(t);
	else
		tm_schematenant_attach(t);
	tm_tenant_set_state(name, TM_READY);
	tm_event_log(tm_run_id(), name, TM_EV_ATTACH, 0, TM_EV_OK, NULL,
				 tm_elapsed_ms(start));
}
