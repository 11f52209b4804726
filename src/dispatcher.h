/*
 * dispatcher.h
 *		The dispatcher background worker (see dispatcher.c).
 */
#ifndef CREFINDER_DISPATCHER_H
#define CREFINDER_DISPATCHER_H

#include "outbound.h"

extern void crefinder_register_dispatcher(void);

/* the dispatcher's transactions and guarded steps, shared with lookup.c */
typedef void (*GuardedFn) (void *arg);
extern void dispatcher_begin_work(const char *what);
extern void dispatcher_end_work(void);
extern ErrorData *dispatcher_run_guarded(GuardedFn fn, void *arg);
extern void dispatcher_load_key(void *arg);
extern void dispatcher_note_error(const char *error);

#endif							/* CREFINDER_DISPATCHER_H */
