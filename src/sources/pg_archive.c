/*
 * pg_archive.c — row counts from a pg_dump custom-format archive stream.
 *
 * The layout (PostgreSQL's pg_backup_archiver.c and pg_backup_custom.c,
 * written to a pipe, so the table of contents comes first and is never
 * rewritten):
 *
 *   header  "PGDMP", version major/minor/rev, intSize, offSize, format
 *           (1 = custom), compression (an int before 1.15, an algorithm
 *           byte since), 7 ints of creation time, strings: database,
 *           server version, pg_dump version
 *   TOC     int count, then per entry: dumpId, hadDumper, tableoid, oid,
 *           tag, desc, section, defn, dropStmt, copyStmt, namespace,
 *           tablespace, tableam (1.14+), relkind int (1.16+), owner,
 *           withOids, dependency strings up to a NULL string, and the data
 *           offset (a flag byte and offSize bytes)
 *   data    per entry with data: a block type byte (1 = table data,
 *           3 = large objects) and the dumpId; table data is chunks of
 *           int length + bytes ending with a length 0; large objects are
 *           (oid, chunks ending with 0) repeated, ending with oid 0
 *
 * An int is a sign byte and intSize little-endian magnitude bytes; a
 * string is an int length (-1: NULL) and the bytes.
 *
 * The header and TOC are collected into one buffer and parsed when enough
 * has arrived (retried as the buffer doubles, so the work stays linear);
 * the data section is a byte-wise state machine, since its pieces straddle
 * the reads of the pipe.
 */
#include "sources/pg_archive.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"
#include "sources/pg_sql.h"

/* A header and TOC larger than this are not worth holding to save a scan. */
#define PG_ARCHIVE_TOC_MAX ((size_t)64 << 20)
#define PG_ARCHIVE_VERSION(maj, min, rev) (((maj) * 256 + (min)) * 256 + (rev))

enum {
    ST_HEAD,   /* collecting header + TOC in pre */
    ST_BLOCK,  /* next: block type byte, or the end of the archive */
    ST_DUMPID, /* next: the block's dumpId */
    ST_LEN,    /* next: a chunk length (0 ends the table or large object) */
    ST_DATA,   /* inside a chunk: left bytes to go */
    ST_OID,    /* next: a large object's oid (0 ends the block) */
    ST_FAILED  /* gave up; why says why */
};

typedef struct toc_entry {
    int64_t id;
    char *key;      /* "schema.table" for COPY table data, else NULL */
    char *table;    /* the table key of a TABLE or TABLE DATA entry, else NULL */
    int is_data;    /* table: the entry is TABLE DATA (COPY or INSERTs) */
    char *dbsql;    /* the SQL of a database-level entry (pg_archive_db_settings) */
    uint64_t rows;
    int has_data;   /* hadDumper: the data section has a block for it */
    int seen;
} toc_entry;

struct pg_archive_counter {
    int state;
    char *why;
    char *version;
    ob_buf pre;
    size_t next_try;
    unsigned isz, osz;
    toc_entry *ent;  /* sorted by id */
    size_t nent;
    char *encoding;  /* the ENCODING entry's client_encoding, or NULL */
    int std_strings; /* the STDSTRINGS entry: standard_conforming_strings on */
    uint8_t ib[9];   /* an int being assembled across feeds */
    unsigned ibn;
    uint8_t tail[5]; /* the last bytes of the current table's data */
    unsigned ntail;
    int block;       /* 1 table data, 3 large objects */
    uint64_t lobjs;  /* large objects seen in blocks of type 3 */
    toc_entry *cur;
    uint64_t left;
};

static void entries_free(toc_entry *e, size_t n);
static void try_head(pg_archive_counter *c, int at_end);

/* Give up with the reason msg (taken over); the first reason stays. */
static void fail(pg_archive_counter *c, char *msg)
{
    if (c->state == ST_FAILED) {
        free(msg);
        return;
    }
    c->why = msg;
    c->state = ST_FAILED;
    ob_buf_free(&c->pre);
}

pg_archive_counter *pg_archive_counter_new(void)
{
    pg_archive_counter *c = ob_xcalloc(1, sizeof *c);
    c->state = ST_HEAD;
    c->next_try = 4096;
    return c;
}

void pg_archive_counter_free(pg_archive_counter *c)
{
    if (!c)
        return;
    entries_free(c->ent, c->nent);
    ob_buf_free(&c->pre);
    free(c->why);
    free(c->version);
    free(c->encoding);
    free(c);
}

const char *pg_archive_counter_dump_version(const pg_archive_counter *c)
{
    return c->version;
}

int pg_archive_counter_toc_read(const pg_archive_counter *c)
{
    return c->state == ST_FAILED ? -1 : c->state != ST_HEAD;
}

int pg_archive_db_settings(pg_archive_counter *c, char **sql, char **encoding,
                           int *std_strings, char **why)
{
    *sql = *encoding = *why = NULL;
    *std_strings = 0;
    if (c->state == ST_HEAD) /* all of a short archive was fed: parse it */
        try_head(c, 1);
    if (c->state == ST_FAILED || c->state == ST_HEAD) {
        *why = ob_xstrdup(c->why ? c->why : "the table of contents was not read");
        return -1;
    }
    ob_buf b = OB_BUF_INIT;
    for (size_t i = 0; i < c->nent; i++)
        if (c->ent[i].dbsql) {
            ob_buf_append(&b, c->ent[i].dbsql, strlen(c->ent[i].dbsql));
            ob_buf_putc(&b, '\n');
        }
    ob_buf_putc(&b, '\0');
    *sql = ob_xstrdup((const char *)b.data);
    ob_buf_free(&b);
    *encoding = ob_xstrdup(c->encoding ? c->encoding : "UTF8");
    *std_strings = c->std_strings;
    return 0;
}

/* ---- header and TOC -------------------------------------------------- */

/* Parse results: the bytes ran out (wait for more), the data is not what we
 * can read, or done. */
enum { P_SHORT = -2, P_BAD = -1, P_OK = 0 };

static int rd_int(ob_rd *r, unsigned isz, int64_t *v)
{
    uint8_t neg = ob_rd_u8(r);
    const uint8_t *le = ob_rd_take(r, isz);
    if (!le)
        return P_SHORT;
    uint64_t m = 0;
    for (unsigned b = isz; b-- > 0;)
        m = m << 8 | le[b];
    if (neg > 1 || m > INT64_MAX)
        return P_BAD;
    *v = neg ? -(int64_t)m : (int64_t)m;
    return P_OK;
}

/* A string: *s points into the buffer (not terminated), *len = -1 for NULL. */
static int rd_str(ob_rd *r, unsigned isz, const uint8_t **s, int64_t *len)
{
    int rc = rd_int(r, isz, len);
    if (rc != P_OK)
        return rc;
    if (*len < 0) {
        *s = NULL;
        return *len == -1 ? P_OK : P_BAD;
    }
    if ((uint64_t)*len > PG_ARCHIVE_TOC_MAX)
        return P_BAD;
    *s = ob_rd_take(r, (size_t)*len);
    return *s ? P_OK : P_SHORT;
}

#define TRY(x)                                                                                   \
    do {                                                                                         \
        int rc_ = (x);                                                                           \
        if (rc_ != P_OK)                                                                         \
            return rc_;                                                                          \
    } while (0)

static int cmp_entry(const void *a, const void *b)
{
    const toc_entry *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void entries_free(toc_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].key);
        free(e[i].table);
        free(e[i].dbsql);
    }
    free(e);
}

/* Is (desc, tag) an entry pg_restore emits only with --create: the
 * database's own properties, and the comment, ACL and security label on
 * the database (pg_dump tags those "DATABASE name")? */
static int is_db_level(const uint8_t *desc, int64_t descn, const uint8_t *tag, int64_t tagn)
{
#define IS(lit) (descn == (int64_t)sizeof lit - 1 && memcmp(desc, lit, sizeof lit - 1) == 0)
    if (IS("DATABASE PROPERTIES"))
        return 1;
    int on_db = tagn > 9 && memcmp(tag, "DATABASE ", 9) == 0;
    return on_db && (IS("COMMENT") || IS("ACL") || IS("SECURITY LABEL"));
#undef IS
}

/* The value of "SET name = 'value';" as pg_dump writes the ENCODING and
 * STDSTRINGS entries; NULL if defn is not of that form. */
static char *set_value(const uint8_t *defn, int64_t n)
{
    const char *q = memchr(defn, '\'', (size_t)n);
    if (!q)
        return NULL;
    const char *e = memchr(q + 1, '\'', (size_t)n - (size_t)(q + 1 - (const char *)defn));
    return e ? ob_xasprintf("%.*s", (int)(e - q - 1), q + 1) : NULL;
}

/* One TOC entry into e (e->key set only for COPY table data, e->dbsql
 * only for a database-level entry); the ENCODING and STDSTRINGS entries
 * into c. */
static int parse_entry(pg_archive_counter *c, ob_rd *r, unsigned ver, unsigned isz,
                       unsigned osz, toc_entry *e)
{
    const uint8_t *s, *tag = NULL, *desc = NULL, *copy = NULL, *ns = NULL, *defn = NULL;
    int64_t n, had, tagn = -1, descn = -1, copyn = -1, nsn = -1, defnn = -1, v;
    TRY(rd_int(r, isz, &e->id));
    TRY(rd_int(r, isz, &had));
    TRY(rd_str(r, isz, &s, &n)); /* tableoid */
    TRY(rd_str(r, isz, &s, &n)); /* oid */
    TRY(rd_str(r, isz, &tag, &tagn));
    TRY(rd_str(r, isz, &desc, &descn));
    TRY(rd_int(r, isz, &v)); /* section */
    TRY(rd_str(r, isz, &defn, &defnn));
    TRY(rd_str(r, isz, &s, &n)); /* dropStmt */
    TRY(rd_str(r, isz, &copy, &copyn));
    TRY(rd_str(r, isz, &ns, &nsn));
    TRY(rd_str(r, isz, &s, &n)); /* tablespace */
    TRY(rd_str(r, isz, &s, &n)); /* tableam */
    if (ver >= PG_ARCHIVE_VERSION(1, 16, 0))
        TRY(rd_int(r, isz, &v)); /* relkind */
    TRY(rd_str(r, isz, &s, &n)); /* owner */
    TRY(rd_str(r, isz, &s, &n)); /* withOids */
    do
        TRY(rd_str(r, isz, &s, &n)); /* dependencies, up to a NULL */
    while (n >= 0);
    if (!ob_rd_take(r, 1u + osz)) /* data offset: flag + offSize bytes */
        return P_SHORT;
    e->has_data = had != 0;
    int is_table = descn == 5 && memcmp(desc, "TABLE", 5) == 0;
    e->is_data = descn == 10 && memcmp(desc, "TABLE DATA", 10) == 0;
    if ((is_table || e->is_data) && tagn >= 0 && nsn >= 0) {
        char *schema = ob_xstrndup((const char *)ns, (size_t)nsn);
        char *table = ob_xstrndup((const char *)tag, (size_t)tagn);
        e->table = pg_sql_table_key(schema, table);
        free(schema);
        free(table);
    }
    if (e->has_data && e->table && e->is_data && copyn >= 5 && memcmp(copy, "COPY ", 5) == 0)
        e->key = ob_xstrdup(e->table);
    if (defnn > 0 && descn >= 0 && is_db_level(desc, descn, tag, tagn))
        e->dbsql = ob_xasprintf("%.*s", (int)defnn, (const char *)defn);
    if (defnn > 0 && descn == 8 && memcmp(desc, "ENCODING", 8) == 0) {
        free(c->encoding);
        c->encoding = set_value(defn, defnn);
    }
    if (defnn > 0 && descn == 10 && memcmp(desc, "STDSTRINGS", 10) == 0) {
        char *on = set_value(defn, defnn);
        c->std_strings = on && strcmp(on, "on") == 0;
        free(on);
    }
    return P_OK;
}

/* Header and TOC from pre; on P_OK *used is where the data section starts. */
static int parse_head(pg_archive_counter *c, size_t *used)
{
    ob_rd r = ob_rd_init(c->pre.data, c->pre.len);
    const uint8_t *magic = ob_rd_take(&r, 5);
    if (!magic)
        return P_SHORT;
    if (memcmp(magic, "PGDMP", 5) != 0) {
        fail(c, ob_xstrdup("not a pg_dump custom-format archive"));
        return P_BAD;
    }
    uint8_t maj = ob_rd_u8(&r), min = ob_rd_u8(&r), rev = ob_rd_u8(&r);
    uint8_t isz = ob_rd_u8(&r), osz = ob_rd_u8(&r), fmt = ob_rd_u8(&r);
    if (r.bad)
        return P_SHORT;
    unsigned ver = PG_ARCHIVE_VERSION(maj, min, rev);
    if (isz < 1 || isz > 8 || osz < 1 || osz > 8 || fmt != 1 ||
        ver < PG_ARCHIVE_VERSION(1, 10, 0)) {
        fail(c, ob_xasprintf("archive version %u.%u, format %u is not a custom archive this "
                             "reads", maj, min, fmt));
        return P_BAD;
    }
    int64_t comp, v, n;
    if (ver >= PG_ARCHIVE_VERSION(1, 15, 0)) {
        comp = ob_rd_u8(&r);
        if (r.bad)
            return P_SHORT;
    } else {
        TRY(rd_int(&r, isz, &comp));
    }
    for (int i = 0; i < 7; i++) /* creation time */
        TRY(rd_int(&r, isz, &v));
    const uint8_t *s;
    TRY(rd_str(&r, isz, &s, &n)); /* database */
    TRY(rd_str(&r, isz, &s, &n)); /* server version */
    TRY(rd_str(&r, isz, &s, &n)); /* pg_dump version */
    if (!c->version && n >= 0)
        c->version = ob_xasprintf("pg_dump (PostgreSQL) %.*s", (int)n, (const char *)s);
    if (ver < PG_ARCHIVE_VERSION(1, 14, 0) || ver > PG_ARCHIVE_VERSION(1, 16, 255)) {
        fail(c, ob_xasprintf("archive version %u.%u is not one this reads (1.14 to 1.16)", maj,
                             min));
        return P_BAD;
    }
    if (comp != 0) {
        fail(c, ob_xstrdup("the archive's data is compressed"));
        return P_BAD;
    }
    int64_t count;
    TRY(rd_int(&r, isz, &count));
    if (count < 0) {
        fail(c, ob_xasprintf("the table of contents has %lld entries", (long long)count));
        return P_BAD;
    }
    /* An entry is at least 3 ints, 13 strings and an offset: wait until
     * the bytes could hold them all before allocating for them. */
    if ((uint64_t)count > r.left / (16u * (1u + isz) + 1u + osz))
        return P_SHORT;
    toc_entry *e = ob_xcalloc((size_t)count ? (size_t)count : 1, sizeof *e);
    for (int64_t i = 0; i < count; i++) {
        int rc = parse_entry(c, &r, ver, isz, osz, &e[i]);
        if (rc != P_OK) {
            entries_free(e, (size_t)i + 1);
            if (rc == P_BAD)
                fail(c, ob_xasprintf("table of contents entry %lld does not parse", (long long)i));
            return rc;
        }
    }
    qsort(e, (size_t)count, sizeof *e, cmp_entry);
    for (int64_t i = 1; i < count; i++)
        if (e[i].id == e[i - 1].id) {
            fail(c, ob_xasprintf("the table of contents repeats dump ID %lld",
                                 (long long)e[i].id));
            entries_free(e, (size_t)count);
            return P_BAD;
        }
    c->ent = e;
    c->nent = (size_t)count;
    c->isz = isz;
    c->osz = osz;
    *used = c->pre.len - r.left;
    return P_OK;
}

/* ---- data section ---------------------------------------------------- */

static toc_entry *find_entry(pg_archive_counter *c, int64_t id)
{
    toc_entry key = {.id = id};
    return bsearch(&key, c->ent, c->nent, sizeof *c->ent, cmp_entry);
}

/* Assemble an int from the stream; 1 when complete (*v set). */
static int take_int(pg_archive_counter *c, const uint8_t **p, const uint8_t *end, int64_t *v)
{
    while (c->ibn < 1 + c->isz && *p < end)
        c->ib[c->ibn++] = *(*p)++;
    if (c->ibn < 1 + c->isz)
        return 0;
    ob_rd r = ob_rd_init(c->ib, c->ibn);
    c->ibn = 0;
    if (rd_int(&r, c->isz, v) != P_OK) {
        fail(c, ob_xstrdup("a malformed integer in the data section"));
        return 0;
    }
    return 1;
}

static void keep_tail(pg_archive_counter *c, const uint8_t *p, size_t k)
{
    size_t keep = sizeof c->tail;
    if (k >= keep) {
        memcpy(c->tail, p + k - keep, keep);
        c->ntail = (unsigned)keep;
        return;
    }
    size_t old = c->ntail + k > keep ? keep - k : c->ntail;
    memmove(c->tail, c->tail + c->ntail - old, old);
    memcpy(c->tail + old, p, k);
    c->ntail = (unsigned)(old + k);
}

/* pg_dump (up to 17 at least) ends each table's COPY data with the
 * terminator line and two empty lines, "\\.\n\n\n": three of the lines
 * counted are not rows.  A row cannot be "\\." (COPY escapes a backslash),
 * so the terminator is recognised exactly. */
static void end_table(pg_archive_counter *c)
{
    static const uint8_t trailer[5] = {'\\', '.', '\n', '\n', '\n'};
    c->state = ST_BLOCK;
    if (c->cur->key) {
        if (c->ntail == sizeof trailer && memcmp(c->tail, trailer, sizeof trailer) == 0)
            c->cur->rows -= 3;
        else
            fail(c, ob_xasprintf("the data of %s does not end with COPY's terminator",
                                 c->cur->key));
    }
}

static void feed_data(pg_archive_counter *c, const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    int64_t v;
    while (p < end && c->state != ST_FAILED) {
        switch (c->state) {
        case ST_BLOCK:
            c->block = *p++;
            if (c->block != 1 && c->block != 3)
                fail(c, ob_xasprintf("unknown data block type %d", c->block));
            else
                c->state = ST_DUMPID;
            break;
        case ST_DUMPID:
            if (!take_int(c, &p, end, &v))
                break;
            c->cur = find_entry(c, v);
            if (!c->cur || !c->cur->has_data || c->cur->seen)
                fail(c, ob_xasprintf("a data block for dump ID %lld, which the TOC does not "
                                     "announce", (long long)v));
            else {
                c->cur->seen = 1;
                c->ntail = 0;
                c->state = c->block == 1 ? ST_LEN : ST_OID;
            }
            break;
        case ST_OID:
            if (!take_int(c, &p, end, &v))
                break;
            if (v < 0)
                fail(c, ob_xstrdup("a negative large object ID"));
            else if (v == 0)
                c->state = ST_BLOCK;
            else {
                c->lobjs++;
                c->state = ST_LEN;
            }
            break;
        case ST_LEN:
            if (!take_int(c, &p, end, &v))
                break;
            if (v < 0)
                fail(c, ob_xstrdup("a negative chunk length"));
            else if (v == 0 && c->block == 3)
                c->state = ST_OID;
            else if (v == 0)
                end_table(c);
            else {
                c->left = (uint64_t)v;
                c->state = ST_DATA;
            }
            break;
        case ST_DATA: {
            size_t k = (uint64_t)(end - p) < c->left ? (size_t)(end - p) : (size_t)c->left;
            if (c->block == 1 && c->cur->key) {
                const uint8_t *q = p, *qe = p + k;
                while ((q = memchr(q, '\n', (size_t)(qe - q))) != NULL) {
                    c->cur->rows++;
                    q++;
                }
                keep_tail(c, p, k);
            }
            p += k;
            c->left -= k;
            if (c->left == 0)
                c->state = ST_LEN;
            break;
        }
        }
    }
}

/* Try to parse the header and TOC collected so far; at_end: no more bytes
 * will come.  On success the bytes after the TOC go to the data section. */
static void try_head(pg_archive_counter *c, int at_end)
{
    size_t used = 0;
    int rc = parse_head(c, &used);
    if (rc == P_BAD) {
        fail(c, ob_xstrdup("the archive header or table of contents does not parse"));
    } else if (rc == P_SHORT) {
        if (at_end)
            fail(c, ob_xstrdup("the archive ends inside its table of contents"));
        else if (c->pre.len > PG_ARCHIVE_TOC_MAX)
            fail(c, ob_xasprintf("the table of contents is larger than %zu MiB",
                                 PG_ARCHIVE_TOC_MAX >> 20));
        c->next_try = 2 * c->pre.len;
    } else {
        ob_buf rest = c->pre;
        c->pre = (ob_buf)OB_BUF_INIT;
        c->state = ST_BLOCK;
        feed_data(c, rest.data + used, rest.len - used);
        ob_buf_free(&rest);
    }
}

void pg_archive_counter_feed(pg_archive_counter *c, const uint8_t *p, size_t n)
{
    if (c->state == ST_FAILED || n == 0)
        return;
    if (c->state != ST_HEAD) {
        feed_data(c, p, n);
        return;
    }
    ob_buf_append(&c->pre, p, n);
    if (c->pre.len >= c->next_try)
        try_head(c, 0);
}

json_t *pg_archive_counter_tables(const pg_archive_counter *c)
{
    json_t *o = json_object();
    for (size_t i = 0; i < c->nent; i++) {
        const toc_entry *e = &c->ent[i];
        if (!e->table)
            continue;
        json_t *was = json_object_get(o, e->table);
        if (!was || (e->is_data && json_is_false(was)))
            json_object_set_new(o, e->table, json_boolean(e->is_data));
    }
    return o;
}

uint64_t pg_archive_counter_large_objects(const pg_archive_counter *c)
{
    return c->lobjs;
}

int pg_archive_counter_finish(pg_archive_counter *c, json_t **counts, char **why)
{
    *counts = NULL;
    *why = NULL;
    if (c->state == ST_HEAD) /* a short archive: parse what there is */
        try_head(c, 1);
    if (c->state != ST_FAILED && (c->state != ST_BLOCK || c->ibn))
        fail(c, ob_xstrdup("the archive ends inside a data block"));
    for (size_t i = 0; i < c->nent && c->state != ST_FAILED; i++)
        if (c->ent[i].has_data && !c->ent[i].seen)
            fail(c, ob_xasprintf("the archive has no data block for dump ID %lld",
                                 (long long)c->ent[i].id));
    if (c->state == ST_FAILED) {
        *why = ob_xstrdup(c->why);
        return -1;
    }
    json_t *o = json_object();
    for (size_t i = 0; i < c->nent; i++)
        if (c->ent[i].key)
            json_object_set_new(o, c->ent[i].key, json_integer((json_int_t)c->ent[i].rows));
    *counts = o;
    return 0;
}
