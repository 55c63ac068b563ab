/*
 * pg_wal.c — the WAL archive: archive-push and archive-get (see pg_wal.h
 * for the object layout and why there are spool directories).
 */
#include "sources/pg_wal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/compress.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "repo/check.h"
#include "repo/snapshot.h"

/* WAL is compressed at zstd level 1 whatever the repository's level (D50):
 * on 61 segments of the benchmark's WAL level 1 stored 7 % less than level 3
 * in half the time, and archive-push runs once per segment on the server. */
#define PG_WAL_ZSTD_LEVEL 1

/* Object payload: method (1 byte) | raw length (8 bytes LE) | bytes. */
#define WAL_HDR 9
#define WAL_ID_HEX 32 /* 16 bytes of the blob ID in the object name */

static int all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]) || islower((unsigned char)s[i]))
            return 0;
    return 1;
}

int pg_wal_is_segment(const char *name)
{
    return strlen(name) == 24 && all_hex(name, 24);
}

int pg_wal_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 24)
        return all_hex(name, 24);
    if (n == 32 && strcmp(name + 24, ".partial") == 0)
        return all_hex(name, 24);
    if (n == 40 && name[24] == '.' && strcmp(name + 33, ".backup") == 0)
        return all_hex(name, 24) && all_hex(name + 25, 8);
    if (n == 16 && strcmp(name + 8, ".history") == 0)
        return all_hex(name, 8);
    return 0;
}

static uint64_t hex_u32(const char *s)
{
    char tmp[9];
    memcpy(tmp, s, 8);
    tmp[8] = '\0';
    return strtoull(tmp, NULL, 16);
}

void pg_wal_segment_of(uint32_t tli, uint64_t lsn, uint64_t segsize, char out[25])
{
    uint64_t per = 0x100000000ull / segsize;
    uint64_t segno = lsn / segsize;
    snprintf(out, 25, "%08X%08X%08X", tli, (unsigned)(segno / per), (unsigned)(segno % per));
}

void pg_wal_next_segment(const char *name, uint64_t segsize, char out[25])
{
    uint64_t per = 0x100000000ull / segsize;
    uint64_t segno = hex_u32(name + 8) * per + hex_u32(name + 16) + 1;
    snprintf(out, 25, "%.8s%08X%08X", name, (unsigned)(segno / per), (unsigned)(segno % per));
}

/* "wal/<timeline>/<name>-" — every archived file's name starts with its
 * timeline's 8 hex digits. */
static char *object_prefix(const char *name)
{
    return ob_xasprintf("wal/%.8s/%s-", name, name);
}

typedef struct find_ctx {
    size_t plen;
    const char *want; /* an object to look for among several, or NULL */
    char *found;
    int count, has_want;
} find_ctx;

static int find_cb(const char *obj, uint64_t size, void *ud)
{
    (void)size;
    find_ctx *f = ud;
    /* The prefix "…/NAME-" is exact, so only the ID may follow. */
    if (strlen(obj) != f->plen + WAL_ID_HEX)
        return 0;
    f->count++;
    if (f->want && strcmp(obj, f->want) == 0)
        f->has_want = 1;
    if (!f->found)
        f->found = ob_xstrdup(obj);
    return 0;
}

static int read_object(repo *r, const char *obj, const char *name, ob_buf *out, ob_err *err);

/* The object holding name, if any (*obj NULL if none).  With want (an
 * object name), want itself when it is among them, however many there are:
 * a push of content already archived succeeds even beside another copy. */
static int find_object(repo *r, const char *name, const char *want, char **obj, ob_err *err)
{
    char *prefix = object_prefix(name);
    find_ctx f = {strlen(prefix), want, NULL, 0, 0};
    int rc = storage_list(repo_storage(r), prefix, find_cb, &f, err);
    free(prefix);
    if (rc < 0) {
        /* A listing that fails is never "not archived" (a missing bucket
         * answers 404 too): archive-get must not tell PostgreSQL that the
         * archive ends here. */
        if (err && err->code == OB_ENOTFOUND)
            err->code = OB_EIO;
        free(f.found);
        return -1;
    }
    if (f.has_want) {
        free(f.found);
        *obj = ob_xstrdup(want);
        return 0;
    }
    if (f.count > 1) {
        /* Names end with the content's ID, so two objects are two
         * different contents for one WAL file: two servers archiving into
         * this repository on one timeline (pushes racing past the
         * "different content" refusal).  Which one PostgreSQL wants cannot
         * be told; handing over either could replay the wrong history. */
        free(f.found);
        return ob_err_set(err, OB_ECORRUPT,
                          "%s is archived %d times with different contents: two servers "
                          "archive into this repository on one timeline? Find which one is "
                          "right (`opsbackup check` lists them) and remove the other object "
                          "under wal/",
                          name, f.count);
    }
    *obj = f.found;
    return 0;
}

int pg_wal_exists(repo *r, const char *name, int *exists, ob_err *err)
{
    char *obj = NULL;
    if (find_object(r, name, NULL, &obj, err) < 0)
        return -1;
    *exists = obj != NULL;
    free(obj);
    return 0;
}

int pg_wal_push(repo *r, const char *name, const uint8_t *data, size_t len, int *already,
                ob_err *err)
{
    *already = 0;
    if (!pg_wal_name_valid(name))
        return ob_err_set(err, OB_EUSAGE, "%s is not a WAL file name PostgreSQL archives", name);
    uint8_t id[OB_ID_LEN];
    char hex[OB_HEX_ID_LEN + 1];
    repo_blob_id(r, REPO_BLOB_DATA, data, len, id);
    ob_hex(id, OB_ID_LEN, hex);
    char *prefix = object_prefix(name);
    char *obj = ob_xasprintf("%s%.*s", prefix, WAL_ID_HEX, hex);
    free(prefix);
    char *other = NULL;
    int rc = find_object(r, name, obj, &other, err);
    if (rc == 0 && other && strcmp(other, obj) == 0) {
        *already = 1;
    } else if (rc == 0 && other) {
        rc = ob_err_set(err, OB_EEXIST,
                        "%s is already archived in %s with different content (object %s); "
                        "refusing to replace it. Two clusters archiving into one repository, "
                        "or a restored cluster that was not promoted to a new timeline, cause "
                        "this: give each cluster its own repository",
                        name, repo_storage(r)->url, other);
    } else if (rc == 0) {
        ob_compressor *cz = ob_compressor_new(PG_WAL_ZSTD_LEVEL);
        ob_buf z = OB_BUF_INIT, payload = OB_BUF_INIT;
        int method = ob_compress(cz, data, len, &z);
        ob_compressor_free(cz);
        uint8_t hdr[WAL_HDR];
        hdr[0] = (uint8_t)method;
        for (int i = 0; i < 8; i++)
            hdr[1 + i] = (uint8_t)((uint64_t)len >> (8 * i));
        ob_buf_append(&payload, hdr, sizeof hdr);
        if (method == OB_COMP_ZSTD)
            ob_buf_append(&payload, z.data, z.len);
        else
            ob_buf_append(&payload, data, len);
        ob_buf_free(&z);
        rc = repo_put_object_named(r, obj, REPO_OBJ_WAL, payload.data, payload.len,
                                   STORAGE_PUT_CREATE, err);
        if (rc < 0 && err->code == OB_EEXIST) { /* a concurrent identical push */
            ob_err_clear(err);
            *already = 1;
            rc = 0;
        }
        ob_buf_free(&payload);
    }
    free(other);
    free(obj);
    return rc;
}

int pg_wal_get(repo *r, const char *name, ob_buf *out, ob_err *err)
{
    if (!pg_wal_name_valid(name))
        return ob_err_set(err, OB_EUSAGE, "%s is not a WAL file name PostgreSQL archives", name);
    char *obj = NULL;
    if (find_object(r, name, NULL, &obj, err) < 0)
        return -1;
    if (!obj)
        return ob_err_set(err, OB_ENOTFOUND, "%s is not in the WAL archive of %s", name,
                          repo_storage(r)->url);
    int rc = read_object(r, obj, name, out, err);
    free(obj);
    return rc;
}

/* Read object obj (holding name) and check its content against the ID in
 * its name. */
static int read_object(repo *r, const char *obj, const char *name, ob_buf *out, ob_err *err)
{
    ob_buf payload = OB_BUF_INIT;
    int rc = repo_get_object(r, obj, REPO_OBJ_WAL, &payload, err);
    if (rc == 0 && payload.len < WAL_HDR)
        rc = ob_err_set(err, OB_ECORRUPT, "WAL object %s is truncated", obj);
    if (rc == 0) {
        uint64_t raw = 0;
        for (int i = 0; i < 8; i++)
            raw |= (uint64_t)payload.data[1 + i] << (8 * i);
        const uint8_t *p = payload.data + WAL_HDR;
        size_t plen = payload.len - WAL_HDR;
        ob_buf_reset(out);
        if (raw > (1ull << 32)) {
            rc = ob_err_set(err, OB_ECORRUPT, "WAL object %s claims an impossible size", obj);
        } else if (payload.data[0] == OB_COMP_NONE) {
            if (plen != raw)
                rc = ob_err_set(err, OB_ECORRUPT, "WAL object %s has the wrong length", obj);
            else
                ob_buf_append(out, p, plen);
        } else {
            rc = ob_decompress(payload.data[0], p, plen, (size_t)raw, out, err);
            if (rc < 0)
                ob_err_prefix(err, "WAL object %s", obj);
        }
    }
    if (rc == 0) {
        /* The name carries the keyed ID of the content: check it, so an
         * object swapped for another valid one is not replayed either. */
        uint8_t id[OB_ID_LEN];
        char hex[OB_HEX_ID_LEN + 1];
        repo_blob_id(r, REPO_BLOB_DATA, out->data, out->len, id);
        ob_hex(id, OB_ID_LEN, hex);
        if (strncmp(obj + strlen(obj) - WAL_ID_HEX, hex, WAL_ID_HEX) != 0)
            rc = ob_err_set(err, OB_ECORRUPT,
                            "WAL object %s does not hold %s (content ID mismatch)", obj, name);
    }
    if (rc < 0)
        ob_buf_reset(out);
    ob_buf_free(&payload);
    return rc;
}

/* A growing list of archived file names. */
typedef struct wal_names {
    char **v;
    size_t n, cap;
} wal_names;

static void wal_names_push(wal_names *l, const char *name)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = ob_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = ob_xstrdup(name);
}

static void wal_names_free(wal_names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int seg_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort l and drop repeated names.  A name listed more than once has more
 * than one object, so more than one content (object names end with the
 * content's ID): dup, when given, is called once for each such name. */
static void wal_names_unique(wal_names *l, void (*dup)(const char *name, void *ud), void *ud)
{
    if (l->n < 2)
        return;
    qsort(l->v, l->n, sizeof *l->v, seg_cmp);
    size_t w = 1;
    for (size_t i = 1; i < l->n; i++) {
        if (strcmp(l->v[i], l->v[w - 1]) != 0) {
            l->v[w++] = l->v[i];
            continue;
        }
        if (dup && (i + 1 == l->n || strcmp(l->v[i + 1], l->v[i]) != 0))
            dup(l->v[i], ud);
        free(l->v[i]);
    }
    l->n = w;
}

typedef struct wal_check_ctx {
    repo *r;
    int read_data;
    pg_wal_report_fn report;
    void *ud;
    pg_wal_check_result *res;
    ob_buf b;
    wal_names segs;         /* archived segment names (24 hex digits) */
    wal_names hists;        /* archived timeline history names */
} wal_check_ctx;

static int check_cb(const char *obj, uint64_t size, void *ud)
{
    (void)size;
    wal_check_ctx *c = ud;
    /* wal/<TLI>/<name>-<32 hex> */
    const char *rest = obj + 4;
    const char *slash = strchr(rest, '/');
    const char *dash = strrchr(obj, '-');
    char *name = slash && dash && dash > slash ? ob_xstrndup(slash + 1, (size_t)(dash - slash - 1))
                                               : NULL;
    if (!name || !pg_wal_name_valid(name) || strlen(dash + 1) != WAL_ID_HEX ||
        strspn(dash + 1, "0123456789abcdef") != WAL_ID_HEX || strncmp(rest, name, 8) != 0 || slash - rest != 8) {
        char *m = ob_xasprintf("unexpected object %s in the WAL archive", obj);
        c->report(1, m, c->ud);
        free(m);
        c->res->warnings++;
        free(name);
        return 0;
    }
    c->res->files++;
    if (strlen(name) == 24)
        wal_names_push(&c->segs, name);
    else if (strstr(name, ".history"))
        wal_names_push(&c->hists, name);
    if (c->read_data) {
        ob_err e = OB_ERR_INIT;
        if (read_object(c->r, obj, name, &c->b, &e) < 0) {
            c->report(0, ob_err_msg(&e), c->ud);
            c->res->errors++;
        } else {
            c->res->files_read++;
        }
        ob_err_clear(&e);
    }
    free(name);
    return 0;
}

/* Of the physical snapshot s's WAL range, how many segments are not in
 * segs (sorted, without duplicates), and the first of them.  Counted
 * from the archive's names, so a range claimed to be huge costs nothing
 * more than its two ends. */
static uint64_t wal_range_missing(const wal_names *segs, const char *start, const char *stop,
                                  uint64_t segsize, char first_missing[25])
{
    size_t lo = 0, hi = segs->n;
    while (lo < hi) { /* first name >= start */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(segs->v[mid], start) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t from = lo;
    hi = segs->n;
    while (lo < hi) { /* first name > stop */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(segs->v[mid], stop) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t first = pg_wal_segno(start, segsize), last = pg_wal_segno(stop, segsize);
    uint64_t want = last - first + 1, have = lo - from;
    if (have >= want)
        return 0;
    uint64_t gap = first + have; /* if every name present is in order from the start */
    for (size_t k = from; k < lo; k++)
        if (pg_wal_segno(segs->v[k], segsize) != first + (k - from)) {
            gap = first + (k - from);
            break;
        }
    pg_wal_segment_of((uint32_t)hex_u32(start), gap * segsize, segsize, first_missing);
    return want - have;
}

typedef struct range_ctx {
    const char *start, *stop;
    wal_names segs;
} range_ctx;

/* The segment name of an object wal/<TLI>/<24 hex>-<ID> into name; 0 if
 * obj is not a segment's object (a history or .partial file, a stray). */
static int object_segment(const char *obj, char name[25])
{
    const char *slash = strrchr(obj, '/');
    if (!slash || strlen(slash + 1) != 24 + 1 + WAL_ID_HEX || slash[25] != '-')
        return 0;
    memcpy(name, slash + 1, 24);
    name[24] = 0;
    return pg_wal_name_valid(name);
}

static int range_cb(const char *obj, uint64_t size, void *ud)
{
    (void)size;
    range_ctx *x = ud;
    char name[25];
    if (!object_segment(obj, name) || strcmp(name, x->start) < 0 || strcmp(name, x->stop) > 0)
        return 0; /* only the segments of the range count */
    wal_names_push(&x->segs, name);
    return 0;
}

int pg_wal_range_missing(repo *r, const char *start, const char *stop, uint64_t segsize,
                         uint64_t *missing, char first_missing[25], ob_err *err)
{
    range_ctx x;
    memset(&x, 0, sizeof x);
    x.start = start;
    x.stop = stop;
    char *prefix = ob_xasprintf("wal/%.8s/", start);
    int rc = storage_list(repo_storage(r), prefix, range_cb, &x, err);
    free(prefix);
    if (rc == 0) {
        wal_names_unique(&x.segs, NULL, NULL);
        first_missing[0] = 0;
        *missing = wal_range_missing(&x.segs, start, stop, segsize, first_missing);
    }
    wal_names_free(&x.segs);
    return rc;
}

static int newest_cb(const char *obj, uint64_t size, void *ud)
{
    (void)size;
    char *newest = ud;
    char name[25];
    if (object_segment(obj, name) && strcmp(name, newest) > 0)
        memcpy(newest, name, 25);
    return 0;
}

int pg_wal_newest_segment(repo *r, uint32_t tli, char newest[25], ob_err *err)
{
    newest[0] = 0;
    char *prefix = ob_xasprintf("wal/%08X/", tli);
    int rc = storage_list(repo_storage(r), prefix, newest_cb, newest, err);
    free(prefix);
    return rc;
}

static int snapshot_listed(snapshot **all, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(all[i]->id, id) == 0)
            return 1;
    return 0;
}

/* Does every physical snapshot have the WAL it cannot be restored
 * without, start_wal to stop_wal (a backup's files are only consistent
 * once that range is replayed)?  The backup waited for it, but a WAL
 * expiry run by hand, a copy that failed half way or a lost object can
 * take it away later, and only a restore would tell.
 *
 * `before` was listed before the archive: a backup saves its snapshot only
 * once its WAL is archived, so one saved while check runs is not judged
 * against a listing that missed its newest segments.  A snapshot found
 * short is judged only if it is still there afterwards: forget removes
 * snapshots first and their WAL after, also while check runs. */
int pg_wal_snapshot_range(const snapshot *s, const char **start, const char **stop,
                          uint64_t *segsize)
{
    *start = *stop = NULL;
    *segsize = 0;
    if (!s->extra)
        return -1;
    const char *a = json_string_value(json_object_get(s->extra, "start_wal"));
    const char *b = json_string_value(json_object_get(s->extra, "stop_wal"));
    json_int_t z = json_integer_value(json_object_get(s->extra, "wal_segment_size"));
    /* PostgreSQL's segment sizes: powers of two from 1 MiB to 1 GiB. */
    if (!a || !b || strlen(a) != 24 || strlen(b) != 24 || !pg_wal_name_valid(a) ||
        !pg_wal_name_valid(b) || z < (1 << 20) || (z & (z - 1)) || z > ((json_int_t)1 << 30) ||
        strncmp(a, b, 8) != 0 || strcmp(a, b) > 0)
        return -1;
    *start = a;
    *stop = b;
    *segsize = (uint64_t)z;
    return 0;
}

static void report_twice(const char *name, void *ud)
{
    wal_check_ctx *c = ud;
    char *m = ob_xasprintf("WAL file %s is archived more than once, with different contents: "
                           "archive-get refuses it",
                           name);
    c->report(0, m, c->ud);
    free(m);
    c->res->errors++;
}

static int check_backup_wal(wal_check_ctx *c, snapshot **before, size_t nbefore,
                            check_result *affected, ob_err *err)
{
    /* Two objects, so two contents, for one name: archive-get refuses it
     * (find_object), and a restore needing it cannot go on. */
    wal_names_unique(&c->segs, report_twice, c);
    wal_names_unique(&c->hists, report_twice, c);
    snapshot **after = NULL;
    size_t nafter = 0;
    int listed_after = 0, rc = 0;
    for (size_t i = 0; i < nbefore && rc == 0; i++) {
        const snapshot *s = before[i];
        if (strcmp(s->kind, "db-physical") != 0 || !s->extra)
            continue;
        const char *start, *stop;
        uint64_t segsize, missing = 0;
        char first_missing[25] = "";
        int bad = pg_wal_snapshot_range(s, &start, &stop, &segsize) < 0;
        if (!bad)
            missing = wal_range_missing(&c->segs, start, stop, segsize, first_missing);
        if (!bad && !missing)
            continue;
        if (!listed_after) {
            listed_after = 1;
            if (snapshot_list(c->r, &after, &nafter, err) < 0)
                rc = -1;
        }
        if (rc < 0 || !snapshot_listed(after, nafter, s->id))
            continue;
        char *t = ob_time_rfc3339(s->time_sec, s->time_nsec);
        char *m = bad ? ob_xasprintf("snapshot %.8s (db-physical, %s) does not say which WAL it "
                                     "needs (start_wal, stop_wal, wal_segment_size): it cannot "
                                     "be restored",
                                     s->id, t)
                      : ob_xasprintf("snapshot %.8s (db-physical, %s) cannot be restored: %llu "
                                     "of the WAL segments %s to %s it needs %s missing from the "
                                     "archive, the first %s",
                                     s->id, t, (unsigned long long)missing, start, stop,
                                     missing == 1 ? "is" : "are", first_missing);
        c->report(0, m, c->ud);
        free(m);
        free(t);
        c->res->errors++;
        if (affected) {
            check_affected *a = check_result_affected(affected, s);
            if (bad)
                a->unreadable = 1;
            else
                a->wal_missing = missing;
        }
    }
    snapshot_list_free(after, nafter);
    return rc;
}

int pg_wal_check(repo *r, int read_data, pg_wal_report_fn report, void *ud,
                 check_result *affected, pg_wal_check_result *res, ob_err *err)
{
    memset(res, 0, sizeof *res);
    wal_check_ctx c = {r, read_data, report, ud, res, OB_BUF_INIT, {0}, {0}};
    snapshot **before = NULL;
    size_t nbefore = 0;
    int rc = snapshot_list(r, &before, &nbefore, err);
    if (rc == 0)
        rc = storage_list(repo_storage(r), "wal/", check_cb, &c, err);
    if (rc == 0)
        rc = check_backup_wal(&c, before, nbefore, affected, err);
    snapshot_list_free(before, nbefore);
    wal_names_free(&c.segs);
    wal_names_free(&c.hists);
    ob_buf_free(&c.b);
    return rc;
}

/* ---- local files ------------------------------------------------------ */

static int read_file(const char *path, ob_buf *out, ob_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ob_err_errno(err, errno, "cannot open %s", path);
    ob_buf_reset(out);
    uint8_t tmp[1 << 16];
    for (;;) {
        ssize_t k = read(fd, tmp, sizeof tmp);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            close(fd);
            return ob_err_errno(err, e, "reading %s", path);
        }
        if (k == 0)
            break;
        ob_buf_append(out, tmp, (size_t)k);
    }
    close(fd);
    return 0;
}

/* A WAL segment mapped read-only.  archive-push is a short process per
 * segment, and reading 16 MiB into fresh heap memory was its largest cost
 * (perf of 20 pushes: memmove 36 %, page faults 17 %); the mapping shares
 * the page cache's pages instead (per segment 1.47x -> 0.91x pgBackRest,
 * bench/results.md run 10).  PostgreSQL does not touch a
 * segment while it waits for archive_command, so it cannot shrink under the
 * mapping (which would raise SIGBUS). */
typedef struct seg_map {
    const uint8_t *data;
    size_t len;
    void *base; /* NULL for an empty file */
} seg_map;

static int seg_map_open(const char *path, seg_map *m, ob_err *err)
{
    memset(m, 0, sizeof *m);
    m->data = (const uint8_t *)"";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ob_err_errno(err, errno, "cannot open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return ob_err_errno(err, e, "cannot stat %s", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ob_err_set(err, OB_EUSAGE, "%s is not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return ob_err_errno(err, e, "cannot map %s", path);
        }
        m->base = p;
        m->data = p;
        m->len = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

static void seg_map_close(seg_map *m)
{
    if (m->base)
        munmap(m->base, m->len);
    memset(m, 0, sizeof *m);
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return ob_xstrdup(".");
    if (slash == path)
        return ob_xstrdup("/");
    return ob_xstrndup(path, (size_t)(slash - path));
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void sha256_hex(const void *data, size_t len, char hex[OB_HEX_ID_LEN + 1])
{
    uint8_t h[OB_ID_LEN];
    ob_sha256(data, len, h);
    ob_hex(h, OB_ID_LEN, hex);
}

/* ---- archive-push ----------------------------------------------------- */

typedef struct push_job {
    char *name, *path;
    int is_main;
    int rc;
    ob_err err;
} push_job;

typedef struct push_ctx {
    repo **repos;
    size_t nrepos;
    push_job *jobs;
    size_t njobs, next;
    pthread_mutex_t mu;
    const char *marker_dir;
} push_ctx;

static int push_one(push_ctx *c, push_job *j)
{
    seg_map data;
    int rc = seg_map_open(j->path, &data, &j->err);
    for (size_t i = 0; i < c->nrepos && rc == 0; i++) {
        int already = 0;
        rc = pg_wal_push(c->repos[i], j->name, data.data, data.len, &already, &j->err);
        if (rc == 0)
            ob_debug("%s %s in %s", already ? "already archived:" : "archived", j->name,
                     repo_storage(c->repos[i])->url);
    }
    if (rc == 0 && !j->is_main) {
        /* Durable everywhere: leave the answer for PostgreSQL's own call. */
        char hex[OB_HEX_ID_LEN + 1];
        sha256_hex(data.data, data.len, hex);
        char *marker = ob_xasprintf("%s/%s", c->marker_dir, j->name);
        ob_err e = OB_ERR_INIT;
        if (ob_write_file_atomic(marker, hex, OB_HEX_ID_LEN, 0, NULL, &e) < 0)
            ob_debug("%s", ob_err_msg(&e));
        ob_err_clear(&e);
        free(marker);
    }
    seg_map_close(&data);
    return rc;
}

static void *push_worker(void *arg)
{
    push_ctx *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        size_t i = c->next < c->njobs ? c->next++ : c->njobs;
        pthread_mutex_unlock(&c->mu);
        if (i >= c->njobs)
            return NULL;
        c->jobs[i].rc = push_one(c, &c->jobs[i]);
    }
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Up to max names of other files waiting in archive_status (*.ready),
 * oldest first, that have no marker yet. */
static size_t ready_files(const char *waldir, const char *marker_dir, const char *self,
                          size_t max, char ***out)
{
    *out = NULL;
    if (max == 0)
        return 0;
    char *sdir = ob_xasprintf("%s/archive_status", waldir);
    DIR *d = opendir(sdir);
    free(sdir);
    if (!d)
        return 0;
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 7 || strcmp(de->d_name + l - 6, ".ready") != 0)
            continue;
        char *name = ob_xstrndup(de->d_name, l - 6);
        char *marker = ob_xasprintf("%s/%s", marker_dir, name);
        int skip = !pg_wal_name_valid(name) || strcmp(name, self) == 0 ||
                   access(marker, F_OK) == 0;
        free(marker);
        if (skip) {
            free(name);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            v = ob_xrealloc(v, cap * sizeof *v);
        }
        v[n++] = name;
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof *v, str_cmp);
    for (size_t i = max; i < n; i++)
        free(v[i]);
    *out = v;
    return n < max ? n : max;
}

int pg_wal_archive_push(const char *path, const pg_wal_push_opts *o, pg_wal_open_fn open_repos,
                        void *open_ud, ob_err *err)
{
    const char *name = base_of(path);
    if (!pg_wal_name_valid(name))
        return ob_err_set(err, OB_EUSAGE,
                          "archive-push %s: not a WAL file name; use archive_command = "
                          "'opsbackup archive-push %%p'",
                          path);
    char *waldir = dir_of(path);
    char *marker_dir = ob_xasprintf("%s/opsbackup.push", waldir);
    char *marker = ob_xasprintf("%s/%s", marker_dir, name);
    int rc = 0;

    /* Pushed already by an earlier call's batch? */
    ob_buf m = OB_BUF_INIT;
    ob_err e = OB_ERR_INIT;
    if (read_file(marker, &m, &e) == 0 && m.len == OB_HEX_ID_LEN) {
        seg_map data;
        if (seg_map_open(path, &data, err) < 0) {
            rc = -1;
            goto out;
        }
        char hex[OB_HEX_ID_LEN + 1];
        sha256_hex(data.data, data.len, hex);
        seg_map_close(&data);
        if (memcmp(hex, m.data, OB_HEX_ID_LEN) == 0) {
            unlink(marker);
            goto out;
        }
        unlink(marker); /* stale: push for real */
    }
    ob_err_clear(&e);

    repo **repos = NULL;
    size_t nrepos = 0;
    if (open_repos(open_ud, &repos, &nrepos, err) < 0) {
        rc = -1;
        goto out;
    }
    (void)mkdir(marker_dir, 0700);
    char **extra = NULL;
    size_t nextra = ready_files(waldir, marker_dir, name, o->batch > 0 ? (size_t)o->batch : 0,
                                &extra);
    push_ctx c;
    memset(&c, 0, sizeof c);
    c.repos = repos;
    c.nrepos = nrepos;
    c.marker_dir = marker_dir;
    c.njobs = 1 + nextra;
    c.jobs = ob_xcalloc(c.njobs, sizeof *c.jobs);
    c.jobs[0].name = ob_xstrdup(name);
    c.jobs[0].path = ob_xstrdup(path);
    c.jobs[0].is_main = 1;
    for (size_t i = 0; i < nextra; i++) {
        c.jobs[1 + i].name = extra[i];
        c.jobs[1 + i].path = ob_xasprintf("%s/%s", waldir, extra[i]);
    }
    free(extra);
    pthread_mutex_init(&c.mu, NULL);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nthreads = o->nthreads > 0 ? (size_t)o->nthreads : ncpu > 0 ? (size_t)ncpu : 1;
    if (nthreads > c.njobs)
        nthreads = c.njobs;
    pthread_t *th = ob_xcalloc(nthreads, sizeof *th);
    size_t started = 0;
    for (size_t i = 1; i < nthreads; i++, started++)
        if (pthread_create(&th[i], NULL, push_worker, &c) != 0)
            break;
    push_worker(&c); /* this thread works too */
    for (size_t i = 1; i <= started; i++)
        pthread_join(th[i], NULL);
    free(th);
    pthread_mutex_destroy(&c.mu);
    for (size_t i = 0; i < c.njobs; i++) {
        if (i == 0 && c.jobs[0].rc < 0) {
            ob_err_move(err, &c.jobs[0].err);
            rc = -1;
        } else if (i > 0 && c.jobs[i].rc < 0) {
            /* PostgreSQL will ask for it again and get the error then. */
            ob_warn("pushing %s ahead of time failed: %s", c.jobs[i].name,
                    ob_err_msg(&c.jobs[i].err));
        }
        ob_err_clear(&c.jobs[i].err);
        free(c.jobs[i].name);
        free(c.jobs[i].path);
    }
    if (rc == 0 && !o->quiet && nextra)
        ob_info("archived %s and %zu waiting file%s", name, nextra, nextra == 1 ? "" : "s");
    free(c.jobs);
out:
    ob_err_clear(&e);
    ob_buf_free(&m);
    free(marker);
    free(marker_dir);
    free(waldir);
    return rc;
}

/* ---- archive-get ------------------------------------------------------ */

/* Fetch name from the first repository that has it.  OB_ENOTFOUND only
 * when no repository has it: PostgreSQL takes "not found" for the end of
 * the archive, so a damaged or unreachable copy in one repository must
 * not be reported as absent because the next one lacks the file. */
static int get_any(repo **repos, size_t nrepos, const char *name, ob_buf *out, ob_err *err)
{
    ob_err first = OB_ERR_INIT; /* the first failure other than "not there" */
    for (size_t i = 0; i < nrepos; i++) {
        ob_err e = OB_ERR_INIT;
        if (pg_wal_get(repos[i], name, out, &e) == 0) {
            ob_err_clear(&first);
            return 0;
        }
        if (e.code != OB_ENOTFOUND && i + 1 < nrepos)
            ob_warn("%s; trying the next repository", ob_err_msg(&e));
        if (e.code != OB_ENOTFOUND && first.code == OB_OK)
            ob_err_move(&first, &e);
        ob_err_clear(&e);
    }
    if (first.code != OB_OK) {
        ob_err_move(err, &first);
        return -1;
    }
    return ob_err_set(err, OB_ENOTFOUND, "%s is not in the WAL archive", name);
}

/* Remove from the spool the segments before `below` (and the temporary
 * files of their writes, "SEGMENT.opsbackup-tmp.PID", which a killed
 * prefetch leaves), or, with below NULL, everything in it. */
static void spool_remove(const char *spool, const char *below)
{
    DIR *d = opendir(spool);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        int seg = strlen(de->d_name) >= 24 && all_hex(de->d_name, 24) &&
                  (de->d_name[24] == 0 || strncmp(de->d_name + 24, ".opsbackup-tmp.", 15) == 0);
        if (below ? seg && strncmp(de->d_name, below, 24) < 0
                  : strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            char *p = ob_xasprintf("%s/%s", spool, de->d_name);
            unlink(p);
            free(p);
        }
    }
    closedir(d);
}

int pg_wal_spool_clear(const char *pg_wal_dir)
{
    char *spool = ob_xasprintf("%s/opsbackup.get", pg_wal_dir);
    /* A detached prefetch may still be writing into the spool: wait (up to
     * 10 s) for the lock it holds while it runs, so it does not leave a
     * file behind after the directory is emptied. */
    char *lockp = ob_xasprintf("%s/.lock", spool);
    int lfd = open(lockp, O_RDWR | O_CLOEXEC);
    free(lockp);
    for (int i = 0; lfd >= 0 && i < 1000 && flock(lfd, LOCK_EX | LOCK_NB) < 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* Move the directory aside first: a prefetch that is still running
     * (it did not finish within the wait, or had not taken the lock yet)
     * then fails to write under the old name instead of filling the spool
     * again after it was emptied. */
    char *aside = ob_xasprintf("%s.removing.%ld", spool, (long)getpid());
    const char *dir = rename(spool, aside) == 0 ? aside : spool;
    int rc = -1;
    for (int i = 0; i < 100 && rc < 0; i++) { /* a write already begun may land late */
        if (i > 0) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        spool_remove(dir, NULL);
        rc = rmdir(dir) == 0 || errno == ENOENT ? 0 : -1;
    }
    int saved = errno;
    if (lfd >= 0)
        close(lfd);
    free(aside);
    free(spool);
    errno = saved;
    return rc;
}

/* Is the spooled file at path a whole WAL segment `name`?  Sets *segsize
 * to its size.  A prefetch fsyncs each file before renaming it into the
 * spool, but a copy damaged since (or written before that rule, by a crash
 * at the wrong moment) must not reach PostgreSQL: a short file stops
 * recovery, and a zeroed one can read as the end of WAL, which ends
 * recovery early without an error.  Checks the size (a power of two from
 * 1 MiB to 1 GiB) and the long header of the first page
 * (XLogLongPageHeaderData, PostgreSQL's xlog_internal.h, in the server's
 * byte order: it is this machine's): the XLP_LONG_HEADER flag, the
 * segment size it records and the address of the page, which the name
 * determines. */
static int spool_file_valid(const char *path, const char *name, uint64_t *segsize)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    struct stat st;
    uint8_t h[40];
    int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= (1 << 20) &&
             st.st_size <= (1 << 30) && (st.st_size & (st.st_size - 1)) == 0 &&
             pread(fd, h, sizeof h, 0) == (ssize_t)sizeof h;
    close(fd);
    if (!ok)
        return 0;
    uint16_t info;
    uint64_t pageaddr;
    uint32_t seg_size;
    memcpy(&info, h + 2, sizeof info);
    memcpy(&pageaddr, h + 8, sizeof pageaddr);
    memcpy(&seg_size, h + 32, sizeof seg_size);
    *segsize = (uint64_t)st.st_size;
    return (info & 0x0002) && seg_size == *segsize &&
           pageaddr == pg_wal_segno(name, *segsize) * *segsize;
}

/* In a detached grandchild: keep segment name itself in the spool when its
 * bytes are given, then fetch the segments after it.  Never returns.  Each
 * file is fsynced before it is renamed into the spool: after a crash
 * PostgreSQL's recovery asks again for what it had, and the spool answers
 * first (spool_file_valid checks what it can besides).
 *
 * Why keep name: at the end of recovery PostgreSQL asks for the last
 * segment it replayed a second time (to start the new timeline from it),
 * and that request used to fetch it from the repository again (0.06 s of a
 * 0.4 s start in bench B).  The copy is written here, off PostgreSQL's
 * path, from the verified bytes the parent delivered; a copy, not a link,
 * because PostgreSQL may recycle the delivered file's inode for new WAL.
 * The next segment's delivery trims it (spool_remove). */
static void prefetch_child(const char *spool, const char *name, const ob_buf *given,
                           uint64_t segsize, int count, repo **repos, size_t nrepos,
                           pg_wal_open_fn open_repos, void *open_ud)
{
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(nul, 2);
        close(nul);
    }
    /* Everything this child writes into the spool, it writes holding the
     * lock, so that whoever takes the lock (pg_wal_spool_clear, a test)
     * knows no prefetch is writing. */
    char *lockp = ob_xasprintf("%s/.lock", spool);
    int lfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lockp);
    if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) < 0)
        _exit(0); /* another prefetch is running (it keeps no copy of name) */
    if (given) {
        char *keep = ob_xasprintf("%s/%s", spool, name);
        ob_err kerr = OB_ERR_INIT;
        (void)ob_write_file_atomic(keep, given->data, given->len, 1, NULL, &kerr); /* best effort */
        ob_err_clear(&kerr);
        free(keep);
    }
    ob_err err = OB_ERR_INIT;
    if (!repos && open_repos(open_ud, &repos, &nrepos, &err) < 0)
        _exit(1);
    char cur[25], next[25];
    memcpy(cur, name, 25);
    ob_buf b = OB_BUF_INIT;
    for (int i = 0; i < count; i++) {
        pg_wal_next_segment(cur, segsize, next);
        memcpy(cur, next, 25);
        char *p = ob_xasprintf("%s/%s", spool, next);
        int have = access(p, F_OK) == 0;
        if (!have && (get_any(repos, nrepos, next, &b, &err) < 0 ||
                      ob_write_file_atomic(p, b.data, b.len, 1, NULL, &err) < 0)) {
            free(p);
            break; /* not archived yet (or an error archive-get will report) */
        }
        free(p);
    }
    _exit(0);
}

static void start_prefetch(const char *spool, const char *name, const ob_buf *given,
                           uint64_t segsize, int count, repo **repos, size_t nrepos,
                           pg_wal_open_fn open_repos, void *open_ud)
{
    if (count <= 0 || !pg_wal_is_segment(name) || segsize < (1u << 20) ||
        segsize > (1u << 30) || (segsize & (segsize - 1)))
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return;
    if (pid == 0) {
        /* Detach, so PostgreSQL does not wait for us. */
        setsid();
        if (fork() == 0)
            prefetch_child(spool, name, given, segsize, count, repos, nrepos, open_repos,
                           open_ud);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}

/* How many segments after name are already spooled? */
static int spooled_ahead(const char *spool, const char *name, uint64_t segsize, int max)
{
    char cur[25], next[25];
    memcpy(cur, name, 25);
    int n = 0;
    for (; n < max; n++) {
        pg_wal_next_segment(cur, segsize, next);
        memcpy(cur, next, 25);
        char *p = ob_xasprintf("%s/%s", spool, next);
        int have = access(p, F_OK) == 0;
        free(p);
        if (!have)
            break;
    }
    return n;
}

/* Remove what an archive-get killed between write and rename left beside
 * DEST: "DEST.opsbackup-tmp.PID" of a process that no longer exists.
 * PostgreSQL asks for every file under the same two names (RECOVERYXLOG,
 * RECOVERYHISTORY), so the next fetch finds them; nothing else would, and
 * each is as large as a segment.  Best effort. */
static void remove_dead_temporaries(const char *dest)
{
    char *dir = dir_of(dest);
    const char *base = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
    char *prefix = ob_xasprintf("%s.opsbackup-tmp.", base);
    size_t plen = strlen(prefix);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        const char *num = de->d_name + plen;
        if (strncmp(de->d_name, prefix, plen) != 0 || !*num ||
            strspn(num, "0123456789") != strlen(num))
            continue;
        long pid = strtol(num, NULL, 10);
        if (pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
            char *p = ob_xasprintf("%s/%s", dir, de->d_name);
            unlink(p);
            free(p);
        }
    }
    if (d)
        closedir(d);
    free(prefix);
    free(dir);
}

int pg_wal_archive_get(const char *name, const char *dest, const pg_wal_get_opts *o,
                       pg_wal_open_fn open_repos, void *open_ud, ob_err *err)
{
    if (!pg_wal_name_valid(name))
        return ob_err_set(err, OB_EUSAGE,
                          "archive-get %s: not a WAL file name; use restore_command = "
                          "'opsbackup archive-get %%f \"%%p\"'",
                          name);
    /* The spool's rename must refuse a symlink or device as DEST just as
     * ob_write_file_atomic does. */
    if (ob_check_replaceable(dest, err) < 0)
        return -1;
    remove_dead_temporaries(dest);
    char *destdir = dir_of(dest);
    char *spool = ob_xasprintf("%s/opsbackup.get", destdir);
    char *spooled = ob_xasprintf("%s/%s", spool, name);
    int rc = 0;
    uint64_t segsize = 0;
    if (pg_wal_is_segment(name) && access(spooled, F_OK) == 0) {
        if (!spool_file_valid(spooled, name, &segsize)) {
            ob_warn("archive-get: the spooled copy of %s is not a whole WAL segment "
                    "(damaged, or cut short by a crash); fetching it from the repository",
                    name);
            unlink(spooled);
        } else if (rename(spooled, dest) == 0) {
            spool_remove(spool, name);
            if (spooled_ahead(spool, name, segsize, o->prefetch) < o->prefetch / 2 + 1)
                start_prefetch(spool, name, NULL, segsize, o->prefetch, NULL, 0, open_repos,
                               open_ud);
            goto out;
        }
    }
    repo **repos = NULL;
    size_t nrepos = 0;
    if (open_repos(open_ud, &repos, &nrepos, err) < 0) {
        /* "No repository there" (an unmounted directory, a missing bucket)
         * is not "not archived": exit 126, not the end of the archive. */
        if (err->code == OB_ENOTFOUND)
            err->code = OB_EIO;
        rc = -1;
        goto out;
    }
    ob_buf b = OB_BUF_INIT;
    rc = get_any(repos, nrepos, name, &b, err);
    if (rc == 0)
        rc = ob_write_file_atomic(dest, b.data, b.len, 0, NULL, err);
    if (rc == 0 && pg_wal_is_segment(name) && o->prefetch > 0) {
        (void)mkdir(spool, 0700);
        spool_remove(spool, name);
        start_prefetch(spool, name, &b, b.len, o->prefetch, repos, nrepos, open_repos, open_ud);
    }
    ob_buf_free(&b);
out:
    free(spooled);
    free(spool);
    free(destdir);
    return rc;
}

/* ---- retention -------------------------------------------------------- */

uint64_t pg_wal_segno(const char *name, uint64_t segsize)
{
    return hex_u32(name + 8) * (0x100000000ull / segsize) + hex_u32(name + 16);
}

typedef struct expire_ctx {
    uint64_t keep_from, segsize;
    char **names;
    size_t n;
    uint64_t bytes;
} expire_ctx;

static int expire_cb(const char *obj, uint64_t size, void *ud)
{
    expire_ctx *c = ud;
    const char *slash = strrchr(obj, '/');
    const char *name = slash ? slash + 1 : obj;
    /* Only the well-formed names of segments, .partial and .backup files;
     * anything else (history files, strangers) is left alone. */
    if (strlen(name) < 24 || !all_hex(name, 24) || strchr(name, '-') < name + 24)
        return 0;
    if (pg_wal_segno(name, c->segsize) >= c->keep_from)
        return 0;
    c->names = ob_xrealloc(c->names, (c->n + 1) * sizeof *c->names);
    c->names[c->n++] = ob_xstrdup(obj);
    c->bytes += size;
    return 0;
}

int pg_wal_expire(repo *r, uint64_t keep_from, uint64_t segsize, int dry_run, uint64_t *removed,
                  uint64_t *bytes, ob_err *err)
{
    *removed = *bytes = 0;
    expire_ctx c = {keep_from, segsize, NULL, 0, 0};
    int rc = storage_list(repo_storage(r), "wal/", expire_cb, &c, err);
    /* Batched where the storage can (S3: 1000 keys a request). */
    if (rc == 0 && !dry_run && c.n)
        rc = storage_delete_many(repo_storage(r), (const char *const *)c.names, c.n, err);
    for (size_t i = 0; i < c.n; i++)
        free(c.names[i]);
    free(c.names);
    if (rc == 0) {
        *removed = c.n;
        *bytes = c.bytes;
    }
    return rc;
}

/* ---- copy ------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "wal/TLI/NAME-ID" -> "NAME" (caller frees), NULL if malformed. */
static char *object_file_name(const char *obj)
{
    const char *slash = strrchr(obj, '/');
    const char *dash = strrchr(obj, '-');
    if (!slash || !dash || dash < slash)
        return NULL;
    char *name = ob_xstrndup(slash + 1, (size_t)(dash - slash - 1));
    if (!pg_wal_name_valid(name)) {
        free(name);
        return NULL;
    }
    return name;
}

int pg_wal_copy(repo *src, repo *dst, uint64_t *copied, ob_err *err)
{
    *copied = 0;
    storage_names have = {0}, want = {0};
    int rc = storage_list(repo_storage(dst), "wal/", storage_names_collect, &have, err);
    if (rc == 0)
        rc = storage_list(repo_storage(src), "wal/", storage_names_collect, &want, err);
    /* Compare by file name: the IDs in object names differ between
     * repositories with different keys. */
    char **names = ob_xcalloc(have.n ? have.n : 1, sizeof *names);
    size_t nn = 0;
    for (size_t i = 0; i < have.n; i++)
        if ((names[nn] = object_file_name(have.v[i])))
            nn++;
    qsort(names, nn, sizeof *names, cmp_str);
    ob_buf b = OB_BUF_INIT;
    for (size_t i = 0; rc == 0 && i < want.n; i++) {
        char *name = object_file_name(want.v[i]);
        if (!name)
            continue;
        if (!bsearch(&name, names, nn, sizeof *names, cmp_str)) {
            int already = 0;
            rc = pg_wal_get(src, name, &b, err);
            if (rc == 0)
                rc = pg_wal_push(dst, name, b.data, b.len, &already, err);
            if (rc == 0)
                (*copied)++;
        }
        free(name);
    }
    ob_buf_free(&b);
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    storage_names_free(&have);
    storage_names_free(&want);
    return rc;
}
