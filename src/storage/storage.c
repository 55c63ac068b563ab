/*
 * storage.c — URL parsing and the driver-independent wrappers.
 *
 * The wrappers exist so that every storage error reads the same way no
 * matter which driver produced it:
 *
 *     storage /x/repo: object data/ab/ab12…: <what the driver said>
 *
 * A driver is free to name the object itself (the posix driver does, since
 * it knows which step failed); the wrapper only adds what is missing, so the
 * name never appears twice.
 */
#include "storage/storage.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/log.h"

/* ---- crash-test hook (storage.h, "Fault injection hook") ----
 *
 * It lives here, in the driver-independent wrappers, so the same kill
 * points exist on every backend, and it sits at the one place where the
 * repository's durable state changes.  Per handle, not global: the state
 * is born and dies with the storage it counts. */
struct storage_fault {
    atomic_ulong n;        /* mutations started on this handle */
    unsigned long kill_at; /* 0: never kill */
    int after;             /* kill once the driver returned, not before */
    char *count_file;      /* NULL: no record */
};

static void storage_fault_attach(storage *s)
{
    const char *cf = getenv("OPSBACKUP_FAULT_COUNT_FILE");
    const char *ka = getenv("OPSBACKUP_FAULT_KILL_AT");
    const char *when = getenv("OPSBACKUP_FAULT_KILL_WHEN");
    if ((!cf || !*cf) && (!ka || !*ka))
        return;
    unsigned long kill_at = 0;
    if (ka && *ka) {
        char *end;
        errno = 0;
        kill_at = strtoul(ka, &end, 10);
        if (errno || *end || kill_at == 0) {
            /* A typo must not silently turn a crash test into a no-op
             * that "passes"; it is loud instead. */
            ob_warn("OPSBACKUP_FAULT_KILL_AT=%s is not a positive number; the hook stays off",
                    ka);
            kill_at = 0;
        }
    }
    struct storage_fault *f = ob_xcalloc(1, sizeof *f);
    atomic_init(&f->n, 0);
    f->kill_at = kill_at;
    f->after = when && strcmp(when, "after") == 0;
    f->count_file = cf && *cf ? ob_xstrdup(cf) : NULL;
    s->fault = f;
}

static void storage_fault_free(storage *s)
{
    if (s && s->fault) {
        free(s->fault->count_file);
        free(s->fault);
        s->fault = NULL;
    }
}

/* One line per event, in one write() on an O_APPEND descriptor, so lines
 * from several threads and processes never interleave. */
static void storage_fault_record(storage *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void storage_fault_record(storage *s, const char *fmt, ...)
{
    if (!s->fault->count_file)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    if ((size_t)len > sizeof line - 2)
        len = (int)sizeof line - 2;
    line[len++] = '\n';
    int fd = open(s->fault->count_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    ssize_t w = write(fd, line, (size_t)len);
    (void)w; /* best effort: the record is for the test harness only */
    close(fd);
}

static void storage_fault_kill(storage *s, unsigned long n, const char *when)
{
    storage_fault_record(s, "KILL\t%lu\t%s\t%s", n, when, s->url);
    raise(SIGKILL);
}

/* Called before every mutation; returns its number on this handle (0 when
 * the hook is off) for storage_fault_after. */
static unsigned long storage_fault_before(storage *s, const char *op, const char *name)
{
    if (!s->fault)
        return 0;
    unsigned long n = atomic_fetch_add(&s->fault->n, 1) + 1;
    storage_fault_record(s, "%lu\t%s\t%s\t%s", n, op, name ? name : "-", s->url);
    if (n == s->fault->kill_at && !s->fault->after)
        storage_fault_kill(s, n, "before");
    return n;
}

static void storage_fault_after(storage *s, unsigned long n)
{
    if (s->fault && n && n == s->fault->kill_at && s->fault->after)
        storage_fault_kill(s, n, "after");
}

/* Object names come from repository code, but a corrupt or hostile index
 * could still smuggle bytes into them; never echo control characters into a
 * message that ends up on somebody's terminal. */
static char *storage_printable(const char *s)
{
    ob_buf b = OB_BUF_INIT;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            ob_buf_printf(&b, "\\x%02x", *p);
        else
            ob_buf_putc(&b, *p);
    }
    return (char *)ob_buf_steal(&b, NULL);
}

/* Make a failed operation's message name the storage and (when there is
 * one) the object, without repeating what the driver already said. */
static int storage_wrap_err(storage *s, const char *what, const char *name, ob_err *err)
{
    if (!err)
        return -1;
    if (err->code == OB_OK) /* a driver that forgot to fill err */
        ob_err_set(err, OB_EFAIL, "%s failed", what);
    if (name) {
        char *pname = storage_printable(name);
        /* Drivers phrase it "object NAME…"; the bare name is not enough
         * ("config" could be part of any path). */
        char *needle = ob_xasprintf("object %s", pname);
        if (!strstr(ob_err_msg(err), needle))
            ob_err_prefix(err, "%s", needle);
        free(needle);
        free(pname);
    }
    char *head = ob_xasprintf("storage %s:", s->url);
    if (strncmp(ob_err_msg(err), head, strlen(head)) != 0)
        ob_err_prefix(err, "storage %s", s->url);
    free(head);
    return -1;
}

static int storage_check_handle(storage *s, const char *name, ob_err *err)
{
    if (!s || !s->ops)
        return ob_err_set(err, OB_EUSAGE, "storage: no storage handle");
    if (!name)
        return ob_err_set(err, OB_EUSAGE, "storage %s: missing object name", s->url);
    return 0;
}

static int storage_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* file:// URLs are percent-encoded (RFC 8089), so a directory with a space
 * is file:///srv/my%20repo.  A NUL or a malformed escape is refused rather
 * than guessed at. */
static int storage_url_decode(const char *url, const char *in, char **out, ob_err *err)
{
    ob_buf b = OB_BUF_INIT;
    for (const char *p = in; *p; p++) {
        if (*p != '%') {
            ob_buf_putc(&b, (uint8_t)*p);
            continue;
        }
        int hi = storage_hexval((unsigned char)p[1]);
        int lo = hi < 0 ? -1 : storage_hexval((unsigned char)p[2]);
        if (hi < 0 || lo < 0) {
            ob_buf_free(&b);
            return ob_err_set(err, OB_EUSAGE,
                              "storage URL %s: malformed %%-escape (write a literal %% as %%25)",
                              url);
        }
        if (hi == 0 && lo == 0) {
            ob_buf_free(&b);
            return ob_err_set(err, OB_EUSAGE, "storage URL %s: %%00 is not allowed in a path",
                              url);
        }
        ob_buf_putc(&b, (uint8_t)(hi << 4 | lo));
        p += 2;
    }
    *out = (char *)ob_buf_steal(&b, NULL);
    return 0;
}

/* "s3://bucket/prefix?query": split and hand to the S3 driver, which
 * validates each part (it knows the naming rules). */
static int storage_open_s3(const char *url, const storage_opts *opts, int create, storage **out,
                           ob_err *err)
{
    const char *rest = url + 5;
    const char *q = strchr(rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen(rest);
    char *path = ob_xstrndup(rest, plen);
    char *slash = strchr(path, '/');
    const char *prefix = "";
    if (slash) {
        *slash = '\0';
        prefix = slash + 1;
    }
    int rc = storage_s3_open(url, path, prefix, q ? q + 1 : NULL, opts, create, out, err);
    free(path);
    if (rc == 0)
        storage_fault_attach(*out);
    return rc;
}

int storage_open(const char *url, int create, storage **out, ob_err *err)
{
    return storage_open_opts(url, NULL, create, out, err);
}

int storage_open_opts(const char *url, const storage_opts *opts, int create, storage **out,
                      ob_err *err)
{
    *out = NULL;
    if (!url || !*url)
        return ob_err_set(err, OB_EUSAGE,
                          "no repository location given (use /abs/path, file:///abs/path or "
                          "s3://bucket/prefix)");

    char *path = NULL;
    if (url[0] == '/') {
        path = ob_xstrdup(url);
    } else if (strncasecmp(url, "file://", 7) == 0) {
        const char *rest = url + 7;
        /* "localhost" is the one host RFC 8089 lets mean "this machine". */
        if (strncasecmp(rest, "localhost/", 10) == 0)
            rest += 9;
        if (rest[0] != '/')
            return ob_err_set(err, OB_EUSAGE,
                              "storage URL %s: file:// URLs must name a local absolute path "
                              "(file:///abs/path); remote hosts are not supported",
                              url);
        if (storage_url_decode(url, rest, &path, err) < 0)
            return -1;
    } else if (strncasecmp(url, "s3://", 5) == 0) {
        return storage_open_s3(url, opts, create, out, err);
    } else {
        const char *colon = strstr(url, "://");
        const char *slash = strchr(url, '/');
        if (colon && (!slash || colon < slash))
            return ob_err_set(err, OB_EUSAGE,
                              "storage URL %s: unsupported scheme \"%.*s\" (supported: "
                              "/abs/path, file:///abs/path, s3://bucket/prefix)",
                              url, (int)(colon - url), url);
        /* A relative path would silently change meaning with the working
         * directory (cron, systemd units), so it is refused. */
        return ob_err_set(err, OB_EUSAGE,
                          "repository location %s is a relative path; give an absolute path "
                          "(/abs/path or file:///abs/path)",
                          url);
    }

    storage *s = NULL;
    int rc = storage_posix_open(path, create, &s, err);
    free(path);
    if (rc < 0)
        return -1;
    /* Messages quote the location the way the user wrote it. */
    free(s->url);
    s->url = ob_xstrdup(url);
    storage_fault_attach(s);
    *out = s;
    return 0;
}

void storage_close(storage *s)
{
    if (s) {
        storage_fault_free(s);
        s->ops->close(s);
    }
}

int storage_put(storage *s, const char *name, const void *data, size_t len, int flags,
                ob_err *err)
{
    if (storage_check_handle(s, name, err) < 0)
        return -1;
    if (!data && len)
        return ob_err_set(err, OB_EUSAGE, "storage %s: object %s: no data to store", s->url,
                          name);
    unsigned long fn = storage_fault_before(s, "put", name);
    int rc = s->ops->put(s, name, data, len, flags, err);
    storage_fault_after(s, fn);
    if (rc < 0)
        return storage_wrap_err(s, "put", name, err);
    return 0;
}

/* Drivers without write_* ops get the object buffered here and put whole. */
struct storage_write {
    storage *s;
    char *name;
    void *state; /* the driver's, or NULL when buffered */
    ob_buf buf;  /* buffered: everything appended so far */
    uint64_t size;
};

int storage_write_open(storage *s, const char *name, storage_write **out, ob_err *err)
{
    *out = NULL;
    if (storage_check_handle(s, name, err) < 0)
        return -1;
    storage_write *w = ob_xcalloc(1, sizeof *w);
    w->s = s;
    w->name = ob_xstrdup(name);
    if (s->ops->write_open && s->ops->write_open(s, name, &w->state, err) < 0) {
        free(w->name);
        free(w);
        return storage_wrap_err(s, "put", name, err);
    }
    *out = w;
    return 0;
}

int storage_write_append(storage_write *w, const void *data, size_t len, ob_err *err)
{
    if (len == 0)
        return 0;
    if (!w->state) {
        ob_buf_append(&w->buf, data, len);
    } else if (w->s->ops->write_append(w->s, w->state, data, len, err) < 0) {
        return storage_wrap_err(w->s, "put", w->name, err);
    }
    w->size += len;
    return 0;
}

uint64_t storage_write_size(const storage_write *w) { return w->size; }

static void storage_write_free(storage_write *w)
{
    ob_buf_free(&w->buf);
    free(w->name);
    free(w);
}

int storage_write_commit(storage_write *w, int flags, ob_err *err)
{
    storage *s = w->s;
    int rc;
    if (!w->state) {
        rc = storage_put(s, w->name, w->buf.data, w->buf.len, flags, err);
    } else {
        /* The object becomes visible here, so this is where a put counts
         * for the crash tests: a kill before it leaves only a temporary. */
        unsigned long fn = storage_fault_before(s, "put", w->name);
        rc = s->ops->write_commit(s, w->state, flags, err);
        w->state = NULL;
        storage_fault_after(s, fn);
        if (rc < 0)
            storage_wrap_err(s, "put", w->name, err);
    }
    storage_write_free(w);
    return rc;
}

void storage_write_abort(storage_write *w)
{
    if (!w)
        return;
    if (w->state)
        w->s->ops->write_abort(w->s, w->state);
    storage_write_free(w);
}

int storage_get(storage *s, const char *name, uint64_t offset, uint64_t len, ob_buf *out,
                ob_err *err)
{
    if (storage_check_handle(s, name, err) < 0)
        return -1;
    if (!out)
        return ob_err_set(err, OB_EUSAGE, "storage %s: get without an output buffer", s->url);
    ob_buf_reset(out);
    if (s->ops->get(s, name, offset, len, out, err) < 0) {
        /* Never hand back half an object. */
        ob_buf_reset(out);
        return storage_wrap_err(s, "get", name, err);
    }
    return 0;
}

int storage_getv(storage *s, const char *name, uint64_t offset, const struct iovec *iov,
                 size_t n, ob_err *err)
{
    if (storage_check_handle(s, name, err) < 0)
        return -1;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0; /* nothing asked: storage_get would read to the end */
    if (s->ops->getv) {
        if (s->ops->getv(s, name, offset, iov, n, err) < 0)
            return storage_wrap_err(s, "get", name, err);
        return 0;
    }
    ob_buf b = OB_BUF_INIT;
    int rc = storage_get(s, name, offset, total, &b, err);
    for (size_t i = 0, at = 0; rc == 0 && i < n; at += iov[i].iov_len, i++)
        memcpy(iov[i].iov_base, b.data + at, iov[i].iov_len);
    ob_buf_free(&b);
    return rc;
}

int storage_remote(const storage *s)
{
    return s && s->ops && s->ops->scheme && strcmp(s->ops->scheme, "file") != 0;
}

void storage_set_stop(storage *s, int (*stop)(void *ud), void *ud)
{
    s->stop = stop;
    s->stop_ud = ud;
}

int storage_stop_wanted(const storage *s)
{
    return s->stop && s->stop(s->stop_ud) != 0;
}

int storage_list(storage *s, const char *prefix, storage_list_cb cb, void *ud, ob_err *err)
{
    if (!s || !s->ops)
        return ob_err_set(err, OB_EUSAGE, "storage: no storage handle");
    if (!cb)
        return ob_err_set(err, OB_EUSAGE, "storage %s: list without a callback", s->url);
    if (!prefix)
        prefix = "";
    if (s->ops->list(s, prefix, cb, ud, err) < 0)
        return storage_wrap_err(s, "list", NULL, err);
    return 0;
}

int storage_delete(storage *s, const char *name, ob_err *err)
{
    if (storage_check_handle(s, name, err) < 0)
        return -1;
    unsigned long fn = storage_fault_before(s, "delete", name);
    int rc = s->ops->del(s, name, err);
    storage_fault_after(s, fn);
    if (rc < 0)
        return storage_wrap_err(s, "delete", name, err);
    return 0;
}

int storage_delete_many(storage *s, const char *const *names, size_t n, ob_err *err)
{
    if (!s || !s->ops)
        return ob_err_set(err, OB_EUSAGE, "storage: no storage handle");
    for (size_t i = 0; i < n; i++)
        if (storage_check_handle(s, names[i], err) < 0)
            return -1;
    if (n == 0)
        return 0;
    if (!s->ops->del_many) {
        for (size_t i = 0; i < n; i++)
            if (storage_delete(s, names[i], err) < 0)
                return -1;
        return 0;
    }
    unsigned long fn = storage_fault_before(s, "delete_many", names[0]);
    int rc = s->ops->del_many(s, names, n, err);
    storage_fault_after(s, fn);
    if (rc < 0)
        return storage_wrap_err(s, "delete", NULL, err);
    return 0;
}

int storage_stat(storage *s, const char *name, uint64_t *size, ob_err *err)
{
    if (storage_check_handle(s, name, err) < 0)
        return -1;
    uint64_t dummy;
    if (s->ops->stat(s, name, size ? size : &dummy, err) < 0)
        return storage_wrap_err(s, "stat", name, err);
    return 0;
}

int storage_remove_temporaries(storage *s, int64_t max_age, uint64_t *count, uint64_t *bytes,
                               ob_err *err)
{
    *count = *bytes = 0;
    if (!s || !s->ops)
        return ob_err_set(err, OB_EUSAGE, "storage: no storage handle");
    if (!s->ops->remove_temporaries)
        return 0;
    unsigned long fn = storage_fault_before(s, "remove_temporaries", NULL);
    int rc = s->ops->remove_temporaries(s, max_age, count, bytes, err);
    storage_fault_after(s, fn);
    if (rc < 0)
        return storage_wrap_err(s, "removing temporary files", NULL, err);
    return 0;
}

int storage_names_collect(const char *name, uint64_t size, void *names)
{
    storage_names *l = names;
    l->v = ob_xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->size = ob_xrealloc(l->size, (l->n + 1) * sizeof *l->size);
    l->v[l->n] = ob_xstrdup(name);
    l->size[l->n++] = size;
    return 0;
}

void storage_names_free(storage_names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    free(l->size);
    memset(l, 0, sizeof *l);
}
