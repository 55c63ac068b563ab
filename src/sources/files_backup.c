/*
 * files_backup.c — back up file trees.
 *
 * The walk is depth first in name order, one directory at a time, so memory
 * holds only the trees on the current path (plus the matching trees of the
 * parent snapshot), whatever the size of the whole tree.  File contents are
 * read and chunked here, and every chunk is handed to the repo_writer,
 * whose worker threads compress, encrypt and store it while we read on.
 *
 * An unchanged file (same size, mtime, ctime and inode as in the parent
 * snapshot, and all its chunks still in the index) is not read at all.
 *
 * Below each PATH nothing is looked up by its full path (session 13): every
 * directory is held open and its entries are stat'ed, opened and listed
 * relative to it (fstatat, openat, fdopendir).  A directory replaced by a
 * symlink between its lstat and its listing is then not followed out of the
 * tree (O_NOFOLLOW, and its dev/inode must be the ones lstat saw), and trees
 * whose full paths exceed PATH_MAX are backed up whole.  Full paths are
 * still built, on the heap, for messages, excludes and the filter.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "repo/chunker.h"
#include "repo/lock.h"
#include "repo/treeio.h"
#include "repo/writer.h"
#include "sources/files.h"
#include "sources/fsmeta.h"
#include "sources/stream.h"
#include "sources/superblock.h"

typedef struct backup_ctx {
    repo *r;
    repo_writer *w;
    const files_backup_opts *o;
    const chunker *ck;
    uint8_t *buf;          /* read buffer: 2 x max chunk */
    size_t buf_cap;
    files_progress prog;
    struct timespec last_progress;
    ob_sha256_ctx *digest;  /* over the PATHs' own nodes, see paths_digest */
    int64_t parent_time;    /* when the parent backup really started */
    superblock *sb;         /* o->super_block: files are stored as super blocks */
} backup_ctx;

static void progress_tick(backup_ctx *c, const char *path)
{
    if (!c->o->progress)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (now.tv_sec - c->last_progress.tv_sec) * 1000 +
              (now.tv_nsec - c->last_progress.tv_nsec) / 1000000;
    if (ms < 250)
        return;
    c->last_progress = now;
    repo_writer_stats ws;
    repo_writer_get_stats(c->w, &ws);
    c->prog.bytes_added = ws.bytes_added;
    c->prog.current = path;
    c->o->progress(&c->prog, 0, c->o->progress_ud);
}

static int excluded(const backup_ctx *c, const char *path, const char *name)
{
    for (size_t i = 0; i < c->o->nexcludes; i++) {
        const char *pat = c->o->excludes[i];
        /* A pattern with a '/' is matched against the whole path, one
         * without against the entry name, as in restic and rsync; in a
         * path, '*' and '?' stop at '/' (a shell pattern): with a '*' for
         * the middle level, /srv/ * /cache (spaces aside) is the cache one
         * level down, not every cache below /srv. */
        if (strchr(pat, '/') ? fnmatch(pat, path, FNM_PATHNAME) == 0
                             : fnmatch(pat, name, 0) == 0)
            return 1;
    }
    return 0;
}

/* errnum 0: what says it all (an ob_err message already names the cause).
 * The warning does not promise a snapshot: when nothing can be read none
 * is saved, and files_backup says so after the warnings; when one is, the
 * summary says it is incomplete. */
static void warn_entry(backup_ctx *c, const char *path, const char *what, int errnum)
{
    c->prog.errors++;
    if (errnum)
        ob_warn("%s: %s: %s (left out of this backup)", path, what, strerror(errnum));
    else
        ob_warn("%s: %s (left out of this backup)", path, what);
}

/* Reading one data region of a file: pread up to its end.  read_errno
 * records a failed pread, so a read error (EIO from a bad sector or a
 * network filesystem: the file's problem) can be told from a repository
 * error (the backup's problem) when stream_store fails. */
typedef struct region_reader {
    int fd;
    uint64_t next, end;
    backup_ctx *c;
    int read_errno;
} region_reader;

static ssize_t region_read(void *ud, uint8_t *buf, size_t len)
{
    region_reader *rr = ud;
    if (rr->next >= rr->end)
        return 0;
    if (len > rr->end - rr->next)
        len = (size_t)(rr->end - rr->next);
    for (;;) {
        ssize_t k = pread(rr->fd, buf, len, (off_t)rr->next);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            rr->read_errno = errno;
        if (k > 0) {
            rr->next += (uint64_t)k;
            rr->c->prog.bytes_read += (uint64_t)k;
        }
        return k;
    }
}

static void chunk_tick(void *ud, uint64_t bytes)
{
    (void)bytes;
    progress_tick(ud, NULL);
}

/* Chunk and store bytes [start, end) of fd (as super blocks if c->sb;
 * parent: the file in the parent snapshot, or NULL).  *reached is the
 * offset actually reached (less than end if the file shrank while we
 * read).  On failure *read_errno is non-zero if reading the file failed
 * (err then says where), zero if storing failed. */
static int chunk_region(backup_ctx *c, int fd, uint64_t start, uint64_t end,
                        const tree_node *parent, tree_node *n, size_t *ext_cap,
                        uint64_t *reached, int *read_errno, ob_err *err)
{
    region_reader rr = {fd, start, end, c, 0};
    stream_sink sink = {c->w, c->ck, c->buf, c->buf_cap, chunk_tick, c};
    uint64_t got = 0;
    *read_errno = 0;
    int rc = c->sb ? superblock_store(c->sb, parent, region_read, &rr, "file", start, end, n,
                                      ext_cap, chunk_tick, c, &got, err)
                   : stream_store(&sink, region_read, &rr, "file", start, n, ext_cap, &got, err);
    if (rc < 0) {
        *read_errno = rr.read_errno;
        return -1;
    }
    *reached = start + got;
    return 0;
}

/* Read a regular file's data regions (holes are skipped: SEEK_DATA /
 * SEEK_HOLE) into extents.  The file is entry `name` of directory dfd;
 * path is for messages; parent is the file in the parent snapshot, or
 * NULL.  Returns 1 if the file could not be read (a warning was logged;
 * the caller drops the node, extents and all), 0 on success, -1 on a
 * repository error. */
static int read_file(backup_ctx *c, int dfd, const char *name, const char *path,
                     const tree_node *parent, tree_node *n, ob_err *err)
{
    /* O_NONBLOCK: if the file was swapped for a FIFO since its lstat, the
     * open must not wait for a writer (fstat below then refuses it); it
     * changes nothing for a regular file. */
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME | O_NONBLOCK);
    if (fd < 0 && errno == EPERM)
        fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        /* Removed since the directory was listed (PostgreSQL drops and
         * truncates relations all the time): as if never seen. */
        if (errno != ENOENT)
            warn_entry(c, path, "cannot open", errno);
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        warn_entry(c, path, "changed type while being backed up", EAGAIN);
        close(fd);
        return 1;
    }
    uint64_t size = (uint64_t)st.st_size, pos = 0, last = 0;
    size_t ext_cap = 0;
    int rc = 0, shrank = 0;
    while (pos < size) {
        off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) /* only a hole remains */
                break;
            data = (off_t)pos; /* no SEEK_DATA support: read everything */
        }
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0 || (uint64_t)hole > size)
            hole = (off_t)size;
        uint64_t reached = 0;
        int read_errno = 0;
        rc = chunk_region(c, fd, (uint64_t)data, (uint64_t)hole, parent, n, &ext_cap, &reached,
                          &read_errno, err);
        if (rc < 0 && read_errno) {
            /* EIO (a bad sector, a flaky NFS server) is this file's
             * problem, not the backup's: like any unreadable entry it is
             * left out with a warning and the snapshot is saved marked
             * incomplete (restic and borg skip such a file too).  Not kept
             * from the parent snapshot: that would present an old version
             * as this backup's.  What was stored of it stays unreferenced
             * until a prune. */
            warn_entry(c, path, ob_err_msg(err), 0);
            ob_err_clear(err);
            rc = 1;
            break;
        }
        if (rc < 0) {
            ob_err_prefix(err, "%s", path);
            break;
        }
        last = reached;
        if (reached < (uint64_t)hole) { /* shrank while reading */
            shrank = 1;
            break;
        }
        pos = (uint64_t)hole;
    }
    close(fd);
    /* A file cut short while it was read is stored as read, so that its
     * size agrees with its data: keeping the size stat gave first made a
     * restore pad it with zeros, a version that never existed.  Physical
     * backups expect this (WAL replay redoes the truncation). */
    if (rc == 0 && shrank) {
        size = last;
        if (!c->o->parent_strict)
            ob_warn("%s: shrank while being read; stored as read (%llu bytes)", path,
                    (unsigned long long)last);
    }
    n->size = size;
    return rc;
}

/* Access times are not kept (like tar and borg): every read of a file or
 * listing of a directory — including our own — would change them, so
 * trees would never deduplicate and "has this config changed?" would
 * always say yes.  A restored entry gets its mtime as atime. */
static void forget_atime(tree_node *n)
{
    n->atime_sec = n->mtime_sec;
    n->atime_nsec = n->mtime_nsec;
}

static int same_file(const tree_node *a, const tree_node *b)
{
    return a->type == TREE_FILE && b->type == TREE_FILE && a->size == b->size &&
           a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
           a->ctime_sec == b->ctime_sec && a->ctime_nsec == b->ctime_nsec &&
           a->inode == b->inode;
}

static int backup_dir(backup_ctx *c, int fd, const char *path, const uint8_t *parent_tree,
                      uint8_t id[OB_ID_LEN], ob_err *err);

static int save_empty_tree(backup_ctx *c, uint8_t id[OB_ID_LEN], ob_err *err)
{
    tree empty;
    tree_init(&empty);
    int rc = treeio_save(c->w, &empty, id, err);
    tree_free(&empty);
    return rc;
}

/* Open directory `name` of dfd for listing, the one *st describes.  A
 * directory is opened with O_NOFOLLOW unless `follow` says the filter
 * follows this symlink on purpose (a tablespace, a symlinked pg_wal), and
 * must be the very inode stat saw: otherwise it was replaced since (by a
 * symlink to /etc, say), and following it would back up something outside
 * the tree as if it were inside.  Returns the descriptor; -1 if it vanished
 * (nothing said) or was replaced (a warning): the entry is dropped; -2 if
 * it cannot be opened (a warning): it is kept with an empty listing. */
static int open_dir(backup_ctx *c, int dfd, const char *name, const char *path,
                    const struct stat *st, int follow)
{
    int fd = openat(dfd, name,
                    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW));
    if (fd < 0) {
        /* Removed since its lstat (DROP DATABASE during a physical backup
         * removes base/OID): as if never seen, like a vanished file. */
        if (errno == ENOENT)
            return -1;
        if (errno == ELOOP || errno == ENOTDIR) {
            warn_entry(c, path, "was a directory, is no longer one (replaced while being backed "
                       "up; not followed)", 0);
            return -1;
        }
        warn_entry(c, path, errno == EMFILE ? "cannot list directory (one descriptor is held "
                                              "per directory level: raise ulimit -n)"
                                            : "cannot list directory",
                   errno);
        return -2;
    }
    struct stat now;
    if (fstat(fd, &now) < 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino) {
        warn_entry(c, path, "was replaced by another directory while being backed up (not "
                   "followed)", 0);
        close(fd);
        return -1;
    }
    return fd;
}

/* Fill node n for entry `name` of directory dfd (already lstat'ed, or
 * stat'ed if `follow`: a symlink the filter follows on purpose); path is
 * its full path, for messages.  old: the same entry in the parent
 * snapshot, or NULL.  empty_dir: a directory whose contents the filter
 * leaves out. */
static int backup_entry(backup_ctx *c, int dfd, const char *path, const char *name,
                        const struct stat *st, const tree_node *old, int empty_dir, int follow,
                        tree_node *n, ob_err *err)
{
    if (fsmeta_capture_at(dfd, name, path, name, st, n, err) < 0) {
        /* Removed since it was listed, between the lstat and reading its
         * extended attributes or link target (PostgreSQL drops relations
         * and their forks during a physical backup): as if never seen, as
         * read_file does. */
        if (err->code != OB_ENOTFOUND)
            warn_entry(c, path, ob_err_msg(err), 0);
        ob_err_clear(err);
        return 1;
    }
    forget_atime(n);
    switch (n->type) {
    case TREE_DIR: {
        /* A snapshot holds trees down to TREE_MAX_DEPTH levels and every
         * reader refuses deeper ones (a crafted tree must not exhaust the
         * stack): a directory whose listing would sit deeper is left out,
         * loudly, rather than stored in a snapshot restore would refuse.
         * Its listing's level is the number of components of its path. */
        size_t level = 0;
        for (const char *p = path; *p; p++)
            level += *p == '/';
        if (level > TREE_MAX_DEPTH) {
            char *why = ob_xasprintf("a directory nested more than %d levels deep, the most a "
                                     "snapshot may hold",
                                     TREE_MAX_DEPTH);
            warn_entry(c, path, why, 0);
            free(why);
            return 1;
        }
        c->prog.dirs++;
        if (empty_dir)
            return save_empty_tree(c, n->subtree, err);
        const uint8_t *ptree = old && old->type == TREE_DIR ? old->subtree : NULL;
        int fd = open_dir(c, dfd, name, path, st, follow);
        if (fd == -1) {
            c->prog.dirs--; /* vanished or replaced before it could be listed */
            return 1;
        }
        if (fd == -2) /* unlistable: store an empty listing, the directory itself is restored */
            return save_empty_tree(c, n->subtree, err);
        return backup_dir(c, fd, path, ptree, n->subtree, err);
    }
    case TREE_FILE:
        c->prog.files++;
        c->prog.bytes += (uint64_t)st->st_size;
        /* Reused only if it was last changed before the parent backup
         * started, by its ctime (which every write moves and nobody can set
         * back; an mtime can be anything): a file rewritten with the same
         * size in the same second as the parent read it keeps its size,
         * mtime, ctime and inode on a filesystem with coarse timestamps,
         * and would be reused stale for good. */
        if (old && same_file(old, n) && old->ctime_sec < c->parent_time - 1) {
            int all = 1;
            for (size_t i = 0; i < old->nextents && all; i++)
                all = repo_writer_has(c->w, old->extents[i].id);
            if (all) {
                if (old->nextents) {
                    n->extents = ob_xmalloc(old->nextents * sizeof *n->extents);
                    memcpy(n->extents, old->extents, old->nextents * sizeof *n->extents);
                    n->nextents = old->nextents;
                }
                return 0;
            }
        }
        {
            int r = read_file(c, dfd, name, path, old && old->type == TREE_FILE ? old : NULL, n,
                              err);
            /* The snapshot's count: what was stored (a file that shrank or
             * grew while read is stored as read), and nothing of a file
             * left out (vanished, unreadable). */
            c->prog.bytes -= (uint64_t)st->st_size;
            if (r == 0)
                c->prog.bytes += n->size;
            if (r == 1)
                c->prog.files--;
            return r;
        }
    default:
        return 0;
    }
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Back up the directory open as fd (taken over: closed here), whose full
 * path is path.  It stays open until its entries are done: they are all
 * reached through it. */
static int backup_dir(backup_ctx *c, int fd, const char *path, const uint8_t *parent_tree,
                      uint8_t id[OB_ID_LEN], ob_err *err)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        warn_entry(c, path, "cannot list directory", errno);
        close(fd);
        /* Store an empty listing so the directory itself is restored. */
        return save_empty_tree(c, id, err);
    }
    int dfd = dirfd(d);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    for (;;) {
        errno = 0;
        if (!(de = readdir(d)))
            break;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            names = ob_xrealloc(names, cap * sizeof *names);
        }
        names[n++] = ob_xstrdup(de->d_name);
    }
    /* readdir returns NULL at the end and on an error: an error (EIO,
     * ESTALE) part way through must not pass for the end of a listing. */
    if (errno)
        warn_entry(c, path, "reading the directory (entries after the error are missing)",
                   errno);
    if (n > 1)
        qsort(names, n, sizeof *names, name_cmp);

    tree old;
    tree_init(&old);
    if (parent_tree) {
        ob_err e = OB_ERR_INIT;
        if (treeio_load(c->r, parent_tree, &old, &e) < 0) {
            ob_debug("parent tree unusable, reading everything: %s", ob_err_msg(&e));
            tree_free(&old);
            tree_init(&old);
        }
        ob_err_clear(&e);
    }

    tree t;
    tree_init(&t);
    /* Super blocks write version 2 for every tree that lists files, also
     * where no slice was needed (FORMAT.md 12.2); an empty directory's and
     * the ones above the PATHs stay version 1. */
    if (c->sb)
        t.version = 2;
    int rc = 0;
    size_t plen = strlen(path);
    int root = plen == 1 && path[0] == '/';
    /* Two passes: entries the filter marks FILES_LAST are read after all
     * their siblings. */
    uint8_t *last = ob_xcalloc(n ? n : 1, 1);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n && rc >= 0; i++) {
            if (pass == 1 && !last[i])
                continue;
            char *child = root ? ob_xasprintf("/%s", names[i])
                               : ob_xasprintf("%s/%s", path, names[i]);
            struct stat st;
            if (excluded(c, child, names[i])) {
                free(child);
                continue;
            }
            if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno != ENOENT) /* vanished since readdir: not an error */
                    warn_entry(c, child, "cannot stat", errno);
                free(child);
                continue;
            }
            int f = c->o->filter ? c->o->filter(c->o->filter_ud, child, names[i], &st) : 0;
            if ((f & 3) == FILES_EXCLUDE) {
                free(child);
                continue;
            }
            if (pass == 0 && (f & FILES_LAST)) {
                last[i] = 1;
                free(child);
                continue;
            }
            /* Followed on purpose (the filter's FILES_FOLLOW: tablespaces,
             * a symlinked pg_wal): its target is what gets backed up, and
             * open_dir checks it is still the one stat saw. */
            int follow = (f & FILES_FOLLOW) && S_ISLNK(st.st_mode);
            if (follow && fstatat(dfd, names[i], &st, 0) < 0) {
                warn_entry(c, child, "cannot follow symlink", errno);
                free(child);
                continue;
            }
            const tree_node *prev = tree_find(&old, names[i], strlen(names[i]));
            tree_node *node = tree_add(&t);
            int r = backup_entry(c, dfd, child, names[i], &st, prev, (f & 3) == FILES_EMPTY_DIR,
                                 follow, node, err);
            if (r == 0 && (f & FILES_FOLLOW) && S_ISDIR(st.st_mode))
                node->type = TREE_DIR; /* fsmeta saw the symlink's name, not its type */
            if (r == 1) {
                /* Unreadable entry: drop it rather than store half of it. */
                tree_node_free(node);
                t.n--;
            } else if (r < 0) {
                rc = -1;
            }
            progress_tick(c, child);
            free(child);
        }
    }
    free(last);
    closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    tree_free(&old);
    if (rc == 0)
        rc = treeio_save(c->w, &t, id, err);
    tree_free(&t);
    return rc;
}

/* ---- the virtual root: full paths of the backed-up PATHs ------------- */

/* Make an absolute, lexically normalized path ("a/../b" -> "/cwd/b"). */
static char *normalize_path(const char *p, ob_err *err)
{
    char *abs;
    if (p[0] == '/') {
        abs = ob_xstrdup(p);
    } else {
        char *cwd = getcwd(NULL, 0);
        if (!cwd) {
            ob_err_errno(err, errno, "cannot determine the current directory");
            return NULL;
        }
        abs = ob_xasprintf("%s/%s", cwd, p);
        free(cwd);
    }
    size_t len = strlen(abs);
    char *out = ob_xmalloc(len + 2);
    size_t o = 0;
    const char *s = abs;
    while (*s) {
        while (*s == '/')
            s++;
        const char *e = s;
        while (*e && *e != '/')
            e++;
        size_t k = (size_t)(e - s);
        if (k == 0 || (k == 1 && s[0] == '.')) {
            /* skip */
        } else if (k == 2 && s[0] == '.' && s[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else {
            out[o++] = '/';
            memcpy(out + o, s, k);
            o += k;
        }
        s = e;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    free(abs);
    return out;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The PATHs' own entries (with their subtree IDs, so everything below) feed
 * a digest recorded in the snapshot.  Unlike the root tree ID it leaves
 * out the ancestors of the PATHs, whose times change whenever anything
 * else in them changes: `backup config` compares digests to decide whether
 * anything it protects changed. */
static void digest_node(backup_ctx *c, const char *path, const tree_node *n)
{
    tree one;
    tree_init(&one);
    tree_node *copy = tree_add(&one);
    *copy = *n; /* shallow: encode only reads it */
    ob_buf b = OB_BUF_INIT;
    tree_encode(&one, &b);
    one.n = 0; /* the node's memory belongs to the caller's tree */
    tree_free(&one);
    ob_sha256_update(c->digest, path, strlen(path) + 1);
    ob_sha256_update(c->digest, b.data, b.len);
    ob_buf_free(&b);
}

/* PATHs that cannot be looked up: n of them at or below path.  Left out
 * with a warning, as an unreadable entry below a PATH is (D58): the others
 * are still backed up, and the snapshot is marked incomplete. */
static void skip_paths(backup_ctx *c, const char *path, const char *what, int errnum, size_t n)
{
    warn_entry(c, path, what, errnum);
    c->prog.errors += n - 1;
}

/* Build the tree for directory `dir` (an ancestor of some PATHs): it holds
 * only the next components of those PATHs.  *stored is increased by the
 * PATHs stored; an ancestor below which none was is left out too. */
static int backup_virtual(backup_ctx *c, const char *dir, char **paths, size_t npaths,
                          const uint8_t *parent_tree, uint8_t id[OB_ID_LEN], size_t *stored,
                          ob_err *err)
{
    tree old, t;
    tree_init(&old);
    tree_init(&t);
    if (parent_tree) {
        ob_err e = OB_ERR_INIT;
        if (treeio_load(c->r, parent_tree, &old, &e) < 0) {
            tree_free(&old);
            tree_init(&old);
        }
        ob_err_clear(&e);
    }
    size_t dlen = strcmp(dir, "/") == 0 ? 0 : strlen(dir);
    int rc = 0;
    size_t i = 0;
    /* dir itself, opened when a PATH in it is reached: the walk below a
     * PATH goes through descriptors (see the top of this file).  dir is
     * resolved following symlinks, as the PATH given resolves.  O_PATH:
     * only search permission is needed, as for the lstat of a path through
     * it (postgres backs up its data directory inside a directory it may
     * not list). */
    int dfd = -1;
    while (i < npaths && rc == 0) {
        /* Group the PATHs that share the next component. */
        const char *rest = paths[i] + dlen + 1;
        const char *slash = strchr(rest, '/');
        size_t clen = slash ? (size_t)(slash - rest) : strlen(rest);
        size_t j = i + 1;
        while (j < npaths && strncmp(paths[j] + dlen + 1, rest, clen) == 0 &&
               (paths[j][dlen + 1 + clen] == '/' || paths[j][dlen + 1 + clen] == '\0'))
            j++;
        char *name = ob_xstrndup(rest, clen);
        char *full = ob_xasprintf("%.*s/%s", (int)dlen, dir, name);
        const tree_node *prev = tree_find(&old, name, clen);
        struct stat st;
        int is_target = !slash; /* a PATH itself, backed up entirely */
        if (is_target && dfd < 0 &&
            (dfd = open(dlen ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
            skip_paths(c, full, "its directory cannot be opened", errno, 1);
        } else if (is_target ? fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0
                             : lstat(full, &st) < 0) {
            skip_paths(c, full, "cannot be backed up", errno, j - i);
        } else if (is_target) {
            tree_node *node = tree_add(&t);
            uint64_t warned = c->prog.errors;
            int r = backup_entry(c, dfd, full, name, &st, prev, 0, 0, node, err);
            if (r == 1) {
                /* Left out (backup_entry warned, unless it was removed
                 * since the fstatat: for a PATH that is worth a word). */
                if (c->prog.errors == warned)
                    skip_paths(c, full, "was removed while being backed up", 0, 1);
                tree_node_free(node);
                t.n--;
            } else if (r < 0) {
                rc = -1;
            } else {
                digest_node(c, full, node);
                (*stored)++;
            }
        } else if (S_ISLNK(st.st_mode) && stat(full, &st) < 0) {
            /* An ancestor on the way, followed if it is a symlink (the PATH
             * resolves through it): its target is gone. */
            skip_paths(c, full, "cannot be followed", errno, j - i);
        } else if (!S_ISDIR(st.st_mode)) {
            skip_paths(c, full, "is not a directory, so the PATHs below it cannot be backed up",
                       0, j - i);
        } else {
            /* An ancestor: keep its metadata, list only PATHs. */
            tree_node *node = tree_add(&t);
            size_t below = 0;
            if (fsmeta_capture(full, name, &st, node, err) < 0) {
                /* It went between the lstat and reading its extended
                 * attributes (renamed or removed), or they cannot be read:
                 * the PATHs below it are left out, as when the lstat
                 * fails, and the others still backed up. */
                char *msg = ob_xstrdup(err->code == OB_ENOTFOUND ? "was removed while being "
                                                                   "backed up"
                                                                 : ob_err_msg(err));
                ob_err_clear(err);
                skip_paths(c, full, msg, 0, j - i);
                free(msg);
            } else {
                forget_atime(node);
                node->type = TREE_DIR;
                const uint8_t *pt = prev && prev->type == TREE_DIR ? prev->subtree : NULL;
                rc = backup_virtual(c, full, paths + i, j - i, pt, node->subtree, &below, err);
            }
            if (rc == 0 && below == 0) {
                tree_node_free(node);
                t.n--;
            }
            *stored += below;
        }
        free(name);
        free(full);
        i = j;
    }
    if (dfd >= 0)
        close(dfd);
    tree_free(&old);
    /* Nothing stored below dir: the caller leaves dir out, so its (empty)
     * tree would be an unreferenced blob until the next prune. */
    if (rc == 0 && t.n > 0)
        rc = treeio_save(c->w, &t, id, err);
    tree_free(&t);
    return rc;
}

int files_backup(repo *r, char **in_paths, size_t npaths, const files_backup_opts *o,
                 snapshot **out, int *unchanged, ob_err *err)
{
    *out = NULL;
    if (unchanged)
        *unchanged = 0;
    if (npaths == 0)
        return ob_err_set(err, OB_EUSAGE, "nothing to back up: give at least one PATH");
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    /* Absolute, sorted, without duplicates or PATHs inside other PATHs. */
    char **paths = ob_xcalloc(npaths, sizeof *paths);
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < npaths; i++) {
        paths[n] = normalize_path(in_paths[i], err);
        if (!paths[n]) {
            rc = -1;
            break;
        }
        /* Its ancestors are tree levels too, and every reader refuses a
         * tree deeper than TREE_MAX_DEPTH: such a snapshot could not be
         * restored, so it is not made. */
        size_t depth = 0;
        for (const char *q = paths[n]; *q; q++)
            depth += *q == '/';
        n++;
        if (depth > TREE_MAX_DEPTH) {
            rc = ob_err_set(err, OB_EUSAGE,
                            "%s: %zu directories deep, more than the %d a snapshot may hold; "
                            "back up a directory nearer the root",
                            paths[n - 1], depth, TREE_MAX_DEPTH);
            break;
        }
    }
    if (rc == 0) {
        qsort(paths, n, sizeof *paths, str_cmp);
        /* A path inside another kept one (or equal to it) goes.  Compared
         * with every kept path, not only the previous: in strcmp order
         * "/x/app-extra" falls between "/x/app" and "/x/app/conf.d" ('-'
         * sorts before '/'), and the snapshot then held two entries named
         * "app" that nothing could restore. */
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            int inside = 0;
            for (size_t j = 0; j < k && !inside; j++) {
                size_t pl = strlen(paths[j]);
                inside = strcmp(paths[j], "/") == 0 ||
                         (strncmp(paths[i], paths[j], pl) == 0 &&
                          (paths[i][pl] == '/' || paths[i][pl] == '\0'));
            }
            if (inside)
                free(paths[i]);
            else
                paths[k++] = paths[i];
        }
        n = k;
    }

    snapshot *snap = snapshot_new(o->kind ? o->kind : "files");
    if (o->set) {
        free(snap->set);
        snap->set = ob_xstrdup(o->set);
    }
    for (size_t i = 0; i < n; i++)
        snapshot_add_path(snap, paths[i]);
    for (size_t i = 0; i < o->ntags; i++)
        snapshot_add_tag(snap, o->tags[i]);
    if (o->time_sec) {
        snap->time_sec = o->time_sec;
        snap->time_nsec = 0;
    }

    snapshot **all = NULL;
    size_t nall = 0;
    snapshot *parent = NULL;
    backup_ctx c;
    memset(&c, 0, sizeof c);
    c.r = r;
    c.o = o;
    c.ck = o->chunker ? o->chunker : repo_chunker(r, REPO_CHUNK_FILES);
    c.buf_cap = 2 * (size_t)chunker_get_params(c.ck)->max_size;
    c.buf = ob_xmalloc(c.buf_cap);
    c.digest = ob_sha256_new();
    if (rc == 0)
        rc = snapshot_list(r, &all, &nall, err);
    if (rc == 0) {
        parent = snapshot_pick_parent(all, nall, snap);
        if (parent) {
            /* Its real start, not its time: a --time in the future would
             * reuse files changed while it ran, one in the past would reuse
             * nothing ever after.  Snapshots from before stats.started
             * have only their time. */
            c.parent_time = parent->stats.started ? parent->stats.started : parent->time_sec;
            snap->has_parent = 1;
            memcpy(snap->parent, parent->id, sizeof snap->parent);
        }
        rc = repo_writer_new(r, o->nthreads, &c.w, err);
        if (rc == 0)
            repo_writer_set_lock(c.w, o->lock);
        if (rc == 0 && o->super_block)
            c.sb = superblock_new(r, c.w, o->super_block,
                                  chunker_get_params(c.ck)->max_size);
    }
    if (rc == 0) {
        /* Only a root "/" PATH is itself the root directory. */
        const uint8_t *ptree = parent && !o->no_parent ? parent->tree : NULL;
        if (n == 1 && strcmp(paths[0], "/") == 0) {
            int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (fd < 0) {
                rc = ob_err_errno(err, errno, "/ cannot be listed");
            } else {
                c.prog.dirs++;
                rc = backup_dir(&c, fd, "/", ptree, snap->tree, err);
                ob_sha256_update(c.digest, snap->tree, OB_ID_LEN);
            }
        } else {
            size_t stored = 0;
            rc = backup_virtual(&c, "/", paths, n, ptree, snap->tree, &stored, err);
            if (rc == 0 && stored == 0 && n == 1)
                rc = ob_err_set(err, OB_EIO,
                                "%s could not be backed up (see the warning above); no "
                                "snapshot was saved",
                                paths[0]);
            else if (rc == 0 && stored == 0)
                rc = ob_err_set(err, OB_EIO,
                                "none of the %zu PATHs could be backed up (see the warnings "
                                "above); no snapshot was saved",
                                n);
        }
    }
    if (rc == 0 && o->before_commit) {
        snap->stats.errors = c.prog.errors;
        rc = o->before_commit(o->commit_ud, snap, err);
    }
    if (rc == 0)
        rc = repo_writer_flush(c.w, err);
    if (rc == 0) {
        repo_writer_stats ws;
        repo_writer_get_stats(c.w, &ws);
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        snap->stats.files = c.prog.files;
        snap->stats.dirs = c.prog.dirs;
        snap->stats.bytes = c.prog.bytes;
        snap->stats.bytes_added = ws.bytes_added;
        snap->stats.bytes_stored = ws.bytes_stored;
        snap->stats.blobs_added = ws.blobs_added;
        snap->stats.errors = c.prog.errors;
        snap->stats.duration = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (!snap->extra)
            snap->extra = json_object();
        json_object_set_new(snap->extra, "bytes_read", json_integer((json_int_t)c.prog.bytes_read));
        uint8_t dg[OB_ID_LEN];
        char dg_hex[OB_HEX_ID_LEN + 1];
        ob_sha256_final(c.digest, dg);
        c.digest = NULL;
        ob_hex(dg, OB_ID_LEN, dg_hex);
        json_object_set_new(snap->extra, "paths_digest", json_string(dg_hex));
        c.prog.bytes_added = ws.bytes_added;
        if (o->progress)
            o->progress(&c.prog, 1, o->progress_ud);
        json_t *pd = parent && parent->extra ? json_object_get(parent->extra, "paths_digest") : NULL;
        /* An incomplete parent is never handed back: what it missed may
         * read as nothing now (a listing that failed after its last entry),
         * and handing it back would report this complete run incomplete,
         * run after run, until something changed. */
        if (o->skip_if_unchanged && parent && c.prog.errors == 0 && parent->stats.errors == 0 &&
            json_is_string(pd) && strcmp(json_string_value(pd), dg_hex) == 0) {
            /* Nothing changed: hand back the previous snapshot. */
            for (size_t i = 0; i < nall; i++)
                if (all[i] == parent)
                    all[i] = NULL;
            snapshot_free(snap);
            snap = parent;
            if (unchanged)
                *unchanged = 1;
        } else if (o->lock && repo_lock_lost(o->lock, err)) {
            /* Without a live lease a prune may have run: do not commit. */
            rc = ob_err_prefix(err, "not saving the snapshot");
        } else {
            rc = snapshot_save(r, snap, err);
        }
    }
    superblock_free(c.sb);
    repo_writer_free(c.w);
    free(c.buf);
    if (c.digest) {
        uint8_t unused[OB_ID_LEN];
        ob_sha256_final(c.digest, unused); /* frees it */
    }
    snapshot_list_free(all, nall);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    if (rc < 0) {
        snapshot_free(snap);
        return -1;
    }
    *out = snap;
    if (snap->stats.errors && !(unchanged && *unchanged))
        return ob_err_set(err, OB_EIO,
                          "snapshot %.8s saved, but %llu %s not be read (see warnings "
                          "above); it is incomplete",
                          snap->id, (unsigned long long)snap->stats.errors,
                          snap->stats.errors == 1 ? "entry could" : "entries could");
    return 0;
}
