/*
 * pg_conn.c — the few libpq calls the PostgreSQL sources share, with
 * errors that say what was being run.
 */
#include "sources/pg_conn.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"

/* Connect to conninfo's server, optionally overriding the database. */
PGconn *pg_conn_open(const char *conninfo, const char *dbname, ob_err *err)
{
    const char *keys[3] = {"dbname", NULL, NULL};
    const char *vals[3] = {conninfo ? conninfo : "", NULL, NULL};
    if (dbname) {
        keys[1] = "dbname";
        vals[1] = dbname;
    }
    if (pq_lib_load(err) < 0)
        return NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        const char *m = c ? PQerrorMessage(c) : "out of memory";
        char *msg = ob_xstrdup(m);
        msg[strcspn(msg, "\n")] = '\0';
        ob_err_set(err, OB_EFAIL, "cannot connect to PostgreSQL%s%s: %s",
                   dbname ? " database " : "", dbname ? dbname : "", msg);
        free(msg);
        PQfinish(c);
        return NULL;
    }
    return c;
}

int pg_conn_exec(PGconn *c, const char *sql, ob_err *err)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char *m = ob_xstrdup(PQresultErrorMessage(r));
        m[strcspn(m, "\n")] = '\0';
        rc = ob_err_set(err, OB_EFAIL, "PostgreSQL: %s (while running: %.80s)", m, sql);
        free(m);
    }
    PQclear(r);
    return rc;
}

/* One value (first row, first column) or NULL; caller frees. */
char *pg_conn_value(PGconn *c, const char *sql, ob_err *err)
{
    PGresult *r = PQexec(c, sql);
    char *v = NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char *m = ob_xstrdup(PQresultErrorMessage(r));
        m[strcspn(m, "\n")] = '\0';
        ob_err_set(err, OB_EFAIL, "PostgreSQL: %s (while running: %.80s)", m, sql);
        free(m);
    } else if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        v = ob_xstrdup(PQgetvalue(r, 0, 0));
    } else {
        v = ob_xstrdup("");
    }
    PQclear(r);
    return v;
}

char *pg_conninfo_from_arg(const char *arg)
{
    /* libpq's recognized_connection_string(), which is not exported. */
    if (strncmp(arg, "postgresql://", 13) == 0 || strncmp(arg, "postgres://", 11) == 0 ||
        strchr(arg, '='))
        return ob_xstrdup(arg);
    ob_buf b = OB_BUF_INIT;
    ob_buf_printf(&b, "dbname='");
    for (const char *c = arg; *c; c++) {
        if (*c == '\\' || *c == '\'')
            ob_buf_putc(&b, '\\');
        ob_buf_putc(&b, (uint8_t)*c);
    }
    ob_buf_printf(&b, "'");
    ob_buf_putc(&b, '\0');
    char *out = ob_xstrdup((const char *)b.data);
    ob_buf_free(&b);
    return out;
}

/* Rebuilt from libpq's own parse (so URIs work as well as key=value
 * strings), every value single-quoted with ' and \ escaped, which is what
 * the key=value syntax asks for. */
char *pg_conninfo_set(const char *conninfo, const char *key, const char *value, ob_err *err)
{
    char *perr = NULL;
    if (pq_lib_load(err) < 0)
        return NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &perr);
    if (!opts) {
        char *m = ob_xstrdup(perr ? perr : "out of memory");
        m[strcspn(m, "\n")] = '\0';
        ob_err_set(err, OB_EUSAGE, "connection string: %s", m);
        free(m);
        PQfreemem(perr);
        return NULL;
    }
    ob_buf b = OB_BUF_INIT;
    int done = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = o->val;
        if (strcmp(o->keyword, key) == 0) {
            v = value;
            done = 1;
        }
        if (!v)
            continue;
        ob_buf_printf(&b, "%s%s='", b.len ? " " : "", o->keyword);
        for (const char *c = v; *c; c++) {
            if (*c == '\'' || *c == '\\')
                ob_buf_putc(&b, '\\');
            ob_buf_putc(&b, (uint8_t)*c);
        }
        ob_buf_putc(&b, '\'');
    }
    PQconninfoFree(opts);
    if (!done) {
        ob_buf_free(&b);
        ob_err_set(err, OB_EUSAGE, "connection string: libpq has no keyword '%s'", key);
        return NULL;
    }
    ob_buf_putc(&b, '\0');
    char *out = ob_xstrdup((const char *)b.data);
    ob_buf_free(&b);
    return out;
}

/* prog as PATH would find it: 1 if it is Debian's pg_wrapper or absent. */
static int path_prog_is_wrapper(const char *prog, const char *path_env)
{
    const char *p = path_env ? path_env : "";
    for (;;) {
        size_t n = strcspn(p, ":");
        char *cand = n ? ob_xasprintf("%.*s/%s", (int)n, p, prog) : ob_xstrdup(prog);
        if (access(cand, X_OK) == 0) {
            char *real = realpath(cand, NULL);
            const char *base = real ? strrchr(real, '/') : NULL;
            int wrapper = base && strcmp(base + 1, "pg_wrapper") == 0;
            free(real);
            free(cand);
            return wrapper;
        }
        free(cand);
        if (!p[n])
            return 1;
        p += n + 1;
    }
}

static char *installed_program(const char *root, long major, const char *prog)
{
    char *path = ob_xasprintf("%s/%ld/bin/%s", root, major, prog);
    if (access(path, X_OK) == 0)
        return path;
    free(path);
    return NULL;
}

char *pg_client_program(const char *prog, int server_version, const char *path_env,
                        const char *root)
{
    long major = server_version / 10000;
    if (major < 10 || !path_prog_is_wrapper(prog, path_env))
        return ob_xstrdup(prog);
    char *exact = installed_program(root, major, prog);
    if (exact)
        return exact;
    long best = 0;
    char *best_path = NULL;
    DIR *d = opendir(root);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        char *end;
        long v = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end || v <= major || v <= best)
            continue;
        char *cand = installed_program(root, v, prog);
        if (cand) {
            free(best_path);
            best_path = cand;
            best = v;
        }
    }
    if (d)
        closedir(d);
    return best_path ? best_path : ob_xstrdup(prog);
}

/* pg_dump's short options as its getopt string has them (PostgreSQL 15;
 * a ':' follows one that takes an argument). */
#define PG_DUMP_SHORTOPTS "abBcCd:e:E:f:F:h:j:n:N:Op:RsS:t:T:U:vwWxZ:"

/* pg_dump's long options that take an argument (15 to 17): written apart
 * ("--table T") the next word is theirs.  Those without one need no entry:
 * getopt_long's prefix rule is applied to this list and pg_dumpall's. */
static const char *const pg_dump_long_with_arg[] = {
    "compress", "dbname", "encoding", "exclude-extension", "exclude-schema", "exclude-table",
    "exclude-table-and-children", "exclude-table-data", "exclude-table-data-and-children",
    "extension", "extra-float-digits", "file", "filter", "format", "host",
    "include-foreign-data", "jobs", "lock-wait-timeout", "port", "role", "rows-per-insert",
    "schema", "section", "snapshot", "superuser", "sync-method", "table",
    "table-and-children", "username", NULL};

/* The connection options pg_dumpall shares with pg_dump, kept for the
 * roles.  Not -W/--password: pg_dumpall would prompt on the terminal
 * beside pg_dump. */
static const char *const pg_dumpall_kept[] = {"host", "no-password", "port", "role",
                                              "username", NULL};

/* Does name[0..len) abbreviate (or equal) opt, as getopt_long reads it? */
static int pg_opt_abbrev(const char *name, size_t len, const char *opt)
{
    return len > 0 && strlen(opt) >= len && memcmp(opt, name, len) == 0;
}

static int pg_opt_in(const char *name, size_t len, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (pg_opt_abbrev(name, len, list[i]))
            return 1;
    return 0;
}

/* Append word w (a pg_dump option after the pg_dump word) to out if
 * pg_dumpall takes it too; next is the word after it (NULL at the end).
 * Returns how many words it used: 1, or 2 when next was its argument. */
static size_t pg_dumpall_option(const char *w, const char *next, char **out, size_t *m)
{
    if (strncmp(w, "--", 2) == 0 && w[2]) {
        const char *eq = strchr(w, '=');
        size_t len = eq ? (size_t)(eq - w - 2) : strlen(w + 2);
        int with_arg = !eq && pg_opt_in(w + 2, len, pg_dump_long_with_arg);
        if (with_arg && !next)
            return 1; /* its argument is missing: kept, it would take ours */
        if (pg_opt_in(w + 2, len, pg_dumpall_kept)) {
            out[(*m)++] = ob_xstrdup(w);
            if (with_arg)
                out[(*m)++] = ob_xstrdup(next);
        }
        return with_arg ? 2 : 1;
    }
    if (w[0] != '-' || !w[1])
        return 1; /* a database name given as a word; ours comes as --database */
    /* A cluster of short options ("-vU", "-wUapp"): each letter until one
     * that takes an argument, which is the rest of the word or the next. */
    for (const char *c = w + 1; *c; c++) {
        const char *o = strchr(PG_DUMP_SHORTOPTS, *c);
        int with_arg = *c != ':' && o && o[1] == ':';
        if (!with_arg) {
            if (*c == 'w')
                out[(*m)++] = ob_xstrdup("-w");
            continue;
        }
        if (!strchr("Uhp", *c))
            return !c[1] && next ? 2 : 1;
        if (c[1]) { /* -Uapp */
            out[(*m)++] = ob_xasprintf("-%s", c);
            return 1;
        }
        if (!next)
            return 1; /* its argument is missing: kept, it would take ours */
        out[(*m)++] = ob_xasprintf("-%c", *c);
        out[(*m)++] = ob_xstrdup(next);
        return 2;
    }
    return 1;
}

char **pg_dumpall_words(char *const *words, size_t n)
{
    size_t k = n;
    for (size_t i = 0; i < n; i++) {
        const char *slash = strrchr(words[i], '/');
        if (strcmp(slash ? slash + 1 : words[i], "pg_dump") == 0)
            k = i;
    }
    /* A wrapper named like it as the last word (my_pg_dump): its
     * *_pg_dumpall sibling, as before pg_dump's options could follow. */
    if (k == n && n > 0) {
        size_t len = strlen(words[n - 1]);
        if (len >= 7 && strcmp(words[n - 1] + len - 7, "pg_dump") == 0)
            k = n - 1;
    }
    if (k == n)
        return NULL;
    char **out = ob_xcalloc(2 * n + 2, sizeof *out);
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
        out[m++] = ob_xstrdup(words[i]);
    out[m++] = ob_xasprintf("%sall", words[k]);
    for (size_t i = k + 1; i < n;)
        i += pg_dumpall_option(words[i], i + 1 < n ? words[i + 1] : NULL, out, &m);
    out[m] = NULL;
    return out;
}
