/*
 * tree.c — canonical binary encoding of one directory listing.
 *
 * The byte layout is specified in docs/FORMAT.md ("Tree blobs"); the short
 * version is a magic "OBT1", a u32 node count, then each node's fields in a
 * fixed order, all little-endian, with a type-specific tail (extents for
 * files, the child tree ID for directories, the target for symlinks).
 * Version 2 ("OBT2") differs only in its extents, which also say where in
 * their chunk they start (a slice of a larger chunk: D64).
 *
 * Canonical means: a given set of entries has exactly one valid encoding.
 * The encoder emits nodes sorted by name and xattrs sorted by name, and the
 * decoder rejects every other ordering, duplicates, out-of-range
 * nanoseconds or mode bits, and trailing bytes.  Consequently, whenever
 * tree_decode accepts some bytes, tree_encode of the result reproduces them
 * exactly (tree_test checks this by mutating a valid encoding), so a tree
 * blob's ID really is a function of the directory's contents.
 *
 * tree_decode parses untrusted bytes (a repository may be hostile or
 * damaged).  Every read goes through ob_rd, and every count is compared with
 * what the remaining input could possibly hold before anything is allocated,
 * so a forged count cannot make us allocate more than a small multiple of
 * the input's size.
 */
#include "repo/tree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TREE_MAGIC "OBT1"
#define TREE_MAGIC2 "OBT2"
#define TREE_MAGIC_LEN 4
/* Length prefix meaning "no string" for user/group (an unknown owner name is
 * different from an empty one, and no real string is 4 GiB long). */
#define TREE_STR_ABSENT UINT32_MAX
#define TREE_NSEC_MAX 999999999u
#define TREE_MODE_MASK 07777u

/* Smallest possible encoded node: no xattrs, no tail (a FIFO or socket) and
 * an empty name (invalid, but counted so that such a node is reported as an
 * unsafe name rather than as a bad count).  Used to reject node counts the
 * input cannot hold.
 *   name 4, type 1, mode 4, uid 4, gid 4, user 4, group 4,
 *   3 x (sec 8 + nsec 4), dev 8, inode 8, nlink 4, size 8, rdev 8, nxattrs 4 */
#define TREE_MIN_NODE (4 + 1 + 4 + 4 + 4 + 4 + 4 + 36 + 8 + 8 + 4 + 8 + 8 + 4)
#define TREE_MIN_XATTR (4 + 1 + 4)                 /* non-empty name, empty value */
#define TREE_EXTENT_SIZE (8 + 4 + TREE_ID_LEN)
#define TREE_EXTENT2_SIZE (8 + 4 + 4 + TREE_ID_LEN)

/* ---- in-memory helpers ---------------------------------------------- */

void tree_init(tree *t)
{
    t->nodes = NULL;
    t->n = t->cap = 0;
    t->version = 1;
}

void tree_node_free(tree_node *n)
{
    free(n->name);
    free(n->user);
    free(n->group);
    free(n->link_target);
    for (size_t i = 0; i < n->nxattrs; i++) {
        free(n->xattrs[i].name);
        free(n->xattrs[i].value);
    }
    free(n->xattrs);
    free(n->extents);
    /* Zero the node so a second free (or a reuse) is harmless. */
    memset(n, 0, sizeof *n);
}

void tree_free(tree *t)
{
    for (size_t i = 0; i < t->n; i++)
        tree_node_free(&t->nodes[i]);
    free(t->nodes);
    tree_init(t);
}

tree_node *tree_add(tree *t)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        if (cap < t->cap || cap > SIZE_MAX / sizeof(tree_node))
            abort(); /* cannot happen before memory runs out */
        t->nodes = ob_xrealloc(t->nodes, cap * sizeof(tree_node));
        t->cap = cap;
    }
    tree_node *n = &t->nodes[t->n++];
    memset(n, 0, sizeof *n);
    return n;
}

void tree_node_set_name(tree_node *n, const void *name, size_t len)
{
    uint8_t *p = ob_xmalloc(len + 1);
    if (len)
        memcpy(p, name, len);
    p[len] = 0;
    free(n->name);
    n->name = p;
    n->name_len = len;
}

/* memcmp order, a proper prefix sorts first.  Safe with NULL when len 0. */
static int name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t m = alen < blen ? alen : blen;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int node_cmp(const void *a, const void *b)
{
    const tree_node *x = a, *y = b;
    return name_cmp(x->name, x->name_len, y->name, y->name_len);
}

void tree_sort(tree *t)
{
    if (t->n > 1)
        qsort(t->nodes, t->n, sizeof(tree_node), node_cmp);
}

tree_node *tree_find(const tree *t, const void *name, size_t len)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        tree_node *n = &t->nodes[mid];
        int c = name_cmp(n->name, n->name_len, name, len);
        if (c == 0)
            return n;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int tree_name_is_safe(const uint8_t *name, size_t len)
{
    if (!name || len == 0)
        return 0;
    if (len == 1 && name[0] == '.')
        return 0;
    if (len == 2 && name[0] == '.' && name[1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (name[i] == '/' || name[i] == 0)
            return 0;
    return 1;
}

int tree_extent_fits(const tree_extent *e, uint64_t chunk_len)
{
    return e->skip <= chunk_len && e->len <= chunk_len - e->skip;
}

const uint8_t *tree_extent_bytes(const tree_extent *e, const uint8_t *chunk, size_t chunk_len)
{
    return tree_extent_fits(e, chunk_len) ? chunk + e->skip : NULL;
}

/* ---- encoding --------------------------------------------------------- */

static void put_str_opt(ob_buf *out, const char *s)
{
    if (!s)
        ob_buf_put_u32(out, TREE_STR_ABSENT);
    else
        ob_buf_put_bytes(out, s, strlen(s));
}

static void put_time(ob_buf *out, int64_t sec, uint32_t nsec)
{
    ob_buf_put_u64(out, (uint64_t)sec); /* two's complement */
    ob_buf_put_u32(out, nsec);
}

static int xattr_ptr_cmp(const void *a, const void *b)
{
    const tree_xattr *x = *(const tree_xattr *const *)a, *y = *(const tree_xattr *const *)b;
    return name_cmp((const uint8_t *)x->name, strlen(x->name), (const uint8_t *)y->name,
                    strlen(y->name));
}

static void encode_node(const tree_node *n, int version, ob_buf *out)
{
    ob_buf_put_bytes(out, n->name, n->name_len);
    ob_buf_putc(out, n->type);
    ob_buf_put_u32(out, n->mode);
    ob_buf_put_u32(out, n->uid);
    ob_buf_put_u32(out, n->gid);
    put_str_opt(out, n->user);
    put_str_opt(out, n->group);
    put_time(out, n->mtime_sec, n->mtime_nsec);
    put_time(out, n->atime_sec, n->atime_nsec);
    put_time(out, n->ctime_sec, n->ctime_nsec);
    ob_buf_put_u64(out, n->dev);
    ob_buf_put_u64(out, n->inode);
    ob_buf_put_u32(out, n->nlink);
    ob_buf_put_u64(out, n->size);
    ob_buf_put_u64(out, n->rdev);

    /* xattrs are documented as sorted, but the encoding must not depend on
     * the caller getting that right: emit them through a sorted view so a
     * mis-ordered list still yields the canonical (decodable) bytes. */
    ob_buf_put_u32(out, (uint32_t)n->nxattrs);
    if (n->nxattrs) {
        const tree_xattr **v = ob_xcalloc(n->nxattrs, sizeof *v);
        for (size_t i = 0; i < n->nxattrs; i++)
            v[i] = &n->xattrs[i];
        qsort(v, n->nxattrs, sizeof *v, xattr_ptr_cmp);
        for (size_t i = 0; i < n->nxattrs; i++) {
            ob_buf_put_bytes(out, v[i]->name, strlen(v[i]->name));
            ob_buf_put_bytes(out, v[i]->value, v[i]->value_len);
        }
        free(v);
    }

    switch (n->type) {
    case TREE_FILE:
        ob_buf_put_u32(out, (uint32_t)n->nextents);
        for (size_t i = 0; i < n->nextents; i++) {
            ob_buf_put_u64(out, n->extents[i].offset);
            ob_buf_put_u32(out, n->extents[i].len);
            if (version >= 2)
                ob_buf_put_u32(out, n->extents[i].skip);
            ob_buf_append(out, n->extents[i].id, TREE_ID_LEN);
        }
        break;
    case TREE_DIR:
        ob_buf_append(out, n->subtree, TREE_ID_LEN);
        break;
    case TREE_SYMLINK:
        ob_buf_put_bytes(out, n->link_target, n->link_len);
        break;
    default:
        break;
    }
}

/* Version 2 only where it is needed or was asked for: every tree a files
 * backup writes stays byte for byte what it was, so it deduplicates with
 * the trees of older snapshots. */
static int encode_version(const tree *t)
{
    if (t->version >= 2)
        return 2;
    for (size_t i = 0; i < t->n; i++)
        for (size_t k = 0; t->nodes[i].type == TREE_FILE && k < t->nodes[i].nextents; k++)
            if (t->nodes[i].extents[k].skip)
                return 2;
    return 1;
}

void tree_encode(const tree *t, ob_buf *out)
{
    int version = encode_version(t);
    ob_buf_append(out, version == 2 ? TREE_MAGIC2 : TREE_MAGIC, TREE_MAGIC_LEN);
    ob_buf_put_u32(out, (uint32_t)t->n);
    for (size_t i = 0; i < t->n; i++)
        encode_node(&t->nodes[i], version, out);
}

/* ---- decoding --------------------------------------------------------- */

/* Render a hostile name for an error message: printable ASCII as is, the
 * rest as \xNN, cut after 64 bytes so a 4 GiB name cannot flood a log. */
static char *name_for_msg(const uint8_t *p, size_t len)
{
    ob_buf b = OB_BUF_INIT;
    size_t shown = len > 64 ? 64 : len;
    for (size_t i = 0; i < shown; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' && p[i] != '"')
            ob_buf_putc(&b, p[i]);
        else
            ob_buf_printf(&b, "\\x%02x", p[i]);
    }
    if (shown < len)
        ob_buf_printf(&b, "...(%zu bytes)", len);
    return (char *)ob_buf_steal(&b, NULL);
}

static int corrupt(ob_err *err, size_t idx, const char *what)
{
    return ob_err_set(err, OB_ECORRUPT, "tree node %zu: %s", idx, what);
}

static int unsafe_name(ob_err *err, size_t idx, const uint8_t *name, size_t len, const char *why)
{
    char *s = name_for_msg(name, len);
    ob_err_set(err, OB_EUNSAFE, "tree node %zu: entry name \"%s\" refused: %s", idx, s, why);
    free(s);
    return -1;
}

/* Copy len bytes into a new NUL-terminated allocation.  The bytes were
 * already bounds-checked by ob_rd, so len is bounded by the input size. */
static uint8_t *dup_bytes(const uint8_t *p, size_t len)
{
    uint8_t *s = ob_xmalloc(len + 1);
    if (len)
        memcpy(s, p, len);
    s[len] = 0;
    return s;
}

/* Optional string (user/group): absent marker or bytes without NUL. */
static int get_str_opt(ob_rd *r, char **out, size_t idx, const char *what, ob_err *err)
{
    *out = NULL;
    uint32_t len = ob_rd_u32(r);
    if (r->bad)
        return corrupt(err, idx, "truncated");
    if (len == TREE_STR_ABSENT)
        return 0;
    const uint8_t *p = ob_rd_take(r, len);
    if (!p)
        return corrupt(err, idx, "truncated");
    if (memchr(p, 0, len)) {
        ob_err_set(err, OB_ECORRUPT, "tree node %zu: %s name contains a NUL byte", idx, what);
        return -1;
    }
    *out = (char *)dup_bytes(p, len);
    return 0;
}

static int get_time(ob_rd *r, int64_t *sec, uint32_t *nsec, size_t idx, ob_err *err)
{
    *sec = (int64_t)ob_rd_u64(r);
    *nsec = ob_rd_u32(r);
    if (r->bad)
        return corrupt(err, idx, "truncated");
    if (*nsec > TREE_NSEC_MAX)
        return corrupt(err, idx, "nanoseconds out of range");
    return 0;
}

static int decode_xattrs(ob_rd *r, tree_node *n, size_t idx, ob_err *err)
{
    uint32_t count = ob_rd_u32(r);
    if (r->bad)
        return corrupt(err, idx, "truncated");
    if (count == 0)
        return 0;
    if (count > r->left / TREE_MIN_XATTR)
        return corrupt(err, idx, "xattr count exceeds the data");
    n->xattrs = ob_xcalloc(count, sizeof(tree_xattr));
    for (uint32_t i = 0; i < count; i++) {
        uint32_t nlen, vlen;
        const uint8_t *name = ob_rd_bytes(r, &nlen);
        if (!name)
            return corrupt(err, idx, "truncated xattr");
        if (nlen == 0 || memchr(name, 0, nlen))
            return corrupt(err, idx, "xattr name is empty or contains a NUL byte");
        if (i > 0) {
            const tree_xattr *prev = &n->xattrs[i - 1];
            if (name_cmp((const uint8_t *)prev->name, strlen(prev->name), name, nlen) >= 0)
                return corrupt(err, idx, "xattrs not sorted by name or duplicated");
        }
        const uint8_t *val = ob_rd_bytes(r, &vlen);
        if (!val)
            return corrupt(err, idx, "truncated xattr");
        tree_xattr *x = &n->xattrs[i];
        x->name = (char *)dup_bytes(name, nlen);
        x->value = dup_bytes(val, vlen);
        x->value_len = vlen;
        n->nxattrs = i + 1; /* count only fully owned entries for tree_node_free */
    }
    return 0;
}

static int decode_extents(ob_rd *r, tree_node *n, int version, size_t idx, ob_err *err)
{
    uint32_t count = ob_rd_u32(r);
    if (r->bad)
        return corrupt(err, idx, "truncated");
    if (count == 0)
        return 0;
    if (count > r->left / (version >= 2 ? TREE_EXTENT2_SIZE : TREE_EXTENT_SIZE))
        return corrupt(err, idx, "extent count exceeds the data");
    n->extents = ob_xcalloc(count, sizeof(tree_extent));
    n->nextents = count;
    uint64_t end = 0; /* end of the previous extent */
    for (uint32_t i = 0; i < count; i++) {
        tree_extent *e = &n->extents[i];
        e->offset = ob_rd_u64(r);
        e->len = ob_rd_u32(r);
        if (version >= 2)
            e->skip = ob_rd_u32(r);
        ob_rd_copy(r, e->id, TREE_ID_LEN);
        if (r->bad)
            return corrupt(err, idx, "truncated extent");
        /* Whether skip + len fits in the chunk is for the reader, who
         * knows the chunk's length; here only that the sum is a number. */
        if (e->skip > UINT32_MAX - e->len)
            return corrupt(err, idx, "extent slice runs past 4 GiB");
        /* A zero-length extent carries nothing and would make two
         * encodings of the same file possible. */
        if (e->len == 0)
            return corrupt(err, idx, "zero-length extent");
        if (e->offset < end)
            return ob_err_set(err, OB_EUNSAFE,
                              "tree node %zu: extent %u at offset %llu overlaps the previous one "
                              "or is out of order",
                              idx, i, (unsigned long long)e->offset);
        /* Written without e->offset + e->len so it cannot overflow. */
        if (e->offset > n->size || e->len > n->size - e->offset)
            return ob_err_set(err, OB_EUNSAFE,
                              "tree node %zu: extent %u [%llu, +%u) runs past the file size %llu",
                              idx, i, (unsigned long long)e->offset, e->len,
                              (unsigned long long)n->size);
        end = e->offset + e->len;
    }
    return 0;
}

static int decode_node(ob_rd *r, tree_node *n, const tree_node *prev, int version, size_t idx,
                       ob_err *err)
{
    uint32_t nlen;
    const uint8_t *name = ob_rd_bytes(r, &nlen);
    if (!name)
        return corrupt(err, idx, "truncated name");
    if (!tree_name_is_safe(name, nlen))
        return unsafe_name(err, idx, name, nlen,
                           "empty, \".\", \"..\", or containing '/' or NUL");
    if (prev) {
        int c = name_cmp(prev->name, prev->name_len, name, nlen);
        if (c == 0)
            return unsafe_name(err, idx, name, nlen, "duplicate name");
        if (c > 0)
            return unsafe_name(err, idx, name, nlen, "names not in sorted order");
    }
    tree_node_set_name(n, name, nlen);

    n->type = ob_rd_u8(r);
    n->mode = ob_rd_u32(r);
    n->uid = ob_rd_u32(r);
    n->gid = ob_rd_u32(r);
    if (r->bad)
        return corrupt(err, idx, "truncated");
    if (n->type < TREE_FILE || n->type > TREE_SOCKET)
        return ob_err_set(err, OB_EUNSAFE, "tree node %zu: unknown entry type %u", idx,
                          (unsigned)n->type);
    if (n->mode & ~TREE_MODE_MASK)
        return corrupt(err, idx, "mode has bits outside 07777");
    if (get_str_opt(r, &n->user, idx, "user", err) < 0 ||
        get_str_opt(r, &n->group, idx, "group", err) < 0)
        return -1;
    if (get_time(r, &n->mtime_sec, &n->mtime_nsec, idx, err) < 0 ||
        get_time(r, &n->atime_sec, &n->atime_nsec, idx, err) < 0 ||
        get_time(r, &n->ctime_sec, &n->ctime_nsec, idx, err) < 0)
        return -1;
    n->dev = ob_rd_u64(r);
    n->inode = ob_rd_u64(r);
    n->nlink = ob_rd_u32(r);
    n->size = ob_rd_u64(r);
    n->rdev = ob_rd_u64(r);
    if (r->bad)
        return corrupt(err, idx, "truncated");
    if (decode_xattrs(r, n, idx, err) < 0)
        return -1;

    switch (n->type) {
    case TREE_FILE:
        return decode_extents(r, n, version, idx, err);
    case TREE_DIR:
        ob_rd_copy(r, n->subtree, TREE_ID_LEN);
        if (r->bad)
            return corrupt(err, idx, "truncated subtree ID");
        return 0;
    case TREE_SYMLINK: {
        uint32_t tlen;
        const uint8_t *target = ob_rd_bytes(r, &tlen);
        if (!target)
            return corrupt(err, idx, "truncated symlink target");
        /* The kernel cannot store a NUL inside a target; one here could
         * only serve to make the restored link differ from what we show. */
        if (memchr(target, 0, tlen))
            return corrupt(err, idx, "symlink target contains a NUL byte");
        n->link_target = dup_bytes(target, tlen);
        n->link_len = tlen;
        return 0;
    }
    default:
        return 0;
    }
}

int tree_decode(const uint8_t *data, size_t len, tree *out, ob_err *err)
{
    tree_init(out);
    ob_rd r = ob_rd_init(data, len);
    const uint8_t *magic = ob_rd_take(&r, TREE_MAGIC_LEN);
    if (magic && memcmp(magic, TREE_MAGIC2, TREE_MAGIC_LEN) == 0)
        out->version = 2;
    else if (!magic || memcmp(magic, TREE_MAGIC, TREE_MAGIC_LEN) != 0)
        return ob_err_set(err, OB_ECORRUPT, "not a tree (bad magic; expected \"" TREE_MAGIC
                                            "\" or \"" TREE_MAGIC2 "\")");
    uint32_t count = ob_rd_u32(&r);
    if (r.bad)
        return ob_err_set(err, OB_ECORRUPT, "tree truncated in its header");
    if (count > r.left / TREE_MIN_NODE)
        return ob_err_set(err, OB_ECORRUPT, "tree claims %u entries but holds only %zu bytes",
                          count, r.left);
    if (count) {
        out->nodes = ob_xcalloc(count, sizeof(tree_node));
        out->cap = count;
    }
    for (uint32_t i = 0; i < count; i++) {
        /* n counts the node before decoding so tree_free releases whatever a
         * failed decode_node already attached to it. */
        tree_node *n = &out->nodes[out->n++];
        if (decode_node(&r, n, i ? &out->nodes[i - 1] : NULL, out->version, i, err) < 0) {
            tree_free(out);
            return -1;
        }
    }
    if (r.left != 0) {
        tree_free(out);
        return ob_err_set(err, OB_ECORRUPT, "tree has %zu trailing bytes after %u entries",
                          r.left, count);
    }
    return 0;
}
