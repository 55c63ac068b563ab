/*
 * pg_logical.c — see pg_logical.h.
 */
#include "sources/pg_logical.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/proc.h"
#include "core/util.h"
#include "repo/lock.h"
#include "repo/treeio.h"
#include "repo/writer.h"
#include "sources/pg_archive.h"
#include "sources/pg_conn.h"
#include "sources/pg_sql.h"
#include "sources/pq_lib.h"
#include "sources/stream.h"

static char *quote_ident(PGconn *c, const char *s)
{
    char *q = PQescapeIdentifier(c, s, strlen(s));
    char *out = ob_xstrdup(q ? q : "\"\"");
    PQfreemem(q);
    return out;
}

static char *quote_literal(PGconn *c, const char *s)
{
    char *q = PQescapeLiteral(c, s, strlen(s));
    char *out = ob_xstrdup(q ? q : "''");
    PQfreemem(q);
    return out;
}

/* The directory prefix of our temporary password files (conn_env). */
#define PASSFILE_NAME "opsbackup-pgpass"

static void env_free(char **env)
{
    for (size_t i = 0; env && env[i]; i++) {
        /* Our password file (never one the user named: its directory has
         * our prefix and a random suffix from mkdtemp). */
        const char *pf = strncmp(env[i], "PGPASSFILE=", 11) == 0 ? env[i] + 11 : NULL;
        if (pf && strstr(pf, "/" PASSFILE_NAME ".") && unlink(pf) == 0) {
            char *dir = ob_xstrdup(pf);
            *strrchr(dir, '/') = '\0';
            rmdir(dir);
            free(dir);
        }
        ob_wipe(env[i], strlen(env[i]));
        free(env[i]);
    }
    free(env);
}

/* A password for pg_dump & co. goes into a private password file
 * (PGPASSFILE), not PGPASSWORD: /proc/PID/environ of the child shows its
 * environment to anyone running as the same user, and the environment is
 * inherited further.  The file is 0600 in a fresh 0700 directory and is
 * removed by env_free.  Its one line matches every host, port, database
 * and user; ':' and '\' in the password are escaped as libpq wants. */
static char *passfile_write(const char *password, ob_err *err)
{
    char *dir = ob_xasprintf("%s/" PASSFILE_NAME ".XXXXXX", ob_tmpdir());
    if (!mkdtemp(dir)) {
        ob_err_errno(err, errno, "creating a private directory for the database password (%s)",
                     dir);
        free(dir);
        return NULL;
    }
    char *path = ob_xasprintf("%s/pgpass", dir);
    ob_buf line = OB_BUF_INIT;
    ob_buf_append(&line, "*:*:*:*:", 8);
    for (const char *c = password; *c; c++) {
        if (*c == ':' || *c == '\\')
            ob_buf_append(&line, "\\", 1);
        ob_buf_append(&line, c, 1);
    }
    ob_buf_append(&line, "\n", 1);
    int rc = ob_write_file_atomic(path, line.data, line.len, 0, NULL, err);
    ob_wipe(line.data, line.len);
    ob_buf_free(&line);
    if (rc < 0) {
        rmdir(dir);
        free(path);
        path = NULL;
    }
    free(dir);
    return path;
}

/* Environment for pg_dump & co.: every connection setting of conninfo as
 * the libpq variable that means the same (PGHOST, PGUSER, ...), so a
 * password never has to be on a command line; the password itself goes
 * into a password file (above).  dbname is left out: the caller names the
 * database explicitly. */
static char **conn_env(const char *conninfo, ob_err *err)
{
    char **env = ob_xcalloc(1, sizeof *env);
    size_t n = 0;
    if (!conninfo || !*conninfo)
        return env;
    if (pq_lib_load(err) < 0) {
        free(env);
        return NULL;
    }
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
    if (!opts) {
        ob_err_set(err, OB_EUSAGE, "--dbname: %s", msg ? msg : "invalid connection string");
        PQfreemem(msg);
        free(env);
        return NULL;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !o->envvar || strcmp(o->keyword, "dbname") == 0)
            continue;
        char *entry;
        if (strcmp(o->keyword, "password") == 0) {
            char *pf = passfile_write(o->val, err);
            if (!pf) {
                PQconninfoFree(opts);
                env_free(env);
                return NULL;
            }
            entry = ob_xasprintf("PGPASSFILE=%s", pf);
            free(pf);
        } else if (strcmp(o->keyword, "passfile") == 0 && strstr(conninfo, "password")) {
            continue; /* ours replaces it; libpq prefers a password anyway */
        } else {
            entry = ob_xasprintf("%s=%s", o->envvar, o->val);
        }
        env = ob_xrealloc(env, (n + 2) * sizeof *env);
        env[n++] = entry;
        env[n] = NULL;
    }
    PQconninfoFree(opts);
    return env;
}



/* argv = words of command + extra args. */
static char **build_argv(const char *command, const char *fallback, char *const *extra,
                         ob_err *err)
{
    char **words;
    size_t n;
    if (proc_split(command ? command : fallback, &words, &n, err) < 0)
        return NULL;
    size_t k = 0;
    while (extra && extra[k])
        k++;
    words = ob_xrealloc(words, (n + k + 1) * sizeof *words);
    for (size_t i = 0; i < k; i++)
        words[n + i] = ob_xstrdup(extra[i]);
    words[n + k] = NULL;
    return words;
}

/* First line of `CMD --version`, e.g. "pg_dump (PostgreSQL) 15.18". */
static char *tool_version(const char *command, const char *fallback, char **env)
{
    char *extra[] = {"--version", NULL};
    ob_err e = OB_ERR_INIT;
    char **argv = build_argv(command, fallback, extra, &e);
    if (!argv) {
        ob_err_clear(&e);
        return ob_xstrdup("unknown");
    }
    int code = 0;
    char *out = NULL;
    char *v = NULL;
    if (proc_run(argv, env, &code, &out, &e) == 0 && code == 0 && out) {
        out[strcspn(out, "\n")] = '\0';
        v = ob_xstrdup(out);
    }
    free(out);
    ob_err_clear(&e);
    proc_argv_free(argv);
    return v ? v : ob_xstrdup("unknown");
}

/* ---- backup ---------------------------------------------------------- */

/* The tables pg_dump dumps data for, in the transaction whose snapshot
 * pg_dump uses (columns: schema, table). */
static PGresult *list_tables(PGconn *conn, ob_err *err)
{
    PGresult *r = PQexec(conn,
                         "SELECT n.nspname, c.relname FROM pg_class c "
                         "JOIN pg_namespace n ON n.oid = c.relnamespace "
                         "WHERE c.relkind IN ('r', 'p') "
                         "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                         "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' "
                         "AND c.relpersistence <> 't' "
                         "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = "
                         "'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') "
                         "ORDER BY 1, 2");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ob_err_set(err, OB_EFAIL, "listing tables: %s", PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* {KEY: rows} for every listed table (keys: pg_sql_table_key): from the
 * archive stream's counts (D48) where it has the table; when the stream
 * was read (toc: pg_archive_counter_tables) 0 for a table whose data the
 * dump does not hold (a partitioned parent, data left out with
 * --exclude-table-data in the dump command) and nothing for a table the
 * dump left out (-T), since the restored database will not have it; else
 * SELECT count(*) in the dump's snapshot (a table dumped as INSERTs, or
 * every table when the stream could not be read).  FROM ONLY so a
 * partitioned parent does not count its partitions' rows twice. */
static json_t *count_rows(PGconn *conn, const PGresult *list, const json_t *streamed,
                          const json_t *toc, ob_err *err)
{
    json_t *out = json_object();
    int by_sql = 0, no_data = 0, left_out = 0;
    for (int i = 0; i < PQntuples(list); i++) {
        char *key = pg_sql_table_key(PQgetvalue(list, i, 0), PQgetvalue(list, i, 1));
        json_t *n = streamed ? json_object_get(streamed, key) : NULL;
        json_t *has = toc ? json_object_get(toc, key) : NULL;
        if (n || (toc && !json_is_true(has))) {
            if (n)
                json_object_set(out, key, n);
            else if (has)
                json_object_set_new(out, key, json_integer(0));
            no_data += !n && has;
            left_out += !n && !has;
            if (!n && !has) /* verify will not compare it: say so */
                ob_info("table %s is not in the dump (left out by the dump command): its "
                        "rows are not recorded",
                        key);
            free(key);
            continue;
        }
        char *ns = quote_ident(conn, PQgetvalue(list, i, 0));
        char *rel = quote_ident(conn, PQgetvalue(list, i, 1));
        char *sql = ob_xasprintf("SELECT count(*) FROM ONLY %s.%s", ns, rel);
        char *v = pg_conn_value(conn, sql, err);
        if (v)
            json_object_set_new(out, key, json_integer(strtoll(v, NULL, 10)));
        by_sql++;
        free(v);
        free(sql);
        free(ns);
        free(rel);
        free(key);
        if (!v) {
            json_decref(out);
            return NULL;
        }
    }
    ob_debug("row counts: %d of %d tables from the dump stream, %d without data in the dump, "
             "%d not in the dump, %d with SELECT count(*)",
             PQntuples(list) - by_sql - no_data - left_out, PQntuples(list), no_data, left_out,
             by_sql);
    return out;
}

static tree_node *add_stream_node(tree *t, const char *name)
{
    tree_node *n = tree_add(t);
    tree_node_set_name(n, name, strlen(name));
    n->type = TREE_FILE;
    n->mode = 0600;
    n->uid = (uint32_t)geteuid();
    n->gid = (uint32_t)getegid();
    n->nlink = 1;
    int64_t now;
    uint32_t ns;
    ob_time_now(&now, &ns);
    n->mtime_sec = n->atime_sec = n->ctime_sec = now;
    n->mtime_nsec = n->atime_nsec = n->ctime_nsec = ns;
    return n;
}

/* Reads a pipe, showing every byte to an archive row counter. */
typedef struct counting_reader {
    int fd;
    pg_archive_counter *ac;   /* may be NULL */
} counting_reader;

static ssize_t counting_read(void *ud, uint8_t *buf, size_t len)
{
    counting_reader *h = ud;
    ssize_t k = stream_read_fd(&h->fd, buf, len);
    if (k > 0 && h->ac)
        pg_archive_counter_feed(h->ac, buf, (size_t)k);
    return k;
}

/* Store a started dump command's stdout as node n.  Fails (with the
 * command's own error text) unless it exits 0.  ac, if not NULL, is fed
 * the output.  Frees p (killing the command if it still runs). */
static int dump_to_node(repo_writer *w, const chunker *ck, uint8_t *buf, size_t buf_cap,
                        proc *p, const char *what, tree_node *n, uint64_t *bytes,
                        pg_archive_counter *ac, ob_err *err)
{
    stream_sink sink = {w, ck, buf, buf_cap, NULL, NULL};
    counting_reader hr = {proc_stdout(p), ac};
    size_t cap = 0;
    int rc = stream_store(&sink, counting_read, &hr, what, 0, n, &cap, bytes, err);
    if (rc == 0)
        rc = proc_wait_ok(p, what, err);
    if (rc == 0 && *bytes == 0)
        rc = ob_err_set(err, OB_EFAIL, "%s wrote nothing", what);
    n->size = *bytes;
    proc_free(p);
    return rc;
}

/* pg_dumpall for the globals: the dump command with its last word named
 * pg_dump replaced by pg_dumpall, keeping the connection options after it
 * (pg_dumpall_words), so prefixes such as `docker compose exec -T postgres
 * pg_dump -U app` keep working. */
static char **globals_argv(const char *dump_command, const char *db, int with_passwords,
                           ob_err *err)
{
    char **words;
    size_t n;
    if (proc_split(dump_command ? dump_command : "pg_dump", &words, &n, err) < 0)
        return NULL;
    char **all = pg_dumpall_words(words, n);
    proc_argv_free(words);
    if (!all)
        return NULL;
    for (n = 0; all[n]; n++)
        ;
    all = ob_xrealloc(all, (n + 4) * sizeof *all);
    all[n++] = ob_xstrdup("--globals-only");
    all[n++] = ob_xasprintf("--database=%s", db);
    if (!with_passwords)
        all[n++] = ob_xstrdup("--no-role-passwords");
    all[n] = NULL;
    return all;
}

/* Run a command and collect all it prints; it must exit 0. */
static int run_capture(char **argv, char **env, const char *what, ob_buf *out, ob_err *err)
{
    proc_opts po = {.argv = argv, .env_add = env, .pipe_stdout = 1};
    proc *p;
    if (proc_start(&po, &p, err) < 0)
        return -1;
    uint8_t tmp[65536];
    int fd = proc_stdout(p);
    ssize_t k;
    while ((k = stream_read_fd(&fd, tmp, sizeof tmp)) > 0)
        ob_buf_append(out, tmp, (size_t)k);
    int rc = proc_wait_ok(p, what, err);
    proc_free(p);
    return rc;
}

/* The cluster globals, dumped on a thread while pg_dump runs. */
typedef struct globals_job {
    const char *dump_command, *db;
    char **env;
    ob_buf out;
    int ok, without_pw, skipped;
    ob_err err;
} globals_job;

static void *globals_thread(void *arg)
{
    globals_job *g = arg;
    for (int with_pw = 1; with_pw >= 0 && !g->ok; with_pw--) {
        ob_err_clear(&g->err);
        char **argv = globals_argv(g->dump_command, g->db, with_pw, &g->err);
        if (!argv) {
            g->skipped = g->err.code == OB_OK;
            break;
        }
        ob_buf_reset(&g->out);
        if (run_capture(argv, g->env, "pg_dumpall --globals-only", &g->out, &g->err) == 0) {
            g->ok = 1;
            g->without_pw = !with_pw;
        }
        proc_argv_free(argv);
    }
    return NULL;
}

typedef struct mem_reader {
    const uint8_t *p;
    size_t left;
} mem_reader;

static ssize_t mem_read(void *ud, uint8_t *buf, size_t len)
{
    mem_reader *m = ud;
    size_t n = len < m->left ? len : m->left;
    if (n)
        memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    return (ssize_t)n;
}

struct pg_logical_dump {
    struct timespec t0;
    int nthreads;
    char **env;
    PGconn *conn;       /* in the transaction whose snapshot pg_dump uses */
    PGresult *tables;   /* list_tables */
    char *dump_prog;    /* the --dump-command, or pg_client_program's choice */
    const char *dump_command; /* = dump_prog; NULL: "pg_dump" on PATH */
    proc *dump;         /* pg_dump, running; NULL once handed to the store */
    snapshot *snap;     /* extra filled in as far as known before the dump */
    pg_archive_counter *ac;
    globals_job gj;
    pthread_t gthread;
    int gstarted;
};

void pg_logical_dump_free(pg_logical_dump *d)
{
    if (!d)
        return;
    proc_free(d->dump); /* kills it if it still runs */
    if (d->gstarted)
        pthread_join(d->gthread, NULL);
    ob_buf_free(&d->gj.out);
    ob_err_clear(&d->gj.err);
    PQclear(d->tables);
    PQfinish(d->conn);
    env_free(d->env);
    free(d->dump_prog);
    snapshot_free(d->snap);
    pg_archive_counter_free(d->ac);
    free(d);
}

/* Which server c is (D77); NULL with err set if the role may not ask. */
static char *system_identifier(PGconn *c, ob_err *err)
{
    return pg_conn_value(c, "SELECT system_identifier FROM pg_control_system()", err);
}

int pg_logical_dump_start(const pg_backup_opts *o, pg_logical_dump **out, ob_err *err)
{
    *out = NULL;
    pg_logical_dump *d = ob_xcalloc(1, sizeof *d);
    clock_gettime(CLOCK_MONOTONIC, &d->t0);
    d->nthreads = o->nthreads;
    d->ac = pg_archive_counter_new();
    char *snapname = NULL, *dbsize = NULL, *owner = NULL, *encoding = NULL, *sysid = NULL;
    char **argv = NULL;
    int rc = -1;
    if (!(d->env = conn_env(o->conninfo, err)) ||
        !(d->conn = pg_conn_open(o->conninfo, NULL, err)))
        goto out;
    PGconn *conn = d->conn;
    const char *db = PQdb(conn);

    /* Which server this is: the same database name on two servers must
     * not be one retention group (D77).  Outside the transaction below,
     * which a refused query would abort: a server that does not let this
     * role call pg_control_system() gets dumps without it. */
    ob_err sysid_err = OB_ERR_INIT;
    sysid = system_identifier(conn, &sysid_err);
    if (!sysid)
        ob_debug("no system identifier recorded: %s", ob_err_msg(&sysid_err));
    ob_err_clear(&sysid_err);

    /* The transaction whose snapshot both pg_dump and our counts see. */
    if (pg_conn_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", err) < 0 ||
        !(snapname = pg_conn_value(conn, "SELECT pg_export_snapshot()", err)) ||
        !(dbsize = pg_conn_value(conn, "SELECT pg_database_size(current_database())", err)) ||
        !(owner = pg_conn_value(conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE "
                                      "datname = current_database()", err)) ||
        !(encoding = pg_conn_value(conn, "SELECT pg_encoding_to_char(encoding) || '|' || "
                                         "datcollate || '|' || datctype FROM pg_database "
                                         "WHERE datname = current_database()", err)) ||
        !(d->tables = list_tables(conn, err)))
        goto out;

    /* Without a --dump-command, skip Debian's version-picking wrapper. */
    d->dump_prog = o->dump_command ? ob_xstrdup(o->dump_command)
                                   : pg_client_program("pg_dump", PQserverVersion(conn),
                                                       getenv("PATH"), "/usr/lib/postgresql");
    d->dump_command = d->dump_prog;
    ob_debug("dump command: %s", d->dump_command);

    /* As a conninfo, never the bare name: libpq takes a --dbname with an
     * '=' in it for a connection string (a database named "dbname=x"
     * would be database x). */
    char *dbci = pg_conninfo_set("", "dbname", db, err);
    if (!dbci)
        goto out;
    char *snaparg = ob_xasprintf("--snapshot=%s", snapname);
    char *dbarg = ob_xasprintf("--dbname=%s", dbci);
    free(dbci);
    char *extra[] = {"--format=custom", "--compress=0", snaparg, dbarg, NULL};
    argv = build_argv(d->dump_command, "pg_dump", extra, err);
    free(snaparg);
    free(dbarg);
    if (!argv)
        goto out;

    snapshot *snap = d->snap = snapshot_new("db");
    if (o->set) {
        free(snap->set);
        snap->set = ob_xstrdup(o->set);
    }
    snapshot_add_path(snap, db);
    for (size_t i = 0; i < o->ntags; i++)
        snapshot_add_tag(snap, o->tags[i]);
    if (o->time_sec) {
        snap->time_sec = o->time_sec;
        snap->time_nsec = 0;
    }
    snap->extra = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s}", "database", db,
                            "server_version", PQparameterStatus(conn, "server_version"),
                            "pg_dump_version", "unknown", "database_size",
                            (json_int_t)strtoll(dbsize, NULL, 10), "owner", owner, "encoding",
                            encoding, "format", "custom");
    if (sysid && *sysid)
        json_object_set_new(snap->extra, "system_identifier", json_string(sysid));
    /* Where it was reached, for people telling servers apart (a socket
     * directory for a local connection). */
    if (PQhost(conn) && PQport(conn)) {
        char *where = ob_xasprintf("%s:%s", PQhost(conn), PQport(conn));
        json_t *w = json_string(where); /* NULL if not UTF-8: left out */
        if (w)
            json_object_set_new(snap->extra, "server", w);
        free(where);
    }

    /* pg_dump starts now and reads the catalog while the caller opens the
     * repository (its key derivation alone takes ~0.5 s); once its pipe is
     * full it waits for dump_to_node.  The globals are dumped meanwhile. */
    proc_opts po = {.argv = argv, .env_add = d->env, .pipe_stdout = 1};
    if (proc_start(&po, &d->dump, err) < 0)
        goto out;
    d->gj.dump_command = d->dump_command;
    d->gj.db = db;
    d->gj.env = d->env;
    if (pthread_create(&d->gthread, NULL, globals_thread, &d->gj) != 0) {
        ob_err_set(err, OB_EFAIL, "cannot start the globals thread");
        goto out;
    }
    d->gstarted = 1;
    *out = d;
    d = NULL;
    rc = 0;
out:
    pg_logical_dump_free(d);
    proc_argv_free(argv);
    free(snapname);
    free(sysid);
    free(dbsize);
    free(owner);
    free(encoding);
    return rc;
}

char *pg_logical_count_subject(const char *key)
{
    return strcmp(key, PG_LARGE_OBJECTS_KEY) == 0 ? ob_xstrdup("the large objects")
                                                  : ob_xasprintf("table %s", key);
}

const char *pg_logical_count_unit(const char *key)
{
    return strcmp(key, PG_LARGE_OBJECTS_KEY) == 0 ? "" : " rows";
}

char *pg_logical_count_describe(const char *key, const json_t *t, const char *where)
{
    char *subject = pg_logical_count_subject(key);
    const char *unit = pg_logical_count_unit(key);
    const char *why = json_string_value(json_object_get(t, "error"));
    json_int_t got = json_integer_value(json_object_get(t, "actual"));
    json_int_t want = json_integer_value(json_object_get(t, "expected"));
    char *in = where ? ob_xasprintf(" in %s", where) : ob_xstrdup("");
    char *d;
    if (why)
        d = ob_xasprintf("%s: could not be counted%s (%s)", subject, in, why);
    else if (got < 0)
        d = ob_xasprintf("%s: missing%s, the snapshot recorded %lld%s", subject, in,
                         (long long)want, unit);
    else
        d = ob_xasprintf("%s: %lld%s%s, the snapshot recorded %lld", subject, (long long)got,
                         unit, in, (long long)want);
    free(in);
    free(subject);
    return d;
}

size_t pg_logical_table_count(const json_t *tables)
{
    return json_object_size(tables) - (json_object_get(tables, PG_LARGE_OBJECTS_KEY) != NULL);
}

int pg_logical_dump_store(repo *r, pg_logical_dump *d, repo_lock *lock, snapshot **out,
                          ob_err *err)
{
    *out = NULL;
    int rc = -1;
    repo_writer *w = NULL;
    uint8_t *buf = NULL;
    json_t *counts = NULL;
    tree t;
    tree_init(&t);
    snapshot *snap = d->snap;

    if (repo_writer_new_level(r, d->nthreads, PG_LOGICAL_ZSTD_LEVEL, &w, err) < 0)
        goto out;
    repo_writer_set_lock(w, lock);
    const chunker *ck = repo_chunker(r, REPO_CHUNK_DB);
    size_t buf_cap = 2 * (size_t)chunker_get_params(ck)->max_size;
    buf = ob_xmalloc(buf_cap);

    uint64_t dump_bytes = 0, globals_bytes = 0;
    tree_node *dn = add_stream_node(&t, PG_DUMP_NAME);
    proc *dump = d->dump;
    d->dump = NULL;
    if (dump_to_node(w, ck, buf, buf_cap, dump, "pg_dump", dn, &dump_bytes, d->ac, err) < 0)
        goto out;
    /* Not an archive we read: ask the tool for its version. */
    char *version = pg_archive_counter_dump_version(d->ac)
                        ? ob_xstrdup(pg_archive_counter_dump_version(d->ac))
                        : tool_version(d->dump_command, "pg_dump", d->env);
    json_object_set_new(snap->extra, "pg_dump_version", json_string(version));
    free(version);
    json_t *streamed = NULL;
    char *why = NULL;
    if (pg_archive_counter_finish(d->ac, &streamed, &why) < 0)
        ob_debug("row counts: cannot read them from the dump (%s): counting with SQL", why);
    free(why);
    json_t *toc = streamed ? pg_archive_counter_tables(d->ac) : NULL;
    counts = count_rows(d->conn, d->tables, streamed, toc, err);
    json_decref(toc);
    if (!counts) {
        json_decref(streamed);
        ob_err_prefix(err, "counting rows");
        goto out;
    }
    /* Large objects, as the dump holds them, under the key of the catalog
     * with one row per large object: verify's count of that table in the
     * restored database then checks them like any table.  Only from the
     * stream (what pg_dump wrote), and only when there are some. */
    uint64_t lobjs = streamed ? pg_archive_counter_large_objects(d->ac) : 0;
    json_decref(streamed);
    if (lobjs)
        json_object_set_new(counts, PG_LARGE_OBJECTS_KEY, json_integer((json_int_t)lobjs));
    /* A table rewritten (TRUNCATE, a rewriting ALTER TABLE) after the
     * snapshot was exported but before pg_dump locked it reads as empty
     * in the snapshot: not MVCC-safe, and the counts above agree with the
     * empty dump, so verify would pass.  Its relfilenode in the snapshot's
     * catalog then differs from the current one: refuse the dump. */
    char *rewritten = pg_conn_value(
        d->conn,
        "SELECT coalesce(string_agg(quote_ident(n.nspname) || '.' || quote_ident(c.relname), "
        "', ' ORDER BY 1), '') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'm') AND c.relfilenode <> 0 "
        "AND c.relfilenode <> pg_relation_filenode(c.oid) "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
        err);
    if (!rewritten || *rewritten) {
        if (rewritten)
            ob_err_set(err, OB_EFAIL,
                       "table %s was rewritten (TRUNCATE, ALTER TABLE, VACUUM FULL or "
                       "CLUSTER) while pg_dump was starting, so the dump may hold none of its "
                       "rows; nothing was saved: run the backup again",
                       rewritten);
        free(rewritten);
        json_decref(counts);
        counts = NULL;
        goto out;
    }
    free(rewritten);
    /* pg_dump has its own snapshot copy; ours may end now. */
    pg_conn_exec(d->conn, "COMMIT", err);
    ob_err_clear(err);

    /* The globals were dumped meanwhile (they are small: kept in memory). */
    pthread_join(d->gthread, NULL);
    d->gstarted = 0;
    globals_job *gj = &d->gj;
    int globals = 0;
    if (gj->ok) {
        tree_node *gn = add_stream_node(&t, PG_GLOBALS_NAME);
        mem_reader mr = {gj->out.data, gj->out.len};
        stream_sink gsink = {w, ck, buf, buf_cap, NULL, NULL};
        size_t gcap = 0;
        if (stream_store(&gsink, mem_read, &mr, "globals", 0, gn, &gcap, &globals_bytes, err) < 0)
            goto out;
        gn->size = globals_bytes;
        globals = 1;
        if (gj->without_pw)
            ob_warn("role passwords are not stored: reading them needs a superuser (pg_authid)");
    } else if (gj->skipped) {
        ob_warn("the dump command runs no program named pg_dump (a wrapper script?): cluster "
                "globals (roles) are not stored");
    } else {
        ob_warn("cluster globals (roles) are not stored: %s", ob_err_msg(&gj->err));
    }

    if (treeio_save(w, &t, snap->tree, err) < 0 || repo_writer_flush(w, err) < 0)
        goto out;
    repo_writer_stats ws;
    repo_writer_get_stats(w, &ws);
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    snap->stats.files = globals ? 2 : 1;
    snap->stats.bytes = dump_bytes + globals_bytes;
    snap->stats.bytes_added = ws.bytes_added;
    snap->stats.bytes_stored = ws.bytes_stored;
    snap->stats.blobs_added = ws.blobs_added;
    snap->stats.duration =
        (double)(t1.tv_sec - d->t0.tv_sec) + (t1.tv_nsec - d->t0.tv_nsec) / 1e9;
    json_object_set(snap->extra, "tables", counts);
    json_object_set_new(snap->extra, "table_keys", json_integer(PG_TABLE_KEYS_QUOTED));
    json_object_set_new(snap->extra, "dump_bytes", json_integer((json_int_t)dump_bytes));
    json_object_set_new(snap->extra, "globals", json_boolean(globals));
    if ((lock && repo_lock_lost(lock, err)) || snapshot_save(r, snap, err) < 0)
        goto out;
    *out = snap;
    d->snap = NULL;
    rc = 0;
out:
    json_decref(counts);
    repo_writer_free(w);
    free(buf);
    tree_free(&t);
    pg_logical_dump_free(d);
    return rc;
}

/* ---- restore --------------------------------------------------------- */

static int find_stream(repo *r, const snapshot *s, const char *name, tree *t,
                       const tree_node **out, ob_err *err)
{
    if (treeio_load(r, s->tree, t, err) < 0)
        return -1;
    *out = tree_find(t, name, strlen(name));
    if (!*out || (*out)->type != TREE_FILE)
        return ob_err_set(err, OB_ECORRUPT, "snapshot %.8s has no %s: is it a db snapshot?",
                          s->id, name);
    return 0;
}

static int db_exists(PGconn *c, const char *name, int *exists, ob_err *err)
{
    char *lit = quote_literal(c, name);
    char *sql = ob_xasprintf("SELECT count(*) FROM pg_database WHERE datname = %s", lit);
    char *v = pg_conn_value(c, sql, err);
    free(sql);
    free(lit);
    if (!v)
        return -1;
    *exists = strcmp(v, "0") != 0;
    free(v);
    return 0;
}

static int drop_db(PGconn *c, const char *name, ob_err *err)
{
    char *id = quote_ident(c, name);
    char *sql = ob_xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", id);
    int rc = pg_conn_exec(c, sql, err);
    free(sql);
    free(id);
    return rc;
}

/* Create the new database like the original (owner, encoding, locale)
 * where this server allows, else with the server's defaults: without the
 * owner when that role does not exist here (yet), and without the locale
 * when the server lacks it (a DR server where ja_JP.UTF-8 was never
 * generated), each said in a warning.  A restore that stops there would
 * hold back the data for a collation; pg_restore builds the indexes after
 * the data, so they follow the collation the database got. */
static int create_db(PGconn *c, const char *name, const snapshot *s, ob_err *err)
{
    char *id = quote_ident(c, name);
    json_t *x = s->extra;
    const char *owner = json_string_value(json_object_get(x, "owner"));
    const char *enc = json_string_value(json_object_get(x, "encoding"));
    char *encoding = NULL, *locale = NULL, *owner_sql = NULL, *coll = NULL;
    if (enc) {
        char *parts = ob_xstrdup(enc), *save = NULL;
        char *e = strtok_r(parts, "|", &save), *lc = strtok_r(NULL, "|", &save),
             *ct = strtok_r(NULL, "|", &save);
        if (e && lc && ct) {
            char *le = quote_literal(c, e), *qc = quote_literal(c, lc),
                 *qt = quote_literal(c, ct);
            encoding = ob_xasprintf(" ENCODING %s", le);
            locale = ob_xasprintf(" LC_COLLATE %s LC_CTYPE %s", qc, qt);
            coll = ob_xstrdup(lc);
            free(le);
            free(qc);
            free(qt);
        }
        free(parts);
    }
    if (owner && *owner) {
        char *oid = quote_ident(c, owner);
        owner_sql = ob_xasprintf(" OWNER %s", oid);
        free(oid);
    }
    /* Attempt a: bit 0 leaves the owner out, bit 1 the locale; errs[a]
     * says why attempt a failed. */
    ob_err errs[4] = {OB_ERR_INIT, OB_ERR_INIT, OB_ERR_INIT, OB_ERR_INIT};
    int rc = -1, last = 0;
    for (int a = 0; a < 4 && rc < 0; a++) {
        if (((a & 1) && !owner_sql) || ((a & 2) && !locale))
            continue;
        char *sql = ob_xasprintf("CREATE DATABASE %s TEMPLATE template0%s%s%s", id,
                                 encoding ? encoding : "", a & 2 ? "" : (locale ? locale : ""),
                                 a & 1 ? "" : (owner_sql ? owner_sql : ""));
        rc = pg_conn_exec(c, sql, &errs[a]);
        free(sql);
        last = a;
    }
    if (rc < 0) {
        ob_err_set(err, errs[last].code, "%s", ob_err_msg(&errs[last]));
    } else {
        if (last & 1)
            ob_warn("database %s created without its original owner: %s", name,
                    ob_err_msg(&errs[last - 1]));
        if (last & 2)
            ob_warn("database %s created with this server's default locale, not LC_COLLATE "
                    "%s of the backup (%s): text sorts and compares by the default's rules; "
                    "to keep the original, install that locale (locale-gen), restart "
                    "PostgreSQL and restore again",
                    name, coll, ob_err_msg(&errs[errs[last - 2].code != OB_OK ? last - 2 : 0]));
    }
    for (int a = 0; a < 4; a++)
        ob_err_clear(&errs[a]);
    free(encoding);
    free(locale);
    free(owner_sql);
    free(coll);
    free(id);
    return rc;
}

/* The signals that end opsbackup (default action) or a job run, blocked
 * for the whole of a restore db: a SIGTERM or ^C between ALLOW_CONNECTIONS
 * false and the renames used to leave the live database refusing every
 * connection, and one during pg_restore left NAME_restore_<time> (or the
 * half-made --target-db database) behind. */
static void pg_swap_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

/* ---- a restore interrupted by a signal -------------------------------- */

/* While pg_restore runs, the signals above are blocked in every thread and
 * taken by a watcher thread (sigtimedwait), which notes the signal and
 * stops the pg_restore running then (SIGTERM); one started after that is
 * stopped as it registers.  The restore then fails as on any pg_restore
 * error, drops its database, and pg_logical_restore says why and raises
 * the signal again, so the process still ends by it (exit 130, 143...). */
typedef struct pg_interrupt {
    pthread_mutex_t mu;
    pid_t child; /* the command running now, 0 if none */
    struct timespec termed; /* when child was sent SIGTERM (tv_sec 0: not yet) */
    int sig;     /* the signal taken, 0 if none */
    PGcancel *cancel; /* the query running now (pg_interrupt_query), NULL if none */
    struct timespec cancelled; /* when cancel was last sent */
    int done;    /* the watcher is to stop */
    pthread_t th;
    int started;
} pg_interrupt;

/* Ask the server to cancel the query running on the restore's connection
 * (in->mu held; PQcancel is made to be called from another thread).  It
 * opens a connection of its own: the same server, so it answers as fast
 * as the query's connection did. */
static void pg_interrupt_cancel(pg_interrupt *in, struct timespec now)
{
    char why[256];
    if (!PQcancel(in->cancel, why, sizeof why))
        ob_debug("cancelling the query in progress: %s", why);
    in->cancelled = now;
}

static void *pg_interrupt_watch(void *arg)
{
    pg_interrupt *in = arg;
    sigset_t set;
    pg_swap_signals(&set);
    for (;;) {
        pthread_mutex_lock(&in->mu);
        int done = in->done;
        pthread_mutex_unlock(&in->mu);
        if (done)
            return NULL;
        struct timespec poll = {0, 100 * 1000 * 1000}, now;
        int sig = sigtimedwait(&set, NULL, &poll);
        clock_gettime(CLOCK_MONOTONIC, &now);
        pthread_mutex_lock(&in->mu);
        if (sig > 0 && !in->sig) {
            /* The first: ask the running command to stop. */
            in->sig = sig;
            if (in->child > 0) {
                kill(in->child, SIGTERM);
                in->termed = now;
                ob_warn("stopping the restore (signal %d); send it again to kill the restore "
                        "command at once",
                        sig);
            } else if (in->cancel) {
                pg_interrupt_cancel(in, now);
                ob_warn("stopping the restore (signal %d): cancelling the query in progress",
                        sig);
            } else {
                ob_warn("stopping the restore (signal %d) at its next step", sig);
            }
        } else if (in->sig && in->child > 0 &&
                   (sig > 0 || (in->termed.tv_sec && now.tv_sec - in->termed.tv_sec >= 10))) {
            /* A command that ignores SIGTERM (a hung ssh or docker exec)
             * must not keep the restore from ending: a second signal, or
             * 10 s after its SIGTERM, and it is killed. */
            kill(in->child, SIGKILL);
            in->termed = now; /* again in 10 s if it is still there */
        } else if (in->sig && !in->child && in->cancel &&
                   (sig > 0 || now.tv_sec - in->cancelled.tv_sec >= 1)) {
            /* A cancel that came between two queries (none running), or
             * that could not be sent, is lost: sent again each second
             * while a query of the restore runs, and at each signal. */
            pg_interrupt_cancel(in, now);
        }
        pthread_mutex_unlock(&in->mu);
    }
}

/* Start watching; the caller has blocked the signals (threads it starts
 * later inherit that).  Without a watcher (no thread) the signals simply
 * stay pending until the caller unblocks them. */
static void pg_interrupt_start(pg_interrupt *in)
{
    memset(in, 0, sizeof *in);
    pthread_mutex_init(&in->mu, NULL);
    in->started = pthread_create(&in->th, NULL, pg_interrupt_watch, in) == 0;
}

/* Stop watching; returns the signal taken, 0 if none. */
static int pg_interrupt_stop(pg_interrupt *in)
{
    if (in->started) {
        pthread_mutex_lock(&in->mu);
        in->done = 1;
        pthread_mutex_unlock(&in->mu);
        pthread_join(in->th, NULL);
    }
    if (in->cancel) /* pg_interrupt_query(in, NULL) always comes first; a safeguard */
        PQfreeCancel(in->cancel);
    pthread_mutex_destroy(&in->mu);
    return in->sig;
}

/* The signal taken, 0 if none yet (a stream_restore_stoppable stop). */
static int pg_interrupt_taken(void *in_ptr)
{
    pg_interrupt *in = in_ptr;
    if (!in)
        return 0;
    pthread_mutex_lock(&in->mu);
    int sig = in->sig;
    pthread_mutex_unlock(&in->mu);
    return sig;
}

/* c runs the restore's queries now (NULL: none any more): a signal
 * cancels the one in progress (PQcancel is made to be called from another
 * thread).  The caller looks at pg_interrupt_taken before each query. */
static void pg_interrupt_query(pg_interrupt *in, PGconn *c)
{
    if (!in)
        return;
    pthread_mutex_lock(&in->mu);
    if (in->cancel)
        PQfreeCancel(in->cancel);
    in->cancel = c ? PQgetCancel(c) : NULL;
    pthread_mutex_unlock(&in->mu);
}

/* p is the command running now (NULL: none any more).  A command that
 * starts after the signal was taken is stopped at once. */
static void pg_interrupt_child(pg_interrupt *in, const proc *p)
{
    if (!in)
        return;
    pthread_mutex_lock(&in->mu);
    in->child = p ? proc_pid(p) : 0;
    in->termed.tv_sec = 0;
    if (p && in->sig) {
        kill(in->child, SIGTERM);
        clock_gettime(CLOCK_MONOTONIC, &in->termed);
    }
    pthread_mutex_unlock(&in->mu);
}

/* stream_restore into a child's stdin with SIGPIPE held back.  opsbackup
 * does not ignore SIGPIPE, so a command that stopped reading early
 * (pg_restore --exit-on-error failing on an early statement of a large
 * dump) killed us outright: exit 141, no message, and the half-made
 * database left behind.  Blocked, the write fails with EPIPE instead; the
 * SIGPIPE that leaves pending for this thread is taken before the mask is
 * restored. */
static int stream_to_pipe(repo *r, const tree_node *n, int fd, const char *what, ob_err *err)
{
    sigset_t pipe_set, saved, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &saved);
    int rc = stream_restore(r, n, fd, what, NULL, err);
    if (sigismember(&saved, SIGPIPE) != 1 && sigpending(&pending) == 0 &&
        sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        (void)sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return rc;
}

/* Feed a stored stream to a command's stdin; the command must exit 0. */
static int stream_to_command(repo *r, const tree_node *n, char **argv, char **env,
                             const char *what, pg_interrupt *in, ob_err *err)
{
    proc_opts po = {.argv = argv, .env_add = env, .pipe_stdin = 1};
    proc *p;
    if (proc_start(&po, &p, err) < 0)
        return -1;
    pg_interrupt_child(in, p);
    ob_err werr = OB_ERR_INIT;
    int wrc = stream_to_pipe(r, n, proc_stdin(p), what, &werr);
    /* The command's own complaint explains a broken pipe better than EPIPE. */
    /* Not signalled once reaped: its pid could be another process's. */
    proc_wait_exited(p);
    pg_interrupt_child(in, NULL);
    int rc = proc_wait_ok(p, what, err);
    if (rc == 0 && wrc < 0) {
        ob_err_move(err, &werr);
        rc = -1;
    }
    ob_err_clear(&werr);
    proc_free(p);
    return rc;
}

/* ---- the database's own properties ------------------------------------ */

/* The dump's database-level SQL (pg_archive_db_settings): GRANT / REVOKE
 * on the database, ALTER DATABASE ... SET, ALTER ROLE ... IN DATABASE ...
 * SET, COMMENT, SECURITY LABEL and connection limit, which pg_restore
 * emits only with --create (it would create the database under its old
 * name).  They are read from the archive's table of contents, which comes
 * first in the stream, so only its first blobs are read; nothing else of
 * the dump is parsed.  (An earlier version took them from the whole
 * schema script of `pg_restore --create --schema-only`, where the bodies
 * of BEGIN ATOMIC functions split into statements that looked like
 * session settings and ran as the restoring user.)  1 with the SQL, 0 if
 * the archive is not one pg_archive reads (the caller warns), -1 on a
 * repository error. */
static int toc_feed(void *ud, const uint8_t *p, size_t len, ob_err *err)
{
    (void)err;
    pg_archive_counter_feed(ud, p, len);
    return pg_archive_counter_toc_read(ud) != 0; /* read (or unreadable): stop */
}

static int read_db_settings(repo *r, const tree_node *dump, char **sql, char **encoding,
                            int *std_strings, char **why, ob_err *err)
{
    pg_archive_counter *ac = pg_archive_counter_new();
    int rc = stream_each(r, dump, toc_feed, ac, NULL, err);
    if (rc == 0)
        rc = pg_archive_db_settings(ac, sql, encoding, std_strings, why) == 0 ? 1 : 0;
    pg_archive_counter_free(ac);
    return rc;
}

/* sql (in the archive's encoding enc) as UTF-8, converted by the server,
 * which knows every encoding PostgreSQL has; caller frees. */
static char *to_utf8(PGconn *c, const char *sql, const char *enc, ob_err *err)
{
    if (strcasecmp(enc, "UTF8") == 0 || strcasecmp(enc, "UTF-8") == 0)
        return ob_xstrdup(sql);
    const Oid types[2] = {17 /* bytea */, 25 /* text */};
    const char *vals[2] = {sql, enc};
    const int lens[2] = {(int)strlen(sql), 0}, fmts[2] = {1, 0};
    PGresult *res =
        PQexecParams(c, "SELECT pg_catalog.convert_from($1, $2)", 2, types, vals, lens, fmts, 0);
    char *out = NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        out = ob_xstrdup(PQgetvalue(res, 0, 0));
    else
        ob_err_set(err, OB_EFAIL, "converting the dump's database settings from %s: %s", enc,
                   PQresultErrorMessage(res));
    PQclear(res);
    return out;
}

/* Apply the dump's database-level settings to newdb, renamed to it
 * (pg_sql_db_property), on a connection of their own whose session we set
 * ourselves (UTF-8, the archive's string syntax, an empty search_path):
 * no statement of the dump other than those about the database is run.
 * Any failure fails the restore, as any pg_restore error does
 * (--exit-on-error): a REVOKE CONNECT FROM PUBLIC silently lost would open
 * the database to everyone. */
static int pg_restore_db_properties(repo *r, const tree_node *dump, const pg_restore_opts *o,
                                    const char *newdb, ob_err *err)
{
    char *raw = NULL, *enc = NULL, *why = NULL, *sql = NULL;
    int std_strings = 0;
    int got = read_db_settings(r, dump, &raw, &enc, &std_strings, &why, err);
    if (got <= 0) {
        if (got == 0)
            ob_warn("the database's own settings (GRANTs on it, ALTER DATABASE ... SET, its "
                    "comment) were not restored to %s: the dump's table of contents cannot be "
                    "read (%s); apply them by hand",
                    newdb, why);
        free(why);
        return got;
    }
    int rc = 0, applied = 0;
    PGconn *c = NULL;
    if (*raw) {
        /* Connected to newdb, as pg_restore --create is: convert_from
         * converts into the connected database's encoding, and a COMMENT
         * ON DATABASE is stored in the encoding of the session's database,
         * so the new database's own (a SQL_ASCII dump's bytes pass as they
         * are).  Shared catalogs keep the bytes of whichever session wrote
         * them, though: newdb's name was written in UTF-8 (from postgres),
         * and a session on a LATIN1 newdb would convert a non-ASCII name to
         * LATIN1 and not find it.  Then the settings go through postgres
         * instead, where the name matches and the text is in postgres's
         * encoding. */
        c = pg_conn_open(o->conninfo, newdb, err);
        rc = c ? 0 : -1;
        int ascii = 1;
        for (const char *q = newdb; *q; q++)
            ascii &= (unsigned char)*q < 0x80;
        const char *enc_now = c ? PQparameterStatus(c, "server_encoding") : NULL;
        int raw_bytes = enc_now && strcmp(enc_now, "SQL_ASCII") == 0;
        if (rc == 0 && !ascii && !raw_bytes && (!enc_now || strcmp(enc_now, "UTF8") != 0)) {
            PQfinish(c);
            c = pg_conn_open(o->conninfo, "postgres", err);
            rc = c ? 0 : -1;
            enc_now = c ? PQparameterStatus(c, "server_encoding") : NULL;
            raw_bytes = enc_now && strcmp(enc_now, "SQL_ASCII") == 0;
        }
        /* A SQL_ASCII database converts and checks nothing: its bytes go
         * both ways as they are (a UTF-8 client would have them checked as
         * UTF-8 on the way out, and fail). */
        if (rc == 0)
            rc = pg_conn_exec(c, raw_bytes ? "SET client_encoding = 'SQL_ASCII'"
                                           : "SET client_encoding = 'UTF8'",
                              err);
        if (rc == 0)
            rc = pg_conn_exec(c, "SET escape_string_warning = off", err);
        if (rc == 0)
            rc = pg_conn_exec(c, std_strings ? "SET standard_conforming_strings = on"
                                             : "SET standard_conforming_strings = off",
                              err);
        if (rc == 0)
            rc = pg_conn_exec(c, "SELECT pg_catalog.set_config('search_path', '', false)", err);
        if (rc == 0 && !(sql = raw_bytes ? ob_xstrdup(raw) : to_utf8(c, raw, enc, err)))
            rc = -1;
    }
    size_t pos = 0;
    char *stmt;
    while (rc == 0 && sql && pg_sql_next(sql, strlen(sql), &pos, &stmt)) {
        char *renamed = NULL;
        if (pg_sql_db_property(stmt, newdb, &renamed) == PG_SQL_DB_PROPERTY) {
            rc = pg_conn_exec(c, renamed ? renamed : stmt, err);
            if (rc < 0)
                ob_err_prefix(err, "applying the database's own settings from the dump to %s "
                                   "(restore as a superuser, or create the roles they name "
                                   "first, e.g. with --roles)",
                              newdb);
            applied++;
        }
        free(renamed);
        free(stmt);
    }
    if (rc == 0)
        ob_debug("%d database-level setting(s) from the dump applied to %s", applied, newdb);
    PQfinish(c);
    free(raw);
    free(sql);
    free(enc);
    return rc;
}

/* ---- --roles: the globals, only for what this cluster lacks ----------- */

/* A set of names (roles, tablespaces); small, so a list. */
typedef struct pg_names {
    char **v;
    size_t n;
} pg_names;

static int pg_names_has(const pg_names *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], name) == 0)
            return 1;
    return 0;
}

static void pg_names_add(pg_names *l, const char *name)
{
    l->v = ob_xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n++] = ob_xstrdup(name);
}

static void pg_names_free(pg_names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* The first column of every row of sql. */
static int pg_names_load(PGconn *c, const char *sql, pg_names *out, ob_err *err)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char *m = ob_xstrdup(PQresultErrorMessage(r));
        m[strcspn(m, "\n")] = '\0';
        ob_err_set(err, OB_EFAIL, "PostgreSQL: %s (while running: %s)", m, sql);
        free(m);
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++)
        pg_names_add(out, PQgetvalue(r, i, 0));
    PQclear(r);
    return 0;
}

/* A stored stream, whole, in memory (the globals hold password hashes,
 * which must not land in a file; the caller wipes the buffer). */
static int buf_append_each(void *ud, const uint8_t *p, size_t len, ob_err *err)
{
    (void)err;
    ob_buf_append(ud, p, len);
    return 0;
}

/* Run one statement of the globals; a failure is a warning naming label
 * (the statement's first words: the text may carry a password hash). */
static int pg_globals_exec(PGconn *c, const char *sql, const char *label)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok) {
        char *m = ob_xstrdup(PQresultErrorMessage(r));
        m[strcspn(m, "\n")] = '\0';
        ob_warn("--roles: %s failed: %s", label, m);
        free(m);
    }
    PQclear(r);
    return ok ? 0 : -1;
}

/* restore db --roles: the roles (and tablespaces) of pg_dumpall
 * --globals-only that this cluster does not have, with their attributes,
 * settings, comments and memberships.  A role or tablespace that exists is
 * left exactly as it is: pg_dumpall writes CREATE ROLE x; ALTER ROLE x WITH
 * ... PASSWORD ...; so replaying the script would reset its password and
 * attributes to the backup's even though the CREATE fails.  A membership
 * (GRANT g TO m) is restored when its member is a role created here; one
 * for an existing member would change that role, so it is reported, not
 * run.  A statement that fails is a warning: the role it concerns may not
 * matter for the data, and pg_restore fails clearly when it does. */
static int pg_restore_globals(repo *r, const tree_node *globals, const pg_restore_opts *o,
                              ob_err *err)
{
    ob_buf script = OB_BUF_INIT;
    if (stream_each(r, globals, buf_append_each, &script, NULL, err) < 0) {
        ob_wipe(script.data, script.len);
        ob_buf_free(&script);
        return -1;
    }
    PGconn *c = pg_conn_open(o->conninfo, "postgres", err);
    pg_names roles = {0}, spaces = {0}, created = {0}, created_ts = {0}, failed = {0};
    size_t pos = 0, kept = 0, skipped_members = 0;
    char *stmt;
    int rc = -1;
    if (!c || pg_names_load(c, "SELECT rolname FROM pg_catalog.pg_roles", &roles, err) < 0 ||
        pg_names_load(c, "SELECT spcname FROM pg_catalog.pg_tablespace", &spaces, err) < 0)
        goto out;
    while (pg_sql_next((const char *)script.data, script.len, &pos, &stmt)) {
        pg_sql_global g;
        pg_sql_global_classify(stmt, &g);
        const char *name = g.object;
        switch (g.kind) {
        case PG_SQL_G_SESSION:
            pg_globals_exec(c, stmt, g.label);
            break;
        case PG_SQL_G_ROLE_CREATE:
        case PG_SQL_G_ROLE:
            if (pg_names_has(&roles, name)) {
                if (g.kind == PG_SQL_G_ROLE_CREATE)
                    kept++;
                break;
            }
            if (pg_names_has(&failed, name))
                break;
            if (!pg_names_has(&created, name)) {
                /* pg_dumpall leaves out CREATE ROLE for the role it ran
                 * as (only ALTER ROLE): create it before its ALTER. */
                char *q = pg_sql_quote_ident(name);
                char *create = ob_xasprintf("CREATE ROLE %s", q);
                char *label = ob_xasprintf("CREATE ROLE %s", q);
                int crc = pg_globals_exec(c, g.kind == PG_SQL_G_ROLE_CREATE ? stmt : create,
                                          g.kind == PG_SQL_G_ROLE_CREATE ? g.label : label);
                pg_names_add(crc == 0 ? &created : &failed, name);
                free(q);
                free(create);
                free(label);
                if (crc < 0 || g.kind == PG_SQL_G_ROLE_CREATE)
                    break;
            }
            pg_globals_exec(c, stmt, g.label);
            break;
        case PG_SQL_G_MEMBERSHIP:
        case PG_SQL_G_GRANT: {
            size_t mine = 0;
            for (size_t i = 0; i < g.nnames; i++)
                mine += pg_names_has(&created, g.names[i]);
            if (mine == g.nnames) {
                pg_globals_exec(c, stmt, g.label);
            } else {
                /* A membership, or a privilege on a parameter (GRANT SET
                 * ON PARAMETER work_mem TO r, PostgreSQL 15): both change
                 * what an existing role may do. */
                skipped_members++;
                ob_warn("--roles: not restored, as it would change an existing role (run it "
                        "yourself if you want it): %s", g.label);
            }
            break;
        }
        case PG_SQL_G_TABLESPACE_CREATE:
            if (pg_names_has(&spaces, name))
                break;
            if (pg_globals_exec(c, stmt, g.label) == 0)
                pg_names_add(&created_ts, name);
            break;
        case PG_SQL_G_TABLESPACE:
            if (pg_names_has(&created_ts, name))
                pg_globals_exec(c, stmt, g.label);
            break;
        case PG_SQL_G_OTHER:
            ob_warn("--roles: skipped a statement of the stored globals that is not about a "
                    "role or tablespace this restore created: %s ...",
                    g.label);
            break;
        }
        pg_sql_global_free(&g);
        ob_wipe(stmt, strlen(stmt));
        free(stmt);
    }
    if (!o->quiet)
        ob_info("--roles: created %zu role(s), kept %zu existing role(s) unchanged%s", created.n,
                kept,
                skipped_members ? " (memberships and grants of existing roles not restored)"
                                : "");
    rc = 0;
out:
    pg_names_free(&roles);
    pg_names_free(&spaces);
    pg_names_free(&created);
    pg_names_free(&created_ts);
    pg_names_free(&failed);
    PQfinish(c);
    ob_wipe(script.data, script.len);
    ob_buf_free(&script);
    return rc;
}

static char *timestamp_suffix(void)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    return ob_xasprintf("%04d%02d%02d%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* NAME + suffix within PostgreSQL's 63-byte identifier limit (NAMEDATALEN
 * - 1), NAME cut at a character boundary of c's client encoding: a
 * multibyte character cut in half is an invalid name the server rejects
 * (a Japanese database name of 14 characters or more did). */
static char *db_name_with(PGconn *c, const char *name, const char *suffix)
{
    size_t len = strlen(name), room = 63 - strlen(suffix), keep = 0;
    if (len <= room) {
        keep = len;
    } else {
        int enc = PQclientEncoding(c);
        while (keep < room) {
            int k = PQmblen(name + keep, enc);
            if (k < 1)
                k = 1;
            if (keep + (size_t)k > room)
                break;
            keep += (size_t)k;
        }
    }
    return ob_xasprintf("%.*s%s", (int)keep, name, suffix);
}

static int restore_into(repo *r, const snapshot *s, const pg_restore_opts *o, PGconn *admin,
                        char **env, const char *newdb, pg_interrupt *in, ob_err *err)
{
    tree t;
    tree_init(&t);
    const tree_node *dump = NULL, *globals = NULL;
    int rc = find_stream(r, s, PG_DUMP_NAME, &t, &dump, err);
    if (rc < 0) {
        tree_free(&t);
        return -1;
    }
    globals = tree_find(&t, PG_GLOBALS_NAME, strlen(PG_GLOBALS_NAME));
    if (o->roles) {
        if (!globals) {
            rc = ob_err_set(err, OB_EUSAGE, "snapshot %.8s holds no globals (roles)", s->id);
        } else {
            rc = pg_restore_globals(r, globals, o, err);
        }
    }
    if (rc == 0)
        rc = create_db(admin, newdb, s, err);
    if (rc < 0) {
        tree_free(&t);
        return -1;
    }
    char *dbci = pg_conninfo_set("", "dbname", newdb, err); /* see pg_logical_dump_start */
    if (!dbci) {
        tree_free(&t);
        return -1;
    }
    char *dbarg = ob_xasprintf("--dbname=%s", dbci);
    free(dbci);
    if (o->jobs > 1 && !o->restore_command) {
        /* Parallel pg_restore needs a seekable archive: a temporary file
         * without a name, so that nothing is left in TMPDIR whatever ends
         * us (a kill -9 during a restore of a large dump left it all
         * there).  pg_restore gets it as its stdin and opens it by the
         * name /proc/self/fd/0, in each worker too: it refuses --jobs on
         * standard input itself, since it cannot reopen that. */
        const char *tmpdir = ob_tmpdir();
        int fd = ob_tmpfile(tmpdir);
        if (fd >= 0 && fd <= STDERR_FILENO) {
            /* Started with stdin closed, we got descriptor 0 (or 1, 2):
             * proc_start hands on only one above them. */
            int up = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1), e = errno;
            close(fd);
            fd = up;
            errno = e;
        }
        if (fd < 0)
            rc = ob_err_errno(err, errno,
                              "creating a temporary file in %s for the parallel restore (TMPDIR "
                              "sets the directory)",
                              tmpdir);
        else
            rc = stream_restore_stoppable(r, dump, fd, "the dump into a temporary file",
                                          pg_interrupt_taken, in, NULL, err);
        if (rc == 0) {
            char *jarg = ob_xasprintf("--jobs=%d", o->jobs);
            char *extra[] = {dbarg, "--exit-on-error", "--no-password", jarg, "/proc/self/fd/0",
                             NULL};
            char **argv = build_argv(NULL, "pg_restore", extra, err);
            proc_opts po = {.argv = argv, .env_add = env, .stdin_fd = fd};
            proc *p = NULL;
            rc = argv ? proc_start(&po, &p, err) : -1;
            if (rc == 0) {
                pg_interrupt_child(in, p);
                proc_wait_exited(p);
                pg_interrupt_child(in, NULL);
                rc = proc_wait_ok(p, "pg_restore", err);
                proc_free(p);
            }
            free(jarg);
            proc_argv_free(argv);
        }
        if (fd >= 0)
            close(fd);
    } else {
        char *extra[] = {dbarg, "--exit-on-error", "--no-password", NULL};
        char **argv = build_argv(o->restore_command, "pg_restore", extra, err);
        rc = argv ? stream_to_command(r, dump, argv, env, "pg_restore", in, err) : -1;
        proc_argv_free(argv);
    }
    free(dbarg);
    if (rc == 0)
        rc = pg_restore_db_properties(r, dump, o, newdb, err);
    tree_free(&t);
    if (rc < 0) {
        /* Never leave a half-restored database behind. */
        ob_err e = OB_ERR_INIT;
        if (drop_db(admin, newdb, &e) < 0)
            ob_warn("could not drop the incomplete database %s: %s", newdb, ob_err_msg(&e));
        ob_err_clear(&e);
        return -1;
    }
    return 0;
}

/* One of those signals is waiting to be delivered. */
static int pg_swap_signal_pending(void)
{
    sigset_t pending, ours;
    pg_swap_signals(&ours);
    if (sigpending(&pending) < 0)
        return 0;
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&ours, sig) == 1 && sigismember(&pending, sig) == 1)
            return sig;
    return 0;
}

/* Swap new into live's name, keeping live as old.  The caller blocks the
 * swap signals (pg_swap_signals) around this: it either completes or is
 * rolled back, never stops half way.  While the sessions on live are asked
 * to leave (up to 10 s) a pending signal rolls back at once (connections
 * allowed again, nothing renamed); the renames and the re-allowing of
 * connections on old are one transaction, so they cannot be split by
 * anything, SIGKILL included.  On any failure live accepts connections
 * again; if even that fails, err says what to run. */
static int swap_databases(PGconn *c, const char *live, const char *newdb, const char *old,
                          ob_err *err)
{
    char *l = quote_ident(c, live), *n = quote_ident(c, newdb), *o = quote_ident(c, old);
    char *lit = quote_literal(c, live);
    char *noconn = ob_xasprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS false", l);
    char *kick = ob_xasprintf("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                              "datname = %s AND pid <> pg_backend_pid()",
                              lit);
    char *left = ob_xasprintf("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                              "pid <> pg_backend_pid()",
                              lit);
    char *swap = ob_xasprintf("BEGIN; ALTER DATABASE %s RENAME TO %s; ALTER DATABASE %s RENAME TO "
                              "%s; ALTER DATABASE %s WITH ALLOW_CONNECTIONS true; COMMIT",
                              l, o, n, l, o);
    char *undo = ob_xasprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS true", l);
    int rc = pg_conn_exec(c, noconn, err);
    if (rc == 0) {
        /* Sessions get up to 10 s to go after being asked. */
        for (int i = 0; i < 100 && rc == 0; i++) {
            int sig = pg_swap_signal_pending();
            if (sig) {
                rc = ob_err_set(err, OB_EFAIL,
                                "interrupted by signal %d while the sessions on %s were asked "
                                "to leave; nothing was swapped",
                                sig, live);
                break;
            }
            ob_err e = OB_ERR_INIT;
            pg_conn_exec(c, kick, &e);
            ob_err_clear(&e);
            char *v = pg_conn_value(c, left, err);
            if (!v) {
                rc = -1;
                break;
            }
            int done = strcmp(v, "0") == 0;
            free(v);
            if (done)
                break;
            usleep(100000);
        }
        if (rc == 0)
            rc = pg_conn_exec(c, swap, err);
        if (rc < 0) {
            ob_err e = OB_ERR_INIT;
            pg_conn_exec(c, "ROLLBACK", &e);
            ob_err_clear(&e);
            if (pg_conn_exec(c, undo, &e) < 0)
                ob_err_prefix(err,
                              "database %s still refuses connections (%s); run as a superuser "
                              "'%s' to allow them again; the swap failed because",
                              live, ob_err_msg(&e), undo);
            ob_err_clear(&e);
        }
    }
    free(l);
    free(n);
    free(o);
    free(lit);
    free(noconn);
    free(kick);
    free(left);
    free(swap);
    free(undo);
    return rc;
}

/* With verify db's comparison, below. */
static int check_restored_counts(const char *conninfo, const char *db, const char *live,
                                 const snapshot *s, pg_interrupt *in, ob_err *err);

char *pg_logical_system_identifier(const char *conninfo, ob_err *err)
{
    /* The maintenance database, as the restore's own connection: the
     * database conninfo names may not exist yet. */
    PGconn *c = pg_conn_open(conninfo, "postgres", err);
    if (!c)
        return NULL;
    char *v = system_identifier(c, err);
    PQfinish(c);
    return v;
}

char *pg_logical_conninfo_dbname(const char *conninfo)
{
    if (!conninfo || !*conninfo)
        return NULL;
    /* libpq's rule (pg_conn_open passes it as an expandable dbname): a
     * value with no '=' that is not a URI is a database name as it is. */
    if (!strchr(conninfo, '=') && strncmp(conninfo, "postgresql://", 13) != 0 &&
        strncmp(conninfo, "postgres://", 11) != 0)
        return ob_xstrdup(conninfo);
    ob_err e = OB_ERR_INIT;
    if (pq_lib_load(&e) < 0) {
        ob_err_clear(&e);
        return NULL;
    }
    char *msg = NULL, *name = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
    PQfreemem(msg);
    for (PQconninfoOption *x = opts; x && x->keyword; x++)
        if (strcmp(x->keyword, "dbname") == 0 && x->val && *x->val)
            name = ob_xstrdup(x->val);
    PQconninfoFree(opts);
    return name;
}

int pg_logical_restore(repo *r, const snapshot *s, const pg_restore_opts *o,
                       pg_restore_result *res, ob_err *err)
{
    memset(res, 0, sizeof *res);
    if (strcmp(s->kind, "db") != 0)
        return ob_err_set(err, OB_EUSAGE, "snapshot %.8s is a %s snapshot, not db", s->id,
                          s->kind);
    if (!!o->target_db == !!o->replace)
        return ob_err_set(err, OB_EUSAGE, "give exactly one of --target-db NAME and --replace");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (repo_load_index(r, err) < 0)
        return -1;
    char **env = conn_env(o->conninfo, err);
    if (!env)
        return -1;
    PGconn *admin = pg_conn_open(o->conninfo, "postgres", err);
    if (!admin) {
        env_free(env);
        return -1;
    }
    /* From here until the end the restore's signals are held back: taken
     * by the watcher while pg_restore runs, pending during the swap (see
     * pg_swap_signals).  Only this thread runs now: the restore's threads
     * start later and inherit the mask. */
    sigset_t block, saved;
    pg_swap_signals(&block);
    pthread_sigmask(SIG_BLOCK, &block, &saved);
    int rc = -1, exists = 0, sig = 0;
    char *live = NULL, *newdb = NULL, *old = NULL, *suffix = timestamp_suffix();
    if (o->replace) {
        /* The database to replace: the conninfo's, else the snapshot's. */
        live = pg_logical_conninfo_dbname(o->conninfo);
        if (!live) {
            const char *d = json_string_value(json_object_get(s->extra, "database"));
            live = ob_xstrdup(d ? d : "");
        }
        char *sfx_new = ob_xasprintf("_restore_%s", suffix);
        char *sfx_old = ob_xasprintf("_before_restore_%s", suffix);
        newdb = db_name_with(admin, live, sfx_new);
        old = db_name_with(admin, live, sfx_old);
        free(sfx_new);
        free(sfx_old);
        if (db_exists(admin, live, &exists, err) < 0)
            goto out;
        if (!exists) {
            ob_err_set(err, OB_ENOTFOUND,
                       "database %s does not exist, so there is nothing to replace; use "
                       "--target-db %s",
                       live, live);
            goto out;
        }
        /* Where the live database will go must be free now, not found
         * taken after a restore of an hour. */
        if (db_exists(admin, old, &exists, err) < 0)
            goto out;
        if (exists) {
            ob_err_set(err, OB_EEXIST,
                       "database %s already exists, and --replace would keep the current %s "
                       "under that name; drop or rename it, or retry in a second (the name "
                       "holds the time); nothing was restored",
                       old, live);
            goto out;
        }
    } else {
        newdb = ob_xstrdup(o->target_db);
    }
    if (db_exists(admin, newdb, &exists, err) < 0)
        goto out;
    if (exists) {
        ob_err_set(err, OB_EEXIST,
                   "database %s already exists; choose another --target-db, or use --replace",
                   newdb);
        goto out;
    }
    pg_interrupt in;
    pg_interrupt_start(&in);
    /* A read from a stalled S3 server must not hold up the stop either. */
    storage_set_stop(repo_storage(r), pg_interrupt_taken, &in);
    int irc = restore_into(r, s, o, admin, env, newdb, &in, err);
    storage_set_stop(repo_storage(r), NULL, NULL);
    int restored = irc == 0;
    if (restored && o->replace)
        irc = check_restored_counts(o->conninfo, newdb, live, s, &in, err);
    sig = pg_interrupt_stop(&in);
    if (restored && (sig || irc < 0)) {
        /* restore_into dropped its database if pg_restore failed; if the
         * signal came just after it had finished, or the copy does not
         * hold what the backup recorded, the copy goes too. */
        ob_err e = OB_ERR_INIT;
        if (drop_db(admin, newdb, &e) < 0)
            ob_warn("could not drop the restored database %s: %s", newdb, ob_err_msg(&e));
        ob_err_clear(&e);
    }
    if (sig) {
        ob_err_clear(err);
        ob_err_set(err, OB_EFAIL,
                   "interrupted by signal %d (%s) while restoring into %s; the incomplete "
                   "database was dropped%s",
                   sig, strsignal(sig), newdb, o->replace ? " and nothing was swapped" : "");
        goto out;
    }
    if (irc < 0)
        goto out;
    if (o->replace) {
        /* The swap and its cleanup run with SIGINT/SIGTERM/SIGHUP held
         * back (swap_databases), pending until the end. */
        int src = swap_databases(admin, live, newdb, old, err);
        if (src < 0) {
            ob_err_prefix(err, "restored into %s, but could not swap it with %s (nothing "
                               "was renamed; the restored copy is dropped)",
                          newdb, live);
            ob_err e = OB_ERR_INIT;
            drop_db(admin, newdb, &e);
            ob_err_clear(&e);
        }
        if (pg_swap_signal_pending() && src == 0)
            ob_warn("the swap was finished before the signal was handled: %s holds the "
                    "restored data, the previous database is kept as %s",
                    live, old);
        if (src < 0)
            goto out;
        res->database = live;
        res->previous = old;
        live = old = NULL;
    } else {
        res->database = newdb;
        newdb = NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    rc = 0;
out:
    free(live);
    free(newdb);
    free(old);
    free(suffix);
    env_free(env);
    PQfinish(admin);
    if (rc < 0 && (sig || pg_swap_signal_pending())) {
        /* Said now: the signal ends us as soon as it is unblocked (one
         * the watcher took is raised again for that). */
        ob_error("%s", ob_err_msg(err));
        if (sig)
            raise(sig);
    } else if (rc == 0 && !o->replace && pg_swap_signal_pending()) {
        ob_warn("the restore into %s was complete before the signal was handled; the "
                "database is kept",
                res->database);
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return rc;
}

void pg_restore_result_free(pg_restore_result *res)
{
    free(res->database);
    free(res->previous);
    memset(res, 0, sizeof *res);
}

/* ---- verify ---------------------------------------------------------- */

static json_t *run_check(PGconn *c, const char *sql, int *ok)
{
    PGresult *r = PQexec(c, sql);
    json_t *o = json_pack("{s:s}", "sql", sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        char *m = ob_xstrdup(PQresultErrorMessage(r));
        m[strcspn(m, "\n")] = '\0';
        json_object_set_new(o, "error", json_string(m));
        json_object_set_new(o, "ok", json_false());
        free(m);
        *ok = 0;
    } else {
        json_t *rows = json_array();
        for (int i = 0; i < PQntuples(r) && i < 100; i++) {
            json_t *row = json_array();
            for (int k = 0; k < PQnfields(r); k++)
                json_array_append_new(row, PQgetisnull(r, i, k) ? json_null()
                                                                : json_string(PQgetvalue(r, i, k)));
            json_array_append_new(rows, row);
        }
        json_object_set_new(o, "result", rows);
        json_object_set_new(o, "ok", json_true());
        *ok = 1;
    }
    PQclear(r);
    return o;
}

/* The schema and table of a row-count key (callers free both): quoted
 * parts when the snapshot says so (table_keys), else as snapshots wrote
 * them before, bare, the table being everything after the first '.'. */
static int split_table_key(const char *key, int quoted, char **schema, char **table)
{
    if (quoted)
        return pg_sql_table_key_split(key, schema, table);
    const char *dot = strchr(key, '.');
    if (!dot)
        return -1;
    *schema = ob_xstrndup(key, (size_t)(dot - key));
    *table = ob_xstrdup(dot + 1);
    return 0;
}

/* pg_logical_compare, stopping at a signal that `in` (may be NULL) takes:
 * the count in progress is cancelled and the others are not made. */
static int64_t compare_db(const char *conninfo, const char *dbname, const json_t *extra,
                          char *const *check_sql, size_t nchecks, pg_interrupt *in,
                          json_t **tables, json_t **checks, ob_err *err)
{
    const json_t *expected = json_object_get(extra, "tables");
    int quoted =
        json_integer_value(json_object_get(extra, "table_keys")) >= PG_TABLE_KEYS_QUOTED;
    *tables = NULL;
    *checks = NULL;
    PGconn *c = pg_conn_open(conninfo, dbname, err);
    if (!c)
        return -1;
    /* The role's or the database's statement_timeout (pg_restore copies a
     * database's settings to the restored one) must not end the count of
     * a large table: that read as a mismatch and refused a sound copy. */
    ob_err te = OB_ERR_INIT;
    if (pg_conn_exec(c, "SET statement_timeout = 0; SET lock_timeout = 0", &te) < 0)
        ob_debug("verify: %s", ob_err_msg(&te));
    ob_err_clear(&te);
    pg_interrupt_query(in, c);
    int64_t mismatches = 0;
    *tables = json_object();
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)expected, key, val)
    {
        if (pg_interrupt_taken(in))
            break;
        json_int_t want = json_integer_value(val), got = -1;
        char *ns, *rel, *failed = NULL;
        if (split_table_key(key, quoted, &ns, &rel) == 0) {
            /* Missing (actual -1) is told from a count that failed (the
             * error is kept): only the first means the table is not there. */
            char *qn = quote_ident(c, ns), *qr = quote_ident(c, rel);
            char *qual = ob_xasprintf("%s.%s", qn, qr);
            char *lit = PQescapeLiteral(c, qual, strlen(qual));
            char *sql = ob_xasprintf("SELECT to_regclass(%s) IS NOT NULL", lit ? lit : "NULL");
            ob_err e = OB_ERR_INIT;
            char *there = pg_conn_value(c, sql, &e);
            if (there && strcmp(there, "t") == 0) {
                free(sql);
                sql = ob_xasprintf("SELECT count(*) FROM ONLY %s", qual);
                char *v = pg_conn_value(c, sql, &e);
                if (v)
                    got = strtoll(v, NULL, 10);
                free(v);
            }
            if (e.code != OB_OK)
                failed = ob_xstrdup(ob_err_msg(&e));
            ob_err_clear(&e);
            free(there);
            free(sql);
            if (lit)
                PQfreemem(lit);
            free(qual);
            free(qn);
            free(qr);
            free(ns);
            free(rel);
        }
        if (got != want)
            mismatches++;
        json_t *t = json_pack("{s:I, s:I, s:b}", "expected", want, "actual", got, "ok",
                              got == want);
        if (failed)
            json_object_set_new(t, "error", json_string(failed));
        free(failed);
        json_object_set_new(*tables, key, t);
    }
    *checks = json_array();
    for (size_t i = 0; i < nchecks && !pg_interrupt_taken(in); i++) {
        int ok = 0;
        json_array_append_new(*checks, run_check(c, check_sql[i], &ok));
        if (!ok)
            mismatches++;
    }
    pg_interrupt_query(in, NULL);
    PQfinish(c);
    return mismatches;
}

int64_t pg_logical_compare(const char *conninfo, const char *dbname, const json_t *extra,
                           char *const *check_sql, size_t nchecks, json_t **tables,
                           json_t **checks, ob_err *err)
{
    return compare_db(conninfo, dbname, extra, check_sql, nchecks, NULL, tables, checks, err);
}

/* restore db --replace: before the restored copy db takes the live
 * database's name, its tables must hold the rows the backup recorded.
 * pg_restore exiting 0 does not prove that: a --restore-command that
 * loses a table's data (a wrapper that does not pass pg_restore's failure
 * on, a filter) would otherwise replace a whole database with a partial
 * one.  verify db makes the same comparison in a throwaway database. */
static int check_restored_counts(const char *conninfo, const char *db, const char *live,
                                 const snapshot *s, pg_interrupt *in, ob_err *err)
{
    if (!json_is_object(json_object_get(s->extra, "tables"))) {
        ob_warn("snapshot %.8s records no row counts, so the restored copy is not checked "
                "against them before it replaces %s",
                s->id, live);
        return 0;
    }
    json_t *tables = NULL, *checks = NULL;
    int64_t mm = compare_db(conninfo, db, s->extra, NULL, 0, in, &tables, &checks, err);
    int rc = 0;
    if (mm < 0) {
        rc = ob_err_prefix(err, "counting the rows of the restored copy %s", db);
    } else if (mm > 0 && !pg_interrupt_taken(in)) {
        /* Name the first few, with both counts. */
        ob_buf b = OB_BUF_INIT;
        int shown = 0;
        const char *key;
        json_t *t;
        json_object_foreach(tables, key, t)
        {
            if (json_is_true(json_object_get(t, "ok")))
                continue;
            if (shown++ == 3) {
                ob_buf_printf(&b, "; …");
                break;
            }
            char *d = pg_logical_count_describe(key, t, NULL);
            ob_buf_printf(&b, "%s%s", shown > 1 ? "; " : "", d);
            free(d);
        }
        rc = ob_err_set(err, OB_EFAIL,
                        "the restored copy does not hold what the backup recorded in %lld "
                        "table(s) (%.*s); %s was not replaced and the copy is dropped (restore "
                        "with --target-db to look at it)",
                        (long long)mm, (int)b.len, (const char *)b.data, live);
        ob_buf_free(&b);
    } else if (mm == 0) {
        ob_debug("the restored copy %s holds the recorded rows of its %zu table(s)", db,
                 json_object_size(tables));
    }
    json_decref(tables);
    json_decref(checks);
    return rc;
}

int pg_logical_verify(repo *r, const snapshot *s, const char *conninfo, char **check_sql,
                      size_t nchecks, pg_verify_result *res, ob_err *err)
{
    memset(res, 0, sizeof *res);
    json_t *expected = json_object_get(s->extra, "tables");
    if (!json_is_object(expected))
        return ob_err_set(err, OB_ECORRUPT, "snapshot %.8s records no table row counts",
                          s->id);
    res->database = ob_xasprintf("opsbackup_verify_%ld_%ld", (long)getpid(), (long)time(NULL));
    pg_restore_opts ro = {conninfo, res->database, 0, 1, 0, NULL, 1};
    pg_restore_result rr;
    if (pg_logical_restore(r, s, &ro, &rr, err) < 0)
        return ob_err_prefix(err, "verify: restoring into a throwaway database");
    res->restore_seconds = rr.seconds;
    pg_restore_result_free(&rr);

    int64_t mm = pg_logical_compare(conninfo, res->database, s->extra, check_sql, nchecks,
                                    &res->tables, &res->checks, err);
    int rc = mm < 0 ? -1 : 0;
    if (mm > 0)
        res->mismatches = (uint64_t)mm;
    PGconn *admin = pg_conn_open(conninfo, "postgres", err);
    ob_err e = OB_ERR_INIT;
    if (!admin || drop_db(admin, res->database, &e) < 0)
        ob_warn("could not drop the throwaway database %s: %s", res->database,
                admin ? ob_err_msg(&e) : ob_err_msg(err));
    ob_err_clear(&e);
    PQfinish(admin);
    return rc;
}

void pg_verify_result_free(pg_verify_result *res)
{
    json_decref(res->tables);
    json_decref(res->checks);
    free(res->database);
    memset(res, 0, sizeof *res);
}
