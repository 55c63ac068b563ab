/*
 * pg_physical.h — PostgreSQL physical backups (a copy of the data
 * directory taken with the non-exclusive backup API) and their restore to
 * a point in time.
 *
 * Backup.  One libpq connection calls pg_backup_start (pg_start_backup
 * before 15) and stays open while the data directory is read, so the
 * server keeps full-page writes on and knows a backup is running; the
 * files are read with PostgreSQL's own exclusion rules (those of
 * basebackup.c); pg_control is read last; pg_backup_stop returns the
 * backup_label and tablespace_map, which are stored in the snapshot only
 * (never written into the live data directory).  The snapshot is saved
 * only once every WAL segment from the start to the stop position is in
 * the repository's WAL archive, so a saved physical snapshot is always
 * restorable on its own.
 *
 * Storage.  Files are cut in fixed 32 KiB blocks (four PostgreSQL pages,
 * D56), so a changed page stores one block, and every other block
 * deduplicates against earlier backups: each backup is a full backup to
 * restore and an incremental one to store.  Files unchanged since the parent backup
 * (same size, times and inode, and last written before the parent
 * started) are not read at all.
 *
 * Tablespaces (pg_tblspc/OID symlinks) are backed up through the link (the
 * tree holds pg_tblspc/OID as a directory) and restored into their
 * original location or the one --tablespace-map gives, which must be
 * empty (or, with --delta, an older copy), with pg_tblspc/OID linked to it.
 *
 * Restore writes the files, backup_label, recovery.signal and the
 * recovery settings (restore_command, recovery_target_*) into
 * postgresql.auto.conf, replacing any recovery settings there; never
 * recovery.conf, which PostgreSQL 12+ refuses.
 */
#ifndef OB_PG_PHYSICAL_H
#define OB_PG_PHYSICAL_H

#include <stdint.h>

#include "core/err.h"
#include "repo/repo.h"
#include "repo/snapshot.h"

/* The unit a relation file is cut in (D56).  A multiple of every page size
 * PostgreSQL can be built with, so blocks stay page-aligned.  8 KiB until
 * D56: one page per blob cost 18 % more storage, a third more CPU per full
 * backup and twice the memory, for a random-update incremental only 10 %
 * smaller on the bench cluster. */
#define PG_PHYSICAL_BLOCK 32768
/* The unit a relation file is compressed in (D64): 1 MiB stores what the
 * whole file would (bench/results.md), while an incremental still stores
 * only the PG_PHYSICAL_BLOCK blocks that changed (sources/superblock.h). */
#define PG_PHYSICAL_SUPER_BLOCK ((size_t)1 << 20)

struct repo_lock;

typedef struct pg_physical_backup_opts {
    const char *conninfo;      /* NULL: PG* environment */
    const char *pgdata;        /* the server's data directory */
    const char *set;
    char **tags;
    size_t ntags;
    int64_t time_sec;          /* 0 = now */
    int spread_checkpoint;     /* default: an immediate checkpoint */
    int force;                 /* read every file, even one unchanged since the parent,
                                  and store it as a first backup does (pgBackRest's
                                  full backup; D75) */
    int64_t full_every;        /* > 0: force when the set's newest full backup is at
                                  least this many seconds old (or there is none) */
    int archive_timeout;       /* seconds to wait for the WAL (default 300) */
    int quiet;
    struct repo_lock *lock;
} pg_physical_backup_opts;

int pg_physical_backup(repo *r, const pg_physical_backup_opts *o, snapshot **out, ob_err *err);

typedef struct pg_physical_restore_opts {
    const char *pgdata;        /* where to restore */
    int delta;                 /* pgdata may hold an older copy: fix it up */
    const char *target_time, *target_lsn, *target_xid, *target_name;
    int target_immediate;
    const char *target_action; /* promote (default) | pause | shutdown */
    const char *target_timeline; /* NULL: PostgreSQL's default (latest) */
    const char *restore_command; /* full restore_command for postgresql.auto.conf */
    /* Paths restore_command reads (its config file, password file, local
     * repository), when known.  PostgreSQL runs restore_command as the
     * data directory's owner, so a restore run as root checks, before
     * writing anything, that this owner can read them: otherwise recovery
     * could not fetch a single WAL file. */
    const char *const *restore_command_reads;
    size_t nrestore_command_reads;
    int check_wal;             /* restore_command reads this repository's archive: refuse,
                                  before writing anything, a snapshot whose own WAL
                                  (start_wal..stop_wal) is not all there */
    char **tablespace_map;     /* "OID=DIR": where tablespace OID goes (default: where it was) */
    size_t ntablespace_map;
    int archive_off;           /* write archive_mode = off (a test restore must not
                                  archive into the production repository) */
    int start;                 /* start the server and wait for recovery to end */
    const char *start_options; /* pg_ctl -o (e.g. "-p 5433") */
    int start_timeout;         /* seconds (default 3600) */
    int quiet;
} pg_physical_restore_opts;

int pg_physical_restore(repo *r, const snapshot *s, const pg_physical_restore_opts *o,
                        ob_err *err);

/* The newest physical snapshot (of set, if given) that ended before
 * target_time (RFC 3339 or 'YYYY-MM-DD HH:MM:SS[+TZ]'). */
int pg_physical_pick(repo *r, const char *set, const char *target_time, snapshot **out,
                     ob_err *err);

#endif
