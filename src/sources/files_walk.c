/*
 * files_walk.c — walking and comparing snapshot trees (ls, diff), and
 * showing raw path bytes safely on a terminal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repo/treeio.h"
#include "sources/files.h"

static char *join(const char *dir, const char *name)
{
    return strcmp(dir, "/") == 0 ? ob_xasprintf("/%s", name) : ob_xasprintf("%s/%s", dir, name);
}

/* The walkers recurse once per level: trees deeper than the format allows
 * (a damaged or crafted snapshot) are refused before they are entered, so
 * the stack is bounded by TREE_MAX_DEPTH frames.  depth is the level of
 * the tree being walked (the root tree is 0). */
static int too_deep(const char *path, ob_err *err)
{
    return ob_err_set(err, OB_ECORRUPT,
                      "directory %s is nested more than %d levels deep, the most a snapshot "
                      "may hold (docs/FORMAT.md 12.6): the snapshot is damaged or was crafted",
                      path, TREE_MAX_DEPTH);
}

static int walk_tree(repo *r, const char *dir, const uint8_t id[OB_ID_LEN], int depth,
                     files_visit_cb cb, void *ud, ob_err *err)
{
    tree t;
    tree_init(&t);
    int rc = treeio_load(r, id, &t, err);
    for (size_t i = 0; i < t.n && rc == 0; i++) {
        const tree_node *n = &t.nodes[i];
        char *path = join(dir, (const char *)n->name);
        int stop = cb(path, n, ud);
        if (stop < 0)
            rc = -1;
        else if (stop == 0 && n->type == TREE_DIR)
            rc = depth >= TREE_MAX_DEPTH ? too_deep(path, err)
                                         : walk_tree(r, path, n->subtree, depth + 1, cb, ud, err);
        free(path);
    }
    tree_free(&t);
    return rc;
}

int files_walk(repo *r, const uint8_t root[OB_ID_LEN], files_visit_cb cb, void *ud, ob_err *err)
{
    return walk_tree(r, "/", root, 0, cb, ud, err);
}

static int same_content(const tree_node *a, const tree_node *b)
{
    if (a->size != b->size || a->nextents != b->nextents)
        return 0;
    for (size_t i = 0; i < a->nextents; i++)
        if (a->extents[i].offset != b->extents[i].offset ||
            a->extents[i].len != b->extents[i].len || a->extents[i].skip != b->extents[i].skip ||
            memcmp(a->extents[i].id, b->extents[i].id, OB_ID_LEN) != 0)
            return 0;
    if (a->type == TREE_SYMLINK &&
        (a->link_len != b->link_len || memcmp(a->link_target, b->link_target, a->link_len) != 0))
        return 0;
    return a->rdev == b->rdev;
}

static int same_meta(const tree_node *a, const tree_node *b)
{
    if (a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
        a->mtime_sec != b->mtime_sec || a->mtime_nsec != b->mtime_nsec ||
        a->nxattrs != b->nxattrs)
        return 0;
    for (size_t i = 0; i < a->nxattrs; i++)
        if (strcmp(a->xattrs[i].name, b->xattrs[i].name) != 0 ||
            a->xattrs[i].value_len != b->xattrs[i].value_len ||
            memcmp(a->xattrs[i].value, b->xattrs[i].value, a->xattrs[i].value_len) != 0)
            return 0;
    return 1;
}

/* Report every entry below a tree as added or removed. */
static int diff_all(repo *r, char change, const char *dir, const uint8_t id[OB_ID_LEN],
                    int depth, files_diff_cb cb, void *ud, ob_err *err)
{
    tree t;
    tree_init(&t);
    int rc = treeio_load(r, id, &t, err);
    for (size_t i = 0; i < t.n && rc == 0; i++) {
        const tree_node *n = &t.nodes[i];
        char *path = join(dir, (const char *)n->name);
        rc = cb(change, path, change == '-' ? n : NULL, change == '+' ? n : NULL, ud);
        if (rc == 0 && n->type == TREE_DIR)
            rc = depth >= TREE_MAX_DEPTH
                     ? too_deep(path, err)
                     : diff_all(r, change, path, n->subtree, depth + 1, cb, ud, err);
        free(path);
    }
    tree_free(&t);
    return rc;
}

static int diff_tree(repo *r, const char *dir, const uint8_t a[OB_ID_LEN],
                     const uint8_t b[OB_ID_LEN], int depth, files_diff_cb cb, void *ud,
                     ob_err *err)
{
    if (memcmp(a, b, OB_ID_LEN) == 0)
        return 0; /* identical subtrees: nothing below differs */
    tree ta, tb;
    tree_init(&ta);
    tree_init(&tb);
    int rc = treeio_load(r, a, &ta, err);
    if (rc == 0)
        rc = treeio_load(r, b, &tb, err);
    size_t i = 0, j = 0;
    while (rc == 0 && (i < ta.n || j < tb.n)) {
        const tree_node *x = i < ta.n ? &ta.nodes[i] : NULL;
        const tree_node *y = j < tb.n ? &tb.nodes[j] : NULL;
        int c;
        if (!x)
            c = 1;
        else if (!y)
            c = -1;
        else
            c = strcmp((const char *)x->name, (const char *)y->name);
        const tree_node *n = c <= 0 ? x : y;
        char *path = join(dir, (const char *)n->name);
        if (c < 0) {
            rc = cb('-', path, x, NULL, ud);
            if (rc == 0 && x->type == TREE_DIR)
                rc = depth >= TREE_MAX_DEPTH
                         ? too_deep(path, err)
                         : diff_all(r, '-', path, x->subtree, depth + 1, cb, ud, err);
            i++;
        } else if (c > 0) {
            rc = cb('+', path, NULL, y, ud);
            if (rc == 0 && y->type == TREE_DIR)
                rc = depth >= TREE_MAX_DEPTH
                         ? too_deep(path, err)
                         : diff_all(r, '+', path, y->subtree, depth + 1, cb, ud, err);
            j++;
        } else {
            if (x->type != y->type) {
                rc = cb('T', path, x, y, ud);
            } else if (x->type == TREE_DIR) {
                if (!same_meta(x, y))
                    rc = cb('U', path, x, y, ud);
                /* (Identical subtrees return at once, however deep.) */
                if (rc == 0 && memcmp(x->subtree, y->subtree, OB_ID_LEN) != 0)
                    rc = depth >= TREE_MAX_DEPTH
                             ? too_deep(path, err)
                             : diff_tree(r, path, x->subtree, y->subtree, depth + 1, cb, ud,
                                         err);
            } else if (!same_content(x, y)) {
                rc = cb('M', path, x, y, ud);
            } else if (!same_meta(x, y)) {
                rc = cb('U', path, x, y, ud);
            }
            i++;
            j++;
        }
        free(path);
    }
    tree_free(&ta);
    tree_free(&tb);
    return rc;
}

int files_diff(repo *r, const uint8_t a[OB_ID_LEN], const uint8_t b[OB_ID_LEN],
               files_diff_cb cb, void *ud, ob_err *err)
{
    return diff_tree(r, "/", a, b, 0, cb, ud, err);
}

/* Length of a valid UTF-8 sequence at s (0 if invalid). */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n;
    uint32_t min;
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2;
        min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3;
        min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    uint32_t cp = s[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

char *files_path_display(const char *path)
{
    ob_buf b = OB_BUF_INIT;
    const unsigned char *s = (const unsigned char *)path;
    while (*s) {
        if (*s == '\\') {
            ob_buf_append(&b, "\\\\", 2);
            s++;
        } else if (*s == '\n') {
            ob_buf_append(&b, "\\n", 2);
            s++;
        } else if (*s == '\t') {
            ob_buf_append(&b, "\\t", 2);
            s++;
        } else if (*s < 0x20 || *s == 0x7F) {
            ob_buf_printf(&b, "\\x%02x", *s);
            s++;
        } else {
            size_t n = utf8_len(s);
            if (n == 0) {
                ob_buf_printf(&b, "\\x%02x", *s);
                s++;
            } else {
                ob_buf_append(&b, s, n);
                s += n;
            }
        }
    }
    return (char *)ob_buf_steal(&b, NULL);
}
