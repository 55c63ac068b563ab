/*
 * storage.h — the object store every repository lives in.
 *
 * A storage is a flat namespace of immutable objects named by relative
 * paths with '/' separators ("data/ab/ab12…", "snapshots/9f…", "config").
 * The repository layer only ever uses these operations, so a posix
 * directory and an S3 bucket are interchangeable behind them.
 *
 * Guarantees a driver must give:
 * - put is atomic and durable: when it returns 0 a reader sees either no
 *   object or the whole object, and the object survives a crash (posix:
 *   temp file + fsync + rename + directory fsync).  With STORAGE_PUT_CREATE
 *   it fails with OB_EEXIST if the object already exists.
 * - get of a missing object fails with OB_ENOTFOUND.
 * - list returns every object under a prefix, in no particular order.
 * - delete of a missing object succeeds (idempotent).
 *
 * Thread safety: a storage handle may be used from several threads at once.
 * Ownership: storage_open returns a handle the caller frees with
 * storage_close; buffers passed in stay the caller's.
 */
#ifndef OB_STORAGE_H
#define OB_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

typedef struct storage storage;

enum storage_put_flags {
    STORAGE_PUT_CREATE = 1, /* fail with OB_EEXIST if the object exists */
};

/* Called once per object by storage_list; return non-zero to stop early
 * (storage_list then returns 0).  name is relative to the storage root
 * and only valid during the call. */
typedef int (*storage_list_cb)(const char *name, uint64_t size, void *ud);

/* Driver operations; each driver fills one of these (see storage_posix.c). */
typedef struct storage_ops {
    const char *scheme; /* "file", "s3" */
    int (*put)(storage *s, const char *name, const void *data, size_t len, int flags,
               ob_err *err);
    int (*get)(storage *s, const char *name, uint64_t offset, uint64_t len, ob_buf *out,
               ob_err *err);
    int (*list)(storage *s, const char *prefix, storage_list_cb cb, void *ud, ob_err *err);
    int (*del)(storage *s, const char *name, ob_err *err);
    int (*stat)(storage *s, const char *name, uint64_t *size, ob_err *err);
    void (*close)(storage *s);
    /* Optional (NULL: the driver leaves nothing behind): remove what
     * interrupted puts left, last modified more than max_age seconds ago.
     * See storage_remove_temporaries. */
    int (*remove_temporaries)(storage *s, int64_t max_age, uint64_t *count, uint64_t *bytes,
                              ob_err *err);
} storage_ops;

/* Common header of every driver's handle. */
struct storage {
    const storage_ops *ops;
    char *url; /* as given, for messages */
};

/* Open a storage from a URL: "/abs/path", "file:///abs/path".  (s3:// comes
 * with the S3 driver.)  create: make the root directory if missing. */
int storage_open(const char *url, int create, storage **out, ob_err *err);
void storage_close(storage *s);

/* Store an object (atomic, durable; see above). */
int storage_put(storage *s, const char *name, const void *data, size_t len, int flags,
                ob_err *err);
/* Read bytes [offset, offset + len) of an object into out (replacing its
 * contents); len == 0 means "to the end".  Reading past the end fails with
 * OB_ECORRUPT (a truncated object) naming the object. */
int storage_get(storage *s, const char *name, uint64_t offset, uint64_t len, ob_buf *out,
                ob_err *err);
int storage_list(storage *s, const char *prefix, storage_list_cb cb, void *ud, ob_err *err);
int storage_delete(storage *s, const char *name, ob_err *err);
/* Size of an object; OB_ENOTFOUND if it does not exist. */
int storage_stat(storage *s, const char *name, uint64_t *size, ob_err *err);
/* Remove leftovers of puts that were killed midway (posix: the hidden
 * ".tmp-*" files) that were last modified more than max_age seconds ago;
 * younger ones may belong to a put still running.  Counts what it removed
 * (count, bytes may not be NULL).  prune calls this. */
int storage_remove_temporaries(storage *s, int64_t max_age, uint64_t *count, uint64_t *bytes,
                               ob_err *err);

/* Every name under a prefix, collected by storage_list (pass
 * storage_names_collect as the callback and a zeroed storage_names). */
typedef struct storage_names {
    char **v;
    uint64_t *size;
    size_t n;
} storage_names;
int storage_names_collect(const char *name, uint64_t size, void *names);
void storage_names_free(storage_names *l);

/* The posix driver (also used directly by tests). */
int storage_posix_open(const char *root, int create, storage **out, ob_err *err);

#endif
