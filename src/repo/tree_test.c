/*
 * tree_test.c — tests for the tree encoding: round trips of every field,
 * determinism, and a decoder that fails cleanly (never crashes, never
 * accepts a non-canonical encoding) on hostile input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "repo/tree.h"

/* ---- building test trees -------------------------------------------- */

static void fill_id(uint8_t id[TREE_ID_LEN], uint8_t seed)
{
    for (int i = 0; i < TREE_ID_LEN; i++)
        id[i] = (uint8_t)(seed * 31 + i);
}

static void add_xattr(tree_node *n, const char *name, const void *val, size_t len)
{
    n->xattrs = ob_xrealloc(n->xattrs, (n->nxattrs + 1) * sizeof(tree_xattr));
    tree_xattr *x = &n->xattrs[n->nxattrs++];
    x->name = ob_xstrdup(name);
    x->value = ob_xmalloc(len ? len : 1);
    memcpy(x->value, val, len);
    x->value_len = len;
}

static void set_common(tree_node *n, uint8_t type, uint32_t k)
{
    n->type = type;
    n->mode = 07000 | (0755 ^ k % 8);
    n->uid = 1000 + k;
    n->gid = 2000 + k;
    n->user = ob_xasprintf("user%u", k);
    n->group = ob_xasprintf("group\xff%u", k); /* non-UTF-8 is fine */
    n->mtime_sec = -12345678901LL + k;         /* before 1970 */
    n->mtime_nsec = 999999999;
    n->atime_sec = INT64_MAX - k;
    n->atime_nsec = 1;
    n->ctime_sec = 1700000000 + k;
    n->ctime_nsec = 123456789;
    n->dev = UINT64_MAX - k;
    n->inode = 0x0123456789abcdefULL + k;
    n->nlink = UINT32_MAX - k;
    n->rdev = 0;
}

/* One node of every type, every field set, deliberately added unsorted. */
static void build_full(tree *t)
{
    tree_init(t);
    tree_node *n;

    n = tree_add(t);
    tree_node_set_name(n, "zfile", 5);
    set_common(n, TREE_FILE, 1);
    n->size = 10ull * 1024 * 1024 * 1024; /* sparse 10 GiB */
    n->nextents = 300;
    n->extents = ob_xcalloc(n->nextents, sizeof(tree_extent));
    for (size_t i = 0; i < n->nextents; i++) {
        n->extents[i].offset = i * 4096ull * 1024; /* gaps between are holes */
        n->extents[i].len = 1024 + (uint32_t)i;
        fill_id(n->extents[i].id, (uint8_t)i);
    }
    /* xattrs with binary values including NULs, added out of order. */
    add_xattr(n, "user.zz", "\0\0\0", 3);
    add_xattr(n, "security.capability", "\x01\x00\xff\xfe", 4);
    add_xattr(n, "user.empty", "", 0);
    add_xattr(n, "system.posix_acl_access", "\x02\0\0\0\x01\0\x06\0", 8);
    /* Keep the documented invariant (sorted) for round-trip comparison. */

    n = tree_add(t);
    tree_node_set_name(n, "dir\nwith newline", 16);
    set_common(n, TREE_DIR, 2);
    fill_id(n->subtree, 99);

    n = tree_add(t);
    static const char weird[] = "\xff\xfe not utf8 \xc3\x28";
    tree_node_set_name(n, weird, sizeof weird - 1);
    set_common(n, TREE_SYMLINK, 3);
    static const char target[] = "../../some where/\xff\ntarget";
    n->link_target = (uint8_t *)ob_xstrndup(target, sizeof target - 1);
    n->link_len = sizeof target - 1;
    n->size = n->link_len;
    add_xattr(n, "trusted.x", "v", 1);

    n = tree_add(t);
    tree_node_set_name(n, "fifo", 4);
    set_common(n, TREE_FIFO, 4);
    free(n->user); /* unknown owner names */
    free(n->group);
    n->user = n->group = NULL;

    n = tree_add(t);
    tree_node_set_name(n, "chr", 3);
    set_common(n, TREE_CHARDEV, 5);
    n->rdev = 0x0000000100000003ULL;

    n = tree_add(t);
    tree_node_set_name(n, "blk", 3);
    set_common(n, TREE_BLOCKDEV, 6);
    n->rdev = 0x800;
    free(n->user);
    n->user = ob_xstrdup(""); /* empty is distinct from NULL */

    n = tree_add(t);
    tree_node_set_name(n, "sock", 4);
    set_common(n, TREE_SOCKET, 7);

    n = tree_add(t);
    tree_node_set_name(n, ".hidden", 7);
    set_common(n, TREE_FILE, 8);
    n->size = 0; /* empty file, no extents */

    n = tree_add(t);
    tree_node_set_name(n, "...", 3); /* a legal name */
    set_common(n, TREE_FILE, 9);
    n->size = 100;
    n->nextents = 1;
    n->extents = ob_xcalloc(1, sizeof(tree_extent));
    n->extents[0].offset = 0;
    n->extents[0].len = 100; /* ends exactly at size */
    fill_id(n->extents[0].id, 7);
}

static int xattr_cmp(const void *a, const void *b)
{
    return strcmp(((const tree_xattr *)a)->name, ((const tree_xattr *)b)->name);
}

static void sort_xattrs(tree *t)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->nodes[i].nxattrs > 1)
            qsort(t->nodes[i].xattrs, t->nodes[i].nxattrs, sizeof(tree_xattr), xattr_cmp);
}

static void str_opt_equal(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_node_equal(const tree_node *a, const tree_node *b)
{
    assert_int_equal(a->name_len, b->name_len);
    assert_memory_equal(a->name, b->name, a->name_len);
    assert_int_equal(b->name[b->name_len], 0);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->mode, b->mode);
    assert_int_equal(a->uid, b->uid);
    assert_int_equal(a->gid, b->gid);
    str_opt_equal(a->user, b->user);
    str_opt_equal(a->group, b->group);
    assert_true(a->mtime_sec == b->mtime_sec);
    assert_int_equal(a->mtime_nsec, b->mtime_nsec);
    assert_true(a->atime_sec == b->atime_sec);
    assert_int_equal(a->atime_nsec, b->atime_nsec);
    assert_true(a->ctime_sec == b->ctime_sec);
    assert_int_equal(a->ctime_nsec, b->ctime_nsec);
    assert_true(a->dev == b->dev);
    assert_true(a->inode == b->inode);
    assert_int_equal(a->nlink, b->nlink);
    assert_true(a->size == b->size);
    assert_true(a->rdev == b->rdev);
    if (a->type == TREE_SYMLINK) {
        assert_int_equal(a->link_len, b->link_len);
        assert_memory_equal(a->link_target, b->link_target, a->link_len);
        assert_int_equal(b->link_target[b->link_len], 0);
    }
    assert_int_equal(a->nxattrs, b->nxattrs);
    for (size_t i = 0; i < a->nxattrs; i++) {
        assert_string_equal(a->xattrs[i].name, b->xattrs[i].name);
        assert_int_equal(a->xattrs[i].value_len, b->xattrs[i].value_len);
        assert_memory_equal(a->xattrs[i].value, b->xattrs[i].value, a->xattrs[i].value_len);
    }
    if (a->type == TREE_FILE) {
        assert_int_equal(a->nextents, b->nextents);
        for (size_t i = 0; i < a->nextents; i++) {
            assert_true(a->extents[i].offset == b->extents[i].offset);
            assert_int_equal(a->extents[i].len, b->extents[i].len);
            assert_memory_equal(a->extents[i].id, b->extents[i].id, TREE_ID_LEN);
        }
    }
    if (a->type == TREE_DIR)
        assert_memory_equal(a->subtree, b->subtree, TREE_ID_LEN);
}

static void encode(const tree *t, ob_buf *out)
{
    ob_buf_reset(out);
    tree_encode(t, out);
}

/* Decode must succeed; show the decoder's message if it does not. */
static void decode_ok(const uint8_t *p, size_t len, tree *t, ob_err *err)
{
    if (tree_decode(p, len, t, err) != 0)
        fail_msg("tree_decode failed: %s", ob_err_msg(err));
}

/* Decode must fail with `code`, leave the tree empty and give a message. */
static void expect_fail(const uint8_t *p, size_t len, int code)
{
    tree t;
    ob_err err = OB_ERR_INIT;
    t.n = 12345; /* garbage: decode must initialize */
    assert_int_equal(tree_decode(p, len, &t, &err), -1);
    if (code && err.code != code)
        fail_msg("expected error class %d, got %d: %s", code, err.code, ob_err_msg(&err));
    else
        assert_true(err.code == OB_ECORRUPT || err.code == OB_EUNSAFE);
    assert_true(strlen(ob_err_msg(&err)) > 0);
    assert_int_equal(t.n, 0);
    assert_null(t.nodes);
    ob_err_clear(&err);
}

/* ---- tests ---------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    tree t, d;
    build_full(&t);
    tree_sort(&t);
    sort_xattrs(&t);
    ob_buf b = OB_BUF_INIT;
    encode(&t, &b);
    assert_memory_equal(b.data, "OBT1", 4);

    ob_err err = OB_ERR_INIT;
    decode_ok(b.data, b.len, &d, &err);
    assert_int_equal(d.n, t.n);
    for (size_t i = 0; i < t.n; i++)
        assert_node_equal(&t.nodes[i], &d.nodes[i]);

    /* Decoded output re-encodes to the very same bytes. */
    ob_buf b2 = OB_BUF_INIT;
    encode(&d, &b2);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);

    ob_buf_free(&b);
    ob_buf_free(&b2);
    tree_free(&t);
    tree_free(&d);
}

static void test_empty_tree(void **state)
{
    (void)state;
    tree t, d;
    tree_init(&t);
    ob_buf b = OB_BUF_INIT;
    encode(&t, &b);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "OBT1\0\0\0\0", 8);
    ob_err err = OB_ERR_INIT;
    decode_ok(b.data, b.len, &d, &err);
    assert_int_equal(d.n, 0);
    assert_null(tree_find(&d, "x", 1));
    tree_free(&d);
    ob_buf_free(&b);
}

/* Known bytes for a tiny tree: pins the layout documented in FORMAT.md. */
static void test_golden_bytes(void **state)
{
    (void)state;
    tree t;
    tree_init(&t);
    tree_node *n = tree_add(&t);
    tree_node_set_name(n, "a", 1);
    n->type = TREE_FIFO;
    n->mode = 0644;
    n->uid = 1;
    n->gid = 2;
    n->user = ob_xstrdup("u");
    n->mtime_sec = -1;
    n->mtime_nsec = 5;
    n->nlink = 1;
    ob_buf b = OB_BUF_INIT;
    encode(&t, &b);
    static const uint8_t want[] = {
        'O', 'B', 'T', '1', 1, 0, 0, 0,                 /* magic, count */
        1, 0, 0, 0, 'a',                                 /* name */
        4,                                               /* type FIFO */
        0xa4, 0x01, 0, 0,                                /* mode 0644 */
        1, 0, 0, 0, 2, 0, 0, 0,                          /* uid, gid */
        1, 0, 0, 0, 'u',                                 /* user */
        0xff, 0xff, 0xff, 0xff,                          /* group: absent */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 5, 0, 0, 0, /* mtime */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,              /* atime */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,              /* ctime */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* dev, inode */
        1, 0, 0, 0,                                      /* nlink */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* size, rdev */
        0, 0, 0, 0,                                      /* no xattrs, no tail */
    };
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    ob_buf_free(&b);
    tree_free(&t);
}

static void test_deterministic(void **state)
{
    (void)state;
    tree t1, t2;
    ob_buf a = OB_BUF_INIT, b = OB_BUF_INIT;

    build_full(&t1);
    tree_sort(&t1);
    encode(&t1, &a);
    encode(&t1, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);

    /* Same entries added in reverse order, then sorted: same bytes. */
    build_full(&t2);
    for (size_t i = 0; i < t2.n / 2; i++) {
        tree_node tmp = t2.nodes[i];
        t2.nodes[i] = t2.nodes[t2.n - 1 - i];
        t2.nodes[t2.n - 1 - i] = tmp;
    }
    tree_sort(&t2);
    encode(&t2, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);

    /* xattr order in memory does not matter either (build_full leaves them
     * unsorted; sorting them must not change the bytes). */
    sort_xattrs(&t2);
    encode(&t2, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);

    ob_buf_free(&a);
    ob_buf_free(&b);
    tree_free(&t1);
    tree_free(&t2);
}

static void test_sort_order(void **state)
{
    (void)state;
    tree t;
    tree_init(&t);
    const char *names[] = {"b", "a\xff", "ab", "a", "B", "\x01"};
    for (size_t i = 0; i < 6; i++)
        tree_node_set_name(tree_add(&t), names[i], strlen(names[i]));
    tree_sort(&t);
    const char *want[] = {"\x01", "B", "a", "ab", "a\xff", "b"}; /* bytes, prefix first */
    for (size_t i = 0; i < 6; i++)
        assert_string_equal((char *)t.nodes[i].name, want[i]);
    tree_free(&t);
}

static void test_find(void **state)
{
    (void)state;
    tree t;
    build_full(&t);
    tree_sort(&t);
    for (size_t i = 0; i < t.n; i++)
        assert_ptr_equal(tree_find(&t, t.nodes[i].name, t.nodes[i].name_len), &t.nodes[i]);
    assert_null(tree_find(&t, "zfil", 4));
    assert_null(tree_find(&t, "zfilee", 6));
    assert_null(tree_find(&t, "", 0));
    assert_null(tree_find(&t, "\xff\xff", 2));
    tree_node *n = tree_find(&t, "dir\nwith newline", 16);
    assert_non_null(n);
    assert_int_equal(n->type, TREE_DIR);
    tree_free(&t);
}

static void test_name_is_safe(void **state)
{
    (void)state;
    assert_false(tree_name_is_safe((const uint8_t *)"", 0));
    assert_false(tree_name_is_safe(NULL, 0));
    assert_false(tree_name_is_safe((const uint8_t *)".", 1));
    assert_false(tree_name_is_safe((const uint8_t *)"..", 2));
    assert_false(tree_name_is_safe((const uint8_t *)"a/b", 3));
    assert_false(tree_name_is_safe((const uint8_t *)"/", 1));
    assert_false(tree_name_is_safe((const uint8_t *)"a\0b", 3));
    assert_true(tree_name_is_safe((const uint8_t *)"...", 3));
    assert_true(tree_name_is_safe((const uint8_t *)".a", 2));
    assert_true(tree_name_is_safe((const uint8_t *)"a\nb", 3));
    assert_true(tree_name_is_safe((const uint8_t *)"\xff", 1));
}

/* Encode a tree of FIFOs with the given raw names, in the given order
 * (tree_encode does not reorder nodes, which lets us forge bad input). */
static void encode_names(ob_buf *b, const char *const *names, const size_t *lens, size_t n)
{
    tree t;
    tree_init(&t);
    for (size_t i = 0; i < n; i++) {
        tree_node *nd = tree_add(&t);
        tree_node_set_name(nd, names[i], lens[i]);
        nd->type = TREE_FIFO;
    }
    encode(&t, b);
    tree_free(&t);
}

static void test_reject_names(void **state)
{
    (void)state;
    ob_buf b = OB_BUF_INIT;
    struct {
        const char *name;
        size_t len;
    } bad[] = {{"..", 2}, {".", 1}, {"", 0}, {"a/b", 3}, {"/", 1}, {"a\0b", 3}, {"\0", 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        encode_names(&b, &bad[i].name, &bad[i].len, 1);
        expect_fail(b.data, b.len, OB_EUNSAFE);
        /* Also as the second entry, after a valid one. */
        const char *two[] = {"\x01", bad[i].name};
        size_t lens[] = {1, bad[i].len};
        encode_names(&b, two, lens, 2);
        expect_fail(b.data, b.len, OB_EUNSAFE);
    }

    const char *dup[] = {"a", "b", "b"};
    size_t dlen[] = {1, 1, 1};
    encode_names(&b, dup, dlen, 3);
    expect_fail(b.data, b.len, OB_EUNSAFE);

    const char *unsorted[] = {"b", "a"};
    encode_names(&b, unsorted, dlen, 2);
    expect_fail(b.data, b.len, OB_EUNSAFE);

    const char *prefix[] = {"ab", "a"}; /* shorter must come first */
    size_t plen[] = {2, 1};
    encode_names(&b, prefix, plen, 2);
    expect_fail(b.data, b.len, OB_EUNSAFE);

    const char *ok[] = {"a", "ab"};
    size_t oklen[] = {1, 2};
    encode_names(&b, ok, oklen, 2);
    tree d;
    ob_err err = OB_ERR_INIT;
    decode_ok(b.data, b.len, &d, &err);
    tree_free(&d);
    ob_buf_free(&b);
}

static void test_reject_type(void **state)
{
    (void)state;
    uint8_t types[] = {0, 8, 255};
    for (size_t i = 0; i < sizeof types; i++) {
        tree t;
        tree_init(&t);
        tree_node *n = tree_add(&t);
        tree_node_set_name(n, "x", 1);
        n->type = types[i];
        ob_buf b = OB_BUF_INIT;
        encode(&t, &b);
        expect_fail(b.data, b.len, OB_EUNSAFE);
        ob_buf_free(&b);
        tree_free(&t);
    }
}

/* A single file node with the given extents. */
static void encode_file(ob_buf *b, uint64_t size, const tree_extent *ext, size_t n)
{
    tree t;
    tree_init(&t);
    tree_node *nd = tree_add(&t);
    tree_node_set_name(nd, "f", 1);
    nd->type = TREE_FILE;
    nd->size = size;
    nd->nextents = n;
    nd->extents = ob_xcalloc(n ? n : 1, sizeof(tree_extent));
    memcpy(nd->extents, ext, n * sizeof(tree_extent));
    encode(&t, b);
    tree_free(&t);
}

static void test_reject_extents(void **state)
{
    (void)state;
    ob_buf b = OB_BUF_INIT;
    tree d;
    ob_err err = OB_ERR_INIT;

    tree_extent ok[] = {{0, 10, 0, {0}}, {10, 10, 0, {1}}, {30, 10, 0, {2}}};
    encode_file(&b, 40, ok, 3);
    decode_ok(b.data, b.len, &d, &err);
    tree_free(&d);
    encode_file(&b, 100, ok, 3); /* trailing hole */
    decode_ok(b.data, b.len, &d, &err);
    tree_free(&d);

    tree_extent overlap[] = {{0, 10, 0, {0}}, {9, 10, 0, {1}}};
    encode_file(&b, 100, overlap, 2);
    expect_fail(b.data, b.len, OB_EUNSAFE);

    tree_extent backwards[] = {{50, 10, 0, {0}}, {0, 10, 0, {1}}};
    encode_file(&b, 100, backwards, 2);
    expect_fail(b.data, b.len, OB_EUNSAFE);

    tree_extent same[] = {{0, 10, 0, {0}}, {0, 10, 0, {0}}};
    encode_file(&b, 100, same, 2);
    expect_fail(b.data, b.len, OB_EUNSAFE);

    tree_extent past[] = {{0, 10, 0, {0}}, {95, 10, 0, {1}}};
    encode_file(&b, 100, past, 2);
    expect_fail(b.data, b.len, OB_EUNSAFE);

    tree_extent past_start[] = {{200, 1, 0, {0}}};
    encode_file(&b, 100, past_start, 1);
    expect_fail(b.data, b.len, OB_EUNSAFE);

    /* offset + len would wrap around 2^64 */
    tree_extent wrap[] = {{UINT64_MAX - 5, 100, 0, {0}}};
    encode_file(&b, UINT64_MAX, wrap, 1);
    expect_fail(b.data, b.len, OB_EUNSAFE);

    tree_extent empty[] = {{0, 0, 0, {0}}};
    encode_file(&b, 100, empty, 1);
    expect_fail(b.data, b.len, OB_ECORRUPT);

    ob_buf_free(&b);
}

static void test_reject_fields(void **state)
{
    (void)state;
    ob_buf b = OB_BUF_INIT;
    tree t;

    /* nanoseconds >= 1e9 */
    tree_init(&t);
    tree_node *n = tree_add(&t);
    tree_node_set_name(n, "x", 1);
    n->type = TREE_FIFO;
    n->atime_nsec = 1000000000;
    encode(&t, &b);
    expect_fail(b.data, b.len, OB_ECORRUPT);

    /* mode bits beyond 07777 (file type bits belong in `type`) */
    n->atime_nsec = 0;
    n->mode = 0100644;
    encode(&t, &b);
    expect_fail(b.data, b.len, OB_ECORRUPT);
    n->mode = 0644;

    /* duplicate xattr names */
    add_xattr(n, "user.a", "1", 1);
    add_xattr(n, "user.a", "2", 1);
    encode(&t, &b);
    expect_fail(b.data, b.len, OB_ECORRUPT);
    tree_free(&t);

    /* xattr name containing NUL, empty xattr name, user name with NUL,
     * symlink target with NUL: forged by patching bytes of a valid encoding. */
    tree_init(&t);
    n = tree_add(&t);
    tree_node_set_name(n, "x", 1);
    n->type = TREE_SYMLINK;
    n->user = ob_xstrdup("ab");
    n->link_target = (uint8_t *)ob_xstrdup("tt");
    n->link_len = 2;
    add_xattr(n, "u.n", "", 0);
    encode(&t, &b);
    tree d;
    ob_err err = OB_ERR_INIT;
    decode_ok(b.data, b.len, &d, &err);
    tree_free(&d);
    uint8_t *p;
    p = memmem(b.data, b.len, "ab", 2);
    p[1] = 0;
    expect_fail(b.data, b.len, OB_ECORRUPT);
    p[1] = 'b';
    p = memmem(b.data, b.len, "u.n", 3);
    p[1] = 0;
    expect_fail(b.data, b.len, OB_ECORRUPT);
    p[1] = '.';
    p = memmem(b.data, b.len, "tt", 2);
    p[0] = 0;
    expect_fail(b.data, b.len, OB_ECORRUPT);
    p[0] = 't';
    tree_free(&t);

    tree_init(&t);
    n = tree_add(&t);
    tree_node_set_name(n, "x", 1);
    n->type = TREE_FIFO;
    add_xattr(n, "", "v", 1);
    encode(&t, &b);
    expect_fail(b.data, b.len, OB_ECORRUPT);
    tree_free(&t);

    /* bad magic / version (2 is known since D64: test_version2) */
    static const uint8_t v3[] = {'O', 'B', 'T', '3', 0, 0, 0, 0};
    expect_fail(v3, sizeof v3, OB_ECORRUPT);
    static const uint8_t v0[] = {'O', 'B', 'T', '0', 0, 0, 0, 0};
    expect_fail(v0, sizeof v0, OB_ECORRUPT);
    expect_fail(NULL, 0, OB_ECORRUPT);

    ob_buf_free(&b);
}

static void test_truncated(void **state)
{
    (void)state;
    tree t;
    build_full(&t);
    tree_sort(&t);
    sort_xattrs(&t);
    ob_buf b = OB_BUF_INIT;
    encode(&t, &b);
    /* Every proper prefix must fail cleanly.  Copy each prefix into its own
     * allocation so ASan catches any read past its end. */
    for (size_t len = 0; len < b.len; len++) {
        uint8_t *p = ob_xmalloc(len);
        memcpy(p, b.data, len);
        expect_fail(p, len, 0);
        free(p);
    }
    ob_buf_free(&b);
    tree_free(&t);
}

static void test_trailing(void **state)
{
    (void)state;
    tree t;
    build_full(&t);
    tree_sort(&t);
    sort_xattrs(&t);
    ob_buf b = OB_BUF_INIT;
    encode(&t, &b);
    ob_buf_putc(&b, 0);
    expect_fail(b.data, b.len, OB_ECORRUPT);
    ob_buf_append(&b, "garbage", 7);
    expect_fail(b.data, b.len, OB_ECORRUPT);
    ob_buf_free(&b);
    tree_free(&t);
}

/* Counts claiming far more than the input holds fail before allocating
 * (ASan would report a multi-GiB calloc as an error). */
static void test_absurd_counts(void **state)
{
    (void)state;
    uint8_t hdr[] = {'O', 'B', 'T', '1', 0xff, 0xff, 0xff, 0xff};
    expect_fail(hdr, sizeof hdr, OB_ECORRUPT);

    ob_buf b = OB_BUF_INIT;
    tree t;
    tree_init(&t);
    tree_node *n = tree_add(&t);
    tree_node_set_name(n, "f", 1);
    n->type = TREE_FILE;
    encode(&t, &b);
    /* Layout ends with: nxattrs u32, nextents u32. */
    ob_le32(b.data + b.len - 4, UINT32_MAX);
    expect_fail(b.data, b.len, OB_ECORRUPT);
    ob_le32(b.data + b.len - 4, 0);
    ob_le32(b.data + b.len - 8, UINT32_MAX);
    expect_fail(b.data, b.len, OB_ECORRUPT);
    ob_le32(b.data + b.len - 8, 0);
    /* Name length larger than the input. */
    ob_le32(b.data + 8, UINT32_MAX);
    expect_fail(b.data, b.len, OB_ECORRUPT);
    ob_le32(b.data + 8, 1);
    /* Node count too large by one. */
    ob_le32(b.data + 4, 2);
    expect_fail(b.data, b.len, OB_ECORRUPT);
    ob_le32(b.data + 4, 1);
    tree d;
    ob_err err = OB_ERR_INIT;
    decode_ok(b.data, b.len, &d, &err);
    tree_free(&d);
    ob_buf_free(&b);
    tree_free(&t);
}

/* Mutate every byte of a valid encoding in several ways: decode must
 * either fail cleanly or succeed with a result that re-encodes to exactly
 * the mutated bytes (the encoding is canonical: no two byte strings decode
 * to the same tree). */
static void test_mutations_canonical(void **state)
{
    (void)state;
    tree t;
    tree_init(&t);
    /* A smaller tree than build_full keeps this quadratic test fast while
     * covering every field kind. */
    tree_node *n = tree_add(&t);
    tree_node_set_name(n, "d", 1);
    set_common(n, TREE_DIR, 1);
    n = tree_add(&t);
    tree_node_set_name(n, "f", 1);
    set_common(n, TREE_FILE, 2);
    n->size = 50;
    n->nextents = 2;
    n->extents = ob_xcalloc(2, sizeof(tree_extent));
    n->extents[0] = (tree_extent){0, 10, 0, {1}};
    n->extents[1] = (tree_extent){20, 10, 0, {2}};
    add_xattr(n, "user.a", "x\0y", 3);
    add_xattr(n, "user.b", "", 0);
    n = tree_add(&t);
    tree_node_set_name(n, "l", 1);
    set_common(n, TREE_SYMLINK, 3);
    n->link_target = (uint8_t *)ob_xstrdup("tgt");
    n->link_len = 3;
    free(n->group);
    n->group = NULL;

    ob_buf b = OB_BUF_INIT, re = OB_BUF_INIT;
    encode(&t, &b);
    static const uint8_t deltas[] = {0x01, 0x80, 0xff, 0x10};
    size_t accepted = 0;
    for (size_t i = 0; i < b.len; i++) {
        for (size_t k = 0; k < sizeof deltas; k++) {
            uint8_t *p = ob_xmalloc(b.len);
            memcpy(p, b.data, b.len);
            p[i] ^= deltas[k];
            tree d;
            ob_err err = OB_ERR_INIT;
            if (tree_decode(p, b.len, &d, &err) == 0) {
                accepted++;
                encode(&d, &re);
                assert_int_equal(re.len, b.len);
                assert_memory_equal(re.data, p, b.len);
                tree_free(&d);
            } else {
                assert_true(err.code == OB_ECORRUPT || err.code == OB_EUNSAFE);
                assert_int_equal(d.n, 0);
                ob_err_clear(&err);
            }
            free(p);
        }
    }
    assert_true(accepted > 0); /* e.g. flips inside times and IDs */
    ob_buf_free(&b);
    ob_buf_free(&re);
    tree_free(&t);
}

/* Random garbage after a valid header never crashes the decoder. */
static void test_random_garbage(void **state)
{
    (void)state;
    uint32_t x = 12345;
    for (int round = 0; round < 2000; round++) {
        size_t len = 8 + (size_t)(round % 300);
        uint8_t *p = ob_xmalloc(len);
        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            p[i] = (uint8_t)(x >> 16);
        }
        memcpy(p, "OBT1", 4);
        p[4] = (uint8_t)(round % 4);
        p[5] = p[6] = p[7] = 0;
        tree d;
        ob_err err = OB_ERR_INIT;
        if (tree_decode(p, len, &d, &err) == 0)
            tree_free(&d);
        ob_err_clear(&err);
        free(p);
    }
}

static void test_node_helpers(void **state)
{
    (void)state;
    tree t;
    tree_init(&t);
    for (int i = 0; i < 100; i++) { /* forces several reallocations */
        tree_node *n = tree_add(&t);
        assert_null(n->name);
        assert_int_equal(n->nxattrs, 0);
        char name[16];
        int len = snprintf(name, sizeof name, "n%03d", 99 - i);
        tree_node_set_name(n, name, (size_t)len);
        tree_node_set_name(n, name, (size_t)len); /* replacing frees the old */
    }
    tree_sort(&t);
    assert_string_equal((char *)t.nodes[0].name, "n000");
    assert_string_equal((char *)t.nodes[99].name, "n099");
    tree_node_free(&t.nodes[5]);
    tree_node_free(&t.nodes[5]); /* idempotent */
    tree_free(&t);
    tree_free(&t); /* safe after free */
}

/* Version 2 (D64): an extent with a skip makes the tree "OBT2", whose
 * extents carry it; both versions decode and re-encode to their own bytes,
 * and a tree without a skip stays version 1, byte for byte. */
static void test_version2(void **state)
{
    (void)state;
    ob_buf b = OB_BUF_INIT, re = OB_BUF_INIT;
    tree d;
    ob_err err = OB_ERR_INIT;

    tree_extent v1[] = {{0, 10, 0, {7}}, {10, 10, 0, {8}}};
    encode_file(&b, 20, v1, 2);
    assert_memory_equal(b.data, "OBT1", 4);
    size_t v1_len = b.len;

    tree_extent sl[] = {{0, 10, 0, {7}}, {10, 10, 4096, {7}}};
    encode_file(&b, 20, sl, 2);
    assert_memory_equal(b.data, "OBT2", 4);
    assert_int_equal(b.len, v1_len + 2 * 4); /* a u32 per extent */
    decode_ok(b.data, b.len, &d, &err);
    assert_int_equal(d.version, 2);
    assert_int_equal(d.nodes[0].nextents, 2);
    assert_int_equal(d.nodes[0].extents[0].skip, 0);
    assert_int_equal(d.nodes[0].extents[1].skip, 4096);
    assert_int_equal(d.nodes[0].extents[1].len, 10);
    assert_int_equal(d.nodes[0].extents[1].id[0], 7);
    encode(&d, &re);
    assert_int_equal(re.len, b.len);
    assert_memory_equal(re.data, b.data, b.len);
    tree_free(&d);

    /* Asked for, version 2 without any skip: still its own bytes again. */
    decode_ok(b.data, b.len, &d, &err);
    d.nodes[0].extents[1].skip = 0;
    ob_buf_reset(&re);
    encode(&d, &re);
    assert_memory_equal(re.data, "OBT2", 4);
    tree_free(&d);
    decode_ok(re.data, re.len, &d, &err);
    assert_int_equal(d.version, 2);
    assert_int_equal(d.nodes[0].extents[1].skip, 0);
    tree_free(&d);

    /* skip + len must be a number: past 4 GiB is damage. */
    tree_extent wrap[] = {{0, 10, UINT32_MAX - 5, {7}}};
    encode_file(&b, 20, wrap, 1);
    expect_fail(b.data, b.len, OB_ECORRUPT);
    /* A version 1 extent's size read as version 2 runs short. */
    encode_file(&b, 20, v1, 2);
    memcpy(b.data, "OBT2", 4);
    expect_fail(b.data, b.len, OB_ECORRUPT);
    memcpy(b.data, "OBT3", 4);
    expect_fail(b.data, b.len, OB_ECORRUPT);

    /* What a reader takes from a chunk: inside it, or nothing. */
    uint8_t chunk[100];
    for (int i = 0; i < 100; i++)
        chunk[i] = (uint8_t)i;
    tree_extent in = {0, 30, 70, {0}}, out = {0, 31, 70, {0}}, far = {0, 1, 100, {0}};
    assert_ptr_equal(tree_extent_bytes(&in, chunk, sizeof chunk), chunk + 70);
    assert_null(tree_extent_bytes(&out, chunk, sizeof chunk));
    assert_null(tree_extent_bytes(&far, chunk, sizeof chunk));
    tree_extent whole = {0, 100, 0, {0}};
    assert_ptr_equal(tree_extent_bytes(&whole, chunk, sizeof chunk), chunk);

    ob_buf_free(&b);
    ob_buf_free(&re);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_tree),
        cmocka_unit_test(test_golden_bytes),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_sort_order),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_name_is_safe),
        cmocka_unit_test(test_reject_names),
        cmocka_unit_test(test_reject_type),
        cmocka_unit_test(test_reject_extents),
        cmocka_unit_test(test_version2),
        cmocka_unit_test(test_reject_fields),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_trailing),
        cmocka_unit_test(test_absurd_counts),
        cmocka_unit_test(test_mutations_canonical),
        cmocka_unit_test(test_random_garbage),
        cmocka_unit_test(test_node_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
