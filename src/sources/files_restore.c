/*
 * files_restore.c — restore a files/config snapshot below a target
 * directory, and walk / diff snapshot trees.
 *
 * Safety: every entry is created relative to an open descriptor of its
 * parent directory, with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, and a directory
 * is only ever entered through openat(O_DIRECTORY | O_NOFOLLOW).  So a
 * name can never climb out of the target ('..', '/' are also refused by
 * tree_decode and again here), and a symlink — planted in the snapshot or
 * already present in the target — is never followed to write elsewhere.
 *
 * Directories are created lazily: an entry excluded by --include creates
 * nothing, and ancestors appear only when something below them is
 * restored.  Directory metadata (times above all) is applied after the
 * directory's children, or writing the children would change it again.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <fnmatch.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/util.h"
#include "core/log.h"
#include "repo/chunker.h"
#include "repo/treeio.h"
#include "sources/files.h"
#include "sources/fsmeta.h"

/* The times of a directory whose files are still being written.  A file
 * is renamed into place when complete, which changes its directory's
 * mtime, possibly after the walker has applied the directory's metadata;
 * so whoever finishes last with the directory (the walker, or the worker
 * of its last file) applies its times (again). */
typedef struct dir_times {
    int refs;              /* under restore_ctx.mu: the walker's, one per queued file */
    int final;             /* ts is set: the walker has applied the metadata */
    struct timespec ts[2];
} dir_times;

/* A directory on the current restore path. */
typedef struct rdir {
    struct rdir *parent;
    const char *name;      /* NULL for the target itself */
    char *path;            /* snapshot path, "/" for the root */
    int fd;                /* -1 until created / opened */
    dir_times *dt;         /* NULL until a file of it is queued */
    int depth;             /* 0 for the target; at most TREE_MAX_DEPTH */
} rdir;

/* A later name of a hard-link group whose first name is still being
 * written: linked by the worker that completes the first name. */
typedef struct pending_link {
    struct pending_link *next;
    int dirfd;             /* owned */
    char *name, *path;
    struct dir_times *dt;  /* of dirfd; one reference */
} pending_link;

/* The first name of a hard-link group, as restored.  Its later names are
 * linked to it only once its data is complete and in place, so that a
 * restore that fails on the group's data leaves every name of it as it
 * was.  Heap-allocated: workers hold it while the walker grows the table. */
typedef struct link_group {
    char *relpath;         /* relative to the target; immutable */
    dev_t st_dev;          /* what the first name was created as */
    ino_t st_ino;
    int state;             /* under restore_ctx.mu: 0 being written, 1 in place, -1 failed */
    pending_link *pending; /* under restore_ctx.mu, while state is 0 */
} link_group;

typedef struct hardlink {
    uint64_t dev, inode;
    uint64_t size;
    uint8_t content[OB_ID_LEN]; /* hardlink_content of the name restored */
    link_group *g;         /* owned */
} hardlink;

typedef struct restore_ctx {
    repo *r;
    const snapshot *s;
    const files_restore_opts *o;
    files_restore_stats *st;
    int target_fd;
    hardlink *links;
    size_t nlinks, links_cap;
    /* links by (dev, inode): open addressing, slot = index + 1, 0 empty;
     * never more than half full.  Walker only. */
    size_t *link_slots;
    size_t link_slots_cap;
    int xattr_warned;
    unsigned long tmp_seq;   /* temporary names: atomic (walker and workers) */
    size_t npending;         /* under mu: pending_link entries waiting */
    uint8_t *include_hit;    /* per --include pattern: it took an entry; walker only */
    /* worker pool for file contents */
    pthread_mutex_t mu;
    pthread_cond_t cv_job, cv_done;
    struct file_job *head, *tail;
    int queued, running, stop, nthreads;
    pthread_t *threads;
    ob_err werr;             /* first worker failure */
} restore_ctx;

/* A directory listing shared by the walker and the jobs of its files. */
typedef struct tree_ref {
    tree t;
    int refs;                /* under restore_ctx.mu */
} tree_ref;

typedef struct file_job {
    struct file_job *next;
    int dirfd, fd;           /* owned by the job */
    const tree_node *n;      /* lives in ref */
    tree_ref *ref;
    char *path;
    int delta;               /* fd is an existing file to update in place */
    char *tmp;               /* fd is this temporary name in dirfd, renamed over
                              * n->name once written; NULL: fd is n->name */
    dir_times *dt;           /* of dirfd; one reference */
    link_group *g;           /* the group whose first name this is, or NULL */
} file_job;

/* Drop one reference to dt; the last one applies the directory's times
 * through fd if the walker has set them.  Returns -1 if that failed. */
static int dir_times_put(pthread_mutex_t *mu, dir_times *dt, int fd)
{
    pthread_mutex_lock(mu);
    int last = --dt->refs == 0, final = dt->final;
    pthread_mutex_unlock(mu);
    if (!last)
        return 0;
    int rc = final && fd >= 0 && futimens(fd, dt->ts) < 0 ? -1 : 0;
    free(dt);
    return rc;
}

static void tree_ref_put(restore_ctx *c, tree_ref *ref)
{
    pthread_mutex_lock(&c->mu);
    int last = --ref->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (last) {
        tree_free(&ref->t);
        free(ref);
    }
}

static int unsafe(const char *path, const char *name)
{
    (void)path;
    return !tree_name_is_safe((const uint8_t *)name, strlen(name));
}

/* A digest of what a file node says its content is: its extents (offset,
 * length, chunk) in order.  Names of one hard-link group have the same
 * extents (FORMAT.md 12.6); equal (dev, inode) alone is only what the tree
 * claims, and a damaged or crafted snapshot could give an unrelated file
 * the same pair, which linking would silently restore with another file's
 * bytes.  A digest keeps the table small for files of many extents. */
static void hardlink_content(const tree_node *n, uint8_t out[OB_ID_LEN])
{
    ob_buf b = OB_BUF_INIT;
    for (size_t i = 0; i < n->nextents; i++) {
        const tree_extent *e = &n->extents[i];
        uint8_t rec[16];
        for (int k = 0; k < 8; k++)
            rec[k] = (uint8_t)(e->offset >> (8 * k));
        for (int k = 0; k < 4; k++) {
            rec[8 + k] = (uint8_t)(e->len >> (8 * k));
            rec[12 + k] = (uint8_t)(e->skip >> (8 * k));
        }
        ob_buf_append(&b, rec, sizeof rec);
        ob_buf_append(&b, e->id, OB_ID_LEN);
    }
    ob_sha256(b.len ? (const void *)b.data : "", b.len, out);
    ob_buf_free(&b);
}

/* Open (creating if needed) a directory chain down to d. */
static int rdir_open(restore_ctx *c, rdir *d, ob_err *err)
{
    if (d->fd >= 0)
        return 0;
    if (rdir_open(c, d->parent, err) < 0)
        return -1;
    struct stat st;
    if (fstatat(d->parent->fd, d->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) &&
        !S_ISLNK(st.st_mode)) {
        /* An older version had a file here; the snapshot has a directory.
         * (A symlink is never replaced: see the refusal below.) */
        if (unlinkat(d->parent->fd, d->name, 0) < 0)
            return ob_err_errno(err, errno, "replacing %s with a directory", d->path);
    }
    if (mkdirat(d->parent->fd, d->name, 0700) < 0 && errno != EEXIST)
        return ob_err_errno(err, errno, "creating directory %s", d->path);
    d->fd = openat(d->parent->fd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d->fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR)
            return ob_err_set(err, OB_EUNSAFE,
                              "refusing to restore into %s: it exists in the target as a "
                              "symlink or non-directory (remove it, or restore elsewhere)",
                              d->path);
        return ob_err_errno(err, errno, "opening directory %s", d->path);
    }
    return 0;
}

/* The hard-link table: a lookup per multiply-linked file, where a scan of
 * every name restored so far made a tree of a million hard links take
 * hours (half a million million comparisons). */
static size_t link_hash(uint64_t dev, uint64_t inode)
{
    uint64_t h = (inode ^ (dev * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
    return (size_t)(h ^ (h >> 32));
}

static void link_slot_put(size_t *slots, size_t cap, const hardlink *h, size_t index)
{
    size_t k = link_hash(h->dev, h->inode) & (cap - 1);
    while (slots[k])
        k = (k + 1) & (cap - 1);
    slots[k] = index + 1;
}

/* Add c->links[c->nlinks - 1] to the table.  Linear probing without
 * removals keeps the names of one inode in the order they were added. */
static void link_index_add(restore_ctx *c)
{
    if (2 * c->nlinks > c->link_slots_cap) {
        size_t cap = c->link_slots_cap ? 2 * c->link_slots_cap : 64;
        size_t *slots = ob_xcalloc(cap, sizeof *slots);
        for (size_t i = 0; i + 1 < c->nlinks; i++)
            link_slot_put(slots, cap, &c->links[i], i);
        free(c->link_slots);
        c->link_slots = slots;
        c->link_slots_cap = cap;
    }
    link_slot_put(c->link_slots, c->link_slots_cap, &c->links[c->nlinks - 1], c->nlinks - 1);
}

/* Path of an entry relative to the target (for hard links). */
static char *rel_path(const rdir *d, const char *name)
{
    if (!d->parent)
        return ob_xstrdup(name);
    char *p = rel_path(d->parent, d->name);
    char *r = ob_xasprintf("%s/%s", p, name);
    free(p);
    return r;
}

/* Does --include pattern pat take path?  A trailing '/' (as shells
 * complete a directory) means the directory itself: paths in a snapshot
 * never end with one; "/" alone takes everything. */
static int include_matches(const char *pat, const char *path)
{
    size_t plen = strlen(pat);
    if (plen == 1 && pat[0] == '/')
        return 1;
    if (plen > 1 && pat[plen - 1] == '/') {
        char *trimmed = ob_xstrndup(pat, plen - 1);
        int m = include_matches(trimmed, path);
        free(trimmed);
        return m;
    }
    if (fnmatch(pat, path, 0) == 0)
        return 1;
    /* Anything below an included directory is included. */
    size_t pl = strlen(path);
    for (size_t k = pl; k > 1; k--)
        if (path[k - 1] == '/') {
            char *pre = ob_xstrndup(path, k - 1);
            int m = fnmatch(pat, pre, 0) == 0;
            free(pre);
            if (m)
                return 1;
        }
    return 0;
}

static int included(const restore_ctx *c, const char *path)
{
    if (c->o->nincludes == 0)
        return 1;
    for (size_t i = 0; i < c->o->nincludes; i++)
        if (include_matches(c->o->includes[i], path))
            return 1;
    return 0;
}

/* included() for an entry of the snapshot, noting every pattern that takes
 * it: a pattern that takes nothing in the whole snapshot is an error at
 * the end (a typo must not pass for a successful restore of 0 files).
 * Patterns already noted are only tried while none has taken the path. */
static int included_entry(restore_ctx *c, const char *path)
{
    if (c->o->nincludes == 0)
        return 1;
    int yes = 0;
    for (size_t i = 0; i < c->o->nincludes; i++)
        if ((!yes || !c->include_hit[i]) && include_matches(c->o->includes[i], path)) {
            yes = 1;
            c->include_hit[i] = 1;
        }
    return yes;
}

static int may_include_below(const restore_ctx *c, const char *path);

/* -1 with err naming the --include patterns that took nothing (include_hit),
 * plus `after`; 0 if every one took something. */
static int includes_unmatched(const restore_ctx *c, const char *after, ob_err *err)
{
    ob_buf none = OB_BUF_INIT;
    size_t nnone = 0;
    for (size_t i = 0; i < c->o->nincludes; i++)
        if (!c->include_hit[i]) {
            char *disp = files_path_display(c->o->includes[i]);
            ob_buf_printf(&none, "%s'%s'", nnone++ ? ", " : "", disp);
            free(disp);
        }
    int rc = 0;
    if (nnone)
        rc = ob_err_set(err, OB_EFAIL,
                        "--include %s %s matched nothing in snapshot %.8s (a pattern matches a "
                        "whole path in the snapshot, such as /app/storage/file, with * ? [...] "
                        "as in fnmatch, and a directory it matches brings everything below it; "
                        "`opsbackup ls %.8s` lists the paths)%s",
                        nnone > 1 ? "patterns" : "pattern", (const char *)none.data, c->s->id,
                        c->s->id, after);
    ob_buf_free(&none);
    return rc;
}

/* Do all --include patterns take something?  Walks the snapshot's trees
 * (only where a pattern could match) until every pattern has, marking
 * include_hit as the restore would.  Returns 1 if all did, 0 if not, -1
 * on a repository error.  depth as restore_tree's. */
static int includes_all_hit(restore_ctx *c, const char *path, const uint8_t id[OB_ID_LEN],
                            int depth, ob_err *err)
{
    tree t;
    tree_init(&t);
    if (treeio_load(c->r, id, &t, err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < t.n && rc == 0; i++) {
        const tree_node *n = &t.nodes[i];
        char *p = strcmp(path, "/") == 0 ? ob_xasprintf("/%s", (const char *)n->name)
                                         : ob_xasprintf("%s/%s", path, (const char *)n->name);
        included_entry(c, p);
        rc = 1;
        for (size_t k = 0; k < c->o->nincludes && rc == 1; k++)
            rc = c->include_hit[k];
        if (rc == 0 && n->type == TREE_DIR && depth < TREE_MAX_DEPTH &&
            may_include_below(c, p))
            rc = includes_all_hit(c, p, n->subtree, depth + 1, err);
        free(p);
    }
    tree_free(&t);
    return rc;
}

/* Could anything below directory `path` be included? */
static int may_include_below(const restore_ctx *c, const char *path)
{
    if (c->o->nincludes == 0 || included(c, path))
        return 1;
    size_t pl = strlen(path);
    for (size_t i = 0; i < c->o->nincludes; i++) {
        const char *pat = c->o->includes[i];
        /* The literal part of the pattern before any wildcard must be
         * compatible with path as a prefix. */
        size_t lit = strcspn(pat, "*?[");
        size_t k = lit < pl ? lit : pl;
        if (strncmp(pat, path, k) == 0)
            return 1;
    }
    return 0;
}

/* Remove whatever is at name in dirfd (for replacing in place). */
static int remove_entry(int dirfd, const char *name, const char *path, ob_err *err);
static int remove_entry_at(int dirfd, const char *name, const char *path, const char *top,
                           int depth, ob_err *err);

/* Directories a removal descends into at most.  Each level is a stack
 * frame and an open descriptor: a directory nested deeper in the target
 * (which anyone who can write there can make) would exhaust either, and a
 * restore as root must not crash on it; it is left alone with an error. */
#define REMOVE_MAX_DEPTH 4096

static int remove_tree_at(int parentfd, const char *name, const char *path, const char *top,
                          int depth, ob_err *err)
{
    if (depth >= REMOVE_MAX_DEPTH)
        return ob_err_set(err, OB_EUNSAFE,
                          "not removing %s: directories nest more than %d levels deep below "
                          "it; remove it by hand (rm -rf) and restore again",
                          top, REMOVE_MAX_DEPTH);
    int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ob_err_errno(err, errno, "opening %s for removal", path);
    /* Never into another filesystem: a directory mounted there is not
     * ours to empty (rmdir would fail on it only after its contents). */
    struct stat pst, st;
    if (fstat(parentfd, &pst) < 0 || fstat(fd, &st) < 0 || pst.st_dev != st.st_dev) {
        close(fd);
        return ob_err_set(err, OB_EUNSAFE,
                          "not removing %s: it is a mount point (another filesystem is "
                          "mounted there); unmount it or restore elsewhere",
                          path);
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return ob_err_errno(err, errno, "listing %s for removal", path);
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *child = ob_xasprintf("%s/%s", path, de->d_name);
        rc = remove_entry_at(dirfd(d), de->d_name, child, top, depth + 1, err);
        free(child);
    }
    closedir(d);
    if (rc == 0 && unlinkat(parentfd, name, AT_REMOVEDIR) < 0)
        return ob_err_errno(err, errno, "removing directory %s", path);
    return rc;
}

static int remove_entry(int dirfd, const char *name, const char *path, ob_err *err)
{
    return remove_entry_at(dirfd, name, path, path, 0, err);
}

static int remove_entry_at(int dirfd, const char *name, const char *path, const char *top,
                           int depth, ob_err *err)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : ob_err_errno(err, errno, "%s", path);
    if (S_ISDIR(st.st_mode))
        return remove_tree_at(dirfd, name, path, top, depth, err);
    if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
        return ob_err_errno(err, errno, "removing %s", path);
    return 0;
}

static void note(restore_ctx *c, const char *verb, const char *path)
{
    if (c->o->dry_run || c->o->verbose) {
        char *disp = files_path_display(path);
        printf("%s %s\n", verb, disp);
        free(disp);
    }
}

static int apply_meta(restore_ctx *c, int dirfd, const char *name, int fd, const tree_node *n,
                      const char *path, ob_err *err)
{
    int warn = 0;
    if (fsmeta_apply(dirfd, name, fd, n, &warn, err) < 0)
        return ob_err_prefix(err, "%s", path);
    pthread_mutex_lock(&c->mu);
    int first = warn && !c->xattr_warned;
    if (first) {
        c->xattr_warned = 1;
        c->st->warnings++;
    }
    pthread_mutex_unlock(&c->mu);
    if (first) {
        ob_warn("%s: some extended attributes could not be set (unsupported by the target "
                "filesystem or not permitted); further such warnings are suppressed",
                path);
    }
    return 0;
}

/* Delta: read the file's bytes where extent e goes into tmp; 0 if the
 * file ends before.  e->len comes from the tree and sizes the buffer:
 * write_file has checked it against the largest chunk the format allows. */
static int extent_read_old(int fd, const tree_extent *e, ob_buf *tmp)
{
    ob_buf_reset(tmp);
    ob_buf_reserve(tmp, e->len);
    size_t got = 0;
    while (got < e->len) {
        ssize_t k = pread(fd, tmp->data + got, e->len - got, (off_t)(e->offset + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return 0;
        got += (size_t)k;
    }
    tmp->len = got;
    return 1;
}

/* Delta: does the file already hold extent e, whose old bytes are in old?
 * (Compare keyed IDs: the same test that deduplicated it, and no chunk to
 * read.)  A slice of a larger chunk has no ID of its own: the caller
 * compares it with the chunk's bytes once it has read them. */
static int extent_present(restore_ctx *c, const tree_extent *e, const ob_buf *old)
{
    uint8_t id[OB_ID_LEN];
    repo_blob_id(c->r, REPO_BLOB_DATA, old->data, old->len, id);
    return memcmp(id, e->id, OB_ID_LEN) == 0;
}

/* Delta: make the gap [from, to) a hole again (it may hold old bytes). */
static int clear_gap(int fd, uint64_t from, uint64_t to, const char *path, ob_err *err)
{
    if (to <= from)
        return 0;
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)from,
                  (off_t)(to - from)) == 0)
        return 0;
    static const uint8_t zeros[65536];
    while (from < to) {
        size_t n = to - from < sizeof zeros ? (size_t)(to - from) : sizeof zeros;
        ssize_t k = pwrite(fd, zeros, n, (off_t)from);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return ob_err_errno(err, errno, "writing %s", path);
        from += (uint64_t)k;
    }
    return 0;
}

/*
 * Extents that follow each other in the file are gathered into one pwrite
 * of up to WRITE_BATCH bytes.  A physical backup's relation files were 8 KiB
 * blocks (D19, before D56), so a restore wrote ~85,000 times 8 KiB, and a
 * system call is not cheap on a virtual machine; a gap (a hole, or in delta
 * mode an extent already present) or a full batch writes what is gathered.
 */
#define WRITE_BATCH ((size_t)256 << 10)

static int write_all_at(int fd, const uint8_t *data, size_t len, uint64_t offset,
                        const char *path, ob_err *err)
{
    size_t off = 0;
    while (off < len) {
        ssize_t k = pwrite(fd, data + off, len - off, (off_t)(offset + off));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return ob_err_errno(err, errno, "writing %s", path);
        }
        off += (size_t)k;
    }
    return 0;
}

/* Write what batch holds (it starts at offset at in the file) and empty it. */
static int write_batch(int fd, ob_buf *batch, uint64_t at, const char *path, ob_err *err)
{
    int rc = batch->len ? write_all_at(fd, batch->data, batch->len, at, path, err) : 0;
    ob_buf_reset(batch);
    return rc;
}

/* Where a file's blobs go as repo_read_blobs hands them over. */
typedef struct file_sink {
    int fd;
    const tree_extent *ext; /* the extents being read, ext[0] first */
    size_t next;            /* how many */
    const uint16_t *which;  /* per extent: the index of its chunk in the read */
    const char *path;
    ob_buf *batch;
    uint64_t batch_at, written;
    uint64_t kicked;        /* written when writeback was last started */
} file_sink;

/*
 * A restore ends with one syncfs (restore_files): nothing is reported
 * restored before it is on disk.  Started only then, the writeback of
 * everything restored is waited for at the end (0.2-0.4 s of a 1.2 s
 * physical restore of the bench cluster, 760 MB).  So every WRITEBACK_STEP
 * bytes a file's dirty pages are handed to the disk already
 * (sync_file_range WRITE: start, do not wait), and the final syncfs finds
 * little left.  Durability is unchanged: it still rests on the syncfs.
 */
#define WRITEBACK_STEP ((uint64_t)8 << 20)

static void writeback_kick(file_sink *w, int force)
{
    if (!force && w->written - w->kicked < WRITEBACK_STEP)
        return;
    (void)sync_file_range(w->fd, 0, 0, SYNC_FILE_RANGE_WRITE); /* a hint: errors show at syncfs */
    w->kicked = w->written;
}

/* One extent's chunk: check it holds the extent, then gather or write the
 * extent's bytes. */
static int sink_extent(file_sink *w, const tree_extent *e, const uint8_t *chunk,
                       size_t chunk_len, ob_err *err)
{
    const uint8_t *data = tree_extent_bytes(e, chunk, chunk_len);
    if (!data)
        return ob_err_set(err, OB_ECORRUPT, "restoring %s: chunk at offset %llu is %zu bytes, "
                          "the tree says %u from byte %u", w->path,
                          (unsigned long long)e->offset, chunk_len, e->len, e->skip);
    size_t len = e->len;
    int rc = 0;
    if (w->batch->len && (w->batch_at + w->batch->len != e->offset ||
                          w->batch->len + len > WRITE_BATCH))
        rc = write_batch(w->fd, w->batch, w->batch_at, w->path, err);
    if (rc == 0 && len >= WRITE_BATCH) /* a large chunk: no copy */
        rc = write_all_at(w->fd, data, len, e->offset, w->path, err);
    else if (rc == 0) {
        if (!w->batch->len)
            w->batch_at = e->offset;
        ob_buf_append(w->batch, data, len);
    }
    if (rc == 0) {
        w->written += len;
        writeback_kick(w, 0);
    }
    return rc;
}

/* Chunk i of a read: every extent of the group that takes bytes from it
 * (several, where a physical backup kept slices of one super block). */
static int sink_blob(void *ud, size_t i, const uint8_t *data, size_t len, ob_err *err)
{
    file_sink *w = ud;
    int rc = 0;
    for (size_t k = 0; k < w->next && rc == 0; k++)
        if (w->which[k] == i)
            rc = sink_extent(w, &w->ext[k], data, len, err);
    return rc;
}

/* Delta: the chunk of extent e, read or (a slice's chunk, used by the
 * slices around the blocks that changed) kept from the last read.  cache
 * holds the last slice's chunk, *cache_ok says whether cache_id is its ID. */
static const ob_buf *delta_chunk(restore_ctx *c, const tree_extent *e, ob_buf *blob,
                                 ob_buf *cache, uint8_t cache_id[OB_ID_LEN], int *cache_ok,
                                 ob_err *err)
{
    if (*cache_ok && memcmp(cache_id, e->id, OB_ID_LEN) == 0)
        return cache;
    uint32_t raw = 0;
    ob_err ignore = OB_ERR_INIT;
    int slice = e->skip || (repo_blob_raw_len(c->r, e->id, REPO_BLOB_DATA, &raw, &ignore) == 0 &&
                            raw > e->len);
    ob_err_clear(&ignore);
    ob_buf *into = slice ? cache : blob;
    if (slice)
        *cache_ok = 0;
    if (repo_read_blob(c->r, e->id, REPO_BLOB_DATA, into, err) < 0)
        return NULL;
    if (slice) {
        memcpy(cache_id, e->id, OB_ID_LEN);
        *cache_ok = 1;
    }
    return into;
}

/* Extents handed to one repo_read_blobs call. */
#define READ_GROUP 256

/* Write a created file's contents and metadata (on a worker).  delta: fd
 * is the existing file; only what differs is written.  blob, ct, batch and
 * cache are the worker's buffers. */
static int write_file(restore_ctx *c, int dirfd, int fd, const tree_node *n, const char *path,
                      int delta, ob_buf *blob, ob_buf *ct, ob_buf *batch, ob_buf *cache,
                      ob_err *err)
{
    int rc = 0;
    uint64_t kept = 0, end = 0;
    file_sink w = {.fd = fd, .path = path, .batch = batch};
    /* An extent's length is a tree's word (tree_decode checks only that
     * it is not 0 and fits in the file's size, which may be anything): a
     * crafted 4 GiB would have each worker reserve that much to read the
     * old bytes back (extent_present).  No chunk is longer than the
     * format's maximum, so a longer extent is refused before anything is
     * allocated or written. */
    for (size_t i = 0; i < n->nextents; i++)
        if (n->extents[i].len > CHUNKER_MAX_MAX)
            return ob_err_set(err, OB_ECORRUPT,
                              "restoring %s: the tree gives the chunk at offset %llu a length "
                              "of %u bytes, more than the %u bytes (64 MiB) a chunk may have "
                              "(docs/FORMAT.md 8.1): the snapshot is damaged or was crafted",
                              path, (unsigned long long)n->extents[i].offset, n->extents[i].len,
                              CHUNKER_MAX_MAX);
    ob_buf_reset(batch);
    /* Every extent is read: READ_GROUP at a time, so that blobs lying back
     * to back in a pack come with one read (repo_read_blobs), and each
     * chunk once however many of the group's extents are slices of it. */
    for (size_t i = 0; !delta && i < n->nextents && rc == 0; i += READ_GROUP) {
        size_t k = n->nextents - i < READ_GROUP ? n->nextents - i : READ_GROUP, nids = 0;
        const uint8_t *ids[READ_GROUP];
        uint16_t which[READ_GROUP];
        for (size_t j = 0; j < k; j++) {
            const uint8_t *id = n->extents[i + j].id;
            size_t u = nids;
            /* Newest first: a slice's chunk is usually a few extents
             * back, and most IDs differ in their first byte. */
            for (size_t b = nids; b > 0 && u == nids; b--)
                if (memcmp(ids[b - 1], id, OB_ID_LEN) == 0)
                    u = b - 1;
            if (u == nids)
                ids[nids++] = id;
            which[j] = (uint16_t)u;
        }
        w.ext = &n->extents[i];
        w.next = k;
        w.which = which;
        rc = repo_read_blobs(c->r, ids, nids, REPO_BLOB_DATA, ct, blob, sink_blob, &w, err);
        if (rc == -1)
            ob_err_prefix(err, "restoring %s", path);
    }
    /* Delta: only extents the file does not hold already, one by one. */
    uint8_t cache_id[OB_ID_LEN];
    int cache_ok = 0;
    for (size_t i = 0; delta && i < n->nextents && rc == 0; i++) {
        const tree_extent *e = &n->extents[i];
        rc = clear_gap(fd, end, e->offset, path, err);
        end = e->offset + e->len;
        if (rc < 0)
            break;
        int old = extent_read_old(fd, e, ct);
        if (old && extent_present(c, e, ct)) {
            kept += e->len;
            continue;
        }
        const ob_buf *chunk = delta_chunk(c, e, blob, cache, cache_id, &cache_ok, err);
        if (!chunk) {
            rc = ob_err_prefix(err, "restoring %s", path);
            break;
        }
        const uint8_t *want = tree_extent_bytes(e, chunk->data, chunk->len);
        if (old && want && memcmp(want, ct->data, e->len) == 0) {
            kept += e->len;
            continue;
        }
        rc = sink_extent(&w, e, chunk->data, chunk->len, err);
    }
    if (rc < 0)
        rc = -1;
    if (rc == 0)
        rc = write_batch(fd, batch, w.batch_at, path, err);
    /* The size covers trailing holes; holes between extents were never
     * written, so they stay holes. */
    if (rc == 0 && delta && n->size > end) {
        struct stat st;
        if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > end)
            rc = clear_gap(fd, end, (uint64_t)st.st_size < n->size ? (uint64_t)st.st_size
                                                                  : n->size, path, err);
    }
    if (rc == 0 && w.written)
        writeback_kick(&w, 1);
    if (rc == 0 && ftruncate(fd, (off_t)n->size) < 0)
        rc = ob_err_errno(err, errno, "setting the size of %s", path);
    if (rc == 0)
        rc = apply_meta(c, dirfd, (const char *)n->name, fd, n, path, err);
    pthread_mutex_lock(&c->mu);
    c->st->bytes += w.written;
    c->st->bytes_kept += kept;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* A name for a file being restored, unique within this restore (the
 * walker and the workers both take them). */
static char *tmp_name(restore_ctx *c)
{
    unsigned long seq = __atomic_fetch_add(&c->tmp_seq, 1, __ATOMIC_RELAXED);
    return ob_xasprintf(".opsbackup-restore.%ld.%lu", (long)getpid(), seq);
}

/* g's first name as messages show paths (relpath is relative to the
 * target, which is where the snapshot's root goes). */
static char *first_name_display(const link_group *g)
{
    char *p = ob_xasprintf("/%s", g->relpath);
    char *d = files_path_display(p);
    free(p);
    return d;
}

/* Give g's file, complete and in place, the name `name` in dirfd.  If
 * something has that name, the link is made under a temporary name,
 * checked, then renamed over it, so that it stays as it was if anything
 * fails. */
static int link_into(restore_ctx *c, const link_group *g, int dirfd, const char *name,
                     const char *path, ob_err *err)
{
    char *tmp = NULL;
    int r = linkat(c->target_fd, g->relpath, dirfd, name, 0);
    while (r < 0 && errno == EEXIST) {
        free(tmp);
        tmp = tmp_name(c);
        r = linkat(c->target_fd, g->relpath, dirfd, tmp, 0);
    }
    const char *made = tmp ? tmp : name;
    if (r < 0) {
        int e = errno;
        free(tmp);
        return ob_err_errno(err, e, "linking %s", path);
    }
    /* The first name is found again by its path from the target, which
     * someone may have changed meanwhile (a directory on it swapped for a
     * symlink): the new name must be the file restored, not one it now
     * leads to. */
    struct stat lst;
    if (fstatat(dirfd, made, &lst, AT_SYMLINK_NOFOLLOW) < 0 || lst.st_dev != g->st_dev ||
        lst.st_ino != g->st_ino) {
        unlinkat(dirfd, made, 0);
        free(tmp);
        char *first = first_name_display(g);
        ob_err_set(err, OB_EUNSAFE,
                   "not linking %s: its first name %s no longer leads to the file restored "
                   "there (the target changed during the restore)",
                   path, first);
        free(first);
        return -1;
    }
    if (!tmp)
        return 0;
    if (renameat(dirfd, tmp, dirfd, name) < 0) {
        int e = errno;
        unlinkat(dirfd, tmp, 0);
        free(tmp);
        return ob_err_errno(err, e, "linking %s", path);
    }
    /* rename() between two names of one file does nothing and succeeds:
     * the temporary name is then still there. */
    (void)unlinkat(dirfd, tmp, 0);
    free(tmp);
    return 0;
}

/* g's first name is in place (ok) or failed: link the later names that
 * waited for it, or leave them as they are. */
static int link_group_done(restore_ctx *c, link_group *g, int ok, ob_err *err)
{
    pthread_mutex_lock(&c->mu);
    g->state = ok ? 1 : -1;
    pending_link *p = g->pending;
    g->pending = NULL;
    pthread_mutex_unlock(&c->mu);
    int rc = 0;
    size_t n = 0;
    while (p) {
        pending_link *next = p->next;
        ob_err e = OB_ERR_INIT;
        if (ok && rc == 0 && link_into(c, g, p->dirfd, p->name, p->path, &e) < 0) {
            ob_err_move(err, &e);
            rc = -1;
        }
        ob_err_clear(&e);
        if (dir_times_put(&c->mu, p->dt, p->dirfd) < 0 && rc == 0)
            rc = ob_err_errno(err, errno, "setting the times of the directory of %s", p->path);
        close(p->dirfd);
        free(p->name);
        free(p->path);
        free(p);
        n++;
        p = next;
    }
    pthread_mutex_lock(&c->mu);
    c->npending -= n;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static void *restore_worker(void *arg)
{
    restore_ctx *c = arg;
    ob_buf blob = OB_BUF_INIT, ct = OB_BUF_INIT, batch = OB_BUF_INIT, cache = OB_BUF_INIT;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->head && !c->stop)
            pthread_cond_wait(&c->cv_job, &c->mu);
        if (!c->head)
            break;
        file_job *j = c->head;
        c->head = j->next;
        if (!c->head)
            c->tail = NULL;
        c->queued--;
        c->running++;
        int failed = c->werr.code != OB_OK;
        pthread_cond_broadcast(&c->cv_done); /* queue space */
        pthread_mutex_unlock(&c->mu);

        ob_err e = OB_ERR_INIT;
        int rc = failed ? -1 : write_file(c, j->dirfd, j->fd, j->n, j->path, j->delta, &blob,
                                              &ct, &batch, &cache, &e);
        if (close(j->fd) < 0 && rc == 0)
            rc = ob_err_errno(&e, errno, "closing %s", j->path);
        if (rc == 0 && j->tmp &&
            renameat(j->dirfd, j->tmp, j->dirfd, (const char *)j->n->name) < 0)
            rc = ob_err_errno(&e, errno, "renaming the restored %s into place", j->path);
        /* Never leave a half-written file: a temporary goes (what was at
         * the name stays), a file created under its name goes, a file
         * updated in place (--delta) stays as it is. */
        if (rc < 0 && j->tmp)
            unlinkat(j->dirfd, j->tmp, 0);
        else if (rc < 0 && !j->delta)
            unlinkat(j->dirfd, (const char *)j->n->name, 0);
        if (j->g) {
            /* The failure is recorded before the group is marked failed,
             * so that a walker reaching a later name reports it rather
             * than only "its first name was not restored". */
            if (rc < 0 && e.code != OB_OK) {
                pthread_mutex_lock(&c->mu);
                if (c->werr.code == OB_OK)
                    ob_err_move(&c->werr, &e);
                pthread_mutex_unlock(&c->mu);
            }
            ob_err le = OB_ERR_INIT;
            if (link_group_done(c, j->g, rc == 0, &le) < 0 && rc == 0) {
                ob_err_move(&e, &le);
                rc = -1;
            }
            ob_err_clear(&le);
        }
        if (dir_times_put(&c->mu, j->dt, j->dirfd) < 0 && rc == 0)
            rc = ob_err_errno(&e, errno, "setting the times of the directory of %s", j->path);
        close(j->dirfd);
        tree_ref_put(c, j->ref);
        free(j->path);
        free(j->tmp);
        free(j);

        pthread_mutex_lock(&c->mu);
        if (rc < 0 && e.code != OB_OK && c->werr.code == OB_OK)
            ob_err_move(&c->werr, &e);
        ob_err_clear(&e);
        c->running--;
        pthread_cond_broadcast(&c->cv_done);
    }
    pthread_mutex_unlock(&c->mu);
    ob_buf_free(&blob);
    ob_buf_free(&ct);
    ob_buf_free(&batch);
    ob_buf_free(&cache);
    return NULL;
}

/* The first worker failure, if any (copied into err). */
static int worker_failed(restore_ctx *c, ob_err *err)
{
    pthread_mutex_lock(&c->mu);
    int failed = c->werr.code != OB_OK;
    if (failed)
        ob_err_set(err, c->werr.code, "%s", ob_err_msg(&c->werr));
    pthread_mutex_unlock(&c->mu);
    return failed;
}

/* Wait until every queued file is written. */
static int drain(restore_ctx *c, ob_err *err)
{
    pthread_mutex_lock(&c->mu);
    while (c->queued || c->running)
        pthread_cond_wait(&c->cv_done, &c->mu);
    pthread_mutex_unlock(&c->mu);
    return worker_failed(c, err) ? -1 : 0;
}

/* d's times, with one more reference (held by a queued file or a
 * pending link). */
static dir_times *rdir_times_get(restore_ctx *c, rdir *d)
{
    if (!d->dt) {
        d->dt = ob_xcalloc(1, sizeof *d->dt);
        d->dt->refs = 1; /* the walker's */
    }
    pthread_mutex_lock(&c->mu);
    d->dt->refs++;
    pthread_mutex_unlock(&c->mu);
    return d->dt;
}

/* At most this many later names wait for their first names at once: each
 * holds a directory descriptor. */
#define PENDING_LINKS_MAX 256

/* A later name of hard-link group g: linked now if the first name is in
 * place, else handed to the worker writing it. */
static int restore_link(restore_ctx *c, rdir *d, link_group *g, const char *name,
                        const char *path, ob_err *err)
{
    if (worker_failed(c, err))
        return -1;
    /* A directory in the way goes first (a rename cannot replace one). */
    struct stat est;
    if (fstatat(d->fd, name, &est, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(est.st_mode) &&
        remove_entry(d->fd, name, path, err) < 0)
        return -1;
    pthread_mutex_lock(&c->mu);
    int state = g->state;
    pthread_mutex_unlock(&c->mu);
    if (state == 0) {
        int dfd = dup(d->fd);
        if (dfd < 0)
            return ob_err_errno(err, errno, "restoring %s", path);
        pending_link *p = ob_xcalloc(1, sizeof *p);
        p->dirfd = dfd;
        p->name = ob_xstrdup(name);
        p->path = ob_xstrdup(path);
        p->dt = rdir_times_get(c, d);
        pthread_mutex_lock(&c->mu);
        state = g->state;
        if (state == 0) {
            p->next = g->pending;
            g->pending = p;
            c->npending++;
            while (c->npending >= PENDING_LINKS_MAX && c->werr.code == OB_OK)
                pthread_cond_wait(&c->cv_done, &c->mu);
        }
        pthread_mutex_unlock(&c->mu);
        if (state == 0)
            return 0;
        /* Finished meanwhile. */
        (void)dir_times_put(&c->mu, p->dt, -1);
        close(p->dirfd);
        free(p->name);
        free(p->path);
        free(p);
    }
    if (state < 0) {
        if (worker_failed(c, err))
            return -1;
        char *first = first_name_display(g);
        ob_err_set(err, OB_EFAIL, "not linking %s: its first name %s was not restored", path,
                   first);
        free(first);
        return -1;
    }
    return link_into(c, g, d->fd, name, path, err);
}

static int restore_file(restore_ctx *c, rdir *d, tree_ref *ref, const tree_node *n,
                        const char *path, ob_err *err)
{
    const char *name = (const char *)n->name;
    /* Hard links: a later name of an inode already restored is linked to
     * it once its data is complete (restore_link), if the two nodes agree
     * on the content too.  One that does not is restored as a file of its
     * own, with a warning, and is itself a name later ones may link to. */
    uint8_t content[OB_ID_LEN];
    if (n->nlink > 1) {
        hardlink_content(n, content);
        const hardlink *differs = NULL;
        size_t mask = c->link_slots_cap - 1;
        for (size_t k = c->link_slots_cap ? link_hash(n->dev, n->inode) & mask : 0;
             c->link_slots_cap && c->link_slots[k]; k = (k + 1) & mask) {
            hardlink *h = &c->links[c->link_slots[k] - 1];
            if (h->dev != n->dev || h->inode != n->inode)
                continue;
            if (h->size != n->size || memcmp(h->content, content, OB_ID_LEN) != 0)
                differs = h;
            else
                return restore_link(c, d, h->g, name, path, err);
        }
        if (differs) {
            char *disp = files_path_display(path),
                 *first = files_path_display(differs->g->relpath);
            ob_warn("%s: recorded as a hard link of /%s (same device and inode) but with other "
                    "content (size or chunks differ): the snapshot is inconsistent; restored as "
                    "a separate file",
                    disp, first);
            free(disp);
            free(first);
            pthread_mutex_lock(&c->mu);
            c->st->warnings++;
            pthread_mutex_unlock(&c->mu);
        }
    }
    if (worker_failed(c, err))
        return -1;
    int fd = -1, delta = 0;
    char *tmp = NULL;
    struct stat est;
    int exists = fstatat(d->fd, name, &est, AT_SYMLINK_NOFOLLOW) == 0;
    if (c->o->delta && n->nlink <= 1 && exists && S_ISREG(est.st_mode) && est.st_nlink == 1) {
        fd = openat(d->fd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        delta = fd >= 0;
    }
    if (fd < 0 && exists) {
        /* Something is there already: written under a temporary name and
         * renamed over it once complete, so a restore that fails (a damaged
         * blob) or is killed leaves what was there, never a short file
         * under the real name.  (Into an empty place the file is written
         * under its name: a temporary and a rename per file cost a fresh
         * restore of the bench's 3,000 files a third more time, and there
         * is nothing to lose.)  Only a directory in the way goes first (a
         * file cannot replace one by rename).  The first name of a hard-link
         * group too: its later names are linked to it once it is in place. */
        if (exists && S_ISDIR(est.st_mode) && remove_entry(d->fd, name, path, err) < 0)
            return -1;
        do {
            free(tmp);
            tmp = tmp_name(c);
            fd = openat(d->fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        } while (fd < 0 && errno == EEXIST);
    } else if (fd < 0) {
        /* Nothing there: created under its name. */
        fd = openat(d->fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return ob_err_errno(err, e, "creating %s", path);
    }
    int dfd = dup(d->fd);
    if (dfd < 0) {
        int e = errno;
        close(fd);
        if (tmp || !delta)
            unlinkat(d->fd, tmp ? tmp : name, 0);
        free(tmp);
        return ob_err_errno(err, e, "restoring %s", path);
    }
    link_group *g = NULL;
    if (n->nlink > 1) {
        struct stat fst;
        if (fstat(fd, &fst) < 0) {
            int e = errno;
            close(fd);
            close(dfd);
            unlinkat(d->fd, tmp ? tmp : name, 0);
            free(tmp);
            return ob_err_errno(err, e, "restoring %s", path);
        }
        if (c->nlinks == c->links_cap) {
            c->links_cap = c->links_cap ? 2 * c->links_cap : 16;
            c->links = ob_xrealloc(c->links, c->links_cap * sizeof *c->links);
        }
        hardlink *h = &c->links[c->nlinks++];
        h->dev = n->dev;
        h->inode = n->inode;
        h->size = n->size;
        memcpy(h->content, content, OB_ID_LEN);
        g = h->g = ob_xcalloc(1, sizeof *g);
        g->relpath = rel_path(d, name);
        g->st_dev = fst.st_dev;
        g->st_ino = fst.st_ino;
        link_index_add(c);
    }
    file_job *j = ob_xcalloc(1, sizeof *j);
    j->dirfd = dfd;
    j->fd = fd;
    j->n = n;
    j->ref = ref;
    j->path = ob_xstrdup(path);
    j->delta = delta;
    j->tmp = tmp;
    j->g = g;
    j->dt = rdir_times_get(c, d);
    pthread_mutex_lock(&c->mu);
    ref->refs++;
    /* Bounded: each queued job holds two descriptors. */
    while (c->queued >= 4 * c->nthreads)
        pthread_cond_wait(&c->cv_done, &c->mu);
    if (c->tail)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    c->queued++;
    pthread_cond_signal(&c->cv_job);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static int restore_special(restore_ctx *c, rdir *d, const tree_node *n, const char *path,
                           ob_err *err)
{
    const char *name = (const char *)n->name;
    if (remove_entry(d->fd, name, path, err) < 0)
        return -1;
    int r;
    switch (n->type) {
    case TREE_SYMLINK:
        r = symlinkat((const char *)n->link_target, d->fd, name);
        break;
    case TREE_FIFO:
        r = mkfifoat(d->fd, name, 0600);
        break;
    case TREE_CHARDEV:
    case TREE_BLOCKDEV:
        r = mknodat(d->fd, name, (n->type == TREE_CHARDEV ? S_IFCHR : S_IFBLK) | 0600,
                    (dev_t)n->rdev);
        break;
    default: /* sockets belong to a running process: nothing to restore */
        return 0;
    }
    if (r < 0 && errno == EPERM && (n->type == TREE_CHARDEV || n->type == TREE_BLOCKDEV) &&
        geteuid() != 0) {
        /* Only root makes device nodes: the rest of the restore goes on. */
        ob_warn("%s: a device node, not restored (only root can create one)", path);
        pthread_mutex_lock(&c->mu);
        c->st->warnings++;
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    if (r < 0)
        return ob_err_errno(err, errno, "creating %s", path);
    return apply_meta(c, d->fd, name, -1, n, path, err);
}

static int restore_tree(restore_ctx *c, rdir *d, const uint8_t id[OB_ID_LEN], ob_err *err);

/* Is snapshot path `path` one of the backed-up PATHs or below one?  Only
 * there may --delete remove anything: the directories above a PATH hold
 * other things that were never backed up. */
static int inside_backed_up(const restore_ctx *c, const char *path)
{
    if (c->o->root)
        return 1; /* a directory restored as the target itself */
    for (size_t i = 0; i < c->s->npaths; i++) {
        const char *p = c->s->paths[i];
        size_t n = strlen(p);
        if (strcmp(p, "/") == 0 ||
            (strncmp(path, p, n) == 0 && (path[n] == '\0' || path[n] == '/')))
            return 1;
    }
    return 0;
}

/* Open an existing directory of the target chain without creating
 * anything (for --delete under --dry-run); -1 if it does not exist. */
static int rdir_peek(const rdir *d)
{
    if (d->fd >= 0)
        return openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!d->parent)
        return -1;
    int pfd = rdir_peek(d->parent);
    if (pfd < 0)
        return -1;
    int fd = openat(pfd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(pfd);
    return fd;
}

/* --delete: remove entries of directory d that the snapshot lacks. */
static int delete_extra(restore_ctx *c, rdir *d, const tree *t, ob_err *err)
{
    if (!inside_backed_up(c, d->path))
        return 0;
    int fd = rdir_peek(d);
    if (fd < 0 && c->o->dry_run)
        return 0; /* nothing there yet, so nothing to delete */
    if (fd < 0)
        return ob_err_errno(err, errno, "listing %s", d->path);
    DIR *dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return ob_err_errno(err, errno, "listing %s", d->path);
    }
    struct dirent *de;
    int rc = 0;
    /* This restore's own temporaries: files still being written here. */
    char *mine = ob_xasprintf(".opsbackup-restore.%ld.", (long)getpid());
    while (rc == 0 && (de = readdir(dir))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (tree_find(t, de->d_name, strlen(de->d_name)) ||
            strncmp(de->d_name, mine, strlen(mine)) == 0)
            continue;
        char *child = strcmp(d->path, "/") == 0 ? ob_xasprintf("/%s", de->d_name)
                                                : ob_xasprintf("%s/%s", d->path, de->d_name);
        if (included(c, child)) {
            note(c, "delete", child);
            if (!c->o->dry_run)
                rc = remove_entry(dirfd(dir), de->d_name, child, err);
            c->st->deleted++;
        }
        free(child);
    }
    free(mine);
    closedir(dir);
    return rc;
}

static int restore_node(restore_ctx *c, rdir *d, tree_ref *ref, const tree_node *n, ob_err *err)
{
    const char *name = (const char *)n->name;
    char *path = strcmp(d->path, "/") == 0 ? ob_xasprintf("/%s", name)
                                           : ob_xasprintf("%s/%s", d->path, name);
    int rc = 0;
    if (unsafe(path, name)) {
        rc = ob_err_set(err, OB_EUNSAFE, "refusing unsafe name in snapshot: %s", path);
        goto out;
    }
    if (n->type == TREE_DIR) {
        if (!may_include_below(c, path) || (c->o->skip && c->o->skip(c->o->skip_ud, path)))
            goto out;
        /* Each level is a stack frame of the walker and an open
         * descriptor until its subtree is done: a crafted snapshot nested
         * tens of thousands deep would overflow the stack (or run out of
         * descriptors first), so it is refused at the format's limit. */
        if (d->depth >= TREE_MAX_DEPTH) {
            rc = ob_err_set(err, OB_ECORRUPT,
                            "snapshot %.8s: directory %s is nested more than %d levels deep, "
                            "the most a snapshot may hold (docs/FORMAT.md 12.6): the snapshot "
                            "is damaged or was crafted; nothing below it is restored",
                            c->s->id, path, TREE_MAX_DEPTH);
            goto out;
        }
        rdir child = {d, name, path, -1, NULL, d->depth + 1};
        int want_self = included_entry(c, path);
        if (want_self && !c->o->dry_run) {
            rc = rdir_open(c, &child, err);
        }
        if (rc == 0 && want_self) {
            note(c, "restore", path);
            c->st->dirs++;
        }
        if (rc == 0)
            rc = restore_tree(c, &child, n->subtree, err);
        /* Children's contents may still be being written: the times are
         * applied now, and again by the last file renamed into place
         * (dir_times). */
        if (rc == 0 && child.fd >= 0 && child.dt) {
            pthread_mutex_lock(&c->mu);
            child.dt->ts[0] = (struct timespec){(time_t)n->atime_sec, (long)n->atime_nsec};
            child.dt->ts[1] = (struct timespec){(time_t)n->mtime_sec, (long)n->mtime_nsec};
            child.dt->final = 1;
            pthread_mutex_unlock(&c->mu);
        }
        if (rc == 0 && child.fd >= 0)
            rc = apply_meta(c, d->fd, name, child.fd, n, path, err);
        if (child.dt && dir_times_put(&c->mu, child.dt, child.fd) < 0 && rc == 0)
            rc = ob_err_errno(err, errno, "setting the times of %s", path);
        if (child.fd >= 0)
            close(child.fd);
        path = NULL; /* owned by child.path */
        free(child.path);
        goto out;
    }
    if (!included_entry(c, path))
        goto out;
    note(c, "restore", path);
    if (n->type == TREE_FILE)
        c->st->files++;
    else
        c->st->others++;
    if (c->o->dry_run)
        goto out;
    if ((rc = rdir_open(c, d, err)) < 0)
        goto out;
    if (n->type == TREE_FILE)
        rc = restore_file(c, d, ref, n, path, err);
    else
        rc = restore_special(c, d, n, path, err);
out:
    free(path);
    return rc;
}

static int restore_tree(restore_ctx *c, rdir *d, const uint8_t id[OB_ID_LEN], ob_err *err)
{
    tree_ref *ref = ob_xcalloc(1, sizeof *ref);
    tree_init(&ref->t);
    ref->refs = 1;
    int rc = treeio_load(c->r, id, &ref->t, err);
    for (size_t i = 0; i < ref->t.n && rc == 0; i++)
        rc = restore_node(c, d, ref, &ref->t.nodes[i], err);
    if (rc == 0 && c->o->delete_extra && (d->fd >= 0 || c->o->dry_run))
        rc = delete_extra(c, d, &ref->t, err);
    if (rc == 0 && c->o->progress) {
        pthread_mutex_lock(&c->mu);
        files_progress p = {c->st->files, c->st->dirs, c->st->bytes, 0, 0, 0, d->path};
        pthread_mutex_unlock(&c->mu);
        c->o->progress(&p, 0, c->o->progress_ud);
    }
    tree_ref_put(c, ref);
    return rc;
}

int files_restore(repo *r, const snapshot *s, const files_restore_opts *o,
                  files_restore_stats *st, ob_err *err)
{
    memset(st, 0, sizeof *st);
    if (repo_load_index(r, err) < 0)
        return -1;
    restore_ctx c;
    memset(&c, 0, sizeof c);
    c.r = r;
    c.s = s;
    c.o = o;
    c.st = st;
    c.target_fd = -1;
    c.include_hit = ob_xcalloc(o->nincludes ? o->nincludes : 1, 1);
    /* --delete removes what the snapshot lacks where the patterns reach:
     * a pattern that takes nothing in the snapshot (a typo) would delete
     * whatever it matches in the target, and only then fail.  So with
     * --delete every pattern is checked first, and nothing is touched
     * unless all take something. */
    if (o->delete_extra && o->nincludes) {
        int all = includes_all_hit(&c, "/", o->root ? o->root : s->tree, 0, err);
        if (all == 0)
            includes_unmatched(&c, ": nothing was restored or deleted", err);
        if (all <= 0) {
            free(c.include_hit);
            return -1;
        }
        memset(c.include_hit, 0, o->nincludes);
    }
    if (!o->dry_run) {
        /* Like restic and tar -C with mkdir -p: a target whose parents do
         * not exist yet is created whole. */
        int bad = ob_mkdir_p(o->target, 0700, err) < 0
                      ? ob_err_prefix(err, "restore target %s", o->target)
                      : 0;
        if (!bad && (c.target_fd = open(o->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            bad = ob_err_errno(err, errno, "opening target directory %s", o->target);
        if (bad) {
            free(c.include_hit);
            return -1;
        }
    } else {
        /* Read-only, so --delete --dry-run can list what it would remove;
         * a dry run never creates or writes through it. */
        c.target_fd = open(o->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv_job, NULL);
    pthread_cond_init(&c.cv_done, NULL);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    c.nthreads = ncpu > 1 ? (int)(ncpu < 8 ? ncpu : 8) : 1;
    c.threads = ob_xcalloc((size_t)c.nthreads, sizeof *c.threads);
    int started = 0;
    for (; started < c.nthreads; started++)
        if (pthread_create(&c.threads[started], NULL, restore_worker, &c) != 0)
            break;
    c.nthreads = started;
    rdir root = {NULL, NULL, ob_xstrdup("/"), c.target_fd, NULL, 0};
    int rc = started ? restore_tree(&c, &root, o->root ? o->root : s->tree, err)
                     : ob_err_set(err, OB_EFAIL, "cannot start restore threads");
    /* Whatever happened, let queued files finish (or be dropped after a
     * failure) before the descriptors they use go away. */
    ob_err derr = OB_ERR_INIT;
    if (drain(&c, &derr) < 0 && rc == 0) {
        ob_err_move(err, &derr);
        rc = -1;
    }
    ob_err_clear(&derr);
    if (root.dt) /* the target's own times are not restored */
        (void)dir_times_put(&c.mu, root.dt, -1);
    pthread_mutex_lock(&c.mu);
    c.stop = 1;
    pthread_cond_broadcast(&c.cv_job);
    pthread_mutex_unlock(&c.mu);
    for (int i = 0; i < c.nthreads; i++)
        pthread_join(c.threads[i], NULL);
    free(c.threads);
    ob_err_clear(&c.werr);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv_job);
    pthread_cond_destroy(&c.cv_done);
    /* One syncfs at the end instead of an fsync per file: a restore is only
     * reported done once everything is on disk, without paying a disk
     * flush for each of thousands of small files. */
    if (rc == 0 && c.target_fd >= 0 && syncfs(c.target_fd) < 0)
        rc = ob_err_errno(err, errno, "flushing restored files to disk under %s", o->target);
    if (c.target_fd >= 0)
        close(c.target_fd);
    free(root.path);
    for (size_t i = 0; i < c.nlinks; i++) {
        free(c.links[i].g->relpath);
        free(c.links[i].g);
    }
    free(c.links);
    free(c.link_slots);
    /* Messages name entries by their path in the snapshot ("writing
     * /app/x: No space left on device"); on a full or read-only target
     * the user must also learn which directory (file system) that was. */
    if (rc < 0 && o->target && !strstr(ob_err_msg(err), o->target))
        ob_err_prefix(err, "restoring into %s", o->target);
    /* Every pattern must have taken something: what the others took is
     * restored (and stays), but the restore is not a success. */
    if (rc == 0)
        rc = includes_unmatched(&c, "", err);
    free(c.include_hit);
    if (rc == 0 && o->progress) {
        files_progress p = {st->files, st->dirs, st->bytes, 0, 0, 0, NULL};
        o->progress(&p, 1, o->progress_ud);
    }
    return rc;
}
