/*-------------------------------------------------------------------------
 *
 * citus.c
 *		Citus mode: schema tenants as distributed schemas of Citus
 *		schema-based sharding, each placed on one worker node.
 *
 * tenant_mgr stays the control plane on the Citus coordinator; Citus does
 * the sharding.  In Citus mode (tenant_mgr.citus on and the citus
 * extension in the database) a schema tenant's schema is created as a
 * distributed schema, and every statement of its migrations that creates a
 * table runs top-level (spi.c: tm_sql_restricted_toplevel), which is when
 * Citus turns a table of a distributed schema into a tenant table placed
 * with the schema's others.  Schema tenants are then always built outside
 * the caller's transaction (build.c), whose commit only claims them.
 *
 * Citus reaches a tenant's shards by connecting to its worker as the
 * current user, so a tenant's owner role, which migrations run as, must be
 * able to log in there: in Citus mode it is created LOGIN (roles.c), and
 * Citus propagates it to the workers.
 *
 * Nothing here needs Citus's headers: Citus is driven through its SQL
 * functions and catalogs (pg_dist_*), by SPI, as the catalog's owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "tenant_mgr.h"

PG_FUNCTION_INFO_V1(tenant_placement);

/*
 * True in Citus mode: tenant_mgr.citus is on and the citus extension is
 * installed in this database.  Needs a transaction.
 */
bool
tm_citus_mode(void)
{
	return tm_use_citus && OidIsValid(get_extension_oid("citus", true));
}

/*
 * Raises an error unless in Citus mode; what names the call that needs it.
 */
static void
tm_citus_require(const char *what)
{
	if (!tm_citus_mode())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s needs Citus mode", what),
				 errdetail("Citus mode is on when tenant_mgr.citus is on and the citus extension is installed in this database."),
				 errhint("See \"Scaling out\" in tenant_mgr's README.")));
}

/*
 * Runs tenant_mgr's CREATE SCHEMA of a schema tenant (tm_ddl) with Citus's
 * schema-based sharding on, so that the schema is a distributed one.
 */
void
tm_citus_create_schema(const char *sql)
{
	int			save_nestlevel = NewGUCNestLevel();

	(void) set_config_option("citus.enable_schema_based_sharding", "on",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	tm_ddl(sql);
	AtEOXact_GUC(true, save_nestlevel);
}

/*
 * The statements of a migration Citus must see top-level: those that create
 * a table or move one into the schema.  None of them can end the
 * transaction.
 */
static bool
tm_citus_toplevel_stmt(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_CreateStmt:
			return true;
		case T_CreateTableAsStmt:
			return ((CreateTableAsStmt *) stmt)->objtype == OBJECT_TABLE;
		case T_AlterObjectSchemaStmt:
			return ((AlterObjectSchemaStmt *) stmt)->objectType == OBJECT_TABLE;
		default:
			return false;
	}
}

/*
 * Runs SQL in a schema tenant in Citus mode, as tm_sql_restricted would,
 * with the statements that create tables top-level.
 */
void
tm_citus_run_in_tenant(Oid role, const char *search_path, const char *sql)
{
	/*
	 * Citus keeps a connection per worker and per user after each
	 * transaction: an executor migrating many tenants, each as its own
	 * owner, would pile up one per tenant on the workers until their
	 * connection slots run out.  Executors keep none.
	 */
	if (IsBackgroundWorker)
		SetConfigOption("citus.max_cached_conns_per_worker", "0",
						PGC_USERSET, PGC_S_SESSION);
	tm_sql_restricted_toplevel(role, search_path, NULL, sql,
							   tm_citus_toplevel_stmt);
}

/*
 * True for the trigger Citus puts on every table it distributes: internal,
 * after TRUNCATE, for each statement, calling pg_catalog's
 * citus_truncate_trigger (no role can create an internal trigger).
 */
bool
tm_citus_trigger(Oid tgfoid, bool internal, int16 tgtype)
{
	char	   *fn;

	if (!internal || tgtype != (TRIGGER_TYPE_TRUNCATE | TRIGGER_TYPE_AFTER) ||
		get_func_namespace(tgfoid) != PG_CATALOG_NAMESPACE)
		return false;
	fn = get_func_name(tgfoid);
	return fn != NULL && strcmp(fn, "citus_truncate_trigger") == 0;
}

/*
 * Returns what is wrong with the placement of a schema tenant's schema
 * nspoid, as pairs of problem and detail: a schema Citus does not
 * distribute, tables of it that stayed on the coordinator.
 */
List *
tm_citus_verify_schema(Oid nspoid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(nspoid)};
	List	   *problems = NIL;
	uint64		i;

	tm_catalog_exec("SELECT count(*) FROM pg_catalog.pg_dist_schema WHERE schemaid = $1",
					1, types, values, NULL, SPI_OK_SELECT);
	if (tm_get_int64(0, 1) == 0)
	{
		char	   *detail = psprintf("schema \"%s\" is not a distributed schema of Citus",
									  get_namespace_name(nspoid));

		return lappend(list_make1(pstrdup("not_distributed")), detail);
	}

	/* every table, partitions included, a tenant table of the schema */
	tm_catalog_exec("SELECT c.relname::pg_catalog.text FROM pg_catalog.pg_class c"
					" WHERE c.relnamespace = $1 AND c.relkind IN ('r', 'p')"
					"   AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p"
					"                     JOIN pg_catalog.pg_dist_schema s"
					"                       ON s.colocationid = p.colocationid"
					"                    WHERE p.logicalrelid = c.oid AND s.schemaid = $1)"
					" ORDER BY 1",
					1, types, values, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *detail = psprintf("table \"%s\" is not a tenant table of Citus: it stays on the coordinator",
									  tm_get_text(i, 1));

		problems = lappend(lappend(problems, pstrdup("local_table")), detail);
	}
	return problems;
}

/* Splits 'host:port' at its last colon; an error if it is not that. */
static void
tm_citus_parse_node(const char *node, char **host, int32 *port)
{
	const char *colon = strrchr(node, ':');
	char	   *end;
	long		p;

	if (colon == NULL || colon == node || colon[1] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid node \"%s\"", node),
				 errhint("Name a node as host:port, as tenant_mgr.placement shows it.")));
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || p < 1 || p > 65535)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid port in node \"%s\"", node),
				 errhint("Name a node as host:port, as tenant_mgr.placement shows it.")));
	*host = pnstrdup(node, colon - node);
	*port = (int32) p;
}

/*
 * The node ('host:port') holding the shards of the distributed schema
 * nspoid, or NULL when it has none.
 */
static char *
tm_citus_schema_node(Oid nspoid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(nspoid)};

	tm_catalog_exec("SELECT n.nodename || ':' || n.nodeport"
					"  FROM pg_catalog.pg_dist_schema s"
					"  JOIN pg_catalog.pg_dist_partition p ON p.colocationid = s.colocationid"
					"  JOIN pg_catalog.pg_dist_shard d ON d.logicalrelid = p.logicalrelid"
					"  JOIN pg_catalog.pg_dist_placement l ON l.shardid = d.shardid"
					"  JOIN pg_catalog.pg_dist_node n ON n.groupid = l.groupid AND n.noderole = 'primary'"
					" WHERE s.schemaid = $1 LIMIT 1",
					1, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0 ? tm_get_text(0, 1) : NULL;
}

/*
 * Moves schema tenant name, all its tables together, to the worker node
 * ('host:port') with citus_schema_move, in the current transaction, under
 * the tenant's lock.  mode is Citus's shard transfer mode.  Expects an SPI
 * connection.
 */
void
tm_citus_move(const char *name, const char *node, const char *mode)
{
	Oid			types[4] = {OIDOID, TEXTOID, INT4OID, TEXTOID};
	Datum		values[4];
	char	   *host;
	char	   *current;
	int32		port;
	TmTenant   *t;
	Oid			nspoid;

	tm_citus_require("tenant_move");
	tm_citus_parse_node(node, &host, &port);
	if (strcmp(mode, "auto") != 0 && strcmp(mode, "force_logical") != 0 &&
		strcmp(mode, "block_writes") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid transfer mode \"%s\"", mode),
				 errhint("Use block_writes, auto or force_logical.")));

	tm_tenant_lock(name);
	t = tm_tenant_fetch(name, false);
	if (t->isolation != TM_SCHEMA)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tenant \"%s\" is a database tenant", name),
				 errdetail("Database tenants stay on the coordinator; only schema tenants are placed on Citus workers.")));
	tm_tenant_require_ready(t);
	nspoid = tm_schematenant_require(t);

	values[0] = ObjectIdGetDatum(nspoid);
	values[1] = CStringGetTextDatum(host);
	values[2] = Int32GetDatum(port);
	values[3] = CStringGetTextDatum(mode);
	tm_catalog_exec("SELECT FROM pg_catalog.pg_dist_node"
					" WHERE nodename = $1 AND nodeport = $2 AND noderole = 'primary'"
					"   AND isactive AND shouldhaveshards",
					2, types + 1, values + 1, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("node \"%s\" is not an active Citus node that holds shards", node),
				 errhint("SELECT nodename || ':' || nodeport FROM pg_dist_node lists the nodes.")));

	current = tm_citus_schema_node(nspoid);
	if (current != NULL && strcmp(current, node) == 0)
		ereport(NOTICE,
				(errmsg("tenant \"%s\" is on node \"%s\" already", name, node)));
	else
		tm_catalog_exec("SELECT pg_catalog.citus_schema_move($1::pg_catalog.regnamespace, $2, $3,"
						" $4::citus.shard_transfer_mode)",
						4, types, values, NULL, SPI_OK_SELECT);
}

/*
 * tenant_placement() returns table (tenant text, schema name, node text,
 * nodeid integer, size bigint)
 *
 * Where each schema tenant lives in Citus mode, and the size of its shards
 * there; nothing otherwise.  A tenant whose schema Citus does not
 * distribute has a NULL node (verify() says why).
 */
Datum
tenant_placement(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	tm_spi_connect();
	if (tm_citus_mode())
	{
		uint64		i;

		tm_catalog_exec("WITH shard AS ("
						"  SELECT colocation_id, nodename, nodeport, sum(shard_size) AS size"
						"    FROM pg_catalog.citus_shards GROUP BY 1, 2, 3)"
						"SELECT t.name, n.nspname, sh.nodename || ':' || sh.nodeport, dn.nodeid,"
						"       sh.size::pg_catalog.int8"
						"  FROM tenant_mgr.tenant t"
						"  JOIN pg_catalog.pg_namespace n ON n.oid = t.object_oid"
						"  LEFT JOIN pg_catalog.pg_dist_schema s ON s.schemaid = n.oid"
						"  LEFT JOIN shard sh ON sh.colocation_id = s.colocationid"
						"  LEFT JOIN pg_catalog.pg_dist_node dn"
						"    ON dn.nodename = sh.nodename AND dn.nodeport = sh.nodeport"
						" WHERE t.isolation = 'schema' AND t.state = 'ready'"
						" ORDER BY t.name",
						0, NULL, NULL, NULL, SPI_OK_SELECT);
		for (i = 0; i < SPI_processed; i++)
		{
			Datum		values[5];
			bool		nulls[5];
			int			col;

			for (col = 0; col < 5; col++)
				values[col] = SPI_getbinval(SPI_tuptable->vals[i],
											SPI_tuptable->tupdesc, col + 1,
											&nulls[col]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values,
								 nulls);
		}
	}
	tm_spi_finish();
	return (Datum) 0;
}
