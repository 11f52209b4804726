/*
 * zone.h
 *		Which time zone names PostgreSQL knows, and the zones of crefinder's
 *		own tables (see zone.c).
 */
#ifndef CREFINDER_ZONE_H
#define CREFINDER_ZONE_H

#include "postgres.h"

#include "pgtime.h"

extern bool crefinder_is_known_zone(const char *name);
extern pg_tz *crefinder_zone_tz(int zone);

#endif							/* CREFINDER_ZONE_H */
