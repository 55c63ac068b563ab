/*
 * storage_posix.c — a repository in a local (or network-mounted) directory.
 *
 * Object "data/ab/ab12…" is the file ROOT/data/ab/ab12…; directories are
 * created on demand.  A put never writes in place: it writes a hidden
 * temporary file ".tmp-<16 random hex>" in the object's own directory (so the
 * final rename stays within one filesystem and is atomic), fsyncs it, renames
 * it over the object name and fsyncs the directory.  A crash therefore leaves
 * either the old object, the new object, or a stray temporary file — never a
 * torn object.  Stray temporaries are invisible to list (every name starting
 * with '.' is, and object names may not start with '.').
 *
 * Permissions: files are created 0600 and directories 0700 (before umask).
 * A repository holds key-derived data (key slots, encrypted indexes whose
 * sizes and names leak structure), so other local users get nothing;
 * existing directories keep whatever mode the administrator gave them.
 *
 * Thread safety: the handle holds the immutable root path and a small cache
 * of read descriptors (below, under its own mutex); every other call builds
 * its own paths and file descriptors, and temporary names come from
 * getrandom() rather than a shared counter, so concurrent puts (even from
 * several hosts on NFS) do not collide.
 *
 * Ranged reads keep the descriptor.  Only packs are read by range (a blob,
 * repo_read_blob, or a run of blobs, repo_read_blobs), and a physical
 * restore read ~85,000 8 KiB blocks (before D56) from a handful of packs:
 * opening, stat-ing and closing the pack for every blob was ~12 % of that
 * restore's CPU (perf, path walk included).
 * So a ranged read leaves its descriptor in one of STORAGE_POSIX_FDS slots
 * (LRU), and the next ranged read of that name fstats it instead of opening
 * the path again: one cheap syscall instead of three and a path walk.  The
 * fstat keeps the results what they were: a descriptor whose file has no
 * name left (deleted, or replaced by a rename) is dropped and the name
 * opened again, and the size checked is the current one.  Packs are never
 * rewritten in place anyway (random IDs, stored once: D4).  A put or
 * delete of a name through this handle drops its slot.  Whole-object reads
 * (config, keys, indexes, snapshots, locks) never use the cache.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getrandom, renameat2, O_DIRECTORY under -std=c11 */
#endif

#include "storage/storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define STORAGE_POSIX_FILE_MODE 0600
#define STORAGE_POSIX_DIR_MODE 0700
#define STORAGE_POSIX_TMP_PREFIX ".tmp-"
/* Repositories are two or three levels deep; anything far deeper is a
 * symlink loop, which would otherwise recurse until the fd limit. */
#define STORAGE_POSIX_MAX_DEPTH 64
/* Largest single read()/write(): Linux transfers at most ~2 GiB per call
 * anyway, and this keeps the ssize_t conversion obviously safe. */
#define STORAGE_POSIX_IO_CHUNK ((size_t)1 << 30)

/* Descriptors kept for ranged reads (see the top of the file). */
#define STORAGE_POSIX_FDS 16

typedef struct storage_posix {
    storage base; /* first, so storage * and storage_posix * convert */
    char *root;   /* absolute, without trailing '/'; "" for the filesystem root */
    pthread_mutex_t fd_mu;
    uint64_t fd_tick;
    struct storage_posix_fd {
        char *name;     /* NULL: slot free, or dropped while in use */
        int fd;         /* -1: slot free */
        unsigned users; /* reads using fd now; it is closed only at 0 */
        uint64_t used;  /* fd_tick of the last use */
    } fds[STORAGE_POSIX_FDS];
    /* Object directories (data/ab) whose own entry this handle has synced
     * into their parent, so that each costs one extra fsync per process. */
    pthread_mutex_t dirs_mu;
    char **synced_dirs;
    size_t nsynced;
} storage_posix;

static const storage_ops storage_posix_ops;

/* ---------------------------------------------------------------- helpers */

/* Both mean the object cannot exist: ENOTDIR is a file where a directory of
 * the object's path would be. */
static int storage_posix_missing(int e)
{
    return e == ENOENT || e == ENOTDIR;
}

/* A path under root as shown in messages: relative to root ("data/ab"),
 * "." for root itself.  show is strlen(root) + 1, or 0 to show paths whole
 * (while creating the root, before there is a root to be relative to). */
static const char *storage_posix_shown(const char *path, size_t show)
{
    if (!show)
        return path;
    return strlen(path) > show ? path + show : ".";
}

/*
 * Check that name[0..len) is a safe relative object path, so no name can
 * reach outside the root or collide with the driver's own files: no control
 * characters, not absolute, no empty components ("//", trailing '/'), and
 * no component starting with '.' (covers ".", ".." and ".tmp-*").  The
 * repository layer only produces hex names, so this is defense in depth
 * against a corrupt or hostile index feeding names through.
 * label is "object" or "listing" and starts the message.
 */
static int storage_posix_check_path(const char *label, const char *name, size_t len,
                                    ob_err *err)
{
    if (len == 0)
        return ob_err_set(err, OB_EUSAGE, "%s: empty object name", label);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        /* Do not echo the name: it could carry terminal escapes. */
        if (c < 0x20 || c == 0x7f)
            return ob_err_set(err, OB_EUSAGE, "invalid %s name: contains a control character",
                              label);
    }
    int n = len > INT_MAX ? INT_MAX : (int)len;
    if (name[0] == '/')
        return ob_err_set(err, OB_EUSAGE, "%s %.*s: invalid name: absolute path", label, n, name);
    for (size_t i = 0;;) {
        size_t j = i;
        while (j < len && name[j] != '/')
            j++;
        if (j == i)
            return ob_err_set(err, OB_EUSAGE,
                              "%s %.*s: invalid name: empty path component (\"//\" or a "
                              "trailing \"/\")",
                              label, n, name);
        if (name[i] == '.')
            return ob_err_set(err, OB_EUSAGE,
                              "%s %.*s: invalid name: component \"%.*s\" starts with '.' "
                              "(reserved for \".\", \"..\" and temporary files)",
                              label, n, name, (int)(j - i), name + i);
        if (j == len)
            return 0;
        i = j + 1;
    }
}

static int storage_posix_check_name(const char *name, ob_err *err)
{
    return storage_posix_check_path("object", name, strlen(name), err);
}

static char *storage_posix_path(const storage_posix *sp, const char *rel)
{
    return ob_xasprintf("%s/%s", sp->root, rel);
}

/* The directory part of an absolute path ("/" for a file directly in /). */
static char *storage_posix_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return ob_xstrdup("/");
    return ob_xstrndup(path, (size_t)(slash - path));
}

/*
 * fsync a directory so that an entry created, renamed or removed in it
 * survives a crash.  Some filesystems cannot sync a directory at all and say
 * EINVAL; they give no stronger guarantee we could ask for, so that is not an
 * error (refusing would make such filesystems unusable).
 */
static int storage_posix_fsync_dir(const char *path, size_t show, ob_err *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ob_err_errno(err, errno, "opening directory %s to sync it",
                            storage_posix_shown(path, show));
    int rc;
    do
        rc = fsync(fd);
    while (rc < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (rc < 0 && e != EINVAL && e != ENOTSUP && e != EOPNOTSUPP)
        return ob_err_errno(err, e, "syncing directory %s", storage_posix_shown(path, show));
    return 0;
}

/*
 * mkdir -p for path, creating only components that start at or after
 * path[start] (the root is assumed to exist when creating object dirs).
 * A concurrent creator of the same directory is normal (parallel uploads
 * into a fresh data/ab/), so EEXIST is success; if something that is not a
 * directory is in the way, the next mkdir or open reports ENOTDIR.  Every
 * directory this call creates is synced into its parent: otherwise a crash
 * could lose the directory, and with it objects whose put had returned.
 * path is modified temporarily and restored.
 */
static int storage_posix_mkdirs(char *path, size_t start, size_t show, ob_err *err)
{
    size_t len = strlen(path);
    for (size_t i = start; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        if (i == 0 || path[i - 1] == '/') /* leading '/' or "//" in a root */
            continue;
        char saved = path[i];
        path[i] = '\0';
        int rc = 0;
        if (mkdir(path, STORAGE_POSIX_DIR_MODE) == 0) {
            char *parent = storage_posix_dirname(path);
            rc = storage_posix_fsync_dir(parent, show, err);
            free(parent);
        } else if (errno != EEXIST) {
            rc = ob_err_errno(err, errno, "creating directory %s",
                              storage_posix_shown(path, show));
        }
        path[i] = saved;
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ".../dir/.tmp-<16 hex>": 64 random bits make a collision between
 * concurrent writers (threads, processes, hosts) negligible without any
 * shared state; O_EXCL catches the rest. */
static int storage_posix_tmpname(const char *dir, char **out, ob_err *err)
{
    static const char hexdig[] = "0123456789abcdef";
    uint8_t rnd[8];
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t r = getrandom(rnd + got, sizeof rnd - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return ob_err_errno(err, errno, "reading the system random generator");
        }
        got += (size_t)r;
    }
    char hex[2 * sizeof rnd + 1];
    for (size_t i = 0; i < sizeof rnd; i++) {
        hex[2 * i] = hexdig[rnd[i] >> 4];
        hex[2 * i + 1] = hexdig[rnd[i] & 15];
    }
    hex[2 * sizeof rnd] = '\0';
    *out = ob_xasprintf("%s/" STORAGE_POSIX_TMP_PREFIX "%s", strcmp(dir, "/") ? dir : "", hex);
    return 0;
}

static int storage_posix_write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        size_t want = len < STORAGE_POSIX_IO_CHUNK ? len : STORAGE_POSIX_IO_CHUNK;
        ssize_t w = write(fd, p, want);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) { /* should not happen for regular files; do not spin */
            errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/*
 * Publish tmp as path only if path does not exist yet.  link() is atomic and
 * fails with EEXIST, so a concurrent creator of the same object can never be
 * overwritten.  Filesystems without hard links (FAT, exFAT, some FUSE, which
 * are common on removable backup disks) refuse link() with EPERM/ENOTSUP;
 * renameat2(RENAME_NOREPLACE) gives the same guarantee there.
 * On success tmp no longer needs removing (it is gone, or is a second name
 * of the object that we remove best-effort: a leftover is only a hidden
 * file that list ignores).
 */
static int storage_posix_publish_new(const char *tmp, const char *path, const char *name,
                                     ob_err *err)
{
    if (link(tmp, path) == 0) {
        unlink(tmp);
        return 0;
    }
    int e = errno;
    if (e == EEXIST) {
        /* Over NFS the client may resend a LINK whose reply was lost; the
         * resent one then fails with EEXIST although the first made the
         * link.  The name is ours if it is our temporary file's inode
         * (nobody else can have linked our private .tmp- name). */
        struct stat a, b;
        if (stat(tmp, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            unlink(tmp);
            return 0;
        }
    }
    if (e == EPERM || e == ENOTSUP || e == EOPNOTSUPP) {
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno == EEXIST)
            e = EEXIST;
    }
    if (e == EEXIST)
        return ob_err_set(err, OB_EEXIST, "object %s already exists", name);
    return ob_err_errno(err, e, "object %s: linking the temporary file into place", name);
}

/* -------------------------------------------------------------------- ops */

/* The kept descriptor of name: its slot (users counted), or -1. */
static int storage_posix_fd_take(storage_posix *sp, const char *name, int *fd)
{
    int slot = -1;
    pthread_mutex_lock(&sp->fd_mu);
    for (int i = 0; i < STORAGE_POSIX_FDS; i++) {
        struct storage_posix_fd *f = &sp->fds[i];
        if (f->name && strcmp(f->name, name) == 0) {
            f->users++;
            f->used = ++sp->fd_tick;
            *fd = f->fd;
            slot = i;
            break;
        }
    }
    pthread_mutex_unlock(&sp->fd_mu);
    return slot;
}

/* Keep fd (just opened for name) in a slot, evicting the least recently
 * used idle one: returns the slot (one user: the caller), or -1 when every
 * slot is busy or name was kept meanwhile by another thread (the caller
 * then closes fd itself). */
static int storage_posix_fd_keep(storage_posix *sp, const char *name, int fd)
{
    int slot = -1;
    pthread_mutex_lock(&sp->fd_mu);
    for (int i = 0; i < STORAGE_POSIX_FDS; i++) {
        struct storage_posix_fd *f = &sp->fds[i];
        if (f->name && strcmp(f->name, name) == 0) {
            slot = -1;
            goto out;
        }
        if (f->users)
            continue;
        if (f->fd < 0) { /* a free slot beats evicting one */
            if (slot < 0 || sp->fds[slot].fd >= 0)
                slot = i;
        } else if (slot < 0 || (sp->fds[slot].fd >= 0 && f->used < sp->fds[slot].used)) {
            slot = i;
        }
    }
    if (slot >= 0) {
        struct storage_posix_fd *f = &sp->fds[slot];
        if (f->fd >= 0)
            close(f->fd);
        free(f->name);
        f->name = ob_xstrdup(name);
        f->fd = fd;
        f->users = 1;
        f->used = ++sp->fd_tick;
    }
out:
    pthread_mutex_unlock(&sp->fd_mu);
    return slot;
}

static void storage_posix_fd_release(storage_posix *sp, int slot)
{
    pthread_mutex_lock(&sp->fd_mu);
    struct storage_posix_fd *f = &sp->fds[slot];
    if (--f->users == 0 && !f->name) { /* dropped while in use */
        close(f->fd);
        f->fd = -1;
    }
    pthread_mutex_unlock(&sp->fd_mu);
}

/* Forget name's descriptor (before a put or delete of name). */
static void storage_posix_fd_drop(storage_posix *sp, const char *name)
{
    pthread_mutex_lock(&sp->fd_mu);
    for (int i = 0; i < STORAGE_POSIX_FDS; i++) {
        struct storage_posix_fd *f = &sp->fds[i];
        if (f->name && strcmp(f->name, name) == 0) {
            free(f->name);
            f->name = NULL;
            if (f->users == 0) {
                close(f->fd);
                f->fd = -1;
            }
        }
    }
    pthread_mutex_unlock(&sp->fd_mu);
}

/* An object being written: a hidden temporary file beside its final name
 * (same directory, so the rename is atomic), published by commit. */
typedef struct storage_posix_write {
    char *name, *path, *dir, *tmp;
    int fd;
    size_t show;
} storage_posix_write;

static void storage_posix_write_free(storage_posix_write *pw)
{
    if (pw->fd >= 0)
        close(pw->fd);
    if (pw->tmp)
        unlink(pw->tmp);
    free(pw->tmp);
    free(pw->dir);
    free(pw->path);
    free(pw->name);
    free(pw);
}

static int storage_posix_write_open(storage *s, const char *name, void **state, ob_err *err)
{
    storage_posix *sp = (storage_posix *)s;
    *state = NULL;
    if (storage_posix_check_name(name, err) < 0)
        return -1;
    storage_posix_fd_drop(sp, name);
    storage_posix_write *pw = ob_xcalloc(1, sizeof *pw);
    pw->fd = -1;
    pw->name = ob_xstrdup(name);
    pw->show = strlen(sp->root) + 1;
    pw->path = storage_posix_path(sp, name);
    pw->dir = storage_posix_dirname(pw->path);
    int made_dirs = 0;

    for (int attempt = 0;; attempt++) {
        if (storage_posix_tmpname(pw->dir, &pw->tmp, err) < 0) {
            ob_err_prefix(err, "object %s", name);
            goto fail;
        }
        pw->fd = open(pw->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, STORAGE_POSIX_FILE_MODE);
        if (pw->fd >= 0)
            break;
        int e = errno;
        free(pw->tmp);
        pw->tmp = NULL; /* not ours: never unlink a name we did not create */
        if (e == ENOENT && !made_dirs) {
            /* First object in this directory: create it and retry once.
             * Trying the open first keeps the common case to one syscall. */
            made_dirs = 1;
            if (storage_posix_mkdirs(pw->dir, pw->show, pw->show, err) < 0) {
                ob_err_prefix(err, "object %s", name);
                goto fail;
            }
            continue;
        }
        if (e == EEXIST && attempt < 4)
            continue;
        ob_err_errno(err, e, "object %s: creating a temporary file in %s", name,
                     storage_posix_shown(pw->dir, pw->show));
        goto fail;
    }
    *state = pw;
    return 0;
fail:
    storage_posix_write_free(pw);
    return -1;
}

static int storage_posix_write_append(storage *s, void *state, const void *data, size_t len,
                                      ob_err *err)
{
    (void)s;
    storage_posix_write *pw = state;
    if (storage_posix_write_all(pw->fd, data, len) < 0)
        return ob_err_errno(err, errno, "object %s: writing %zu bytes to %s", pw->name, len,
                            storage_posix_shown(pw->tmp, pw->show));
    return 0;
}

static void storage_posix_write_abort(storage *s, void *state)
{
    (void)s;
    if (state)
        storage_posix_write_free(state);
}

/*
 * Make sure dir's own entry in its parent is durable before an object in
 * dir is reported durable.  mkdirs syncs the parent of a directory it
 * creates, but a writer that finds the directory already there (made a
 * moment ago by another thread or process that has not synced it yet)
 * would otherwise report its object durable while a crash could still lose
 * the directory and the object with it.  Syncing the parent once per
 * directory and handle closes that window at the cost of one fsync per
 * new directory.  The root itself is the repository's, made by init.
 */
static int storage_posix_sync_dir_entry(storage_posix *sp, const char *dir, size_t show,
                                        ob_err *err)
{
    if (strlen(dir) <= strlen(sp->root))
        return 0;
    pthread_mutex_lock(&sp->dirs_mu);
    int known = 0;
    for (size_t i = 0; i < sp->nsynced && !known; i++)
        known = strcmp(sp->synced_dirs[i], dir) == 0;
    pthread_mutex_unlock(&sp->dirs_mu);
    if (known)
        return 0;
    char *parent = storage_posix_dirname(dir);
    int rc = storage_posix_fsync_dir(parent, show, err);
    free(parent);
    if (rc < 0)
        return -1;
    pthread_mutex_lock(&sp->dirs_mu);
    sp->synced_dirs = ob_xrealloc(sp->synced_dirs, (sp->nsynced + 1) * sizeof *sp->synced_dirs);
    sp->synced_dirs[sp->nsynced++] = ob_xstrdup(dir);
    pthread_mutex_unlock(&sp->dirs_mu);
    return 0;
}

static int storage_posix_write_commit(storage *s, void *state, int flags, ob_err *err)
{
    storage_posix *sp = (storage_posix *)s;
    storage_posix_write *pw = state;
    const char *name = pw->name;
    int rc = -1, r;
    do
        r = fsync(pw->fd);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        ob_err_errno(err, errno, "object %s: syncing %s", name,
                     storage_posix_shown(pw->tmp, pw->show));
        goto out;
    }
    /* close can report a delayed write error (NFS); it is the last chance. */
    r = close(pw->fd);
    pw->fd = -1;
    if (r < 0) {
        ob_err_errno(err, errno, "object %s: closing %s", name,
                     storage_posix_shown(pw->tmp, pw->show));
        goto out;
    }

    if (flags & STORAGE_PUT_CREATE) {
        if (storage_posix_publish_new(pw->tmp, pw->path, name, err) < 0)
            goto out;
    } else if (rename(pw->tmp, pw->path) < 0) {
        ob_err_errno(err, errno, "object %s: renaming the temporary file into place", name);
        goto out;
    }
    free(pw->tmp);
    pw->tmp = NULL;

    /* Without this the rename may not survive a crash.  If it fails the new
     * object is visible but not known durable; reporting the failure is the
     * honest answer (the caller may retry a plain put, which is harmless). */
    if (storage_posix_fsync_dir(pw->dir, pw->show, err) < 0 ||
        storage_posix_sync_dir_entry(sp, pw->dir, pw->show, err) < 0) {
        ob_err_prefix(err, "object %s", name);
        goto out;
    }
    rc = 0;
out:
    storage_posix_write_free(pw);
    return rc;
}

static int storage_posix_put(storage *s, const char *name, const void *data, size_t len,
                             int flags, ob_err *err)
{
    void *pw;
    if (storage_posix_write_open(s, name, &pw, err) < 0)
        return -1;
    if (storage_posix_write_append(s, pw, data, len, err) < 0) {
        storage_posix_write_abort(s, pw);
        return -1;
    }
    return storage_posix_write_commit(s, pw, flags, err);
}

static int storage_posix_get(storage *s, const char *name, uint64_t offset, uint64_t len,
                             ob_buf *out, ob_err *err)
{
    storage_posix *sp = (storage_posix *)s;
    ob_buf_reset(out);
    if (storage_posix_check_name(name, err) < 0)
        return -1;
    char *path = NULL;
    int rc = -1, fd = -1;
    struct stat st;
    int slot = len ? storage_posix_fd_take(sp, name, &fd) : -1;
    if (slot >= 0 && (fstat(fd, &st) < 0 || st.st_nlink == 0)) {
        /* Deleted or replaced since it was kept: open the name again, so
         * the read fails (or succeeds) exactly as without the cache. */
        storage_posix_fd_drop(sp, name);
        storage_posix_fd_release(sp, slot);
        slot = fd = -1;
    }
    if (slot < 0) {
        path = storage_posix_path(sp, name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (storage_posix_missing(errno))
                ob_err_set(err, OB_ENOTFOUND, "object %s does not exist", name);
            else
                ob_err_errno(err, errno, "object %s: opening", name);
            goto out;
        }
        if (fstat(fd, &st) < 0) {
            ob_err_errno(err, errno, "object %s: stat", name);
            goto out;
        }
        if (!S_ISREG(st.st_mode)) { /* e.g. the directory "data" */
            ob_err_set(err, OB_ENOTFOUND, "object %s does not exist (not a regular file)", name);
            goto out;
        }
        if (len)
            slot = storage_posix_fd_keep(sp, name, fd);
    }
    uint64_t size = (uint64_t)st.st_size;
    uint64_t end = len == 0 ? size : (len > UINT64_MAX - offset ? UINT64_MAX : offset + len);
    if (offset > size || end > size) {
        if (len == 0)
            ob_err_set(err, OB_ECORRUPT,
                       "object %s is %" PRIu64 " bytes, wanted [%" PRIu64 ",end): truncated",
                       name, size, offset);
        else
            ob_err_set(err, OB_ECORRUPT,
                       "object %s is %" PRIu64 " bytes, wanted [%" PRIu64 ",%" PRIu64
                       "): truncated",
                       name, size, offset, end);
        goto out;
    }
    uint64_t want = end - offset;
    if (want > SIZE_MAX - 1) {
        ob_err_set(err, OB_EFAIL, "object %s: %" PRIu64 " bytes do not fit in memory", name,
                   want);
        goto out;
    }
    size_t n = (size_t)want, got = 0;
    ob_buf_reserve(out, n);
    while (got < n) {
        size_t chunk = n - got < STORAGE_POSIX_IO_CHUNK ? n - got : STORAGE_POSIX_IO_CHUNK;
        ssize_t r = pread(fd, out->data + got, chunk, (off_t)(offset + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            ob_err_errno(err, errno, "object %s: reading", name);
            goto out;
        }
        if (r == 0) { /* shrank after fstat: someone truncated it */
            ob_err_set(err, OB_ECORRUPT,
                       "object %s ended after %" PRIu64 " bytes, wanted [%" PRIu64 ",%" PRIu64
                       "): truncated",
                       name, offset + got, offset, end);
            goto out;
        }
        got += (size_t)r;
    }
    out->len = n;
    out->data[n] = 0; /* ob_buf keeps room for a terminator */
    rc = 0;

out:
    if (rc < 0)
        ob_buf_reset(out);
    if (slot >= 0)
        storage_posix_fd_release(sp, slot);
    else if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

typedef struct storage_posix_walk {
    storage_list_cb cb;
    void *ud;
    ob_buf rel;  /* relative name being visited, NUL-terminated */
    int stopped; /* the callback asked to stop */
} storage_posix_walk;

static const char *storage_posix_walk_name(const storage_posix_walk *w)
{
    return w->rel.len ? (const char *)w->rel.data : ".";
}

/*
 * Report every regular file under the directory open as fd (consumed),
 * whose relative name, with its trailing '/', is in w->rel.  At the top
 * level only entries starting with leaf are considered (the partial-name
 * part of a prefix such as "snapshots/ab"); below it, everything.
 * Symlinks are followed, like get does, so a data/ symlinked to another disk
 * still lists.  Entries that vanish mid-walk were deleted concurrently and
 * are skipped.
 */
static int storage_posix_walk_dir(storage_posix_walk *w, int fd, const char *leaf, int depth,
                                  ob_err *err)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return ob_err_errno(err, e, "reading directory %s", storage_posix_walk_name(w));
    }
    size_t leaflen = leaf ? strlen(leaf) : 0;
    size_t mark = w->rel.len;
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                rc = ob_err_errno(err, errno, "reading directory %s",
                                  storage_posix_walk_name(w));
            break;
        }
        const char *n = de->d_name;
        /* ".", "..", temporary files and anything else hidden: object names
         * never start with '.', so none of these can be an object. */
        if (n[0] == '.')
            continue;
        if (leaflen && strncmp(n, leaf, leaflen) != 0)
            continue;
        w->rel.len = mark;
        ob_buf_append(&w->rel, n, strlen(n));
        struct stat st;
        if (fstatat(dirfd(d), n, &st, 0) < 0) {
            if (storage_posix_missing(errno))
                continue;
            rc = ob_err_errno(err, errno, "stat %s", storage_posix_walk_name(w));
            break;
        }
        if (S_ISREG(st.st_mode)) {
            if (w->cb((const char *)w->rel.data, (uint64_t)st.st_size, w->ud)) {
                w->stopped = 1;
                break;
            }
        } else if (S_ISDIR(st.st_mode)) {
            if (depth >= STORAGE_POSIX_MAX_DEPTH) {
                rc = ob_err_set(err, OB_EIO,
                                "directory %s is nested too deeply (a symlink loop?)",
                                storage_posix_walk_name(w));
                break;
            }
            int sub = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (sub < 0) {
                if (storage_posix_missing(errno))
                    continue;
                rc = ob_err_errno(err, errno, "opening directory %s",
                                  storage_posix_walk_name(w));
                break;
            }
            ob_buf_putc(&w->rel, '/');
            if (storage_posix_walk_dir(w, sub, NULL, depth + 1, err) < 0) {
                rc = -1;
                break;
            }
            if (w->stopped)
                break;
        }
        /* Sockets, fifos, devices: not objects, silently not listed. */
    }
    w->rel.len = mark;
    w->rel.data[mark] = 0;
    closedir(d);
    return rc;
}

static int storage_posix_list(storage *s, const char *prefix, storage_list_cb cb, void *ud,
                              ob_err *err)
{
    storage_posix *sp = (storage_posix *)s;
    /* A prefix is a directory part ("snapshots/") plus a partial entry name
     * ("ab"); either may be empty.  Matching is by plain string prefix, as
     * in S3, so "data" also matches "database". */
    const char *slash = strrchr(prefix, '/');
    size_t dirlen = slash ? (size_t)(slash - prefix) + 1 : 0;
    const char *leaf = prefix + dirlen;
    for (const char *p = prefix; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return ob_err_set(err, OB_EUSAGE,
                              "invalid listing prefix: contains a control character");
    if (prefix[0] == '/')
        return ob_err_set(err, OB_EUSAGE, "listing \"%s\": invalid prefix: absolute path",
                          prefix);
    if (dirlen && storage_posix_check_path("listing", prefix, dirlen - 1, err) < 0)
        return -1;

    char *dir = ob_xasprintf("%s/%.*s", sp->root, (int)dirlen, prefix);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int e = errno;
    free(dir);
    if (fd < 0) {
        if (storage_posix_missing(e)) /* nothing stored under it yet */
            return 0;
        return ob_err_errno(err, e, "listing \"%s\": opening directory %.*s", prefix,
                            (int)(dirlen ? dirlen : 1), dirlen ? prefix : ".");
    }
    storage_posix_walk w = {cb, ud, OB_BUF_INIT, 0};
    ob_buf_append(&w.rel, prefix, dirlen); /* also makes rel.data non-NULL */
    int rc = storage_posix_walk_dir(&w, fd, leaf, 0, err);
    ob_buf_free(&w.rel);
    if (rc < 0)
        return ob_err_prefix(err, "listing \"%s\"", prefix);
    return 0;
}

static int storage_posix_del(storage *s, const char *name, ob_err *err)
{
    storage_posix *sp = (storage_posix *)s;
    if (storage_posix_check_name(name, err) < 0)
        return -1;
    storage_posix_fd_drop(sp, name);
    char *path = storage_posix_path(sp, name);
    int rc = 0;
    if (unlink(path) < 0) {
        /* Already gone is what the caller wanted (delete is idempotent);
         * whoever removed it is responsible for syncing that removal.
         * Empty directories are deliberately left in place: removing them
         * would race with a put that just created them. */
        if (!storage_posix_missing(errno))
            rc = ob_err_errno(err, errno, "object %s: removing", name);
    } else {
        char *dir = storage_posix_dirname(path);
        rc = storage_posix_fsync_dir(dir, strlen(sp->root) + 1, err);
        if (rc < 0)
            ob_err_prefix(err, "object %s", name);
        free(dir);
    }
    free(path);
    return rc;
}

static int storage_posix_stat(storage *s, const char *name, uint64_t *size, ob_err *err)
{
    storage_posix *sp = (storage_posix *)s;
    if (storage_posix_check_name(name, err) < 0)
        return -1;
    char *path = storage_posix_path(sp, name);
    struct stat st;
    int r = stat(path, &st);
    int e = errno;
    free(path);
    if (r < 0) {
        if (storage_posix_missing(e))
            return ob_err_set(err, OB_ENOTFOUND, "object %s does not exist", name);
        return ob_err_errno(err, e, "object %s: stat", name);
    }
    if (!S_ISREG(st.st_mode))
        return ob_err_set(err, OB_ENOTFOUND, "object %s does not exist (not a regular file)",
                          name);
    *size = (uint64_t)st.st_size;
    return 0;
}

/*
 * Remove ".tmp-*" files older than the cutoff in the directory open as fd
 * (consumed) and below it.  Only our own temporary names are touched, and
 * only regular files; hidden directories are not entered (object paths
 * never contain them).  A file that vanishes meanwhile was removed by
 * someone else (or published by its put): skipped.  Removals are not
 * synced: a removal lost in a crash only leaves garbage for the next run.
 */
static int storage_posix_tmp_walk(int fd, const char *rel, int64_t cutoff, int depth,
                                  uint64_t *count, uint64_t *bytes, ob_err *err)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return ob_err_errno(err, e, "reading directory %s", *rel ? rel : ".");
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                rc = ob_err_errno(err, errno, "reading directory %s", *rel ? rel : ".");
            break;
        }
        const char *n = de->d_name;
        struct stat st;
        int is_tmp = strncmp(n, STORAGE_POSIX_TMP_PREFIX, strlen(STORAGE_POSIX_TMP_PREFIX)) == 0;
        if (n[0] == '.' && !is_tmp)
            continue;
        if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (storage_posix_missing(errno))
                continue;
            rc = ob_err_errno(err, errno, "stat %s%s%s", rel, *rel ? "/" : "", n);
            break;
        }
        if (is_tmp) {
            if (!S_ISREG(st.st_mode) || (int64_t)st.st_mtime >= cutoff)
                continue;
            if (unlinkat(dirfd(d), n, 0) == 0) {
                (*count)++;
                *bytes += (uint64_t)st.st_size;
            } else if (!storage_posix_missing(errno)) {
                rc = ob_err_errno(err, errno, "removing %s%s%s", rel, *rel ? "/" : "", n);
                break;
            }
        } else if (S_ISDIR(st.st_mode) && depth < STORAGE_POSIX_MAX_DEPTH) {
            int sub = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                if (storage_posix_missing(errno))
                    continue;
                rc = ob_err_errno(err, errno, "opening directory %s%s%s", rel, *rel ? "/" : "", n);
                break;
            }
            char *subrel = ob_xasprintf("%s%s%s", rel, *rel ? "/" : "", n);
            rc = storage_posix_tmp_walk(sub, subrel, cutoff, depth + 1, count, bytes, err);
            free(subrel);
            if (rc < 0)
                break;
        }
    }
    closedir(d);
    return rc;
}

static int storage_posix_remove_temporaries(storage *s, int64_t max_age, uint64_t *count,
                                            uint64_t *bytes, ob_err *err)
{
    storage_posix *sp = (storage_posix *)s;
    int fd = open(*sp->root ? sp->root : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ob_err_errno(err, errno, "opening the repository directory");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return storage_posix_tmp_walk(fd, "", (int64_t)now.tv_sec - max_age, 0, count, bytes, err);
}

static void storage_posix_close(storage *s)
{
    storage_posix *sp = (storage_posix *)s;
    for (int i = 0; i < STORAGE_POSIX_FDS; i++) {
        if (sp->fds[i].fd >= 0)
            close(sp->fds[i].fd);
        free(sp->fds[i].name);
    }
    pthread_mutex_destroy(&sp->fd_mu);
    for (size_t i = 0; i < sp->nsynced; i++)
        free(sp->synced_dirs[i]);
    free(sp->synced_dirs);
    pthread_mutex_destroy(&sp->dirs_mu);
    free(sp->root);
    free(sp->base.url);
    free(sp);
}

static const storage_ops storage_posix_ops = {
    .scheme = "file",
    .put = storage_posix_put,
    .get = storage_posix_get,
    .list = storage_posix_list,
    .del = storage_posix_del,
    .stat = storage_posix_stat,
    .close = storage_posix_close,
    .remove_temporaries = storage_posix_remove_temporaries,
    .write_open = storage_posix_write_open,
    .write_append = storage_posix_write_append,
    .write_commit = storage_posix_write_commit,
    .write_abort = storage_posix_write_abort,
};

int storage_posix_open(const char *root, int create, storage **out, ob_err *err)
{
    *out = NULL;
    if (!root || root[0] != '/')
        return ob_err_set(err, OB_EUSAGE,
                          "storage %s: the repository directory must be an absolute path",
                          root ? root : "(none)");
    char *r = ob_xstrdup(root);
    size_t len = strlen(r);
    while (len > 0 && r[len - 1] == '/')
        r[--len] = '\0'; /* "/" becomes "": paths are built as root + "/" + name */
    const char *dir = len ? r : "/";

    struct stat st;
    if (stat(dir, &st) < 0) {
        int e = errno;
        if (e == ENOENT && create) {
            if (storage_posix_mkdirs(r, 0, 0, err) < 0) {
                ob_err_prefix(err, "storage %s: creating the repository directory", root);
                free(r);
                return -1;
            }
            if (stat(dir, &st) < 0) {
                e = errno;
                free(r);
                return ob_err_errno(err, e, "storage %s: after creating it", root);
            }
        } else {
            free(r);
            if (e == ENOENT)
                return ob_err_set(err, OB_ENOTFOUND, "storage %s: directory does not exist",
                                  root);
            return ob_err_errno(err, e, "storage %s", root);
        }
    }
    if (!S_ISDIR(st.st_mode)) {
        free(r);
        return ob_err_set(err, OB_EUSAGE, "storage %s: not a directory", root);
    }
    /* Writability is not checked: restoring from read-only media must work. */

    storage_posix *sp = ob_xcalloc(1, sizeof *sp);
    sp->base.ops = &storage_posix_ops;
    sp->base.url = ob_xstrdup(root);
    sp->root = r;
    pthread_mutex_init(&sp->fd_mu, NULL);
    pthread_mutex_init(&sp->dirs_mu, NULL);
    for (int i = 0; i < STORAGE_POSIX_FDS; i++)
        sp->fds[i].fd = -1;
    *out = &sp->base;
    return 0;
}
