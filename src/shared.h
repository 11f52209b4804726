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

typedef struct CrefinderShared
{
	slock_t		mutex;			/* protects everything below */
	pid_t		pid;			/* the dispatcher's, 0 when not running */
	Latch	   *latch;			/* set to wake the dispatcher */
	char		state[32];		/* starting, idle, sending, stopped */
	TimestampTz started_at;
	int			in_flight;
	int64		sent;
	int64		failed;
	int64		retried;
	int64		blocked;
	TimestampTz last_error_at;
	char		last_error[CREFINDER_ERROR_LEN];
} CrefinderShared;

extern CrefinderShared *crefinder_shared;

extern void crefinder_shared_init(void);
extern void crefinder_wake_dispatcher(void);

#endif							/* CREFINDER_SHARED_H */
