/*
 * writer.h — the parallel blob pipeline: dedup, compress, encrypt, pack,
 * upload, index.
 *
 * The caller (a source: file walker, dump reader) chunks its data and calls
 * repo_writer_add for each chunk.  The blob ID (a keyed MAC) is computed
 * right there, in the caller's thread, so the caller can build its tree
 * immediately; compression, encryption and uploads happen on worker
 * threads.  The queue between them is bounded in bytes, so memory stays
 * bounded however large the input is: the caller blocks when workers fall
 * behind.
 *
 * Durability contract: after repo_writer_flush returns 0, every blob added
 * is in a pack that is durably stored and in an index file that is durably
 * stored.  Only then may a snapshot referencing them be written.  Index
 * files are also written every few packs during long backups, so a crash
 * loses at most those last packs' index entries (the packs themselves stay
 * as unreferenced data for prune).
 *
 * Errors on workers are sticky: the next add or flush returns the first one.
 *
 * Lease: a writer given the caller's repository lock (repo_writer_set_lock)
 * asks it right before storing each pack and writing each index file, and
 * once the lease is lost it fails (OB_ELOCKED) and stores nothing more.  A
 * writer that published an index file after its lease ran out could name
 * packs a prune has just deleted as unindexed, and later backups would
 * deduplicate against them (D79).
 *
 * Ownership: the writer borrows the repo (which must outlive it) and the
 * lock (which must outlive it too: release the lock after
 * repo_writer_free), and copies the data passed to add.
 */
#ifndef OB_WRITER_H
#define OB_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "repo/lock.h"
#include "repo/repo.h"

typedef struct repo_writer repo_writer;

typedef struct repo_writer_stats {
    uint64_t blobs_added;   /* new blobs stored */
    uint64_t bytes_added;   /* their plaintext bytes */
    uint64_t bytes_stored;  /* what they take in packs (compressed, encrypted) */
    uint64_t blobs_seen;    /* every add, including duplicates */
    uint64_t bytes_seen;
    uint64_t packs;         /* packs written */
} repo_writer_stats;

/* nthreads <= 0 means one per online CPU.  New blobs are compressed at the
 * repository's level. */
int repo_writer_new(repo *r, int nthreads, repo_writer **out, ob_err *err);
/* The same, compressing new blobs at zstd `level` instead (a source whose
 * compression races its producer, D65).  The level is not recorded: any
 * reader decompresses any level. */
int repo_writer_new_level(repo *r, int nthreads, int level, repo_writer **out, ob_err *err);

/* Work under the lease of `lock` (borrowed; NULL: none, as in tests that
 * hold no lock).  Call it before the first add: every command that holds
 * a lock of the repository passes it here. */
void repo_writer_set_lock(repo_writer *w, repo_lock *lock);

/* Store a blob unless the repository already has one with the same ID.
 * id receives the blob ID; *added (may be NULL) is set to 1 if the blob
 * is new.  May block while the queue is full. */
int repo_writer_add(repo_writer *w, int type, const void *data, size_t len,
                    uint8_t id[OB_ID_LEN], int *added, ob_err *err);

/* Does the repository (or this writer) already have this blob? */
int repo_writer_has(repo_writer *w, const uint8_t id[OB_ID_LEN]);

/* Wait for all blobs, seal and store the last pack, write the index. */
int repo_writer_flush(repo_writer *w, ob_err *err);

void repo_writer_get_stats(repo_writer *w, repo_writer_stats *out);

/* The index files this writer has written ("index/<hex>"), so prune can
 * tell its own new index files from another process's.  The array is the
 * writer's, valid until its next add, flush or free. */
const char *const *repo_writer_index_names(repo_writer *w, size_t *n);

/* Stop the workers and free.  Work not flushed is abandoned (its packs may
 * remain as unreferenced data; nothing references them). */
void repo_writer_free(repo_writer *w);

#endif
