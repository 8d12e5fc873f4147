/*-------------------------------------------------------------------------
 *
 * names.c
 *		Validation of tenant names and derivation of object names.
 *
 * A tenant name is ^[a-z][a-z0-9_]*$.  Its schema or database is named
 * tenant_mgr.prefix followed by the tenant name, which must fit in
 * NAMEDATALEN - 1 bytes: PostgreSQL would silently truncate a longer
 * identifier, and two tenants could then share one object.  Names are only
 * ever put into SQL through quote_identifier().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/varlena.h"

#include "tenant_mgr.h"

/* Object names tenant_mgr never creates, whatever the prefix. */
static const char *const tm_reserved_names[] = {
	"public",
	"information_schema",
	"tenant_mgr",
	"postgres",
	"template0",
	"template1",
	NULL
};

/*
 * Raise an error unless name is a valid tenant name under the current prefix.
 * Returns normally only for valid names.
 */
void
tm_check_tenant_name(const char *name)
{
	size_t		len = strlen(name);
	size_t		prefixlen = strlen(tm_prefix);
	const char *p;
	char	   *object;
	const char *const *r;

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("tenant name must not be empty")));

	for (p = name; *p; p++)
	{
		bool		ok = (*p >= 'a' && *p <= 'z') || *p == '_' ||
			(*p >= '0' && *p <= '9');

		if (!ok || (p == name && !(*p >= 'a' && *p <= 'z')))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("invalid tenant name \"%s\"", name),
					 errdetail("Tenant names must begin with a lower-case ASCII letter and contain only lower-case ASCII letters, digits and underscores.")));
	}

	if (len + prefixlen > NAMEDATALEN - 1)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("tenant name \"%s\" is too long", name),
				 errdetail("Its object name \"%s%s\" would be %zu bytes long; the limit is %d bytes.",
						   tm_prefix, name, len + prefixlen, NAMEDATALEN - 1)));

	object = psprintf("%s%s", tm_prefix, name);
	for (r = tm_reserved_names; *r; r++)
	{
		if (strcmp(object, *r) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_RESERVED_NAME),
					 errmsg("tenant name \"%s\" is reserved", name),
					 errdetail("\"%s\" is the name of a system object.", object)));
	}
	/* tenant_mgr's own names, such as the detached tenant_mgr_drop_<oid> */
	if (strncmp(object, "tenant_mgr_", 11) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("tenant name \"%s\" is reserved", name),
				 errdetail("Names beginning with \"tenant_mgr_\" are reserved for tenant_mgr.")));
	if (strncmp(object, "pg_", 3) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("tenant name \"%s\" is reserved", name),
				 errdetail("Names beginning with \"pg_\" are reserved for system objects.")));

	/*
	 * A tenant named like the prefix itself ("tenant" or "tenant_" under the
	 * default prefix) makes object names that read as a mistake.
	 */
	if (prefixlen > 0 &&
		(strcmp(name, tm_prefix) == 0 ||
		 (tm_prefix[prefixlen - 1] == '_' && len == prefixlen - 1 &&
		  strncmp(name, tm_prefix, len) == 0)))
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("tenant name \"%s\" is reserved", name),
				 errdetail("A tenant must not be named after the object name prefix \"%s\".",
						   tm_prefix)));
	pfree(object);
}

/* Returns the schema or database name of a (validated) tenant name. */
char *
tm_object_name(const char *name)
{
	return psprintf("%s%s", tm_prefix, name);
}

/*
 * Returns a search_path value: the schema first, then the schemas of
 * tenant_mgr.shared_schemas, every name quoted.
 */
char *
tm_search_path(const char *schema)
{
	StringInfoData buf;
	char	   *copy = pstrdup(tm_shared_schemas);
	List	   *shared;

	initStringInfo(&buf);
	appendStringInfoString(&buf, quote_identifier(schema));

	/* the check hook has already accepted the list */
	if (SplitIdentifierString(copy, ',', &shared))
	{
		ListCell   *lc;

		foreach(lc, shared)
		{
			const char *s = (const char *) lfirst(lc);

			if (strcmp(s, schema) != 0)
				appendStringInfo(&buf, ", %s", quote_identifier(s));
		}
	}
	return buf.data;
}
