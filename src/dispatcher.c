/*
 * dispatcher.c
 *		The dispatcher: a background worker that sends queued messages to
 *		the providers after their transactions commit, and records what
 *		came back.
 *
 * The words used here:
 *	- to claim is to take due queued rows (FOR UPDATE SKIP LOCKED), check
 *	  compliance again, and mark the allowed ones sending, in a transaction
 *	  that commits before any HTTP request leaves;
 *	- in flight are claimed messages whose request is on the wire;
 *	- to record is to write the outcomes of finished requests in one
 *	  transaction: sent, queued again for a retry (backoff with jitter,
 *	  Retry-After and X-RateLimit-Reset honoured), or failed.
 *
 * Claiming and recording interleave with the requests: the dispatcher keeps
 * up to crefinder.batch_size requests in flight and refills as they finish,
 * so one slow request never holds up the others.  It sleeps on its latch
 * when idle, until the next queued row is due or a committing transaction
 * that queued a message wakes it.  At start, rows left sending by a crash
 * become unknown: the request may have reached the provider, so they are
 * never sent again on their own (crefinder.retry_unknown() re-queues them).
 *
 * crefinder.dispatcher_workers processes run this loop.  Worker 0 is woken
 * by commits and serves every message; when it finds more due than one claim
 * takes it wakes the others (helpers), which claim alongside it with SKIP
 * LOCKED but leave paced messages and calls to worker 0, the one place that
 * remembers what was sent.  Each row records the worker that claimed it, so a
 * restarting worker recovers only its own.  SIGTERM stops claiming and lets
 * the requests in flight finish for a few seconds before the worker exits.
 *
 * Nothing a row or a tenant holds can stop the loop: each step of a claim
 * runs in a subtransaction (RunGuarded), so a message that cannot be
 * prepared fails alone, a tenant whose rows are locked is held, and
 * outcomes that meet a lock wait in memory to be recorded later; an ERROR
 * that still ends a round is logged and rolled back, and the next round
 * goes on with the requests in flight (RoundFailed).  Every statement runs
 * with search_path = pg_catalog, pg_temp and a short lock_timeout.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "compliance.h"
#include "crypto.h"
#include "dispatcher.h"
#include "guc.h"
#include "http.h"
#include "lookup.h"
#include "outbound.h"
#include "shared.h"

PGDLLEXPORT void crefinder_dispatcher_main(Datum arg);

PG_FUNCTION_INFO_V1(crefinder_dispatcher_status);

/*
 * The provider that carries a channel, as SQL (crefinder.channel_provider()
 * and outbound_provider() say the same): written out, since a function call
 * per row would cost the claim more than the row.
 */
#define PROVIDER_OF(channel) \
	"(CASE " channel " WHEN 'email' THEN 'sendgrid' WHEN 'voice' THEN 'vapi' ELSE 'twilio' END)"

#define IDLE_WAIT_MS 60000		/* longest sleep: settings may change */
#define POLL_MS 20				/* wait for sockets while requests are in flight */

static int	RecordOutcomes(OutboundMessage **messages, int n, bool sending);
static ErrorData *WriteAll(OutboundMessage **messages, int n, bool sending, bool *written);

/* ----------------------------------------------------------------------
 * Registration and shared state
 * ---------------------------------------------------------------------- */

/*
 * crefinder_register_dispatcher registers crefinder.dispatcher_workers
 * workers; called from _PG_init when the library is preloaded.
 */
void
crefinder_register_dispatcher(void)
{
	for (int i = 0; i < crefinder_dispatcher_workers; i++)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 5;
		worker.bgw_main_arg = Int32GetDatum(i);
		strlcpy(worker.bgw_library_name, "crefinder", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "crefinder_dispatcher_main", BGW_MAXLEN);
		snprintf(worker.bgw_name, BGW_MAXLEN, "crefinder dispatcher %d", i);
		strlcpy(worker.bgw_type, "crefinder dispatcher", BGW_MAXLEN);
		RegisterBackgroundWorker(&worker);
	}
}

/*
 * This worker's number: worker 0 serves every message; the others (helpers)
 * claim only messages that need no memory of what was sent before (no
 * pacing, no concurrent-call limit, no agent on a bridge), so those limits
 * live in one process.
 */
static int	MyWorker = 0;

#define MySlot (&crefinder_shared->workers[MyWorker])

static void
SetState(const char *state)
{
	SpinLockAcquire(&crefinder_shared->mutex);
	strlcpy(MySlot->state, state, sizeof(MySlot->state));
	SpinLockRelease(&crefinder_shared->mutex);
	pgstat_report_activity(strcmp(state, "idle") == 0 ? STATE_IDLE : STATE_RUNNING, state);
}

static void
CountOutcome(const char *status, int in_flight)
{
	SpinLockAcquire(&crefinder_shared->mutex);
	if (status != NULL)
	{
		if (strcmp(status, "sent") == 0)
			MySlot->sent++;
		else if (strcmp(status, "failed") == 0)
			MySlot->failed++;
		else if (strcmp(status, "queued") == 0)
			MySlot->retried++;
		else if (strcmp(status, "blocked") == 0)
			MySlot->blocked++;
	}
	if (in_flight >= 0)
		MySlot->in_flight = in_flight;
	SpinLockRelease(&crefinder_shared->mutex);
}

static void
NoteError(const char *error)
{
	SpinLockAcquire(&crefinder_shared->mutex);
	strlcpy(MySlot->last_error, error, sizeof(MySlot->last_error));
	MySlot->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&crefinder_shared->mutex);
}

static void
ClearShared(int code, Datum arg)
{
	SpinLockAcquire(&crefinder_shared->mutex);
	MySlot->pid = 0;
	MySlot->latch = NULL;
	MySlot->in_flight = 0;
	strlcpy(MySlot->state, "stopped", sizeof(MySlot->state));
	SpinLockRelease(&crefinder_shared->mutex);
}

/* ----------------------------------------------------------------------
 * Transactions
 * ---------------------------------------------------------------------- */

static MemoryContext work_caller_cxt = NULL;

/*
 * BeginWork starts a transaction with SPI and a snapshot; EndWork commits
 * it and returns to the memory context BeginWork was called in (commit
 * leaves TopMemoryContext current).
 */
static void
BeginWork(const char *what)
{
	work_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

static void
EndWork(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(work_caller_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * UseIndexPlans makes this session's planner use index scans and nested
 * loops.  Every statement of the dispatcher touches at most a batch of rows
 * found by key, but right after a large enqueue the outbox's statistics
 * still describe an empty table, and the plans the planner then picks scan
 * and sort the whole backlog on every claim and record (76 ms instead of
 * 3 ms for a claim of 1,000 in a backlog of 200,000; hash joins spilling to
 * disk when recording).  Tables without a usable index are still scanned.
 */
static void
UseIndexPlans(void)
{
	static const char *const off[] = {"enable_seqscan", "enable_bitmapscan", "enable_hashjoin",
	"enable_mergejoin"};

	for (int i = 0; i < (int) lengthof(off); i++)
		(void) set_config_option(off[i], "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SET,
								 true, 0, false);
}

/*
 * SetSessionSafety pins this session's search_path, so that no object a
 * database user planted in a schema of the path can stand in for one the
 * dispatcher's statements name (it runs as the bootstrap superuser), and
 * bounds every lock wait: a lock a tenant's transaction holds makes the
 * statement fail after DISPATCHER_LOCK_TIMEOUT, and the dispatcher goes on
 * with the others' messages (see RunGuarded).
 */
#define DISPATCHER_LOCK_TIMEOUT "1s"

static void
SetSessionSafety(void)
{
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE,
							 GUC_ACTION_SET, true, 0, false);
	(void) set_config_option("lock_timeout", DISPATCHER_LOCK_TIMEOUT, PGC_SUSET, PGC_S_OVERRIDE,
							 GUC_ACTION_SET, true, 0, false);
}

/*
 * RunGuarded runs fn(arg) in a subtransaction of the current transaction.
 * It returns NULL when fn succeeded, else the error (copied into the
 * caller's memory) after rolling the subtransaction back: the statements fn
 * ran are undone, the outer transaction goes on.  This is how one bad row
 * or one tenant's lock fails or holds only its own messages.
 */
static ErrorData *
RunGuarded(GuardedFn fn, void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return edata;
}

/* The same, for lookup.c. */
void
dispatcher_note_error(const char *error)
{
	NoteError(error);
}

void
dispatcher_begin_work(const char *what)
{
	BeginWork(what);
}

void
dispatcher_end_work(void)
{
	EndWork();
}

ErrorData *
dispatcher_run_guarded(GuardedFn fn, void *arg)
{
	return RunGuarded(fn, arg);
}

#define ClipText(text, max) outbound_clean_text((text), strlen(text), (max))

/* GuardedError is an error's message for a row's last_error (short, valid text). */
static char *
GuardedError(const char *what, ErrorData *edata)
{
	return ClipText(psprintf("%s: %s", what, edata->message ? edata->message : "unknown error"),
					CREFINDER_ERROR_LEN - 1);
}

static bool
IsLockTimeout(ErrorData *edata)
{
	return edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		edata->sqlerrcode == ERRCODE_QUERY_CANCELED;
}

/* ExtensionReady: is crefinder installed in this database? */
static bool
ExtensionReady(void)
{
	bool		ready;

	StartTransactionCommand();
	ready = OidIsValid(get_extension_oid("crefinder", true));
	CommitTransactionCommand();
	return ready;
}

/*
 * RecoverInFlight turns rows left sending by this worker's predecessor into
 * unknown (worker 0 also takes those of workers that no longer exist).  The
 * other workers' rows are theirs: they may be on the wire right now.
 */
static void
RecoverInFlight(void)
{
	int			rc;
	Oid			types[2] = {INT2OID, INT2OID};
	Datum		values[2] = {Int16GetDatum(MyWorker), Int16GetDatum(crefinder_dispatcher_workers)};

	BeginWork("recovering messages left in flight");
	rc = SPI_execute_with_args("UPDATE crefinder.outbound_events "
							   "SET status = 'unknown', updated_at = now(), "
							   "    last_error = 'the dispatcher stopped while the request was in flight' "
							   "WHERE status = 'sending' "
							   "  AND (claimed_by = $1 OR ($1 = 0 AND (claimed_by >= $2 OR claimed_by IS NULL)))",
							   2, types, values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not recover messages in flight: %s", SPI_result_code_string(rc));
	if (SPI_processed > 0)
		ereport(LOG,
				(errmsg("crefinder dispatcher marked %llu messages left in flight as unknown",
						(unsigned long long) SPI_processed)));
	EndWork();
}

/* ----------------------------------------------------------------------
 * Claiming
 * ---------------------------------------------------------------------- */

static char *
GetText(HeapTuple tuple, TupleDesc desc, int col)
{
	return SPI_getvalue(tuple, desc, col);
}

static Jsonb *
GetJsonb(HeapTuple tuple, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, col, &isnull);

	return isnull ? NULL : DatumGetJsonbPCopy(d);
}

static int64
GetInt64(HeapTuple tuple, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * A group of claimed messages re-checked together: one tenant, one channel,
 * one instant.
 */
typedef struct RecheckGroup
{
	OutboundMessage **messages;
	int			count;
	TimestampTz at;
	Datum		exclude;
	MemoryContext cxt;
} RecheckGroup;

/*
 * RecheckGroupNow runs the compliance decision for a group.  A refused
 * message gets status blocked, or queued (held) with next_attempt_at when
 * the refusal is time-based.
 */
static void
RecheckGroupNow(void *arg)
{
	RecheckGroup *g = (RecheckGroup *) arg;
	const char **contacts = palloc(sizeof(char *) * g->count);
	int64	   *properties = palloc(sizeof(int64) * g->count);
	CrefinderDecision *decisions = palloc(sizeof(CrefinderDecision) * g->count);

	for (int k = 0; k < g->count; k++)
	{
		contacts[k] = g->messages[k]->to;
		properties[k] = g->messages[k]->property_id;
	}
	crefinder_check_before_send(DirectFunctionCall1(uuid_in, CStringGetDatum(g->messages[0]->tenant)),
								g->messages[0]->channel, g->count, contacts, properties,
								g->at, g->exclude, decisions);
	for (int k = 0; k < g->count; k++)
	{
		OutboundMessage *m = g->messages[k];

		if (decisions[k].reason == NULL)
			continue;
		if (decisions[k].has_next && strcmp(decisions[k].reason, "invalid_contact") != 0)
		{
			m->status = "queued";
			m->deferred = true;
			m->next_attempt_at = decisions[k].next;
			m->hold_reason = MemoryContextStrdup(g->cxt, decisions[k].reason);
		}
		else
		{
			m->status = "blocked";
			m->block_reason = MemoryContextStrdup(g->cxt, decisions[k].reason);
		}
	}
}

/*
 * Hold puts a message back in the queue, unsent and no attempt spent,
 * until delay_ms from now, saying why.
 */
static void
Hold(OutboundMessage *m, const char *reason, const char *error, int64 delay_ms)
{
	m->status = "queued";
	m->deferred = true;
	m->hold_reason = reason;
	m->error = error ? pstrdup(error) : NULL;
	m->next_attempt_at = GetCurrentTimestamp() + delay_ms * 1000;
}

#define LOCKED_HOLD_MS 10000	/* a tenant's rows are locked: look again then */

/*
 * HoldForError notes an error on a message, in cxt (the claim's memory,
 * which outlives this transaction): held for LOCKED_HOLD_MS with reason,
 * or failed when reason is NULL.
 */
static void
HoldForError(OutboundMessage *m, const char *reason, const char *what, ErrorData *edata,
			 MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);

	if (reason != NULL)
		Hold(m, reason, GuardedError(what, edata), LOCKED_HOLD_MS);
	else
	{
		m->status = "failed";
		m->error = GuardedError(what, edata);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Recheck runs the compliance decision for the claimed messages, together
 * per (tenant, channel), each with its own property's context.  A group
 * whose check fails is held when it met a lock, else checked message by
 * message: a message whose own check fails is failed with the reason.
 */
static void
Recheck(OutboundMessage **claimed, int n, Datum exclude, MemoryContext cxt)
{
	TimestampTz now = GetCurrentTimestamp();
	bool	   *done = palloc0(sizeof(bool) * n);

	/*
	 * Settled messages and cancellations are not checked; a text handed to
	 * Twilio with SendAt is checked for the instant it will go out.
	 */
	for (int i = 0; i < n; i++)
		done[i] = claimed[i]->status != NULL || claimed[i]->twilio_cancel;

	for (int i = 0; i < n; i++)
	{
		RecheckGroup g;
		ErrorData  *edata;

		if (done[i])
			continue;
		g.messages = palloc(sizeof(OutboundMessage *) * n);
		g.count = 0;
		g.at = claimed[i]->schedule_at ? claimed[i]->schedule_at : now;
		g.exclude = exclude;
		g.cxt = cxt;
		for (int j = i; j < n; j++)
		{
			if (done[j] || strcmp(claimed[j]->tenant, claimed[i]->tenant) != 0 ||
				strcmp(claimed[j]->channel, claimed[i]->channel) != 0 ||
				claimed[j]->schedule_at != claimed[i]->schedule_at)
				continue;
			done[j] = true;
			g.messages[g.count++] = claimed[j];
		}
		edata = RunGuarded(RecheckGroupNow, &g);
		if (edata == NULL)
			continue;
		if (IsLockTimeout(edata))
		{
			for (int k = 0; k < g.count; k++)
				HoldForError(g.messages[k], "locked", "compliance re-check waited for a lock", edata, cxt);
			continue;
		}
		/* find the message(s) that fail alone */
		for (int k = 0; k < g.count; k++)
		{
			RecheckGroup one = g;

			one.messages = &g.messages[k];
			one.count = 1;
			edata = RunGuarded(RecheckGroupNow, &one);
			if (edata == NULL)
				continue;
			if (IsLockTimeout(edata))
				HoldForError(g.messages[k], "locked", "compliance re-check waited for a lock", edata, cxt);
			else
				HoldForError(g.messages[k], NULL, "compliance re-check failed", edata, cxt);
		}
	}
}

/*
 * Pacing: a token bucket per tenant and provider, filled at the rate of the
 * provider config's maxPerSecond (burst: one second's worth, at least one).
 * A message that finds the bucket empty is put back in the queue for the
 * moment the next token is due; that is no attempt.
 */
typedef struct Bucket
{
	char		key[64];		/* tenant uuid / provider */
	double		tokens;
	TimestampTz filled_at;
	TimestampTz deferring_at;	/* the claim that deferred ... */
	int			deferred;		/* ... this many messages so far */
} Bucket;

static HTAB *buckets = NULL;

/*
 * TakeToken returns 0 when m may go now, else the microseconds until its
 * provider's bucket has a token for it.
 */
static int64
TakeToken(OutboundMessage *m, TimestampTz now)
{
	char	   *rate_text = outbound_text(m->config, "maxPerSecond");
	double		rate;
	char		key[64];
	Bucket	   *bucket;
	bool		found;

	if (rate_text == NULL)
		return 0;
	rate = strtod(rate_text, NULL);
	if (!isfinite(rate) || rate <= 0)
		return 0;
	if (buckets == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(Bucket);
		buckets = hash_create("crefinder pacing buckets", 64, &ctl, HASH_ELEM | HASH_STRINGS);
	}
	memset(key, 0, sizeof(key));
	snprintf(key, sizeof(key), "%s/%s", m->tenant, outbound_provider(m->channel));
	bucket = hash_search(buckets, key, HASH_ENTER, &found);
	if (!found)
	{
		bucket->tokens = Max(rate, 1.0);
		bucket->filled_at = now;
		bucket->deferring_at = 0;
		bucket->deferred = 0;
	}
	bucket->tokens = Min(Max(rate, 1.0),
						 bucket->tokens + rate * (double) (now - bucket->filled_at) / USECS_PER_SEC);
	bucket->filled_at = now;
	if (bucket->tokens >= 1.0)
	{
		bucket->tokens -= 1.0;
		return 0;
	}
	/* the k-th message deferred by this claim goes k tokens later */
	if (bucket->deferring_at != now)
	{
		bucket->deferring_at = now;
		bucket->deferred = 0;
	}
	bucket->deferred++;
	return (int64) ((bucket->deferred - bucket->tokens) / rate * USECS_PER_SEC) + 1;
}

/*
 * EmailBatchKey: emails with equal keys may share one SendGrid request
 * (same tenant, and the same everything but recipient and template data).
 */
static char *
EmailBatchKey(OutboundMessage *m)
{
	Jsonb	   *categories = outbound_object(m->payload, "categories");
	const char *parts[6];
	StringInfoData key;

	parts[0] = outbound_text(m->payload, "subject");
	parts[1] = outbound_text(m->payload, "text");
	parts[2] = outbound_text(m->payload, "html");
	parts[3] = outbound_text(m->payload, "template_id");
	parts[4] = outbound_text(m->payload, "send_at");
	parts[5] = categories ? JsonbToCString(NULL, &categories->root, VARSIZE(categories)) : NULL;
	initStringInfo(&key);
	appendStringInfoString(&key, m->tenant);
	for (int i = 0; i < (int) lengthof(parts); i++)
	{
		/* length-prefixed, so that no two different messages share a key */
		if (parts[i] == NULL)
			appendStringInfoString(&key, "|-");
		else
			appendStringInfo(&key, "|%zu:%s", strlen(parts[i]), parts[i]);
	}
	return key.data;
}

static bool
HasRecipient(OutboundMessage *leader, const char *to)
{
	if (strcmp(leader->to, to) == 0)
		return true;
	for (int i = 0; i < leader->nfollowers; i++)
		if (strcmp(leader->followers[i]->to, to) == 0)
			return true;
	return false;
}

/*
 * Vapi's concurrent-call limit (config maxConcurrentCalls, default 10): a
 * call counts from the moment it is claimed until Vapi reports it ended
 * (provider_status 'ended') or, should that report never come, until its
 * longest possible duration (maxCallDuration) and two minutes have passed.
 * Only worker 0 claims calls, so the count cannot race with another claim.
 * A call over the limit waits in the queue and is looked at again
 * CALL_HOLD_SECONDS later (or released sooner by crefinder.release_held_calls(), which
 * matches CALL_HELD); that is no attempt.
 */
#define CALL_HOLD_SECONDS 30
#define CALL_HELD "held: the tenant's maxConcurrentCalls calls are in progress"
#define DEFAULT_MAX_CONCURRENT_CALLS 10

typedef struct CallBudget
{
	char		tenant[UUID_LEN * 2 + 5];	/* text form of a uuid */
	int			free;			/* calls this claim may still start */
} CallBudget;

static bool
TakeCallSlot(HTAB **calls, OutboundMessage *m, MemoryContext cxt)
{
	CallBudget *budget;
	char		key[UUID_LEN * 2 + 5];
	bool		found;

	if (*calls == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(CallBudget);
		ctl.hcxt = cxt;
		*calls = hash_create("crefinder call budgets", 16, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	memset(key, 0, sizeof(key));
	strlcpy(key, m->tenant, sizeof(key));
	budget = hash_search(*calls, key, HASH_ENTER, &found);
	if (!found)
	{
		char	   *limit_text = outbound_text(m->config, "maxConcurrentCalls");
		char	   *duration_text = outbound_text(m->config, "maxCallDuration");
		int			limit = limit_text ? atoi(limit_text) : DEFAULT_MAX_CONCURRENT_CALLS;
		Oid			types[2] = {UUIDOID, INT4OID};
		Datum		values[2];
		int			rc;
		bool		isnull;

		MemoryContext caller = CurrentMemoryContext;	/* SPI leaves its own */

		values[0] = DirectFunctionCall1(uuid_in, CStringGetDatum(m->tenant));
		values[1] = Int32GetDatum((duration_text ? atoi(duration_text) : 300) + 120);
		rc = SPI_execute_with_args("SELECT (SELECT count(*) FROM crefinder.outbound_events "
								   "        WHERE user_id = $1 AND channel = 'voice' AND status = 'sending' "
								   "          AND sent_at IS NULL) "
								   "     + (SELECT count(*) FROM crefinder.outbound_events "
								   "        WHERE user_id = $1 AND channel = 'voice' AND status = 'sent' "
								   "          AND sent_at > now() - make_interval(secs => $2) "
								   "          AND provider_status IS DISTINCT FROM 'ended')",
								   2, types, values, NULL, true, 1);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not count calls in progress: %s", SPI_result_code_string(rc));
		budget->free = limit - (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
																 SPI_tuptable->tupdesc, 1, &isnull));
		MemoryContextSwitchTo(caller);
	}
	if (budget->free <= 0)
		return false;
	budget->free--;
	return true;
}

/*
 * A bridge call (channel call) rings the tenant's agent first, and an agent
 * takes one call at a time: a bridge to an agent whose previous bridge is
 * still in progress (claimed, recorded unknown after a crash, or sent and
 * not ended, for at most its TimeLimit and 10 minutes; a lost final
 * callback is found by the bridge's first lookup, 5 minutes on) waits in
 * the queue, looked at again AGENT_HOLD_SECONDS later or released when that
 * bridge ends (crefinder.twilio_call_set_status()); that is no attempt.  A
 * bridge whose agent has since opted out is blocked (agent_opted_out).
 * Only worker 0 claims bridges, so the count cannot race with another
 * claim.
 */
#define AGENT_HOLD_SECONDS 30
#define AGENT_HELD "held: the agent is on another bridge call"

typedef enum AgentState
{
	AGENT_FREE,
	AGENT_BUSY,
	AGENT_OPTED_OUT
} AgentState;

typedef struct AgentLine
{
	char		key[UUID_LEN * 2 + 5 + 24];	/* tenant uuid / agent number */
	AgentState	state;
} AgentLine;

typedef struct AgentLookup
{
	OutboundMessage *m;
	const char *agent;
	AgentState	state;
} AgentLookup;

static void
LookUpAgent(void *arg)
{
	AgentLookup *a = (AgentLookup *) arg;
	Oid			types[3] = {UUIDOID, TEXTOID, INT4OID};
	Datum		values[3];
	int			rc;
	bool		isnull;

	values[0] = DirectFunctionCall1(uuid_in, CStringGetDatum(a->m->tenant));
	values[1] = CStringGetTextDatum(a->agent);
	values[2] = Int32GetDatum(TWILIO_BRIDGE_TIME_LIMIT + 600);
	rc = SPI_execute_with_args("SELECT EXISTS (SELECT 1 FROM crefinder.opt_outs o "
							   "    WHERE o.user_id = $1 AND o.contact = $2 AND o.revoked_at IS NULL "
							   "      AND o.channel <> 'email'), "
							   "  EXISTS (SELECT 1 FROM crefinder.outbound_events e "
							   "    WHERE e.user_id = $1 AND e.channel = 'call' "
							   "      AND e.status IN ('sending', 'sent', 'unknown') "
							   "      AND crefinder.twilio_call_rank(e.provider_status) < 5 "
							   "      AND e.payload ->> 'agent_number' = $2 "
							   "      AND (e.status = 'sending' "
							   "           OR coalesce(e.sent_at, e.updated_at) > now() - make_interval(secs => $3)))",
							   3, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not look for the agent's bridges in progress: %s", SPI_result_code_string(rc));
	a->state = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) ?
		AGENT_OPTED_OUT :
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)) ?
		AGENT_BUSY : AGENT_FREE;
}

/*
 * TakeAgentLine decides a claimed bridge: true when it may go now (its
 * agent's line is then taken for the rest of the claim), else m is held or
 * blocked.
 */
static bool
TakeAgentLine(HTAB **agents, OutboundMessage *m, MemoryContext cxt)
{
	AgentLine  *line;
	char		key[UUID_LEN * 2 + 5 + 24];
	char	   *agent = outbound_text(m->payload, "agent_number");
	bool		found;

	if (agent == NULL)
		return true;			/* twilio_call.c refuses it */
	if (*agents == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(AgentLine);
		ctl.hcxt = cxt;
		*agents = hash_create("crefinder agent lines", 16, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	memset(key, 0, sizeof(key));
	snprintf(key, sizeof(key), "%s/%s", m->tenant, agent);
	line = hash_search(*agents, key, HASH_ENTER, &found);
	if (!found)
	{
		AgentLookup a = {m, agent, AGENT_FREE};
		ErrorData  *edata = RunGuarded(LookUpAgent, &a);

		if (edata != NULL)
		{
			/* this agent's bridges wait; the others go on */
			hash_search(*agents, key, HASH_REMOVE, NULL);
			HoldForError(m, "locked", "looking for the agent's bridges", edata, cxt);
			return false;
		}
		line->state = a.state;
	}
	if (line->state == AGENT_OPTED_OUT)
	{
		m->status = "blocked";
		m->block_reason = "agent_opted_out";
		return false;
	}
	if (line->state == AGENT_BUSY)
	{
		Hold(m, "agent_busy", AGENT_HELD, AGENT_HOLD_SECONDS * 1000);
		return false;
	}
	line->state = AGENT_BUSY;	/* this claim's bridge takes the line */
	return true;
}

/*
 * ScheduleAtTwilio reads a text's Twilio scheduling (see enqueue() in
 * 60_sending.sql).  A cancellation request needs the scheduled message's
 * sid.  A message for a time at least SENDAT_MIN_SECONDS ahead goes out
 * now with SendAt; one due sooner than that waits in the queue until it
 * is due and then goes out like any other.
 */
#define SENDAT_MIN_SECONDS (15 * 60 + 30)	/* Twilio: at least 15 minutes */

static void
ScheduleAtTwilio(OutboundMessage *m, TimestampTz now)
{
	char	   *send_at = outbound_text(m->payload, "twilio_send_at");
	char	   *cancel = outbound_text(m->payload, "twilio_cancel");

	m->twilio_cancel = cancel != NULL && strcmp(cancel, "true") == 0;
	if (m->twilio_cancel)
	{
		if (m->scheduled_sid == NULL)
		{
			m->status = "failed";
			m->error = pstrdup("nothing to cancel at Twilio: the message has no sid");
		}
		return;
	}
	if (send_at != NULL)
	{
		TimestampTz at = outbound_timestamp(send_at);

		if (at >= now + (int64) SENDAT_MIN_SECONDS * USECS_PER_SEC)
			m->schedule_at = at;
		else if (at > now)
		{
			Hold(m, "scheduled", "too close to its time for Twilio's SendAt: sent when due", 0);
			m->next_attempt_at = at;
		}
	}
}

/* ScheduleGuarded runs ScheduleAtTwilio for one message (RunGuarded). */
typedef struct ScheduleArg
{
	OutboundMessage *m;
	TimestampTz now;
} ScheduleArg;

static void
ScheduleGuarded(void *arg)
{
	ScheduleArg *a = (ScheduleArg *) arg;

	ScheduleAtTwilio(a->m, a->now);
}

/*
 * The server key, loaded once per claim.  A missing or unusable key holds
 * every due message (hold_reason server_key) and is said once in the log
 * and in dispatcher_status, not at every claim.
 */
#define KEY_HOLD_MS 5000

static char key_problem[CREFINDER_ERROR_LEN] = "";

/* dispatcher_load_key reads the server key into arg (a CrefinderKey; run guarded). */
void
dispatcher_load_key(void *arg)
{
	crefinder_server_key((CrefinderKey *) arg);
}

static void
NoteKeyProblem(const char *problem)
{
	if (strcmp(key_problem, problem) == 0)
		return;
	strlcpy(key_problem, problem, sizeof(key_problem));
	NoteError(problem);
	ereport(LOG,
			(errmsg("crefinder dispatcher %d holds messages: %s", MyWorker, problem),
			 errhint("Set crefinder.secret_key_file (or crefinder.secret_key) to the key the providers' secrets were sealed with, then reload the configuration.")));
}

static void
KeyProblemSolved(void)
{
	if (key_problem[0] == '\0')
		return;
	key_problem[0] = '\0';
	NoteError("");
	ereport(LOG, (errmsg("crefinder dispatcher %d has a usable secret key again", MyWorker)));
}

/*
 * HoldAllForKey marks the due queued messages held for the server key,
 * without claiming them (they go as soon as a claim finds the key usable).
 */
static void
HoldAllForKey(void)
{
	int			rc = SPI_execute("UPDATE crefinder.outbound_events SET hold_reason = 'server_key', "
								 "  last_error = 'held: the dispatcher has no usable crefinder.secret_key', "
								 "  updated_at = now() "
								 "WHERE status = 'queued' AND next_attempt_at <= now() "
								 "  AND hold_reason IS DISTINCT FROM 'server_key'", false, 0);

	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not hold messages: %s", SPI_result_code_string(rc));
}

/*
 * HoldForPausedSenders holds the due queued messages of the tenants and
 * channels whose sending number a guardrail paused (82_guardrails.sql);
 * RunGuarded.
 */
static void
HoldForPausedSenders(void *arg)
{
	if (SPI_execute("SELECT crefinder.hold_for_paused_senders()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not hold the messages of paused numbers");
}

/* The property fields a request carries, read per tenant (RunGuarded). */
typedef struct PropertyBatch
{
	OutboundMessage **messages;
	int			count;
} PropertyBatch;

static void
LoadPropertiesNow(void *arg)
{
	PropertyBatch *b = (PropertyBatch *) arg;
	Datum	   *ids = palloc(sizeof(Datum) * b->count);
	Oid			types[2] = {UUIDOID, INT8ARRAYOID};
	Datum		values[2];
	int			rc;

	for (int i = 0; i < b->count; i++)
		ids[i] = Int64GetDatum(b->messages[i]->property_id);
	values[0] = DirectFunctionCall1(uuid_in, CStringGetDatum(b->messages[0]->tenant));
	values[1] = PointerGetDatum(construct_array(ids, b->count, INT8OID, 8, true, TYPALIGN_DOUBLE));
	rc = SPI_execute_with_args("SELECT id, owner_name, property_address, property_city, property_state, "
							   "  property_zip FROM crefinder.property_records "
							   "WHERE user_id = $1 AND id = ANY ($2)",
							   2, types, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read properties: %s", SPI_result_code_string(rc));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	t = SPI_tuptable->vals[r];
		TupleDesc	d = SPI_tuptable->tupdesc;
		int64		id = GetInt64(t, d, 1);

		for (int i = 0; i < b->count; i++)
		{
			OutboundMessage *m = b->messages[i];

			if (m->property_id != id)
				continue;
			m->owner_name = GetText(t, d, 2);
			m->property_address = GetText(t, d, 3);
			m->property_city = GetText(t, d, 4);
			m->property_state = GetText(t, d, 5);
			m->property_zip = GetText(t, d, 6);
		}
	}
}

/*
 * LoadProperties reads the property fields of the claimed messages, one
 * statement per tenant: a tenant who holds a lock on its property_records
 * holds only its own messages.
 */
static void
LoadProperties(OutboundMessage **claimed, int n, MemoryContext cxt)
{
	bool	   *done = palloc0(sizeof(bool) * n);

	for (int i = 0; i < n; i++)
	{
		PropertyBatch b;
		ErrorData  *edata;
		MemoryContext old;

		if (done[i] || claimed[i]->status != NULL || claimed[i]->property_id == 0)
			continue;
		b.messages = palloc(sizeof(OutboundMessage *) * n);
		b.count = 0;
		for (int j = i; j < n; j++)
			if (!done[j] && claimed[j]->status == NULL && claimed[j]->property_id != 0 &&
				strcmp(claimed[j]->tenant, claimed[i]->tenant) == 0)
			{
				done[j] = true;
				b.messages[b.count++] = claimed[j];
			}
		old = MemoryContextSwitchTo(cxt);
		edata = RunGuarded(LoadPropertiesNow, &b);
		MemoryContextSwitchTo(old);
		if (edata != NULL)
			for (int k = 0; k < b.count; k++)
				Hold(b.messages[k], "locked", GuardedError("reading the property waited", edata),
					 LOCKED_HOLD_MS);
	}
}

/* BuildRequest fills m->request for its provider. */
static void
BuildRequest(OutboundMessage *m)
{
	if (strcmp(m->channel, "email") == 0)
		sendgrid_build(m);
	else if (strcmp(m->channel, "voice") == 0)
		vapi_build(m);
	else if (strcmp(m->channel, "call") == 0 || strcmp(m->channel, "voicemail") == 0)
		twilio_build_call(m);
	else
		twilio_build(m);
	m->request.owner = m;
}

typedef struct BuildBatch
{
	OutboundMessage **requests;
	int			count;
} BuildBatch;

static void
BuildGuarded(void *arg)
{
	BuildBatch *b = (BuildBatch *) arg;

	for (int i = 0; i < b->count; i++)
		BuildRequest(b->requests[i]);
}

static void
ForgetRequest(OutboundMessage *m)
{
	http_request_free(&m->request);
	memset(&m->request, 0, sizeof(m->request));
	m->secret_wrong_key = false;
	m->secret_problem = NULL;
}

/*
 * PauseFor marks a message held because its tenant's settings for the
 * provider cannot be used; the pause itself is recorded with the outcome.
 */
static void
PauseFor(OutboundMessage *m, const char *reason)
{
	Hold(m, "provider_paused", reason, 0);
	m->pause_provider = true;
	m->pause_reason = ClipText(reason, CREFINDER_ERROR_LEN - 1);
}

/*
 * Claim takes up to limit due messages, re-checks them, marks the allowed
 * ones sending (or records why not) and commits.  Returns the requests to
 * send (allocated in cxt) in *out and how many there are; *full says whether
 * limit messages were due (so more may be).  A message that cannot be
 * prepared fails alone; a tenant whose settings cannot be read has that
 * provider paused; a server key that cannot be loaded holds everything.
 */
static int
Claim(int limit, MemoryContext cxt, OutboundMessage ***out, bool *full)
{
	Oid			argtypes[2] = {INT4OID, BOOLOID};
	Datum		args[2] = {Int32GetDatum(limit), BoolGetDatum(MyWorker > 0)};
	int			rc;
	int			n;
	OutboundMessage **claimed;
	OutboundMessage **to_send;	/* one per request */
	int			nsend = 0;
	OutboundMessage **sending;	/* every message going out */
	int			nsending = 0;
	Datum	   *ids;
	MemoryContext old;
	TimestampTz now;
	HTAB	   *calls = NULL;
	HTAB	   *agents = NULL;
	CrefinderKey key;
	ErrorData  *edata;

	*out = NULL;
	*full = false;
	BeginWork("claiming messages");

	edata = RunGuarded(dispatcher_load_key, &key);
	if (edata != NULL)
	{
		NoteKeyProblem(ClipText(edata->message, CREFINDER_ERROR_LEN - 1));
		HoldAllForKey();
		EndWork();
		return 0;
	}

	/* messages of a number a guardrail paused wait, whatever path queued them */
	edata = RunGuarded(HoldForPausedSenders, NULL);
	if (edata != NULL && !IsLockTimeout(edata))
		NoteError(GuardedError("holding the messages of paused numbers", edata));

	now = GetCurrentTimestamp();
	rc = SPI_execute_with_args(
							   "WITH due AS ("
							   "  SELECT e.id FROM crefinder.outbound_events e "
							   "  WHERE e.status = 'queued' AND e.next_attempt_at <= now() "
							   "    AND NOT ($2 AND e.channel IN ('voice', 'call')) "
							   /* a number a guardrail paused: held by the next hold, never sent */
							   "    AND NOT EXISTS (SELECT 1 FROM crefinder.sender_pauses sp "
							   "      WHERE sp.user_id = e.user_id AND sp.channel = e.channel) "
							   "    AND NOT EXISTS (SELECT 1 FROM crefinder.integration_configs c "
							   "      WHERE c.user_id = e.user_id "
							   "        AND c.provider = " PROVIDER_OF("e.channel") " "
							   "        AND (c.paused_at IS NOT NULL OR ($2 AND c.config ? 'maxPerSecond'))) "
							   "  ORDER BY e.next_attempt_at LIMIT $1 FOR UPDATE OF e SKIP LOCKED) "
							   "SELECT e.id, e.user_id::text, e.channel, e.to_contact, e.attempts + 1, "
							   "  e.property_id, e.campaign_id, e.payload, c.config, c.secrets, "
							   "  e.provider_message_id, coalesce(e.first_attempt_at, now()) "
							   "FROM due JOIN crefinder.outbound_events e ON e.id = due.id "
							   "LEFT JOIN crefinder.integration_configs c ON c.user_id = e.user_id "
							   "  AND c.provider = " PROVIDER_OF("e.channel") " "
							   "ORDER BY e.next_attempt_at",
							   2, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not claim messages: %s", SPI_result_code_string(rc));
	n = SPI_processed;
	*full = n == limit;
	if (n == 0)
	{
		crefinder_wipe_key(&key);
		EndWork();
		KeyProblemSolved();
		return 0;
	}

	old = MemoryContextSwitchTo(cxt);
	claimed = palloc(sizeof(OutboundMessage *) * n);
	ids = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		OutboundMessage *m = palloc0(sizeof(OutboundMessage));
		bool		isnull;

		m->id = GetInt64(t, d, 1);
		m->tenant = GetText(t, d, 2);
		m->channel = GetText(t, d, 3);
		m->to = GetText(t, d, 4);
		m->attempts = DatumGetInt32(SPI_getbinval(t, d, 5, &isnull));
		m->property_id = GetInt64(t, d, 6);
		m->campaign_id = GetInt64(t, d, 7);
		m->payload = GetJsonb(t, d, 8);
		m->config = GetJsonb(t, d, 9);
		m->secrets = GetJsonb(t, d, 10);
		m->scheduled_sid = GetText(t, d, 11);
		m->first_attempt_at = DatumGetTimestampTz(SPI_getbinval(t, d, 12, &isnull));
		if (m->config == NULL)
		{
			m->status = "failed";
			m->error = psprintf("the tenant has no settings for the %s channel's provider", m->channel);
		}
		else if (m->payload == NULL || !JB_ROOT_IS_OBJECT(m->payload))
		{
			m->status = "failed";
			m->error = pstrdup("the message's payload is not a JSON object");
		}
		else if (outbound_text(m->payload, "twilio_send_at") == NULL)
			ScheduleAtTwilio(m, now);
		else
		{
			ScheduleArg a = {m, now};

			edata = RunGuarded(ScheduleGuarded, &a);
			if (edata != NULL)
			{
				m->status = "failed";
				m->error = GuardedError("its Twilio send time cannot be read", edata);
			}
		}
		claimed[i] = m;
		ids[i] = Int64GetDatum(m->id);
	}
	LoadProperties(claimed, n, cxt);
	MemoryContextSwitchTo(old);

	Recheck(claimed, n, PointerGetDatum(construct_array(ids, n, INT8OID, 8, true, TYPALIGN_DOUBLE)), cxt);

	/*
	 * Build the requests (this opens the secrets) for the allowed ones.
	 * Emails that share everything but recipient and template data join a
	 * leader's request (SendGrid: up to 1,000 personalizations, each
	 * address once).
	 */
	old = MemoryContextSwitchTo(cxt);
	to_send = palloc(sizeof(OutboundMessage *) * n);
	sending = palloc(sizeof(OutboundMessage *) * n);
	{
		OutboundMessage **leaders = palloc(sizeof(OutboundMessage *) * n);
		char	  **leader_keys = palloc(sizeof(char *) * n);
		int			nleaders = 0;

		for (int i = 0; i < n; i++)
		{
			OutboundMessage *m = claimed[i];
			int64		wait;

			if (m->status != NULL)
				continue;
			if (strcmp(m->channel, "voice") == 0 && !TakeCallSlot(&calls, m, cxt))
			{
				Hold(m, "call_limit", CALL_HELD, CALL_HOLD_SECONDS * 1000);
				continue;
			}
			wait = TakeToken(m, now);
			if (wait > 0)
			{
				Hold(m, "paced", "paced: the provider's maxPerSecond", 0);
				m->next_attempt_at = now + wait;
				continue;
			}
			/* (after pacing: a paced bridge does not take its agent's line) */
			if (strcmp(m->channel, "call") == 0 && !TakeAgentLine(&agents, m, cxt))
				continue;
			sending[nsending++] = m;
			if (strcmp(m->channel, "email") == 0)
			{
				char	   *key_text = EmailBatchKey(m);
				OutboundMessage *leader = NULL;

				for (int l = 0; l < nleaders && leader == NULL; l++)
					if (strcmp(leader_keys[l], key_text) == 0 && leaders[l]->nfollowers < 999 &&
						!HasRecipient(leaders[l], m->to))
						leader = leaders[l];
				if (leader != NULL)
				{
					if (leader->followers == NULL)
						leader->followers = palloc(sizeof(OutboundMessage *) * 999);
					leader->followers[leader->nfollowers++] = m;
					continue;
				}
				leader_keys[nleaders] = key_text;
				leaders[nleaders++] = m;
			}
			to_send[nsend++] = m;
		}

		/* all at once; should that fail, one by one, to find the bad ones */
		outbound_secret_key(&key);
		outbound_secret_cache(true);
		{
			BuildBatch all = {to_send, nsend};

			edata = RunGuarded(BuildGuarded, &all);
			if (edata != NULL)
				for (int i = 0; i < nsend; i++)
				{
					BuildBatch one = {&to_send[i], 1};

					ForgetRequest(to_send[i]);
					outbound_secret_cache(true);
					edata = RunGuarded(BuildGuarded, &one);
					if (edata != NULL)
					{
						ForgetRequest(to_send[i]);
						to_send[i]->status = "failed";
						to_send[i]->error = GuardedError("its request cannot be built", edata);
					}
				}
		}
		outbound_secret_cache(false);
		outbound_secret_key(NULL);
		crefinder_wipe_key(&key);
	}

	/*
	 * A secret that did not open: under another server key, the message
	 * waits for the right key; damaged, the tenant's provider is paused.
	 * Either way the message and its followers stay queued.
	 */
	{
		int			kept = 0;

		for (int i = 0; i < nsend; i++)
		{
			OutboundMessage *m = to_send[i];
			const char *problem = NULL;
			bool		build_failed = m->status != NULL;

			if (m->secret_wrong_key)
				NoteKeyProblem("a provider secret was sealed under another crefinder.secret_key");
			else if (m->secret_problem != NULL)
				problem = psprintf("%s settings cannot be read: %s; configure the provider again",
								   outbound_provider(m->channel), m->secret_problem);
			if (m->secret_wrong_key || problem != NULL || m->status != NULL)
			{
				ForgetRequest(m);
				for (int f = -1; f < m->nfollowers; f++)
				{
					OutboundMessage *r = f < 0 ? m : m->followers[f];

					if (build_failed && f < 0)
						continue;	/* failed while building */
					if (build_failed)
					{
						r->status = m->status;
						r->error = m->error;
					}
					else if (problem != NULL)
						PauseFor(r, problem);
					else
						Hold(r, "server_key", "held: the secret was sealed under another crefinder.secret_key",
							 KEY_HOLD_MS);
				}
				continue;
			}
			to_send[kept++] = m;
		}
		nsend = kept;
		nsending = 0;
		for (int i = 0; i < nsend; i++)
		{
			sending[nsending++] = to_send[i];
			for (int f = 0; f < to_send[i]->nfollowers; f++)
				sending[nsending++] = to_send[i]->followers[f];
		}
	}
	MemoryContextSwitchTo(old);

	/*
	 * Record the refusals and holds found while claiming, then mark the ones
	 * to send, in this transaction: once it commits nothing is left to do
	 * but start the requests.  A refusal that met a lock stays queued.
	 */
	{
		OutboundMessage **refused = palloc(sizeof(OutboundMessage *) * n);
		bool	   *written = palloc(sizeof(bool) * n);
		int			nrefused = 0;

		for (int i = 0; i < n; i++)
			if (claimed[i]->status != NULL)
				refused[nrefused++] = claimed[i];
		if (nrefused > 0)
		{
			old = MemoryContextSwitchTo(cxt);
			(void) WriteAll(refused, nrefused, false, written);
			MemoryContextSwitchTo(old);
		}
		for (int i = 0; i < nrefused; i++)
			refused[i]->recorded = written[i];
	}
	{
		Datum	   *send_ids = palloc(sizeof(Datum) * Max(nsending, 1));
		Oid			types[2] = {INT8ARRAYOID, INT2OID};
		Datum		values[2];

		values[1] = Int16GetDatum(MyWorker);
		for (int i = 0; i < nsending; i++)
			send_ids[i] = Int64GetDatum(sending[i]->id);
		values[0] = PointerGetDatum(construct_array(send_ids, nsending, INT8OID, 8, true, TYPALIGN_DOUBLE));
		rc = SPI_execute_with_args("UPDATE crefinder.outbound_events "
								   "SET status = 'sending', attempts = attempts + 1, updated_at = now(), "
								   "    claimed_by = $2, hold_reason = NULL, "
								   "    first_attempt_at = coalesce(first_attempt_at, now()) "
								   "WHERE id = ANY ($1)", 2, types, values, NULL, false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "could not mark messages sending: %s", SPI_result_code_string(rc));
	}
	EndWork();
	for (int i = 0; i < n; i++)
		if (claimed[i]->status != NULL && claimed[i]->recorded && !claimed[i]->deferred)
			CountOutcome(claimed[i]->status, -1);
	if (nsend > 0)
		KeyProblemSolved();
	*out = to_send;
	return nsend;
}

/* ----------------------------------------------------------------------
 * Outcomes
 * ---------------------------------------------------------------------- */

/*
 * Backoff is the delay before attempt number attempts + 1: one second,
 * doubling at each attempt up to crefinder.retry_max_backoff, times a
 * jitter between 0.5 and 1, and never before the provider's Retry-After
 * or X-RateLimit-Reset.
 */
static TimestampTz
Backoff(OutboundMessage *m)
{
	double		seconds = Min((double) crefinder_retry_max_backoff, pow(2.0, Min(m->attempts, 30) - 1));
	double		jitter = 0.5 + pg_prng_double(&pg_global_prng_state) / 2.0;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next = now + (int64) (seconds * jitter * USECS_PER_SEC);

	if (m->request.retry_after[0] != '\0')
	{
		char	   *end;
		long		after = strtol(m->request.retry_after, &end, 10);

		if (*end == '\0' && after >= 0)
			next = Max(next, now + (int64) Min(after, 86400) * USECS_PER_SEC);
	}
	if (m->request.ratelimit_reset[0] != '\0')
	{
		char	   *end;
		long		reset = strtol(m->request.ratelimit_reset, &end, 10);

		if (*end == '\0' && reset > 0 && reset < 100000000000L)
		{
			TimestampTz at = time_t_to_timestamptz((pg_time_t) reset);

			if (at > next && at < now + 86400 * USECS_PER_SEC)
				next = at;
		}
	}
	return next;
}

#define PROVIDER_TEXT_MAX 200	/* bytes of a provider's own words kept */

/*
 * ProviderError is the provider's own words for a failed request, cleaned
 * (valid in the database's encoding, no control characters) and cut at a
 * character boundary.
 */
static char *
ProviderError(OutboundMessage *m, int *code)
{
	Jsonb	   *answer = outbound_parse_json(m->request.response.data);
	char	   *text = NULL;

	*code = 0;
	if (answer != NULL && JB_ROOT_IS_OBJECT(answer))
	{
		char	   *c = outbound_integer(answer, "code");
		Jsonb	   *errors = outbound_object(answer, "errors");

		if (c != NULL)
			*code = atoi(c);
		text = outbound_text(answer, "message");
		if (text == NULL && errors != NULL)
			text = JsonbToCString(NULL, &errors->root, VARSIZE(errors));
	}
	if (text == NULL && m->request.response.data != NULL)
		text = pnstrdup(m->request.response.data, Min(m->request.response.len, 4 * PROVIDER_TEXT_MAX));
	if (text != NULL)
		text = ClipText(text, PROVIDER_TEXT_MAX);
	return psprintf("HTTP %ld%s%s%s", m->request.status,
					*code ? psprintf(" (code %d)", *code) : "", text ? ": " : "", text ? text : "");
}

/*
 * CallMayHaveGone: a failed request of a Twilio call that may nonetheless
 * have been taken (anything but a failure to connect).
 */
static bool
CallMayHaveGone(OutboundMessage *m)
{
	CURLcode	r = m->request.result;

	if (strcmp(m->channel, "call") != 0 && strcmp(m->channel, "voicemail") != 0)
		return false;
	return r != CURLE_COULDNT_CONNECT && r != CURLE_COULDNT_RESOLVE_HOST &&
		r != CURLE_COULDNT_RESOLVE_PROXY && r != CURLE_SSL_CONNECT_ERROR &&
		r != CURLE_UNSUPPORTED_PROTOCOL && r != CURLE_URL_MALFORMAT;
}

/*
 * Classify turns a finished request into the message's outcome.  A
 * temporary failure is retried (hold_reason retry) until
 * crefinder.max_attempts attempts or crefinder.retry_max_age after the
 * first attempt, then failed.
 */
static void
Classify(OutboundMessage *m)
{
	long		status = m->request.status;
	int			code;

	m->status = NULL;
	if (m->request.result != CURLE_OK && CallMayHaveGone(m))
	{
		/*
		 * A Twilio call whose request may have reached Twilio (a timeout, a
		 * connection dropped while waiting for the answer): sent again, it
		 * could ring the owner or the agent twice.  Like a crash, it is
		 * unknown, never re-sent on its own (retry_unknown() re-queues it).
		 */
		m->error = psprintf("request failed after it may have reached Twilio: %s",
							ClipText(m->request.error, PROVIDER_TEXT_MAX));
		m->status = "unknown";
	}
	else if (m->request.result != CURLE_OK)
	{
		/* timeout, refused or dropped connection: try again later */
		m->error = psprintf("request failed: %s", ClipText(m->request.error, PROVIDER_TEXT_MAX));
		m->status = "queued";
	}
	else if (status >= 200 && status < 300)
	{
		m->status = "sent";
		if (strcmp(m->channel, "email") == 0)
			sendgrid_accepted(m);
		else if (strcmp(m->channel, "voice") == 0)
			vapi_accepted(m);
		else
			twilio_accepted(m);
		if (m->provider_message_id != NULL)
			m->provider_message_id = ClipText(m->provider_message_id, 128);
		if (m->provider_status != NULL)
			m->provider_status = ClipText(m->provider_status, 64);
	}
	else if (status == 429 || status >= 500)
	{
		m->error = ProviderError(m, &code);
		m->status = "queued";
	}
	else if (status == 401 || status == 403)
	{
		m->error = psprintf("credentials rejected (%s)", ProviderError(m, &code));
		m->status = "failed";
		m->pause_provider = true;
		m->pause_reason = "credentials rejected by the provider";
	}
	else
	{
		m->error = ProviderError(m, &code);
		m->status = "failed";
		if (code == 21610)
			m->opt_out = true;
	}

	if (strcmp(m->status, "queued") == 0)
	{
		TimestampTz next = Backoff(m);

		if (m->attempts >= crefinder_max_attempts)
		{
			m->status = "failed";
			m->error = psprintf("%s; gave up after %d attempts (crefinder.max_attempts)",
								m->error, m->attempts);
		}
		else if (m->first_attempt_at != 0 &&
				 next > m->first_attempt_at + (int64) crefinder_retry_max_age * USECS_PER_SEC)
		{
			m->status = "failed";
			m->error = psprintf("%s; gave up after %d attempts over crefinder.retry_max_age",
								m->error, m->attempts);
		}
		else
		{
			m->next_attempt_at = next;
			m->hold_reason = "retry";
		}
	}

	/*
	 * A cancellation that Twilio took leaves the message cancelled; one it
	 * refused leaves the message as it was: sent, scheduled at Twilio.
	 */
	if (m->twilio_cancel)
	{
		m->opt_out = false;
		m->hold_reason = strcmp(m->status, "queued") == 0 ? m->hold_reason : NULL;
		if (strcmp(m->status, "sent") == 0)
			m->status = "cancelled";
		else if (strcmp(m->status, "failed") == 0)
		{
			m->status = "sent";
			m->error = psprintf("Twilio did not cancel the scheduled message: %s", m->error);
		}
	}
	if (m->error != NULL)
		m->error = ClipText(m->error, 2 * CREFINDER_ERROR_LEN);
}

static Datum
TextArrayOf(char **values, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};

	for (int i = 0; i < n; i++)
	{
		nulls[i] = values[i] == NULL;
		elems[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(values[i]);
	}
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
}

/* A set of outcomes to write (RunGuarded). */
typedef struct OutcomeBatch
{
	OutboundMessage **messages;
	int			n;
	bool		sending;		/* the rows are sending (else queued) */
} OutcomeBatch;

/*
 * SenderOrNull: the number a provider's answer says a message went from,
 * when it looks like one (at most 64 of A-Z a-z 0-9 : + . _ -), else NULL.
 */
static char *
SenderOrNull(char *sender)
{
	size_t		len = sender ? strlen(sender) : 0;

	if (len == 0 || len > 64 ||
		strspn(sender, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:+._-") != len)
		return NULL;
	return sender;
}

/*
 * WriteOutcomes writes the outcomes of a batch: status, provider ids,
 * errors, hold reasons, next attempts; opt-outs for recipients the provider
 * reports unsubscribed; pauses of providers whose credentials were rejected
 * or whose settings cannot be read.
 */
static void
WriteOutcomes(void *arg)
{
	OutcomeBatch *b = (OutcomeBatch *) arg;
	OutboundMessage **messages = b->messages;
	int			n = b->n;
	Datum	   *ids = palloc(sizeof(Datum) * n);
	char	  **status = palloc(sizeof(char *) * n);
	char	  **pmid = palloc(sizeof(char *) * n);
	char	  **pstatus = palloc(sizeof(char *) * n);
	char	  **error = palloc(sizeof(char *) * n);
	char	  **block = palloc(sizeof(char *) * n);
	char	  **hold = palloc(sizeof(char *) * n);
	char	  **next = palloc(sizeof(char *) * n);
	char	  **lookup = palloc(sizeof(char *) * n);
	char	  **sender = palloc(sizeof(char *) * n);
	Oid			types[11] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID, TEXTARRAYOID,
	TEXTARRAYOID};
	Datum		values[11];
	int			rc;
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < n; i++)
	{
		OutboundMessage *m = messages[i];
		bool		queued = strcmp(m->status, "queued") == 0;

		ids[i] = Int64GetDatum(m->id);
		status[i] = (char *) m->status;
		pmid[i] = m->provider_message_id;
		pstatus[i] = m->provider_status;
		error[i] = m->error;
		block[i] = m->block_reason;
		hold[i] = queued ? (char *) m->hold_reason : NULL;
		next[i] = queued ? pstrdup(timestamptz_to_str(m->next_attempt_at)) : NULL;
		lookup[i] = NULL;
		if (strcmp(m->status, "sent") == 0)
		{
			TimestampTz at = lookup_reconcile_at(m, now);

			if (at != 0)
				lookup[i] = pstrdup(timestamptz_to_str(at));
		}
		sender[i] = SenderOrNull(m->sender);
	}
	values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, true, TYPALIGN_DOUBLE));
	values[1] = TextArrayOf(status, n);
	values[2] = TextArrayOf(pmid, n);
	values[3] = TextArrayOf(pstatus, n);
	values[4] = TextArrayOf(error, n);
	values[5] = TextArrayOf(block, n);
	values[6] = TextArrayOf(hold, n);
	values[7] = TextArrayOf(next, n);
	values[8] = CStringGetTextDatum(b->sending ? "sending" : "queued");
	values[9] = TextArrayOf(lookup, n);
	values[10] = TextArrayOf(sender, n);

	/*
	 * Rows are found by primary key only (id = ANY), and the status they
	 * must still have is a join condition (r.was), not a filter on the
	 * table.  Statistics taken while nothing was in flight, or while the
	 * table was small, made the planner scan every row in flight (through
	 * the partial index) or the whole primary key, rescanning the unnest
	 * for each row: 11.8 s instead of 18 ms for 5,000 outcomes with 8,000
	 * in flight.  FreshenStatistics() keeps the statistics current.
	 */
	/* both sides hold only these rows: a hash join is safe, for this transaction */
	(void) set_config_option("enable_hashjoin", "on", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	/*
	 * A webhook may have been faster than this write: a provider can call
	 * back (Vapi's "ringing", a SendGrid event naming crefinder's id)
	 * before its answer to the request is recorded.  Such a row left
	 * sending, forward, without its provider id: it gets the id and the
	 * sending time, and keeps the status the webhook gave it (a status
	 * never moves back).
	 */
	rc = SPI_execute_with_args("UPDATE crefinder.outbound_events e SET "
							   "  status = CASE WHEN e.status = r.was THEN r.status ELSE e.status END, "
							   "  provider_message_id = coalesce(r.pmid, e.provider_message_id), "
							   "  provider_status = CASE WHEN e.status = r.was "
							   "                    THEN coalesce(r.pstatus, e.provider_status) ELSE e.provider_status END, "
							   "  last_error = CASE WHEN e.status = r.was THEN r.error ELSE e.last_error END, "
							   "  block_reason = CASE WHEN e.status = r.was THEN r.block ELSE e.block_reason END, "
							   "  hold_reason = CASE WHEN e.status = r.was THEN r.hold ELSE e.hold_reason END, "
							   "  next_attempt_at = CASE WHEN e.status = r.was "
							   "                    THEN coalesce(r.next::timestamptz, e.next_attempt_at) ELSE e.next_attempt_at END, "
							   "  sent_at = CASE WHEN r.status = 'sent' OR e.status <> r.was "
							   "                 THEN coalesce(e.sent_at, now()) ELSE e.sent_at END, "
							   /* an email's price is the tenant's, known once it is sent */
							   "  cost_cents = CASE WHEN e.channel = 'email' AND e.cost_cents IS NULL "
							   "                     AND (r.status = 'sent' OR e.status <> r.was) "
							   "                    THEN coalesce((SELECT t.email_cost_cents FROM crefinder.tenant_settings t "
							   "                               WHERE t.user_id = e.user_id), 0) "
							   "                    ELSE e.cost_cents END, "
							   /*
							    * when to look it up if no final status comes
							    * (lookup.c): a webhook's answer that came first
							    * keeps its own, unless it left the message sent
							    */
							   "  lookup_at = CASE WHEN e.status = r.was THEN r.lookup::timestamptz "
							   "                   WHEN e.status = 'sent' THEN coalesce(e.lookup_at, r.lookup::timestamptz) "
							   "                   ELSE e.lookup_at END, "
							   "  sender = coalesce(e.sender, r.sender), "
							   "  updated_at = now() "
							   "FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, "
							   "       pg_catalog.array_fill($9, ARRAY[pg_catalog.cardinality($1)]), $10, $11) "
							   "  AS r(id, status, pmid, pstatus, error, block, hold, next, was, lookup, sender) "
							   "WHERE e.id = ANY ($1) AND e.id = r.id "
							   "  AND (e.status = r.was "
							   "       OR (r.was = 'sending' AND e.status IN ('sent', 'delivered', 'failed') "
							   "           AND e.provider_message_id IS NULL))",
							   11, types, values, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not record outcomes: %s", SPI_result_code_string(rc));

}

/*
 * WriteVerdict records what a provider's answer says beyond the message:
 * an opt-out for a recipient it reports unsubscribed, a pause of a provider
 * whose credentials it rejected or whose settings cannot be read (and the
 * hold of the tenant's queued messages for it).  It never waits for a
 * tenant's lock: rows someone holds are skipped, and the lock wait is
 * short; what is skipped is done the next time the provider says so.
 */
static void
WriteVerdict(void *arg)
{
	OutboundMessage *m = (OutboundMessage *) arg;
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[4];
	int			rc;

	(void) set_config_option("lock_timeout", "100ms", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	args[0] = CStringGetTextDatum(m->tenant);
	args[1] = CStringGetTextDatum(m->channel);
	args[2] = CStringGetTextDatum(m->to);
	args[3] = CStringGetTextDatum(m->pause_reason ? m->pause_reason : "paused");
	if (m->opt_out)
		rc = SPI_execute_with_args("INSERT INTO crefinder.opt_outs (user_id, channel, contact, source) "
								   "VALUES ($1::uuid, $2, $3, 'provider: recipient unsubscribed (21610)') "
								   "ON CONFLICT (user_id, contact, channel) WHERE revoked_at IS NULL DO NOTHING",
								   3, argtypes, args, NULL, false, 0);
	else
	{
		rc = SPI_execute_with_args("UPDATE crefinder.integration_configs SET paused_at = now(), "
								   "  paused_reason = $4 "
								   "WHERE id IN (SELECT id FROM crefinder.integration_configs "
								   "  WHERE user_id = $1::uuid AND paused_at IS NULL "
								   "    AND provider = " PROVIDER_OF("$2") " FOR UPDATE SKIP LOCKED)",
								   4, argtypes, args, NULL, false, 0);
		if (rc >= 0)
			rc = SPI_execute_with_args("UPDATE crefinder.outbound_events SET hold_reason = 'provider_paused', "
									   "  last_error = 'held: ' || $4, updated_at = now() "
									   "WHERE id IN (SELECT id FROM crefinder.outbound_events "
									   "  WHERE user_id = $1::uuid AND status = 'queued' "
									   "    AND " PROVIDER_OF("channel") " = " PROVIDER_OF("$2") " "
									   "    AND hold_reason IS DISTINCT FROM 'provider_paused' "
									   "  FOR UPDATE SKIP LOCKED)",
									   4, argtypes, args, NULL, false, 0);
	}
	if (rc < 0)
		elog(ERROR, "could not record a provider's verdict: %s", SPI_result_code_string(rc));
}

/*
 * OwnContext is the memory that lives as long as m: its claim's (the
 * context of the claim being made while it has none yet).
 */
typedef struct ClaimBatch
{
	MemoryContext cxt;
	int			remaining;
} ClaimBatch;

static MemoryContext
OwnContext(OutboundMessage *m)
{
	return m->batch ? ((ClaimBatch *) m->batch)->cxt : CurrentMemoryContext;
}

/*
 * WriteAll writes the outcomes of n messages inside the current
 * transaction and sets written on each it wrote.  Should the batch fail,
 * each message is written alone: one that met a lock is left for a later
 * try; one whose outcome cannot be written is written again as failed (or
 * as it was, sent or queued) with the reason.  Then the providers'
 * verdicts, each alone.  Returns the last error of an unwritten message.
 */
static ErrorData *
WriteAll(OutboundMessage **messages, int n, bool sending, bool *written)
{
	OutcomeBatch all = {messages, n, sending};
	ErrorData  *edata;
	ErrorData  *last_failure = NULL;

	edata = RunGuarded(WriteOutcomes, &all);
	for (int i = 0; i < n; i++)
		written[i] = edata == NULL;
	if (edata != NULL)
		for (int i = 0; i < n; i++)
		{
			OutcomeBatch one = {&messages[i], 1, sending};

			edata = RunGuarded(WriteOutcomes, &one);
			if (edata != NULL && !IsLockTimeout(edata))
			{
				OutboundMessage *m = messages[i];
				MemoryContext old = MemoryContextSwitchTo(OwnContext(m));

				m->error = GuardedError("its outcome could not be recorded", edata);
				if (strcmp(m->status, "sent") != 0 && strcmp(m->status, "queued") != 0)
					m->status = "failed";
				m->block_reason = NULL;
				m->provider_message_id = m->provider_message_id ?
					ClipText(m->provider_message_id, 64) : NULL;
				m->provider_status = NULL;
				m->opt_out = m->pause_provider = false;
				MemoryContextSwitchTo(old);
				edata = RunGuarded(WriteOutcomes, &one);
			}
			written[i] = edata == NULL;
			if (edata != NULL)
				last_failure = edata;
		}
	for (int i = 0; i < n; i++)
		if (written[i] && (messages[i]->opt_out || messages[i]->pause_provider))
		{
			edata = RunGuarded(WriteVerdict, messages[i]);
			if (edata != NULL)
				NoteError(GuardedError("a provider's verdict waits", edata));
		}
	return last_failure;
}

/*
 * RecordOutcomes writes the outcomes of n messages in one transaction
 * (WriteAll) and, once it has committed, sets recorded on each message it
 * wrote.  Returns how many remain unrecorded.
 */
static int
RecordOutcomes(OutboundMessage **messages, int n, bool sending)
{
	bool	   *written = palloc(sizeof(bool) * n);
	ErrorData  *failure;
	char	   *problem = NULL;
	int			left = 0;

	BeginWork("recording outcomes");
	failure = WriteAll(messages, n, sending, written);
	if (failure != NULL)
		problem = MemoryContextStrdup(work_caller_cxt,
									  GuardedError("outcomes wait to be recorded", failure));
	EndWork();
	if (problem != NULL)
		NoteError(problem);

	for (int i = 0; i < n; i++)
	{
		messages[i]->recorded = written[i];
		if (!written[i])
			left++;
		else if (!messages[i]->deferred)
			CountOutcome(messages[i]->status, -1);
	}
	return left;
}

/* ----------------------------------------------------------------------
 * The loop
 * ---------------------------------------------------------------------- */

/*
 * NextDue is the time of the earliest queued message, or now + IDLE_WAIT_MS.
 */
static long
WaitMilliseconds(void)
{
	int			rc;
	long		wait = IDLE_WAIT_MS;

	BeginWork("looking for the next due message");
	rc = SPI_execute("SELECT extract(epoch FROM min(next_attempt_at) - clock_timestamp()) * 1000 "
					 "FROM crefinder.outbound_events WHERE status = 'queued'", true, 1);
	if (rc == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			double		ms = DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));

			wait = ms <= 0 ? 0 : (long) Min(ms + 1, (double) IDLE_WAIT_MS);
		}
	}
	EndWork();
	return wait;
}

/*
 * StopWhenDrained ends the worker once a stop was asked for (SIGTERM: server
 * shutdown, pg_terminate_backend) and no request is in flight any more, or
 * STOP_GRACE_MS later at the latest: the requests still on the wire then stay
 * sending and become unknown at the next start.  Exit code 1, so that a
 * running server starts the worker again.
 */
#define STOP_GRACE_MS 3000

static void
StopWhenDrained(int in_flight)
{
	static TimestampTz stop_by = 0;

	if (stop_by == 0)
	{
		stop_by = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), STOP_GRACE_MS);
		SetState("stopping");
	}
	if (in_flight == 0)
		proc_exit(1);
	if (GetCurrentTimestamp() >= stop_by)
	{
		ereport(LOG,
				(errmsg("crefinder dispatcher %d stopped with %d requests in flight",
						MyWorker, in_flight),
				 errdetail("Their messages stay sending and become unknown when the worker starts again.")));
		proc_exit(1);
	}
}

/*
 * A claim's messages live in the claim's own memory context, deleted when
 * the last of them has been recorded: memory stays flat however long the
 * dispatcher runs, without waiting for every request to finish.
 */
/*
 * FreshenStatistics analyzes the outbox when it has changed much since its
 * statistics were taken: a bulk enqueue.  With statistics from when the
 * table was small the planner mistakes a lookup by key for a read of the
 * whole index (a claim of 115 rows read all of a 1M-row index: 12 s).
 * Autovacuum gets there too, but only after its naptime, while the backlog
 * is being sent.  Worker 0 looks at most every FRESHEN_CHECK_MS while its
 * claims come back full.
 */
#define FRESHEN_CHECK_MS 5000

static void
FreshenStatistics(void)
{
	static TimestampTz checked_at = 0;
	TimestampTz now = GetCurrentTimestamp();
	bool		stale = false;
	int			rc;

	if (checked_at != 0 && !TimestampDifferenceExceeds(checked_at, now, FRESHEN_CHECK_MS))
		return;
	checked_at = now;
	BeginWork("checking the outbox's statistics");
	rc = SPI_execute("SELECT pg_stat_get_mod_since_analyze(c.oid) > greatest(10000, c.reltuples / 2) "
					 "FROM pg_class c WHERE c.oid = 'crefinder.outbound_events'::regclass", true, 1);
	if (rc == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		stale = !isnull && DatumGetBool(d);
	}
	if (stale)
	{
		pgstat_report_activity(STATE_RUNNING, "analyzing the outbox");
		rc = SPI_execute("ANALYZE crefinder.outbound_events", false, 0);
		if (rc != SPI_OK_UTILITY)
			elog(ERROR, "could not analyze the outbox: %s", SPI_result_code_string(rc));
	}
	EndWork();
}

/*
 * Finished requests wait up to RECORD_WAIT_MS (or until half a batch of
 * messages has finished, or nothing is in flight) and their outcomes are
 * recorded together: one transaction per handful of answers cost more
 * than the answers themselves.
 */
#define RECORD_WAIT_MS 10

static HttpRequest **pending = NULL;
static int	npending = 0;
static int	max_pending = 0;
static int	pending_messages = 0;
static TimestampTz pending_since = 0;

static void
AddPending(HttpRequest *request)
{
	if (npending == max_pending)
	{
		max_pending = Max(1024, max_pending * 2);
		pending = pending == NULL ?
			MemoryContextAlloc(TopMemoryContext, sizeof(HttpRequest *) * max_pending) :
			repalloc(pending, sizeof(HttpRequest *) * max_pending);
	}
	if (npending == 0)
		pending_since = GetCurrentTimestamp();
	pending[npending++] = request;
	pending_messages += 1 + ((OutboundMessage *) request->owner)->nfollowers;
}

static long
PendingWaitLeft(void)
{
	long		waited = (GetCurrentTimestamp() - pending_since) / 1000;

	return npending == 0 ? RECORD_WAIT_MS : Max(0, RECORD_WAIT_MS - waited);
}

/*
 * RecordPending classifies the finished requests (an email's answer is
 * each of its recipients' answer), records their outcomes in one
 * transaction and releases their requests and claims.  Requests with an
 * outcome that could not be recorded yet (a lock) stay pending and are
 * tried again RECORD_RETRY_MS later.
 */
#define RECORD_RETRY_MS 1000

static TimestampTz record_retry_at = 0;

static void
RecordPending(HttpClient *client)
{
	OutboundMessage **finished;
	int			nfinished = 0;
	int			kept = 0;

	if (npending == 0 || GetCurrentTimestamp() < record_retry_at)
		return;
	finished = palloc(sizeof(OutboundMessage *) * pending_messages);
	for (int i = 0; i < npending; i++)
	{
		OutboundMessage *leader = (OutboundMessage *) pending[i]->owner;

		/* outcomes may wait to be recorded: they live with their claim */
		MemoryContext old = MemoryContextSwitchTo(OwnContext(leader));

		if (leader->status == NULL)
			Classify(leader);
		if (!leader->recorded)
			finished[nfinished++] = leader;
		for (int f = 0; f < leader->nfollowers; f++)
		{
			OutboundMessage *follower = leader->followers[f];

			if (follower->status == NULL)
			{
				/* the leader's answer, read-only: freed once, with the leader's */
				follower->request = leader->request;
				follower->request.headers = NULL;
				Classify(follower);
			}
			if (!follower->recorded)
				finished[nfinished++] = follower;
		}
		MemoryContextSwitchTo(old);
	}
	if (nfinished > 0 && RecordOutcomes(finished, nfinished, true) > 0)
		record_retry_at = GetCurrentTimestamp() + RECORD_RETRY_MS * 1000;

	pending_messages = 0;
	for (int i = 0; i < npending; i++)
	{
		OutboundMessage *leader = (OutboundMessage *) pending[i]->owner;
		ClaimBatch *claim = (ClaimBatch *) leader->batch;
		bool		all = leader->recorded;

		for (int f = 0; f < leader->nfollowers; f++)
			all = all && leader->followers[f]->recorded;
		if (!all)
		{
			pending[kept++] = pending[i];
			pending_messages += 1 + leader->nfollowers;
			continue;
		}
		http_request_free(pending[i]);
		if (--claim->remaining == 0)
			MemoryContextDelete(claim->cxt);
	}
	npending = kept;
	CountOutcome(NULL, http_in_flight(client));
}

/*
 * The loop's state, kept across errors: an ERROR in one round (a failed
 * statement, a lock that did not come) is reported, the transaction rolled
 * back, and the next round goes on with the requests still in flight.
 */
typedef struct DispatcherLoop
{
	MemoryContext loop_cxt;
	HttpClient *client;
	HttpRequest **done;
	bool		claim_now;
	TimestampTz next_claim;
	MemoryContext claim_cxt;	/* the claim being made, until its requests start */
	TimestampTz claim_at;		/* idle: when to claim next (0: not known yet) */
	int			errors;			/* rounds in a row that ended in an ERROR */
} DispatcherLoop;

/*
 * DispatchRound is one round of the loop: claim when there is room, let
 * the requests progress, record what finished, or sleep when idle.
 */
static void
DispatchRound(DispatcherLoop *loop)
{
	HttpClient *client = loop->client;
	int			in_flight = http_in_flight(client);

	MemoryContextSwitchTo(loop->loop_cxt);
	MemoryContextReset(loop->loop_cxt);
	CHECK_FOR_INTERRUPTS();
	if (ShutdownRequestPending)
	{
		record_retry_at = 0;
		RecordPending(client);
		StopWhenDrained(in_flight + npending);
	}
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		SetSessionSafety();
		key_problem[0] = '\0';	/* a new key may have come: say again if not */
	}

	/*
	 * Worker 0 asks the providers about messages already handed over (not
	 * while the server key is unusable: no secret would open).
	 */
	if (MyWorker == 0 && crefinder_dispatcher_enabled && !ShutdownRequestPending &&
		key_problem[0] == '\0')
		lookup_round();

	/*
	 * Refill once half the requests have finished: claiming costs a query
	 * whatever its size, so claims are made in large slices.
	 */
	if (crefinder_dispatcher_enabled && !ShutdownRequestPending &&
		in_flight <= crefinder_batch_size / 2 &&
		(loop->claim_now || GetCurrentTimestamp() >= loop->next_claim))
	{
		OutboundMessage **batch;
		int			n;
		bool		full;
		ClaimBatch *claim;

		loop->claim_cxt = AllocSetContextCreate(TopMemoryContext, "crefinder claim",
												ALLOCSET_DEFAULT_SIZES);
		claim = MemoryContextAlloc(loop->claim_cxt, sizeof(ClaimBatch));
		claim->cxt = loop->claim_cxt;
		SetState("sending");
		n = Claim(crefinder_batch_size - in_flight, loop->claim_cxt, &batch, &full);
		/* from here the claim's memory is its requests' (deleted with the last) */
		claim->remaining = n;
		if (n == 0)
			MemoryContextDelete(loop->claim_cxt);
		loop->claim_cxt = NULL;
		for (int i = 0; i < n; i++)
		{
			batch[i]->batch = claim;
			for (int f = 0; f < batch[i]->nfollowers; f++)
				batch[i]->followers[f]->batch = claim;
			/* a request that cannot start is an answer: a retry */
			if (!http_start(client, &batch[i]->request, crefinder_http_timeout_ms))
				AddPending(&batch[i]->request);
		}
		loop->claim_now = full; /* more may be due */
		loop->claim_at = 0;
		if (loop->claim_now && MyWorker == 0)
		{
			crefinder_wake_helpers(MyWorker);
			FreshenStatistics();
		}
		loop->next_claim = GetCurrentTimestamp() + (n > 0 ? 0 : 100 * 1000);
		in_flight = http_in_flight(client);
		CountOutcome(NULL, in_flight);
	}

	if (in_flight > 0 || npending > 0)
	{
		int			ndone = 0;

		if (in_flight > 0)
			ndone = http_poll(client, npending > 0 ? Min(POLL_MS, PendingWaitLeft()) : POLL_MS,
							  loop->done, 10000);
		else
		{
			/* only outcomes wait: for more answers, or to record again */
			long		ms = Max(1, PendingWaitLeft());
			TimestampTz now = GetCurrentTimestamp();

			if (record_retry_at > now)
				ms = Max(ms, (long) ((record_retry_at - now) / 1000) + 1);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms,
							 PG_WAIT_EXTENSION);
		}
		for (int i = 0; i < ndone; i++)
			AddPending(loop->done[i]);
		if (npending > 0 &&
			(pending_messages >= crefinder_batch_size / 2 || http_in_flight(client) == 0 ||
			 PendingWaitLeft() == 0 || ShutdownRequestPending))
			RecordPending(client);
		if (ndone > 0)
			loop->claim_now = true;
		/* a commit that queued messages wakes us: claim them too */
		if (WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 0,
					  PG_WAIT_EXTENSION) & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			loop->claim_now = true;
			lookup_wake();
		}
		loop->errors = 0;
		return;
	}

	if (loop->claim_now && crefinder_dispatcher_enabled)
	{
		loop->errors = 0;
		return;
	}

	/*
	 * idle: sleep until the next message is due or a commit wakes us (worker
	 * 0 wakes meanwhile for its lookups, without claiming)
	 */
	SetState(crefinder_dispatcher_enabled ? "idle" : "disabled");
	{
		TimestampTz now = GetCurrentTimestamp();
		long		wait;
		bool		woken = false;

		if (loop->claim_at == 0)
		{
			/* helpers wait for worker 0 to call them */
			long		claim_wait = crefinder_dispatcher_enabled && MyWorker == 0 ?
				WaitMilliseconds() : IDLE_WAIT_MS;

			/* without a usable key, look again now and then (a reload wakes us) */
			if (key_problem[0] != '\0')
				claim_wait = Max(claim_wait, KEY_HOLD_MS);
			loop->claim_at = now + (int64) claim_wait * 1000;
		}
		wait = loop->claim_at > now ? (long) ((loop->claim_at - now + 999) / 1000) : 0;
		if (MyWorker == 0 && crefinder_dispatcher_enabled && key_problem[0] == '\0')
		{
			long		lookups = lookup_wait_ms();

			if (lookups >= 0)
				wait = Min(wait, lookups);
		}
		if (wait > 0)
		{
			/* lookups in flight: their sockets and the latch */
			if (!(MyWorker == 0 && lookup_poll(wait)))
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait,
								 PG_WAIT_EXTENSION);
			woken = (WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 0,
							   PG_WAIT_EXTENSION) & WL_LATCH_SET) != 0;
			ResetLatch(MyLatch);
			if (woken)
				lookup_wake();
		}
		if (woken || GetCurrentTimestamp() >= loop->claim_at)
		{
			loop->claim_now = true;
			loop->claim_at = 0;
		}
	}
	loop->errors = 0;
}

/*
 * RoundFailed handles an ERROR that ended a round: it is logged (once for
 * repeats of the same message) and shown in dispatcher_status, the
 * transaction is rolled back, and the loop goes on after a pause that
 * grows with the errors in a row (at most 30 s).  The requests in flight
 * and the outcomes not yet recorded are kept.
 */
static void
RoundFailed(DispatcherLoop *loop)
{
	static char last[CREFINDER_ERROR_LEN] = "";
	ErrorData  *edata;
	long		pause;

	MemoryContextSwitchTo(loop->loop_cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(loop->loop_cxt);
	if (loop->claim_cxt != NULL)
	{
		MemoryContextDelete(loop->claim_cxt);
		loop->claim_cxt = NULL;
	}
	if (strcmp(last, edata->message ? edata->message : "") != 0)
	{
		strlcpy(last, edata->message ? edata->message : "", sizeof(last));
		ereport(LOG,
				(errmsg("crefinder dispatcher %d: %s", MyWorker,
						ClipText(edata->message ? edata->message : "error", CREFINDER_ERROR_LEN - 1)),
				 errdetail("The dispatcher goes on; messages it could not handle stay queued.")));
	}
	/*
	 * dispatcher_status is read by every tenant: an error about a row's data
	 * (classes 22 and 23 may quote a value) shows there only as its SQLSTATE;
	 * the server log, the operator's, has the message.
	 */
	if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_DATA_EXCEPTION ||
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
		NoteError(psprintf("a round failed on a row's data (SQLSTATE %s); see the server log",
						   unpack_sql_state(edata->sqlerrcode)));
	else
		NoteError(ClipText(edata->message ? edata->message : "error", CREFINDER_ERROR_LEN - 1));
	loop->errors++;
	loop->claim_now = true;
	pause = Min(30000L, 100L << Min(loop->errors, 9));
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, pause,
					 PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

void
crefinder_dispatcher_main(Datum arg)
{
	DispatcherLoop loop;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	/* SIGTERM: stop claiming, let the requests in flight finish (StopWhenDrained) */
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(crefinder_database, NULL, 0);
	pgstat_report_appname("crefinder dispatcher");
	SetSessionSafety();
	UseIndexPlans();

	MyWorker = DatumGetInt32(arg);
	SpinLockAcquire(&crefinder_shared->mutex);
	MySlot->pid = MyProcPid;
	MySlot->latch = MyLatch;
	MySlot->started_at = GetCurrentTimestamp();
	MySlot->sent = MySlot->failed = 0;
	MySlot->retried = MySlot->blocked = 0;
	MySlot->last_error[0] = '\0';
	SpinLockRelease(&crefinder_shared->mutex);
	before_shmem_exit(ClearShared, (Datum) 0);
	SetState("starting");

	/* wait for the extension to exist in the database */
	while (!ExtensionReady())
	{
		SetState("waiting for CREATE EXTENSION crefinder");
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5000,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			proc_exit(1);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
	RecoverInFlight();

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(FATAL, (errmsg("could not initialise libcurl")));
	memset(&loop, 0, sizeof(loop));
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		loop.client = http_client_create(crefinder_max_connections);
		MemoryContextSwitchTo(old);
	}
	loop.loop_cxt = AllocSetContextCreate(TopMemoryContext, "crefinder dispatcher loop",
										  ALLOCSET_DEFAULT_SIZES);
	loop.done = MemoryContextAlloc(TopMemoryContext, sizeof(HttpRequest *) * 10000);
	loop.claim_now = true;
	SetState("idle");

	for (;;)
	{
		PG_TRY();
		{
			DispatchRound(&loop);
		}
		PG_CATCH();
		{
			RoundFailed(&loop);
		}
		PG_END_TRY();
	}
}

/*
 * crefinder.dispatcher_status_rows() returns each dispatcher worker's
 * published state (the view crefinder.dispatcher_status shows it).
 */
Datum
crefinder_dispatcher_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CrefinderShared copy;

	if (crefinder_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("crefinder is not loaded through shared_preload_libraries"),
				 errhint("Add crefinder to shared_preload_libraries and restart the server.")));
	InitMaterializedSRF(fcinfo, 0);
	SpinLockAcquire(&crefinder_shared->mutex);
	memcpy(&copy, crefinder_shared, sizeof(copy));
	SpinLockRelease(&crefinder_shared->mutex);

	for (int i = 0; i < crefinder_dispatcher_workers; i++)
	{
		CrefinderWorkerSlot *w = &copy.workers[i];
		Datum		values[12];
		bool		nulls[12] = {false};

		values[0] = Int32GetDatum(i);
		values[1] = CStringGetTextDatum(crefinder_database);
		if (w->pid != 0)
			values[2] = Int32GetDatum(w->pid);
		else
			nulls[2] = true;
		values[3] = CStringGetTextDatum(w->state);
		if (w->started_at != 0)
			values[4] = TimestampTzGetDatum(w->started_at);
		else
			nulls[4] = true;
		values[5] = Int32GetDatum(w->in_flight);
		values[6] = Int64GetDatum(w->sent);
		values[7] = Int64GetDatum(w->failed);
		values[8] = Int64GetDatum(w->retried);
		values[9] = Int64GetDatum(w->blocked);
		if (w->last_error[0] != '\0')
		{
			values[10] = CStringGetTextDatum(w->last_error);
			values[11] = TimestampTzGetDatum(w->last_error_at);
		}
		else
			nulls[10] = nulls[11] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
