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
 * - del_many is optional: storage_delete_many falls back to one delete per
 *   object when a driver has none (S3 deletes up to 1000 per request).
 *
 * Thread safety: a storage handle may be used from several threads at once.
 * Ownership: storage_open returns a handle the caller frees with
 * storage_close; buffers passed in stay the caller's.
 */
#ifndef OB_STORAGE_H
#define OB_STORAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

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
    /* Optional (NULL: storage_getv goes through get and copies): bytes
     * [offset, offset + total) into the n buffers of iov, in order. */
    int (*getv)(storage *s, const char *name, uint64_t offset, const struct iovec *iov,
                size_t n, ob_err *err);
    int (*list)(storage *s, const char *prefix, storage_list_cb cb, void *ud, ob_err *err);
    int (*del)(storage *s, const char *name, ob_err *err);
    int (*stat)(storage *s, const char *name, uint64_t *size, ob_err *err);
    void (*close)(storage *s);
    /* Optional (NULL: the driver leaves nothing behind): remove what
     * interrupted puts left, last modified more than max_age seconds ago.
     * See storage_remove_temporaries. */
    int (*remove_temporaries)(storage *s, int64_t max_age, uint64_t *count, uint64_t *bytes,
                              ob_err *err);
    /* Optional (may be NULL): delete n objects; missing ones are success.
     * On failure the error names an object that could not be deleted.
     * Drivers use designated initializers, so optional ops may be added. */
    int (*del_many)(storage *s, const char *const *names, size_t n, ob_err *err);
    /* Optional, all four or none (NULL: storage_write_* keep the object in
     * memory and put it whole at commit): write an object piece by piece.
     * open returns the driver's state for the others; commit (with put's
     * flags) and abort free it, whatever they return. */
    int (*write_open)(storage *s, const char *name, void **state, ob_err *err);
    int (*write_append)(storage *s, void *state, const void *data, size_t len, ob_err *err);
    int (*write_commit)(storage *s, void *state, int flags, ob_err *err);
    void (*write_abort)(storage *s, void *state);
} storage_ops;

struct storage_fault; /* test hook, storage.c */

/* Common header of every driver's handle.  Drivers allocate it zeroed. */
struct storage {
    const storage_ops *ops;
    char *url; /* as given, for messages */
    /* Crash-test hook (see "Fault injection hook" below); NULL unless the
     * OPSBACKUP_FAULT_* variables were set when the storage was opened.
     * Owned by the handle, freed by storage_close. */
    struct storage_fault *fault;
    /* See storage_set_stop; NULL: nothing asks the storage to stop. */
    int (*stop)(void *ud);
    void *stop_ud;
};

/*
 * Settings a URL cannot (or should not) carry: where an S3 repository's
 * server is and the credentials for it.  Every field may be NULL (or -1
 * for path_style) meaning "not set here"; the S3 driver then takes the URL
 * query (endpoint, region, path-style), then the environment
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
 * AWS_DEFAULT_REGION), then its defaults (region us-east-1, endpoint
 * https://s3.REGION.amazonaws.com, virtual-hosted style on AWS (path style
 * for bucket names with dots), path style on a custom endpoint).  Ignored
 * by the posix driver.  The strings stay the caller's; the driver copies
 * what it keeps.
 */
typedef struct storage_opts {
    const char *endpoint;          /* "https://host[:port]" or "http://127.0.0.1:PORT" */
    const char *region;            /* "eu-west-1" */
    int path_style;                /* 1 path style, 0 virtual-hosted, -1 default */
    const char *access_key_id;
    const char *secret_access_key; /* never printed */
    const char *session_token;     /* sent as x-amz-security-token */
    const char *ca_file;           /* PEM bundle for private CAs; TLS stays verified */
} storage_opts;

#define STORAGE_OPTS_INIT {NULL, NULL, -1, NULL, NULL, NULL, NULL}

/* Open a storage from a URL: "/abs/path", "file:///abs/path",
 * "s3://bucket[/prefix][?endpoint=URL&region=R&path-style=true|false]".
 * create: make the root directory if missing (posix); for S3 the bucket
 * must already exist (buckets are never created).  opts may be NULL. */
int storage_open_opts(const char *url, const storage_opts *opts, int create, storage **out,
                      ob_err *err);
/* storage_open_opts without options. */
int storage_open(const char *url, int create, storage **out, ob_err *err);

void storage_close(storage *s);

/* Store an object (atomic, durable; see above). */
int storage_put(storage *s, const char *name, const void *data, size_t len, int flags,
                ob_err *err);
/*
 * Store an object written piece by piece, so a writer never holds a whole
 * pack in memory (posix writes each piece to the temporary file that commit
 * renames into place; S3 stages it in an unlinked file under $TMPDIR and
 * uploads that).  Nothing is visible under name before
 * storage_write_commit returns 0, which gives put's guarantees (atomic,
 * durable; flags as for storage_put) and counts as one put for the fault
 * hook.  commit and abort free the handle whatever happens; an abandoned
 * write leaves at most what storage_remove_temporaries removes.  A handle
 * is used by one thread at a time.
 */
typedef struct storage_write storage_write;
int storage_write_open(storage *s, const char *name, storage_write **out, ob_err *err);
int storage_write_append(storage_write *w, const void *data, size_t len, ob_err *err);
/* Bytes appended so far. */
uint64_t storage_write_size(const storage_write *w);
int storage_write_commit(storage_write *w, int flags, ob_err *err);
void storage_write_abort(storage_write *w);

/* Read bytes [offset, offset + len) of an object into out (replacing its
 * contents); len == 0 means "to the end".  Reading past the end fails with
 * OB_ECORRUPT (a truncated object) naming the object. */
int storage_get(storage *s, const char *name, uint64_t offset, uint64_t len, ob_buf *out,
                ob_err *err);
/* Read bytes [offset, offset + total) of an object, total being the sum of
 * the iov lengths, into those buffers in order: one request fills several
 * buffers (the repository's read-ahead fills its block slots and the
 * caller's buffer from one ranged GET, with no second copy).  Errors as
 * storage_get's for that range; on failure the buffers hold anything. */
int storage_getv(storage *s, const char *name, uint64_t offset, const struct iovec *iov,
                 size_t n, ob_err *err);
int storage_list(storage *s, const char *prefix, storage_list_cb cb, void *ud, ob_err *err);
int storage_delete(storage *s, const char *name, ob_err *err);
/* Delete n objects (idempotent like storage_delete), batched where the
 * driver can; on failure the error names an object that was not deleted
 * (others may or may not be). */
int storage_delete_many(storage *s, const char *const *names, size_t n, ob_err *err);
/* Size of an object; OB_ENOTFOUND if it does not exist. */
int storage_stat(storage *s, const char *name, uint64_t *size, ob_err *err);
/* Is every request a network round trip (S3), as opposed to a local file
 * read (posix)?  The repository reads ahead only on such storages. */
int storage_remote(const storage *s);
/* Give the storage a way to learn that the command is being stopped (a
 * signal the caller holds back and takes in a watcher thread, so it does
 * not interrupt a system call).  stop(ud) is called from any thread the
 * storage is used in and returns non-zero once stopping is wanted; a
 * network driver then abandons the request in flight within about a
 * second and does not retry, failing it with OB_EFAIL.  NULL stop: none
 * (the default).  A local driver does not need it: its calls return
 * promptly. */
void storage_set_stop(storage *s, int (*stop)(void *ud), void *ud);
/* Non-zero if the stop set by storage_set_stop asks to stop now. */
int storage_stop_wanted(const storage *s);
/* Remove leftovers of puts that were killed midway (posix: the hidden
 * ".tmp-*" files) that were last modified more than max_age seconds ago;
 * younger ones may belong to a put still running.  Counts what it removed
 * (count, bytes may not be NULL).  prune calls this. */
int storage_remove_temporaries(storage *s, int64_t max_age, uint64_t *count, uint64_t *bytes,
                               ob_err *err);

/*
 * Fault injection hook (tests only; docs/RELIABILITY.md "Crash testing").
 * storage_open / storage_open_opts read these variables once per handle:
 *
 *   OPSBACKUP_FAULT_COUNT_FILE=PATH  append one line per durable mutation
 *       (put, delete, delete_many, remove_temporaries) of this handle to
 *       PATH: "N<TAB>OP<TAB>OBJECT<TAB>STORAGE-URL"
 *   OPSBACKUP_FAULT_KILL_AT=N        raise SIGKILL on this process at the
 *       handle's N-th mutation (N >= 1), before it reaches the driver, or
 *       after the driver returned when
 *   OPSBACKUP_FAULT_KILL_WHEN=after  (default "before").
 *
 * The counter is per handle (atomic: handles are shared between threads),
 * so a process with two handles (copy, archive-push to several
 * repositories) is killed at whichever reaches N first.  Unset, the hook
 * costs one NULL test per mutation.
 */

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

/* The S3 driver (storage_s3.c).  bucket and prefix come from the URL
 * (prefix without leading '/', may be ""); query is the URL's query string
 * without '?', or NULL.  url is kept for messages. */
int storage_s3_open(const char *url, const char *bucket, const char *prefix, const char *query,
                    const storage_opts *opts, int create, storage **out, ob_err *err);

#endif
