/*
 * tenant.h
 *		Who the current tenant is (see tenant.c).
 */
#ifndef CREFINDER_TENANT_H
#define CREFINDER_TENANT_H

#include "postgres.h"

extern bool crefinder_uuid_text_is_valid(const char *text);
extern Datum crefinder_current_tenant(void);

#endif							/* CREFINDER_TENANT_H */
