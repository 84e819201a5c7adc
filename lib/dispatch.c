/*
 * dispatch: FastCGI thread pool, body reading, routing and replies; see dispatch.h.
 */
#include "dispatch.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "log.h"
#include "metrics.h"
#include "sgerr.h"
#include "shutdown.h"

struct pool {
	const struct dispatch_conf *dc;
	int fd;
	pthread_mutex_t accept_mu;
	struct budget bodies; /* dc->max_inflight bytes of request bodies at once */
};

static const char *
status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return status < 500 ? "Client Error" : "Server Error";
	}
}

const char *
req_param(struct req *r, const char *name)
{
	return FCGX_GetParam(name, r->fcgx.envp);
}

static void
reply_typed(struct req *r, int status, const char *extra_header, const char *ctype,
	    const char *body, size_t len)
{
	char head[512];
	int n;

	/* libfcgi's own FCGX_FPrintF knows no %zu: format here, write raw bytes. */
	n = snprintf(head, sizeof(head),
		     "Status: %d %s\r\nX-Request-Id: %s\r\n%s%s%s%s%sContent-Length: %zu\r\n\r\n",
		     status, status_text(status), r->id, extra_header ? extra_header : "",
		     extra_header ? "\r\n" : "", body ? "Content-Type: " : "", body ? ctype : "",
		     body ? "\r\n" : "", body ? len : 0);
	if (n > 0 && (size_t)n < sizeof(head))
		FCGX_PutStr(head, n, r->fcgx.out);
	if (body && len)
		FCGX_PutStr(body, (int)len, r->fcgx.out);
	r->status = status;
}

static void
reply_raw(struct req *r, int status, const char *extra_header, const char *body, size_t len)
{
	reply_typed(r, status, extra_header, "application/json", body, len);
}

void
reply_text(struct req *r, int status, const char *content_type, const char *body, size_t len)
{
	if (strpbrk(content_type, "\r\n") != NULL) {
		reply_error(r, 500, NULL, "refusing to write an unsafe response header");
		return;
	}
	reply_typed(r, status, NULL, content_type, body, len);
}

void
reply_headers(struct req *r, int status, const char *const *headers, size_t n, json_t *body)
{
	char extra[1024];
	size_t len = 0;

	extra[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t hl = strlen(headers[i]);

		if (strpbrk(headers[i], "\r\n") != NULL || len + hl + 3 > sizeof(extra)) {
			json_decref(body);
			reply_error(r, 500, NULL, "refusing to write an unsafe response header");
			return;
		}
		if (len > 0) {
			memcpy(extra + len, "\r\n", 2);
			len += 2;
		}
		memcpy(extra + len, headers[i], hl + 1);
		len += hl;
	}
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	reply_raw(r, status, len ? extra : NULL, text, text ? strlen(text) : 0);
	free(text);
	json_decref(body);
}

void
reply_json(struct req *r, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	if (body && text == NULL) {
		static const char oom[] =
		    "{\"errors\":[{\"message\":\"out of memory\",\"field\":null,\"help\":null}]}";
		reply_raw(r, 500, NULL, oom, sizeof(oom) - 1);
	} else {
		reply_raw(r, status, NULL, text, text ? strlen(text) : 0);
	}
	free(text);
	json_decref(body);
}

void
reply_errors(struct req *r, int status, json_t *errors)
{
	reply_json(r, status, json_pack("{s:o}", "errors", errors));
}

void
reply_error(struct req *r, int status, const char *field, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_errors(r, status, json_pack("[o]", sgerr_entry(field, msg)));
}

/* The request id nginx gives as REQUEST_ID if it is a safe token; otherwise a new one. */
static void
set_request_id(struct req *r, unsigned int *seed)
{
	const char *id = req_param(r, "REQUEST_ID");
	size_t len = id ? strlen(id) : 0;

	if (len > 0 && len < sizeof(r->id) && strspn(id, "0123456789abcdefABCDEF-") == len) {
		memcpy(r->id, id, len + 1);
		return;
	}
	snprintf(r->id, sizeof(r->id), "%08x%08x", (unsigned int)rand_r(seed),
		 (unsigned int)time(NULL));
}

static void
set_path(struct req *r)
{
	const char *p = req_param(r, "DOCUMENT_URI");

	if (p == NULL || *p == '\0')
		p = req_param(r, "SCRIPT_NAME");
	r->path = p ? p : "/";
	r->method = req_param(r, "REQUEST_METHOD");
	if (r->method == NULL)
		r->method = "GET";
	r->query = req_param(r, "QUERY_STRING");
	if (r->query == NULL)
		r->query = "";
}

/*
 * Reads the body, first taking its size from the bodies budget (*taken: what to give
 * back, whatever the answer); answers and returns -1 when it cannot.
 */
static int
read_body(struct req *r, size_t max, struct budget *bodies, size_t *taken)
{
	const char *cl = req_param(r, "CONTENT_LENGTH");
	unsigned long long want = 0;
	char *end;
	size_t got = 0;

	if (cl && *cl) {
		errno = 0;
		want = strtoull(cl, &end, 10);
		if (errno || *end) {
			reply_error(r, 400, NULL, "invalid Content-Length");
			return -1;
		}
	}
	if (want > max) {
		reply_error(r, 413, NULL, "request body too large: limit is %zu bytes", max);
		return -1;
	}
	*taken = budget_take(bodies, (size_t)want);
	if ((r->body = malloc((size_t)want + 1)) == NULL) {
		reply_error(r, 503, NULL, "out of memory");
		return -1;
	}
	while (got < want) {
		int n = FCGX_GetStr(r->body + got, (int)(want - got), r->fcgx.in);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got != want) {
		reply_error(r, 400, NULL, "request body truncated: %zu of %llu bytes", got, want);
		return -1;
	}
	r->body[got] = '\0';
	r->body_len = got;
	return 0;
}

/*
 * A route path ending in '/' matches every path under it with something after the slash
 * ("/v3/messages/" matches "/v3/messages/01J..."); any other route path matches exactly.
 */
static int
path_matches(const char *route_path, const char *path)
{
	size_t len = strlen(route_path);

	if (len > 0 && route_path[len - 1] == '/')
		return strncmp(route_path, path, len) == 0 && path[len] != '\0';
	return strcmp(route_path, path) == 0;
}

/*
 * The metrics' route label of a route path: a prefix route is named by what follows it
 * (metrics.md); an exact route by its path.
 */
static const char *
route_pattern(const char *path)
{
	static const char *const named[][2] = {
	    {"/v3/messages/", "/v3/messages/{id}"},
	    {"/v3/suppression/", "/v3/suppression/{list}"},
	};

	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (strcmp(path, named[i][0]) == 0)
			return named[i][1];
	return path;
}

/* Answers r; returns the route pattern for the metrics, "other" when no route matched. */
static const char *
route(struct req *r, const struct dispatch_conf *dc, struct budget *bodies)
{
	char allow[128] = "Allow: ";
	const char *pattern = "other";
	int path_known = 0;

	for (size_t i = 0; i < dc->nroutes; i++) {
		const struct route *rt = &dc->routes[i];

		if (!path_matches(rt->path, r->path))
			continue;
		if (!path_known)
			pattern = route_pattern(rt->path);
		if (strcmp(rt->method, r->method) == 0) {
			size_t taken = 0;

			if (read_body(r, dc->max_body, bodies, &taken) == 0)
				rt->fn(r);
			free(r->body);
			r->body = NULL;
			budget_give(bodies, taken);
			return pattern;
		}
		if (path_known++)
			strncat(allow, ", ", sizeof(allow) - strlen(allow) - 1);
		strncat(allow, rt->method, sizeof(allow) - strlen(allow) - 1);
	}
	if (path_known) {
		char msg[160];
		json_t *body;
		char *text;

		snprintf(msg, sizeof(msg), "method %s is not allowed on %s", r->method, r->path);
		body = json_pack("{s:[o]}", "errors", sgerr_entry(NULL, msg));
		text = json_dumps(body, JSON_COMPACT);
		reply_raw(r, 405, allow, text, text ? strlen(text) : 0);
		free(text);
		json_decref(body);
		return pattern;
	}
	reply_error(r, 404, NULL, "no route for %s", r->path);
	return pattern;
}

/* Counts the request answered; unusual methods are counted as "other". */
static void
count_request(const struct req *r, const char *pattern, double seconds)
{
	static const char *const methods[] = {"GET",    "POST", "PUT",    "PATCH",
					      "DELETE", "HEAD", "OPTIONS"};
	const char *method = "other";
	char status[16];

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(r->method, methods[i]) == 0)
			method = methods[i];
	snprintf(status, sizeof(status), "%d", r->status);
	metric_counter_add(metrics_family(M_HTTP_REQUESTS), 1, pattern, method, status, NULL);
	metric_histogram_observe(metrics_family(M_HTTP_DURATION), seconds, pattern, NULL);
}

static void *
worker_main(void *arg)
{
	struct pool *pool = arg;
	const struct dispatch_conf *dc = pool->dc;
	unsigned int seed = (unsigned int)time(NULL) ^ (unsigned int)(uintptr_t)&seed;
	const char *pattern;
	double started;
	struct req r;
	sigset_t block;

	/* Signals go to the main thread only. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &block, NULL);

	memset(&r, 0, sizeof(r));
	FCGX_InitRequest(&r.fcgx, pool->fd, 0);
	while (!shutdown_requested) {
		int rc;

		pthread_mutex_lock(&pool->accept_mu);
		rc = shutdown_requested ? -1 : FCGX_Accept_r(&r.fcgx);
		pthread_mutex_unlock(&pool->accept_mu);
		if (rc < 0)
			break;
		r.body = NULL;
		r.body_len = 0;
		r.status = 0;
		r.app = dc->app;
		set_path(&r);
		set_request_id(&r, &seed);
		log_set_fields("request_id", r.id, NULL);
		started = metrics_now();
		pattern = route(&r, dc, &pool->bodies);
		count_request(&r, pattern, metrics_now() - started);
		log_debug("%s %s -> %d", r.method, r.path, r.status);
		log_set_ctx(NULL);
		FCGX_Finish_r(&r.fcgx); /* route() freed the body */
	}
	FCGX_Free(&r.fcgx, 1);
	return NULL;
}

int
dispatch_run(const struct dispatch_conf *dc, char *err, size_t errlen)
{
	struct pool pool = {.dc = dc, .fd = -1};
	pthread_t *tids = NULL;
	int started = 0, rc = -1;

	if (FCGX_Init() != 0) {
		snprintf(err, errlen, "cannot initialise libfcgi");
		return -1;
	}
	unlink(dc->socket_path);
	if ((pool.fd = FCGX_OpenSocket(dc->socket_path, 1024)) < 0) {
		snprintf(err, errlen, "cannot listen on '%s': %s", dc->socket_path,
			 strerror(errno));
		return -1;
	}
	if (chmod(dc->socket_path, (mode_t)dc->socket_mode) < 0) {
		snprintf(err, errlen, "cannot chmod '%s': %s", dc->socket_path, strerror(errno));
		goto out;
	}
	pthread_mutex_init(&pool.accept_mu, NULL);
	budget_init(&pool.bodies, dc->max_inflight);
	if ((tids = calloc((size_t)dc->threads, sizeof(*tids))) == NULL) {
		snprintf(err, errlen, "out of memory");
		budget_destroy(&pool.bodies);
		goto out;
	}
	for (; started < dc->threads; started++) {
		if ((errno = pthread_create(&tids[started], NULL, worker_main, &pool)) != 0) {
			snprintf(err, errlen, "cannot start thread: %s", strerror(errno));
			shutdown_requested = 1;
			break;
		}
	}
	if (started == dc->threads) {
		log_info("listening on %s with %d threads", dc->socket_path, dc->threads);
		rc = 0;
	}
	while (!shutdown_requested)
		shutdown_sleep(1000);
	log_info("shutting down: finishing requests in flight");
	/* Wakes the threads blocked in accept(); requests being served run to their end. */
	shutdown(pool.fd, SHUT_RDWR);
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	budget_destroy(&pool.bodies);
out:
	free(tids);
	close(pool.fd);
	unlink(dc->socket_path);
	return rc;
}
