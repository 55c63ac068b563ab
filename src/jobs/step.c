/*
 * step.c — run one opsbackup command as a child (step.h).
 */
#include "jobs/step.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/proc.h"
#include "core/util.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int step_run(char *const *args, char *const *env_add, step_result *r, ob_err *err)
{
    memset(r, 0, sizeof *r);
    char *exe = ob_self_exe(err);
    if (!exe)
        return -1;
    size_t n = 0;
    while (args[n])
        n++;
    char **argv = ob_xcalloc(n + 2, sizeof *argv);
    argv[0] = exe;
    memcpy(argv + 1, args, n * sizeof *argv);
    double t0 = now_seconds();
    proc_opts o = {.argv = argv, .env_add = env_add, .pipe_stdout = 1};
    proc *p;
    int rc = proc_start(&o, &p, err);
    if (rc == 0) {
        /* Read stdout to the end before waiting, so a large JSON document
         * never blocks the child on a full pipe. */
        ob_buf out = OB_BUF_INIT;
        char chunk[8192];
        for (;;) {
            ssize_t k = read(proc_stdout(p), chunk, sizeof chunk);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            ob_buf_append(&out, chunk, (size_t)k);
        }
        rc = proc_wait(p, &r->code, err);
        r->seconds = now_seconds() - t0;
        r->stderr_text = ob_xstrdup(proc_stderr(p));
        if (out.len)
            r->json = json_loadb((const char *)out.data, out.len, 0, NULL);
        ob_buf_free(&out);
        proc_free(p);
    }
    free(argv);
    free(exe);
    return rc;
}

void step_result_free(step_result *r)
{
    json_decref(r->json);
    free(r->stderr_text);
    memset(r, 0, sizeof *r);
}

char *step_error(const step_result *r)
{
    const char *text = r->stderr_text ? r->stderr_text : "";
    const char *best = NULL, *last = NULL;
    size_t best_len = 0, last_len = 0;
    for (const char *s = text; *s;) {
        size_t len = strcspn(s, "\n");
        if (len) {
            last = s;
            last_len = len;
            static const char *const prefixes[] = {"opsbackup: error: ", "error: "};
            for (size_t i = 0; i < 2; i++) {
                size_t pl = strlen(prefixes[i]);
                if (len > pl && strncmp(s, prefixes[i], pl) == 0) {
                    best = s + pl;
                    best_len = len - pl;
                    break;
                }
            }
        }
        s += len;
        if (*s)
            s++;
    }
    if (best)
        return ob_xstrndup(best, best_len);
    if (last)
        return ob_xstrndup(last, last_len);
    if (r->code > 128)
        return ob_xasprintf("killed by signal %d", r->code - 128);
    return ob_xasprintf("exit status %d", r->code);
}

void step_argv_push(char ***v, size_t *n, const char *s)
{
    *v = ob_xrealloc(*v, (*n + 2) * sizeof **v);
    (*v)[(*n)++] = ob_xstrdup(s);
    (*v)[*n] = NULL;
}

void step_argv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}
