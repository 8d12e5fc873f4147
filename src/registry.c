/*-------------------------------------------------------------------------
 *
 * registry.c
 *		The migration registry: checking, checksumming and storing migrations.
 *
 * A migration is checked when it is registered, not when it first meets a
 * tenant: its SQL must parse, must not be empty, and must not contain
 * statements that end the transaction or cannot run inside one, because a
 * migration commits together with its ledger row, nor any that PostgreSQL
 * refuses where a migration runs (through SPI, as the tenant's owner in a
 * security-restricted operation): such a migration would fail every later
 * create and migrate.  Versions only grow, and a
 * registered migration never changes: registering the same one again is a
 * no-op (so a loader can be re-run), anything else is an error.
 *
 * Registration takes a SHARE ROW EXCLUSIVE lock on tenant_mgr.migration, so
 * concurrent registrations are serialized and "greater than the latest" is
 * decided against committed state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "commands/defrem.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "storage/fd.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "tenant_mgr.h"

PG_FUNCTION_INFO_V1(migration_add);
PG_FUNCTION_INFO_V1(migration_remove);
PG_FUNCTION_INFO_V1(migrations_load);

/* What the error context callback of a syntax check needs. */
typedef struct TmParseContext
{
	int64		version;
	const char *direction;
	const char *sql;
} TmParseContext;

/*
 * Returns the hex SHA-256 of the normalized text of a migration: line ends
 * as \n, no trailing blanks on any line, no blank lines at either end.  An
 * editor's whitespace changes do not make a different migration.
 */
char *
tm_checksum(const char *sql)
{
	StringInfoData norm;
	const char *p = sql;
	pg_cryptohash_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *hex;
	int			len;

	initStringInfo(&norm);
	while (*p)
	{
		const char *eol = p + strcspn(p, "\r\n");
		const char *end = eol;

		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		appendBinaryStringInfo(&norm, p, end - p);
		appendStringInfoChar(&norm, '\n');
		p = eol;
		if (*p == '\r')
			p++;
		if (*p == '\n')
			p++;
	}
	/* trim blank lines at both ends */
	len = norm.len;
	while (len > 0 && norm.data[len - 1] == '\n')
		len--;
	p = norm.data;
	while (p < norm.data + len && *p == '\n')
		p++;

	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) p, norm.data + len - p) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute SHA-256 checksum: %s",
			 pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);

	hex = palloc(PG_SHA256_DIGEST_LENGTH * 2 + 1);
	hex[hex_encode((const char *) digest, PG_SHA256_DIGEST_LENGTH, hex)] = '\0';
	pfree(norm.data);
	return hex;
}

/*
 * Error context for parsing a migration: say which one, and turn a syntax
 * error position into a position within the migration's own text.
 */
static void
tm_parse_error_callback(void *arg)
{
	TmParseContext *pc = (TmParseContext *) arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(pc->sql);
	}
	errcontext("%s SQL of migration " INT64_FORMAT, pc->direction, pc->version);
}

/*
 * A non-transactional migration is one statement that cannot run in a
 * transaction block and whose effect can be told (for an index: it exists
 * and is valid), run top-level and recorded after.  Anything else is
 * refused, with the statement named.
 */
static void
tm_check_nontransactional(int64 version, const char *direction, List *stmts)
{
	Node	   *stmt;
	bool		ok = false;

	if (list_length(stmts) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s SQL of non-transactional migration " INT64_FORMAT " must be exactly one statement",
						direction, version),
				 errdetail("It holds %d statements.", list_length(stmts)),
				 errhint("Register each statement as a migration of its own.")));
	stmt = ((RawStmt *) linitial(stmts))->stmt;
	switch (nodeTag(stmt))
	{
		case T_IndexStmt:
			ok = ((IndexStmt *) stmt)->concurrent;
			if (ok && ((IndexStmt *) stmt)->idxname == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("CREATE INDEX CONCURRENTLY in migration " INT64_FORMAT " must name its index",
								version),
						 errdetail("tenant_mgr checks that the index is valid before it records the migration.")));
			break;
		case T_DropStmt:
			ok = ((DropStmt *) stmt)->concurrent &&
				list_length(((DropStmt *) stmt)->objects) == 1;
			break;
		case T_ReindexStmt:
			{
				ListCell   *opt;

				foreach(opt, ((ReindexStmt *) stmt)->params)
				{
					DefElem    *def = lfirst(opt);

					if (strcmp(def->defname, "concurrently") == 0 && defGetBoolean(def))
						ok = true;
				}
			}
			break;
		case T_VacuumStmt:
			ok = ((VacuumStmt *) stmt)->is_vacuumcmd;
			break;
		default:
			break;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s SQL of migration " INT64_FORMAT " (%s) does not need transactional => false",
						direction, version, CreateCommandName(stmt)),
				 errdetail("Non-transactional migrations are CREATE INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY of one index, REINDEX CONCURRENTLY and VACUUM."),
				 errhint("Register it with transactional => true, so that it commits with its ledger row.")));
}

/*
 * The temporary relation a CREATE statement (or SELECT INTO) makes, or NULL
 * for none: a raw parse tree says so by TEMPORARY or by schema pg_temp.
 */
static RangeVar *
tm_temp_relation(Node *stmt)
{
	RangeVar   *rel = NULL;

	switch (nodeTag(stmt))
	{
		case T_CreateStmt:
			rel = ((CreateStmt *) stmt)->relation;
			break;
		case T_CreateTableAsStmt:
			rel = ((CreateTableAsStmt *) stmt)->into->rel;
			break;
		case T_ViewStmt:
			rel = ((ViewStmt *) stmt)->view;
			break;
		case T_CreateSeqStmt:
			rel = ((CreateSeqStmt *) stmt)->sequence;
			break;
		case T_SelectStmt:
			{
				SelectStmt *select = (SelectStmt *) stmt;

				/* a set operation's INTO is in its leftmost SELECT */
				while (select->op != SETOP_NONE)
					select = select->larg;
				if (select->intoClause)
					rel = select->intoClause->rel;
			}
			break;
		default:
			break;
	}
	if (rel && (rel->relpersistence == RELPERSISTENCE_TEMP ||
				(rel->schemaname && strcmp(rel->schemaname, "pg_temp") == 0)))
		return rel;
	return NULL;
}

/* Why a statement cannot be part of a transactional migration. */
typedef enum TmRefusal
{
	TM_ALLOWED,
	TM_XACT_CONTROL,			/* ends or shapes the transaction */
	TM_XACT_BLOCK,				/* cannot run inside a transaction block */
	TM_NONTRANSACTIONAL,		/* same, but a non-transactional migration */
	TM_RESTRICTED,				/* refused in a security-restricted operation */
	TM_SERVER					/* acts on the backend or server, not the tenant */
} TmRefusal;

/*
 * Refuses a statement of a transactional migration that cannot run where
 * every migration runs: inside the transaction that records it, through
 * SPI, as the tenant's owner in a security-restricted operation, in
 * whichever backend applies it.  Such a statement would fail on every
 * tenant, so it is named at registration instead.
 */
static void
tm_check_transactional(int64 version, const char *direction, Node *stmt)
{
	const char *what = CreateCommandName(stmt);
	TmRefusal	refusal = TM_ALLOWED;
	RangeVar   *temp;

	switch (nodeTag(stmt))
	{
		case T_TransactionStmt:
			refusal = TM_XACT_CONTROL;
			break;
		case T_VariableSetStmt:
			{
				VariableSetStmt *set = (VariableSetStmt *) stmt;

				if (set->kind == VAR_SET_MULTI &&
					strncmp(set->name, "TRANSACTION", 11) == 0)
				{
					refusal = TM_XACT_CONTROL;
					what = psprintf("SET %s", set->name);
				}
				else if (set->name && pg_strcasecmp(set->name, "role") == 0)
				{
					refusal = TM_RESTRICTED;
					what = set->kind == VAR_RESET ? "RESET ROLE" : "SET ROLE";
				}
				else if (set->name &&
						 pg_strcasecmp(set->name, "session_authorization") == 0)
				{
					refusal = TM_RESTRICTED;
					what = set->kind == VAR_RESET ?
						"RESET SESSION AUTHORIZATION" : "SET SESSION AUTHORIZATION";
				}
			}
			break;
		case T_CreatedbStmt:
		case T_DropdbStmt:
		case T_CreateTableSpaceStmt:
		case T_DropTableSpaceStmt:
		case T_AlterSystemStmt:
			refusal = TM_XACT_BLOCK;
			break;
		case T_AlterDatabaseStmt:
			{
				ListCell   *opt;

				foreach(opt, ((AlterDatabaseStmt *) stmt)->options)
				{
					if (strcmp(((DefElem *) lfirst(opt))->defname, "tablespace") == 0)
					{
						refusal = TM_XACT_BLOCK;
						what = "ALTER DATABASE SET TABLESPACE";
					}
				}
			}
			break;
		case T_VacuumStmt:
			/* ANALYZE alone runs inside a transaction block */
			if (((VacuumStmt *) stmt)->is_vacuumcmd)
				refusal = TM_NONTRANSACTIONAL;
			break;
		case T_IndexStmt:
			if (((IndexStmt *) stmt)->concurrent)
				refusal = TM_NONTRANSACTIONAL;
			break;
		case T_DropStmt:
			if (((DropStmt *) stmt)->concurrent)
				refusal = TM_NONTRANSACTIONAL;
			break;
		case T_ReindexStmt:
			{
				ReindexStmt *reindex = (ReindexStmt *) stmt;
				ListCell   *opt;

				foreach(opt, reindex->params)
				{
					DefElem    *def = lfirst(opt);

					if (strcmp(def->defname, "concurrently") == 0 &&
						defGetBoolean(def))
						refusal = TM_NONTRANSACTIONAL;
				}
				if (refusal != TM_ALLOWED)
					break;
				/* these commit a transaction per table */
				if (reindex->kind == REINDEX_OBJECT_SCHEMA)
					what = "REINDEX SCHEMA";
				else if (reindex->kind == REINDEX_OBJECT_SYSTEM)
					what = "REINDEX SYSTEM";
				else if (reindex->kind == REINDEX_OBJECT_DATABASE)
					what = "REINDEX DATABASE";
				else
					break;
				refusal = TM_XACT_BLOCK;
			}
			break;
		case T_ClusterStmt:
			/* without a table it commits a transaction per table */
			if (((ClusterStmt *) stmt)->relation == NULL)
			{
				refusal = TM_XACT_BLOCK;
				what = "CLUSTER without a table name";
			}
			break;
		case T_DiscardStmt:
		case T_ListenStmt:
		case T_UnlistenStmt:
		case T_PrepareStmt:
		case T_DeallocateStmt:
		case T_ClosePortalStmt:
			refusal = TM_RESTRICTED;
			break;
		case T_LoadStmt:
		case T_CheckPointStmt:
			refusal = TM_SERVER;
			break;
		case T_CopyStmt:
			{
				CopyStmt   *copy = (CopyStmt *) stmt;

				/* SPI has no client to talk to */
				if (copy->filename == NULL && !copy->is_program)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("%s SQL of migration " INT64_FORMAT " contains %s, which cannot run in a migration",
									direction, version,
									copy->is_from ? "COPY FROM STDIN" : "COPY TO STDOUT"),
							 errdetail("A migration runs inside the server, with no client to exchange COPY data with."),
							 errhint("Write the rows as INSERT statements.")));
			}
			break;
		default:
			temp = tm_temp_relation(stmt);
			if (temp)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("%s SQL of migration " INT64_FORMAT " creates temporary relation \"%s\"",
								direction, version, temp->relname),
						 errdetail("A migration runs as the tenant's owner in a security-restricted operation, where PostgreSQL refuses temporary relations."),
						 errhint("Create the relation in the tenant's schema, and drop it at the end of the migration if it is not to stay.")));
			break;
	}

	switch (refusal)
	{
		case TM_ALLOWED:
			break;
		case TM_XACT_CONTROL:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
					 errmsg("%s SQL of migration " INT64_FORMAT " contains %s",
							direction, version, what),
					 errdetail("A migration commits together with its ledger row; it must not contain transaction control statements.")));
			break;
		case TM_XACT_BLOCK:
			ereport(ERROR,
					(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
					 errmsg("%s SQL of migration " INT64_FORMAT " contains %s, which cannot run inside a transaction block",
							direction, version, what),
					 errdetail("A migration commits together with its ledger row, so it runs inside a transaction block."),
					 errhint("Run such a statement outside tenant_mgr.")));
			break;
		case TM_NONTRANSACTIONAL:

			/*
			 * VACUUM and the CONCURRENTLY forms are what non-transactional
			 * migrations are for; the command tag alone ("CREATE INDEX")
			 * would hide what is wrong with the statement.
			 */
			ereport(ERROR,
					(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
					 errmsg("%s SQL of migration " INT64_FORMAT " contains %s%s, which cannot run inside a transaction block",
							direction, version, what,
							IsA(stmt, VacuumStmt) ? "" : " CONCURRENTLY"),
					 errdetail("A transactional migration commits together with its ledger row, so it runs inside a transaction block."),
					 errhint("Register the statement as a migration of its own, with transactional => false.")));
			break;
		case TM_RESTRICTED:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s SQL of migration " INT64_FORMAT " contains %s, which cannot run in a migration",
							direction, version, what),
					 errdetail("A migration runs as the tenant's owner in a security-restricted operation, where PostgreSQL refuses %s.",
							   what),
					 errhint("Run such a statement outside tenant_mgr.")));
			break;
		case TM_SERVER:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s SQL of migration " INT64_FORMAT " contains %s, which cannot run in a migration",
							direction, version, what),
					 errdetail("%s acts on the server or on the session that applies the migration, not on the tenant.",
							   what),
					 errhint("Run such a statement outside tenant_mgr.")));
			break;
	}
}

/*
 * Parses the SQL of a migration and rejects what cannot be part of one.
 * Returns the number of statements.
 */
static int
tm_check_statements(int64 version, const char *direction, const char *sql,
					bool transactional)
{
	TmParseContext pc = {version, direction, sql};
	ErrorContextCallback errcb;
	List	   *stmts;
	ListCell   *lc;

	errcb.callback = tm_parse_error_callback;
	errcb.arg = &pc;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
	error_context_stack = errcb.previous;

	if (!transactional && stmts != NIL)
	{
		tm_check_nontransactional(version, direction, stmts);
		return 1;
	}

	foreach(lc, stmts)
		tm_check_transactional(version, direction,
							   ((RawStmt *) lfirst(lc))->stmt);
	return list_length(stmts);
}

/*
 * Checks a migration before it is registered: a positive version, a name,
 * and SQL that parses, is not empty and holds nothing that cannot run
 * inside the transaction it commits in (or, non-transactional, is one
 * statement of the kinds that need none).
 */
static void
tm_check_migration(int64 version, const char *name, const char *up_sql,
				   const char *down_sql, bool transactional)
{
	const char *p;

	if (version <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration version must be greater than zero")));
	for (p = name; *p && isspace((unsigned char) *p); p++)
		;
	if (*p == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("name of migration " INT64_FORMAT " must not be empty",
						version)));
	if (tm_check_statements(version, "up", up_sql, transactional) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("up SQL of migration " INT64_FORMAT " is empty", version)));
	if (down_sql && tm_check_statements(version, "down", down_sql, transactional) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("down SQL of migration " INT64_FORMAT " is empty", version),
				 errhint("Pass NULL if the migration cannot be reverted.")));
}

/*
 * Checks one migration against the rules and the registry, without
 * registering it.  Returns true if it is new, false if the very same
 * migration is already registered; a new one must be above latest, the
 * highest registered version.  Sets *checksum.  Expects an SPI connection
 * and the registry lock.
 */
static bool
tm_register_check(int64 version, const char *name, const char *up_sql,
				  const char *down_sql, bool transactional, int64 latest,
				  char **checksum)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];

	tm_check_migration(version, name, up_sql, down_sql, transactional);
	*checksum = tm_checksum(up_sql);

	/* An already registered version: the same migration again, or an error. */
	values[0] = Int64GetDatum(version);
	tm_catalog_exec("SELECT name, checksum, down_sql,"
					" (SELECT count(*) FROM tenant_mgr.tenant t WHERE t.version >= m.version)"
					" FROM tenant_mgr.migration m WHERE version = $1",
					1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		char	   *old_name = tm_get_text(0, 1);
		char	   *old_checksum = tm_get_text(0, 2);
		char	   *old_down = tm_get_text(0, 3);
		int64		applied = tm_get_int64(0, 4);

		if (strcmp(old_name, name) == 0 && strcmp(old_checksum, *checksum) == 0 &&
			((old_down == NULL && down_sql == NULL) ||
			 (old_down && down_sql && strcmp(tm_checksum(old_down),
											 tm_checksum(down_sql)) == 0)))
			return false;
		if (applied > 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("migration " INT64_FORMAT " has already been applied and cannot be changed",
							version),
					 errdetail_plural("It has been applied to " INT64_FORMAT " tenant.",
									  "It has been applied to " INT64_FORMAT " tenants.",
									  applied, applied),
					 errhint("Register the change as a new migration with a higher version.")));
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("migration " INT64_FORMAT " is already registered with different contents",
						version),
				 errhint("Remove it first with tenant_mgr.migration_remove(" INT64_FORMAT "), or register a new version.",
						 version)));
	}

	if (version < latest)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration version " INT64_FORMAT " is lower than the latest registered version " INT64_FORMAT,
						version, latest),
				 errhint("Migrations are applied in version order; register new ones above the latest.")));
	return true;
}

/* Inserts a migration that tm_register_check found new. */
static void
tm_register_insert(int64 version, const char *name, const char *up_sql,
				   const char *down_sql, bool transactional,
				   const char *checksum)
{
	Oid			types[7] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, BOOLOID, TEXTOID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(version);
	values[1] = CStringGetTextDatum(name);
	values[2] = CStringGetTextDatum(up_sql);
	if (down_sql)
		values[3] = CStringGetTextDatum(down_sql);
	else
		nulls[3] = 'n';
	values[4] = BoolGetDatum(transactional);
	values[5] = CStringGetTextDatum(checksum);
	values[6] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	tm_catalog_exec("INSERT INTO tenant_mgr.migration"
					" (version, name, up_sql, down_sql, transactional, checksum, registered_by)"
					" VALUES ($1, $2, $3, $4, $5, $6, $7::name)",
					7, types, values, nulls, SPI_OK_INSERT);
	/* the template database follows the registry (template.c) */
	if (tm_database_template)
		tm_wake_at_commit();
}

static void
tm_lock_registry(void)
{
	tm_catalog_exec("LOCK TABLE tenant_mgr.migration IN SHARE ROW EXCLUSIVE MODE",
					0, NULL, NULL, NULL, SPI_OK_UTILITY);
}

/*
 * migration_add(version, name, up_sql, down_sql, transactional) returns bool
 */
Datum
migration_add(PG_FUNCTION_ARGS)
{
	int64		version;
	char	   *name;
	char	   *up_sql;
	char	   *down_sql;
	bool		transactional;
	char	   *checksum;
	bool		added;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("version, name, up_sql and transactional must not be null")));
	version = PG_GETARG_INT64(0);
	name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	up_sql = text_to_cstring(PG_GETARG_TEXT_PP(2));
	down_sql = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	transactional = PG_GETARG_BOOL(4);

	tm_spi_connect();
	tm_lock_registry();
	added = tm_register_check(version, name, up_sql, down_sql, transactional,
							  tm_migration_latest(), &checksum);
	if (added)
		tm_register_insert(version, name, up_sql, down_sql, transactional,
						   checksum);
	tm_spi_finish();
	PG_RETURN_BOOL(added);
}

/*
 * migration_remove(version) returns bool
 *
 * Only a migration that no tenant has applied can go.
 */
Datum
migration_remove(PG_FUNCTION_ARGS)
{
	int64		version;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	int64		applied;

	/* 1.0 declared it STRICT; 1.1 refuses NULL like every other function */
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("version must not be null")));
	version = PG_GETARG_INT64(0);
	values[0] = Int64GetDatum(version);

	tm_spi_connect();
	tm_lock_registry();
	tm_catalog_exec("SELECT count(*) FROM tenant_mgr.tenant WHERE version >= $1",
					1, types, values, NULL, SPI_OK_SELECT);
	applied = tm_get_int64(0, 1);
	tm_catalog_exec("SELECT 1 FROM tenant_mgr.migration WHERE version = $1",
					1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration " INT64_FORMAT " does not exist", version)));
	if (applied > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration " INT64_FORMAT " has been applied and cannot be removed",
						version),
				 errdetail_plural(INT64_FORMAT " tenant is at this version or above.",
								  INT64_FORMAT " tenants are at this version or above.",
								  applied, applied),
				 errhint("Revert it first with tenant_mgr.tenant_migrate(target => " INT64_FORMAT ").",
						 version - 1)));
	tm_catalog_exec("DELETE FROM tenant_mgr.migration WHERE version = $1",
					1, types, values, NULL, SPI_OK_DELETE);
	/* the template database follows the registry (template.c) */
	if (tm_database_template)
		tm_wake_at_commit();
	tm_spi_finish();
	PG_RETURN_BOOL(true);
}

/*
 * Migration files.
 *
 * migrations_load reads the layouts of the common migration tools, one
 * version per migration:
 *
 *	NNN_name.sql		up (tenant_mgr), down NNN_name.down.sql
 *	NNN_name.up.sql		up (golang-migrate, River, sqlx), down NNN_name.down.sql
 *	NNNN-name.sql		up (Supabase-style), down NNNN-name.down.sql
 *	V<n>__name.sql		up (Flyway), undo U<n>__name.sql
 *
 * Anything else in the directory is an error, never skipped: a misnamed
 * migration silently left out is worse than a failed load.  Only names
 * beginning with a dot (.gitkeep, editor swap files) and README files are
 * not migrations by convention, and are ignored.
 */
typedef struct TmFile
{
	int64		version;
	char	   *name;
	char	   *up_path;
	char	   *down_path;
	char	   *up_sql;
	char	   *down_sql;
	char	   *checksum;
	bool		new;
} TmFile;

static int
tm_file_cmp(const ListCell *a, const ListCell *b)
{
	int64		va = ((TmFile *) lfirst(a))->version;
	int64		vb = ((TmFile *) lfirst(b))->version;

	return (va > vb) - (va < vb);
}

static int
tm_string_cmp(const ListCell *a, const ListCell *b)
{
	return strcmp(lfirst(a), lfirst(b));
}

/* True for a directory entry that is by convention not a migration. */
static bool
tm_file_ignored(const char *fname)
{
	return fname[0] == '.' ||
		(pg_strncasecmp(fname, "readme", 6) == 0 &&
		 (fname[6] == '\0' || fname[6] == '.'));
}

/*
 * Splits a migration file name (see above) into version, name and
 * direction.  Returns false for a name of no known layout; raises an error
 * for a version that does not fit a bigint.
 */
static bool
tm_parse_file_name(const char *path, const char *fname, int64 *version,
				   char **name, bool *down)
{
	const char *digits = fname;
	const char *p;
	const char *end = fname + strlen(fname);

	*down = false;
	if (fname[0] == 'V' || fname[0] == 'U')
	{
		/* Flyway: the prefix gives the direction, "__" ends the version */
		*down = fname[0] == 'U';
		digits = fname + 1;
	}
	for (p = digits; *p >= '0' && *p <= '9'; p++)
		;
	if (p == digits)
		return false;
	if (digits != fname)
	{
		if (strncmp(p, "__", 2) != 0)
			return false;
		p += 2;
	}
	else if (*p == '_' || *p == '-')
		p++;
	else
		return false;

	/* the suffix; only the numbered layouts say the direction in it */
	if (end - p >= 4 && strcmp(end - 4, ".sql") == 0)
		end -= 4;
	else
		return false;
	if (digits == fname)
	{
		if (end - p >= 5 && strncmp(end - 5, ".down", 5) == 0)
		{
			*down = true;
			end -= 5;
		}
		else if (end - p >= 3 && strncmp(end - 3, ".up", 3) == 0)
			end -= 3;
	}
	if (end <= p)
		return false;			/* no name */

	errno = 0;
	*version = strtoi64(digits, NULL, 10);
	if (errno == ERANGE)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("version of migration file \"%s\" is out of range", path),
				 errdetail("Versions must fit in a bigint.")));
	*name = pnstrdup(p, end - p);
	return true;
}

/* What the error context of reading and checking migration files names. */
typedef struct TmFileContext
{
	const char *path;
	const char *other;			/* the down file, while both are checked */
} TmFileContext;

static void
tm_file_error_callback(void *arg)
{
	TmFileContext *fc = (TmFileContext *) arg;

	if (fc->other)
		errcontext("migration files \"%s\" and \"%s\"", fc->path, fc->other);
	else
		errcontext("migration file \"%s\"", fc->path);
}

/*
 * Refuses anything but a regular file (or a symbolic link to one) before it
 * is opened: opening a FIFO would block the backend until a writer comes.
 */
static void
tm_check_regular_file(const char *path)
{
	struct stat st;
	const char *kind;

	if (stat(path, &st) < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));
	if (S_ISREG(st.st_mode))
		return;
	if (S_ISDIR(st.st_mode))
		kind = "a directory";
	else if (S_ISFIFO(st.st_mode))
		kind = "a FIFO";
#ifdef S_ISSOCK
	else if (S_ISSOCK(st.st_mode))
		kind = "a socket";
#endif
	else
		kind = "a device or other special file";
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("\"%s\" is not a regular file", path),
			 errdetail("It is %s; migrations_load reads only regular files.", kind),
			 errhint("Move it out of the migration directory.")));
}

/*
 * Reads a whole migration file as text in the database encoding.  It was
 * checked to be a regular file; it is opened without blocking and checked
 * again, in case it was replaced meanwhile.
 */
static char *
tm_read_file(const char *path)
{
	int			fd;
	struct stat st;
	StringInfoData buf;
	char		chunk[8192];
	ssize_t		n;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY | O_NONBLOCK);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\" for reading: %m", path)));
	if (fstat(fd, &st) < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));
	if (!S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a regular file", path)));
	if ((uint64) st.st_size >= (uint64) MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("migration file \"%s\" is too large", path)));
	initStringInfo(&buf);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
	{
		CHECK_FOR_INTERRUPTS();
		appendBinaryStringInfo(&buf, chunk, n);
	}
	if (n < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", path)));
	CloseTransientFile(fd);
	pg_verify_mbstr(GetDatabaseEncoding(), buf.data, buf.len, false);
	return buf.data;
}

/*
 * Lists the migrations of directory dir, by version, refusing anything it
 * does not understand.  Opens no file.
 */
static List *
tm_scan_directory(const char *dir)
{
	DIR		   *d;
	struct dirent *de;
	List	   *names = NIL;
	List	   *files = NIL;
	ListCell   *lc;

	/* sorted, so that the first bad entry reported does not vary */
	d = AllocateDir(dir);
	while ((de = ReadDir(d, dir)) != NULL)
	{
		if (!tm_file_ignored(de->d_name))
			names = lappend(names, pstrdup(de->d_name));
	}
	FreeDir(d);
	list_sort(names, tm_string_cmp);

	foreach(lc, names)
	{
		const char *fname = lfirst(lc);
		char	   *path = psprintf("%s/%s", dir, fname);
		int64		version;
		char	   *name;
		bool		down;
		TmFile	   *file = NULL;
		ListCell   *fc;

		tm_check_regular_file(path);
		if (!tm_parse_file_name(path, fname, &version, &name, &down))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("\"%s\" is not a migration file", path),
					 errdetail("Migration files are named NNN_name.sql, NNN_name.up.sql, NNN-name.sql or V<n>__name.sql, with down files NNN_name.down.sql or U<n>__name.sql."),
					 errhint("Rename the file or move it out of the directory; only names beginning with a dot and README files are ignored.")));

		foreach(fc, files)
		{
			if (((TmFile *) lfirst(fc))->version == version)
				file = lfirst(fc);
		}
		if (file == NULL)
		{
			file = palloc0(sizeof(TmFile));
			file->version = version;
			file->name = name;
			files = lappend(files, file);
		}
		else
		{
			char	   *other = down ? file->down_path : file->up_path;

			if (other == NULL)
				other = down ? file->up_path : file->down_path;
			if (down ? file->down_path != NULL : file->up_path != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_OBJECT),
						 errmsg("migration files \"%s\" and \"%s\" have the same version " INT64_FORMAT,
								other, path, version),
						 errdetail("Each version has one up file and at most one down file.")));
			if (strcmp(file->name, name) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_OBJECT),
						 errmsg("migration files \"%s\" and \"%s\" have the same version " INT64_FORMAT " but different names",
								other, path, version),
						 errdetail("An up file and its down file name the same migration.")));
		}
		if (down)
			file->down_path = path;
		else
			file->up_path = path;
	}

	foreach(lc, files)
	{
		TmFile	   *file = lfirst(lc);

		if (file->up_path == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FILE),
					 errmsg("down migration file \"%s\" has no up migration file beside it",
							file->down_path),
					 errhint("Add the up file of migration " INT64_FORMAT ", or remove the down file.",
							 file->version)));
	}
	list_sort(files, tm_file_cmp);
	return files;
}

/*
 * migrations_load(directory) returns integer
 *
 * Registers the migration files of a server directory (see above) in
 * version order, and returns how many were new.  Every file is read and
 * checked before the first is registered.  Reading server files needs
 * pg_read_server_files.
 */
Datum
migrations_load(PG_FUNCTION_ARGS)
{
	char	   *dir;
	List	   *files;
	ListCell   *lc;
	int64		latest;
	int			added = 0;

	/* 1.0 declared it STRICT; 1.1 refuses NULL like every other function */
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("directory must not be null")));
	dir = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to read migration files"),
				 errdetail("Only roles with privileges of the \"pg_read_server_files\" role may load migrations from server files.")));

	/* "dir/" names its files "dir//001_x.sql" otherwise */
	while (strlen(dir) > 1 && dir[strlen(dir) - 1] == '/')
		dir[strlen(dir) - 1] = '\0';
	files = tm_scan_directory(dir);

	tm_spi_connect();
	tm_lock_registry();
	latest = tm_migration_latest();
	foreach(lc, files)
	{
		TmFile	   *file = lfirst(lc);
		TmFileContext fc = {file->up_path, NULL};
		ErrorContextCallback errcb;

		errcb.callback = tm_file_error_callback;
		errcb.arg = &fc;
		errcb.previous = error_context_stack;
		error_context_stack = &errcb;
		file->up_sql = tm_read_file(file->up_path);
		if (file->down_path)
		{
			fc.path = file->down_path;
			file->down_sql = tm_read_file(file->down_path);
			/* fc.path was read through error_context_stack meanwhile */
			/* cppcheck-suppress redundantAssignment */
			fc.path = file->up_path;
			fc.other = file->down_path;
		}
		file->new = tm_register_check(file->version, file->name, file->up_sql,
									  file->down_sql, true, latest,
									  &file->checksum);
		error_context_stack = errcb.previous;
	}
	foreach(lc, files)
	{
		TmFile	   *file = lfirst(lc);

		if (!file->new)
			continue;
		tm_register_insert(file->version, file->name, file->up_sql,
						   file->down_sql, true, file->checksum);
		added++;
	}
	tm_spi_finish();
	PG_RETURN_INT32(added);
}
