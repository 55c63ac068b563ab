/*
 * monitor.c — status of jobs and repositories (monitor.h).
 */
#include "cli/monitor.h"

#include <stdlib.h>
#include <string.h>

#include "cli/config_check.h"
#include "core/buf.h"
#include "core/util.h"
#include "jobs/job.h"
#include "jobs/state.h"

static void add_problem(json_t *doc, json_t *jobdoc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_problem(json_t *doc, json_t *jobdoc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (!msg)
        return;
    json_array_append_new(json_object_get(doc, "problems"), json_string(msg));
    if (jobdoc)
        json_array_append_new(json_object_get(jobdoc, "problems"), json_string(msg));
    free(msg);
}


static const char *str_or(const json_t *o, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : dflt;
}

static int64_t time_of(const json_t *o, const char *key)
{
    const char *t = json_string_value(json_object_get(o, key));
    int64_t sec;
    if (!t || ob_time_parse(t, &sec, NULL) < 0)
        return -1;
    return sec;
}

int64_t monitor_success_time(const json_t *last_success)
{
    /* The RPO is about the data: a job whose hourly backup takes 50 min of
     * copy and verify after its snapshot is 50 min older than its end
     * says.  State written before snapshot_time existed: the run's start,
     * which is at most a step earlier than its snapshot. */
    int64_t t = time_of(last_success, "snapshot_time");
    return t >= 0 ? t : time_of(last_success, "started");
}

static void collect_job(json_t *doc, const job *j, const char *sdir, time_t now)
{
    json_t *jd = json_pack("{s:s, s:s, s:s, s:[]}", "name", j->name, "kind", j->kind_name, "set",
                           j->set, "problems");
    json_array_append_new(json_object_get(doc, "jobs"), jd);
    if (j->has_schedule) {
        json_object_set_new(jd, "schedule", json_string(j->schedule_text));
        if (j->timezone)
            json_object_set_new(jd, "timezone", json_string(j->timezone));
        time_t next;
        ob_err e = OB_ERR_INIT;
        if (cron_next(&j->schedule, now, j->timezone, &next, &e) == 0) {
            char *t = ob_time_rfc3339(next, 0);
            json_object_set_new(jd, "next_run", json_string(t));
            free(t);
        }
        ob_err_clear(&e);
    }
    json_t *st;
    ob_err err = OB_ERR_INIT;
    if (state_load(sdir, j->name, &st, &err) < 0) {
        add_problem(doc, jd, "job %s: %s", j->name, ob_err_msg(&err));
        ob_err_clear(&err);
        st = json_object();
    }
    static const char *const copied[] = {"runs_total", "failures_total", "consecutive_failures",
                                         "last_run", "last_success", "last_verify", "last_full",
                                         "history", NULL};
    for (size_t i = 0; copied[i]; i++) {
        json_t *v = json_object_get(st, copied[i]);
        if (!v)
            continue;
        if (strcmp(copied[i], "last_run") == 0 || strcmp(copied[i], "last_success") == 0) {
            /* The summary without its bulky step outputs. */
            json_t *c = json_deep_copy(v);
            json_object_del(c, "steps");
            json_object_del(c, "repositories");
            json_object_del(c, "verify");
            json_object_set_new(jd, copied[i], c);
        } else {
            json_object_set(jd, copied[i], v);
        }
    }
    int64_t max_age = job_max_age(j, now);
    json_object_set_new(jd, "max_age_seconds", json_integer(max_age));
    int64_t done = monitor_success_time(json_object_get(st, "last_success"));
    int stale = 0;
    if (done >= 0) {
        int64_t age = (int64_t)now - done;
        json_object_set_new(jd, "age_seconds", json_integer(age));
        if (max_age > 0 && age > max_age) {
            stale = 1;
            char *a = ob_human_duration((double)age), *m = ob_human_duration((double)max_age);
            add_problem(doc, jd, "job %s: last success %s ago, older than its limit %s%s", j->name,
                        a, m, j->rpo ? " (rpo)" : " (2x the schedule interval)");
            free(a);
            free(m);
        }
    } else if (max_age > 0) {
        stale = 1;
        add_problem(doc, jd, "job %s: has never succeeded", j->name);
    }
    json_object_set_new(jd, "stale", json_boolean(stale));
    json_t *last = json_object_get(st, "last_run");
    if (last && !json_is_true(json_object_get(last, "ok")))
        add_problem(doc, jd, "job %s: the last run (%s) failed at step %s: %s", j->name,
                    json_string_value(json_object_get(last, "started")),
                    json_string_value(json_object_get(last, "failed_step")),
                    json_string_value(json_object_get(last, "error")));
    json_t *ver = json_object_get(st, "last_verify");
    if (ver && !json_is_true(json_object_get(ver, "ok")))
        add_problem(doc, jd, "job %s: the last verify (%s) failed", j->name,
                    json_string_value(json_object_get(ver, "time")));
    json_decref(st);
}

unsigned long long monitor_size_limit(const config *c)
{
    const config_section *ns = c ? config_section_get(c, "notify") : NULL;
    const char *lt = ns ? config_get(ns, "size-limit") : NULL;
    unsigned long long limit = 0;
    if (lt && config_parse_size(lt, &limit) < 0)
        limit = 0; /* config check reports it */
    return limit;
}

json_t *monitor_repo(cli_ctx *ctx, const char *name, int with_size, char **problem)
{
    *problem = NULL;
    char *sec = ob_xasprintf("repo.%s", name);
    const config_section *s = config_section_get(ctx->cfg, sec);
    free(sec);
    json_t *rd = json_pack("{s:s, s:s?}", "name", name, "url", s ? config_get(s, "url") : NULL);
    if (!with_size)
        return rd;
    uint64_t bytes;
    ob_err err = OB_ERR_INIT;
    if (cli_repo_size(ctx, name, &bytes, &err) < 0) {
        json_object_set_new(rd, "error", json_string(ob_err_msg(&err)));
        *problem = ob_xstrdup(ob_err_msg(&err));
        ob_err_clear(&err);
        return rd;
    }
    json_object_set_new(rd, "bytes", json_integer((json_int_t)bytes));
    unsigned long long limit = monitor_size_limit(ctx->cfg);
    if (limit) {
        json_object_set_new(rd, "size_limit", json_integer((json_int_t)limit));
        /* As the operator wrote it: 100GB is not "93.1 GiB" to them. */
        json_object_set_new(rd, "size_limit_text",
                            json_string(config_get(config_section_get(ctx->cfg, "notify"),
                                                   "size-limit")));
        json_object_set_new(rd, "over_limit", json_boolean(bytes > limit));
        if (bytes > limit) {
            char *b = ob_human_bytes(bytes);
            *problem = ob_xasprintf("repository %s: %s stored, over the size-limit %s of "
                                    "[notify]", name, b,
                                    json_string_value(json_object_get(rd, "size_limit_text")));
            free(b);
        }
    }
    return rd;
}

/* The last `dr run` (or rehearsal): its headline from STATE_DIR/dr-last.json. */
static void collect_dr(json_t *doc, const char *sdir)
{
    char *path = ob_xasprintf("%s/dr-last.json", sdir);
    json_t *full = json_load_file(path, 0, NULL);
    free(path);
    if (!json_is_object(full)) {
        json_decref(full);
        return;
    }
    json_t *dr = json_object();
    static const char *const keys[] = {"mode", "ok", "started", "finished", "duration_seconds",
                                       "rto_seconds", "rpo_seconds", "rto_target_seconds",
                                       "rpo_target_seconds", "failed_step", "error",
                                       "rehearsal_target", NULL};
    for (size_t i = 0; keys[i]; i++) {
        json_t *v = json_object_get(full, keys[i]);
        if (v && !json_is_null(v))
            json_object_set(dr, keys[i], v);
    }
    json_decref(full);
    json_object_set_new(doc, "dr", dr);
    if (!json_is_true(json_object_get(dr, "ok")))
        add_problem(doc, NULL, "the last DR %s (%s) failed at step %s: %s",
                    str_or(dr, "mode", "run"), str_or(dr, "started", "?"),
                    str_or(dr, "failed_step", "?"), str_or(dr, "error", "see its report"));
}

int monitor_collect(cli_ctx *ctx, time_t now, int with_sizes, json_t **out, ob_err *err)
{
    *out = NULL;
    if (cli_load_config(ctx, err) < 0)
        return -1;
    if (!ctx->cfg)
        return ob_err_set(err, OB_EUSAGE, "no config file: status reports on the jobs of one "
                          "(-c FILE, $OPSBACKUP_CONFIG or /etc/opsbackup/opsbackup.conf)");
    job **jobs;
    size_t njobs;
    if (job_load_all(ctx->cfg, &jobs, &njobs, err) < 0)
        return -1;
    char *host = ob_hostname();
    char *t = ob_time_rfc3339(now, 0);
    json_t *doc = json_pack("{s:s, s:s, s:s, s:[], s:[], s:[]}", "time", t, "host", host,
                            "config", ctx->cfg->path, "problems", "jobs", "repositories");
    free(t);
    free(host);
    char *sdir = state_dir();
    for (size_t i = 0; i < njobs; i++)
        collect_job(doc, jobs[i], sdir, now);
    collect_dr(doc, sdir);
    free(sdir);
    job_free_all(jobs, njobs);

    for (size_t i = 0; i < ctx->cfg->n; i++) {
        const char *name = ctx->cfg->sections[i].name;
        if (strncmp(name, "repo.", 5) != 0 || !name[5])
            continue;
        char *problem;
        json_array_append_new(json_object_get(doc, "repositories"),
                              monitor_repo(ctx, name + 5, with_sizes, &problem));
        if (problem)
            add_problem(doc, NULL, "%s", problem);
        free(problem);
    }
    json_object_set_new(doc, "ok", json_boolean(json_array_size(json_object_get(doc, "problems")) == 0));
    *out = doc;
    return 0;
}

/* Label values escape backslash, double quote and newline (exposition
 * format); job and repository names come from the config. */
static void label(ob_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            ob_buf_append(b, "\\", 1);
        if (*s == '\n')
            ob_buf_append(b, "\\n", 2);
        else
            ob_buf_append(b, s, 1);
    }
}

static void metric_head(ob_buf *b, const char *name, const char *type, const char *help)
{
    char *s = ob_xasprintf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    ob_buf_append(b, s, strlen(s));
    free(s);
}

static void metric(ob_buf *b, const char *name, const char *lname, const char *lvalue, double v)
{
    ob_buf_append(b, name, strlen(name));
    ob_buf_append(b, "{", 1);
    ob_buf_append(b, lname, strlen(lname));
    ob_buf_append(b, "=\"", 2);
    label(b, lvalue);
    char *s = ob_xasprintf("\"} %.15g\n", v);
    ob_buf_append(b, s, strlen(s));
    free(s);
}

typedef struct metric_def {
    const char *name, *type, *help;
    /* Where the value is: a key of the job document, or "OBJ.KEY"; times
     * (RFC 3339 strings) become Unix seconds, booleans 0/1. */
    const char *path;
} metric_def;

static int value_at(const json_t *o, const char *path, double *v)
{
    const char *dot = strchr(path, '.');
    if (dot) {
        char *head = ob_xstrndup(path, (size_t)(dot - path));
        const json_t *sub = json_object_get(o, head);
        free(head);
        return sub ? value_at(sub, dot + 1, v) : -1;
    }
    const json_t *x = json_object_get(o, path);
    if (json_is_number(x))
        *v = json_number_value(x);
    else if (json_is_boolean(x))
        *v = json_is_true(x);
    else if (json_is_string(x)) {
        int64_t sec;
        if (ob_time_parse(json_string_value(x), &sec, NULL) < 0)
            return -1;
        *v = (double)sec;
    } else
        return -1;
    return 0;
}

char *monitor_metrics_text(const json_t *doc)
{
    static const metric_def jm[] = {
        {"opsbackup_job_last_success_timestamp_seconds", "gauge",
         "End of the job's last successful run (Unix time).", "last_success.finished"},
        {"opsbackup_job_last_run_timestamp_seconds", "gauge",
         "Start of the job's last run (Unix time).", "last_run.started"},
        {"opsbackup_job_last_run_success", "gauge", "1 if the job's last run succeeded.",
         "last_run.ok"},
        {"opsbackup_job_last_run_duration_seconds", "gauge", "Wall time of the job's last run.",
         "last_run.duration_seconds"},
        {"opsbackup_job_last_run_bytes_added", "gauge",
         "Bytes the job's last run added to its repository.", "last_run.bytes_added"},
        {"opsbackup_job_last_run_bytes_total", "gauge",
         "Size of what the job's last run backed up.", "last_run.bytes_total"},
        {"opsbackup_job_runs_total", "counter", "Runs of the job.", "runs_total"},
        {"opsbackup_job_failures_total", "counter", "Failed runs of the job.", "failures_total"},
        {"opsbackup_job_consecutive_failures", "gauge", "Failed runs since the last success.",
         "consecutive_failures"},
        {"opsbackup_job_age_seconds", "gauge",
         "Seconds since the snapshot of the job's last successful run was taken.",
         "age_seconds"},
        {"opsbackup_job_max_age_seconds", "gauge",
         "Age after which the job is stale (its rpo, else 2x its schedule interval).",
         "max_age_seconds"},
        {"opsbackup_job_stale", "gauge", "1 if the job's last success is too old.", "stale"},
        {"opsbackup_job_last_verify_success", "gauge", "1 if the job's last verify succeeded.",
         "last_verify.ok"},
        {"opsbackup_job_last_verify_timestamp_seconds", "gauge",
         "Time of the job's last verify (Unix time).", "last_verify.time"},
        {"opsbackup_job_last_full_timestamp_seconds", "gauge",
         "Time of the job's last full physical backup (Unix time).", "last_full.time"},
    };
    static const metric_def rm[] = {
        {"opsbackup_repository_up", "gauge", "1 if the repository could be listed.", NULL},
        {"opsbackup_repository_size_bytes", "gauge", "Bytes stored in the repository.", "bytes"},
        {"opsbackup_repository_size_limit_bytes", "gauge", "The size-limit of [notify].",
         "size_limit"},
    };
    ob_buf b = OB_BUF_INIT;
    const json_t *jobs = json_object_get(doc, "jobs"), *repos = json_object_get(doc, "repositories");
    for (size_t m = 0; m < sizeof jm / sizeof jm[0]; m++) {
        metric_head(&b, jm[m].name, jm[m].type, jm[m].help);
        size_t i;
        const json_t *jd;
        json_array_foreach(jobs, i, jd)
        {
            double v;
            if (value_at(jd, jm[m].path, &v) == 0)
                metric(&b, jm[m].name, "job", json_string_value(json_object_get(jd, "name")), v);
        }
    }
    for (size_t m = 0; m < sizeof rm / sizeof rm[0]; m++) {
        metric_head(&b, rm[m].name, rm[m].type, rm[m].help);
        size_t i;
        const json_t *rd;
        json_array_foreach(repos, i, rd)
        {
            double v;
            const char *name = json_string_value(json_object_get(rd, "name"));
            if (!rm[m].path) {
                if (json_object_get(rd, "bytes") || json_object_get(rd, "error"))
                    metric(&b, rm[m].name, "repository", name, !json_object_get(rd, "error"));
            } else if (value_at(rd, rm[m].path, &v) == 0) {
                metric(&b, rm[m].name, "repository", name, v);
            }
        }
    }
    const json_t *dr = json_object_get(doc, "dr");
    static const metric_def dm[] = {
        {"opsbackup_dr_last_success", "gauge", "1 if the last DR run or rehearsal succeeded.", "ok"},
        {"opsbackup_dr_last_timestamp_seconds", "gauge", "End of the last DR run (Unix time).",
         "finished"},
        {"opsbackup_dr_rto_seconds", "gauge", "Recovery time the last DR run achieved.",
         "rto_seconds"},
        {"opsbackup_dr_rpo_seconds", "gauge", "Data loss the last DR run achieved.",
         "rpo_seconds"},
    };
    for (size_t m = 0; dr && m < sizeof dm / sizeof dm[0]; m++) {
        double v;
        if (value_at(dr, dm[m].path, &v) < 0)
            continue;
        metric_head(&b, dm[m].name, dm[m].type, dm[m].help);
        metric(&b, dm[m].name, "mode", str_or(dr, "mode", "run"), v);
    }
    metric_head(&b, "opsbackup_problems", "gauge", "Problems status reports (0 when all is well).");
    char *s = ob_xasprintf("opsbackup_problems %zu\n",
                           json_array_size(json_object_get(doc, "problems")));
    ob_buf_append(&b, s, strlen(s));
    free(s);
    ob_buf_append(&b, "", 1);
    return (char *)b.data;
}

void monitor_print_status(FILE *f, const json_t *doc)
{
    fprintf(f, "%-16s %-12s %-20s %-10s %-12s %s\n", "JOB", "KIND", "LAST SUCCESS", "AGE",
            "LIMIT", "LAST RUN");
    size_t i;
    const json_t *jd;
    json_array_foreach(json_object_get(doc, "jobs"), i, jd)
    {
        const json_t *ls = json_object_get(jd, "last_success"), *lr = json_object_get(jd, "last_run");
        int64_t done = monitor_success_time(ls);
        char *when = done >= 0 ? ob_time_local(done) : ob_xstrdup("never");
        const json_t *age = json_object_get(jd, "age_seconds");
        char *a = age ? ob_human_duration((double)json_integer_value(age)) : ob_xstrdup("-");
        int64_t max = json_integer_value(json_object_get(jd, "max_age_seconds"));
        char *m = max > 0 ? ob_human_duration((double)max) : ob_xstrdup("-");
        const char *last = !lr                                     ? "-"
                           : json_is_true(json_object_get(lr, "ok")) ? "ok"
                                                                      : "FAILED";
        fprintf(f, "%-16s %-12s %-20s %-10s %-12s %s%s\n",
                json_string_value(json_object_get(jd, "name")),
                json_string_value(json_object_get(jd, "kind")), when, a, m, last,
                json_is_true(json_object_get(jd, "stale")) ? "  STALE" : "");
        free(when);
        free(a);
        free(m);
        /* A physical job's last full backup (D75), on a line of its own. */
        const json_t *lf = json_object_get(jd, "last_full");
        const char *ft = json_string_value(json_object_get(lf, "time"));
        const char *fs = json_string_value(json_object_get(lf, "snapshot"));
        int64_t full;
        if (ft && fs && ob_time_parse(ft, &full, NULL) == 0) {
            char *fw = ob_time_local(full);
            fprintf(f, "%-16s last full backup %s (snapshot %.8s)\n", "", fw, fs);
            free(fw);
        }
    }
    json_array_foreach(json_object_get(doc, "repositories"), i, jd)
    {
        const json_t *bytes = json_object_get(jd, "bytes");
        const char *name = json_string_value(json_object_get(jd, "name"));
        if (!bytes) {
            const char *e = json_string_value(json_object_get(jd, "error"));
            if (e)
                fprintf(f, "repository %s: UNREACHABLE\n", name);
            continue;
        }
        char *b = ob_human_bytes((uint64_t)json_integer_value(bytes));
        fprintf(f, "repository %s: %s", name, b);
        const char *lim = json_string_value(json_object_get(jd, "size_limit_text"));
        if (lim)
            fprintf(f, " of %s%s", lim,
                    json_is_true(json_object_get(jd, "over_limit")) ? " (OVER)" : "");
        fputc('\n', f);
        free(b);
    }
    const json_t *dr = json_object_get(doc, "dr");
    if (dr) {
        fprintf(f, "last DR %s: %s, finished %s", str_or(dr, "mode", "run"),
                json_is_true(json_object_get(dr, "ok")) ? "ok" : "FAILED",
                str_or(dr, "finished", "?"));
        static const char *const fig[][2] = {{"rto_seconds", "rto_target_seconds"},
                                             {"rpo_seconds", "rpo_target_seconds"}};
        for (size_t k = 0; k < 2; k++) {
            const json_t *v = json_object_get(dr, fig[k][0]);
            if (!json_is_number(v))
                continue;
            char *a = ob_human_duration((double)(int64_t)json_number_value(v));
            fprintf(f, ", %s %s", k ? "RPO" : "RTO", a);
            free(a);
            const json_t *t = json_object_get(dr, fig[k][1]);
            if (json_is_integer(t)) {
                char *m = ob_human_duration((double)json_integer_value(t));
                fprintf(f, " (target %s)", m);
                free(m);
            }
        }
        fputc('\n', f);
    }
    const json_t *probs = json_object_get(doc, "problems"), *p;
    if (json_array_size(probs) == 0)
        fprintf(f, "OK: %zu jobs, no problems\n", json_array_size(json_object_get(doc, "jobs")));
    json_array_foreach(probs, i, p)
        fprintf(f, "PROBLEM: %s\n", json_string_value(p));
}
