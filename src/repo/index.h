/*
 * index.h — where every blob lives: blob ID -> pack, offset, length.
 *
 * Memory is the constraint (DESIGN.md: <= 64 bytes per blob resident).  An
 * entry is 52 bytes; entries loaded from index files sit in one sorted
 * array searched by binary search (no per-entry pointers, no hash slack).
 * Blobs added during this process go to a small open-addressing table so
 * lookups stay O(1) while a backup adds to it; repo_index_merge folds them
 * into the sorted array when a writer finishes.
 *
 * Thread safety: one writer at a time (repo_writer serialises its workers
 * with its own mutex).  Besides it, other threads may look up packs
 * (repo_index_pack, repo_index_pack_count) at any time: an index_pack never
 * moves once added (index.c).  Entries are not safe that way (an add may
 * rebuild a table): during a backup only its main thread adds them, and
 * the workers look them up under the writer's mutex, which the main thread
 * holds to add.  Readers (restore, check) use a fully loaded index
 * read-only.
 */
#ifndef OB_INDEX_H
#define OB_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/err.h"

typedef struct repo_index repo_index;

/* What the index knows of a pack: its ID (object name) and the salt its
 * blob keys derive from (so a ranged read needs no extra header fetch). */
typedef struct index_pack {
    uint8_t id[OB_ID_LEN];
    uint8_t salt[32];
    uint64_t end; /* where the last blob this index knows ends; 0: unknown.
                   * Not stored: a reader uses it as the pack's extent
                   * without asking the storage (repo.c, read-ahead). */
} index_pack;

typedef struct index_entry {
    uint8_t id[OB_ID_LEN];
    uint32_t pack;      /* position in the index's pack table */
    uint32_t offset;    /* of the ciphertext within the pack */
    uint32_t length;    /* ciphertext + tag */
    uint32_t raw_len;   /* plaintext length */
    uint32_t meta;      /* seq << 8 | comp << 4 | type; see INDEX_META_* */
} index_entry;

#define INDEX_META(seq, comp, type) ((uint32_t)(seq) << 8 | (uint32_t)(comp) << 4 | (uint32_t)(type))
#define INDEX_SEQ(m) ((m) >> 8)
#define INDEX_COMP(m) (((m) >> 4) & 15)
#define INDEX_TYPE(m) ((m) & 15)
#define INDEX_MAX_SEQ 0xFFFFFFu
/* pack value of an entry whose blob a writer has queued but not yet sealed */
#define INDEX_PACK_PENDING 0xFFFFFFFFu

repo_index *repo_index_new(void);
void repo_index_free(repo_index *ix);

/* Add a pack (if not present) and return its position. */
uint32_t repo_index_add_pack(repo_index *ix, const uint8_t id[OB_ID_LEN], const uint8_t salt[32]);
const index_pack *repo_index_pack(const repo_index *ix, uint32_t pos);
size_t repo_index_pack_count(const repo_index *ix);
/* Position of a pack by ID; -1 if unknown. */
int64_t repo_index_find_pack(const repo_index *ix, const uint8_t id[OB_ID_LEN]);

/* Add an entry (e->pack must be a valid pack position, or
 * INDEX_PACK_PENDING). */
void repo_index_add(repo_index *ix, const index_entry *e);
/* Record that pack pos holds bytes up to end (index_pack.end). */
void repo_index_pack_extend(repo_index *ix, uint32_t pos, uint64_t end);
/* Look up a blob; NULL if unknown.  The pointer is valid until the next add. */
const index_entry *repo_index_lookup(const repo_index *ix, const uint8_t id[OB_ID_LEN]);
index_entry *repo_index_lookup_mut(repo_index *ix, const uint8_t id[OB_ID_LEN]);
/* Fold recently added entries into the sorted array. */
void repo_index_merge(repo_index *ix);
size_t repo_index_count(const repo_index *ix);
/* Visit every entry (sorted ones first, then recent). Return non-zero to stop. */
void repo_index_foreach(const repo_index *ix, int (*cb)(const index_entry *e, void *ud), void *ud);

/* Index file payload (the plaintext inside an encrypted index object):
 * encode appends all of ix (a writer keeps a small index of just the packs
 * it has not yet recorded); decode adds to ix in bulk — call
 * repo_index_merge before the next lookup. */
void repo_index_encode(const repo_index *ix, ob_buf *out);
int repo_index_decode(repo_index *ix, const uint8_t *data, size_t len, ob_err *err);

#endif
