/*
 * fsmeta_test.c — capture and apply metadata on real files in a fresh
 * mkdtemp directory per test.
 *
 * Ownership tests need root and are skipped otherwise; xattr tests are
 * skipped only when the filesystem reports ENOTSUP for user.* attributes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "sources/fsmeta.h"

typedef struct fx {
    char *dir;  /* the temporary directory */
    int dirfd;
} fx;

static int setup(void **state)
{
    fx *f = ob_xcalloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    f->dir = ob_xasprintf("%s/fsmeta_test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir)) {
        free(f->dir);
        free(f);
        return -1;
    }
    f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->dirfd < 0)
        return -1;
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fx *f = *state;
    close(f->dirfd);
    int rc = nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f->dir);
    free(f);
    return rc;
}

/* ---- helpers ---------------------------------------------------------- */

static char *path_of(const fx *f, const char *name)
{
    return ob_xasprintf("%s/%s", f->dir, name);
}

static void make_file(const fx *f, const char *name, const char *content)
{
    int fd = openat(f->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    size_t len = strlen(content);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static void set_times(const fx *f, const char *name, time_t as, long ans, time_t ms, long mns)
{
    struct timespec ts[2] = {{as, ans}, {ms, mns}};
    assert_int_equal(utimensat(f->dirfd, name, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* lstat + fsmeta_capture; fails the test with the error message. */
static void capture(const fx *f, const char *name, tree_node *n, struct stat *st_out)
{
    char *path = path_of(f, name);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    ob_err err = OB_ERR_INIT;
    if (fsmeta_capture(path, name, &st, n, &err) != 0)
        fail_msg("fsmeta_capture %s: %s", path, ob_err_msg(&err));
    if (st_out)
        *st_out = st;
    free(path);
}

static void apply(const fx *f, const char *name, int fd, const tree_node *n, int *warn)
{
    ob_err err = OB_ERR_INIT;
    int w = 0;
    if (fsmeta_apply(f->dirfd, name, fd, n, &w, &err) != 0)
        fail_msg("fsmeta_apply %s: %s", name, ob_err_msg(&err));
    if (warn)
        *warn = w;
    else
        assert_int_equal(w, 0);
}

static const tree_xattr *find_xattr(const tree_node *n, const char *name)
{
    for (size_t i = 0; i < n->nxattrs; i++)
        if (strcmp(n->xattrs[i].name, name) == 0)
            return &n->xattrs[i];
    return NULL;
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

/* Does this filesystem take user.* xattrs on a regular file? */
static int user_xattrs_supported(const fx *f)
{
    make_file(f, ".probe", "");
    char *p = path_of(f, ".probe");
    int ok = lsetxattr(p, "user.probe", "1", 1, 0) == 0;
    int e = errno;
    unlink(p);
    free(p);
    if (!ok && e != ENOTSUP)
        fail_msg("setting a user.* xattr failed unexpectedly: %s", strerror(e));
    return ok;
}

/* Read an xattr of an entry without following symlinks; -1 if absent. */
static ssize_t read_xattr(const fx *f, const char *name, const char *attr, uint8_t *buf,
                          size_t cap)
{
    char *p = path_of(f, name);
    ssize_t n = lgetxattr(p, attr, buf, cap);
    free(p);
    return n;
}

static void assert_times(const struct stat *st, int64_t as, uint32_t ans, int64_t ms,
                         uint32_t mns)
{
    assert_true((int64_t)st->st_atim.tv_sec == as);
    assert_int_equal(st->st_atim.tv_nsec, ans);
    assert_true((int64_t)st->st_mtim.tv_sec == ms);
    assert_int_equal(st->st_mtim.tv_nsec, mns);
}

/* A node carrying the metadata the apply tests restore. */
static void make_node(tree_node *n, uint8_t type, uint32_t mode)
{
    memset(n, 0, sizeof *n);
    tree_node_set_name(n, "x", 1);
    n->type = type;
    n->mode = mode;
    n->uid = (uint32_t)geteuid();
    n->gid = (uint32_t)getegid();
    n->atime_sec = 1111111111;
    n->atime_nsec = 222222222;
    n->mtime_sec = 1333333333;
    n->mtime_nsec = 444444444;
}

/* ---- capture ---------------------------------------------------------- */

static void test_capture_file(void **state)
{
    fx *f = *state;
    make_file(f, "file", "hello");
    assert_int_equal(fchmodat(f->dirfd, "file", 0640, 0), 0);
    set_times(f, "file", 1000000000, 987654321, 1234567890, 123456789);

    tree_node n;
    memset(&n, 0, sizeof n);
    /* capture must not touch extents or subtree */
    memset(n.subtree, 0xab, TREE_ID_LEN);
    n.nextents = 1;
    n.extents = ob_xcalloc(1, sizeof(tree_extent));
    n.extents[0].len = 5;
    struct stat st;
    capture(f, "file", &n, &st);

    assert_int_equal(n.name_len, 4);
    assert_string_equal((char *)n.name, "file");
    assert_int_equal(n.type, TREE_FILE);
    assert_int_equal(n.mode, 0640);
    assert_int_equal(n.uid, st.st_uid);
    assert_int_equal(n.gid, st.st_gid);
    char *u = fsmeta_user_name(n.uid), *g = fsmeta_group_name(n.gid);
    if (u)
        assert_string_equal(n.user, u);
    else
        assert_null(n.user);
    if (g)
        assert_string_equal(n.group, g);
    else
        assert_null(n.group);
    free(u);
    free(g);
    assert_true(n.mtime_sec == 1234567890);
    assert_int_equal(n.mtime_nsec, 123456789);
    assert_true(n.atime_sec == 1000000000);
    assert_int_equal(n.atime_nsec, 987654321);
    assert_true(n.ctime_sec == (int64_t)st.st_ctim.tv_sec);
    assert_int_equal(n.ctime_nsec, st.st_ctim.tv_nsec);
    assert_true(n.dev == (uint64_t)st.st_dev);
    assert_true(n.inode == (uint64_t)st.st_ino);
    assert_int_equal(n.nlink, 1);
    assert_true(n.size == 5);
    assert_true(n.rdev == 0);
    assert_null(n.link_target);
    assert_null(find_xattr(&n, "user.probe"));
    uint8_t sub[TREE_ID_LEN];
    memset(sub, 0xab, sizeof sub);
    assert_memory_equal(n.subtree, sub, TREE_ID_LEN);
    assert_int_equal(n.nextents, 1);
    assert_int_equal(n.extents[0].len, 5);

    /* A hard link shows in nlink; recapturing replaces, never leaks. */
    assert_int_equal(linkat(f->dirfd, "file", f->dirfd, "hard", 0), 0);
    capture(f, "hard", &n, NULL);
    assert_string_equal((char *)n.name, "hard");
    assert_int_equal(n.nlink, 2);
    assert_true(n.inode == (uint64_t)st.st_ino);
    tree_node_free(&n);
}

static void test_capture_dir(void **state)
{
    fx *f = *state;
    assert_int_equal(mkdirat(f->dirfd, "d", 0700), 0);
    assert_int_equal(fchmodat(f->dirfd, "d", 0751, 0), 0);
    set_times(f, "d", 5, 6, 7, 8);
    tree_node n;
    memset(&n, 0, sizeof n);
    capture(f, "d", &n, NULL);
    assert_int_equal(n.type, TREE_DIR);
    assert_int_equal(n.mode, 0751);
    assert_true(n.size == 0); /* directory sizes are not recorded */
    assert_true(n.mtime_sec == 7);
    assert_int_equal(n.mtime_nsec, 8);
    assert_true(n.atime_sec == 5);
    assert_int_equal(n.atime_nsec, 6);
    tree_node_free(&n);
}

static void test_capture_symlink(void **state)
{
    fx *f = *state;
    static const char target[] = "../no where/\xff\xfe\nline";
    assert_int_equal(symlinkat(target, f->dirfd, "link"), 0);
    set_times(f, "link", 11, 12, 13, 14);
    tree_node n;
    memset(&n, 0, sizeof n);
    capture(f, "link", &n, NULL);
    assert_int_equal(n.type, TREE_SYMLINK);
    assert_int_equal(n.link_len, sizeof target - 1);
    assert_memory_equal(n.link_target, target, sizeof target);   /* incl. NUL */
    assert_true(n.size == sizeof target - 1);
    assert_true(n.mtime_sec == 13);                                /* the link's own */
    assert_int_equal(n.mtime_nsec, 14);
    tree_node_free(&n);
}

/* A target longer than the buffer first tried (st_size hint forced to 0). */
static void test_capture_long_symlink(void **state)
{
    fx *f = *state;
    size_t len = 4000;
    char *target = ob_xmalloc(len + 1);
    for (size_t i = 0; i < len; i++)
        target[i] = i % 100 == 99 ? '/' : (char)('a' + i % 26);
    target[len] = 0;
    assert_int_equal(symlinkat(target, f->dirfd, "long"), 0);
    char *path = path_of(f, "long");
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    st.st_size = 0; /* as procfs reports it */
    tree_node n;
    memset(&n, 0, sizeof n);
    ob_err err = OB_ERR_INIT;
    assert_int_equal(fsmeta_capture(path, "long", &st, &n, &err), 0);
    assert_int_equal(n.link_len, len);
    assert_memory_equal(n.link_target, target, len + 1);
    tree_node_free(&n);
    free(path);
    free(target);
}

static void test_capture_fifo_and_device(void **state)
{
    fx *f = *state;
    assert_int_equal(mkfifoat(f->dirfd, "fifo", 0620), 0);
    assert_int_equal(fchmodat(f->dirfd, "fifo", 0620, 0), 0); /* beat the umask */
    tree_node n;
    memset(&n, 0, sizeof n);
    capture(f, "fifo", &n, NULL);
    assert_int_equal(n.type, TREE_FIFO);
    assert_int_equal(n.mode, 0620);
    assert_true(n.size == 0);
    assert_true(n.rdev == 0);
    tree_node_free(&n);

    /* Read-only look at /dev/null for a character device. */
    struct stat st;
    assert_int_equal(lstat("/dev/null", &st), 0);
    ob_err err = OB_ERR_INIT;
    memset(&n, 0, sizeof n);
    assert_int_equal(fsmeta_capture("/dev/null", "null", &st, &n, &err), 0);
    assert_int_equal(n.type, TREE_CHARDEV);
    assert_true(n.rdev == (uint64_t)st.st_rdev);
    assert_true(n.rdev != 0);
    tree_node_free(&n);
}

static void test_capture_special_bits(void **state)
{
    fx *f = *state;
    make_file(f, "suid", "#!/bin/sh\n");
    assert_int_equal(fchmodat(f->dirfd, "suid", 07755, 0), 0);
    assert_int_equal(mkdirat(f->dirfd, "sticky", 0700), 0);
    assert_int_equal(fchmodat(f->dirfd, "sticky", 01777, 0), 0);
    tree_node n;
    memset(&n, 0, sizeof n);
    capture(f, "suid", &n, NULL);
    assert_int_equal(n.mode, 07755);
    capture(f, "sticky", &n, NULL);
    assert_int_equal(n.mode, 01777);
    tree_node_free(&n);
}

static void test_capture_xattrs(void **state)
{
    fx *f = *state;
    if (!user_xattrs_supported(f))
        skip(); /* filesystem returns ENOTSUP for user.* */
    make_file(f, "xf", "data");
    char *p = path_of(f, "xf");
    static const uint8_t bin[] = {'x', 0, 'y', 0xff, 0};
    size_t biglen = 3000; /* ext4 keeps all of a file's xattrs in one 4 KiB block */
    uint8_t *big = ob_xmalloc(biglen);
    for (size_t i = 0; i < biglen; i++)
        big[i] = (uint8_t)(i * 7);
    assert_int_equal(lsetxattr(p, "user.b", bin, sizeof bin, 0), 0);
    assert_int_equal(lsetxattr(p, "user.a", "", 0, 0), 0);
    assert_int_equal(lsetxattr(p, "user.c\xff", big, biglen, 0), 0);

    tree_node n;
    memset(&n, 0, sizeof n);
    capture(f, "xf", &n, NULL);
    const tree_xattr *x = find_xattr(&n, "user.b");
    assert_non_null(x);
    assert_int_equal(x->value_len, sizeof bin);
    assert_memory_equal(x->value, bin, sizeof bin);
    x = find_xattr(&n, "user.a");
    assert_non_null(x);
    assert_int_equal(x->value_len, 0);
    x = find_xattr(&n, "user.c\xff");
    assert_non_null(x);
    assert_int_equal(x->value_len, biglen);
    assert_memory_equal(x->value, big, biglen);
    /* sorted by name bytes (tree_encode and tree_decode rely on it) */
    for (size_t i = 1; i < n.nxattrs; i++)
        assert_true(strcmp(n.xattrs[i - 1].name, n.xattrs[i].name) < 0);
    tree_node_free(&n);
    free(big);
    free(p);
}

/* fsmeta_capture_at (the backup walk's way): the same node as by path,
 * reached through the directory descriptor; messages name the shown path. */
static void test_capture_at(void **state)
{
    fx *f = *state;
    make_file(f, "af", "at data");
    assert_int_equal(symlinkat("af", f->dirfd, "al"), 0);
    char *p = path_of(f, "af");
    int xattrs = user_xattrs_supported(f);
    if (xattrs)
        assert_int_equal(lsetxattr(p, "user.at", "v", 1, 0), 0);
    const char *names[] = {"af", "al"};
    for (size_t i = 0; i < 2; i++) {
        tree_node a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        struct stat st;
        capture(f, names[i], &a, &st);
        ob_err err = OB_ERR_INIT;
        if (fsmeta_capture_at(f->dirfd, names[i], "/shown/only", names[i], &st, &b, &err) != 0)
            fail_msg("fsmeta_capture_at %s: %s", names[i], ob_err_msg(&err));
        assert_string_equal((const char *)b.name, names[i]);
        assert_int_equal(a.type, b.type);
        assert_int_equal(a.size, b.size);
        assert_int_equal(a.link_len, b.link_len);
        if (a.link_len)
            assert_memory_equal(a.link_target, b.link_target, a.link_len);
        assert_int_equal(a.nxattrs, b.nxattrs);
        if (xattrs && i == 0)
            assert_non_null(find_xattr(&b, "user.at"));
        tree_node_free(&a);
        tree_node_free(&b);
    }
    /* Removed since its lstat: the error names the path given for messages. */
    struct stat st;
    assert_int_equal(fstatat(f->dirfd, "al", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(unlinkat(f->dirfd, "al", 0), 0);
    tree_node n;
    memset(&n, 0, sizeof n);
    ob_err err = OB_ERR_INIT;
    assert_int_equal(fsmeta_capture_at(f->dirfd, "al", "/shown/al", "al", &st, &n, &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "/shown/al"));
    ob_err_clear(&err);
    tree_node_free(&n);
    free(p);
}

static void test_capture_errors(void **state)
{
    fx *f = *state;
    make_file(f, "gone", "");
    char *path = path_of(f, "gone");
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(unlink(path), 0);
    st.st_mode = (st.st_mode & 07777) | S_IFLNK; /* pretend lstat saw a symlink */

    tree_node n;
    memset(&n, 0, sizeof n);
    tree_node_set_name(&n, "before", 6);
    ob_err err = OB_ERR_INIT;
    assert_int_equal(fsmeta_capture(path, "gone", &st, &n, &err), -1);
    assert_int_equal(err.code, OB_ENOTFOUND);
    assert_non_null(strstr(ob_err_msg(&err), path));
    assert_string_equal((char *)n.name, "before"); /* untouched on failure */
    ob_err_clear(&err);

    st.st_mode = S_IFREG | 0644;
    assert_int_equal(fsmeta_capture(path, "gone", &st, &n, &err), -1); /* xattr listing */
    assert_non_null(strstr(ob_err_msg(&err), path));
    ob_err_clear(&err);

    st.st_mode = 0170000 | 0644; /* no such file type */
    assert_int_equal(fsmeta_capture(path, "gone", &st, &n, &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "unsupported"));
    ob_err_clear(&err);
    tree_node_free(&n);
    free(path);
}

static void test_owner_names(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) { /* the second round comes from the cache */
        char *u = fsmeta_user_name(0), *g = fsmeta_group_name(0);
        assert_non_null(u);
        assert_string_equal(u, "root");
        assert_non_null(g);
        assert_string_equal(g, "root");
        free(u);
        free(g);
        assert_null(fsmeta_user_name(3999999999u));
        assert_null(fsmeta_group_name(3999999999u));
    }
}

/* ---- apply ------------------------------------------------------------ */

static void test_apply_file(void **state)
{
    fx *f = *state;
    int xattrs = user_xattrs_supported(f);
    tree_node n;
    make_node(&n, TREE_FILE, 04751);
    static const uint8_t bin[] = {0, 1, 0, 0xfe};
    if (xattrs) {
        add_xattr(&n, "user.bin", bin, sizeof bin);
        add_xattr(&n, "user.empty", "", 0);
    }

    /* By name (fd -1): the path through /proc/self/fd for xattrs. */
    make_file(f, "byname", "content");
    apply(f, "byname", -1, &n, NULL);
    struct stat st;
    assert_int_equal(fstatat(f->dirfd, "byname", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_mode & 07777, 04751);
    assert_times(&st, 1111111111, 222222222, 1333333333, 444444444);
    uint8_t buf[16];
    if (xattrs) {
        assert_int_equal(read_xattr(f, "byname", "user.bin", buf, sizeof buf), sizeof bin);
        assert_memory_equal(buf, bin, sizeof bin);
        assert_int_equal(read_xattr(f, "byname", "user.empty", buf, sizeof buf), 0);
    }

    /* By descriptor. */
    make_file(f, "byfd", "content");
    int fd = openat(f->dirfd, "byfd", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    n.mode = 02640;
    apply(f, "byfd", fd, &n, NULL);
    assert_int_equal(close(fd), 0);
    assert_int_equal(fstatat(f->dirfd, "byfd", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_mode & 07777, 02640);
    assert_times(&st, 1111111111, 222222222, 1333333333, 444444444);
    if (xattrs) {
        assert_int_equal(read_xattr(f, "byfd", "user.bin", buf, sizeof buf), sizeof bin);
        assert_memory_equal(buf, bin, sizeof bin);
    }

    /* Times before 1970 and at the nanosecond limit. */
    n.mtime_sec = -86400;
    n.mtime_nsec = 999999999;
    n.atime_sec = 0;
    n.atime_nsec = 1;
    apply(f, "byname", -1, &n, NULL);
    assert_int_equal(fstatat(f->dirfd, "byname", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_times(&st, 0, 1, -86400, 999999999);
    tree_node_free(&n);
}

static void test_apply_dir(void **state)
{
    fx *f = *state;
    int xattrs = user_xattrs_supported(f);
    tree_node n;
    make_node(&n, TREE_DIR, 01750);
    if (xattrs)
        add_xattr(&n, "user.d", "dirval", 6);
    assert_int_equal(mkdirat(f->dirfd, "d", 0700), 0);
    apply(f, "d", -1, &n, NULL);
    struct stat st;
    assert_int_equal(fstatat(f->dirfd, "d", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_mode & 07777, 01750);
    assert_times(&st, 1111111111, 222222222, 1333333333, 444444444);
    if (xattrs) {
        uint8_t buf[16];
        assert_int_equal(read_xattr(f, "d", "user.d", buf, sizeof buf), 6);
        assert_memory_equal(buf, "dirval", 6);
    }
    tree_node_free(&n);
}

/* The kernel refuses user.* xattrs on FIFOs with EPERM: a warning, and
 * the rest of the metadata is still applied. */
static void test_apply_fifo_xattr_warning(void **state)
{
    fx *f = *state;
    if (!user_xattrs_supported(f))
        skip();
    tree_node n;
    make_node(&n, TREE_FIFO, 0604);
    add_xattr(&n, "user.nope", "v", 1);
    assert_int_equal(mkfifoat(f->dirfd, "fifo", 0600), 0);
    int warn = 0;
    apply(f, "fifo", -1, &n, &warn);
    assert_int_equal(warn, 1);
    struct stat st;
    assert_int_equal(fstatat(f->dirfd, "fifo", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_mode & 07777, 0604);
    assert_times(&st, 1111111111, 222222222, 1333333333, 444444444);
    tree_node_free(&n);
}

/* Symlink times are set on the link itself; the target is not touched. */
static void test_apply_symlink(void **state)
{
    fx *f = *state;
    make_file(f, "target", "t");
    assert_int_equal(fchmodat(f->dirfd, "target", 0600, 0), 0);
    set_times(f, "target", 100, 1, 200, 2);
    assert_int_equal(symlinkat("target", f->dirfd, "link"), 0);

    tree_node n;
    make_node(&n, TREE_SYMLINK, 0777);
    n.mode = 0; /* would make the target unreadable if it were followed */
    int xattrs = user_xattrs_supported(f);
    if (xattrs)
        add_xattr(&n, "user.l", "v", 1); /* EPERM on symlinks: a warning */
    int warn = 0;
    apply(f, "link", -1, &n, &warn);
    assert_int_equal(warn, xattrs);

    struct stat st;
    assert_int_equal(fstatat(f->dirfd, "link", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_times(&st, 1111111111, 222222222, 1333333333, 444444444);
    assert_int_equal(fstatat(f->dirfd, "target", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_times(&st, 100, 1, 200, 2);
    assert_int_equal(st.st_mode & 07777, 0600);
    if (xattrs) {
        uint8_t buf[4];
        assert_true(read_xattr(f, "target", "user.l", buf, sizeof buf) < 0);
    }
    tree_node_free(&n);
}

/* An entry swapped for a symlink after creation: the mode must not land on
 * what the symlink points to. */
static void test_apply_never_follows(void **state)
{
    fx *f = *state;
    make_file(f, "victim", "secret");
    assert_int_equal(fchmodat(f->dirfd, "victim", 0600, 0), 0);
    set_times(f, "victim", 100, 1, 200, 2);
    assert_int_equal(symlinkat("victim", f->dirfd, "swapped"), 0);
    tree_node n;
    make_node(&n, TREE_FILE, 0777);
    ob_err err = OB_ERR_INIT;
    int warn = 0;
    assert_int_equal(fsmeta_apply(f->dirfd, "swapped", -1, &n, &warn, &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "swapped"));
    ob_err_clear(&err);
    struct stat st;
    assert_int_equal(fstatat(f->dirfd, "victim", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_times(&st, 100, 1, 200, 2);
    tree_node_free(&n);
}

static void test_apply_unsafe_names(void **state)
{
    fx *f = *state;
    tree_node n;
    make_node(&n, TREE_FILE, 0644);
    const char *bad[] = {"..", ".", "", "a/b", "../escape", "/etc/passwd"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ob_err err = OB_ERR_INIT;
        int warn = 0;
        assert_int_equal(fsmeta_apply(f->dirfd, bad[i], -1, &n, &warn, &err), -1);
        assert_int_equal(err.code, OB_EUNSAFE);
        ob_err_clear(&err);
    }
    ob_err err = OB_ERR_INIT;
    assert_int_equal(fsmeta_apply(f->dirfd, NULL, -1, &n, NULL, &err), -1);
    assert_int_equal(err.code, OB_EUNSAFE);
    ob_err_clear(&err);
    tree_node_free(&n);
}

static void test_apply_owner(void **state)
{
    fx *f = *state;
    if (geteuid() != 0)
        skip(); /* only root can chown */
    tree_node n;
    make_node(&n, TREE_FILE, 06755);
    struct stat st;

    /* Unknown owner names: numeric ids.  setuid/setgid survive because the
     * mode is applied after chown (which clears them). */
    make_file(f, "num", "");
    assert_int_equal(fchmodat(f->dirfd, "num", 06755, 0), 0);
    n.uid = 4321;
    n.gid = 4322;
    apply(f, "num", -1, &n, NULL);
    assert_int_equal(fstatat(f->dirfd, "num", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_uid, 4321);
    assert_int_equal(st.st_gid, 4322);
    assert_int_equal(st.st_mode & 07777, 06755);

    /* A name that exists here wins over the number. */
    n.user = ob_xstrdup("root");
    n.group = ob_xstrdup("root");
    apply(f, "num", -1, &n, NULL);
    assert_int_equal(fstatat(f->dirfd, "num", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_uid, 0);
    assert_int_equal(st.st_gid, 0);
    assert_int_equal(st.st_mode & 07777, 06755);

    /* A name that does not exist falls back to the number (twice: the
     * second answer comes from the lookup cache). */
    free(n.user);
    free(n.group);
    n.user = ob_xstrdup("no-such-user-opsbackup");
    n.group = ob_xstrdup("no-such-group-opsbackup");
    n.uid = 4444;
    n.gid = 4445;
    for (int i = 0; i < 2; i++) {
        apply(f, "num", -1, &n, NULL);
        assert_int_equal(fstatat(f->dirfd, "num", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_uid, 4444);
        assert_int_equal(st.st_gid, 4445);
    }

    /* Symlinks: the link is chowned, not its target. */
    make_file(f, "t", "");
    assert_int_equal(symlinkat("t", f->dirfd, "l"), 0);
    n.type = TREE_SYMLINK;
    apply(f, "l", -1, &n, NULL);
    assert_int_equal(fstatat(f->dirfd, "l", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_uid, 4444);
    assert_int_equal(fstatat(f->dirfd, "t", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_uid, 0);

    /* Through a descriptor. */
    int fd = openat(f->dirfd, "t", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    n.type = TREE_FILE;
    apply(f, "t", fd, &n, NULL);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_uid, 4444);
    assert_int_equal(st.st_mode & 07777, 06755);
    close(fd);
    tree_node_free(&n);
}

/* capture -> tree_encode -> tree_decode -> apply on a new file -> capture:
 * what a backup and restore do, minus the content. */
static void test_capture_apply_round_trip(void **state)
{
    fx *f = *state;
    int xattrs = user_xattrs_supported(f);
    make_file(f, "orig", "abc");
    assert_int_equal(fchmodat(f->dirfd, "orig", 02751, 0), 0);
    if (xattrs) {
        char *p = path_of(f, "orig");
        assert_int_equal(lsetxattr(p, "user.k", "v\0w", 3, 0), 0);
        assert_int_equal(lsetxattr(p, "user.a", "1", 1, 0), 0);
        free(p);
    }
    set_times(f, "orig", 1500000000, 1, 1600000000, 999999999);

    tree t;
    tree_init(&t);
    capture(f, "orig", tree_add(&t), NULL);
    ob_buf b = OB_BUF_INIT;
    tree_encode(&t, &b);
    tree d;
    ob_err err = OB_ERR_INIT;
    if (tree_decode(b.data, b.len, &d, &err) != 0)
        fail_msg("tree_decode: %s", ob_err_msg(&err));

    make_file(f, "copy", "abc");
    apply(f, "copy", -1, &d.nodes[0], NULL);
    tree_node c;
    memset(&c, 0, sizeof c);
    capture(f, "copy", &c, NULL);
    const tree_node *o = &t.nodes[0];
    assert_int_equal(c.mode, o->mode);
    assert_int_equal(c.uid, o->uid);
    assert_int_equal(c.gid, o->gid);
    assert_true(c.mtime_sec == o->mtime_sec);
    assert_int_equal(c.mtime_nsec, o->mtime_nsec);
    assert_true(c.atime_sec == o->atime_sec);
    assert_int_equal(c.atime_nsec, o->atime_nsec);
    assert_int_equal(c.nxattrs, o->nxattrs);
    for (size_t i = 0; i < c.nxattrs; i++) {
        assert_string_equal(c.xattrs[i].name, o->xattrs[i].name);
        assert_int_equal(c.xattrs[i].value_len, o->xattrs[i].value_len);
        assert_memory_equal(c.xattrs[i].value, o->xattrs[i].value, c.xattrs[i].value_len);
    }
    tree_node_free(&c);
    tree_free(&d);
    tree_free(&t);
    ob_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_capture_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_long_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_fifo_and_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_special_bits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_xattrs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_at, setup, teardown),
        cmocka_unit_test(test_owner_names),
        cmocka_unit_test_setup_teardown(test_apply_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_fifo_xattr_warning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_never_follows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_unsafe_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_apply_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
