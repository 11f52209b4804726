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
 *
 * The transfers are driven by socket readiness: libcurl tells which
 * sockets it wants watched (CURLMOPT_SOCKETFUNCTION) and when it next
 * needs the clock (CURLMOPT_TIMERFUNCTION); http_poll() waits for them in
 * one WaitEventSet together with the process latch, so a commit, a signal
 * or a cancel ends the wait at once.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "http.h"

#define MAX_EVENTS 256			/* socket events handled per wait */

typedef struct WatchedSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN, _OUT or _INOUT */
	int			pos;			/* in the wait event set; -1 until rebuilt */
	bool		changed;		/* what changed since the set was built */
} WatchedSocket;

struct HttpClient
{
	CURLM	   *multi;
	int			in_flight;
	MemoryContext cxt;			/* where the wait event set lives */

	/* the sockets libcurl wants watched (malloc'd: filled from callbacks) */
	WatchedSocket *sockets;
	int			nsockets;
	int			maxsockets;
	bool		rebuild;		/* sockets came or went */
	WaitEventSet *events;

	TimestampTz timer_at;		/* libcurl's next timeout; 0: none */
	bool		started;		/* requests were added since the last poll */
};

/* OnSocket records what libcurl wants of a socket (no PostgreSQL errors here). */
static int
OnSocket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	HttpClient *client = (HttpClient *) userp;
	int			i;

	for (i = 0; i < client->nsockets; i++)
		if (client->sockets[i].fd == fd)
			break;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < client->nsockets)
		{
			client->sockets[i] = client->sockets[--client->nsockets];
			client->rebuild = true;
		}
		return 0;
	}
	if (i == client->nsockets)
	{
		if (client->nsockets == client->maxsockets)
		{
			int			grown_max = Max(16, client->maxsockets * 2);
			WatchedSocket *grown = realloc(client->sockets, sizeof(WatchedSocket) * grown_max);

			if (grown == NULL)
				return -1;		/* libcurl fails the transfer */
			client->sockets = grown;
			client->maxsockets = grown_max;
		}
		client->sockets[i].fd = fd;
		client->sockets[i].pos = -1;
		client->nsockets++;
		client->rebuild = true;
	}
	else if (client->sockets[i].what != what)
		client->sockets[i].changed = true;
	client->sockets[i].what = what;
	return 0;
}

/* OnTimer records when libcurl next needs to be called without activity. */
static int
OnTimer(CURLM *multi, long timeout_ms, void *userp)
{
	HttpClient *client = (HttpClient *) userp;

	client->timer_at = timeout_ms < 0 ? 0 :
		GetCurrentTimestamp() + (TimestampTz) timeout_ms * 1000;
	return 0;
}

static uint32
SocketEvents(int what)
{
	return (what & CURL_POLL_IN ? WL_SOCKET_READABLE : 0) |
		(what & CURL_POLL_OUT ? WL_SOCKET_WRITEABLE : 0);
}

/* WatchSockets brings the wait event set up to date with libcurl's wishes. */
static void
WatchSockets(HttpClient *client)
{
	if (client->rebuild || client->events == NULL)
	{
		if (client->events != NULL)
			FreeWaitEventSet(client->events);
		client->events = CreateWaitEventSet(client->cxt, client->nsockets + 2);
		AddWaitEventToSet(client->events, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(client->events, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (int i = 0; i < client->nsockets; i++)
		{
			client->sockets[i].pos = AddWaitEventToSet(client->events,
													   SocketEvents(client->sockets[i].what),
													   client->sockets[i].fd, NULL, NULL);
			client->sockets[i].changed = false;
		}
		client->rebuild = false;
		return;
	}
	for (int i = 0; i < client->nsockets; i++)
		if (client->sockets[i].changed)
		{
			ModifyWaitEvent(client->events, client->sockets[i].pos,
							SocketEvents(client->sockets[i].what), NULL);
			client->sockets[i].changed = false;
		}
}

static size_t
WriteBody(char *data, size_t size, size_t nmemb, void *userdata)
{
	HttpRequest *request = (HttpRequest *) userdata;
	size_t		n = size * nmemb;
	char	   *grown;

	if (request->max_response > 0 && request->response.len + n > request->max_response)
		return 0;				/* libcurl reports CURLE_WRITE_ERROR */
	grown = realloc(request->response.data, request->response.len + n + 1);
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

	client->cxt = CurrentMemoryContext;
	client->multi = curl_multi_init();
	if (client->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(client->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) max_host_connections);
	curl_multi_setopt(client->multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
	curl_multi_setopt(client->multi, CURLMOPT_SOCKETFUNCTION, OnSocket);
	curl_multi_setopt(client->multi, CURLMOPT_SOCKETDATA, client);
	curl_multi_setopt(client->multi, CURLMOPT_TIMERFUNCTION, OnTimer);
	curl_multi_setopt(client->multi, CURLMOPT_TIMERDATA, client);
	return client;
}

void
http_client_destroy(HttpClient *client)
{
	if (client == NULL)
		return;
	curl_multi_cleanup(client->multi);
	if (client->events != NULL)
		FreeWaitEventSet(client->events);
	free(client->sockets);
	pfree(client);
}

/*
 * http_start adds a request to the client; it progresses in http_poll().
 * Returns false, with the reason in request->result and request->error,
 * when the request could not be started (it never raises an error: the
 * caller has requests in flight).
 */
bool
http_start(HttpClient *client, HttpRequest *request, long timeout_ms)
{
	CURL	   *easy = curl_easy_init();

	if (easy == NULL)
	{
		request->result = CURLE_OUT_OF_MEMORY;
		strlcpy(request->error, "could not create a libcurl handle", sizeof(request->error));
		return false;
	}
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
	{
		curl_easy_cleanup(easy);
		request->easy = NULL;
		request->result = CURLE_FAILED_INIT;
		strlcpy(request->error, "could not add a request to the libcurl multi handle",
				sizeof(request->error));
		return false;
	}
	client->in_flight++;
	client->started = true;
	return true;
}

int
http_in_flight(HttpClient *client)
{
	return client->in_flight;
}

/*
 * http_poll lets the requests progress, waiting at most timeout_ms for
 * socket activity, libcurl's own timeouts or the process latch (which it
 * leaves set: the caller resets it), and returns up to max_done finished
 * requests in done.  A finished request has left the multi handle; free
 * it with http_request_free().
 */
int
http_poll(HttpClient *client, int timeout_ms, HttpRequest **done, int max_done)
{
	int			running;
	int			ndone = 0;
	CURLMsg    *msg;
	int			queued;
	WaitEvent	occurred[MAX_EVENTS];
	int			noccurred;
	long		wait = timeout_ms;

	/* new requests go out at once, not after libcurl's first timer */
	if (client->started)
	{
		client->started = false;
		curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	if (client->timer_at != 0)
	{
		long		secs;
		int			usecs;

		TimestampDifference(GetCurrentTimestamp(), client->timer_at, &secs, &usecs);
		wait = Min(wait, secs * 1000 + (usecs + 999) / 1000);
	}
	WatchSockets(client);
	noccurred = WaitEventSetWait(client->events, wait, occurred, MAX_EVENTS, PG_WAIT_EXTENSION);
	for (int i = 0; i < noccurred; i++)
	{
		int			flags = 0;

		if (!(occurred[i].events & WL_SOCKET_MASK))
			continue;
		if (occurred[i].events & WL_SOCKET_READABLE)
			flags |= CURL_CSELECT_IN;
		if (occurred[i].events & WL_SOCKET_WRITEABLE)
			flags |= CURL_CSELECT_OUT;
		curl_multi_socket_action(client->multi, occurred[i].fd, flags, &running);
	}
	if (client->timer_at != 0 && GetCurrentTimestamp() >= client->timer_at)
	{
		client->timer_at = 0;
		curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &running);
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
