/*
 * cmd_dr.c — `opsbackup dr plan | run`: the disaster-recovery runbook of
 * the [dr] section (issue #9; the seed guide's disaster-recovery.sh made
 * one command that shows its plan, executes it, measures itself and
 * leaves an incident report).
 *
 *   plan   which snapshot each job of `jobs =` would restore and from which
 *          repository (the job's repositories in order: an unreachable one
 *          or one without a snapshot falls back to the next, and the plan
 *          says so), the point in time the data would reach and so the data
 *          loss against rpo, the expected duration against rto (from the
 *          job's last verify, else the last `dr run`), and the ordered
 *          steps.  Changes nothing.  Exit 3 when a target is breached or a
 *          job has nothing to restore.
 *   run    the plan's steps, in order: before hook -> one restore per job ->
 *          a check of each restored database (row counts against those the
 *          snapshot recorded, check-sql) -> after hook -> health check.  It
 *          stops at the first failed step and says what is done and what is
 *          not; it writes a Markdown and a JSON report (timings, achieved
 *          RTO and RPO, what was verified), STATE_DIR/dr-last.json for
 *          status, and notifies [notify] as job "dr".
 *
 * Rehearsal (`dr run --rehearsal --target DIR`) restores beside production
 * instead of over it: files under DIR, each logical database into a scratch
 * database (dropped afterwards unless --keep), a physical one into
 * DIR/pgdata-JOB with WAL archiving off.  Hooks and the health check
 * concern the production application, so a rehearsal skips them unless
 * --with-hooks.
 *
 * Each restore is the restore command an operator would type, run as a
 * child (jobs/step.h), like the steps of `run JOB` (cmd_run.c).  The
 * choice of snapshot is made once, by the plan, and the run restores that
 * exact snapshot ID from that repository: what was shown is what happens.
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/config_check.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "jobs/dr.h"
#include "jobs/job.h"
#include "jobs/notify.h"
#include "jobs/state.h"
#include "jobs/step.h"
#include "sources/pg_conn.h"
#include "sources/pg_logical.h"
#include "sources/pq_lib.h"

/* Set by SIGTERM/SIGINT/SIGHUP: no further step starts (as in cmd_run.c;
 * a signal handler can only talk through a flag). */
static volatile sig_atomic_t dr_stop_signal;

static void on_stop_signal(int sig) { dr_stop_signal = sig; }

/* ---- options and the [dr] section ---- */

enum {
    /* Below the global options' values (cli.c, from 1000). */
    OPT_YES = 256, OPT_REHEARSAL, OPT_TARGET, OPT_TARGET_DB, OPT_TARGET_TIME, OPT_REPORT_DIR,
    OPT_KEEP, OPT_WITH_HOOKS, OPT_DELTA, OPT_PG_PORT,
};

static const struct option dr_opts_table[] = {
    {"yes", no_argument, NULL, OPT_YES},
    {"rehearsal", no_argument, NULL, OPT_REHEARSAL},
    {"target", required_argument, NULL, OPT_TARGET},
    {"target-db", required_argument, NULL, OPT_TARGET_DB},
    {"target-time", required_argument, NULL, OPT_TARGET_TIME},
    {"report-dir", required_argument, NULL, OPT_REPORT_DIR},
    {"keep", no_argument, NULL, OPT_KEEP},
    {"with-hooks", no_argument, NULL, OPT_WITH_HOOKS},
    {"delta", no_argument, NULL, OPT_DELTA},
    {"pg-port", required_argument, NULL, OPT_PG_PORT},
    {0, 0, 0, 0},
};

typedef struct dr_opts {
    int yes, rehearsal, keep, with_hooks, delta;
    const char *target, *target_db, *target_time_text, *report_dir, *pg_port;
    int64_t target_time;     /* 0: the latest data */
} dr_opts;

static int dr_opt(int opt, const char *arg, void *ud)
{
    dr_opts *o = ud;
    switch (opt) {
    case OPT_YES: o->yes = 1; break;
    case OPT_REHEARSAL: o->rehearsal = 1; break;
    case OPT_TARGET: o->target = arg; break;
    case OPT_TARGET_DB: o->target_db = arg; break;
    case OPT_TARGET_TIME: o->target_time_text = arg; break;
    case OPT_REPORT_DIR: o->report_dir = arg; break;
    case OPT_KEEP: o->keep = 1; break;
    case OPT_WITH_HOOKS: o->with_hooks = 1; break;
    case OPT_DELTA: o->delta = 1; break;
    case OPT_PG_PORT: o->pg_port = arg; break;
    default: return -1;
    }
    return 0;
}

/* The [dr] section as typed values (config_check has validated it). */
typedef struct dr_config {
    int64_t rto, rpo;          /* 0: no target */
    const char *before, *after, *health_url;   /* borrowed from the config */
    int shell;
    int64_t hook_timeout;
    dr_health_opts health;
    char **check_sql;          /* borrowed strings */
    size_t ncheck_sql;
    job **jobs;
    size_t njobs;
} dr_config;

static int64_t dur(const config_section *s, const char *key, int64_t dflt)
{
    const char *v = s ? config_get(s, key) : NULL;
    int64_t secs;
    return v && ob_parse_duration(v, &secs) == 0 ? secs : dflt;
}

static int dr_config_load(const config *c, dr_config *d, ob_err *err)
{
    memset(d, 0, sizeof *d);
    const config_section *s = config_section_get(c, "dr");
    d->rto = dur(s, "rto", 0);
    d->rpo = dur(s, "rpo", 0);
    /* hook-timeout; `timeout` is its older name (config_check has
     * always accepted it in [dr]). */
    d->hook_timeout = dur(s, "hook-timeout", dur(s, "timeout", 600));
    d->before = s ? config_get(s, "before") : NULL;
    d->after = s ? config_get(s, "after") : NULL;
    d->health_url = s ? config_get(s, "health-url") : NULL;
    const char *sh = s ? config_get(s, "shell") : NULL;
    d->shell = sh && (strcmp(sh, "true") == 0 || strcmp(sh, "yes") == 0);
    const char *r = s ? config_get(s, "health-retries") : NULL;
    d->health.retries = r ? atoi(r) : 30;
    d->health.interval = (double)dur(s, "health-interval", 2);
    d->health.timeout = (double)dur(s, "health-timeout", 10);
    for (size_t i = 0; s && i < s->n; i++)
        if (strcmp(s->entries[i].key, "check-sql") == 0) {
            d->check_sql = ob_xrealloc(d->check_sql, (d->ncheck_sql + 1) * sizeof *d->check_sql);
            d->check_sql[d->ncheck_sql++] = s->entries[i].value;
        }
    const char *jobs = s ? config_get(s, "jobs") : NULL;
    if (!jobs)
        return job_load_all(c, &d->jobs, &d->njobs, err);
    char **names;
    size_t n = job_split_list(jobs, &names);
    d->jobs = ob_xcalloc(n ? n : 1, sizeof *d->jobs);
    for (size_t i = 0; i < n; i++) {
        if (job_load(c, names[i], &d->jobs[d->njobs], err) < 0) {
            job_strv_free(names, n);
            return ob_err_prefix(err, "[dr] jobs");
        }
        d->njobs++;
    }
    job_strv_free(names, n);
    return 0;
}

static void dr_config_free(dr_config *d)
{
    job_free_all(d->jobs, d->njobs);
    free(d->check_sql);
}

/* ---- small helpers ---- */

/* args joined for display, quoted where a shell would need it. */
static char *argv_text(char *const *v, size_t n)
{
    ob_buf b = OB_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const char *s = v[i];
        int plain = *s != '\0';
        for (const char *p = s; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr("-_./=:,@%+", *p))
                plain = 0;
        if (i)
            ob_buf_putc(&b, ' ');
        if (plain) {
            ob_buf_append(&b, s, strlen(s));
            continue;
        }
        ob_buf_putc(&b, '\'');
        for (const char *p = s; *p; p++) {
            if (*p == '\'')
                ob_buf_append(&b, "'\\''", 4);
            else
                ob_buf_putc(&b, (uint8_t)*p);
        }
        ob_buf_putc(&b, '\'');
    }
    ob_buf_putc(&b, '\0');
    return (char *)ob_buf_steal(&b, NULL);
}

static char *time_text(int64_t t) { return ob_time_rfc3339(t, 0); }

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- PostgreSQL: which database, does it exist, is it all there ---- */

/* The database a logical job's restore lands in: the dbname of the job's
 * conninfo, else the one the snapshot was taken of. */
static char *db_live_name(const job *j, const json_t *snap)
{
    char *name = NULL, *msg = NULL;
    ob_err lerr = OB_ERR_INIT;
    if (j->dbname && pq_lib_load(&lerr) == 0) { /* else the restore says why */
        PQconninfoOption *opts = PQconninfoParse(j->dbname, &msg);
        PQfreemem(msg);
        for (PQconninfoOption *x = opts; x && x->keyword; x++)
            if (strcmp(x->keyword, "dbname") == 0 && x->val && *x->val)
                name = ob_xstrdup(x->val);
        PQconninfoFree(opts);
    }
    ob_err_clear(&lerr);
    if (!name) {
        const char *d = json_string_value(
            json_object_get(json_object_get(snap, "extra"), "database"));
        name = ob_xstrdup(d ? d : "");
    }
    return name;
}

static char *quote_ident(PGconn *c, const char *s)
{
    char *q = PQescapeIdentifier(c, s, strlen(s));
    char *r = ob_xstrdup(q ? q : "\"\"");
    PQfreemem(q);
    return r;
}

/* *exists: does database name exist on the job's server? */
static int db_exists(const job *j, const char *name, int *exists, ob_err *err)
{
    PGconn *c = pg_conn_open(j->dbname, "postgres", err);
    if (!c)
        return -1;
    const char *params[1] = {name};
    PGresult *r = PQexecParams(c, "SELECT count(*) FROM pg_database WHERE datname = $1", 1, NULL,
                               params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = ob_err_set(err, OB_EFAIL, "looking for database %s: %s", name,
                        PQresultErrorMessage(r));
    else
        *exists = strcmp(PQgetvalue(r, 0, 0), "0") != 0;
    PQclear(r);
    PQfinish(c);
    return rc;
}

static int db_drop(const job *j, const char *name, ob_err *err)
{
    PGconn *c = pg_conn_open(j->dbname, "postgres", err);
    if (!c)
        return -1;
    char *q = quote_ident(c, name);
    char *sql = ob_xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", q);
    int rc = pg_conn_exec(c, sql, err);
    free(sql);
    free(q);
    PQfinish(c);
    return rc;
}

/* The restored database against its snapshot: every table's row count
 * against the count recorded in the same transaction as the dump, then
 * each check SQL.  Returns {"database", "tables": {T: {expected, actual,
 * ok}}, "checks": [{sql, ok, result | error}], "mismatches"}; *problem
 * (caller frees) names the first mismatch, or is NULL. */
static json_t *db_check(const job *j, const char *dbname, const json_t *snap, char **checks,
                        size_t nchecks, char **problem, ob_err *err)
{
    *problem = NULL;
    json_t *tables, *results;
    int64_t mismatches = pg_logical_compare(j->dbname, dbname, json_object_get(snap, "extra"),
                                            checks, nchecks, &tables, &results, err);
    if (mismatches < 0)
        return NULL;
    /* The first mismatch, for the step's one-line error. */
    const char *key;
    json_t *val;
    json_object_foreach(tables, key, val)
    {
        if (*problem || json_is_true(json_object_get(val, "ok")))
            continue;
        *problem = pg_logical_count_describe(key, val, dbname);
    }
    size_t i;
    json_array_foreach(results, i, val)
    {
        if (!*problem && !json_is_true(json_object_get(val, "ok")))
            *problem = ob_xasprintf("check-sql '%s' failed: %s",
                                    json_string_value(json_object_get(val, "sql")),
                                    json_string_value(json_object_get(val, "error")));
    }
    return json_pack("{s:s, s:o, s:o, s:I}", "database", dbname, "tables", tables, "checks",
                     results, "mismatches", (json_int_t)mismatches);
}

/* ---- the plan ---- */

typedef struct dr_job_plan {
    job *j;                /* borrowed from dr_config */
    char *repo;            /* the repository to restore from (NULL: none has a snapshot) */
    json_t *snap;          /* the snapshot's `snapshots --json` element (own reference) */
    int64_t data_time;     /* the time the restored data is of */
    const char *data_basis;
    json_t *fallbacks;     /* [{repository, error}] skipped repositories */
    char *error;           /* why nothing can be restored */
    double estimate;       /* seconds; < 0 unknown */
    char *estimate_source;
    char *database;        /* logical: where it lands (live name, or the scratch one) */
    int db_exists;         /* -1 unknown (server unreachable) */
    char *target;          /* files/config: --target; physical: --pgdata */
    char *preflight;       /* a problem found ahead (physical: restore_command) */
} dr_job_plan;

typedef enum { DR_HOOK, DR_RESTORE, DR_CHECK_DB, DR_DROP_DB, DR_HEALTH } dr_step_kind;

typedef struct dr_step {
    dr_step_kind kind;
    char *name;            /* "before", "restore db", "check db", "after", "health check" */
    dr_job_plan *jp;       /* restore / check / drop: the job's plan */
    const char *hook;      /* hook: the command (borrowed from the config) */
    char *command;         /* what it does, for people */
    char *skip_reason;     /* planned but not to be run (rehearsal) */
} dr_step;

typedef struct dr_ctx {
    cli_ctx *ctx;
    dr_opts o;
    dr_config d;
    char *sdir;            /* the state directory */
    char **base;           /* global options for every child step */
    size_t nbase;
    dr_job_plan *jobs;
    size_t njobs;
    dr_step *steps;
    size_t nsteps;
    int64_t now;           /* the plan's (or run's) reference "now" */
} dr_ctx;

static void dr_ctx_free(dr_ctx *x)
{
    for (size_t i = 0; i < x->njobs; i++) {
        dr_job_plan *p = &x->jobs[i];
        free(p->repo);
        json_decref(p->snap);
        json_decref(p->fallbacks);
        free(p->error);
        free(p->estimate_source);
        free(p->database);
        free(p->target);
        free(p->preflight);
    }
    free(x->jobs);
    for (size_t i = 0; i < x->nsteps; i++) {
        free(x->steps[i].name);
        free(x->steps[i].command);
        free(x->steps[i].skip_reason);
    }
    free(x->steps);
    step_argv_free(x->base, x->nbase);
    free(x->sdir);
    dr_config_free(&x->d);
}

/* Run one opsbackup command as a child with the common options. */
static int child(dr_ctx *x, const char *repo, char **args, size_t nargs, char **env,
                 step_result *res, ob_err *err)
{
    char **argv = NULL;
    size_t n = 0;
    for (size_t i = 0; i < x->nbase; i++)
        step_argv_push(&argv, &n, x->base[i]);
    if (repo) {
        step_argv_push(&argv, &n, "-r");
        step_argv_push(&argv, &n, repo);
    }
    for (size_t i = 0; i < nargs; i++)
        step_argv_push(&argv, &n, args[i]);
    int rc = step_run(argv, env, res, err);
    step_argv_free(argv, n);
    return rc;
}

/* Each step reads the job's conninfo from the config by the job's name,
 * as the steps of `run` do (D36): a password in it never travels through
 * a child's argv or environment. */
static char **job_env(const job *j, size_t *n)
{
    char **env = NULL;
    *n = 0;
    char *e = ob_xasprintf("OPSBACKUP_JOB=%s", j->name);
    step_argv_push(&env, n, e);
    free(e);
    return env;
}

static void job_env_free(char **env, size_t n) { step_argv_free(env, n); }

/* Find the snapshot to restore: each of the job's repositories in order,
 * falling back past one that cannot be read or holds no snapshot. */
static void plan_snapshot(dr_ctx *x, dr_job_plan *p)
{
    const job *j = p->j;
    p->fallbacks = json_array();
    for (size_t r = 0; r < j->nrepos && !p->snap; r++) {
        char *args[] = {"snapshots", "--set", j->set, "--kind", (char *)j->kind_name};
        step_result res;
        ob_err err = OB_ERR_INIT;
        char *why = NULL;
        if (child(x, j->repos[r], args, 5, NULL, &res, &err) < 0) {
            why = ob_xstrdup(ob_err_msg(&err));
            ob_err_clear(&err);
        } else {
            if (res.code != 0 || !json_is_array(res.json)) {
                why = step_error(&res);
            } else {
                int64_t t = 0;
                json_t *s = dr_pick_snapshot(res.json, x->o.target_time, &t);
                if (s) {
                    p->snap = json_incref(s);
                    p->repo = ob_xstrdup(j->repos[r]);
                    p->data_time = t;
                } else if (x->o.target_time) {
                    why = ob_xasprintf("no %s snapshot of set %s from before the target time",
                                       j->kind_name, j->set);
                } else {
                    why = ob_xasprintf("no %s snapshot of set %s", j->kind_name, j->set);
                }
            }
            step_result_free(&res);
        }
        if (why) {
            json_array_append_new(p->fallbacks,
                                  json_pack("{s:s, s:s}", "repository", j->repos[r], "error", why));
            free(why);
        }
    }
    if (!p->snap) {
        p->error = ob_xasprintf("job %s: no repository has a snapshot to restore (%s)", j->name,
                                j->nrepos == 1 ? "its only repository failed"
                                               : "every repository of the job was tried");
        return;
    }
    if (j->kind == JOB_DB_PHYSICAL)
        p->data_basis = x->o.target_time
                            ? "the target time (WAL replayed up to it; if the archive ends "
                              "earlier, recovery stops there)"
                            : "the backup's end (stop_time); WAL archived after it is replayed "
                              "too, so the data is at least this new";
    else
        p->data_basis = "the snapshot's time";
    if (j->kind == JOB_DB_PHYSICAL && x->o.target_time)
        p->data_time = x->o.target_time;
}

/* How long the restore of job j took last time: its last verify (a real
 * restore into a scratch database or a full read-back), else the last
 * `dr run`'s restore step for the job. */
static void plan_estimate(dr_ctx *x, dr_job_plan *p, const json_t *last_dr)
{
    p->estimate = -1;
    json_t *st = NULL;
    ob_err err = OB_ERR_INIT;
    if (state_load(x->sdir, p->j->name, &st, &err) < 0) {
        ob_err_clear(&err);
        st = NULL;
    }
    json_t *v = json_object_get(st, "last_verify");
    json_t *rs = json_object_get(json_object_get(v, "result"), "restore_seconds");
    json_t *secs = json_is_number(rs) ? rs : json_object_get(v, "seconds");
    if (json_is_number(secs) && json_is_true(json_object_get(v, "ok"))) {
        p->estimate = json_number_value(secs);
        p->estimate_source =
            ob_xasprintf("%s of the last verify (%s)", secs == rs ? "restore_seconds" : "seconds",
                         json_string_value(json_object_get(v, "time")));
    }
    json_decref(st);
    if (p->estimate >= 0)
        return;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(last_dr, "steps"), i, s)
    {
        const char *job = json_string_value(json_object_get(s, "job"));
        const char *name = json_string_value(json_object_get(s, "step"));
        const char *status = json_string_value(json_object_get(s, "status"));
        if (job && name && status && strcmp(job, p->j->name) == 0 &&
            strncmp(name, "restore", 7) == 0 && strcmp(status, "ok") == 0) {
            p->estimate = json_number_value(json_object_get(s, "seconds"));
            p->estimate_source = ob_xasprintf("the restore step of the last dr run (%s)",
                                              json_string_value(json_object_get(last_dr,
                                                                                "started")));
        }
    }
}

static char *scratch_db_name(const dr_ctx *x, const dr_job_plan *p, size_t nlogical)
{
    if (x->o.target_db)
        return nlogical > 1 ? ob_xasprintf("%s_%s", x->o.target_db, p->j->name)
                            : ob_xstrdup(x->o.target_db);
    char *stamp = ob_time_rfc3339(x->now, 0); /* 2026-11-28T16:40:00Z */
    char digits[16];
    size_t k = 0;
    for (const char *c = stamp; *c && k < 14; c++)
        if (isdigit((unsigned char)*c))
            digits[k++] = *c;
    digits[k] = '\0';
    free(stamp);
    /* PostgreSQL names are at most 63 bytes: keep room for the suffix. */
    return ob_xasprintf("%.30s_dr_rehearsal_%s", p->database ? p->database : p->j->name, digits);
}

/* Run as root, `restore db --physical` refuses to restore a cluster whose
 * owner could not read what the default restore_command reads (this
 * config, the repository's password file).  The plan says so up front,
 * judging the owner by who owns the data directory now (or its parent, if
 * the directory is gone): the snapshot's own owner is known only once the
 * restore reads its tree. */
static char *physical_preflight(const dr_ctx *x, const dr_job_plan *p)
{
    if (geteuid() != 0 || p->j->archive_get_command)
        return NULL;
    struct stat st;
    char *dir = ob_xstrdup(p->j->pgdata);
    while (stat(dir, &st) < 0) {
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir) {
            free(dir);
            return NULL;
        }
        *slash = '\0';
    }
    free(dir);
    if (st.st_uid == 0)
        return NULL;
    const char *paths[2] = {x->ctx->cfg->path, NULL};
    char *sec = ob_xasprintf("repo.%s", p->repo);
    const config_section *rs = config_section_get(x->ctx->cfg, sec);
    free(sec);
    paths[1] = rs ? config_get(rs, "password-file") : NULL;
    for (size_t i = 0; i < 2; i++) {
        if (!paths[i])
            continue;
        char *why = NULL;
        ob_err err = OB_ERR_INIT;
        int ok = ob_access_as(paths[i], st.st_uid, st.st_gid, R_OK, &why, &err);
        ob_err_clear(&err);
        if (ok == 0) {
            struct passwd *pw = getpwuid(st.st_uid);
            char *msg = ob_xasprintf(
                "job %s: the restored server would run restore_command as %s, who cannot read "
                "%s (%s); the restore would stop before writing anything. Set "
                "archive-get-command on the job (the archiver's config, e.g. 'opsbackup -c "
                "/etc/opsbackup/archive.conf archive-get %%f \"%%p\"')",
                p->j->name, pw ? pw->pw_name : "the data directory's owner", paths[i], why);
            free(why);
            return msg;
        }
        free(why);
    }
    return NULL;
}

static void add_step(dr_ctx *x, dr_step_kind kind, const char *name, dr_job_plan *jp,
                     const char *hook, char *command, const char *skip)
{
    x->steps = ob_xrealloc(x->steps, (x->nsteps + 1) * sizeof *x->steps);
    dr_step *s = &x->steps[x->nsteps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->name = ob_xstrdup(name);
    s->jp = jp;
    s->hook = hook;
    s->command = command;
    s->skip_reason = skip ? ob_xstrdup(skip) : NULL;
}

/* The restore command of a job's plan (the run re-decides --replace vs
 * --target-db for a live database, which the before hook may have just
 * started). */
static void restore_args(const dr_ctx *x, const dr_job_plan *p, int exists, char ***v, size_t *n)
{
    const job *j = p->j;
    const char *id = json_string_value(json_object_get(p->snap, "id"));
    step_argv_push(v, n, "restore");
    switch (j->kind) {
    case JOB_DB:
        step_argv_push(v, n, "db");
        step_argv_push(v, n, id);
        step_argv_push(v, n, "--set");
        step_argv_push(v, n, j->set);
        if (!x->o.rehearsal && exists) {
            step_argv_push(v, n, "--replace");
        } else {
            step_argv_push(v, n, "--target-db");
            step_argv_push(v, n, p->database);
        }
        /* A rebuilt server lacks the application's roles; existing roles
         * are kept.  A rehearsal does not add roles to the live server. */
        if (!x->o.rehearsal)
            step_argv_push(v, n, "--roles");
        break;
    case JOB_DB_PHYSICAL:
        step_argv_push(v, n, "db");
        step_argv_push(v, n, id);
        step_argv_push(v, n, "--physical");
        step_argv_push(v, n, "--pgdata");
        step_argv_push(v, n, p->target);
        if (x->o.target_time_text) {
            step_argv_push(v, n, "--target-time");
            step_argv_push(v, n, x->o.target_time_text);
        }
        if (x->o.delta)
            step_argv_push(v, n, "--delta");
        if (j->archive_get_command) {
            step_argv_push(v, n, "--archive-get-command");
            step_argv_push(v, n, j->archive_get_command);
        }
        if (x->o.rehearsal) {
            step_argv_push(v, n, "--archive-mode");
            step_argv_push(v, n, "off");
            if (x->o.pg_port) {
                char *so = ob_xasprintf("-p %s", x->o.pg_port);
                step_argv_push(v, n, "--start");
                step_argv_push(v, n, "--start-options");
                step_argv_push(v, n, so);
                free(so);
            }
        } else {
            step_argv_push(v, n, "--start");
        }
        break;
    case JOB_FILES:
    case JOB_CONFIG:
        step_argv_push(v, n, j->kind_name);
        step_argv_push(v, n, id);
        step_argv_push(v, n, "--set");
        step_argv_push(v, n, j->set);
        step_argv_push(v, n, "--target");
        step_argv_push(v, n, p->target);
        break;
    }
}

static char *restore_text(const dr_ctx *x, const dr_job_plan *p, int exists)
{
    char **v = NULL;
    size_t n = 0;
    step_argv_push(&v, &n, "opsbackup");
    step_argv_push(&v, &n, "-r");
    step_argv_push(&v, &n, p->repo);
    restore_args(x, p, exists, &v, &n);
    char *s = argv_text(v, n);
    step_argv_free(v, n);
    return s;
}

static char *hook_text(const dr_ctx *x, const char *cmd)
{
    char *t = ob_human_duration((double)x->d.hook_timeout);
    char *s = ob_xasprintf("%s   (%s, time limit %s)", cmd,
                           x->d.shell ? "through /bin/sh -c" : "no shell", t);
    free(t);
    return s;
}

/* Build the plan: the snapshots, the estimates, the steps. */
static void plan_build(dr_ctx *x)
{
    json_t *last_dr = NULL;
    char *lp = ob_xasprintf("%s/dr-last.json", x->sdir);
    last_dr = json_load_file(lp, 0, NULL);
    free(lp);
    x->njobs = x->d.njobs;
    x->jobs = ob_xcalloc(x->njobs ? x->njobs : 1, sizeof *x->jobs);
    size_t nlogical = 0;
    for (size_t i = 0; i < x->njobs; i++)
        nlogical += x->d.jobs[i]->kind == JOB_DB;
    for (size_t i = 0; i < x->njobs; i++) {
        dr_job_plan *p = &x->jobs[i];
        p->j = x->d.jobs[i];
        p->db_exists = -1;
        plan_snapshot(x, p);
        plan_estimate(x, p, last_dr);
        if (!p->snap)
            continue;
        switch (p->j->kind) {
        case JOB_DB:
            p->database = db_live_name(p->j, p->snap);
            if (x->o.rehearsal) {
                char *s = scratch_db_name(x, p, nlogical);
                free(p->database);
                p->database = s;
            }
            {
                ob_err err = OB_ERR_INIT;
                int e = 0;
                if (db_exists(p->j, p->database, &e, &err) == 0)
                    p->db_exists = e;
                ob_err_clear(&err);
            }
            break;
        case JOB_DB_PHYSICAL:
            p->target = x->o.rehearsal ? ob_xasprintf("%s/pgdata-%s", x->o.target, p->j->name)
                                       : ob_xstrdup(p->j->pgdata);
            p->preflight = physical_preflight(x, p);
            break;
        case JOB_FILES:
        case JOB_CONFIG:
            p->target = ob_xstrdup(x->o.rehearsal ? x->o.target : "/");
            break;
        }
    }
    json_decref(last_dr);

    int hooks = !x->o.rehearsal || x->o.with_hooks;
    const char *no_hooks = "rehearsal: the hooks concern production (--with-hooks runs them)";
    if (x->d.before)
        add_step(x, DR_HOOK, "before", NULL, x->d.before, hook_text(x, x->d.before),
                 hooks ? NULL : no_hooks);
    for (size_t i = 0; i < x->njobs; i++) {
        dr_job_plan *p = &x->jobs[i];
        char *name = ob_xasprintf("restore %s", p->j->name);
        add_step(x, DR_RESTORE, name, p, NULL,
                 p->snap ? restore_text(x, p, p->db_exists == 1)
                         : ob_xstrdup("(nothing to restore)"),
                 NULL);
        free(name);
        if (p->j->kind == JOB_DB && p->snap) {
            name = ob_xasprintf("check %s", p->j->name);
            size_t nt = pg_logical_table_count(
                json_object_get(json_object_get(p->snap, "extra"), "tables"));
            size_t nc = x->d.ncheck_sql ? x->d.ncheck_sql : p->j->nverify_sql;
            add_step(x, DR_CHECK_DB, name, p, NULL,
                     ob_xasprintf("row counts of %zu tables in %s against the snapshot's, %zu "
                                  "check SQL quer%s",
                                  nt, p->database, nc, nc == 1 ? "y" : "ies"),
                     NULL);
            free(name);
        }
        if (p->j->kind == JOB_DB_PHYSICAL && p->snap) {
            size_t nc = x->d.ncheck_sql ? x->d.ncheck_sql : p->j->nverify_sql;
            name = ob_xasprintf("check %s", p->j->name);
            add_step(x, DR_CHECK_DB, name, p, NULL,
                     ob_xasprintf("connect to the restored server, read how far it replayed the "
                                  "archived WAL (pg_last_xact_replay_timestamp), %zu check SQL "
                                  "quer%s",
                                  nc, nc == 1 ? "y" : "ies"),
                     x->o.rehearsal && !x->o.pg_port
                         ? "rehearsal without --pg-port: the restored server is not started"
                         : NULL);
            free(name);
        }
    }
    if (x->d.after)
        add_step(x, DR_HOOK, "after", NULL, x->d.after, hook_text(x, x->d.after),
                 hooks ? NULL : no_hooks);
    if (x->d.health_url) {
        char *iv = ob_human_duration(x->d.health.interval);
        add_step(x, DR_HEALTH, "health check", NULL, NULL,
                 ob_xasprintf("GET %s until 2xx: %d attempts, %s apart", x->d.health_url,
                              x->d.health.retries, iv),
                 hooks ? NULL : "rehearsal: the health URL is production's (--with-hooks checks it)");
        free(iv);
    }
    for (size_t i = 0; x->o.rehearsal && !x->o.keep && i < x->njobs; i++) {
        dr_job_plan *p = &x->jobs[i];
        if (p->j->kind != JOB_DB || !p->snap)
            continue;
        char *name = ob_xasprintf("drop %s", p->database);
        add_step(x, DR_DROP_DB, name, p, NULL,
                 ob_xasprintf("DROP DATABASE %s (the rehearsal's scratch copy; --keep keeps it)",
                              p->database),
                 NULL);
        free(name);
    }
}

/* The plan as JSON; *problems counts breaches and jobs without data. */
static json_t *plan_json(dr_ctx *x, int *problems)
{
    json_t *jobs = json_array(), *probs = json_array();
    int64_t worst = -1;
    const char *worst_job = NULL;
    double est = 0;
    int est_complete = 1;
    for (size_t i = 0; i < x->njobs; i++) {
        dr_job_plan *p = &x->jobs[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:O}", "job", p->j->name, "kind", p->j->kind_name,
                              "set", p->j->set, "fallbacks", p->fallbacks);
        if (p->preflight) {
            json_object_set_new(o, "problem", json_string(p->preflight));
            json_array_append_new(probs, json_string(p->preflight));
        }
        if (p->error) {
            json_object_set_new(o, "error", json_string(p->error));
            json_array_append_new(probs, json_string(p->error));
        } else {
            char *dt = time_text(p->data_time);
            int64_t loss = x->now - p->data_time;
            if (loss < 0)
                loss = 0;
            json_object_set_new(o, "repository", json_string(p->repo));
            json_object_set_new(
                o, "snapshot",
                json_pack("{s:O, s:O, s:O}", "id", json_object_get(p->snap, "id"), "short_id",
                          json_object_get(p->snap, "short_id"), "time",
                          json_object_get(p->snap, "time")));
            json_object_set_new(o, "data_time", json_string(dt));
            json_object_set_new(o, "data_time_basis", json_string(p->data_basis));
            json_object_set_new(o, "data_loss_seconds", json_integer(loss));
            if (x->d.rpo)
                json_object_set_new(o, "rpo_ok", json_boolean(loss <= x->d.rpo));
            if (p->database)
                json_object_set_new(o, "database", json_string(p->database));
            if (p->db_exists >= 0)
                json_object_set_new(o, "database_exists", json_boolean(p->db_exists));
            if (p->target)
                json_object_set_new(o, "target", json_string(p->target));
            if (loss > worst) {
                worst = loss;
                worst_job = p->j->name;
            }
            free(dt);
        }
        if (p->estimate >= 0) {
            json_object_set_new(o, "estimate_seconds", json_real(p->estimate));
            json_object_set_new(o, "estimate_source", json_string(p->estimate_source));
            est += p->estimate;
        } else {
            json_object_set_new(o, "estimate_seconds", json_null());
            est_complete = 0;
        }
        json_array_append_new(jobs, o);
    }
    json_t *rpo = json_object();
    if (x->d.rpo)
        json_object_set_new(rpo, "target_seconds", json_integer(x->d.rpo));
    if (worst >= 0) {
        json_object_set_new(rpo, "worst_seconds", json_integer(worst));
        json_object_set_new(rpo, "worst_job", json_string(worst_job));
    }
    if (x->d.rpo && worst >= 0) {
        json_object_set_new(rpo, "ok", json_boolean(worst <= x->d.rpo));
        if (worst > x->d.rpo) {
            char *a = ob_human_duration((double)worst), *b = ob_human_duration((double)x->d.rpo);
            char *msg = ob_xasprintf("RPO breached: job %s would lose %s of data, the target is %s",
                                     worst_job, a, b);
            json_array_append_new(probs, json_string(msg));
            free(msg);
            free(a);
            free(b);
        }
    }
    json_t *rto = json_object();
    if (x->d.rto)
        json_object_set_new(rto, "target_seconds", json_integer(x->d.rto));
    /* Unknown parts make the estimate a lower bound: still a breach when
     * the known parts alone exceed the target. */
    json_object_set_new(rto, "estimate_seconds", est_complete ? json_real(est) : json_null());
    json_object_set_new(rto, "known_seconds", json_real(est));
    json_object_set_new(rto, "complete", json_boolean(est_complete));
    if (x->d.rto) {
        int breach = est > (double)x->d.rto;
        json_object_set_new(rto, "ok", breach ? json_false()
                                              : est_complete ? json_true() : json_null());
        if (breach) {
            char *a = ob_human_duration(est), *b = ob_human_duration((double)x->d.rto);
            char *msg = ob_xasprintf("RTO breached: the restores alone are estimated at %s%s, the "
                                     "target is %s",
                                     est_complete ? "" : "at least ", a, b);
            json_array_append_new(probs, json_string(msg));
            free(msg);
            free(a);
            free(b);
        }
    }
    json_t *steps = json_array();
    for (size_t i = 0; i < x->nsteps; i++) {
        dr_step *s = &x->steps[i];
        json_t *o = json_pack("{s:I, s:s, s:s}", "n", (json_int_t)(i + 1), "step", s->name,
                              "command", s->command);
        if (s->jp)
            json_object_set_new(o, "job", json_string(s->jp->j->name));
        if (s->skip_reason) {
            json_object_set_new(o, "skipped", json_true());
            json_object_set_new(o, "reason", json_string(s->skip_reason));
        }
        json_array_append_new(steps, o);
    }
    char *now = time_text(x->now);
    *problems = (int)json_array_size(probs);
    json_t *plan = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:b, s:o}", "mode",
                             x->o.rehearsal ? "rehearsal" : "production", "config",
                             x->ctx->cfg->path, "reference_time", now, "jobs", jobs, "rpo", rpo,
                             "rto", rto, "steps", steps, "ok", *problems == 0, "problems", probs);
    if (x->o.target_time_text)
        json_object_set_new(plan, "target_time", json_string(x->o.target_time_text));
    if (x->o.rehearsal && x->o.target)
        json_object_set_new(plan, "rehearsal_target", json_string(x->o.target));
    free(now);
    return plan;
}

static void print_plan(FILE *f, const json_t *plan)
{
    int rehearsal = strcmp(json_string_value(json_object_get(plan, "mode")), "rehearsal") == 0;
    fprintf(f, "DR plan (%s)%s%s, data loss measured against %s\n",
            rehearsal ? "rehearsal: production is not touched" : "production",
            json_object_get(plan, "target_time") ? ", to target time " : "",
            json_object_get(plan, "target_time")
                ? json_string_value(json_object_get(plan, "target_time"))
                : "",
            json_string_value(json_object_get(plan, "reference_time")));
    size_t i;
    json_t *o;
    fprintf(f, "jobs:\n");
    json_array_foreach(json_object_get(plan, "jobs"), i, o)
    {
        const char *name = json_string_value(json_object_get(o, "job"));
        size_t k;
        json_t *fb;
        json_array_foreach(json_object_get(o, "fallbacks"), k, fb)
            fprintf(f, "  %-12s repository %s skipped: %s\n", name,
                    json_string_value(json_object_get(fb, "repository")),
                    json_string_value(json_object_get(fb, "error")));
        if (json_object_get(o, "error")) {
            fprintf(f, "  %-12s NOTHING TO RESTORE: %s\n", name,
                    json_string_value(json_object_get(o, "error")));
            continue;
        }
        char *loss = ob_human_duration((double)json_integer_value(json_object_get(o, "data_loss_seconds")));
        json_t *ok = json_object_get(o, "rpo_ok");
        fprintf(f, "  %-12s %s snapshot %s from %s%s; data as of %s (%s), %s old%s\n", name,
                json_string_value(json_object_get(o, "kind")),
                json_string_value(json_object_get(json_object_get(o, "snapshot"), "short_id")),
                json_string_value(json_object_get(o, "repository")),
                json_array_size(json_object_get(o, "fallbacks")) ? " (fallback)" : "",
                json_string_value(json_object_get(o, "data_time")),
                json_string_value(json_object_get(o, "data_time_basis")), loss,
                ok ? json_is_true(ok) ? "" : "  RPO BREACH" : "");
        free(loss);
        json_t *est = json_object_get(o, "estimate_seconds");
        if (json_is_number(est)) {
            char *e = ob_human_duration(json_number_value(est));
            fprintf(f, "  %-12s restore estimate %s (%s)\n", "", e,
                    json_string_value(json_object_get(o, "estimate_source")));
            free(e);
        } else {
            fprintf(f, "  %-12s restore estimate unknown (no verify or dr run has timed it)\n", "");
        }
    }
    json_t *rpo = json_object_get(plan, "rpo"), *rto = json_object_get(plan, "rto");
    if (json_object_get(rpo, "worst_seconds")) {
        char *w = ob_human_duration((double)json_integer_value(json_object_get(rpo, "worst_seconds")));
        json_t *t = json_object_get(rpo, "target_seconds");
        char *ts = t ? ob_human_duration((double)json_integer_value(t)) : ob_xstrdup("none");
        fprintf(f, "RPO: %s of data lost at worst (job %s); target %s: %s\n", w,
                json_string_value(json_object_get(rpo, "worst_job")), ts,
                !t ? "not judged" : json_is_true(json_object_get(rpo, "ok")) ? "ok" : "BREACH");
        free(w);
        free(ts);
    }
    {
        json_t *t = json_object_get(rto, "target_seconds");
        char *ts = t ? ob_human_duration((double)json_integer_value(t)) : ob_xstrdup("none");
        double known = json_number_value(json_object_get(rto, "known_seconds"));
        int complete = json_is_true(json_object_get(rto, "complete"));
        char *k = ob_human_duration(known);
        json_t *ok = json_object_get(rto, "ok");
        fprintf(f, "RTO: restore time estimate %s%s; target %s: %s\n",
                complete ? "" : known > 0 ? "at least " : "", complete || known > 0 ? k : "unknown",
                ts,
                !t ? "not judged" : json_is_true(ok) ? "ok" : json_is_false(ok) ? "BREACH"
                                                                               : "unknown");
        free(k);
        free(ts);
    }
    fprintf(f, "steps:\n");
    json_array_foreach(json_object_get(plan, "steps"), i, o)
    {
        fprintf(f, "  %2lld. %-18s %s", (long long)json_integer_value(json_object_get(o, "n")),
                json_string_value(json_object_get(o, "step")),
                json_string_value(json_object_get(o, "command")));
        if (json_is_true(json_object_get(o, "skipped")))
            fprintf(f, "   [skipped: %s]", json_string_value(json_object_get(o, "reason")));
        fputc('\n', f);
    }
    json_array_foreach(json_object_get(plan, "problems"), i, o)
        fprintf(f, "PROBLEM: %s\n", json_string_value(o));
}

/* ---- running the plan ---- */

typedef struct dr_run {
    json_t *records;       /* one per step, in order */
    json_t *verification;  /* {"databases": [...], "files": [...], "health": {...}} */
    int failed;            /* index+1 of the failed step, 0 none */
    char *error;
} dr_run;

static json_t *record_for(dr_run *r, size_t i) { return json_array_get(r->records, i); }

static void step_failed(dr_run *r, size_t i, const char *why)
{
    json_t *rec = record_for(r, i);
    json_object_set_new(rec, "status", json_string("failed"));
    json_object_set_new(rec, "error", json_string(why));
    r->failed = (int)i + 1;
    r->error = ob_xstrdup(why);
}

static void run_hook(dr_ctx *x, dr_run *r, size_t i)
{
    dr_step *s = &x->steps[i];
    json_t *rec = record_for(r, i);
    dr_hook_result h;
    ob_err err = OB_ERR_INIT;
    ob_info("dr: %s hook: %s", s->name, s->hook);
    if (dr_hook_run(s->hook, x->d.shell, x->d.hook_timeout, &h, &err) < 0) {
        step_failed(r, i, ob_err_msg(&err));
        ob_err_clear(&err);
        return;
    }
    json_object_set_new(rec, "seconds", json_real(h.seconds));
    json_object_set_new(rec, "exit_code", json_integer(h.code));
    json_object_set_new(rec, "output", json_string(h.output));
    if (h.timed_out) {
        char *t = ob_human_duration((double)x->d.hook_timeout);
        char *why = ob_xasprintf("%s hook '%s' did not finish within its time limit of %s "
                                 "(hook-timeout) and was killed",
                                 s->name, s->hook, t);
        step_failed(r, i, why);
        free(why);
        free(t);
    } else if (h.code != 0) {
        /* Its last line of output is usually the reason. */
        const char *last = h.output, *p;
        while ((p = strchr(last, '\n')) && p[1])
            last = p + 1;
        char *why = ob_xasprintf("%s hook '%s' exited with status %d%s%s", s->name, s->hook,
                                 h.code, *last ? ": " : "", last);
        step_failed(r, i, why);
        free(why);
    } else {
        json_object_set_new(rec, "status", json_string("ok"));
    }
    dr_hook_result_free(&h);
}

static void run_restore(dr_ctx *x, dr_run *r, size_t i)
{
    dr_step *s = &x->steps[i];
    dr_job_plan *p = s->jp;
    json_t *rec = record_for(r, i);
    if (!p->snap) {
        step_failed(r, i, p->error);
        return;
    }
    int exists = 0;
    if (p->j->kind == JOB_DB && !x->o.rehearsal) {
        /* Decided now, not at plan time: the before hook may just have
         * started the server, or the database may be gone. */
        ob_err err = OB_ERR_INIT;
        if (db_exists(p->j, p->database, &exists, &err) < 0) {
            char *why = ob_xasprintf("cannot reach the database server of job %s: %s",
                                     p->j->name, ob_err_msg(&err));
            step_failed(r, i, why);
            free(why);
            ob_err_clear(&err);
            return;
        }
    }
    char **args = NULL;
    size_t n = 0;
    restore_args(x, p, exists, &args, &n);
    char *cmd = restore_text(x, p, exists);
    json_object_set_new(rec, "command", json_string(cmd));
    ob_info("dr: %s: %s", s->name, cmd);
    free(cmd);
    size_t nenv;
    char **env = job_env(p->j, &nenv);
    step_result res;
    ob_err err = OB_ERR_INIT;
    if (child(x, p->repo, args, n, env, &res, &err) < 0) {
        step_failed(r, i, ob_err_msg(&err));
        ob_err_clear(&err);
    } else {
        if (*res.stderr_text)
            fprintf(stderr, "%s\n", res.stderr_text);
        json_object_set_new(rec, "seconds", json_real(res.seconds));
        json_object_set_new(rec, "exit_code", json_integer(res.code));
        if (res.json)
            json_object_set(rec, "result", res.json);
        if (res.code != 0) {
            char *why = step_error(&res);
            step_failed(r, i, why);
            free(why);
        } else {
            json_object_set_new(rec, "status", json_string("ok"));
            if (p->j->kind == JOB_FILES || p->j->kind == JOB_CONFIG) {
                /* The restore itself checks every byte against its keyed
                 * hash: that is the verification of files. */
                json_t *v = json_pack("{s:s, s:s, s:O?, s:O?, s:s}", "job", p->j->name,
                                      "target", p->target, "files",
                                      json_object_get(res.json, "files"), "bytes",
                                      json_object_get(res.json, "bytes"), "verified",
                                      "every restored byte against the snapshot's keyed hashes");
                json_array_append_new(json_object_get(r->verification, "files"), v);
            }
        }
        step_result_free(&res);
    }
    job_env_free(env, nenv);
    step_argv_free(args, n);
}

/* A restored physical cluster, which the restore step started and left
 * promoted (--start waits for the end of recovery): is it out of
 * recovery, how far did it replay the archived WAL, do the check queries
 * pass.  How far it replayed is the data time of a latest-point recovery:
 * the commit time of the last transaction recovered, newer than the
 * backup's end by whatever the archive held. */
static json_t *physical_check(dr_ctx *x, dr_job_plan *p, char **checks, size_t nchecks,
                              char **problem, ob_err *err)
{
    *problem = NULL;
    char *conninfo = x->o.rehearsal && x->o.pg_port
                         ? pg_conninfo_set(p->j->dbname, "port", x->o.pg_port, err)
                         : ob_xstrdup(p->j->dbname ? p->j->dbname : "");
    if (!conninfo)
        return NULL;
    PGconn *c = pg_conn_open(conninfo, NULL, err);
    char *v = c ? pg_conn_value(c,
                                "SELECT pg_is_in_recovery()::text || ' ' || coalesce(floor("
                                "extract(epoch FROM pg_last_xact_replay_timestamp()))::bigint"
                                "::text, '-') || ' ' || current_database()",
                                err)
                : NULL;
    PQfinish(c);
    if (!v) {
        free(conninfo);
        return NULL;
    }
    char in_rec[8] = "", replay[32] = "";
    int dbpos = 0;
    sscanf(v, "%7s %31s %n", in_rec, replay, &dbpos);
    json_t *res = json_pack("{s:s, s:b, s:o}", "database", dbpos ? v + dbpos : "", "in_recovery",
                            strcmp(in_rec, "true") == 0, "replayed_until", json_null());
    if (strcmp(in_rec, "true") == 0)
        *problem = ob_xasprintf("the restored server of job %s is still in recovery",
                                p->j->name);
    if (isdigit((unsigned char)replay[0])) {
        int64_t t = strtoll(replay, NULL, 10);
        char *tt = time_text(t);
        json_object_set_new(res, "replayed_until", json_string(tt));
        free(tt);
        if (!x->o.target_time && t > p->data_time) {
            p->data_time = t;
            p->data_basis = "the last transaction replayed from the archived WAL "
                            "(pg_last_xact_replay_timestamp() of the restored server)";
        }
    }
    free(v);
    json_t *tables = NULL, *results = NULL;
    int64_t mismatches = pg_logical_compare(conninfo, NULL, NULL, checks, nchecks, &tables,
                                            &results, err);
    free(conninfo);
    if (mismatches < 0) {
        json_decref(res);
        free(*problem);
        *problem = NULL;
        return NULL;
    }
    size_t i;
    json_t *val;
    json_array_foreach(results, i, val)
    {
        if (!*problem && !json_is_true(json_object_get(val, "ok")))
            *problem = ob_xasprintf("check-sql '%s' failed: %s",
                                    json_string_value(json_object_get(val, "sql")),
                                    json_string_value(json_object_get(val, "error")));
    }
    json_object_set_new(res, "tables", tables);
    json_object_set_new(res, "checks", results);
    json_object_set_new(res, "mismatches", json_integer(mismatches));
    return res;
}

static void run_check_db(dr_ctx *x, dr_run *r, size_t i)
{
    dr_job_plan *p = x->steps[i].jp;
    json_t *rec = record_for(r, i);
    char **checks = x->d.ncheck_sql ? x->d.check_sql : p->j->verify_sql;
    size_t nchecks = x->d.ncheck_sql ? x->d.ncheck_sql : p->j->nverify_sql;
    double t0 = mono();
    char *problem = NULL;
    ob_err err = OB_ERR_INIT;
    json_t *res = p->j->kind == JOB_DB_PHYSICAL
                      ? physical_check(x, p, checks, nchecks, &problem, &err)
                      : db_check(p->j, p->database, p->snap, checks, nchecks, &problem, &err);
    json_object_set_new(rec, "seconds", json_real(mono() - t0));
    if (!res) {
        char *why = p->j->kind == JOB_DB_PHYSICAL
                        ? ob_xasprintf("checking the restored server of job %s: %s",
                                       p->j->name, ob_err_msg(&err))
                        : ob_xasprintf("checking database %s: %s", p->database, ob_err_msg(&err));
        step_failed(r, i, why);
        free(why);
        ob_err_clear(&err);
        return;
    }
    json_object_set_new(res, "job", json_string(p->j->name));
    json_object_set(rec, "result", res);
    json_array_append_new(json_object_get(r->verification, "databases"), res);
    if (problem) {
        step_failed(r, i, problem);
        free(problem);
    } else {
        json_object_set_new(rec, "status", json_string("ok"));
    }
}

static void run_health(dr_ctx *x, dr_run *r, size_t i)
{
    json_t *rec = record_for(r, i);
    ob_info("dr: health check %s", x->d.health_url);
    json_t *h = dr_health_check(x->d.health_url, &x->d.health);
    json_object_set(rec, "result", h);
    json_object_set(rec, "seconds", json_object_get(h, "seconds"));
    json_object_set(r->verification, "health", h);
    if (json_is_true(json_object_get(h, "ok"))) {
        json_object_set_new(rec, "status", json_string("ok"));
    } else {
        char *why = ob_xasprintf("health check %s failed after %lld attempt%s: %s",
                                 x->d.health_url,
                                 (long long)json_integer_value(json_object_get(h, "attempts")),
                                 json_integer_value(json_object_get(h, "attempts")) == 1 ? "" : "s",
                                 json_string_value(json_object_get(h, "error")));
        step_failed(r, i, why);
        free(why);
    }
    json_decref(h);
}

static void run_drop(dr_ctx *x, dr_run *r, size_t i)
{
    dr_job_plan *p = x->steps[i].jp;
    json_t *rec = record_for(r, i);
    ob_err err = OB_ERR_INIT;
    double t0 = mono();
    if (db_drop(p->j, p->database, &err) < 0) {
        step_failed(r, i, ob_err_msg(&err));
        ob_err_clear(&err);
    } else {
        json_object_set_new(rec, "status", json_string("ok"));
    }
    json_object_set_new(rec, "seconds", json_real(mono() - t0));
}

static void run_steps(dr_ctx *x, dr_run *r)
{
    r->records = json_array();
    r->verification = json_pack("{s:[], s:[]}", "databases", "files");
    for (size_t i = 0; i < x->nsteps; i++) {
        dr_step *s = &x->steps[i];
        json_t *rec = json_pack("{s:I, s:s, s:s, s:s}", "n", (json_int_t)(i + 1), "step", s->name,
                                "command", s->command, "status", "not run");
        if (s->jp)
            json_object_set_new(rec, "job", json_string(s->jp->j->name));
        json_array_append_new(r->records, rec);
    }
    for (size_t i = 0; i < x->nsteps && !r->failed; i++) {
        dr_step *s = &x->steps[i];
        json_t *rec = record_for(r, i);
        if (dr_stop_signal) {
            char *why = ob_xasprintf("stopped by signal %d before this step",
                                     (int)dr_stop_signal);
            step_failed(r, i, why);
            free(why);
            break;
        }
        if (s->skip_reason) {
            json_object_set_new(rec, "status", json_string("skipped"));
            json_object_set_new(rec, "reason", json_string(s->skip_reason));
            continue;
        }
        switch (s->kind) {
        case DR_HOOK: run_hook(x, r, i); break;
        case DR_RESTORE: run_restore(x, r, i); break;
        case DR_CHECK_DB: run_check_db(x, r, i); break;
        case DR_HEALTH: run_health(x, r, i); break;
        case DR_DROP_DB: run_drop(x, r, i); break;
        }
    }
}

/* ---- the report ---- */

static void md_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '\n')
            fputs("<br>", f);
        else
            fputc(*s, f);
    }
}

static void write_markdown(FILE *f, const json_t *rep)
{
    const char *mode = json_string_value(json_object_get(rep, "mode"));
    int ok = json_is_true(json_object_get(rep, "ok"));
    fprintf(f, "# Disaster recovery report: %s on %s\n\n",
            strcmp(mode, "rehearsal") == 0 ? "rehearsal" : "recovery",
            json_string_value(json_object_get(rep, "host")));
    fprintf(f, "- Result: **%s**\n", ok ? "SUCCEEDED" : "FAILED");
    if (!ok)
        fprintf(f, "- Failed step: %s: %s\n",
                json_string_value(json_object_get(rep, "failed_step")),
                json_string_value(json_object_get(rep, "error")));
    fprintf(f, "- Mode: %s%s%s\n", mode,
            json_object_get(rep, "rehearsal_target") ? ", into " : "",
            json_object_get(rep, "rehearsal_target")
                ? json_string_value(json_object_get(rep, "rehearsal_target"))
                : "");
    fprintf(f, "- Started: %s; finished: %s\n", json_string_value(json_object_get(rep, "started")),
            json_string_value(json_object_get(rep, "finished")));
    fprintf(f, "- Config: %s\n\n", json_string_value(json_object_get(rep, "config")));

    json_t *a = json_object_get(rep, "achieved");
    fprintf(f, "## Targets\n\n| | target | achieved | |\n|---|---|---|---|\n");
    json_t *rto_t = json_object_get(a, "rto_target_seconds"), *rpo_t = json_object_get(a, "rpo_target_seconds");
    char *rto = ob_human_duration(json_number_value(json_object_get(a, "rto_seconds")));
    char *rto_ts = rto_t ? ob_human_duration((double)json_integer_value(rto_t)) : ob_xstrdup("none");
    fprintf(f, "| RTO (time to recover) | %s | %s (wall time of this run%s) | %s |\n", rto_ts, rto,
            ok ? "" : ", which did not finish the recovery",
            !rto_t ? "" : !ok ? "not achieved" : json_is_true(json_object_get(a, "rto_ok")) ? "ok" : "BREACH");
    json_t *rpo_s = json_object_get(a, "rpo_seconds");
    char *rpo = json_is_integer(rpo_s) ? ob_human_duration((double)json_integer_value(rpo_s))
                                       : ob_xstrdup("unknown");
    char *rpo_ts = rpo_t ? ob_human_duration((double)json_integer_value(rpo_t)) : ob_xstrdup("none");
    fprintf(f, "| RPO (data lost) | %s | %s (", rpo_ts, rpo);
    md_escape(f, json_string_value(json_object_get(a, "rpo_basis")));
    fprintf(f, ") | %s |\n\n",
            !rpo_t || !json_is_integer(rpo_s) ? ""
            : json_is_true(json_object_get(a, "rpo_ok")) ? "ok" : "BREACH");
    free(rto);
    free(rto_ts);
    free(rpo);
    free(rpo_ts);

    fprintf(f, "## Data restored\n\n| job | kind | repository | snapshot | data as of | data lost "
               "|\n|---|---|---|---|---|---|\n");
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(rep, "jobs"), i, o)
    {
        if (json_object_get(o, "error")) {
            fprintf(f, "| %s | %s | - | - | - | ", json_string_value(json_object_get(o, "job")),
                    json_string_value(json_object_get(o, "kind")));
            md_escape(f, json_string_value(json_object_get(o, "error")));
            fprintf(f, " |\n");
            continue;
        }
        char *loss = ob_human_duration((double)json_integer_value(json_object_get(o, "data_loss_seconds")));
        fprintf(f, "| %s | %s | %s%s | %s | %s (%s) | %s |\n",
                json_string_value(json_object_get(o, "job")),
                json_string_value(json_object_get(o, "kind")),
                json_string_value(json_object_get(o, "repository")),
                json_array_size(json_object_get(o, "fallbacks")) ? " (fallback)" : "",
                json_string_value(json_object_get(json_object_get(o, "snapshot"), "short_id")),
                json_string_value(json_object_get(o, "data_time")),
                json_string_value(json_object_get(o, "data_time_basis")), loss);
        free(loss);
    }
    json_array_foreach(json_object_get(rep, "jobs"), i, o)
    {
        size_t k;
        json_t *fb;
        json_array_foreach(json_object_get(o, "fallbacks"), k, fb)
        {
            fprintf(f, "\n- job %s: repository %s was skipped: ",
                    json_string_value(json_object_get(o, "job")),
                    json_string_value(json_object_get(fb, "repository")));
            md_escape(f, json_string_value(json_object_get(fb, "error")));
        }
    }
    fprintf(f, "\n\n## Steps\n\n| # | step | status | time | detail |\n|---|---|---|---|---|\n");
    json_array_foreach(json_object_get(rep, "steps"), i, o)
    {
        json_t *secs = json_object_get(o, "seconds");
        fprintf(f, "| %lld | %s | %s | ", (long long)json_integer_value(json_object_get(o, "n")),
                json_string_value(json_object_get(o, "step")),
                json_string_value(json_object_get(o, "status")));
        if (secs)
            fprintf(f, "%.1fs", json_number_value(secs));
        fprintf(f, " | ");
        const char *why = json_string_value(json_object_get(o, "error"));
        if (!why)
            why = json_string_value(json_object_get(o, "reason"));
        md_escape(f, why ? why : json_string_value(json_object_get(o, "command")));
        fprintf(f, " |\n");
    }
    fprintf(f, "\n## Verification\n\n");
    json_t *v = json_object_get(rep, "verification");
    int any = 0;
    json_array_foreach(json_object_get(v, "databases"), i, o)
    {
        any = 1;
        json_int_t mm = json_integer_value(json_object_get(o, "mismatches"));
        size_t nt = pg_logical_table_count(json_object_get(o, "tables"));
        json_t *rec = json_object_get(o, "in_recovery");
        if (rec) /* a physical job's restored server */
            fprintf(f, "- restored server of job %s (database %s): %s; replayed the archived "
                       "WAL up to %s\n",
                    json_string_value(json_object_get(o, "job")),
                    json_string_value(json_object_get(o, "database")),
                    json_is_true(rec) ? "STILL IN RECOVERY" : "recovery ended, accepting writes",
                    json_is_string(json_object_get(o, "replayed_until"))
                        ? json_string_value(json_object_get(o, "replayed_until"))
                        : "the backup's end (no later transaction in the archive)");
        else
            fprintf(f, "- database %s (job %s): %zu tables, %s\n",
                    json_string_value(json_object_get(o, "database")),
                    json_string_value(json_object_get(o, "job")), nt,
                    mm ? "MISMATCHES (see the JSON report)"
                       : "every row count equal to the count the snapshot recorded");
        const char *key;
        json_t *t;
        json_object_foreach(json_object_get(o, "tables"), key, t)
            if (!json_is_true(json_object_get(t, "ok"))) {
                char *d = pg_logical_count_describe(key, t, NULL);
                fprintf(f, "  - ");
                md_escape(f, d);
                fprintf(f, "\n");
                free(d);
            }
        size_t k;
        json_array_foreach(json_object_get(o, "checks"), k, t)
        {
            fprintf(f, "  - check-sql `%s`: ", json_string_value(json_object_get(t, "sql")));
            if (!json_is_true(json_object_get(t, "ok"))) {
                fprintf(f, "FAILED: ");
                md_escape(f, json_string_value(json_object_get(t, "error")));
            } else {
                char *res = json_dumps(json_object_get(t, "result"), JSON_COMPACT);
                fprintf(f, "%s", res ? res : "?");
                free(res);
            }
            fputc('\n', f);
        }
    }
    json_array_foreach(json_object_get(v, "files"), i, o)
    {
        any = 1;
        fprintf(f, "- job %s: %lld files, %lld bytes restored under %s; %s\n",
                json_string_value(json_object_get(o, "job")),
                (long long)json_integer_value(json_object_get(o, "files")),
                (long long)json_integer_value(json_object_get(o, "bytes")),
                json_string_value(json_object_get(o, "target")),
                json_string_value(json_object_get(o, "verified")));
    }
    json_t *h = json_object_get(v, "health");
    if (h) {
        any = 1;
        fprintf(f, "- health check %s: %s after %lld attempt(s), last HTTP status %lld",
                json_string_value(json_object_get(h, "url")),
                json_is_true(json_object_get(h, "ok")) ? "passed" : "FAILED",
                (long long)json_integer_value(json_object_get(h, "attempts")),
                (long long)json_integer_value(json_object_get(h, "status")));
        if (json_object_get(h, "error")) {
            fprintf(f, ": ");
            md_escape(f, json_string_value(json_object_get(h, "error")));
        }
        fputc('\n', f);
    }
    if (!any)
        fprintf(f, "- nothing was verified (the run stopped before any check)\n");
    fprintf(f, "\n## Done and not done\n\n");
    json_array_foreach(json_object_get(rep, "done"), i, o)
        fprintf(f, "- done: %s\n", json_string_value(o));
    json_array_foreach(json_object_get(rep, "not_done"), i, o)
        fprintf(f, "- NOT done: %s\n", json_string_value(o));
}

/* Write REPORT_DIR/dr-STAMP.{json,md}; the paths go into rep. */
static int write_report(const char *dir, json_t *rep, int64_t started, ob_err *err)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return ob_err_errno(err, errno, "creating the report directory %s", dir);
    char *stamp = ob_time_rfc3339(started, 0), *s = stamp;
    for (char *p = stamp; *p; p++)
        if (*p == ':')
            *p = '-';
    char *jpath = ob_xasprintf("%s/dr-%s.json", dir, s);
    char *mpath = ob_xasprintf("%s/dr-%s.md", dir, s);
    free(stamp);
    json_object_set_new(rep, "report_json", json_string(jpath));
    json_object_set_new(rep, "report_markdown", json_string(mpath));
    int rc = 0;
    char *md = NULL;
    size_t mdlen = 0;
    FILE *f = open_memstream(&md, &mdlen);
    if (!f) {
        rc = ob_err_errno(err, errno, "writing the report");
    } else {
        write_markdown(f, rep);
        fclose(f);
        rc = ob_write_file_atomic(mpath, md, mdlen, 1, NULL, err);
    }
    char *text = json_dumps(rep, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (rc == 0)
        rc = ob_write_file_atomic(jpath, text, strlen(text), 1, NULL, err);
    free(text);
    free(md);
    free(jpath);
    free(mpath);
    return rc;
}

static void dr_notify(const config *cfg, json_t *rep, int64_t t0, int64_t t1)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) {
        write_markdown(f, rep);
        fclose(f);
    }
    notify_event ev = {
        .job = "dr",
        .ok = json_is_true(json_object_get(rep, "ok")),
        .step = json_string_value(json_object_get(rep, "failed_step")),
        .error = json_string_value(json_object_get(rep, "error")),
        .summary = text,
        .details = rep,
        .started = t0,
        .finished = t1,
    };
    notify_outcome(cfg, &ev, rep);
    free(text);
}

/* The achieved RPO: the reference time (the target time, else the run's
 * start) minus the oldest data time among the jobs restored. */
static json_t *achieved(dr_ctx *x, const dr_run *r, double wall, int64_t started)
{
    int64_t ref = x->o.target_time ? x->o.target_time : started;
    int64_t worst = -1;
    const char *worst_job = NULL, *basis = NULL;
    size_t i;
    json_t *rec;
    json_array_foreach(r->records, i, rec)
    {
        dr_step *s = &x->steps[i];
        if (s->kind != DR_RESTORE || !s->jp->snap ||
            strcmp(json_string_value(json_object_get(rec, "status")), "ok") != 0)
            continue;
        int64_t loss = ref - s->jp->data_time;
        if (loss < 0)
            loss = 0;
        if (loss > worst) {
            worst = loss;
            worst_job = s->jp->j->name;
            basis = s->jp->data_basis;
        }
    }
    json_t *a = json_pack("{s:f}", "rto_seconds", wall);
    if (x->d.rto) {
        json_object_set_new(a, "rto_target_seconds", json_integer(x->d.rto));
        json_object_set_new(a, "rto_ok", json_boolean(!r->failed && wall <= (double)x->d.rto));
    }
    char *reft = time_text(ref);
    json_object_set_new(a, "rpo_reference_time", json_string(reft));
    if (worst >= 0) {
        char *why = ob_xasprintf("%s %s minus the data time of job %s: %s", x->o.target_time
                                 ? "the target time" : "the start of the run", reft, worst_job,
                                 basis);
        json_object_set_new(a, "rpo_seconds", json_integer(worst));
        json_object_set_new(a, "rpo_job", json_string(worst_job));
        json_object_set_new(a, "rpo_basis", json_string(why));
        free(why);
        if (x->d.rpo) {
            json_object_set_new(a, "rpo_target_seconds", json_integer(x->d.rpo));
            json_object_set_new(a, "rpo_ok", json_boolean(worst <= x->d.rpo));
        }
    } else {
        json_object_set_new(a, "rpo_seconds", json_null());
        json_object_set_new(a, "rpo_basis", json_string("nothing was restored"));
        if (x->d.rpo)
            json_object_set_new(a, "rpo_target_seconds", json_integer(x->d.rpo));
    }
    free(reft);
    return a;
}

static int confirm(const dr_ctx *x)
{
    fprintf(stderr, "%s Type 'yes' to go on: ",
            x->o.rehearsal ? "This restores into the rehearsal target (production is not "
                             "touched)."
                           : "This REPLACES the production data listed above with the backups.");
    fflush(stderr);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    int ok = n > 0 && (strncmp(line, "yes\n", 4) == 0 || strcmp(line, "yes") == 0);
    free(line);
    return ok;
}

/* ---- the command ---- */

static int dr_setup(cli_ctx *ctx, dr_ctx *x, ob_err *err)
{
    if (cli_load_config(ctx, err) < 0)
        return cli_fail(ctx, err);
    if (!ctx->cfg) {
        ob_err_set(err, OB_EUSAGE, "dr needs a config file with a [dr] section and the [job.NAME] "
                                   "sections it restores (-c FILE, $OPSBACKUP_CONFIG or "
                                   "/etc/opsbackup/opsbackup.conf)");
        return cli_fail(ctx, err);
    }
    config_check_result chk;
    config_check(ctx->cfg, &chk);
    if (chk.n) {
        for (size_t k = 0; k < chk.n; k++)
            fprintf(stderr, "%s:%d: %s\n", ctx->cfg->path, chk.problems[k].line,
                    chk.problems[k].message);
        fprintf(stderr, "opsbackup: error: %zu problem%s in %s; fix them first (opsbackup "
                        "config check)\n",
                chk.n, chk.n == 1 ? "" : "s", ctx->cfg->path);
        config_check_free(&chk);
        return CLI_USAGE;
    }
    config_check_free(&chk);
    if (!config_section_get(ctx->cfg, "dr")) {
        ob_err_set(err, OB_EUSAGE, "%s has no [dr] section (rto, rpo, jobs, before, after, "
                                   "health-url: see opsbackup dr --help)", ctx->cfg->path);
        return cli_fail(ctx, err);
    }
    if (dr_config_load(ctx->cfg, &x->d, err) < 0)
        return cli_fail(ctx, err);
    if (x->d.njobs == 0) {
        ob_err_set(err, OB_EUSAGE, "%s: [dr] has no jobs to restore (jobs = NAME, ...)",
                   ctx->cfg->path);
        return cli_fail(ctx, err);
    }
    x->sdir = state_dir();
    char *cfg_abs = realpath(ctx->cfg->path, NULL);
    step_argv_push(&x->base, &x->nbase, "-c");
    step_argv_push(&x->base, &x->nbase, cfg_abs ? cfg_abs : ctx->cfg->path);
    free(cfg_abs);
    step_argv_push(&x->base, &x->nbase, "--json");
    step_argv_push(&x->base, &x->nbase, "--no-progress");
    if (ctx->password_file) {
        char *p = realpath(ctx->password_file, NULL);
        step_argv_push(&x->base, &x->nbase, "--password-file");
        step_argv_push(&x->base, &x->nbase, p ? p : ctx->password_file);
        free(p);
    }
    if (ctx->verbose)
        step_argv_push(&x->base, &x->nbase, "-v");
    return 0;
}

static int check_options(const cli_command *cmd, dr_opts *o, int run)
{
    if (o->target_time_text) {
        uint32_t ns;
        if (ob_time_parse(o->target_time_text, &o->target_time, &ns) < 0)
            return cli_usage(cmd, "--target-time '%s': expected 'YYYY-MM-DD HH:MM:SS[+TZ]'",
                             o->target_time_text);
    }
    if (o->rehearsal && !o->target)
        return cli_usage(cmd, "--rehearsal needs --target DIR (files and physical databases are "
                              "restored below it)");
    if (!o->rehearsal && (o->target || o->target_db || o->keep || o->with_hooks || o->pg_port))
        return cli_usage(cmd, "--target, --target-db, --keep, --with-hooks and --pg-port are "
                              "for --rehearsal");
    if (o->rehearsal && o->target[0] != '/')
        return cli_usage(cmd, "--target '%s' must be an absolute path", o->target);
    if (!run && (o->yes || o->report_dir))
        return cli_usage(cmd, "--yes and --report-dir are for dr run");
    return 0;
}

int cmd_dr(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("dr");
    dr_ctx x;
    memset(&x, 0, sizeof x);
    int i = cli_parse(ctx, cmd, argc, argv, dr_opts_table, "", dr_opt, &x.o);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (argc - i != 1 || (strcmp(argv[i], "plan") != 0 && strcmp(argv[i], "run") != 0))
        return cli_usage(cmd, "dr takes one of: plan, run");
    int run = strcmp(argv[i], "run") == 0;
    int rc = check_options(cmd, &x.o, run);
    if (rc)
        return rc;
    x.ctx = ctx;
    ob_err err = OB_ERR_INIT;
    if ((rc = dr_setup(ctx, &x, &err)) != 0) {
        dr_ctx_free(&x);
        return rc;
    }
    if (run && !x.o.yes && !isatty(STDIN_FILENO)) {
        dr_ctx_free(&x);
        ob_err_set(&err, OB_EUSAGE, "dr run replaces data and standard input is not a terminal "
                                    "to confirm it: run `opsbackup dr plan` to see what it will "
                                    "do, then `opsbackup dr run --yes`");
        return cli_fail(ctx, &err);
    }
    /* Two recoveries at once would restore over each other. */
    int lockfd = -1;
    if (run && state_lock_job(x.sdir, "dr", &lockfd, &err) < 0) {
        dr_ctx_free(&x);
        return cli_fail(ctx, &err);
    }
    uint32_t ns;
    ob_time_now(&x.now, &ns);
    plan_build(&x);
    int problems = 0;
    json_t *plan = plan_json(&x, &problems);
    if (!run) {
        if (ctx->json)
            cli_print_json(json_incref(plan));
        else
            print_plan(stdout, plan);
        json_decref(plan);
        dr_ctx_free(&x);
        return problems ? CLI_PROBLEM : CLI_OK;
    }

    if (!ctx->quiet)
        print_plan(ctx->json ? stderr : stdout, plan);
    fflush(stdout);
    /* A job with nothing to restore: do not start a recovery that cannot
     * finish, and touch nothing. */
    for (size_t k = 0; k < x.njobs; k++)
        if (x.jobs[k].error) {
            ob_err_set(&err, OB_EFAIL, "%s; nothing was done", x.jobs[k].error);
            json_decref(plan);
            state_unlock(lockfd);
            dr_ctx_free(&x);
            return cli_fail(ctx, &err);
        }
    if (!x.o.yes && !confirm(&x)) {
        fprintf(stderr, "opsbackup: dr run cancelled; nothing was done\n");
        json_decref(plan);
        state_unlock(lockfd);
        dr_ctx_free(&x);
        return CLI_FAIL;
    }

    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    /* The clock of the RTO starts now, after the confirmation. */
    int64_t t0s, t1s;
    uint32_t t0n, t1n;
    ob_time_now(&t0s, &t0n);
    double m0 = mono();
    dr_run r = {0};
    run_steps(&x, &r);
    double wall = mono() - m0;
    ob_time_now(&t1s, &t1n);

    char *host = ob_hostname(), *started = time_text(t0s), *finished = time_text(t1s);
    json_t *done = json_array(), *not_done = json_array();
    size_t k;
    json_t *rec;
    json_array_foreach(r.records, k, rec)
    {
        const char *st = json_string_value(json_object_get(rec, "status"));
        char *line = ob_xasprintf("%s (%s)", json_string_value(json_object_get(rec, "step")),
                                  json_string_value(json_object_get(rec, "command")));
        json_array_append_new(strcmp(st, "ok") == 0 ? done : not_done, json_string(line));
        free(line);
    }
    int code = r.failed ? CLI_FAIL : CLI_OK;
    /* The plan measured data loss against its own "now"; the report
     * measures it against the same reference as the achieved RPO. */
    json_array_foreach(json_object_get(plan, "jobs"), k, rec)
    {
        if (!json_object_get(rec, "data_loss_seconds"))
            continue;
        int64_t ref = x.o.target_time ? x.o.target_time : t0s;
        int64_t loss = ref - x.jobs[k].data_time;
        /* A physical job's check step may have learnt a newer data time
         * (how far recovery replayed). */
        char *dt = time_text(x.jobs[k].data_time);
        json_object_set_new(rec, "data_time", json_string(dt));
        json_object_set_new(rec, "data_time_basis", json_string(x.jobs[k].data_basis));
        free(dt);
        json_object_set_new(rec, "data_loss_seconds", json_integer(loss > 0 ? loss : 0));
        if (x.d.rpo)
            json_object_set_new(rec, "rpo_ok", json_boolean(loss <= x.d.rpo));
    }
    json_t *rep = json_pack(
        "{s:s, s:b, s:i, s:s, s:s, s:s, s:s, s:f, s:O, s:o, s:O, s:O, s:O, s:o, s:o, s:o}", "mode",
        x.o.rehearsal ? "rehearsal" : "production", "ok", code == CLI_OK, "exit_code", code,
        "host", host, "config", ctx->cfg->path, "started", started, "finished", finished,
        "duration_seconds", wall, "jobs", json_object_get(plan, "jobs"), "achieved",
        achieved(&x, &r, wall, t0s), "plan_rpo", json_object_get(plan, "rpo"), "plan_rto",
        json_object_get(plan, "rto"), "plan_problems", json_object_get(plan, "problems"), "steps",
        r.records, "verification", r.verification, "done", done);
    json_object_set_new(rep, "not_done", not_done);
    /* The headline figures also as top-level scalars: the dashboard
     * (report.c) shows dr-last.json's scalar fields. */
    {
        json_t *a = json_object_get(rep, "achieved");
        json_object_set(rep, "rto_seconds", json_object_get(a, "rto_seconds"));
        json_object_set(rep, "rpo_seconds", json_object_get(a, "rpo_seconds"));
        if (x.d.rto)
            json_object_set_new(rep, "rto_target_seconds", json_integer(x.d.rto));
        if (x.d.rpo)
            json_object_set_new(rep, "rpo_target_seconds", json_integer(x.d.rpo));
    }
    if (x.o.rehearsal)
        json_object_set_new(rep, "rehearsal_target", json_string(x.o.target));
    if (x.o.target_time_text)
        json_object_set_new(rep, "target_time", json_string(x.o.target_time_text));
    if (r.failed) {
        json_object_set_new(rep, "failed_step",
                            json_string(x.steps[r.failed - 1].name));
        json_object_set_new(rep, "error", json_string(r.error));
    }
    free(host);
    free(started);
    free(finished);

    dr_notify(ctx->cfg, rep, t0s, t1s);
    const char *rdir = x.o.report_dir ? x.o.report_dir : x.sdir;
    if (strcmp(rdir, x.sdir) == 0 && mkdir(x.sdir, 0700) < 0 && errno != EEXIST)
        ob_warn("cannot create the state directory %s: %s", x.sdir, strerror(errno));
    if (write_report(rdir, rep, t0s, &err) < 0) {
        ob_warn("the DR report was not written: %s", ob_err_msg(&err));
        ob_err_clear(&err);
    }
    /* For status and the dashboard: the last DR run (a rehearsal above
     * all: the proof that a recovery works). */
    {
        char *last = ob_xasprintf("%s/dr-last.json", x.sdir);
        char *text = json_dumps(rep, JSON_INDENT(1) | JSON_SORT_KEYS);
        if (mkdir(x.sdir, 0700) < 0 && errno != EEXIST)
            ob_warn("cannot create the state directory %s: %s", x.sdir, strerror(errno));
        else if (ob_write_file_atomic(last, text, strlen(text), 1, NULL, &err) < 0) {
            ob_warn("%s", ob_err_msg(&err));
            ob_err_clear(&err);
        }
        free(text);
        free(last);
    }
    state_unlock(lockfd);

    if (ctx->json) {
        cli_print_json(json_incref(rep));
    } else if (!ctx->quiet || code != CLI_OK) {
        json_t *a = json_object_get(rep, "achieved");
        char *w = ob_human_duration(wall);
        printf("dr run (%s): %s in %s\n", x.o.rehearsal ? "rehearsal" : "production",
               code == CLI_OK ? "ok" : "FAILED", w);
        free(w);
        json_array_foreach(r.records, k, rec)
        {
            json_t *secs = json_object_get(rec, "seconds");
            printf("  %2zu. %-18s %-8s", k + 1, json_string_value(json_object_get(rec, "step")),
                   json_string_value(json_object_get(rec, "status")));
            if (secs)
                printf(" %7.1fs", json_number_value(secs));
            const char *why = json_string_value(json_object_get(rec, "error"));
            if (why)
                printf("  %s", why);
            putchar('\n');
        }
        json_t *rpo = json_object_get(a, "rpo_seconds");
        if (json_is_integer(rpo)) {
            char *d = ob_human_duration((double)json_integer_value(rpo));
            printf("RPO achieved: %s of data lost (%s)\n", d,
                   json_string_value(json_object_get(a, "rpo_basis")));
            free(d);
        }
        w = ob_human_duration(wall);
        printf("RTO achieved: %s%s\n", w, code == CLI_OK ? "" : " (the recovery did not finish)");
        free(w);
        if (json_object_get(rep, "report_markdown"))
            printf("report: %s\n", json_string_value(json_object_get(rep, "report_markdown")));
    }
    if (code != CLI_OK) {
        fprintf(stderr, "opsbackup: error: dr run failed at step %d (%s): %s\n", r.failed,
                x.steps[r.failed - 1].name, r.error);
        json_array_foreach(done, k, rec)
            fprintf(stderr, "  done:     %s\n", json_string_value(rec));
        json_array_foreach(not_done, k, rec)
            fprintf(stderr, "  NOT done: %s\n", json_string_value(rec));
    }
    json_decref(rep);
    json_decref(plan);
    free(r.error);
    dr_ctx_free(&x);
    return code;
}
