/*
 * files.h — file trees as a source and a sink: backup files/config,
 * restore files/config, ls and diff.
 *
 * A snapshot of files records each backed-up PATH under its full absolute
 * path: the snapshot's root tree holds "/", so /app/storage is found as
 * app -> storage, and the directories on the way carry their own metadata.
 * Restoring below --target DIR recreates DIR/app/storage/...
 */
#ifndef OB_FILES_H
#define OB_FILES_H

#include <stdint.h>
#include <sys/stat.h>

#include "core/err.h"
#include "repo/repo.h"
#include "repo/snapshot.h"
#include "repo/tree.h"

typedef struct files_progress {
    uint64_t files, dirs, bytes;        /* entries and bytes seen so far */
    uint64_t bytes_read;                /* file contents actually read */
    uint64_t bytes_added;               /* new data stored */
    uint64_t errors;
    const char *current;                /* path being processed, may be NULL */
} files_progress;

typedef void (*files_progress_cb)(const files_progress *p, int final, void *ud);

/* What a files_backup filter says about one entry (physical backups use it
 * for PostgreSQL's exclusion rules).  One of the first three, optionally
 * or'ed with the flags. */
enum files_filter_result {
    FILES_INCLUDE = 0,
    FILES_EXCLUDE = 1,      /* leave the entry out */
    FILES_EMPTY_DIR = 2,    /* keep the directory, leave out its contents */
    FILES_FOLLOW = 4,       /* a symlink to a directory: back up the directory */
    FILES_LAST = 8,         /* read it after its siblings (pg_control) */
};
typedef int (*files_filter_fn)(void *ud, const char *path, const char *name,
                               const struct stat *st);
struct snapshot;

typedef struct files_backup_opts {
    const char *kind;                   /* "files" (default) or "config" */
    const char *set;                    /* "" or NULL: no set */
    char **tags;                        /* "K=V" */
    size_t ntags;
    char **excludes;                    /* fnmatch patterns */
    size_t nexcludes;
    int64_t time_sec;                   /* snapshot time; 0 = now */
    int nthreads;                       /* 0 = one per CPU */
    int no_parent;                      /* read every file even if unchanged */
    int skip_if_unchanged;              /* config: no new snapshot if tree is equal */
    files_progress_cb progress;
    void *progress_ud;
    struct repo_lock *lock;             /* if set, a lost lease fails before commit */
    files_filter_fn filter;             /* optional, see files_filter_result */
    void *filter_ud;
    const chunker *chunker;             /* NULL: the repository's files chunker */
    /* Non-zero: store files as super blocks of this size, in blocks of the
     * chunker's max_size (a fixed chunker), keeping unchanged blocks from
     * the parent snapshot as slices (sources/superblock.h; physical). */
    size_t super_block;
    /* Physical backups: files change while they are read and WAL replay
     * repairs them, so a file that shrinks while read is not worth a
     * warning.  (Every backup reuses a file from its parent only if it
     * was changed before the parent started: files_backup.c.) */
    int parent_strict;
    /* Called after every file is read and before the snapshot is saved;
     * may fill s->extra.  Failing it fails the backup. */
    int (*before_commit)(void *ud, struct snapshot *s, ob_err *err);
    void *commit_ud;
} files_backup_opts;

/* Back up paths; on success *out is the saved snapshot (or, with
 * skip_if_unchanged and nothing changed, the previous one with
 * *unchanged = 1).  Entries that cannot be read are reported as warnings,
 * counted in stats.errors, and make the call fail *after* saving the
 * snapshot (err set, *out still set), so callers can say both. */
int files_backup(repo *r, char **paths, size_t npaths, const files_backup_opts *o,
                 snapshot **out, int *unchanged, ob_err *err);

typedef struct files_restore_opts {
    const char *target;                 /* directory; created if missing */
    char **includes;                    /* fnmatch patterns on snapshot paths */
    size_t nincludes;
    int delete_extra;                   /* remove what the snapshot does not have */
    int dry_run;                        /* print what would happen, write nothing */
    int verbose;                        /* print each path restored */
    files_progress_cb progress;
    void *progress_ud;
    /* Restore this tree (a directory of the snapshot) into target instead
     * of the snapshot's root; --delete then applies to all of target. */
    const uint8_t *root;
    /* Existing regular files are updated in place: only blocks whose
     * content differs from the snapshot are written (physical --delta). */
    int delta;
    /* Optional: directories for which skip returns non-zero are left out
     * entirely (path is the snapshot path below the restored root). */
    int (*skip)(void *ud, const char *path);
    void *skip_ud;
} files_restore_opts;

typedef struct files_restore_stats {
    uint64_t files, dirs, others, bytes, deleted, warnings;
    uint64_t bytes_kept;                /* delta: bytes already right on disk */
} files_restore_stats;

int files_restore(repo *r, const snapshot *s, const files_restore_opts *o,
                  files_restore_stats *st, ob_err *err);

/* Walk a snapshot tree depth first in name order.  path is the entry's
 * absolute path inside the snapshot ("/app/x"), raw bytes. */
typedef int (*files_visit_cb)(const char *path, const tree_node *n, void *ud);
int files_walk(repo *r, const uint8_t root[OB_ID_LEN], files_visit_cb cb, void *ud,
               ob_err *err);

/* Compare two snapshot trees.  change: '+' added, '-' removed, 'M'
 * content changed, 'T' type changed, 'U' metadata only. */
typedef int (*files_diff_cb)(char change, const char *path, const tree_node *a,
                             const tree_node *b, void *ud);
int files_diff(repo *r, const uint8_t a[OB_ID_LEN], const uint8_t b[OB_ID_LEN],
               files_diff_cb cb, void *ud, ob_err *err);

/* Render raw path bytes for a terminal: printable bytes as is, '\\',
 * control characters and invalid UTF-8 as C escapes.  Caller frees. */
char *files_path_display(const char *path);

#endif
