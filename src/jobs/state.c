/*
 * state.c — per-job run history on this machine (state.h).
 */
#include "jobs/state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

/* Runs kept for charts and duration estimates. */
#define STATE_HISTORY 200

char *state_dir(void)
{
    const char *d = getenv("OPSBACKUP_STATE_DIR");
    if (d && *d)
        return ob_xstrdup(d);
    if (geteuid() == 0)
        return ob_xstrdup("/var/lib/opsbackup");
    if ((d = getenv("XDG_STATE_HOME")) && *d == '/')
        return ob_xasprintf("%s/opsbackup", d);
    const char *home = getenv("HOME");
    return ob_xasprintf("%s/.local/state/opsbackup", home && *home ? home : "/tmp");
}

static int make_dir(const char *dir, ob_err *err)
{
    /* Parents too: ~/.local/state may not exist yet. */
    if (ob_mkdir_p(dir, 0700, err) < 0)
        return ob_err_prefix(err, "the state directory");
    return 0;
}

int state_load(const char *dir, const char *job, json_t **out, ob_err *err)
{
    char *path = ob_xasprintf("%s/job-%s.json", dir, job);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    int rc = 0;
    if (!j) {
        if (access(path, F_OK) != 0 && errno == ENOENT)
            j = json_object();
        else
            rc = ob_err_set(err, OB_ECORRUPT, "reading the job state %s: %s (delete it to start "
                            "the history afresh)", path, je.text);
    } else if (!json_is_object(j)) {
        json_decref(j);
        j = NULL;
        rc = ob_err_set(err, OB_ECORRUPT, "the job state %s is not a JSON object (delete it to "
                        "start the history afresh)", path);
    }
    free(path);
    *out = j;
    return rc;
}

static void bump(json_t *st, const char *key)
{
    json_object_set_new(st, key, json_integer(json_integer_value(json_object_get(st, key)) + 1));
}

int state_record_run(const char *dir, const char *job, json_t *run, ob_err *err)
{
    json_t *st;
    if (make_dir(dir, err) < 0 || state_load(dir, job, &st, err) < 0)
        return -1;
    int ok = json_is_true(json_object_get(run, "ok"));
    json_object_set_new(st, "job", json_string(job));
    bump(st, "runs_total");
    if (ok) {
        json_object_set_new(st, "consecutive_failures", json_integer(0));
    } else {
        bump(st, "failures_total");
        bump(st, "consecutive_failures");
        json_object_set(st, "last_failure", run);
    }
    /* Only a run that exited 0 is a success.  A run with findings (exit
     * 3: the new backup did not verify, a repository is over its
     * size-limit) is a problem the operator has to act on; counting it as
     * a success would reset the job's age and keep `status`, /health and
     * the stale alert quiet while every new backup fails its verify. */
    if (ok)
        json_object_set(st, "last_success", run);
    /* A full backup made is one, whatever later steps of its run (copy,
     * verify, retention) did. */
    if (json_is_true(json_object_get(run, "full")) &&
        json_is_string(json_object_get(run, "snapshot")))
        json_object_set_new(st, "last_full",
                            json_pack("{s:O?, s:O?}", "snapshot", json_object_get(run, "snapshot"),
                                      "time", json_object_get(run, "snapshot_time")));
    json_object_set(st, "last_run", run);
    json_t *verify = json_object_get(run, "verify");
    if (verify && !json_is_null(verify))
        json_object_set(st, "last_verify", verify);

    /* A compact history entry: what the charts and estimates need. */
    json_t *h = json_object_get(st, "history");
    if (!json_is_array(h)) {
        h = json_array();
        json_object_set_new(st, "history", h);
    }
    json_t *e = json_object();
    static const char *const keys[] = {"started", "duration_seconds", "ok", "snapshot",
                                       "bytes_added", "bytes_total", "failed_step", NULL};
    for (size_t i = 0; keys[i]; i++) {
        json_t *v = json_object_get(run, keys[i]);
        if (v && !json_is_null(v))
            json_object_set(e, keys[i], v);
    }
    json_array_append_new(h, e);
    while (json_array_size(h) > STATE_HISTORY)
        json_array_remove(h, 0);

    char *text = json_dumps(st, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(st);
    char *path = ob_xasprintf("%s/job-%s.json", dir, job);
    int rc = text ? ob_write_file_atomic(path, text, strlen(text), 1, NULL, err)
                  : ob_err_set(err, OB_EFAIL, "out of memory encoding the job state");
    if (rc < 0)
        ob_err_prefix(err, "saving the job state");
    free(path);
    free(text);
    return rc;
}

int state_lock_job(const char *dir, const char *job, int *fd, ob_err *err)
{
    *fd = -1;
    if (make_dir(dir, err) < 0)
        return -1;
    char *path = ob_xasprintf("%s/job-%s.lock", dir, job);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f < 0) {
        int e = errno;
        ob_err_errno(err, e, "opening the job lock %s", path);
        free(path);
        return -1;
    }
    if (flock(f, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(f, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(f);
        if (e == EWOULDBLOCK)
            ob_err_set(err, OB_ELOCKED, "job '%s' is already running (pid %s holds %s)", job,
                       *pid ? pid : "?", path);
        else
            ob_err_errno(err, e, "locking %s", path);
        free(path);
        return -1;
    }
    free(path);
    /* The holder's pid, for the message above; advisory only. */
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(f, 0) < 0 || pwrite(f, pid, (size_t)n, 0) != n)
        ob_debug("could not write the pid into the job lock of '%s'", job);
    *fd = f;
    return 0;
}

void state_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}
