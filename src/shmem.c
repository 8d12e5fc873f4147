/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		The little shared memory tenant_mgr needs: where the launcher is,
 *		and when a job last went back to the queue for want of a worker slot.
 *
 * Backends set the launcher's latch when they commit queued work or abort
 * a transaction that asked for a database; everything else (jobs, intents,
 * results of executors) lives in catalog tables or in a dynamic shared
 * memory segment per executor run.  The state is requested only when the
 * library is preloaded; tm_wake_launcher() is a no-op otherwise.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "tenant_mgr.h"

typedef struct TmSharedState
{
	slock_t		mutex;
	int			launcher_procno;	/* -1 when no launcher runs */
	pid_t		launcher_pid;
	TimestampTz slots_short_at; /* a job found no worker slot, or 0 */
} TmSharedState;

static TmSharedState *tm_state = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
tm_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(TmSharedState)));
}

static void
tm_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	tm_state = ShmemInitStruct("tenant_mgr", sizeof(TmSharedState), &found);
	if (!found)
	{
		SpinLockInit(&tm_state->mutex);
		tm_state->launcher_procno = -1;
		tm_state->launcher_pid = 0;
		tm_state->slots_short_at = 0;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Installs the hooks; called from _PG_init while preloading. */
void
tm_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = tm_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = tm_shmem_startup;
}

/* True when the library was preloaded and the shared state exists. */
bool
tm_preloaded(void)
{
	return tm_state != NULL;
}

/*
 * Records the calling process as the launcher.  Returns false if another
 * live launcher is already registered (then the caller must exit).
 */
bool
tm_launcher_register(void)
{
	bool		ok;

	SpinLockAcquire(&tm_state->mutex);
	ok = tm_state->launcher_pid == 0 ||
		tm_state->launcher_pid == MyProcPid ||
		kill(tm_state->launcher_pid, 0) != 0;
	if (ok)
	{
		tm_state->launcher_pid = MyProcPid;
		tm_state->launcher_procno = MyProc->pgprocno;
	}
	SpinLockRelease(&tm_state->mutex);
	return ok;
}

/* on_shmem_exit callback of the launcher */
void
tm_launcher_unregister(int code pg_attribute_unused(),
					   Datum arg pg_attribute_unused())
{
	SpinLockAcquire(&tm_state->mutex);
	if (tm_state->launcher_pid == MyProcPid)
	{
		tm_state->launcher_pid = 0;
		tm_state->launcher_procno = -1;
	}
	SpinLockRelease(&tm_state->mutex);
}

/* Sets the launcher's latch, if there is a launcher. */
void
tm_wake_launcher(void)
{
	int			procno;

	if (tm_state == NULL)
		return;
	SpinLockAcquire(&tm_state->mutex);
	procno = tm_state->launcher_procno;
	SpinLockRelease(&tm_state->mutex);
	if (procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/* Records that a job just went back to the queue for want of a worker slot. */
void
tm_slots_short(void)
{
	if (tm_state == NULL)
		return;
	SpinLockAcquire(&tm_state->mutex);
	tm_state->slots_short_at = GetCurrentTimestamp();
	SpinLockRelease(&tm_state->mutex);
}

/* True if a job found no worker slot within the last ms milliseconds. */
bool
tm_slots_short_within(int ms)
{
	TimestampTz at;

	if (tm_state == NULL)
		return false;
	SpinLockAcquire(&tm_state->mutex);
	at = tm_state->slots_short_at;
	SpinLockRelease(&tm_state->mutex);
	return at != 0 && !TimestampDifferenceExceeds(at, GetCurrentTimestamp(), ms);
}
