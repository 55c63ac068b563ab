/*
 * check.c — see check.h.  Order: index files, packs (listing and sizes),
 * with --read-data every pack's contents, then the snapshots' trees, so a
 * tree walk knows every blob that cannot be read and can name the files
 * and snapshots that lost data.
 */
#include "repo/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repo/index.h"
#include "repo/pack.h"
#include "repo/snapshot.h"
#include "repo/treeio.h"
#include "core/util.h"

typedef struct check_ctx {
    repo *r;
    const check_opts *o;
    check_result *res;
    repo_index *ix;          /* merged index of all readable index files */
    repo_index *seen_trees;  /* trees already checked (used as a set) */
    /* packs in storage: positions in `stored` match stored_size */
    repo_index *stored;
    uint64_t *stored_size;
    size_t nstored;
    int64_t *ix_stored;      /* per index pack: its position in `stored`, -1 if missing */
    repo_index *bad;         /* blobs that did not authenticate (--read-data), as a set */
} check_ctx;

static void report(check_ctx *c, int sev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(check_ctx *c, int sev, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (sev == CHECK_ERROR)
        c->res->errors++;
    else if (sev == CHECK_WARNING)
        c->res->warnings++;
    if (c->o->report)
        c->o->report(sev, msg ? msg : fmt, c->o->ud);
    free(msg);
}

static int check_indexes(check_ctx *c, ob_err *err)
{
    storage_names l = {0};
    if (storage_list(repo_storage(c->r), "index/", storage_names_collect, &l, err) < 0)
        return -1;
    ob_buf b = OB_BUF_INIT;
    for (size_t i = 0; i < l.n; i++) {
        ob_err e = OB_ERR_INIT;
        repo_index *one = repo_index_new();
        if (repo_get_object(c->r, l.v[i], REPO_OBJ_INDEX, &b, &e) < 0 ||
            repo_index_decode(one, b.data, b.len, &e) < 0) {
            report(c, CHECK_ERROR, "index file %s is damaged: %s", l.v[i], ob_err_msg(&e));
        } else {
            c->res->index_files++;
            /* Fold into the merged index, translating pack positions. */
            ob_buf enc = OB_BUF_INIT;
            repo_index_encode(one, &enc);
            repo_index_decode(c->ix, enc.data, enc.len, &e);
            ob_buf_free(&enc);
        }
        ob_err_clear(&e);
        repo_index_free(one);
    }
    ob_buf_free(&b);
    storage_names_free(&l);
    repo_index_merge(c->ix);
    return 0;
}


/* Key slots: each must match its name (a damaged slot that is not the one
 * this session opened would otherwise go unnoticed until its password is
 * the only one left). */
static int check_keys(check_ctx *c, ob_err *err)
{
    storage_names l = {0};
    if (storage_list(repo_storage(c->r), "keys/", storage_names_collect, &l, err) < 0)
        return -1;
    ob_buf b = OB_BUF_INIT;
    for (size_t i = 0; i < l.n; i++) {
        ob_err e = OB_ERR_INIT;
        if (storage_get(repo_storage(c->r), l.v[i], 0, 0, &b, &e) < 0 ||
            repo_key_name_ok(l.v[i], &b, &e) < 0)
            report(c, CHECK_ERROR, "key slot %s: %s", l.v[i], ob_err_msg(&e));
        ob_err_clear(&e);
    }
    ob_buf_free(&b);
    storage_names_free(&l);
    return 0;
}

typedef struct pack_extent_ctx {
    uint64_t *need; /* per index pack: bytes needed (max offset + length) */
} pack_extent_ctx;

static int need_visit(const index_entry *e, void *ud)
{
    pack_extent_ctx *p = ud;
    uint64_t end = (uint64_t)e->offset + e->length;
    if (end > p->need[e->pack])
        p->need[e->pack] = end;
    return 0;
}

static int check_packs(check_ctx *c, ob_err *err)
{
    storage_names l = {0};
    if (storage_list(repo_storage(c->r), "data/", storage_names_collect, &l, err) < 0)
        return -1;
    c->stored = repo_index_new();
    c->stored_size = ob_xcalloc(l.n ? l.n : 1, sizeof *c->stored_size);
    static const uint8_t no_salt[32];
    for (size_t i = 0; i < l.n; i++) {
        const char *base = strrchr(l.v[i], '/');
        base = base ? base + 1 : l.v[i];
        uint8_t id[OB_ID_LEN];
        if (ob_unhex(base, id, OB_ID_LEN) < 0) {
            report(c, CHECK_WARNING, "unexpected object %s in data/", l.v[i]);
            continue;
        }
        uint32_t pos = repo_index_add_pack(c->stored, id, no_salt);
        c->stored_size[pos] = l.size[i];
        c->nstored = repo_index_pack_count(c->stored);
    }
    storage_names_free(&l);

    size_t np = repo_index_pack_count(c->ix);
    pack_extent_ctx pe = {ob_xcalloc(np ? np : 1, sizeof(uint64_t))};
    c->ix_stored = ob_xcalloc(np ? np : 1, sizeof *c->ix_stored);
    repo_index_foreach(c->ix, need_visit, &pe);
    /* Sort-free membership: fine for thousands of packs; a hash would be
     * needed for millions (noted in the issue). */
    for (size_t i = 0; i < np; i++) {
        const index_pack *p = repo_index_pack(c->ix, (uint32_t)i);
        char *name = pack_object_name(p->id);
        int64_t s = repo_index_find_pack(c->stored, p->id);
        c->ix_stored[i] = s;
        if (s < 0)
            report(c, CHECK_ERROR,
                   "pack %s is listed in the index but missing from the repository "
                   "(the snapshots using its blobs are listed as affected; `opsbackup repair "
                   "index` drops its entries: docs/RELIABILITY.md)",
                   name);
        else if (c->stored_size[s] < pe.need[i] + 4)
            report(c, CHECK_ERROR, "pack %s is truncated: %llu bytes, index needs at least %llu",
                   name, (unsigned long long)c->stored_size[s],
                   (unsigned long long)pe.need[i] + 4);
        free(name);
    }
    for (size_t i = 0; i < c->nstored; i++)
        if (repo_index_find_pack(c->ix, repo_index_pack(c->stored, (uint32_t)i)->id) < 0) {
            char *name = pack_object_name(repo_index_pack(c->stored, (uint32_t)i)->id);
            report(c, CHECK_WARNING,
                   "pack %s is not in any index (left by an interrupted backup, or its "
                   "index file is damaged: if check reported a damaged index above, keep "
                   "this pack and run `opsbackup repair index`)",
                   name);
            free(name);
        }
    c->res->packs = np;
    c->res->blobs = repo_index_count(c->ix);
    free(pe.need);
    return 0;
}

/* Why extent x's data blob cannot be read back, or NULL if it can (as far
 * as this check knows).  version: the tree's.  Caller frees. */
static char *chunk_problem(check_ctx *c, const tree_extent *x, int version)
{
    const uint8_t *id = x->id;
    const index_entry *ie = repo_index_lookup(c->ix, id);
    if (!ie || INDEX_TYPE(ie->meta) != REPO_BLOB_DATA)
        return ob_xstrdup("is not in the index");
    /* The tree's extent must lie inside the chunk: what restore checks
     * when it has the chunk's bytes, known here from the index. */
    if (!tree_extent_fits(x, ie->raw_len))
        return ob_xasprintf("holds %u bytes, but the tree takes %u from byte %u", ie->raw_len,
                            x->len, x->skip);
    /* Restore reads a shorter version 1 extent as the chunk's first bytes
     * (FORMAT.md 12.5), but no writer made one: it is damage to report. */
    if (version < 2 && x->len != ie->raw_len)
        return ob_xasprintf("holds %u bytes, but the tree (version 1, whole chunks) says %u",
                            ie->raw_len, x->len);
    char *pname = pack_object_name(repo_index_pack(c->ix, ie->pack)->id);
    int64_t s = c->ix_stored[ie->pack];
    char *why = NULL;
    if (s < 0)
        why = ob_xasprintf("is in pack %s, which is missing", pname);
    else if (c->stored_size[s] < (uint64_t)ie->offset + ie->length + 4)
        why = ob_xasprintf("is in pack %s, which is truncated", pname);
    else if (repo_index_lookup(c->bad, id))
        why = ob_xasprintf("is damaged in pack %s", pname);
    free(pname);
    return why;
}

static void report_too_deep(check_ctx *c, const char *snap, const char *path)
{
    report(c, CHECK_ERROR,
           "snapshot %.8s, directory %s: directories nest more than %d levels deep there, the "
           "most a snapshot may hold (docs/FORMAT.md 12.6): the snapshot is damaged or was "
           "crafted, and restore refuses it",
           snap, path, TREE_MAX_DEPTH);
}

/* Walk one tree, which is at level depth of its snapshot (the root tree
 * is 0): returns how many files and directories below it lost data
 * (memoised per tree in seen_trees: raw_len holds the count, offset is 1
 * when the tree itself does not load, length the tree's height).
 * *load_failed is set when this tree cannot be read; *height is how many
 * levels of trees it has below it, as far as the walk went.  Nothing
 * below TREE_MAX_DEPTH is walked: the recursion is bounded by it. */
static uint64_t check_tree(check_ctx *c, const char *snap, const char *path,
                           const uint8_t id[OB_ID_LEN], uint32_t depth, int *load_failed,
                           uint32_t *height)
{
    const index_entry *memo = repo_index_lookup(c->seen_trees, id);
    if (memo) {
        *load_failed = memo->offset == 1;
        *height = memo->length;
        /* A tree shared with another snapshot (or place) where it sat
         * higher: it may reach too deep from here. */
        if (depth + memo->length > TREE_MAX_DEPTH) {
            report_too_deep(c, snap, path);
            return (uint64_t)memo->raw_len + 1;
        }
        return memo->raw_len;
    }
    index_entry mark;
    memset(&mark, 0, sizeof mark);
    memcpy(mark.id, id, OB_ID_LEN);
    repo_index_add(c->seen_trees, &mark);
    c->res->trees++;
    *load_failed = 0;
    *height = 0;

    tree t;
    tree_init(&t);
    ob_err e = OB_ERR_INIT;
    if (treeio_load(c->r, id, &t, &e) < 0) {
        report(c, CHECK_ERROR, "snapshot %.8s, directory %s: %s", snap, path, ob_err_msg(&e));
        ob_err_clear(&e);
        index_entry *m = repo_index_lookup_mut(c->seen_trees, id);
        m->offset = 1;
        m->raw_len = 1;
        *load_failed = 1;
        return 1;
    }
    uint64_t damaged = 0;
    for (size_t i = 0; i < t.n; i++) {
        const tree_node *n = &t.nodes[i];
        char *p = strcmp(path, "/") == 0 ? ob_xasprintf("/%s", n->name)
                                         : ob_xasprintf("%s/%s", path, n->name);
        if (n->type == TREE_DIR && depth >= TREE_MAX_DEPTH) {
            report_too_deep(c, snap, p);
            damaged++;
            if (*height < 1)
                *height = 1;
        } else if (n->type == TREE_DIR) {
            int sub_failed;
            uint32_t sub_height;
            damaged += check_tree(c, snap, p, n->subtree, depth + 1, &sub_failed, &sub_height);
            if (sub_height + 1 > *height)
                *height = sub_height + 1;
        } else if (n->type == TREE_FILE) {
            for (size_t k = 0; k < n->nextents; k++) {
                char *why = chunk_problem(c, &n->extents[k], t.version);
                if (why) {
                    char hex[OB_HEX_ID_LEN + 1];
                    ob_hex(n->extents[k].id, OB_ID_LEN, hex);
                    report(c, CHECK_ERROR, "snapshot %.8s, file %s: chunk %.16s at offset %llu %s",
                           snap, p, hex, (unsigned long long)n->extents[k].offset, why);
                    free(why);
                    damaged++;
                    break; /* once per file */
                }
            }
        }
        free(p);
    }
    tree_free(&t);
    /* Re-found: the adds below invalidated earlier pointers. */
    index_entry *m = repo_index_lookup_mut(c->seen_trees, id);
    m->raw_len = damaged > UINT32_MAX ? UINT32_MAX : (uint32_t)damaged;
    m->length = *height;
    return damaged;
}

static check_affected *result_add(check_result *res, const char *id)
{
    res->affected = ob_xrealloc(res->affected, (res->naffected + 1) * sizeof *res->affected);
    check_affected *a = &res->affected[res->naffected++];
    memset(a, 0, sizeof *a);
    snprintf(a->id, sizeof a->id, "%s", id);
    return a;
}

static check_affected *add_affected(check_ctx *c, const char *id)
{
    return result_add(c->res, id);
}

/* What the affected list says of s: when, what, and which paths. */
static void affected_describe(check_affected *a, const snapshot *s)
{
    a->time = ob_time_rfc3339(s->time_sec, s->time_nsec);
    a->kind = ob_xstrdup(s->kind);
    ob_buf paths = OB_BUF_INIT;
    for (size_t k = 0; k < s->npaths; k++) {
        if (k)
            ob_buf_append(&paths, ", ", 2);
        ob_buf_append(&paths, s->paths[k], strlen(s->paths[k]));
    }
    a->paths = ob_xstrndup(paths.len ? (const char *)paths.data : "", paths.len);
    ob_buf_free(&paths);
}

check_affected *check_result_affected(check_result *res, const snapshot *s)
{
    for (size_t i = 0; i < res->naffected; i++)
        if (strcmp(res->affected[i].id, s->id) == 0)
            return &res->affected[i];
    check_affected *a = result_add(res, s->id);
    affected_describe(a, s);
    return a;
}

static int check_snapshots(check_ctx *c, storage_names l)
{
    for (size_t i = 0; i < l.n; i++) {
        const char *base = strrchr(l.v[i], '/');
        base = base ? base + 1 : l.v[i];
        snapshot *s = NULL;
        ob_err e = OB_ERR_INIT;
        if (snapshot_load(c->r, base, &s, &e) < 0) {
            /* Removed since the listing: `forget` deletes snapshots under
             * a shared lock, so it may run beside check. */
            if (e.code == OB_ENOTFOUND) {
                ob_err_clear(&e);
                continue;
            }
            report(c, CHECK_ERROR, "snapshot %s is damaged: %s", l.v[i], ob_err_msg(&e));
            ob_err_clear(&e);
            if (strlen(base) == OB_HEX_ID_LEN)
                add_affected(c, base)->unreadable = 1;
            continue;
        }
        c->res->snapshots++;
        int root_failed = 0;
        uint32_t height;
        uint64_t damaged = check_tree(c, s->id, "/", s->tree, 0, &root_failed, &height);
        if (damaged) {
            check_affected *a = add_affected(c, s->id);
            affected_describe(a, s);
            a->damaged = damaged;
            a->unreadable = root_failed;
        }
        snapshot_free(s);
    }
    return 0;
}

static void mark_bad(check_ctx *c, const uint8_t id[OB_ID_LEN])
{
    if (repo_index_lookup(c->bad, id))
        return;
    index_entry m;
    memset(&m, 0, sizeof m);
    memcpy(m.id, id, OB_ID_LEN);
    repo_index_add(c->bad, &m);
}

typedef struct by_index_ctx {
    check_ctx *c;
    uint32_t pos;            /* the pack's position in the index */
    const char *name;
    const ob_buf *data;
    ob_buf plain;
} by_index_ctx;

/* A pack whose directory cannot be read: its blobs may still be whole, and
 * restore reads them through the index, so verify what the index says. */
static int by_index_visit(const index_entry *e, void *ud)
{
    by_index_ctx *b = ud;
    if (e->pack != b->pos)
        return 0;
    check_ctx *c = b->c;
    ob_err e2 = OB_ERR_INIT;
    const index_pack *p = repo_index_pack(c->ix, e->pack);
    if ((uint64_t)e->offset + e->length > b->data->len)
        ob_err_set(&e2, OB_ECORRUPT, "it ends past the end of the pack");
    else
        pack_open_blob(c->r, p->salt, e, b->data->data + e->offset, e->length, &b->plain, &e2);
    if (e2.code != OB_OK) {
        char hex[OB_HEX_ID_LEN + 1];
        ob_hex(e->id, OB_ID_LEN, hex);
        report(c, CHECK_ERROR, "pack %s: blob %.16s at offset %u: %s", b->name, hex, e->offset,
               ob_err_msg(&e2));
        mark_bad(c, e->id);
    } else {
        c->res->blobs_read++;
    }
    ob_err_clear(&e2);
    return 0;
}

static void read_pack(check_ctx *c, size_t idx)
{
    const uint8_t *pid = repo_index_pack(c->stored, (uint32_t)idx)->id;
    char *name = pack_object_name(pid);
    ob_buf data = OB_BUF_INIT, plain = OB_BUF_INIT;
    ob_err e = OB_ERR_INIT;
    pack_blob *blobs = NULL;
    size_t nblobs = 0;
    uint8_t salt[32];
    if (storage_get(repo_storage(c->r), name, 0, 0, &data, &e) < 0 ||
        pack_read_directory(c->r, data.data, data.len, salt, &blobs, &nblobs, &e) < 0) {
        report(c, CHECK_ERROR, "pack %s: %s", name, ob_err_msg(&e));
        int64_t pos = repo_index_find_pack(c->ix, pid);
        if (e.code == OB_ECORRUPT && pos >= 0) {
            by_index_ctx b = {c, (uint32_t)pos, name, &data, OB_BUF_INIT};
            repo_index_foreach(c->ix, by_index_visit, &b);
            ob_buf_free(&b.plain);
        }
        goto out;
    }
    c->res->packs_read++;
    for (size_t i = 0; i < nblobs; i++) {
        index_entry ie;
        memcpy(ie.id, blobs[i].id, OB_ID_LEN);
        ie.offset = blobs[i].offset;
        ie.length = blobs[i].length;
        ie.raw_len = blobs[i].raw_len;
        ie.meta = INDEX_META(i, blobs[i].comp, blobs[i].type);
        ie.pack = 0;
        if (pack_open_blob(c->r, salt, &ie, data.data + ie.offset, ie.length, &plain, &e) < 0) {
            char hex[OB_HEX_ID_LEN + 1];
            ob_hex(ie.id, OB_ID_LEN, hex);
            report(c, CHECK_ERROR, "pack %s: blob %.16s at offset %u: %s", name, hex, ie.offset,
                   ob_err_msg(&e));
            ob_err_clear(&e);
            mark_bad(c, ie.id);
            continue;
        }
        c->res->blobs_read++;
        const index_entry *x = repo_index_lookup(c->ix, ie.id);
        if (x) {
            const index_pack *xp = repo_index_pack(c->ix, x->pack);
            if (memcmp(xp->id, pid, OB_ID_LEN) == 0 &&
                (x->offset != ie.offset || x->length != ie.length))
                report(c, CHECK_ERROR, "pack %s: index disagrees with the pack about blob at %u",
                       name, ie.offset);
        }
    }
out:
    ob_err_clear(&e);
    free(blobs);
    ob_buf_free(&data);
    ob_buf_free(&plain);
    free(name);
}

int repo_check(repo *r, const check_opts *o, check_result *res, ob_err *err)
{
    memset(res, 0, sizeof *res);
    check_ctx c;
    memset(&c, 0, sizeof c);
    c.r = r;
    c.o = o;
    c.res = res;
    /* Trees are read through the repository's index: give it the one this
     * check builds, so a damaged index file does not stop the rest. */
    c.ix = repo_index_new();
    repo_set_index(r, c.ix);
    c.seen_trees = repo_index_new();
    c.bad = repo_index_new();
    /* Listing order matters while backups run: a snapshot is written only
     * after its index, and an index only after its packs.  Listing
     * snapshots first, then indexes, then packs means everything a listed
     * snapshot needs was already there when its level was listed. */
    storage_names snaps = {0};
    int rc = storage_list(repo_storage(r), "snapshots/", storage_names_collect, &snaps, err);
    if (rc == 0)
        rc = check_keys(&c, err);
    if (rc == 0)
        rc = check_indexes(&c, err);
    if (rc == 0)
        rc = check_packs(&c, err);
    if (rc == 0 && o->read_data) {
        double pct = o->subset_pct > 0 && o->subset_pct < 100 ? o->subset_pct : 100;
        uint64_t total = 0, done = 0, packs = 0;
        for (size_t i = 0; pct == 100 && i < c.nstored; i++)
            total += c.stored_size[i];
        for (size_t i = 0; i < c.nstored; i++) {
            if (pct < 100) {
                uint8_t rnd;
                ob_random(&rnd, 1, NULL);
                if ((double)rnd * 100.0 / 256.0 >= pct)
                    continue;
            }
            read_pack(&c, i);
            done += c.stored_size[i];
            if (o->progress)
                o->progress(done, total, ++packs, o->ud);
        }
    }
    if (rc == 0)
        rc = check_snapshots(&c, snaps);
    storage_names_free(&snaps);
    repo_index_free(c.seen_trees);
    repo_index_free(c.bad);
    free(c.ix_stored);
    repo_index_free(c.stored);
    free(c.stored_size);
    return rc;
}

void check_result_free(check_result *res)
{
    for (size_t i = 0; i < res->naffected; i++) {
        free(res->affected[i].time);
        free(res->affected[i].kind);
        free(res->affected[i].paths);
    }
    free(res->affected);
    res->affected = NULL;
    res->naffected = 0;
}
