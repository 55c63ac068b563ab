/*
 * faultfs.c — an LD_PRELOAD shim that makes a file system misbehave in
 * ways a backup must notice, for tests/integration/test_backup_edges.sh:
 *
 *   FAULTFS_TRUNC=PATH FAULTFS_TRUNC_AT=N
 *       reads of PATH return at most 1 MiB each, and after the second one
 *       the file is truncated to N bytes (a log rotated mid-backup);
 *   FAULTFS_READDIR=PATH
 *       listing directory PATH fails with EIO after its third entry (a
 *       disk or NFS error part way through a listing);
 *   FAULTFS_EIO=PATH FAULTFS_EIO_AT=N
 *       reads of PATH return at most 1 MiB each, and those at offset N or
 *       beyond (default 0) fail with EIO (a bad sector);
 *   FAULTFS_SWAP=DIR FAULTFS_SWAP_TO=TARGET
 *       the first time the process opens DIR as a directory (opendir, or
 *       open/openat with O_DIRECTORY, relative names resolved through the
 *       directory descriptor), DIR is first renamed to DIR.swapped and a
 *       symlink DIR -> TARGET put in its place (a racing attacker);
 *   FAULTFS_NOPROC=1
 *       llistxattr/lgetxattr of a path under /proc/self/fd/ fail with
 *       ENOENT, as when /proc is not mounted (a chroot, a minimal
 *       container; unmounting it for real also blinds AddressSanitizer).
 *   FAULTFS_XATTR=PATH FAULTFS_XATTR_ERRNO=N
 *       llistxattr of exactly PATH fails with errno N (default ENOENT: the
 *       entry removed between its lstat and the read of its attributes).
 *
 *   cc -shared -fPIC -o faultfs.so tests/tools/faultfs.c -ldl
 *
 * Paths are compared with what /proc/self/fd/N says.  Test helper only.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

static int fd_is(int fd, const char *want)
{
    if (!want || !*want || fd < 0)
        return 0;
    char link[64], buf[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    if (n < 0)
        return 0;
    buf[n] = '\0';
    return strcmp(buf, want) == 0;
}

static ssize_t faulty_pread(int fd, void *b, size_t len, off_t off)
{
    static ssize_t (*real)(int, void *, size_t, off_t);
    static int reads;
    if (!real)
        real = (ssize_t(*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread64");
    const char *eio = getenv("FAULTFS_EIO");
    if (fd_is(fd, eio)) {
        if (len > (1u << 20))
            len = 1u << 20;
        const char *at = getenv("FAULTFS_EIO_AT");
        if (off >= (off_t)atoll(at ? at : "0")) {
            errno = EIO;
            return -1;
        }
        return real(fd, b, len, off);
    }
    const char *path = getenv("FAULTFS_TRUNC");
    if (!fd_is(fd, path))
        return real(fd, b, len, off);
    if (len > (1u << 20))
        len = 1u << 20; /* short reads are legal */
    ssize_t k = real(fd, b, len, off);
    if (__atomic_add_fetch(&reads, 1, __ATOMIC_SEQ_CST) == 2 &&
        truncate(path, atoll(getenv("FAULTFS_TRUNC_AT") ? getenv("FAULTFS_TRUNC_AT") : "0")) != 0)
        perror("faultfs: truncate");
    return k;
}

ssize_t pread(int fd, void *b, size_t len, off_t off) { return faulty_pread(fd, b, len, off); }
ssize_t pread64(int fd, void *b, size_t len, off_t off) { return faulty_pread(fd, b, len, off); }

static void *faulty_readdir(DIR *d, const char *sym)
{
    static __thread int entries;
    void *(*real)(DIR *) = (void *(*)(DIR *))dlsym(RTLD_NEXT, sym);
    if (!fd_is(dirfd(d), getenv("FAULTFS_READDIR")))
        return real(d);
    if (++entries > 3) {
        errno = EIO;
        return NULL;
    }
    return real(d);
}

struct dirent *readdir(DIR *d) { return faulty_readdir(d, "readdir"); }
struct dirent64 *readdir64(DIR *d) { return faulty_readdir(d, "readdir64"); }

/* ---- FAULTFS_SWAP ------------------------------------------------------ */

static int swapped;

/* path (relative to dirfd unless absolute) names FAULTFS_SWAP: swap it for
 * the symlink, once. */
static void maybe_swap(int dirfd, const char *path)
{
    const char *dir = getenv("FAULTFS_SWAP"), *to = getenv("FAULTFS_SWAP_TO");
    if (!dir || !*dir || !to || !path || __atomic_load_n(&swapped, __ATOMIC_SEQ_CST))
        return;
    char full[8192];
    if (path[0] == '/' || dirfd == AT_FDCWD) {
        snprintf(full, sizeof full, "%s", path);
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, full, sizeof full - 1);
        if (n < 0)
            return;
        full[n] = '\0';
        snprintf(full + n, sizeof full - (size_t)n, "/%s", path);
    }
    if (strcmp(full, dir) != 0 || __atomic_exchange_n(&swapped, 1, __ATOMIC_SEQ_CST))
        return;
    char moved[8300];
    snprintf(moved, sizeof moved, "%s.swapped", dir);
    if (rename(dir, moved) != 0 || symlink(to, dir) != 0)
        perror("faultfs: swap");
}

DIR *opendir(const char *path)
{
    static DIR *(*real)(const char *);
    if (!real)
        real = (DIR * (*)(const char *)) dlsym(RTLD_NEXT, "opendir");
    maybe_swap(AT_FDCWD, path);
    return real(path);
}

#define FAULTFS_OPEN(name)                                                         \
    int name(const char *path, int flags, ...)                                     \
    {                                                                              \
        static int (*real)(const char *, int, ...);                                \
        if (!real)                                                                 \
            real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, #name);       \
        mode_t mode = 0;                                                           \
        if (flags & (O_CREAT | O_TMPFILE)) {                                       \
            va_list ap;                                                            \
            va_start(ap, flags);                                                   \
            mode = (mode_t)va_arg(ap, int);                                        \
            va_end(ap);                                                            \
        }                                                                          \
        if (flags & O_DIRECTORY)                                                   \
            maybe_swap(AT_FDCWD, path);                                            \
        return real(path, flags, mode);                                            \
    }
FAULTFS_OPEN(open)
FAULTFS_OPEN(open64)

#define FAULTFS_OPENAT(name)                                                       \
    int name(int dirfd, const char *path, int flags, ...)                          \
    {                                                                              \
        static int (*real)(int, const char *, int, ...);                           \
        if (!real)                                                                 \
            real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, #name);  \
        mode_t mode = 0;                                                           \
        if (flags & (O_CREAT | O_TMPFILE)) {                                       \
            va_list ap;                                                            \
            va_start(ap, flags);                                                   \
            mode = (mode_t)va_arg(ap, int);                                        \
            va_end(ap);                                                            \
        }                                                                          \
        if (flags & O_DIRECTORY)                                                   \
            maybe_swap(dirfd, path);                                               \
        return real(dirfd, path, flags, mode);                                     \
    }
FAULTFS_OPENAT(openat)
FAULTFS_OPENAT(openat64)

static int no_proc(const char *path)
{
    const char *e = getenv("FAULTFS_NOPROC");
    return e && strcmp(e, "1") == 0 && strncmp(path, "/proc/self/fd/", 14) == 0;
}

ssize_t llistxattr(const char *path, char *list, size_t size)
{
    static ssize_t (*real)(const char *, char *, size_t);
    if (!real)
        real = (ssize_t(*)(const char *, char *, size_t))dlsym(RTLD_NEXT, "llistxattr");
    if (no_proc(path)) {
        errno = ENOENT;
        return -1;
    }
    const char *x = getenv("FAULTFS_XATTR");
    if (x && strcmp(path, x) == 0) {
        const char *e = getenv("FAULTFS_XATTR_ERRNO");
        errno = e && atoi(e) > 0 ? atoi(e) : ENOENT;
        return -1;
    }
    return real(path, list, size);
}

ssize_t lgetxattr(const char *path, const char *name, void *value, size_t size)
{
    static ssize_t (*real)(const char *, const char *, void *, size_t);
    if (!real)
        real = (ssize_t(*)(const char *, const char *, void *, size_t))dlsym(RTLD_NEXT,
                                                                            "lgetxattr");
    if (no_proc(path)) {
        errno = ENOENT;
        return -1;
    }
    return real(path, name, value, size);
}
