/*
 * storage_test.c — the posix driver and the generic wrappers, against a
 * real directory from mkdtemp (a mock filesystem would not catch what
 * matters here: temp files left behind, rename semantics, mkdir races).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/storage.h"

/* An NFS client may resend a LINK whose reply was lost; the resent one
 * fails with EEXIST although the first made the link.  While this is set,
 * link() (interposed for the whole test binary) behaves like that. */
static int storage_test_link_resent;

int link(const char *from, const char *to)
{
    void *sym = dlsym(RTLD_NEXT, "link");
    int (*real)(const char *, const char *);
    memcpy(&real, &sym, sizeof real);
    int rc = real(from, to);
    if (rc == 0 && storage_test_link_resent) {
        errno = EEXIST;
        return -1;
    }
    return rc;
}

/* ------------------------------------------------------------- fixtures */

typedef struct fixture {
    char *base; /* mkdtemp directory */
    char *root; /* base/repo, the storage root */
    storage *s;
} fixture;

static int storage_test_rm_cb(const char *path, const struct stat *st, int type,
                              struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static void storage_test_rm_rf(const char *path)
{
    nftw(path, storage_test_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static char *storage_test_mkdtemp(void)
{
    char *t = ob_xstrdup("/tmp/ob-storage-test-XXXXXX");
    assert_non_null(mkdtemp(t));
    return t;
}

static int storage_test_setup(void **state)
{
    fixture *f = ob_xcalloc(1, sizeof *f);
    f->base = storage_test_mkdtemp();
    f->root = ob_xasprintf("%s/repo", f->base);
    ob_err err = OB_ERR_INIT;
    if (storage_posix_open(f->root, 1, &f->s, &err) < 0) {
        fprintf(stderr, "setup: %s\n", ob_err_msg(&err));
        ob_err_clear(&err);
        return -1;
    }
    *state = f;
    return 0;
}

static int storage_test_teardown(void **state)
{
    fixture *f = *state;
    storage_close(f->s);
    storage_test_rm_rf(f->base);
    free(f->root);
    free(f->base);
    free(f);
    return 0;
}

/* nftw has no user pointer; the tests that use these run single-threaded. */
static int storage_test_tmp_count;

static int storage_test_count_cb(const char *path, const struct stat *st, int type,
                                 struct FTW *ftw)
{
    (void)st;
    (void)type;
    if (strncmp(path + ftw->base, ".tmp-", 5) == 0)
        storage_test_tmp_count++;
    return 0;
}

static int storage_test_count_tmp(const char *dir)
{
    storage_test_tmp_count = 0;
    nftw(dir, storage_test_count_cb, 16, FTW_PHYS);
    return storage_test_tmp_count;
}

static void storage_test_put(storage *s, const char *name, const void *data, size_t len,
                             int flags)
{
    ob_err err = OB_ERR_INIT;
    int rc = storage_put(s, name, data, len, flags, &err);
    if (rc < 0)
        fail_msg("put %s: %s", name, ob_err_msg(&err));
    ob_err_clear(&err);
}

static void storage_test_put_str(storage *s, const char *name, const char *str)
{
    storage_test_put(s, name, str, strlen(str), 0);
}

static void storage_test_expect(storage *s, const char *name, const void *data, size_t len)
{
    ob_buf b = OB_BUF_INIT;
    ob_err err = OB_ERR_INIT;
    if (storage_get(s, name, 0, 0, &b, &err) < 0)
        fail_msg("get %s: %s", name, ob_err_msg(&err));
    assert_int_equal(b.len, len);
    if (len)
        assert_memory_equal(b.data, data, len);
    ob_buf_free(&b);
}

static int storage_test_count_substr(const char *hay, const char *needle)
{
    int n = 0;
    size_t nl = strlen(needle);
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += nl)
        n++;
    return n;
}

static int storage_test_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ----------------------------------------------------------- storage_open */

static void storage_test_open_ok(const char *url, int create)
{
    storage *s = NULL;
    ob_err err = OB_ERR_INIT;
    if (storage_open(url, create, &s, &err) < 0)
        fail_msg("open %s: %s", url, ob_err_msg(&err));
    assert_non_null(s);
    assert_string_equal(s->url, url); /* messages quote it as given */
    assert_string_equal(s->ops->scheme, "file");
    storage_close(s);
}

static void storage_test_open_fails(const char *url, int create, int code, const char *needle)
{
    storage *s = (storage *)1;
    ob_err err = OB_ERR_INIT;
    assert_int_equal(storage_open(url, create, &s, &err), -1);
    assert_null(s);
    if (err.code != code)
        fail_msg("open %s: code %d, want %d (%s)", url ? url : "(null)", err.code, code,
                 ob_err_msg(&err));
    if (needle && !strstr(ob_err_msg(&err), needle))
        fail_msg("open %s: message \"%s\" lacks \"%s\"", url ? url : "(null)",
                 ob_err_msg(&err), needle);
    ob_err_clear(&err);
}

static void test_open_urls(void **state)
{
    (void)state;
    char *base = storage_test_mkdtemp();
    char *u;

    storage_test_open_ok(base, 0);
    u = ob_xasprintf("%s/", base);
    storage_test_open_ok(u, 0);
    free(u);
    u = ob_xasprintf("file://%s", base);
    storage_test_open_ok(u, 0);
    free(u);
    u = ob_xasprintf("FILE://localhost%s", base);
    storage_test_open_ok(u, 0);
    free(u);

    /* create: missing directories are made (mode 0700), nested too. */
    u = ob_xasprintf("%s/a/b/c", base);
    storage_test_open_fails(u, 0, OB_ENOTFOUND, "does not exist");
    storage_test_open_ok(u, 1);
    struct stat st;
    assert_int_equal(stat(u, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    mode_t um = umask(0);
    umask(um);
    assert_int_equal(st.st_mode & 0777, 0700 & ~um);
    storage_test_open_ok(u, 1); /* already there: fine */
    free(u);

    /* file:// paths are percent-decoded. */
    u = ob_xasprintf("file://%s/sp%%20ace", base);
    storage_test_open_ok(u, 1);
    free(u);
    u = ob_xasprintf("%s/sp ace", base);
    assert_true(storage_test_is_dir(u));
    free(u);
    u = ob_xasprintf("file://%s/bad%%zz", base);
    storage_test_open_fails(u, 1, OB_EUSAGE, "malformed");
    free(u);
    u = ob_xasprintf("file://%s/bad%%2", base);
    storage_test_open_fails(u, 1, OB_EUSAGE, "malformed");
    free(u);
    u = ob_xasprintf("file://%s/nul%%00x", base);
    storage_test_open_fails(u, 1, OB_EUSAGE, "%00");
    free(u);

    storage_test_open_fails(NULL, 0, OB_EUSAGE, NULL);
    storage_test_open_fails("", 0, OB_EUSAGE, NULL);
    storage_test_open_fails("repo", 1, OB_EUSAGE, "relative");
    storage_test_open_fails("./repo", 1, OB_EUSAGE, "relative");
    storage_test_open_fails("../repo", 1, OB_EUSAGE, "relative");
    storage_test_open_fails("file:repo", 1, OB_EUSAGE, NULL);
    storage_test_open_fails("file://host/srv/repo", 1, OB_EUSAGE, "remote");
    storage_test_open_fails("file://relative/", 1, OB_EUSAGE, NULL);
    /* s3:// goes to the S3 driver (storage_s3_test.c tests it); without
     * credentials it stops before any network traffic. */
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    storage_test_open_fails("s3://bucket/prefix", 1, OB_EUSAGE, "AWS_ACCESS_KEY_ID");
    storage_test_open_fails("S3://bucket", 1, OB_EUSAGE, "AWS_SECRET_ACCESS_KEY");
    storage_test_open_fails("sftp://host/repo", 1, OB_EUSAGE, "unsupported scheme");
    /* Nothing was created in the working directory by the refused ones. */
    assert_int_not_equal(access("repo", F_OK), 0);

    /* A file where the directory should be. */
    u = ob_xasprintf("%s/file", base);
    int fd = open(u, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    storage_test_open_fails(u, 0, OB_EUSAGE, "not a directory");
    storage_test_open_fails(u, 1, OB_EUSAGE, "not a directory");
    char *under = ob_xasprintf("%s/sub", u);
    storage_test_open_fails(under, 1, OB_EIO, "Not a directory");
    free(under);
    free(u);

    /* The driver entry point refuses relative roots too. */
    storage *s = NULL;
    ob_err err = OB_ERR_INIT;
    assert_int_equal(storage_posix_open("relative", 1, &s, &err), -1);
    assert_int_equal(err.code, OB_EUSAGE);
    assert_null(s);
    ob_err_clear(&err);

    storage_close(NULL); /* harmless */
    storage_test_rm_rf(base);
    free(base);
}

/* A storage opened by file:// URL works and names itself by that URL. */
static void test_open_file_url_roundtrip(void **state)
{
    fixture *f = *state;
    char *url = ob_xasprintf("file://%s", f->root);
    storage *s = NULL;
    ob_err err = OB_ERR_INIT;
    assert_int_equal(storage_open(url, 0, &s, &err), 0);
    storage_test_put_str(s, "config", "hello");
    storage_test_expect(f->s, "config", "hello", 5);
    ob_buf b = OB_BUF_INIT;
    assert_int_equal(storage_get(s, "missing", 0, 0, &b, &err), -1);
    char *head = ob_xasprintf("storage %s: object missing", url);
    assert_ptr_equal(strstr(ob_err_msg(&err), head), ob_err_msg(&err));
    free(head);
    ob_err_clear(&err);
    ob_buf_free(&b);
    storage_close(s);
    free(url);
}

/* -------------------------------------------------------------- put / get */

static void test_roundtrip(void **state)
{
    fixture *f = *state;
    storage_test_put_str(f->s, "config", "hello");
    storage_test_expect(f->s, "config", "hello", 5);

    /* Binary content with NULs, big enough to need several internal steps. */
    size_t n = 300000;
    uint8_t *big = ob_xmalloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 7919 >> 3);
    big[0] = big[n / 2] = 0;
    storage_test_put(f->s, "data/ab/ab0123456789", big, n, 0);
    storage_test_expect(f->s, "data/ab/ab0123456789", big, n);
    free(big);

    /* Empty objects exist and read back empty. */
    storage_test_put(f->s, "locks/empty", NULL, 0, 0);
    storage_test_expect(f->s, "locks/empty", NULL, 0);
    ob_buf b = OB_BUF_INIT;
    ob_err err = OB_ERR_INIT;
    assert_int_equal(storage_get(f->s, "locks/empty", 0, 0, &b, &err), 0);
    assert_non_null(b.data); /* ob_buf contract: NUL-terminated */
    assert_int_equal(b.data[0], 0);
    ob_buf_free(&b);

    /* Files 0600, created directories 0700 (umask may only remove bits). */
    mode_t um = umask(0);
    umask(um);
    struct stat st;
    char *p = ob_xasprintf("%s/data/ab/ab0123456789", f->root);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600 & ~um);
    free(p);
    p = ob_xasprintf("%s/data/ab", f->root);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700 & ~um);
    free(p);

    assert_int_equal(storage_test_count_tmp(f->root), 0);
}

static void storage_test_range(storage *s, uint64_t off, uint64_t len, const char *want)
{
    ob_buf b = OB_BUF_INIT;
    ob_err err = OB_ERR_INIT;
    ob_buf_append(&b, "junk", 4); /* get replaces, never appends */
    if (storage_get(s, "obj", off, len, &b, &err) < 0)
        fail_msg("get [%llu,+%llu): %s", (unsigned long long)off, (unsigned long long)len,
                 ob_err_msg(&err));
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    assert_int_equal(b.data[b.len], 0);
    ob_buf_free(&b);
}

static void storage_test_range_fails(storage *s, uint64_t off, uint64_t len, const char *needle)
{
    ob_buf b = OB_BUF_INIT;
    ob_err err = OB_ERR_INIT;
    ob_buf_append(&b, "junk", 4);
    assert_int_equal(storage_get(s, "obj", off, len, &b, &err), -1);
    assert_int_equal(err.code, OB_ECORRUPT);
    assert_non_null(strstr(ob_err_msg(&err), "object obj is 10 bytes"));
    assert_non_null(strstr(ob_err_msg(&err), "truncated"));
    if (needle && !strstr(ob_err_msg(&err), needle))
        fail_msg("message \"%s\" lacks \"%s\"", ob_err_msg(&err), needle);
    assert_int_equal(b.len, 0); /* no half results */
    ob_err_clear(&err);
    ob_buf_free(&b);
}

static void test_ranged_get(void **state)
{
    fixture *f = *state;
    storage_test_put_str(f->s, "obj", "0123456789");
    storage_test_range(f->s, 0, 0, "0123456789");
    storage_test_range(f->s, 2, 3, "234");
    storage_test_range(f->s, 7, 0, "789");
    storage_test_range(f->s, 9, 1, "9");
    storage_test_range(f->s, 0, 10, "0123456789");
    storage_test_range(f->s, 10, 0, ""); /* empty tail at the very end */

    storage_test_range_fails(f->s, 8, 3, "[8,11)");
    storage_test_range_fails(f->s, 10, 1, "[10,11)");
    storage_test_range_fails(f->s, 11, 0, NULL);
    storage_test_range_fails(f->s, 0, 11, "[0,11)");
    storage_test_range_fails(f->s, UINT64_MAX - 1, 5, NULL); /* no wraparound */
    storage_test_range_fails(f->s, 5, UINT64_MAX, NULL);

    /* storage_getv: the same bytes, scattered (through get and a copy on
     * a driver without getv); past the end fails as a range does. */
    char a[2], b[1], c[4];
    struct iovec iov[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
    ob_err err = OB_ERR_INIT;
    assert_int_equal(storage_getv(f->s, "obj", 3, iov, 3, &err), 0);
    assert_memory_equal(a, "34", 2);
    assert_memory_equal(b, "5", 1);
    assert_memory_equal(c, "6789", 4);
    assert_int_equal(storage_getv(f->s, "obj", 4, iov, 3, &err), -1);
    assert_int_equal(err.code, OB_ECORRUPT);
    ob_err_clear(&err);
}

static void storage_test_missing(storage *s, const char *name)
{
    ob_buf b = OB_BUF_INIT;
    ob_err err = OB_ERR_INIT;
    uint64_t size = 42;
    assert_int_equal(storage_get(s, name, 0, 0, &b, &err), -1);
    if (err.code != OB_ENOTFOUND)
        fail_msg("get %s: code %d: %s", name, err.code, ob_err_msg(&err));
    char *head = ob_xasprintf("storage %s: object %s", s->url, name);
    assert_ptr_equal(strstr(ob_err_msg(&err), head), ob_err_msg(&err));
    free(head);
    ob_err_clear(&err);
    assert_int_equal(storage_stat(s, name, &size, &err), -1);
    assert_int_equal(err.code, OB_ENOTFOUND);
    assert_int_equal(size, 42);
    ob_err_clear(&err);
    ob_buf_free(&b);
}

static void test_get_missing(void **state)
{
    fixture *f = *state;
    storage_test_put_str(f->s, "config", "c");
    storage_test_put_str(f->s, "data/ab/abcd", "x");
    storage_test_missing(f->s, "nope");
    storage_test_missing(f->s, "no/such/dir/obj");
    storage_test_missing(f->s, "data/ab/abce");
    storage_test_missing(f->s, "data");        /* a directory is not an object */
    storage_test_missing(f->s, "config/x");    /* a file where a dir would be */

    /* The name is said once, in "storage URL: object NAME does not exist". */
    ob_buf b = OB_BUF_INIT;
    ob_err err = OB_ERR_INIT;
    assert_int_equal(storage_get(f->s, "nope", 0, 0, &b, &err), -1);
    assert_int_equal(storage_test_count_substr(ob_err_msg(&err), "nope"), 1);
    ob_err_clear(&err);
    ob_buf_free(&b);
}

static void test_create_flag(void **state)
{
    fixture *f = *state;
    ob_err err = OB_ERR_INIT;
    /* Our own link, reported as EEXIST by a resent LINK: success, no
     * temporary left; a real competitor's object still fails below. */
    storage_test_link_resent = 1;
    storage_test_put(f->s, "keys/k1", "original", 8, STORAGE_PUT_CREATE);
    assert_int_equal(storage_test_count_tmp(f->root), 0);
    assert_int_equal(storage_put(f->s, "keys/k1", "intruder!!", 10, STORAGE_PUT_CREATE, &err),
                     -1);
    assert_int_equal(err.code, OB_EEXIST);
    ob_err_clear(&err);
    storage_test_link_resent = 0;
    storage_test_expect(f->s, "keys/k1", "original", 8);
    assert_int_equal(storage_put(f->s, "keys/k1", "intruder!!", 10, STORAGE_PUT_CREATE, &err),
                     -1);
    assert_int_equal(storage_put(f->s, "keys/k1", "intruder!!", 10, STORAGE_PUT_CREATE, &err),
                     -1);
    assert_int_equal(err.code, OB_EEXIST);
    assert_non_null(strstr(ob_err_msg(&err), "already exists"));
    assert_int_equal(storage_test_count_substr(ob_err_msg(&err), "keys/k1"), 1);
    ob_err_clear(&err);
    storage_test_expect(f->s, "keys/k1", "original", 8);
    assert_int_equal(storage_test_count_tmp(f->root), 0);

    /* A plain put may still replace it. */
    storage_test_put_str(f->s, "keys/k1", "replaced");
    storage_test_expect(f->s, "keys/k1", "replaced", 8);

    /* CREATE at the root level and into a fresh directory. */
    storage_test_put(f->s, "lockfile", "1", 1, STORAGE_PUT_CREATE);
    storage_test_put(f->s, "fresh/dir/obj", "2", 1, STORAGE_PUT_CREATE);
    assert_int_equal(storage_test_count_tmp(f->root), 0);
}

static void test_put_replaces_atomically(void **state)
{
    fixture *f = *state;
    storage_test_put_str(f->s, "index/current", "version one, longer");
    char *p = ob_xasprintf("%s/index/current", f->root);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st1, st2;
    assert_int_equal(fstat(fd, &st1), 0);

    storage_test_put_str(f->s, "index/current", "v2");
    storage_test_expect(f->s, "index/current", "v2", 2);

    /* The reader holding the old object still sees all of it: the new one
     * was renamed over the name, not written into the old file. */
    char buf[64];
    ssize_t r = pread(fd, buf, sizeof buf, 0);
    assert_int_equal(r, 19);
    assert_memory_equal(buf, "version one, longer", 19);
    assert_int_equal(stat(p, &st2), 0);
    assert_int_not_equal(st1.st_ino, st2.st_ino);
    close(fd);
    free(p);
    assert_int_equal(storage_test_count_tmp(f->root), 0);
}

/* ------------------------------------------------------------------- list */

typedef struct collected {
    char **names;
    uint64_t *sizes;
    size_t n, cap;
    size_t stop_after; /* 0: never */
} collected;

static int storage_test_collect_cb(const char *name, uint64_t size, void *ud)
{
    collected *c = ud;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->names = ob_xrealloc(c->names, c->cap * sizeof *c->names);
        c->sizes = ob_xrealloc(c->sizes, c->cap * sizeof *c->sizes);
    }
    c->names[c->n] = ob_xstrdup(name);
    c->sizes[c->n] = size;
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void storage_test_collected_free(collected *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->names[i]);
    free(c->names);
    free(c->sizes);
    memset(c, 0, sizeof *c);
}

static void storage_test_list(storage *s, const char *prefix, collected *c)
{
    ob_err err = OB_ERR_INIT;
    if (storage_list(s, prefix, storage_test_collect_cb, c, &err) < 0)
        fail_msg("list %s: %s", prefix, ob_err_msg(&err));
}

static int storage_test_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The listed names, sorted, must be exactly want[0..n) and each size must
 * be the length the test stored (size_of). */
static void storage_test_list_exact(storage *s, const char *prefix, char **want, size_t n,
                                    uint64_t (*size_of)(const char *))
{
    collected c = {0};
    storage_test_list(s, prefix, &c);
    if (c.n != n)
        fail_msg("list \"%s\": %zu names, want %zu", prefix, c.n, n);
    for (size_t i = 0; i < c.n; i++)
        if (c.sizes[i] != size_of(c.names[i]))
            fail_msg("list \"%s\": %s has size %llu", prefix, c.names[i],
                     (unsigned long long)c.sizes[i]);
    char **sorted_want = ob_xmalloc(n * sizeof *sorted_want);
    if (n)
        memcpy(sorted_want, want, n * sizeof *sorted_want);
    if (n) {
        qsort(sorted_want, n, sizeof *sorted_want, storage_test_strcmp);
        qsort(c.names, c.n, sizeof *c.names, storage_test_strcmp);
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(c.names[i], sorted_want[i]) != 0)
            fail_msg("list \"%s\": got %s, want %s", prefix, c.names[i], sorted_want[i]);
    free(sorted_want);
    storage_test_collected_free(&c);
}

/* Object contents in the list test are the name itself, so size == strlen. */
static uint64_t storage_test_name_len(const char *name)
{
    return strlen(name);
}

static void storage_test_plant(const char *root, const char *rel)
{
    char *p = ob_xasprintf("%s/%s", root, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "tmp", 3), 3);
    close(fd);
    free(p);
}

#define STORAGE_TEST_NDATA 1200

static void test_list(void **state)
{
    fixture *f = *state;
    char *data[STORAGE_TEST_NDATA];
    for (int i = 0; i < STORAGE_TEST_NDATA; i++) {
        /* Varying name lengths give varying sizes. */
        data[i] = ob_xasprintf("data/%02x/%02x%0*x", i % 97, i % 97, 4 + i % 13, i);
        storage_test_put_str(f->s, data[i], data[i]);
    }
    char *snaps[] = {"snapshots/ab01", "snapshots/ab02", "snapshots/cd03"};
    char *others[] = {"config", "keys/k1", "database"};
    for (size_t i = 0; i < 3; i++) {
        storage_test_put_str(f->s, snaps[i], snaps[i]);
        storage_test_put_str(f->s, others[i], others[i]);
    }
    /* Leftovers of crashed puts, and other hidden files: never listed. */
    storage_test_plant(f->root, "data/00/.tmp-0123456789abcdef");
    storage_test_plant(f->root, "data/.tmp-feedface");
    storage_test_plant(f->root, ".tmp-cafe");
    storage_test_plant(f->root, "snapshots/.hidden");

    storage_test_list_exact(f->s, "data/", data, STORAGE_TEST_NDATA, storage_test_name_len);

    size_t nall = STORAGE_TEST_NDATA + 6;
    char **all = ob_xmalloc(nall * sizeof *all);
    memcpy(all, data, sizeof data);
    memcpy(all + STORAGE_TEST_NDATA, snaps, sizeof snaps);
    memcpy(all + STORAGE_TEST_NDATA + 3, others, sizeof others);
    storage_test_list_exact(f->s, "", all, nall, storage_test_name_len);
    free(all);

    storage_test_list_exact(f->s, "snapshots/", snaps, 3, storage_test_name_len);
    storage_test_list_exact(f->s, "snapshots/ab", snaps, 2, storage_test_name_len);
    storage_test_list_exact(f->s, "snapshots/cd03", snaps + 2, 1, storage_test_name_len);
    storage_test_list_exact(f->s, "conf", others, 1, storage_test_name_len);
    /* Plain string prefix, as in S3: "data" also matches "database". */
    char **withdb = ob_xmalloc((STORAGE_TEST_NDATA + 1) * sizeof *withdb);
    memcpy(withdb, data, sizeof data);
    withdb[STORAGE_TEST_NDATA] = "database";
    storage_test_list_exact(f->s, "data", withdb, STORAGE_TEST_NDATA + 1,
                            storage_test_name_len);
    free(withdb);
    char *in05[STORAGE_TEST_NDATA];
    size_t n05 = 0;
    for (int i = 0; i < STORAGE_TEST_NDATA; i++)
        if (i % 97 == 5)
            in05[n05++] = data[i];
    storage_test_list_exact(f->s, "data/05/", in05, n05, storage_test_name_len);

    /* Nothing there: zero results, not an error. */
    storage_test_list_exact(f->s, "missing/", NULL, 0, storage_test_name_len);
    storage_test_list_exact(f->s, "missing/deeper/", NULL, 0, storage_test_name_len);
    storage_test_list_exact(f->s, "snapshots/zz", NULL, 0, storage_test_name_len);
    storage_test_list_exact(f->s, "config/", NULL, 0, storage_test_name_len);
    storage_test_list_exact(f->s, ".tmp-", NULL, 0, storage_test_name_len);

    /* A callback returning non-zero stops the walk, and list succeeds. */
    collected c = {0};
    c.stop_after = 5;
    storage_test_list(f->s, "data/", &c);
    assert_int_equal(c.n, 5);
    storage_test_collected_free(&c);

    ob_err err = OB_ERR_INIT;
    const char *bad[] = {"/etc/", "../", "data/../", "data//", "./", "a/./b/", "x\001y",
                         ".tmp-x/"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        collected d = {0};
        assert_int_equal(storage_list(f->s, bad[i], storage_test_collect_cb, &d, &err), -1);
        if (err.code != OB_EUSAGE)
            fail_msg("prefix %zu: code %d: %s", i, err.code, ob_err_msg(&err));
        assert_int_equal(d.n, 0);
        ob_err_clear(&err);
    }

    for (int i = 0; i < STORAGE_TEST_NDATA; i++)
        free(data[i]);
}

/* ---------------------------------------------------------- delete / stat */

static void test_delete(void **state)
{
    fixture *f = *state;
    ob_err err = OB_ERR_INIT;
    uint64_t size;
    storage_test_put_str(f->s, "snapshots/s1", "snap");
    assert_int_equal(storage_delete(f->s, "snapshots/s1", &err), 0);
    assert_int_equal(storage_stat(f->s, "snapshots/s1", &size, &err), -1);
    assert_int_equal(err.code, OB_ENOTFOUND);
    ob_err_clear(&err);
    assert_int_equal(storage_delete(f->s, "snapshots/s1", &err), 0); /* again */
    assert_int_equal(storage_delete(f->s, "never/existed/x", &err), 0);
    assert_int_equal(err.code, OB_OK);

    /* The directory stays (removing it would race with concurrent puts)
     * and lists as empty. */
    char *p = ob_xasprintf("%s/snapshots", f->root);
    assert_true(storage_test_is_dir(p));
    free(p);
    storage_test_list_exact(f->s, "snapshots/", NULL, 0, storage_test_name_len);

    /* A directory is not an object and is not removed. */
    storage_test_put_str(f->s, "data/ab/abcd", "x");
    assert_int_equal(storage_delete(f->s, "data/ab", &err), -1);
    assert_int_not_equal(err.code, OB_OK);
    assert_int_equal(storage_test_count_substr(ob_err_msg(&err), "data/ab"), 1);
    ob_err_clear(&err);
    storage_test_expect(f->s, "data/ab/abcd", "x", 1);
}

static void test_stat(void **state)
{
    fixture *f = *state;
    ob_err err = OB_ERR_INIT;
    uint64_t size = 99;
    storage_test_put(f->s, "zero", NULL, 0, 0);
    assert_int_equal(storage_stat(f->s, "zero", &size, &err), 0);
    assert_int_equal(size, 0);
    storage_test_put_str(f->s, "one", "1");
    assert_int_equal(storage_stat(f->s, "one", &size, &err), 0);
    assert_int_equal(size, 1);
    uint8_t *big = ob_xcalloc(1, 70000);
    storage_test_put(f->s, "data/big", big, 70000, 0);
    free(big);
    assert_int_equal(storage_stat(f->s, "data/big", &size, &err), 0);
    assert_int_equal(size, 70000);
    assert_int_equal(storage_stat(f->s, "data/big", NULL, &err), 0); /* size optional */
    assert_int_equal(storage_stat(f->s, "data/nope", &size, &err), -1);
    assert_int_equal(err.code, OB_ENOTFOUND);
    ob_err_clear(&err);
}

/* ---------------------------------------------------------- hostile names */

static void test_hostile_names(void **state)
{
    fixture *f = *state;
    const char *bad[] = {
        "",        "/etc/passwd", "..",      "../escape", "a/../../escape", "a/..",
        ".",       "./config",    "a/./b",   "a//b",      "a/",             "/",
        ".tmp-x",  "data/.tmp-1", ".hidden", "a\nb",      "a\001b",         "x\x7f",
        "\033[2J",
    };
    ob_err err = OB_ERR_INIT;
    ob_buf b = OB_BUF_INIT;
    uint64_t size;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *n = bad[i];
        assert_int_equal(storage_put(f->s, n, "x", 1, 0, &err), -1);
        if (err.code != OB_EUSAGE)
            fail_msg("put bad[%zu]: code %d: %s", i, err.code, ob_err_msg(&err));
        /* Messages never carry raw control characters to a terminal. */
        for (const char *p = ob_err_msg(&err); *p; p++)
            assert_false((unsigned char)*p < 0x20 || *p == 0x7f);
        ob_err_clear(&err);
        assert_int_equal(storage_put(f->s, n, "x", 1, STORAGE_PUT_CREATE, &err), -1);
        assert_int_equal(err.code, OB_EUSAGE);
        ob_err_clear(&err);
        assert_int_equal(storage_get(f->s, n, 0, 0, &b, &err), -1);
        assert_int_equal(err.code, OB_EUSAGE);
        ob_err_clear(&err);
        assert_int_equal(storage_stat(f->s, n, &size, &err), -1);
        assert_int_equal(err.code, OB_EUSAGE);
        ob_err_clear(&err);
        assert_int_equal(storage_delete(f->s, n, &err), -1);
        assert_int_equal(err.code, OB_EUSAGE);
        ob_err_clear(&err);
    }
    /* The escaped control character is shown instead. */
    assert_int_equal(storage_put(f->s, "a\001b", "x", 1, 0, &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "a\\x01b"));
    ob_err_clear(&err);

    assert_int_equal(storage_put(f->s, NULL, "x", 1, 0, &err), -1);
    assert_int_equal(err.code, OB_EUSAGE);
    ob_err_clear(&err);
    assert_int_equal(storage_get(f->s, NULL, 0, 0, &b, &err), -1);
    assert_int_equal(err.code, OB_EUSAGE);
    ob_err_clear(&err);
    assert_int_equal(storage_put(f->s, "ok", NULL, 5, 0, &err), -1);
    assert_int_equal(err.code, OB_EUSAGE);
    ob_err_clear(&err);

    /* Nothing escaped the root, and nothing was left inside it. */
    char *p = ob_xasprintf("%s/escape", f->base);
    assert_int_not_equal(access(p, F_OK), 0);
    free(p);
    assert_int_equal(storage_test_count_tmp(f->base), 0);
    collected c = {0};
    storage_test_list(f->s, "", &c);
    assert_int_equal(c.n, 0);
    storage_test_collected_free(&c);

    /* Names that merely contain dots are fine. */
    storage_test_put_str(f->s, "a..b/c.d", "ok");
    storage_test_expect(f->s, "a..b/c.d", "ok", 2);
    ob_buf_free(&b);
}

/* --------------------------------------------------------------- failures */

/* Every failed put reads "storage ROOT: object NAME: …" with NAME once,
 * and leaves no temporary file anywhere. */
static void storage_test_put_fails(fixture *f, const char *name, int flags, int code)
{
    ob_err err = OB_ERR_INIT;
    assert_int_equal(storage_put(f->s, name, "payload", 7, flags, &err), -1);
    if (err.code != code)
        fail_msg("put %s: code %d, want %d: %s", name, err.code, code, ob_err_msg(&err));
    char *head = ob_xasprintf("storage %s: object %s", f->root, name);
    if (strstr(ob_err_msg(&err), head) != ob_err_msg(&err))
        fail_msg("message \"%s\" does not start with \"%s\"", ob_err_msg(&err), head);
    free(head);
    char *word = ob_xasprintf(" %s", name); /* "obj" is inside "object" */
    if (storage_test_count_substr(ob_err_msg(&err), word) != 1)
        fail_msg("name repeated or missing: %s", ob_err_msg(&err));
    free(word);
    ob_err_clear(&err);
    assert_int_equal(storage_test_count_tmp(f->root), 0);
}

static void test_put_failures(void **state)
{
    fixture *f = *state;

    /* A file where a directory of the object's path is needed. */
    storage_test_put_str(f->s, "data", "i am a file");
    storage_test_put_fails(f, "data/ab/abcd", 0, OB_EIO);
    storage_test_put_fails(f, "data/ab/abcd", STORAGE_PUT_CREATE, OB_EIO);
    storage_test_put_fails(f, "data/abcd", 0, OB_EIO);

    /* A directory where the object should go: the temp file is written and
     * synced, then the rename fails, and the temp file must be cleaned up. */
    storage_test_put_str(f->s, "blob/sub", "x");
    storage_test_put_fails(f, "blob", 0, OB_EIO);
    storage_test_put_fails(f, "blob", STORAGE_PUT_CREATE, OB_EEXIST);
    storage_test_expect(f->s, "data", "i am a file", 11);
    storage_test_expect(f->s, "blob/sub", "x", 1);
}

/* A write that fails midway (file size limit standing in for a full disk,
 * which root cannot easily provoke) must clean up its temp file. */
/* Files this process writes stop at 4 KiB (EFBIG, not SIGXFSZ) until
 * storage_test_unlimit. */
typedef struct storage_test_limit {
    struct rlimit old;
    void (*oldsig)(int);
} storage_test_limit;

static void storage_test_limit_size(storage_test_limit *l)
{
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &l->old), 0);
    l->oldsig = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = l->old;
    lim.rlim_cur = 4096;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

static void storage_test_unlimit(const storage_test_limit *l)
{
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &l->old), 0);
    signal(SIGXFSZ, l->oldsig);
}

static void test_put_write_failure(void **state)
{
    fixture *f = *state;
    storage_test_limit lim;
    storage_test_limit_size(&lim);

    size_t n = 65536;
    uint8_t *big = ob_xcalloc(1, n);
    ob_err err = OB_ERR_INIT;
    int rc = storage_put(f->s, "data/ff/big", big, n, 0, &err);
    int rc2 = storage_put(f->s, "data/ff/small", big, 100, 0, NULL); /* fits */

    storage_test_unlimit(&lim);
    free(big);

    assert_int_equal(rc, -1);
    assert_int_equal(err.code, OB_EIO);
    assert_non_null(strstr(ob_err_msg(&err), "writing"));
    assert_non_null(strstr(ob_err_msg(&err), "object data/ff/big"));
    ob_err_clear(&err);
    assert_int_equal(rc2, 0);
    assert_int_equal(storage_test_count_tmp(f->root), 0);
    uint64_t size;
    assert_int_equal(storage_stat(f->s, "data/ff/big", &size, &err), -1);
    assert_int_equal(err.code, OB_ENOTFOUND);
    ob_err_clear(&err);
}

/* An object written piece by piece: invisible until commit, then exactly
 * the pieces; abort and a failed piece leave nothing behind; commit
 * honours STORAGE_PUT_CREATE. */
static void test_write_pieces(void **state)
{
    fixture *f = *state;
    ob_err err = OB_ERR_INIT;
    size_t n = 3u << 20;
    uint8_t *big = ob_xmalloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 7 + (i >> 13));

    storage_write *w;
    assert_int_equal(storage_write_open(f->s, "data/0a/streamed", &w, &err), 0);
    size_t off = 0, piece = 1;
    while (off < n) {
        size_t k = n - off < piece ? n - off : piece;
        assert_int_equal(storage_write_append(w, big + off, k, &err), 0);
        off += k;
        piece = piece * 3 + 1;
        uint64_t size;
        /* Nothing under the name before commit. */
        assert_int_equal(storage_stat(f->s, "data/0a/streamed", &size, &err), -1);
        assert_int_equal(err.code, OB_ENOTFOUND);
        ob_err_clear(&err);
    }
    assert_int_equal(storage_write_size(w), n);
    assert_int_equal(storage_test_count_tmp(f->root), 1);
    assert_int_equal(storage_write_commit(w, 0, &err), 0);
    storage_test_expect(f->s, "data/0a/streamed", big, n);
    assert_int_equal(storage_test_count_tmp(f->root), 0);

    /* Abort: no object, no temporary. */
    assert_int_equal(storage_write_open(f->s, "data/0b/aborted", &w, &err), 0);
    assert_int_equal(storage_write_append(w, big, 1000, &err), 0);
    storage_write_abort(w);
    storage_write_abort(NULL);
    uint64_t size;
    assert_int_equal(storage_stat(f->s, "data/0b/aborted", &size, &err), -1);
    ob_err_clear(&err);
    assert_int_equal(storage_test_count_tmp(f->root), 0);

    /* CREATE on commit: an existing object is kept, the write is dropped. */
    assert_int_equal(storage_write_open(f->s, "data/0a/streamed", &w, &err), 0);
    assert_int_equal(storage_write_append(w, "intruder", 8, &err), 0);
    assert_int_equal(storage_write_commit(w, STORAGE_PUT_CREATE, &err), -1);
    assert_int_equal(err.code, OB_EEXIST);
    assert_int_equal(storage_test_count_substr(ob_err_msg(&err), "data/0a/streamed"), 1);
    ob_err_clear(&err);
    storage_test_expect(f->s, "data/0a/streamed", big, n);
    assert_int_equal(storage_test_count_tmp(f->root), 0);

    /* A piece that cannot be written (file size limit, as a full disk)
     * fails with the object's name and leaves nothing once aborted. */
    storage_test_limit lim;
    storage_test_limit_size(&lim);
    assert_int_equal(storage_write_open(f->s, "data/0c/full", &w, &err), 0);
    int rc = storage_write_append(w, big, 65536, &err);
    storage_test_unlimit(&lim);
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, OB_EIO);
    assert_non_null(strstr(ob_err_msg(&err), "object data/0c/full"));
    ob_err_clear(&err);
    storage_write_abort(w);
    assert_int_equal(storage_stat(f->s, "data/0c/full", &size, &err), -1);
    ob_err_clear(&err);
    assert_int_equal(storage_test_count_tmp(f->root), 0);
    free(big);
}

/* ---------------------------------------------------------------- threads */

#define STORAGE_TEST_THREADS 8
#define STORAGE_TEST_PER_THREAD 150

typedef struct storage_test_worker {
    storage *s;
    int id;
    int failures;
    int create_rc;
    int create_code;
    char *first_error;
} storage_test_worker;

static void *storage_test_worker_main(void *arg)
{
    storage_test_worker *w = arg;
    ob_err err = OB_ERR_INIT;
    for (int i = 0; i < STORAGE_TEST_PER_THREAD; i++) {
        /* Few shared directories, all created concurrently. */
        char *name = ob_xasprintf("data/%02x/t%d-%d", i % 4, w->id, i);
        if (storage_put(w->s, name, name, strlen(name), 0, &err) < 0) {
            w->failures++;
            if (!w->first_error)
                w->first_error = ob_xstrdup(ob_err_msg(&err));
            ob_err_clear(&err);
        }
        free(name);
    }
    char who[16];
    snprintf(who, sizeof who, "%d", w->id);
    w->create_rc = storage_put(w->s, "locks/race/winner", who, strlen(who), STORAGE_PUT_CREATE,
                               &err);
    w->create_code = err.code;
    ob_err_clear(&err);
    return NULL;
}

static void test_threads(void **state)
{
    fixture *f = *state;
    pthread_t th[STORAGE_TEST_THREADS];
    storage_test_worker w[STORAGE_TEST_THREADS];
    for (int i = 0; i < STORAGE_TEST_THREADS; i++) {
        w[i] = (storage_test_worker){f->s, i, 0, 0, 0, NULL};
        assert_int_equal(pthread_create(&th[i], NULL, storage_test_worker_main, &w[i]), 0);
    }
    int winners = 0, winner = -1;
    for (int i = 0; i < STORAGE_TEST_THREADS; i++) {
        pthread_join(th[i], NULL);
        if (w[i].first_error)
            fail_msg("thread %d: %s", i, w[i].first_error);
        assert_int_equal(w[i].failures, 0);
        if (w[i].create_rc == 0) {
            winners++;
            winner = i;
        } else {
            assert_int_equal(w[i].create_code, OB_EEXIST);
        }
    }
    assert_int_equal(winners, 1); /* exactly one create-only put wins */
    char who[16];
    snprintf(who, sizeof who, "%d", winner);
    storage_test_expect(f->s, "locks/race/winner", who, strlen(who));

    collected c = {0};
    storage_test_list(f->s, "data/", &c);
    assert_int_equal(c.n, STORAGE_TEST_THREADS * STORAGE_TEST_PER_THREAD);
    for (size_t i = 0; i < c.n; i++)
        assert_int_equal(c.sizes[i], strlen(c.names[i]));
    storage_test_collected_free(&c);
    assert_int_equal(storage_test_count_tmp(f->root), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_urls),
        cmocka_unit_test_setup_teardown(test_open_file_url_roundtrip, storage_test_setup,
                                        storage_test_teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip, storage_test_setup,
                                        storage_test_teardown),
        cmocka_unit_test_setup_teardown(test_ranged_get, storage_test_setup,
                                        storage_test_teardown),
        cmocka_unit_test_setup_teardown(test_get_missing, storage_test_setup,
                                        storage_test_teardown),
        cmocka_unit_test_setup_teardown(test_create_flag, storage_test_setup,
                                        storage_test_teardown),
        cmocka_unit_test_setup_teardown(test_put_replaces_atomically, storage_test_setup,
                                        storage_test_teardown),
        cmocka_unit_test_setup_teardown(test_list, storage_test_setup, storage_test_teardown),
        cmocka_unit_test_setup_teardown(test_delete, storage_test_setup, storage_test_teardown),
        cmocka_unit_test_setup_teardown(test_stat, storage_test_setup, storage_test_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_names, storage_test_setup,
                                        storage_test_teardown),
        cmocka_unit_test_setup_teardown(test_put_failures, storage_test_setup,
                                        storage_test_teardown),
        cmocka_unit_test_setup_teardown(test_put_write_failure, storage_test_setup,
                                        storage_test_teardown),
        cmocka_unit_test_setup_teardown(test_write_pieces, storage_test_setup,
                                        storage_test_teardown),
        cmocka_unit_test_setup_teardown(test_threads, storage_test_setup,
                                        storage_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
