/*
 * cmd_daemon.c — `opsbackup daemon`: run every job of the config on its
 * cron schedule, until SIGTERM.
 *
 * Each due job is started as `opsbackup -c CONFIG run JOB`, a child in a
 * process group of its own, so a crash in a job never takes the scheduler
 * with it and the job's own lock (jobs/state.h) still guarantees one run
 * at a time even against a run started by hand.  The daemon itself holds
 * no repository open.
 *
 * Rules (documented in the man page and --help):
 * - A job that is still running when it is due again is not started a
 *   second time; the skipped run is logged.
 * - Missed runs (the machine was asleep, the clock jumped forward): on
 *   waking, a job whose scheduled time has passed runs once, however many
 *   times it was due, and the log says how many were missed.  The main
 *   loop never sleeps more than a minute at a time, and sleeping uses the
 *   monotonic clock, which stops during suspend — so a wake-up is noticed
 *   within a minute.  Runs missed while the daemon was not running are
 *   not made up at start; `status` reports the job as stale instead.
 * - The clock going backwards (NTP step) recomputes every next run from
 *   the new time rather than waiting for the old one.
 * - SIGHUP reloads the config: jobs, schedules, [notify]; one with
 *   problems is refused (logged) and the old schedule stays in force.
 *   Each run reads the config file itself when it starts, as it would
 *   from cron, so a broken file makes runs refuse to start (exit 2): the
 *   daemon notifies that, since nothing else would.  Running jobs are
 *   left alone.
 * - SIGTERM/SIGINT: no new job starts; each running job gets SIGTERM (it
 *   finishes its current step and starts no other); after --stop-timeout
 *   its whole process group gets SIGTERM and then SIGKILL: an abandoned
 *   step leaves only what the repository is designed to survive (a stale
 *   lock and unreferenced temporaries, cleaned by the next run's prune).
 * - --listen ADDR:PORT serves GET / (the dashboard, report.h), /metrics
 *   (Prometheus) and /health from a libmicrohttpd thread.  It binds
 *   127.0.0.1 by default; any other address requires --token-file.
 *
 * Signals are blocked in every thread and taken synchronously with
 * sigtimedwait() in the main loop, so no handler and no flag is needed.
 *
 * OPSBACKUP_DAEMON_TIME_SCALE=N (tests only) makes the daemon's clock run
 * N times faster from its start: the same scheduling code, with minutes
 * that last a second.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/config_check.h"
#include "cli/mhd_lib.h"
#include "cli/monitor.h"
#include "cli/report.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "jobs/job.h"
#include "jobs/notify.h"

/* Longest real sleep between looks at the clock (see "Missed runs"). */
#define DAEMON_MAX_SLEEP 60
/* /metrics measures repository sizes by listing; scrapes within this many
 * seconds share one measurement. */
#define DAEMON_METRICS_CACHE 60

typedef struct sched_job {
    job *j;
    time_t next_due;      /* daemon clock; 0: no schedule */
    pid_t pid;            /* running `run` child, or 0 */
    time_t started;       /* real time the child started */
    int stale_notified;   /* told [notify] the job is stale; reset when it is not */
} sched_job;

typedef struct daemon_clock {
    time_t t0;            /* real time at start */
    double scale;         /* 1 in production */
} daemon_clock;

typedef struct daemon_state {
    cli_ctx *ctx;
    char *config_path;    /* absolute */
    char *self;           /* our executable */
    daemon_clock clock;
    sched_job *jobs;
    size_t njobs;
    int64_t stop_timeout;
    notifier *nf;         /* [notify], or NULL */
    /* The HTTP thread reads the config; reload swaps it under this lock. */
    pthread_mutex_t lock;
    cli_ctx http_ctx;     /* the HTTP thread's own context (shares cfg) */
    json_t *cached;       /* last /metrics document */
    time_t cached_at;
    char *token;          /* --token-file: required from every client, or NULL */
} daemon_state;

static time_t clock_now(const daemon_clock *c)
{
    time_t real = time(NULL);
    if (c->scale == 1)
        return real;
    return c->t0 + (time_t)((double)(real - c->t0) * c->scale);
}

/* Real seconds until daemon-clock time t. */
static double clock_until(const daemon_clock *c, time_t t)
{
    return (double)(t - clock_now(c)) / c->scale;
}

/* Load and check the config; on any problem log each and fail. */
static int load_config(const char *path, config **out, job ***jobs, size_t *njobs)
{
    ob_err err = OB_ERR_INIT;
    if (config_load(path, out, &err) < 0) {
        ob_error("%s", ob_err_msg(&err));
        ob_err_clear(&err);
        return -1;
    }
    config_check_result chk;
    config_check(*out, &chk);
    for (size_t i = 0; i < chk.n; i++)
        ob_error("%s:%d: %s", path, chk.problems[i].line, chk.problems[i].message);
    size_t nproblems = chk.n;
    config_check_free(&chk);
    if (nproblems || job_load_all(*out, jobs, njobs, &err) < 0) {
        if (err.code)
            ob_error("%s", ob_err_msg(&err));
        ob_err_clear(&err);
        config_free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

static void schedule_next(daemon_state *d, sched_job *s, time_t after)
{
    s->next_due = 0;
    if (!s->j->has_schedule)
        return;
    ob_err err = OB_ERR_INIT;
    if (cron_next(&s->j->schedule, after, s->j->timezone, &s->next_due, &err) < 0) {
        ob_error("job %s: %s; it will not run", s->j->name, ob_err_msg(&err));
        ob_err_clear(&err);
        s->next_due = 0;
        return;
    }
    char *t = ob_time_local(s->next_due);
    ob_debug("job %s: next run %s", s->j->name, t);
    free(t);
    (void)d;
}

/* Install freshly loaded jobs, keeping the running child of a job that
 * still exists (by name). */
static void install_jobs(daemon_state *d, job **jobs, size_t n, time_t now)
{
    sched_job *v = ob_xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i].j = jobs[i];
        for (size_t k = 0; k < d->njobs; k++)
            if (d->jobs[k].j && strcmp(d->jobs[k].j->name, jobs[i]->name) == 0) {
                v[i].pid = d->jobs[k].pid;
                v[i].started = d->jobs[k].started;
                v[i].stale_notified = d->jobs[k].stale_notified;
                d->jobs[k].pid = 0;
            }
        schedule_next(d, &v[i], now);
    }
    for (size_t k = 0; k < d->njobs; k++) {
        if (d->jobs[k].pid)
            ob_warn("job %s was removed from the config while running (pid %ld); it is left to "
                    "finish", d->jobs[k].j->name, (long)d->jobs[k].pid);
        job_free(d->jobs[k].j);
    }
    free(d->jobs);
    free(jobs);
    d->jobs = v;
    d->njobs = n;
}

static void start_job(daemon_state *d, sched_job *s)
{
    const char *argv[8];
    size_t n = 0;
    argv[n++] = "opsbackup";
    argv[n++] = "-c";
    argv[n++] = d->config_path;
    if (d->ctx->verbose)
        argv[n++] = "-v";
    argv[n++] = "run";
    argv[n++] = s->j->name;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        ob_error("job %s: cannot start: %s", s->j->name, strerror(errno));
        return;
    }
    if (pid == 0) {
        /* Own process group: a stop signal can reach the job's steps too.
         * stdout (the run's summary) joins our log. */
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(STDERR_FILENO, STDOUT_FILENO);
        execv(d->self, (char *const *)argv);
        const char msg[] = "opsbackup: error: daemon: cannot execute ourselves\n";
        (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
        _exit(127);
    }
    setpgid(pid, pid); /* also here: no race with a stop signal sent at once */
    s->pid = pid;
    s->started = time(NULL);
    ob_info("job %s: started (pid %ld)", s->j->name, (long)pid);
}

/* What the daemon itself reports: a job that died without reporting
 * (killed, crashed, could not start) and a job that has not succeeded
 * for longer than its limit — the alarm for "nothing ran at all". */
static void daemon_notify(daemon_state *d, const char *jobname, const char *step,
                          const char *error)
{
    if (!d->nf || !notifier_wants(d->nf, 0))
        return;
    int64_t now;
    ob_time_now(&now, NULL);
    notify_event ev = {.job = jobname, .ok = 0, .step = step, .error = error,
                       .started = now, .finished = now};
    notifier_send(d->nf, &ev, NULL);
}

/* Judged on the real clock, like `status`: the ages are those of real
 * runs.  A job that never succeeded is stale only once the daemon has
 * been up for longer than the job's limit (it had its chance to run). */
static void check_stale(daemon_state *d, time_t now)
{
    json_t *doc;
    ob_err err = OB_ERR_INIT;
    if (monitor_collect(d->ctx, now, 0, &doc, &err) < 0) {
        ob_warn("checking job ages: %s", ob_err_msg(&err));
        ob_err_clear(&err);
        return;
    }
    size_t i;
    json_t *jd;
    json_array_foreach(json_object_get(doc, "jobs"), i, jd)
    {
        const char *name = json_string_value(json_object_get(jd, "name"));
        for (size_t k = 0; k < d->njobs; k++) {
            sched_job *s = &d->jobs[k];
            if (strcmp(s->j->name, name) != 0)
                continue;
            int stale = json_is_true(json_object_get(jd, "stale"));
            if (stale && !json_object_get(jd, "last_success") &&
                now - d->clock.t0 <= json_integer_value(json_object_get(jd, "max_age_seconds")))
                stale = 0;
            if (stale && !s->stale_notified) {
                /* The job's own age problem, not a failed run's. */
                const char *why = "stale";
                size_t p;
                json_t *msg;
                json_array_foreach(json_object_get(jd, "problems"), p, msg)
                {
                    const char *m = json_string_value(msg);
                    if (strstr(m, "last success") || strstr(m, "never succeeded"))
                        why = m;
                }
                ob_error("%s", why);
                daemon_notify(d, name, "schedule", why);
            }
            s->stale_notified = stale;
        }
    }
    json_decref(doc);
}

static void reap(daemon_state *d)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        for (size_t i = 0; i < d->njobs; i++) {
            sched_job *s = &d->jobs[i];
            if (s->pid != pid)
                continue;
            s->pid = 0;
            long secs = (long)(time(NULL) - s->started);
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                ob_info("job %s: finished ok in %lds", s->j->name, secs);
            else if (WIFEXITED(status) &&
                     (WEXITSTATUS(status) == CLI_FAIL || WEXITSTATUS(status) == CLI_PROBLEM))
                /* The run recorded and notified this itself. */
                ob_error("job %s: failed (exit status %d) after %lds; see its messages above "
                         "or `opsbackup status`", s->j->name, WEXITSTATUS(status), secs);
            else {
                char *why =
                    WIFSIGNALED(status)
                        ? ob_xasprintf("the run was killed by signal %d after %lds",
                                       WTERMSIG(status), secs)
                    : WEXITSTATUS(status) == CLI_USAGE
                        ? ob_xasprintf("the run refused to start: %s has problems (see `opsbackup "
                                       "config check`)", d->config_path)
                        : ob_xasprintf("the run ended with exit status %d after %lds without "
                                       "reporting", WEXITSTATUS(status), secs);
                ob_error("job %s: %s", s->j->name, why);
                daemon_notify(d, s->j->name, "run", why);
                free(why);
            }
        }
    }
}

/* Start what is due.  Counts the fire times that passed unnoticed. */
static void run_due(daemon_state *d, time_t now)
{
    for (size_t i = 0; i < d->njobs; i++) {
        sched_job *s = &d->jobs[i];
        if (!s->next_due || now < s->next_due)
            continue;
        unsigned missed = 0;
        time_t last;
        ob_err err = OB_ERR_INIT;
        (void)cron_count(&s->j->schedule, s->next_due, now, s->j->timezone, 100000, &missed,
                         &last, &err); /* an error only stops the count */
        ob_err_clear(&err);
        if (missed)
            ob_warn("job %s: %u scheduled run%s missed (the machine was asleep or the clock "
                    "jumped); running once now", s->j->name, missed, missed == 1 ? " was" : "s were");
        if (s->pid)
            ob_warn("job %s: due again but still running since %lds (pid %ld); this run is "
                    "skipped", s->j->name, (long)(time(NULL) - s->started), (long)s->pid);
        else
            start_job(d, s);
        schedule_next(d, s, now);
    }
}

static void reload(daemon_state *d, time_t now)
{
    config *cfg;
    job **jobs;
    size_t n;
    if (load_config(d->config_path, &cfg, &jobs, &n) < 0) {
        ob_error("reload refused: %s has problems (above); the previous config stays in force",
                 d->config_path);
        return;
    }
    pthread_mutex_lock(&d->lock);
    config_free(d->ctx->cfg);
    d->ctx->cfg = cfg;
    d->http_ctx.cfg = cfg;
    json_decref(d->cached);
    d->cached = NULL;
    pthread_mutex_unlock(&d->lock);
    install_jobs(d, jobs, n, now);
    notifier_free(d->nf);
    d->nf = NULL;
    ob_err err = OB_ERR_INIT;
    if (notifier_from_config(cfg, &d->nf, &err) < 0) {
        ob_error("notifications are off: %s", ob_err_msg(&err));
        ob_err_clear(&err);
    }
    ob_info("reloaded %s: %zu jobs", d->config_path, n);
}

static size_t running(const daemon_state *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->njobs; i++)
        n += d->jobs[i].pid != 0;
    return n;
}

static void signal_running(daemon_state *d, int sig, int group)
{
    for (size_t i = 0; i < d->njobs; i++)
        if (d->jobs[i].pid)
            kill(group ? -d->jobs[i].pid : d->jobs[i].pid, sig);
}

/* Wait up to seconds (real) for every child to end. */
static void wait_children(daemon_state *d, const sigset_t *set, double seconds)
{
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += (time_t)seconds;
    while (running(d)) {
        struct timespec now, left;
        clock_gettime(CLOCK_MONOTONIC, &now);
        left.tv_sec = end.tv_sec - now.tv_sec;
        left.tv_nsec = end.tv_nsec - now.tv_nsec;
        if (left.tv_nsec < 0) {
            left.tv_sec--;
            left.tv_nsec += 1000000000L;
        }
        if (left.tv_sec < 0)
            return;
        siginfo_t si;
        if (sigtimedwait(set, &si, &left) == SIGCHLD || errno == EAGAIN)
            reap(d);
    }
}

static void stop(daemon_state *d, const sigset_t *set)
{
    if (!running(d))
        return;
    ob_info("stopping: %zu job%s running; each finishes its current step (up to %llds)",
            running(d), running(d) == 1 ? " is" : "s are", (long long)d->stop_timeout);
    signal_running(d, SIGTERM, 0);
    wait_children(d, set, (double)d->stop_timeout);
    if (!running(d))
        return;
    ob_warn("stopping: %zu job%s still running; abandoning (the repository is left "
            "consistent; the next run cleans up)", running(d), running(d) == 1 ? "" : "s");
    signal_running(d, SIGTERM, 1);
    wait_children(d, set, 10);
    signal_running(d, SIGKILL, 1);
    wait_children(d, set, 10);
}

/* ---- HTTP: /metrics and /health ---- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned code, const char *type,
                               char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* Constant time in the token's length: the comparison must not tell a
 * client how many leading characters it guessed right. */
static int token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    for (size_t i = 0; i < lb; i++)
        diff |= (unsigned char)(i < la ? a[i] : 0) ^ (unsigned char)b[i];
    return diff == 0;
}

static int authorized(const daemon_state *d, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (h && strncmp(h, "Bearer ", 7) == 0 && token_equal(h + 7, d->token))
        return 1;
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    return q && token_equal(q, d->token);
}

static enum MHD_Result on_http(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **req)
{
    (void)version;
    (void)upload;
    (void)req;
    daemon_state *d = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return respond(c, 405, "text/plain", ob_xstrdup("only GET\n"));
    if (*upload_size)
        return respond(c, 400, "text/plain", ob_xstrdup("no body expected\n"));
    if (d->token && !authorized(d, c))
        return respond(c, 401, "text/plain",
                       ob_xstrdup("a token is required: Authorization: Bearer TOKEN, or "
                                  "?token=TOKEN\n"));
    int metrics = strcmp(url, "/metrics") == 0, health = strcmp(url, "/health") == 0;
    int page = strcmp(url, "/") == 0;
    if (!metrics && !health && !page)
        return respond(c, 404, "text/plain",
                       ob_xstrdup("not found: try /, /metrics or /health\n"));
    pthread_mutex_lock(&d->lock);
    time_t now = time(NULL);
    if (!d->cached || now - d->cached_at >= DAEMON_METRICS_CACHE || now < d->cached_at) {
        json_decref(d->cached);
        d->cached = NULL;
        ob_err err = OB_ERR_INIT;
        if (monitor_collect(&d->http_ctx, now, 1, &d->cached, &err) < 0) {
            char *msg = ob_xasprintf("cannot collect: %s\n", ob_err_msg(&err));
            ob_err_clear(&err);
            pthread_mutex_unlock(&d->lock);
            return respond(c, 500, "text/plain", msg);
        }
        d->cached_at = now;
    }
    char *body;
    unsigned code = 200;
    if (metrics) {
        body = monitor_metrics_text(d->cached);
    } else if (page) {
        body = report_html(d->cached);
    } else {
        /* 200 when every backup is healthy, 503 with the problems otherwise:
         * for a monitoring check, not a liveness probe (the daemon answering
         * at all shows it is alive). */
        int ok = json_is_true(json_object_get(d->cached, "ok"));
        code = ok ? 200 : 503;
        json_t *h = json_pack("{s:b, s:O}", "ok", ok, "problems",
                              json_object_get(d->cached, "problems"));
        char *text = json_dumps(h, JSON_INDENT(1));
        json_decref(h);
        body = ob_xasprintf("%s\n", text ? text : "{}");
        free(text);
    }
    pthread_mutex_unlock(&d->lock);
    return respond(c, code,
                   metrics ? "text/plain; version=0.0.4; charset=utf-8"
                   : page  ? "text/html; charset=utf-8"
                           : "application/json",
                   body);
}

static struct MHD_Daemon *http_start(daemon_state *d, const char *listen, ob_err *err)
{
    /* ADDR:PORT or :PORT / PORT (127.0.0.1). */
    const char *colon = strrchr(listen, ':');
    char *host = colon ? ob_xstrndup(listen, (size_t)(colon - listen)) : ob_xstrdup("");
    const char *port_s = colon ? colon + 1 : listen;
    char *end;
    long port = strtol(port_s, &end, 10);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (!*port_s || *end || port < 1 || port > 65535 ||
        inet_pton(AF_INET, *host ? host : "127.0.0.1", &sa.sin_addr) != 1) {
        free(host);
        ob_err_set(err, OB_EUSAGE, "--listen '%s' is not ADDR:PORT with an IPv4 address "
                   "(e.g. 127.0.0.1:9187)", listen);
        return NULL;
    }
    free(host);
    /* The dashboard names hosts, paths and errors: off this machine only
     * behind a token. */
    if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127 && !d->token) {
        ob_err_set(err, OB_EUSAGE, "--listen %s is reachable from other machines: give "
                   "--token-file FILE too (or listen on 127.0.0.1)", listen);
        return NULL;
    }
    sa.sin_port = htons((uint16_t)port);
    if (mhd_lib_load(err) < 0)
        return NULL;
    struct MHD_Daemon *m = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, on_http, d,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)30, MHD_OPTION_CONNECTION_LIMIT, (unsigned)16, MHD_OPTION_END);
    if (!m)
        ob_err_set(err, OB_EIO, "cannot listen on %s (in use, or not an address of this "
                   "machine)", listen);
    return m;
}

/* The first line of a file only its owner can read. */
static int read_token(const char *path, char **out, ob_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "re");
    if (!f)
        return ob_err_errno(err, errno, "--token-file %s", path);
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO))) {
        fclose(f);
        return ob_err_set(err, OB_EUSAGE, "--token-file %s is readable by others: chmod 600 %s",
                          path, path);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n < 16) {
        free(line);
        return ob_err_set(err, OB_EUSAGE, "--token-file %s: the token must be at least 16 "
                          "characters (e.g. head -c 24 /dev/urandom | base64 > %s)", path, path);
    }
    *out = line;
    return 0;
}

/* ---- --print-crontab ---- */

static int print_crontab(daemon_state *d)
{
    printf("# opsbackup jobs of %s, for crontab(5) instead of `opsbackup daemon`.\n"
           "# Each run takes its job's lock, so overlapping runs are refused.\n",
           d->config_path);
    const char *tz = NULL;
    for (size_t i = 0; i < d->njobs; i++) {
        const job *j = d->jobs[i].j;
        if (!j->has_schedule) {
            printf("# job %s has no schedule\n", j->name);
            continue;
        }
        /* cronie's CRON_TZ applies to the lines after it. */
        if ((j->timezone || tz) && (!j->timezone || !tz || strcmp(j->timezone, tz) != 0)) {
            printf("CRON_TZ=%s\n", j->timezone ? j->timezone : "");
            tz = j->timezone;
        }
        printf("%s %s -c %s -q run %s\n", j->schedule_text, d->self, d->config_path, j->name);
    }
    return CLI_OK;
}

enum { OPT_LISTEN = 256, OPT_STOP_TIMEOUT, OPT_PRINT_CRONTAB, OPT_TOKEN_FILE };

typedef struct daemon_args {
    const char *listen, *stop_timeout, *token_file;
    int print_crontab;
} daemon_args;

static int daemon_opt(int opt, const char *arg, void *ud)
{
    daemon_args *a = ud;
    switch (opt) {
    case OPT_LISTEN: a->listen = arg; break;
    case OPT_STOP_TIMEOUT: a->stop_timeout = arg; break;
    case OPT_PRINT_CRONTAB: a->print_crontab = 1; break;
    case OPT_TOKEN_FILE: a->token_file = arg; break;
    default: return -1;
    }
    return 0;
}

int cmd_daemon(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT},
        {"print-crontab", no_argument, NULL, OPT_PRINT_CRONTAB},
        {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {0, 0, 0, 0},
    };
    const cli_command *cmd = cli_find_command("daemon");
    daemon_args a = {0};
    int i = cli_parse(ctx, cmd, argc, argv, opts, "", daemon_opt, &a);
    if (i < 0)
        return i == -2 ? CLI_OK : CLI_USAGE;
    if (i != argc)
        return cli_usage(cmd, "daemon takes no arguments");
    daemon_state d = {.ctx = ctx, .stop_timeout = 60};
    if (a.stop_timeout &&
        (ob_parse_duration(a.stop_timeout, &d.stop_timeout) < 0 || d.stop_timeout < 0))
        return cli_usage(cmd, "--stop-timeout '%s' is not a duration such as 60s or 5m",
                         a.stop_timeout);
    const char *path = ctx->config ? ctx->config : "/etc/opsbackup/opsbackup.conf";
    d.config_path = realpath(path, NULL);
    if (!d.config_path) {
        ob_error("daemon: config file %s: %s", path, strerror(errno));
        return CLI_USAGE;
    }
    config *cfg;
    job **jobs;
    size_t njobs;
    if (load_config(d.config_path, &cfg, &jobs, &njobs) < 0) {
        ob_error("%s has problems (above); daemon not started",
                d.config_path);
        free(d.config_path);
        return CLI_USAGE;
    }
    config_free(ctx->cfg);
    ctx->cfg = cfg;
    ob_err xerr = OB_ERR_INIT;
    if (!(d.self = ob_self_exe(&xerr))) {
        free(d.config_path);
        config_free(ctx->cfg);
        ctx->cfg = NULL;
        job_free_all(jobs, njobs);
        return cli_fail(ctx, &xerr);
    }
    /* A daemon says what it does: info messages unless -q. */
    if (!ctx->quiet && ob_log_get_level() < OB_LOG_INFO)
        ob_log_set_level(OB_LOG_INFO);
    d.clock.t0 = time(NULL);
    d.clock.scale = 1;
    const char *scale = getenv("OPSBACKUP_DAEMON_TIME_SCALE");
    if (scale && *scale) {
        d.clock.scale = strtod(scale, NULL);
        if (!(d.clock.scale >= 1 && d.clock.scale <= 3600))
            d.clock.scale = 1;
        else
            ob_warn("OPSBACKUP_DAEMON_TIME_SCALE=%g: the schedule clock runs %g times fast "
                    "(for tests)", d.clock.scale, d.clock.scale);
    }
    install_jobs(&d, jobs, njobs, clock_now(&d.clock));
    if (!a.print_crontab && notifier_from_config(cfg, &d.nf, &xerr) < 0) {
        ob_error("notifications are off: %s", ob_err_msg(&xerr));
        ob_err_clear(&xerr);
    }
    if (a.print_crontab) {
        int rc = print_crontab(&d);
        install_jobs(&d, NULL, 0, 0);
        free(d.jobs);
        free(d.self);
        free(d.config_path);
        return rc;
    }

    /* Block the signals we take with sigtimedwait before any thread
     * exists, so every thread inherits the mask. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    pthread_mutex_init(&d.lock, NULL);
    d.http_ctx = *ctx;
    d.http_ctx.st = NULL;
    d.http_ctx.r = NULL;
    struct MHD_Daemon *http = NULL;
    int rc = CLI_OK;
    if (a.token_file) {
        ob_err err = OB_ERR_INIT;
        if (read_token(a.token_file, &d.token, &err) < 0) {
            rc = cli_fail(ctx, &err);
            goto out;
        }
    }
    if (a.listen) {
        ob_err err = OB_ERR_INIT;
        if (!(http = http_start(&d, a.listen, &err))) {
            rc = cli_fail(ctx, &err);
            goto out;
        }
    }
    ob_info("daemon started: %zu job%s from %s%s%s", d.njobs, d.njobs == 1 ? "" : "s",
            d.config_path, a.listen ? ", listening on " : "", a.listen ? a.listen : "");
    for (size_t k = 0; k < d.njobs; k++) {
        if (!d.jobs[k].next_due) {
            ob_info("job %s: no schedule (run it with `opsbackup run %s`)", d.jobs[k].j->name,
                    d.jobs[k].j->name);
            continue;
        }
        char *t = ob_time_local(d.jobs[k].next_due);
        ob_info("job %s: schedule '%s'%s%s, next run %s", d.jobs[k].j->name,
                d.jobs[k].j->schedule_text, d.jobs[k].j->timezone ? " in " : "",
                d.jobs[k].j->timezone ? d.jobs[k].j->timezone : "", t);
        free(t);
    }

    time_t last = clock_now(&d.clock);
    for (;;) {
        time_t now = clock_now(&d.clock);
        if (now < last - 60) {
            ob_warn("the clock went back %llds; recomputing every next run",
                    (long long)(last - now));
            for (size_t k = 0; k < d.njobs; k++)
                schedule_next(&d, &d.jobs[k], now);
        }
        last = now;
        run_due(&d, now);
        check_stale(&d, time(NULL));
        double sleep = DAEMON_MAX_SLEEP;
        for (size_t k = 0; k < d.njobs; k++)
            if (d.jobs[k].next_due) {
                double s = clock_until(&d.clock, d.jobs[k].next_due);
                if (s < sleep)
                    sleep = s;
            }
        if (sleep < 0.01)
            sleep = 0.01;
        struct timespec ts = {(time_t)sleep, (long)((sleep - (double)(time_t)sleep) * 1e9)};
        siginfo_t si;
        int sig = sigtimedwait(&set, &si, &ts);
        if (sig == SIGCHLD) {
            reap(&d);
        } else if (sig == SIGHUP) {
            ob_info("SIGHUP: reloading %s", d.config_path);
            reload(&d, clock_now(&d.clock));
        } else if (sig == SIGTERM || sig == SIGINT) {
            ob_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            stop(&d, &set);
            break;
        }
    }
    ob_info("daemon stopped");
out:
    if (http)
        MHD_stop_daemon(http);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_mutex_destroy(&d.lock);
    json_decref(d.cached);
    notifier_free(d.nf);
    free(d.token);
    install_jobs(&d, NULL, 0, 0);
    free(d.jobs);
    free(d.self);
    free(d.config_path);
    return rc;
}
