/*
 * cli.h - private interface between cli/main.c and the subcommands of
 * `encore`: the subcommand table entry, exit codes, and the small output
 * helpers every subcommand shares (stderr messages, usage errors, --json).
 *
 * Conventions (STYLE section 10): results go to stdout, tab-separated or as
 * one JSON document with --json; errors and progress go to stderr and say
 * what to do next. A subcommand returns its exit code: CLI_OK, CLI_FAIL
 * (runtime failure) or CLI_USAGE (bad command line).
 */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

enum cli_exit {
	CLI_OK = 0,
	CLI_FAIL = 1,
	CLI_USAGE = 2,
};

enum cli_cmd_flags {
	CMD_CTL = 1u << 0,    /* talks to a client's control socket (listed as such in help) */
	CMD_HIDDEN = 1u << 1, /* not listed by `encore --help` */
};

/* A subcommand: argv[0] is the subcommand's name; getopt state is reset
 * (optind = 0) before the call. Returns an enum cli_exit value. */
typedef int (*cli_cmd_fn)(int argc, char **argv);

struct cli_cmd {
	const char *name;
	cli_cmd_fn fn;
	unsigned flags; /* enum cli_cmd_flags */
	const char *help;
};

/* The subcommands (one cli/cmd_<name>.c each). */
int cmd_local(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_check_servers(int argc, char **argv);
int cmd_flush(int argc, char **argv);
int cmd_whereis(int argc, char **argv);
int cmd_conflicts(int argc, char **argv);
int cmd_repair(int argc, char **argv);
int cmd_hoard(int argc, char **argv);
int cmd_disconnect(int argc, char **argv);
int cmd_reconnect(int argc, char **argv);
int cmd_write_disconnect(int argc, char **argv);

/* cmd_hoard.c: abs (an absolute, normalised path) relative to mount point
 * mount_point, into out ("REALM/a/b"). 0, -EINVAL if abs is not below
 * mount_point (or is its top directory), -ENAMETOOLONG. */
int cli_mount_rel(const char *mount_point, const char *abs, char *out, size_t len);

/* Prints "encore: <message>\n" to stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints a progress line "encore: <message>\n" to stderr (kept apart from
 * cli_err so progress can be silenced later without touching errors). */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "encore <cmd>: <message>" and a hint to run `encore <cmd> --help`
 * to stderr. Returns CLI_USAGE so callers can `return cli_usage(...)`. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a decimal integer in [min, max] (strtoull, end and range check).
 * Returns false if s is not such a number. */
bool cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Prints o to stdout as pretty JSON followed by a newline. Borrows o.
 * Returns CLI_OK, or CLI_FAIL if stdout could not be written. */
int cli_print_json(json_object *o);

/* Parses buf[0..len) as exactly one JSON object (whitespace may follow;
 * anything else is rejected). Returns a new object (json_object_put it) or
 * NULL if buf is not that. */
json_object *cli_json_parse_object(const char *buf, size_t len);

/* Looks up key in object o: the string value (any JSON value is converted
 * with json_object_get_string), or dflt if absent or null. Valid while o lives. */
const char *cli_json_str(json_object *o, const char *key, const char *dflt);
/* Integer value of key in o, or dflt if absent or null. */
int64_t cli_json_int(json_object *o, const char *key, int64_t dflt);

#endif /* CLI_CLI_H */
