/*
 * prune.c — mark and sweep; see prune.h for the rules and the step order.
 *
 * Everything prune might delete is decided before anything is written, and
 * every failure before step 3 (deleting old index files) leaves only extra
 * objects behind.  Any doubt about what is used — a snapshot that cannot
 * be read, a tree that does not load, a chunk not in the index, a pack
 * whose directory does not hold a blob the index places there — stops
 * prune before it deletes anything: garbage costs space, a wrong deletion
 * costs backups.
 */
#include "repo/prune.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "repo/index.h"
#include "repo/lock.h"
#include "repo/pack.h"
#include "repo/snapshot.h"
#include "repo/treeio.h"
#include "repo/writer.h"

/* ------------------------------------------------------------ ID set */

/* Open addressing over 32-byte IDs with a 32-bit value per ID.  Values:
 * 0 marks an empty slot, PRUNE_USED a used blob not yet placed, and
 * PRUNE_PLACED + p "used, and kept in index pack p".  About 36 bytes per
 * slot at <= 3/4 load: no per-entry allocation. */
#define PRUNE_USED 1u
#define PRUNE_PLACED 2u

typedef struct prune_idset {
    uint8_t (*keys)[OB_ID_LEN];
    uint32_t *vals;
    size_t n, cap; /* cap: 0 or a power of two */
} prune_idset;

static size_t idset_slot(const prune_idset *s, const uint8_t id[OB_ID_LEN])
{
    uint64_t h; /* IDs are MACs: any 8 bytes are uniform */
    memcpy(&h, id, sizeof h);
    size_t i = (size_t)h & (s->cap - 1);
    while (s->vals[i] && memcmp(s->keys[i], id, OB_ID_LEN) != 0)
        i = (i + 1) & (s->cap - 1);
    return i;
}

static uint32_t *idset_get(prune_idset *s, const uint8_t id[OB_ID_LEN])
{
    if (!s->cap)
        return NULL;
    size_t i = idset_slot(s, id);
    return s->vals[i] ? &s->vals[i] : NULL;
}

static void idset_grow(prune_idset *s)
{
    prune_idset bigger = {0};
    bigger.cap = s->cap ? 2 * s->cap : 1024;
    bigger.keys = ob_xcalloc(bigger.cap, OB_ID_LEN);
    bigger.vals = ob_xcalloc(bigger.cap, sizeof *bigger.vals);
    for (size_t i = 0; i < s->cap; i++)
        if (s->vals[i]) {
            size_t j = idset_slot(&bigger, s->keys[i]);
            memcpy(bigger.keys[j], s->keys[i], OB_ID_LEN);
            bigger.vals[j] = s->vals[i];
        }
    bigger.n = s->n;
    free(s->keys);
    free(s->vals);
    *s = bigger;
}

/* Add id (value PRUNE_USED) unless present; returns 1 if it was added. */
static int idset_add(prune_idset *s, const uint8_t id[OB_ID_LEN])
{
    if ((s->n + 1) * 4 > s->cap * 3)
        idset_grow(s);
    size_t i = idset_slot(s, id);
    if (s->vals[i])
        return 0;
    memcpy(s->keys[i], id, OB_ID_LEN);
    s->vals[i] = PRUNE_USED;
    s->n++;
    return 1;
}

static void idset_free(prune_idset *s)
{
    free(s->keys);
    free(s->vals);
    memset(s, 0, sizeof *s);
}

/* ----------------------------------------------------------- listings */

static const char *base_name(const char *name)
{
    const char *b = strrchr(name, '/');
    return b ? b + 1 : name;
}

/* ------------------------------------------------------------ context */

enum { PACK_KEEP = 0, PACK_REPACK, PACK_DELETE, PACK_MISSING };

typedef struct prune_ctx {
    repo *r;
    const prune_opts *o;
    prune_stats *st;
    repo_index *ix;          /* all index files prune read (owned by r) */
    prune_idset used;        /* mark set; values place blobs in packs */
    /* per index pack position */
    size_t np;
    int64_t *stored;         /* position in `packs`, or -1 if not stored */
    uint64_t *total_bytes, *used_bytes;
    uint32_t *total_blobs, *used_blobs;
    uint8_t *klass;          /* PACK_* */
    /* packs in storage */
    storage_names packs;
    repo_index *packs_ix;    /* packs in storage, as a table of IDs */
    uint8_t *indexed;        /* per packs_ix position: named by the index */
} prune_ctx;

/* ------------------------------------------------------------- load */

static int load_index(prune_ctx *c, storage_names *files, ob_err *err)
{
    if (storage_list(repo_storage(c->r), "index/", storage_names_collect, files, err) < 0)
        return ob_err_prefix(err, "listing index files");
    repo_index *ix = repo_index_new();
    ob_buf b = OB_BUF_INIT;
    for (size_t i = 0; i < files->n; i++) {
        if (repo_get_object(c->r, files->v[i], REPO_OBJ_INDEX, &b, err) < 0 ||
            repo_index_decode(ix, b.data, b.len, err) < 0) {
            ob_buf_free(&b);
            repo_index_free(ix);
            return ob_err_prefix(err,
                                 "index file %s cannot be read; prune deletes nothing while "
                                 "the index is incomplete (run `opsbackup check`)",
                                 files->v[i]);
        }
    }
    ob_buf_free(&b);
    repo_index_merge(ix);
    /* Trees are read through the repository's index: make it this one. */
    repo_set_index(c->r, ix);
    c->ix = ix;
    c->st->index_old = files->n;
    c->st->blobs_total = repo_index_count(ix);
    return 0;
}

static int list_packs(prune_ctx *c, ob_err *err)
{
    if (storage_list(repo_storage(c->r), "data/", storage_names_collect, &c->packs, err) < 0)
        return ob_err_prefix(err, "listing packs");
    c->packs_ix = repo_index_new();
    static const uint8_t no_salt[32];
    /* Names that are not 64 hex digits are not packs: never touched. */
    size_t kept = 0;
    for (size_t i = 0; i < c->packs.n; i++) {
        uint8_t id[OB_ID_LEN];
        const char *b = base_name(c->packs.v[i]);
        if (strlen(b) != OB_HEX_ID_LEN || ob_unhex(b, id, OB_ID_LEN) < 0) {
            ob_warn("prune: leaving %s alone: not a pack name", c->packs.v[i]);
            free(c->packs.v[i]);
            continue;
        }
        if (repo_index_find_pack(c->packs_ix, id) >= 0) { /* cannot happen on posix */
            free(c->packs.v[i]);
            continue;
        }
        repo_index_add_pack(c->packs_ix, id, no_salt);
        c->packs.v[kept] = c->packs.v[i];
        c->packs.size[kept++] = c->packs.size[i];
    }
    c->packs.n = kept;
    c->indexed = ob_xcalloc(kept ? kept : 1, 1);
    for (size_t i = 0; i < kept; i++) {
        c->st->packs_total++;
        c->st->bytes_total += c->packs.size[i];
    }
    return 0;
}

/* ------------------------------------------------------------- mark */

static int mark_snapshot(prune_ctx *c, const snapshot *s, ob_err *err)
{
    uint8_t (*stack)[OB_ID_LEN] = NULL;
    size_t depth = 0, cap = 0;
    int rc = 0;
    tree t;
    tree_init(&t);
    if (!idset_get(&c->used, s->tree)) {
        cap = 64;
        stack = ob_xmalloc(cap * OB_ID_LEN);
        memcpy(stack[depth++], s->tree, OB_ID_LEN);
    }
    while (depth > 0 && rc == 0) {
        uint8_t id[OB_ID_LEN];
        memcpy(id, stack[--depth], OB_ID_LEN);
        /* Shared subtrees are walked once across all snapshots. */
        if (!idset_add(&c->used, id))
            continue;
        c->st->trees++;
        if (treeio_load(c->r, id, &t, err) < 0) {
            rc = -1;
            break;
        }
        for (size_t i = 0; i < t.n && rc == 0; i++) {
            const tree_node *n = &t.nodes[i];
            if (n->type == TREE_DIR) {
                if (idset_get(&c->used, n->subtree))
                    continue;
                if (depth == cap) {
                    cap *= 2;
                    stack = ob_xrealloc(stack, cap * OB_ID_LEN);
                }
                memcpy(stack[depth++], n->subtree, OB_ID_LEN);
            } else if (n->type == TREE_FILE) {
                for (size_t k = 0; k < n->nextents; k++) {
                    const index_entry *e = repo_index_lookup(c->ix, n->extents[k].id);
                    if (!e || INDEX_TYPE(e->meta) != REPO_BLOB_DATA) {
                        char hex[OB_HEX_ID_LEN + 1];
                        ob_hex(n->extents[k].id, OB_ID_LEN, hex);
                        rc = ob_err_set(err, OB_ECORRUPT,
                                        "file %s: chunk %.16s is not in the index", n->name,
                                        hex);
                        break;
                    }
                    idset_add(&c->used, n->extents[k].id);
                }
            }
        }
    }
    tree_free(&t);
    free(stack);
    return rc;
}

static int ignored(const prune_opts *o, const char *id)
{
    for (size_t i = 0; o->ignore && o->ignore[i]; i++)
        if (strcmp(o->ignore[i], id) == 0)
            return 1;
    return 0;
}

static int mark(prune_ctx *c, const storage_names *snaps, ob_err *err)
{
    for (size_t i = 0; i < snaps->n; i++) {
        const char *id = base_name(snaps->v[i]);
        if (strlen(id) != OB_HEX_ID_LEN || ignored(c->o, id))
            continue;
        snapshot *s = NULL;
        if (snapshot_load(c->r, id, &s, err) < 0) {
            if (err->code == OB_ENOTFOUND) { /* removed since the listing (forget) */
                ob_err_clear(err);
                continue;
            }
            return ob_err_prefix(err,
                                 "snapshot %.8s cannot be read; prune deletes nothing while a "
                                 "snapshot cannot be read (run `opsbackup check`; if it is "
                                 "beyond repair, delete the object %s from the repository)",
                                 id, snaps->v[i]);
        }
        c->st->snapshots++;
        int rc = mark_snapshot(c, s, err);
        if (rc < 0)
            ob_err_prefix(err,
                          "snapshot %.8s cannot be read in full; prune deletes nothing while "
                          "that is so (run `opsbackup check`)",
                          s->id);
        snapshot_free(s);
        if (rc < 0)
            return -1;
    }
    c->st->blobs_used = c->used.n;
    return 0;
}

/* ------------------------------------------------- index entry walks */

/* repo_index_foreach visits entries sorted by blob ID, so copies of one
 * blob come together.  The same entry (same pack and offset) can appear
 * twice when a killed prune left old and new index files side by side:
 * such repeats are skipped, so they are neither counted nor written
 * again. */
typedef struct dedup {
    index_entry *run;
    size_t n, cap;
} dedup;

static int dedup_seen(dedup *d, const index_entry *e)
{
    if (d->n && memcmp(d->run[0].id, e->id, OB_ID_LEN) != 0)
        d->n = 0;
    for (size_t i = 0; i < d->n; i++)
        if (d->run[i].pack == e->pack && d->run[i].offset == e->offset)
            return 1;
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 8;
        d->run = ob_xrealloc(d->run, d->cap * sizeof *d->run);
    }
    d->run[d->n++] = *e;
    return 0;
}

typedef struct place_ctx {
    prune_ctx *c;
    dedup d;
} place_ctx;

/* Count each pack's blobs and place every used blob in one stored pack
 * (the first copy found; later copies count as unused). */
static int place_visit(const index_entry *e, void *ud)
{
    place_ctx *p = ud;
    prune_ctx *c = p->c;
    if (e->pack >= c->np || dedup_seen(&p->d, e))
        return 0;
    c->total_bytes[e->pack] += e->length;
    c->total_blobs[e->pack]++;
    if (c->stored[e->pack] < 0)
        return 0;
    uint32_t *v = idset_get(&c->used, e->id);
    if (v && *v == PRUNE_USED) {
        *v = PRUNE_PLACED + e->pack;
        c->used_bytes[e->pack] += e->length;
        c->used_blobs[e->pack]++;
    }
    return 0;
}

static int place(prune_ctx *c, ob_err *err)
{
    c->np = repo_index_pack_count(c->ix);
    size_t np = c->np ? c->np : 1;
    c->stored = ob_xcalloc(np, sizeof *c->stored);
    c->total_bytes = ob_xcalloc(np, sizeof *c->total_bytes);
    c->used_bytes = ob_xcalloc(np, sizeof *c->used_bytes);
    c->total_blobs = ob_xcalloc(np, sizeof *c->total_blobs);
    c->used_blobs = ob_xcalloc(np, sizeof *c->used_blobs);
    c->klass = ob_xcalloc(np, 1);
    for (size_t i = 0; i < c->np; i++) {
        const index_pack *ip = repo_index_pack(c->ix, (uint32_t)i);
        c->stored[i] = repo_index_find_pack(c->packs_ix, ip->id);
        if (c->stored[i] < 0)
            continue;
        c->indexed[c->stored[i]] = 1;
        /* A pack shorter than its index entries need is damaged.  A blob
         * stored twice (two backups at once) could otherwise be placed in
         * that copy and the intact copy's pack deleted as unused. */
        uint64_t size = c->packs.size[c->stored[i]];
        if (size < ip->end + 4) {
            char *pack = pack_object_name(ip->id);
            int rc = ob_err_set(err, OB_ECORRUPT,
                                "pack %s is truncated: %llu bytes, the index needs at least "
                                "%llu; prune deletes nothing in a damaged repository (run "
                                "`opsbackup check`)",
                                pack, (unsigned long long)size,
                                (unsigned long long)ip->end + 4);
            free(pack);
            return rc;
        }
    }
    place_ctx p = {c, {0}};
    repo_index_foreach(c->ix, place_visit, &p);
    free(p.d.run);
    /* Every used blob must have a stored home, or deleting anything could
     * be the end of it. */
    for (size_t i = 0; i < c->used.cap; i++) {
        if (c->used.vals[i] != PRUNE_USED)
            continue;
        char hex[OB_HEX_ID_LEN + 1];
        ob_hex(c->used.keys[i], OB_ID_LEN, hex);
        const index_entry *e = repo_index_lookup(c->ix, c->used.keys[i]);
        char *pack = e ? pack_object_name(repo_index_pack(c->ix, e->pack)->id) : NULL;
        int rc = ob_err_set(err, OB_ECORRUPT,
                            "blob %.16s is used by a snapshot but its pack %s is missing; "
                            "prune deletes nothing in a damaged repository (run `opsbackup "
                            "check`)",
                            hex, pack ? pack : "(none)");
        free(pack);
        return rc;
    }
    return 0;
}

/* ------------------------------------------------------------- plan */

static void classify(prune_ctx *c)
{
    prune_stats *st = c->st;
    for (size_t i = 0; i < c->np; i++) {
        if (c->stored[i] < 0) {
            c->klass[i] = PACK_MISSING;
            st->packs_missing++;
            continue;
        }
        uint64_t size = c->packs.size[c->stored[i]];
        uint64_t unused = c->total_bytes[i] - c->used_bytes[i];
        if (c->used_blobs[i] == 0) {
            c->klass[i] = PACK_DELETE;
            st->packs_deleted++;
            st->bytes_deleted += size;
        } else if (c->total_bytes[i] &&
                   (double)unused * 100.0 > c->o->max_unused_pct * (double)c->total_bytes[i]) {
            c->klass[i] = PACK_REPACK;
            st->packs_repacked++;
            st->bytes_repacked += size;
            st->blobs_repacked += c->used_blobs[i];
        } else {
            c->klass[i] = PACK_KEEP;
            st->bytes_unused_kept += unused;
        }
    }
    for (size_t i = 0; i < c->packs.n; i++)
        if (!c->indexed[i]) {
            st->packs_unindexed++;
            st->bytes_unindexed += c->packs.size[i];
        }
}

/* The planned net gain; once packs are written, their real size replaces
 * the estimate (the used bytes of the repacked packs). */
static void compute_freed(prune_ctx *c, uint64_t written)
{
    prune_stats *st = c->st;
    st->bytes_freed = (int64_t)(st->bytes_deleted + st->bytes_repacked + st->tmp_bytes) -
                      (int64_t)written;
    if (!st->deferred)
        st->bytes_freed += (int64_t)st->bytes_unindexed;
}

/* ------------------------------------------------------------ sweep */

typedef struct batch_ctx {
    prune_ctx *c;
    size_t lo, hi;           /* index pack positions in this batch */
    repo_index *out;
    dedup d;
} batch_ctx;

static int batch_visit(const index_entry *e, void *ud)
{
    batch_ctx *b = ud;
    if (e->pack < b->lo || e->pack >= b->hi || b->c->klass[e->pack] != PACK_KEEP ||
        dedup_seen(&b->d, e))
        return 0;
    const index_pack *p = repo_index_pack(b->c->ix, e->pack);
    index_entry n = *e;
    n.pack = repo_index_add_pack(b->out, p->id, p->salt);
    repo_index_add(b->out, &n);
    return 0;
}

/* Step 1: the packs that stay, in new index files of at most about
 * PRUNE_INDEX_BATCH blobs each (one pass over the index per file).  The
 * names written are added to *own. */
static int write_kept_index(prune_ctx *c, storage_names *own, ob_err *err)
{
    size_t lo = 0;
    while (lo < c->np) {
        size_t hi = lo;
        uint64_t blobs = 0;
        while (hi < c->np && (blobs == 0 || blobs + c->total_blobs[hi] <= PRUNE_INDEX_BATCH)) {
            if (c->klass[hi] == PACK_KEEP)
                blobs += c->total_blobs[hi];
            hi++;
        }
        if (blobs) {
            batch_ctx b = {c, lo, hi, repo_index_new(), {0}};
            repo_index_foreach(c->ix, batch_visit, &b);
            free(b.d.run);
            ob_buf payload = OB_BUF_INIT;
            repo_index_encode(b.out, &payload);
            repo_index_free(b.out);
            char hex[OB_HEX_ID_LEN + 1];
            int rc = repo_put_object(c->r, "index", REPO_OBJ_INDEX, payload.data, payload.len,
                                     hex, err);
            ob_buf_free(&payload);
            if (rc < 0 && err->code == OB_EEXIST) {
                /* The same content is already stored (a killed prune wrote
                 * it): that is exactly what we wanted. */
                ob_err_clear(err);
                rc = 0;
            } else if (rc == 0) {
                c->st->index_new++;
                char *name = ob_xasprintf("index/%s", hex);
                storage_names_collect(name, 0, own);
                free(name);
            }
            if (rc < 0)
                return ob_err_prefix(err, "writing a new index file");
        }
        lo = hi;
    }
    return 0;
}

typedef struct repack_item {
    uint8_t id[OB_ID_LEN];
    uint32_t pos;
} repack_item;

/* Step 2: copy one pack's used blobs through the writer. */
static int repack_one(prune_ctx *c, repo_writer *w, const repack_item *it, ob_err *err)
{
    char *name = pack_object_name(it->id);
    ob_buf data = OB_BUF_INIT, plain = OB_BUF_INIT;
    pack_blob *blobs = NULL;
    size_t nblobs = 0, copied = 0;
    uint8_t salt[32];
    int rc = -1;
    if (storage_get(repo_storage(c->r), name, 0, 0, &data, err) < 0 ||
        pack_read_directory(c->r, data.data, data.len, salt, &blobs, &nblobs, err) < 0)
        goto out;
    for (size_t i = 0; i < nblobs; i++) {
        uint32_t *v = idset_get(&c->used, blobs[i].id);
        if (!v || *v != PRUNE_PLACED + it->pos)
            continue;
        index_entry ie;
        memcpy(ie.id, blobs[i].id, OB_ID_LEN);
        ie.pack = 0;
        ie.offset = blobs[i].offset;
        ie.length = blobs[i].length;
        ie.raw_len = blobs[i].raw_len;
        ie.meta = INDEX_META(i, blobs[i].comp, blobs[i].type);
        uint8_t id[OB_ID_LEN];
        if (pack_open_blob(c->r, salt, &ie, data.data + ie.offset, ie.length, &plain, err) < 0 ||
            repo_writer_add(w, blobs[i].type, plain.data, plain.len, id, NULL, err) < 0)
            goto out;
        /* A pack may repeat a blob; copy it once. */
        *v = PRUNE_USED;
        copied++;
    }
    if (copied != c->used_blobs[it->pos]) {
        ob_err_set(err, OB_ECORRUPT,
                   "the index places %u used blobs in this pack but its directory holds %zu "
                   "of them; nothing was deleted (run `opsbackup check --read-data`)",
                   c->used_blobs[it->pos], copied);
        goto out;
    }
    rc = 0;
out:
    if (rc < 0)
        ob_err_prefix(err, "repacking %s", name);
    free(blobs);
    ob_buf_free(&data);
    ob_buf_free(&plain);
    free(name);
    return rc;
}

static int lock_ok(prune_ctx *c, ob_err *err)
{
    if (c->o->lock && repo_lock_lost(c->o->lock, err))
        return ob_err_prefix(err, "prune stopped before deleting anything more");
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Right before the first delete: list index/ again.  Under the exclusive
 * lock, the only index files may be those prune read (`start`) and those
 * it wrote itself (`own`).  Any other one was published by a process that
 * writes without a lease (a backup stopped or asleep past the stale time,
 * whose lock was removed as stale), and it may name packs prune is about to
 * delete as unindexed: deleting them would leave it naming missing packs,
 * and the next backup would deduplicate against them.  So prune stops,
 * having deleted nothing. */
static int index_unchanged(prune_ctx *c, const storage_names *start, const storage_names *own,
                           ob_err *err)
{
    storage_names now = {0};
    if (storage_list(repo_storage(c->r), "index/", storage_names_collect, &now, err) < 0)
        return ob_err_prefix(err, "listing index files again before deleting");
    size_t nk = start->n + own->n;
    char **known = ob_xcalloc(nk ? nk : 1, sizeof *known);
    for (size_t i = 0; i < start->n; i++)
        known[i] = start->v[i];
    for (size_t i = 0; i < own->n; i++)
        known[start->n + i] = own->v[i];
    qsort(known, nk, sizeof *known, cmp_name);
    int rc = 0;
    for (size_t i = 0; i < now.n && rc == 0; i++)
        if (!bsearch(&now.v[i], known, nk, sizeof *known, cmp_name))
            rc = ob_err_set(err, OB_ELOCKED,
                            "index file %s appeared while prune held the exclusive lock: "
                            "another process writes without a valid lease (was a backup "
                            "stopped or asleep for more than %d minutes?); prune deleted "
                            "nothing.  Run `opsbackup check`, then prune again",
                            now.v[i], LOCK_STALE_SECONDS / 60);
    free(known);
    storage_names_free(&now);
    return rc;
}

/* Deletes go in batches (one request per 1000 objects on S3), and the
 * lease is checked before each batch: a prune that lost its lock stops
 * within one batch. */
static int delete_objects(prune_ctx *c, char **names, size_t n, ob_err *err)
{
    for (size_t i = 0; i < n; i += 1000) {
        size_t k = n - i < 1000 ? n - i : 1000;
        if (lock_ok(c, err) < 0)
            return -1;
        if (storage_delete_many(repo_storage(c->r), (const char *const *)names + i, k, err) < 0)
            return -1;
    }
    return 0;
}

static void remove_temporaries(prune_ctx *c)
{
    if (c->o->tmp_max_age < 0)
        return;
    ob_err e = OB_ERR_INIT;
    if (storage_remove_temporaries(repo_storage(c->r), c->o->tmp_max_age, &c->st->tmp_removed,
                                   &c->st->tmp_bytes, &e) < 0)
        ob_warn("prune: could not remove old temporary files: %s", ob_err_msg(&e));
    ob_err_clear(&e);
}

static int sweep(prune_ctx *c, const storage_names *index_files, ob_err *err)
{
    prune_stats *st = c->st;
    int rc = -1;
    repo_writer *w = NULL;
    repack_item *rp = NULL;
    size_t nrp = 0;
    char **doomed = NULL; /* old packs, deleted last */
    size_t ndoomed = 0;
    storage_names own = {0}; /* index files this prune wrote */

    /* Step 1. */
    ob_info("prune: writing the index of %" PRIu64 " packs that stay",
            (uint64_t)(c->np - st->packs_deleted - st->packs_repacked - st->packs_missing));
    if (write_kept_index(c, &own, err) < 0)
        goto out;

    /* What steps 2 and 4 need from the old index, before it is dropped. */
    for (size_t i = 0; i < c->np; i++) {
        const index_pack *p = repo_index_pack(c->ix, (uint32_t)i);
        if (c->klass[i] == PACK_REPACK) {
            rp = ob_xrealloc(rp, (nrp + 1) * sizeof *rp);
            memcpy(rp[nrp].id, p->id, OB_ID_LEN);
            rp[nrp++].pos = (uint32_t)i;
        }
        if (c->klass[i] == PACK_REPACK || c->klass[i] == PACK_DELETE) {
            doomed = ob_xrealloc(doomed, (ndoomed + 1) * sizeof *doomed);
            doomed[ndoomed++] = pack_object_name(p->id);
        }
    }
    for (size_t i = 0; i < c->packs.n; i++)
        if (!c->indexed[i]) {
            doomed = ob_xrealloc(doomed, (ndoomed + 1) * sizeof *doomed);
            doomed[ndoomed++] = ob_xstrdup(c->packs.v[i]);
        }

    /* Step 2.  The writer must store blobs the old index already has, so
     * it gets an empty index (repo_set_index frees the old one). */
    uint64_t written = 0;
    if (nrp) {
        repo_set_index(c->r, repo_index_new());
        c->ix = NULL;
        ob_info("prune: repacking %zu packs", nrp);
        if (repo_writer_new(c->r, 0, &w, err) < 0)
            goto out;
        repo_writer_set_lock(w, c->o->lock);
        for (size_t i = 0; i < nrp; i++)
            if (repack_one(c, w, &rp[i], err) < 0)
                goto out;
        if (repo_writer_flush(w, err) < 0) {
            ob_err_prefix(err, "storing repacked blobs");
            goto out;
        }
        repo_writer_stats ws;
        repo_writer_get_stats(w, &ws);
        st->packs_written = ws.packs;
        st->bytes_written = ws.bytes_stored;
        written = ws.bytes_stored;
        if (ws.packs)
            st->index_new++; /* the writer's own index file(s) */
        size_t nwrote;
        const char *const *wrote = repo_writer_index_names(w, &nwrote);
        for (size_t i = 0; i < nwrote; i++)
            storage_names_collect(wrote[i], 0, &own);
        repo_writer_free(w);
        w = NULL;
    }

    /* Step 3: everything live is in the new index files now. */
    if (lock_ok(c, err) < 0 || index_unchanged(c, index_files, &own, err) < 0)
        goto out;
    ob_info("prune: deleting %zu old index files", index_files->n);
    if (delete_objects(c, index_files->v, index_files->n, err) < 0)
        goto out;

    /* Step 4. */
    ob_info("prune: deleting %zu packs", ndoomed);
    if (delete_objects(c, doomed, ndoomed, err) < 0)
        goto out;
    remove_temporaries(c);
    compute_freed(c, written);
    rc = 0;
out:
    repo_writer_free(w);
    storage_names_free(&own);
    free(rp);
    for (size_t i = 0; i < ndoomed; i++)
        free(doomed[i]);
    free(doomed);
    /* The repository's in-memory index no longer matches storage. */
    repo_set_index(c->r, NULL);
    return rc;
}

/* ------------------------------------------------------------- main */

/* One line per phase for a terminal (prune_opts.progress). */
static void phase(const prune_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void phase(const prune_ctx *c, const char *fmt, ...)
{
    if (!c->o->progress)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) >= 0)
        c->o->progress(msg, c->o->progress_ud);
    va_end(ap);
    free(msg);
}

int repo_prune(repo *r, const prune_opts *o, prune_stats *st, ob_err *err)
{
    memset(st, 0, sizeof *st);
    prune_ctx c;
    memset(&c, 0, sizeof c);
    c.r = r;
    c.o = o;
    c.st = st;
    st->deferred = o->deferred;
    storage_names snaps = {0}, index_files = {0};
    int rc = -1;

    /* Listing order as in check: snapshots, then index files, then packs.
     * A backup committing meanwhile (only possible in deferred mode) then
     * has everything its listed snapshot needs already in the later
     * listings. */
    phase(&c, "listing snapshots, index and packs");
    if (storage_list(repo_storage(r), "snapshots/", storage_names_collect, &snaps, err) < 0) {
        ob_err_prefix(err, "listing snapshots");
        goto out;
    }
    if (load_index(&c, &index_files, err) < 0 || list_packs(&c, err) < 0)
        goto out;
    ob_info("prune: marking what %zu snapshots use", snaps.n);
    phase(&c, "marking what %zu snapshots use in %zu packs", snaps.n, c.packs.n);
    if (mark(&c, &snaps, err) < 0 || place(&c, err) < 0)
        goto out;
    classify(&c);
    if (!o->dry_run && !o->deferred)
        phase(&c, "deleting %llu packs, repacking %llu",
              (unsigned long long)st->packs_deleted, (unsigned long long)st->packs_repacked);
    /* Estimate of the new packs: the used bytes of the repacked ones. */
    uint64_t estimate = 0;
    for (size_t i = 0; i < c.np; i++)
        if (c.klass[i] == PACK_REPACK)
            estimate += c.used_bytes[i];
    if (o->dry_run || o->deferred) {
        /* Deferred: temporaries stay too.  A running backup's open pack
         * can be older than PRUNE_TMP_MAX_AGE (a tree pack is appended to
         * only when a tree is written; a long file or a stalled pg_dump
         * writes none for hours), and its lease says it is alive. */
        compute_freed(&c, estimate);
        repo_set_index(r, NULL);
        rc = 0;
        goto out;
    }
    if (st->packs_deleted == 0 && st->packs_repacked == 0 && st->packs_missing == 0) {
        /* The index stays valid as it is: do not churn index files; only
         * garbage nobody indexes goes. */
        char **names = ob_xcalloc(c.packs.n + 1, sizeof *names);
        size_t k = 0;
        for (size_t i = 0; i < c.packs.n; i++)
            if (!c.indexed[i])
                names[k++] = c.packs.v[i];
        storage_names none = {0}; /* this branch writes no index file */
        rc = lock_ok(&c, err) < 0 || index_unchanged(&c, &index_files, &none, err) < 0
                 ? -1
                 : delete_objects(&c, names, k, err);
        free(names);
        if (rc == 0) {
            remove_temporaries(&c);
            compute_freed(&c, 0);
        }
        repo_set_index(r, NULL);
        goto out;
    }
    rc = sweep(&c, &index_files, err);
out:
    if (rc < 0)
        repo_set_index(r, NULL);
    storage_names_free(&snaps);
    storage_names_free(&index_files);
    storage_names_free(&c.packs);
    repo_index_free(c.packs_ix);
    idset_free(&c.used);
    free(c.indexed);
    free(c.stored);
    free(c.total_bytes);
    free(c.used_bytes);
    free(c.total_blobs);
    free(c.used_blobs);
    free(c.klass);
    return rc;
}
