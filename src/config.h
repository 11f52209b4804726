/*
 * config.h
 *		Tenants' provider settings (see config.c).
 */
#ifndef CREFINDER_CONFIG_H
#define CREFINDER_CONFIG_H

#include "postgres.h"

extern char *crefinder_secret_aad(const char *user_id, const char *provider,
								  const char *field);

#endif							/* CREFINDER_CONFIG_H */
