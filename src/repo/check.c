#include "repo/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repo/index.h"
#include "repo/pack.h"
#include "repo/snapshot.h"
#include "repo/treeio.h"

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
    repo_index_foreach(c->ix, need_visit, &pe);
    /* Sort-free membership: fine for thousands of packs; a hash would be
     * needed for millions (noted in the issue). */
    for (size_t i = 0; i < np; i++) {
        const index_pack *p = repo_index_pack(c->ix, (uint32_t)i);
        char *name = pack_object_name(p->id);
        int64_t s = repo_index_find_pack(c->stored, p->id);
        if (s < 0)
            report(c, CHECK_ERROR,
                   "pack %s is listed in the index but missing from the repository "
                   "(snapshots using its blobs cannot be restored in full)",
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
                   "this pack)",
                   name);
            free(name);
        }
    c->res->packs = np;
    c->res->blobs = repo_index_count(c->ix);
    free(pe.need);
    return 0;
}

static void check_tree(check_ctx *c, const char *snap, const char *path,
                       const uint8_t id[OB_ID_LEN])
{
    if (repo_index_lookup(c->seen_trees, id))
        return;
    index_entry mark;
    memset(&mark, 0, sizeof mark);
    memcpy(mark.id, id, OB_ID_LEN);
    repo_index_add(c->seen_trees, &mark);
    c->res->trees++;

    tree t;
    tree_init(&t);
    ob_err e = OB_ERR_INIT;
    if (treeio_load(c->r, id, &t, &e) < 0) {
        report(c, CHECK_ERROR, "snapshot %.8s, directory %s: %s", snap, path, ob_err_msg(&e));
        ob_err_clear(&e);
        return;
    }
    for (size_t i = 0; i < t.n; i++) {
        const tree_node *n = &t.nodes[i];
        char *p = strcmp(path, "/") == 0 ? ob_xasprintf("/%s", n->name)
                                         : ob_xasprintf("%s/%s", path, n->name);
        if (n->type == TREE_DIR) {
            check_tree(c, snap, p, n->subtree);
        } else if (n->type == TREE_FILE) {
            for (size_t k = 0; k < n->nextents; k++) {
                const index_entry *ie = repo_index_lookup(c->ix, n->extents[k].id);
                if (!ie || INDEX_TYPE(ie->meta) != REPO_BLOB_DATA) {
                    char hex[OB_HEX_ID_LEN + 1];
                    ob_hex(n->extents[k].id, OB_ID_LEN, hex);
                    report(c, CHECK_ERROR,
                           "snapshot %.8s, file %s: chunk %.16s at offset %llu is not in the "
                           "index",
                           snap, p, hex, (unsigned long long)n->extents[k].offset);
                    break;
                }
            }
        }
        free(p);
    }
    tree_free(&t);
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
            continue;
        }
        c->res->snapshots++;
        check_tree(c, s->id, "/", s->tree);
        snapshot_free(s);
    }
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
    /* Listing order matters while backups run: a snapshot is written only
     * after its index, and an index only after its packs.  Listing
     * snapshots first, then indexes, then packs means everything a listed
     * snapshot needs was already there when its level was listed. */
    storage_names snaps = {0};
    int rc = storage_list(repo_storage(r), "snapshots/", storage_names_collect, &snaps, err);
    if (rc == 0)
        rc = check_indexes(&c, err);
    if (rc == 0)
        rc = check_packs(&c, err);
    if (rc == 0)
        rc = check_snapshots(&c, snaps);
    storage_names_free(&snaps);
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
    repo_index_free(c.seen_trees);
    repo_index_free(c.stored);
    free(c.stored_size);
    return rc;
}
