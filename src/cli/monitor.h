/*
 * monitor.h — the state of every configured job and repository, for
 * `status` (human, --json, Nagios exit code), `metrics` (Prometheus text),
 * the daemon's /metrics and /health, and the dashboard.
 *
 * One collector builds a JSON document; the renderers only format it, so
 * all views agree:
 *
 *   {"time": RFC 3339, "host": S, "ok": BOOL, "problems": [S...],
 *    "jobs": [{"name", "kind", "set", "schedule", "timezone", "next_run",
 *              "runs_total", "failures_total", "consecutive_failures",
 *              "last_run": {"started", "finished", "ok", "duration_seconds",
 *                           "failed_step", "error", "snapshot", "bytes_added"},
 *              "last_success": {"finished", "snapshot", "snapshot_time",
 *                               "bytes_added", ...} (a run that exited 0),
 *              "age_seconds" (since the last success's snapshot_time: when
 *                             its data was taken; absent if none),
 *              "max_age_seconds" (0: no limit), "stale": BOOL,
 *              "last_verify": {"time", "ok", "snapshot", "seconds"},
 *              "history": [{"started", "duration_seconds", "ok", "bytes_added",
 *                           "bytes_total"}...],
 *              "problems": [S...]}],
 *    "repositories": [{"name", "url", "bytes", "size_limit", "over_limit",
 *                      "error"}],
 *    "dr": {"mode", "ok", "started", "finished", "rto_seconds", "rpo_seconds",
 *           "rto_target_seconds", "rpo_target_seconds", "failed_step", "error"}
 *          (the last `dr run`, when there was one)}
 *
 * Job facts come from the state `run` records (jobs/state.h), so a backup
 * taken by hand with `opsbackup backup` does not count as a job's run.
 * Repository sizes are measured by listing (no password needed).
 */
#ifndef OB_MONITOR_H
#define OB_MONITOR_H

#include <jansson.h>
#include <time.h>

#include "cli/cli.h"

/* Build the document for the config of ctx at time now.  Problems found
 * (stale job, failed last run, failed verify, repository over its
 * size-limit or unreachable, unreadable state) are in "problems", not
 * errors; fails only when the config cannot be used.  with_sizes = 0
 * skips measuring repositories (fast, for /health). */
int monitor_collect(cli_ctx *ctx, time_t now, int with_sizes, json_t **out, ob_err *err);

/* One repository's entry of the document ({"name", "url", "bytes",
 * "size_limit", "over_limit", "error"}); with_size = 0 skips measuring.
 * *problem (caller frees) says what is wrong with it, or is NULL. */
json_t *monitor_repo(cli_ctx *ctx, const char *name, int with_size, char **problem);
/* [notify] size-limit in bytes; 0 when unset. */
unsigned long long monitor_size_limit(const config *c);

/* When the data of a job's last success (its state's "last_success") was
 * taken, Unix seconds: its snapshot_time, else its start (state written by
 * older versions); -1 if none. */
int64_t monitor_success_time(const json_t *last_success);

/* Prometheus text exposition format (version 0.0.4) of a document. */
char *monitor_metrics_text(const json_t *doc);

/* The human status table. */
void monitor_print_status(FILE *f, const json_t *doc);

#endif
