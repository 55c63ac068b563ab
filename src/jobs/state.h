/*
 * state.h — what opsbackup remembers between runs of a job: the outcome,
 * timing and size of recent runs, the last success, the last verify.
 *
 * `run` writes it; `status`, `metrics`, the daemon's /metrics and the
 * dashboard read it; `dr plan` estimates restore time from it.  It lives
 * on the backed-up machine, not in the repository, because it is about
 * this machine's schedule (the repository already holds the snapshots
 * themselves).  One JSON file per job, replaced atomically, so a reader
 * never sees half a file and a killed run leaves the previous state.
 *
 *   STATE_DIR/job-NAME.json   {"job", "runs_total", "failures_total",
 *                              "consecutive_failures", "last_run",
 *                              "last_success", "last_failure", "last_verify",
 *                              "history": [last 200 runs, oldest first]}
 *   STATE_DIR/job-NAME.lock   flock()ed while a run of NAME is going
 *
 * STATE_DIR is $OPSBACKUP_STATE_DIR, else /var/lib/opsbackup for root,
 * else $XDG_STATE_HOME/opsbackup (~/.local/state/opsbackup).
 *
 * Ownership: strings and json_t values returned are the caller's.
 */
#ifndef OB_STATE_H
#define OB_STATE_H

#include <jansson.h>

#include "core/err.h"

/* The state directory (not created). */
char *state_dir(void);

/* The job's state, or an empty object when it has never run. */
int state_load(const char *dir, const char *job, json_t **out, ob_err *err);

/* Fold one run summary (as `run --json` prints it: "ok", "started",
 * "finished", "duration_seconds", "steps", ...) into the job's state and
 * write it.  Creates the directory (0700) if needed.  last_success is a
 * run with exit code 0 only: a run with findings (exit 3, e.g. a verify
 * that failed) is not a success, whatever it saved. */
int state_record_run(const char *dir, const char *job, json_t *run, ob_err *err);

/* Take the job's run lock without waiting: OB_ELOCKED (naming the pid
 * that holds it) when another run of the job is going.  *fd is released
 * by state_unlock (or by the process ending: a killed run never leaves a
 * stale lock). */
int state_lock_job(const char *dir, const char *job, int *fd, ob_err *err);
void state_unlock(int fd);

#endif
