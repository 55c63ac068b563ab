/*
 * dr.h — the pieces of the disaster-recovery runbook (`opsbackup dr plan |
 * run`, issue #9) that are not command-line work: running the [dr] before/
 * after hooks with a time limit, polling the application's health URL,
 * choosing the snapshot a job restores, and describing durations.
 * cli/cmd_dr.c drives them; the restores themselves are child steps
 * (jobs/step.h) of the ordinary restore commands.
 *
 *   [dr]
 *   rto = 4h                  ; targets the plan and the report measure against
 *   rpo = 1h
 *   jobs = db, attachments, config      ; restored in this order (default: every job)
 *   before = docker compose up -d postgres   ; run before the restores
 *   after = docker compose up -d backend frontend   ; run after them
 *   shell = false             ; true: hooks run as /bin/sh -c 'CMD'
 *   hook-timeout = 10m        ; each hook's limit (`timeout` is the older name)
 *   health-url = http://localhost:8080/health
 *   health-retries = 30       ; attempts, health-interval apart, each at most
 *   health-interval = 2s      ;   health-timeout long; any 2xx answer passes
 *   health-timeout = 10s
 *   check-sql = SELECT COUNT(*) FROM documents   ; repeatable; run on each restored database
 *
 * Hooks run WITHOUT a shell unless shell = true: the command line is split
 * into words (proc_split: quotes and backslashes, no expansion), so a
 * value from the config cannot smuggle in `;`, `$(...)` or redirections by
 * accident.  A hook runs in a process group of its own, so a timeout
 * kills everything it started (docker compose's helpers too), not only
 * the first process.
 *
 * Ownership: results hold heap data freed by their _free function.  No
 * global state: the health check makes its own curl handle (libcurl is
 * opened and initialised on first use, curl_lib_load).
 */
#ifndef OB_DR_H
#define OB_DR_H

#include <jansson.h>
#include <stdint.h>

#include "core/err.h"

typedef struct dr_hook_result {
    int code;           /* exit status, or 128 + signal number */
    int timed_out;      /* killed because it ran longer than its limit */
    double seconds;     /* wall time */
    char *output;       /* its stdout and stderr together (last 64 KiB, trimmed) */
} dr_hook_result;

/* Run cmd (split into words, or through /bin/sh -c when use_shell) with
 * stdin from /dev/null, for at most timeout seconds (0: no limit).  After
 * the limit its process group gets SIGTERM, and SIGKILL 5 s later.  Fails
 * only when it could not be started (an empty command, an unbalanced
 * quote, fork failing); a hook that fails is r->code != 0. */
int dr_hook_run(const char *cmd, int use_shell, int64_t timeout, dr_hook_result *r, ob_err *err);
void dr_hook_result_free(dr_hook_result *r);

typedef struct dr_health_opts {
    int retries;          /* attempts (>= 1) */
    double interval;      /* seconds between attempts */
    double timeout;       /* each request's limit, seconds */
} dr_health_opts;

/* GET url until it answers 2xx or the attempts run out.  Returns the
 * result object {"url", "ok", "attempts", "status" (last HTTP status, 0:
 * no answer), "error" (the last failure), "seconds", "body" (first 512
 * bytes of the last answer)}; never NULL. */
json_t *dr_health_check(const char *url, const dr_health_opts *o);

/* From a `snapshots --json` array, the snapshot to restore: the newest
 * whose data time is at or before `until` (0: the newest of all).  The
 * data time is extra.stop_time for db-physical snapshots (the backup is
 * consistent only from its end), else the snapshot's time.  Returns a
 * borrowed element, or NULL; *data_time gets its data time. */
json_t *dr_pick_snapshot(json_t *list, int64_t until, int64_t *data_time);

#endif
