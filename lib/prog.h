/*
 * prog: the start every mailpipe daemon shares: its command line
 * ([-c config-file] [--print-config]), its settings and its log level.
 */
#ifndef MAILPIPE_PROG_H
#define MAILPIPE_PROG_H

#include "config.h"

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

#endif
