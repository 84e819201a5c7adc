/*
 * shutdown: signal handling; see shutdown.h.
 */
#include "shutdown.h"

#include <string.h>
#include <time.h>

volatile sig_atomic_t shutdown_requested;

static void
on_signal(int sig)
{
	(void)sig;
	shutdown_requested = 1;
}

void
shutdown_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

int
shutdown_sleep(long ms)
{
	while (ms > 0 && !shutdown_requested) {
		long step = ms < 100 ? ms : 100;
		struct timespec ts = {step / 1000, (step % 1000) * 1000000L};

		nanosleep(&ts, NULL);
		ms -= step;
	}
	return shutdown_requested ? 1 : 0;
}
