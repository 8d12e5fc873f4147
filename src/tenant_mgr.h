/*-------------------------------------------------------------------------
 *
 * tenant_mgr.h
 *		Private declarations shared by the C files of tenant_mgr.
 *
 * Every .c file includes postgres.h first and this header after it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TENANT_MGR_H
#define TENANT_MGR_H

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/elog.h"

/* Name of the table that records applied migrations inside every tenant. */
#define TM_LEDGER_NAME "tenant_mgr_ledger"

/* Isolation modes, as stored in tenant_mgr.tenant.isolation. */
#define TM_ISOLATION_SCHEMA "schema"
#define TM_ISOLATION_DATABASE "database"

/* A row of tenant_mgr.tenant, as the C code needs it. */
typedef struct TmTenant
{
	char	   *name;
	char	   *isolation;
	char	   *object_name;
	Oid			object_oid;
	char	   *owner;
	char	   *state;
	int64		version;
} TmTenant;

/* A row of tenant_mgr.migration. */
typedef struct TmMigration
{
	int64		version;
	char	   *name;
	char	   *up_sql;
	char	   *down_sql;		/* NULL when the migration cannot be reverted */
	bool		transactional;
	char	   *checksum;
} TmMigration;

/* One migration applied to or reverted from one tenant. */
typedef struct TmStep
{
	TmMigration *migration;
	bool		up;				/* apply (true) or revert (false) */
	double		ms;				/* how long the migration's SQL took */
} TmStep;

/* in tenant_mgr.c */
extern char *tm_control_database;
extern char *tm_prefix;
extern char *tm_shared_schemas;

/* in names.c */
extern void tm_check_tenant_name(const char *name);
extern char *tm_object_name(const char *name);
extern char *tm_search_path(const char *schema);

/* in catalog.c */
extern void tm_spi_connect(void);
extern void tm_spi_finish(void);
extern TmTenant *tm_tenant_fetch(const char *name, bool missing_ok);
extern List *tm_tenant_list(void);
extern void tm_tenant_insert(const char *name, const char *isolation,
							 const char *object_name, Oid object_oid,
							 const char *owner, int64 version,
							 const char *metadata);
extern void tm_tenant_set_version(const char *name, int64 version,
								  const char *last_error);
extern void tm_tenant_delete(const char *name);
extern Datum tm_tenant_row(const char *name);
extern List *tm_migration_list(void);
extern int64 tm_migration_latest(void);
extern int64 tm_run_id(void);
extern void tm_event_log(int64 run_id, const char *tenant, const char *action,
						 int64 version, const char *status,
						 ErrorData *edata, double ms);
extern void tm_tenant_lock(const char *name);

/* in registry.c */
extern char *tm_checksum(const char *sql);

/* in marker.c */
extern char *tm_schema_marker(const char *tenant);
extern Oid	tm_schema_find(const TmTenant *t);

/* in migrate.c */
extern void tm_ledger_create(const TmTenant *tenant);
extern List *tm_migration_plan(const TmTenant *tenant, List *migrations,
							   int64 target, int64 *current);
extern void tm_migration_apply(const TmTenant *tenant, TmStep *step);

#endif							/* TENANT_MGR_H */
