/*
 * copy.c — copying snapshots between repositories (see copy.h).
 */
#include "repo/copy.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "repo/tree.h"
#include "repo/treeio.h"

/* Source ID -> destination ID, for every tree and blob handled in this
 * run: a subtree shared by several snapshots is rewritten once, and a
 * chunk repeated in many files is read once.  Open addressing; the keys
 * are MACs, so their first bytes are already a good hash. */
typedef struct id_pair {
    uint8_t src[OB_ID_LEN], dst[OB_ID_LEN];
    int used;
} id_pair;

struct repo_copier {
    repo *src, *dst;
    repo_writer *w;
    int same_ids;             /* both repositories compute the same IDs */
    id_pair *map;
    size_t cap, n;
    ob_buf blob;
    repo_copy_stats st;
};

static size_t slot_of(const uint8_t id[OB_ID_LEN], size_t cap)
{
    uint64_t h;
    memcpy(&h, id, sizeof h);
    return (size_t)(h & (cap - 1));
}

static const uint8_t *map_get(const repo_copier *c, const uint8_t id[OB_ID_LEN])
{
    if (!c->cap)
        return NULL;
    for (size_t i = slot_of(id, c->cap);; i = (i + 1) & (c->cap - 1)) {
        if (!c->map[i].used)
            return NULL;
        if (memcmp(c->map[i].src, id, OB_ID_LEN) == 0)
            return c->map[i].dst;
    }
}

static void map_put(repo_copier *c, const uint8_t src[OB_ID_LEN], const uint8_t dst[OB_ID_LEN])
{
    if (2 * (c->n + 1) > c->cap) {
        size_t ncap = c->cap ? 2 * c->cap : 1024;
        id_pair *nm = ob_xcalloc(ncap, sizeof *nm);
        for (size_t i = 0; i < c->cap; i++) {
            if (!c->map[i].used)
                continue;
            size_t j = slot_of(c->map[i].src, ncap);
            while (nm[j].used)
                j = (j + 1) & (ncap - 1);
            nm[j] = c->map[i];
        }
        free(c->map);
        c->map = nm;
        c->cap = ncap;
    }
    size_t i = slot_of(src, c->cap);
    while (c->map[i].used) {
        if (memcmp(c->map[i].src, src, OB_ID_LEN) == 0)
            return;
        i = (i + 1) & (c->cap - 1);
    }
    memcpy(c->map[i].src, src, OB_ID_LEN);
    memcpy(c->map[i].dst, dst, OB_ID_LEN);
    c->map[i].used = 1;
    c->n++;
}

repo_copier *repo_copier_new(repo *src, repo *dst, repo_writer *w)
{
    repo_copier *c = ob_xcalloc(1, sizeof *c);
    c->src = src;
    c->dst = dst;
    c->w = w;
    /* Same MAC key <=> the same probe gets the same ID. */
    static const char probe[] = "opsbackup copy probe";
    uint8_t a[OB_ID_LEN], b[OB_ID_LEN];
    repo_blob_id(src, REPO_BLOB_DATA, probe, sizeof probe, a);
    repo_blob_id(dst, REPO_BLOB_DATA, probe, sizeof probe, b);
    c->same_ids = memcmp(a, b, OB_ID_LEN) == 0;
    return c;
}

void repo_copier_free(repo_copier *c)
{
    if (!c)
        return;
    free(c->map);
    ob_buf_free(&c->blob);
    free(c);
}

void repo_copier_stats(const repo_copier *c, repo_copy_stats *out)
{
    *out = c->st;
}

/* Already handled in this run?  Then dst_id gets its destination ID.
 * id is a private copy of the source ID: callers pass the same buffer as
 * source and destination (a tree entry rewritten in place). */
static int mapped(const repo_copier *c, uint8_t id[OB_ID_LEN], const uint8_t src_id[OB_ID_LEN],
                  uint8_t dst_id[OB_ID_LEN])
{
    memcpy(id, src_id, OB_ID_LEN);
    const uint8_t *known = map_get(c, id);
    if (known)
        memcpy(dst_id, known, OB_ID_LEN);
    return known != NULL;
}

/* Copy one data blob; dst_id receives its destination ID. */
static int copy_blob(repo_copier *c, const uint8_t src_id[OB_ID_LEN], uint8_t dst_id[OB_ID_LEN],
                     ob_err *err)
{
    uint8_t id[OB_ID_LEN];
    if (mapped(c, id, src_id, dst_id))
        return 0;
    if (c->same_ids && repo_writer_has(c->w, id)) {
        memcpy(dst_id, id, OB_ID_LEN);
        return 0;
    }
    if (repo_read_blob(c->src, id, REPO_BLOB_DATA, &c->blob, err) < 0)
        return -1;
    c->st.blobs_read++;
    if (repo_writer_add(c->w, REPO_BLOB_DATA, c->blob.data, c->blob.len, dst_id, NULL, err) < 0)
        return -1;
    map_put(c, id, dst_id);
    return 0;
}

/* depth: the tree's level in its snapshot (the root tree is 0).  One
 * stack frame per level, so a tree nested deeper than the format allows (a
 * damaged or crafted source) is refused rather than followed. */
static int copy_tree(repo_copier *c, const uint8_t src_id[OB_ID_LEN], uint8_t dst_id[OB_ID_LEN],
                     int depth, ob_err *err)
{
    uint8_t id[OB_ID_LEN];
    if (mapped(c, id, src_id, dst_id))
        return 0;
    /* Even with equal IDs a tree the destination has is walked: after a
     * crash its pack may be indexed while a child's is not, so only the
     * data blobs' own presence counts (and trees are small to read). */
    tree t;
    tree_init(&t);
    int rc = treeio_load(c->src, id, &t, err);
    for (size_t i = 0; rc == 0 && i < t.n; i++) {
        tree_node *n = &t.nodes[i];
        if (n->type == TREE_DIR && depth >= TREE_MAX_DEPTH)
            rc = ob_err_set(err, OB_ECORRUPT,
                            "directories nest more than %d levels deep (down to one named "
                            "%s), the most a snapshot may hold (docs/FORMAT.md 12.6): the "
                            "snapshot is damaged or was crafted",
                            TREE_MAX_DEPTH, (const char *)n->name);
        else if (n->type == TREE_DIR)
            rc = copy_tree(c, n->subtree, n->subtree, depth + 1, err);
        for (size_t k = 0; rc == 0 && k < n->nextents; k++)
            rc = copy_blob(c, n->extents[k].id, n->extents[k].id, err);
    }
    if (rc == 0)
        rc = treeio_save(c->w, &t, dst_id, err);
    if (rc == 0) {
        c->st.trees_rewritten++;
        map_put(c, id, dst_id);
    }
    tree_free(&t);
    return rc;
}

int repo_copy_already(const repo_copier *c, const snapshot *s, snapshot **dst_snaps, size_t n)
{
    return repo_copy_find(c, s, dst_snaps, n) != NULL;
}

const snapshot *repo_copy_find(const repo_copier *c, const snapshot *s, snapshot **dst_snaps,
                               size_t n)
{
    const char *src_repo = repo_id(c->src);
    /* s may itself be a copy of a destination snapshot (A -> B, then
     * B -> A): then its original is there already. */
    json_t *own = s->extra ? json_object_get(s->extra, "copied_from") : NULL;
    const char *own_repo = json_string_value(json_object_get(own, "repository"));
    const char *own_id = json_string_value(json_object_get(own, "snapshot"));
    if (own_repo && own_id && strcmp(own_repo, repo_id(c->dst)) == 0)
        for (size_t i = 0; i < n; i++)
            if (strcmp(dst_snaps[i]->id, own_id) == 0)
                return dst_snaps[i];
    for (size_t i = 0; i < n; i++) {
        json_t *from = dst_snaps[i]->extra ? json_object_get(dst_snaps[i]->extra, "copied_from")
                                           : NULL;
        const char *r = json_string_value(json_object_get(from, "repository"));
        const char *id = json_string_value(json_object_get(from, "snapshot"));
        if (r && id && strcmp(r, src_repo) == 0 && strcmp(id, s->id) == 0)
            return dst_snaps[i];
    }
    return NULL;
}

int repo_copier_copy(repo_copier *c, const snapshot *s, snapshot **out, ob_err *err)
{
    *out = NULL;
    snapshot *d = snapshot_new(s->kind);
    free(d->set);
    d->set = ob_xstrdup(s->set);
    free(d->hostname);
    d->hostname = ob_xstrdup(s->hostname ? s->hostname : "");
    free(d->username);
    d->username = ob_xstrdup(s->username ? s->username : "");
    d->time_sec = s->time_sec;
    d->time_nsec = s->time_nsec;
    for (size_t i = 0; i < s->npaths; i++)
        snapshot_add_path(d, s->paths[i]);
    for (size_t i = 0; i < s->ntags; i++)
        snapshot_add_tag(d, s->tags[i]);
    d->stats = s->stats;
    d->extra = s->extra ? json_deep_copy(s->extra) : json_object();
    json_object_set_new(d->extra, "copied_from",
                        json_pack("{s:s, s:s}", "repository", repo_id(c->src), "snapshot",
                                  s->id));
    if (copy_tree(c, s->tree, d->tree, 0, err) < 0) {
        snapshot_free(d);
        return ob_err_prefix(err, "copying snapshot %.8s", s->id);
    }
    c->st.snapshots++;
    *out = d;
    return 0;
}
