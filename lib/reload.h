/*
 * reload: settings changed under a running daemon.
 *
 *   SIGHUP   re-reads the configuration (the same -c FILE or $MAILPIPE_CONFIG, and the
 *            environment, which still wins) and applies what can change at run time:
 *            log.level and the program's live keys.  Every other changed key is logged
 *            as `'<key>' changed: restart to apply` (warn).  A file that does not load
 *            changes nothing; its `file:line:` error is logged.
 *   SIGUSR1  one level more verbose (error -> warn -> info -> debug).
 *   SIGUSR2  one level less verbose.
 *
 * The handlers only set flags; reload_poll() does the work in one thread: a main loop
 * (sink, sender) or the watcher thread of reload_start() (the FastCGI programs, whose
 * threads wait in accept).  A live key is a number, stored atomically into the running
 * struct config: threads other than the poller read it with config_live().  Strings never
 * change under a running program.
 */
#ifndef MAILPIPE_RELOAD_H
#define MAILPIPE_RELOAD_H

#include <stddef.h>

#include "config.h"

struct reload_conf {
	struct config *cf;          /* the running settings */
	const char *const *live;    /* keys applied at run time besides log.level; NULL-ended */
	void (*applied)(void *arg); /* after live keys changed; may be NULL */
	void *arg;
};

/*
 * Remembers *rc (copied; rc->cf and the list must outlive the program's use of reload) and
 * installs the SIGHUP, SIGUSR1 and SIGUSR2 handlers.  Once per process, after prog_start().
 */
void reload_install(const struct reload_conf *rc);

/*
 * Handles the signals that came since the last call; returns 1 if a reload was applied.
 * Always from the same thread: the one loop, or the watcher below.
 */
int reload_poll(void);

/* Starts a thread calling reload_poll() five times a second until reload_stop(). */
int reload_start(char *err, size_t errlen) __attribute__((warn_unused_result));
void reload_stop(void);

/* The level one step more (dir -1) or less (dir +1) verbose than lvl, clamped. */
int reload_level_step(int lvl, int dir);

/* 1 if key is in the NULL-ended list. */
int reload_is_live(const char *const *live, const char *key);

#endif
