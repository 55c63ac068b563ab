/*
 * repo.h — an opened opsbackup repository: keys, config, encrypted objects
 * and blob reads.  The byte formats are specified in docs/FORMAT.md.
 *
 * A repository lives in a storage (storage.h) and knows nothing about what
 * it stores: files, database dumps and WAL segments all become blobs,
 * trees and snapshots.
 *
 * Ownership: repo_open/repo_init take a storage the caller keeps owning and
 * must keep open until repo_close.  A repo may be shared by threads for
 * reads (repo_read_blob, repo_get_object); writes go through repo_writer.
 */
#ifndef OB_REPO_H
#define OB_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/err.h"
#include "repo/chunker.h"
#include "storage/storage.h"

#define REPO_FORMAT_VERSION 1
#define REPO_PACK_SIZE_DEFAULT (16u * 1024 * 1024)
/* zstd level written into a new repository's config (D65); repositories
 * made before D65 say 3 and keep it.  Logical dumps use PG_LOGICAL_ZSTD_LEVEL
 * and WAL PG_WAL_ZSTD_LEVEL whatever the config says. */
#define REPO_COMPRESSION_LEVEL_DEFAULT 4

/* Blob types (stored in packs and indexes). */
enum repo_blob_type { REPO_BLOB_DATA = 1, REPO_BLOB_TREE = 2 };

/* Encrypted object types (the envelope's type byte). */
enum repo_object_type {
    REPO_OBJ_CONFIG = 1,
    REPO_OBJ_INDEX = 2,
    REPO_OBJ_SNAPSHOT = 3,
    REPO_OBJ_LOCK = 4,
    REPO_OBJ_WAL = 5,      /* an archived WAL file (sources/pg_wal.h) */
};

/* scrypt parameters for a key slot. */
typedef struct repo_kdf_params {
    uint64_t n;
    uint32_t r, p;
} repo_kdf_params;

/* Defaults: N = 2^13, r = 8, p = 10 (8 MiB, about 0.4 s here): paid once
 * per command, it makes each password guess cost the same. */
void repo_kdf_default(repo_kdf_params *p);

typedef struct repo repo;
typedef struct repo_index repo_index;

/* Create a repository in an empty storage.  Writes config and the first key
 * slot; fails with OB_EEXIST if a config already exists. */
int repo_init(storage *st, const char *password, const repo_kdf_params *kdf, char **repo_id_out,
              ob_err *err);

/* Open: try every key slot with the password (OB_EAUTH if none opens), then
 * read the config.  The index is loaded lazily (repo_load_index). */
int repo_open(storage *st, const char *password, repo **out, ob_err *err);
void repo_close(repo *r);
/* Open with the 64-byte master key itself (key recover, after rebuilding
 * it from escrow shares) instead of a password: no key slot is used
 * (repo_key_id is NULL).  The config must open with the key: OB_EAUTH if it
 * does not, so a wrong key is never mistaken for a working one. */
int repo_open_with_master_key(storage *st, const uint8_t master[64], repo **out, ob_err *err);
/* The repository ID as the key slots state it, without opening anything
 * (the slots are plaintext, so it is unauthenticated: for messages and
 * early checks only).  OB_ENOTFOUND when no slot is readable. */
int repo_key_slot_repository(storage *st, char id[OB_HEX_ID_LEN + 1], ob_err *err);

storage *repo_storage(const repo *r);
const char *repo_id(const repo *r);          /* 64 hex digits */
const char *repo_key_id(const repo *r);      /* the slot that opened it; NULL if
                                                repo_open_with_master_key */
const chunker *repo_chunker(const repo *r, int kind); /* REPO_CHUNK_FILES / _DB */
int repo_compression_level(const repo *r);
uint32_t repo_pack_size(const repo *r);

enum { REPO_CHUNK_FILES = 0, REPO_CHUNK_DB = 1 };

/* Blob ID: HMAC-SHA-256 of the plaintext under the repository's MAC key
 * for data blobs, and under a key derived from it for trees, so a file
 * whose bytes happen to equal a tree's encoding is a different blob. */
void repo_blob_id(const repo *r, int type, const void *data, size_t len, uint8_t id[OB_ID_LEN]);

/* Encrypted objects (config, index, snapshot, lock).  put names the object
 * "<dir>/<sha256 of stored bytes>" and returns that hex ID when id_hex is
 * not NULL (65 bytes); put_named stores under an exact name. */
int repo_put_object(repo *r, const char *dir, int type, const void *data, size_t len,
                    char id_hex[OB_HEX_ID_LEN + 1], ob_err *err);
int repo_put_object_named(repo *r, const char *name, int type, const void *data, size_t len,
                          int flags, ob_err *err);
/* Read, authenticate and decrypt; a wrong type or a failed tag is
 * OB_ECORRUPT naming the object. */
int repo_get_object(repo *r, const char *name, int type, ob_buf *out, ob_err *err);

/* Envelope helpers, exposed for `check`, key files and tests. */
int repo_seal_object(const repo *r, int type, const void *data, size_t len, ob_buf *out,
                     ob_err *err);
int repo_open_object(const repo *r, int type, const uint8_t *data, size_t len, ob_buf *out,
                     ob_err *err);

/* Pack blob crypto (pack.c uses these; they live here because they need
 * the master key, which never leaves this module). */
void repo_pack_key(const repo *r, const uint8_t salt[32], uint8_t key[OB_KEY_LEN]);

/* The index (index.h) — loaded from all index/ objects on first use. */
int repo_load_index(repo *r, ob_err *err);
repo_index *repo_get_index(repo *r);
/* Replace the index (takes ownership; NULL drops it so it reloads). */
void repo_set_index(repo *r, repo_index *ix);

/* Read a blob: look it up, fetch its bytes from the pack with a ranged get,
 * decrypt, decompress and verify its ID.  Every failure names the blob and
 * the pack.  out receives the plaintext. */
int repo_read_blob(repo *r, const uint8_t id[OB_ID_LEN], int type, ob_buf *out, ob_err *err);
/* A stored blob's plaintext length, as the index gives it (not read); fails
 * as repo_read_blob does for a blob it could not read. */
int repo_blob_raw_len(repo *r, const uint8_t id[OB_ID_LEN], int type, uint32_t *raw_len,
                      ob_err *err);

/* Read blobs ids[0..n) in order, each opened and checked exactly as
 * repo_read_blob does (same errors), and hand each plaintext to
 * fn(ud, i, data, len, err).  Blobs that lie back to back in one pack are
 * fetched with one ranged get of up to REPO_RUN_BYTES.  ct and out are the
 * caller's buffers (ciphertext of a run, one plaintext), kept between
 * calls so that they are not allocated and faulted in again each time.
 * Returns 0; -1 when a blob could not be read (err as repo_read_blob's);
 * -2 when fn failed (fn's err, returned unchanged). */
#define REPO_RUN_BYTES ((uint64_t)1 << 20)
typedef int (*repo_blob_fn)(void *ud, size_t i, const uint8_t *data, size_t len, ob_err *err);
int repo_read_blobs(repo *r, const uint8_t *const ids[], size_t n, int type, ob_buf *ct,
                    ob_buf *out, repo_blob_fn fn, void *ud, ob_err *err);

/* Key slots (key.c). */
typedef struct repo_key_info {
    char *id;        /* object name under keys/ (hex) */
    char *created;   /* RFC 3339 */
    char *host, *user;
    int current;     /* the slot this session opened */
    repo_kdf_params kdf; /* as the slot states them; zero if unreadable */
} repo_key_info;
int repo_key_list(repo *r, repo_key_info **out, size_t *n, ob_err *err);
void repo_key_info_free(repo_key_info *k, size_t n);
/* Does the slot's content b match its object name (the SHA-256 of its
 * bytes)?  OB_ECORRUPT ("damaged: ...") if not. */
int repo_key_name_ok(const char *name, const ob_buf *b, ob_err *err);
/* Add a slot for a new password; returns its ID. */
int repo_key_add(repo *r, const char *password, const repo_kdf_params *kdf, char **id_out,
                 ob_err *err);
/* Remove a slot; refuses to remove the slot in use or the last one. */
int repo_key_remove(repo *r, const char *id_prefix, ob_err *err);

/* The raw master key (64 bytes) for key escrow (issue: key export).  Copies. */
void repo_master_key(const repo *r, uint8_t out[64]);

#endif
