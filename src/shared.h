/*
 * shared.h
 *		State the dispatcher shares with every backend (see shared.c).
 */
#ifndef CREFINDER_SHARED_H
#define CREFINDER_SHARED_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/spin.h"

#define CREFINDER_ERROR_LEN 256
#define CREFINDER_MAX_WORKERS 16	/* most dispatcher workers */

/* One dispatcher worker's published state. */
typedef struct CrefinderWorkerSlot
{
	pid_t		pid;			/* the worker's, 0 when not running */
	Latch	   *latch;			/* set to wake the worker */
	char		state[32];		/* starting, idle, sending, stopped */
	TimestampTz started_at;
	int			in_flight;
	int64		sent;
	int64		failed;
	int64		retried;
	int64		blocked;
	TimestampTz last_error_at;
	char		last_error[CREFINDER_ERROR_LEN];
} CrefinderWorkerSlot;

typedef struct CrefinderShared
{
	slock_t		mutex;			/* protects the slots */
	CrefinderWorkerSlot workers[CREFINDER_MAX_WORKERS];
} CrefinderShared;

extern CrefinderShared *crefinder_shared;

extern void crefinder_shared_init(void);
extern void crefinder_wake_dispatcher(void);
extern void crefinder_wake_helpers(int self);

#endif							/* CREFINDER_SHARED_H */
