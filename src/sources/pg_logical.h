/*
 * pg_logical.h — PostgreSQL logical backups: pg_dump into the repository,
 * pg_restore out of it, and restore-and-compare verification.
 *
 * Backup: one libpq connection opens a REPEATABLE READ transaction and
 * exports its snapshot; pg_dump (a child process, custom format, no
 * compression so successive dumps deduplicate) dumps that very snapshot
 * while a second thread counts every table's rows in it on our
 * connection.  So the counts recorded in the snapshot are exactly the rows
 * in the dump.  The dump is streamed from pg_dump's stdout into the
 * repository; no temporary file.  The cluster globals (roles, tablespaces)
 * from pg_dumpall --globals-only are stored beside it.  The snapshot is
 * written only if pg_dump exited 0.
 *
 * Restore never touches the live database until the very end: it
 * restores into a new database and, with replace, swaps names in one
 * transaction, keeping the old database under NAME_before_restore_<time>.
 *
 * Secrets (a password in the conninfo) reach pg_dump / pg_restore through
 * their environment (PGPASSWORD), never their argv.
 */
#ifndef OB_PG_LOGICAL_H
#define OB_PG_LOGICAL_H

#include <jansson.h>
#include <stdint.h>

#include "core/err.h"
#include "repo/lock.h"
#include "repo/repo.h"
#include "repo/snapshot.h"

/* Names of the streams inside a db snapshot's root tree. */
#define PG_DUMP_NAME "database.dump"
#define PG_GLOBALS_NAME "globals.sql"

/* The row-count key under which a db snapshot records its large objects
 * (pg_largeobject_metadata has one row per large object). */
#define PG_LARGE_OBJECTS_KEY "pg_catalog.pg_largeobject_metadata"
/* How a row-count key reads in a message: "table KEY", or "the large
 * objects" for PG_LARGE_OBJECTS_KEY (caller frees); and the unit after a
 * count: " rows" for a table, "" for the large objects. */
char *pg_logical_count_subject(const char *key);
const char *pg_logical_count_unit(const char *key);
/* One table's comparison (an element of pg_logical_compare's *tables) in
 * words: "table public.t: 4287 rows in DB, the snapshot recorded 5001",
 * "…: missing…", "…: could not be counted (ERROR)".  where (may be NULL)
 * names the database.  Caller frees. */
char *pg_logical_count_describe(const char *key, const json_t *t, const char *where);
/* The tables among a snapshot's row counts (the large objects' key is not
 * one). */
size_t pg_logical_table_count(const json_t *tables);

/* extra.table_keys of a db snapshot whose row-count keys quote a part
 * holding '.' or '"' (pg_sql_table_key); absent before (bare parts). */
#define PG_TABLE_KEYS_QUOTED 2

typedef struct pg_backup_opts {
    const char *conninfo;      /* libpq conninfo or URI; NULL: PG* environment */
    const char *dump_command;  /* command prefix; NULL: "pg_dump" */
    const char *set;
    char **tags;
    size_t ntags;
    int64_t time_sec;          /* 0 = now */
    int nthreads;              /* writer threads; 0: one per CPU */
} pg_backup_opts;

/* A logical backup in two steps, so that pg_dump's start (connecting,
 * reading the catalog, ~0.2 s) overlaps the caller's opening of the
 * repository (key derivation, ~0.5 s; D49).  start connects, exports the
 * snapshot and starts pg_dump and pg_dumpall; store streams the running
 * dump into r as a new snapshot and frees d whatever happens (it commits
 * nothing when the lease of lock, the caller's lock of r, is lost; NULL:
 * none); pg_logical_dump_free abandons a started dump (pg_dump is killed,
 * the session closed).  o need not outlive start. */
typedef struct pg_logical_dump pg_logical_dump;
int pg_logical_dump_start(const pg_backup_opts *o, pg_logical_dump **out, ob_err *err);
int pg_logical_dump_store(repo *r, pg_logical_dump *d, repo_lock *lock, snapshot **out,
                          ob_err *err);
void pg_logical_dump_free(pg_logical_dump *d);

/* The zstd level a dump's blobs get, whatever the repository's level: they
 * are compressed while pg_dump waits on the pipe, and on two cores that
 * CPU is taken from pg_dump and the server (D67). */
#define PG_LOGICAL_ZSTD_LEVEL 1

typedef struct pg_restore_opts {
    const char *conninfo;      /* server to restore to (and db to replace) */
    const char *target_db;     /* create this database */
    int replace;               /* or: restore beside the live db and swap */
    int jobs;                  /* > 1: parallel pg_restore through a temp file */
    int roles;                 /* run the globals (roles) first */
    const char *restore_command; /* NULL: "pg_restore" */
    int quiet;
} pg_restore_opts;

typedef struct pg_restore_result {
    char *database;            /* where the data now is */
    char *previous;            /* replace: the old database's new name */
    double seconds;
} pg_restore_result;

int pg_logical_restore(repo *r, const snapshot *s, const pg_restore_opts *o,
                       pg_restore_result *res, ob_err *err);
/* The database a conninfo (key=value or URI) names, or NULL when it names
 * none (or cannot be parsed: the connection says why later).  Caller
 * frees. */
char *pg_logical_conninfo_dbname(const char *conninfo);
/* The system identifier (pg_control_system()) of the server conninfo
 * connects to (through its database postgres), as a decimal string the
 * caller frees; NULL with err set if it cannot connect or the role may not
 * ask. */
char *pg_logical_system_identifier(const char *conninfo, ob_err *err);
void pg_restore_result_free(pg_restore_result *res);

typedef struct pg_verify_result {
    json_t *tables;            /* {"schema.table": {"expected": N, "actual": N}} */
    json_t *checks;            /* [{"sql": ..., "result": [...], "ok": bool}] */
    uint64_t mismatches;       /* tables whose count differs + failed checks */
    double restore_seconds;
    char *database;            /* the throwaway database (already dropped) */
} pg_verify_result;

/* A live database against a logical snapshot's recorded row counts
 * (extra: the snapshot's extra, whose "tables" are compared; NULL: none)
 * and check SQL, over conninfo with database dbname.  *tables:
 * {KEY: {expected, actual, ok}} (actual -1: the table is missing);
 * *checks: [{sql, ok, result | error}] (both the caller's).  Returns the
 * number of mismatches, failed checks included, or -1 (err set) when it
 * cannot connect. */
int64_t pg_logical_compare(const char *conninfo, const char *dbname, const json_t *extra,
                           char *const *check_sql, size_t nchecks, json_t **tables,
                           json_t **checks, ob_err *err);

int pg_logical_verify(repo *r, const snapshot *s, const char *conninfo, char **check_sql,
                      size_t nchecks, pg_verify_result *res, ob_err *err);
void pg_verify_result_free(pg_verify_result *res);

#endif
