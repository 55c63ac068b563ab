/*
 * copy.h — copying snapshots from one repository to another (3-2-1).
 *
 * The two repositories may have different passwords and different master
 * keys.  Blob IDs are keyed MACs, so the same bytes have different IDs in
 * unrelated repositories: every blob is read from the source, its ID in
 * the destination computed, and only blobs the destination lacks are
 * written; trees are rewritten with the destination's IDs.  When both
 * repositories share their MAC key (the IDs agree), a chunk the
 * destination already has is not even read.
 *
 * A copied snapshot keeps its time, kind, set, host, paths, tags, stats
 * and extra, and records where it came from in extra.copied_from
 * {"repository": ID, "snapshot": ID}, which is how a second copy run
 * knows it has nothing to do.
 *
 * Ownership: a copier borrows both repositories and a writer on the
 * destination (the caller flushes it; snapshots are saved only after
 * their data is flushed, see repo_copier_commit).
 */
#ifndef OB_COPY_H
#define OB_COPY_H

#include <stdint.h>

#include "core/err.h"
#include "repo/repo.h"
#include "repo/snapshot.h"
#include "repo/writer.h"

typedef struct repo_copier repo_copier;

typedef struct repo_copy_stats {
    uint64_t snapshots, already, blobs_read, trees_rewritten;
} repo_copy_stats;

repo_copier *repo_copier_new(repo *src, repo *dst, repo_writer *w);
void repo_copier_free(repo_copier *c);

/* Is s (a source snapshot) already in the destination?  dst_snaps is the
 * destination's snapshot list. */
int repo_copy_already(const repo_copier *c, const snapshot *s, snapshot **dst_snaps, size_t n);
/* The same, returning the destination's snapshot that is s there (one of
 * dst_snaps, borrowed), or NULL. */
const snapshot *repo_copy_find(const repo_copier *c, const snapshot *s, snapshot **dst_snaps,
                               size_t n);

/* Copy the data and trees of s; *out is the destination's snapshot,
 * not yet saved (save it after repo_writer_flush). */
int repo_copier_copy(repo_copier *c, const snapshot *s, snapshot **out, ob_err *err);

void repo_copier_stats(const repo_copier *c, repo_copy_stats *out);

#endif
