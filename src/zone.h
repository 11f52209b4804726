/*
 * zone.h
 *		Which time zone names PostgreSQL knows (see zone.c).
 */
#ifndef CREFINDER_ZONE_H
#define CREFINDER_ZONE_H

#include "postgres.h"

extern bool crefinder_is_known_zone(const char *name);

#endif							/* CREFINDER_ZONE_H */
