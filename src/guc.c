/*
 * guc.c
 *		Every crefinder.* setting (GUC) is defined here and nowhere else.
 *
 * Settings that reveal or redirect secrets (the encryption key, the
 * provider base URLs) are superuser-only.  The key is deliberately not
 * checked by a GUC check hook: PostgreSQL's "invalid value" message would
 * echo the value into the server log.  crypto.c validates it at use.
 *
 * PostgreSQL also logs the new value of any setting changed by a reload,
 * so crefinder.secret_key_file (a path; the key stays in the file) is the
 * form to use where the key is changed without a restart.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "guc.h"
#include "shared.h"
#include "tenant.h"

char	   *crefinder_database = NULL;
char	   *crefinder_secret_key = NULL;
char	   *crefinder_secret_key_file = NULL;
char	   *crefinder_user_id = NULL;
char	   *crefinder_twilio_api_url = NULL;
char	   *crefinder_sendgrid_api_url = NULL;
char	   *crefinder_vapi_api_url = NULL;
int			crefinder_batch_size = 500;
int			crefinder_max_connections = 64;
int			crefinder_http_timeout_ms = 10000;
int			crefinder_max_attempts = 50;
int			crefinder_retry_max_backoff = 600;
int			crefinder_retry_max_age = 86400;
int			crefinder_webhook_max_bytes = 4194304;
int			crefinder_webhook_tolerance = 300;
bool		crefinder_dispatcher_enabled = true;
int			crefinder_dispatcher_workers = 2;
int			crefinder_history_retention = 400;
int			crefinder_webhook_retention = 30;
bool		crefinder_pruning = false;
int			crefinder_reconcile_after = 7200;
int			crefinder_lookups_per_second = 10;

/*
 * check_user_id accepts an empty setting (no tenant) or anything the uuid
 * type accepts.
 */
static bool
check_user_id(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!crefinder_uuid_text_is_valid(*newval))
	{
		GUC_check_errdetail("crefinder.user_id must be a UUID.");
		return false;
	}
	return true;
}

/*
 * crefinder_define_gucs registers every setting; called once from _PG_init.
 */
void
crefinder_define_gucs(void)
{
	DefineCustomStringVariable("crefinder.database",
							   gettext_noop("Database the crefinder background worker serves."),
							   NULL,
							   &crefinder_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("crefinder.secret_key",
							   gettext_noop("Key (64 hexadecimal characters) that encrypts provider secrets at rest."),
							   NULL,
							   &crefinder_secret_key,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("crefinder.secret_key_file",
							   gettext_noop("File holding the key that encrypts provider secrets; takes precedence over crefinder.secret_key."),
							   gettext_noop("The file holds 64 hexadecimal characters and must not be readable by others."),
							   &crefinder_secret_key_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("crefinder.user_id",
							   gettext_noop("Tenant (UUID) on whose behalf this session acts, when auth.uid() does not exist."),
							   NULL,
							   &crefinder_user_id,
							   "",
							   PGC_USERSET,
							   0,
							   check_user_id, NULL, NULL);

	DefineCustomStringVariable("crefinder.twilio_api_url",
							   gettext_noop("Base URL of the Twilio REST API."),
							   NULL,
							   &crefinder_twilio_api_url,
							   "https://api.twilio.com",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("crefinder.sendgrid_api_url",
							   gettext_noop("Base URL of the SendGrid v3 API."),
							   NULL,
							   &crefinder_sendgrid_api_url,
							   "https://api.sendgrid.com",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("crefinder.vapi_api_url",
							   gettext_noop("Base URL of the Vapi API."),
							   NULL,
							   &crefinder_vapi_api_url,
							   "https://api.vapi.ai",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	/*
	 * Webhooks.  Both are read by the handlers in SQL (current_setting), so
	 * they carry no unit: bytes and seconds.
	 */
	DefineCustomIntVariable("crefinder.webhook_max_bytes",
							gettext_noop("Largest webhook payload (URL, body and headers, in bytes) a handler accepts; larger ones are answered 400."),
							NULL,
							&crefinder_webhook_max_bytes,
							4194304, 1024, 1073741823,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("crefinder.webhook_tolerance",
							gettext_noop("Seconds a signed webhook timestamp may be away from now before the delivery is refused as a replay."),
							NULL,
							&crefinder_webhook_tolerance,
							300, 1, 86400,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("crefinder.batch_size",
							gettext_noop("Messages the dispatcher claims per batch."),
							NULL,
							&crefinder_batch_size,
							500, 1, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("crefinder.max_connections",
							gettext_noop("Most HTTP connections the dispatcher opens to one provider host."),
							NULL,
							&crefinder_max_connections,
							64, 1, 1024,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("crefinder.http_timeout_ms",
							gettext_noop("Timeout of one provider HTTP request."),
							NULL,
							&crefinder_http_timeout_ms,
							10000, 100, 600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("crefinder.max_attempts",
							gettext_noop("Attempts before a message that keeps failing temporarily is marked failed."),
							NULL,
							&crefinder_max_attempts,
							50, 1, 1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("crefinder.retry_max_backoff",
							gettext_noop("Longest wait between two attempts of a message that failed temporarily."),
							gettext_noop("The wait doubles from one second at each attempt, with jitter, up to this."),
							&crefinder_retry_max_backoff,
							600, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("crefinder.retry_max_age",
							gettext_noop("How long after its first attempt a message that keeps failing temporarily is retried before it is marked failed."),
							NULL,
							&crefinder_retry_max_age,
							86400, 1, 30 * 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("crefinder.dispatcher_enabled",
							 gettext_noop("Whether the dispatcher sends queued messages; off holds every message in the outbox."),
							 NULL,
							 &crefinder_dispatcher_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("crefinder.dispatcher_workers",
							gettext_noop("Dispatcher background workers: the first serves every message, the others help with backlogs."),
							NULL,
							&crefinder_dispatcher_workers,
							2, 1, CREFINDER_MAX_WORKERS,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("crefinder.history_retention",
							gettext_noop("Days a finished message is kept in the outbox; older ones are pruned, their counts kept in the rollups."),
							NULL,
							&crefinder_history_retention,
							400, 1, 36500,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("crefinder.webhook_retention",
							gettext_noop("Days a webhook delivery is kept in crefinder.webhook_events."),
							NULL,
							&crefinder_webhook_retention,
							30, 1, 36500,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("crefinder.reconcile_after",
							gettext_noop("Seconds after a text is handed over with no final status before the dispatcher asks Twilio about it (calls: their longest duration plus ten minutes)."),
							NULL,
							&crefinder_reconcile_after,
							7200, 1, 7 * 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("crefinder.lookups_per_second",
							gettext_noop("Lookups of prices and statuses the dispatcher starts per second at most (0: none)."),
							NULL,
							&crefinder_lookups_per_second,
							10, 0, 50,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("crefinder.pruning",
							 gettext_noop("Set by crefinder.prune_history() for its own deletes: the rollups keep the counts of pruned messages."),
							 NULL,
							 &crefinder_pruning,
							 false,
							 PGC_SUSET,
							 GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("crefinder");
}
