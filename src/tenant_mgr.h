/*-------------------------------------------------------------------------
 *
 * tenant_mgr.h
 *		Private declarations shared by the C files of tenant_mgr.
 *
 * Every .c file includes postgres.h first and this header after it.  The
 * sections follow the layout of src/ (see the README's file table):
 *
 *	caller path			api.c, tenantops.c, trigger.c, import.c
 *	tenant kinds		schematenant.c, dbtenant.c, template.c, roles.c, marker.c,
 *						names.c
 *	migration engine	registry.c, ledger.c, migrate.c, fleet.c
 *	queue, background	queue.c, launcher.c, dispatch.c, executor.c, shmem.c
 *	catalog, plumbing	catalog.c, spi.c, verify.c, history.c, pause.c,
 *						tenant_mgr.c
 *
 *-------------------------------------------------------------------------
 */
#ifndef TENANT_MGR_H
#define TENANT_MGR_H

#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "portability/instr_time.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/lockdefs.h"
#include "utils/array.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/palloc.h"

/* Name of the table that records applied migrations inside every tenant. */
#define TM_LEDGER_NAME "tenant_mgr_ledger"

/*
 * Catalog values.  Each enum has one text mapping, used only where catalog
 * rows are read and written (catalog.c, queue.c); the text values are those
 * of the CHECK constraints in the install script.
 */
typedef enum TmIsolation
{
	TM_SCHEMA,
	TM_DATABASE
} TmIsolation;

typedef enum TmTenantState
{
	TM_CREATING,
	TM_READY,
	TM_FAILED,
	TM_DETACHED
} TmTenantState;

typedef enum TmEventAction
{
	TM_EV_CREATE,
	TM_EV_UP,
	TM_EV_DOWN,
	TM_EV_DROP,
	TM_EV_RENAME,
	TM_EV_DETACH,
	TM_EV_ATTACH,
	TM_EV_IMPORT
} TmEventAction;

typedef enum TmEventStatus
{
	TM_EV_OK,
	TM_EV_FAILED,
	TM_EV_SKIPPED
} TmEventStatus;

typedef enum TmJobAction
{
	TM_JOB_CREATE,
	TM_JOB_DROP
} TmJobAction;

typedef enum TmJobState
{
	TM_JOB_QUEUED,
	TM_JOB_RUNNING,
	TM_JOB_DONE,
	TM_JOB_FAILED
} TmJobState;

/* A row of tenant_mgr.tenant, as the C code needs it (tm_tenant_make). */
typedef struct TmTenant
{
	char	   *name;
	char	   *id;				/* random tenant id, in its labels */
	TmIsolation isolation;
	char	   *object_name;
	Oid			object_oid;
	char	   *owner;
	TmTenantState state;
	int64		version;
	char	   *last_error;
	const char *schema;			/* where migrations and the ledger go */
	const char *grantee;		/* creation: a role to grant the owner to */
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
	bool		fresh;			/* the tenant is being built: nobody uses it yet */
	double		ms;				/* how long the migration's SQL took */
} TmStep;

/* A row of a tenant's ledger. */
typedef struct TmLedgerRow
{
	int64		version;
	char	   *checksum;
} TmLedgerRow;

/* A claimed job of tenant_mgr.job (queue.c), run by a job worker (jobs.c). */
typedef struct TmJob
{
	int64		id;
	char	   *tenant;
	TmJobAction action;
	char	   *object_name;
	Oid			database_oid;
	char	   *owner;
	char	   *requested_by;
	Oid			requester;		/* InvalidOid when that role is gone */
	bool		own_role;
	char	   *grantee;		/* a role to grant the new owner to, or NULL */
	int			attempts;
	instr_time	started;
	int64		run_id;			/* groups the job's events; 0 until known */
	bool		requeued;		/* went back to the queue, out of worker slots */
} TmJob;

/* An intent of tenant_mgr.intent whose request is over (queue.c). */
typedef struct TmIntent
{
	int64		id;
	char	   *tenant;
	char	   *tenant_id;		/* NULL for an intent of version 1.0 */
	char	   *object_name;
	char	   *owner;
	Oid			database_oid;	/* InvalidOid until the executor learned it */
	TmIsolation isolation;		/* what it stands for: a database or a schema */
} TmIntent;

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
	TM_EXEC_READ_LEDGER,		/* tenant database: compare the ledger */
	TM_EXEC_RUN_LEAD,			/* control database: lead a fleet run */
	TM_EXEC_RUN_HELP,			/* control database: schema tenants of a run */
	TM_EXEC_BUILD_SCHEMA,		/* control database: a schema tenant (build.c) */
	TM_EXEC_CLONE_DATABASE,		/* control database: CREATE_DATABASE from the
								 * template (template.c) */
	TM_EXEC_TEMPLATE_ADOPT,		/* tenant database: a clone handed to its
								 * owner, then MIGRATE */
	TM_EXEC_TEMPLATE_MIGRATE	/* template database: MIGRATE the template */
} TmExecAction;

typedef enum TmExecState
{
	TM_EXEC_PENDING,
	TM_EXEC_DONE,
	TM_EXEC_FAILED
} TmExecState;

/* Room for the texts of a result; longer ones are cut on a character. */
#define TM_TEXTS_SIZE (64 * 1024)

/* A tenant id: a UUID in text form, and its terminating zero. */
#define TM_ID_LEN 37

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
	char		tenant_id[TM_ID_LEN];	/* "" when unknown */
	char		object_name[NAMEDATALEN];
	char		owner[NAMEDATALEN];
	uint64		xid;			/* interactive caller's full xid, or 0 */
	int64		job_id;			/* queued job, or 0 */
	int64		intent_id;		/* DROP_DATABASE of an orphan, or 0 */
	Oid			database_oid;	/* DROP_DATABASE: the database to drop */
	int64		target;
	bool		force;
	int64		run_id;			/* fleet runs: the run */
	bool		resume;			/* RUN_LEAD: an interrupted run goes on */
	bool		dry_run;		/* MIGRATE: apply, report and roll back */
	bool		own_role;		/* BUILD_SCHEMA: the owner role is the tenant's own */
	bool		spare;			/* CREATE_DATABASE: a spare of the pool, no intent */
	Oid			control_db;		/* MIGRATE in a run: where tenant locks are */
	int			lock_timeout_ms;	/* for each migration, 0: none */
	int			statement_timeout_ms;	/* for each migration, 0: none */
	Size		options;		/* RUN_LEAD: the run's options (jsonb text) */
	volatile bool cancel;		/* set by the driver: stop after this step */
	int			driver_procno;	/* whose latch to set when the result is in */
	int			nmigrations;
	Size		migrations_off;
	Size		texts_off;		/* the text area, TM_TEXTS_SIZE bytes */

	/* result */
	volatile bool started;		/* RUN_LEAD: the run is recorded */
	TmExecState state;
	int			sqlerrcode;
	/* texts in the text area (tm_task_set_text, tm_task_text); 0: none */
	Size		texts_used;
	Size		message;
	Size		detail;
	Size		hint;
	Size		context;
	Oid			result_oid;		/* CREATE_DATABASE, BUILD_SCHEMA: the new object */
	int64		intent;			/* CREATE_DATABASE, BUILD_SCHEMA: the intent row */
	int64		version;		/* ledger version at the end */
	int64		failing;		/* MIGRATE: the migration that failed, or 0 */
	bool		failing_up;
	int			unknown;		/* READ_LEDGER: unregistered ledger rows */
	int			mismatched;		/* READ_LEDGER: rows with other checksums */
	int			missing;		/* READ_LEDGER: registered, below the latest, absent */
	bool		no_ledger;		/* READ_LEDGER: there is no ledger */
	Size		problem;		/* READ_LEDGER: how it was tampered with */
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

/* A saved user id and security context (spi.c: tm_become, tm_restore). */
typedef struct TmIdentity
{
	Oid			userid;
	int			sec_context;
} TmIdentity;


/*
 * Caller path
 */

/* in tenantops.c */
extern void tm_create(const char *name, const char *isolation,
					  const char *owner, const char *metadata, bool wait,
					  const char *grantee, bool from_trigger);
extern bool tm_drop(const char *name, bool if_exists, bool force);
extern void tm_rename(const char *name, const char *new_name);
extern bool tm_detach(const char *name, bool if_exists, bool force);
extern void tm_attach(const char *name);


/*
 * Tenant kinds
 */

/* in schematenant.c */
extern void tm_schematenant_queue(TmTenant *t, const char *metadata,
								  bool own_role);
extern void tm_schematenant_create(TmTenant *t, const char *metadata,
								   bool own_role, bool queue_instead,
								   instr_time start);
extern bool tm_schematenant_create_job(TmTenant *t, TmJob *job,
									   List *migrations);
extern void tm_schematenant_record_job(TmTenant *t, TmJob *job, List *steps);
extern void tm_schematenant_make(TmTenant *t, bool own_role, bool ledger);
extern Oid	tm_schematenant_require(TmTenant *t);
extern void tm_schematenant_rename(TmTenant *t, const char *object,
								   const char *new_name);
extern void tm_schematenant_detach(TmTenant *t);
extern void tm_schematenant_attach(TmTenant *t);
extern void tm_schematenant_drop(TmTenant *t);

/* in pool.c */
extern bool tm_pool_claim(TmTenant *t, List *migrations, List **steps);
extern bool tm_pool_upkeep(void);

/* in build.c */
extern bool tm_build_needs_own_transactions(int sqlerrcode);
extern List *tm_build_schema(TmTenant *t, List *migrations, Oid requester,
							 bool own_role);
extern void tm_build_remove_orphan(TmIntent *intent);

/* in citus.c */
extern bool tm_citus_mode(void);
extern void tm_citus_create_schema(const char *sql);
extern void tm_citus_run_in_tenant(Oid role, const char *search_path,
								   const char *sql);
extern bool tm_citus_trigger(Oid tgfoid, bool internal, int16 tgtype);
extern List *tm_citus_verify_schema(Oid nspoid);
extern void tm_citus_move(const char *name, const char *node,
						  const char *mode);

/* in dbtenant.c */
extern bool tm_dbtenant_build_spare(TmTenant *t, List *migrations);
extern bool tm_dbtenant_remove_spare(TmTenant *t);
extern void tm_dbtenant_create(TmTenant *t, const char *metadata, bool wait);
extern void tm_dbtenant_build(TmTenant *t, const char *metadata, TmJob *job,
							  instr_time start);
extern Oid	tm_dbtenant_require(const TmTenant *t);
extern TmExecRun *tm_dbtenant_migrate_start(const TmTenant *t,
											List *migrations, int64 target,
											bool *launched);
extern void tm_dbtenant_rename(TmTenant *t, const char *object,
							   const char *new_name);
extern void tm_dbtenant_detach(TmTenant *t, bool force);
extern void tm_dbtenant_attach(TmTenant *t);
extern void tm_dbtenant_drop(TmTenant *t, bool force);
extern void tm_dbtenant_remove(TmJob *job);
extern bool tm_dbtenant_remove_orphan(TmIntent *intent);
extern TmExecRun *tm_dbtenant_read_ledger(const TmTenant *t, List *migrations);
extern bool tm_dbtenant_correct_version(TmTenant *t, List *migrations);
extern void tm_dbtenant_import(TmTenant *t, const char *label_name,
							   const char *label_id, Oid dboid);

/* in template.c */
#define TM_TEMPLATE_NAME "tenant_mgr_template"	/* its database and role */
#define TM_TEMPLATE_DIGEST_LEN 16	/* hex digits of a template's digest */
typedef enum TmTemplateStrategy
{
	TM_STRATEGY_WAL_LOG,
	TM_STRATEGY_FILE_COPY
} TmTemplateStrategy;
extern bool tm_template_wanted(void);
extern char *tm_template_digest_step(const char *prev, const TmMigration *m,
									 bool up);
extern char *tm_template_digest(List *migrations, int64 upto);
extern char *tm_template_problem(void);
extern bool tm_template_clone(TmExecTask *task, Oid role);
extern void tm_template_adopt(TmExecTask *task);
extern void tm_template_prepare(TmExecTask *task);
extern void tm_template_tend(void);

/* in roles.c */
#define TM_FN_CREATE "tenant_mgr.tenant_create(text,text,name,jsonb,boolean)"
#define TM_FN_DROP "tenant_mgr.tenant_drop(text,boolean,boolean)"
#define TM_FN_RENAME "tenant_mgr.tenant_rename(text,text)"
#define TM_FN_DETACH "tenant_mgr.tenant_detach(text,boolean,boolean)"
#define TM_FN_MIGRATE "tenant_mgr.tenant_migrate(text,bigint,boolean,boolean,integer,text[],text,jsonb,boolean)"
extern bool tm_may(Oid role, const char *function);
extern void tm_check_may(Oid role, const char *function);
extern void tm_check_role_free(const char *role);
extern void tm_check_acts_as_owner(const TmTenant *t);
extern Oid	tm_our_role(const TmTenant *t, bool missing_ok);
extern void tm_owner_role_create(const TmTenant *t);
extern char *tm_owner_role_rename(const TmTenant *t, const char *object,
								  const char *new_name);
extern void tm_owner_role_drop(const TmTenant *t);
extern char *tm_login_role_create(const TmTenant *t);
extern char *tm_login_role_of(const TmTenant *t);
extern void tm_check_grantee(const char *grantee);
extern void tm_owner_role_grant(const TmTenant *t);
extern void tm_login_role_rename(const TmTenant *t, const char *object,
								 const char *new_name);
extern void tm_login_role_drop(const TmTenant *t);

/* in marker.c */
extern void tm_marker_init(void);
extern Oid	tm_schema_find(const TmTenant *t);
extern Oid	tm_schema_find_labelled(const TmTenant *t);
extern char *tm_label_id(Oid classid, Oid objid);
extern int64 tm_label_version(Oid classid, Oid objid);
extern void tm_label_set_version(Oid classid, Oid objid, const TmTenant *t,
								 int64 version);
extern Oid	tm_database_find(const TmTenant *t);
extern bool tm_database_is_ours(Oid dboid, const TmTenant *t, Oid roleid);
extern bool tm_role_is_ours(const char *role, const TmTenant *t, bool login);
extern char *tm_login_role_find(const TmTenant *t);
extern void tm_mark(const char *kind, const char *object, const TmTenant *t,
					bool login);
extern void tm_rename_object(const char *kind, const char *old_name,
							 const char *new_name, const TmTenant *t,
							 bool login);
extern bool tm_template_labelled(Oid classid, Oid objid, int64 *version,
								 char **digest);
extern Oid	tm_template_find(int64 *version, char **digest);
extern void tm_template_mark(Oid classid, Oid objid, int64 version,
							 const char *digest);

/* in names.c */
extern void tm_check_tenant_name(const char *name);
extern char *tm_object_name(const char *name);
extern char *tm_search_path(const char *schema);


/*
 * Migration engine
 */

/* in registry.c */
extern char *tm_checksum(const char *sql);

/* in ledger.c */
extern void tm_ledger_create(const TmTenant *t);
extern char *tm_ledger_problem(const TmTenant *t);
extern void tm_ledger_require(const TmTenant *t);
extern List *tm_ledger_rows(const TmTenant *t);
extern void tm_ledger_write(const TmTenant *t, const TmMigration *m, bool up,
							double ms);
extern int64 tm_ledger_label_version(const TmTenant *t);
extern void tm_ledger_take_over(const TmTenant *t);

/* in migrate.c */
extern List *tm_migration_plan(const TmTenant *tenant, List *migrations,
							   int64 target, int64 *current);
extern void tm_migration_apply(const TmTenant *tenant, TmStep *step);
extern bool tm_migration_nt_prepare(const TmTenant *tenant, TmStep *step);
extern void tm_migration_nt_run(const TmTenant *tenant, TmStep *step,
								int lock_timeout_ms, int statement_timeout_ms);
extern void tm_migration_nt_finish(const TmTenant *tenant, TmStep *step);
extern int64 tm_version_after(List *steps, ListCell *lc, int64 target);

/* in fleet.c */
typedef struct TmRunOptions
{
	bool		has_target;
	int64		target;
	bool		stop_on_error;
	bool		wait;
	int32		canary;
	ArrayType  *names;			/* text[], or NULL */
	char	   *pattern;		/* LIKE pattern, or NULL */
	char	   *metadata;		/* jsonb text, or NULL */
	bool		dry_run;
} TmRunOptions;
extern void tm_fleet_migrate(const char *name, TmRunOptions *opts,
							 ReturnSetInfo *rsinfo);
extern bool tm_run_cancel(int64 run_id);
extern char *tm_run_wait_state(int64 run_id, int64 timeout_ms,
							   MemoryContext result_cxt);

/* in run.c */
extern void tm_run_lead(TmExecTask *task);
extern void tm_run_help(TmExecTask *task);
extern void tm_runs_resume(void);
extern bool tm_run_is_going(int64 run_id);
extern void tm_migration_timeouts(int lock_timeout_ms, int statement_timeout_ms);
extern int64 tm_runs_prune(const char *tenant, Datum older_than);


/*
 * Queue and background work
 */

/* in queue.c */
extern void tm_queue_init(void);
extern void tm_wake_at_commit(void);
extern void tm_wake_at_abort(void);
extern void tm_job_queue(const char *tenant, TmJobAction action,
						 const char *object_name, Oid database_oid,
						 const char *owner, bool own_role, bool force,
						 const char *grantee);
extern void tm_job_queue_create(const TmTenant *t, const char *metadata,
								bool own_role);
extern bool tm_job_cancel_create(const char *tenant);
extern void tm_jobs_requeue_interrupted(void);
extern bool tm_job_claim(TmJob *job);
extern void tm_job_unlock(int64 job_id);
extern int	tm_jobs_runnable(int limit);
extern long tm_jobs_next_due_ms(void);
extern void tm_job_done(const TmJob *job);
extern void tm_job_finish(TmJob *job, ErrorData *failure);
extern void tm_job_requeue(TmJob *job, int delay_s);
extern void tm_job_fail(int64 job_id, ErrorData *edata);
extern bool tm_intent_pending(const char *object_name);
extern bool tm_intent_in_progress(const char *object_name);
extern int64 tm_intent_record(const TmExecTask *task);
extern void tm_intent_set_database(int64 id, Oid dboid);
extern void tm_intent_delete(int64 id);
extern bool tm_intent_exists(int64 id);
extern bool tm_intent_pending_other(const char *object_name, int64 job_id);
extern void tm_intent_delete_for_job(int64 job_id);
extern void tm_intents_settle(void);
extern List *tm_intent_orphans(void);
extern List *tm_queue_databases(void);
extern int64 tm_jobs_prune(const char *tenant, Datum older_than);
extern bool tm_jobs_pending(const char *tenant);
extern bool tm_database_has_work(Oid dboid);

/* in jobs.c */
typedef enum TmQueueLook
{
	TM_QUEUE_EMPTY,				/* no runnable job */
	TM_QUEUE_RAN,				/* ran one */
	TM_QUEUE_NO_SLOT,			/* its job went back for want of a worker slot */
	TM_QUEUE_WORKING			/* job workers are on the runnable jobs */
} TmQueueLook;

extern TmQueueLook tm_jobs_run_one(void);
extern TmQueueLook tm_jobs_dispatch(void);
extern PGDLLEXPORT void tm_jobs_worker_main(Datum arg);

/* in launcher.c */
extern void tm_launcher_register_worker(void);
extern PGDLLEXPORT void tm_launcher_main(Datum arg);

/* in dispatch.c */
extern TmExecRun *tm_exec_prepare(TmExecAction action, Oid dboid,
								  const TmTenant *tenant, List *migrations);
extern bool tm_exec_launch(TmExecRun *run);
extern bool tm_exec_for_job(TmExecRun *run, TmJob *job);
extern void tm_exec_wait(TmExecRun *run);
extern bool tm_exec_reported(TmExecRun *run);
extern void tm_exec_run(TmExecRun *run);
extern void tm_exec_raise(TmExecRun *run);
extern ErrorData *tm_exec_error(TmExecTask *task);
extern List *tm_exec_steps(TmExecTask *task, List *migrations);
extern void tm_exec_release(TmExecRun *run);
extern void tm_exec_release_all(void);
extern List *tm_task_migrations(TmExecTask *task);
extern void tm_task_set_text(TmExecTask *task, Size *field, const char *s);
extern const char *tm_task_text(const TmExecTask *task, Size field);

/* in executor.c */
extern PGDLLEXPORT void tm_executor_main(Datum arg);

/* in shmem.c */
extern void tm_shmem_init(void);
extern bool tm_preloaded(void);
extern bool tm_launcher_register(void);
extern void tm_launcher_unregister(int code, Datum arg);
extern void tm_wake_launcher(void);
extern void tm_slots_short(void);
extern bool tm_slots_short_within(int ms);


/*
 * Catalog and plumbing
 */

/* in catalog.c */
extern bool tm_catalog_has_ids(void);
extern bool tm_catalog_has_runs(void);
extern bool tm_catalog_has_spares(void);
extern const char *tm_isolation_name(TmIsolation isolation);
extern TmIsolation tm_isolation_parse(const char *isolation);
extern const char *tm_state_name(TmTenantState state);
extern TmTenant *tm_tenant_make(const char *name, TmIsolation isolation,
								const char *object_name, const char *owner);
extern TmTenant *tm_tenant_fetch(const char *name, bool missing_ok);
extern List *tm_tenant_list(void);
extern void tm_tenant_require_ready(const TmTenant *t);
extern void tm_tenant_insert(const TmTenant *t, const char *metadata);
extern bool tm_tenant_reserve(const TmTenant *t, const char *metadata);
extern void tm_tenant_set_version(const char *name, int64 version,
								  const char *last_error);
extern void tm_tenant_set_state(const char *name, TmTenantState state);
extern void tm_tenant_set_oid(const char *name, Oid object_oid);
extern bool tm_tenant_id_taken(const char *id);
extern void tm_tenant_set_ready(const char *name, Oid object_oid,
								int64 version);
extern void tm_tenant_set_failed(const char *name, const char *message);
extern void tm_tenant_rename_row(const char *name, const char *new_name,
								 const char *object, const char *owner);
extern void tm_tenant_delete(const char *name);
extern Datum tm_tenant_row(const char *name);
extern List *tm_migration_list(void);
extern int64 tm_migration_latest(void);
extern int64 tm_run_id(void);
extern void tm_event_log(int64 run_id, const char *tenant,
						 TmEventAction action, int64 version,
						 TmEventStatus status, ErrorData *edata, double ms);
extern void tm_event_log_steps(int64 run_id, const char *tenant, List *steps);
extern int64 tm_events_prune(const char *tenant, Datum older_than);
extern void tm_tenant_lock(const char *name);
extern void tm_tenant_lock_in(Oid dboid, const char *name);
extern void tm_tenant_lock_session(Oid dboid, const char *name);
extern void tm_tenant_unlock_session(Oid dboid, const char *name);

/* in spi.c */
extern void tm_spi_connect(void);
extern void tm_spi_finish(void);
extern void tm_extension_lock(LOCKMODE mode);
extern void tm_xact_begin(void);
extern void tm_xact_commit(void);
extern void tm_xact_abort(void);
extern MemoryContext tm_result_cxt(void);
extern void tm_become(Oid role, int extra_sec_context, TmIdentity *saved);
extern void tm_restore(const TmIdentity *saved);
extern void tm_catalog_exec(const char *sql, int nargs, Oid *types,
							Datum *values, const char *nulls, int expected);
extern void tm_catalog_exec_kept(SPIPlanPtr *plan, int cursor_options,
								 const char *sql, int nargs, Oid *types,
								 Datum *values, const char *nulls,
								 int expected);
extern void tm_catalog_read_latest(const char *sql, int nargs, Oid *types,
								   Datum *values);
extern void tm_user_query(const char *sql, int nargs, Oid *types,
						  Datum *values);
extern Oid	tm_catalog_owner(void);
extern void tm_ddl(const char *sql);
extern void tm_utility_toplevel(const char *sql, Oid role);
extern void tm_utility_restricted(Node *stmt, const char *sql, Oid role,
								  const char *search_path);
extern void tm_utility_toplevel_restricted(const char *sql, const char *role,
										   const char *search_path);
extern void tm_sql_restricted(Oid role, const char *search_path,
							  const char *lock_timeout, const char *sql,
							  int nargs, Oid *types, Datum *values,
							  bool read_only);
extern void tm_sql_restricted_toplevel(Oid role, const char *search_path,
									   const char *lock_timeout,
									   const char *sql,
									   bool (*toplevel) (Node *stmt));
extern ErrorData *tm_try(void (*fn) (void *), void *arg);
extern ErrorData *tm_try_discard(void (*fn) (void *), void *arg);
extern char *tm_get_text(uint64 row, int col);
extern int64 tm_get_int64(uint64 row, int col);
extern int32 tm_get_int32(uint64 row, int col);
extern Oid	tm_get_oid(uint64 row, int col);
extern bool tm_get_bool(uint64 row, int col);
extern Datum tm_name_datum(const char *s);
extern double tm_elapsed_ms(instr_time start);

/* in history.c */
extern void tm_history_prune_due(void);

/* in pause.c */
extern bool tm_pause_check(char **newval, void **extra, GucSource source);
extern void tm_pause(const char *point);

/*
 * A test-only pause point (pause.c lists them): with tenant_mgr.pause_at
 * empty, as it is unless a test sets it, one pointer and one byte tested.
 */
#define tm_pause_point(point) \
	do { \
		if (unlikely(tm_pause_at != NULL && tm_pause_at[0] != '\0')) \
			tm_pause(point); \
	} while (0)

/* in tenant_mgr.c */
extern char *tm_control_database;
extern char *tm_prefix;
extern char *tm_shared_schemas;
extern int	tm_max_workers;
extern int	tm_pool_schema;
extern int	tm_pool_database;
extern int	tm_poll_interval;
extern int	tm_job_timeout;
extern int	tm_history_retention_days;
extern int	tm_lock_timeout;
extern int	tm_lock_retries;
extern int	tm_statement_timeout;
extern bool tm_build_in_transaction;
extern bool tm_use_citus;
extern bool tm_database_template;
extern int	tm_template_strategy;
extern char *tm_pause_at;
extern void tm_require_control_database(void);
extern bool tm_is_control_database(void);

/* in guard.c */
extern void tm_guard_init(void);

#endif							/* TENANT_MGR_H */
