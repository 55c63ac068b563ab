/*
 * err.h — error values that carry a message a user can act on.
 *
 * Every fallible function in opsbackup returns 0 on success and -1 on failure
 * and fills an ob_err supplied by the caller.  The message is owned by the
 * ob_err and freed by ob_err_clear(); a caller that wants to add context
 * ("reading pack data/ab/abcd: ") uses ob_err_prefix() so the final text
 * reads from the outermost operation down to the root cause.
 *
 * There is deliberately no thread-local "last error": errors travel with the
 * call, so worker threads can report failures without shared state.
 */
#ifndef OB_ERR_H
#define OB_ERR_H

#include <stdarg.h>

/* Error classes.  They decide exit codes and let callers react (a missing
 * object during archive-get is an answer, not a failure). */
enum ob_err_code {
    OB_OK = 0,
    OB_EFAIL = 1,      /* generic failure */
    OB_EUSAGE = 2,     /* bad arguments or configuration */
    OB_ENOTFOUND = 3,  /* object / file / snapshot does not exist */
    OB_EEXIST = 4,     /* object already exists (create-only put) */
    OB_ECORRUPT = 5,   /* authentication failed, bad magic, truncated data */
    OB_EAUTH = 6,      /* wrong password: no key slot opens */
    OB_EIO = 7,        /* I/O error from the OS or the network */
    OB_ELOCKED = 8,    /* repository locked by someone else */
    OB_EUNSAFE = 9,    /* refused: hostile path, would write outside target */
    OB_ENOSPACE = 10,  /* disk full / quota */
};

typedef struct ob_err {
    int code;   /* enum ob_err_code; OB_OK when no error */
    char *msg;  /* heap-owned, NULL when code == OB_OK */
} ob_err;

#define OB_ERR_INIT {OB_OK, 0}

/* Set the error (replacing any previous one).  Always returns -1 so it can
 * be used as `return ob_err_set(err, OB_EIO, "...")`.  err may be NULL. */
int ob_err_set(ob_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like ob_err_set, appending ": strerror(errnum)" and mapping errnum to a
 * class (ENOENT -> OB_ENOTFOUND, ENOSPC -> OB_ENOSPACE, else OB_EIO). */
int ob_err_errno(ob_err *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepend context to an existing message: "context: old message".  Returns -1. */
int ob_err_prefix(ob_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Move src into dst (dst is cleared first; src is left empty). */
void ob_err_move(ob_err *dst, ob_err *src);

void ob_err_clear(ob_err *err);

/* The message, or "" when there is none.  Never NULL. */
const char *ob_err_msg(const ob_err *err);

#endif
