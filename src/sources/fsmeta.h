/*
 * fsmeta.h — read and apply POSIX file metadata for tree nodes.
 *
 * Capture: everything a restore needs to recreate an entry exactly — type,
 * mode bits (setuid/setgid/sticky too), uid/gid and their names, atime and
 * mtime with nanoseconds, ctime/dev/inode (change detection, hard links),
 * symlink target, device numbers, extended attributes (which on Linux also
 * carry POSIX ACLs as system.posix_acl_*).
 *
 * Apply: runs after an entry's content is written, relative to a directory
 * file descriptor, never following symlinks, so a restore can not be
 * redirected outside its target.  Ownership is set by name when the name
 * exists on this machine, else by number (like tar); only root can chown,
 * and a non-root restore keeps the restoring user as owner silently.
 * Errors setting xattrs the filesystem does not support are reported as
 * warnings by the caller, not failures (see fsmeta_apply flags).
 */
#ifndef OB_FSMETA_H
#define OB_FSMETA_H

#include <sys/stat.h>

#include "core/err.h"
#include "repo/tree.h"

/* Fill node's metadata from `path` (lstat result in *st; not followed if a
 * symlink).  Sets name from `name` (raw bytes, NUL-terminated), type, mode,
 * ids and owner names, times, dev/inode/nlink, size, rdev, link target and
 * xattrs.  Does not touch extents or subtree.  Returns -1 when the entry
 * cannot be read (message names the path). */
int fsmeta_capture(const char *path, const char *name, const struct stat *st, tree_node *node,
                   ob_err *err);

/* The same for entry `entry` (one name component) inside directory dirfd,
 * as a walk that holds its directories open calls it: nothing is looked up
 * by its full path, so it works where full paths exceed PATH_MAX and a directory
 * swapped for a symlink on the way cannot redirect it.  `path` is only
 * shown in messages.  dirfd may be AT_FDCWD (entry is then a path). */
int fsmeta_capture_at(int dirfd, const char *entry, const char *path, const char *name,
                      const struct stat *st, tree_node *node, ob_err *err);

/* Apply ownership, xattrs, mode and times of node to entry `name` inside
 * directory dirfd.  If fd >= 0 it is an open descriptor of that entry
 * (files, directories) and is used instead of the name.  Order: owner,
 * xattrs, mode (after chown, which clears setuid bits), times last.
 * Returns -1 on the first failure; *warn_xattr is set (not a failure) if
 * some xattr could not be set because the target does not support it or
 * permission is lacking (e.g. trusted.* as non-root). */
int fsmeta_apply(int dirfd, const char *name, int fd, const tree_node *node, int *warn_xattr,
                 ob_err *err);

/* uid/gid lookups with reentrant libc calls; NULL when unknown (caller frees). */
char *fsmeta_user_name(uint32_t uid);
char *fsmeta_group_name(uint32_t gid);

#endif
