/*
 * dr.c — hooks, health check, snapshot choice and durations for the
 * disaster-recovery runbook (dr.h).
 */
#include "jobs/dr.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/proc.h"
#include "core/util.h"
#include "storage/curl_lib.h"

#define DR_OUTPUT_KEEP (64 * 1024)

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The tail of what the hook wrote, trimmed. */
static char *read_output(int fd)
{
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 0)
        size = 0;
    off_t from = size > DR_OUTPUT_KEEP ? size - DR_OUTPUT_KEEP : 0;
    size_t n = (size_t)(size - from);
    char *s = ob_xmalloc(n + 1);
    ssize_t k = pread(fd, s, n, from);
    n = k > 0 ? (size_t)k : 0;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
        n--;
    s[n] = '\0';
    return s;
}

/* Poll for the child's end until deadline (monotonic; 0: none).  1 when it
 * ended (*status set), 0 when the deadline passed, -1 on error. */
static int wait_until(pid_t pid, double deadline, int *status)
{
    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid)
            return 1;
        if (w < 0 && errno != EINTR)
            return -1;
        if (deadline > 0 && mono_now() >= deadline)
            return 0;
        /* Polling keeps this free of SIGCHLD handlers (process-wide state);
         * 20 ms is nothing next to a hook that starts services. */
        sleep_seconds(0.02);
    }
}

int dr_hook_run(const char *cmd, int use_shell, int64_t timeout, dr_hook_result *r, ob_err *err)
{
    memset(r, 0, sizeof *r);
    char **argv = NULL;
    if (use_shell) {
        argv = ob_xcalloc(4, sizeof *argv);
        argv[0] = ob_xstrdup("/bin/sh");
        argv[1] = ob_xstrdup("-c");
        argv[2] = ob_xstrdup(cmd);
    } else if (proc_split(cmd, &argv, NULL, err) < 0) {
        return ob_err_prefix(err, "hook '%s'", cmd);
    }
    int out = memfd_create("opsbackup-hook-output", MFD_CLOEXEC);
    if (out < 0) {
        proc_argv_free(argv);
        return ob_err_errno(err, errno, "creating a buffer for the output of hook '%s'", cmd);
    }
    double t0 = mono_now();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(out);
        proc_argv_free(argv);
        return ob_err_errno(err, e, "starting hook '%s'", cmd);
    }
    if (pid == 0) {
        /* Child: a process group of its own, so the timeout reaches
         * everything the hook starts.  Only async-signal-safe calls. */
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, STDIN_FILENO);
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
        execvp(argv[0], argv);
        const char msg[] = "cannot execute ";
        const char *why = strerror(errno);
        (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)!write(STDERR_FILENO, argv[0], strlen(argv[0]));
        (void)!write(STDERR_FILENO, ": ", 2);
        (void)!write(STDERR_FILENO, why, strlen(why));
        _exit(127);
    }
    /* Also from the parent: the child may not have run setpgid yet when
     * the timeout strikes (EACCES after its exec is harmless). */
    setpgid(pid, pid);
    proc_argv_free(argv);
    int status = 0;
    int done = wait_until(pid, timeout > 0 ? t0 + (double)timeout : 0, &status);
    if (done == 0) {
        r->timed_out = 1;
        kill(-pid, SIGTERM);
        done = wait_until(pid, mono_now() + 5, &status);
        if (done == 0) {
            kill(-pid, SIGKILL);
            done = wait_until(pid, 0, &status);
        }
    }
    /* A hook that timed out leaves nothing of its group behind.  One that
     * ended by itself keeps its children: `before` rightly leaves the
     * database server it started running. */
    if (r->timed_out)
        kill(-pid, SIGKILL);
    r->seconds = mono_now() - t0;
    if (done < 0) {
        int e = errno;
        close(out);
        return ob_err_errno(err, e, "waiting for hook '%s'", cmd);
    }
    r->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r->output = read_output(out);
    close(out);
    return 0;
}

void dr_hook_result_free(dr_hook_result *r)
{
    free(r->output);
    memset(r, 0, sizeof *r);
}

static size_t keep_body(char *data, size_t size, size_t n, void *ud)
{
    ob_buf *b = ud;
    size_t len = size * n, room = b->len < 512 ? 512 - b->len : 0;
    ob_buf_append(b, data, len < room ? len : room);
    return len;
}

json_t *dr_health_check(const char *url, const dr_health_opts *o)
{
    double t0 = mono_now();
    int retries = o->retries > 0 ? o->retries : 1;
    long status = 0;
    int attempt = 0, ok = 0;
    char errbuf[CURL_ERROR_SIZE];
    char *last_error = NULL;
    ob_buf body = OB_BUF_INIT;
    for (attempt = 1; attempt <= retries; attempt++) {
        ob_err lerr = OB_ERR_INIT;
        CURL *h = curl_lib_load(&lerr) == 0 ? curl_easy_init() : NULL;
        if (!h) {
            free(last_error);
            last_error =
                ob_xstrdup(lerr.code ? ob_err_msg(&lerr) : "cannot create an HTTP handle");
            ob_err_clear(&lerr);
            break;
        }
        ob_buf_free(&body);
        errbuf[0] = '\0';
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(o->timeout > 0 ? o->timeout * 1000 : 10000));
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
        CURLcode rc = curl_easy_perform(h);
        status = 0;
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
        free(last_error);
        last_error = NULL;
        if (rc != CURLE_OK)
            last_error = ob_xstrdup(*errbuf ? errbuf : curl_easy_strerror(rc));
        else if (status >= 200 && status < 300)
            ok = 1;
        else
            last_error = ob_xasprintf("HTTP status %ld", status);
        if (ok)
            break;
        if (attempt < retries)
            sleep_seconds(o->interval);
    }
    if (attempt > retries)
        attempt = retries;
    char *text = ob_xstrndup(body.data ? (const char *)body.data : "", body.len);
    json_t *res = json_pack("{s:s, s:b, s:i, s:i, s:f, s:s}", "url", url, "ok", ok, "attempts",
                            attempt, "status", (int)status, "seconds", mono_now() - t0, "body",
                            text);
    if (!json_is_object(res)) /* body not UTF-8: leave it out */
        res = json_pack("{s:s, s:b, s:i, s:i, s:f}", "url", url, "ok", ok, "attempts", attempt,
                        "status", (int)status, "seconds", mono_now() - t0);
    if (last_error)
        json_object_set_new(res, "error", json_string(last_error));
    free(text);
    free(last_error);
    ob_buf_free(&body);
    return res;
}

json_t *dr_pick_snapshot(json_t *list, int64_t until, int64_t *data_time)
{
    json_t *best = NULL, *s;
    int64_t best_t = 0;
    size_t i;
    json_array_foreach(list, i, s)
    {
        const char *kind = json_string_value(json_object_get(s, "kind"));
        const char *when = json_string_value(json_object_get(s, "time"));
        if (kind && strcmp(kind, "db-physical") == 0) {
            const char *stop =
                json_string_value(json_object_get(json_object_get(s, "extra"), "stop_time"));
            if (stop)
                when = stop;
        }
        int64_t t;
        uint32_t ns;
        if (!when || ob_time_parse(when, &t, &ns) < 0)
            continue;
        if (until && t > until)
            continue;
        if (!best || t > best_t) {
            best = s;
            best_t = t;
        }
    }
    if (best && data_time)
        *data_time = best_t;
    return best;
}

