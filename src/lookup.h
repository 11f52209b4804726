/*
 * lookup.h
 *		The dispatcher's lookups of prices and statuses at the providers
 *		(see lookup.c).
 */
#ifndef CREFINDER_LOOKUP_H
#define CREFINDER_LOOKUP_H

#include "outbound.h"

extern TimestampTz lookup_reconcile_at(OutboundMessage *m, TimestampTz now);
extern void lookup_round(void);
extern long lookup_wait_ms(void);
extern bool lookup_poll(long timeout_ms);
extern void lookup_wake(void);

#endif							/* CREFINDER_LOOKUP_H */
