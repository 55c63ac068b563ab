/*
 * pg_archive_test.c — row counts from a custom-format archive stream.
 * Archives are built here byte by byte in pg_dump's layout (the real
 * pg_dump 15 output is checked by test_db_backup_restore against the
 * database's own counts), then fed whole, a byte at a time and in odd
 * pieces, so every field straddles a read somewhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "sources/pg_archive.h"

/* ---- an archive writer in pg_dump's layout ---------------------------- */

typedef struct arch {
    ob_buf b;
    int minor;  /* 14, 15 or 16 */
} arch;

static void put_int(arch *a, int64_t v)
{
    ob_buf_putc(&a->b, v < 0);
    uint64_t m = v < 0 ? (uint64_t)-v : (uint64_t)v;
    for (int i = 0; i < 4; i++, m >>= 8)
        ob_buf_putc(&a->b, (uint8_t)(m & 0xff));
}

static void put_str(arch *a, const char *s)
{
    if (!s) {
        put_int(a, -1);
        return;
    }
    put_int(a, (int64_t)strlen(s));
    ob_buf_append(&a->b, s, strlen(s));
}

static void put_head(arch *a, int compression, int ntoc)
{
    ob_buf_append(&a->b, "PGDMP", 5);
    ob_buf_putc(&a->b, 1);
    ob_buf_putc(&a->b, (uint8_t)a->minor);
    ob_buf_putc(&a->b, 0);
    ob_buf_putc(&a->b, 4); /* intSize */
    ob_buf_putc(&a->b, 8); /* offSize */
    ob_buf_putc(&a->b, 1); /* custom */
    if (a->minor >= 15)
        ob_buf_putc(&a->b, (uint8_t)compression);
    else
        put_int(a, compression);
    for (int i = 0; i < 7; i++)
        put_int(a, 10 + i);
    put_str(a, "appdb");
    put_str(a, "15.18");
    put_str(a, "15.18 (Debian 15.18-0+deb12u1)");
    put_int(a, ntoc);
}

static void put_toc(arch *a, int id, int has_data, const char *ns, const char *tag,
                    const char *desc, const char *copy)
{
    put_int(a, id);
    put_int(a, has_data);
    put_str(a, "1259");
    put_str(a, "16390");
    put_str(a, tag);
    put_str(a, desc);
    put_int(a, 3); /* section */
    put_str(a, "");
    put_str(a, "");
    put_str(a, copy);
    put_str(a, ns);
    put_str(a, "");
    put_str(a, "heap");
    if (a->minor >= 16)
        put_int(a, 'r');
    put_str(a, "opscore");
    put_str(a, "false");
    put_str(a, "12");
    put_str(a, "7");
    put_str(a, NULL);
    ob_buf_putc(&a->b, 3); /* offset not set */
    for (int i = 0; i < 8; i++)
        ob_buf_putc(&a->b, 0);
}

static void put_chunk(arch *a, const char *data)
{
    put_int(a, (int64_t)strlen(data));
    ob_buf_append(&a->b, data, strlen(data));
}

/* A table's data block: rows in chunks as pg_dump writes them, then
 * COPY's terminator in a chunk of its own. */
static void put_table(arch *a, int id, const char *const *chunks)
{
    ob_buf_putc(&a->b, 1);
    put_int(a, id);
    for (size_t i = 0; chunks[i]; i++)
        put_chunk(a, chunks[i]);
    put_chunk(a, "\\.\n\n\n");
    put_int(a, 0);
}

static const char *const docs_rows[] = {
    "1\tline one\\nstill row one\t\\\\.\n",
    "2\t改行\\n\\t\\\\\n3\t\\.\tthree\n4\t",     /* a row split across chunks */
    "four\n",
    NULL};
static const char *const empty_rows[] = {NULL};

/* public.documents (4 rows), public.empty (0), audit.inserts dumped as
 * INSERTs (not counted), a schema entry without data, large objects. */
static void build(arch *a, int minor, int compression)
{
    memset(a, 0, sizeof *a);
    a->minor = minor;
    put_head(a, compression, 7);
    put_toc(a, 3, 0, NULL, "audit", "SCHEMA", NULL);
    put_toc(a, 30, 0, "public", "documents", "TABLE", NULL);
    put_toc(a, 31, 0, "public", "parent", "TABLE", NULL); /* no data: partitioned */
    put_toc(a, 40, 1, "public", "documents", "TABLE DATA",
            "COPY public.documents (id, body) FROM stdin;\n");
    put_toc(a, 41, 1, "public", "empty", "TABLE DATA", "COPY public.empty (id) FROM stdin;\n");
    put_toc(a, 42, 1, "audit", "inserts", "TABLE DATA", "");
    put_toc(a, 50, 1, NULL, "BLOBS", "BLOBS", NULL);
    put_table(a, 41, empty_rows);
    put_table(a, 40, docs_rows);
    /* INSERT statements: lines that are not rows. */
    ob_buf_putc(&a->b, 1);
    put_int(a, 42);
    put_chunk(a, "INSERT INTO audit.inserts VALUES (1, 'a\nb');\n");
    put_int(a, 0);
    /* Large objects: (oid, chunks, 0) ... 0. */
    ob_buf_putc(&a->b, 3);
    put_int(a, 50);
    put_int(a, 424201);
    put_chunk(a, "lo\n\n\n");
    put_int(a, 0);
    put_int(a, 424202);
    put_int(a, 0);
    put_int(a, 0);
}

/* Feed in pieces of `step` bytes (0: all at once); the counts or NULL,
 * and (if not NULL) the large objects counted and the tables of the TOC. */
static json_t *count_lo(const ob_buf *b, size_t step, char **why, char **version,
                        uint64_t *lobjs, json_t **tables)
{
    pg_archive_counter *c = pg_archive_counter_new();
    size_t off = 0;
    while (off < b->len) {
        size_t n = step && b->len - off > step ? step : b->len - off;
        pg_archive_counter_feed(c, b->data + off, n);
        off += n;
    }
    json_t *counts = NULL;
    *why = NULL;
    int rc = pg_archive_counter_finish(c, &counts, why);
    if (lobjs)
        *lobjs = pg_archive_counter_large_objects(c);
    if (tables)
        *tables = rc == 0 ? pg_archive_counter_tables(c) : NULL;
    if (version)
        *version = pg_archive_counter_dump_version(c)
                       ? ob_xstrdup(pg_archive_counter_dump_version(c))
                       : NULL;
    pg_archive_counter_free(c);
    assert_int_equal(rc == 0, counts != NULL);
    return counts;
}

static json_t *count(const ob_buf *b, size_t step, char **why, char **version)
{
    return count_lo(b, step, why, version, NULL, NULL);
}

static void assert_counts(json_t *counts)
{
    assert_non_null(counts);
    assert_int_equal(json_object_size(counts), 2);
    assert_int_equal(json_integer_value(json_object_get(counts, "public.documents")), 4);
    assert_int_equal(json_integer_value(json_object_get(counts, "public.empty")), 0);
    assert_null(json_object_get(counts, "audit.inserts"));
}

static void test_counts_every_split(void **state)
{
    (void)state;
    static const size_t steps[] = {0, 1, 2, 3, 5, 7, 64, 4095, 4096, 4097};
    for (int minor = 14; minor <= 16; minor++) {
        arch a;
        build(&a, minor, 0);
        for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
            char *why, *version;
            uint64_t lobjs = 0;
            json_t *tables = NULL;
            json_t *c = count_lo(&a.b, steps[i], &why, &version, &lobjs, &tables);
            if (!c)
                fail_msg("1.%d, pieces of %zu: %s", minor, steps[i], why);
            assert_counts(c);
            assert_int_equal(lobjs, 2); /* 424201 and the empty 424202 */
            /* Data for the three TABLE DATA entries, COPY or INSERTs; the
             * partitioned parent has only its TABLE entry. */
            char *got = json_dumps(tables, JSON_SORT_KEYS | JSON_COMPACT);
            assert_string_equal(got, "{\"audit.inserts\":true,\"public.documents\":true,"
                                     "\"public.empty\":true,\"public.parent\":false}");
            free(got);
            json_decref(tables);
            assert_string_equal(version, "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)");
            json_decref(c);
            free(version);
        }
        ob_buf_free(&a.b);
    }
}

/* A table of contents larger than the first parse attempt (4 KiB). */
static void test_big_toc(void **state)
{
    (void)state;
    arch a = {OB_BUF_INIT, 14};
    put_head(&a, 0, 1001);
    for (int i = 1; i <= 1000; i++)
        put_toc(&a, 100 + i, 0, "public", "index_with_a_long_name", "INDEX", NULL);
    put_toc(&a, 7, 1, "public", "t", "TABLE DATA", "COPY public.t (a) FROM stdin;\n");
    static const char *const rows[] = {"1\n2\n3\n", NULL};
    put_table(&a, 7, rows);
    char *why;
    json_t *c = count(&a.b, 1000, &why, NULL);
    assert_non_null(c);
    assert_int_equal(json_integer_value(json_object_get(c, "public.t")), 3);
    json_decref(c);
    ob_buf_free(&a.b);
}

static void expect_refused(const ob_buf *b, const char *reason)
{
    static const size_t steps[] = {0, 1, 3};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        char *why;
        json_t *c = count(b, steps[i], &why, NULL);
        if (c)
            fail_msg("counted, expected a refusal with '%s' (pieces of %zu)", reason, steps[i]);
        assert_non_null(why);
        if (!strstr(why, reason))
            fail_msg("expected a reason with '%s', got '%s'", reason, why);
        free(why);
    }
}

/* A 1.14 archive announcing one table (dump ID 7); with open_block, also
 * the start of its data block, for the case to continue. */
static void one_table(arch *a, int open_block)
{
    *a = (arch){OB_BUF_INIT, 14};
    put_head(a, 0, 1);
    put_toc(a, 7, 1, "public", "t", "TABLE DATA", "COPY public.t (a) FROM stdin;\n");
    if (open_block) {
        ob_buf_putc(&a->b, 1);
        put_int(a, 7);
    }
}

static void test_refuses_what_it_cannot_read(void **state)
{
    (void)state;
    arch a;

    build(&a, 14, 6); /* --compress=6 */
    expect_refused(&a.b, "compressed");
    ob_buf_free(&a.b);

    build(&a, 15, 3); /* zstd, 1.15's algorithm byte */
    expect_refused(&a.b, "compressed");
    ob_buf_free(&a.b);

    build(&a, 13, 0);
    expect_refused(&a.b, "1.13");
    /* the version is still known: it is in the header */
    char *why, *version;
    json_t *c = count(&a.b, 0, &why, &version);
    assert_null(c);
    assert_non_null(version);
    free(version);
    free(why);
    ob_buf_free(&a.b);

    build(&a, 17, 0);
    expect_refused(&a.b, "1.17");
    ob_buf_free(&a.b);

    build(&a, 14, 0);
    memcpy(a.b.data, "PGDMQ", 5);
    expect_refused(&a.b, "not a pg_dump");
    ob_buf_free(&a.b);

    /* plain SQL (pg_dump -Fp through a --dump-command) */
    ob_buf sql = OB_BUF_INIT;
    ob_buf_printf(&sql, "--\n-- PostgreSQL database dump\n--\n");
    expect_refused(&sql, "not a pg_dump");
    ob_buf_free(&sql);

    /* cut anywhere: in the TOC, inside a chunk, between blocks of a table */
    build(&a, 14, 0);
    size_t full = a.b.len;
    a.b.len = 200;
    expect_refused(&a.b, "table of contents");
    a.b.len = full - 30;
    expect_refused(&a.b, "ends inside");
    ob_buf_free(&a.b);

    /* a data block the TOC does not announce */
    build(&a, 14, 0);
    ob_buf_putc(&a.b, 1);
    put_int(&a, 99);
    put_int(&a, 0);
    expect_refused(&a.b, "dump ID 99");
    ob_buf_free(&a.b);

    /* an announced block that never comes */
    one_table(&a, 0);
    expect_refused(&a.b, "no data block for dump ID 7");
    ob_buf_free(&a.b);

    /* table data without COPY's terminator: not the layout we know */
    one_table(&a, 1);
    put_chunk(&a, "1\n2\n");
    put_int(&a, 0);
    expect_refused(&a.b, "terminator");
    ob_buf_free(&a.b);

    /* a hostile length */
    one_table(&a, 1);
    put_int(&a, -5);
    expect_refused(&a.b, "negative");
    ob_buf_free(&a.b);

    /* two entries with one dump ID */
    a = (arch){OB_BUF_INIT, 14};
    put_head(&a, 0, 2);
    put_toc(&a, 7, 1, "public", "t", "TABLE DATA", "COPY public.t (a) FROM stdin;\n");
    put_toc(&a, 7, 1, "public", "u", "TABLE DATA", "COPY public.u (a) FROM stdin;\n");
    expect_refused(&a.b, "repeats dump ID 7");
    ob_buf_free(&a.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_every_split),
        cmocka_unit_test(test_big_toc),
        cmocka_unit_test(test_refuses_what_it_cannot_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
