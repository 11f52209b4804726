/*
 * rollups.c
 *		The statement trigger that keeps the analytics rollups current.
 *
 * SQL: crefinder.roll_up(), AFTER INSERT / UPDATE / DELETE ON
 * crefinder.outbound_events FOR EACH STATEMENT, with transition tables.
 *
 * Every statement that writes messages (the dispatcher's outcomes, the
 * webhooks, tick, the send functions) ends here: the new rows' counts less
 * the old rows', summed by rollup key (tenant, campaign, channel, step,
 * variant, UTC day, sending number), are appended to crefinder.rollup_deltas, one row per
 * key whose counts changed (a claim or a retry changes none and writes
 * nothing).  Appending never waits on another writer and never rewrites a
 * row (a thousand single sends in one transaction would otherwise stack a
 * thousand versions of one rollup row); crefinder.fold_rollups() folds the
 * deltas into crefinder.message_rollups in batches, and the views read
 * both.  Campaign messages also add, per property and contact point, what
 * was sent, delivered and responded to (crefinder.reach_deltas): the
 * distinct counts of campaign_overview and campaign_funnel are folded from
 * them.  And every message sent adds to its hour of the week in the
 * recipient's local time (crefinder.contact_time_deltas), what was sent
 * and responded to, for contact_time_performance: the recipient's zone is
 * crefinder.recipient_zone()'s (SQL: the same function).  What each count
 * counts is defined here and, for
 * rebuild_rollups(), in crefinder.rollup_delta(); a test holds them equal.
 * The deletes of crefinder.prune_history() (crefinder.pruning on) change
 * no count: pruned history stays counted.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "guc.h"
#include "phone.h"
#include "tzdata.h"
#include "zone.h"

PG_FUNCTION_INFO_V1(crefinder_roll_up);
PG_FUNCTION_INFO_V1(crefinder_recipient_zone);

/* outbound_events.variant and to_contact are at most this many bytes (CHECKs say so) */
#define VARIANT_MAX_BYTES 160
#define CONTACT_MAX_BYTES 320
#define SENDER_MAX_BYTES 64

/* the counts, in rollup_deltas' column order after the key */
enum
{
	COUNT_MESSAGES, COUNT_SENT, COUNT_DELIVERED, COUNT_OPENED, COUNT_CLICKED,
	COUNT_RESPONDED, COUNT_FAILED, COUNT_BLOCKED, COUNT_SKIPPED, COUNT_PRICED,
	COUNT_OPTED_OUT, COUNT_COMPLAINED, COUNT_FILTERED,
	NUM_COUNTS
};

typedef struct RollupKey
{
	pg_uuid_t	user_id;
	int64		campaign_id;
	int32		step;
	DateADT		day;
	bool		campaign_null;
	bool		step_null;
	bool		variant_null;
	bool		sender_null;
	char		channel[16];
	char		variant[VARIANT_MAX_BYTES + 1];
	char		sender[SENDER_MAX_BYTES + 1];
} RollupKey;

typedef struct RollupEntry
{
	RollupKey	key;			/* hash key: first */
	int64		counts[NUM_COUNTS];
	Datum		cost;			/* numeric, cents */
} RollupEntry;

/* a campaign message's property and contact point */
typedef struct ReachKey
{
	pg_uuid_t	user_id;
	int64		campaign_id;
	int64		property_id;
	char		contact[CONTACT_MAX_BYTES + 1];
} ReachKey;

typedef struct ReachEntry
{
	ReachKey	key;			/* hash key: first */
	int64		sent;
	int64		delivered;
	int64		responded;
} ReachEntry;

/* an hour of the week in the recipient's local time */
typedef struct HourKey
{
	pg_uuid_t	user_id;
	char		channel[16];
	int32		dow;			/* 0: Sunday */
	int32		hour;
} HourKey;

typedef struct HourEntry
{
	HourKey		key;			/* hash key: first */
	int64		sent;
	int64		responded;
} HourEntry;

/* a property's zone (for emails), by property id */
typedef struct PropertyZone
{
	int64		property_id;	/* hash key: first */
	int			zone;
} PropertyZone;

/* what a statement's rows add up to */
typedef struct Sums
{
	HTAB	   *entries;		/* RollupEntry */
	HTAB	   *reach;			/* ReachEntry, made when a campaign message comes */
	HTAB	   *hours;			/* HourEntry, made when a sent message comes */
	HTAB	   *property_zones; /* PropertyZone, or NULL */
	MemoryContext cxt;
} Sums;

/* outbound_events' columns the rollups read, by attribute number */
typedef struct MessageColumns
{
	int			user_id, campaign_id, property_id, to_contact, channel, step, variant, sender, status,
				created_at, sent_at, delivered_at, opened_at, clicked_at, responded_at, cost_cents,
				opted_out_at, complained_at, last_error;
} MessageColumns;

static SPIPlanPtr AppendPlan = NULL;
static SPIPlanPtr AppendReachPlan = NULL;
static SPIPlanPtr AppendHoursPlan = NULL;
static SPIPlanPtr PropertyZipsPlan = NULL;

/*
 * RecipientZone is the index of the zone a message's recipient is in, or
 * -1 when unknown: for a phone number, the first zone of its area code
 * (or country prefix); for an email, the zone of the property's ZIP code.
 */
static int
RecipientZone(const char *channel, const char *contact, const char *zip)
{
	if (strcmp(channel, "email") == 0)
	{
		bool		valid;

		return zip ? crefinder_zip_zone(zip, &valid) : -1;
	}
	else
	{
		CrefinderPhone phone;
		int			set;

		if (crefinder_parse_phone(contact, &phone) != NULL)
			return -1;
		set = crefinder_phone_zone_set(&phone);
		if (set < 0 || crefinder_zone_sets[set].count == 0)
			return -1;
		return crefinder_zone_set_members[crefinder_zone_sets[set].first];
	}
}

/*
 * crefinder.recipient_zone(channel, contact, zip): the zone name of
 * RecipientZone, or NULL.
 */
Datum
crefinder_recipient_zone(PG_FUNCTION_ARGS)
{
	char	   *zip;
	int			zone;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	zip = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	zone = RecipientZone(text_to_cstring(PG_GETARG_TEXT_PP(0)), text_to_cstring(PG_GETARG_TEXT_PP(1)), zip);
	if (zone < 0)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(crefinder_zone_names[zone]));
}

static void FindColumnsByName(TupleDesc desc, MessageColumns *c);

/*
 * SPI is connected only when a statement has something to read or write
 * (most status callbacks change no count): ConnectSPI once, keeping the
 * caller's memory context.
 */
static void
ConnectSPI(bool *connected)
{
	MemoryContext cxt = CurrentMemoryContext;

	if (*connected)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	*connected = true;
	MemoryContextSwitchTo(cxt);
}

/* MakeTable: a hash table of the statement's sums. */
static HTAB *
MakeTable(const char *name, Size keysize, Size entrysize, MemoryContext cxt)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = cxt;
	return hash_create(name, 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

static int
ColumnNumber(TupleDesc desc, const char *name)
{
	int			attnum = SPI_fnumber(desc, name);

	if (attnum <= 0)
		elog(ERROR, "crefinder.outbound_events has no column \"%s\"", name);
	return attnum;
}

/*
 * FindColumns finds the columns by name once per backend (every statement
 * that writes messages comes here), again when the table's columns change.
 */
static void
FindColumns(TupleDesc desc, MessageColumns *c)
{
	static MessageColumns cached;
	static int	cached_natts = 0;
	static Oid	cached_type = InvalidOid;

	if (cached_natts == desc->natts && cached_type == desc->tdtypeid)
	{
		/* (a dropped column keeps the count: each cached one must still be there) */
		const int  *attnums = (const int *) &cached;
		bool		valid = true;

		for (int i = 0; i < (int) (sizeof(cached) / sizeof(int)); i++)
			valid = valid && !TupleDescAttr(desc, attnums[i] - 1)->attisdropped;
		if (valid)
		{
			*c = cached;
			return;
		}
	}
	FindColumnsByName(desc, c);
	cached = *c;
	cached_natts = desc->natts;
	cached_type = desc->tdtypeid;
}

static void
FindColumnsByName(TupleDesc desc, MessageColumns *c)
{
	c->user_id = ColumnNumber(desc, "user_id");
	c->campaign_id = ColumnNumber(desc, "campaign_id");
	c->property_id = ColumnNumber(desc, "property_id");
	c->to_contact = ColumnNumber(desc, "to_contact");
	c->channel = ColumnNumber(desc, "channel");
	c->step = ColumnNumber(desc, "step");
	c->variant = ColumnNumber(desc, "variant");
	c->sender = ColumnNumber(desc, "sender");
	c->status = ColumnNumber(desc, "status");
	c->created_at = ColumnNumber(desc, "created_at");
	c->sent_at = ColumnNumber(desc, "sent_at");
	c->delivered_at = ColumnNumber(desc, "delivered_at");
	c->opened_at = ColumnNumber(desc, "opened_at");
	c->clicked_at = ColumnNumber(desc, "clicked_at");
	c->responded_at = ColumnNumber(desc, "responded_at");
	c->cost_cents = ColumnNumber(desc, "cost_cents");
	c->opted_out_at = ColumnNumber(desc, "opted_out_at");
	c->complained_at = ColumnNumber(desc, "complained_at");
	c->last_error = ColumnNumber(desc, "last_error");
}

static bool
IsSet(TupleTableSlot *slot, int attnum)
{
	bool		isnull;

	(void) slot_getattr(slot, attnum, &isnull);
	return !isnull;
}

static bool
IsWordChar(char c)
{
	return isalnum((unsigned char) c) || c == '_';
}

/*
 * CarrierFiltered says whether a failed message's last_error names Twilio's
 * carrier-filtering codes (30007, 30034) as its code: the first five-digit
 * word in it, as crefinder.error_code() reads it.
 */
static bool
CarrierFiltered(text *error)
{
	const char *p = VARDATA_ANY(error);
	int			len = VARSIZE_ANY_EXHDR(error);

	for (int i = 0; i + 5 <= len; i++)
	{
		bool		five = true;

		if (i > 0 && IsWordChar(p[i - 1]))
			continue;
		for (int k = 0; k < 5; k++)
			if (!isdigit((unsigned char) p[i + k]))
				five = false;
		if (!five || (i + 5 < len && IsWordChar(p[i + 5])))
			continue;
		return strncmp(p + i, "30007", 5) == 0 || strncmp(p + i, "30034", 5) == 0;
	}
	return false;
}

/* The UTC day of a timestamptz (the infinities stay infinite). */
static DateADT
UtcDay(TimestampTz t)
{
	if (TIMESTAMP_IS_NOBEGIN(t))
		return DATEVAL_NOBEGIN;
	if (TIMESTAMP_IS_NOEND(t))
		return DATEVAL_NOEND;
	/* days since 2000-01-01, rounded down */
	if (t >= 0)
		return (DateADT) (t / USECS_PER_DAY);
	return (DateADT) -((-t + USECS_PER_DAY - 1) / USECS_PER_DAY);
}

static void
TextInto(Datum value, char *buffer, int size, const char *what)
{
	text	   *t = DatumGetTextPP(value);
	int			len = VARSIZE_ANY_EXHDR(t);

	if (len >= size)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("a message's %s is longer than %d bytes", what, size - 1)));
	memcpy(buffer, VARDATA_ANY(t), len);
	buffer[len] = '\0';
}

/*
 * LocalHour breaks t down in zone: the day of the week (0: Sunday) and the
 * hour.
 */
static void
LocalHour(TimestampTz t, int zone, int32 *dow, int32 *hour)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			offset;

	if (TIMESTAMP_NOT_FINITE(t) ||
		timestamp2tm(t, &offset, &tm, &fsec, NULL, crefinder_zone_tz(zone)) != 0)
	{
		*dow = *hour = -1;
		return;
	}
	*dow = j2day(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday));
	*hour = tm.tm_hour;
}

/* a growing list of property ids */
typedef struct IdList
{
	int64	   *ids;
	int			n;
	int			size;
} IdList;

/*
 * EmailProperties adds to list the properties of the sent emails of store.
 */
static void
EmailProperties(Tuplestorestate *store, TupleDesc desc, const MessageColumns *c, IdList *list)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	int			reader = tuplestore_alloc_read_pointer(store, EXEC_FLAG_REWIND);

	tuplestore_select_read_pointer(store, reader);
	tuplestore_rescan(store);
	while (tuplestore_gettupleslot(store, true, false, slot))
	{
		bool		isnull;
		Datum		value;
		char		channel[16];

		CHECK_FOR_INTERRUPTS();
		if (!IsSet(slot, c->sent_at))
			continue;
		value = slot_getattr(slot, c->channel, &isnull);
		if (isnull)
			continue;
		TextInto(value, channel, sizeof(channel), "channel");
		if (strcmp(channel, "email") != 0)
			continue;
		value = slot_getattr(slot, c->property_id, &isnull);
		if (isnull)
			continue;
		if (list->n == list->size)
		{
			list->size = Max(64, list->size * 2);
			list->ids = list->ids ? repalloc(list->ids, sizeof(int64) * list->size)
				: palloc(sizeof(int64) * list->size);
		}
		list->ids[list->n++] = DatumGetInt64(value);
	}
	tuplestore_select_read_pointer(store, 0);
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * LoadPropertyZones reads the ZIP codes of the properties in ids (one
 * query) into a table of their zones.
 */
static HTAB *
LoadPropertyZones(const IdList *list, MemoryContext cxt)
{
	HASHCTL		ctl;
	HTAB	   *zones;
	Datum	   *values = palloc(sizeof(Datum) * list->n);
	Datum		arg;
	int			rc;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(PropertyZone);
	ctl.hcxt = cxt;
	zones = hash_create("crefinder property zones", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (int i = 0; i < list->n; i++)
		values[i] = Int64GetDatum(list->ids[i]);
	arg = PointerGetDatum(construct_array(values, list->n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (PropertyZipsPlan == NULL)
	{
		Oid			types[1] = {INT8ARRAYOID};
		SPIPlanPtr	plan = SPI_prepare("SELECT p.id, p.property_zip FROM crefinder.property_records p "
									   "WHERE p.id = ANY ($1) AND p.property_zip IS NOT NULL", 1, types);

		if (plan == NULL)
			elog(ERROR, "could not prepare the property lookup: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "could not keep the property lookup's plan");
		PropertyZipsPlan = plan;
	}
	rc = SPI_execute_plan(PropertyZipsPlan, &arg, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the properties' ZIP codes: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		char	   *zip = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		bool		found;
		PropertyZone *pz = hash_search(zones, &id, HASH_ENTER, &found);

		pz->zone = RecipientZone("email", "", zip);
	}
	return zones;
}

/*
 * AddRows adds sign times each row of store to its entries of sums.
 */
static void
AddRows(Tuplestorestate *store, TupleDesc desc, const MessageColumns *c, int sign, Sums *sums)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	int			reader = tuplestore_alloc_read_pointer(store, EXEC_FLAG_REWIND);
	Datum		zero = DirectFunctionCall1(int4_numeric, Int32GetDatum(0));

	/* a new read pointer starts where pointer 0 is: rewind it */
	tuplestore_select_read_pointer(store, reader);
	tuplestore_rescan(store);
	while (tuplestore_gettupleslot(store, true, false, slot))
	{
		RollupKey	key;
		RollupEntry *entry;
		bool		found;
		bool		isnull;
		Datum		value;
		bool		sent;
		bool		responded;
		const char *status;
		TimestampTz sent_at = 0;

		CHECK_FOR_INTERRUPTS();
		memset(&key, 0, sizeof(key));
		value = slot_getattr(slot, c->user_id, &isnull);
		if (!isnull)
			memcpy(&key.user_id, DatumGetUUIDP(value), sizeof(pg_uuid_t));
		value = slot_getattr(slot, c->campaign_id, &key.campaign_null);
		key.campaign_id = key.campaign_null ? 0 : DatumGetInt64(value);
		value = slot_getattr(slot, c->step, &key.step_null);
		key.step = key.step_null ? 0 : DatumGetInt32(value);
		value = slot_getattr(slot, c->variant, &key.variant_null);
		if (!key.variant_null)
			TextInto(value, key.variant, sizeof(key.variant), "variant");
		value = slot_getattr(slot, c->sender, &key.sender_null);
		if (!key.sender_null)
			TextInto(value, key.sender, sizeof(key.sender), "sender");
		value = slot_getattr(slot, c->channel, &isnull);
		if (!isnull)
			TextInto(value, key.channel, sizeof(key.channel), "channel");
		value = slot_getattr(slot, c->sent_at, &isnull);
		sent = !isnull;
		if (sent)
			sent_at = DatumGetTimestampTz(value);
		else
			value = slot_getattr(slot, c->created_at, &isnull);
		key.day = isnull ? DATEVAL_NOBEGIN : UtcDay(DatumGetTimestampTz(value));
		responded = IsSet(slot, c->responded_at);

		entry = hash_search(sums->entries, &key, HASH_ENTER, &found);
		if (!found)
		{
			memset(entry->counts, 0, sizeof(entry->counts));
			entry->cost = zero;
		}
		value = slot_getattr(slot, c->status, &isnull);
		status = isnull ? "" : TextDatumGetCString(value);
		entry->counts[COUNT_MESSAGES] += sign;
		entry->counts[COUNT_SENT] += sent ? sign : 0;
		entry->counts[COUNT_DELIVERED] += IsSet(slot, c->delivered_at) ? sign : 0;
		entry->counts[COUNT_OPENED] += IsSet(slot, c->opened_at) ? sign : 0;
		entry->counts[COUNT_CLICKED] += IsSet(slot, c->clicked_at) ? sign : 0;
		entry->counts[COUNT_RESPONDED] += responded ? sign : 0;
		entry->counts[COUNT_FAILED] += strcmp(status, "failed") == 0 ? sign : 0;
		entry->counts[COUNT_BLOCKED] += strcmp(status, "blocked") == 0 ? sign : 0;
		entry->counts[COUNT_SKIPPED] += strcmp(status, "skipped") == 0 ? sign : 0;
		entry->counts[COUNT_OPTED_OUT] += IsSet(slot, c->opted_out_at) ? sign : 0;
		entry->counts[COUNT_COMPLAINED] += IsSet(slot, c->complained_at) ? sign : 0;
		if (strcmp(status, "failed") == 0)
		{
			value = slot_getattr(slot, c->last_error, &isnull);
			if (!isnull && CarrierFiltered(DatumGetTextPP(value)))
				entry->counts[COUNT_FILTERED] += sign;
		}
		value = slot_getattr(slot, c->cost_cents, &isnull);
		if (!isnull)
		{
			entry->counts[COUNT_PRICED] += sent ? sign : 0;
			entry->cost = DirectFunctionCall2(sign > 0 ? numeric_add : numeric_sub, entry->cost, value);
		}
		if (!sent)
			continue;

		/* the recipient's hour of the week */
		{
			char		contact[CONTACT_MAX_BYTES + 1] = "";
			int			zone = -1;
			HourKey		hkey;
			HourEntry  *h;

			value = slot_getattr(slot, c->to_contact, &isnull);
			if (!isnull)
				TextInto(value, contact, sizeof(contact), "contact");
			if (strcmp(key.channel, "email") != 0)
				zone = RecipientZone(key.channel, contact, NULL);
			else if (sums->property_zones != NULL)
			{
				value = slot_getattr(slot, c->property_id, &isnull);
				if (!isnull)
				{
					int64		id = DatumGetInt64(value);
					PropertyZone *pz = hash_search(sums->property_zones, &id, HASH_FIND, NULL);

					zone = pz ? pz->zone : -1;
				}
			}
			if (zone >= 0)
			{
				memset(&hkey, 0, sizeof(hkey));
				hkey.user_id = key.user_id;
				memcpy(hkey.channel, key.channel, sizeof(hkey.channel));
				LocalHour(sent_at, zone, &hkey.dow, &hkey.hour);
				if (hkey.dow >= 0)
				{
					if (sums->hours == NULL)
						sums->hours = MakeTable("crefinder contact-time deltas", sizeof(HourKey),
												sizeof(HourEntry), sums->cxt);
					h = hash_search(sums->hours, &hkey, HASH_ENTER, &found);
					if (!found)
						h->sent = h->responded = 0;
					h->sent += sign;
					h->responded += responded ? sign : 0;
				}
			}
		}

		/* a campaign message: its property and contact point */
		if (!key.campaign_null)
		{
			ReachKey	rkey;
			ReachEntry *r;

			value = slot_getattr(slot, c->property_id, &isnull);
			if (isnull)
				continue;
			memset(&rkey, 0, sizeof(rkey));
			rkey.user_id = key.user_id;
			rkey.campaign_id = key.campaign_id;
			rkey.property_id = DatumGetInt64(value);
			value = slot_getattr(slot, c->to_contact, &isnull);
			if (!isnull)
				TextInto(value, rkey.contact, sizeof(rkey.contact), "contact");
			if (sums->reach == NULL)
				sums->reach = MakeTable("crefinder reach deltas", sizeof(ReachKey), sizeof(ReachEntry),
										sums->cxt);
			r = hash_search(sums->reach, &rkey, HASH_ENTER, &found);
			if (!found)
				r->sent = r->delivered = r->responded = 0;
			r->sent += sign;
			r->delivered += IsSet(slot, c->delivered_at) ? sign : 0;
			r->responded += responded ? sign : 0;
		}
	}
	tuplestore_select_read_pointer(store, 0);
	ExecDropSingleTupleTableSlot(slot);
}

static bool
Changed(const RollupEntry *entry)
{
	for (int i = 0; i < NUM_COUNTS; i++)
		if (entry->counts[i] != 0)
			return true;
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, entry->cost,
											 DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))) != 0;
}

/*
 * AppendDeltas writes the changed entries to crefinder.rollup_deltas in one
 * statement (one array per column).
 */
static void
AppendDeltas(HTAB *entries, bool *connected)
{
	long		n = hash_get_num_entries(entries);
	Datum	   *users = palloc(sizeof(Datum) * n);
	Datum	   *campaigns = palloc(sizeof(Datum) * n);
	bool	   *campaign_nulls = palloc(sizeof(bool) * n);
	Datum	   *channels = palloc(sizeof(Datum) * n);
	Datum	   *steps = palloc(sizeof(Datum) * n);
	bool	   *step_nulls = palloc(sizeof(bool) * n);
	Datum	   *variants = palloc(sizeof(Datum) * n);
	bool	   *variant_nulls = palloc(sizeof(bool) * n);
	Datum	   *senders = palloc(sizeof(Datum) * n);
	bool	   *sender_nulls = palloc(sizeof(bool) * n);
	Datum	   *days = palloc(sizeof(Datum) * n);
	Datum	   *counts[NUM_COUNTS];
	Datum	   *costs = palloc(sizeof(Datum) * n);
	Datum		values[8 + NUM_COUNTS];
	int			dims[1];
	int			lbs[1] = {1};
	int			rows = 0;
	HASH_SEQ_STATUS scan;
	RollupEntry *entry;
	int			rc;

	for (int i = 0; i < NUM_COUNTS; i++)
		counts[i] = palloc(sizeof(Datum) * n);
	hash_seq_init(&scan, entries);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		if (!Changed(entry))
			continue;
		users[rows] = UUIDPGetDatum(&entry->key.user_id);
		campaigns[rows] = Int64GetDatum(entry->key.campaign_id);
		campaign_nulls[rows] = entry->key.campaign_null;
		channels[rows] = CStringGetTextDatum(entry->key.channel);
		steps[rows] = Int32GetDatum(entry->key.step);
		step_nulls[rows] = entry->key.step_null;
		variants[rows] = entry->key.variant_null ? (Datum) 0 : CStringGetTextDatum(entry->key.variant);
		variant_nulls[rows] = entry->key.variant_null;
		senders[rows] = entry->key.sender_null ? (Datum) 0 : CStringGetTextDatum(entry->key.sender);
		sender_nulls[rows] = entry->key.sender_null;
		days[rows] = DateADTGetDatum(entry->key.day);
		for (int i = 0; i < NUM_COUNTS; i++)
			counts[i][rows] = Int64GetDatum(entry->counts[i]);
		costs[rows] = entry->cost;
		rows++;
	}
	if (rows == 0)
		return;
	dims[0] = rows;
	values[0] = PointerGetDatum(construct_array(users, rows, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	values[1] = PointerGetDatum(construct_md_array(campaigns, campaign_nulls, 1, dims, lbs, INT8OID, 8,
												   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[2] = PointerGetDatum(construct_array(channels, rows, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_md_array(steps, step_nulls, 1, dims, lbs, INT4OID, 4, true,
												   TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_md_array(variants, variant_nulls, 1, dims, lbs, TEXTOID, -1, false,
												   TYPALIGN_INT));
	values[5] = PointerGetDatum(construct_array(days, rows, DATEOID, 4, true, TYPALIGN_INT));
	for (int i = 0; i < NUM_COUNTS; i++)
		values[6 + i] = PointerGetDatum(construct_array(counts[i], rows, INT8OID, 8, FLOAT8PASSBYVAL,
														TYPALIGN_DOUBLE));
	values[6 + NUM_COUNTS] = PointerGetDatum(construct_array(costs, rows, NUMERICOID, -1, false,
															 TYPALIGN_INT));
	values[7 + NUM_COUNTS] = PointerGetDatum(construct_md_array(senders, sender_nulls, 1, dims, lbs, TEXTOID,
																-1, false, TYPALIGN_INT));

	ConnectSPI(connected);
	if (AppendPlan == NULL)
	{
		Oid			types[8 + NUM_COUNTS];
		SPIPlanPtr	plan;

		types[0] = UUIDARRAYOID;
		types[1] = INT8ARRAYOID;
		types[2] = TEXTARRAYOID;
		types[3] = INT4ARRAYOID;
		types[4] = TEXTARRAYOID;
		types[5] = DATEARRAYOID;
		for (int i = 0; i < NUM_COUNTS; i++)
			types[6 + i] = INT8ARRAYOID;
		types[6 + NUM_COUNTS] = NUMERICARRAYOID;
		types[7 + NUM_COUNTS] = TEXTARRAYOID;
		plan = SPI_prepare("INSERT INTO crefinder.rollup_deltas (user_id, campaign_id, channel, step, variant, "
						   "  day, messages, sent, delivered, opened, clicked, responded, failed, blocked, "
						   "  skipped, priced, opted_out, complained, filtered, cost_cents, sender) "
						   "SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
						   "  $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
						   8 + NUM_COUNTS, types);
		if (plan == NULL)
			elog(ERROR, "could not prepare the rollup append: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "could not keep the rollup append's plan");
		AppendPlan = plan;
	}
	rc = SPI_execute_plan(AppendPlan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not append rollup deltas: %s", SPI_result_code_string(rc));
}

/*
 * AppendReach writes the changed reach entries to crefinder.reach_deltas.
 */
static void
AppendReach(HTAB *reach, bool *connected)
{
	long		n = hash_get_num_entries(reach);
	Datum	   *users = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *campaigns = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *properties = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *contacts = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *sent = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *delivered = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *responded = palloc(sizeof(Datum) * Max(n, 1));
	Datum		values[7];
	int			rows = 0;
	HASH_SEQ_STATUS scan;
	ReachEntry *r;
	int			rc;

	hash_seq_init(&scan, reach);
	while ((r = hash_seq_search(&scan)) != NULL)
	{
		if (r->sent == 0 && r->delivered == 0 && r->responded == 0)
			continue;
		users[rows] = UUIDPGetDatum(&r->key.user_id);
		campaigns[rows] = Int64GetDatum(r->key.campaign_id);
		properties[rows] = Int64GetDatum(r->key.property_id);
		contacts[rows] = CStringGetTextDatum(r->key.contact);
		sent[rows] = Int64GetDatum(r->sent);
		delivered[rows] = Int64GetDatum(r->delivered);
		responded[rows] = Int64GetDatum(r->responded);
		rows++;
	}
	if (rows == 0)
		return;
	values[0] = PointerGetDatum(construct_array(users, rows, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	values[1] = PointerGetDatum(construct_array(campaigns, rows, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[2] = PointerGetDatum(construct_array(properties, rows, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_array(contacts, rows, TEXTOID, -1, false, TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_array(sent, rows, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[5] = PointerGetDatum(construct_array(delivered, rows, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[6] = PointerGetDatum(construct_array(responded, rows, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	ConnectSPI(connected);
	if (AppendReachPlan == NULL)
	{
		Oid			types[7] = {UUIDARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
								INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
		SPIPlanPtr	plan;

		plan = SPI_prepare("INSERT INTO crefinder.reach_deltas (user_id, campaign_id, property_id, contact, "
						   "  sent, delivered, responded) "
						   "SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7)", 7, types);
		if (plan == NULL)
			elog(ERROR, "could not prepare the reach append: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "could not keep the reach append's plan");
		AppendReachPlan = plan;
	}
	rc = SPI_execute_plan(AppendReachPlan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not append reach deltas: %s", SPI_result_code_string(rc));
}

/*
 * AppendHours writes the changed hours of the week to
 * crefinder.contact_time_deltas.
 */
static void
AppendHours(HTAB *hours, bool *connected)
{
	long		n = Max(hash_get_num_entries(hours), 1);
	Datum	   *users = palloc(sizeof(Datum) * n);
	Datum	   *channels = palloc(sizeof(Datum) * n);
	Datum	   *dows = palloc(sizeof(Datum) * n);
	Datum	   *hrs = palloc(sizeof(Datum) * n);
	Datum	   *sent = palloc(sizeof(Datum) * n);
	Datum	   *responded = palloc(sizeof(Datum) * n);
	Datum		values[6];
	int			rows = 0;
	HASH_SEQ_STATUS scan;
	HourEntry  *h;
	int			rc;

	hash_seq_init(&scan, hours);
	while ((h = hash_seq_search(&scan)) != NULL)
	{
		if (h->sent == 0 && h->responded == 0)
			continue;
		users[rows] = UUIDPGetDatum(&h->key.user_id);
		channels[rows] = CStringGetTextDatum(h->key.channel);
		dows[rows] = Int32GetDatum(h->key.dow);
		hrs[rows] = Int32GetDatum(h->key.hour);
		sent[rows] = Int64GetDatum(h->sent);
		responded[rows] = Int64GetDatum(h->responded);
		rows++;
	}
	if (rows == 0)
		return;
	values[0] = PointerGetDatum(construct_array(users, rows, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	values[1] = PointerGetDatum(construct_array(channels, rows, TEXTOID, -1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(dows, rows, INT4OID, 4, true, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(hrs, rows, INT4OID, 4, true, TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_array(sent, rows, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[5] = PointerGetDatum(construct_array(responded, rows, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	ConnectSPI(connected);
	if (AppendHoursPlan == NULL)
	{
		Oid			types[6] = {UUIDARRAYOID, TEXTARRAYOID, INT4ARRAYOID, INT4ARRAYOID, INT8ARRAYOID,
								INT8ARRAYOID};
		SPIPlanPtr	plan;

		plan = SPI_prepare("INSERT INTO crefinder.contact_time_deltas (user_id, channel, dow, hour, sent, responded) "
						   "SELECT * FROM unnest($1, $2, $3, $4, $5, $6)", 6, types);
		if (plan == NULL)
			elog(ERROR, "could not prepare the contact-time append: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "could not keep the contact-time append's plan");
		AppendHoursPlan = plan;
	}
	rc = SPI_execute_plan(AppendHoursPlan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not append contact-time deltas: %s", SPI_result_code_string(rc));
}

Datum
crefinder_roll_up(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	MessageColumns columns;
	MemoryContext work;
	MemoryContext caller;
	Sums		sums;
	bool		spi_connected = false;
	IdList		email_properties = {NULL, 0, 0};

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crefinder.roll_up() must be an AFTER ... FOR EACH STATEMENT trigger")));
	if (strcmp(RelationGetRelationName(trigdata->tg_relation), "outbound_events") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crefinder.roll_up() is for crefinder.outbound_events only")));

	/* prune_history() keeps the counts of what it deletes */
	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) && crefinder_pruning)
		return PointerGetDatum(NULL);

	work = AllocSetContextCreate(CurrentMemoryContext, "crefinder rollups", ALLOCSET_SMALL_SIZES);
	caller = MemoryContextSwitchTo(work);
	desc = RelationGetDescr(trigdata->tg_relation);
	FindColumns(desc, &columns);
	sums.cxt = work;
	sums.entries = MakeTable("crefinder rollup deltas", sizeof(RollupKey), sizeof(RollupEntry), work);
	sums.reach = NULL;
	sums.hours = NULL;
	sums.property_zones = NULL;

	/* the zones of sent emails' properties, in one query */
	if (trigdata->tg_newtable != NULL)
		EmailProperties(trigdata->tg_newtable, desc, &columns, &email_properties);
	if (trigdata->tg_oldtable != NULL)
		EmailProperties(trigdata->tg_oldtable, desc, &columns, &email_properties);
	if (email_properties.n > 0)
	{
		ConnectSPI(&spi_connected);
		sums.property_zones = LoadPropertyZones(&email_properties, work);
	}
	MemoryContextSwitchTo(work);
	if (trigdata->tg_newtable != NULL)
		AddRows(trigdata->tg_newtable, desc, &columns, 1, &sums);
	if (trigdata->tg_oldtable != NULL)
		AddRows(trigdata->tg_oldtable, desc, &columns, -1, &sums);
	AppendDeltas(sums.entries, &spi_connected);
	if (sums.reach != NULL)
		AppendReach(sums.reach, &spi_connected);
	if (sums.hours != NULL)
		AppendHours(sums.hours, &spi_connected);
	if (spi_connected)
		SPI_finish();

	MemoryContextSwitchTo(caller);
	MemoryContextDelete(work);
	return PointerGetDatum(NULL);
}
