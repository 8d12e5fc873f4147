/*-------------------------------------------------------------------------
 *
 * pause.c
 *		Test-only pause points at the step boundaries of tenant_mgr's work,
 *		so that a test can crash the server or kill a process exactly there.
 *
 * PostgreSQL 15 has no injection points.  tenant_mgr.pause_at (superuser
 * only, empty by default) names a comma-separated list of points; a process
 * reaching a named point logs 'tenant_mgr: paused at "<point>"', shows the
 * same text as its query in pg_stat_activity (wait event Extension), and
 * waits on its latch until the setting no longer names the point.  The test
 * meanwhile stops the server, kills the process, or clears the setting
 * (ALTER SYSTEM RESET and pg_reload_conf(): background workers see it
 * through their configuration reload, which a paused process does itself).
 * Off, a point costs one pointer and one character test (tm_pause_point).
 *
 * The points, in the order of the work they divide.  "txn" marks a point
 * inside a transaction that is still open (a crash there undoes it); the
 * others lie between committed transactions, or after an irreversible
 * top-level statement.
 *
 *	Schema tenant, made (schematenant.c; inline in the caller's transaction,
 *	or step 1 of a build outside it, or a spare's build):
 *	  schema:after-role			txn: the owner role created
 *	  schema:after-schema		txn: the schema created and labelled
 *	  schema:after-ledger		txn: its ledger created
 *	  create:before-record		txn: inline create built (or claimed), before
 *								its catalog row
 *	Schema tenant built outside the caller's transaction (build.c, executor.c):
 *	  build:after-intent		the intent committed (interactive build)
 *	  build:after-start			role, schema and ledger committed
 *	  build:after-migration		each migration committed
 *	  create:after-build		txn: the caller has the built tenant, before
 *								its catalog row and the intent's deletion
 *	Migrations (migrate.c and the places that commit them):
 *	  migrate:before-commit		txn: a transactional migration and its
 *								ledger row written, before the commit
 *	  migrate:after-commit		that commit done (executor, fleet run)
 *	  migrate:nt-before			a non-transactional migration, before its
 *								statement
 *	  migrate:nt-after			its statement done, before its ledger row
 *	Warm pool (pool.c):
 *	  claim:after-rename		txn: a spare renamed to the tenant's names
 *	  pool:after-insert			a new spare's row committed ("building")
 *	  pool:after-take			a spare marked "building" to build or update
 *	  pool:before-ready			a spare built, before it is marked ready
 *	  pool:after-shrink-drop	txn: a spare too many dropped, before its row
 *	Database tenant (executor.c, dbtenant.c):
 *	  dbcreate:after-intent		the intent committed
 *	  dbcreate:after-role		the owner role committed
 *	  dbcreate:after-database	CREATE DATABASE done, before its labels
 *	  dbcreate:after-marks		labels and the intent's database committed
 *	  dbcreate:before-migrate	the database made, before the executor that
 *								writes its ledger and migrations
 *	  dbcreate:before-record	built, before the tenant is recorded
 *	  dbdrop:after-database		DROP DATABASE done, before the roles and the
 *								intent
 *	Drop (tenantops.c, schematenant.c, dbtenant.c):
 *	  drop:after-schema			txn: DROP SCHEMA done, before the roles
 *	  drop:after-detach			txn: a database set aside, before its job
 *	Queue (jobs.c):
 *	  job:after-claim			a job claimed (running, its lock held)
 *	  job:before-record			txn: a queued schema tenant built, before
 *								its row is ready and its job done
 *	Template database (template.c):
 *	  template:locked			the maintainer holds the template lock
 *	  template:after-drop		a template that had to go dropped
 *	  template:after-role		the template role committed
 *	  template:after-database	CREATE DATABASE of the template done,
 *								before its label
 *	  template:after-label		the empty template labelled
 *	  clone:locked				a clone holds the template lock (share)
 *	  clone:after-copy			the copy made, before the lock is let go
 *	  adopt:before-commit		txn: a copy handed to the tenant's owner
 *	Fleet run (run.c):
 *	  run:after-claim			a run's tenant claimed by an executor
 *
 * A name not in this list is refused, so that a test cannot wait for a
 * point that does not exist.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "utils/backend_status.h"
#include "utils/guc.h"
#include "utils/wait_event.h"

#include "tenant_mgr.h"

/* Every pause point; keep in step with the list above. */
static const char *const tm_pause_points[] = {
	"schema:after-role",
	"schema:after-schema",
	"schema:after-ledger",
	"create:before-record",
	"build:after-intent",
	"build:after-start",
	"build:after-migration",
	"create:after-build",
	"migrate:before-commit",
	"migrate:after-commit",
	"migrate:nt-before",
	"migrate:nt-after",
	"claim:after-rename",
	"pool:after-insert",
	"pool:after-take",
	"pool:before-ready",
	"pool:after-shrink-drop",
	"dbcreate:after-intent",
	"dbcreate:after-role",
	"dbcreate:after-database",
	"dbcreate:after-marks",
	"dbcreate:before-migrate",
	"dbcreate:before-record",
	"dbdrop:after-database",
	"drop:after-schema",
	"drop:after-detach",
	"job:after-claim",
	"job:before-record",
	"template:locked",
	"template:after-drop",
	"template:after-role",
	"template:after-database",
	"template:after-label",
	"clone:locked",
	"clone:after-copy",
	"adopt:before-commit",
	"run:after-claim",
	NULL
};

/*
 * True if the comma-separated list names point (spaces around a name are
 * ignored).
 */
static bool
tm_pause_listed(const char *list, const char *point)
{
	size_t		len = strlen(point);
	const char *p = list;

	while (*p)
	{
		const char *end;

		while (*p == ' ' || *p == ',')
			p++;
		end = p;
		while (*end && *end != ',' && *end != ' ')
			end++;
		if ((size_t) (end - p) == len && strncmp(p, point, len) == 0)
			return true;
		p = end;
	}
	return false;
}

/* Check hook of tenant_mgr.pause_at: every name must be a pause point. */
bool
tm_pause_check(char **newval, void **extra pg_attribute_unused(),
			   GucSource source pg_attribute_unused())
{
	const char *p = *newval;

	while (*p)
	{
		const char *end;
		int			i;

		while (*p == ' ' || *p == ',')
			p++;
		end = p;
		while (*end && *end != ',' && *end != ' ')
			end++;
		if (end == p)
			break;
		for (i = 0; tm_pause_points[i] != NULL; i++)
		{
			if (strlen(tm_pause_points[i]) == (size_t) (end - p) &&
				strncmp(tm_pause_points[i], p, end - p) == 0)
				break;
		}
		if (tm_pause_points[i] == NULL)
		{
			GUC_check_errdetail("\"%.*s\" is not a pause point of tenant_mgr.",
								(int) (end - p), p);
			return false;
		}
		p = end;
	}
	return true;
}

/*
 * The slow path of tm_pause_point: if tenant_mgr.pause_at names point,
 * says so and waits until it no longer does.  Interrupts are served while
 * waiting (a terminated process goes; a cancelled backend raises its
 * error), and the configuration is read again every second and on SIGHUP.
 */
void
tm_pause(const char *point)
{
	char	   *activity = NULL;

	if (!tm_pause_listed(tm_pause_at, point))
		return;

	/* executors and the template maintainer ignore SIGHUP otherwise */
	if (IsBackgroundWorker)
		pqsignal(SIGHUP, SignalHandlerForConfigReload);
	if (MyBEEntry != NULL && MyBEEntry->st_activity_raw != NULL)
		activity = pstrdup(MyBEEntry->st_activity_raw);
	ereport(LOG,
			(errmsg("tenant_mgr: paused at \"%s\"", point),
			 errhidestmt(true)));
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("tenant_mgr: paused at \"%s\"", point));

	while (tm_pause_listed(tm_pause_at, point))
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		/* every time: a SIGHUP may have come before its handler was set */
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}

	ereport(LOG,
			(errmsg("tenant_mgr: resumed at \"%s\"", point),
			 errhidestmt(true)));
	pgstat_report_activity(STATE_RUNNING, activity);
	if (activity)
		pfree(activity);
}
