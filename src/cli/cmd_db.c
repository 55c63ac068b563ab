/*
 * cmd_db.c — `backup db`, `restore db`, `verify db` and `verify files`.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "repo/lock.h"
#include "repo/snapshot.h"
#include "repo/treeio.h"
#include "jobs/job.h"
#include "sources/files.h"
#include "sources/pg_logical.h"
#include "sources/pg_physical.h"

typedef struct db_args {
    const cli_command *cmd;
    const char *set, *dbname, *dump_command, *restore_command, *target_db, *time;
    char **tags, **checks;
    size_t ntags, nchecks;
    int replace, roles, jobs, logical;
    char *dbname_copy;          /* --dbname, kept before its password is scrubbed */
    /* physical */
    int physical, delta, target_immediate, start, spread, archive_timeout, archive_off, force;
    int64_t full_every;
    const char *pgdata, *target_time, *target_lsn, *target_xid, *target_name, *target_action,
        *target_timeline, *start_options, *archive_get_command;
    char **tsmap;
    size_t ntsmap;
} db_args;

/* Long-only options of the physical commands. */
enum {
    OPT_PHYSICAL = 256, OPT_PGDATA, OPT_DELTA, OPT_TARGET_TIME, OPT_TARGET_LSN, OPT_TARGET_XID,
    OPT_TARGET_NAME, OPT_TARGET_IMMEDIATE, OPT_TARGET_ACTION, OPT_TARGET_TIMELINE, OPT_START,
    OPT_START_OPTIONS, OPT_CHECKPOINT, OPT_ARCHIVE_TIMEOUT, OPT_ARCHIVE_GET_COMMAND,
    OPT_TABLESPACE_MAP, OPT_ARCHIVE_MODE, OPT_FORCE, OPT_FULL_EVERY,
};

static int db_opt(int opt, const char *arg, void *ud)
{
    db_args *a = ud;
    switch (opt) {
    case 'S': a->set = arg; break;
    case 'd':
        free(a->dbname_copy);
        a->dbname = a->dbname_copy = cli_scrub_conninfo((char *)arg);
        break;
    case 'D': a->dump_command = arg; break;
    case 'R': a->restore_command = arg; break;
    case 'T': return cli_add_tag(a->cmd, &a->tags, &a->ntags, arg);
    case 't': a->time = arg; break;
    case 'g': a->target_db = arg; break;
    case 'x': a->replace = 1; break;
    case 'o': a->roles = 1; break;
    case 'l': a->logical = 1; break;
    case 'Q': cli_strv_push(&a->checks, &a->nchecks, arg); break;
    case OPT_PHYSICAL: a->physical = 1; break;
    case OPT_FORCE: a->force = 1; break;
    case OPT_PGDATA: a->pgdata = arg; break;
    case OPT_DELTA: a->delta = 1; break;
    case OPT_TARGET_TIME: a->target_time = arg; break;
    case OPT_TARGET_LSN: a->target_lsn = arg; break;
    case OPT_TARGET_XID: a->target_xid = arg; break;
    case OPT_TARGET_NAME: a->target_name = arg; break;
    case OPT_TARGET_IMMEDIATE: a->target_immediate = 1; break;
    case OPT_TARGET_TIMELINE: a->target_timeline = arg; break;
    case OPT_START: a->start = 1; break;
    case OPT_START_OPTIONS: a->start_options = arg; break;
    case OPT_ARCHIVE_GET_COMMAND: a->archive_get_command = arg; break;
    case OPT_ARCHIVE_MODE:
        if (strcmp(arg, "off") != 0 && strcmp(arg, "preserve") != 0) {
            cli_usage(a->cmd, "--archive-mode wants off or preserve");
            return -1;
        }
        a->archive_off = strcmp(arg, "off") == 0;
        break;
    case OPT_TABLESPACE_MAP:
        if (!strchr(arg, '=') || arg[0] == '=' || strspn(arg, "0123456789") != strcspn(arg, "=")) {
            cli_usage(a->cmd, "--tablespace-map wants OID=DIR, got '%s'", arg);
            return -1;
        }
        cli_strv_push(&a->tsmap, &a->ntsmap, arg);
        break;
    case OPT_TARGET_ACTION:
        if (strcmp(arg, "promote") != 0 && strcmp(arg, "pause") != 0 &&
            strcmp(arg, "shutdown") != 0) {
            cli_usage(a->cmd, "--target-action wants promote, pause or shutdown");
            return -1;
        }
        a->target_action = arg;
        break;
    case OPT_CHECKPOINT:
        if (strcmp(arg, "fast") != 0 && strcmp(arg, "spread") != 0) {
            cli_usage(a->cmd, "--checkpoint wants fast or spread");
            return -1;
        }
        a->spread = strcmp(arg, "spread") == 0;
        break;
    case OPT_FULL_EVERY:
        if (ob_parse_duration(arg, &a->full_every) < 0 || a->full_every < 1) {
            cli_usage(a->cmd, "--full-every wants a duration such as 7d or 168h");
            return -1;
        }
        break;
    case OPT_ARCHIVE_TIMEOUT: {
        int64_t secs;
        if (ob_parse_duration(arg, &secs) < 0 || secs < 1 || secs > 86400) {
            cli_usage(a->cmd, "--archive-timeout wants a duration such as 300s or 10m");
            return -1;
        }
        a->archive_timeout = (int)secs;
        break;
    }
    case 'j': {
        char *end;
        long j = strtol(arg, &end, 10);
        if (*end || j < 1 || j > 64) {
            cli_usage(a->cmd, "--jobs wants a number from 1 to 64");
            return -1;
        }
        a->jobs = (int)j;
        break;
    }
    default: return -1;
    }
    return 0;
}

const struct option cli_db_opts[] = {
    {"set", required_argument, NULL, 'S'},
    {"dbname", required_argument, NULL, 'd'},
    {"dump-command", required_argument, NULL, 'D'},
    {"restore-command", required_argument, NULL, 'R'},
    {"tag", required_argument, NULL, 'T'},
    {"time", required_argument, NULL, 't'},
    {"target-db", required_argument, NULL, 'g'},
    {"replace", no_argument, NULL, 'x'},
    {"roles", no_argument, NULL, 'o'},
    {"logical", no_argument, NULL, 'l'},
    {"check-sql", required_argument, NULL, 'Q'},
    {"jobs", required_argument, NULL, 'j'},
    {"physical", no_argument, NULL, OPT_PHYSICAL},
    {"force", no_argument, NULL, OPT_FORCE},
    {"full-every", required_argument, NULL, OPT_FULL_EVERY},
    {"pgdata", required_argument, NULL, OPT_PGDATA},
    {"delta", no_argument, NULL, OPT_DELTA},
    {"target-time", required_argument, NULL, OPT_TARGET_TIME},
    {"target-lsn", required_argument, NULL, OPT_TARGET_LSN},
    {"target-xid", required_argument, NULL, OPT_TARGET_XID},
    {"target-name", required_argument, NULL, OPT_TARGET_NAME},
    {"target-immediate", no_argument, NULL, OPT_TARGET_IMMEDIATE},
    {"target-action", required_argument, NULL, OPT_TARGET_ACTION},
    {"target-timeline", required_argument, NULL, OPT_TARGET_TIMELINE},
    {"start", no_argument, NULL, OPT_START},
    {"start-options", required_argument, NULL, OPT_START_OPTIONS},
    {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
    {"archive-timeout", required_argument, NULL, OPT_ARCHIVE_TIMEOUT},
    {"archive-get-command", required_argument, NULL, OPT_ARCHIVE_GET_COMMAND},
    {"tablespace-map", required_argument, NULL, OPT_TABLESPACE_MAP},
    {"archive-mode", required_argument, NULL, OPT_ARCHIVE_MODE},
    {0, 0, 0, 0},
};

/* cli_parse for the db commands.  Without --dbname, a step of `run JOB`
 * ($OPSBACKUP_JOB names the job) takes the job's dbname from the config
 * itself: a password inside it then never travels through our argv
 * (/proc/PID/cmdline, readable by every user) nor an environment. */
static int db_parse(cli_ctx *ctx, db_args *a, int argc, char **argv, const char *shortopts)
{
    int i = cli_parse(ctx, a->cmd, argc, argv, cli_db_opts, shortopts, db_opt, a);
    if (i >= 0 && (a->force || a->full_every) && a->cmd != cli_find_command("backup")) {
        cli_usage(a->cmd, "--force and --full-every are for backup db --physical");
        return -1;
    }
    const char *jobname = getenv("OPSBACKUP_JOB");
    if (i < 0 || a->dbname || !jobname || !*jobname)
        return i;
    ob_err err = OB_ERR_INIT;
    job *j = NULL;
    if (cli_load_config(ctx, &err) < 0 || job_load(ctx->cfg, jobname, &j, &err) < 0) {
        ob_error("$OPSBACKUP_JOB=%s: %s", jobname, ob_err_msg(&err));
        ob_err_clear(&err);
        return -1;
    }
    if (j->dbname) {
        a->dbname = a->dbname_copy = j->dbname;
        j->dbname = NULL; /* moved: db_args_free wipes it */
    }
    job_free(j);
    return i;
}

static void db_args_free(db_args *a)
{
    if (a->dbname_copy) {
        ob_wipe(a->dbname_copy, strlen(a->dbname_copy));
        free(a->dbname_copy);
    }
    free(a->tags);
    free(a->checks);
    free(a->tsmap);
}

static void print_physical(const snapshot *s)
{
    char *total = ob_human_bytes(s->stats.bytes);
    char *added = ob_human_bytes(s->stats.bytes_added);
    char *stored = ob_human_bytes(s->stats.bytes_stored);
    json_t *x = s->extra;
    printf("snapshot %.8s saved: physical backup of %s (PostgreSQL %s, timeline %lld, WAL "
           "%s..%s), %llu files, %s; added %s (%s stored) in %.1fs\n",
           s->id, json_string_value(json_object_get(x, "pgdata")),
           json_string_value(json_object_get(x, "pg_version")),
           (long long)json_integer_value(json_object_get(x, "timeline")),
           json_string_value(json_object_get(x, "start_lsn")),
           json_string_value(json_object_get(x, "stop_lsn")),
           (unsigned long long)s->stats.files, total, added, stored, s->stats.duration);
    free(total);
    free(added);
    free(stored);
}

static int backup_db_physical(cli_ctx *ctx, db_args *a)
{
    if (!a->pgdata)
        return cli_usage(a->cmd, "backup db --physical needs --pgdata DIR (the server's data "
                                 "directory)");
    if (a->dump_command)
        return cli_usage(a->cmd, "--dump-command is for logical backups");
    int64_t when = 0;
    int rc;
    if ((rc = cli_time_option(a->cmd, a->time, &when)) != 0)
        return rc;
    ob_err err = OB_ERR_INIT;
    repo_lock *lock = NULL;
    ctx->multi_repo_ok = 1;
    if ((rc = cli_open_repo_locked(ctx, 0, &lock)) != 0)
        return rc;
    pg_physical_backup_opts o;
    memset(&o, 0, sizeof o);
    o.conninfo = a->dbname;
    o.pgdata = a->pgdata;
    o.set = a->set;
    o.tags = a->tags;
    o.ntags = a->ntags;
    o.time_sec = when;
    o.spread_checkpoint = a->spread;
    o.force = a->force;
    o.full_every = a->full_every;
    o.archive_timeout = a->archive_timeout;
    o.quiet = ctx->quiet;
    o.lock = lock;
    snapshot *s = NULL;
    if (pg_physical_backup(ctx->r, &o, &s, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else {
        json_t *j = ctx->json ? snapshot_to_json(s) : NULL;
        if (!ctx->json && !ctx->quiet)
            print_physical(s);
        repo_lock_release(lock);
        lock = NULL;
        if (ctx->nmore_repos && cli_replicate(ctx, s, j))
            rc = CLI_FAIL;
        if (j)
            cli_print_json(j);
    }
    snapshot_free(s);
    repo_lock_release(lock);
    cli_close_repo(ctx);
    return rc;
}

/* Quote one word for the shell PostgreSQL runs restore_command with. */
static void shell_word(ob_buf *b, const char *w)
{
    ob_buf_putc(b, ' ');
    ob_buf_putc(b, '\'');
    for (; *w; w++) {
        if (*w == '\'')
            ob_buf_printf(b, "'\\''");
        else
            ob_buf_putc(b, (uint8_t)*w);
    }
    ob_buf_putc(b, '\'');
}

static char *abs_path(const char *p)
{
    char *r = realpath(p, NULL);
    return r ? r : ob_xstrdup(p);
}

/* restore_command for the restored server: this very binary, with the
 * same config, repository and password file as this restore.  *reads gets
 * the files it will read (for pg_physical_restore's owner check). */
static char *archive_get_command(cli_ctx *ctx, char ***reads, size_t *nreads)
{
    ob_buf b = OB_BUF_INIT;
    char *self = realpath("/proc/self/exe", NULL);
    shell_word(&b, self ? self : "opsbackup");
    free(self);
    if (ctx->config) {
        char *c = abs_path(ctx->config);
        shell_word(&b, "-c");
        shell_word(&b, c);
        cli_strv_push(reads, nreads, c); /* now *reads' */
    }
    const char *repo = ctx->repo ? ctx->repo : getenv("OPSBACKUP_REPOSITORY");
    if (repo) {
        shell_word(&b, "-r");
        shell_word(&b, repo);
    }
    /* The same password source this restore used (cli_password's order):
     * --password-file, then the repository's password-file in the config
     * (which -c and -r above already carry), then the environment. */
    const char *pwf = ctx->password_file;
    if (!pwf && !cli_repo_password_file(ctx))
        pwf = getenv("OPSBACKUP_PASSWORD_FILE");
    if (pwf) {
        char *p = abs_path(pwf);
        shell_word(&b, "--password-file");
        shell_word(&b, p);
        cli_strv_push(reads, nreads, p); /* now *reads' */
    } else if (cli_repo_password_file(ctx)) {
        cli_strv_push(reads, nreads, ob_xstrdup(cli_repo_password_file(ctx)));
    } else if (getenv("OPSBACKUP_PASSWORD") || getenv("OPSBACKUP_PASSWORD_COMMAND")) {
        ob_warn("the password comes from the environment, which the restored server will not "
                "have: give --password-file, or set restore_command yourself "
                "(--archive-get-command)");
    }
    ob_buf_printf(&b, " archive-get %%f \"%%p\"");
    ob_buf_putc(&b, '\0');
    char *out = ob_xstrdup((const char *)b.data + 1);
    ob_buf_free(&b);
    return out;
}

static int restore_db_physical(cli_ctx *ctx, db_args *a, const char *ref)
{
    if (!a->pgdata)
        return cli_usage(a->cmd, "restore db --physical needs --pgdata DIR");
    if (a->target_db || a->replace || a->jobs || a->roles)
        return cli_usage(a->cmd, "--target-db, --replace, --jobs and --roles are for logical "
                                 "restores");
    int ntargets = !!a->target_time + !!a->target_lsn + !!a->target_xid + !!a->target_name +
                   a->target_immediate;
    if (ntargets > 1)
        return cli_usage(a->cmd, "give at most one of --target-time, --target-lsn, "
                                 "--target-xid, --target-name and --target-immediate");
    if (a->target_action && ntargets == 0)
        return cli_usage(a->cmd, "--target-action needs a recovery target");
    int64_t ts;
    uint32_t tns;
    if (a->target_time && ob_time_parse(a->target_time, &ts, &tns) < 0)
        return cli_usage(a->cmd, "--target-time '%s': expected 'YYYY-MM-DD HH:MM:SS[+TZ]'",
                         a->target_time);
    ob_err err = OB_ERR_INIT;
    snapshot *s = NULL;
    int rc = CLI_OK;
    if (cli_open_repo(ctx, &err) < 0) {
        rc = cli_fail(ctx, &err);
        cli_close_repo(ctx);
        return rc;
    }
    int picked = 0;
    if (ref)
        rc = snapshot_find(ctx->r, ref, a->set, "db-physical", &s, &err);
    else if (a->target_time) {
        rc = pg_physical_pick(ctx->r, a->set, a->target_time, &s, &err);
        picked = 1;
    } else
        rc = snapshot_find(ctx->r, "latest", a->set, "db-physical", &s, &err);
    if (rc < 0) {
        rc = cli_fail(ctx, &err);
        cli_close_repo(ctx);
        return rc;
    }
    if (picked && !ctx->quiet)
        printf("using snapshot %.8s (ended %s), the newest that ended before the target\n",
               s->id, json_string_value(json_object_get(s->extra, "stop_time")));
    pg_physical_restore_opts o;
    memset(&o, 0, sizeof o);
    o.pgdata = a->pgdata;
    o.delta = a->delta;
    o.target_time = a->target_time;
    o.target_lsn = a->target_lsn;
    o.target_xid = a->target_xid;
    o.target_name = a->target_name;
    o.target_immediate = a->target_immediate;
    o.target_action = a->target_action;
    o.target_timeline = a->target_timeline;
    o.start = a->start;
    o.start_options = a->start_options;
    o.tablespace_map = a->tsmap;
    o.archive_off = a->archive_off;
    o.ntablespace_map = a->ntsmap;
    o.quiet = ctx->quiet;
    char **reads = NULL;
    size_t nreads = 0;
    char *cmd = a->archive_get_command ? ob_xstrdup(a->archive_get_command)
                                       : archive_get_command(ctx, &reads, &nreads);
    /* A local repository must be readable by the server too. */
    if (!a->archive_get_command && !strstr(ctx->st->url, "://"))
        cli_strv_push(&reads, &nreads, ob_xstrdup(ctx->st->url));
    o.restore_command = cmd;
    o.check_wal = !a->archive_get_command; /* ours reads this repository */
    o.restore_command_reads = (const char *const *)reads;
    o.nrestore_command_reads = nreads;
    if (pg_physical_restore(ctx->r, s, &o, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else if (ctx->json) {
        cli_print_json(json_pack("{s:s, s:s, s:b}", "snapshot", s->id, "pgdata", a->pgdata,
                                 "started", a->start));
    } else if (!ctx->quiet) {
        if (a->start)
            printf("restored snapshot %.8s into %s; PostgreSQL is running%s\n", s->id,
                   a->pgdata, a->target_action && strcmp(a->target_action, "pause") == 0
                                  ? " (paused at the target)"
                                  : " and recovery has ended");
        else
            printf("restored snapshot %.8s into %s; start PostgreSQL on it (pg_ctl -D %s start) "
                   "and it replays the archived WAL%s\n",
                   s->id, a->pgdata, a->pgdata,
                   ntargets ? " up to the target" : " to the end of the archive");
    }
    free(cmd);
    for (size_t i = 0; i < nreads; i++)
        free(reads[i]);
    free(reads);
    snapshot_free(s);
    cli_close_repo(ctx);
    return rc;
}

/* `backup db ...`: argv[0] is "backup". */
int cmd_backup_db(cli_ctx *ctx, int argc, char **argv)
{
    db_args a = {.cmd = cli_find_command("backup")};
    int i = db_parse(ctx, &a, argc, argv, "d:j:");
    int rc = CLI_OK;
    if (i < 0) {
        rc = i == -2 ? CLI_OK : CLI_USAGE;
        goto out;
    }
    if (argc - i != 1) {
        rc = cli_usage(a.cmd, "backup db takes no PATH: the database comes from --dbname or "
                              "the PG* environment");
        goto out;
    }
    if (a.physical) {
        rc = backup_db_physical(ctx, &a);
        goto out;
    }
    if (a.pgdata) {
        rc = cli_usage(a.cmd, "--pgdata is for physical backups: add --physical");
        goto out;
    }
    if (a.force || a.full_every) {
        rc = cli_usage(a.cmd, "--force and --full-every are for physical backups (a logical "
                              "dump is read whole every time)");
        goto out;
    }
    int64_t when = 0;
    if ((rc = cli_time_option(a.cmd, a.time, &when)) != 0)
        goto out;
    ob_err err = OB_ERR_INIT;
    repo_lock *lock = NULL;
    ctx->multi_repo_ok = 1;
    /* pg_dump first: it reads the catalog while the repository opens. */
    pg_backup_opts o = {a.dbname, a.dump_command, a.set, a.tags, a.ntags, when, 0};
    pg_logical_dump *dump = NULL;
    if (pg_logical_dump_start(&o, &dump, &err) < 0) {
        rc = cli_fail(ctx, &err);
        goto out;
    }
    if ((rc = cli_open_repo_locked(ctx, 0, &lock)) != 0) {
        pg_logical_dump_free(dump);
        goto out;
    }
    snapshot *s = NULL;
    json_t *j = NULL;
    if (pg_logical_dump_store(ctx->r, dump, lock, &s, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else if (ctx->json) {
        j = snapshot_to_json(s);
    } else if (!ctx->quiet) {
        char *total = ob_human_bytes(s->stats.bytes);
        char *added = ob_human_bytes(s->stats.bytes_added);
        char *stored = ob_human_bytes(s->stats.bytes_stored);
        const json_t *tables = json_object_get(s->extra, "tables");
        const json_t *lobjs = json_object_get(tables, PG_LARGE_OBJECTS_KEY);
        char *lo = lobjs ? ob_xasprintf(", %lld large objects",
                                        (long long)json_integer_value(lobjs))
                         : ob_xstrdup("");
        printf("snapshot %.8s saved: database %s, %zu tables%s, dump %s; added %s (%s stored) "
               "in %.1fs\n",
               s->id, json_string_value(json_object_get(s->extra, "database")),
               pg_logical_table_count(tables), lo, total, added, stored,
               s->stats.duration);
        free(lo);
        free(total);
        free(added);
        free(stored);
    }
    repo_lock_release(lock);
    if (s && ctx->nmore_repos && cli_replicate(ctx, s, j))
        rc = CLI_FAIL;
    if (j)
        cli_print_json(j);
    snapshot_free(s);
    cli_close_repo(ctx);
out:
    db_args_free(&a);
    return rc;
}

/* The logical snapshot `restore db REF` restores.  `latest` with
 * --replace and no --set is the newest snapshot of the database being
 * replaced (the one --dbname names), not the newest of any database: two
 * databases backed up without a set, or by two jobs, and `restore db latest
 * --replace --dbname dbname=app` swapped the other database's dump in
 * under app's name.  Given by ID, or within a set (one thing's snapshots,
 * perhaps of a database now under another name), it is the user's choice. */
static const char *snap_sysid(const snapshot *s)
{
    return json_string_value(json_object_get(s->extra, "system_identifier"));
}

static int is_dump_of(const snapshot *s, const char *db)
{
    const char *d = json_string_value(json_object_get(s->extra, "database"));
    return strcmp(s->kind, "db") == 0 && d && strcmp(d, db) == 0;
}

/* Is s a dump of database db from the server whose identifier is sid? */
static int is_dump_from(const snapshot *s, const char *db, const char *sid)
{
    return is_dump_of(s, db) && snap_sysid(s) && strcmp(snap_sysid(s), sid) == 0;
}

/* Is a dump of v[hit]'s database newer than it from another server? */
static int hit_other_servers(snapshot *const *v, size_t n, size_t hit)
{
    const char *db = json_string_value(json_object_get(v[hit]->extra, "database"));
    const char *sid = snap_sysid(v[hit]);
    for (size_t i = hit + 1; sid && i < n; i++)
        if (is_dump_of(v[i], db) && snap_sysid(v[i]) && !is_dump_from(v[i], db, sid))
            return 1;
    return 0;
}

/* v[*hit] is the newest dump of database db.  When the dumps of db come
 * from two or more servers (the same name on production and staging, one
 * repository, no --set: D77), the newest of them may be another server's:
 * take the newest dump of the server being replaced instead, and refuse
 * when it is none of them (a new server: which one to restore is the
 * operator's call). */
static int pick_server(snapshot *const *v, size_t n, const char *db, const char *conninfo,
                       size_t *hit, ob_err *err)
{
    const char *first = NULL;
    int several = 0;
    for (size_t i = 0; i < n && !several; i++) {
        const char *sid = is_dump_of(v[i], db) ? snap_sysid(v[i]) : NULL;
        if (sid && !first)
            first = sid;
        else if (sid && strcmp(sid, first) != 0)
            several = 1;
    }
    if (!several)
        return 0;
    ob_err e = OB_ERR_INIT;
    char *mine = pg_logical_system_identifier(conninfo, &e);
    size_t pick = n;
    for (size_t i = n; mine && pick == n && i-- > 0;)
        if (is_dump_from(v[i], db, mine))
            pick = i;
    /* A newer dump that recorded no server (a role refused
     * pg_control_system()) may be this server's newest, or another's. */
    size_t unknown = n;
    for (size_t i = pick + 1; pick < n && unknown == n && i < n; i++)
        if (is_dump_of(v[i], db) && !snap_sysid(v[i]))
            unknown = i;
    if (pick < n && unknown == n) {
        *hit = pick;
        free(mine);
        ob_err_clear(&e);
        return 0;
    }
    /* The newest dump of each server, to choose from. */
    ob_buf list = OB_BUF_INIT;
    for (size_t i = n; i-- > 0;) {
        const char *sid = is_dump_of(v[i], db) ? snap_sysid(v[i]) : NULL;
        int seen = 0;
        for (size_t k = i + 1; sid && k < n && !seen; k++)
            seen = is_dump_from(v[k], db, sid);
        if (!sid || seen)
            continue;
        char *t = ob_time_local(v[i]->time_sec);
        const char *where = json_string_value(json_object_get(v[i]->extra, "server"));
        ob_buf_printf(&list, "%s%.8s (%s, system identifier %s%s%s)", list.len ? ", " : "",
                      v[i]->id, t, sid, where ? ", dumped from " : "", where ? where : "");
        free(t);
    }
    ob_buf_putc(&list, 0);
    const char *newest = (const char *)list.data;
    int rc;
    if (!mine)
        rc = ob_err_set(err, OB_EUSAGE,
                        "dumps of database %s come from several PostgreSQL servers, and which "
                        "one is being replaced cannot be told (%s): 'latest' could mean any of "
                        "them; give the ID of the snapshot to restore. The newest dump of each: "
                        "%s",
                        db, ob_err_msg(&e), newest);
    else if (pick < n)
        rc = ob_err_set(err, OB_EUSAGE,
                        "dumps of database %s come from several PostgreSQL servers, and %.8s, "
                        "newer than this server's newest (%.8s), recorded none: 'latest' is "
                        "ambiguous; give the ID of the snapshot to restore. The newest dump of "
                        "each server: %s",
                        db, v[unknown]->id, v[pick]->id, newest);
    else
        rc = ob_err_set(err, OB_EUSAGE,
                        "dumps of database %s come from several PostgreSQL servers, none of "
                        "them the server being replaced (system identifier %s): 'latest' could "
                        "mean any of them; give the ID of the snapshot to restore. The newest "
                        "dump of each: %s",
                        db, mine, newest);
    ob_buf_free(&list);
    free(mine);
    ob_err_clear(&e);
    return rc;
}

static int find_logical(cli_ctx *ctx, const char *ref, const db_args *a, snapshot **out,
                        ob_err *err)
{
    char *live = NULL;
    if (strcmp(ref, "latest") != 0 || a->set || !a->replace ||
        !(live = pg_logical_conninfo_dbname(a->dbname)))
        return snapshot_find(ctx->r, ref, a->set, "db", out, err);
    snapshot **v;
    size_t n;
    if (snapshot_list(ctx->r, &v, &n, err) < 0) {
        free(live);
        return -1;
    }
    size_t hit = n, newest = n;
    for (size_t i = n; i-- > 0 && hit == n;) {
        if (strcmp(v[i]->kind, "db") != 0)
            continue;
        if (newest == n)
            newest = i;
        if (is_dump_of(v[i], live))
            hit = i;
    }
    int rc = 0;
    if (newest == n) {
        rc = ob_err_set(err, OB_ENOTFOUND,
                        "no db snapshot matches 'latest' (see `opsbackup snapshots`)");
    } else if (hit == n) {
        const char *d = json_string_value(json_object_get(v[newest]->extra, "database"));
        rc = ob_err_set(err, OB_ENOTFOUND,
                        "no logical snapshot of database %s to replace it with (the newest, "
                        "%.8s, is of %s); to put another database's dump in its place, give "
                        "that snapshot's ID or --set",
                        live, v[newest]->id, d ? d : "an unnamed database");
    } else if ((rc = pick_server(v, n, live, a->dbname, &hit, err)) == 0) {
        int servers = hit_other_servers(v, n, hit);
        if (hit != newest && !ctx->quiet)
            ob_info("latest: %.8s, the newest snapshot of database %s%s (newer ones are of "
                    "other databases%s)",
                    v[hit]->id, live, servers ? " from the server being replaced" : "",
                    servers ? " or servers" : "");
        *out = v[hit];
        v[hit] = NULL;
    }
    snapshot_list_free(v, n);
    free(live);
    return rc;
}

/* `restore db SNAPSHOT ...`: argv[0] is "restore". */
int cmd_restore_db(cli_ctx *ctx, int argc, char **argv)
{
    db_args a = {.cmd = cli_find_command("restore")};
    int i = db_parse(ctx, &a, argc, argv, "d:j:");
    int rc = CLI_OK;
    if (i < 0) {
        rc = i == -2 ? CLI_OK : CLI_USAGE;
        goto out;
    }
    if (a.physical) {
        if (argc - i > 2) {
            rc = cli_usage(a.cmd, "restore db --physical takes at most one SNAPSHOT");
            goto out;
        }
        rc = restore_db_physical(ctx, &a, argc - i == 2 ? argv[i + 1] : NULL);
        goto out;
    }
    if (argc - i != 2) {
        rc = cli_usage(a.cmd, "restore db needs a SNAPSHOT (an ID, a prefix, or latest)");
        goto out;
    }
    if (!a.target_db == !a.replace) {
        rc = cli_usage(a.cmd, "restore db needs exactly one of --target-db NAME (a new "
                              "database) and --replace (swap with the live one)");
        goto out;
    }
    ob_err err = OB_ERR_INIT;
    snapshot *s = NULL;
    if (cli_open_repo(ctx, &err) < 0 || find_logical(ctx, argv[i + 1], &a, &s, &err) < 0) {
        rc = cli_fail(ctx, &err);
        cli_close_repo(ctx);
        goto out;
    }
    pg_restore_opts o = {a.dbname, a.target_db, a.replace, a.jobs, a.roles, a.restore_command,
                         ctx->quiet};
    pg_restore_result res;
    if (pg_logical_restore(ctx->r, s, &o, &res, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else {
        if (ctx->json)
            cli_print_json(json_pack("{s:s, s:s, s:s?, s:f}", "snapshot", s->id, "database",
                                     res.database, "previous", res.previous, "seconds",
                                     res.seconds));
        else if (!ctx->quiet && res.previous)
            printf("restored snapshot %.8s into %s in %.1fs; the previous database is kept as "
                   "%s (drop it when you no longer need it)\n",
                   s->id, res.database, res.seconds, res.previous);
        else if (!ctx->quiet)
            printf("restored snapshot %.8s into new database %s in %.1fs\n", s->id, res.database,
                   res.seconds);
        pg_restore_result_free(&res);
    }
    snapshot_free(s);
    cli_close_repo(ctx);
out:
    db_args_free(&a);
    return rc;
}

static int verify_db(cli_ctx *ctx, int argc, char **argv)
{
    db_args a = {.cmd = cli_find_command("verify")};
    int i = db_parse(ctx, &a, argc, argv, "d:");
    int rc = CLI_OK;
    if (i < 0) {
        rc = i == -2 ? CLI_OK : CLI_USAGE;
        goto out;
    }
    if (argc - i > 2) {
        rc = cli_usage(a.cmd, "verify db takes at most one SNAPSHOT");
        goto out;
    }
    const char *ref = argc - i == 2 ? argv[i + 1] : "latest";
    ob_err err = OB_ERR_INIT;
    snapshot *s = NULL;
    if (cli_open_repo(ctx, &err) < 0 || snapshot_find(ctx->r, ref, a.set, "db", &s, &err) < 0) {
        rc = cli_fail(ctx, &err);
        cli_close_repo(ctx);
        goto out;
    }
    pg_verify_result res;
    if (pg_logical_verify(ctx->r, s, a.dbname, a.checks, a.nchecks, &res, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else {
        rc = res.mismatches ? CLI_PROBLEM : CLI_OK;
        if (ctx->json) {
            cli_print_json(json_pack("{s:s, s:b, s:I, s:f, s:O, s:O}", "snapshot", s->id, "ok",
                                     res.mismatches == 0, "mismatches",
                                     (json_int_t)res.mismatches, "restore_seconds",
                                     res.restore_seconds, "tables", res.tables, "checks",
                                     res.checks));
        } else {
            const char *key;
            json_t *v;
            json_object_foreach(res.tables, key, v)
            {
                int ok = json_is_true(json_object_get(v, "ok"));
                if (!ok || ctx->verbose) {
                    char *d = pg_logical_count_describe(key, v, NULL);
                    printf("%s %s\n", ok ? "ok      " : "MISMATCH", d);
                    free(d);
                }
            }
            size_t k;
            json_array_foreach(res.checks, k, v)
            {
                const char *sql = json_string_value(json_object_get(v, "sql"));
                if (json_is_true(json_object_get(v, "ok"))) {
                    json_t *rows = json_object_get(v, "result");
                    json_t *first = json_array_get(json_array_get(rows, 0), 0);
                    printf("check   %s => %s\n", sql,
                           json_is_string(first) ? json_string_value(first) : "(no rows)");
                } else {
                    printf("FAILED  %s: %s\n", sql,
                           json_string_value(json_object_get(v, "error")));
                }
            }
            printf("%s: snapshot %.8s restored in %.1fs, %zu tables%s compared, %llu problem%s\n",
                   res.mismatches ? "verify FAILED" : "verify ok", s->id, res.restore_seconds,
                   pg_logical_table_count(res.tables),
                   json_object_get(res.tables, PG_LARGE_OBJECTS_KEY) ? " and the large objects"
                                                                     : "",
                   (unsigned long long)res.mismatches, res.mismatches == 1 ? "" : "s");
        }
        pg_verify_result_free(&res);
    }
    snapshot_free(s);
    cli_close_repo(ctx);
out:
    db_args_free(&a);
    return rc;
}

/* The chunks of a file read last (physical super blocks: the slices of a
 * chunk alternate with the chunks of the blocks that changed, D64), so
 * each is read and authenticated once, not once per slice. */
#define VF_SEEN 8

typedef struct vf_ctx {
    repo *r;
    ob_buf b;
    uint64_t files, bytes, errors;
    int quiet;
    cli_progress *prog;     /* NULL: no progress line */
    uint8_t seen_id[VF_SEEN][OB_ID_LEN];
    size_t seen_len[VF_SEEN], nseen;
} vf_ctx;

/* The length of chunk id if this file read it already, else -1. */
static long long vf_seen(const vf_ctx *c, const uint8_t *id)
{
    for (size_t k = 0; k < c->nseen && k < VF_SEEN; k++)
        if (memcmp(c->seen_id[k], id, OB_ID_LEN) == 0)
            return (long long)c->seen_len[k];
    return -1;
}

static int vf_visit(const char *path, const tree_node *n, void *ud)
{
    vf_ctx *c = ud;
    if (n->type != TREE_FILE)
        return 0;
    c->files++;
    c->nseen = 0;
    for (size_t i = 0; i < n->nextents; i++) {
        ob_err e = OB_ERR_INIT;
        const tree_extent *x = &n->extents[i];
        long long len = vf_seen(c, x->id);
        if (len < 0 && repo_read_blob(c->r, x->id, REPO_BLOB_DATA, &c->b, &e) == 0) {
            len = (long long)c->b.len;
            memcpy(c->seen_id[c->nseen % VF_SEEN], x->id, OB_ID_LEN);
            c->seen_len[c->nseen++ % VF_SEEN] = c->b.len;
        }
        if (len < 0 || !tree_extent_fits(x, (uint64_t)len)) {
            char *d = files_path_display(path);
            ob_error("%s: %s", d,
                    e.code ? ob_err_msg(&e) : "the chunk is shorter than the tree says");
            free(d);
            c->errors++;
            ob_err_clear(&e);
            break;
        }
        c->bytes += n->extents[i].len;
    }
    if (c->prog)
        cli_progress_update(c->prog, c->bytes, c->files, "files", 0);
    return 0;
}

/* verify files: read back every byte of a snapshot and check it. */
static int verify_files(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("verify");
    db_args a = {.cmd = cmd};
    int i = db_parse(ctx, &a, argc, argv, "");
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (argc - i > 2)
        return cli_usage(cmd, "verify files takes at most one SNAPSHOT");
    const char *ref = argc - i == 2 ? argv[i + 1] : "latest";
    ob_err err = OB_ERR_INIT;
    snapshot *s = NULL;
    int rc;
    if (cli_open_repo(ctx, &err) < 0 || snapshot_find(ctx->r, ref, a.set, NULL, &s, &err) < 0) {
        rc = cli_fail(ctx, &err);
    } else {
        cli_progress prog;
        cli_progress_init(&prog, "verify");
        prog.total_bytes = s->stats.bytes;
        vf_ctx c = {.r = ctx->r, .b = OB_BUF_INIT, .quiet = ctx->quiet,
                    .prog = cli_progress_enabled(ctx) ? &prog : NULL};
        int wrc = files_walk(ctx->r, s->tree, vf_visit, &c, &err);
        if (c.prog)
            cli_progress_update(c.prog, c.bytes, c.files, "files", 1);
        if (wrc < 0) {
            ob_err_prefix(&err, "snapshot %.8s", s->id);
            rc = cli_fail(ctx, &err);
        } else {
            rc = c.errors ? CLI_PROBLEM : CLI_OK;
            if (ctx->json)
                cli_print_json(json_pack("{s:s, s:b, s:I, s:I, s:I}", "snapshot", s->id, "ok",
                                         c.errors == 0, "files", (json_int_t)c.files, "bytes",
                                         (json_int_t)c.bytes, "errors", (json_int_t)c.errors));
            else if (!ctx->quiet || c.errors) {
                char *b = ob_human_bytes(c.bytes);
                printf("%s: snapshot %.8s, %llu files, %s read and verified, %llu errors\n",
                       c.errors ? "verify FAILED" : "verify ok", s->id,
                       (unsigned long long)c.files, b, (unsigned long long)c.errors);
                free(b);
            }
        }
        ob_buf_free(&c.b);
    }
    snapshot_free(s);
    cli_close_repo(ctx);
    db_args_free(&a);
    return rc;
}

int cmd_verify(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("verify");
    const struct option *tables[] = {cli_db_opts, NULL};
    if (cli_kind_is(argc, argv, "db", tables))
        return verify_db(ctx, argc, argv);
    if (cli_kind_is(argc, argv, "files", tables) || cli_kind_is(argc, argv, "config", tables))
        return verify_files(ctx, argc, argv);
    for (int k = 1; k < argc; k++)
        if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
            printf("usage: opsbackup %s\n", cmd->usage);
            return CLI_OK;
        }
    return cli_usage(cmd, "verify needs a kind: db or files");
}
