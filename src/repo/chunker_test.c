/*
 * chunker_test.c — unit tests for the FastCDC chunker.
 *
 * Data comes from splitmix64 with fixed seeds, never rand(), so every run
 * (and every platform) sees the same bytes and the same cut points: a
 * failure here is always reproducible.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "repo/chunker.h"

#define MiB (1024u * 1024)

static const chunker_params files_params = {CHUNKER_FILES_MIN, CHUNKER_FILES_AVG,
                                            CHUNKER_FILES_MAX};
static const chunker_params db_params = {CHUNKER_DB_MIN, CHUNKER_DB_AVG, CHUNKER_DB_MAX};
/* Small chunks: many cuts per MiB, so statistics converge on little data. */
static const chunker_params small_params = {2048, 8192, 65536};
/* The smallest legal parameters: exercises the edges of the mask widths. */
static const chunker_params tiny_params = {64, 128, 1024};

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint8_t *random_data(size_t len, uint64_t seed)
{
    uint8_t *d = ob_xmalloc(len);
    size_t i = 0;
    for (; i + 8 <= len; i += 8)
        ob_le64(d + i, splitmix64(&seed));
    for (; i < len; i++)
        d[i] = (uint8_t)splitmix64(&seed);
    return d;
}

static void make_seed(uint8_t seed[32], uint8_t base)
{
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(base + i);
}

static chunker *new_chunker(const chunker_params *p, uint8_t seed_base)
{
    uint8_t seed[32];
    make_seed(seed, seed_base);
    chunker *c = chunker_new(p, seed);
    assert_non_null(c);
    return c;
}

/* Chunk a whole in-memory stream; returns the chunk lengths. */
static size_t *chunk_all(const chunker *c, const uint8_t *d, size_t len, size_t *count)
{
    size_t cap = 64, n = 0, off = 0;
    size_t *lens = ob_xmalloc(cap * sizeof *lens);
    while (off < len) {
        size_t l = chunker_next(c, d + off, len - off, 1);
        assert_true(l >= 1 && l <= len - off);
        if (n == cap)
            lens = ob_xrealloc(lens, (cap *= 2) * sizeof *lens);
        lens[n++] = l;
        off += l;
    }
    *count = n;
    return lens;
}

/* ---- parameters ---- */

static void test_invalid_params(void **state)
{
    (void)state;
    uint8_t seed[32];
    make_seed(seed, 0);
    const chunker_params bad[] = {
        {63, 128, 1024},                   /* min < 64 */
        {0, 128, 1024},                    /* min 0 */
        {1024, 3 * 1024, 8192},            /* avg not a power of two */
        {64, 0, 1024},                     /* avg 0 */
        {128, 128, 1024},                  /* min == avg */
        {256, 128, 1024},                  /* min > avg */
        {64, 1024, 1024},                  /* avg == max */
        {64, 2048, 1024},                  /* avg > max */
        {1024, 4096, 64 * MiB + 1},        /* max > 64 MiB */
        {1024, 64 * MiB, 128 * MiB},       /* max > 64 MiB, avg at the limit */
        {UINT32_MAX, 1u << 31, UINT32_MAX},/* nonsense */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(chunker_new(&bad[i], seed));
    assert_null(chunker_new(NULL, seed));
    assert_null(chunker_new(&db_params, NULL));

    /* The edges of the legal range are accepted. */
    const chunker_params good[] = {
        {64, 128, 129},
        {64, 128, 64 * MiB},
        {32 * MiB - 1, 32 * MiB, 64 * MiB},
        files_params,
        db_params,
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        chunker *c = chunker_new(&good[i], seed);
        assert_non_null(c);
        const chunker_params *p = chunker_get_params(c);
        assert_int_equal(p->min_size, good[i].min_size);
        assert_int_equal(p->avg_size, good[i].avg_size);
        assert_int_equal(p->max_size, good[i].max_size);
        chunker_free(c);
    }
    chunker_free(NULL);
}

/* ---- the contract of chunker_next ---- */

static void test_len_zero(void **state)
{
    (void)state;
    chunker *c = new_chunker(&db_params, 0);
    uint8_t b = 0;
    assert_int_equal(chunker_next(c, &b, 0, 0), 0);
    assert_int_equal(chunker_next(c, &b, 0, 1), 0);
    chunker_free(c);
}

static void test_eof_semantics(void **state)
{
    (void)state;
    const chunker_params *p = &db_params;
    size_t len = 4 * p->max_size;
    uint8_t *d = random_data(len, 1);
    chunker *c = new_chunker(p, 0);

    /* The first cut, seen with all the data available. */
    size_t l1 = chunker_next(c, d, len, 1);
    assert_true(l1 > p->min_size && l1 < p->max_size);

    /* Short input: more data needed, unless it is the end of the stream. */
    assert_int_equal(chunker_next(c, d, 100, 0), 0);
    assert_int_equal(chunker_next(c, d, 100, 1), 100);
    assert_int_equal(chunker_next(c, d, 1, 1), 1);
    assert_int_equal(chunker_next(c, d, p->min_size, 0), 0);
    assert_int_equal(chunker_next(c, d, p->min_size, 1), p->min_size);

    /* One byte short of the cut: not found yet. */
    assert_int_equal(chunker_next(c, d, l1 - 1, 0), 0);
    assert_int_equal(chunker_next(c, d, l1 - 1, 1), l1 - 1);
    /* Exactly up to the cut, or beyond: the same cut, eof or not. */
    assert_int_equal(chunker_next(c, d, l1, 0), l1);
    assert_int_equal(chunker_next(c, d, l1, 1), l1);
    assert_int_equal(chunker_next(c, d, l1 + 1, 0), l1);
    assert_int_equal(chunker_next(c, d, p->max_size, 0), l1);
    assert_int_equal(chunker_next(c, d, len, 0), l1);

    chunker_free(c);
    free(d);
}

/* With len >= max_size a cut is always returned, even without eof, and it
 * never exceeds max_size. */
static void test_never_stalls_at_max(void **state)
{
    (void)state;
    const chunker_params *p = &tiny_params;
    size_t len = 1 * MiB;
    uint8_t *d = random_data(len, 2);
    chunker *c = new_chunker(p, 0);
    for (size_t off = 0; off + p->max_size <= len; off += 997) {
        size_t l = chunker_next(c, d + off, p->max_size, 0);
        assert_true(l > p->min_size && l <= p->max_size);
        assert_int_equal(chunker_next(c, d + off, len - off, 0), l);
    }
    chunker_free(c);
    free(d);
}

static void test_all_zero_cuts_at_max(void **state)
{
    (void)state;
    /* A run of equal bytes drives the gear hash to a constant after 64
     * bytes, so whether it ever matches the mask depends only on the seed.
     * For these seeds and masks of >= 15 bits it does not, and the run is
     * cut at max_size. */
    const chunker_params *ps[] = {&db_params, &files_params};
    for (size_t k = 0; k < 2; k++) {
        const chunker_params *p = ps[k];
        size_t tail = 12345, len = 3 * (size_t)p->max_size + tail;
        uint8_t *d = ob_xcalloc(len, 1);
        for (uint8_t s = 0; s < 4; s++) {
            chunker *c = new_chunker(p, s);
            size_t n;
            size_t *lens = chunk_all(c, d, len, &n);
            assert_int_equal(n, 4);
            for (size_t i = 0; i < 3; i++)
                assert_int_equal(lens[i], p->max_size);
            assert_int_equal(lens[3], tail);
            /* And without eof the tail is held back. */
            assert_int_equal(chunker_next(c, d, tail, 0), 0);
            free(lens);
            chunker_free(c);
        }
        free(d);
    }

    /* A zero run a little longer than max_size followed by random data:
     * the chunker would find a cut in the random part, but must stop at
     * max_size, eof or not. */
    const chunker_params *p = &db_params;
    size_t run = p->max_size + 500, len = 2 * (size_t)p->max_size;
    uint8_t *d = random_data(len, 18);
    memset(d, 0, run);
    chunker *c = new_chunker(p, 0);
    assert_int_equal(chunker_next(c, d, len, 0), p->max_size);
    assert_int_equal(chunker_next(c, d, len, 1), p->max_size);
    assert_int_equal(chunker_next(c, d, p->max_size, 0), p->max_size);
    /* The next chunk starts inside the run and cuts in the random data. */
    size_t l = chunker_next(c, d + p->max_size, len - p->max_size, 0);
    assert_true(l > 500 && l < p->max_size);
    chunker_free(c);
    free(d);
}

/* ---- properties of the cut list ---- */

static void test_determinism(void **state)
{
    (void)state;
    size_t len = 8 * MiB;
    uint8_t *d = random_data(len, 3);
    /* Two independent chunker objects from the same seed. */
    chunker *a = new_chunker(&small_params, 7);
    chunker *b = new_chunker(&small_params, 7);
    size_t na, nb;
    size_t *la = chunk_all(a, d, len, &na);
    size_t *lb = chunk_all(b, d, len, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(la, lb, na * sizeof *la);
    assert_true(na > 100);
    free(la);
    free(lb);
    chunker_free(a);
    chunker_free(b);
    free(d);
}

static void check_bounds_and_coverage(const chunker_params *p, size_t len, uint64_t dseed)
{
    uint8_t *d = random_data(len, dseed);
    chunker *c = new_chunker(p, (uint8_t)dseed);
    size_t n, total = 0;
    size_t *lens = chunk_all(c, d, len, &n);
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n) {
            assert_true(lens[i] >= p->min_size);
            assert_true(lens[i] <= p->max_size);
        } else {
            assert_true(lens[i] >= 1 && lens[i] <= p->max_size);
        }
        total += lens[i];
    }
    assert_int_equal(total, len);
    free(lens);
    chunker_free(c);
    free(d);
}

static void test_bounds_and_coverage(void **state)
{
    (void)state;
    check_bounds_and_coverage(&tiny_params, 1 * MiB + 17, 4);
    check_bounds_and_coverage(&small_params, 4 * MiB + 1, 5);
    check_bounds_and_coverage(&db_params, 16 * MiB - 3, 6);
    check_bounds_and_coverage(&files_params, 24 * MiB + 5, 7);
    /* Streams shorter than one chunk. */
    check_bounds_and_coverage(&db_params, 1, 8);
    check_bounds_and_coverage(&db_params, db_params.min_size, 9);
    check_bounds_and_coverage(&db_params, db_params.max_size, 10);
}

/* A caller that reads the stream in arbitrary pieces into a max_size buffer
 * must get exactly the cuts of the one-shot call over the whole stream:
 * this is what "stateless between calls" has to guarantee. */
/* Feed len random bytes to the chunker in reads of 1 .. maxread bytes (0:
 * up to a third of max_size) and check every cut against one-shot
 * chunking. */
static void check_streaming(const chunker_params *p, size_t len, uint64_t dseed, size_t maxread)
{
    uint8_t *d = random_data(len, dseed);
    chunker *c = new_chunker(p, 3);
    size_t n, k = 0;
    size_t *lens = chunk_all(c, d, len, &n);

    uint64_t rs = dseed * 31 + 1;
    size_t cap = p->max_size;
    uint8_t *buf = ob_xmalloc(cap);
    size_t have = 0, src = 0, scanned = 0;
    for (;;) {
        int eof = src == len;
        /* Resuming where the last fruitless call stopped finds what a
         * search from the chunk's start finds. */
        size_t l = chunker_next_from(c, buf, have, eof, scanned);
        assert_int_equal(l, chunker_next(c, buf, have, eof));
        if (l == 0) {
            if (eof) {
                assert_int_equal(have, 0);
                break;
            }
            assert_true(have < cap);
            scanned = have;
            /* Read a random amount, as a short read() would. */
            size_t want = 1 + splitmix64(&rs) % (maxread ? maxread : cap / 3);
            if (want > cap - have)
                want = cap - have;
            if (want > len - src)
                want = len - src;
            memcpy(buf + have, d + src, want);
            have += want;
            src += want;
            continue;
        }
        assert_true(k < n);
        assert_int_equal(l, lens[k]);
        k++;
        memmove(buf, buf + l, have - l);
        have -= l;
        scanned = 0;
    }
    assert_int_equal(k, n);
    free(buf);
    free(lens);
    chunker_free(c);
    free(d);
}

static void test_streaming_matches_oneshot(void **state)
{
    (void)state;
    check_streaming(&tiny_params, 512 * 1024 + 3, 11, 0);
    check_streaming(&small_params, 4 * MiB + 7, 12, 0);
    check_streaming(&db_params, 8 * MiB, 13, 0);
    /* Pieces smaller than the hash's 64-byte reach, so searches resume
     * next to min_size, mid-window and past avg_size. */
    check_streaming(&tiny_params, 256 * 1024 + 5, 14, 7);
    check_streaming(&small_params, 1 * MiB + 1, 15, 97);
    check_streaming(&db_params, 2 * MiB, 16, 4096);
}

/* Expected mean chunk length if every hashed position were an independent
 * trial with the cut probability of its mask: E[L] = sum_k P(L > k). */
static double model_mean(const chunker_params *p)
{
    unsigned bits = 0;
    for (uint32_t v = p->avg_size; v > 1; v >>= 1)
        bits++;
    double ps = 1.0 / (double)(1u << (bits + 2)), pl = 1.0 / (double)(1u << (bits - 2));
    double survive = 1.0, mean = p->min_size;
    /* A cut at position i gives length i + 1, so P(L > i + 1) after trial i. */
    for (size_t i = p->min_size; i + 1 < p->max_size; i++) {
        survive *= 1.0 - (i + 1 <= p->avg_size ? ps : pl);
        mean += survive;
    }
    return mean + 1.0; /* P(L > min) = 1 */
}

static void test_mean_chunk_size(void **state)
{
    (void)state;
    size_t len = 64 * MiB;
    uint8_t *d = random_data(len, 14);
    const chunker_params *ps[] = {&small_params, &db_params};
    for (size_t k = 0; k < 2; k++) {
        const chunker_params *p = ps[k];
        chunker *c = new_chunker(p, 5);
        size_t n;
        size_t *lens = chunk_all(c, d, len, &n);
        double mean = (double)len / (double)n, expect = model_mean(p);
        /* Normalized chunking with min = avg/2 puts the mean at ~1.15x avg.
         * 64 MiB gives ~7000 (small) / ~430 (db) chunks; the standard error
         * of the mean is ~0.5% / ~1.7%, so +-3% / +-8% of the model are
         * >4 sigma bands.  The tight one still catches a mask one bit off
         * (which moves the mean by 4.5% or more). */
        double tol = k == 0 ? 0.03 : 0.08;
        print_message("params %u/%u/%u: %zu chunks, mean %.0f, model %.0f\n", p->min_size,
                      p->avg_size, p->max_size, n, mean, expect);
        assert_true(mean > (1 - tol) * expect && mean < (1 + tol) * expect);
        assert_true(mean > 1.0 * p->avg_size && mean < 1.3 * p->avg_size);
        /* Normalization: hardly any chunk reaches max_size on random data. */
        size_t at_max = 0;
        for (size_t i = 0; i + 1 < n; i++)
            at_max += lens[i] == p->max_size;
        assert_true(at_max * 1000 < n);
        free(lens);
        chunker_free(c);
    }
    free(d);
}

/* ---- deduplication behaviour ---- */

typedef struct chunk_id {
    uint8_t h[OB_ID_LEN];
} chunk_id;

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(chunk_id));
}

static chunk_id *chunk_ids(const uint8_t *d, const size_t *lens, size_t n)
{
    chunk_id *ids = ob_xmalloc(n * sizeof *ids);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        ob_sha256(d + off, lens[i], ids[i].h);
        off += lens[i];
    }
    return ids;
}

/* Fraction (by bytes) of the chunks of a that also occur in b. */
static double shared_fraction(const chunker *c, const uint8_t *a, size_t alen, const uint8_t *b,
                              size_t blen)
{
    size_t na, nb;
    size_t *la = chunk_all(c, a, alen, &na);
    size_t *lb = chunk_all(c, b, blen, &nb);
    chunk_id *ia = chunk_ids(a, la, na);
    chunk_id *ib = chunk_ids(b, lb, nb);
    qsort(ib, nb, sizeof *ib, cmp_id);
    size_t kept = 0;
    for (size_t i = 0; i < na; i++)
        if (bsearch(&ia[i], ib, nb, sizeof *ib, cmp_id))
            kept += la[i];
    free(la);
    free(lb);
    free(ia);
    free(ib);
    return (double)kept / (double)alen;
}

static void test_shift_resistance(void **state)
{
    (void)state;
    size_t len = 32 * MiB, ins = 100, at = 1000;
    uint8_t *a = random_data(len, 15);
    uint8_t *extra = random_data(ins, 16);
    uint8_t *b = ob_xmalloc(len + ins);
    memcpy(b, a, at);
    memcpy(b + at, extra, ins);
    memcpy(b + at + ins, a + at, len - at);

    const chunker_params *ps[] = {&db_params, &files_params, &small_params};
    for (size_t k = 0; k < 3; k++) {
        chunker *c = new_chunker(ps[k], 6);
        double f = shared_fraction(c, a, len, b, len + ins);
        print_message("params %u/%u/%u: %.2f%% of bytes in shared chunks after insertion\n",
                      ps[k]->min_size, ps[k]->avg_size, ps[k]->max_size, 100 * f);
        /* Only the chunk holding the insertion (and rarely its successor)
         * may change.  With files params a chunk is ~1/27 of 32 MiB. */
        assert_true(f >= 0.90);
        assert_true(f < 1.0); /* the edited chunk itself must differ */
        chunker_free(c);
    }

    /* The same holds for an insertion in the middle and for a deletion. */
    chunker *c = new_chunker(&db_params, 6);
    memcpy(b, a, len / 2);
    memcpy(b + len / 2, extra, ins);
    memcpy(b + len / 2 + ins, a + len / 2, len / 2);
    assert_true(shared_fraction(c, a, len, b, len + ins) >= 0.98);
    assert_true(shared_fraction(c, a, len, a + 1, len - 1) >= 0.98);
    chunker_free(c);

    free(a);
    free(b);
    free(extra);
}

static void test_seed_changes_boundaries(void **state)
{
    (void)state;
    size_t len = 8 * MiB;
    uint8_t *d = random_data(len, 17);
    uint8_t s1[32], s2[32];
    make_seed(s1, 9);
    memcpy(s2, s1, 32);
    s2[31] ^= 1; /* a single bit */
    chunker *a = chunker_new(&small_params, s1);
    chunker *b = chunker_new(&small_params, s2);
    assert_non_null(a);
    assert_non_null(b);
    size_t na, nb;
    size_t *la = chunk_all(a, d, len, &na);
    size_t *lb = chunk_all(b, d, len, &nb);

    /* Count cut offsets the two lists have in common (a merge of two
     * increasing sequences).  Independent tables coincide by chance about
     * na * nb / len ~ 0.1 times. */
    size_t i = 0, j = 0, oa = 0, ob = 0, common = 0;
    while (i < na && j < nb) {
        size_t ea = oa + la[i], eb = ob + lb[j];
        if (ea == eb) {
            if (ea != len)
                common++;
            oa = ea, ob = eb, i++, j++;
        } else if (ea < eb) {
            oa = ea, i++;
        } else {
            ob = eb, j++;
        }
    }
    assert_true(la[0] != lb[0]);
    assert_true(common * 100 < na);
    free(la);
    free(lb);
    chunker_free(a);
    chunker_free(b);
    free(d);
}

/* The gear table derivation is part of the repository format: if it changed,
 * new backups would stop deduplicating against existing ones.  These cut
 * lengths were recorded from this implementation and cross-checked against
 * an independent Python model of the documented derivation (hmac module +
 * the loop of chunker_next); update them only together with a repository
 * format version bump.  Seed bytes 0..31, data splitmix64(0x0b5eed). */
static void test_known_answer(void **state)
{
    (void)state;
    static const size_t expect_small[] = {9717, 2974, 10392, 10861, 8480, 8424, 2731, 11843};
    static const size_t expect_tiny[] = {172, 181, 154, 181, 163, 188, 132, 160};
    size_t len = 1 * MiB;
    uint8_t *d = random_data(len, 0x0b5eed);

    chunker *c = new_chunker(&small_params, 0);
    size_t n;
    size_t *lens = chunk_all(c, d, len, &n);
    size_t ne = sizeof expect_small / sizeof expect_small[0];
    assert_true(n >= ne);
    for (size_t i = 0; i < ne; i++)
        assert_int_equal(lens[i], expect_small[i]);
    free(lens);
    chunker_free(c);

    c = new_chunker(&tiny_params, 0);
    lens = chunk_all(c, d, len, &n);
    ne = sizeof expect_tiny / sizeof expect_tiny[0];
    assert_true(n >= ne);
    for (size_t i = 0; i < ne; i++)
        assert_int_equal(lens[i], expect_tiny[i]);
    free(lens);
    chunker_free(c);
    free(d);
}

/* Fixed-size mode (physical backups): every chunk is exactly the block
 * size, the last one may be shorter, and nothing depends on content. */
static void test_fixed(void **state)
{
    (void)state;
    assert_null(chunker_new_fixed(10));
    assert_null(chunker_new_fixed(128u * 1024 * 1024));
    chunker *c = chunker_new_fixed(8192);
    assert_non_null(c);
    assert_int_equal(chunker_get_params(c)->max_size, 8192);
    uint8_t buf[20000];
    memset(buf, 0x5a, sizeof buf);
    assert_int_equal(chunker_next(c, buf, sizeof buf, 0), 8192);
    assert_int_equal(chunker_next(c, buf, sizeof buf, 1), 8192);
    assert_int_equal(chunker_next(c, buf, 8192, 0), 8192);
    assert_int_equal(chunker_next(c, buf, 5000, 0), 0);    /* needs more bytes */
    assert_int_equal(chunker_next(c, buf, 5000, 1), 5000); /* the tail */
    assert_int_equal(chunker_next(c, buf, 0, 1), 0);
    chunker_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_len_zero),
        cmocka_unit_test(test_eof_semantics),
        cmocka_unit_test(test_never_stalls_at_max),
        cmocka_unit_test(test_all_zero_cuts_at_max),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_bounds_and_coverage),
        cmocka_unit_test(test_streaming_matches_oneshot),
        cmocka_unit_test(test_mean_chunk_size),
        cmocka_unit_test(test_shift_resistance),
        cmocka_unit_test(test_seed_changes_boundaries),
        cmocka_unit_test(test_known_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
