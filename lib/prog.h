/*
 * prog: the start every mailpipe daemon shares: its command line
 * ([-c config-file] [--print-config]), its settings and its log level.
 */
#ifndef MAILPIPE_PROG_H
#define MAILPIPE_PROG_H

#include "config.h"

enum prog_start {
	PROG_RUN,   /* cf is loaded: go on */
	PROG_DONE,  /* the command line asked for output only (it was printed): exit 0 */
	PROG_USAGE, /* a bad command line (usage was printed): exit 2 */
	PROG_FAIL,  /* a bad configuration (it was logged): exit 1 */
};

/*
 * Initialises logging as argv[0], reads the command line and loads cf.  cf must be
 * released with config_release() whatever the answer.
 */
enum prog_start prog_start(int argc, char **argv, struct config *cf)
    __attribute__((warn_unused_result));

#endif
