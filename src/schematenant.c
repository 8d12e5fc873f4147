/*-------------------------------------------------------------------------
 *
 * schematenant.c
 *		Schema tenants: a schema of the control database (or of any database
 *		with the extension), built, renamed, detached, attached and dropped.
 *
 * Everything here runs in the current transaction, so a rollback leaves
 * nothing.  The DDL on roles and schemas runs as the extension's owner
 * (spi.c: tm_ddl) for a caller allowed by EXECUTE; migrations and the
 * ledger run as the tenant's owner, restricted.  The caller holds the
 * tenant's lock, except for tm_schematenant_create, which takes it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "tenant_mgr.h"

static List *tm_schematenant_build(TmTenant *t, List *migrations,
								   bool own_role);
static void tm_check_no_outside_dependents(const TmTenant *t, Oid nspoid);

/* An existing schema of that name is someone else's: never adopted. */
static void
tm_check_schema_free(const char *object)
{
	if (OidIsValid(get_namespace_oid(object, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_SCHEMA),
				 errmsg("schema \"%s\" already exists", object),
				 errdetail("It was not created by tenant_mgr, which never adopts an existing schema."),
				 errhint("Choose another tenant name.")));
}

/*
 * Queues the creation of schema tenant t in the caller's transaction, after
 * checking what the launcher would find out later.
 */
void
tm_schematenant_queue(TmTenant *t, const char *metadata, bool own_role)
{
	if (tm_tenant_fetch(t->name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("tenant \"%s\" already exists", t->name)));
	tm_require_control_database();
	if (own_role)
		tm_check_role_free(t->owner);
	tm_check_schema_free(t->object_name);
	tm_job_queue_create(t, metadata, own_role);
}

/*
 * Builds schema tenant t and records it, for the caller (job NULL: a new
 * catalog row) or for a queued job (its "creating" row becomes "ready" and
 * the job "done", in the same transaction, so a crash cannot leave the one
 * without the other).  For a job the build runs as the role that queued it.
 * start is when the request began, for the history.
 */
void
tm_schematenant_create(TmTenant *t, const char *metadata, bool own_role,
					   TmJob *job, instr_time start)
{
	List	   *steps;
	int64		run_id;

	tm_tenant_lock(t->name);
	if (job)
	{
		TmIdentity	saved;

		tm_become(job->requester, 0, &saved);
		steps = tm_schematenant_build(t, tm_migration_list(), own_role);
		tm_restore(&saved);
		tm_tenant_set_ready(t->name, t->object_oid, t->version);
		tm_job_done(job);
	}
	else
	{
		steps = tm_schematenant_build(t, tm_migration_list(), own_role);
		t->state = TM_READY;
		tm_tenant_insert(t, metadata);
	}
	tm_owner_role_grant(t);
	run_id = tm_run_id();
	tm_event_log_steps(run_id, t->name, steps);
	tm_event_log(run_id, t->name, TM_EV_CREATE, 0, TM_EV_OK, NULL,
				 tm_elapsed_ms(start));
}

/*
 * Builds a schema tenant: its owner role (own_role), the schema with
 * tenant_mgr's mark, the ledger, and every migration.  Sets t->object_oid
 * and t->version and returns the steps taken.
 */
static List *
tm_schematenant_build(TmTenant *t, List *migrations, bool own_role)
{
	List	   *steps;
	ListCell   *lc;
	int64		current;

	tm_check_schema_free(t->object_name);
	if (own_role)
		tm_owner_role_create(t);

	tm_ddl(psprintf("CREATE SCHEMA %s AUTHORIZATION %s",
						quote_identifier(t->object_name),
						quote_identifier(t->owner)));
	t->object_oid = get_namespace_oid(t->object_name, false);
	tm_mark("SCHEMA", t->object_name, t, false);

	tm_ledger_create(t);
	steps = tm_migration_plan(t, migrations, PG_INT64_MAX, &current);
	foreach(lc, steps)
	{
		TmStep	   *s = lfirst(lc);

		s->fresh = true;		/* nobody else sees the new schema yet */
		tm_migration_apply(t, s);
		current = s->migration->version;
	}
	t->version = current;
	return steps;
}

/*
 * Points t->schema at the tenant's schema as it is named now, if it carries
 * tenant_mgr's marks, and returns its OID; anything else is never migrated
 * or used.
 */
Oid
tm_schematenant_require(TmTenant *t)
{
	Oid			nspoid = tm_schema_find(t);

	if (!OidIsValid(nspoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tenant \"%s\" has no schema created by tenant_mgr", t->name),
				 errhint("Compare the catalog with reality: SELECT * FROM tenant_mgr.verify().")));
	t->schema = get_namespace_name(nspoid);
	return nspoid;
}

/* The schema of t, wherever it is now; an error when it is gone. */
static Oid
tm_schema_existing(const TmTenant *t)
{
	Oid			nspoid = tm_schema_find(t);

	if (!OidIsValid(nspoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("schema of tenant \"%s\" does not exist", t->name)));
	return nspoid;
}

/* Renames the schema of t to object, marked for tenant new_name. */
void
tm_schematenant_rename(TmTenant *t, const char *object, const char *new_name)
{
	Oid			nspoid = tm_schema_existing(t);
	TmTenant	renamed = *t;

	if (OidIsValid(get_namespace_oid(object, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_SCHEMA),
				 errmsg("schema \"%s\" already exists", object)));
	renamed.name = (char *) new_name;
	tm_rename_object("SCHEMA", get_namespace_name(nspoid), object, &renamed,
					 false);
}

/* Moves the schema of t out of the way: tenant_mgr_detached_<oid>. */
void
tm_schematenant_detach(TmTenant *t)
{
	Oid			nspoid = tm_schematenant_require(t);

	tm_rename_object("SCHEMA", t->schema,
					 psprintf("tenant_mgr_detached_%u", nspoid), NULL, false);
}

/* Gives a detached schema tenant its schema name back. */
void
tm_schematenant_attach(TmTenant *t)
{
	Oid			nspoid = tm_schema_existing(t);

	if (OidIsValid(get_namespace_oid(t->object_name, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_SCHEMA),
				 errmsg("schema \"%s\" already exists", t->object_name)));
	tm_rename_object("SCHEMA", get_namespace_name(nspoid), t->object_name,
					 NULL, false);
}

/*
 * Drops the schema of t, if it carries tenant_mgr's marks, with everything
 * in it, then its login and owner roles if they are tenant_mgr's.  Without
 * such a schema only the roles go, and whatever now has the name is left
 * alone.
 */
void
tm_schematenant_drop(TmTenant *t)
{
	Oid			nspoid = tm_schema_find(t);

	if (!OidIsValid(nspoid))
	{
		if (OidIsValid(get_namespace_oid(t->object_name, true)))
			ereport(NOTICE,
					(errmsg("schema \"%s\" is left in place", t->object_name),
					 errdetail("It does not carry tenant_mgr's security label for the tenant, or has lost its ledger table \"%s\"; only the catalog row of tenant \"%s\" is removed.",
							   TM_LEDGER_NAME, t->name)));
		else
			ereport(NOTICE,
					(errmsg("schema of tenant \"%s\" no longer exists", t->name),
					 errdetail("Only its catalog row is removed.")));
	}
	else
	{
		int			save_nestlevel;

		tm_check_no_outside_dependents(t, nspoid);
		/* the cascade's list of dropped objects is noise here */
		save_nestlevel = NewGUCNestLevel();
		(void) set_config_option("client_min_messages", "warning",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
		tm_ddl(psprintf("DROP SCHEMA %s CASCADE",
							quote_identifier(get_namespace_name(nspoid))));
		AtEOXact_GUC(true, save_nestlevel);
	}
	tm_login_role_drop(t);
	tm_owner_role_drop(t);
}

/*
 * Raises an error listing objects outside the schema that depend on objects
 * inside it: DROP SCHEMA ... CASCADE would take them along, and tenant_mgr
 * touches nothing it did not create.
 */
static void
tm_check_no_outside_dependents(const TmTenant *t, Oid nspoid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(nspoid)};
	StringInfoData list;
	uint64		i;

	tm_user_query("SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, 0)"
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
				  1, types, values);
	if (SPI_processed == 0)
		return;

	initStringInfo(&list);
	for (i = 0; i < SPI_processed && i < 10; i++)
		appendStringInfo(&list, "%s%s", i > 0 ? ", " : "", tm_get_text(i, 1));
	if (SPI_processed > 10)
		appendStringInfoString(&list, ", ...");
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot drop tenant \"%s\" because objects outside its schema depend on it",
					t->name),
			 errdetail("Objects outside schema \"%s\": %s.", t->object_name, list.data),
			 errhint("Drop those objects first; tenant_mgr drops only what it created.")));
}
