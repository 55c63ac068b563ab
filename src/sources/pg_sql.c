/*
 * pg_sql.c — see pg_sql.h.
 */
#include "sources/pg_sql.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

static int pg_sql_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Bytes >= 0x80 are letters to PostgreSQL's lexer (multibyte names). */
static int pg_sql_is_word_start(char c)
{
    unsigned char u = (unsigned char)c;
    return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_' || u >= 0x80;
}

static int pg_sql_is_word_char(char c)
{
    return pg_sql_is_word_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* The end of a $tag$ opener at s[i] (the index after its second '$'), or 0
 * when s[i] does not open a dollar quote. */
static size_t pg_sql_dollar_open(const char *s, size_t len, size_t i)
{
    if (s[i] != '$')
        return 0;
    size_t j = i + 1;
    if (j < len && pg_sql_is_word_start(s[j]))
        for (j++; j < len && pg_sql_is_word_char(s[j]) && s[j] != '$'; j++)
            ;
    return j < len && s[j] == '$' ? j + 1 : 0;
}

/* If s[i] starts a comment, a string, a quoted identifier or a dollar
 * quote, the index just past it (len when it is unterminated); else i. */
static size_t pg_sql_skip_quoted(const char *s, size_t len, size_t i)
{
    if (s[i] == '-' && i + 1 < len && s[i + 1] == '-') {
        while (i < len && s[i] != '\n')
            i++;
        return i;
    }
    if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
        int depth = 0;
        while (i < len) {
            if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
                depth++;
                i += 2;
            } else if (s[i] == '*' && i + 1 < len && s[i + 1] == '/') {
                i += 2;
                if (--depth == 0)
                    return i;
            } else {
                i++;
            }
        }
        return len;
    }
    /* E'...': backslash escapes; the caller only asks at a word start. */
    int backslash = 0;
    if ((s[i] == 'E' || s[i] == 'e') && i + 1 < len && s[i + 1] == '\'') {
        backslash = 1;
        i++;
    }
    if (s[i] == '\'' || s[i] == '"') {
        char q = s[i];
        for (i++; i < len; i++) {
            if (backslash && s[i] == '\\' && i + 1 < len) {
                i++;
            } else if (s[i] == q) {
                if (i + 1 < len && s[i + 1] == q)
                    i++; /* doubled: part of the text */
                else
                    return i + 1;
            }
        }
        return len;
    }
    size_t open = pg_sql_dollar_open(s, len, i);
    if (open) {
        size_t taglen = open - i;
        for (size_t j = open; j + taglen <= len; j++)
            if (memcmp(s + j, s + i, taglen) == 0)
                return j + taglen;
        return len;
    }
    return i;
}

int pg_sql_next(const char *script, size_t len, size_t *pos, char **stmt)
{
    size_t i = *pos;
    for (;;) {
        /* Blanks, comments and meta-command lines before a statement. */
        while (i < len) {
            if (pg_sql_is_space(script[i])) {
                i++;
            } else if (script[i] == ';') {
                i++; /* an empty statement */
            } else if (script[i] == '\\') {
                while (i < len && script[i] != '\n')
                    i++;
            } else if ((script[i] == '-' || script[i] == '/') &&
                       pg_sql_skip_quoted(script, len, i) != i) {
                i = pg_sql_skip_quoted(script, len, i);
            } else {
                break;
            }
        }
        if (i >= len) {
            *pos = len;
            return 0;
        }
        size_t start = i;
        while (i < len && script[i] != ';') {
            size_t next;
            if (pg_sql_is_word_start(script[i]) &&
                !((script[i] == 'E' || script[i] == 'e') && i + 1 < len && script[i + 1] == '\'')) {
                /* A whole word, so that a '$' or an E inside it is not a quote. */
                for (i++; i < len && pg_sql_is_word_char(script[i]); i++)
                    ;
            } else if ((next = pg_sql_skip_quoted(script, len, i)) != i) {
                i = next;
            } else {
                i++;
            }
        }
        size_t end = i;
        while (end > start && pg_sql_is_space(script[end - 1]))
            end--;
        *pos = i < len ? i + 1 : len;
        *stmt = ob_xstrndup(script + start, end - start);
        return 1;
    }
}

/* The quoted identifier at s (s[0] == '"'): its name, "" read as one
 * quote (caller frees); *end just past the closing quote, *closed 1.  An
 * unterminated one runs to the end of s (*closed 0). */
static char *pg_sql_unquote(const char *s, const char **end, int *closed)
{
    ob_buf b = OB_BUF_INIT;
    const char *p = s + 1;
    *closed = 0;
    for (; *p; p++) {
        if (*p != '"') {
            ob_buf_append(&b, p, 1);
        } else if (p[1] == '"') {
            ob_buf_append(&b, "\"", 1);
            p++;
        } else {
            *closed = 1;
            p++;
            break;
        }
    }
    *end = p;
    return (char *)ob_buf_steal(&b, NULL);
}

static void pg_sql_push(pg_sql_tok **toks, size_t *n, pg_sql_tok_type type, char *text,
                        size_t start, size_t end)
{
    *toks = ob_xrealloc(*toks, (*n + 1) * sizeof **toks);
    (*toks)[*n] = (pg_sql_tok){type, text, start, end};
    (*n)++;
}

void pg_sql_tokens(const char *stmt, pg_sql_tok **toks, size_t *n)
{
    size_t len = strlen(stmt), i = 0;
    *toks = NULL;
    *n = 0;
    while (i < len) {
        char c = stmt[i];
        size_t next;
        if (pg_sql_is_space(c)) {
            i++;
        } else if (c == '"') {
            const char *end;
            int closed;
            char *name = pg_sql_unquote(stmt + i, &end, &closed);
            next = (size_t)(end - stmt);
            pg_sql_push(toks, n, PG_SQL_QIDENT, name, i, next);
            i = next;
        } else if (pg_sql_is_word_start(c) &&
                   !((c == 'E' || c == 'e') && i + 1 < len && stmt[i + 1] == '\'')) {
            size_t s = i;
            for (i++; i < len && pg_sql_is_word_char(stmt[i]); i++)
                ;
            char *w = ob_xstrndup(stmt + s, i - s);
            /* PostgreSQL folds only ASCII letters of a bare name. */
            for (char *p = w; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a');
            pg_sql_push(toks, n, PG_SQL_WORD, w, s, i);
        } else if ((next = pg_sql_skip_quoted(stmt, len, i)) != i) {
            if (c != '-' && c != '/') /* comments are dropped */
                pg_sql_push(toks, n, PG_SQL_STRING, ob_xstrndup(stmt + i, next - i), i, next);
            i = next;
        } else if (c >= '0' && c <= '9') {
            size_t s = i;
            while (i < len && ((stmt[i] >= '0' && stmt[i] <= '9') || stmt[i] == '.'))
                i++;
            pg_sql_push(toks, n, PG_SQL_PUNCT, ob_xstrndup(stmt + s, i - s), s, i);
        } else {
            pg_sql_push(toks, n, PG_SQL_PUNCT, ob_xstrndup(stmt + i, 1), i, i + 1);
            i++;
        }
    }
}

void pg_sql_tokens_free(pg_sql_tok *toks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(toks[i].text);
    free(toks);
}

char *pg_sql_quote_ident(const char *name)
{
    ob_buf b = OB_BUF_INIT;
    ob_buf_append(&b, "\"", 1);
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            ob_buf_append(&b, "\"", 1);
        ob_buf_append(&b, p, 1);
    }
    ob_buf_append(&b, "\"", 1);
    return (char *)ob_buf_steal(&b, NULL);
}

static void pg_sql_key_part(ob_buf *b, const char *part)
{
    if (*part && !strpbrk(part, ".\"")) {
        ob_buf_append(b, part, strlen(part));
        return;
    }
    char *q = pg_sql_quote_ident(part);
    ob_buf_append(b, q, strlen(q));
    free(q);
}

char *pg_sql_table_key(const char *schema, const char *table)
{
    ob_buf b = OB_BUF_INIT;
    pg_sql_key_part(&b, schema);
    ob_buf_append(&b, ".", 1);
    pg_sql_key_part(&b, table);
    return (char *)ob_buf_steal(&b, NULL);
}

/* One part of a key at s: a quoted identifier, or bare up to the next
 * '.' (the last part: to the end).  *end just past it; NULL if malformed. */
static char *pg_sql_key_part_read(const char *s, int last, const char **end)
{
    if (*s == '"') {
        int closed;
        char *name = pg_sql_unquote(s, end, &closed);
        if (!closed)
            free(name);
        return closed ? name : NULL;
    }
    const char *e = last ? s + strlen(s) : strchr(s, '.');
    if (!e || e == s || memchr(s, '"', (size_t)(e - s)) || memchr(s, '.', (size_t)(e - s)))
        return NULL;
    *end = e;
    return ob_xstrndup(s, (size_t)(e - s));
}

int pg_sql_table_key_split(const char *key, char **schema, char **table)
{
    const char *end = NULL;
    char *ns = pg_sql_key_part_read(key, 0, &end);
    if (!ns)
        return -1;
    char *rel = *end == '.' ? pg_sql_key_part_read(end + 1, 1, &end) : NULL;
    if (!rel || *end) {
        free(ns);
        free(rel);
        return -1;
    }
    *schema = ns;
    *table = rel;
    return 0;
}

/* ---- classification of pg_dumpall --globals-only statements ----------- */

static int pg_sql_is(const pg_sql_tok *toks, size_t n, size_t i, const char *word)
{
    return i < n && toks[i].type == PG_SQL_WORD && strcmp(toks[i].text, word) == 0;
}

static int pg_sql_is_name(const pg_sql_tok *toks, size_t n, size_t i)
{
    return i < n && (toks[i].type == PG_SQL_WORD || toks[i].type == PG_SQL_QIDENT);
}

/* The statement's text up to and including token i, for messages. */
static char *pg_sql_label(const char *stmt, const pg_sql_tok *toks, size_t n, size_t i)
{
    if (n == 0)
        return ob_xstrdup("(empty statement)");
    if (i >= n)
        i = n - 1;
    return ob_xstrndup(stmt, toks[i].end);
}

/* Names from token i on, separated by commas, up to a word in stop (or
 * the end); *next is the token after them. */
static char **pg_sql_name_list(const pg_sql_tok *toks, size_t n, size_t i, size_t *count,
                               size_t *next)
{
    char **names = NULL;
    *count = 0;
    while (i < n && pg_sql_is_name(toks, n, i)) {
        if (pg_sql_is(toks, n, i, "group") && pg_sql_is_name(toks, n, i + 1))
            i++; /* GRANT ... TO GROUP name: the old spelling */
        names = ob_xrealloc(names, (*count + 1) * sizeof *names);
        names[(*count)++] = ob_xstrdup(toks[i].text);
        i++;
        if (i < n && toks[i].type == PG_SQL_PUNCT && strcmp(toks[i].text, ",") == 0)
            i++;
        else
            break;
    }
    *next = i;
    return names;
}

void pg_sql_global_classify(const char *stmt, pg_sql_global *out)
{
    memset(out, 0, sizeof *out);
    out->kind = PG_SQL_G_OTHER;
    pg_sql_tok *t;
    size_t n;
    pg_sql_tokens(stmt, &t, &n);
    size_t last = 0; /* the token the label ends with */
    if (pg_sql_is(t, n, 0, "set") || pg_sql_is(t, n, 0, "reset") ||
        (pg_sql_is(t, n, 0, "select") && n > 1 && strstr(stmt, "set_config"))) {
        out->kind = PG_SQL_G_SESSION;
        last = n ? n - 1 : 0;
    } else if ((pg_sql_is(t, n, 0, "create") || pg_sql_is(t, n, 0, "alter")) &&
               (pg_sql_is(t, n, 1, "role") || pg_sql_is(t, n, 1, "user") ||
                pg_sql_is(t, n, 1, "group")) &&
               pg_sql_is_name(t, n, 2)) {
        out->kind = pg_sql_is(t, n, 0, "create") ? PG_SQL_G_ROLE_CREATE : PG_SQL_G_ROLE;
        out->object = ob_xstrdup(t[2].text);
        last = 2;
    } else if ((pg_sql_is(t, n, 0, "create") || pg_sql_is(t, n, 0, "alter")) &&
               pg_sql_is(t, n, 1, "tablespace") && pg_sql_is_name(t, n, 2)) {
        out->kind =
            pg_sql_is(t, n, 0, "create") ? PG_SQL_G_TABLESPACE_CREATE : PG_SQL_G_TABLESPACE;
        out->object = ob_xstrdup(t[2].text);
        last = 2;
    } else if (pg_sql_is(t, n, 0, "comment") || pg_sql_is(t, n, 0, "security")) {
        /* COMMENT ON ROLE x IS ..., SECURITY LABEL [FOR p] ON ROLE x IS ... */
        size_t i = 1;
        while (i < n && !pg_sql_is(t, n, i, "on"))
            i++;
        if (pg_sql_is_name(t, n, i + 2) &&
            (pg_sql_is(t, n, i + 1, "role") || pg_sql_is(t, n, i + 1, "tablespace"))) {
            out->kind = pg_sql_is(t, n, i + 1, "role") ? PG_SQL_G_ROLE : PG_SQL_G_TABLESPACE;
            out->object = ob_xstrdup(t[i + 2].text);
            last = i + 2;
        }
    } else if (pg_sql_is(t, n, 0, "grant") || pg_sql_is(t, n, 0, "revoke")) {
        int grant = pg_sql_is(t, n, 0, "grant");
        const char *to = grant ? "to" : "from";
        size_t on = 0, i;
        for (i = 1; i < n && !pg_sql_is(t, n, i, to); i++)
            if (!on && pg_sql_is(t, n, i, "on"))
                on = i;
        if (on && pg_sql_is(t, n, on + 1, "tablespace") && pg_sql_is_name(t, n, on + 2)) {
            out->kind = PG_SQL_G_TABLESPACE;
            out->object = ob_xstrdup(t[on + 2].text);
            last = on + 2;
        } else if (i < n) {
            size_t next;
            out->names = pg_sql_name_list(t, n, i + 1, &out->nnames, &next);
            if (out->nnames) {
                out->kind = on ? PG_SQL_G_GRANT : PG_SQL_G_MEMBERSHIP;
                last = next - 1;
                if (!on) {
                    /* The granted roles: GRANT a, b TO ... (REVOKE [ADMIN OPTION FOR] a). */
                    size_t k = 1, cnt, nx;
                    while (pg_sql_is(t, n, k, "admin") || pg_sql_is(t, n, k, "option") ||
                           pg_sql_is(t, n, k, "for"))
                        k++;
                    char **granted = pg_sql_name_list(t, n, k, &cnt, &nx);
                    ob_buf b = OB_BUF_INIT;
                    for (size_t g = 0; g < cnt; g++) {
                        ob_buf_printf(&b, "%s%s", g ? ", " : "", granted[g]);
                        free(granted[g]);
                    }
                    free(granted);
                    out->object = (char *)ob_buf_steal(&b, NULL);
                }
            }
        }
    }
    if (out->kind == PG_SQL_G_OTHER)
        last = n > 3 ? 3 : (n ? n - 1 : 0);
    out->label = pg_sql_label(stmt, t, n, last);
    pg_sql_tokens_free(t, n);
}

void pg_sql_global_free(pg_sql_global *g)
{
    free(g->object);
    for (size_t i = 0; i < g->nnames; i++)
        free(g->names[i]);
    free(g->names);
    free(g->label);
    memset(g, 0, sizeof *g);
}

/* ---- the database's own properties in pg_restore --create output ------ */

pg_sql_db_kind pg_sql_db_property(const char *stmt, const char *newname, char **out)
{
    *out = NULL;
    pg_sql_tok *t;
    size_t n;
    pg_sql_tokens(stmt, &t, &n);
    pg_sql_db_kind kind = PG_SQL_DB_OTHER;
    size_t name = 0; /* the token naming the database */
    if (pg_sql_is(t, n, 0, "set") || pg_sql_is(t, n, 0, "reset") ||
        (pg_sql_is(t, n, 0, "select") && strstr(stmt, "set_config"))) {
        kind = PG_SQL_DB_SESSION;
    } else if (pg_sql_is(t, n, 0, "alter") && pg_sql_is(t, n, 1, "database") &&
               pg_sql_is_name(t, n, 2)) {
        /* SET, RESET, CONNECTION LIMIT [=] n, WITH CONNECTION LIMIT n. */
        size_t k = pg_sql_is(t, n, 3, "with") ? 4 : 3;
        if (pg_sql_is(t, n, 3, "set") || pg_sql_is(t, n, 3, "reset") ||
            pg_sql_is(t, n, k, "connection")) {
            kind = PG_SQL_DB_PROPERTY;
            name = 2;
        }
    } else if (pg_sql_is(t, n, 0, "alter") &&
               (pg_sql_is(t, n, 1, "role") || pg_sql_is(t, n, 1, "user")) &&
               pg_sql_is_name(t, n, 2) && pg_sql_is(t, n, 3, "in") &&
               pg_sql_is(t, n, 4, "database") && pg_sql_is_name(t, n, 5)) {
        kind = PG_SQL_DB_PROPERTY;
        name = 5;
    } else if (pg_sql_is(t, n, 0, "comment") || pg_sql_is(t, n, 0, "security") ||
               pg_sql_is(t, n, 0, "grant") || pg_sql_is(t, n, 0, "revoke")) {
        /* COMMENT ON DATABASE x, SECURITY LABEL [FOR p] ON DATABASE x,
         * GRANT / REVOKE privileges ON DATABASE x: the first ON decides. */
        size_t i = 1;
        while (i < n && !pg_sql_is(t, n, i, "on"))
            i++;
        if (pg_sql_is(t, n, i + 1, "database") && pg_sql_is_name(t, n, i + 2)) {
            kind = PG_SQL_DB_PROPERTY;
            name = i + 2;
        }
    }
    if (kind == PG_SQL_DB_PROPERTY) {
        char *q = pg_sql_quote_ident(newname);
        *out = ob_xasprintf("%.*s%s%s", (int)t[name].start, stmt, q, stmt + t[name].end);
        free(q);
    }
    pg_sql_tokens_free(t, n);
    return kind;
}
