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

/* buf[head, tail) holds unconsumed bytes.  The chunker needs max_size
 * bytes ahead of head (or the end of the stream) to place a cut, so we
 * read until that many are buffered and no further: a read of a pipe
 * returns what the writer has produced so far, and waiting to fill the
 * whole buffer would make pg_dump and us take turns instead of running
 * side by side.  When little room is left at the end we move the
 * unconsumed bytes (fewer than max_size) to the front; with a buffer of
 * 2 * max_size that happens at most once per half a max_size consumed. */
int stream_store(const stream_sink *s, stream_read_fn rd, void *rd_ud, const char *what,
                 uint64_t start, tree_node *n, size_t *ext_cap, uint64_t *consumed, ob_err *err)
{
    size_t head = 0, tail = 0;
    size_t maxc = chunker_get_params(s->ck)->max_size;
    uint64_t pos = start, total = 0;
    int eof = 0;
    for (;;) {
        while (!eof && tail - head < maxc) {
            if (s->buf_cap - tail < maxc / 2) {
                memmove(s->buf, s->buf + head, tail - head);
                tail -= head;
                head = 0;
            }
            ssize_t k = rd(rd_ud, s->buf + tail, s->buf_cap - tail);
            if (k < 0)
                return ob_err_errno(err, errno, "reading %s at offset %llu", what,
                                    (unsigned long long)(start + total));
            if (k == 0)
                eof = 1;
            tail += (size_t)k;
            total += (uint64_t)k;
        }
        if (tail == head)
            break;
        size_t cut = chunker_next(s->ck, s->buf + head, tail - head, eof);
        if (cut == 0)
            cut = tail - head; /* cannot happen with max_size bytes buffered */
        tree_extent *e = stream_extent_push(n, ext_cap);
        e->offset = pos;
        e->len = (uint32_t)cut;
        if (repo_writer_add(s->w, REPO_BLOB_DATA, s->buf + head, cut, e->id, NULL, err) < 0)
            return -1;
        head += cut;
        pos += cut;
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
} fd_sink;

static int fd_sink_write(void *ud, const uint8_t *p, size_t len, ob_err *err)
{
    const fd_sink *s = ud;
    return write_all(s->fd, p, len, s->what, err);
}

int stream_restore(repo *r, const tree_node *n, int fd, const char *what, uint64_t *written,
                   ob_err *err)
{
    fd_sink s = {fd, what};
    return stream_each(r, n, fd_sink_write, &s, written, err);
}
