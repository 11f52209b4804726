/*
 * signature.h
 *		Checks of the signatures Twilio, SendGrid and Vapi put on their
 *		webhooks (see signature.c).
 */
#ifndef CREFINDER_SIGNATURE_H
#define CREFINDER_SIGNATURE_H

/* A form body with more fields than this is refused. */
#define CREFINDER_FORM_MAX_FIELDS 1000

extern bool crefinder_twilio_signature_valid(const char *token, const char *url,
											 const char *body, size_t body_len,
											 const char *signature);
extern bool crefinder_sendgrid_signature_valid(const char *public_key_b64,
											   const char *timestamp,
											   const char *body, size_t body_len,
											   const char *signature_b64);
extern bool crefinder_vapi_hmac_valid(const char *secret, const char *timestamp,
									  const char *body, size_t body_len,
									  const char *signature_hex);
extern bool crefinder_secret_equal(const char *expected, const char *given);

#endif							/* CREFINDER_SIGNATURE_H */
