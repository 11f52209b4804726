/*
 * holiday.h
 *		US federal holidays, computed (see holiday.c).
 */
#ifndef CREFINDER_HOLIDAY_H
#define CREFINDER_HOLIDAY_H

#define CREFINDER_MAX_HOLIDAYS 11

typedef struct CrefinderHoliday
{
	int			jd;				/* Julian day of the holiday itself */
	int			observed_jd;	/* the weekday it is observed on */
	const char *name;
} CrefinderHoliday;

extern int	crefinder_federal_holidays(int year, CrefinderHoliday *out);
extern bool crefinder_is_federal_holiday(int jd);

#endif							/* CREFINDER_HOLIDAY_H */
