/*
 * dispatch: the FastCGI front of every mailpipe HTTP app.  A pool of threads accepts
 * requests on one unix socket, reads and caps the body, finds the route
 * {method, path, handler} and calls it, counting each answer in the metrics
 * (mailpipe_http_requests_total and _duration_seconds by route pattern); every error leaves
 * through reply_error() in SendGrid's error shape:
 *
 *   {"errors":[{"message":"...","field":"personalizations.0.to"|null,"help":null}]}
 */
#ifndef MAILPIPE_DISPATCH_H
#define MAILPIPE_DISPATCH_H

#include <stddef.h>

#include <fcgiapp.h>
#include <jansson.h>

struct req {
	FCGX_Request fcgx;
	const char *method; /* borrowed from the FastCGI params */
	const char *path;   /* without the query string */
	const char *query;  /* "" when absent */
	char *body;         /* owned by the dispatcher, NUL-terminated, may hold NULs */
	size_t body_len;
	char id[40]; /* request id: nginx's $request_id, or made up */
	void *app;   /* the application's context, borrowed */
	int status;  /* what was answered, for the access log */
};

typedef void (*handler_fn)(struct req *r);

struct route {
	const char *method;
	const char *path; /* exact, or a prefix when it ends in '/' (the rest is r->path's) */
	handler_fn fn;
};

struct dispatch_conf {
	const char *socket_path;
	int socket_mode;
	int threads;
	size_t max_body;
	size_t max_inflight; /* request body bytes held at once by all threads; 0: no limit */
	const struct route *routes;
	size_t nroutes;
	void *app;
};

/* Serves requests until shutdown is requested; in-flight requests finish first. */
int dispatch_run(const struct dispatch_conf *dc, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* An HTTP request header by its CGI name, e.g. "HTTP_IDEMPOTENCY_KEY"; NULL if absent. */
const char *req_param(struct req *r, const char *name);

/* Answers status with body as JSON (steals the reference; NULL for no body). */
void reply_json(struct req *r, int status, json_t *body);

/*
 * Answers status with extra headers ("Name: value" each) and body as JSON (stolen; NULL
 * for an empty body).  A header holding CR or LF is never written: the answer becomes 500.
 */
void reply_headers(struct req *r, int status, const char *const *headers, size_t n, json_t *body);

/* Answers status with body (len bytes, copied) of the given Content-Type. */
void reply_text(struct req *r, int status, const char *content_type, const char *body, size_t len);

/* Answers status with one error; field may be NULL. */
void reply_error(struct req *r, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Answers status with {"errors": errors} (steals the reference). */
void reply_errors(struct req *r, int status, json_t *errors);

#endif
