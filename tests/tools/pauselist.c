/*
 * pauselist.c — an LD_PRELOAD shim that makes races reproducible: the first
 * time the process opens (open or openat) a path ending in $PAUSELIST_SUFFIX (for example a
 * repository's "/snapshots/" directory, as a listing does), it creates the
 * file $PAUSELIST_MARK and waits until the file $PAUSELIST_GO exists (at
 * most 60 s) before carrying on.  A test can then run another command at
 * exactly that point of the first one.
 *
 *   cc -shared -fPIC -o pauselist.so tests/tools/pauselist.c -ldl
 *   PAUSELIST_SUFFIX=/snapshots/ PAUSELIST_MARK=/tmp/m PAUSELIST_GO=/tmp/go \
 *       LD_PRELOAD=./pauselist.so opsbackup check &
 *   (wait for /tmp/m; do something; touch /tmp/go; wait)
 *
 * Without PAUSELIST_SUFFIX it does nothing.  Test helper only.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int paused;

/* A name relative to a directory descriptor (the backup walks and the
 * restore writes through them) is matched as the full path it resolves to
 * as well, so a PAUSELIST_SUFFIX with a '/' still finds it. */
static void maybe_pause(const char *path);
static void maybe_pause_at(int dirfd, const char *path)
{
    maybe_pause(path);
    if (!path || path[0] == '/' || dirfd == AT_FDCWD || paused)
        return;
    char link[64], dir[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
    ssize_t n = readlink(link, dir, sizeof dir - 1);
    if (n < 0)
        return;
    dir[n] = '\0';
    size_t len = (size_t)n + 1 + strlen(path) + 1;
    char *full = malloc(len);
    if (!full)
        return;
    snprintf(full, len, "%s/%s", dir, path);
    maybe_pause(full);
    free(full);
}

static void maybe_pause(const char *path)
{
    const char *suffix = getenv("PAUSELIST_SUFFIX");
    if (!suffix || !*suffix || !path)
        return;
    size_t n = strlen(path), k = strlen(suffix);
    if (n < k || strcmp(path + n - k, suffix) != 0)
        return;
    if (__atomic_exchange_n(&paused, 1, __ATOMIC_SEQ_CST))
        return;
    const char *mark = getenv("PAUSELIST_MARK"), *go = getenv("PAUSELIST_GO");
    if (mark) {
        /* creat() through the raw syscall path would recurse into our
         * open(); mkdir needs no wrapper. */
        mkdir(mark, 0700);
    }
    if (!go)
        return;
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 6000 && access(go, F_OK) != 0; i++)
        nanosleep(&ts, NULL);
}

#define FORWARD(name)                                                              \
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
        maybe_pause(path);                                                         \
        return real(path, flags, mode);                                            \
    }

FORWARD(open)
FORWARD(open64)

/* openat: restore creates files relative to directory descriptors. */
#define FORWARD_AT(name)                                                           \
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
        maybe_pause_at(dirfd, path);                                               \
        return real(dirfd, path, flags, mode);                                     \
    }

FORWARD_AT(openat)
FORWARD_AT(openat64)

int __openat_2(int dirfd, const char *path, int flags)
{
    static int (*real)(int, const char *, int);
    if (!real)
        real = (int (*)(int, const char *, int))dlsym(RTLD_NEXT, "__openat_2");
    maybe_pause_at(dirfd, path);
    return real(dirfd, path, flags);
}

int __open_2(const char *path, int flags)
{
    static int (*real)(const char *, int);
    if (!real)
        real = (int (*)(const char *, int))dlsym(RTLD_NEXT, "__open_2");
    maybe_pause(path);
    return real(path, flags);
}

int __open64_2(const char *path, int flags)
{
    static int (*real)(const char *, int);
    if (!real)
        real = (int (*)(const char *, int))dlsym(RTLD_NEXT, "__open64_2");
    maybe_pause(path);
    return real(path, flags);
}
