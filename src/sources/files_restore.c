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
#include <fnmatch.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core/log.h"
#include "repo/treeio.h"
#include "sources/files.h"
#include "sources/fsmeta.h"

/* A directory on the current restore path. */
typedef struct rdir {
    struct rdir *parent;
    const char *name;      /* NULL for the target itself */
    char *path;            /* snapshot path, "/" for the root */
    int fd;                /* -1 until created / opened */
} rdir;

typedef struct hardlink {
    uint64_t dev, inode;
    char *relpath;         /* relative to the target, as restored */
} hardlink;

typedef struct restore_ctx {
    repo *r;
    const snapshot *s;
    const files_restore_opts *o;
    files_restore_stats *st;
    int target_fd;
    hardlink *links;
    size_t nlinks, links_cap;
    ob_buf blob;
    int xattr_warned;
} restore_ctx;

static int unsafe(const char *path, const char *name)
{
    (void)path;
    return !tree_name_is_safe((const uint8_t *)name, strlen(name));
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

static int included(const restore_ctx *c, const char *path)
{
    if (c->o->nincludes == 0)
        return 1;
    for (size_t i = 0; i < c->o->nincludes; i++) {
        const char *pat = c->o->includes[i];
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
    }
    return 0;
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

static int remove_tree_at(int parentfd, const char *name, const char *path, ob_err *err)
{
    int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ob_err_errno(err, errno, "opening %s for removal", path);
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
        rc = remove_entry(dirfd(d), de->d_name, child, err);
        free(child);
    }
    closedir(d);
    if (rc == 0 && unlinkat(parentfd, name, AT_REMOVEDIR) < 0)
        return ob_err_errno(err, errno, "removing directory %s", path);
    return rc;
}

static int remove_entry(int dirfd, const char *name, const char *path, ob_err *err)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : ob_err_errno(err, errno, "%s", path);
    if (S_ISDIR(st.st_mode))
        return remove_tree_at(dirfd, name, path, err);
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
    if (warn && !c->xattr_warned) {
        c->xattr_warned = 1;
        c->st->warnings++;
        ob_warn("%s: some extended attributes could not be set (unsupported by the target "
                "filesystem or not permitted); further such warnings are suppressed",
                path);
    }
    return 0;
}

static int restore_file(restore_ctx *c, rdir *d, const tree_node *n, const char *path,
                        ob_err *err)
{
    const char *name = (const char *)n->name;
    /* Hard links: a later name of an inode already restored is linked. */
    if (n->nlink > 1) {
        for (size_t i = 0; i < c->nlinks; i++) {
            if (c->links[i].dev == n->dev && c->links[i].inode == n->inode) {
                if (remove_entry(d->fd, name, path, err) < 0)
                    return -1;
                if (linkat(c->target_fd, c->links[i].relpath, d->fd, name, 0) < 0)
                    return ob_err_errno(err, errno, "linking %s", path);
                return 0;
            }
        }
    }
    if (remove_entry(d->fd, name, path, err) < 0)
        return -1;
    int fd = openat(d->fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return ob_err_errno(err, errno, "creating %s", path);
    int rc = 0;
    for (size_t i = 0; i < n->nextents && rc == 0; i++) {
        const tree_extent *e = &n->extents[i];
        if (repo_read_blob(c->r, e->id, REPO_BLOB_DATA, &c->blob, err) < 0) {
            rc = ob_err_prefix(err, "restoring %s", path);
            break;
        }
        if (c->blob.len != e->len) {
            rc = ob_err_set(err, OB_ECORRUPT, "restoring %s: chunk at offset %llu is %zu bytes, "
                            "the tree says %u", path, (unsigned long long)e->offset,
                            c->blob.len, e->len);
            break;
        }
        size_t off = 0;
        while (off < c->blob.len) {
            ssize_t k = pwrite(fd, c->blob.data + off, c->blob.len - off,
                               (off_t)(e->offset + off));
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                rc = ob_err_errno(err, errno, "writing %s", path);
                break;
            }
            off += (size_t)k;
        }
        c->st->bytes += c->blob.len;
    }
    /* The size covers trailing holes; holes between extents were never
     * written, so they stay holes. */
    if (rc == 0 && ftruncate(fd, (off_t)n->size) < 0)
        rc = ob_err_errno(err, errno, "setting the size of %s", path);
    if (rc == 0)
        rc = apply_meta(c, d->fd, name, fd, n, path, err);
    if (close(fd) < 0 && rc == 0)
        rc = ob_err_errno(err, errno, "closing %s", path);
    if (rc < 0) {
        unlinkat(d->fd, name, 0); /* never leave a half-written file */
        return -1;
    }
    if (n->nlink > 1) {
        if (c->nlinks == c->links_cap) {
            c->links_cap = c->links_cap ? 2 * c->links_cap : 16;
            c->links = ob_xrealloc(c->links, c->links_cap * sizeof *c->links);
        }
        hardlink *h = &c->links[c->nlinks++];
        h->dev = n->dev;
        h->inode = n->inode;
        h->relpath = rel_path(d, name);
    }
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
    while (rc == 0 && (de = readdir(dir))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (tree_find(t, de->d_name, strlen(de->d_name)))
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
    closedir(dir);
    return rc;
}

static int restore_node(restore_ctx *c, rdir *d, const tree_node *n, ob_err *err)
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
        if (!may_include_below(c, path))
            goto out;
        rdir child = {d, name, path, -1};
        int want_self = included(c, path);
        if (want_self && !c->o->dry_run) {
            rc = rdir_open(c, &child, err);
        }
        if (rc == 0 && want_self) {
            note(c, "restore", path);
            c->st->dirs++;
        }
        if (rc == 0)
            rc = restore_tree(c, &child, n->subtree, err);
        if (rc == 0 && child.fd >= 0)
            rc = apply_meta(c, d->fd, name, child.fd, n, path, err);
        if (child.fd >= 0)
            close(child.fd);
        path = NULL; /* owned by child.path */
        free(child.path);
        goto out;
    }
    if (!included(c, path))
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
        rc = restore_file(c, d, n, path, err);
    else
        rc = restore_special(c, d, n, path, err);
out:
    free(path);
    return rc;
}

static int restore_tree(restore_ctx *c, rdir *d, const uint8_t id[OB_ID_LEN], ob_err *err)
{
    tree t;
    tree_init(&t);
    int rc = treeio_load(c->r, id, &t, err);
    for (size_t i = 0; i < t.n && rc == 0; i++)
        rc = restore_node(c, d, &t.nodes[i], err);
    if (rc == 0 && c->o->delete_extra && (d->fd >= 0 || c->o->dry_run))
        rc = delete_extra(c, d, &t, err);
    if (rc == 0 && c->o->progress) {
        files_progress p = {c->st->files, c->st->dirs, c->st->bytes, 0, 0, 0, d->path};
        c->o->progress(&p, 0, c->o->progress_ud);
    }
    tree_free(&t);
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
    if (!o->dry_run) {
        if (mkdir(o->target, 0700) < 0 && errno != EEXIST)
            return ob_err_errno(err, errno, "creating target directory %s", o->target);
        c.target_fd = open(o->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (c.target_fd < 0)
            return ob_err_errno(err, errno, "opening target directory %s", o->target);
    } else {
        /* Read-only, so --delete --dry-run can list what it would remove;
         * a dry run never creates or writes through it. */
        c.target_fd = open(o->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    rdir root = {NULL, NULL, ob_xstrdup("/"), c.target_fd};
    int rc = restore_tree(&c, &root, s->tree, err);
    /* One syncfs at the end instead of an fsync per file: a restore is only
     * reported done once everything is on disk, without paying a disk
     * flush for each of thousands of small files. */
    if (rc == 0 && c.target_fd >= 0 && syncfs(c.target_fd) < 0)
        rc = ob_err_errno(err, errno, "flushing restored files to disk under %s", o->target);
    if (c.target_fd >= 0)
        close(c.target_fd);
    free(root.path);
    for (size_t i = 0; i < c.nlinks; i++)
        free(c.links[i].relpath);
    free(c.links);
    ob_buf_free(&c.blob);
    if (rc == 0 && o->progress) {
        files_progress p = {st->files, st->dirs, st->bytes, 0, 0, 0, NULL};
        o->progress(&p, 1, o->progress_ud);
    }
    return rc;
}
