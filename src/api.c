/*-------------------------------------------------------------------------
 *
 * api.c
 *		SQL-callable tenant functions: tenant_create (and its overload
 *		with grant_to), tenant_migrate, tenant_drop, tenant_rename,
 *		tenant_detach, tenant_attach, tenant_login_role, tenant_use and
 *		tenant_connection.
 *
 * Thin wrappers: each checks its arguments, opens an SPI connection and
 * calls the operation (tenantops.c), the migration engine (fleet.c) or, for
 * the two that only read a tenant, does the little work itself.  The
 * migrations, the registry and verify() have their own files.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "nodes/parsenodes.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "tenant_mgr.h"

PG_FUNCTION_INFO_V1(tenant_create);
PG_FUNCTION_INFO_V1(tenant_create_grant);
PG_FUNCTION_INFO_V1(tenant_migrate);
PG_FUNCTION_INFO_V1(run_cancel);
PG_FUNCTION_INFO_V1(run_wait);
PG_FUNCTION_INFO_V1(tenant_drop);
PG_FUNCTION_INFO_V1(tenant_use);
PG_FUNCTION_INFO_V1(tenant_rename);
PG_FUNCTION_INFO_V1(tenant_detach);
PG_FUNCTION_INFO_V1(tenant_attach);
PG_FUNCTION_INFO_V1(tenant_login_role);
PG_FUNCTION_INFO_V1(tenant_connection);
PG_FUNCTION_INFO_V1(tenant_move);

/* Returns text argument argno as a C string; NULL is an error. */
static char *
tm_arg_cstring(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * Raises an error if argument argno, one with a default, is NULL: NULL is
 * not its default, and guessing what it means could do what was not asked.
 */
static void
tm_arg_not_null(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what),
				 errhint("Leave the argument out to use its default.")));
}

/* Returns boolean argument argno, one with a default; NULL is an error. */
static bool
tm_arg_bool(FunctionCallInfo fcinfo, int argno, const char *what)
{
	tm_arg_not_null(fcinfo, argno, what);
	return PG_GETARG_BOOL(argno);
}

/*
 * Creates a tenant from the arguments of tenant_create: the name first,
 * isolation, owner, metadata and wait from position rest on.  Returns its
 * catalog row.
 */
static Datum
tm_create_from_args(FunctionCallInfo fcinfo, int rest, const char *grantee)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	char	   *isolation = tm_arg_cstring(fcinfo, rest, "isolation");
	char	   *owner = PG_ARGISNULL(rest + 1) ? NULL :
		pstrdup(NameStr(*PG_GETARG_NAME(rest + 1)));
	char	   *metadata;
	bool		wait = tm_arg_bool(fcinfo, rest + 3, "wait");
	Jsonb	   *jb;
	Datum		result;

	tm_arg_not_null(fcinfo, rest + 2, "tenant metadata");
	jb = PG_GETARG_JSONB_P(rest + 2);
	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant metadata must be a JSON object")));
	metadata = JsonbToCString(NULL, &jb->root, VARSIZE(jb));

	tm_spi_connect();
	tm_create(name, isolation, owner, metadata, wait, grantee, false);
	result = tm_tenant_row(name);
	tm_spi_finish();
	return result;
}

/*
 * tenant_create(name, isolation, owner, metadata, wait) returns tenant_mgr.tenant
 *
 * A schema tenant is created in the caller's transaction.  A database
 * tenant is created by executors (dbtenant.c).  Either is only queued, for
 * the launcher to create after commit, when not wait.
 */
Datum
tenant_create(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(tm_create_from_args(fcinfo, 1, NULL));
}

/*
 * tenant_create(name, grant_to, isolation, owner, metadata, wait) returns
 * tenant_mgr.tenant
 *
 * The same, and grant_to, the application's role, is granted the new
 * tenant's owner role (also when the launcher builds it later), as a
 * trigger's grant=<role> does.  The caller must be able to act as grant_to
 * (as for owner): granting is acting for it.  grant_to may be no superuser
 * and no tenant's role, nor have one among its members (roles.c).  Queued
 * work re-checks EXECUTE on the plain tenant_create, so the caller must hold
 * that too.
 */
Datum
tenant_create_grant(PG_FUNCTION_ARGS)
{
	Oid			grantee;
	char	   *grantee_name;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("grant_to must not be null"),
				 errhint("Leave it out to grant nothing.")));
	grantee = PG_GETARG_OID(1);
	grantee_name = GetUserNameFromId(grantee, false);
	if (!tm_may(GetUserId(), TM_FN_CREATE))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", TM_FN_CREATE),
				 errdetail("tenant_create with grant_to is tenant_create and a grant.")));
	if (superuser_arg(grantee))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("grant_to must not be a superuser"),
				 errdetail("A superuser reaches every tenant already; grant_to is for the application's role.")));
	if (!is_member_of_role(GetUserId(), grantee))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to grant tenant \"%s\" to role \"%s\"",
						tm_arg_cstring(fcinfo, 0, "tenant name"), grantee_name),
				 errdetail("Only roles that can act as role \"%s\" may grant it tenants.",
						   grantee_name)));
	if (!PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("grant_to needs a tenant with an owner role of its own"),
				 errdetail("A member of an owner chosen with owner => could reach every tenant that role owns."),
				 errhint("Leave out owner, or grant that role yourself.")));
	PG_RETURN_DATUM(tm_create_from_args(fcinfo, 2, grantee_name));
}

/*
 * tenant_migrate(name, target, stop_on_error, wait, canary, names, pattern,
 *				  metadata, dry_run) returns setof record
 *
 * One tenant, or every tenant (or a subset) when name is null: fleet.c.
 */
Datum
tenant_migrate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	TmRunOptions opts;

	memset(&opts, 0, sizeof(opts));
	opts.has_target = !PG_ARGISNULL(1);
	opts.target = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1);
	opts.stop_on_error = tm_arg_bool(fcinfo, 2, "stop_on_error");
	opts.wait = true;
	/* 1.0's tenant_migrate had the first three arguments only */
	if (PG_NARGS() >= 9)
	{
		opts.wait = tm_arg_bool(fcinfo, 3, "wait");
		tm_arg_not_null(fcinfo, 4, "canary");
		opts.canary = PG_GETARG_INT32(4);
		opts.names = PG_ARGISNULL(5) ? NULL : PG_GETARG_ARRAYTYPE_P(5);
		opts.pattern = PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6));
		opts.metadata = PG_ARGISNULL(7) ? NULL :
			DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(7)));
		opts.dry_run = tm_arg_bool(fcinfo, 8, "dry_run");
	}

	InitMaterializedSRF(fcinfo, 0);
	tm_spi_connect();
	tm_fleet_migrate(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
					 &opts, rsinfo);
	tm_spi_finish();
	return (Datum) 0;
}

/*
 * CALL run_wait(run_id, timeout, INOUT state)
 *
 * Waits until a fleet run is over (or the timeout has passed) and returns
 * its state.  A procedure, called outside a transaction block, so that it
 * can wait without holding a snapshot: a run's CREATE INDEX CONCURRENTLY
 * waits for every older snapshot of its database.
 */
Datum
run_wait(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = CurrentMemoryContext;
	int64		timeout_ms = 0;
	char	   *state;
	TupleDesc	tupdesc;
	Datum		value;
	bool		isnull = false;

	if (!fcinfo->context || !IsA(fcinfo->context, CallContext) ||
		castNode(CallContext, fcinfo->context)->atomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("run_wait can only be called with CALL outside a transaction block"),
				 errhint("It commits while it waits, so that the run need not wait for it.")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("run id must not be null")));
	if (!PG_ARGISNULL(1))
	{
		Interval   *iv = PG_GETARG_INTERVAL_P(1);

		timeout_ms = iv->time / 1000 +
			((int64) iv->month * DAYS_PER_MONTH + iv->day) * SECS_PER_DAY * 1000;
		if (timeout_ms <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("timeout must be positive")));
	}
	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	state = tm_run_wait_state(PG_GETARG_INT64(0), timeout_ms, cxt);
	tm_spi_finish();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "run_wait must return a row");
	value = CStringGetTextDatum(state);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  &value, &isnull)));
}

/*
 * run_cancel(run_id) returns bool
 *
 * Asks a fleet run to stop, once the caller commits: its executors finish
 * the migration they are in and take no more tenants.
 */
Datum
run_cancel(PG_FUNCTION_ARGS)
{
	bool		cancelled;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("run id must not be null")));
	tm_spi_connect();
	cancelled = tm_run_cancel(PG_GETARG_INT64(0));
	tm_spi_finish();
	PG_RETURN_BOOL(cancelled);
}

/*
 * tenant_drop(name, if_exists, force) returns bool
 *
 * Drops the schema only if it carries tenant_mgr's label (marker.c), then
 * its owner role if tenant_mgr created it.  If there is no such schema, the
 * catalog row goes and whatever now has the name is left alone.  A
 * database tenant is detached in the caller's transaction and dropped by
 * the launcher after commit (dbtenant.c); force terminates other sessions
 * using it.
 */
Datum
tenant_drop(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	bool		if_exists = tm_arg_bool(fcinfo, 1, "if_exists");
	bool		force = tm_arg_bool(fcinfo, 2, "force");
	bool		dropped;

	tm_spi_connect();
	dropped = tm_drop(name, if_exists, force);
	tm_spi_finish();
	PG_RETURN_BOOL(dropped);
}

/*
 * tenant_rename(name, new_name) returns tenant_mgr.tenant
 */
Datum
tenant_rename(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	char	   *new_name = tm_arg_cstring(fcinfo, 1, "new tenant name");
	Datum		result;

	tm_spi_connect();
	tm_rename(name, new_name);
	result = tm_tenant_row(new_name);
	tm_spi_finish();
	PG_RETURN_DATUM(result);
}

/*
 * tenant_detach(name, if_exists, force) returns bool
 */
Datum
tenant_detach(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	bool		if_exists = tm_arg_bool(fcinfo, 1, "if_exists");
	bool		force = tm_arg_bool(fcinfo, 2, "force");
	bool		detached;

	tm_spi_connect();
	detached = tm_detach(name, if_exists, force);
	tm_spi_finish();
	PG_RETURN_BOOL(detached);
}

/*
 * tenant_attach(name) returns tenant_mgr.tenant
 */
Datum
tenant_attach(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	Datum		result;

	tm_spi_connect();
	tm_attach(name);
	result = tm_tenant_row(name);
	tm_spi_finish();
	PG_RETURN_DATUM(result);
}

/*
 * tenant_login_role(name) returns name
 *
 * Creates (or returns) the tenant's LOGIN role for the application:
 * <object>_login, a member of the tenant's owner role (roles.c).
 */
Datum
tenant_login_role(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	TmTenant   *t;
	char	   *role;

	tm_spi_connect();
	tm_tenant_lock(name);
	t = tm_tenant_fetch(name, false);
	tm_tenant_require_ready(t);
	if (t->isolation == TM_DATABASE)
		tm_require_control_database();
	role = tm_login_role_create(t);
	tm_spi_finish();
	PG_RETURN_DATUM(DirectFunctionCall1(namein, CStringGetDatum(role)));
}

/*
 * tenant_use(name, is_local) returns text
 *
 * Sets search_path to the tenant's schema followed by the shared schemas,
 * for the transaction (is_local, the default since 1.1) or the session.
 * Returns the new search_path.  Behind a pooler in transaction mode a
 * session's search_path stays on the server connection for the next
 * client, so the transaction is the default, and outside a transaction
 * block, where it would last only for this statement, it is an error.
 */
Datum
tenant_use(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	bool		is_local = tm_arg_bool(fcinfo, 1, "is_local");
	TmTenant   *t;
	char	   *path;

	tm_spi_connect();
	t = tm_tenant_fetch(name, false);
	if (t->isolation != TM_SCHEMA)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("tenant \"%s\" is a database tenant", name),
				 errhint("Connect to database \"%s\" instead.", t->object_name)));
	tm_tenant_require_ready(t);
	if (pg_namespace_aclcheck(tm_schematenant_require(t), GetUserId(),
							  ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to use tenant \"%s\"", name),
				 errdetail("Role \"%s\" has no USAGE privilege on schema \"%s\".",
						   GetUserNameFromId(GetUserId(), false), t->schema),
				 errhint("Use the tenant's login role (tenant_mgr.tenant_login_role), or a member of its owner \"%s\".",
						 t->owner)));
	if (is_local && !IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_NO_ACTIVE_SQL_TRANSACTION),
				 errmsg("tenant_use() outside a transaction block would last only for this statement"),
				 errhint("Call it after BEGIN, so that it holds until COMMIT, or pass is_local => false to set the search_path of the whole session (never behind a pooler in transaction mode).")));
	path = tm_search_path(t->schema);
	(void) set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION,
							 is_local ? GUC_ACTION_LOCAL : GUC_ACTION_SET,
							 true, 0, false);
	tm_spi_finish();
	PG_RETURN_TEXT_P(cstring_to_text(GetConfigOption("search_path", false, false)));
}

/*
 * tenant_connection(name) returns (database, schema, login_role, search_path)
 *
 * What a client needs to reach a ready tenant: the database to connect to,
 * the schema its tables are in, the login role tenant_mgr made for it (NULL
 * if none) and, for a schema tenant, the search_path to use.  Never a
 * secret: passwords are the DBA's business.
 */
Datum
tenant_connection(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	TupleDesc	desc;
	TmTenant   *t;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	char	   *login;
	HeapTuple	tup;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tm_spi_connect();
	t = tm_tenant_fetch(name, false);
	tm_tenant_require_ready(t);
	login = tm_login_role_of(t);
	if (t->isolation == TM_SCHEMA)
	{
		(void) tm_schematenant_require(t);
		values[0] = tm_name_datum(get_database_name(MyDatabaseId));
		values[1] = tm_name_datum(t->schema);
		values[3] = CStringGetTextDatum(tm_search_path(t->schema));
	}
	else
	{
		values[0] = tm_name_datum(get_database_name(tm_dbtenant_require(t)));
		values[1] = tm_name_datum("public");
		nulls[3] = true;
	}
	if (login)
		values[2] = tm_name_datum(login);
	else
		nulls[2] = true;
	tm_spi_finish();
	tup = heap_form_tuple(BlessTupleDesc(desc), values, nulls);
	PG_RETURN_DATUM(HeapTupleGetDatum(tup));
}

/*
 * tenant_move(name, node, transfer_mode) returns text
 *
 * Citus mode: moves a schema tenant to another worker node (citus.c) and
 * returns the node.
 */
Datum
tenant_move(PG_FUNCTION_ARGS)
{
	char	   *name = tm_arg_cstring(fcinfo, 0, "tenant name");
	char	   *node = tm_arg_cstring(fcinfo, 1, "node");
	char	   *mode = tm_arg_cstring(fcinfo, 2, "transfer_mode");

	tm_spi_connect();
	tm_citus_move(name, node, mode);
	tm_spi_finish();
	PG_RETURN_TEXT_P(cstring_to_text(node));
}
