/*
 * shared.c
 *		Shared memory between the dispatcher and the backends, and the
 *		commit-time wake-up.
 *
 * Each dispatcher worker publishes its latch and its counters in a slot
 * here.  A backend that queued a message calls
 * crefinder.wake_dispatcher_on_commit(); a transaction callback then sets
 * the first worker's latch when (and only when) the transaction commits, so
 * an idle dispatcher sends within moments of the commit and a rolled-back
 * transaction wakes nobody.  The first worker wakes the others (helpers)
 * when it finds more due messages than one claim takes.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "shared.h"

PG_FUNCTION_INFO_V1(crefinder_wake_dispatcher_on_commit);

CrefinderShared *crefinder_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool wake_on_commit = false;
static bool xact_callback_registered = false;

static void
SharedRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(CrefinderShared)));
}

static void
SharedStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	crefinder_shared = ShmemInitStruct("crefinder", sizeof(CrefinderShared), &found);
	if (!found)
	{
		memset(crefinder_shared, 0, sizeof(CrefinderShared));
		SpinLockInit(&crefinder_shared->mutex);
		for (int i = 0; i < CREFINDER_MAX_WORKERS; i++)
			strlcpy(crefinder_shared->workers[i].state, "stopped",
					sizeof(crefinder_shared->workers[i].state));
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * crefinder_shared_init installs the shared memory hooks; called from
 * _PG_init when the library is preloaded.
 */
void
crefinder_shared_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = SharedRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = SharedStartup;
}

/*
 * crefinder_wake_dispatcher sets the first running worker's latch.
 */
void
crefinder_wake_dispatcher(void)
{
	Latch	   *latch = NULL;

	if (crefinder_shared == NULL)
		return;
	SpinLockAcquire(&crefinder_shared->mutex);
	for (int i = 0; i < CREFINDER_MAX_WORKERS && latch == NULL; i++)
		if (crefinder_shared->workers[i].pid != 0)
			latch = crefinder_shared->workers[i].latch;
	SpinLockRelease(&crefinder_shared->mutex);
	if (latch != NULL)
		SetLatch(latch);
}

/*
 * crefinder_wake_helpers sets the latch of every running worker but self.
 */
void
crefinder_wake_helpers(int self)
{
	Latch	   *latches[CREFINDER_MAX_WORKERS];
	int			n = 0;

	SpinLockAcquire(&crefinder_shared->mutex);
	for (int i = 0; i < CREFINDER_MAX_WORKERS; i++)
		if (i != self && crefinder_shared->workers[i].pid != 0)
			latches[n++] = crefinder_shared->workers[i].latch;
	SpinLockRelease(&crefinder_shared->mutex);
	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
}

static void
WakeAtCommit(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_on_commit)
				crefinder_wake_dispatcher();
			wake_on_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			wake_on_commit = false;
			break;
		default:
			break;
	}
}

/*
 * crefinder.wake_dispatcher_on_commit() wakes the dispatcher when the
 * current transaction commits.
 */
Datum
crefinder_wake_dispatcher_on_commit(PG_FUNCTION_ARGS)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(WakeAtCommit, NULL);
		xact_callback_registered = true;
	}
	wake_on_commit = true;
	PG_RETURN_VOID();
}
