/*
 * fuzz_config: the configuration file (lib/config.c): config_load() reading the input as
 * the file it is given, then config_write_effective() over what it made, as
 * `mailpipectl config` does.  The input goes into a memfd opened by its /proc path, so the
 * real file reader runs and nothing touches the disk.
 *
 * Checked besides memory safety and leaks: a refused file names its origin
 * ("<path>:<line>: ..."), and config_release() frees everything, whether loading failed or
 * not.  MAILPIPE_* variables are removed at start-up so only the input decides.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

extern char **environ;

static int fd = -1;
static char path[64];
static FILE *sink;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Unset every MAILPIPE_* variable, restarting the scan after each removal. */
	for (char **e = environ; *e != NULL;) {
		if (strncmp(*e, "MAILPIPE_", 9) == 0) {
			char name[256];
			size_t n = strcspn(*e, "=");

			snprintf(name, sizeof(name), "%.*s", (int)n, *e);
			unsetenv(name);
			e = environ;
		} else {
			e++;
		}
	}
	if ((fd = memfd_create("fuzz_config", 0)) < 0 || (sink = fopen("/dev/null", "w")) == NULL) {
		perror("fuzz_config: setup");
		exit(1);
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cf;
	char err[1024] = "";

	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size) {
		perror("fuzz_config: memfd");
		exit(1);
	}
	if (config_load(&cf, path, err, sizeof(err)) < 0)
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0, "error without origin: %s", err);
	else
		config_write_effective(&cf, sink);
	config_release(&cf);
	return 0;
}
