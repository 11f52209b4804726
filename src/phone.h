/*
 * phone.h
 *		Phone numbers: parsing to E.164, time zones, regions (see phone.c).
 */
#ifndef CREFINDER_PHONE_H
#define CREFINDER_PHONE_H

#include "tzdata.h"

#define CREFINDER_E164_MAX 15

typedef struct CrefinderPhone
{
	char		e164[CREFINDER_E164_MAX + 2];	/* "+" and digits */
	int64		digits;			/* the same digits as an integer */
	bool		nanp;			/* country code 1 */
	int			npa;			/* NANP area code, else 0 */
} CrefinderPhone;

extern const char *crefinder_parse_phone(const char *input, CrefinderPhone *phone);
extern int	crefinder_phone_zone_set(const CrefinderPhone *phone);
extern const CrefinderAreaCode *crefinder_area_code(int npa);
extern const char *crefinder_phone_region(const CrefinderPhone *phone);
extern int	crefinder_zip_zone(const char *zip, bool *valid);

#endif							/* CREFINDER_PHONE_H */
