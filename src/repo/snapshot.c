#include "repo/snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"

snapshot *snapshot_new(const char *kind)
{
    snapshot *s = ob_xcalloc(1, sizeof *s);
    s->kind = ob_xstrdup(kind);
    s->set = ob_xstrdup("");
    s->hostname = ob_hostname();
    s->username = ob_username();
    ob_time_now(&s->time_sec, &s->time_nsec);
    s->stats.started = s->time_sec;
    return s;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void snapshot_free(snapshot *s)
{
    if (!s)
        return;
    free(s->kind);
    free(s->set);
    free(s->hostname);
    free(s->username);
    strv_free(s->paths, s->npaths);
    strv_free(s->tags, s->ntags);
    json_decref(s->extra);
    free(s);
}

static void strv_add(char ***v, size_t *n, const char *x)
{
    *v = ob_xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = ob_xstrdup(x);
}

void snapshot_add_path(snapshot *s, const char *path) { strv_add(&s->paths, &s->npaths, path); }
void snapshot_add_tag(snapshot *s, const char *tag) { strv_add(&s->tags, &s->ntags, tag); }

static json_t *strv_json(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *stats_json(const snapshot_stats *st)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "files",
                          (json_int_t)st->files, "dirs", (json_int_t)st->dirs, "bytes",
                          (json_int_t)st->bytes, "bytes_added", (json_int_t)st->bytes_added,
                          "bytes_stored", (json_int_t)st->bytes_stored, "blobs_added",
                          (json_int_t)st->blobs_added, "errors", (json_int_t)st->errors,
                          "duration", st->duration);
    if (st->started > 0)
        json_object_set_new(o, "started", json_integer((json_int_t)st->started));
    return o;
}

/* The stored form: what save writes and load reads. */
static json_t *snapshot_record(const snapshot *s)
{
    char tree_hex[OB_HEX_ID_LEN + 1];
    ob_hex(s->tree, OB_ID_LEN, tree_hex);
    char *t = ob_time_rfc3339(s->time_sec, s->time_nsec);
    json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:o}", "version", 1,
                          "time", t, "kind", s->kind, "set", s->set, "host", s->hostname,
                          "user", s->username, "paths", strv_json(s->paths, s->npaths),
                          "tags", strv_json(s->tags, s->ntags), "tree", tree_hex, "stats",
                          stats_json(&s->stats));
    free(t);
    if (s->has_parent)
        json_object_set_new(o, "parent", json_string(s->parent));
    if (s->extra)
        json_object_set(o, "extra", s->extra);
    return o;
}

json_t *snapshot_to_json(const snapshot *s)
{
    json_t *o = snapshot_record(s);
    json_object_del(o, "version");
    json_object_set_new(o, "id", json_string(s->id));
    char short_id[9];
    memcpy(short_id, s->id, 8);
    short_id[8] = 0;
    json_object_set_new(o, "short_id", json_string(short_id));
    return o;
}

int snapshot_save(repo *r, snapshot *s, ob_err *err)
{
    json_t *o = snapshot_record(s);
    char *text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(o);
    int rc = repo_put_object(r, "snapshots", REPO_OBJ_SNAPSHOT, text, strlen(text), s->id, err);
    free(text);
    if (rc < 0)
        return ob_err_prefix(err, "saving snapshot");
    return 0;
}

static int strv_from_json(json_t *a, char ***v, size_t *n)
{
    if (!json_is_array(a))
        return -1;
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x)
    {
        if (!json_is_string(x))
            return -1;
        strv_add(v, n, json_string_value(x));
    }
    return 0;
}

static uint64_t jget_u64(json_t *o, const char *k)
{
    json_t *x = json_object_get(o, k);
    return json_is_integer(x) && json_integer_value(x) > 0 ? (uint64_t)json_integer_value(x) : 0;
}

int snapshot_load(repo *r, const char *id_hex, snapshot **out, ob_err *err)
{
    *out = NULL;
    char *name = ob_xasprintf("snapshots/%s", id_hex);
    ob_buf b = OB_BUF_INIT;
    int rc = repo_get_object(r, name, REPO_OBJ_SNAPSHOT, &b, err);
    free(name);
    if (rc < 0) {
        ob_buf_free(&b);
        return -1;
    }
    json_error_t jerr;
    json_t *o = json_loadb((const char *)b.data, b.len, 0, &jerr);
    ob_buf_free(&b);
    if (!o)
        return ob_err_set(err, OB_ECORRUPT, "snapshot %s is not valid JSON", id_hex);
    snapshot *s = ob_xcalloc(1, sizeof *s);
    const char *time = NULL, *kind = NULL, *set = "", *host = "", *user = "", *tree = NULL,
               *parent = NULL;
    json_t *paths = NULL, *tags = NULL, *stats = NULL, *extra = NULL;
    json_int_t version = 0;
    if (json_unpack(o, "{s:I, s:s, s:s, s?:s, s?:s, s?:s, s:o, s?:o, s:s, s?:o, s?:s, s?:o}",
                    "version", &version, "time", &time, "kind", &kind, "set", &set, "host",
                    &host, "user", &user, "paths", &paths, "tags", &tags, "tree", &tree,
                    "stats", &stats, "parent", &parent, "extra", &extra) != 0 ||
        version != 1 || ob_time_parse(time, &s->time_sec, &s->time_nsec) < 0 ||
        ob_unhex(tree, s->tree, OB_ID_LEN) < 0 ||
        strv_from_json(paths, &s->paths, &s->npaths) < 0 ||
        (tags && strv_from_json(tags, &s->tags, &s->ntags) < 0)) {
        json_decref(o);
        snapshot_free(s);
        return ob_err_set(err, OB_ECORRUPT, "snapshot %s has missing or invalid fields", id_hex);
    }
    snprintf(s->id, sizeof s->id, "%s", id_hex);
    s->kind = ob_xstrdup(kind);
    s->set = ob_xstrdup(set);
    s->hostname = ob_xstrdup(host);
    s->username = ob_xstrdup(user);
    if (parent && strlen(parent) == OB_HEX_ID_LEN) {
        s->has_parent = 1;
        memcpy(s->parent, parent, sizeof s->parent);
    }
    if (stats) {
        s->stats.files = jget_u64(stats, "files");
        s->stats.dirs = jget_u64(stats, "dirs");
        s->stats.bytes = jget_u64(stats, "bytes");
        s->stats.bytes_added = jget_u64(stats, "bytes_added");
        s->stats.bytes_stored = jget_u64(stats, "bytes_stored");
        s->stats.blobs_added = jget_u64(stats, "blobs_added");
        s->stats.errors = jget_u64(stats, "errors");
        s->stats.started = (int64_t)jget_u64(stats, "started");
        json_t *d = json_object_get(stats, "duration");
        s->stats.duration = json_is_number(d) ? json_number_value(d) : 0;
    }
    if (json_is_object(extra))
        s->extra = json_incref(extra);
    json_decref(o);
    *out = s;
    return 0;
}

typedef struct id_list {
    char **v;
    size_t n;
} id_list;

static int collect_ids(const char *name, uint64_t size, void *ud)
{
    (void)size;
    id_list *l = ud;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (strlen(base) == OB_HEX_ID_LEN)
        strv_add(&l->v, &l->n, base);
    return 0;
}

static int snap_cmp(const void *a, const void *b)
{
    const snapshot *x = *(snapshot *const *)a, *y = *(snapshot *const *)b;
    if (x->time_sec != y->time_sec)
        return x->time_sec < y->time_sec ? -1 : 1;
    if (x->time_nsec != y->time_nsec)
        return x->time_nsec < y->time_nsec ? -1 : 1;
    return strcmp(x->id, y->id);
}

int snapshot_list(repo *r, snapshot ***out, size_t *nout, ob_err *err)
{
    id_list ids = {0};
    *out = NULL;
    *nout = 0;
    if (storage_list(repo_storage(r), "snapshots/", collect_ids, &ids, err) < 0)
        return ob_err_prefix(err, "listing snapshots");
    snapshot **v = ob_xcalloc(ids.n ? ids.n : 1, sizeof *v);
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < ids.n; i++) {
        ob_err e = OB_ERR_INIT;
        if (snapshot_load(r, ids.v[i], &v[n], &e) < 0) {
            /* One damaged snapshot must not stop every listing and every
             * backup; `check` reports it as an error. */
            if (e.code == OB_EAUTH || e.code == OB_EIO) {
                ob_err_move(err, &e);
                rc = -1;
                break;
            }
            ob_warn("skipping unreadable snapshot %s: %s (run `opsbackup check`)", ids.v[i],
                    ob_err_msg(&e));
            ob_err_clear(&e);
            continue;
        }
        n++;
    }
    strv_free(ids.v, ids.n);
    if (rc < 0) {
        snapshot_list_free(v, n);
        return -1;
    }
    qsort(v, n, sizeof *v, snap_cmp);
    *out = v;
    *nout = n;
    return 0;
}

void snapshot_list_free(snapshot **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        snapshot_free(v[i]);
    free(v);
}

static int matches(const snapshot *s, const char *set, const char *kind)
{
    return (!set || strcmp(s->set, set) == 0) && (!kind || strcmp(s->kind, kind) == 0);
}

int snapshot_find(repo *r, const char *ref, const char *set, const char *kind, snapshot **out,
                  ob_err *err)
{
    *out = NULL;
    snapshot **v;
    size_t n;
    if (snapshot_list(r, &v, &n, err) < 0)
        return -1;
    snapshot *hit = NULL;
    int hits = 0;
    if (strcmp(ref, "latest") == 0) {
        for (size_t i = n; i-- > 0;)
            if (matches(v[i], set, kind)) {
                hit = v[i];
                hits = 1;
                break;
            }
    } else {
        size_t len = strlen(ref);
        for (size_t i = 0; i < n; i++)
            if (strncmp(v[i]->id, ref, len) == 0 && matches(v[i], set, kind)) {
                hit = v[i];
                hits++;
            }
    }
    int rc = 0;
    if (hits == 0) {
        rc = ob_err_set(err, OB_ENOTFOUND, "no %s%s%s snapshot matches '%s'%s%s (see `opsbackup snapshots`)",
                        kind ? kind : "", kind ? " " : "", "", ref, set ? " in set " : "",
                        set ? set : "");
    } else if (hits > 1) {
        rc = ob_err_set(err, OB_EUSAGE, "snapshot ID prefix '%s' is ambiguous; give more digits",
                        ref);
    } else {
        for (size_t i = 0; i < n; i++)
            if (v[i] == hit)
                v[i] = NULL;
        *out = hit;
    }
    for (size_t i = 0; i < n; i++)
        snapshot_free(v[i]);
    free(v);
    return rc;
}

static int same_paths(const snapshot *a, const snapshot *b)
{
    if (a->npaths != b->npaths)
        return 0;
    for (size_t i = 0; i < a->npaths; i++)
        if (strcmp(a->paths[i], b->paths[i]) != 0)
            return 0;
    return 1;
}

snapshot *snapshot_pick_parent(snapshot **v, size_t n, const snapshot *like)
{
    for (size_t i = n; i-- > 0;)
        if (strcmp(v[i]->kind, like->kind) == 0 && strcmp(v[i]->set, like->set) == 0 &&
            strcmp(v[i]->hostname, like->hostname) == 0 && same_paths(v[i], like))
            return v[i];
    return NULL;
}
