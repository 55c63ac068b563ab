/*
 * util.h — small system helpers: time formatting and parsing, host and
 * user names, sizes for humans.  Returned strings are heap-owned by the
 * caller.
 */
#ifndef OB_UTIL_H
#define OB_UTIL_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "core/err.h"

/* RFC 3339 in UTC with nanoseconds when non-zero: 2026-11-28T16:40:00.123456789Z */
char *ob_time_rfc3339(int64_t sec, uint32_t nsec);
/* Local-time display "2026-11-28 16:40:00" for tables. */
char *ob_time_local(int64_t sec);
/* Parse RFC 3339 ("...Z" or "+09:00") or "YYYY-MM-DD HH:MM:SS[+TZ]" (local
 * time when no zone is given).  Returns -1 on bad input. */
int ob_time_parse(const char *s, int64_t *sec, uint32_t *nsec);
void ob_time_now(int64_t *sec, uint32_t *nsec);

char *ob_hostname(void);
/* Our own executable (/proc/self/exe): the binary that is running, even
 * when PATH holds another opsbackup or none.  NULL (err set) if unknown. */
char *ob_self_exe(ob_err *err);
char *ob_username(void); /* of the effective uid; "" if unknown */

/* "1.5 GiB" style. */
char *ob_human_bytes(uint64_t n);
/* "45s", "5m03s", "2h05m", "3d4h": ages, durations, limits in messages. */
char *ob_human_duration(double seconds);

/* Parse "30d", "12h", "90m", "2w", "1y" (also combinations "1d12h"). */
int ob_parse_duration(const char *s, int64_t *seconds);

/* Where temporary files go: $TMPDIR if it is an absolute path, else /tmp
 * (a path handed to a child must not depend on its working directory). */
const char *ob_tmpdir(void);
/* An unlinked temporary file in dir, open read-write (O_CLOEXEC): nothing
 * of it is left behind whatever ends us.  O_TMPFILE where the file system
 * has it, else a file named .opsbackup-XXXXXX removed at once.  -1 with
 * errno set on failure. */
int ob_tmpfile(const char *dir);

/* mkdir -p: create path and its missing parents with mode (existing ones
 * are left as they are). */
int ob_mkdir_p(const char *path, mode_t mode, ob_err *err);

/* Owner for files written as root (restore); ignored otherwise. */
typedef struct ob_owner {
    uid_t uid;
    gid_t gid;
} ob_owner;
/* Write path whole: a temporary file beside it (mode 0600), fsync when
 * do_fsync, then rename over path.  Only ever replaces a regular file:
 * renaming over a device or symlink given as path would replace it. */
int ob_write_file_atomic(const char *path, const void *data, size_t len, int do_fsync,
                         const ob_owner *owner, ob_err *err);
/* ob_write_file_atomic's refusal alone: -1 (OB_EUSAGE) if path exists and
 * is not a regular file, for callers that rename a file over path. */
int ob_check_replaceable(const char *path, ob_err *err);

/* Whether user uid (primary group gid, plus its supplementary groups) may
 * open path for `want` (R_OK, W_OK, X_OK, or'ed): the mode bits of path
 * and search permission on every directory above it, as the kernel would
 * check them for that user (uid 0 may do anything).  ACLs are not looked
 * at.  Returns 1 yes, 0 no (*why: what is in the way, e.g. "/etc/x is
 * mode 0600, owner root"; caller frees), -1 when path cannot be examined
 * (err set). */
int ob_access_as(const char *path, uid_t uid, gid_t gid, int want, char **why, ob_err *err);

#endif
