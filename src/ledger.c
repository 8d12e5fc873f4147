/*-------------------------------------------------------------------------
 *
 * ledger.c
 *		The ledger inside every tenant: creating it, checking that it is
 *		still the table tenant_mgr made, and reading it safely.
 *
 * The ledger belongs to the tenant's owner, so the tenant's own roles can
 * alter or replace it: a view, a trigger, a rule, a row security policy or
 * an index expression on it decides what code runs when others touch it.
 * So, before anyone reads or writes it:
 *
 *	- its shape is checked from the system catalogs, without running any of
 *	  its code and without locking it: a plain heap table of the tenant's
 *	  owner, with exactly the columns tenant_mgr gave it, no rules,
 *	  triggers, row security, check constraints, inheritance or other index
 *	  than its primary key.  Anything else is tampering: the tenant is
 *	  skipped, and verify() reports it;
 *	- it is read and written only as the tenant's owner, inside a
 *	  security-restricted operation, with search_path pinned to pg_catalog,
 *	  and always schema-qualified, so that no temporary table can shadow it;
 *	- reads and writes wait for its lock at most TM_LEDGER_LOCK_TIMEOUT: a
 *	  tenant that keeps its own ledger locked is reported and skipped (its
 *	  migration rolls back), never waited for.
 *
 * Its owner can still delete rows.  A row deleted below the latest leaves a
 * gap (migrate.c); to catch the latest row deleted, every write also
 * records the ledger's new latest version in the security label of the
 * schema or database holding it (marker.c), which no tenant role can set.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "tenant_mgr.h"

/* How long a ledger read waits for a lock the tenant holds. */
#define TM_LEDGER_LOCK_TIMEOUT "1s"

/* Ledger statements name everything they use; nothing else may be found. */
#define TM_LEDGER_SEARCH_PATH "pg_catalog, pg_temp"

/* The columns of the ledger, in order. */
static const struct
{
	const char *name;
	Oid			type;
	bool		notnull;
	bool		hasdef;
}			tm_ledger_columns[] =
{
	{"version", INT8OID, true, false},
	{"name", TEXTOID, true, false},
	{"checksum", TEXTOID, true, false},
	{"applied_at", TIMESTAMPTZOID, true, true},
	{"applied_by", NAMEOID, true, true},
	{"duration", INTERVALOID, false, false}
};

static char *tm_ledger_columns_problem(Oid relid, int natts);
static char *tm_ledger_indexes_problem(Oid relid);
static void tm_ledger_set_label_version(const TmTenant *t,
										const TmMigration *m, bool up,
										int64 version);

/*
 * True if system catalog catalogid has a row whose column attnum, the first
 * key of its index indexid, is relid.  The relhasrules, relhastriggers and
 * relhassubclass flags of pg_class only say that a relation has or once had
 * such rows.
 */
static bool
tm_catalog_refers(Oid catalogid, Oid indexid, AttrNumber attnum, Oid relid)
{
	Relation	rel = table_open(catalogid, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	bool		found;

	ScanKeyInit(&key, attnum, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, indexid, true, NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * True if relation relid has triggers other than the one Citus puts on
 * each of its tables (citus.c).
 */
static bool
tm_ledger_has_triggers(Oid relid)
{
	Relation	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, TriggerRelidNameIndexId, true, NULL, 1, &key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);

		found = !tm_citus_trigger(trig->tgfoid, trig->tgisinternal, trig->tgtype);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* The schema-qualified name of the tenant's ledger, quoted. */
static char *
tm_ledger_name(const TmTenant *t)
{
	return psprintf("%s." TM_LEDGER_NAME, quote_identifier(t->schema));
}

/*
 * Creates the (empty) ledger of a new tenant in t->schema, owned by the
 * tenant's owner.  Its primary key is the version: no sequence, nothing
 * that ties the tenant to the server it was created on.
 */
void
tm_ledger_create(const TmTenant *t)
{
	char	   *sql = psprintf("CREATE TABLE %s ("
								   " version bigint PRIMARY KEY,"
								   " name text NOT NULL,"
								   " checksum text NOT NULL,"
								   " applied_at timestamptz NOT NULL DEFAULT now(),"
								   " applied_by name NOT NULL DEFAULT current_user,"
								   " duration interval)", tm_ledger_name(t));

	/* in Citus mode a tenant table, placed with the tenant's others */
	if (t->isolation == TM_SCHEMA && tm_citus_mode())
		tm_citus_run_in_tenant(get_role_oid(t->owner, false),
							   TM_LEDGER_SEARCH_PATH, sql);
	else
		tm_sql_restricted(get_role_oid(t->owner, false), TM_LEDGER_SEARCH_PATH,
						  NULL, sql, 0, NULL, NULL, false);
}

/*
 * Returns what makes t's ledger (in t->schema) other than the table
 * tenant_mgr made, as a sentence fragment, or NULL when it is as made.
 * Reads only the system catalogs.
 */
char *
tm_ledger_problem(const TmTenant *t)
{
	Oid			nspoid = get_namespace_oid(t->schema, false);
	Oid			relid = get_relname_relid(TM_LEDGER_NAME, nspoid);
	Oid			owner = get_role_oid(t->owner, false);
	HeapTuple	tup;
	Form_pg_class form;
	char	   *problem = NULL;

	if (!OidIsValid(relid))
		return psprintf("there is no table %s", tm_ledger_name(t));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	form = (Form_pg_class) GETSTRUCT(tup);
	if (form->relkind != RELKIND_RELATION)
		problem = "it is not a plain table";
	else if (form->relowner != owner)
		problem = psprintf("it is owned by role \"%s\", not by the tenant's owner \"%s\"",
						   GetUserNameFromId(form->relowner, true), t->owner);
	else if (form->relam != HEAP_TABLE_AM_OID ||
			 form->relpersistence != RELPERSISTENCE_PERMANENT)
		problem = "it is not a permanent heap table";
	else if (form->relhasrules &&
			 tm_catalog_refers(RewriteRelationId, RewriteRelRulenameIndexId,
							   Anum_pg_rewrite_ev_class, relid))
		problem = "it has rules";
	else if (form->relhastriggers && tm_ledger_has_triggers(relid))
		problem = "it has triggers";
	else if (form->relrowsecurity || form->relforcerowsecurity)
		problem = "it has row-level security enabled";
	else if (form->relispartition ||
			 tm_catalog_refers(InheritsRelationId, InheritsRelidSeqnoIndexId,
							   Anum_pg_inherits_inhrelid, relid) ||
			 (form->relhassubclass &&
			  tm_catalog_refers(InheritsRelationId, InheritsParentIndexId,
								Anum_pg_inherits_inhparent, relid)))
		problem = "it takes part in inheritance or partitioning";
	else if (form->relchecks > 0)
		problem = "it has check constraints";
	else
		problem = tm_ledger_columns_problem(relid, form->relnatts);
	if (problem == NULL)
		problem = tm_ledger_indexes_problem(relid);
	ReleaseSysCache(tup);
	return problem;
}

/* The live columns must be tm_ledger_columns, in order; no generated ones. */
static char *
tm_ledger_columns_problem(Oid relid, int natts)
{
	int			live = 0;
	int			attnum;

	for (attnum = 1; attnum <= natts; attnum++)
	{
		HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid),
										  Int16GetDatum(attnum));
		Form_pg_attribute att;
		bool		ok;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for attribute %d of relation %u",
				 attnum, relid);
		att = (Form_pg_attribute) GETSTRUCT(tup);
		if (att->attisdropped)
		{
			ReleaseSysCache(tup);
			continue;
		}
		ok = live < (int) lengthof(tm_ledger_columns) &&
			strcmp(NameStr(att->attname), tm_ledger_columns[live].name) == 0 &&
			att->atttypid == tm_ledger_columns[live].type &&
			att->attnotnull == tm_ledger_columns[live].notnull &&
			att->atthasdef == tm_ledger_columns[live].hasdef &&
			att->attgenerated == '\0';
		ReleaseSysCache(tup);
		if (!ok)
			return psprintf("its column %d is not the one tenant_mgr made", attnum);
		live++;
	}
	if (live != (int) lengthof(tm_ledger_columns))
		return "it lacks columns tenant_mgr made";
	return NULL;
}

/* The access method of a relation. */
static Oid
tm_rel_am(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			am;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	am = ((Form_pg_class) GETSTRUCT(tup))->relam;
	ReleaseSysCache(tup);
	return am;
}

/* The only index must be the primary key on version, a plain btree. */
static char *
tm_ledger_indexes_problem(Oid relid)
{
	Relation	rel = table_open(IndexRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	int			n = 0;
	bool		ok = true;

	ScanKeyInit(&key, Anum_pg_index_indrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, IndexIndrelidIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_index index = (Form_pg_index) GETSTRUCT(tup);

		n++;
		ok = ok && index->indisprimary && index->indnatts == 1 &&
			index->indkey.values[0] == 1 &&
			heap_attisnull(tup, Anum_pg_index_indexprs, NULL) &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL) &&
			tm_rel_am(index->indexrelid) == BTREE_AM_OID;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (n != 1 || !ok)
		return "its indexes are not the primary key tenant_mgr made";
	return NULL;
}

/*
 * Raises an error, changing nothing, unless t's ledger is the table
 * tenant_mgr made.
 */
void
tm_ledger_require(const TmTenant *t)
{
	char	   *problem = tm_ledger_problem(t);

	if (problem)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger of tenant \"%s\" is not the table tenant_mgr made", t->name),
				 errdetail("In %s, %s.", tm_ledger_name(t), problem),
				 errhint("tenant_mgr skips the tenant until its ledger is restored; see tenant_mgr.verify().")));
}

/* list_sort comparator of TmLedgerRow, by version */
static int
tm_ledger_row_cmp(const ListCell *a, const ListCell *b)
{
	const TmLedgerRow *ra = lfirst(a);
	const TmLedgerRow *rb = lfirst(b);

	return (ra->version > rb->version) - (ra->version < rb->version);
}

/*
 * Reads t's ledger, once checked, as the tenant's owner: returns its rows
 * (TmLedgerRow) in version order, allocated in tm_result_cxt().  A ledger
 * locked for longer than TM_LEDGER_LOCK_TIMEOUT raises lock_not_available.
 */
List *
tm_ledger_rows(const TmTenant *t)
{
	List	   *rows = NIL;
	uint64		i;
	MemoryContext oldcxt;

	tm_ledger_require(t);

	/*
	 * A snapshot taken now, after the caller took the tenant's lock: one
	 * taken before (the transaction's, the statement's) misses the steps
	 * that the lock's previous holder committed meanwhile, and a plan made
	 * from it applies or reverts them again.
	 */
	PushActiveSnapshot(GetTransactionSnapshot());
	tm_sql_restricted(get_role_oid(t->owner, false), TM_LEDGER_SEARCH_PATH,
					  TM_LEDGER_LOCK_TIMEOUT,
					  psprintf("SELECT version, checksum FROM ONLY %s",
							   tm_ledger_name(t)),
					  0, NULL, NULL, true);
	PopActiveSnapshot();
	oldcxt = MemoryContextSwitchTo(tm_result_cxt());
	for (i = 0; i < SPI_processed; i++)
	{
		TmLedgerRow *row = palloc(sizeof(TmLedgerRow));

		row->version = tm_get_int64(i, 1);
		row->checksum = tm_get_text(i, 2);
		rows = lappend(rows, row);
	}
	/* sorted here: planning ORDER BY costs a new executor more (cold caches) */
	list_sort(rows, tm_ledger_row_cmp);
	MemoryContextSwitchTo(oldcxt);
	return rows;
}

/*
 * Records in t's ledger that migration m was applied (up) or reverted, as
 * the tenant's owner, in the transaction of the migration itself, and the
 * ledger's new latest version in its holder's label; a ledger locked
 * longer than TM_LEDGER_LOCK_TIMEOUT fails that transaction.
 */
void
tm_ledger_write(const TmTenant *t, const TmMigration *m, bool up, double ms)
{
	Oid			owner = get_role_oid(t->owner, false);
	Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, FLOAT8OID};
	Datum		values[4];

	tm_ledger_require(t);
	values[0] = Int64GetDatum(m->version);
	if (up)
	{
		values[1] = CStringGetTextDatum(m->name);
		values[2] = CStringGetTextDatum(m->checksum);
		values[3] = Float8GetDatum(ms);
		tm_sql_restricted(owner, TM_LEDGER_SEARCH_PATH, TM_LEDGER_LOCK_TIMEOUT,
						  psprintf("INSERT INTO %s (version, name, checksum, duration)"
								   " VALUES ($1, $2, $3, $4 * interval '1 millisecond')",
								   tm_ledger_name(t)),
						  4, types, values, false);
	}
	else
	{
		tm_sql_restricted(owner, TM_LEDGER_SEARCH_PATH, TM_LEDGER_LOCK_TIMEOUT,
						  psprintf("DELETE FROM ONLY %s WHERE version = $1",
								   tm_ledger_name(t)),
						  1, types, values, false);
		/* migrations are reverted from the top: the next one down is latest */
		tm_sql_restricted(owner, TM_LEDGER_SEARCH_PATH, TM_LEDGER_LOCK_TIMEOUT,
						  psprintf("SELECT COALESCE(pg_catalog.max(version), 0)"
								   " FROM ONLY %s WHERE version < $1",
								   tm_ledger_name(t)),
						  1, types, values, true);
	}
	tm_ledger_set_label_version(t, m, up, up ? m->version : tm_get_int64(0, 1));
}

/*
 * In a new clone of the template database (template.c), once its objects
 * are the tenant's: the rows say that the tenant's owner applied them, as
 * in a tenant built from scratch.  They keep when they were applied.
 */
void
tm_ledger_take_over(const TmTenant *t)
{
	tm_ledger_require(t);
	tm_sql_restricted(get_role_oid(t->owner, false), TM_LEDGER_SEARCH_PATH,
					  TM_LEDGER_LOCK_TIMEOUT,
					  psprintf("UPDATE ONLY %s SET applied_by = CURRENT_USER",
							   tm_ledger_name(t)),
					  0, NULL, NULL, false);
}

/*
 * The schema or database holding t's ledger: a database tenant's ledger is
 * only ever touched by an executor connected to its database.
 */
static void
tm_ledger_holder(const TmTenant *t, Oid *classid, Oid *objid)
{
	if (t->isolation == TM_DATABASE)
	{
		*classid = DatabaseRelationId;
		*objid = MyDatabaseId;
	}
	else
	{
		*classid = NamespaceRelationId;
		*objid = get_namespace_oid(t->schema, false);
	}
}

/*
 * Records version as the latest of t's ledger in the label of the schema or
 * database holding it, in the current transaction: with the ledger row of
 * m (applied if up).  The template database's label also chains m into
 * its digest (template.c).
 */
static void
tm_ledger_set_label_version(const TmTenant *t, const TmMigration *m, bool up,
							int64 version)
{
	Oid			classid;
	Oid			objid;
	char	   *digest;

	tm_ledger_holder(t, &classid, &objid);
	if (classid == DatabaseRelationId &&
		tm_template_labelled(classid, objid, NULL, &digest))
		tm_template_mark(classid, objid, version,
						 tm_template_digest_step(digest, m, up));
	else
		tm_label_set_version(classid, objid, t, version);
}

/*
 * The latest version of t's ledger as its holder's label records it, or -1
 * when the label records none (labels of 1.0's tenants until their next
 * migration, and of older dumps).
 */
int64
tm_ledger_label_version(const TmTenant *t)
{
	Oid			classid;
	Oid			objid;

	tm_ledger_holder(t, &classid, &objid);
	return tm_label_version(classid, objid);
}
