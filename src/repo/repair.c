/*
 * repair.c — rebuild the index from the packs; see repair.h for the rules
 * and the order of the steps.
 */
#include "repo/repair.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "repo/index.h"
#include "repo/lock.h"
#include "repo/pack.h"

typedef struct repair_ctx {
    repo *r;
    const repair_opts *o;
    repair_stats *st;
    storage_names old_files;  /* index files listed (the ones step 3 deletes) */
    repo_index *old;          /* union of the readable old index files */
    repo_index *batch;        /* the new index file being filled */
    char (*new_names)[OB_HEX_ID_LEN + 1]; /* new index files written so far */
    size_t nnew;              /* written, or planned under dry_run */
    ob_buf plain;             /* scratch for blob plaintexts */
} repair_ctx;

static void report(repair_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(repair_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (c->o->report)
        c->o->report(msg ? msg : fmt, c->o->ud);
    else
        ob_warn("%s", msg ? msg : fmt);
    free(msg);
}

static const char *base_name(const char *name)
{
    const char *b = strrchr(name, '/');
    return b ? b + 1 : name;
}

/* The old index, for salvaging packs with a damaged directory and for the
 * statistics.  An unreadable old file is reported, not fatal: rebuilding
 * without it is what repair is for. */
static int load_old(repair_ctx *c, ob_err *err)
{
    if (storage_list(repo_storage(c->r), "index/", storage_names_collect, &c->old_files, err) < 0)
        return ob_err_prefix(err, "listing index files");
    c->old = repo_index_new();
    ob_buf b = OB_BUF_INIT;
    for (size_t i = 0; i < c->old_files.n; i++) {
        ob_err e = OB_ERR_INIT;
        repo_index *one = repo_index_new();
        if (repo_get_object(c->r, c->old_files.v[i], REPO_OBJ_INDEX, &b, &e) < 0 ||
            repo_index_decode(one, b.data, b.len, &e) < 0) {
            if (e.code != OB_ECORRUPT) {
                /* Not damage (storage trouble): stop, or its packs would be
                 * judged on incomplete knowledge. */
                ob_err_move(err, &e);
                repo_index_free(one);
                ob_buf_free(&b);
                return ob_err_prefix(err, "reading index file %s; repair wrote nothing",
                                     c->old_files.v[i]);
            }
            report(c, "index file %s is damaged (it will be replaced): %s", c->old_files.v[i],
                   ob_err_msg(&e));
            c->st->index_old_damaged++;
        } else {
            /* Decoding the payload into the union directly would leave a
             * half-decoded file behind when it fails midway. */
            repo_index_decode(c->old, b.data, b.len, &e);
        }
        ob_err_clear(&e);
        repo_index_free(one);
    }
    ob_buf_free(&b);
    repo_index_merge(c->old);
    c->st->index_old = c->old_files.n;
    return 0;
}

/* Write the batch as a new index file (step 2, done as batches fill so
 * only one is in memory: a 10M-blob repair held all of them, ~50 B per
 * blob, beside the old index).  Old index files are deleted only after the
 * last one is written. */
static int flush_batch(repair_ctx *c, ob_err *err)
{
    if (!c->batch || repo_index_count(c->batch) == 0)
        return 0;
    int rc = 0;
    if (!c->o->dry_run) {
        ob_buf payload = OB_BUF_INIT;
        repo_index_encode(c->batch, &payload);
        c->new_names = ob_xrealloc(c->new_names, (c->nnew + 1) * sizeof *c->new_names);
        rc = repo_put_object(c->r, "index", REPO_OBJ_INDEX, payload.data, payload.len,
                             c->new_names[c->nnew], err);
        ob_buf_free(&payload);
        if (rc < 0)
            ob_err_prefix(err, "writing a new index file");
    }
    if (rc == 0)
        c->nnew++;
    repo_index_free(c->batch);
    c->batch = NULL;
    return rc;
}

/* Verify one blob of a pack held in data; add it to the new index if it
 * authenticates.  Returns 1 if added, 0 if not (reported). */
static int take_blob(repair_ctx *c, const char *pname, const uint8_t pid[OB_ID_LEN],
                     const uint8_t salt[32], const index_entry *e, const ob_buf *data)
{
    char hex[OB_HEX_ID_LEN + 1];
    ob_hex(e->id, OB_ID_LEN, hex);
    ob_err be = OB_ERR_INIT;
    if ((uint64_t)e->offset + e->length > data->len)
        ob_err_set(&be, OB_ECORRUPT, "it ends at %llu, past the end of the pack (%zu bytes)",
                   (unsigned long long)e->offset + e->length, data->len);
    else
        pack_open_blob(c->r, salt, e, data->data + e->offset, e->length, &c->plain, &be);
    if (be.code != OB_OK) {
        report(c, "pack %s: blob %.16s at offset %u is damaged and left out of the index: %s",
               pname, hex, e->offset, ob_err_msg(&be));
        ob_err_clear(&be);
        c->st->blobs_bad++;
        return 0;
    }
    if (!c->batch)
        c->batch = repo_index_new();
    index_entry n = *e;
    n.pack = repo_index_add_pack(c->batch, pid, salt);
    repo_index_add(c->batch, &n);
    c->st->blobs++;
    return 1;
}

typedef struct salvage_ctx {
    repair_ctx *c;
    uint32_t pos;           /* the pack's position in the old index */
    const char *pname;
    const uint8_t *pid;
    const uint8_t *salt;
    const ob_buf *data;
    size_t good, bad;
} salvage_ctx;

static int salvage_visit(const index_entry *e, void *ud)
{
    salvage_ctx *s = ud;
    if (e->pack != s->pos)
        return 0;
    if (take_blob(s->c, s->pname, s->pid, s->salt, e, s->data))
        s->good++;
    else
        s->bad++;
    return 0;
}

/* One pack: read it whole, authenticate its directory and every blob. */
static int scan_pack(repair_ctx *c, const char *pname, ob_err *err)
{
    uint8_t pid[OB_ID_LEN];
    const char *b = base_name(pname);
    if (strlen(b) != OB_HEX_ID_LEN || ob_unhex(b, pid, OB_ID_LEN) < 0) {
        report(c, "leaving %s alone: not a pack name", pname);
        return 0;
    }
    c->st->packs++;
    int64_t oldpos = repo_index_find_pack(c->old, pid);
    if (oldpos < 0)
        c->st->packs_unindexed++;

    ob_buf data = OB_BUF_INIT;
    if (storage_get(repo_storage(c->r), pname, 0, 0, &data, err) < 0) {
        ob_buf_free(&data);
        return ob_err_prefix(err, "reading pack %s", pname);
    }
    c->st->bytes_read += data.len;
    pack_blob *blobs = NULL;
    size_t nblobs = 0, good = 0, bad = 0;
    uint8_t salt[32];
    ob_err de = OB_ERR_INIT;
    if (pack_read_directory(c->r, data.data, data.len, salt, &blobs, &nblobs, &de) == 0) {
        for (size_t i = 0; i < nblobs; i++) {
            index_entry e;
            memcpy(e.id, blobs[i].id, OB_ID_LEN);
            e.pack = 0;
            e.offset = blobs[i].offset;
            e.length = blobs[i].length;
            e.raw_len = blobs[i].raw_len;
            e.meta = INDEX_META(i, blobs[i].comp, blobs[i].type);
            if (take_blob(c, pname, pid, salt, &e, &data))
                good++;
            else
                bad++;
        }
        if (bad)
            c->st->packs_damaged++;
        else
            c->st->packs_ok++;
    } else if (oldpos >= 0) {
        /* The directory is gone (a truncated tail, a flipped byte in it),
         * but the old index still says where the blobs are: every one that
         * authenticates is as good as new. */
        report(c, "pack %s: %s; salvaging its blobs through the old index", pname,
               ob_err_msg(&de));
        const index_pack *op = repo_index_pack(c->old, (uint32_t)oldpos);
        salvage_ctx s = {c, (uint32_t)oldpos, pname, pid, op->salt, &data, 0, 0};
        repo_index_foreach(c->old, salvage_visit, &s);
        good = s.good;
        bad = s.bad;
        if (good && !bad)
            c->st->packs_salvaged++;
        else
            c->st->packs_damaged++;
    } else {
        report(c,
               "pack %s: %s, and no readable index file lists it: none of its blobs can be "
               "indexed",
               pname, ob_err_msg(&de));
        c->st->packs_damaged++;
    }
    ob_err_clear(&de);
    free(blobs);
    ob_buf_free(&data);
    if (c->batch && repo_index_count(c->batch) >= REPAIR_INDEX_BATCH)
        return flush_batch(c, err);
    return 0;
}

typedef struct missing_ctx {
    const uint8_t *stored; /* per old pack position: 1 if stored */
    uint64_t n;
} missing_ctx;

static int missing_visit(const index_entry *e, void *ud)
{
    missing_ctx *m = ud;
    if (!m->stored[e->pack])
        m->n++;
    return 0;
}

/* What the old index names that is not stored any more. */
static void count_missing(repair_ctx *c, const storage_names *packs)
{
    repo_index *stored = repo_index_new();
    static const uint8_t no_salt[32];
    for (size_t i = 0; i < packs->n; i++) {
        uint8_t id[OB_ID_LEN];
        const char *b = base_name(packs->v[i]);
        if (strlen(b) == OB_HEX_ID_LEN && ob_unhex(b, id, OB_ID_LEN) == 0)
            repo_index_add_pack(stored, id, no_salt);
    }
    size_t np = repo_index_pack_count(c->old);
    uint8_t *is_stored = ob_xcalloc(np ? np : 1, 1);
    for (size_t i = 0; i < np; i++) {
        const index_pack *p = repo_index_pack(c->old, (uint32_t)i);
        is_stored[i] = repo_index_find_pack(stored, p->id) >= 0;
        if (!is_stored[i]) {
            char *name = pack_object_name(p->id);
            report(c, "pack %s is named by the index but missing: its blobs leave the index",
                   name);
            free(name);
            c->st->packs_missing++;
        }
    }
    missing_ctx m = {is_stored, 0};
    repo_index_foreach(c->old, missing_visit, &m);
    c->st->entries_dropped = m.n;
    free(is_stored);
    repo_index_free(stored);
}

static int is_new_name(const char *name, char (*new_names)[OB_HEX_ID_LEN + 1], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(base_name(name), new_names[i]) == 0)
            return 1;
    return 0;
}

int repo_repair_index(repo *r, const repair_opts *o, repair_stats *st, ob_err *err)
{
    memset(st, 0, sizeof *st);
    repair_ctx c;
    memset(&c, 0, sizeof c);
    c.r = r;
    c.o = o;
    c.st = st;
    storage_names packs = {0};
    char **doomed = NULL;
    size_t ndoomed = 0;
    int rc = -1;

    /* Steps 1 and 2: read and decide, writing the new index files as they
     * fill.  Index files are listed before packs: with the exclusive lock
     * nothing changes meanwhile anyway. */
    if (load_old(&c, err) < 0)
        goto out;
    if (storage_list(repo_storage(r), "data/", storage_names_collect, &packs, err) < 0) {
        ob_err_prefix(err, "listing packs");
        goto out;
    }
    count_missing(&c, &packs);
    int ok = 1;
    for (size_t i = 0; i < packs.n && ok; i++)
        ok = scan_pack(&c, packs.v[i], err) == 0;
    if (ok)
        ok = flush_batch(&c, err) == 0;
    st->index_new = c.nnew;
    if (!ok) {
        if (c.nnew && !o->dry_run)
            ob_err_prefix(err, "repair stopped; the old index files were left as they were, "
                               "beside %zu new one(s) (harmless duplicates; run repair again)",
                          c.nnew);
        else
            ob_err_prefix(err, "repair wrote nothing");
        goto out;
    }
    if (o->dry_run) {
        rc = 0;
        goto out;
    }

    /* Step 3. */
    for (size_t i = 0; i < c.old_files.n; i++)
        if (!is_new_name(c.old_files.v[i], c.new_names, c.nnew)) {
            doomed = ob_xrealloc(doomed, (ndoomed + 1) * sizeof *doomed);
            doomed[ndoomed++] = c.old_files.v[i];
        }
    if (o->lock && repo_lock_lost(o->lock, err)) {
        ob_err_prefix(err, "the new index is written, but repair stopped before deleting the old "
                           "index files (harmless duplicates; run repair again)");
        goto out;
    }
    if (ndoomed && storage_delete_many(repo_storage(r), (const char *const *)doomed, ndoomed,
                                       err) < 0) {
        ob_err_prefix(err, "the new index is written, but deleting the old index files failed "
                           "(harmless duplicates; run repair again)");
        goto out;
    }
    st->index_deleted = ndoomed;
    rc = 0;
out:
    /* The in-memory index, if any, no longer matches storage. */
    repo_set_index(r, NULL);
    free(c.new_names);
    repo_index_free(c.batch);
    repo_index_free(c.old);
    ob_buf_free(&c.plain);
    storage_names_free(&c.old_files);
    storage_names_free(&packs);
    free(doomed);
    return rc;
}
