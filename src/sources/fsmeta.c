/*
 * fsmeta.c — capture and apply POSIX metadata of one directory entry.
 *
 * Nothing here uses a fixed-size path or name buffer: symlink targets,
 * xattr lists and values, and passwd/group records are read into buffers
 * that grow until the data fits, because every one of them can change size
 * between "how big is it?" and "give it to me" (ERANGE races), and because
 * PATH_MAX is not a real limit on Linux.
 *
 * Restoring is written against a directory descriptor plus a single name
 * component and never follows a symlink in that last component, so a
 * hostile tree (or a local user racing the restore by swapping an entry for
 * a symlink) cannot make us chown/chmod/touch something outside the target.
 */
#include "sources/fsmeta.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"

/* Upper bounds for the growing buffers: far above anything legitimate, low
 * enough that a broken NSS module or FUSE filesystem that keeps answering
 * "bigger" cannot make us allocate without end. */
#define FSMETA_NSS_BUF_MAX ((size_t)1 << 24)   /* passwd/group record */
#define FSMETA_LINK_MAX ((size_t)1 << 24)      /* symlink target */
#define FSMETA_XATTR_MAX ((size_t)1 << 26)     /* xattr name list / one value */

/* ---- owner name lookups ------------------------------------------------
 *
 * A backup asks for the owner name of every file it visits, and with the
 * glibc "files" backend each getpwuid_r re-opens and parses /etc/passwd (with
 * LDAP/SSSD it may be a network round trip).  A handful of distinct owners
 * cover nearly every tree, so a small cache turns a per-file lookup into a
 * per-owner one.  Negative answers are cached too (unknown ids are the
 * expensive case with remote directories).  The cache lives for the whole
 * process: a rename of a user during a backup run is not worth tracking.
 * A mutex makes it safe for the worker threads that call these functions.
 */

enum nss_kind { NSS_USER_BY_ID = 1, NSS_GROUP_BY_ID, NSS_UID_BY_NAME, NSS_GID_BY_NAME };

typedef struct nss_entry {
    int kind;        /* 0 = empty slot */
    int known;       /* the lookup found an entry */
    uint32_t id;     /* key for *_BY_ID, answer for *_BY_NAME */
    char *name;      /* answer for *_BY_ID (NULL if unknown), key for *_BY_NAME */
} nss_entry;

#define NSS_CACHE_SIZE 128
static nss_entry nss_cache[NSS_CACHE_SIZE];
static size_t nss_next; /* round-robin victim */
static pthread_mutex_t nss_lock = PTHREAD_MUTEX_INITIALIZER;

/* Finds a cached answer.  Returns 1 on a hit (then *name is a fresh copy or
 * NULL for *_BY_ID; *id and *known are set for *_BY_NAME). */
static int nss_cache_get(int kind, uint32_t key_id, const char *key_name, char **name,
                         uint32_t *id, int *known)
{
    int hit = 0;
    pthread_mutex_lock(&nss_lock);
    for (size_t i = 0; i < NSS_CACHE_SIZE && !hit; i++) {
        nss_entry *e = &nss_cache[i];
        if (e->kind != kind)
            continue;
        if (key_name ? strcmp(e->name, key_name) == 0 : e->id == key_id) {
            hit = 1;
            if (key_name) {
                *id = e->id;
                *known = e->known;
            } else {
                *name = e->name ? ob_xstrdup(e->name) : NULL;
            }
        }
    }
    pthread_mutex_unlock(&nss_lock);
    return hit;
}

static void nss_cache_put(int kind, uint32_t id, const char *name, int known)
{
    pthread_mutex_lock(&nss_lock);
    nss_entry *e = &nss_cache[nss_next];
    nss_next = (nss_next + 1) % NSS_CACHE_SIZE;
    free(e->name);
    e->kind = kind;
    e->id = id;
    e->known = known;
    e->name = name ? ob_xstrdup(name) : NULL;
    pthread_mutex_unlock(&nss_lock);
}

static size_t nss_initial_size(int which)
{
    long n = sysconf(which);
    return n > 0 && (size_t)n <= FSMETA_NSS_BUF_MAX ? (size_t)n : 1024;
}

/* One reentrant NSS query with a buffer that grows on ERANGE (a group with
 * thousands of members does not fit the sysconf hint).  Returns the found
 * name or id via the out parameters; 1 = found, 0 = not found or error
 * (callers treat a failing directory service like an unknown owner, which
 * only loses the name, never data). */
static int nss_query(int kind, uint32_t id_in, const char *name_in, char **name_out,
                     uint32_t *id_out)
{
    int grp = kind == NSS_GROUP_BY_ID || kind == NSS_GID_BY_NAME;
    size_t cap = nss_initial_size(grp ? _SC_GETGR_R_SIZE_MAX : _SC_GETPW_R_SIZE_MAX);
    for (;;) {
        char *buf = ob_xmalloc(cap);
        struct passwd pw, *pwp = NULL;
        struct group gr, *grp_res = NULL;
        int rc;
        switch (kind) {
        case NSS_USER_BY_ID: rc = getpwuid_r((uid_t)id_in, &pw, buf, cap, &pwp); break;
        case NSS_UID_BY_NAME: rc = getpwnam_r(name_in, &pw, buf, cap, &pwp); break;
        case NSS_GROUP_BY_ID: rc = getgrgid_r((gid_t)id_in, &gr, buf, cap, &grp_res); break;
        default: rc = getgrnam_r(name_in, &gr, buf, cap, &grp_res); break;
        }
        if ((rc == ERANGE && cap < FSMETA_NSS_BUF_MAX) || rc == EINTR) {
            free(buf);
            if (rc == ERANGE)
                cap *= 2;
            continue;
        }
        int found = 0;
        if (rc == 0 && pwp) {
            found = 1;
            if (name_out)
                *name_out = ob_xstrdup(pwp->pw_name);
            if (id_out)
                *id_out = (uint32_t)pwp->pw_uid;
        } else if (rc == 0 && grp_res) {
            found = 1;
            if (name_out)
                *name_out = ob_xstrdup(grp_res->gr_name);
            if (id_out)
                *id_out = (uint32_t)grp_res->gr_gid;
        }
        free(buf);
        return found;
    }
}

static char *id_to_name(int kind, uint32_t id)
{
    char *name = NULL;
    if (nss_cache_get(kind, id, NULL, &name, NULL, NULL))
        return name;
    int found = nss_query(kind, id, NULL, &name, NULL);
    nss_cache_put(kind, id, found ? name : NULL, found);
    return name;
}

/* Returns 1 and sets *id if `name` exists on this machine. */
static int name_to_id(int kind, const char *name, uint32_t *id)
{
    int known = 0;
    uint32_t v = 0;
    if (!nss_cache_get(kind, 0, name, NULL, &v, &known)) {
        known = nss_query(kind, 0, name, NULL, &v);
        nss_cache_put(kind, v, name, known);
    }
    if (known) /* leave *id (the numeric fallback) alone otherwise */
        *id = v;
    return known;
}

char *fsmeta_user_name(uint32_t uid) { return id_to_name(NSS_USER_BY_ID, uid); }
char *fsmeta_group_name(uint32_t gid) { return id_to_name(NSS_GROUP_BY_ID, gid); }

/* ---- capture ---------------------------------------------------------- */

static int type_of(mode_t m)
{
    if (S_ISREG(m)) return TREE_FILE;
    if (S_ISDIR(m)) return TREE_DIR;
    if (S_ISLNK(m)) return TREE_SYMLINK;
    if (S_ISFIFO(m)) return TREE_FIFO;
    if (S_ISCHR(m)) return TREE_CHARDEV;
    if (S_ISBLK(m)) return TREE_BLOCKDEV;
    if (S_ISSOCK(m)) return TREE_SOCKET;
    return 0;
}

/* readlink does not say whether it truncated, so grow the buffer until the
 * result is strictly shorter than it.  st_size is only a hint: the link may
 * be replaced between lstat and readlink, and some filesystems (procfs)
 * report 0. */
static int read_link(int dirfd, const char *name, const char *path, off_t hint, uint8_t **target,
                     size_t *len, ob_err *err)
{
    size_t cap = hint > 0 && (uint64_t)hint < FSMETA_LINK_MAX ? (size_t)hint + 1 : 128;
    for (;;) {
        char *buf = ob_xmalloc(cap);
        ssize_t n = readlinkat(dirfd, name, buf, cap);
        if (n < 0) {
            int e = errno;
            free(buf);
            return ob_err_errno(err, e, "reading symlink %s", path);
        }
        if ((size_t)n < cap) {
            buf[n] = '\0';
            *target = (uint8_t *)buf;
            *len = (size_t)n;
            return 0;
        }
        free(buf);
        if (cap >= FSMETA_LINK_MAX)
            return ob_err_set(err, OB_EIO, "reading symlink %s: target longer than %zu bytes",
                              path, FSMETA_LINK_MAX);
        cap *= 2;
    }
}

/* The NUL-separated list of xattr names.  *len 0 means none (including
 * filesystems without xattr support). */
static int list_xattrs(const char *sys, const char *path, char **list, size_t *len, ob_err *err)
{
    *list = NULL;
    *len = 0;
    size_t cap = 0;
    for (;;) {
        ssize_t need = llistxattr(sys, NULL, 0);
        if (need < 0) {
            int e = errno;
            if (e == ENOTSUP)
                return 0;
            return ob_err_errno(err, e, "listing extended attributes of %s", path);
        }
        if (need == 0)
            return 0;
        /* After an ERANGE someone is adding attributes right now: leave
         * room to spare instead of chasing them one byte at a time. */
        if (cap < (size_t)need)
            cap = (size_t)need;
        char *buf = ob_xmalloc(cap);
        ssize_t got = llistxattr(sys, buf, cap);
        if (got >= 0) {
            *list = buf;
            *len = (size_t)got;
            return 0;
        }
        int e = errno;
        free(buf);
        if (e != ERANGE)
            return ob_err_errno(err, e, "listing extended attributes of %s", path);
        if (cap >= FSMETA_XATTR_MAX)
            return ob_err_set(err, OB_EIO, "listing extended attributes of %s: list keeps growing",
                              path);
        cap *= 2;
    }
}

/* Read one value.  Returns 1 with the value, 0 if the attribute vanished
 * since it was listed (skip it), -1 on error. */
static int get_xattr(const char *sys, const char *path, const char *name, uint8_t **val,
                     size_t *len, ob_err *err)
{
    size_t cap = 0;
    int e;
    for (;;) {
        ssize_t need = lgetxattr(sys, name, NULL, 0);
        if (need < 0) {
            e = errno;
            break;
        }
        if (cap < (size_t)need)
            cap = (size_t)need;
        uint8_t *buf = ob_xmalloc(cap ? cap : 1);
        ssize_t got = lgetxattr(sys, name, buf, cap);
        if (got >= 0) {
            *val = buf;
            *len = (size_t)got;
            return 1;
        }
        e = errno;
        free(buf);
        if (e != ERANGE)
            break;
        /* The value grew between the two calls. */
        if (cap >= FSMETA_XATTR_MAX)
            return ob_err_set(err, OB_EIO,
                              "reading extended attribute %s of %s: value keeps growing", name,
                              path);
        cap = cap ? cap * 2 : 64;
    }
    if (e == ENODATA || e == ENOTSUP)
        return 0;
    return ob_err_errno(err, e, "reading extended attribute %s of %s", name, path);
}

static int xattr_cmp(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: the byte order tree.c encodes in. */
    return strcmp(((const tree_xattr *)a)->name, ((const tree_xattr *)b)->name);
}

static void free_xattrs(tree_xattr *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(x[i].name);
        free(x[i].value);
    }
    free(x);
}

static int read_xattrs(const char *sys, const char *path, tree_xattr **out, size_t *count,
                       ob_err *err)
{
    *out = NULL;
    *count = 0;
    char *list;
    size_t len;
    if (list_xattrs(sys, path, &list, &len, err) < 0)
        return -1;
    size_t max = 0;
    for (size_t i = 0; i < len; i++)
        if (list[i] == '\0')
            max++;
    tree_xattr *x = ob_xcalloc(max ? max : 1, sizeof *x);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        const char *name = list + i;
        size_t nlen = strnlen(name, len - i);
        i += nlen + 1;
        if (nlen == 0 || i > len) /* empty or unterminated: not a name */
            continue;
        uint8_t *val = NULL;
        size_t vlen = 0;
        int rc = get_xattr(sys, path, name, &val, &vlen, err);
        if (rc < 0) {
            free_xattrs(x, n);
            free(list);
            return -1;
        }
        if (rc == 0)
            continue;
        x[n].name = ob_xstrndup(name, nlen);
        x[n].value = val;
        x[n].value_len = vlen;
        n++;
    }
    free(list);
    if (n == 0) {
        free(x);
        x = NULL;
    }
    if (n > 1)
        qsort(x, n, sizeof *x, xattr_cmp);
    *out = x;
    *count = n;
    return 0;
}

int fsmeta_capture(const char *path, const char *name, const struct stat *st, tree_node *node,
                   ob_err *err)
{
    return fsmeta_capture_at(AT_FDCWD, path, path, name, st, node, err);
}

int fsmeta_capture_at(int dirfd, const char *entry, const char *path, const char *name,
                      const struct stat *st, tree_node *node, ob_err *err)
{
    int type = type_of(st->st_mode);
    if (!type)
        return ob_err_set(err, OB_EFAIL, "%s: unsupported file type (mode 0%o)", path,
                          (unsigned)st->st_mode);

    /* Gather everything that can fail first, so a failure leaves *node as
     * it was. */
    uint8_t *target = NULL;
    size_t target_len = 0;
    if (type == TREE_SYMLINK &&
        read_link(dirfd, entry, path, st->st_size, &target, &target_len, err) < 0)
        return -1;
    /* No l*xattr call takes a directory descriptor (before Linux 6.13), so
     * an entry below dirfd is named through /proc/self/fd/<dirfd>, which is
     * the directory we hold and not a lookup of its path again (the same
     * route as apply_xattrs takes); the l* calls do not follow a symlink in
     * the last component. */
    char *sys = dirfd == AT_FDCWD ? NULL : ob_xasprintf("/proc/self/fd/%d/%s", dirfd, entry);
    tree_xattr *xattrs;
    size_t nxattrs;
    int xrc = read_xattrs(sys ? sys : entry, path, &xattrs, &nxattrs, err);
    if (xrc < 0 && sys && err->code == OB_ENOTFOUND) {
        /* ENOENT through /proc/self/fd while the entry is still there:
         * /proc is not mounted (a chroot, a minimal container).  Taking
         * that for a removed entry dropped everything from the backup;
         * read by the full path instead, as before the walk held its
         * directories open. */
        struct stat again;
        if (fstatat(dirfd, entry, &again, AT_SYMLINK_NOFOLLOW) == 0) {
            ob_err_clear(err);
            xrc = read_xattrs(path, path, &xattrs, &nxattrs, err);
        }
    }
    free(sys);
    if (xrc < 0) {
        free(target);
        return -1;
    }

    tree_node_set_name(node, name, strlen(name));
    node->type = (uint8_t)type;
    node->mode = (uint32_t)st->st_mode & 07777;
    node->uid = (uint32_t)st->st_uid;
    node->gid = (uint32_t)st->st_gid;
    free(node->user);
    free(node->group);
    node->user = fsmeta_user_name(node->uid);
    node->group = fsmeta_group_name(node->gid);
    node->mtime_sec = (int64_t)st->st_mtim.tv_sec;
    node->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
    node->atime_sec = (int64_t)st->st_atim.tv_sec;
    node->atime_nsec = (uint32_t)st->st_atim.tv_nsec;
    node->ctime_sec = (int64_t)st->st_ctim.tv_sec;
    node->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
    node->dev = (uint64_t)st->st_dev;
    node->inode = (uint64_t)st->st_ino;
    /* nlink only matters as "> 1" (hard-link candidate); clamp, don't wrap. */
    node->nlink = st->st_nlink > UINT32_MAX ? UINT32_MAX : (uint32_t)st->st_nlink;
    /* Sizes of directories and special files are filesystem trivia that
     * would only make the tree's bytes (and ID) change for no reason. */
    node->size = type == TREE_FILE ? (uint64_t)st->st_size
                 : type == TREE_SYMLINK ? (uint64_t)target_len : 0;
    node->rdev = type == TREE_CHARDEV || type == TREE_BLOCKDEV ? (uint64_t)st->st_rdev : 0;
    free(node->link_target);
    node->link_target = target;
    node->link_len = target_len;
    free_xattrs(node->xattrs, node->nxattrs);
    node->xattrs = xattrs;
    node->nxattrs = nxattrs;
    return 0;
}

/* ---- apply ------------------------------------------------------------ */

static int xattr_warn_errno(int e)
{
    /* Not supported by the target filesystem (or this namespace/size is
     * not), or not permitted to us: a warning, the data is restored. */
    return e == ENOTSUP || e == EPERM || e == EACCES || e == E2BIG || e == ERANGE;
}

static int apply_owner(int dirfd, const char *name, int fd, const tree_node *node, ob_err *err)
{
    /* Only root can give files away; a non-root restore keeps the
     * restoring user as owner, as fsmeta.h promises (like tar). */
    if (geteuid() != 0)
        return 0;
    uint32_t uid = node->uid, gid = node->gid;
    /* By name when the name exists here (ids differ between machines),
     * else by number. */
    if (node->user)
        (void)name_to_id(NSS_UID_BY_NAME, node->user, &uid);
    if (node->group)
        (void)name_to_id(NSS_GID_BY_NAME, node->group, &gid);
    int rc = fd >= 0 ? fchown(fd, (uid_t)uid, (gid_t)gid)
                     : fchownat(dirfd, name, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW);
    if (rc < 0)
        return ob_err_errno(err, errno, "setting owner of %s to %u:%u", name, uid, gid);
    return 0;
}

static int apply_xattrs(int dirfd, const char *name, int fd, const tree_node *node,
                        int *warn_xattr, ob_err *err)
{
    /* Linux has no lsetxattrat() before 6.13 (setxattrat), so without an
     * open descriptor the entry is named by a path.  /proc/self/fd/<dirfd>
     * resolves to exactly the directory we hold (no path lookup through
     * directories an attacker could swap), and lsetxattr does not follow a
     * symlink in the final component, so this has the same safety as an
     * *at() call.  Symlinks and special files take this route: opening a
     * device just to set an xattr could have side effects (a tape rewinds). */
    char *path = NULL;
    int rc = 0;
    for (size_t i = 0; i < node->nxattrs && rc == 0; i++) {
        const tree_xattr *x = &node->xattrs[i];
        int r;
        if (fd >= 0) {
            r = fsetxattr(fd, x->name, x->value, x->value_len, 0);
        } else {
            if (!path)
                path = dirfd == AT_FDCWD ? ob_xstrdup(name)
                                         : ob_xasprintf("/proc/self/fd/%d/%s", dirfd, name);
            r = lsetxattr(path, x->name, x->value, x->value_len, 0);
        }
        if (r == 0)
            continue;
        int e = errno;
        if (xattr_warn_errno(e)) {
            if (warn_xattr)
                *warn_xattr = 1;
            continue;
        }
        if (e == ENOENT && fd < 0 && dirfd != AT_FDCWD)
            rc = ob_err_errno(err, e, "setting extended attribute %s of %s (via %s; is /proc "
                              "mounted?)", x->name, name, path);
        else
            rc = ob_err_errno(err, e, "setting extended attribute %s of %s", x->name, name);
    }
    free(path);
    return rc;
}

static int apply_mode(int dirfd, const char *name, int fd, const tree_node *node, ob_err *err)
{
    /* Linux cannot change a symlink's permissions (they are always 0777). */
    if (node->type == TREE_SYMLINK)
        return 0;
    mode_t mode = (mode_t)(node->mode & 07777);
    /* AT_SYMLINK_NOFOLLOW although the entry is not supposed to be a
     * symlink: if someone swapped it for one since it was created, flags 0
     * would chmod whatever it points to.  glibc implements the flag safely
     * (fchmodat2, or an O_PATH descriptor) and fails with EOPNOTSUPP on a
     * symlink. */
    int rc = fd >= 0 ? fchmod(fd, mode) : fchmodat(dirfd, name, mode, AT_SYMLINK_NOFOLLOW);
    if (rc < 0)
        return ob_err_errno(err, errno, "setting mode %04o of %s", (unsigned)mode, name);
    return 0;
}

static int apply_times(int dirfd, const char *name, int fd, const tree_node *node, ob_err *err)
{
    struct timespec ts[2];
    ts[0].tv_sec = (time_t)node->atime_sec;
    ts[0].tv_nsec = (long)node->atime_nsec;
    ts[1].tv_sec = (time_t)node->mtime_sec;
    ts[1].tv_nsec = (long)node->mtime_nsec;
    if ((int64_t)ts[0].tv_sec != node->atime_sec || (int64_t)ts[1].tv_sec != node->mtime_sec)
        return ob_err_set(err, OB_EFAIL, "setting times of %s: time out of range for this system",
                          name);
    int rc = fd >= 0 ? futimens(fd, ts) : utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
    if (rc < 0)
        return ob_err_errno(err, errno, "setting times of %s", name);
    return 0;
}

int fsmeta_apply(int dirfd, const char *name, int fd, const tree_node *node, int *warn_xattr,
                 ob_err *err)
{
    /* With fd the name only labels messages; without, it is resolved in
     * dirfd and must be one safe component (also for the /proc path). */
    if (fd < 0 && (!name || !tree_name_is_safe((const uint8_t *)name, strlen(name))))
        return ob_err_set(err, OB_EUNSAFE, "refusing to set metadata on \"%s\": not a single "
                          "safe path component", name ? name : "(null)");
    if (!name)
        name = "(open file)";
    /* Order matters: chown clears the setuid/setgid bits and the
     * security.capability xattr, so ownership goes first; setting a POSIX
     * ACL xattr rewrites the group mode bits, so the mode follows the
     * xattrs; times go last so that nothing after them can touch them. */
    if (apply_owner(dirfd, name, fd, node, err) < 0 ||
        apply_xattrs(dirfd, name, fd, node, warn_xattr, err) < 0 ||
        apply_mode(dirfd, name, fd, node, err) < 0 ||
        apply_times(dirfd, name, fd, node, err) < 0)
        return -1;
    return 0;
}
