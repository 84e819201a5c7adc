/*
 * reload: SIGHUP/SIGUSR1/SIGUSR2 handling; see reload.h.
 */
#include "reload.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "prog.h"

static volatile sig_atomic_t got_hup, got_usr1, got_usr2;

/* what reload_install() was given; cf == NULL before */
static struct reload_conf conf;

/* log.level as last loaded from the settings: a SIGUSR1/2 change survives reloads that
 * leave it alone */
static char loaded_level[16];

static pthread_t watcher;
static int watcher_running;
static atomic_int watcher_stop;

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else if (sig == SIGUSR1)
		got_usr1 = 1;
	else if (sig == SIGUSR2)
		got_usr2 = 1;
}

void
reload_install(const struct reload_conf *rc)
{
	struct sigaction sa;

	conf = *rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
}

int
reload_level_step(int lvl, int dir)
{
	lvl += dir;
	if (lvl < LOG_DEBUG)
		lvl = LOG_DEBUG;
	if (lvl > LOG_ERROR)
		lvl = LOG_ERROR;
	return lvl;
}

int
reload_is_live(const char *const *live, const char *key)
{
	for (; live && *live; live++)
		if (strcmp(*live, key) == 0)
			return 1;
	return 0;
}

static void
step_level(int dir)
{
	enum log_level lvl = (enum log_level)reload_level_step((int)log_get_level(), dir);

	log_set_level(lvl);
	/* warn, so that it shows whatever the new level */
	log_msg(LOG_WARN, 0, "log level now %s (SIGUSR%d)", log_level_name(lvl), dir < 0 ? 1 : 2);
}

struct diff {
	const struct reload_conf *rc;
	const struct config *next;
	int applied;
};

static void
on_changed(const char *key, void *arg)
{
	struct diff *d = arg;

	if (strcmp(key, "log.level") == 0)
		return; /* handled by apply_level() */
	if (reload_is_live(d->rc->live, key) && config_copy_number(d->rc->cf, d->next, key) == 0) {
		log_info("'%s' changed: applied", key);
		d->applied = 1;
		return;
	}
	log_warnx("'%s' changed: restart to apply", key);
}

static void
apply_level(const char *level)
{
	enum log_level lvl;

	if (strcmp(level, loaded_level) == 0 || log_level_parse(level, &lvl) < 0)
		return;
	snprintf(loaded_level, sizeof(loaded_level), "%s", level);
	log_set_level(lvl);
	log_msg(LOG_WARN, 0, "log level now %s (log.level)", log_level_name(lvl));
}

static int
reload(const struct reload_conf *rc)
{
	struct config next;
	struct diff d = {.rc = rc, .next = &next};
	char err[512];

	if (loaded_level[0] == '\0')
		snprintf(loaded_level, sizeof(loaded_level), "%s", rc->cf->log_level);
	if (config_load(&next, prog_config_path(), err, sizeof(err)) < 0) {
		log_errx("reload failed, keeping the running settings: %s", err);
		config_release(&next);
		return 0;
	}
	apply_level(next.log_level);
	config_diff(rc->cf, &next, on_changed, &d);
	config_release(&next);
	if (d.applied && rc->applied)
		rc->applied(rc->arg);
	log_info("settings reloaded");
	return 1;
}

int
reload_poll(void)
{
	if (conf.cf == NULL)
		return 0;
	if (got_usr1) {
		got_usr1 = 0;
		step_level(-1);
	}
	if (got_usr2) {
		got_usr2 = 0;
		step_level(+1);
	}
	if (!got_hup)
		return 0;
	got_hup = 0;
	log_info("SIGHUP: reloading settings");
	return reload(&conf);
}

static void *
watcher_main(void *arg)
{
	const struct timespec step = {0, 200 * 1000000L};

	(void)arg;
	log_set_ctx("reload");
	while (!atomic_load(&watcher_stop)) {
		reload_poll();
		nanosleep(&step, NULL);
	}
	return NULL;
}

int
reload_start(char *err, size_t errlen)
{
	int e;

	atomic_store(&watcher_stop, 0);
	if ((e = pthread_create(&watcher, NULL, watcher_main, NULL)) != 0) {
		snprintf(err, errlen, "cannot start the reload thread: %s", strerror(e));
		return -1;
	}
	watcher_running = 1;
	return 0;
}

void
reload_stop(void)
{
	if (!watcher_running)
		return;
	atomic_store(&watcher_stop, 1);
	pthread_join(watcher, NULL);
	watcher_running = 0;
}
