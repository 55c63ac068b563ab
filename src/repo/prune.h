/*
 * prune.h — remove data no snapshot references: mark and sweep.
 *
 * Mark: every blob reachable from every snapshot (its trees, walked once
 * each however many snapshots share them, and the data chunks their files
 * name) goes into a set of 32-byte IDs.  Sweep, per pack of the index:
 * a pack with no used blob is deleted; a pack whose unused share exceeds
 * max_unused_pct is repacked (its used blobs are copied into new packs
 * through the repository writer, then it is deleted); other packs stay as
 * they are.  Packs in no index file (left by killed writers) are deleted,
 * and so are storage temporaries older than tmp_max_age.
 *
 * Crash safety comes from the order of the steps (docs/DECISIONS.md D21):
 *   1. new index files for the packs that stay (their entries unchanged),
 *   2. new packs with the repacked blobs, and the writer's index for them,
 *   3. only then the old index files (exactly those this prune read),
 *   4. only then the old packs.
 * At every point between two steps each blob any snapshot needs is in a
 * stored pack named by a stored index file; what a crash leaves over is
 * duplicate index entries (harmless) or packs in no index (garbage that
 * the next prune removes).  So a killed prune leaves a repository that
 * passes `check`, and running prune again finishes the job.
 *
 * Concurrency: the caller holds the lock.  With an exclusive lock nobody
 * else writes, and everything unused is removed.  With only a shared lock
 * (a backup holds a lease) the caller sets `deferred`: a running backup may
 * reference any blob that was in the index when it started (deduplication
 * finds unused blobs too) and blobs in packs it has not indexed yet, so no
 * pack and no index file is deleted; prune only reports what it would free
 * and removes old temporaries.  The next prune without other leases frees
 * the space.
 *
 * Memory: the loaded index (52 B per blob) plus the mark set (about 48 B
 * per used blob), plus the kept packs' entries re-encoded in batches of
 * PRUNE_INDEX_BATCH blobs.
 *
 * Ownership: prune borrows the repo and replaces its in-memory index (it
 * loads the index files itself, to know exactly which ones it supersedes).
 */
#ifndef OB_PRUNE_H
#define OB_PRUNE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "repo/repo.h"

struct repo_lock;

#define PRUNE_MAX_UNUSED_DEFAULT 10.0
/* Temporaries younger than this may belong to a put still running.  Twice
 * the lock stale time: a writer stalled that long has lost its lease. */
#define PRUNE_TMP_MAX_AGE (2 * 1800)
/* Blobs per new index file written for the packs that stay. */
#define PRUNE_INDEX_BATCH 200000

typedef struct prune_opts {
    int dry_run;               /* compute and report only; change nothing */
    int deferred;              /* other writers hold leases: delete no pack or index */
    double max_unused_pct;     /* repack a pack whose unused share is above this */
    int64_t tmp_max_age;       /* seconds; < 0: do not remove temporaries */
    struct repo_lock *lock;    /* if set, checked before anything is deleted */
    const char *const *ignore; /* snapshot IDs to treat as already removed (forget
                                * --dry-run --prune); NULL-terminated, may be NULL */
    void (*progress)(const char *msg, void *ud); /* one line per phase, may be NULL */
    void *progress_ud;
} prune_opts;

typedef struct prune_stats {
    uint64_t snapshots, trees;             /* marked from */
    uint64_t blobs_total, blobs_used;      /* index entries, used blobs */
    uint64_t packs_total, bytes_total;     /* packs in storage and their size */
    uint64_t packs_deleted, bytes_deleted; /* packs with no used blob */
    uint64_t packs_repacked, bytes_repacked; /* old packs repacked (their size) */
    uint64_t blobs_repacked;               /* used blobs copied */
    uint64_t packs_written, bytes_written; /* new packs */
    uint64_t packs_unindexed, bytes_unindexed; /* packs in no index file */
    uint64_t packs_missing;                /* in the index, not in storage (dropped) */
    uint64_t index_old, index_new;         /* index files read / written */
    uint64_t tmp_removed, tmp_bytes;       /* stale temporaries removed */
    uint64_t bytes_unused_kept;            /* unused bytes left in packs that stay */
    int64_t bytes_freed;                   /* net: deleted + repacked + unindexed
                                            * + temporaries − new packs (planned
                                            * amount under dry_run/deferred) */
    int deferred;                          /* deletions were deferred */
} prune_stats;

int repo_prune(repo *r, const prune_opts *o, prune_stats *st, ob_err *err);

/* WAL files are objects of their own under wal/<timeline>/
 * (src/sources/pg_wal.h), not blobs in packs, so prune neither marks nor
 * deletes them: `forget` expires them by name from the kept db-physical
 * snapshots (pg_wal_expire). */

#endif
