/*
 * dispatcher.h
 *		The dispatcher background worker (see dispatcher.c).
 */
#ifndef CREFINDER_DISPATCHER_H
#define CREFINDER_DISPATCHER_H

#include "outbound.h"

extern void crefinder_register_dispatcher(void);

#endif							/* CREFINDER_DISPATCHER_H */
