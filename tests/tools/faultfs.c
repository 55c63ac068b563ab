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
 *       beyond (default 0) fail with EIO (a bad sector).
 *
 *   cc -shared -fPIC -o faultfs.so tests/tools/faultfs.c -ldl
 *
 * Paths are compared with what /proc/self/fd/N says.  Test helper only.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
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
