/*
 * pg_physical.c — physical backups of a PostgreSQL data directory and
 * their restore to a point in time (see pg_physical.h).
 */
#include "sources/pg_physical.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/proc.h"
#include "core/util.h"
#include "repo/chunker.h"
#include "repo/treeio.h"
#include "sources/files.h"
#include "sources/pg_conn.h"
#include "sources/pg_wal.h"

/* ---- PostgreSQL's exclusion rules (basebackup.c) ---------------------- */

/* Directories whose contents are never copied (the directory itself is,
 * so the server finds it). */
static const char *const excluded_dir_contents[] = {
    "pg_wal",       /* replayed from the archive instead */
    "pg_stat_tmp",  /* statistics temp files (stats_temp_directory default) */
    "pg_replslot",  /* slots are not valid on a copy */
    "pg_dynshmem",  /* dynamic shared memory */
    "pg_notify",    /* LISTEN/NOTIFY queue */
    "pg_serial",    /* serializable transactions */
    "pg_snapshots", /* exported snapshots */
    "pg_subtrans",  /* rebuilt at startup */
    NULL,
};

/* Files never copied, in any directory of the top level. */
static const char *const excluded_files[] = {
    "postgresql.auto.conf.tmp", "current_logfiles.tmp", "backup_label", "tablespace_map",
    "backup_manifest", "postmaster.pid", "postmaster.opts", "recovery.signal",
    "standby.signal", NULL,
};

typedef struct phys_ctx {
    const pg_physical_backup_opts *o;
    repo *r;
    PGconn *conn;
    char *pgdata;          /* realpath of the data directory */
    size_t pgdata_len;
    int version;           /* server_version_num */
    char *start_lsn, *start_wal;
    uint32_t timeline;
    uint64_t segsize;
    char *sysid, *version_str;
    int full;              /* every file is read (--force, or --full-every due) */
} phys_ctx;

/* Relation file name: NNN, NNN.1, NNN_fsm, NNN_vm.2, NNN_init;
 * *base_len gets the length of NNN, *fork points at "_fsm…" or "". */
static int relation_name(const char *name, size_t *base_len, const char **fork)
{
    const char *p = name;
    if (*p == 't') { /* temporary relation: tBACKEND_NNN */
        p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
        if (*p++ != '_')
            return 0;
    }
    if (!isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p))
        p++;
    *base_len = (size_t)(p - name);
    *fork = p;
    if (*p == '_') {
        p++;
        if (strncmp(p, "fsm", 3) == 0 || strncmp(p, "vm", 2) == 0 || strncmp(p, "init", 4) == 0)
            p += p[0] == 'v' ? 2 : p[0] == 'f' ? 3 : 4;
        else
            return 0;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return *p == '\0';
}

static int phys_filter(void *ud, const char *path, const char *name, const struct stat *st)
{
    phys_ctx *c = ud;
    const char *rel = path + c->pgdata_len;
    if (*rel == '/')
        rel++;
    int top = strchr(rel, '/') == NULL;
    if (strncmp(name, "pgsql_tmp", 9) == 0)
        return FILES_EXCLUDE; /* temporary files and their directories */
    if (strncmp(name, "pg_internal.init", 16) == 0)
        return FILES_EXCLUDE; /* relation cache, rebuilt at startup */
    if (top) {
        for (const char *const *f = excluded_files; *f; f++)
            if (strcmp(name, *f) == 0)
                return FILES_EXCLUDE;
        /* pg_wal is often a symlink to another disk (initdb -X): kept as
         * the empty directory it leads to, as pg_basebackup does.  Kept as
         * a symlink, a restore on the same host would put the restored
         * server's WAL into the live cluster's pg_wal. */
        if (S_ISDIR(st->st_mode) || S_ISLNK(st->st_mode))
            for (const char *const *d = excluded_dir_contents; *d; d++)
                if (strcmp(name, *d) == 0)
                    return FILES_EMPTY_DIR | (S_ISLNK(st->st_mode) ? FILES_FOLLOW : 0);
        if (strcmp(name, "global") == 0)
            return FILES_LAST; /* it holds pg_control */
        return FILES_INCLUDE;
    }
    if (strcmp(rel, "global/pg_control") == 0)
        return FILES_LAST;
    if (strncmp(rel, "pg_tblspc/", 10) == 0 && strchr(rel + 10, '/') == NULL &&
        S_ISLNK(st->st_mode))
        return FILES_FOLLOW;
    size_t base_len;
    const char *fork;
    if (S_ISREG(st->st_mode) && relation_name(name, &base_len, &fork)) {
        if (name[0] == 't')
            return FILES_EXCLUDE; /* temporary relation */
        if (strncmp(fork, "_init", 5) != 0) {
            /* An unlogged relation (it has an init fork): only the init
             * fork is copied; the server resets the rest from it. */
            char *init = ob_xasprintf("%.*s/%.*s_init", (int)(strlen(path) - strlen(name) - 1),
                                      path, (int)base_len, name);
            int unlogged = access(init, F_OK) == 0;
            free(init);
            if (unlogged)
                return FILES_EXCLUDE;
        }
    }
    return FILES_INCLUDE;
}

/* ---- the backup ------------------------------------------------------- */

static char *lsn_wal_name(phys_ctx *c, const char *lsn, ob_err *err)
{
    /* Computed here rather than with pg_walfile_name(), which a standby
     * refuses. */
    unsigned hi = 0, lo = 0;
    if (sscanf(lsn, "%X/%X", &hi, &lo) != 2) {
        ob_err_set(err, OB_EFAIL, "PostgreSQL returned an unreadable LSN '%s'", lsn);
        return NULL;
    }
    char name[25];
    pg_wal_segment_of(c->timeline, ((uint64_t)hi << 32) | lo, c->segsize, name);
    return ob_xstrdup(name);
}

/* Wait until every segment from first to last (inclusive) is archived. */
static int wait_for_wal(phys_ctx *c, const char *first, const char *last, ob_err *err)
{
    char cur[25];
    memcpy(cur, first, 25);
    time_t deadline = time(NULL) + (c->o->archive_timeout > 0 ? c->o->archive_timeout : 300);
    int said = 0;
    for (;;) {
        int have = 0;
        if (pg_wal_exists(c->r, cur, &have, err) < 0)
            return -1;
        if (have) {
            if (strcmp(cur, last) == 0)
                return 0;
            char next[25];
            pg_wal_next_segment(cur, c->segsize, next);
            memcpy(cur, next, 25);
            continue;
        }
        if (time(NULL) >= deadline)
            return ob_err_set(err, OB_EFAIL,
                              "WAL segment %s, which this backup needs, did not reach the "
                              "archive of %s within %d s. Check that archive_command is "
                              "'opsbackup archive-push %%p' for this repository and look for "
                              "archiver errors in the PostgreSQL log; the backup was not saved",
                              cur, repo_storage(c->r)->url,
                              c->o->archive_timeout > 0 ? c->o->archive_timeout : 300);
        if (!said && !c->o->quiet) {
            ob_info("waiting for WAL segment %s to be archived", cur);
            said = 1;
        }
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int phys_stop(void *ud, snapshot *s, ob_err *err)
{
    phys_ctx *c = ud;
    if (s->stats.errors)
        return ob_err_set(err, OB_EIO,
                          "%llu %s of %s could not be read (see the warnings above); a "
                          "physical backup without %s could not be restored, so it was not "
                          "saved",
                          (unsigned long long)s->stats.errors,
                          s->stats.errors == 1 ? "file" : "files", c->pgdata,
                          s->stats.errors == 1 ? "it" : "them");
    json_t *x = s->extra ? s->extra : (s->extra = json_object());
    json_object_set_new(x, "pgdata", json_string(c->pgdata));
    json_object_set_new(x, "pg_version_num", json_integer(c->version));
    json_object_set_new(x, "pg_version", json_string(c->version_str));
    json_object_set_new(x, "system_identifier", json_string(c->sysid));
    json_object_set_new(x, "timeline", json_integer(c->timeline));
    json_object_set_new(x, "wal_segment_size", json_integer((json_int_t)c->segsize));
    json_object_set_new(x, "start_lsn", json_string(c->start_lsn));
    json_object_set_new(x, "start_wal", json_string(c->start_wal));
    json_object_set_new(x, "block_size", json_integer(PG_PHYSICAL_BLOCK));
    json_object_set_new(x, "super_block_size", json_integer(PG_PHYSICAL_SUPER_BLOCK));
    /* A full backup read every file: --full-every counts from the newest. */
    json_object_set_new(x, "full", json_boolean(c->full || !s->has_parent));
    /* The server waits until the backup's last segment is archived, without
     * limit: with archive_command failing, the backup would hang forever.
     * A statement timeout makes --archive-timeout apply.  (Not
     * wait_for_archive false: the backup would end sooner, and the next
     * one, started at once, would find every file changed within a second
     * of this one's start and read it again.) */
    int timeout = c->o->archive_timeout > 0 ? c->o->archive_timeout : 300;
    char set[64];
    snprintf(set, sizeof set, "SET statement_timeout = %d", timeout * 1000);
    PGresult *res = PQexec(c->conn, set);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        ob_warn("cannot bound the wait for the WAL archive (%s): --archive-timeout may not "
                "apply",
                PQresultErrorMessage(res));
    PQclear(res);
    const char *sql = c->version >= 150000
                          ? "SELECT lsn, labelfile, spcmapfile FROM pg_backup_stop(true)"
                          : "SELECT lsn, labelfile, spcmapfile FROM pg_stop_backup(false, true)";
    res = PQexec(c->conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        char *m = ob_xstrdup(PQresultErrorMessage(res));
        m[strcspn(m, "\n")] = '\0';
        PQclear(res);
        int rc = strstr(m, "statement timeout")
                     ? ob_err_set(err, OB_EFAIL,
                                  "the WAL this backup needs did not reach the archive of %s "
                                  "within %d s (PostgreSQL's pg_backup_stop was still waiting "
                                  "for it). Check that archive_command is 'opsbackup "
                                  "archive-push %%p' for this repository and look for archiver "
                                  "errors in the PostgreSQL log; the backup was not saved",
                                  repo_storage(c->r)->url, timeout)
                     : ob_err_set(err, OB_EFAIL, "stopping the backup failed: %s", m);
        free(m);
        return rc;
    }
    PQclear(PQexec(c->conn, "RESET statement_timeout"));
    char *stop_lsn = ob_xstrdup(PQgetvalue(res, 0, 0));
    json_object_set_new(x, "backup_label", json_string(PQgetvalue(res, 0, 1)));
    if (!PQgetisnull(res, 0, 2) && *PQgetvalue(res, 0, 2))
        json_object_set_new(x, "tablespace_map", json_string(PQgetvalue(res, 0, 2)));
    PQclear(res);

    /* The stop segment is the one holding the byte before stop_lsn's end
     * of record; the server switched away from it, so stop_lsn itself
     * may sit at the very start of the next segment. */
    unsigned hi = 0, lo = 0;
    sscanf(stop_lsn, "%X/%X", &hi, &lo);
    uint64_t stop = ((uint64_t)hi << 32) | lo;
    char stop_wal[25];
    pg_wal_segment_of(c->timeline, stop % c->segsize == 0 && stop > 0 ? stop - 1 : stop,
                      c->segsize, stop_wal);
    int64_t sec;
    uint32_t nsec;
    ob_time_now(&sec, &nsec);
    char *stop_time = ob_time_rfc3339(sec, nsec);
    json_object_set_new(x, "stop_lsn", json_string(stop_lsn));
    json_object_set_new(x, "stop_wal", json_string(stop_wal));
    json_object_set_new(x, "stop_time", json_string(stop_time));
    free(stop_time);
    free(stop_lsn);
    return wait_for_wal(c, c->start_wal, stop_wal, err);
}

/* --full-every: is this backup to be a full one, because the newest full
 * backup of its set (one that read every file: forced, or without a
 * parent) is at least o->full_every old, or the set has only incremental
 * ones (made before snapshots said so)?  A set with no physical backup
 * yet needs no forcing: its first backup has no parent. */
static int full_due(repo *r, const pg_physical_backup_opts *o, int *due, ob_err *err)
{
    *due = o->force;
    if (o->force || o->full_every <= 0)
        return 0;
    snapshot **v;
    size_t n;
    if (snapshot_list(r, &v, &n, err) < 0)
        return ob_err_prefix(err, "--full-every: listing the snapshots");
    const char *set = o->set ? o->set : "";
    const snapshot *newest = NULL, *full = NULL;
    for (size_t i = n; i-- > 0 && !full;) {
        if (strcmp(v[i]->kind, "db-physical") != 0 || strcmp(v[i]->set, set) != 0)
            continue;
        if (!newest)
            newest = v[i];
        if (json_is_true(json_object_get(v[i]->extra, "full")))
            full = v[i];
    }
    int64_t now = o->time_sec ? o->time_sec : (int64_t)time(NULL);
    *due = newest && (!full || now - full->time_sec >= o->full_every);
    if (*due && !o->quiet) {
        if (full)
            ob_info("a full backup (every file read): the last one, %.8s, is %lld s old "
                    "(--full-every %lld s)",
                    full->id, (long long)(now - full->time_sec), (long long)o->full_every);
        else
            ob_info("a full backup (every file read): no backup of the set is marked full yet");
    }
    snapshot_list_free(v, n);
    return 0;
}

int pg_physical_backup(repo *r, const pg_physical_backup_opts *o, snapshot **out, ob_err *err)
{
    *out = NULL;
    phys_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.r = r;
    char *real = realpath(o->pgdata, NULL);
    if (!real)
        return ob_err_errno(err, errno, "--pgdata %s", o->pgdata);
    c.pgdata = real;
    c.pgdata_len = strlen(real);
    char *pv = ob_xasprintf("%s/PG_VERSION", real);
    int is_pgdata = access(pv, F_OK) == 0;
    free(pv);
    if (!is_pgdata) {
        free(real);
        return ob_err_set(err, OB_EUSAGE, "--pgdata %s is not a PostgreSQL data directory "
                                          "(no PG_VERSION)", o->pgdata);
    }
    int rc = 0;
    char *v = NULL;
    chunker *ck = NULL;
    c.conn = pg_conn_open(o->conninfo, NULL, err);
    if (!c.conn) {
        rc = -1;
        goto out;
    }
    c.version = PQserverVersion(c.conn);
    if (c.version < 120000) {
        /* Restores write recovery.signal and put the recovery settings in
         * postgresql.auto.conf, which PostgreSQL reads from 12 on. */
        rc = ob_err_set(err, OB_EUSAGE, "PostgreSQL %d is too old for physical backups "
                                        "(12 or later is needed)", c.version / 10000);
        goto out;
    }
    /* The server we talk to must be the one whose files we read. */
    if (!(v = pg_conn_value(c.conn, "SHOW data_directory", err))) {
        rc = -1;
        goto out;
    }
    char *server_real = realpath(v, NULL);
    int same = server_real && strcmp(server_real, real) == 0;
    if (!same)
        rc = ob_err_set(err, OB_EUSAGE,
                        "--pgdata %s is not the data directory of the server --dbname "
                        "connects to (it reports %s)",
                        o->pgdata, v);
    free(server_real);
    free(v);
    v = NULL;
    if (rc < 0)
        goto out;
    if (!(v = pg_conn_value(c.conn, "SHOW archive_mode", err))) {
        rc = -1;
        goto out;
    }
    if (strcmp(v, "off") == 0) {
        rc = ob_err_set(err, OB_EUSAGE,
                        "archive_mode is off on this server: a physical backup cannot be "
                        "restored without its WAL. Set archive_mode = on and archive_command "
                        "= 'opsbackup archive-push %%p', restart PostgreSQL, and try again");
        goto out;
    }
    free(v);
    v = pg_conn_value(c.conn,
                      "SELECT (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size')"
                      " || ' ' || (SELECT system_identifier FROM pg_control_system())"
                      " || ' ' || current_setting('server_version')",
                      err);
    if (!v) {
        rc = -1;
        goto out;
    }
    {
        unsigned long long seg = 0;
        char sysid[32] = "";
        int k = 0;
        if (sscanf(v, "%llu %31s %n", &seg, sysid, &k) < 2 || seg < (1u << 20) ||
            (seg & (seg - 1))) {
            rc = ob_err_set(err, OB_EFAIL, "unexpected server settings: %s", v);
            goto out;
        }
        c.segsize = seg;
        c.sysid = ob_xstrdup(sysid);
        c.version_str = ob_xstrdup(v + k);
    }
    free(v);

    /* Start the backup.  The label names us in pg_stat_activity and in
     * backup_label. */
    {
        char *label = ob_xasprintf("opsbackup %s", o->set && *o->set ? o->set : "physical");
        char *lit = PQescapeLiteral(c.conn, label, strlen(label));
        char *sql = ob_xasprintf(c.version >= 150000
                                     ? "SELECT pg_backup_start(%s, %s)"
                                     : "SELECT pg_start_backup(%s, %s, false)",
                                 lit, o->spread_checkpoint ? "false" : "true");
        PQfreemem(lit);
        free(label);
        if (!o->quiet)
            ob_info("starting the backup (%s checkpoint)",
                    o->spread_checkpoint ? "spread" : "immediate");
        v = pg_conn_value(c.conn, sql, err);
        free(sql);
        if (!v) {
            rc = -1;
            goto out;
        }
        c.start_lsn = v;
        v = pg_conn_value(c.conn, "SELECT timeline_id FROM pg_control_checkpoint()", err);
        if (!v) {
            rc = -1;
            goto out;
        }
        c.timeline = (uint32_t)strtoul(v, NULL, 10);
        free(v);
        v = NULL;
        if (!(c.start_wal = lsn_wal_name(&c, c.start_lsn, err))) {
            rc = -1;
            goto out;
        }
    }

    if (full_due(r, o, &c.full, err) < 0) {
        rc = -1;
        goto out;
    }
    ck = chunker_new_fixed(PG_PHYSICAL_BLOCK);
    files_backup_opts fo;
    memset(&fo, 0, sizeof fo);
    fo.kind = "db-physical";
    fo.set = o->set;
    fo.tags = o->tags;
    fo.ntags = o->ntags;
    fo.time_sec = o->time_sec;
    fo.lock = o->lock;
    fo.filter = phys_filter;
    fo.filter_ud = &c;
    fo.chunker = ck;
    fo.super_block = PG_PHYSICAL_SUPER_BLOCK;
    fo.parent_strict = 1;
    fo.no_parent = c.full;
    fo.before_commit = phys_stop;
    fo.commit_ud = &c;
    snapshot *s = NULL;
    int unchanged = 0;
    char *paths[1] = {real};
    rc = files_backup(r, paths, 1, &fo, &s, &unchanged, err);
    *out = s;
out:
    chunker_free(ck);
    if (c.conn)
        PQfinish(c.conn); /* ends the backup if it is still running */
    free(c.start_lsn);
    free(c.start_wal);
    free(c.sysid);
    free(c.version_str);
    free(c.pgdata);
    return rc;
}

/* ---- restore ---------------------------------------------------------- */

int pg_physical_pick(repo *r, const char *set, const char *target_time, snapshot **out,
                     ob_err *err)
{
    *out = NULL;
    int64_t target;
    uint32_t tns;
    if (ob_time_parse(target_time, &target, &tns) < 0)
        return ob_err_set(err, OB_EUSAGE,
                          "--target-time '%s': expected 'YYYY-MM-DD HH:MM:SS[.ffffff][+TZ]'",
                          target_time);
    snapshot **v = NULL;
    size_t n = 0;
    if (snapshot_list(r, &v, &n, err) < 0)
        return -1;
    snapshot *best = NULL;
    int64_t best_t = 0;
    size_t candidates = 0;
    for (size_t i = 0; i < n; i++) {
        snapshot *s = v[i];
        if (strcmp(s->kind, "db-physical") != 0 || (set && strcmp(s->set, set) != 0))
            continue;
        candidates++;
        json_t *st = s->extra ? json_object_get(s->extra, "stop_time") : NULL;
        int64_t t;
        uint32_t ns;
        if (!json_is_string(st) || ob_time_parse(json_string_value(st), &t, &ns) < 0)
            continue;
        /* Ended strictly before the target: recovery must pass the end of
         * the backup before it may stop. */
        if ((t < target || (t == target && ns < tns)) && (!best || t >= best_t)) {
            best = s;
            best_t = t;
        }
    }
    int rc = 0;
    if (!best)
        rc = ob_err_set(err, OB_ENOTFOUND,
                        candidates ? "no physical backup%s%s ended before %s; recovery cannot "
                                     "reach a point earlier than the end of its base backup"
                                   : "no physical backup%s%s in the repository (looking for "
                                     "one before %s)",
                        set ? " of set " : "", set ? set : "", target_time);
    for (size_t i = 0; i < n; i++)
        if (v[i] == best)
            v[i] = NULL;
    snapshot_list_free(v, n);
    *out = best;
    return rc;
}

/* The tree of directory `path` inside snapshot s (and its node). */
static int find_dir(repo *r, const snapshot *s, const char *path, uint8_t id[OB_ID_LEN],
                    tree_node *node_copy, ob_err *err)
{
    memcpy(id, s->tree, OB_ID_LEN);
    const char *p = path;
    int rc = 0;
    while (*p == '/')
        p++;
    while (*p && rc == 0) {
        size_t len = strcspn(p, "/");
        tree t;
        tree_init(&t);
        rc = treeio_load(r, id, &t, err);
        if (rc == 0) {
            const tree_node *n = tree_find(&t, p, len);
            if (!n || n->type != TREE_DIR)
                rc = ob_err_set(err, OB_ECORRUPT, "snapshot %.8s does not contain %s", s->id,
                                path);
            else {
                memcpy(id, n->subtree, OB_ID_LEN);
                node_copy->mode = n->mode;
                node_copy->uid = n->uid;
                node_copy->gid = n->gid;
            }
        }
        tree_free(&t);
        p += len;
        while (*p == '/')
            p++;
    }
    return rc;
}

static int dir_is_empty(const char *path, int *empty, ob_err *err)
{
    DIR *d = opendir(path);
    if (!d)
        return ob_err_errno(err, errno, "cannot open %s", path);
    struct dirent *de;
    *empty = 1;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            *empty = 0;
            break;
        }
    closedir(d);
    return 0;
}

static int write_small(const char *path, const char *text, uid_t uid, gid_t gid, ob_err *err)
{
    ob_owner owner = {uid, gid};
    return ob_write_file_atomic(path, text, strlen(text), 1, &owner, err);
}

/* 'value' with quotes and backslashes doubled, as postgresql.conf wants
 * it (its parser takes a backslash as an escape; ALTER SYSTEM doubles them
 * too). */
static void conf_quote(ob_buf *b, const char *v)
{
    ob_buf_putc(b, '\'');
    for (; *v; v++) {
        if (*v == '\'' || *v == '\\')
            ob_buf_putc(b, (uint8_t)*v);
        ob_buf_putc(b, (uint8_t)*v);
    }
    ob_buf_putc(b, '\'');
}

/* Is line a setting the restore writes anew (so the old one goes)?
 * archive_mode only when the restore sets it (--archive-mode off): else the
 * cluster's own setting stays, and a promoted server goes on archiving. */
static int recovery_key(const char *line, int archive_off)
{
    while (*line == ' ' || *line == '\t')
        line++;
    static const char *const keys[] = {"restore_command", "recovery_target",
                                       "recovery_end_command", "archive_mode", NULL};
    for (const char *const *k = keys; *k; k++) {
        if (!archive_off && strcmp(*k, "archive_mode") == 0)
            continue;
        size_t n = strlen(*k);
        /* recovery_target matches recovery_target_time etc. too. */
        if (strncasecmp(line, *k, n) == 0 &&
            (strcmp(*k, "recovery_target") == 0 ||
             strchr(" \t=", line[n]) != NULL))
            return 1;
    }
    return 0;
}

/* Does the restore stop at a recovery target (not the end of the archive)? */
static int restore_has_target(const pg_physical_restore_opts *o)
{
    return o->target_time || o->target_lsn || o->target_xid || o->target_name ||
           o->target_immediate;
}

static int write_recovery_conf(const char *pgdata, const pg_physical_restore_opts *o, uid_t uid,
                               gid_t gid, ob_err *err)
{
    char *auto_conf = ob_xasprintf("%s/postgresql.auto.conf", pgdata);
    ob_buf b = OB_BUF_INIT;
    FILE *f = fopen(auto_conf, "r");
    if (f) {
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0)
            if (!recovery_key(line, o->archive_off)) /* earlier recovery settings go */
                ob_buf_append(&b, line, strlen(line));
        free(line);
        fclose(f);
        if (b.len && b.data[b.len - 1] != '\n')
            ob_buf_putc(&b, '\n');
    } else {
        ob_buf_printf(&b, "# Do not edit this file manually!\n"
                          "# It will be overwritten by the ALTER SYSTEM command.\n");
    }
    ob_buf_printf(&b, "# recovery settings written by opsbackup restore db --physical\n");
    ob_buf_printf(&b, "restore_command = ");
    conf_quote(&b, o->restore_command);
    ob_buf_putc(&b, '\n');
    /* Every recovery target this restore does not set, set empty: a
     * postgresql.conf (or a file it includes) restored with the backup may
     * still hold one from a recovery done by hand long ago, ignored while
     * the server ran as a primary and obeyed now, stopping a restore to the
     * end of the archive early.  This file is read last, so its values win.
     * The empty ones come first: PostgreSQL refuses a target followed by
     * another target's setting, even an empty one. */
    static const char *const targets[] = {"recovery_target", "recovery_target_lsn",
                                          "recovery_target_name", "recovery_target_time",
                                          "recovery_target_xid"};
    const int chosen[] = {o->target_immediate, o->target_lsn != NULL, o->target_name != NULL,
                          o->target_time != NULL, o->target_xid != NULL};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (!chosen[i])
            ob_buf_printf(&b, "%s = ''\n", targets[i]);
    if (o->target_time) {
        int64_t sec;
        uint32_t ns;
        ob_time_parse(o->target_time, &sec, &ns); /* validated by the caller */
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        char when[64];
        snprintf(when, sizeof when, "%04d-%02d-%02d %02d:%02d:%02d.%06u+00", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ns / 1000);
        ob_buf_printf(&b, "recovery_target_time = '%s'\n", when);
    }
    if (o->target_lsn) {
        ob_buf_printf(&b, "recovery_target_lsn = ");
        conf_quote(&b, o->target_lsn);
        ob_buf_putc(&b, '\n');
    }
    if (o->target_xid) {
        ob_buf_printf(&b, "recovery_target_xid = ");
        conf_quote(&b, o->target_xid);
        ob_buf_putc(&b, '\n');
    }
    if (o->target_name) {
        ob_buf_printf(&b, "recovery_target_name = ");
        conf_quote(&b, o->target_name);
        ob_buf_putc(&b, '\n');
    }
    if (o->target_immediate)
        ob_buf_printf(&b, "recovery_target = 'immediate'\n");
    if (o->target_timeline) {
        ob_buf_printf(&b, "recovery_target_timeline = ");
        conf_quote(&b, o->target_timeline);
        ob_buf_putc(&b, '\n');
    }
    if (o->archive_off)
        ob_buf_printf(&b, "archive_mode = 'off'\n");
    int has_target = restore_has_target(o);
    /* Always, for the same reason as the empty targets above. */
    ob_buf_printf(&b, "recovery_target_inclusive = 'on'\n");
    ob_buf_printf(&b, "recovery_target_action = '%s'\n",
                  has_target && o->target_action ? o->target_action : "promote");
    ob_buf_putc(&b, '\0');
    int rc = write_small(auto_conf, (const char *)b.data, uid, gid, err);
    ob_buf_free(&b);
    free(auto_conf);
    if (rc == 0) {
        char *signal = ob_xasprintf("%s/recovery.signal", pgdata);
        rc = write_small(signal, "", uid, gid, err);
        free(signal);
    }
    return rc;
}

static int file_exists(const char *dir, const char *name)
{
    char *p = ob_xasprintf("%s/%s", dir, name);
    int e = access(p, F_OK) == 0;
    free(p);
    return e;
}

/* Whether pg_controldata says the cluster is "in production": the
 * control file records the end of recovery just before the server lets
 * writes in (recovery.signal goes a little earlier, before the
 * end-of-recovery checkpoint).  pg_controldata is PostgreSQL's own reader
 * of that file, so its layout stays PostgreSQL's business. */
static int cluster_in_production(const char *pg_ctl, const char *pgdata)
{
    /* pg_controldata lives beside pg_ctl (or is found in PATH like it). */
    const char *slash = strrchr(pg_ctl, '/');
    char *tool = slash ? ob_xasprintf("%.*s/pg_controldata", (int)(slash - pg_ctl), pg_ctl)
                       : ob_xstrdup("pg_controldata");
    char *const argv[] = {tool, "-D", (char *)pgdata, NULL};
    int code = -1;
    char *out = NULL;
    ob_err e = OB_ERR_INIT;
    int yes = 0;
    if (proc_run(argv, (char *const[]){"LC_ALL=C", NULL}, &code, &out, &e) == 0 && code == 0)
    {
        const char *k = "Database cluster state:";
        const char *at = strstr(out, k);
        if (at) {
            at += strlen(k);
            at += strspn(at, " \t");
            yes = strncmp(at, "in production", 13) == 0;
        }
    }
    ob_err_clear(&e);
    free(out);
    free(tool);
    return yes;
}

/* Whether the postmaster says it is "ready": the status on the 8th line of
 * postmaster.pid (PostgreSQL 10 and later) turns from "starting" or
 * "standby" to "ready" once the startup process has ended recovery and
 * exited.  Only a hint that saves spawning pg_controldata at every poll:
 * 1 also when the file has no status line, so older servers are asked
 * through pg_controldata as before. */
static int postmaster_says_ready(const char *pgdata)
{
    char *p = ob_xasprintf("%s/postmaster.pid", pgdata);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    free(p);
    if (fd < 0)
        return errno != ENOENT; /* unreadable: leave it to pg_controldata */
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *line = buf;
    for (int i = 1; i < 8 && line; i++) {
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    if (!line || !*line)
        return 1;
    return strncmp(line, "ready", 5) == 0;
}

/* pg_ctl start, as the data directory's owner, then wait for recovery to
 * end: recovery.signal disappears at promotion, the postmaster marks
 * itself ready, and the control file says "in production" once the
 * end-of-recovery checkpoint is done; postmaster.pid disappears at a
 * shutdown target. */
static int start_server(const char *pgdata, int version, const pg_physical_restore_opts *o,
                        uid_t uid, ob_err *err)
{
    char *pg_ctl = ob_xasprintf("/usr/lib/postgresql/%d/bin/pg_ctl", version / 10000);
    if (access(pg_ctl, X_OK) != 0) {
        free(pg_ctl);
        pg_ctl = ob_xstrdup("pg_ctl");
    }
    char *log = ob_xasprintf("%s/opsbackup-restore.log", pgdata);
    const char *argv[20]; /* runuser 4, pg_ctl 8, two -o 4, start, NULL */
    int k = 0;
    char *user = NULL;
    if (geteuid() == 0) {
        /* PostgreSQL refuses to run as root. */
        struct passwd *pw = getpwuid(uid);
        if (!pw || uid == 0) {
            free(pg_ctl);
            free(log);
            return ob_err_set(err, OB_EUSAGE,
                              "--start: the restored data directory belongs to root; PostgreSQL "
                              "will not run as root (restore as the postgres user)");
        }
        user = ob_xstrdup(pw->pw_name);
        argv[k++] = "runuser";
        argv[k++] = "-u";
        argv[k++] = user;
        argv[k++] = "--";
    }
    argv[k++] = pg_ctl;
    argv[k++] = "-D";
    argv[k++] = pgdata;
    argv[k++] = "-l";
    argv[k++] = log;
    argv[k++] = "-w";
    argv[k++] = "-t";
    argv[k++] = "600";
    /* A restored cluster starts as after a crash, and PostgreSQL first
     * fsyncs every file of the data directory one by one (0.5 s of the
     * bench's restore + start for ~1,000 files).  The restore has just
     * ended with a syncfs of the target (files_restore), so syncfs is
     * nearly free and as durable: PostgreSQL syncs the data directory's,
     * pg_wal's and every tablespace's filesystem itself.  PostgreSQL 14
     * added the setting; pg_ctl joins -o options in order, so one in
     * --start-options comes later and wins. */
    if (version >= 140000) {
        argv[k++] = "-o";
        argv[k++] = "-c recovery_init_sync_method=syncfs";
    }
    if (o->start_options) {
        argv[k++] = "-o";
        argv[k++] = o->start_options;
    }
    argv[k++] = "start";
    argv[k] = NULL;
    int rc = proc_run_ok((char *const *)argv, NULL, "pg_ctl start", err);
    if (rc < 0)
        ob_err_prefix(err, "starting PostgreSQL on %s (its log: %s)", pgdata, log);
    free(user);
    if (rc == 0 && o->target_action && strcmp(o->target_action, "pause") == 0) {
        if (!o->quiet)
            ob_info("PostgreSQL started; recovery pauses at the target: check the data, then "
                    "run SELECT pg_wal_replay_resume() to promote");
        free(pg_ctl);
        free(log);
        return 0;
    }
    time_t deadline = time(NULL) + (o->start_timeout > 0 ? o->start_timeout : 3600);
    while (rc == 0) {
        if (!file_exists(pgdata, "recovery.signal") && postmaster_says_ready(pgdata) &&
            cluster_in_production(pg_ctl, pgdata))
            break; /* promoted, and out of recovery */
        if (!file_exists(pgdata, "postmaster.pid")) {
            if (o->target_action && strcmp(o->target_action, "shutdown") == 0)
                break;
            rc = ob_err_set(err, OB_EFAIL,
                            "PostgreSQL stopped during recovery; see its log %s", log);
            break;
        }
        if (time(NULL) >= deadline) {
            rc = ob_err_set(err, OB_EFAIL,
                            "recovery has not finished after %d s; PostgreSQL keeps running "
                            "(see %s)",
                            o->start_timeout > 0 ? o->start_timeout : 3600, log);
            break;
        }
        /* 10 ms: recovery of a small cluster ends within a fraction of a
         * second after pg_ctl returns, and the caller (a DR drill, a
         * script timing its RTO) waits on us; a poll is two stats and a
         * read of postmaster.pid, pg_controldata only at the end. */
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (rc == 0) {
        /* Recovery is over: what archive-get fetched ahead is never asked
         * for again, and would sit in pg_wal (up to 9 segments). */
        char *wal = ob_xasprintf("%s/pg_wal", pgdata);
        if (pg_wal_spool_clear(wal) < 0)
            ob_warn("could not remove %s/opsbackup.get (archive-get's spool): %s; it is "
                    "safe to delete",
                    wal, strerror(errno));
        free(wal);
    }
    free(pg_ctl);
    free(log);
    return rc;
}

/* A root restore gives the data directory back to its owner (postgres),
 * who then runs restore_command: refuse now, with the way out, rather than
 * let recovery fail on every WAL file after the whole restore. */
static int check_restore_command_reads(const pg_physical_restore_opts *o, uid_t uid, gid_t gid,
                                       ob_err *err)
{
    if (geteuid() != 0 || uid == 0)
        return 0;
    for (size_t i = 0; i < o->nrestore_command_reads; i++) {
        const char *path = o->restore_command_reads[i];
        struct stat st;
        int want = stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? R_OK | X_OK : R_OK;
        char *why = NULL;
        int ok = ob_access_as(path, uid, gid, want, &why, err);
        if (ok < 0)
            return -1;
        if (!ok) {
            struct passwd *pw = getpwuid(uid);
            char uidbuf[24];
            snprintf(uidbuf, sizeof uidbuf, "uid %u", (unsigned)uid);
            const char *who = pw ? pw->pw_name : uidbuf;
            ob_err_set(err, OB_EUSAGE,
                       "the restored server would run restore_command as %s, who cannot read "
                       "%s (%s): recovery could not fetch any WAL. Give --archive-get-command "
                       "with a config and password file %s can read (for a dr job: "
                       "archive-get-command = ...), e.g. 'opsbackup -c "
                       "/etc/opsbackup/archive.conf archive-get %%f \"%%p\"'; nothing was "
                       "restored",
                       who, path, why, who);
            free(why);
            return -1;
        }
    }
    return 0;
}

/* Create the data directory, and its missing parents 0755: the server,
 * running as the data directory's owner, must be able to reach it (a
 * rehearsal restores into DIR/pgdata-JOB of a DIR that may not exist).  A
 * root restore also checks that the owner can pass the existing parents,
 * rather than leave a copy PostgreSQL cannot start on. */
static int make_pgdata(const char *pgdata, uid_t uid, gid_t gid, ob_err *err)
{
    char *parent = ob_xstrdup(pgdata);
    char *slash = strrchr(parent, '/');
    int rc = 0;
    if (slash && slash != parent) {
        *slash = '\0';
        rc = ob_mkdir_p(parent, 0755, err);
        if (rc == 0 && geteuid() == 0 && uid != 0) {
            char *why = NULL;
            int ok = ob_access_as(parent, uid, gid, X_OK, &why, err);
            if (ok == 0) {
                struct passwd *pw = getpwuid(uid);
                rc = ob_err_set(err, OB_EUSAGE,
                                "--pgdata %s: the data directory's owner %s could not reach it "
                                "(%s), so PostgreSQL could not start on it; choose another "
                                "place or give %s search permission (chmod o+x); nothing was "
                                "restored",
                                pgdata, pw ? pw->pw_name : "(unknown user)", why,
                                pw ? pw->pw_name : "the owner");
            } else if (ok < 0) {
                rc = -1;
            }
            free(why);
        }
    }
    free(parent);
    if (rc == 0 && mkdir(pgdata, 0700) < 0 && errno != EEXIST)
        rc = ob_err_errno(err, errno, "creating %s", pgdata);
    return rc;
}

/* ---- tablespaces ------------------------------------------------------ */

typedef struct tblspc {
    char *oid;
    uint8_t tree[OB_ID_LEN];
    char *location;        /* where it is restored */
} tblspc;

typedef struct tblspc_set {
    tblspc *v;
    size_t n;
} tblspc_set;

static void tblspc_free(tblspc_set *ts)
{
    for (size_t i = 0; i < ts->n; i++) {
        free(ts->v[i].oid);
        free(ts->v[i].location);
    }
    free(ts->v);
}

/* Original location of tablespace oid from the backup's tablespace_map
 * ("OID PATH" lines), or NULL. */
static char *map_location(const snapshot *s, const char *oid)
{
    json_t *m = json_object_get(s->extra, "tablespace_map");
    if (!json_is_string(m))
        return NULL;
    const char *p = json_string_value(m);
    size_t ol = strlen(oid);
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > ol + 1 && strncmp(p, oid, ol) == 0 && p[ol] == ' ')
            return ob_xstrndup(p + ol + 1, len - ol - 1);
        p += len + (e ? 1 : 0);
    }
    return NULL;
}

/* The tablespaces in the backup and where each one goes. */
static int tablespaces(repo *r, const snapshot *s, const uint8_t root[OB_ID_LEN],
                       const pg_physical_restore_opts *o, tblspc_set *out, ob_err *err)
{
    memset(out, 0, sizeof *out);
    tree t;
    tree_init(&t);
    int rc = treeio_load(r, root, &t, err);
    const tree_node *n = rc == 0 ? tree_find(&t, "pg_tblspc", 9) : NULL;
    tree sub;
    tree_init(&sub);
    if (n && n->type == TREE_DIR)
        rc = treeio_load(r, n->subtree, &sub, err);
    for (size_t i = 0; rc == 0 && i < sub.n; i++) {
        const tree_node *e = &sub.nodes[i];
        if (e->type != TREE_DIR)
            continue;
        tblspc *ts = NULL;
        out->v = ob_xrealloc(out->v, (out->n + 1) * sizeof *out->v);
        ts = &out->v[out->n++];
        memset(ts, 0, sizeof *ts);
        ts->oid = ob_xstrdup((const char *)e->name);
        memcpy(ts->tree, e->subtree, OB_ID_LEN);
        size_t ol = strlen(ts->oid);
        for (size_t k = 0; k < o->ntablespace_map; k++)
            if (strncmp(o->tablespace_map[k], ts->oid, ol) == 0 &&
                o->tablespace_map[k][ol] == '=') {
                free(ts->location);
                ts->location = ob_xstrdup(o->tablespace_map[k] + ol + 1);
            }
        if (!ts->location)
            ts->location = map_location(s, ts->oid);
        if (!ts->location)
            rc = ob_err_set(err, OB_EUSAGE,
                            "tablespace %s: its original location is unknown; give "
                            "--tablespace-map %s=DIR",
                            ts->oid, ts->oid);
        else if (ts->location[0] != '/')
            rc = ob_err_set(err, OB_EUSAGE, "--tablespace-map %s=%s: give an absolute path",
                            ts->oid, ts->location);
    }
    /* A mapping for a tablespace the backup does not have is a typo. */
    for (size_t k = 0; rc == 0 && k < o->ntablespace_map; k++) {
        int found = 0;
        for (size_t i = 0; i < out->n && !found; i++) {
            size_t ol = strlen(out->v[i].oid);
            found = strncmp(o->tablespace_map[k], out->v[i].oid, ol) == 0 &&
                    o->tablespace_map[k][ol] == '=';
        }
        if (!found)
            rc = ob_err_set(err, OB_EUSAGE,
                            "--tablespace-map %s: the backup has no tablespace with that OID",
                            o->tablespace_map[k]);
    }
    tree_free(&sub);
    tree_free(&t);
    if (rc < 0)
        tblspc_free(out);
    return rc;
}

static int skip_tblspc(void *ud, const char *path)
{
    const tblspc_set *ts = ud;
    if (strncmp(path, "/pg_tblspc/", 11) != 0)
        return 0;
    for (size_t i = 0; i < ts->n; i++)
        if (strcmp(path + 11, ts->v[i].oid) == 0)
            return 1;
    return 0;
}

static int dir_is_empty(const char *path, int *empty, ob_err *err);

/* A target directory must be empty unless delta; created if missing. */
static int prepare_dir(const char *path, int delta, const char *what, ob_err *err)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        if (errno != ENOENT)
            return ob_err_errno(err, errno, "%s %s", what, path);
        if (mkdir(path, 0700) < 0)
            return ob_err_errno(err, errno, "creating %s %s", what, path);
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return ob_err_set(err, OB_EUSAGE, "%s %s is not a directory", what, path);
    int empty = 0;
    if (dir_is_empty(path, &empty, err) < 0)
        return -1;
    if (!empty && !delta)
        return ob_err_set(err, OB_EUSAGE,
                          "%s %s is not empty: restore into an empty directory (for a "
                          "tablespace: --tablespace-map OID=DIR), or add --delta to update "
                          "this copy in place",
                          what, path);
    return 0;
}

static uint64_t parse_lsn(const char *s)
{
    unsigned hi = 0, lo = 0;
    if (!s || sscanf(s, "%X/%X", &hi, &lo) != 2)
        return 0;
    return ((uint64_t)hi << 32) | lo;
}

/* The timeline recovery should follow: the newest one in the archive
 * whose history descends from the backup's timeline after the backup
 * started.  PostgreSQL's own default ('latest') would also follow a
 * timeline that forked off before the backup (another restore that was
 * promoted, say) and then refuse to start.  New timeline IDs are always
 * the highest archived one plus one, so probing upwards finds them all.
 *
 * A fork after the backup is not always where the cluster went, though.
 * When the timeline it forked from has archived segments past the fork,
 * both lived on: a point-in-time restore that became production leaves
 * its old timeline's last segments behind, but so does a copy restored
 * for a test and left archiving into this repository (production went on
 * on the old timeline, the copy made the new one).  Nothing in the archive
 * says which one is wanted, and following the wrong one silently leaves
 * out everything the other did after the fork.  A restore to the end of
 * the archive, or to an LSN past the fork, is refused, naming both, and
 * --target-timeline decides.  A target before the fork is reached the
 * same on either.  A time, XID or name cannot be placed against the fork
 * here: a warning names both, and PostgreSQL itself fails a target the
 * followed timeline never reaches.
 * target_lsn: 0 if the restore has none; has_target: any recovery target. */
static int choose_timeline(repo *r, uint32_t tli, uint64_t start, uint64_t segsize,
                           int has_target, uint64_t target_lsn, uint32_t *out, ob_err *err)
{
    *out = tli;
    uint32_t newest = tli;
    for (;;) {
        char name[32];
        snprintf(name, sizeof name, "%08X.history", newest + 1);
        int have = 0;
        if (pg_wal_exists(r, name, &have, err) < 0)
            return -1;
        if (!have)
            break;
        newest++;
    }
    ob_buf b = OB_BUF_INIT;
    int rc = 0;
    for (uint32_t t = newest; t > tli && rc == 0; t--) {
        char name[32];
        snprintf(name, sizeof name, "%08X.history", t);
        if (pg_wal_get(r, name, &b, err) < 0) {
            rc = -1;
            break;
        }
        ob_buf_putc(&b, '\0');
        /* Lines: parentTLI <tab> switchpoint <tab> reason. */
        int ok = 0;
        for (char *line = (char *)b.data; line && *line;) {
            char *next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            unsigned parent = 0, hi = 0, lo = 0;
            if (sscanf(line, "%u %X/%X", &parent, &hi, &lo) == 3 && parent == tli)
                ok = (((uint64_t)hi << 32) | lo) > start;
            line = next;
        }
        if (!ok)
            continue;
        *out = t;
        /* Every fork on the way from tli to t: did its parent go on? */
        b.len--; /* the NUL added above; the lines were cut in place */
        for (size_t at = 0; at < b.len && rc == 0;) {
            const char *line = (const char *)b.data + at;
            at += strlen(line) + 1;
            unsigned parent = 0, hi = 0, lo = 0;
            if (sscanf(line, "%u %X/%X", &parent, &hi, &lo) != 3 || parent < tli)
                continue;
            uint64_t fork = ((uint64_t)hi << 32) | lo;
            char last[25];
            if (pg_wal_newest_segment(r, parent, last, err) < 0) {
                rc = -1;
                break;
            }
            /* The parent went on if it archived a segment that starts at
             * or after the fork.  A restore to the end of the archive
             * forks inside or at the end of the parent's last archived
             * segment (inside it when its last record ran on into a
             * segment never archived): that segment alone is not a sign
             * of a second history. */
            if (!last[0] || pg_wal_segno(last, segsize) * segsize < fork)
                continue;
            if (target_lsn && target_lsn <= fork)
                continue; /* reached before the fork, whichever is followed */
            char child_last[25];
            if (pg_wal_newest_segment(r, t, child_last, err) < 0) {
                rc = -1;
                break;
            }
            char *m = ob_xasprintf(
                "the WAL archive holds two histories after this backup: timeline %u forked "
                "from timeline %u at %X/%X, and timeline %u went on past that point (its "
                "newest segment %s; timeline %u's %s). A copy restored and left archiving "
                "into this repository makes such a fork, and so does a point-in-time restore "
                "that became production",
                t, parent, hi, lo, parent, last, t, child_last[0] ? child_last : "(none)");
            if (!has_target || target_lsn)
                rc = ob_err_set(err, OB_EUSAGE,
                                "%s: which one is the cluster you want back? Give "
                                "--target-timeline %u or --target-timeline %u",
                                m, parent, t);
            else
                ob_warn("%s. Following timeline %u; if the target lies on timeline %u after "
                        "the fork, give --target-timeline %u",
                        m, t, parent, parent);
            free(m);
        }
        break;
    }
    ob_buf_free(&b);
    return rc;
}

/* The backup's files are consistent only once PostgreSQL has replayed its
 * WAL from start_wal to stop_wal.  If a segment of that range is gone
 * from the archive (expired by hand, a copy that stopped half way, a lost
 * object), the restored directory cannot start: say so before writing
 * gigabytes, not after, when the old data directory may already have been
 * moved away.  `check` reports the same for every snapshot. */
static int restore_wal_present(repo *r, const snapshot *s, ob_err *err)
{
    const char *start, *stop;
    uint64_t segsize;
    if (pg_wal_snapshot_range(s, &start, &stop, &segsize) < 0)
        return ob_err_set(err, OB_ECORRUPT,
                          "snapshot %.8s does not say which WAL it needs (start_wal, stop_wal, "
                          "wal_segment_size): it cannot be restored",
                          s->id);
    uint64_t missing = 0;
    char first[25];
    if (pg_wal_range_missing(r, start, stop, segsize, &missing, first, err) < 0) {
        ob_err_prefix(err, "listing the WAL archive for snapshot %.8s", s->id);
        return -1;
    }
    if (missing)
        return ob_err_set(err, OB_EFAIL,
                          "snapshot %.8s cannot be restored: %llu of the WAL segments %s to %s "
                          "it needs %s missing from the archive, the first %s (PostgreSQL could "
                          "not make its files consistent); nothing was written. Restore an "
                          "older snapshot, or bring the WAL back (`check` lists what is missing)",
                          s->id, (unsigned long long)missing, start, stop,
                          missing == 1 ? "is" : "are", first);
    return 0;
}

int pg_physical_restore(repo *r, const snapshot *s, const pg_physical_restore_opts *o,
                        ob_err *err)
{
    if (strcmp(s->kind, "db-physical") != 0 || !s->extra || s->npaths != 1)
        return ob_err_set(err, OB_EUSAGE, "snapshot %.8s is a %s backup, not a physical one",
                          s->id, s->kind);
    json_t *label = json_object_get(s->extra, "backup_label");
    if (!json_is_string(label))
        return ob_err_set(err, OB_ECORRUPT, "snapshot %.8s has no backup_label", s->id);
    struct stat st;
    if (stat(o->pgdata, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return ob_err_set(err, OB_EUSAGE, "--pgdata %s is not a directory", o->pgdata);
        if (file_exists(o->pgdata, "postmaster.pid"))
            return ob_err_set(err, OB_EUSAGE,
                              "%s has a postmaster.pid: stop the PostgreSQL server using it "
                              "(or remove a stale postmaster.pid) before restoring into it",
                              o->pgdata);
        int empty = 0;
        if (dir_is_empty(o->pgdata, &empty, err) < 0)
            return -1;
        if (!empty && !o->delta)
            return ob_err_set(err, OB_EUSAGE,
                              "--pgdata %s is not empty: restore into an empty directory, or "
                              "add --delta to update this copy in place (files that differ are "
                              "rewritten, extra files removed)",
                              o->pgdata);
    } else if (errno != ENOENT) {
        return ob_err_errno(err, errno, "--pgdata %s", o->pgdata);
    }

    if (o->check_wal && restore_wal_present(r, s, err) < 0)
        return -1;
    /* Which timeline to follow, before writing anything: it can refuse. */
    char tl_buf[16] = "";
    if (!o->target_timeline) {
        uint32_t tl = 0;
        json_t *jt = json_object_get(s->extra, "timeline");
        json_int_t segsize = json_integer_value(json_object_get(s->extra, "wal_segment_size"));
        int has_target = restore_has_target(o);
        if (choose_timeline(r, (uint32_t)json_integer_value(jt),
                            parse_lsn(json_string_value(json_object_get(s->extra, "start_lsn"))),
                            segsize > 0 ? (uint64_t)segsize : (uint64_t)16 << 20, has_target,
                            /* immediate: where the backup became consistent */
                            o->target_lsn ? parse_lsn(o->target_lsn)
                            : o->target_immediate
                                ? parse_lsn(json_string_value(json_object_get(s->extra, "stop_lsn")))
                                : 0,
                            &tl, err) < 0)
            return -1;
        snprintf(tl_buf, sizeof tl_buf, "%u", tl);
    }

    uint8_t root[OB_ID_LEN];
    tree_node top;
    memset(&top, 0, sizeof top);
    top.mode = 0700;
    top.uid = (uint32_t)geteuid();
    top.gid = (uint32_t)getegid();
    if (find_dir(r, s, s->paths[0], root, &top, err) < 0)
        return -1;
    uid_t uid = geteuid() == 0 ? (uid_t)top.uid : geteuid();
    gid_t gid = geteuid() == 0 ? (gid_t)top.gid : getegid();
    if (check_restore_command_reads(o, uid, gid, err) < 0)
        return -1;
    tblspc_set ts;
    if (tablespaces(r, s, root, o, &ts, err) < 0)
        return -1;
    /* Check every destination before writing anything. */
    int rc = 0;
    for (size_t i = 0; i < ts.n && rc == 0; i++) {
        char *what = ob_xasprintf("tablespace %s directory", ts.v[i].oid);
        /* --delta updates a tablespace in place only where this data
         * directory's own pg_tblspc/OID leads: by default a tablespace goes
         * back to its original location, which for a copy restored beside
         * the cluster is the live cluster's tablespace. */
        int delta = 0;
        if (o->delta) {
            char *link = ob_xasprintf("%s/pg_tblspc/%s", o->pgdata, ts.v[i].oid);
            char *a = realpath(link, NULL), *b = realpath(ts.v[i].location, NULL);
            delta = a && b && strcmp(a, b) == 0;
            int empty = 1;
            if (!delta && b && dir_is_empty(b, &empty, err) < 0)
                rc = -1;
            else if (!delta && !empty)
                rc = ob_err_set(err, OB_EUSAGE,
                                "%s %s is not empty and is not where %s leads: --delta "
                                "updates only this data directory's own tablespaces (that "
                                "one may be the live cluster's); give --tablespace-map "
                                "%s=DIR for an empty directory or this copy's own",
                                what, ts.v[i].location, link, ts.v[i].oid);
            free(a);
            free(b);
            free(link);
        }
        if (rc == 0)
            rc = prepare_dir(ts.v[i].location, delta, what, err);
        free(what);
    }
    if (rc == 0)
        rc = make_pgdata(o->pgdata, uid, gid, err);
    files_restore_opts fo;
    memset(&fo, 0, sizeof fo);
    fo.target = o->pgdata;
    fo.root = root;
    fo.delta = o->delta;
    fo.delete_extra = o->delta;
    fo.skip = skip_tblspc;
    fo.skip_ud = &ts;
    files_restore_stats fst;
    memset(&fst, 0, sizeof fst);
    if (rc == 0 && files_restore(r, s, &fo, &fst, err) < 0)
        rc = ob_err_prefix(err, "restoring snapshot %.8s into %s", s->id, o->pgdata);
    for (size_t i = 0; i < ts.n && rc == 0; i++) {
        files_restore_opts to = fo;
        to.target = ts.v[i].location;
        to.root = ts.v[i].tree;
        to.skip = NULL;
        files_restore_stats tst;
        if (files_restore(r, s, &to, &tst, err) < 0) {
            rc = ob_err_prefix(err, "restoring tablespace %s into %s", ts.v[i].oid,
                               ts.v[i].location);
            break;
        }
        fst.files += tst.files;
        fst.bytes += tst.bytes;
        fst.bytes_kept += tst.bytes_kept;
        fst.deleted += tst.deleted;
        if ((chmod(ts.v[i].location, 0700) < 0) ||
            (geteuid() == 0 && chown(ts.v[i].location, uid, gid) < 0)) {
            rc = ob_err_errno(err, errno, "setting the owner of %s", ts.v[i].location);
            break;
        }
        char *link = ob_xasprintf("%s/pg_tblspc/%s", o->pgdata, ts.v[i].oid);
        char *dir = ob_xasprintf("%s/pg_tblspc", o->pgdata);
        (void)mkdir(dir, 0700);
        struct stat lst;
        if (lstat(link, &lst) == 0 && S_ISLNK(lst.st_mode))
            unlink(link);
        if (symlink(ts.v[i].location, link) < 0)
            rc = ob_err_errno(err, errno, "linking %s to %s", link, ts.v[i].location);
        else if (geteuid() == 0 && lchown(link, uid, gid) < 0)
            rc = ob_err_errno(err, errno, "setting the owner of %s", link);
        free(dir);
        free(link);
    }
    tblspc_free(&ts);
    if (rc < 0)
        return -1;
    /* PostgreSQL insists on 0700 or 0750 for its data directory. */
    if (chmod(o->pgdata, (top.mode & 0750) | 0700) < 0)
        return ob_err_errno(err, errno, "setting the permissions of %s", o->pgdata);
    if (geteuid() == 0 && chown(o->pgdata, uid, gid) < 0)
        return ob_err_errno(err, errno, "setting the owner of %s", o->pgdata);
    char *path = ob_xasprintf("%s/backup_label", o->pgdata);
    rc = write_small(path, json_string_value(label), uid, gid, err);
    free(path);
    /* No tablespace_map: the links are already in place, pointing where
     * the tablespaces were restored; a map would make the server point
     * them back at the original (possibly live) locations. */
    pg_physical_restore_opts ro = *o;
    if (!o->target_timeline)
        ro.target_timeline = tl_buf;
    if (rc == 0)
        rc = write_recovery_conf(o->pgdata, &ro, uid, gid, err);
    if (rc == 0 && !o->quiet) {
        char *b = ob_human_bytes(fst.bytes);
        if (o->delta) {
            char *kept = ob_human_bytes(fst.bytes_kept);
            ob_info("restored snapshot %.8s into %s: %s written, %s already right, %llu "
                    "removed",
                    s->id, o->pgdata, b, kept, (unsigned long long)fst.deleted);
            free(kept);
        } else {
            ob_info("restored snapshot %.8s into %s: %llu files, %s", s->id, o->pgdata,
                    (unsigned long long)fst.files, b);
        }
        free(b);
    }
    if (rc == 0 && o->start) {
        json_t *vn = json_object_get(s->extra, "pg_version_num");
        rc = start_server(o->pgdata, (int)json_integer_value(vn), o, uid, err);
    }
    return rc;
}
