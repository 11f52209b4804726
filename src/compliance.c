/*
 * compliance.c
 *		The compliance decision: may the current tenant contact this person,
 *		on this channel, at this instant?  crefinder.can_contact() for one
 *		contact, crefinder.scrub() for many; both run the same evaluation.
 *
 * A contact is refused for the first reason that holds, in this order:
 * permanent reasons (invalid_contact, opted_out, suppressed, dnc,
 * no_consent, unknown_timezone) and then time-based ones (quiet_hours,
 * day_restricted, frequency_cap, agent_hours).  For a time-based refusal the decision
 * also names next_allowed_at: the earliest instant, from the one asked
 * about, at which every time-based check passes.
 *
 * The words used here:
 *	- a place is where a phone contact may be: the set of time zones its
 *	  area code spans (plus the owner's mailing ZIP zone and the property's
 *	  own zone when known) and the rules that apply there (the federal rule,
 *	  the area code's state, the owner's mailing state);
 *	- a window is the part of a local day when contact is allowed: the
 *	  intersection of the applicable rules' windows and the tenant's own;
 *	- a cap limits how many messages a recipient gets within a trailing
 *	  period (state caps and the tenant's own);
 *	- a contact passes the time checks at instant t when, in every zone of
 *	  its place, t falls inside the window of that local day, the local day
 *	  is not banned (Sundays, holidays), and no cap is reached at t;
 *	- a bridge call (channel call) rings the tenant's agent first: when the
 *	  tenant has set agent_timezone, it also waits for the agent's working
 *	  window (agent_days, agent_window_start to _end in that zone).
 *
 * Channels: voice (Vapi's AI calls), sms, whatsapp, email, call (Twilio
 * calls bridged to the tenant's agent) and voicemail (Twilio voicemail
 * drops, prerecorded: always need a recorded consent).
 *
 * Local times come from PostgreSQL's own time zone database.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "common/int.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "compliance.h"
#include "holiday.h"
#include "phone.h"
#include "tenant.h"
#include "tzdata.h"
#include "validate.h"
#include "zone.h"

PG_FUNCTION_INFO_V1(crefinder_can_contact);
PG_FUNCTION_INFO_V1(crefinder_scrub);
PG_FUNCTION_INFO_V1(crefinder_scrub_for);
PG_FUNCTION_INFO_V1(crefinder_normalize_contact);
PG_FUNCTION_INFO_V1(crefinder_try_normalize_contact);
PG_FUNCTION_INFO_V1(crefinder_rules_changed);

#define CHANNEL_VOICE 0
#define CHANNEL_SMS 1
#define CHANNEL_WHATSAPP 2
#define CHANNEL_EMAIL 3
#define CHANNEL_CALL 4
#define CHANNEL_VOICEMAIL 5
#define PHONE_CHANNELS ((1 << CHANNEL_VOICE) | (1 << CHANNEL_SMS) | (1 << CHANNEL_WHATSAPP) | \
						(1 << CHANNEL_CALL) | (1 << CHANNEL_VOICEMAIL))

#define MAX_PLACE_ZONES 16
#define MAX_PLACE_RULES 4
#define SEARCH_DAYS 400			/* how far next_allowed_at is looked for */
#define MARGIN_DAYS 2			/* local days around an instant (zone offsets) */
#define MAX_SEARCH_STEPS 2000

static const char *const channel_names[] = {"voice", "sms", "whatsapp", "email", "call", "voicemail"};

/*
 * RunQueryWith executes a read-only query through a plan prepared on first
 * use and kept for the life of the backend (*plan caches it).  Runs inside
 * SPI.  custom asks for a plan made for each execution's values: right for
 * the outbox, which grows so fast (and within one transaction) that a plan
 * made once when it was small would scan it whole.
 */
static int
RunQueryWith(SPIPlanPtr *plan, bool custom, const char *sql, int nargs, Oid *argtypes,
			 Datum *args, long limit)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	prepared = SPI_prepare_cursor(sql, nargs, argtypes,
												  custom ? CURSOR_OPT_CUSTOM_PLAN : 0);

		if (prepared == NULL)
			elog(ERROR, "could not prepare compliance query: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(prepared) != 0)
			elog(ERROR, "could not keep compliance query plan");
		*plan = prepared;
	}
	return SPI_execute_plan(*plan, args, NULL, true, limit);
}

static int
RunQuery(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes, Datum *args, long limit)
{
	return RunQueryWith(plan, false, sql, nargs, argtypes, args, limit);
}

/* One region's rule (a row of crefinder.calling_rules). */
typedef struct Rule
{
	char		region[3];
	int64		start[7];		/* window per local weekday (0 = Sunday), */
	int64		end[7];			/* microseconds since local midnight */
	bool		no_sundays;
	bool		no_holidays;
	int			cap_count;		/* 0 = no cap */
	int64		cap_window;		/* microseconds */
	int			cap_channels;	/* bit mask of channels the cap counts */
	int			channels;		/* bit mask of channels the rule governs */
} Rule;

/* A state's extra holiday. */
typedef struct StateHoliday
{
	char		region[3];
	int			jd;
} StateHoliday;

/* Everything the time checks need that does not depend on the contact. */
typedef struct Policy
{
	int			channel;
	Rule	   *rules;
	int			nrules;
	const Rule *federal;
	int64		tenant_start;	/* the tenant's window for this channel */
	int64		tenant_end;
	bool		voice_requires_consent;
	int			tenant_cap;		/* per 24 hours; 0 = none */
	pg_tz	   *agent_zone;		/* bridge calls: the agent's zone, or NULL */
	int64		agent_start;	/* the agent's working window */
	int64		agent_end;
	int			agent_days;		/* bit mask of weekdays (0 = Sunday) */
	int		   *federal_holidays;	/* sorted Julian days (dates and observed) */
	int			nfederal_holidays;
	StateHoliday *state_holidays;
	int			nstate_holidays;
} Policy;

/* Where a phone contact may be. */
typedef struct Place
{
	int			nzones;
	pg_tz	   *zones[MAX_PLACE_ZONES];
	int			nrules;
	const Rule *rules[MAX_PLACE_RULES];
} Place;

/* A recent message counted by caps: when it goes out, on which channel. */
typedef struct RecentMessage
{
	TimestampTz at;
	int			channel;
} RecentMessage;

/* What the caller knows about the property, for can_contact(). */
typedef struct PropertyContext
{
	char	   *mailing_state;
	char	   *mailing_zip;
	char	   *timezone;
} PropertyContext;

/* One contact under evaluation. */
typedef struct Contact
{
	const char *input;
	char	   *normalized;		/* E.164 or lower-case email; NULL if invalid */
	CrefinderPhone phone;
	const char *reason;			/* NULL while allowed */
	bool		has_next;
	TimestampTz next;
	RecentMessage *recent;		/* sorted by time */
	int			nrecent;
	const PropertyContext *property;	/* the owner's context, or NULL */
} Contact;

/* ----------------------------------------------------------------------
 * Channels and contacts
 * ---------------------------------------------------------------------- */

/* ParseChannel returns the index of a channel name, or raises 22023. */
static int
ParseChannel(const char *name)
{
	for (int i = 0; i < (int) lengthof(channel_names); i++)
		if (strcmp(name, channel_names[i]) == 0)
			return i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown channel \"%s\"", crefinder_quote_input(name)),
			 errhint("Channels are voice, sms, whatsapp, email, call and voicemail.")));
	return -1;					/* keep compiler quiet */
}

/*
 * NormalizeContact puts a contact in the form crefinder stores: E.164 for
 * phone channels (a "whatsapp:" prefix dropped), lower-case for email.
 * Returns NULL and sets *reason when the contact cannot be one.
 */
static char *
NormalizeContact(int channel, const char *input, CrefinderPhone *phone, const char **reason)
{
	*reason = NULL;
	if (channel == CHANNEL_EMAIL)
	{
		const char *start = input;
		size_t		len;
		char	   *email;

		while (isspace((unsigned char) *start))
			start++;
		len = strlen(start);
		while (len > 0 && isspace((unsigned char) start[len - 1]))
			len--;
		email = pnstrdup(start, len);
		for (char *p = email; *p; p++)
			*p = pg_ascii_tolower((unsigned char) *p);
		if (!crefinder_is_email(email))
		{
			*reason = "is not an email address";
			return NULL;
		}
		return email;
	}
	if (channel == CHANNEL_WHATSAPP && strncmp(input, "whatsapp:", 9) == 0)
		input += 9;
	*reason = crefinder_parse_phone(input, phone);
	if (*reason != NULL)
		return NULL;
	return pstrdup(phone->e164);
}


/*
 * crefinder.normalize_contact(channel text, contact text) returns text:
 * the contact as crefinder stores it (NULL for a NULL contact).
 */
Datum
crefinder_normalize_contact(PG_FUNCTION_ARGS)
{
	int			channel;
	char	   *input;
	CrefinderPhone phone;
	const char *reason;
	char	   *normalized;

	crefinder_require_argument(fcinfo, 0, "channel");
	channel = ParseChannel(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	input = text_to_cstring(PG_GETARG_TEXT_PP(1));
	normalized = NormalizeContact(channel, input, &phone, &reason);
	if (normalized == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s contact \"%s\"", channel_names[channel],
						crefinder_quote_input(input)),
				 errdetail("The contact %s.", reason)));
	PG_RETURN_TEXT_P(cstring_to_text(normalized));
}

/*
 * crefinder.try_normalize_contact(channel text, contact text) returns
 * text: normalize_contact(), or NULL where it would raise (bulk paths: an
 * invalid contact becomes a blocked row, not an error).
 */
Datum
crefinder_try_normalize_contact(PG_FUNCTION_ARGS)
{
	int			channel;
	CrefinderPhone phone;
	const char *reason;
	char	   *normalized;

	crefinder_require_argument(fcinfo, 0, "channel");
	channel = ParseChannel(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	normalized = NormalizeContact(channel, text_to_cstring(PG_GETARG_TEXT_PP(1)), &phone, &reason);
	if (normalized == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(normalized));
}

/* ----------------------------------------------------------------------
 * Loading the policy
 * ---------------------------------------------------------------------- */

static int
CompareInt(const void *a, const void *b)
{
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	return (x > y) - (x < y);
}

static void
ArrayToInt64(Datum array, int64 *out, int n)
{
	Datum	   *elems;
	bool	   *nulls;
	int			count;

	deconstruct_array(DatumGetArrayTypeP(array), TIMEOID, sizeof(int64), true, TYPALIGN_DOUBLE,
					  &elems, &nulls, &count);
	if (count != n)
		elog(ERROR, "calling rule has %d day windows, expected %d", count, n);
	for (int i = 0; i < n; i++)
		out[i] = DatumGetTimeADT(elems[i]);
}

/*
 * The rules cache: calling_rules and state_holidays, read once and kept
 * until a statement changes either table (a trigger, crefinder_rules_changed,
 * sends a relcache invalidation for it; every backend's callback then
 * drops its copy).
 */
static MemoryContext rules_context = NULL;
static bool rules_valid = false;
static Rule *cached_rules = NULL;
static int	cached_nrules = 0;
static StateHoliday *cached_holidays = NULL;
static int	cached_nholidays = 0;
static Oid	calling_rules_relid = InvalidOid;
static Oid	state_holidays_relid = InvalidOid;

static void
RulesInvalidated(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == calling_rules_relid || relid == state_holidays_relid)
		rules_valid = false;
}

/*
 * crefinder_rules_changed is the statement trigger on calling_rules and
 * state_holidays: it invalidates every backend's rules cache at commit.
 */
Datum
crefinder_rules_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "crefinder_rules_changed: not called as a trigger");
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * ReadRules reads crefinder.calling_rules (an operator row of a region wins
 * over its default row) and crefinder.state_holidays into the cache.  Runs
 * inside SPI.
 */
static void
ReadRules(void)
{
	static SPIPlanPtr rules_plan = NULL;
	static SPIPlanPtr holidays_plan = NULL;
	static bool callback_registered = false;
	MemoryContext old;
	int			rc;
	Oid			namespace = get_namespace_oid("crefinder", false);

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(RulesInvalidated, (Datum) 0);
		callback_registered = true;
	}
	if (rules_context == NULL)
		rules_context = AllocSetContextCreate(TopMemoryContext, "crefinder rules cache",
											  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(rules_context);
	cached_rules = NULL;
	cached_holidays = NULL;
	cached_nrules = cached_nholidays = 0;
	calling_rules_relid = get_relname_relid("calling_rules", namespace);
	state_holidays_relid = get_relname_relid("state_holidays", namespace);
	/* invalidations arriving while reading make the next call read again */
	rules_valid = true;

	rc = RunQuery(&rules_plan,
				  "SELECT DISTINCT ON (r.region) r.region, "
				  " ARRAY(SELECT coalesce((r.day_windows -> d.day ->> 0)::time, r.window_start) "
				  "       FROM unnest('{sun,mon,tue,wed,thu,fri,sat}'::text[]) WITH ORDINALITY AS d(day, n) "
				  "       ORDER BY d.n), "
				  " ARRAY(SELECT coalesce((r.day_windows -> d.day ->> 1)::time, r.window_end) "
				  "       FROM unnest('{sun,mon,tue,wed,thu,fri,sat}'::text[]) WITH ORDINALITY AS d(day, n) "
				  "       ORDER BY d.n), "
				  " r.no_sundays, r.no_holidays, coalesce(r.cap_count, 0), "
				  " (extract(epoch FROM r.cap_window) * 1000000)::bigint, "
				  " ('voice' = ANY (r.cap_channels))::int | (('sms' = ANY (r.cap_channels))::int << 1) "
				  "   | (('whatsapp' = ANY (r.cap_channels))::int << 2) "
				  "   | (('call' = ANY (r.cap_channels))::int << 4) "
				  "   | (('voicemail' = ANY (r.cap_channels))::int << 5), "
				  " ('voice' = ANY (r.channels))::int | (('sms' = ANY (r.channels))::int << 1) "
				  "   | (('whatsapp' = ANY (r.channels))::int << 2) "
				  "   | (('call' = ANY (r.channels))::int << 4) "
				  "   | (('voicemail' = ANY (r.channels))::int << 5) "
				  "FROM crefinder.calling_rules r "
				  "ORDER BY r.region, r.source = 'operator' DESC",
				  0, NULL, NULL, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read crefinder.calling_rules: %s", SPI_result_code_string(rc));

	old = MemoryContextSwitchTo(rules_context);
	cached_nrules = SPI_processed;
	cached_rules = palloc0(sizeof(Rule) * Max(cached_nrules, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Rule	   *rule = &cached_rules[i];
		bool		isnull;
		char	   *region = TextDatumGetCString(SPI_getbinval(tuple, desc, 1, &isnull));

		strlcpy(rule->region, region, sizeof(rule->region));
		ArrayToInt64(SPI_getbinval(tuple, desc, 2, &isnull), rule->start, 7);
		ArrayToInt64(SPI_getbinval(tuple, desc, 3, &isnull), rule->end, 7);
		rule->no_sundays = DatumGetBool(SPI_getbinval(tuple, desc, 4, &isnull));
		rule->no_holidays = DatumGetBool(SPI_getbinval(tuple, desc, 5, &isnull));
		rule->cap_count = DatumGetInt32(SPI_getbinval(tuple, desc, 6, &isnull));
		rule->cap_window = DatumGetInt64(SPI_getbinval(tuple, desc, 7, &isnull));
		rule->cap_channels = DatumGetInt32(SPI_getbinval(tuple, desc, 8, &isnull));
		rule->channels = DatumGetInt32(SPI_getbinval(tuple, desc, 9, &isnull));
	}
	MemoryContextSwitchTo(old);

	rc = RunQuery(&holidays_plan, "SELECT region, day FROM crefinder.state_holidays",
				  0, NULL, NULL, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read crefinder.state_holidays: %s", SPI_result_code_string(rc));
	old = MemoryContextSwitchTo(rules_context);
	cached_nholidays = SPI_processed;
	cached_holidays = palloc0(sizeof(StateHoliday) * Max(cached_nholidays, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *region = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i],
															   SPI_tuptable->tupdesc, 1, &isnull));
		DateADT		day = DatumGetDateADT(SPI_getbinval(SPI_tuptable->vals[i],
														SPI_tuptable->tupdesc, 2, &isnull));

		strlcpy(cached_holidays[i].region, region, 3);
		cached_holidays[i].jd = day + POSTGRES_EPOCH_JDATE;
	}
	MemoryContextSwitchTo(old);
}

/*
 * LoadRules gives policy the (cached) rules and state holidays, and the
 * federal holidays of the years around at.
 */
static void
LoadRules(Policy *policy, TimestampTz at)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			n = 0;

	if (!rules_valid)
		ReadRules();
	policy->rules = cached_rules;
	policy->nrules = cached_nrules;
	policy->state_holidays = cached_holidays;
	policy->nstate_holidays = cached_nholidays;
	policy->federal = NULL;
	for (int i = 0; i < policy->nrules; i++)
		if (strcmp(policy->rules[i].region, "US") == 0)
			policy->federal = &policy->rules[i];
	if (policy->federal == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("crefinder.calling_rules has no federal rule"),
				 errhint("Restore the row for region US.")));

	if (timestamp2tm(at, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	policy->federal_holidays = palloc(sizeof(int) * CREFINDER_MAX_HOLIDAYS * 2 * 4);
	for (int y = tm.tm_year - 1; y <= tm.tm_year + 2; y++)
	{
		CrefinderHoliday h[CREFINDER_MAX_HOLIDAYS];
		int			count = crefinder_federal_holidays(y, h);

		for (int i = 0; i < count; i++)
		{
			policy->federal_holidays[n++] = h[i].jd;
			if (h[i].observed_jd != h[i].jd)
				policy->federal_holidays[n++] = h[i].observed_jd;
		}
	}
	qsort(policy->federal_holidays, n, sizeof(int), CompareInt);
	policy->nfederal_holidays = n;
}

/*
 * LoadTenantSettings reads the tenant's window for the channel, consent
 * policy and cap (and, for bridge calls, the agent's working window), with
 * the column defaults when the tenant has no row.
 */
static void
LoadTenantSettings(Policy *policy, Datum tenant)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {UUIDOID};
	Datum		args[1] = {tenant};
	int			rc;

	policy->tenant_start = 9 * USECS_PER_HOUR;
	policy->tenant_end = 20 * USECS_PER_HOUR;
	policy->voice_requires_consent = true;
	policy->tenant_cap = 0;
	policy->agent_zone = NULL;

	rc = RunQuery(&plan,
				  "SELECT voice_window_start, voice_window_end, sms_window_start, "
				  "sms_window_end, whatsapp_window_start, whatsapp_window_end, "
				  "voice_requires_consent, coalesce(max_messages_per_24h, 0), "
				  "call_window_start, call_window_end, voicemail_window_start, voicemail_window_end, "
				  "agent_timezone, agent_window_start, agent_window_end, "
				  "(('sun' = ANY (agent_days))::int | (('mon' = ANY (agent_days))::int << 1) "
				  " | (('tue' = ANY (agent_days))::int << 2) | (('wed' = ANY (agent_days))::int << 3) "
				  " | (('thu' = ANY (agent_days))::int << 4) | (('fri' = ANY (agent_days))::int << 5) "
				  " | (('sat' = ANY (agent_days))::int << 6)) "
				  "FROM crefinder.tenant_settings WHERE user_id = $1",
				  1, argtypes, args, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read crefinder.tenant_settings: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1 && policy->channel != CHANNEL_EMAIL)
	{
		HeapTuple	tuple = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			col = policy->channel == CHANNEL_CALL ? 9 :
			policy->channel == CHANNEL_VOICEMAIL ? 11 : 1 + 2 * policy->channel;

		policy->tenant_start = DatumGetTimeADT(SPI_getbinval(tuple, desc, col, &isnull));
		policy->tenant_end = DatumGetTimeADT(SPI_getbinval(tuple, desc, col + 1, &isnull));
		policy->voice_requires_consent = DatumGetBool(SPI_getbinval(tuple, desc, 7, &isnull));
		policy->tenant_cap = DatumGetInt32(SPI_getbinval(tuple, desc, 8, &isnull));
		if (policy->channel == CHANNEL_CALL)
		{
			char	   *zone = SPI_getvalue(tuple, desc, 13);

			/* only zones of the database (the column's check says so) */
			if (zone != NULL && crefinder_is_known_zone(zone))
			{
				policy->agent_zone = pg_tzset(zone);
				policy->agent_start = DatumGetTimeADT(SPI_getbinval(tuple, desc, 14, &isnull));
				policy->agent_end = DatumGetTimeADT(SPI_getbinval(tuple, desc, 15, &isnull));
				policy->agent_days = DatumGetInt32(SPI_getbinval(tuple, desc, 16, &isnull));
			}
		}
	}
}

static const Rule *
FindRule(const Policy *policy, const char *region)
{
	for (int i = 0; i < policy->nrules; i++)
		if (strcmp(policy->rules[i].region, region) == 0)
			return &policy->rules[i];
	return NULL;
}

/* ----------------------------------------------------------------------
 * Places and local time
 * ---------------------------------------------------------------------- */

static void
AddZone(Place *place, pg_tz *tz)
{
	if (tz == NULL)
		return;
	for (int i = 0; i < place->nzones; i++)
		if (place->zones[i] == tz)
			return;
	if (place->nzones < MAX_PLACE_ZONES)
		place->zones[place->nzones++] = tz;
}

static void
AddRule(Place *place, const Policy *policy, const Rule *rule)
{
	if (rule == NULL || !(rule->channels & (1 << policy->channel)))
		return;
	for (int i = 0; i < place->nrules; i++)
		if (place->rules[i] == rule)
			return;
	place->rules[place->nrules++] = rule;
}

/*
 * BuildPlace collects the zones and rules of a phone contact: its area
 * code's zones and state, and from the property the mailing ZIP's zone,
 * the property's own zone and the mailing state.
 */
static void
BuildPlace(const Policy *policy, const CrefinderPhone *phone, const PropertyContext *property,
		   Place *place)
{
	int			set = crefinder_phone_zone_set(phone);
	const char *region = crefinder_phone_region(phone);
	const CrefinderAreaCode *ac = phone->nanp ? crefinder_area_code(phone->npa) : NULL;

	place->nzones = 0;
	place->nrules = 0;
	if (set >= 0)
	{
		const CrefinderZoneSet *zs = &crefinder_zone_sets[set];

		for (int i = 0; i < zs->count; i++)
			AddZone(place, crefinder_zone_tz(crefinder_zone_set_members[zs->first + i]));
	}
	AddRule(place, policy, policy->federal);
	if (region != NULL && ac != NULL && strcmp(ac->country, "US") == 0)
		AddRule(place, policy, FindRule(policy, region));

	if (property != NULL)
	{
		if (property->mailing_zip != NULL)
		{
			bool		valid;
			char		zip5[6];
			int			zone;

			strlcpy(zip5, property->mailing_zip, sizeof(zip5));
			zone = crefinder_zip_zone(zip5, &valid);
			if (zone >= 0)
				AddZone(place, crefinder_zone_tz(zone));
		}
		/* only zones of the database: a POSIX string would be parsed and cached */
		if (property->timezone != NULL && crefinder_is_known_zone(property->timezone))
			AddZone(place, pg_tzset(property->timezone));
		if (property->mailing_state != NULL)
			AddRule(place, policy, FindRule(policy, property->mailing_state));
	}
}

/* LocalTime breaks an instant down in a zone. */
static void
LocalTime(TimestampTz t, pg_tz *tz, int *jd, int64 *time_of_day, int *dow)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			offset;

	if (timestamp2tm(t, &offset, &tm, &fsec, NULL, tz) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	*jd = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday);
	*time_of_day = ((int64) (tm.tm_hour * 60 + tm.tm_min) * 60 + tm.tm_sec) * USECS_PER_SEC + fsec;
	*dow = j2day(*jd);
}

/* FromLocalTime is the instant at a local day and time of day in a zone. */
static TimestampTz
FromLocalTime(int jd, int64 time_of_day, pg_tz *tz)
{
	struct pg_tm tm;
	int			offset;
	TimestampTz result;
	int64		seconds = time_of_day / USECS_PER_SEC;

	memset(&tm, 0, sizeof(tm));
	j2date(jd, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
	tm.tm_hour = seconds / 3600;
	tm.tm_min = (seconds / 60) % 60;
	tm.tm_sec = seconds % 60;
	offset = DetermineTimeZoneOffset(&tm, tz);
	if (tm2timestamp(&tm, time_of_day % USECS_PER_SEC, &offset, &result) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return result;
}

/* Window is the allowed part of a local weekday; empty when start >= end. */
static void
Window(const Policy *policy, const Place *place, int dow, int64 *start, int64 *end)
{
	*start = policy->tenant_start;
	*end = policy->tenant_end;
	for (int i = 0; i < place->nrules; i++)
	{
		*start = Max(*start, place->rules[i]->start[dow]);
		*end = Min(*end, place->rules[i]->end[dow]);
	}
}

static bool
IsFederalHoliday(const Policy *policy, int jd)
{
	return bsearch(&jd, policy->federal_holidays, policy->nfederal_holidays,
				   sizeof(int), CompareInt) != NULL;
}

/* Banned says whether a place's rules forbid contact on a local day. */
static bool
Banned(const Policy *policy, const Place *place, int jd, int dow)
{
	for (int i = 0; i < place->nrules; i++)
	{
		const Rule *rule = place->rules[i];

		if (rule->no_sundays && dow == 0)
			return true;
		if (rule->no_holidays)
		{
			if (IsFederalHoliday(policy, jd))
				return true;
			for (int h = 0; h < policy->nstate_holidays; h++)
				if (policy->state_holidays[h].jd == jd &&
					strcmp(policy->state_holidays[h].region, rule->region) == 0)
					return true;
		}
	}
	return false;
}

/*
 * ZoneNext returns the earliest instant at or after t at which the local
 * time in tz is inside an allowed window on an allowed day, or
 * DT_NOEND when there is none on the local days up to limit's (and
 * within SEARCH_DAYS of t's).  t <= limit.
 */
static TimestampTz
ZoneNext(const Policy *policy, const Place *place, pg_tz *tz, TimestampTz t,
		 TimestampTz limit)
{
	int			jd;
	int64		tod;
	int			dow;
	int			limit_jd;
	int64		limit_tod;
	int			limit_dow;

	LocalTime(t, tz, &jd, &tod, &dow);
	LocalTime(limit, tz, &limit_jd, &limit_tod, &limit_dow);
	for (int k = 0; k <= SEARCH_DAYS && jd + k <= limit_jd; k++)
	{
		int			day = jd + k;
		int			day_dow = (dow + k) % 7;
		int64		start;
		int64		end;
		TimestampTz opens;

		Window(policy, place, day_dow, &start, &end);
		if (start >= end || Banned(policy, place, day, day_dow))
			continue;
		if (k == 0 && tod >= end)
			continue;
		if (k == 0 && tod >= start)
			return t;
		opens = FromLocalTime(day, start, tz);
		if (opens >= t)
			return opens;
		/* a DST change moved the opening before t: t itself is inside */
		return t;
	}
	return DT_NOEND;
}

/* AgentOpen says whether the agent's working window holds instant t. */
static bool
AgentOpen(const Policy *policy, TimestampTz t)
{
	int			jd;
	int64		tod;
	int			dow;

	LocalTime(t, policy->agent_zone, &jd, &tod, &dow);
	return (policy->agent_days & (1 << dow)) != 0 &&
		tod >= policy->agent_start && tod < policy->agent_end;
}

/*
 * AgentNext returns the earliest instant at or after t inside the agent's
 * working window (a week always has one: agent_days is never empty), or
 * DT_NOEND past the end of time.
 */
static TimestampTz
AgentNext(const Policy *policy, TimestampTz t)
{
	int			jd;
	int64		tod;
	int			dow;

	LocalTime(t, policy->agent_zone, &jd, &tod, &dow);
	for (int k = 0; k <= 7; k++)
	{
		TimestampTz opens;

		if (!(policy->agent_days & (1 << ((dow + k) % 7))))
			continue;
		if (k == 0 && tod >= policy->agent_end)
			continue;
		if (k == 0 && tod >= policy->agent_start)
			return t;
		opens = FromLocalTime(jd + k, policy->agent_start, policy->agent_zone);
		/* a DST change moved the opening before t: t itself is inside */
		return opens >= t ? opens : t;
	}
	return DT_NOEND;
}

/* ----------------------------------------------------------------------
 * Caps
 * ---------------------------------------------------------------------- */

/*
 * TimestampPlus is t + usecs, or DT_NOEND (DT_NOBEGIN) where the sum
 * would overflow int64.
 */
static TimestampTz
TimestampPlus(TimestampTz t, int64 usecs)
{
	TimestampTz result;

	if (pg_add_s64_overflow(t, usecs, &result))
		return usecs > 0 ? DT_NOEND : DT_NOBEGIN;
	return result;
}

/*
 * OneCapNext returns t when the cap is not reached at t, else the instant
 * at which enough counted messages have left the cap's trailing period
 * (DT_NOEND when that is past the end of time).
 */
static TimestampTz
OneCapNext(const RecentMessage *recent, int nrecent, int channels, int cap, int64 window,
		   TimestampTz t)
{
	int			first = -1;
	int			count = 0;
	TimestampTz since = TimestampPlus(t, -window);

	/* messages counted at t: channel in mask, time in (t - window, t] */
	for (int i = 0; i < nrecent; i++)
	{
		if (!(channels & (1 << recent[i].channel)))
			continue;
		if (recent[i].at <= since || recent[i].at > t)
			continue;
		if (count == 0)
			first = i;
		count++;
	}
	if (count < cap)
		return t;

	/* the (count - cap + 1)th oldest counted message must leave the period */
	{
		int			skip = count - cap;

		for (int i = first; i < nrecent; i++)
		{
			if (!(channels & (1 << recent[i].channel)) ||
				recent[i].at <= since || recent[i].at > t)
				continue;
			if (skip-- == 0)
				return TimestampPlus(recent[i].at, window);
		}
	}
	return t;
}

/*
 * CapNext returns t when no cap is reached at t, else the earliest instant
 * at which none is.
 */
static TimestampTz
CapNext(const Policy *policy, const Place *place, const Contact *contact, TimestampTz t)
{
	TimestampTz next = t;

	if (policy->tenant_cap > 0)
		next = Max(next, OneCapNext(contact->recent, contact->nrecent, PHONE_CHANNELS,
									policy->tenant_cap, USECS_PER_DAY, t));
	for (int i = 0; i < place->nrules; i++)
	{
		const Rule *rule = place->rules[i];

		if (rule->cap_count > 0 && (rule->cap_channels & (1 << policy->channel)))
			next = Max(next, OneCapNext(contact->recent, contact->nrecent, rule->cap_channels,
										rule->cap_count, rule->cap_window, t));
	}
	return next;
}

/* ----------------------------------------------------------------------
 * The time checks
 * ---------------------------------------------------------------------- */

/*
 * EvaluateTime decides the time-based checks for a phone contact whose
 * place is known: the reason at the instant asked about (NULL when
 * allowed) and the earliest instant every check passes.
 */
static void
EvaluateTime(const Policy *policy, const Place *place, Contact *contact, TimestampTz at)
{
	bool		quiet = false;
	bool		day = false;
	TimestampTz t = at;
	TimestampTz limit = at + (int64) SEARCH_DAYS * USECS_PER_DAY;	/* CheckInstant */

	for (int z = 0; z < place->nzones; z++)
	{
		int			jd;
		int64		tod;
		int			dow;
		int64		start;
		int64		end;

		LocalTime(at, place->zones[z], &jd, &tod, &dow);
		Window(policy, place, dow, &start, &end);
		if (tod < start || tod >= end)
			quiet = true;
		else if (Banned(policy, place, jd, dow))
			day = true;
	}
	if (quiet)
		contact->reason = "quiet_hours";
	else if (day)
		contact->reason = "day_restricted";
	else if (CapNext(policy, place, contact, at) > at)
		contact->reason = "frequency_cap";
	else if (policy->agent_zone != NULL && !AgentOpen(policy, at))
		contact->reason = "agent_hours";
	else
		contact->reason = NULL;

	/* Move t forward to the next instant each check allows, until all agree. */
	for (int step = 0; step < MAX_SEARCH_STEPS; step++)
	{
		bool		moved = false;

		for (int z = 0; z < place->nzones; z++)
		{
			TimestampTz next = ZoneNext(policy, place, place->zones[z], t, limit);

			if (next == DT_NOEND || next > limit)
			{
				contact->has_next = false;
				return;
			}
			if (next > t)
			{
				t = next;
				moved = true;
			}
		}
		if (!moved && policy->agent_zone != NULL)
		{
			TimestampTz next = AgentNext(policy, t);

			if (next == DT_NOEND || next > limit)
			{
				contact->has_next = false;
				return;
			}
			if (next > t)
			{
				t = next;
				moved = true;
			}
		}
		if (!moved)
		{
			TimestampTz next = CapNext(policy, place, contact, t);

			if (next > limit)
			{
				contact->has_next = false;
				return;
			}
			if (next > t)
			{
				t = next;
				moved = true;
			}
		}
		if (!moved)
		{
			contact->has_next = true;
			contact->next = t;
			return;
		}
	}
	contact->has_next = false;
}

/* ----------------------------------------------------------------------
 * Set-based lookups
 * ---------------------------------------------------------------------- */

/* An index of contacts sorted by their normalized text or digits. */
typedef struct ContactIndex
{
	Contact   **by_text;
	int			ntext;
} ContactIndex;

static int
CompareContactText(const void *a, const void *b)
{
	return strcmp((*(Contact *const *) a)->normalized, (*(Contact *const *) b)->normalized);
}

static int
CompareContactDigits(const void *a, const void *b)
{
	int64		x = (*(Contact *const *) a)->phone.digits;
	int64		y = (*(Contact *const *) b)->phone.digits;

	return (x > y) - (x < y);
}

/* Pending collects the contacts still allowed, sorted by normalized text. */
static void
Pending(Contact *contacts, int n, ContactIndex *index)
{
	index->ntext = 0;
	index->by_text = palloc(sizeof(Contact *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		if (contacts[i].reason == NULL)
			index->by_text[index->ntext++] = &contacts[i];
	qsort(index->by_text, index->ntext, sizeof(Contact *), CompareContactText);
}

/* TextArray makes a text[] of the distinct normalized contacts of index. */
static Datum
TextArray(const ContactIndex *index)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(index->ntext, 1));
	int			n = 0;

	for (int i = 0; i < index->ntext; i++)
		if (i == 0 || strcmp(index->by_text[i]->normalized, index->by_text[i - 1]->normalized) != 0)
			elems[n++] = CStringGetTextDatum(index->by_text[i]->normalized);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* FindText returns the first position of key in index, or -1. */
static int
FindText(const ContactIndex *index, const char *key)
{
	int			lo = 0;
	int			hi = index->ntext - 1;
	int			found = -1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			cmp = strcmp(index->by_text[mid]->normalized, key);

		if (cmp == 0)
		{
			found = mid;
			hi = mid - 1;
		}
		else if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return found;
}

/*
 * MarkMatches runs a query returning contacts (text, column 1) and gives
 * every pending contact among them the reason, when it has none yet.
 */
static void
MarkMatches(const ContactIndex *index, SPIPlanPtr *plan, const char *sql, int nargs,
			Oid *argtypes, Datum *args, const char *reason)
{
	int			rc = RunQuery(plan, sql, nargs, argtypes, args, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "compliance lookup failed: %s", SPI_result_code_string(rc));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *key = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		int			pos = FindText(index, key);

		for (; pos >= 0 && pos < index->ntext &&
			 strcmp(index->by_text[pos]->normalized, key) == 0; pos++)
			if (index->by_text[pos]->reason == NULL)
				index->by_text[pos]->reason = reason;
	}
}

/*
 * PhoneFlags runs a query returning E.164 digits (bigint, column 1) and
 * sets flags[i] for every pending contact i among them.
 */
static void
FlagDigits(Contact *contacts, int n, SPIPlanPtr *plan, const char *sql, int nargs,
		   Oid *argtypes, Datum *args, bool *flags)
{
	Contact   **by_digits = palloc(sizeof(Contact *) * Max(n, 1));
	int			count = 0;
	int			rc;

	for (int i = 0; i < n; i++)
		if (contacts[i].reason == NULL)
			by_digits[count++] = &contacts[i];
	qsort(by_digits, count, sizeof(Contact *), CompareContactDigits);

	rc = RunQuery(plan, sql, nargs, argtypes, args, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "compliance lookup failed: %s", SPI_result_code_string(rc));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		digits = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
														 SPI_tuptable->tupdesc, 1, &isnull));
		int			lo = 0;
		int			hi = count - 1;

		while (lo < hi)
		{
			int			mid = (lo + hi) / 2;

			if (by_digits[mid]->phone.digits < digits)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < count && by_digits[lo]->phone.digits == digits; lo++)
			flags[by_digits[lo] - contacts] = true;
	}
	pfree(by_digits);
}

/*
 * LoadRecent attaches to every pending phone contact the tenant's messages
 * to it that caps count: every phone channel, queued to delivered,
 * going out after at - max_window.
 */
static void
LoadRecent(const ContactIndex *index, Datum tenant, TimestampTz since, Datum exclude)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[4] = {UUIDOID, TEXTARRAYOID, TIMESTAMPTZOID, INT8ARRAYOID};
	Datum		args[4];
	int			rc;
	RecentMessage *all;

	args[0] = tenant;
	args[1] = TextArray(index);
	args[2] = TimestampTzGetDatum(since);
	args[3] = exclude;
	/*
	 * One index probe per contact on both columns of the outbox's
	 * (user_id, to_contact) index: the lateral subquery (kept apart from the
	 * join by OFFSET 0) is planned with the contact as a parameter.  A scan
	 * of the tenant's whole outbox filtered by "to_contact = ANY" is what
	 * the planner otherwise picks when its statistics are older than a bulk
	 * enqueue.  The lateral form makes that choice plain enough for a plan
	 * kept across calls.
	 */
	rc = RunQueryWith(&plan, false,
					  "SELECT c.contact, e.channel, coalesce(e.sent_at, e.next_attempt_at) AS t "
					  "FROM unnest($2) AS c(contact) "
					  "CROSS JOIN LATERAL (SELECT * FROM crefinder.outbound_events o "
					  "  WHERE o.user_id = $1 AND o.to_contact = c.contact OFFSET 0) AS e "
					  "WHERE e.channel IN ('voice', 'sms', 'whatsapp', 'call', 'voicemail') "
					  "  AND e.status IN ('queued', 'sending', 'sent', 'delivered') "
					  "  AND coalesce(e.sent_at, e.next_attempt_at) > $3 "
					  "  AND e.id <> ALL ($4) "
					  "ORDER BY c.contact COLLATE \"C\", t",
					  4, argtypes, args, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read recent messages: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return;

	all = palloc(sizeof(RecentMessage) * SPI_processed);
	for (uint64 r = 0; r < SPI_processed;)
	{
		char	   *key = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		uint64		first = r;
		int			pos;

		for (; r < SPI_processed; r++)
		{
			bool		isnull;
			HeapTuple	tuple = SPI_tuptable->vals[r];
			char	   *channel;

			if (r > first && strcmp(SPI_getvalue(tuple, SPI_tuptable->tupdesc, 1), key) != 0)
				break;
			channel = SPI_getvalue(tuple, SPI_tuptable->tupdesc, 2);
			all[r].channel = ParseChannel(channel);
			all[r].at = DatumGetTimestampTz(SPI_getbinval(tuple, SPI_tuptable->tupdesc, 3, &isnull));
		}
		pos = FindText(index, key);
		for (; pos >= 0 && pos < index->ntext &&
			 strcmp(index->by_text[pos]->normalized, key) == 0; pos++)
		{
			index->by_text[pos]->recent = &all[first];
			index->by_text[pos]->nrecent = r - first;
		}
	}
}

/* ----------------------------------------------------------------------
 * The evaluation
 * ---------------------------------------------------------------------- */

/* A cache of time decisions for contacts that share a place and have no
 * recent messages (scrub of whole lists). */
typedef struct TimeDecision
{
	int			zone_set;
	char		region[3];
	const char *reason;
	bool		has_next;
	TimestampTz next;
} TimeDecision;

/* MaxCapWindow is the longest trailing period any cap counts. */
static int64
MaxCapWindow(const Policy *policy)
{
	int64		window = USECS_PER_DAY;

	for (int i = 0; i < policy->nrules; i++)
		if (policy->rules[i].cap_count > 0)
			window = Max(window, policy->rules[i].cap_window);
	return window;
}

/*
 * CheckInstant raises 22008 unless the decision at at stays inside the
 * timestamp range: at is finite, the local days around it exist in every
 * zone, and so do the SEARCH_DAYS days searched after it for
 * next_allowed_at.
 */
static void
CheckInstant(TimestampTz at)
{
	TimestampTz first = MIN_TIMESTAMP + (int64) MARGIN_DAYS * USECS_PER_DAY;
	TimestampTz last = END_TIMESTAMP - (int64) (SEARCH_DAYS + MARGIN_DAYS) * USECS_PER_DAY;

	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_FIELD_OVERFLOW),
				 errmsg("at must be a finite timestamp"),
				 errdetail("A compliance decision is for one instant; infinity and -infinity are none.")));
	if (at < first)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_FIELD_OVERFLOW),
				 errmsg("at is too close to the start of the timestamp range"),
				 errdetail("The earliest instant a compliance decision can be made for is %s.",
						   timestamptz_to_str(first))));
	if (at > last)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_FIELD_OVERFLOW),
				 errmsg("at is too close to the end of the timestamp range"),
				 errdetail("A compliance decision looks up to %d days ahead, so the latest instant it can be made for is %s.",
						   SEARCH_DAYS, timestamptz_to_str(last))));
}

/*
 * Evaluate decides every contact for tenant on channel at instant at (each
 * with its own property context, or none).  exclude is an int8[] of
 * messages that caps must not count (the ones being sent).  Runs inside
 * SPI.
 */
static void
Evaluate(Datum tenant, int channel, Contact *contacts, int n, TimestampTz at, Datum exclude)
{
	Policy		policy;
	ContactIndex index;
	TimeDecision *cache = NULL;
	int			ncache = 0;
	int			cache_size = 0;
	TimestampTz since;

	CheckInstant(at);
	memset(&policy, 0, sizeof(policy));
	policy.channel = channel;

	/* invalid_contact */
	for (int i = 0; i < n; i++)
	{
		const char *why;

		contacts[i].reason = NULL;
		contacts[i].has_next = false;
		contacts[i].recent = NULL;
		contacts[i].nrecent = 0;
		contacts[i].normalized = contacts[i].input == NULL ? NULL :
			NormalizeContact(channel, contacts[i].input, &contacts[i].phone, &why);
		if (contacts[i].normalized == NULL)
			contacts[i].reason = "invalid_contact";
	}

	/* opted_out: a phone opt-out covers every phone channel */
	Pending(contacts, n, &index);
	if (index.ntext > 0)
	{
		Oid			argtypes[3] = {UUIDOID, TEXTARRAYOID, BOOLOID};
		Datum		args[3] = {tenant, TextArray(&index), BoolGetDatum(channel == CHANNEL_EMAIL)};

		static SPIPlanPtr plan = NULL;

		MarkMatches(&index, &plan,
					"SELECT DISTINCT o.contact FROM crefinder.opt_outs o "
					"WHERE o.user_id = $1 AND o.revoked_at IS NULL AND o.contact = ANY ($2) "
					"  AND (o.channel = 'email') = $3",
					3, argtypes, args, "opted_out");
	}

	if (channel == CHANNEL_EMAIL)
	{
		/* suppressed */
		Pending(contacts, n, &index);
		if (index.ntext > 0)
		{
			Oid			argtypes[2] = {UUIDOID, TEXTARRAYOID};
			Datum		args[2] = {tenant, TextArray(&index)};

			static SPIPlanPtr plan = NULL;

			MarkMatches(&index, &plan,
						"SELECT DISTINCT s.email FROM crefinder.email_suppressions s "
						"WHERE s.user_id = $1 AND s.removed_at IS NULL AND s.email = ANY ($2)",
						2, argtypes, args, "suppressed");
		}
		for (int i = 0; i < n; i++)
			if (contacts[i].reason == NULL)
			{
				contacts[i].has_next = true;
				contacts[i].next = at;
			}
		return;
	}

	LoadTenantSettings(&policy, tenant);

	/* dnc and no_consent */
	Pending(contacts, n, &index);
	if (index.ntext > 0)
	{
		static SPIPlanPtr dnc_plan = NULL;
		static SPIPlanPtr consent_plan = NULL;
		bool	   *on_dnc = palloc0(sizeof(bool) * n);
		bool	   *consented = palloc0(sizeof(bool) * n);
		Datum	   *digits = palloc(sizeof(Datum) * index.ntext);
		Oid			argtypes[3] = {UUIDOID, INT8ARRAYOID, TEXTOID};
		Datum		args[3];

		for (int i = 0; i < index.ntext; i++)
			digits[i] = Int64GetDatum(index.by_text[i]->phone.digits);
		args[0] = tenant;
		args[1] = PointerGetDatum(construct_array(digits, index.ntext, INT8OID, 8, true, TYPALIGN_DOUBLE));
		args[2] = CStringGetTextDatum(channel_names[channel]);
		FlagDigits(contacts, n, &dnc_plan,
				   "SELECT DISTINCT d.phone_number FROM crefinder.dnc_numbers d "
				   "JOIN crefinder.dnc_lists l ON l.id = d.list_id "
				   "WHERE d.phone_number = ANY ($2) AND (l.user_id IS NULL OR l.user_id = $1)",
				   2, argtypes, args, on_dnc);
		/*
		 * One index probe per contact (the lateral subquery, kept apart by
		 * OFFSET 0): a plan kept across calls must not scan all of a
		 * tenant's consents, as one made before the table had statistics
		 * would (a semi join over every consent of the channel).
		 */
		FlagDigits(contacts, n, &consent_plan,
				   "SELECT DISTINCT ltrim(c.contact, '+')::bigint FROM unnest($2) AS x(digits) "
				   "CROSS JOIN LATERAL (SELECT k.contact FROM crefinder.consents k "
				   "  WHERE k.user_id = $1 AND k.contact = '+' || x.digits AND k.channel = $3 "
				   "    AND k.revoked_at IS NULL "
				   /*
					* only a written consent lifts a DNC listing (47 CFR
					* 64.1200(c)(2)(ii)) or allows an artificial or
					* prerecorded voice for sales calls: an oral one is a
					* record, nothing more
					*/
				   "    AND k.kind = 'express_written' OFFSET 0) AS c",
				   3, argtypes, args, consented);
		for (int i = 0; i < n; i++)
		{
			if (contacts[i].reason != NULL)
				continue;
			if (on_dnc[i] && !consented[i])
				contacts[i].reason = "dnc";
			else if (channel == CHANNEL_VOICE && policy.voice_requires_consent && !consented[i])
				contacts[i].reason = "no_consent";
			/* a prerecorded message needs prior express consent, whatever the tenant says */
			else if (channel == CHANNEL_VOICEMAIL && !consented[i])
				contacts[i].reason = "no_consent";
		}
	}

	/* the time checks */
	Pending(contacts, n, &index);
	if (index.ntext == 0)
		return;
	LoadRules(&policy, at);
	since = TimestampPlus(at, -MaxCapWindow(&policy));
	LoadRecent(&index, tenant, since < MIN_TIMESTAMP ? DT_NOBEGIN : since, exclude);

	for (int i = 0; i < n; i++)
	{
		Contact    *contact = &contacts[i];
		Place		place;
		int			zone_set;
		const char *region;
		TimeDecision *cached = NULL;

		if (contact->reason != NULL)
			continue;
		CHECK_FOR_INTERRUPTS();

		zone_set = crefinder_phone_zone_set(&contact->phone);
		region = crefinder_phone_region(&contact->phone);
		if (contact->property == NULL && contact->nrecent == 0)
		{
			for (int c = 0; c < ncache; c++)
				if (cache[c].zone_set == zone_set &&
					strcmp(cache[c].region, region ? region : "") == 0)
				{
					cached = &cache[c];
					break;
				}
			if (cached != NULL)
			{
				contact->reason = cached->reason;
				contact->has_next = cached->has_next;
				contact->next = cached->next;
				continue;
			}
		}

		BuildPlace(&policy, &contact->phone, contact->property, &place);
		if (place.nzones == 0)
		{
			contact->reason = "unknown_timezone";
			continue;
		}
		EvaluateTime(&policy, &place, contact, at);

		if (contact->property == NULL && contact->nrecent == 0)
		{
			if (ncache == cache_size)
			{
				cache_size = Max(16, cache_size * 2);
				cache = cache ? repalloc(cache, sizeof(TimeDecision) * cache_size) :
					palloc(sizeof(TimeDecision) * cache_size);
			}
			cache[ncache].zone_set = zone_set;
			strlcpy(cache[ncache].region, region ? region : "", 3);
			cache[ncache].reason = contact->reason;
			cache[ncache].has_next = contact->has_next;
			cache[ncache].next = contact->next;
			ncache++;
		}
	}
}

/*
 * LoadProperty reads the owner's mailing state and ZIP and the property's
 * zone, for the current tenant's property; raises 22023 when there is no
 * such property.
 */
static PropertyContext *
LoadProperty(int64 property_id, Datum tenant)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {INT8OID, UUIDOID};
	Datum		args[2];
	int			rc;
	PropertyContext *property;
	HeapTuple	tuple;
	TupleDesc	desc;

	args[0] = Int64GetDatum(property_id);
	args[1] = tenant;
	rc = RunQuery(&plan,
				  "SELECT upper(btrim(mailing_state)), btrim(mailing_zip), nullif(btrim(timezone), '') "
				  "FROM crefinder.property_records WHERE id = $1 AND user_id = $2",
				  2, argtypes, args, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read crefinder.property_records: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("property %lld not found", (long long) property_id),
				 errhint("property_id must name one of the current tenant's crefinder.property_records.")));
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	property = palloc0(sizeof(PropertyContext));
	property->mailing_state = SPI_getvalue(tuple, desc, 1);
	property->mailing_zip = SPI_getvalue(tuple, desc, 2);
	property->timezone = SPI_getvalue(tuple, desc, 3);
	return property;
}

static Datum
NoExclusions(void)
{
	return PointerGetDatum(construct_empty_array(INT8OID));
}

/*
 * crefinder_check_before_send decides messages the dispatcher is about to
 * send, for tenant, on channel, at instant at: what can_contact() would
 * say, except that the messages themselves (exclude, int8[]) are not
 * counted by caps.  property_ids[i] is contact i's property, 0 for none
 * (property_ids may be NULL: none at all); each property is read once.
 * Runs inside SPI.
 */
void
crefinder_check_before_send(Datum tenant, const char *channel, int n, const char **contacts,
							const int64 *property_ids, TimestampTz at, Datum exclude,
							CrefinderDecision *decisions)
{
	Contact    *c = palloc0(sizeof(Contact) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		c[i].input = contacts[i];
		if (property_ids == NULL || property_ids[i] == 0)
			continue;
		for (int j = 0; j < i && c[i].property == NULL; j++)
			if (property_ids[j] == property_ids[i])
				c[i].property = c[j].property;
		if (c[i].property == NULL)
			c[i].property = LoadProperty(property_ids[i], tenant);
	}
	Evaluate(tenant, ParseChannel(channel), c, n, at, exclude);
	for (int i = 0; i < n; i++)
	{
		decisions[i].reason = c[i].reason;
		decisions[i].has_next = c[i].has_next;
		decisions[i].next = c[i].next;
	}
}

static void
PutResult(ReturnSetInfo *rsinfo, const Contact *contact, bool with_contact)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	int			col = 0;

	if (with_contact)
	{
		if (contact->input == NULL)
			nulls[col] = true;
		else
			values[col] = CStringGetTextDatum(contact->input);
		col++;
	}
	values[col++] = BoolGetDatum(contact->reason == NULL);
	if (contact->reason == NULL)
		nulls[col] = true;
	else
		values[col] = CStringGetTextDatum(contact->reason);
	col++;
	if (contact->has_next)
		values[col] = TimestampTzGetDatum(contact->next);
	else
		nulls[col] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * PinSearchPath makes the compliance queries run with search_path =
 * pg_catalog, pg_temp, as the SQL functions that call can_contact() and
 * scrub() already do: then it costs nothing; called directly with another
 * path, it sets it until UnpinSearchPath (or the end of the transaction
 * on an error).  Returns the GUC nest level to unwind, or -1.
 */
#define PINNED_SEARCH_PATH "pg_catalog, pg_temp"

static int
PinSearchPath(void)
{
	int			level;

	if (namespace_search_path != NULL && strcmp(namespace_search_path, PINNED_SEARCH_PATH) == 0)
		return -1;
	level = NewGUCNestLevel();
	(void) set_config_option("search_path", PINNED_SEARCH_PATH, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

static void
UnpinSearchPath(int level)
{
	if (level >= 0)
		AtEOXact_GUC(true, level);
}

/*
 * crefinder.can_contact(channel text, contact text, at timestamptz,
 * property_id bigint) returns table(allowed boolean, reason text,
 * next_allowed_at timestamptz).
 */
Datum
crefinder_can_contact(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			channel;
	Contact		contact;
	TimestampTz at;
	PropertyContext *property = NULL;
	MemoryContext caller_cxt = CurrentMemoryContext;
	int			pinned;

	crefinder_require_argument(fcinfo, 0, "channel");
	crefinder_require_argument(fcinfo, 2, "at");
	channel = ParseChannel(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	memset(&contact, 0, sizeof(contact));
	contact.input = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	at = PG_GETARG_TIMESTAMPTZ(2);

	InitMaterializedSRF(fcinfo, 0);
	pinned = PinSearchPath();
	SPI_connect();
	if (!PG_ARGISNULL(3))
		property = LoadProperty(PG_GETARG_INT64(3), crefinder_current_tenant());
	contact.property = property;
	Evaluate(crefinder_current_tenant(), channel, &contact, 1, at, NoExclusions());
	{
		MemoryContext spi_cxt = MemoryContextSwitchTo(caller_cxt);

		PutResult(rsinfo, &contact, false);
		MemoryContextSwitchTo(spi_cxt);
	}
	SPI_finish();
	UnpinSearchPath(pinned);
	return (Datum) 0;
}

/*
 * crefinder.scrub(channel text, contacts text[], at timestamptz) returns
 * table(contact text, allowed boolean, reason text, next_allowed_at
 * timestamptz): one row per element, in order, each the answer
 * can_contact() gives for it (without property context).
 */
Datum
crefinder_scrub(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			channel;
	ArrayType  *array;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Contact    *contacts;
	TimestampTz at;
	MemoryContext caller_cxt = CurrentMemoryContext;
	int			pinned;

	crefinder_require_argument(fcinfo, 0, "channel");
	crefinder_require_argument(fcinfo, 1, "contacts");
	crefinder_require_argument(fcinfo, 2, "at");
	channel = ParseChannel(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	array = PG_GETARG_ARRAYTYPE_P(1);
	at = PG_GETARG_TIMESTAMPTZ(2);
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("contacts must be a one-dimensional array")));
	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	contacts = palloc0(sizeof(Contact) * Max(n, 1));
	for (int i = 0; i < n; i++)
		contacts[i].input = nulls[i] ? NULL : TextDatumGetCString(elems[i]);

	InitMaterializedSRF(fcinfo, 0);
	pinned = PinSearchPath();
	SPI_connect();
	Evaluate(crefinder_current_tenant(), channel, contacts, n, at, NoExclusions());
	{
		MemoryContext spi_cxt = MemoryContextSwitchTo(caller_cxt);

		for (int i = 0; i < n; i++)
			PutResult(rsinfo, &contacts[i], true);
		MemoryContextSwitchTo(spi_cxt);
	}
	SPI_finish();
	UnpinSearchPath(pinned);
	return (Datum) 0;
}

/* A property's context, by id, for the bulk decision below. */
typedef struct PropertyById
{
	int64		id;
	PropertyContext context;
} PropertyById;

static int
ComparePropertyById(const void *a, const void *b)
{
	int64		x = ((const PropertyById *) a)->id;
	int64		y = ((const PropertyById *) b)->id;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * LoadProperties reads, in one query, the context of tenant's properties
 * named in ids (an int8[]); returns them sorted by id.
 */
static PropertyById *
LoadProperties(Datum tenant, Datum ids, int *count)
{
	Oid			argtypes[2] = {UUIDOID, INT8ARRAYOID};
	Datum		args[2] = {tenant, ids};
	PropertyById *found;
	int			rc;

	rc = SPI_execute_with_args("SELECT id, mailing_state, mailing_zip, timezone "
							   "FROM crefinder.property_records WHERE user_id = $1 AND id = ANY ($2)",
							   2, argtypes, args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read crefinder.property_records: %s", SPI_result_code_string(rc));
	found = palloc0(sizeof(PropertyById) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		found[i].id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
		found[i].context.mailing_state = SPI_getvalue(tuple, desc, 2);
		found[i].context.mailing_zip = SPI_getvalue(tuple, desc, 3);
		found[i].context.timezone = SPI_getvalue(tuple, desc, 4);
	}
	*count = (int) SPI_processed;
	qsort(found, *count, sizeof(PropertyById), ComparePropertyById);
	return found;
}

/*
 * crefinder.scrub_for(tenant uuid, channel text, contacts text[],
 * property_ids bigint[], at timestamptz) returns table(allowed boolean,
 * reason text, next_allowed_at timestamptz): scrub() for a named tenant,
 * each contact with its property's context (property_ids[i], or NULL),
 * one row per contact, in order.  Campaign ticks call it, for each tenant
 * and channel of the steps that are due; it is not granted to tenants.
 */
Datum
crefinder_scrub_for(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		tenant;
	int			channel;
	ArrayType  *array;
	ArrayType  *property_array;
	Datum	   *elems;
	bool	   *nulls;
	Datum	   *property_elems;
	bool	   *property_nulls;
	int			n;
	int			nproperties;
	int			nfound;
	Contact    *contacts;
	PropertyById *found;
	TimestampTz at;
	MemoryContext caller_cxt = CurrentMemoryContext;
	int			pinned;

	crefinder_require_argument(fcinfo, 0, "tenant");
	crefinder_require_argument(fcinfo, 1, "channel");
	crefinder_require_argument(fcinfo, 2, "contacts");
	crefinder_require_argument(fcinfo, 3, "property_ids");
	crefinder_require_argument(fcinfo, 4, "at");
	tenant = PG_GETARG_DATUM(0);
	channel = ParseChannel(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	array = PG_GETARG_ARRAYTYPE_P(2);
	property_array = PG_GETARG_ARRAYTYPE_P(3);
	at = PG_GETARG_TIMESTAMPTZ(4);
	if (ARR_NDIM(array) > 1 || ARR_NDIM(property_array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("contacts and property_ids must be one-dimensional arrays")));
	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	deconstruct_array(property_array, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &property_elems, &property_nulls, &nproperties);
	if (nproperties != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("contacts and property_ids must have the same length"),
				 errdetail("contacts has %d elements, property_ids %d.", n, nproperties)));
	contacts = palloc0(sizeof(Contact) * Max(n, 1));
	for (int i = 0; i < n; i++)
		contacts[i].input = nulls[i] ? NULL : TextDatumGetCString(elems[i]);

	InitMaterializedSRF(fcinfo, 0);
	pinned = PinSearchPath();
	SPI_connect();
	found = LoadProperties(tenant, PointerGetDatum(property_array), &nfound);
	for (int i = 0; i < n; i++)
	{
		PropertyById key;
		PropertyById *hit;

		if (property_nulls[i])
			continue;
		key.id = DatumGetInt64(property_elems[i]);
		hit = bsearch(&key, found, nfound, sizeof(PropertyById), ComparePropertyById);
		if (hit != NULL)
			contacts[i].property = &hit->context;
	}
	Evaluate(tenant, channel, contacts, n, at, NoExclusions());
	{
		MemoryContext spi_cxt = MemoryContextSwitchTo(caller_cxt);

		for (int i = 0; i < n; i++)
			PutResult(rsinfo, &contacts[i], false);
		MemoryContextSwitchTo(spi_cxt);
	}
	SPI_finish();
	UnpinSearchPath(pinned);
	return (Datum) 0;
}
