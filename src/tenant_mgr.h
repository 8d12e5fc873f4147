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
#include "utils/palloc.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
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
	char	   *last_error;
	const char *schema;			/* where migrations and the ledger go */
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

/*
 * An executor's task and result, in a dynamic shared memory segment of
 * its own.  The driver (a backend or the launcher) fills the request; the
 * executor fills the result, including any error, even a FATAL one raised
 * while it connects.  Behind the struct: nmigrations TmExecStep results,
 * then the serialized migrations.
 */
typedef enum TmExecAction
{
	TM_EXEC_CREATE_DATABASE,	/* control database: owner role, database */
	TM_EXEC_MIGRATE,			/* tenant database: ledger and migrations */
	TM_EXEC_DROP_DATABASE,		/* control database: database, owner role */
	TM_EXEC_READ_LEDGER			/* tenant database: compare the ledger */
} TmExecAction;

typedef enum TmExecState
{
	TM_EXEC_PENDING,
	TM_EXEC_DONE,
	TM_EXEC_FAILED
} TmExecState;

#define TM_MSG_LEN 1024

typedef struct TmExecStep
{
	int64		version;
	bool		up;
	double		ms;
} TmExecStep;

typedef struct TmExecTask
{
	/* request */
	TmExecAction action;
	Oid			dboid;			/* database the executor connects to */
	Oid			requester;		/* role whose privileges the DDL uses */
	char		tenant[NAMEDATALEN];
	char		object_name[NAMEDATALEN];
	char		owner[NAMEDATALEN];
	uint64		xid;			/* interactive caller's full xid, or 0 */
	int64		job_id;			/* queued job, or 0 */
	int64		intent_id;		/* DROP_DATABASE of an orphan, or 0 */
	Oid			database_oid;	/* DROP_DATABASE: the database to drop */
	int64		target;
	bool		force;
	int			driver_procno;	/* whose latch to set when the result is in */
	int			nmigrations;
	Size		migrations_off;

	/* result */
	TmExecState state;
	int			sqlerrcode;
	char		message[TM_MSG_LEN];
	char		detail[TM_MSG_LEN];
	char		hint[TM_MSG_LEN];
	char		context[TM_MSG_LEN];
	Oid			result_oid;		/* CREATE_DATABASE: the new database */
	int64		intent;			/* CREATE_DATABASE: the intent row */
	int64		version;		/* ledger version at the end */
	int64		failing;		/* MIGRATE: the migration that failed, or 0 */
	bool		failing_up;
	int			unknown;		/* READ_LEDGER: unregistered ledger rows */
	int			mismatched;		/* READ_LEDGER: rows with other checksums */
	bool		no_ledger;		/* READ_LEDGER: there is no ledger */
	int			nsteps;
	TmExecStep	steps[FLEXIBLE_ARRAY_MEMBER];
} TmExecTask;

/* A started (or not yet started) executor, seen from its driver. */
typedef struct TmExecRun
{
	dsm_segment *seg;
	TmExecTask *task;
	BackgroundWorkerHandle *handle;
} TmExecRun;

/* in tenant_mgr.c */
extern char *tm_control_database;
extern char *tm_prefix;
extern char *tm_shared_schemas;
extern int	tm_max_workers;
extern int	tm_poll_interval;
extern int	tm_job_timeout;

/* in shmem.c */
extern void tm_shmem_init(void);
extern bool tm_preloaded(void);
extern bool tm_launcher_register(void);
extern void tm_launcher_unregister(int code, Datum arg);
extern pid_t tm_launcher_pid(void);
extern void tm_wake_launcher(void);

/* in dispatch.c */
extern TmExecRun *tm_exec_prepare(TmExecAction action, Oid dboid,
								  const TmTenant *tenant, List *migrations);
extern bool tm_exec_launch(TmExecRun *run);
extern void tm_exec_wait(TmExecRun *run);
extern void tm_exec_run(TmExecRun *run);
extern void tm_exec_raise(TmExecRun *run);
extern void tm_exec_release(TmExecRun *run);
extern void tm_exec_release_all(void);
extern List *tm_task_migrations(TmExecTask *task);

/* in executor.c */
extern PGDLLEXPORT void tm_executor_main(Datum arg);

/* in launcher.c */
extern void tm_launcher_register_worker(void);
extern PGDLLEXPORT void tm_launcher_main(Datum arg);

/* in dbtenant.c */
extern void tm_require_control_database(const char *what);
extern void tm_check_dbtenant_privileges(Oid role, const char *tenant);
extern Oid	tm_database_find(const TmTenant *t);
extern List *tm_exec_steps(TmExecTask *task, List *migrations);
extern ErrorData *tm_exec_error(TmExecTask *task);
extern void tm_dbtenant_create(const char *name, const char *metadata,
							   bool wait);
extern TmExecRun *tm_dbtenant_migrate_start(const TmTenant *t,
											List *migrations, int64 target,
											bool *launched);
extern void tm_dbtenant_migrate_fleet(List *tenants, List *migrations,
									  int64 target, bool stop_on_error,
									  void (*report) (TmTenant *, TmExecRun *, void *),
									  void *arg);
extern bool tm_dbtenant_detach(TmTenant *t, bool force, bool drop);
extern void tm_dbtenant_attach(TmTenant *t);
extern TmExecRun *tm_dbtenant_read_ledger(const TmTenant *t, List *migrations);

/* in jobs.c */
extern int64 tm_job_queue(const char *tenant, const char *action,
						  const char *object_name, Oid database_oid,
						  const char *owner, bool own_role, bool force);
extern void tm_jobs_init(void);
extern void tm_wake_at_commit(void);
extern void tm_wake_at_abort(void);

/* in names.c */
extern void tm_check_tenant_name(const char *name);
extern char *tm_object_name(const char *name);
extern char *tm_search_path(const char *schema);

/* in catalog.c */
extern void tm_spi_connect(void);
extern void tm_spi_finish(void);
extern TmTenant *tm_tenant_fetch(const char *name, bool missing_ok);
extern List *tm_tenant_list(void);
extern void tm_xact_begin(void);
extern void tm_xact_commit(void);
extern MemoryContext tm_result_cxt(void);
extern void tm_catalog_exec(const char *sql, int nargs, Oid *types,
							Datum *values, const char *nulls, int expected);
extern int64 tm_job_insert(const char *tenant, const char *action,
						   const char *object_name, Oid database_oid,
						   const char *owner, bool own_role, bool force);
extern void tm_tenant_insert(const char *name, const char *isolation,
							 const char *object_name, Oid object_oid,
							 const char *owner, int64 version,
							 const char *metadata, const char *state);
extern bool tm_tenant_reserve(const char *name, const char *isolation,
							  const char *object_name, const char *owner,
							  const char *metadata);
extern void tm_tenant_set_version(const char *name, int64 version,
								  const char *last_error);
extern void tm_tenant_set_state(const char *name, const char *state);
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

/* in api.c */
extern void tm_create(const char *name, const char *isolation,
					  const char *owner, const char *metadata, bool wait);
extern bool tm_drop(const char *name, bool if_exists, bool force);
extern void tm_rename(const char *name, const char *new_name);
extern bool tm_detach(const char *name, bool if_exists, bool force);

/* in schematenant.c */
extern void tm_utility(const char *sql);
extern bool tm_role_is_ours(const char *role, const char *tenant);
extern void tm_check_owner_role(const char *role, const char *tenant);
extern void tm_owner_role_create(const char *role, const char *tenant);
extern void tm_owner_role_drop(const char *role, const char *tenant);
extern char *tm_login_marker(const char *tenant);
extern char *tm_login_role_name(const char *object_name);
extern void tm_login_role_drop(const char *object_name, const char *tenant);
extern void tm_login_role_rename(const char *old_object, const char *old_tenant,
								 const char *new_object, const char *new_tenant);
extern char *tm_login_role_create(const TmTenant *t);
extern List *tm_schematenant_build(TmTenant *t, List *migrations,
								   bool own_role);
extern void tm_check_no_outside_dependents(const TmTenant *t, Oid nspoid);
extern void tm_schematenant_drop(const TmTenant *t, Oid nspoid);

/* in marker.c */
extern char *tm_schema_marker(const char *tenant);
extern Oid	tm_schema_find(const TmTenant *t);
extern char *tm_shared_comment(Oid objoid, Oid classoid);

/* in migrate.c */
extern void tm_ledger_create(const TmTenant *tenant);
extern List *tm_migration_plan(const TmTenant *tenant, List *migrations,
							   int64 target, int64 *current);
extern void tm_migration_apply(const TmTenant *tenant, TmStep *step);
extern int64 tm_version_after(List *steps, ListCell *lc, int64 target);

#endif							/* TENANT_MGR_H */
