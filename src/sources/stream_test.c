/*
 * stream_test.c — stream_store: where a stream is cut must not depend on
 * how its reads arrive, and a reader fed in small pieces (a pipe from
 * pg_dump) must not be made to wait for more than the chunker needs;
 * and a copy back out can be stopped between chunks.
 */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "repo/repo.h"
#include "repo/tree.h"
#include "repo/writer.h"
#include "sources/stream.h"
#include "storage/storage.h"

static const repo_kdf_params ST_KDF = {1024, 8, 1};

/* Run a call taking an ob_err *E; fail the test with its message. */
#define MUST(call)                                                                           \
    do {                                                                                     \
        ob_err e_ = OB_ERR_INIT;                                                             \
        ob_err *E = &e_;                                                                     \
        if ((call) != 0) {                                                                   \
            print_error("%s: %s\n", #call, ob_err_msg(&e_));                                 \
            ob_err_clear(&e_);                                                               \
            fail();                                                                          \
        }                                                                                    \
        ob_err_clear(&e_);                                                                   \
    } while (0)

typedef struct st_fx {
    char *dir;
    storage *st;
    repo *r;
} st_fx;

static int st_rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    return remove(path);
}

static int st_setup(void **state)
{
    st_fx *f = ob_xmalloc(sizeof *f);
    memset(f, 0, sizeof *f);
    f->dir = ob_xstrdup("/tmp/ob-stream-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *root = ob_xasprintf("%s/repo", f->dir);
    char *id = NULL;
    MUST(storage_posix_open(root, 1, &f->st, E));
    MUST(repo_init(f->st, "pw", &ST_KDF, &id, E));
    MUST(repo_open(f->st, "pw", &f->r, E));
    free(id);
    free(root);
    *state = f;
    return 0;
}

static int st_teardown(void **state)
{
    st_fx *f = *state;
    repo_close(f->r);
    storage_close(f->st);
    nftw(f->dir, st_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f->dir);
    free(f);
    return 0;
}

/* A source that hands out at most `piece` bytes per read (0: all that is
 * asked), or, with `uneven`, a repeating pattern of odd sizes. */
typedef struct piece_reader {
    const uint8_t *data;
    size_t len, pos;
    size_t piece;
    int uneven;
    unsigned calls;
    size_t read_at_first_cut; /* bytes handed out when the first chunk was cut */
    size_t ncuts;
    const uint8_t *base;      /* the stream's buffer (set by store) */
    size_t max_end;           /* how far into it a read has written */
} piece_reader;

static ssize_t piece_read(void *ud, uint8_t *buf, size_t len)
{
    static const size_t pattern[] = {1, 7, 4096, 65537, 300000, 13};
    piece_reader *p = ud;
    size_t k = p->len - p->pos;
    size_t lim = p->uneven ? pattern[p->calls % 6] : p->piece;
    if (lim && k > lim)
        k = lim;
    if (k > len)
        k = len;
    memcpy(buf, p->data + p->pos, k);
    if ((size_t)(buf - p->base) + k > p->max_end)
        p->max_end = (size_t)(buf - p->base) + k;
    p->pos += k;
    p->calls++;
    return (ssize_t)k;
}

static void piece_tick(void *ud, uint64_t bytes)
{
    (void)bytes;
    piece_reader *p = ud;
    if (p->ncuts++ == 0)
        p->read_at_first_cut = p->pos;
}

/* Text-like bytes with some repetition, so the chunker finds cuts of
 * varied length. */
static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    static const char *words[] = {"ops", "backup ", "evidence\n", "screenshot ", "0042,",
                                  "token=", "\\N\t", "完了 "};
    size_t i = 0;
    while (i < n) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        const char *w = words[(seed >> 33) % 8];
        size_t wl = strlen(w);
        for (size_t j = 0; j < wl && i < n; j++)
            p[i++] = (uint8_t)w[j];
    }
}

static void store(st_fx *f, int kind, piece_reader *pr, tree_node *n)
{
    repo_writer *w = NULL;
    MUST(repo_writer_new(f->r, 2, &w, E));
    const chunker *ck = repo_chunker(f->r, kind);
    size_t cap = 2 * (size_t)chunker_get_params(ck)->max_size;
    uint8_t *buf = ob_xmalloc(cap);
    stream_sink sink = {w, ck, buf, cap, piece_tick, pr};
    pr->base = buf;
    size_t ext_cap = 0;
    uint64_t consumed = 0;
    MUST(stream_store(&sink, piece_read, pr, "test stream", 0, n, &ext_cap, &consumed, E));
    MUST(repo_writer_flush(w, E));
    repo_writer_free(w);
    free(buf);
    assert_int_equal(consumed, pr->len);
    n->size = consumed;
}

static void test_cuts_do_not_depend_on_reads(void **state)
{
    st_fx *f = *state;
    size_t max = chunker_get_params(repo_chunker(f->r, REPO_CHUNK_DB))->max_size;
    size_t len = 5 * max + 12345;
    uint8_t *data = ob_xmalloc(len);
    fill(data, len, 7);

    piece_reader whole = {.data = data, .len = len};
    piece_reader pipe = {.data = data, .len = len, .piece = 4096};
    piece_reader odd = {.data = data, .len = len, .uneven = 1};
    tree t;
    tree_init(&t);
    tree_node *nw = tree_add(&t), *np = tree_add(&t), *no = tree_add(&t);
    store(f, REPO_CHUNK_DB, &whole, nw);
    store(f, REPO_CHUNK_DB, &pipe, np);
    store(f, REPO_CHUNK_DB, &odd, no);

    /* The same cuts and IDs whichever way the bytes came in. */
    assert_true(nw->nextents > 5);
    assert_int_equal(np->nextents, nw->nextents);
    assert_int_equal(no->nextents, nw->nextents);
    uint64_t pos = 0;
    ob_buf b = OB_BUF_INIT;
    for (size_t i = 0; i < nw->nextents; i++) {
        const tree_extent *e = &nw->extents[i];
        assert_int_equal(e->offset, pos);
        assert_true(e->len > 0 && e->len <= max);
        for (int k = 0; k < 2; k++) {
            const tree_extent *o = k ? &no->extents[i] : &np->extents[i];
            assert_int_equal(o->offset, e->offset);
            assert_int_equal(o->len, e->len);
            assert_memory_equal(o->id, e->id, OB_ID_LEN);
        }
        /* And what was stored reads back as those bytes. */
        MUST(repo_read_blob(f->r, e->id, REPO_BLOB_DATA, &b, E));
        assert_int_equal(b.len, e->len);
        assert_memory_equal(b.data, data + pos, e->len);
        pos += e->len;
    }
    assert_int_equal(pos, len);
    ob_buf_free(&b);

    /* Fed 4 KiB at a time, the first chunk is cut as soon as its end has
     * arrived, not once max_size bytes are buffered: a pipe's writer must
     * not wait for us to stop reading. */
    size_t first = nw->extents[0].len;
    assert_true(first < max);
    assert_true(pipe.read_at_first_cut >= first);
    assert_true(pipe.read_at_first_cut < first + 4096);

    tree_free(&t);
    free(data);
}

/* Pages a read touches stay resident for the whole backup, so the buffer
 * (2 * max_size: 16 MiB for files) is written no further than 2 MiB or
 * twice the longest chunk plus one read (512 KiB), however the reads
 * arrive; filling it to the brim kept 16 MiB resident after any large
 * file. */
static void test_buffer_stays_small(void **state)
{
    st_fx *f = *state;
    size_t max = chunker_get_params(repo_chunker(f->r, REPO_CHUNK_FILES))->max_size;
    size_t len = 2 * max + 12345;
    uint8_t *data = ob_xmalloc(len);
    fill(data, len, 9);

    piece_reader whole = {.data = data, .len = len};
    piece_reader pipe = {.data = data, .len = len, .piece = 65536};
    tree t;
    tree_init(&t);
    tree_node *nw = tree_add(&t), *np = tree_add(&t);
    store(f, REPO_CHUNK_FILES, &whole, nw);
    store(f, REPO_CHUNK_FILES, &pipe, np);
    assert_int_equal(np->nextents, nw->nextents);

    size_t longest = 0;
    for (size_t i = 0; i < nw->nextents; i++)
        if (nw->extents[i].len > longest)
            longest = nw->extents[i].len;
    size_t step = 512 * 1024;
    size_t bound = 2 * longest + step > 4 * step ? 2 * longest + step : 4 * step;
    assert_true(bound < 2 * max); /* so filling the whole buffer fails */
    assert_true(whole.max_end > 0 && whole.max_end <= bound);
    assert_true(pipe.max_end > 0 && pipe.max_end <= bound);
    tree_free(&t);
    free(data);
}

/* An empty stream stores nothing and reads once. */
static void test_empty_stream(void **state)
{
    st_fx *f = *state;
    piece_reader pr = {.data = (const uint8_t *)"", .piece = 4096};
    tree t;
    tree_init(&t);
    tree_node *n = tree_add(&t);
    store(f, REPO_CHUNK_DB, &pr, n);
    assert_int_equal(n->nextents, 0);
    assert_int_equal(pr.calls, 1);
    tree_free(&t);
}

/* Stops once it has been asked `after` times (never if after < 0). */
typedef struct stopper {
    int asked, after;
} stopper;

static int stopper_stop(void *ud)
{
    stopper *s = ud;
    return s->after >= 0 && s->asked++ >= s->after;
}

/* stream_restore_stoppable looks before every chunk: a stop ends the copy
 * there, with an error, and what was written is exactly the chunks before
 * it (restore db --jobs copies a dump of gigabytes this way, with the
 * signals held back for pg_restore's watcher). */
static void test_restore_stops(void **state)
{
    st_fx *f = *state;
    size_t len = 3 * chunker_get_params(repo_chunker(f->r, REPO_CHUNK_DB))->max_size + 777;
    uint8_t *data = ob_xmalloc(len);
    fill(data, len, 5);
    piece_reader pr = {.data = data, .len = len};
    tree t;
    tree_init(&t);
    tree_node *n = tree_add(&t);
    store(f, REPO_CHUNK_DB, &pr, n);
    assert_true(n->nextents >= 4);

    for (int after = -1; after <= 2; after++) {
        int fd = ob_tmpfile(f->dir);
        assert_true(fd >= 0);
        stopper sp = {0, after};
        uint64_t written = 0;
        ob_err e = OB_ERR_INIT;
        int rc = stream_restore_stoppable(f->r, n, fd, "the test copy", stopper_stop, &sp,
                                          &written, &e);
        uint64_t want = 0;
        for (size_t i = 0; i < n->nextents && (after < 0 || i < (size_t)after); i++)
            want += n->extents[i].len;
        if (after < 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(want, len);
            assert_int_equal(sp.asked, 0);
        } else {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(ob_err_msg(&e), "interrupted"));
            assert_int_equal(sp.asked, after + 1);
        }
        ob_err_clear(&e);
        off_t size = lseek(fd, 0, SEEK_END);
        assert_int_equal((uint64_t)size, want);
        uint8_t *back = ob_xmalloc(want + 1);
        assert_int_equal(pread(fd, back, want, 0), (ssize_t)want);
        assert_memory_equal(back, data, want);
        free(back);
        close(fd);
    }
    tree_free(&t);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cuts_do_not_depend_on_reads, st_setup, st_teardown),
        cmocka_unit_test_setup_teardown(test_buffer_stays_small, st_setup, st_teardown),
        cmocka_unit_test_setup_teardown(test_empty_stream, st_setup, st_teardown),
        cmocka_unit_test_setup_teardown(test_restore_stops, st_setup, st_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
