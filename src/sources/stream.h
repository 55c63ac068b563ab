/*
 * stream.h — chunking a byte stream into the repository, and writing a
 * stored stream back out.
 *
 * Used for file contents (pread over a data region), database dumps
 * (pg_dump's stdout) and anything else that arrives as bytes.  The result
 * is a list of extents appended to a tree node, exactly as for a file, so
 * a dump is stored, listed, checked and deduplicated like any file.
 */
#ifndef OB_STREAM_H
#define OB_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "repo/chunker.h"
#include "repo/repo.h"
#include "repo/tree.h"
#include "repo/writer.h"

/* Read up to len bytes; return the count, 0 at end of stream, -1 with
 * errno set on error. */
typedef ssize_t (*stream_read_fn)(void *ud, uint8_t *buf, size_t len);

typedef struct stream_sink {
    repo_writer *w;
    const chunker *ck;
    uint8_t *buf;        /* caller's scratch buffer, >= 2 * max chunk size */
    size_t buf_cap;
    void (*tick)(void *ud, uint64_t bytes); /* optional, after each chunk */
    void *tick_ud;
} stream_sink;

/* Append a zeroed extent to n, whose extents array has room for *cap. */
tree_extent *stream_extent_push(tree_node *n, size_t *cap);

/* Chunk everything rd yields into data blobs, appending extents to n
 * starting at file offset `start`.  *ext_cap tracks n->extents' capacity
 * (0 for a node without extents).  *consumed receives the bytes read.
 * Read errors are returned with errno text; `what` names the source. */
int stream_store(const stream_sink *s, stream_read_fn rd, void *rd_ud, const char *what,
                 uint64_t start, tree_node *n, size_t *ext_cap, uint64_t *consumed, ob_err *err);

/* Hand a stored node's contents to fn in order (holes as zeros), every
 * chunk verified.  fn returns 0 to go on, 1 to stop early (stream_each
 * then returns 0), -1 with err set to fail. */
typedef int (*stream_each_fn)(void *ud, const uint8_t *p, size_t len, ob_err *err);
int stream_each(repo *r, const tree_node *n, stream_each_fn fn, void *ud, uint64_t *done,
                ob_err *err);

/* Write a stored node's contents to fd sequentially (holes as zeros),
 * verifying every chunk.  EPIPE from a reader that stopped is an error. */
int stream_restore(repo *r, const tree_node *n, int fd, const char *what, uint64_t *written,
                   ob_err *err);
/* stream_restore that asks stop(stop_ud) before each write (a chunk, or a
 * piece of a hole) and fails ("interrupted") once it answers non-zero: a
 * copy of gigabytes that a signal must be able to end.  A read from the
 * repository in progress is not cut short. */
int stream_restore_stoppable(repo *r, const tree_node *n, int fd, const char *what,
                             int (*stop)(void *ud), void *stop_ud, uint64_t *written,
                             ob_err *err);

/* A stream_read_fn over a plain file descriptor (pipes). */
ssize_t stream_read_fd(void *fdp, uint8_t *buf, size_t len);

#endif
