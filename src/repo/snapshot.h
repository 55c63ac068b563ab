/*
 * snapshot.h — snapshots: the commit record of a backup.
 *
 * A snapshot is a small encrypted JSON object under snapshots/, written
 * only after every blob and tree it references is durably stored and
 * indexed (repo_writer_flush), so a reader never sees a snapshot whose data
 * is not all there.  Its object name (SHA-256 of the stored bytes) is its
 * ID; users may abbreviate it to any unique prefix, or say `latest`.
 *
 * Kind-specific facts (database name, row counts, WAL range…) go in
 * `extra`, a JSON object owned by the snapshot, so later kinds extend the
 * record without changing this struct.
 *
 * Ownership: a snapshot owns all its strings and extra; snapshot_free.
 */
#ifndef OB_SNAPSHOT_H
#define OB_SNAPSHOT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "repo/repo.h"

typedef struct snapshot_stats {
    uint64_t files, dirs, bytes;       /* what the snapshot contains */
    uint64_t bytes_added;              /* new plaintext bytes this backup stored */
    uint64_t bytes_stored;             /* what they took in the repository */
    uint64_t blobs_added;
    uint64_t errors;                   /* entries that could not be read */
    double duration;                   /* seconds */
    int64_t started;                   /* the real clock (Unix seconds) when the backup
                                        * began, whatever --time says; 0: not recorded */
} snapshot_stats;

typedef struct snapshot {
    char id[OB_HEX_ID_LEN + 1];        /* set by save / load */
    int64_t time_sec;
    uint32_t time_nsec;
    char *kind;                        /* files | db | db-physical | config */
    char *set;                         /* user's name for the backup set; "" if none */
    char *hostname, *username;
    char **paths;
    size_t npaths;
    char **tags;                       /* "K=V" strings */
    size_t ntags;
    uint8_t tree[OB_ID_LEN];
    int has_parent;
    char parent[OB_HEX_ID_LEN + 1];
    snapshot_stats stats;
    json_t *extra;                     /* kind-specific object, may be NULL */
} snapshot;

snapshot *snapshot_new(const char *kind);
void snapshot_free(snapshot *s);
void snapshot_add_path(snapshot *s, const char *path);
void snapshot_add_tag(snapshot *s, const char *tag);

/* Write the snapshot object; sets s->id. */
int snapshot_save(repo *r, snapshot *s, ob_err *err);
int snapshot_load(repo *r, const char *id_hex, snapshot **out, ob_err *err);

/* All snapshots, oldest first (ties by ID).  A damaged snapshot object is
 * skipped with a warning (check reports it); storage errors fail. */
int snapshot_list(repo *r, snapshot ***out, size_t *n, ob_err *err);
void snapshot_list_free(snapshot **v, size_t n);

/* Resolve "latest", a full ID or a unique prefix, optionally restricted to
 * a set and/or kind (NULL = any).  OB_ENOTFOUND / OB_EUSAGE (ambiguous). */
int snapshot_find(repo *r, const char *ref, const char *set, const char *kind,
                  snapshot **out, ob_err *err);

/* The newest snapshot of kind/set with every listed path (for parents). */
snapshot *snapshot_pick_parent(snapshot **v, size_t n, const snapshot *like);

/* JSON form used by `snapshots --json` (new reference). */
json_t *snapshot_to_json(const snapshot *s);

#endif
