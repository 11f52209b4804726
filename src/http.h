/*
 * http.h
 *		Concurrent HTTP requests over one libcurl multi handle (see http.c).
 */
#ifndef CREFINDER_HTTP_H
#define CREFINDER_HTTP_H

#include <curl/curl.h>

typedef struct HttpBuffer
{
	char	   *data;			/* malloc'd, NUL-terminated */
	size_t		len;
} HttpBuffer;

typedef struct HttpRequest
{
	/* what to send */
	char	   *url;
	char	   *body;			/* NULL for GET */
	struct curl_slist *headers;
	char	   *username;		/* Basic auth when set */
	char	   *password;
	size_t		max_response;	/* a longer answer is cut off (an error); 0: no limit */
	void	   *owner;			/* the caller's object */

	/* what came back */
	CURLcode	result;			/* CURLE_OK when an HTTP answer arrived */
	long		status;
	HttpBuffer	response;
	char		message_id[128];	/* X-Message-Id */
	char		retry_after[64];	/* Retry-After */
	char		ratelimit_reset[64];	/* X-RateLimit-Reset */
	char		error[CURL_ERROR_SIZE];

	CURL	   *easy;
} HttpRequest;

typedef struct HttpClient HttpClient;

extern HttpClient *http_client_create(int max_host_connections);
extern void http_client_destroy(HttpClient *client);
extern bool http_start(HttpClient *client, HttpRequest *request, long timeout_ms);
extern int	http_in_flight(HttpClient *client);
extern int	http_poll(HttpClient *client, int timeout_ms, HttpRequest **done, int max_done);
extern void http_abandon(HttpClient *client, HttpRequest *request);
extern void http_request_free(HttpRequest *request);
extern char *http_escape(const char *s);

#endif							/* CREFINDER_HTTP_H */
