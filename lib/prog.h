/*
 * prog: the start every mailpipe daemon shares: its command line
 * ([-c config-file] [--print-config]), its settings and its log level; then its signal
 * handlers and metrics push (prog_install), and for the FastCGI apps the serving itself
 * with the reload watcher around it (prog_serve).
 */
#ifndef MAILPIPE_PROG_H
#define MAILPIPE_PROG_H

#include "config.h"

struct dispatch_conf;
struct reload_conf;

/*
 * Initialises logging as argv[0], reads the command line and loads cf.  Returns 1 when the
 * program should run; 0 when it should exit now with *status: 0 after --print-config, 2
 * for a bad command line (usage printed), 1 for a bad configuration (logged).  cf must be
 * released with config_release() whatever the answer.
 */
int prog_start(int argc, char **argv, struct config *cf, int *status)
    __attribute__((warn_unused_result));

/* The -c path given to prog_start(), NULL without one ($MAILPIPE_CONFIG then applies). */
const char *prog_config_path(void);

/*
 * After prog_start(): installs the SIGTERM/SIGINT handler (shutdown.h) and the reload
 * handlers for *rl (reload.h; copied, rl->cf must outlive the program), then, unless
 * process is NULL, starts pushing this process's metrics as process (metrics_push.h).
 * -1 with the error logged.  Call metrics_push_stop() on the way out whatever the answer.
 */
int prog_install(const struct config *cf, const struct reload_conf *rl, const char *process)
    __attribute__((warn_unused_result));

/*
 * Serves the FastCGI routes of *dc until shutdown is requested: starts the reload
 * watcher (reload_start), runs dispatch_run() and stops the watcher again.  0 after a
 * clean shutdown, -1 with the error logged.
 */
int prog_serve(const struct dispatch_conf *dc) __attribute__((warn_unused_result));

#endif
