/*
 * pg_wal.h — PostgreSQL's WAL archive in the repository: what
 * `archive-push` (archive_command) and `archive-get` (restore_command) do.
 *
 * Each archived file (a WAL segment, a timeline history file, a backup
 * history file, a .partial segment) is one encrypted object of its own,
 *
 *     wal/<timeline>/<file name>-<first 16 bytes of its blob ID, hex>
 *
 * holding the zstd-compressed bytes.  Not deduplicated into packs: a
 * segment is never stored twice anyway, and one object per segment makes
 * "is it archived?" a single stat, retention a delete by name, and
 * replay a single get.  The keyed content ID in the name lets a second
 * push of the same segment be recognised (identical: success) or refused
 * (different content: PostgreSQL would otherwise lose the first one)
 * without downloading anything.
 *
 * Speed.  Every opsbackup process pays one key derivation (about a second)
 * to open a repository, which PostgreSQL would otherwise pay once per
 * 16 MiB segment.  So:
 * - push: one call also pushes, in parallel, the other segments already
 *   waiting in pg_wal/archive_status (*.ready), and leaves a marker for
 *   each in pg_wal/opsbackup.push/ (the SHA-256 of what it stored).  When
 *   PostgreSQL then asks for one of those, the marker answers at once,
 *   without opening the repository.
 * - get: after serving a segment, a detached child keeps the open
 *   repository and fetches the next segments into pg_wal/opsbackup.get/,
 *   verified, so the following calls are a rename.
 * The spool directories live in pg_wal, which no base backup copies.
 *
 * Ownership: repositories stay the caller's; returned strings are the
 * caller's to free.
 */
#ifndef OB_PG_WAL_H
#define OB_PG_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "repo/repo.h"
#include "repo/snapshot.h"

/* Is name something PostgreSQL archives (segment, .partial, .history,
 * .backup)?  Anything else is refused: it becomes part of an object name. */
int pg_wal_name_valid(const char *name);
/* A plain 24-hex-digit segment name? */
int pg_wal_is_segment(const char *name);
/* The segment after `name` for segments of segsize bytes (out: 25 bytes). */
void pg_wal_next_segment(const char *name, uint64_t segsize, char out[25]);
/* Segment name holding LSN on timeline tli (out: 25 bytes). */
void pg_wal_segment_of(uint32_t tli, uint64_t lsn, uint64_t segsize, char out[25]);

/* Remove pg_wal_dir/opsbackup.get, archive-get's spool, once recovery has
 * ended: segments fetched ahead of a PITR target (up to the prefetch
 * count) and the last one delivered are never asked for again.  A
 * prefetch still running finds its directory gone and stops.  Returns -1
 * (errno set) only when the directory could not be removed. */
int pg_wal_spool_clear(const char *pg_wal_dir);

/* Store one archived file in one repository.  *already is set when an
 * identical copy was there.  A different copy is OB_EEXIST. */
int pg_wal_push(repo *r, const char *name, const uint8_t *data, size_t len, int *already,
                ob_err *err);
/* Fetch, authenticate, decompress and check one archived file.
 * OB_ENOTFOUND if it is not archived. */
int pg_wal_get(repo *r, const char *name, ob_buf *out, ob_err *err);
/* Is name archived (one listing, no download)? */
int pg_wal_exists(repo *r, const char *name, int *exists, ob_err *err);

/* How many of the segments start..stop (one timeline, segsize bytes each)
 * are not in r's archive, and the first of them (first_missing, when
 * *missing > 0).  One listing of the timeline's directory. */
int pg_wal_range_missing(repo *r, const char *start, const char *stop, uint64_t segsize,
                         uint64_t *missing, char first_missing[25], ob_err *err);

/* A physical snapshot's WAL range (extra.start_wal .. stop_wal, one
 * timeline, start first) and segment size (a power of two, 1 MiB to 1 GiB),
 * pointing into s->extra; -1 if s does not say, or says nonsense. */
int pg_wal_snapshot_range(const snapshot *s, const char **start, const char **stop,
                          uint64_t *segsize);

/* The newest (highest) segment name archived on timeline tli, "" if none.
 * One listing of the timeline's directory. */
int pg_wal_newest_segment(repo *r, uint32_t tli, char newest[25], ob_err *err);

typedef struct pg_wal_push_opts {
    int batch;        /* also push up to this many other .ready files (0: none) */
    int nthreads;     /* parallel pushes; 0: one per CPU */
    int quiet;
} pg_wal_push_opts;

/* archive-push PATH: PATH as PostgreSQL passes %p (relative to the data
 * directory, which is the working directory).  Durable in every one of
 * the nrepos repositories before it returns 0.  open_repos is called
 * only when the repositories are really needed (not when a marker
 * answers); it fills repos[] and returns how many, or -1. */
typedef int (*pg_wal_open_fn)(void *ud, repo ***repos, size_t *nrepos, ob_err *err);
int pg_wal_archive_push(const char *path, const pg_wal_push_opts *o, pg_wal_open_fn open_repos,
                        void *open_ud, ob_err *err);

typedef struct pg_wal_get_opts {
    int prefetch;     /* segments to fetch ahead (0: none) */
} pg_wal_get_opts;

/* archive-get NAME DEST.  Repositories are tried in order; the first
 * that has the file serves it.  OB_ENOTFOUND if none has it. */
int pg_wal_archive_get(const char *name, const char *dest, const pg_wal_get_opts *o,
                       pg_wal_open_fn open_repos, void *open_ud, ob_err *err);

/* WAL retention: remove archived segments (and .partial / .backup files)
 * whose segment number, on any timeline, is below keep_from (the first
 * segment of the oldest kept physical backup; segments of segsize bytes).
 * Timeline history files are always kept (they are tiny and every later
 * timeline's recovery reads them).  *removed / *bytes count what was (or,
 * with dry_run, would be) removed. */
int pg_wal_expire(repo *r, uint64_t keep_from, uint64_t segsize, int dry_run, uint64_t *removed,
                  uint64_t *bytes, ob_err *err);
/* Segment number of a segment-like name (its first 24 hex digits). */
uint64_t pg_wal_segno(const char *name, uint64_t segsize);

/* Copy every archived file dst lacks (by file name) from src. */
int pg_wal_copy(repo *src, repo *dst, uint64_t *copied, ob_err *err);

/* check: every object under wal/ has a well-formed name; with read_data
 * each is read, authenticated, decompressed and matched against its
 * content ID; every physical snapshot's WAL range (start_wal to stop_wal)
 * is in the archive.  Problems go to report (severity 0 error, 1
 * warning). */
typedef void (*pg_wal_report_fn)(int severity, const char *msg, void *ud);
typedef struct pg_wal_check_result {
    uint64_t files, files_read, errors, warnings;
} pg_wal_check_result;
struct check_result;
/* affected (may be NULL): snapshots that cannot be restored are added
 * (check_result_affected), with wal_missing set. */
int pg_wal_check(repo *r, int read_data, pg_wal_report_fn report, void *ud,
                 struct check_result *affected, pg_wal_check_result *res, ob_err *err);

#endif
