/*
 * lookup.c
 *		The dispatcher's lookups: it asks a provider about messages it has
 *		already handed over, and records the answer.  Twilio gives no price
 *		when a message is created, so a text that reached its final status
 *		is looked up for its price (GET .../Messages/{sid}.json: price,
 *		price_unit, num_segments); and providers lose callbacks, so a text
 *		or a call with no final status some time after it went is looked up
 *		for its status (reconciliation: Twilio's Message, Vapi's
 *		GET /call/{id}, whose ended call is read as the end-of-call report
 *		Vapi did not deliver).
 *
 * A message waits for a lookup while outbound_events.lookup_at is set:
 * the dispatcher sets it when a text or call is handed over (to
 * crefinder.reconcile_after later; calls: their longest duration plus ten
 * minutes), the status callbacks move it (a final Twilio status without a
 * price: a minute later; a call ended with its cost: none).  Worker 0 makes
 * the lookups beside its sends, on a libcurl multi handle of their own, at
 * most crefinder.lookups_per_second started per second and as many in
 * flight.  Taking a lookup leases it: lookup_at moves to the next try (1,
 * 2, 4, ... minutes, and never sooner than a request can take), so a
 * lookup lost to a failed
 * request, a restart or a crash is made again later, and a provider that
 * keeps answering "not yet" is asked less and less often; after
 * LOOKUP_MAX_ATTEMPTS the lease is not renewed and the message keeps what
 * is known (the views count a sent message without a price as unpriced).
 * What the provider answers is applied by crefinder.twilio_fetched() and
 * crefinder.vapi_fetched() (72_lookups.sql), under the same never-regress
 * rules as the webhooks; each in a subtransaction of its own, so one bad
 * answer or row holds up no other, and an error of the lookups' own
 * transactions is logged and waits a while: it never stops the sends.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "crypto.h"
#include "dispatcher.h"
#include "guc.h"
#include "http.h"
#include "lookup.h"
#include "outbound.h"

#define LOOKUP_MAX_ATTEMPTS 10
#define LOOKUP_MAX_IN_FLIGHT 50
#define LOOKUP_CHECK_MS 10000	/* look for due lookups at least this often */
#define LOOKUP_MAX_BYTES (4 * 1024 * 1024)	/* a longer answer is cut off */
#define LOOKUP_ERROR_WAIT_MS 30000	/* after an error of the lookups' own */
#define CALL_MARGIN_SECONDS 600 /* a call's report may come this long after it ends */
#define DEFAULT_MAX_CALL_DURATION 300	/* the Vapi settings' maxCallDuration default */

/* The lookups of one claim: their memory goes with the last of them. */
typedef struct LookupBatch
{
	MemoryContext cxt;
	int			remaining;
} LookupBatch;

typedef struct Lookup
{
	LookupBatch *batch;
	OutboundMessage m;			/* id, tenant, channel, provider id, settings */
} Lookup;

static HttpClient *client = NULL;
static TimestampTz next_check = 0;
static double tokens = 0;
static TimestampTz tokens_at = 0;

/* finished requests waiting to be recorded */
static HttpRequest **finished = NULL;
static int	nfinished = 0;

/*
 * lookup_reconcile_at is when to ask the provider about m, handed over at
 * now, if no final status has come by then; 0 for messages never looked up
 * (emails: SendGrid has no message resource to ask without its paid
 * activity feed; cancellations).  A text scheduled at Twilio counts from
 * its SendAt time.
 */
TimestampTz
lookup_reconcile_at(OutboundMessage *m, TimestampTz now)
{
	if (strcmp(m->channel, "email") == 0 || m->twilio_cancel)
		return 0;
	if (strcmp(m->channel, "voice") == 0)
	{
		char	   *duration = outbound_integer(m->config, "maxCallDuration");
		int64		seconds = duration ? strtol(duration, NULL, 10) : DEFAULT_MAX_CALL_DURATION;

		return now + (seconds + CALL_MARGIN_SECONDS) * USECS_PER_SEC;
	}
	/*
	 * Twilio calls: 5 minutes on, then at the lookups' growing pace (a call
	 * still going on is asked about again): a lost final callback must not
	 * keep an agent's line taken for the whole TimeLimit.
	 */
	if (strcmp(m->channel, "call") == 0 || strcmp(m->channel, "voicemail") == 0)
		return now + TWILIO_CALL_FIRST_LOOKUP_SECONDS * USECS_PER_SEC;
	return Max(now, m->schedule_at) + (int64) crefinder_reconcile_after * USECS_PER_SEC;
}

static int
LookupsInFlight(void)
{
	return client ? http_in_flight(client) : 0;
}

/* lookup_wait_ms: how long the idle dispatcher may sleep without delaying a lookup. */
long
lookup_wait_ms(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (nfinished > 0)
		return 0;
	if (crefinder_lookups_per_second == 0)
		return -1;
	return next_check <= now ? 0 : (long) Min((next_check - now) / 1000 + 1, LOOKUP_CHECK_MS);
}

/*
 * lookup_poll is the idle dispatcher's sleep while lookups are in flight:
 * their sockets and the latch, for at most timeout_ms.  Returns false
 * when there were none to wait for (the caller sleeps on its latch).
 */
bool
lookup_poll(long timeout_ms)
{
	int			ndone;

	if (LookupsInFlight() == 0)
		return false;
	ndone = http_poll(client, (int) Min(timeout_ms, INT_MAX), finished + nfinished,
					  LOOKUP_MAX_IN_FLIGHT - nfinished);
	nfinished += ndone;
	return true;
}

/*
 * lookup_wake: a commit woke the dispatcher, a lookup may have become due:
 * look within a second (not at every wake: commits come in floods).
 */
void
lookup_wake(void)
{
	next_check = Min(next_check, GetCurrentTimestamp() + USECS_PER_SEC);
}

/* ----------------------------------------------------------------------
 * Taking due lookups
 * ---------------------------------------------------------------------- */

/*
 * NoteLookupError says in dispatcher_status that a lookup could not be
 * built or applied: its SQLSTATE only (every tenant reads that view, and a
 * message may quote a row); the server log has the message, at DEBUG1.
 */
static void
NoteLookupError(const char *what, OutboundMessage *m, ErrorData *edata)
{
	dispatcher_note_error(psprintf("a lookup could not be %s (SQLSTATE %s)", what,
								   unpack_sql_state(edata->sqlerrcode)));
	elog(DEBUG1, "crefinder lookup of message " INT64_FORMAT " not %s: %s", m->id, what,
		 edata->message ? edata->message : "error");
}

/* BuildLookup fills a lookup's request (run guarded: a bad row fails alone). */
static void
BuildLookup(void *arg)
{
	OutboundMessage *m = (OutboundMessage *) arg;

	if (strcmp(m->channel, "voice") == 0)
		vapi_build_fetch(m);
	else
		twilio_build_fetch(m);
	if (m->secret_wrong_key || m->secret_problem)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the tenant's provider secret does not open")));
}

/*
 * TakeLookups leases up to limit due lookups and builds their requests;
 * returns them (in a batch's memory) and sets *full when limit were due.
 * Providers paused for their tenant (credentials rejected) are left alone.
 */
static int
TakeLookups(int limit, Lookup ***out, bool *full)
{
	Oid			argtypes[3] = {INT4OID, INT4OID, INT4OID};
	Datum		args[3] = {Int32GetDatum(limit), Int32GetDatum(LOOKUP_MAX_ATTEMPTS),
	Int32GetDatum(crefinder_http_timeout_ms / 1000 + 5)};
	int			rc;
	int			n = 0;
	int			taken;
	SPITupleTable *rows;
	LookupBatch *batch;
	Lookup	  **lookups;
	CrefinderKey key;
	MemoryContext cxt;
	MemoryContext old;
	ErrorData  *edata;

	*out = NULL;
	*full = false;
	dispatcher_begin_work("looking up messages");
	if (dispatcher_run_guarded(dispatcher_load_key, &key) != NULL)
	{
		/* the dispatcher's claim says so in the log and holds messages */
		dispatcher_end_work();
		return 0;
	}
	rc = SPI_execute_with_args(
							   "WITH due AS ("
							   "  SELECT e.id FROM crefinder.outbound_events e "
							   "  WHERE e.lookup_at <= now() "
							   "    AND NOT EXISTS (SELECT 1 FROM crefinder.integration_configs c "
							   "      WHERE c.user_id = e.user_id AND c.paused_at IS NOT NULL "
							   "        AND c.provider = CASE e.channel WHEN 'voice' THEN 'vapi' ELSE 'twilio' END) "
							   "  ORDER BY e.lookup_at LIMIT $1 FOR UPDATE OF e SKIP LOCKED) "
							   "UPDATE crefinder.outbound_events e SET "
							   "  lookups = least(e.lookups + 1, 32767), "
							   "  lookup_at = CASE WHEN e.lookups + 1 >= $2 THEN NULL "
							   "    ELSE now() + greatest(make_interval(secs => $3), least(interval '6 hours', "
							   "      interval '1 minute' * pg_catalog.power(2, least(e.lookups, 12)))) END "
							   "FROM due WHERE e.id = due.id "
							   /* a bridge's dialled leg, once the first is priced */
							   "RETURNING e.id, e.user_id::text, e.channel, "
							   "  CASE WHEN e.channel IN ('call', 'voicemail') THEN coalesce("
							   "    (SELECT r.dial_call_sid FROM crefinder.call_results r "
							   "     WHERE r.user_id = e.user_id AND r.call_id = e.provider_message_id "
							   "       AND r.cost IS NOT NULL AND r.dial_cost IS NULL), e.provider_message_id) "
							   "    ELSE e.provider_message_id END, "
							   "  (SELECT c.config FROM crefinder.integration_configs c WHERE c.user_id = e.user_id "
							   "     AND c.provider = CASE e.channel WHEN 'voice' THEN 'vapi' ELSE 'twilio' END), "
							   "  (SELECT c.secrets FROM crefinder.integration_configs c WHERE c.user_id = e.user_id "
							   "     AND c.provider = CASE e.channel WHEN 'voice' THEN 'vapi' ELSE 'twilio' END)",
							   3, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not take lookups: %s", SPI_result_code_string(rc));
	/* (the lease is never shorter than a request may take: $3 seconds) */
	taken = (int) SPI_processed;
	rows = SPI_tuptable;
	*full = taken >= limit;

	cxt = AllocSetContextCreate(TopMemoryContext, "crefinder lookups", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	batch = palloc0(sizeof(LookupBatch));
	batch->cxt = cxt;
	lookups = palloc0(sizeof(Lookup *) * Max(taken, 1));
	outbound_secret_key(&key);
	outbound_secret_cache(true);
	PG_TRY();
	{
		for (int i = 0; i < taken; i++)
		{
			HeapTuple	t = rows->vals[i];
			TupleDesc	d = rows->tupdesc;
			Lookup	   *l = palloc0(sizeof(Lookup));
			OutboundMessage *m = &l->m;
			bool		isnull;
			Datum		v;

			l->batch = batch;
			m->id = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
			m->tenant = SPI_getvalue(t, d, 2);
			m->channel = SPI_getvalue(t, d, 3);
			m->provider_message_id = SPI_getvalue(t, d, 4);
			v = SPI_getbinval(t, d, 5, &isnull);
			m->config = isnull ? NULL : DatumGetJsonbPCopy(v);
			v = SPI_getbinval(t, d, 6, &isnull);
			m->secrets = isnull ? NULL : DatumGetJsonbPCopy(v);
			m->request.owner = l;
			m->request.max_response = LOOKUP_MAX_BYTES;
			if (m->config == NULL)
				continue;			/* the tenant has no settings for it now */
			edata = dispatcher_run_guarded(BuildLookup, m);
			if (edata != NULL)
			{
				if (m->request.headers)
					curl_slist_free_all(m->request.headers);
				m->request.headers = NULL;
				NoteLookupError("built", m, edata);
				continue;
			}
			lookups[n++] = l;
		}
	}
	PG_CATCH();
	{
		/* nothing of this claim starts: the leases bring the lookups back */
		for (int i = 0; i < n; i++)
			http_request_free(&lookups[i]->m.request);
		outbound_secret_cache(false);
		outbound_secret_key(NULL);
		crefinder_wipe_key(&key);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	outbound_secret_cache(false);
	outbound_secret_key(NULL);
	crefinder_wipe_key(&key);
	MemoryContextSwitchTo(old);
	dispatcher_end_work();

	batch->remaining = n;
	if (n == 0)
	{
		MemoryContextDelete(cxt);
		return 0;
	}
	*out = lookups;
	return n;
}

/* ----------------------------------------------------------------------
 * Recording answers
 * ---------------------------------------------------------------------- */

typedef struct Answer
{
	OutboundMessage *m;
	const char *function;		/* the SQL function that applies it */
} Answer;

static void
ApplyAnswer(void *arg)
{
	Answer	   *a = (Answer *) arg;
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		args[2];
	int			rc;

	args[0] = Int64GetDatum(a->m->id);
	args[1] = CStringGetTextDatum(a->m->request.response.data);
	rc = SPI_execute_with_args(psprintf("SELECT crefinder.%s($1, $2::jsonb)", a->function),
							   2, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not apply a lookup: %s", SPI_result_code_string(rc));
}

/*
 * NotFound: the provider's own "no such message" (Twilio's code 20404,
 * Vapi's statusCode 404), not a 404 of whatever answers at its address.
 */
static bool
NotFound(OutboundMessage *m)
{
	Jsonb	   *answer;
	char	   *code;

	if (m->request.status != 404 || m->request.response.data == NULL)
		return false;
	answer = outbound_parse_json(m->request.response.data);
	code = outbound_text(answer, strcmp(m->channel, "voice") == 0 ? "statusCode" : "code");
	return code != NULL && strcmp(code, strcmp(m->channel, "voice") == 0 ? "404" : "20404") == 0;
}

/* The provider no longer knows the message: nothing more to ask. */
static void
ForgetLookup(void *arg)
{
	OutboundMessage *m = (OutboundMessage *) arg;
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(m->id)};

	if (SPI_execute_with_args("UPDATE crefinder.outbound_events SET lookup_at = NULL WHERE id = $1",
							  1, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not end a lookup");
}

/* ForgetFinished frees the finished requests (and their batches, once empty). */
static void
ForgetFinished(void)
{
	for (int i = 0; i < nfinished; i++)
	{
		Lookup	   *l = (Lookup *) finished[i]->owner;

		http_request_free(finished[i]);
		if (--l->batch->remaining == 0)
			MemoryContextDelete(l->batch->cxt);
	}
	nfinished = 0;
}

/*
 * RecordLookups applies the finished lookups' answers in one transaction
 * and frees them.  An answer that is not a 200 (a timeout, 429, 5xx, a
 * rejected credential) changes nothing: the lease brings the lookup back.
 */
static void
RecordLookups(void)
{
	int			n = nfinished;

	dispatcher_begin_work("recording lookups");
	/* a tenant's lock makes its answer wait for the next lease, not the sends */
	(void) set_config_option("lock_timeout", "100ms", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
							 true, 0, false);
	for (int i = 0; i < n; i++)
	{
		Lookup	   *l = (Lookup *) finished[i]->owner;
		OutboundMessage *m = &l->m;
		HttpRequest *r = &m->request;
		ErrorData  *edata = NULL;

		if (r->result == CURLE_OK && NotFound(m))
			edata = dispatcher_run_guarded(ForgetLookup, m);
		else if (r->result == CURLE_OK && r->status == 200 && r->response.data != NULL &&
				 strlen(r->response.data) == r->response.len)
		{
			Answer		a = {m, strcmp(m->channel, "voice") == 0 ? "vapi_fetched" :
				strcmp(m->channel, "call") == 0 || strcmp(m->channel, "voicemail") == 0 ?
				"twilio_call_fetched" : "twilio_fetched"};

			edata = dispatcher_run_guarded(ApplyAnswer, &a);
		}
		if (edata != NULL)
			NoteLookupError("applied", m, edata);
	}
	dispatcher_end_work();
	ForgetFinished();
}

/*
 * LookupRound records what finished, then takes and starts due lookups as
 * the pace allows.
 */
static void
LookupRound(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int			rate = crefinder_lookups_per_second;
	int			room;

	(void) lookup_poll(0);
	if (nfinished > 0)
		RecordLookups();

	if (rate == 0 || now < next_check)
		return;
	/* a bucket of rate tokens, refilled at rate per second (a clock set back refills nothing) */
	tokens = Min((double) rate, tokens + (double) Max(now - tokens_at, 0) / USECS_PER_SEC * rate);
	tokens_at = now;
	room = Min(Min(rate, LOOKUP_MAX_IN_FLIGHT) - http_in_flight(client) - nfinished, (int) tokens);
	if (room > 0)
	{
		Lookup	  **lookups;
		bool		full;
		int			n = TakeLookups(room, &lookups, &full);

		tokens -= n;
		for (int i = 0; i < n; i++)
		{
			/* a request that cannot start waits for its lease to come back */
			if (!http_start(client, &lookups[i]->m.request, crefinder_http_timeout_ms))
				finished[nfinished++] = &lookups[i]->m.request;
		}
		/* all that was due is taken: look again in a while (a commit wakes sooner) */
		next_check = full ? now : now + (int64) LOOKUP_CHECK_MS * 1000;
	}
	else
		next_check = now + 100 * 1000;
}

/*
 * lookup_round is worker 0's turn at its lookups, once per round of the
 * dispatcher's loop, outside any transaction.  An ERROR of its own
 * transactions (not of one message: those are guarded) is logged once,
 * rolled back, and the lookups wait LOOKUP_ERROR_WAIT_MS; the answers
 * that were not recorded are dropped (their leases bring them back).
 */
void
lookup_round(void)
{
	static char last[256] = "";
	MemoryContext cxt = CurrentMemoryContext;

	if (client == NULL)
	{
		/* for the life of the process (the round's memory is reset) */
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		client = http_client_create(4);
		finished = palloc(sizeof(HttpRequest *) * LOOKUP_MAX_IN_FLIGHT);
		MemoryContextSwitchTo(old);
	}
	PG_TRY();
	{
		LookupRound();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);
		ForgetFinished();
		next_check = GetCurrentTimestamp() + (int64) LOOKUP_ERROR_WAIT_MS * 1000;
		if (strcmp(last, edata->message ? edata->message : "") != 0)
		{
			strlcpy(last, edata->message ? edata->message : "", sizeof(last));
			ereport(LOG,
					(errmsg("crefinder dispatcher lookups: %s", edata->message ? edata->message : "error"),
					 errdetail("The lookups wait %d seconds; the sends go on.", LOOKUP_ERROR_WAIT_MS / 1000)));
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();
}
