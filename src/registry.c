/*-------------------------------------------------------------------------
 *
 * registry.c
 *		The migration registry: checking, checksumming and storing migrations.
 *
 * A migration is checked when it is registered, not when it first meets a
 * tenant: its SQL must parse, must not be empty, and must not contain
 * statements that end the transaction or cannot run inside one, because a
 * migration commits together with its ledger row.  Versions only grow, and a
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
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
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
 * Parses the SQL of a migration and rejects what cannot be part of one.
 * Returns the number of statements.
 */
static int
tm_check_statements(int64 version, const char *direction, const char *sql)
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

	foreach(lc, stmts)
	{
		Node	   *stmt = ((RawStmt *) lfirst(lc))->stmt;
		bool		outside_xact = false;

		switch (nodeTag(stmt))
		{
			case T_TransactionStmt:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
						 errmsg("%s SQL of migration " INT64_FORMAT " contains %s",
								direction, version, CreateCommandName(stmt)),
						 errdetail("A migration commits together with its ledger row; it must not contain transaction control statements.")));
				break;
			case T_CreatedbStmt:
			case T_DropdbStmt:
			case T_CreateTableSpaceStmt:
			case T_DropTableSpaceStmt:
			case T_AlterSystemStmt:
			case T_VacuumStmt:
				outside_xact = true;
				break;
			case T_IndexStmt:
				outside_xact = ((IndexStmt *) stmt)->concurrent;
				break;
			case T_DropStmt:
				outside_xact = ((DropStmt *) stmt)->concurrent;
				break;
			case T_ReindexStmt:
				{
					ListCell   *opt;

					foreach(opt, ((ReindexStmt *) stmt)->params)
					{
						if (strcmp(((DefElem *) lfirst(opt))->defname,
								   "concurrently") == 0)
							outside_xact = true;
					}
				}
				break;
			default:
				break;
		}
		if (outside_xact)
			ereport(ERROR,
					(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
					 errmsg("%s SQL of migration " INT64_FORMAT " contains %s, which cannot run inside a transaction block",
							direction, version, CreateCommandName(stmt)),
					 errdetail("A migration commits together with its ledger row, so it runs inside a transaction block."),
					 errhint("Non-transactional migrations are not supported yet; run such a statement outside tenant_mgr.")));
	}
	return list_length(stmts);
}

/*
 * Checks a migration before it is registered: a positive version, a name,
 * transactional, and SQL that parses, is not empty and holds nothing that
 * cannot run inside the transaction it commits in.
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
	if (!transactional)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("non-transactional migrations are not supported yet"),
				 errdetail("Every migration commits together with its ledger row.")));

	if (tm_check_statements(version, "up", up_sql) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("up SQL of migration " INT64_FORMAT " is empty", version)));
	if (down_sql && tm_check_statements(version, "down", down_sql) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("down SQL of migration " INT64_FORMAT " is empty", version),
				 errhint("Pass NULL if the migration cannot be reverted.")));
}

/*
 * Registers one migration.  Returns true if it is new, false if the very
 * same migration was already registered.  Expects an SPI connection and the
 * registry lock.
 */
static bool
tm_register(int64 version, const char *name, const char *up_sql,
			const char *down_sql, bool transactional)
{
	char	   *checksum;
	Oid			types[7] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, BOOLOID, TEXTOID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int64		latest;

	tm_check_migration(version, name, up_sql, down_sql, transactional);
	checksum = tm_checksum(up_sql);

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

		if (strcmp(old_name, name) == 0 && strcmp(old_checksum, checksum) == 0 &&
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

	latest = tm_migration_latest();
	if (version < latest)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration version " INT64_FORMAT " is lower than the latest registered version " INT64_FORMAT,
						version, latest),
				 errhint("Migrations are applied in version order; register new ones above the latest.")));

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
	return true;
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
	bool		added;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("version, name, up_sql and transactional must not be null")));

	tm_spi_connect();
	tm_lock_registry();
	added = tm_register(PG_GETARG_INT64(0),
						text_to_cstring(PG_GETARG_TEXT_PP(1)),
						text_to_cstring(PG_GETARG_TEXT_PP(2)),
						PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)),
						PG_GETARG_BOOL(4));
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
	int64		version = PG_GETARG_INT64(0);
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(version)};
	int64		applied;

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
	tm_spi_finish();
	PG_RETURN_BOOL(true);
}

/* Reads a whole server file as text in the database encoding. */
static char *
tm_read_file(const char *path)
{
	FILE	   *f = AllocateFile(path, PG_BINARY_R);
	StringInfoData buf;
	char		chunk[8192];
	size_t		n;

	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\" for reading: %m", path)));
	initStringInfo(&buf);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		appendBinaryStringInfo(&buf, chunk, n);
	if (ferror(f))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", path)));
	FreeFile(f);
	pg_verify_mbstr(GetDatabaseEncoding(), buf.data, buf.len, false);
	return buf.data;
}

/* A migration file found by migrations_load. */
typedef struct TmFile
{
	int64		version;
	char	   *name;
	char	   *up_path;
	char	   *down_path;
} TmFile;

static int
tm_file_cmp(const ListCell *a, const ListCell *b)
{
	int64		va = ((TmFile *) lfirst(a))->version;
	int64		vb = ((TmFile *) lfirst(b))->version;

	return (va > vb) - (va < vb);
}

/*
 * Splits "NNN_name.sql" or "NNN_name.down.sql" into its parts.  Returns
 * false for any other file name.
 */
static bool
tm_parse_file_name(const char *fname, int64 *version, char **name, bool *down)
{
	const char *p = fname;
	size_t		len = strlen(fname);
	size_t		suffix;

	while (*p >= '0' && *p <= '9')
		p++;
	if (p == fname || *p != '_' || p - fname > 18)
		return false;
	*down = len > 9 && strcmp(fname + len - 9, ".down.sql") == 0;
	suffix = *down ? 9 : 4;
	if (len < suffix || strcmp(fname + len - 4, ".sql") != 0)
		return false;
	if ((size_t) (p + 1 - fname) >= len - suffix)
		return false;
	*version = strtoi64(fname, NULL, 10);
	*name = pnstrdup(p + 1, len - suffix - (p + 1 - fname));
	return true;
}

/*
 * migrations_load(directory) returns integer
 *
 * Registers NNN_name.sql files in version order, each with its optional
 * NNN_name.down.sql.  Reading server files needs pg_read_server_files.
 */
Datum
migrations_load(PG_FUNCTION_ARGS)
{
	char	   *dir = text_to_cstring(PG_GETARG_TEXT_PP(0));
	DIR		   *d;
	struct dirent *de;
	List	   *files = NIL;
	ListCell   *lc;
	int			added = 0;

	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to read migration files"),
				 errdetail("Only roles with privileges of the \"pg_read_server_files\" role may load migrations from server files.")));

	d = AllocateDir(dir);
	while ((de = ReadDir(d, dir)) != NULL)
	{
		int64		version;
		char	   *name;
		bool		down;
		TmFile	   *file = NULL;
		char	   *path;

		if (!tm_parse_file_name(de->d_name, &version, &name, &down))
			continue;
		path = psprintf("%s/%s", dir, de->d_name);
		foreach(lc, files)
		{
			if (((TmFile *) lfirst(lc))->version == version)
				file = lfirst(lc);
		}
		if (file == NULL)
		{
			file = palloc0(sizeof(TmFile));
			file->version = version;
			files = lappend(files, file);
		}
		if (file->name && strcmp(file->name, name) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("directory \"%s\" has two migrations with version " INT64_FORMAT,
							dir, version),
					 errdetail("Their names are \"%s\" and \"%s\".", file->name, name)));
		file->name = name;
		if (down)
			file->down_path = path;
		else if (file->up_path)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("directory \"%s\" has two migrations with version " INT64_FORMAT,
							dir, version)));
		else
			file->up_path = path;
	}
	FreeDir(d);

	list_sort(files, tm_file_cmp);

	tm_spi_connect();
	tm_lock_registry();
	foreach(lc, files)
	{
		TmFile	   *file = lfirst(lc);

		if (file->up_path == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FILE),
					 errmsg("down migration \"%s\" has no up migration beside it",
							file->down_path)));
		if (tm_register(file->version, file->name, tm_read_file(file->up_path),
						file->down_path ? tm_read_file(file->down_path) : NULL,
						true))
			added++;
	}
	tm_spi_finish();
	PG_RETURN_INT32(added);
}
