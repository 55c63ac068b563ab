/*
 * fuzz_common.c — the in-memory storage and the fixture repository the
 * fuzz targets share (see fuzz_common.h).
 */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"

typedef struct mem_obj {
    char *name;
    uint8_t *data;
    size_t len;
} mem_obj;

typedef struct memstore {
    storage base; /* first: the storage layer casts between the two */
    mem_obj *v;
    size_t n;
} memstore;

static mem_obj *mem_find(memstore *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i].name, name) == 0)
            return &m->v[i];
    return NULL;
}

static int mem_put(storage *s, const char *name, const void *data, size_t len, int flags,
                   ob_err *err)
{
    memstore *m = (memstore *)s;
    mem_obj *o = mem_find(m, name);
    if (o && (flags & STORAGE_PUT_CREATE))
        return ob_err_set(err, OB_EEXIST, "object %s exists", name);
    if (!o) {
        m->v = ob_xrealloc(m->v, (m->n + 1) * sizeof *m->v);
        o = &m->v[m->n++];
        o->name = ob_xstrdup(name);
        o->data = NULL;
    }
    free(o->data);
    o->data = ob_xmalloc(len ? len : 1);
    if (len)
        memcpy(o->data, data, len);
    o->len = len;
    return 0;
}

static int mem_get(storage *s, const char *name, uint64_t off, uint64_t len, ob_buf *out,
                   ob_err *err)
{
    mem_obj *o = mem_find((memstore *)s, name);
    if (!o)
        return ob_err_set(err, OB_ENOTFOUND, "object %s not found", name);
    if (len == 0) {
        if (off > o->len)
            return ob_err_set(err, OB_ECORRUPT, "object %s: offset past the end", name);
        len = o->len - off;
    } else if (off > o->len || len > o->len - off) {
        return ob_err_set(err, OB_ECORRUPT, "object %s is truncated", name);
    }
    ob_buf_append(out, o->data + off, (size_t)len);
    return 0;
}

static int mem_list(storage *s, const char *prefix, storage_list_cb cb, void *ud, ob_err *err)
{
    (void)err;
    memstore *m = (memstore *)s;
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < m->n; i++)
        if (strncmp(m->v[i].name, prefix, plen) == 0 && cb(m->v[i].name, m->v[i].len, ud))
            break;
    return 0;
}

static int mem_del(storage *s, const char *name, ob_err *err)
{
    (void)err;
    memstore *m = (memstore *)s;
    mem_obj *o = mem_find(m, name);
    if (o) {
        free(o->name);
        free(o->data);
        *o = m->v[--m->n];
    }
    return 0;
}

static int mem_stat(storage *s, const char *name, uint64_t *size, ob_err *err)
{
    mem_obj *o = mem_find((memstore *)s, name);
    if (!o)
        return ob_err_set(err, OB_ENOTFOUND, "object %s not found", name);
    *size = o->len;
    return 0;
}

void fuzz_memstore_clear(storage *s)
{
    memstore *m = (memstore *)s;
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].name);
        free(m->v[i].data);
    }
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

static void mem_close(storage *s)
{
    fuzz_memstore_clear(s);
    free(s->url);
    free(s);
}

static const storage_ops mem_ops = {
    .scheme = "mem",
    .put = mem_put,
    .get = mem_get,
    .list = mem_list,
    .del = mem_del,
    .stat = mem_stat,
    .close = mem_close,
};

storage *fuzz_memstore_new(void)
{
    memstore *m = ob_xcalloc(1, sizeof *m);
    m->base.ops = &mem_ops;
    m->base.url = ob_xstrdup("mem:");
    return &m->base;
}

void fuzz_quiet(void)
{
    ob_log_set_level(OB_LOG_ERROR);
}

repo *fuzz_repo(void)
{
    /* Made once and kept: libFuzzer runs inputs until the process ends,
     * and LeakSanitizer only reports what is unreachable at exit. */
    static storage *st;
    static repo *r;
    if (r)
        return r;
    fuzz_quiet();
    ob_err err = OB_ERR_INIT;
    repo_kdf_params kdf = {1024, 8, 1};
    st = fuzz_memstore_new();
    if (repo_init(st, FUZZ_PASSWORD, &kdf, NULL, &err) < 0 ||
        repo_open(st, FUZZ_PASSWORD, &r, &err) < 0) {
        fprintf(stderr, "fuzz: cannot make the fixture repository: %s\n", ob_err_msg(&err));
        abort();
    }
    return r;
}

repo *fuzz_repo_over(storage *st)
{
    repo *fx = fuzz_repo(), *r = NULL;
    uint8_t master[64];
    repo_master_key(fx, master);
    ob_buf cfg = OB_BUF_INIT;
    ob_err err = OB_ERR_INIT;
    if (storage_get(repo_storage(fx), "config", 0, 0, &cfg, &err) < 0 ||
        storage_put(st, "config", cfg.data, cfg.len, 0, &err) < 0 ||
        repo_open_with_master_key(st, master, &r, &err) < 0) {
        fprintf(stderr, "fuzz: cannot open a second repository: %s\n", ob_err_msg(&err));
        abort();
    }
    ob_buf_free(&cfg);
    return r;
}

char *fuzz_strndup(const uint8_t *data, size_t len)
{
    char *s = ob_xmalloc(len + 1);
    memcpy(s, data, len);
    s[len] = '\0';
    return s;
}
