/*
 * confdiff.c — key-level comparison of two versions of a config file (see
 * confdiff.h).
 *
 * Each version is split into entries: keyed lines (qualified key + value)
 * and other lines (the whole line).  Keys are matched by name, other lines
 * as a multiset of exact texts, both through sorting (O(n log n): a 1 MiB
 * file may have tens of thousands of lines, too many for a quadratic LCS).
 * Line order is therefore not reported, only what appeared, went or
 * changed, which is what matters for settings.
 */
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "sources/confdiff.h"

typedef struct cd_entry {
    char *key;          /* qualified key (owned), NULL for a whole line */
    const char *val;    /* value or whole line: points into the file's text */
    size_t line;
    struct cd_entry *partner; /* the matching entry of the other version */
} cd_entry;

typedef struct cd_file {
    char *text;         /* a NUL-terminated copy, cut into pieces in place */
    size_t len;
    cd_entry *e;
    size_t n, cap;
} cd_file;

typedef struct cd_parent {
    size_t indent;
    const char *name;
} cd_parent;

static int key_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

static cd_entry *add_entry(cd_file *f)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 64;
        f->e = ob_xrealloc(f->e, f->cap * sizeof *f->e);
    }
    cd_entry *e = &f->e[f->n++];
    memset(e, 0, sizeof *e);
    return e;
}

static void parse(cd_file *f, const uint8_t *data, size_t len)
{
    f->text = ob_xmalloc(len + 1);
    memcpy(f->text, data, len);
    f->text[len] = 0;
    f->len = len;
    char *section = NULL;
    cd_parent *par = NULL;
    size_t npar = 0, lineno = 0;
    char *p = f->text, *end_all = f->text + len;
    while (p < end_all) {
        char *line = p;
        char *nl = memchr(p, '\n', (size_t)(end_all - p));
        char *end = nl ? nl : end_all;
        p = nl ? nl + 1 : end_all;
        lineno++;
        *end = 0; /* NULs inside a line shorten it: binary files are not parsed */
        end = line + strlen(line);
        while (end > line && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            *--end = 0;
        size_t indent = strspn(line, " \t");
        char *s = line + indent;
        if (!*s)
            continue;
        cd_entry *e;
        if (*s == '[' && end[-1] == ']') {
            /* INI section header: keys below are "section.key". */
            free(section);
            section = ob_xstrndup(s + 1, (size_t)(end - s) - 2);
            npar = 0;
            e = add_entry(f);
            e->val = s;
            e->line = lineno;
            continue;
        }
        char *t = s;
        if (strncmp(t, "export ", 7) == 0)
            t += 7 + strspn(t + 7, " \t");
        char *q = t;
        while (key_char(*q))
            q++;
        char *key_end = q;
        q += strspn(q, " \t");
        int keyed = key_end > t && *t != '#' && *t != ';' &&
                    (*q == '=' || (*q == ':' && (q[1] == 0 || q[1] == ' ' || q[1] == '\t')));
        e = add_entry(f);
        e->line = lineno;
        if (!keyed) {
            e->val = s;
            continue;
        }
        char sep = *q;
        char *val = q + 1;
        val += strspn(val, " \t");
        *key_end = 0;
        ob_buf k = OB_BUF_INIT;
        if (section)
            ob_buf_printf(&k, "%s.", section);
        if (sep == ':') {
            /* YAML-like nesting by indentation. */
            while (npar && par[npar - 1].indent >= indent)
                npar--;
            for (size_t i = 0; i < npar; i++)
                ob_buf_printf(&k, "%s.", par[i].name);
            if (!*val) {
                par = ob_xrealloc(par, (npar + 1) * sizeof *par);
                par[npar].indent = indent;
                par[npar++].name = t;
            }
        }
        ob_buf_append(&k, t, strlen(t));
        ob_buf_putc(&k, 0);
        e->key = (char *)ob_buf_steal(&k, NULL);
        e->val = val;
    }
    free(section);
    free(par);
}

static void file_free(cd_file *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->e[i].key);
    free(f->e);
    ob_wipe(f->text, f->len);
    free(f->text);
}

static int cmp_key(const void *x, const void *y)
{
    const cd_entry *a = *(cd_entry *const *)x, *b = *(cd_entry *const *)y;
    int c = strcmp(a->key, b->key);
    return c ? c : (a->line > b->line) - (a->line < b->line);
}

static int cmp_val(const void *x, const void *y)
{
    const cd_entry *a = *(cd_entry *const *)x, *b = *(cd_entry *const *)y;
    int c = strcmp(a->val, b->val);
    return c ? c : (a->line > b->line) - (a->line < b->line);
}

/* Pointers to the keyed (want_keys) or the other entries, sorted. */
static cd_entry **sorted(cd_file *f, int want_keys, size_t *n)
{
    cd_entry **v = ob_xmalloc((f->n ? f->n : 1) * sizeof *v);
    *n = 0;
    for (size_t i = 0; i < f->n; i++)
        if ((f->e[i].key != NULL) == want_keys)
            v[(*n)++] = &f->e[i];
    qsort(v, *n, sizeof *v, want_keys ? cmp_key : cmp_val);
    return v;
}

/* The second and later occurrences of a key become "key#2", "key#3"... so
 * every key is unique and matches the same occurrence in the other file. */
static void number_duplicates(cd_file *f)
{
    size_t n;
    cd_entry **v = sorted(f, 1, &n);
    /* Sorted by (key, line): each run of one key is its occurrences in
     * file order.  v[start] keeps the plain name the run is compared with. */
    for (size_t i = 1, start = 0; i < n; i++) {
        if (strcmp(v[i]->key, v[start]->key) != 0) {
            start = i;
            continue;
        }
        char *k = ob_xasprintf("%s#%zu", v[i]->key, i - start + 1);
        free(v[i]->key);
        v[i]->key = k;
    }
    free(v);
}

static void match(cd_file *a, cd_file *b, int keys)
{
    size_t na, nb;
    cd_entry **va = sorted(a, keys, &na), **vb = sorted(b, keys, &nb);
    size_t i = 0, j = 0;
    while (i < na && j < nb) {
        int c = keys ? strcmp(va[i]->key, vb[j]->key) : strcmp(va[i]->val, vb[j]->val);
        if (c < 0) {
            i++;
        } else if (c > 0) {
            j++;
        } else {
            va[i]->partner = vb[j];
            vb[j]->partner = va[i];
            i++;
            j++;
        }
    }
    free(va);
    free(vb);
}

int confdiff_is_binary(const uint8_t *p, size_t n) { return memchr(p, 0, n) != NULL; }

int confdiff_text(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, confdiff_cb cb,
                  void *ud)
{
    cd_file fa = {0}, fb = {0};
    parse(&fa, a, alen);
    parse(&fb, b, blen);
    /* '#' is not a key character, so "k#2" never collides with a real key. */
    number_duplicates(&fa);
    number_duplicates(&fb);
    match(&fa, &fb, 1);
    match(&fa, &fb, 0);
    int rc = 0;
    confdiff_change c;
    for (size_t i = 0; i < fb.n && !rc; i++) {
        cd_entry *e = &fb.e[i];
        if (!e->key || (e->partner && strcmp(e->partner->val, e->val) == 0))
            continue;
        c = (confdiff_change){e->partner ? '~' : '+', e->key, e->line,
                              e->partner ? e->partner->val : NULL, e->val};
        rc = cb(&c, ud);
    }
    for (size_t i = 0; i < fa.n && !rc; i++) {
        cd_entry *e = &fa.e[i];
        if (!e->key || e->partner)
            continue;
        c = (confdiff_change){'-', e->key, e->line, e->val, NULL};
        rc = cb(&c, ud);
    }
    /* Other lines: pair the unmatched ones of both versions in order as
     * "changed"; the rest were added or removed. */
    size_t i = 0, j = 0;
    while (!rc) {
        while (i < fa.n && (fa.e[i].key || fa.e[i].partner))
            i++;
        while (j < fb.n && (fb.e[j].key || fb.e[j].partner))
            j++;
        if (i >= fa.n && j >= fb.n)
            break;
        if (i < fa.n && j < fb.n)
            c = (confdiff_change){'~', NULL, fb.e[j].line, fa.e[i].val, fb.e[j].val};
        else if (j < fb.n)
            c = (confdiff_change){'+', NULL, fb.e[j].line, NULL, fb.e[j].val};
        else
            c = (confdiff_change){'-', NULL, fa.e[i].line, fa.e[i].val, NULL};
        rc = cb(&c, ud);
        if (i < fa.n && c.change != '+')
            i++;
        if (j < fb.n && c.change != '-')
            j++;
    }
    file_free(&fa);
    file_free(&fb);
    return rc;
}

int confdiff_read(repo *r, const tree_node *n, size_t max, ob_buf *out, ob_err *err)
{
    ob_buf_reset(out);
    if (n->type != TREE_FILE)
        return ob_err_set(err, OB_EUSAGE, "%s is not a regular file", (const char *)n->name);
    if (n->size > max)
        return ob_err_set(err, OB_EFAIL, "%s is larger than %zu bytes", (const char *)n->name,
                          max);
    ob_buf_reserve(out, (size_t)n->size + 1);
    memset(out->data, 0, (size_t)n->size);
    out->len = (size_t)n->size;
    ob_buf blob = OB_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < n->nextents && rc == 0; i++) {
        const tree_extent *x = &n->extents[i];
        rc = repo_read_blob(r, x->id, REPO_BLOB_DATA, &blob, err);
        const uint8_t *bytes = rc == 0 ? tree_extent_bytes(x, blob.data, blob.len) : NULL;
        if (rc == 0 && (!bytes || x->offset > n->size || x->len > n->size - x->offset))
            rc = ob_err_set(err, OB_ECORRUPT, "%s: an extent does not fit the file size",
                            (const char *)n->name);
        if (rc == 0)
            memcpy(out->data + x->offset, bytes, x->len);
    }
    ob_wipe(blob.data, blob.cap);
    ob_buf_free(&blob);
    return rc;
}
