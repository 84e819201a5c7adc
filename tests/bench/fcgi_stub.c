/*
 * fcgi_stub: the FastCGI reference of `make bench`.  Listens on a Unix socket with the
 * same libfcgi accept loop and thread count as ingest (lib/dispatch.c), reads each
 * request's whole body and answers 204 with no body: the ceiling of any FastCGI program
 * behind the same nginx.
 *
 *   fcgi_stub SOCKET_PATH [THREADS]      (runs until SIGTERM or SIGINT)
 */
#include <errno.h>
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_THREADS 256

static int listen_fd = -1;

/* Reads and drops the body (up to EOF or CONTENT_LENGTH), then answers 204. */
static void
serve(FCGX_Request *req)
{
	char buf[65536];

	while (FCGX_GetStr(buf, (int)sizeof(buf), req->in) > 0)
		;
	FCGX_PutS("Status: 204 No Content\r\n\r\n", req->out);
}

static void *
worker(void *arg)
{
	FCGX_Request req;

	(void)arg;
	if (FCGX_InitRequest(&req, listen_fd, 0) != 0)
		return NULL;
	while (FCGX_Accept_r(&req) >= 0) {
		serve(&req);
		FCGX_Finish_r(&req);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	pthread_t tids[MAX_THREADS];
	int threads = 8, started;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: fcgi_stub SOCKET_PATH [THREADS]\n");
		return 2;
	}
	if (argc == 3 && ((threads = atoi(argv[2])) < 1 || threads > MAX_THREADS)) {
		fprintf(stderr, "fcgi_stub: THREADS must be 1..%d\n", MAX_THREADS);
		return 2;
	}
	if (FCGX_Init() != 0) {
		fprintf(stderr, "fcgi_stub: FCGX_Init failed\n");
		return 1;
	}
	unlink(argv[1]);
	if ((listen_fd = FCGX_OpenSocket(argv[1], 1024)) < 0) {
		fprintf(stderr, "fcgi_stub: cannot listen on '%s'\n", argv[1]);
		return 1;
	}
	/* nginx's workers may run as another user in the socket's (setgid) group */
	if (chmod(argv[1], 0660) < 0) {
		fprintf(stderr, "fcgi_stub: cannot chmod '%s': %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (started = 0; started < threads; started++)
		if ((errno = pthread_create(&tids[started], NULL, worker, NULL)) != 0) {
			fprintf(stderr, "fcgi_stub: pthread_create: %s\n", strerror(errno));
			return 1;
		}
	fprintf(stderr, "fcgi_stub: listening on %s with %d threads\n", argv[1], threads);
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	return 0;
}
