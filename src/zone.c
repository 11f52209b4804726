/*
 * zone.c
 *		crefinder.is_time_zone(): whether a name is a zone of PostgreSQL's
 *		time zone database; and the zones of crefinder's own tables
 *		(area codes, ZIP codes), loaded once per backend.
 *
 * pg_tzset() accepts far more than zone names: any POSIX TZ string
 * ("ABC5DEF4,M3.2.0,M11.1.0") is parsed and cached for the life of the
 * backend, so thousands of made-up strings in a table grow every backend
 * that reads them, the dispatcher included.  Only names of the zone
 * database are accepted here: the set is read once per backend from
 * pg_tzenumerate and kept in a hash table, looked up case-insensitively
 * as PostgreSQL itself does.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "tzdata.h"
#include "zone.h"

PG_FUNCTION_INFO_V1(crefinder_is_time_zone);

#define ZONE_NAME_MAX 64		/* longer names are no zone's */

typedef struct KnownZone
{
	char		name[ZONE_NAME_MAX];	/* lower case */
} KnownZone;

static HTAB *known_zones = NULL;

static bool
LowerName(const char *name, char *out)
{
	size_t		len = strlen(name);

	if (len == 0 || len >= ZONE_NAME_MAX)
		return false;
	for (size_t i = 0; i <= len; i++)
		out[i] = pg_ascii_tolower((unsigned char) name[i]);
	return true;
}

/*
 * LoadKnownZones fills known_zones with every zone of the database, and
 * the abbreviation-free names PostgreSQL always knows (UTC, GMT).
 */
static void
LoadKnownZones(void)
{
	HASHCTL		ctl;
	HTAB	   *zones;
	pg_tzenum  *dir;
	pg_tz	   *tz;
	static const char *const always[] = {"UTC", "GMT"};

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = ZONE_NAME_MAX;
	ctl.entrysize = sizeof(KnownZone);
	ctl.hcxt = TopMemoryContext;
	zones = hash_create("crefinder known time zones", 1024, &ctl,
						HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (int i = 0; i < (int) lengthof(always); i++)
	{
		char		key[ZONE_NAME_MAX];

		if (LowerName(always[i], key))
			(void) hash_search(zones, key, HASH_ENTER, NULL);
	}
	dir = pg_tzenumerate_start();
	while ((tz = pg_tzenumerate_next(dir)) != NULL)
	{
		char		key[ZONE_NAME_MAX];

		CHECK_FOR_INTERRUPTS();
		if (LowerName(pg_get_timezone_name(tz), key))
			(void) hash_search(zones, key, HASH_ENTER, NULL);
	}
	pg_tzenumerate_end(dir);
	known_zones = zones;
}

/*
 * crefinder_is_known_zone says whether name is a zone of the time zone
 * database (case-insensitive).
 */
bool
crefinder_is_known_zone(const char *name)
{
	char		key[ZONE_NAME_MAX];

	if (!LowerName(name, key))
		return false;
	if (known_zones == NULL)
		LoadKnownZones();
	return hash_search(known_zones, key, HASH_FIND, NULL) != NULL;
}

/*
 * crefinder.is_time_zone(name text) returns boolean: true when name is a
 * zone of PostgreSQL's time zone database (America/New_York, UTC), false
 * for anything else, POSIX TZ strings included.
 */
Datum
crefinder_is_time_zone(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(crefinder_is_known_zone(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

/*
 * crefinder_zone_tz is the zone crefinder_zone_names[zone] (an index of
 * crefinder's zone tables), loaded on first use and kept for the backend.
 */
pg_tz *
crefinder_zone_tz(int zone)
{
	static pg_tz **cache = NULL;

	if (cache == NULL)
		cache = MemoryContextAllocZero(TopMemoryContext, sizeof(pg_tz *) * crefinder_zone_count);
	if (cache[zone] == NULL)
		cache[zone] = pg_tzset(crefinder_zone_names[zone]);
	return cache[zone];
}
