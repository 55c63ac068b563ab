/*
 * superblock.c — super blocks with slices kept from the parent (see
 * superblock.h for the why; FORMAT.md 12.2 for the version 2 extent).
 */
#include "sources/superblock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Parent chunks kept once read: a super block's slices usually come from
 * one chunk, read once, and the few run chunks compared by bytes (when
 * their ID differed) do not push it out. */
#define SB_CACHE 4
/* Parent extents of one super block whose ID was compared: at most one per
 * block, and a few straddling its edges. */
#define SB_MEMO 64

typedef struct sb_chunk {
    uint8_t id[OB_ID_LEN];
    int state;                 /* 0 empty, 1 bytes in buf, -1 unusable */
    ob_buf buf;
} sb_chunk;

struct superblock {
    repo *r;
    repo_writer *w;
    size_t super_size, block_size;
    uint8_t *buf;              /* one super block of the file */
    sb_chunk cache[SB_CACHE];
    size_t cache_next;         /* the entry to replace next */
    uint64_t reads;            /* parent chunks read (superblock_parent_reads) */
    /* For the current super block: parent extents lying inside it that
     * are whole chunks, and whether the new bytes have their ID. */
    const tree_extent *memo_pe[SB_MEMO];
    int memo_equal[SB_MEMO];
    size_t nmemo;
};

superblock *superblock_new(repo *r, repo_writer *w, size_t super_size, size_t block_size)
{
    superblock *sb = ob_xcalloc(1, sizeof *sb);
    sb->r = r;
    sb->w = w;
    sb->super_size = super_size;
    sb->block_size = block_size;
    sb->buf = ob_xmalloc(super_size);
    return sb;
}

void superblock_free(superblock *sb)
{
    if (!sb)
        return;
    free(sb->buf);
    for (size_t i = 0; i < SB_CACHE; i++)
        ob_buf_free(&sb->cache[i].buf);
    free(sb);
}

uint64_t superblock_parent_reads(const superblock *sb)
{
    return sb->reads;
}

/* The parent's extent that holds all of [o, o + len), or NULL.  Extents
 * are sorted by offset and do not overlap (tree_decode checks). */
static const tree_extent *parent_cover(const tree_node *p, uint64_t o, size_t len)
{
    size_t lo = 0, hi = p->nextents;
    while (lo < hi) { /* first extent starting after o */
        size_t mid = lo + (hi - lo) / 2;
        if (p->extents[mid].offset <= o)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const tree_extent *e = &p->extents[lo - 1];
    if (o + len > e->offset + e->len)
        return NULL;
    return e;
}

/* The bytes of the parent's extent e, from the repository (kept for the
 * next calls), or NULL if they cannot be had: the block is then simply
 * stored again, and the backup does not depend on a parent chunk that
 * cannot be read back. */
static const uint8_t *parent_bytes(superblock *sb, const tree_extent *e)
{
    sb_chunk *c = NULL;
    for (size_t i = 0; i < SB_CACHE && !c; i++)
        if (sb->cache[i].state && memcmp(sb->cache[i].id, e->id, OB_ID_LEN) == 0)
            c = &sb->cache[i];
    if (!c) {
        c = &sb->cache[sb->cache_next++ % SB_CACHE];
        memcpy(c->id, e->id, OB_ID_LEN);
        ob_err err = OB_ERR_INIT;
        sb->reads++;
        c->state = repo_writer_has(sb->w, e->id) &&
                           repo_read_blob(sb->r, e->id, REPO_BLOB_DATA, &c->buf, &err) == 0
                       ? 1
                       : -1;
        if (c->state < 0 && err.code)
            ob_debug("parent chunk unusable, its blocks are stored again: %s",
                     ob_err_msg(&err));
        ob_err_clear(&err);
    }
    if (c->state < 0)
        return NULL;
    return tree_extent_bytes(e, c->buf.data, c->buf.len);
}

/* pe, a parent extent inside the super block sdata (file offset at, len
 * bytes): 1 if it is a whole chunk and the new bytes there have its keyed
 * ID, 0 if it is a whole chunk they differ from, -1 if it is not a whole
 * chunk.  Decided once per super block, and without reading anything:
 * after an incremental a super block is slices of one chunk between the
 * chunks of the runs that changed, and only the slices need the bytes. */
static int parent_whole_equal(superblock *sb, const tree_extent *pe, const uint8_t *sdata,
                              uint64_t at, size_t len)
{
    if (pe->skip != 0 || pe->offset < at || pe->len > len - (pe->offset - at))
        return -1;
    for (size_t i = 0; i < sb->nmemo; i++)
        if (sb->memo_pe[i] == pe)
            return sb->memo_equal[i];
    uint32_t raw = 0;
    ob_err ignore = OB_ERR_INIT;
    int r = -1;
    if (repo_blob_raw_len(sb->r, pe->id, REPO_BLOB_DATA, &raw, &ignore) == 0 && raw == pe->len) {
        uint8_t id[OB_ID_LEN];
        repo_blob_id(sb->r, REPO_BLOB_DATA, sdata + (pe->offset - at), pe->len, id);
        r = memcmp(id, pe->id, OB_ID_LEN) == 0 && repo_writer_has(sb->w, pe->id);
    }
    ob_err_clear(&ignore);
    if (sb->nmemo < SB_MEMO) {
        sb->memo_pe[sb->nmemo] = pe;
        sb->memo_equal[sb->nmemo++] = r;
    }
    return r;
}

/* Is block [o, o + len) of the super block sdata (file offset at, slen
 * bytes) what the parent had there?  If so *keep is the extent that says
 * so: a slice of the parent's chunk. */
static int block_kept(superblock *sb, const tree_node *parent, const uint8_t *sdata, uint64_t at,
                      size_t slen, uint64_t o, size_t len, tree_extent *keep)
{
    const tree_extent *pe = parent_cover(parent, o, len);
    if (!pe)
        return 0;
    keep->offset = o;
    keep->len = (uint32_t)len;
    keep->skip = pe->skip + (uint32_t)(o - pe->offset);
    memcpy(keep->id, pe->id, OB_ID_LEN);
    /* The parent stored these bytes as a chunk of their own (a run that
     * changed): equal IDs, equal bytes, nothing to read.  Different IDs
     * say only that some block of the run changed: compare the bytes. */
    if (parent_whole_equal(sb, pe, sdata, at, slen) == 1)
        return 1;
    const uint8_t *old = parent_bytes(sb, pe);
    return old && memcmp(old + (o - pe->offset), sdata + (o - at), len) == 0;
}

static void push(tree_node *n, size_t *cap, const tree_extent *x)
{
    /* A slice that continues the previous one (same chunk, next bytes,
     * next offset) extends it: a kept stretch is one extent. */
    if (n->nextents) {
        tree_extent *last = &n->extents[n->nextents - 1];
        if (x->skip && memcmp(last->id, x->id, OB_ID_LEN) == 0 &&
            last->offset + last->len == x->offset && last->skip + last->len == x->skip) {
            last->len += x->len;
            return;
        }
    }
    *stream_extent_push(n, cap) = *x;
}

static int store(superblock *sb, const uint8_t *data, uint64_t o, size_t len, tree_node *n,
                 size_t *cap, ob_err *err)
{
    tree_extent x;
    memset(&x, 0, sizeof x);
    x.offset = o;
    x.len = (uint32_t)len;
    if (repo_writer_add(sb->w, REPO_BLOB_DATA, data, len, x.id, NULL, err) < 0)
        return -1;
    push(n, cap, &x);
    return 0;
}

/* One super block, data[0, len) at file offset at. */
static int super_one(superblock *sb, const tree_node *parent, const uint8_t *data, uint64_t at,
                     size_t len, tree_node *n, size_t *cap, ob_err *err)
{
    if (!parent || parent->nextents == 0)
        return store(sb, data, at, len, n, cap, err);
    /* Unchanged since the parent stored it whole: one ID, nothing read
     * (and if it changed, the blocks below know without hashing again). */
    sb->nmemo = 0;
    const tree_extent *pe = parent_cover(parent, at, len);
    if (pe && pe->offset == at && pe->len == len &&
        parent_whole_equal(sb, pe, data, at, len) == 1) {
        push(n, cap, pe);
        return 0;
    }
    size_t nblocks = (len + sb->block_size - 1) / sb->block_size;
    tree_extent *keep = ob_xcalloc(nblocks, sizeof *keep);
    uint8_t *kept = ob_xcalloc(nblocks, 1);
    size_t kept_bytes = 0;
    for (size_t b = 0; b < nblocks; b++) {
        size_t off = b * sb->block_size;
        size_t bl = len - off < sb->block_size ? len - off : sb->block_size;
        kept[b] = (uint8_t)block_kept(sb, parent, data, at, len, at + off, bl, &keep[b]);
        if (kept[b])
            kept_bytes += bl;
    }
    /* A parent chunk is kept only for at least a quarter of its bytes:
     * slices keep their whole chunk stored, so one kept block of a 1 MiB
     * chunk would hold 1 MiB for 32 KiB of data for as long as this
     * snapshot exists, and a file changing a little at a time would pile
     * up such chunks.  (A chunk lies inside one super block, so this
     * super block is all of this snapshot that references it, unless
     * another super block has the very same bytes, zeros say.) */
    for (size_t b = 0; b < nblocks; b++) {
        if (kept[b] != 1)
            continue;
        size_t from_chunk = 0;
        for (size_t k = b; k < nblocks; k++)
            if (kept[k] == 1 && memcmp(keep[k].id, keep[b].id, OB_ID_LEN) == 0)
                from_chunk += keep[k].len;
        uint32_t raw = 0;
        ob_err ignore = OB_ERR_INIT;
        int small = repo_blob_raw_len(sb->r, keep[b].id, REPO_BLOB_DATA, &raw, &ignore) < 0 ||
                    from_chunk * 4 < raw;
        ob_err_clear(&ignore);
        for (size_t k = b; k < nblocks; k++) {
            if (kept[k] != 1 || memcmp(keep[k].id, keep[b].id, OB_ID_LEN) != 0)
                continue;
            kept[k] = small ? 0 : 2; /* 2: decided */
            if (small)
                kept_bytes -= keep[k].len;
        }
    }
    int rc = 0;
    if (kept_bytes * 4 < len) {
        rc = store(sb, data, at, len, n, cap, err);
    } else {
        for (size_t b = 0; b < nblocks && rc == 0;) {
            if (kept[b]) {
                push(n, cap, &keep[b]);
                b++;
                continue;
            }
            size_t e = b; /* a run of changed blocks: one chunk */
            while (e < nblocks && !kept[e])
                e++;
            size_t off = b * sb->block_size;
            size_t end = e * sb->block_size < len ? e * sb->block_size : len;
            rc = store(sb, data + off, at + off, end - off, n, cap, err);
            b = e;
        }
    }
    free(keep);
    free(kept);
    return rc;
}

int superblock_store(superblock *sb, const tree_node *parent, stream_read_fn rd, void *rd_ud,
                     const char *what, uint64_t start, uint64_t end, tree_node *n,
                     size_t *ext_cap, void (*tick)(void *ud, uint64_t bytes), void *tick_ud,
                     uint64_t *consumed, ob_err *err)
{
    uint64_t pos = start;
    *consumed = 0;
    while (pos < end) {
        /* Super blocks sit at multiples of super_size in the file, so that
         * a region starting after a hole still lines up with the parent. */
        uint64_t next = (pos / sb->super_size + 1) * sb->super_size;
        size_t want = (size_t)((next < end ? next : end) - pos), got = 0;
        while (got < want) {
            ssize_t k = rd(rd_ud, sb->buf + got, want - got);
            if (k < 0)
                return ob_err_errno(err, errno, "reading %s at offset %llu", what,
                                    (unsigned long long)(pos + got));
            if (k == 0)
                break;
            got += (size_t)k;
        }
        if (got && super_one(sb, parent, sb->buf, pos, got, n, ext_cap, err) < 0)
            return -1;
        pos += got;
        *consumed += got;
        if (tick && got)
            tick(tick_ud, got);
        if (got < want) /* the end of the stream: the file shrank */
            break;
    }
    return 0;
}
