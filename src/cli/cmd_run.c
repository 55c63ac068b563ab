/*
 * cmd_run.c — `opsbackup run JOB`: one configured job from start to end.
 *
 *   backup (to the job's first repository, copied to the others in the
 *   same step, so every repository holds the same snapshot)
 *   -> verify, if the job asks for it (a restore into a scratch database
 *      for db jobs, a full read-back for the others), on every repository
 *      that got the backup: each holds its own copy, and a copy that does
 *      not restore is as bad as a backup that does not
 *   -> retention: forget --prune on each repository that got the backup,
 *      unless the backup is incomplete or did not verify (on any of them)
 *   -> size check of each repository against [notify] size-limit
 *   -> the job's state (jobs/state.h), the notification, one summary.
 *
 * Each step is the opsbackup command an operator would type, run as a
 * child (jobs/step.h).  A failed backup stops the job there: retention
 * after a failed backup could delete the last good backups while the new
 * one does not exist, which is the one thing a backup job must never do.
 *
 * An incomplete backup (saved, but some entries could not be read) is a
 * failed run, yet its snapshot exists and is what a restore would take:
 * it is copied and verified like any other; only retention is skipped,
 * since forgetting complete backups to make room for it could leave no
 * complete one.
 *
 * Exit: 0 every step ok; 1 a step failed; 3 the only problems were
 * findings (verify found a mismatch, a repository is over size-limit);
 * 2 the config is wrong.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/config_check.h"
#include "cli/monitor.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "jobs/job.h"
#include "jobs/notify.h"
#include "jobs/state.h"
#include "jobs/step.h"
#include "sources/pg_logical.h"

/* Set by SIGTERM/SIGINT/SIGHUP.  A signal handler can only talk through a
 * flag like this (DECISIONS D36): the running step is either signalled
 * with us (the daemon and a terminal signal the whole process group: the
 * step is abandoned, which the repository survives) or not (`kill PID` of
 * this process only: the step finishes); either way no further step
 * starts. */
static volatile sig_atomic_t run_stop_signal;

static void on_stop_signal(int sig) { run_stop_signal = sig; }

typedef struct run_state {
    cli_ctx *ctx;
    const job *j;
    char **base;           /* global options for every step: -c FILE --json ... */
    size_t nbase;
    char **env;            /* OPSBACKUP_JOB=NAME for every step */
    json_t *steps;
    int failed;            /* a step failed (exit 1 unless only findings) */
    int only_findings;     /* every failure so far was a finding (exit 3) */
    char *failed_step, *error;
    char *snapshot;        /* the snapshot this run made (or found unchanged) */
    char **snap_ids;       /* per j->repos[i]: the ID of the backup there (a copy has
                            * an ID of its own), NULL where it is not */
    int verify_failed;     /* the backup did not verify on some repository */
    long long unread;      /* entries the backup could not read: > 0 is incomplete */
    json_t *backup;        /* the backup step's JSON (snapshot) */
    json_t *verify;
    json_t *repositories;
} run_state;

/* Note a failure; the first one names the job's failed step. */
static void run_fail(run_state *rs, const char *step, const char *error, int finding)
{
    if (!rs->failed) {
        rs->failed_step = ob_xstrdup(step);
        rs->error = ob_xstrdup(error);
        rs->only_findings = 1;
    }
    rs->failed = 1;
    if (!finding)
        rs->only_findings = 0;
}

/* Run one step; add its record to the summary.  Returns the step's JSON
 * output (borrowed from the record, may be NULL) or NULL when it failed
 * (*ok = 0). */
static json_t *run_step_judged(run_state *rs, const char *name, const char *repo_name,
                               char **args, size_t nargs, char *const *env, int judge, int *ok)
{
    char **argv = NULL;
    size_t n = 0;
    for (size_t i = 0; i < rs->nbase; i++)
        step_argv_push(&argv, &n, rs->base[i]);
    if (repo_name) {
        step_argv_push(&argv, &n, "-r");
        step_argv_push(&argv, &n, repo_name);
    }
    for (size_t i = 0; i < nargs; i++)
        step_argv_push(&argv, &n, args[i]);
    ob_info("job %s: %s%s%s", rs->j->name, name, repo_name ? " on " : "",
            repo_name ? repo_name : "");
    step_result res;
    ob_err err = OB_ERR_INIT;
    json_t *rec = json_pack("{s:s}", "step", name);
    if (repo_name)
        json_object_set_new(rec, "repository", json_string(repo_name));
    *ok = 0;
    if (step_run(argv, env, &res, &err) < 0) {
        json_object_set_new(rec, "ok", json_false());
        json_object_set_new(rec, "error", json_string(ob_err_msg(&err)));
        run_fail(rs, name, ob_err_msg(&err), 0);
        ob_err_clear(&err);
    } else {
        /* The step's own messages (warnings of a successful step too:
         * "permission denied, skipped") belong in our log. */
        if (*res.stderr_text)
            fprintf(stderr, "%s\n", res.stderr_text);
        *ok = res.code == 0;
        json_object_set_new(rec, "ok", json_boolean(*ok));
        json_object_set_new(rec, "exit_code", json_integer(res.code));
        json_object_set_new(rec, "seconds", json_real(res.seconds));
        if (res.json)
            json_object_set(rec, "result", res.json);
        if (!*ok) {
            char *why = step_error(&res);
            json_object_set_new(rec, "error", json_string(why));
            if (judge)
                run_fail(rs, name, why, res.code == CLI_PROBLEM);
            free(why);
        }
        step_result_free(&res);
    }
    step_argv_free(argv, n);
    json_array_append_new(rs->steps, rec);
    return json_object_get(rec, "result");
}

static json_t *run_step(run_state *rs, const char *name, const char *repo_name, char **args,
                        size_t nargs, int *ok)
{
    return run_step_judged(rs, name, repo_name, args, nargs, rs->env, 1, ok);
}

/* A snapshot ID as the copy reports it (versions before session 13 put
 * the note "(already there)" in its place). */
static int is_snapshot_id(const char *s)
{
    return *s && s[strspn(s, "0123456789abcdef")] == '\0';
}

static void backup_args(const job *j, char ***v, size_t *n)
{
    step_argv_push(v, n, "backup");
    switch (j->kind) {
    case JOB_DB:
        step_argv_push(v, n, "db");
        step_argv_push(v, n, "--logical");
        if (j->dump_command) {
            step_argv_push(v, n, "--dump-command");
            step_argv_push(v, n, j->dump_command);
        }
        break;
    case JOB_DB_PHYSICAL:
        step_argv_push(v, n, "db");
        step_argv_push(v, n, "--physical");
        step_argv_push(v, n, "--pgdata");
        step_argv_push(v, n, j->pgdata);
        if (j->full_every > 0) {
            char *d = ob_xasprintf("%llds", (long long)j->full_every);
            step_argv_push(v, n, "--full-every");
            step_argv_push(v, n, d);
            free(d);
        }
        break;
    case JOB_FILES:
    case JOB_CONFIG:
        step_argv_push(v, n, j->kind_name);
        for (size_t i = 0; i < j->nexcludes; i++) {
            step_argv_push(v, n, "--exclude");
            step_argv_push(v, n, j->excludes[i]);
        }
        break;
    }
    step_argv_push(v, n, "--set");
    step_argv_push(v, n, j->set);
    for (size_t i = 0; i < j->ntags; i++) {
        step_argv_push(v, n, "--tag");
        step_argv_push(v, n, j->tags[i]);
    }
    if (j->kind == JOB_FILES || j->kind == JOB_CONFIG) {
        step_argv_push(v, n, "--");
        for (size_t i = 0; i < j->npaths; i++)
            step_argv_push(v, n, j->paths[i]);
    }
}

/* Does the job forget anything?  Not with keep = forever or no keep-*. */
static int job_has_retention(const job *j)
{
    return !j->keep_forever && j->nkeep_args > 0;
}

/* Backup to the first repository, copied to the others by the same
 * command (-r A -r B: the source is read once).  Returns the set of
 * repositories that hold the snapshot, as a mask over j->repos, and
 * notes in rs->snap_ids the snapshot's ID in each of them. */
static unsigned char *step_backup(run_state *rs)
{
    const job *j = rs->j;
    char **args = NULL;
    size_t n = 0;
    for (size_t i = 1; i < j->nrepos; i++) {
        step_argv_push(&args, &n, "-r");
        step_argv_push(&args, &n, j->repos[i]);
    }
    backup_args(j, &args, &n);
    int ok;
    /* Judged here: a backup that saved its snapshot but could not copy it
     * everywhere exits 1, yet the backup step itself succeeded; the copy
     * steps below carry the failure. */
    json_t *out = run_step_judged(rs, "backup", j->repos[0], args, n, rs->env, 0, &ok);
    step_argv_free(args, n);
    unsigned char *have = ob_xcalloc(j->nrepos, 1);
    rs->snap_ids = ob_xcalloc(j->nrepos, sizeof *rs->snap_ids);
    json_t *rec = json_array_get(rs->steps, json_array_size(rs->steps) - 1);
    const char *id = json_string_value(json_object_get(out, "id"));
    if (!id) {
        const char *why = json_string_value(json_object_get(rec, "error"));
        run_fail(rs, "backup", why ? why : "the backup printed no snapshot", 0);
        json_object_set_new(rec, "ok", json_false());
        return have;
    }
    rs->snapshot = ob_xstrdup(id);
    rs->backup = out;
    /* Saved but incomplete (entries that could not be read): a failure of
     * the run.  The repositories still hold the snapshot, so it is copied,
     * verified and counted as theirs like any other; only retention is
     * skipped for it (cmd_run, below). */
    json_int_t unread = json_integer_value(json_object_get(json_object_get(out, "stats"), "errors"));
    if (unread > 0) {
        rs->unread = (long long)unread;
        char *why = ob_xasprintf("snapshot %.8s was saved, but %lld entr%s could not be read: it "
                                 "is incomplete%s",
                                 id, rs->unread, unread == 1 ? "y" : "ies",
                                 job_has_retention(j) ? " (retention skipped)" : "");
        run_fail(rs, "backup", why, 0);
        json_object_set_new(rec, "error", json_string(why));
        json_object_set_new(rec, "ok", json_false());
        free(why);
    } else {
        json_object_set_new(rec, "ok", json_true());
        json_object_del(rec, "error");
    }
    have[0] = 1;
    rs->snap_ids[0] = ob_xstrdup(id);
    /* The copies: one line each in the summary, as steps of their own. */
    json_t *copies = json_object_get(out, "copies"), *c;
    size_t k;
    json_array_foreach(copies, k, c)
    {
        const char *name = json_string_value(json_object_get(c, "repository"));
        int cok = json_is_true(json_object_get(c, "ok"));
        char *step = ob_xasprintf("copy to %s", name ? name : "?");
        json_t *rec = json_pack("{s:s, s:s?, s:b}", "step", step, "repository", name, "ok", cok);
        const char *why = json_string_value(json_object_get(c, "error"));
        if (why)
            json_object_set_new(rec, "error", json_string(why));
        json_array_append_new(rs->steps, rec);
        if (!cok)
            run_fail(rs, step, why ? why : "copy failed", 0);
        const char *cid = json_string_value(json_object_get(c, "snapshot"));
        for (size_t i = 1; i < j->nrepos; i++)
            if (cok && name && strcmp(name, j->repos[i]) == 0) {
                have[i] = 1;
                /* Already there or copied now, this is its ID there. */
                if (cid && is_snapshot_id(cid) && !rs->snap_ids[i])
                    rs->snap_ids[i] = ob_xstrdup(cid);
            }
        free(step);
    }
    return have;
}

static void step_retention(run_state *rs, const unsigned char *have)
{
    const job *j = rs->j;
    if (!job_has_retention(j))
        return; /* nothing to forget: every snapshot is kept */
    /* keep-daily and the other buckets are calendar days, weeks, ... of
     * the job's own timezone, the one its schedule runs in: a 02:00 Tokyo
     * backup is 17:00 UTC of the day before, and bucketed in UTC two runs
     * could share a "day" while another day has none.  forget buckets in
     * the TZ of its process, so the step gets TZ=ZONE (the zone passed
     * config_check's cron_tz_check: an IANA name). */
    char **env = NULL;
    size_t nenv = 0;
    for (size_t k = 0; rs->env && rs->env[k]; k++)
        step_argv_push(&env, &nenv, rs->env[k]);
    if (j->timezone) {
        char *tz = ob_xasprintf("TZ=%s", j->timezone);
        step_argv_push(&env, &nenv, tz);
        free(tz);
    }
    for (size_t i = 0; i < j->nrepos && !run_stop_signal; i++) {
        char *step = ob_xasprintf("forget on %s", j->repos[i]);
        if (!have[i]) {
            /* No new backup there: keep its old ones as they are. */
            json_array_append_new(rs->steps,
                                  json_pack("{s:s, s:s, s:b, s:s}", "step", step, "repository",
                                            j->repos[i], "skipped", 1, "reason",
                                            "the repository did not get this run's backup"));
            free(step);
            continue;
        }
        char **args = NULL;
        size_t n = 0;
        step_argv_push(&args, &n, "forget");
        step_argv_push(&args, &n, "--set");
        step_argv_push(&args, &n, j->set);
        step_argv_push(&args, &n, "--kind");
        step_argv_push(&args, &n, j->kind_name);
        for (size_t k = 0; k < j->nkeep_args; k++)
            step_argv_push(&args, &n, j->keep_args[k]);
        step_argv_push(&args, &n, "--prune");
        int ok;
        run_step_judged(rs, step, j->repos[i], args, n, env, 1, &ok);
        step_argv_free(args, n);
        free(step);
    }
    step_argv_free(env, nenv);
}

/* What a failed verify found, from its JSON (it reports findings on
 * stdout, so its stderr has no "error:" line to quote). */
static char *verify_finding(const json_t *out)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(out, "tables"), key, v)
    {
        if (!json_is_true(json_object_get(v, "ok"))) {
            return pg_logical_count_describe(key, v, "the restored copy");
        }
    }
    size_t i;
    json_array_foreach(json_object_get(out, "checks"), i, v)
    {
        if (!json_is_true(json_object_get(v, "ok")))
            return ob_xasprintf("check '%s' failed: %s",
                                json_string_value(json_object_get(v, "sql")),
                                json_string_value(json_object_get(v, "error")));
    }
    json_int_t errors = json_integer_value(json_object_get(out, "errors"));
    if (errors)
        return ob_xasprintf("%lld file%s could not be read back", (long long)errors,
                            errors == 1 ? "" : "s");
    return NULL;
}

/* Verify the backup in repository i (its own snapshot ID there); returns
 * the verify's record for the job state. */
static json_t *verify_one(run_state *rs, size_t i)
{
    const job *j = rs->j;
    char **args = NULL;
    size_t n = 0;
    step_argv_push(&args, &n, "verify");
    step_argv_push(&args, &n, j->kind == JOB_DB ? "db" : "files");
    step_argv_push(&args, &n, rs->snap_ids[i]);
    for (size_t k = 0; j->kind == JOB_DB && k < j->nverify_sql; k++) {
        step_argv_push(&args, &n, "--check-sql");
        step_argv_push(&args, &n, j->verify_sql[k]);
    }
    int ok;
    char *step = ob_xasprintf("verify on %s", j->repos[i]);
    json_t *out = run_step(rs, step, j->repos[i], args, n, &ok);
    step_argv_free(args, n);
    json_t *last = json_array_get(rs->steps, json_array_size(rs->steps) - 1);
    char *finding = !ok && out ? verify_finding(out) : NULL;
    if (finding) {
        json_object_set_new(last, "error", json_string(finding));
        if (rs->failed_step && strcmp(rs->failed_step, step) == 0) {
            free(rs->error);
            rs->error = finding;
        } else {
            free(finding);
        }
    }
    if (!ok)
        rs->verify_failed = 1;
    free(step);
    json_t *v = json_pack("{s:s, s:s, s:b, s:O*}", "repository", j->repos[i], "snapshot",
                          rs->snap_ids[i], "ok", ok, "seconds", json_object_get(last, "seconds"));
    if (out)
        json_object_set(v, "result", out);
    else
        json_object_set(v, "error", json_object_get(last, "error"));
    return v;
}

/* Verify on every repository that holds the backup.  The job state keeps
 * one verify record: ok only if every repository verified, with the first
 * repository's result and time at the top (what `dr plan` estimates a
 * restore from) and each repository's outcome under "repositories". */
static void step_verify(run_state *rs, const unsigned char *have)
{
    const job *j = rs->j;
    json_t *per = json_array();
    json_t *first = NULL;
    int all_ok = 1;
    for (size_t i = 0; i < j->nrepos && !run_stop_signal; i++) {
        if (!rs->snap_ids[i]) {
            /* have[i] without an ID: a copy that did not say under which
             * ID (older versions, for a snapshot already there). */
            json_array_append_new(
                rs->steps,
                json_pack("{s:s+, s:s, s:b, s:s}", "step", "verify on ", j->repos[i],
                          "repository", j->repos[i], "skipped", 1, "reason",
                          have[i] ? "the snapshot was already there; its ID there is not known"
                                  : "the repository did not get this run's backup"));
            continue;
        }
        json_t *v = verify_one(rs, i);
        if (!json_is_true(json_object_get(v, "ok")))
            all_ok = 0;
        if (!first)
            first = v;
        json_array_append_new(per, v);
    }
    if (!first) {
        json_decref(per);
        return;
    }
    char *now = NULL;
    int64_t sec;
    ob_time_now(&sec, NULL);
    now = ob_time_rfc3339(sec, 0);
    rs->verify = json_pack("{s:s, s:s, s:b, s:O*, s:o}", "time", now, "snapshot", rs->snapshot,
                           "ok", all_ok, "seconds", json_object_get(first, "seconds"),
                           "repositories", per);
    free(now);
    json_t *r = json_object_get(first, "result");
    if (r)
        json_object_set(rs->verify, "result", r);
    else
        json_object_set(rs->verify, "error", json_object_get(first, "error"));
    if (!all_ok) {
        /* Which repository failed is in the error of the step that failed;
         * say it in the verify record too. */
        size_t k;
        json_t *v;
        json_array_foreach(per, k, v)
        {
            if (!json_is_true(json_object_get(v, "ok"))) {
                json_object_set(rs->verify, "failed_repository", json_object_get(v, "repository"));
                break;
            }
        }
    }
}

/* Every repository of the job against [notify] size-limit. */
static void step_sizes(run_state *rs)
{
    rs->repositories = json_array();
    for (size_t i = 0; i < rs->j->nrepos; i++) {
        char *problem;
        json_t *o = monitor_repo(rs->ctx, rs->j->repos[i], 1, &problem);
        json_array_append_new(rs->repositories, o);
        if (!problem)
            continue;
        if (json_object_get(o, "error")) {
            /* Not a failure of this job: the backup step said what it had to. */
            ob_warn("%s", problem);
        } else {
            json_array_append_new(rs->steps,
                                  json_pack("{s:s, s:s, s:b, s:i, s:s}", "step", "size check",
                                            "repository", rs->j->repos[i], "ok", 0, "exit_code",
                                            CLI_PROBLEM, "error", problem));
            run_fail(rs, "size check", problem, 1);
        }
        free(problem);
    }
}

static void print_summary(FILE *f, const json_t *sum)
{
    const char *jobname = json_string_value(json_object_get(sum, "job"));
    int ok = json_is_true(json_object_get(sum, "ok"));
    fprintf(f, "job %s (%s): %s in %.1fs\n", jobname,
           json_string_value(json_object_get(sum, "kind")),
           ok ? "ok" : json_integer_value(json_object_get(sum, "exit_code")) == CLI_PROBLEM
                           ? "PROBLEM"
                           : "FAILED",
           json_real_value(json_object_get(sum, "duration_seconds")));
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(sum, "steps"), i, st)
    {
        const char *name = json_string_value(json_object_get(st, "step"));
        const char *repo = json_string_value(json_object_get(st, "repository"));
        char *label = repo && strncmp(name, "backup", 6) != 0 && strstr(name, repo) == NULL
                          ? ob_xasprintf("%s on %s", name, repo)
                          : ob_xasprintf("%s", name);
        const char *res = json_is_true(json_object_get(st, "skipped")) ? "skipped"
                          : json_is_true(json_object_get(st, "ok"))    ? "ok"
                                                                       : "FAILED";
        fprintf(f, "  %-22s %-7s", label, res);
        json_t *secs = json_object_get(st, "seconds");
        if (secs)
            fprintf(f, " %6.1fs", json_real_value(secs));
        json_t *r = json_object_get(st, "result");
        const char *why = json_string_value(json_object_get(st, "error"));
        if (!why)
            why = json_string_value(json_object_get(st, "reason"));
        if (why) {
            fprintf(f, "  %s", why);
        } else if (strcmp(name, "backup") == 0 && r) {
            json_t *stats = json_object_get(r, "stats");
            char *added = ob_human_bytes(
                (uint64_t)json_integer_value(json_object_get(stats, "bytes_added")));
            fprintf(f, "  snapshot %s%s, %s added",
                   json_string_value(json_object_get(r, "short_id")),
                   json_is_true(json_object_get(r, "unchanged")) ? " (unchanged)" : "", added);
            free(added);
        } else if (strncmp(name, "forget", 6) == 0 && r) {
            json_t *pr = json_object_get(r, "prune");
            char *freed =
                ob_human_bytes((uint64_t)json_integer_value(json_object_get(pr, "bytes_freed")));
            fprintf(f, "  %lld removed, %lld kept, %s freed",
                   (long long)json_integer_value(json_object_get(r, "removed")),
                   (long long)json_integer_value(json_object_get(r, "kept")), freed);
            free(freed);
        }
        fputc('\n', f);
        free(label);
    }
    json_array_foreach(json_object_get(sum, "repositories"), i, st)
    {
        json_t *b = json_object_get(st, "bytes");
        if (!b)
            continue;
        char *h = ob_human_bytes((uint64_t)json_integer_value(b));
        fprintf(f, "  repository %s: %s", json_string_value(json_object_get(st, "name")), h);
        const char *lim = json_string_value(json_object_get(st, "size_limit_text"));
        if (lim)
            fprintf(f, " of %s limit%s", lim,
                    json_is_true(json_object_get(st, "over_limit")) ? " (OVER)" : "");
        fputc('\n', f);
        free(h);
    }
}

/* Tell [notify] how the run went (failures, or every run with on =
 * always).  A notification that cannot be sent is logged and noted in the
 * summary; it never changes the job's own result. */
static void run_notify(const config *cfg, const job *j, json_t *sum, int64_t t0, int64_t t1)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) {
        print_summary(f, sum);
        fclose(f);
    }
    notify_event ev = {
        .job = j->name,
        .ok = json_is_true(json_object_get(sum, "ok")),
        .step = json_string_value(json_object_get(sum, "failed_step")),
        .error = json_string_value(json_object_get(sum, "error")),
        .summary = text,
        .details = sum,
        .started = t0,
        .finished = t1,
    };
    notify_outcome(cfg, &ev, sum);
    free(text);
}

int cmd_run(cli_ctx *ctx, int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("run");
    int i = cli_parse(ctx, cmd, argc, argv, NULL, "", NULL, NULL);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (argc - i != 1)
        return cli_usage(cmd, "run takes one JOB (a [job.NAME] of the config file)");
    const char *name = argv[i];
    ob_err err = OB_ERR_INIT;
    if (cli_load_config(ctx, &err) < 0)
        return cli_fail(ctx, &err);
    if (!ctx->cfg) {
        ob_err_set(&err, OB_EUSAGE, "run needs a config file with [job.%s] (-c FILE, "
                   "$OPSBACKUP_CONFIG or /etc/opsbackup/opsbackup.conf)", name);
        return cli_fail(ctx, &err);
    }
    /* A job from a config with mistakes could back up the wrong thing or
     * forget too much: refuse it whole, as `config check` would. */
    config_check_result chk;
    config_check(ctx->cfg, &chk);
    if (chk.n) {
        for (size_t k = 0; k < chk.n; k++)
            fprintf(stderr, "%s:%d: %s\n", ctx->cfg->path, chk.problems[k].line,
                    chk.problems[k].message);
        ob_error("%zu problem%s in %s; job '%s' not run", chk.n,
                chk.n == 1 ? "" : "s", ctx->cfg->path, name);
        config_check_free(&chk);
        return CLI_USAGE;
    }
    config_check_free(&chk);
    job *j;
    if (job_load(ctx->cfg, name, &j, &err) < 0)
        return err.code == OB_ENOTFOUND ? (cli_fail(ctx, &err), CLI_USAGE) : cli_fail(ctx, &err);

    char *sdir = state_dir();
    int lockfd;
    if (state_lock_job(sdir, j->name, &lockfd, &err) < 0) {
        free(sdir);
        job_free(j);
        return cli_fail(ctx, &err);
    }
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    run_state rs = {.ctx = ctx, .j = j, .steps = json_array()};
    char *cfg_abs = realpath(ctx->cfg->path, NULL);
    step_argv_push(&rs.base, &rs.nbase, "-c");
    step_argv_push(&rs.base, &rs.nbase, cfg_abs ? cfg_abs : ctx->cfg->path);
    free(cfg_abs);
    step_argv_push(&rs.base, &rs.nbase, "--json");
    step_argv_push(&rs.base, &rs.nbase, "--no-progress");
    if (ctx->verbose)
        step_argv_push(&rs.base, &rs.nbase, "-v");
    /* The steps read the job's own settings (its conninfo) from the config
     * by name: no secret passes through their argv or environment. */
    size_t nenv = 0;
    char *jobenv = ob_xasprintf("OPSBACKUP_JOB=%s", j->name);
    step_argv_push(&rs.env, &nenv, jobenv);
    free(jobenv);

    int64_t t0s;
    uint32_t t0n;
    ob_time_now(&t0s, &t0n);
    unsigned char *have = step_backup(&rs);
    /* Verify before retention: a backup that verify rejects must not make
     * room for itself by forgetting the older ones that still pass. */
    if (rs.snapshot && j->verify && !run_stop_signal)
        step_verify(&rs, have);
    /* Decided by the backup's own state and the verify itself, not by
     * "something failed since the backup": a copy that failed before a
     * failed verify must not let retention run on the repositories that
     * did get the backup.  A job without retention has nothing to skip. */
    if (rs.snapshot && !run_stop_signal && (rs.unread || rs.verify_failed) &&
        job_has_retention(j)) {
        /* Shaped like every other skipped step: "skipped" and a "reason". */
        const char *why =
            rs.unread && rs.verify_failed
                ? "the new backup is incomplete and did not verify, so the older ones stay"
            : rs.unread ? "the new backup is incomplete (entries could not be read), so the "
                          "older ones stay"
                        : "the new backup did not verify, so the older ones stay";
        json_array_append_new(rs.steps, json_pack("{s:s, s:b, s:s}", "step", "retention",
                                                  "skipped", 1, "reason", why));
    } else if (rs.snapshot && !run_stop_signal) {
        step_retention(&rs, have);
    }
    if (!run_stop_signal)
        step_sizes(&rs);
    if (run_stop_signal) {
        char *why = ob_xasprintf("stopped by signal %d before the job ended", (int)run_stop_signal);
        run_fail(&rs, "interrupted", why, 0);
        free(why);
    }
    free(have);
    int64_t t1s;
    uint32_t t1n;
    ob_time_now(&t1s, &t1n);

    int code = !rs.failed ? CLI_OK : rs.only_findings ? CLI_PROBLEM : CLI_FAIL;
    char *host = ob_hostname();
    char *started = ob_time_rfc3339(t0s, 0), *finished = ob_time_rfc3339(t1s, 0);
    json_t *stats = json_object_get(rs.backup, "stats");
    json_t *sum = json_pack(
        "{s:s, s:s, s:s, s:s, s:b, s:i, s:s, s:s, s:f, s:s?, s:s?, s:s?, s:o, s:o, s:o}", "job",
        j->name, "kind", j->kind_name, "set", j->set, "host", host, "ok", code == CLI_OK,
        "exit_code", code, "started", started, "finished", finished, "duration_seconds",
        (double)(t1s - t0s) + ((double)t1n - (double)t0n) / 1e9, "snapshot", rs.snapshot,
        "failed_step", rs.failed_step, "error", rs.error, "steps", rs.steps, "verify",
        rs.verify ? rs.verify : json_null(), "repositories",
        rs.repositories ? rs.repositories : json_array());
    /* When the data of this run's backup was taken: what the job's age
     * (its RPO) is about, not when the run ended after copy, verify and
     * retention.  An unchanged config snapshot is older than this run, but
     * the run found the source equal to it at its start. */
    if (rs.snapshot) {
        const char *st = json_string_value(json_object_get(rs.backup, "time"));
        int unchanged = json_is_true(json_object_get(rs.backup, "unchanged"));
        json_object_set_new(sum, "snapshot_time",
                            json_string(st && !unchanged ? st : json_string_value(json_object_get(
                                                                    sum, "started"))));
    }
    if (stats) {
        json_object_set(sum, "bytes_added", json_object_get(stats, "bytes_added"));
        json_object_set(sum, "bytes_total", json_object_get(stats, "bytes"));
        json_object_set(sum, "files", json_object_get(stats, "files"));
    }
    /* A physical backup says whether it was full (D75); status shows the
     * job's last one. */
    json_t *full = json_object_get(json_object_get(rs.backup, "extra"), "full");
    if (json_is_boolean(full))
        json_object_set(sum, "full", full);
    free(host);
    free(started);
    free(finished);

    run_notify(ctx->cfg, j, sum, t0s, t1s);
    if (state_record_run(sdir, j->name, sum, &err) < 0) {
        /* The backup happened; say so, but status will not know it. */
        ob_warn("%s", ob_err_msg(&err));
        ob_err_clear(&err);
    }
    state_unlock(lockfd);
    free(sdir);

    if (ctx->json)
        cli_print_json(json_incref(sum));
    else if (!ctx->quiet || code != CLI_OK)
        print_summary(stdout, sum);
    if (code != CLI_OK)
        ob_error("job %s failed at step %s: %s", j->name,
                rs.failed_step, rs.error);
    json_decref(sum);
    step_argv_free(rs.base, rs.nbase);
    step_argv_free(rs.env, nenv);
    free(rs.failed_step);
    free(rs.error);
    free(rs.snapshot);
    for (size_t k = 0; rs.snap_ids && k < j->nrepos; k++)
        free(rs.snap_ids[k]);
    free(rs.snap_ids);
    job_free(j);
    return code;
}
