/*
 * tzdata.h
 *		Time-zone data tables (generated into tzdata.c by tools/gen_tzdata.py).
 */
#ifndef CREFINDER_TZDATA_H
#define CREFINDER_TZDATA_H

typedef struct CrefinderZoneSet
{
	int			first;			/* index into crefinder_zone_set_members */
	int			count;
} CrefinderZoneSet;

typedef struct CrefinderAreaCode
{
	int			npa;
	const char *country;		/* ISO code: US, CA, JM, ... */
	const char *region;			/* state or province for US and CA, else "" */
	int			zone_set;
} CrefinderAreaCode;

typedef struct CrefinderPrefix
{
	const char *prefix;			/* digits, country code first */
	int			zone_set;
} CrefinderPrefix;

typedef struct CrefinderZip
{
	int32		zip;
	int16		zone;
} CrefinderZip;

extern const char *const crefinder_zone_names[];
extern const int crefinder_zone_count;
extern const int16 crefinder_zone_set_members[];
extern const CrefinderZoneSet crefinder_zone_sets[];
extern const CrefinderAreaCode crefinder_area_codes[];
extern const int crefinder_area_code_count;
extern const CrefinderPrefix crefinder_prefixes[];
extern const int crefinder_prefix_count;
extern const CrefinderZip crefinder_zips[];
extern const int crefinder_zip_count;

#endif							/* CREFINDER_TZDATA_H */
