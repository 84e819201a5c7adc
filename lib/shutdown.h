/*
 * shutdown: the process-wide stop flag (the one global besides the logger).  SIGTERM and
 * SIGINT set it and do nothing else; loops check it.
 */
#ifndef MAILPIPE_SHUTDOWN_H
#define MAILPIPE_SHUTDOWN_H

#include <signal.h>

extern volatile sig_atomic_t shutdown_requested;

/* Installs the SIGTERM/SIGINT handler and ignores SIGPIPE. */
void shutdown_install(void);

/* Sleeps ms milliseconds in small steps; returns early (1) once shutdown was requested. */
int shutdown_sleep(long ms);

#endif
