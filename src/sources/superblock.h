/*
 * superblock.h — storing a file as "super blocks" whose unchanged parts a
 * later backup keeps by reference (physical PostgreSQL backups, D64).
 *
 * A relation file compresses best in large units (1 MiB stores what the
 * whole file stores; 32 KiB blocks 14 % more: bench/results.md), but an
 * incremental backup should store only the 32 KiB blocks that changed.  So
 * a file is cut at fixed super-block boundaries (absolute offsets, multiples
 * of super_size).  A super block with nothing to compare against, or whose
 * exact bytes are already stored, is one chunk.  Otherwise it is compared
 * with the parent snapshot's version of the file, block by block
 * (block_size): a block whose bytes equal the parent's at the same offset
 * becomes a slice of the parent's chunk (an extent with a skip, a version 2
 * tree), and each run of changed blocks is stored as one chunk.  A parent
 * chunk is kept only for at least a quarter of its bytes (a slice keeps
 * the whole chunk stored), and when less than a quarter of the super block
 * is kept it is stored whole instead: a few kept blocks are not worth a
 * fragmented file.
 *
 * Where the parent stored bytes as a chunk of their own (a super block
 * whole, or a run that changed), their keyed ID decides without reading
 * anything.  Slices of a parent chunk are compared byte for byte with it,
 * read back from the repository once per super block (a few chunks are
 * kept).  So an incremental reads, for each super block of a changed file
 * that an earlier incremental left in slices, the one chunk the slices
 * come from, also when nothing in it changed: the price of keeping nothing
 * about blocks beyond the tree's extents (D64).
 *
 * Ownership: superblock_new's object holds a super_size buffer and the last
 * parent chunk read; it borrows the repo and the writer, and is used by one
 * thread.
 */
#ifndef OB_SUPERBLOCK_H
#define OB_SUPERBLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "repo/repo.h"
#include "repo/tree.h"
#include "repo/writer.h"
#include "sources/stream.h"

typedef struct superblock superblock;

/* super_size a multiple of block_size, both > 0. */
superblock *superblock_new(repo *r, repo_writer *w, size_t super_size, size_t block_size);
void superblock_free(superblock *sb);

/* Parent chunks read back so far (for tests: an unchanged super block
 * costs none, a changed one at most one per parent chunk it uses). */
uint64_t superblock_parent_reads(const superblock *sb);

/* Store the bytes rd yields, which are the file's bytes from offset start
 * on, up to end or the end of the stream, appending extents to n (*ext_cap
 * as for stream_store).  parent: the same file in the parent snapshot, or
 * NULL.  tick (optional) is called with the bytes of each super block
 * done.  *consumed receives the bytes read.  An error reading (rd failing)
 * says "reading WHAT at offset N" with errno's text. */
int superblock_store(superblock *sb, const tree_node *parent, stream_read_fn rd, void *rd_ud,
                     const char *what, uint64_t start, uint64_t end, tree_node *n,
                     size_t *ext_cap, void (*tick)(void *ud, uint64_t bytes), void *tick_ud,
                     uint64_t *consumed, ob_err *err);

#endif
