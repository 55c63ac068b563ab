/*
 * repair.h — `repair index`: rebuild the index from the packs alone.
 *
 * Every pack carries an encrypted, authenticated directory of its blobs
 * (pack.h), so the index is redundant and can be rebuilt when index files
 * are lost or damaged, or when they still name a pack that is gone.  Repair
 * reads every pack in full, opens its directory and then every blob in it
 * (decrypted, decompressed, keyed ID recomputed): only blobs that
 * authenticate go into the new index.  A pack whose directory is damaged
 * is salvaged through the old index entries for it, when a readable old
 * index file has them (each entry is verified the same way); otherwise it
 * is reported and left out.  Index entries for packs that are no longer
 * stored are dropped: that is how a lost pack's blobs leave the index, so
 * `check` then names exactly the files that lost data.
 *
 * Crash safety, in the same order as prune (docs/DECISIONS.md D21):
 *   1. read every pack, deciding what the new index holds;
 *   2. write the new index files, each as soon as it is full (each put is
 *      durable before it returns), so only one is held in memory;
 *   3. only after the last one, delete the old index files this repair
 *      listed — except a new file that happens to have the same name
 *      (identical content).
 * A crash before 3 leaves old and new index files side by side (duplicate
 * entries are harmless: FORMAT.md §11); a crash during 3 leaves the new
 * index complete.  Running repair again finishes the job.
 *
 * A storage error (as opposed to damage) while reading a pack stops the
 * repair before anything is deleted: a pack that could not be read this
 * time must not lose its index entries.  New index files already written
 * stay beside the old ones (the message says so).
 *
 * Concurrency: the caller holds the exclusive lock (no backup may add
 * index files while the old ones are being replaced).
 *
 * Memory: one pack at a time, the old index (52 B per blob) and one new
 * index file being filled (REPAIR_INDEX_BATCH blobs).
 *
 * Ownership: repair borrows the repo and drops its in-memory index
 * (repo_set_index(r, NULL)) so later reads load the new one.
 */
#ifndef OB_REPAIR_H
#define OB_REPAIR_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "repo/repo.h"

struct repo_lock;

/* Blobs per new index file. */
#define REPAIR_INDEX_BATCH 200000

typedef struct repair_opts {
    int dry_run;               /* read and decide; write and delete nothing */
    struct repo_lock *lock;    /* if set, checked before anything is deleted */
    /* One line per problem found (a damaged pack, a blob that does not
     * authenticate, a damaged old index file), naming the object; may be
     * NULL. */
    void (*report)(const char *msg, void *ud);
    void *ud;
} repair_opts;

typedef struct repair_stats {
    uint64_t packs;                  /* packs in storage */
    uint64_t packs_ok;               /* every blob authenticated */
    uint64_t packs_salvaged;         /* directory damaged: blobs taken from the old index */
    uint64_t packs_damaged;          /* some or all blobs lost */
    uint64_t packs_unindexed;        /* in no readable old index file (now indexed) */
    uint64_t packs_missing;          /* named by the old index, not stored (dropped) */
    uint64_t blobs;                  /* entries in the new index */
    uint64_t blobs_bad;              /* blobs that failed authentication (left out) */
    uint64_t entries_dropped;        /* old index entries whose pack is not stored */
    uint64_t index_old;              /* old index files listed */
    uint64_t index_old_damaged;      /* of those, unreadable */
    uint64_t index_new;              /* new index files written (planned under dry_run) */
    uint64_t index_deleted;          /* old index files deleted */
    uint64_t bytes_read;
} repair_stats;

int repo_repair_index(repo *r, const repair_opts *o, repair_stats *st, ob_err *err);

#endif
