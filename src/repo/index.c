/*
 * index.c — the blob index (see index.h for the memory layout rationale).
 *
 * Index file payload (plaintext inside an encrypted index object):
 *
 *   "OBI1" | npacks u32 |
 *   per pack: pack id[32] | salt[32] | nblobs u32 |
 *     per blob: id[32] | type u8 | comp u8 | seq u32 | offset u32 | length u32 | raw_len u32
 */
#include "repo/index.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define IDX_MAGIC "OBI1"
#define IDX_BLOB_LEN (32 + 1 + 1 + 4 + 4 + 4 + 4)

/*
 * The pack table is read without the writer's lock: a backup's main thread
 * reads its parent's trees (repo_read_blob holds a pack's index_pack across
 * the storage read) while the writer's workers add the packs they seal.  So
 * an index_pack never moves once added: the table is chunks of PACK_CHUNK
 * entries that are never reallocated, reached through a directory that is
 * replaced, not reallocated in place, when it fills (the directories it
 * replaced stay until the index is freed, for a reader still holding one).
 * A new pack is published by the release store of npacks after it is
 * filled in.  Adding packs still needs one writer at a time.
 */
#define PACK_CHUNK_BITS 8
#define PACK_CHUNK ((size_t)1 << PACK_CHUNK_BITS) /* 256 packs, 18 KiB */

typedef struct pack_dir {
    struct pack_dir *older;     /* the directory this one replaced */
    size_t cap;                 /* chunk pointers */
    index_pack *chunk[];
} pack_dir;

struct repo_index {
    _Atomic(pack_dir *) packs;  /* NULL until the first pack */
    atomic_size_t npacks;
    uint32_t *pack_slots;       /* open addressing over packs by ID */
    size_t pack_slots_cap;

    index_entry *sorted;        /* sorted by id (unless sorted_dirty) */
    size_t nsorted, sorted_cap;
    int sorted_dirty;           /* bulk-loaded entries not yet sorted */

    index_entry *recent;        /* added since the last merge */
    size_t nrecent, recent_cap;
    uint32_t *slots;            /* open addressing: recent position + 1, 0 = empty */
    size_t slots_cap;           /* power of two */
};

static uint64_t id_hash(const uint8_t *id)
{
    /* IDs are MAC/hash outputs: their bytes are already uniform. */
    uint64_t h;
    memcpy(&h, id, sizeof h);
    return h;
}

repo_index *repo_index_new(void)
{
    return ob_xcalloc(1, sizeof(repo_index));
}

static index_pack *pack_at(const repo_index *ix, size_t pos)
{
    pack_dir *d = atomic_load_explicit((_Atomic(pack_dir *) *)&ix->packs, memory_order_acquire);
    return &d->chunk[pos >> PACK_CHUNK_BITS][pos & (PACK_CHUNK - 1)];
}

static size_t pack_count(const repo_index *ix)
{
    return atomic_load_explicit((atomic_size_t *)&ix->npacks, memory_order_acquire);
}

void repo_index_free(repo_index *ix)
{
    if (!ix)
        return;
    pack_dir *d = atomic_load_explicit(&ix->packs, memory_order_relaxed);
    size_t nchunks = (pack_count(ix) + PACK_CHUNK - 1) >> PACK_CHUNK_BITS;
    for (size_t i = 0; d && i < nchunks; i++)
        free(d->chunk[i]);
    while (d) {
        pack_dir *older = d->older;
        free(d);
        d = older;
    }
    free(ix->pack_slots);
    free(ix->sorted);
    free(ix->recent);
    free(ix->slots);
    free(ix);
}

static void pack_slots_rebuild(repo_index *ix, size_t cap)
{
    free(ix->pack_slots);
    ix->pack_slots = ob_xcalloc(cap, sizeof *ix->pack_slots);
    ix->pack_slots_cap = cap;
    for (size_t i = 0, n = pack_count(ix); i < n; i++) {
        size_t s = id_hash(pack_at(ix, i)->id) & (cap - 1);
        while (ix->pack_slots[s])
            s = (s + 1) & (cap - 1);
        ix->pack_slots[s] = (uint32_t)i + 1;
    }
}

int64_t repo_index_find_pack(const repo_index *ix, const uint8_t id[OB_ID_LEN])
{
    if (!ix->pack_slots_cap)
        return -1;
    size_t s = id_hash(id) & (ix->pack_slots_cap - 1);
    while (ix->pack_slots[s]) {
        uint32_t p = ix->pack_slots[s] - 1;
        if (memcmp(pack_at(ix, p)->id, id, OB_ID_LEN) == 0)
            return p;
        s = (s + 1) & (ix->pack_slots_cap - 1);
    }
    return -1;
}

uint32_t repo_index_add_pack(repo_index *ix, const uint8_t id[OB_ID_LEN], const uint8_t salt[32])
{
    int64_t found = repo_index_find_pack(ix, id);
    if (found >= 0)
        return (uint32_t)found;
    size_t n = pack_count(ix), c = n >> PACK_CHUNK_BITS;
    pack_dir *d = atomic_load_explicit(&ix->packs, memory_order_relaxed);
    if ((n & (PACK_CHUNK - 1)) == 0) { /* the first pack of a new chunk */
        if (!d || c == d->cap) {
            size_t cap = d ? 2 * d->cap : 16;
            pack_dir *nd = ob_xcalloc(1, sizeof *nd + cap * sizeof nd->chunk[0]);
            nd->older = d;
            nd->cap = cap;
            if (d)
                memcpy(nd->chunk, d->chunk, c * sizeof d->chunk[0]);
            nd->chunk[c] = ob_xmalloc(PACK_CHUNK * sizeof(index_pack));
            atomic_store_explicit(&ix->packs, nd, memory_order_release);
            d = nd;
        } else {
            /* A slot of the directory no reader can reach yet (npacks). */
            d->chunk[c] = ob_xmalloc(PACK_CHUNK * sizeof(index_pack));
        }
    }
    index_pack *p = &d->chunk[c][n & (PACK_CHUNK - 1)];
    memcpy(p->id, id, OB_ID_LEN);
    memcpy(p->salt, salt, 32);
    p->end = 0;
    atomic_store_explicit(&ix->npacks, n + 1, memory_order_release);
    n++;
    if (n * 2 > ix->pack_slots_cap)
        pack_slots_rebuild(ix, ix->pack_slots_cap ? ix->pack_slots_cap * 2 : 128);
    else {
        size_t s = id_hash(id) & (ix->pack_slots_cap - 1);
        while (ix->pack_slots[s])
            s = (s + 1) & (ix->pack_slots_cap - 1);
        ix->pack_slots[s] = (uint32_t)n;
    }
    return (uint32_t)(n - 1);
}

const index_pack *repo_index_pack(const repo_index *ix, uint32_t pos)
{
    return pos < pack_count(ix) ? pack_at(ix, pos) : NULL;
}

size_t repo_index_pack_count(const repo_index *ix) { return pack_count(ix); }

void repo_index_pack_extend(repo_index *ix, uint32_t pos, uint64_t end)
{
    if (pos < pack_count(ix) && end > pack_at(ix, pos)->end)
        pack_at(ix, pos)->end = end;
}

size_t repo_index_count(const repo_index *ix) { return ix->nsorted + ix->nrecent; }

static void slots_rebuild(repo_index *ix, size_t cap)
{
    free(ix->slots);
    ix->slots = ob_xcalloc(cap, sizeof *ix->slots);
    ix->slots_cap = cap;
    for (size_t i = 0; i < ix->nrecent; i++) {
        size_t s = id_hash(ix->recent[i].id) & (cap - 1);
        while (ix->slots[s])
            s = (s + 1) & (cap - 1);
        ix->slots[s] = (uint32_t)i + 1;
    }
}

void repo_index_add(repo_index *ix, const index_entry *e)
{
    if (ix->nrecent == ix->recent_cap) {
        ix->recent_cap = ix->recent_cap ? 2 * ix->recent_cap : 256;
        ix->recent = ob_xrealloc(ix->recent, ix->recent_cap * sizeof *ix->recent);
    }
    ix->recent[ix->nrecent++] = *e;
    repo_index_pack_extend(ix, e->pack, (uint64_t)e->offset + e->length);
    if (ix->nrecent * 2 > ix->slots_cap) {
        slots_rebuild(ix, ix->slots_cap ? ix->slots_cap * 2 : 512);
    } else {
        size_t s = id_hash(e->id) & (ix->slots_cap - 1);
        while (ix->slots[s])
            s = (s + 1) & (ix->slots_cap - 1);
        ix->slots[s] = (uint32_t)ix->nrecent;
    }
}

static int entry_less(const index_entry *a, const index_entry *b)
{
    return memcmp(a->id, b->id, OB_ID_LEN) < 0;
}

static void entry_swap(index_entry *a, index_entry *b)
{
    index_entry t = *a;
    *a = *b;
    *b = t;
}

static void sift_down(index_entry *v, size_t root, size_t n)
{
    for (;;) {
        size_t c = 2 * root + 1;
        if (c >= n)
            return;
        if (c + 1 < n && entry_less(&v[c], &v[c + 1]))
            c++;
        if (!entry_less(&v[root], &v[c]))
            return;
        entry_swap(&v[root], &v[c]);
        root = c;
    }
}

static void heap_sort(index_entry *v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(v, i, n);
    for (size_t i = n; i-- > 1;) {
        entry_swap(&v[0], &v[i]);
        sift_down(v, 0, i);
    }
}

/* Sort entries by ID in place, with no allocation (introsort: quicksort,
 * heapsort past a depth limit, insertion sort for short runs).  Not qsort:
 * glibc's qsort is a merge sort that mallocs a scratch array — for 52-byte
 * elements an indirect one of 16 bytes per element — so sorting 10 million
 * loaded entries would add 160 MB at the peak of opening a repository and
 * break the 64 bytes per blob budget (bench/results_scale.md). */
static void entries_sort(index_entry *v, size_t n, unsigned depth)
{
    while (n > 16) {
        if (depth-- == 0) {
            heap_sort(v, n);
            return;
        }
        /* median of three to v[0], then Hoare partition around it */
        size_t m = n / 2;
        if (entry_less(&v[m], &v[0]))
            entry_swap(&v[m], &v[0]);
        if (entry_less(&v[n - 1], &v[0]))
            entry_swap(&v[n - 1], &v[0]);
        if (entry_less(&v[n - 1], &v[m]))
            entry_swap(&v[n - 1], &v[m]);
        entry_swap(&v[0], &v[m]);
        size_t i = 0, j = n;
        for (;;) {
            do
                i++;
            while (i < n && entry_less(&v[i], &v[0]));
            do
                j--;
            while (entry_less(&v[0], &v[j]));
            if (i >= j)
                break;
            entry_swap(&v[i], &v[j]);
        }
        entry_swap(&v[0], &v[j]);
        /* recurse into the smaller side, loop on the larger: stack depth
         * stays logarithmic */
        if (j < n - j - 1) {
            entries_sort(v, j, depth);
            v += j + 1;
            n -= j + 1;
        } else {
            entries_sort(v + j + 1, n - j - 1, depth);
            n = j;
        }
    }
    for (size_t i = 1; i < n; i++)
        for (size_t k = i; k > 0 && entry_less(&v[k], &v[k - 1]); k--)
            entry_swap(&v[k], &v[k - 1]);
}

static void entries_sort_all(index_entry *v, size_t n)
{
    unsigned depth = 0;
    for (size_t k = n; k > 1; k >>= 1)
        depth += 2;
    entries_sort(v, n, depth);
}

const index_entry *repo_index_lookup(const repo_index *ix, const uint8_t id[OB_ID_LEN])
{
    if (ix->nsorted && !ix->sorted_dirty) {
        size_t lo = 0, hi = ix->nsorted;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = memcmp(ix->sorted[mid].id, id, OB_ID_LEN);
            if (c == 0)
                return &ix->sorted[mid];
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    if (ix->slots_cap) {
        size_t s = id_hash(id) & (ix->slots_cap - 1);
        while (ix->slots[s]) {
            const index_entry *e = &ix->recent[ix->slots[s] - 1];
            if (memcmp(e->id, id, OB_ID_LEN) == 0)
                return e;
            s = (s + 1) & (ix->slots_cap - 1);
        }
    }
    return NULL;
}

index_entry *repo_index_lookup_mut(repo_index *ix, const uint8_t id[OB_ID_LEN])
{
    return (index_entry *)repo_index_lookup(ix, id);
}

void repo_index_merge(repo_index *ix)
{
    if (ix->sorted_dirty) {
        entries_sort_all(ix->sorted, ix->nsorted);
        ix->sorted_dirty = 0;
    }
    if (!ix->nrecent) {
        /* Give back the growth slack of a bulk load (52 B per blob). */
        if (ix->sorted_cap > ix->nsorted && ix->nsorted) {
            ix->sorted = ob_xrealloc(ix->sorted, ix->nsorted * sizeof *ix->sorted);
            ix->sorted_cap = ix->nsorted;
        }
        return;
    }
    /* The merge is the peak of a backup that adds many blobs: drop the
     * lookup table first (8-16 bytes per new blob), it is not needed again. */
    free(ix->slots);
    ix->slots = NULL;
    ix->slots_cap = 0;
    entries_sort_all(ix->recent, ix->nrecent);
    if (ix->nsorted == 0) {
        /* Nothing loaded (a new repository): the sorted new entries become
         * the array as they are.  Copying them would hold both at once, which
         * made a backup of 1M new small files peak at ~112 bytes per blob. */
        free(ix->sorted);
        ix->sorted = ob_xrealloc(ix->recent, ix->nrecent * sizeof *ix->recent);
        ix->nsorted = ix->sorted_cap = ix->nrecent;
    } else {
        size_t n = ix->nsorted + ix->nrecent;
        if (n > ix->sorted_cap) {
            ix->sorted_cap = n;
            ix->sorted = ob_xrealloc(ix->sorted, n * sizeof *ix->sorted);
        }
        /* Merge from the back so no scratch array of the full size is
         * needed (memory is the point of this module). */
        size_t i = ix->nsorted, j = ix->nrecent, k = n;
        while (j > 0) {
            if (i > 0 && memcmp(ix->sorted[i - 1].id, ix->recent[j - 1].id, OB_ID_LEN) > 0)
                ix->sorted[--k] = ix->sorted[--i];
            else
                ix->sorted[--k] = ix->recent[--j];
        }
        ix->nsorted = n;
        free(ix->recent);
    }
    ix->recent = NULL;
    ix->nrecent = ix->recent_cap = 0;
}

void repo_index_foreach(const repo_index *ix, int (*cb)(const index_entry *e, void *ud), void *ud)
{
    for (size_t i = 0; i < ix->nsorted; i++)
        if (cb(&ix->sorted[i], ud))
            return;
    for (size_t i = 0; i < ix->nrecent; i++)
        if (cb(&ix->recent[i], ud))
            return;
}

/* Encoding writes straight into out, sized exactly up front: an index file
 * holds up to 200,000 entries (D45), and building per-pack buffers and
 * then concatenating them held the encoding twice, plus the copies of the
 * buffers' doubling, while a backup writes it. */
typedef struct enc_ctx {
    uint32_t *counts; /* entries per pack */
    size_t *at;       /* where the next entry of each pack goes in out */
    uint8_t *base;
} enc_ctx;

static int enc_count(const index_entry *e, void *ud)
{
    ((enc_ctx *)ud)->counts[e->pack]++;
    return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int enc_put(const index_entry *e, void *ud)
{
    enc_ctx *c = ud;
    uint8_t *p = c->base + c->at[e->pack];
    c->at[e->pack] += IDX_BLOB_LEN;
    memcpy(p, e->id, OB_ID_LEN);
    p[OB_ID_LEN] = (uint8_t)INDEX_TYPE(e->meta);
    p[OB_ID_LEN + 1] = (uint8_t)INDEX_COMP(e->meta);
    put_le32(p + OB_ID_LEN + 2, INDEX_SEQ(e->meta));
    put_le32(p + OB_ID_LEN + 6, e->offset);
    put_le32(p + OB_ID_LEN + 10, e->length);
    put_le32(p + OB_ID_LEN + 14, e->raw_len);
    return 0;
}

void repo_index_encode(const repo_index *ix, ob_buf *out)
{
    size_t npacks = pack_count(ix);
    enc_ctx c = {ob_xcalloc(npacks ? npacks : 1, sizeof(uint32_t)),
                 ob_xcalloc(npacks ? npacks : 1, sizeof(size_t)), NULL};
    repo_index_foreach(ix, enc_count, &c);
    size_t total = 8;
    for (size_t i = 0; i < npacks; i++)
        total += OB_ID_LEN + 32 + 4 + (size_t)c.counts[i] * IDX_BLOB_LEN;
    ob_buf_reserve(out, total);
    ob_buf_append(out, IDX_MAGIC, 4);
    ob_buf_put_u32(out, (uint32_t)npacks);
    for (size_t i = 0; i < npacks; i++) {
        const index_pack *p = pack_at(ix, i);
        ob_buf_append(out, p->id, OB_ID_LEN);
        ob_buf_append(out, p->salt, 32);
        ob_buf_put_u32(out, c.counts[i]);
        c.at[i] = out->len;
        out->len += (size_t)c.counts[i] * IDX_BLOB_LEN; /* filled below */
    }
    c.base = out->data;
    repo_index_foreach(ix, enc_put, &c);
    out->data[out->len] = 0; /* ob_buf keeps a NUL past the end */
    free(c.counts);
    free(c.at);
}

int repo_index_decode(repo_index *ix, const uint8_t *data, size_t len, ob_err *err)
{
    ob_rd r = ob_rd_init(data, len);
    const uint8_t *magic = ob_rd_take(&r, 4);
    if (!magic || memcmp(magic, IDX_MAGIC, 4) != 0)
        return ob_err_set(err, OB_ECORRUPT, "index payload has a bad magic");
    uint32_t npacks = ob_rd_u32(&r);
    for (uint32_t i = 0; i < npacks && !r.bad; i++) {
        const uint8_t *pid = ob_rd_take(&r, OB_ID_LEN);
        const uint8_t *salt = ob_rd_take(&r, 32);
        uint32_t nblobs = ob_rd_u32(&r);
        if (r.bad || (uint64_t)nblobs * IDX_BLOB_LEN > r.left)
            return ob_err_set(err, OB_ECORRUPT, "index payload is truncated");
        uint32_t pos = repo_index_add_pack(ix, pid, salt);
        for (uint32_t j = 0; j < nblobs; j++) {
            index_entry e;
            ob_rd_copy(&r, e.id, OB_ID_LEN);
            uint8_t type = ob_rd_u8(&r), comp = ob_rd_u8(&r);
            uint32_t seq = ob_rd_u32(&r);
            e.offset = ob_rd_u32(&r);
            e.length = ob_rd_u32(&r);
            e.raw_len = ob_rd_u32(&r);
            if (type < 1 || type > 15 || comp > 15 || seq > INDEX_MAX_SEQ)
                return ob_err_set(err, OB_ECORRUPT, "index entry has invalid fields");
            e.pack = pos;
            e.meta = INDEX_META(seq, comp, type);
            repo_index_pack_extend(ix, pos, (uint64_t)e.offset + e.length);
            /* Loading appends to the sorted array and sorts once at merge:
             * no hash table, so 52 bytes per blob (see index.h). */
            if (ix->nsorted == ix->sorted_cap) {
                ix->sorted_cap = ix->sorted_cap ? ix->sorted_cap + ix->sorted_cap / 2 : 1024;
                ix->sorted = ob_xrealloc(ix->sorted, ix->sorted_cap * sizeof *ix->sorted);
            }
            ix->sorted[ix->nsorted++] = e;
            ix->sorted_dirty = 1;
        }
    }
    if (r.bad || r.left != 0)
        return ob_err_set(err, OB_ECORRUPT, "index payload is truncated or has trailing bytes");
    return 0;
}
