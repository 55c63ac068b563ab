/*
 * check.h — verify a repository's structure, and optionally every byte.
 *
 * Structure: every index file decrypts and parses; every pack an index
 * names exists and is long enough for its blobs; every snapshot decrypts;
 * every tree of every snapshot reads, authenticates and parses; every data
 * chunk a tree references is in the index.  --read-data additionally reads
 * whole packs: the directory, then every blob decrypted, decompressed and
 * its keyed ID recomputed.  Problems are reported one by one through the
 * callback, each naming the damaged object, and counted; check does not
 * stop at the first.
 *
 * Affected snapshots: a blob is unavailable when it is not in the index,
 * when its pack is missing or too short, or (with --read-data) when it does
 * not authenticate.  Every file with an unavailable chunk and every
 * directory whose tree cannot be read is reported once, and each snapshot
 * that reaches one of them is listed in res->affected with how many it
 * reaches: those snapshots cannot be restored in full, the others can
 * (docs/RELIABILITY.md, "Corruption and repair").  Trees shared between
 * snapshots are walked once; their count of damaged entries is memoised,
 * so the attribution costs no second walk.  With --read-data the packs are
 * read before the trees are walked, so a damaged blob counts too.
 */
#ifndef OB_CHECK_H
#define OB_CHECK_H

#include <stdint.h>

#include "core/err.h"
#include "repo/repo.h"

enum { CHECK_ERROR = 0, CHECK_WARNING = 1, CHECK_INFO = 2 };

typedef void (*check_report_cb)(int severity, const char *msg, void *ud);

typedef struct check_opts {
    int read_data;          /* read packs */
    double subset_pct;      /* with read_data: percentage of packs (100 = all) */
    check_report_cb report;
    void *ud;
    /* With read_data: called after each pack read (bytes read so far, of
     * total; total 0 when reading a random subset), may be NULL. */
    void (*progress)(uint64_t bytes, uint64_t total, uint64_t packs, void *ud);
} check_opts;

/* A snapshot that cannot be restored in full. */
typedef struct check_affected {
    char id[OB_HEX_ID_LEN + 1];
    char *time;            /* RFC 3339; NULL if the snapshot object is damaged */
    char *kind;            /* NULL if the snapshot object is damaged */
    char *paths;           /* its paths joined by ", "; NULL likewise */
    uint64_t damaged;      /* files and directories below it that lost data */
    int unreadable;        /* the snapshot object or its root tree cannot be read */
    uint64_t wal_missing;  /* physical: WAL segments of its range not archived */
} check_affected;

typedef struct check_result {
    uint64_t errors, warnings;
    uint64_t index_files, packs, blobs, snapshots, trees, packs_read, blobs_read;
    check_affected *affected; /* owned: check_result_free */
    size_t naffected;
} check_result;

/* Returns 0 when the check ran (whatever it found: see res->errors), -1
 * when it could not run at all (storage unreachable).  Free res with
 * check_result_free either way. */
int repo_check(repo *r, const check_opts *o, check_result *res, ob_err *err);
void check_result_free(check_result *res);
/* The affected entry of snapshot s in res, added (with s's time, kind and
 * paths) if it has none yet: for checks outside this module (the WAL
 * archive's, sources/pg_wal.c). */
struct snapshot;
check_affected *check_result_affected(check_result *res, const struct snapshot *s);

#endif
