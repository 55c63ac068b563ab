#include "core/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}

int ob_err_set(ob_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return -1;
    ob_err_clear(err);
    va_list ap;
    va_start(ap, fmt);
    err->msg = vformat(fmt, ap);
    va_end(ap);
    err->code = code ? code : OB_EFAIL;
    return -1;
}

int ob_err_errno(ob_err *err, int errnum, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    char *m = vformat(fmt, ap);
    va_end(ap);
    int code = OB_EIO;
    if (errnum == ENOENT)
        code = OB_ENOTFOUND;
    else if (errnum == ENOSPC || errnum == EDQUOT)
        code = OB_ENOSPACE;
    else if (errnum == EEXIST)
        code = OB_EEXIST;
    ob_err_set(err, code, "%s: %s", m ? m : "", strerror(errnum));
    free(m);
    return -1;
}

int ob_err_prefix(ob_err *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    char *p = vformat(fmt, ap);
    va_end(ap);
    if (!p)
        return -1;
    size_t a = strlen(p), b = err->msg ? strlen(err->msg) : 0;
    char *s = malloc(a + 2 + b + 1);
    if (s) {
        memcpy(s, p, a);
        memcpy(s + a, ": ", 2);
        if (b)
            memcpy(s + a + 2, err->msg, b);
        s[a + 2 + b] = '\0';
        free(err->msg);
        err->msg = s;
    }
    free(p);
    if (err->code == OB_OK)
        err->code = OB_EFAIL;
    return -1;
}

void ob_err_move(ob_err *dst, ob_err *src)
{
    ob_err_clear(dst);
    *dst = *src;
    src->code = OB_OK;
    src->msg = NULL;
}

void ob_err_clear(ob_err *err)
{
    if (!err)
        return;
    free(err->msg);
    err->msg = NULL;
    err->code = OB_OK;
}

const char *ob_err_msg(const ob_err *err)
{
    return err && err->msg ? err->msg : "";
}
