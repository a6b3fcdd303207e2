/*
 * ctl_client.h - how `encore` reaches an encore-client: find the control
 * socket of the mount that holds a path (/proc/self/mountinfo, mount source
 * "encore:<socket path>", fstype "fuse.encore"; ENCORE_SOCKET overrides) and
 * make one MSG_CTL JSON call on it (docs/architecture.md "Control protocol").
 * Also used by `encore local` to find and unmount encore mounts.
 */
#ifndef CLI_CTL_CLIENT_H
#define CLI_CTL_CLIENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <json-c/json.h>

/* What a mountinfo line says about one mount. Strings are unescaped (the
 * kernel writes space, tab, newline and backslash as \ooo octal). */
struct ctl_mount {
	unsigned major, minor;	    /* st_dev of files on this mount */
	char mount_point[PATH_MAX]; /* absolute */
	char fstype[64];	    /* "fuse.encore" for encore mounts */
	char source[PATH_MAX];	    /* "encore:<socket path>" for encore mounts */
};

/* Parses one line of /proc/<pid>/mountinfo (a trailing newline is allowed).
 * Returns 0, or -EINVAL if the line is malformed or a field does not fit. */
int ctl_mountinfo_parse(const char *line, struct ctl_mount *m);

/* If m is an encore mount, returns its control socket path (borrowed from
 * m), else NULL. */
const char *ctl_mount_socket(const struct ctl_mount *m);

/* Calls fn for every mount (only encore mounts if encore_only) in
 * /proc/self/mountinfo, in order, until fn returns non-zero (which is
 * returned). Returns 0 after the last mount, or -errno if mountinfo cannot
 * be read. m is valid during the call only. */
typedef int (*ctl_mount_fn)(void *arg, const struct ctl_mount *m);
int ctl_mounts_foreach(bool encore_only, ctl_mount_fn fn, void *arg);

/* Makes path absolute (relative to cwd) and removes "", "." and ".."
 * components lexically, without touching the file system (so it works when
 * a stat on the mount would fail). Returns 0 or -ENAMETOOLONG. */
int ctl_path_normalize(const char *path, const char *cwd, char *out, size_t len);

/* Finds the control socket for path (NULL: the current directory, or else
 * the only encore mount). ENCORE_SOCKET overrides. Copies it to out.
 * The mount is the one whose st_dev the path has; if stat fails (a server
 * being down can make it fail with EIO), the mount whose mount point is the
 * longest prefix of the normalised path.
 * Returns 0, or a negative errno after printing what is wrong (-ENOENT: not
 * an encore file system, no mount or several; -ENAMETOOLONG) and what to do. */
int ctl_find_socket(const char *path, char *out, size_t len);

/* Sends req (a JSON object; borrowed) as MSG_CTL over the Unix socket sock
 * and waits up to timeout_ms for the reply. On 0, *reply is the reply object
 * (a new reference: json_object_put it), whether "ok" is true or not.
 * Returns 0 or -errno (connection, timeout, -EPROTO for a malformed reply). */
int ctl_call(const char *sock, json_object *req, int timeout_ms, json_object **reply);

/* What most subcommands do: find the socket for path (see ctl_find_socket),
 * call op with req (borrowed; "op" is set on it), and check "ok". On
 * CLI_OK, *reply is the reply object (json_object_put it). Otherwise prints
 * the error, prefixed with cmd, and returns CLI_FAIL. */
int ctl_request(const char *cmd, const char *path, const char *op, json_object *req,
		json_object **reply);

/* An inode number (the "ino" request field) as a new JSON integer: int64,
 * or uint64 when it does not fit. */
json_object *ctl_ino_json(ino_t ino);

/* Opens path with O_PATH (follow: through a final symlink) and fstats it
 * into *st: the fd (close it after the control call) holds the inode in
 * the kernel, so that it is not forgotten, and thus unknown to the client,
 * between the stat and the call that names it by its inode number (a
 * callback break drops the kernel's names). -errno on failure. */
int ctl_hold_path(const char *path, bool follow, struct stat *st);

/* Prints a servers[{id, addr, state, rtt_us}] reply array to stdout as a
 * tab-separated table with a header line. Borrows servers (may be NULL). */
void ctl_print_servers(json_object *servers);

/* Prints a list of servers (ids, or objects with an "id") joined with
 * commas to stdout, or "-" if arr is empty, missing or not an array. */
void ctl_print_ids(json_object *arr);

/* Prints a volumes[{id, name, state, vsg[], avsg[]}] reply array to stdout
 * as a tab-separated table with a header line. A volume without "vsg"
 * shows its "servers" (older clients); missing fields show as "-".
 * Borrows vols (may be NULL). */
void ctl_print_volumes(json_object *vols);

/* Timeout for control calls: check-servers probes servers that may be
 * down, which the client bounds by its own connect timeout (a few seconds). */
#define CTL_TIMEOUT_MS 30000

#endif /* CLI_CTL_CLIENT_H */
