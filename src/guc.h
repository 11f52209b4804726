/*
 * guc.h
 *		The crefinder.* settings, all defined in guc.c.
 */
#ifndef CREFINDER_GUC_H
#define CREFINDER_GUC_H

extern char *crefinder_database;
extern char *crefinder_secret_key;
extern char *crefinder_secret_key_file;
extern char *crefinder_user_id;
extern char *crefinder_twilio_api_url;
extern char *crefinder_sendgrid_api_url;
extern char *crefinder_vapi_api_url;
extern int	crefinder_batch_size;
extern int	crefinder_max_connections;
extern int	crefinder_http_timeout_ms;
extern int	crefinder_max_attempts;
extern int	crefinder_retry_max_backoff;
extern int	crefinder_retry_max_age;
extern int	crefinder_webhook_max_bytes;
extern int	crefinder_webhook_tolerance;
extern bool crefinder_dispatcher_enabled;
extern int	crefinder_dispatcher_workers;
extern int	crefinder_history_retention;
extern int	crefinder_webhook_retention;
extern bool crefinder_pruning;
extern int	crefinder_reconcile_after;
extern int	crefinder_lookups_per_second;

extern void crefinder_define_gucs(void);

#endif							/* CREFINDER_GUC_H */
