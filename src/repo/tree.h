/*
 * tree.h — directory listings as stored in the repository.
 *
 * A tree is one directory's entries, sorted by raw name bytes, serialized
 * canonically (the same entries always give the same bytes, so an unchanged
 * directory deduplicates like any other blob).  Names are raw bytes: they may
 * be invalid UTF-8 or contain newlines, but never '/' or NUL, and are never
 * "" "." or "..".  The byte layout is specified in docs/FORMAT.md.
 *
 * Ownership: a tree owns its nodes; a node owns every pointer in it (name,
 * user, group, link target, xattrs, extents).  tree_free releases all.
 */
#ifndef OB_TREE_H
#define OB_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

#define TREE_ID_LEN 32

/* How deep directories may nest in a snapshot: the root tree is level 0, a
 * directory node in it leads to a tree at level 1, and no tree may be below
 * level TREE_MAX_DEPTH (docs/FORMAT.md §12.6, D59).  Every reader that walks
 * trees refuses deeper ones.  Why a limit at all: trees come from the
 * repository, which may be damaged or hostile, and a walker that recursed
 * (or a restore that keeps one directory descriptor open per level) could
 * otherwise be driven to a stack overflow or out of descriptors.  512 is
 * far above any real file system's nesting, and a restore at that depth
 * stays well inside the default limit of 1024 open files.  A backup leaves
 * out directories below it, with a warning (files_backup.c). */
#define TREE_MAX_DEPTH 512

enum tree_node_type {
    TREE_FILE = 1,
    TREE_DIR = 2,
    TREE_SYMLINK = 3,
    TREE_FIFO = 4,
    TREE_CHARDEV = 5,
    TREE_BLOCKDEV = 6,
    TREE_SOCKET = 7,
};

typedef struct tree_xattr {
    char *name;         /* NUL-terminated, e.g. "user.comment" */
    uint8_t *value;     /* may contain NULs */
    size_t value_len;
} tree_xattr;

/* A file's data: bytes [skip, skip + len) of chunk `id`'s plaintext are the
 * file's bytes [offset, offset + len).  Extents are in increasing offset
 * order and do not overlap; gaps between them (and between the last extent
 * and `size`) are holes.  skip is 0, and len the whole chunk, except in
 * version 2 trees, where an extent may be a slice of a larger chunk (a
 * physical backup's 1 MiB super block, of which an incremental keeps the
 * 32 KiB blocks that did not change: docs/FORMAT.md 12.2, DECISIONS D64).
 * Readers check skip + len against the chunk's length. */
typedef struct tree_extent {
    uint64_t offset;
    uint32_t len;
    uint32_t skip;
    uint8_t id[TREE_ID_LEN];
} tree_extent;

typedef struct tree_node {
    uint8_t *name;          /* raw bytes, name_len long, also NUL-terminated */
    size_t name_len;
    uint8_t type;           /* enum tree_node_type */
    uint32_t mode;          /* permission bits incl. setuid/setgid/sticky (07777) */
    uint32_t uid, gid;
    char *user, *group;     /* owner names at backup time; NULL if unknown */
    int64_t mtime_sec;  uint32_t mtime_nsec;
    int64_t atime_sec;  uint32_t atime_nsec;
    int64_t ctime_sec;  uint32_t ctime_nsec;   /* change detection only */
    uint64_t dev, inode;    /* change detection and hard links */
    uint32_t nlink;
    uint64_t size;          /* files: logical size; symlinks: target length */
    uint64_t rdev;          /* char/block devices */
    uint8_t *link_target;   /* symlinks: raw bytes, NUL-terminated */
    size_t link_len;
    tree_xattr *xattrs;     /* sorted by name */
    size_t nxattrs;
    tree_extent *extents;   /* regular files */
    size_t nextents;
    uint8_t subtree[TREE_ID_LEN]; /* directories: ID of the child tree blob */
} tree_node;

/* version: the format version the tree is encoded in, 1 ("OBT1") or 2
 * ("OBT2", whose extents carry skip).  tree_init sets 1, tree_decode what
 * it read; tree_encode writes 2 if version is 2 or any extent has a skip,
 * so decoding and encoding again gives the same bytes. */
typedef struct tree {
    tree_node *nodes;
    size_t n, cap;
    int version;
} tree;

void tree_init(tree *t);
void tree_free(tree *t);
/* Append a zeroed node owned by t; the pointer is valid until the next add. */
tree_node *tree_add(tree *t);
void tree_node_free(tree_node *n); /* releases what the node owns, not the node */
/* Set name from raw bytes (copied). */
void tree_node_set_name(tree_node *n, const void *name, size_t len);
/* Sort nodes by name bytes (memcmp order, shorter first on a tie). */
void tree_sort(tree *t);
/* Find a node by name (tree must be sorted); NULL if absent. */
tree_node *tree_find(const tree *t, const void *name, size_t len);

/* Serialize (tree must be sorted).  Appends to out. */
void tree_encode(const tree *t, ob_buf *out);
/* Parse and validate untrusted bytes.  Fails with OB_ECORRUPT on bad
 * layout, and with OB_EUNSAFE on a name that is empty, ".", "..", or
 * contains '/' or NUL, on duplicate or unsorted names, on unknown types,
 * or on extents that overlap or run past size.  On failure *out is left
 * empty (initialized). */
int tree_decode(const uint8_t *data, size_t len, tree *out, ob_err *err);

/* The bytes extent e stands for, inside chunk (its chunk's plaintext,
 * chunk_len bytes), or NULL if the extent does not fit in it: a damaged
 * tree or the wrong chunk.  Every reader of file contents goes through
 * this check (tree_decode cannot make it: it does not know the chunk). */
const uint8_t *tree_extent_bytes(const tree_extent *e, const uint8_t *chunk, size_t chunk_len);
/* Does extent e fit in a chunk of chunk_len bytes (skip + len <= it)?  The
 * same rule, for a reader that knows only the length (check, verify). */
int tree_extent_fits(const tree_extent *e, uint64_t chunk_len);

/* Is this a safe single path component? (the rule tree_decode enforces) */
int tree_name_is_safe(const uint8_t *name, size_t len);

#endif
