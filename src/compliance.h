/*
 * compliance.h
 *		The compliance decision for code that sends (see compliance.c).
 */
#ifndef CREFINDER_COMPLIANCE_H
#define CREFINDER_COMPLIANCE_H

#include "postgres.h"

#include "datatype/timestamp.h"

typedef struct CrefinderDecision
{
	const char *reason;			/* NULL when allowed */
	bool		has_next;
	TimestampTz next;			/* next_allowed_at when has_next */
} CrefinderDecision;

extern void crefinder_check_before_send(Datum tenant, const char *channel, int n,
										const char **contacts, const int64 *property_ids,
										TimestampTz at, Datum exclude,
										CrefinderDecision *decisions);

#endif							/* CREFINDER_COMPLIANCE_H */
