/*
 * mailpipectl: the mailpipe operations CLI. main() only picks the subcommand
 * from the table below; each one lives in ops/mailpipectl_<name>.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mailpipectl.h"

struct mailpipectl_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct mailpipectl_cmd cmds[] = {
    {"migrate", mailpipectl_migrate_cmd,
     "[--dir SQLDIR] [--status] [--database-url URL]\n"
     "\t\tapply pending sql/NNN_name.sql migrations (or list them with --status)"},
    {"partitions", mailpipectl_partitions_cmd,
     "[--months-ahead N] [--database-url URL]\n"
     "\t\tcreate the missing monthly partitions of 'events'"},
    {"config", mailpipectl_config_cmd,
     "[-c FILE]\n"
     "\t\tcheck the settings (file, then MAILPIPE_* variables) and print them, secrets hidden"},
    {"config-table", mailpipectl_config_table_cmd,
     "\n\t\tprint the table of every setting as Markdown (the README's table)"},
    {"apikey", mailpipectl_apikey_cmd,
     "create --name NAME --scopes LIST | list | revoke ID|PREFIX [--database-url URL]\n"
     "\t\tcreate (the key is printed once), list or revoke the API keys of /v3/mail/send"},
    {"suppression", mailpipectl_suppression_cmd,
     "list [--reason R] [--limit N] | remove EMAIL [--database-url URL]\n"
     "\t\tlist suppressed addresses, or send to one again (PostgreSQL and Redis)"},
    {"dlq", mailpipectl_dlq_cmd,
     "list|show|replay|discard [ID...] [--topic T] [--reason R] [--since T] [--until T]\n"
     "\t\tsee the dead letters, re-publish them to their source topic, or discard them"},
    {"replay", mailpipectl_replay_cmd,
     "--from TIME|earliest|P:OFFSET,... [--to TIME|latest] [--group NAME]\n"
     "\t\tre-consume sendgrid.events into PostgreSQL (what is stored stays once)"},
    {"retention", mailpipectl_retention_cmd,
     "[--dry-run] [--days N] [--archive-dir DIR] [--database-url URL]\n"
     "\t\tarchive, then drop, the partitions of 'events' older than retention.days"},
    {"restore", mailpipectl_restore_cmd,
     "ARCHIVE [--dry-run] [--database-url URL]\n"
     "\t\tverify an archive of 'mailpipectl retention' and load its rows back"},
    {"check-config", mailpipectl_check_config_cmd,
     "[--config FILE] [--allow KEY]...\n"
     "\t\trefuse settings unsafe in production (exit 1, one line per problem)"},
};

void
mailpipectl_errx(const char *fmt, ...)
{
	va_list ap;

	fputs("mailpipectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void
mailpipectl_help_or_bad_option(const char *group, const char *sub, int opt, const char *arg,
			       void (*usage_fn)(FILE *out))
{
	if (opt == 'h') {
		usage_fn(stdout);
		return;
	}
	if (opt == ':')
		mailpipectl_errx("option '%s' needs a value", arg);
	else
		mailpipectl_errx("%s%s%s: unknown option '%s'", group, sub ? " " : "",
				 sub ? sub : "", arg);
	usage_fn(stderr);
}

int
mailpipectl_run_sub(const char *group, const struct mailpipectl_sub *subs, size_t n,
		    void (*usage_fn)(FILE *out), int argc, char **argv)
{
	if (argc < 2) {
		usage_fn(stderr);
		return MAILPIPECTL_EXIT_USAGE;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].fn(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage_fn(stdout);
		return MAILPIPECTL_EXIT_USAGE;
	}
	mailpipectl_errx("%s: unknown subcommand '%s'", group, argv[1]);
	usage_fn(stderr);
	return MAILPIPECTL_EXIT_USAGE;
}

static void
usage(FILE *out)
{
	size_t i;

	fputs("usage: mailpipectl COMMAND [OPTIONS]\n\ncommands:\n", out);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(out, "  %s %s\n", cmds[i].name, cmds[i].help);
	fputs("\nThe database is --database-url URL or $" MAILPIPECTL_DATABASE_URL_ENV
	      " (a libpq URI or conninfo).\n"
	      "'mailpipectl COMMAND --help' shows the options of one command.\n",
	      out);
}

int
main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return MAILPIPECTL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return MAILPIPECTL_EXIT_USAGE;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	}
	mailpipectl_errx("unknown command '%s'", argv[1]);
	usage(stderr);
	return MAILPIPECTL_EXIT_USAGE;
}
