/*
 * holiday.c
 *		The legal public holidays of 5 U.S.C. 6103, computed for any year:
 *		fixed dates (observed on the Friday before when on a Saturday, the
 *		Monday after when on a Sunday) and the "nth weekday of a month"
 *		holidays.  States that ban calls on holidays ban the day itself and
 *		the day it is observed.  SQL: crefinder.us_federal_holidays(year).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"

#include "holiday.h"
#include "validate.h"

PG_FUNCTION_INFO_V1(crefinder_us_federal_holidays);

/* NthWeekday is the Julian day of the nth (1-based) dow of a month. */
static int
NthWeekday(int year, int month, int dow, int n)
{
	int			first = date2j(year, month, 1);
	int			offset = (dow - j2day(first) + 7) % 7;

	return first + offset + 7 * (n - 1);
}

/* LastWeekday is the Julian day of the last dow of a month. */
static int
LastWeekday(int year, int month, int dow)
{
	int			last = date2j(year + (month == 12), month % 12 + 1, 1) - 1;

	return last - (j2day(last) - dow + 7) % 7;
}

static void
AddFixed(CrefinderHoliday *h, int year, int month, int day, const char *name)
{
	int			jd = date2j(year, month, day);
	int			dow = j2day(jd);

	h->jd = jd;
	h->observed_jd = dow == 6 ? jd - 1 : dow == 0 ? jd + 1 : jd;
	h->name = name;
}

static void
AddFloating(CrefinderHoliday *h, int jd, const char *name)
{
	h->jd = h->observed_jd = jd;
	h->name = name;
}

/*
 * crefinder_federal_holidays fills out (room for CREFINDER_MAX_HOLIDAYS)
 * with year's federal holidays in date order and returns how many.
 */
int
crefinder_federal_holidays(int year, CrefinderHoliday *out)
{
	int			n = 0;

	AddFixed(&out[n++], year, 1, 1, "New Year's Day");
	if (year >= 1986)
		AddFloating(&out[n++], NthWeekday(year, 1, 1, 3), "Birthday of Martin Luther King, Jr.");
	AddFloating(&out[n++], NthWeekday(year, 2, 1, 3), "Washington's Birthday");
	AddFloating(&out[n++], LastWeekday(year, 5, 1), "Memorial Day");
	if (year >= 2021)
		AddFixed(&out[n++], year, 6, 19, "Juneteenth National Independence Day");
	AddFixed(&out[n++], year, 7, 4, "Independence Day");
	AddFloating(&out[n++], NthWeekday(year, 9, 1, 1), "Labor Day");
	AddFloating(&out[n++], NthWeekday(year, 10, 1, 2), "Columbus Day");
	AddFixed(&out[n++], year, 11, 11, "Veterans Day");
	AddFloating(&out[n++], NthWeekday(year, 11, 4, 4), "Thanksgiving Day");
	AddFixed(&out[n++], year, 12, 25, "Christmas Day");
	return n;
}

/*
 * crefinder_is_federal_holiday: is the Julian day a federal holiday or the
 * day one is observed on?  (New Year's Day of the next year may be observed
 * on December 31.)
 */
bool
crefinder_is_federal_holiday(int jd)
{
	int			year;
	int			month;
	int			day;
	CrefinderHoliday h[CREFINDER_MAX_HOLIDAYS];

	j2date(jd, &year, &month, &day);
	for (int y = year; y <= year + 1; y++)
	{
		int			n = crefinder_federal_holidays(y, h);

		for (int i = 0; i < n; i++)
			if (h[i].jd == jd || h[i].observed_jd == jd)
				return true;
	}
	return false;
}

/*
 * crefinder.us_federal_holidays(year int) returns table(day date,
 * observed date, name text).
 */
Datum
crefinder_us_federal_holidays(PG_FUNCTION_ARGS)
{
	int32		year;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CrefinderHoliday h[CREFINDER_MAX_HOLIDAYS];
	int			n;

	crefinder_require_argument(fcinfo, 0, "year");
	year = PG_GETARG_INT32(0);
	if (year < 1900 || year > 9999)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("year %d is out of range", year),
				 errhint("Give a year from 1900 to 9999.")));

	InitMaterializedSRF(fcinfo, 0);
	n = crefinder_federal_holidays(year, h);
	for (int i = 0; i < n; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = DateADTGetDatum(h[i].jd - POSTGRES_EPOCH_JDATE);
		values[1] = DateADTGetDatum(h[i].observed_jd - POSTGRES_EPOCH_JDATE);
		values[2] = CStringGetTextDatum(h[i].name);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
