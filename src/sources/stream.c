#include "sources/stream.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

ssize_t stream_read_fd(void *fdp, uint8_t *buf, size_t len)
{
    int fd = *(int *)fdp;
    for (;;) {
        ssize_t k = read(fd, buf, len);
        if (k < 0 && errno == EINTR)
            continue;
        return k;
    }
}

tree_extent *stream_extent_push(tree_node *n, size_t *cap)
{
    if (n->nextents == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        n->extents = ob_xrealloc(n->extents, *cap * sizeof *n->extents);
    }
    tree_extent *e = &n->extents[n->nextents++];
    memset(e, 0, sizeof *e);
    return e;
}

/* buf[head, tail) holds the bytes not yet cut into chunks.
 *
 * We read in pieces of stream_step(max) and ask the chunker after each one,
 * resuming its search where the last fruitless one stopped
 * (chunker_next_from), instead of first filling max_size bytes: a chunk
 * is cut as soon as its end has arrived, so a pipe's writer (pg_dump) and
 * we run side by side rather than taking turns, and the chunker hashes
 * each byte about once however the reads arrive.
 *
 * The buffer is 2 * max_size, but pages a read touches stay resident for
 * the whole backup: filling it on every large file held 16 MiB for files
 * where a few serve.  So before a read that would pass four steps
 * we move the bytes after the last cut to the front — when they are no
 * more than the bytes consumed since the last move, so moving costs at
 * most one copy of what was stored, and much less in practice (what is
 * left after a cut is part of the last read).  The buffer is then written
 * no further than four steps or twice the longest chunk plus a step.
 *
 * A step is a sixteenth of max_size (512 KiB for files) but no less than
 * 512 KiB: a dump's chunks are small (max_size 1 MiB), and reading its pipe
 * in 64 KiB pieces cost more CPU in wake-ups (pg_dump blocks on the full
 * pipe and is woken by every read) than the buffer it would save. */
#define STREAM_STEP_MIN ((size_t)512 * 1024)

static size_t stream_step(size_t max)
{
    size_t floor = max < STREAM_STEP_MIN ? max : STREAM_STEP_MIN;
    return max / 16 > floor ? max / 16 : floor;
}

int stream_store(const stream_sink *s, stream_read_fn rd, void *rd_ud, const char *what,
                 uint64_t start, tree_node *n, size_t *ext_cap, uint64_t *consumed, ob_err *err)
{
    size_t head = 0, tail = 0, scanned = 0;
    const size_t maxc = chunker_get_params(s->ck)->max_size;
    const size_t step = stream_step(maxc), soft = 4 * step;
    uint64_t pos = start, total = 0;
    int eof = 0;
    for (;;) {
        size_t cut = chunker_next_from(s->ck, s->buf + head, tail - head, eof, scanned);
        if (cut == 0) {
            if (eof)
                break; /* and tail == head: everything is stored */
            scanned = tail - head;
            /* Without a cut, tail - head < max_size: after a move a step
             * always fits in 2 * max_size. */
            if ((tail + step > soft && head >= tail - head) || s->buf_cap - tail < step) {
                memmove(s->buf, s->buf + head, tail - head);
                tail -= head;
                head = 0;
            }
            size_t want = s->buf_cap - tail < step ? s->buf_cap - tail : step;
            ssize_t k = rd(rd_ud, s->buf + tail, want);
            if (k < 0)
                return ob_err_errno(err, errno, "reading %s at offset %llu", what,
                                    (unsigned long long)(start + total));
            if (k == 0)
                eof = 1;
            tail += (size_t)k;
            total += (uint64_t)k;
            continue;
        }
        tree_extent *e = stream_extent_push(n, ext_cap);
        e->offset = pos;
        e->len = (uint32_t)cut;
        if (repo_writer_add(s->w, REPO_BLOB_DATA, s->buf + head, cut, e->id, NULL, err) < 0)
            return -1;
        head += cut;
        pos += cut;
        scanned = 0;
        if (s->tick)
            s->tick(s->tick_ud, cut);
    }
    *consumed = total;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n, const char *what, ob_err *err)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return ob_err_errno(err, errno, "writing %s", what);
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int stream_each(repo *r, const tree_node *n, stream_each_fn fn, void *ud, uint64_t *done,
                ob_err *err)
{
    static const uint8_t zeros[65536];
    ob_buf b = OB_BUF_INIT;
    uint64_t pos = 0;
    int rc = 0;
    for (size_t i = 0; i <= n->nextents && rc == 0; i++) {
        uint64_t next = i < n->nextents ? n->extents[i].offset : n->size;
        while (pos < next && rc == 0) { /* a hole */
            size_t k = next - pos > sizeof zeros ? sizeof zeros : (size_t)(next - pos);
            rc = fn(ud, zeros, k, err);
            pos += k;
        }
        if (i == n->nextents || rc != 0)
            break;
        const tree_extent *e = &n->extents[i];
        rc = repo_read_blob(r, e->id, REPO_BLOB_DATA, &b, err);
        const uint8_t *bytes = rc == 0 ? tree_extent_bytes(e, b.data, b.len) : NULL;
        if (rc == 0 && !bytes)
            rc = ob_err_set(err, OB_ECORRUPT, "the chunk at offset %llu is %zu bytes, shorter "
                            "than the tree says (%u from %u)", (unsigned long long)e->offset,
                            b.len, e->len, e->skip);
        if (rc == 0)
            rc = fn(ud, bytes, e->len, err);
        pos += e->len;
    }
    ob_buf_free(&b);
    if (done)
        *done = pos;
    return rc < 0 ? -1 : 0;
}

typedef struct fd_sink {
    int fd;
    const char *what;
    int (*stop)(void *ud);
    void *stop_ud;
} fd_sink;

static int fd_sink_write(void *ud, const uint8_t *p, size_t len, ob_err *err)
{
    const fd_sink *s = ud;
    if (s->stop && s->stop(s->stop_ud))
        return ob_err_set(err, OB_EFAIL, "writing %s: interrupted", s->what);
    return write_all(s->fd, p, len, s->what, err);
}

int stream_restore(repo *r, const tree_node *n, int fd, const char *what, uint64_t *written,
                   ob_err *err)
{
    return stream_restore_stoppable(r, n, fd, what, NULL, NULL, written, err);
}

int stream_restore_stoppable(repo *r, const tree_node *n, int fd, const char *what,
                             int (*stop)(void *ud), void *stop_ud, uint64_t *written,
                             ob_err *err)
{
    fd_sink s = {fd, what, stop, stop_ud};
    return stream_each(r, n, fd_sink_write, &s, written, err);
}
