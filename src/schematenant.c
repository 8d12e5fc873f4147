/*-------------------------------------------------------------------------
 *
 * schematenant.c
 *		Schema tenants: a schema of the control database (or of any database
 *		with the extension), built, renamed, detached, attached and dropped.
 *
 * Everything here runs in the current transaction, so a rollback leaves
 * nothing; a tenant whose migrations need transactions of their own is
 * built outside it (build.c) and claimed here.  The DDL on roles and schemas runs as the extension's owner
 * (spi.c: tm_ddl) for a caller allowed by EXECUTE; migrations and the
 * ledger run as the tenant's owner, restricted.  The caller holds the
 * tenant's lock, except for tm_schematenant_create, which takes it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
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

/* What tm_schematenant_build_cb builds, and the steps it took. */
typedef struct TmBuildArgs
{
	TmTenant   *tenant;
	List	   *migrations;
	bool		own_role;
	List	   *steps;
} TmBuildArgs;

static void
tm_schematenant_build_cb(void *arg)
{
	TmBuildArgs *b = arg;

	b->steps = tm_schematenant_build(b->tenant, b->migrations, b->own_role);
}

/*
 * Builds schema tenant t in the current transaction, in a subtransaction:
 * returns true with *steps set, or false, with nothing left, when a
 * migration needs a transaction of its own (build.c) or when
 * tenant_mgr.build_in_transaction is off.  Any other error is raised.
 */
static bool
tm_schematenant_build_here(TmTenant *t, List *migrations, bool own_role,
						   List **steps)
{
	TmBuildArgs b = {t, migrations, own_role, NIL};
	ErrorData  *edata;

	/* Citus makes tenant tables only of top-level statements: build.c */
	if ((!tm_build_in_transaction || tm_citus_mode()) && tm_catalog_has_runs())
		return false;
	edata = tm_try(tm_schematenant_build_cb, &b);

	if (edata != NULL)
	{
		/* a 1.0 catalog has no intents for schemas: nothing to fall back on */
		if (!tm_build_needs_own_transactions(edata->sqlerrcode) ||
			!tm_catalog_has_runs())
			ReThrowError(edata);
		ereport(DEBUG1,
				(errmsg_internal("tenant \"%s\" is built outside this transaction: %s",
								 t->name, edata->message)));
		return false;
	}
	*steps = b.steps;
	return true;
}

/*
 * Builds schema tenant t through an executor, each migration committed on
 * its own (build.c), under an intent naming this transaction: if it
 * aborts, the launcher removes the tenant.  Returns the steps taken.
 */
static List *
tm_schematenant_build_outside(TmTenant *t, List *migrations, bool own_role)
{
	TmExecRun  *run = tm_exec_prepare(TM_EXEC_BUILD_SCHEMA, MyDatabaseId, t,
									  migrations);
	List	   *steps;

	run->task->xid = U64FromFullTransactionId(GetTopFullTransactionId());
	run->task->own_role = own_role;
	tm_wake_at_abort();
	tm_exec_run(run);
	tm_exec_raise(run);
	t->object_oid = run->task->result_oid;
	t->schema = t->object_name;
	t->version = run->task->version;
	steps = tm_exec_steps(run->task, migrations);
	tm_pause_point("create:after-build");
	/* claimed: this transaction's commit keeps it */
	tm_intent_delete(run->task->intent);
	tm_exec_release(run);
	return steps;
}

/* After a build: the owner granted where asked, and the history. */
static void
tm_schematenant_built(TmTenant *t, List *steps, instr_time start)
{
	int64		run_id;

	tm_owner_role_grant(t);
	run_id = tm_run_id();
	tm_event_log_steps(run_id, t->name, steps);
	tm_event_log(run_id, t->name, TM_EV_CREATE, 0, TM_EV_OK, NULL,
				 tm_elapsed_ms(start));
}

/*
 * Creates schema tenant t for the caller, in its transaction: a spare of
 * the warm pool renamed to it (pool.c), else built here when every
 * migration can share the transaction, else built outside by an executor
 * and claimed here, or, with queue_instead (a trigger, which never starts
 * work before its transaction commits), queued.  start is when the
 * request began, for the history.
 */
void
tm_schematenant_create(TmTenant *t, const char *metadata, bool own_role,
					   bool queue_instead, instr_time start)
{
	List	   *migrations = tm_migration_list();
	List	   *steps;

	tm_tenant_lock(t->name);
	if (own_role && tm_pool_claim(t, migrations, &steps))
		;						/* a spare from the warm pool */
	else if (!tm_schematenant_build_here(t, migrations, own_role, &steps))
	{
		if (queue_instead)
		{
			ereport(NOTICE,
					(errmsg("creation of tenant \"%s\" is queued", t->name),
					 tm_citus_mode() ?
					 errdetail("In Citus mode tenants are built outside the caller's transaction, which starts once this transaction commits.") :
					 errdetail("Its migrations need transactions of their own, which start once this transaction commits.")));
			tm_schematenant_queue(t, metadata, own_role);
			return;
		}
		steps = tm_schematenant_build_outside(t, migrations, own_role);
	}
	tm_pause_point("create:before-record");
	t->state = TM_READY;
	tm_tenant_insert(t, metadata);
	tm_schematenant_built(t, steps, start);
}

/*
 * For a queued create, in a transaction: builds schema tenant t as the
 * role that queued it and records it (its "creating" row becomes "ready"
 * and the job "done" in the same transaction, so a crash cannot leave the
 * one without the other).  Returns false, having changed nothing, when the
 * tenant must be built outside instead (tm_schematenant_record_job then
 * records it): its migrations need transactions of their own, or an
 * earlier attempt of the job began such a build.
 */
bool
tm_schematenant_create_job(TmTenant *t, TmJob *job, List *migrations)
{
	TmIdentity	saved;
	List	   *steps;
	bool		built;

	tm_tenant_lock(t->name);
	/* a build left it under its own name (looked up first: a label scan costs) */
	t->object_oid = get_namespace_oid(t->object_name, true);
	if (OidIsValid(t->object_oid) && OidIsValid(tm_schema_find(t)))
		return false;
	tm_become(job->requester, 0, &saved);
	built = (job->own_role && tm_pool_claim(t, migrations, &steps)) ||
		tm_schematenant_build_here(t, migrations, job->own_role, &steps);
	tm_restore(&saved);
	if (built)
		tm_schematenant_record_job(t, job, steps);
	return built;
}

/* Records a queued create's tenant as built, in the current transaction. */
void
tm_schematenant_record_job(TmTenant *t, TmJob *job, List *steps)
{
	tm_pause_point("job:before-record");
	tm_tenant_set_ready(t->name, t->object_oid, t->version);
	tm_job_done(job);
	tm_schematenant_built(t, steps, job->started);
}

/*
 * Makes what a schema tenant has before any migration, in the current
 * transaction: its owner role (own_role, unless one of t's is there
 * already), the schema with tenant_mgr's mark, and, with ledger, the
 * ledger.  Sets t->object_oid and t->schema.  A schema of that name is an
 * error.
 */
void
tm_schematenant_make(TmTenant *t, bool own_role, bool ledger)
{
	char	   *sql;

	tm_check_schema_free(t->object_name);
	/* a role of that name not made for t is refused by tm_owner_role_create */
	if (own_role && !OidIsValid(tm_our_role(t, true)))
		tm_owner_role_create(t);
	tm_pause_point("schema:after-role");
	sql = psprintf("CREATE SCHEMA %s AUTHORIZATION %s",
				   quote_identifier(t->object_name), quote_identifier(t->owner));
	if (tm_citus_mode())
		tm_citus_create_schema(sql);	/* a distributed schema */
	else
		tm_ddl(sql);
	t->object_oid = get_namespace_oid(t->object_name, false);
	t->schema = t->object_name;
	tm_mark("SCHEMA", t->object_name, t, false);
	tm_pause_point("schema:after-schema");
	if (ledger)
	{
		tm_ledger_create(t);
		tm_pause_point("schema:after-ledger");
	}
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

	tm_schematenant_make(t, own_role, true);
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
		tm_pause_point("drop:after-schema");
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
