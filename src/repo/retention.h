/*
 * retention.h — which snapshots a retention policy keeps, and why.
 *
 * A pure decision: given snapshot descriptions (time, set, kind, tags) and
 * a policy (keep-last, keep-hourly/daily/weekly/monthly/yearly N,
 * keep-within DURATION, keep-tag K=V, or forever), say for each snapshot
 * whether it is kept and which rules kept it.  No I/O and no repository:
 * `forget` feeds it from snapshot objects, a job runner can feed it from
 * the config (retention_policy_set takes the config keys as written, e.g.
 * "keep-daily" = "30", "keep" = "forever"), and the unit tests feed it
 * synthetic times.
 *
 * Semantics are restic's (`restic forget`, 0.17):
 * - Snapshots are grouped by (set, kind); each group is decided alone.  A
 *   named set is the user's (or a job's) word that its snapshots are of one
 *   thing, whatever host or paths they have.  Snapshots in the unnamed set
 *   ("") are grouped by (kind, host, paths) too, as restic groups by host
 *   and paths: two databases backed up by `backup db` with no --set never
 *   count against each other (keep-last 7 keeps 7 of each), where one group
 *   could lose every backup of the less recent one (D23).  Such a group
 *   whose snapshots come from two or more servers (items' origin: the
 *   same database name on two PostgreSQL servers, dumped from one backup
 *   host) is split by origin, snapshots with none recorded forming a part
 *   of their own; with one origin or none it stays whole, so snapshots
 *   from before origins were recorded count with the newer ones (D77).
 * - Within a group, snapshots are taken newest first (ties: larger ID
 *   first).  keep-last N keeps the N newest.  A time rule (hourly, daily,
 *   weekly, monthly, yearly) with count N keeps the newest snapshot of each
 *   of the N newest buckets (hours, days, ISO weeks, months, years) that
 *   have snapshots; buckets are computed in local time (the TZ environment
 *   variable applies; `run JOB` sets it to the job's timezone).  An hour
 *   is a local hour at one UTC offset: the two 02:xx hours of a DST
 *   fall-back are two buckets.  If a time rule still has buckets left when the
 *   oldest snapshot of the group is reached, that oldest snapshot is kept
 *   too ("oldest daily"), so a young group keeps its full history.
 * - keep-within D keeps snapshots strictly newer than (newest snapshot of
 *   the group − D); D is calendar arithmetic in local time: "1y2m3w4d5h"
 *   (y years, m months, w weeks, d days, h hours).  Note `m` is months
 *   here, as in restic, unlike ob_parse_duration where it means minutes.
 * - keep-tag K=V keeps every snapshot carrying that tag (not counted).
 * - A snapshot is kept if any rule keeps it; the reasons list every rule.
 * - A policy with no rule at all is refused (retention_apply fails with
 *   OB_EUSAGE): an empty policy must never mean "delete everything".
 *
 * Reasons are short strings: "last 3" (the 3rd newest), "daily 2" (the
 * newest snapshot of the 2nd newest day), "oldest daily", "within 30d",
 * "tag x=y", "forever".
 *
 * Ownership: a policy owns its strings (retention_policy_free).  Items are
 * borrowed from the caller for the duration of retention_apply; the result
 * owns its arrays and reason strings (retention_result_free) and refers to
 * items by index.
 */
#ifndef OB_RETENTION_H
#define OB_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* A count of RETENTION_UNLIMITED keeps every bucket ("unlimited"). */
#define RETENTION_UNLIMITED (-1)

enum retention_rule {
    RETENTION_LAST = 0,
    RETENTION_HOURLY,
    RETENTION_DAILY,
    RETENTION_WEEKLY,
    RETENTION_MONTHLY,
    RETENTION_YEARLY,
    RETENTION_NRULES,
};

typedef struct retention_within {
    int years, months, days, hours; /* weeks are folded into days */
    char *text;                     /* as given, for reasons ("30d") */
} retention_within;

typedef struct retention_policy {
    int count[RETENTION_NRULES];    /* 0 = rule unused; N > 0; or RETENTION_UNLIMITED */
    int has_within;
    retention_within within;
    char **tags;                    /* keep-tag "K=V" */
    size_t ntags;
    int forever;                    /* keep = forever */
} retention_policy;

void retention_policy_init(retention_policy *p);
void retention_policy_free(retention_policy *p);
/* Does p have a keep-last/hourly/daily/weekly/monthly/yearly rule? */
int retention_policy_counts(const retention_policy *p);
/* Why a job must not use policy p, or NULL if it may: keep-tag alone keeps
 * only the snapshots that carry the tag, so a job whose snapshots do not
 * (the tag mistyped, or the job's own tags differ) would forget every one
 * of them, the new one too, and report success. */
const char *retention_policy_job_problem(const retention_policy *p);
/* Does the policy say anything at all? */
int retention_policy_empty(const retention_policy *p);

/* Set one rule from its config/CLI name and value: "keep-last",
 * "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly",
 * "keep-yearly" (a count >= 1 or "unlimited"), "keep-within" (a duration),
 * "keep-tag" (K=V; may be repeated), "keep" ("forever").  OB_EUSAGE with a
 * message naming the key on a bad value or an unknown key. */
int retention_policy_set(retention_policy *p, const char *key, const char *value, ob_err *err);

/* Parse a keep-within duration ("90d", "12h", "2w", "1m", "1y6m"). */
int retention_parse_within(const char *s, retention_within *out, ob_err *err);

/* One snapshot as the policy sees it (all borrowed). */
typedef struct retention_item {
    int64_t time;                   /* Unix seconds */
    const char *id;                 /* tie-breaker for equal times; may be NULL */
    const char *set, *kind, *host;  /* NULL counts as "" */
    char *const *tags;
    size_t ntags;
    char *const *paths;             /* in the snapshot's order */
    size_t npaths;
    const char *origin;             /* the server it was read from (a PostgreSQL
                                     * system identifier); NULL: not recorded */
} retention_item;

typedef struct retention_decision {
    int keep;
    size_t group;                   /* index into retention_result.groups */
    char **reasons;                 /* why it is kept (empty when removed) */
    size_t nreasons;
} retention_decision;

typedef struct retention_group {
    const char *set, *kind;         /* borrowed from the first item */
    const char *host;               /* unnamed set: the group's host and */
    char *const *paths;             /* paths; NULL (and 0) in a named set */
    size_t npaths;
    const char *origin;             /* unnamed set split by origin: this part's
                                     * ("" not recorded); else NULL */
    size_t *items;                  /* item indexes, newest first */
    size_t n, nkeep;
} retention_group;

typedef struct retention_result {
    retention_decision *d;          /* one per item, in the caller's order */
    size_t n;
    retention_group *groups;        /* sorted by set, kind (host, paths) */
    size_t ngroups;
} retention_result;

/* Decide.  Fails only for an empty policy (OB_EUSAGE). */
int retention_apply(const retention_policy *p, const retention_item *items, size_t n,
                    retention_result *out, ob_err *err);
void retention_result_free(retention_result *r);

#endif
