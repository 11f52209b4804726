/*
 * http.c
 *		Many HTTP requests at once over one libcurl multi handle.
 *
 * The multi handle keeps connections alive between requests and caps the
 * connections per host; each request has its own timeout, so a slow
 * answer never holds up the others.  TLS verification is always on.
 * Response bodies and headers are collected with malloc (libcurl calls
 * back from inside its own frames, where a PostgreSQL error must not
 * unwind) and freed by http_request_free().
 */
#include "postgres.h"

#include <curl/curl.h>

#include "http.h"

struct HttpClient
{
	CURLM	   *multi;
	int			in_flight;
};

static size_t
WriteBody(char *data, size_t size, size_t nmemb, void *userdata)
{
	HttpRequest *request = (HttpRequest *) userdata;
	size_t		n = size * nmemb;
	char	   *grown = realloc(request->response.data, request->response.len + n + 1);

	if (grown == NULL)
		return 0;				/* libcurl reports CURLE_WRITE_ERROR */
	memcpy(grown + request->response.len, data, n);
	request->response.data = grown;
	request->response.len += n;
	grown[request->response.len] = '\0';
	return n;
}

/* CopyHeader keeps the value of header name (case-insensitive) from line. */
static void
CopyHeader(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
	size_t		name_len = strlen(name);
	size_t		start;
	size_t		end;

	if (len <= name_len || pg_strncasecmp(line, name, name_len) != 0 || line[name_len] != ':')
		return;
	start = name_len + 1;
	while (start < len && (line[start] == ' ' || line[start] == '\t'))
		start++;
	end = len;
	while (end > start && (line[end - 1] == '\r' || line[end - 1] == '\n' || line[end - 1] == ' '))
		end--;
	if (end - start >= outlen)
		end = start + outlen - 1;
	memcpy(out, line + start, end - start);
	out[end - start] = '\0';
}

static size_t
WriteHeader(char *data, size_t size, size_t nmemb, void *userdata)
{
	HttpRequest *request = (HttpRequest *) userdata;
	size_t		n = size * nmemb;

	CopyHeader(data, n, "X-Message-Id", request->message_id, sizeof(request->message_id));
	CopyHeader(data, n, "Retry-After", request->retry_after, sizeof(request->retry_after));
	CopyHeader(data, n, "X-RateLimit-Reset", request->ratelimit_reset, sizeof(request->ratelimit_reset));
	return n;
}

/*
 * http_client_create makes a multi handle that opens at most
 * max_host_connections connections to one host and reuses them.
 */
HttpClient *
http_client_create(int max_host_connections)
{
	HttpClient *client = palloc0(sizeof(HttpClient));

	client->multi = curl_multi_init();
	if (client->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(client->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) max_host_connections);
	curl_multi_setopt(client->multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
	return client;
}

void
http_client_destroy(HttpClient *client)
{
	if (client == NULL)
		return;
	curl_multi_cleanup(client->multi);
	pfree(client);
}

/*
 * http_start adds a request to the client; it progresses in http_poll().
 */
void
http_start(HttpClient *client, HttpRequest *request, long timeout_ms)
{
	CURL	   *easy = curl_easy_init();

	if (easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	request->easy = easy;
	request->status = 0;
	request->result = CURLE_OK;
	request->error[0] = '\0';
	curl_easy_setopt(easy, CURLOPT_URL, request->url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "crefinder/0.1");
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, request->error);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, WriteBody);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, request);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, WriteHeader);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, request);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, request);
	if (request->headers)
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, request->headers);
	if (request->username)
	{
		curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
		curl_easy_setopt(easy, CURLOPT_USERNAME, request->username);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, request->password ? request->password : "");
	}
	if (request->body)
	{
		curl_easy_setopt(easy, CURLOPT_POST, 1L);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) strlen(request->body));
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request->body);
	}
	if (curl_multi_add_handle(client->multi, easy) != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not add a request to the libcurl multi handle")));
	client->in_flight++;
}

int
http_in_flight(HttpClient *client)
{
	return client->in_flight;
}

/*
 * http_poll lets the requests progress, waiting at most timeout_ms for
 * socket activity, and returns up to max_done finished requests in done.
 * A finished request has left the multi handle; free it with
 * http_request_free().
 */
int
http_poll(HttpClient *client, int timeout_ms, HttpRequest **done, int max_done)
{
	int			running;
	int			ndone = 0;
	CURLMsg    *msg;
	int			queued;

	curl_multi_perform(client->multi, &running);
	if (running > 0 && timeout_ms > 0)
	{
		curl_multi_poll(client->multi, NULL, 0, timeout_ms, NULL);
		curl_multi_perform(client->multi, &running);
	}
	while (ndone < max_done && (msg = curl_multi_info_read(client->multi, &queued)) != NULL)
	{
		HttpRequest *request;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &request);
		request->result = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &request->status);
		if (request->result != CURLE_OK && request->error[0] == '\0')
			strlcpy(request->error, curl_easy_strerror(request->result), sizeof(request->error));
		curl_multi_remove_handle(client->multi, msg->easy_handle);
		curl_easy_cleanup(msg->easy_handle);
		request->easy = NULL;
		client->in_flight--;
		done[ndone++] = request;
	}
	return ndone;
}

/*
 * http_abandon takes an unfinished request out of the client (a call that
 * was cancelled); its easy handle is released.
 */
void
http_abandon(HttpClient *client, HttpRequest *request)
{
	if (request->easy == NULL)
		return;
	curl_multi_remove_handle(client->multi, request->easy);
	curl_easy_cleanup(request->easy);
	request->easy = NULL;
	client->in_flight--;
}

/* http_request_free releases what libcurl and the callbacks allocated. */
void
http_request_free(HttpRequest *request)
{
	if (request->headers)
		curl_slist_free_all(request->headers);
	request->headers = NULL;
	free(request->response.data);
	request->response.data = NULL;
	request->response.len = 0;
}

/* http_escape URL-encodes s into palloc'd memory. */
char *
http_escape(const char *s)
{
	char	   *escaped = curl_easy_escape(NULL, s, 0);
	char	   *result;

	if (escaped == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not URL-encode a value")));
	result = pstrdup(escaped);
	curl_free(escaped);
	return result;
}
