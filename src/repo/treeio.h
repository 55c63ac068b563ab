/*
 * treeio.h — loading and storing tree blobs.
 *
 * Trees are blobs like file chunks (type REPO_BLOB_TREE), so identical
 * directories in successive snapshots are stored once.
 */
#ifndef OB_TREEIO_H
#define OB_TREEIO_H

#include "repo/repo.h"
#include "repo/tree.h"
#include "repo/writer.h"

/* Read, verify and decode a tree; *out must be initialized (tree_init) and
 * is replaced.  Errors name the tree ID. */
int treeio_load(repo *r, const uint8_t id[OB_ID_LEN], tree *out, ob_err *err);

/* Sort, encode and store a tree through the writer; id receives its ID. */
int treeio_save(repo_writer *w, tree *t, uint8_t id[OB_ID_LEN], ob_err *err);

#endif
