/*
 * retention.c — see retention.h for the rules; this file only decides.
 *
 * The algorithm is restic's ApplyPolicy: walk a group newest first; each
 * counted rule remembers the bucket of the last snapshot it kept and keeps
 * a snapshot whose bucket differs, until its count is used up.  Because the
 * walk is newest first, the snapshot kept for a bucket is that bucket's
 * newest one.
 */
#include "repo/retention.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"

static const char *const rule_names[RETENTION_NRULES] = {
    "last", "hourly", "daily", "weekly", "monthly", "yearly",
};

void retention_policy_init(retention_policy *p)
{
    memset(p, 0, sizeof *p);
}

void retention_policy_free(retention_policy *p)
{
    for (size_t i = 0; i < p->ntags; i++)
        free(p->tags[i]);
    free(p->tags);
    free(p->within.text);
    memset(p, 0, sizeof *p);
}

int retention_policy_counts(const retention_policy *p)
{
    for (int i = 0; i < RETENTION_NRULES; i++)
        if (p->count[i])
            return 1;
    return 0;
}

const char *retention_policy_job_problem(const retention_policy *p)
{
    if (p->ntags && !p->forever && !p->has_within && !retention_policy_counts(p))
        return "keeps snapshots by keep-tag alone, which would forget every snapshot of the "
               "job without that tag (the new one too); add a rule that keeps a number or an "
               "age (keep-last, keep-daily, keep-within, ...)";
    return NULL;
}

int retention_policy_empty(const retention_policy *p)
{
    return !retention_policy_counts(p) && !p->has_within && p->ntags == 0 && !p->forever;
}

int retention_parse_within(const char *s, retention_within *out, ob_err *err)
{
    memset(out, 0, sizeof *out);
    const char *p = s;
    int64_t y = 0, m = 0, d = 0, h = 0;
    if (!*p)
        return ob_err_set(err, OB_EUSAGE, "keep-within: empty duration");
    while (*p) {
        if (*p < '0' || *p > '9')
            goto bad;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || v > 100000)
            goto bad;
        switch (*end) {
        case 'y': y += v; break;
        case 'm': m += v; break;
        case 'w': d += 7 * v; break;
        case 'd': d += v; break;
        case 'h': h += v; break;
        default: goto bad;
        }
        p = end + 1;
    }
    if (y + m + d + h == 0)
        return ob_err_set(err, OB_EUSAGE,
                          "keep-within '%s' is zero: it would keep nothing but what other rules "
                          "keep; give a positive duration such as 30d",
                          s);
    if (y > INT_MAX / 2 || m > INT_MAX / 2 || d > INT_MAX / 2 || h > INT_MAX / 2)
        goto bad;
    out->years = (int)y;
    out->months = (int)m;
    out->days = (int)d;
    out->hours = (int)h;
    out->text = ob_xstrdup(s);
    return 0;
bad:
    return ob_err_set(err, OB_EUSAGE,
                      "keep-within '%s' is not a duration: use numbers with units y (years), "
                      "m (months), w (weeks), d (days), h (hours), e.g. 90d, 12h, 2w, 1m, 1y6m",
                      s);
}

static int parse_count(const char *key, const char *value, int *out, ob_err *err)
{
    if (strcmp(value, "unlimited") == 0) {
        *out = RETENTION_UNLIMITED;
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (end == value || *end || errno || v < 1 || v > INT_MAX)
        return ob_err_set(err, OB_EUSAGE, "%s '%s': want a count of at least 1, or 'unlimited'",
                          key, value);
    *out = (int)v;
    return 0;
}

int retention_policy_set(retention_policy *p, const char *key, const char *value, ob_err *err)
{
    for (int i = 0; i < RETENTION_NRULES; i++) {
        char *k = ob_xasprintf("keep-%s", rule_names[i]);
        int hit = strcmp(key, k) == 0;
        free(k);
        if (hit)
            return parse_count(key, value, &p->count[i], err);
    }
    if (strcmp(key, "keep-within") == 0) {
        retention_within w;
        if (retention_parse_within(value, &w, err) < 0)
            return -1;
        free(p->within.text);
        p->within = w;
        p->has_within = 1;
        return 0;
    }
    if (strcmp(key, "keep-tag") == 0) {
        if (!strchr(value, '=') || value[0] == '=')
            return ob_err_set(err, OB_EUSAGE, "keep-tag wants KEY=VALUE, got '%s'", value);
        p->tags = ob_xrealloc(p->tags, (p->ntags + 1) * sizeof *p->tags);
        p->tags[p->ntags++] = ob_xstrdup(value);
        return 0;
    }
    if (strcmp(key, "keep") == 0) {
        if (strcmp(value, "forever") != 0)
            return ob_err_set(err, OB_EUSAGE,
                              "keep = '%s': the only value is 'forever' (use keep-daily, "
                              "keep-within… for a limited retention)",
                              value);
        p->forever = 1;
        return 0;
    }
    return ob_err_set(err, OB_EUSAGE,
                      "unknown retention setting '%s' (keep-last, keep-hourly, keep-daily, "
                      "keep-weekly, keep-monthly, keep-yearly, keep-within, keep-tag, keep)",
                      key);
}

/* ------------------------------------------------------------- buckets */

/* ISO 8601 week-numbering year * 100 + week, from a broken-down time. */
static int64_t iso_week(const struct tm *tm)
{
    int year = tm->tm_year + 1900;
    int wday = (tm->tm_wday + 6) % 7;          /* Monday = 0 */
    int thursday = tm->tm_yday - wday + 3;     /* day of year of this week's Thursday */
    if (thursday < 0) {
        /* The week belongs to the previous year. */
        year--;
        int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        thursday += 365 + leap;
    } else {
        int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        if (thursday >= 365 + leap) {
            thursday -= 365 + leap;
            year++;
        }
    }
    return (int64_t)year * 100 + thursday / 7 + 1;
}

/* The bucket of time t for rule r (local time). */
static int64_t bucket_of(int rule, int64_t t, size_t nr)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    int64_t y = tm.tm_year + 1900;
    switch (rule) {
    case RETENTION_HOURLY:
        /* The UTC offset is part of the hour: at a fall-back the local
         * hour 02:xx (Berlin) comes twice, an hour apart, and without the
         * offset both would be one bucket, so keep-hourly would keep one
         * snapshot for two real hours.  Offsets are within +-26 h
         * (+-93600 s), so offset + 100000 is 6400..193600: positive, and
         * within the six digits the hour is shifted by (* 1000000). */
        return ((((y * 100 + tm.tm_mon + 1) * 100 + tm.tm_mday) * 100 + tm.tm_hour) * 1000000) +
               (tm.tm_gmtoff + 100000);
    case RETENTION_DAILY: return (y * 100 + tm.tm_mon + 1) * 100 + tm.tm_mday;
    case RETENTION_WEEKLY: return iso_week(&tm);
    case RETENTION_MONTHLY: return y * 100 + tm.tm_mon + 1;
    case RETENTION_YEARLY: return y;
    default: return (int64_t)nr; /* last: every snapshot is its own bucket */
    }
}

/* latest − within, by the calendar in local time (restic: AddDate, then
 * hours).  mktime normalizes an out-of-range month or day the same way
 * (March 31 − 1 month = "February 31" = March 3 or 2). */
static int64_t within_cutoff(const retention_within *w, int64_t latest)
{
    time_t tt = (time_t)latest;
    struct tm tm;
    localtime_r(&tt, &tm);
    tm.tm_year -= w->years;
    tm.tm_mon -= w->months;
    tm.tm_mday -= w->days;
    tm.tm_isdst = -1;
    time_t c = mktime(&tm);
    return (int64_t)c - (int64_t)w->hours * 3600;
}

/* -------------------------------------------------------------- decide */

static const char *nz(const char *s) { return s ? s : ""; }

/* qsort has no context argument in C11; the items pointer travels in the
 * sorted records instead. */
typedef struct order {
    const retention_item *it;
    size_t idx;
} order;

/* Orders items by their group: set, kind, and in the unnamed set host,
 * then paths (fewer first, then element by element); 0 when x and y
 * belong to one group. */
static int group_cmp(const retention_item *x, const retention_item *y)
{
    int c = strcmp(nz(x->set), nz(y->set));
    if (c || (c = strcmp(nz(x->kind), nz(y->kind))))
        return c;
    if (*nz(x->set))
        return 0; /* a named set is one thing, wherever and whatever it read */
    if ((c = strcmp(nz(x->host), nz(y->host))))
        return c;
    if (x->npaths != y->npaths)
        return x->npaths < y->npaths ? -1 : 1;
    for (size_t i = 0; i < x->npaths; i++)
        if ((c = strcmp(x->paths[i], y->paths[i])))
            return c;
    return 0;
}

static int order_cmp(const void *a, const void *b)
{
    const order *x = a, *y = b;
    int c = group_cmp(x->it, y->it);
    if (c)
        return c;
    /* newest first; equal times: the larger ID is "newer", as in the
     * snapshot listing, where ties are ordered by ID */
    if (x->it->time != y->it->time)
        return x->it->time > y->it->time ? -1 : 1;
    c = strcmp(nz(y->it->id), nz(x->it->id));
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Within one group: by origin, then as order_cmp. */
static int origin_order_cmp(const void *a, const void *b)
{
    const order *x = a, *y = b;
    int c = strcmp(nz(x->it->origin), nz(y->it->origin));
    return c ? c : order_cmp(a, b);
}

/* Does o[i..j) (one group of the unnamed set) hold snapshots of two or
 * more recorded origins? */
static int several_origins(const order *o, size_t i, size_t j)
{
    const char *first = NULL;
    for (size_t k = i; k < j; k++) {
        const char *org = nz(o[k].it->origin);
        if (!*org)
            continue;
        if (!first)
            first = org;
        else if (strcmp(first, org) != 0)
            return 1;
    }
    return 0;
}

static void add_reason(retention_decision *d, char *reason)
{
    d->reasons = ob_xrealloc(d->reasons, (d->nreasons + 1) * sizeof *d->reasons);
    d->reasons[d->nreasons++] = reason;
    d->keep = 1;
}

static int has_tag(const retention_item *it, const char *tag)
{
    for (size_t i = 0; i < it->ntags; i++)
        if (it->tags[i] && strcmp(it->tags[i], tag) == 0)
            return 1;
    return 0;
}

static void decide_group(const retention_policy *p, const retention_item *items,
                         retention_group *g, retention_decision *d)
{
    int left[RETENTION_NRULES];
    int used[RETENTION_NRULES] = {0};
    int64_t last_bucket[RETENTION_NRULES];
    int have_last[RETENTION_NRULES] = {0};
    memcpy(left, p->count, sizeof left);
    /* keep-within counts back from the group's newest snapshot, but not
     * from the future: one dated ahead (a clock that jumped, a mistyped
     * --time) would otherwise put every real snapshot outside the window. */
    int64_t cutoff = 0;
    if (p->has_within && g->n) {
        int64_t newest = items[g->items[0]].time, now = (int64_t)time(NULL);
        cutoff = within_cutoff(&p->within, newest < now ? newest : now);
    }

    for (size_t nr = 0; nr < g->n; nr++) {
        const retention_item *it = &items[g->items[nr]];
        retention_decision *dd = &d[g->items[nr]];
        int oldest = nr + 1 == g->n;
        if (p->forever)
            add_reason(dd, ob_xstrdup("forever"));
        for (int r = 0; r < RETENTION_NRULES; r++) {
            if (left[r] == 0)
                continue;
            int64_t b = bucket_of(r, it->time, nr);
            if (!have_last[r] || b != last_bucket[r]) {
                last_bucket[r] = b;
                have_last[r] = 1;
                used[r]++;
                if (left[r] > 0)
                    left[r]--;
                add_reason(dd, ob_xasprintf("%s %d", rule_names[r], used[r]));
            } else if (oldest && r != RETENTION_LAST) {
                /* Buckets left over: keep the oldest as well, so a young
                 * group keeps its whole history (restic >= 0.17). */
                add_reason(dd, ob_xasprintf("oldest %s", rule_names[r]));
            }
        }
        if (p->has_within && it->time > cutoff)
            add_reason(dd, ob_xasprintf("within %s", p->within.text));
        for (size_t t = 0; t < p->ntags; t++)
            if (has_tag(it, p->tags[t]))
                add_reason(dd, ob_xasprintf("tag %s", p->tags[t]));
        if (dd->keep)
            g->nkeep++;
    }
}

int retention_apply(const retention_policy *p, const retention_item *items, size_t n,
                    retention_result *out, ob_err *err)
{
    memset(out, 0, sizeof *out);
    if (retention_policy_empty(p))
        return ob_err_set(err, OB_EUSAGE,
                          "no retention rule given: refusing to remove every snapshot; say what "
                          "to keep (--keep-last, --keep-daily, --keep-within, …)");
    out->n = n;
    out->d = ob_xcalloc(n ? n : 1, sizeof *out->d);
    order *o = ob_xcalloc(n ? n : 1, sizeof *o);
    for (size_t i = 0; i < n; i++) {
        o[i].it = &items[i];
        o[i].idx = i;
    }
    qsort(o, n, sizeof *o, order_cmp);
    size_t end = 0; /* of the current group of the unnamed set split by origin */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && group_cmp(o[j].it, o[i].it) == 0)
            j++;
        int split = i < end;
        if (!split && !*nz(o[i].it->set) && several_origins(o, i, j)) {
            qsort(o + i, j - i, sizeof *o, origin_order_cmp);
            end = j;
            split = 1;
        }
        if (split) {
            j = i;
            while (j < end && strcmp(nz(o[j].it->origin), nz(o[i].it->origin)) == 0)
                j++;
        }
        out->groups = ob_xrealloc(out->groups, (out->ngroups + 1) * sizeof *out->groups);
        retention_group *g = &out->groups[out->ngroups];
        memset(g, 0, sizeof *g);
        g->set = nz(o[i].it->set);
        g->kind = nz(o[i].it->kind);
        if (!*g->set) {
            g->host = nz(o[i].it->host);
            g->paths = o[i].it->paths;
            g->npaths = o[i].it->npaths;
            if (split)
                g->origin = nz(o[i].it->origin);
        }
        g->n = j - i;
        g->items = ob_xcalloc(g->n, sizeof *g->items);
        for (size_t k = i; k < j; k++) {
            g->items[k - i] = o[k].idx;
            out->d[o[k].idx].group = out->ngroups;
        }
        decide_group(p, items, g, out->d);
        out->ngroups++;
        i = j;
    }
    free(o);
    return 0;
}

void retention_result_free(retention_result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        for (size_t k = 0; k < r->d[i].nreasons; k++)
            free(r->d[i].reasons[k]);
        free(r->d[i].reasons);
    }
    free(r->d);
    for (size_t g = 0; g < r->ngroups; g++)
        free(r->groups[g].items);
    free(r->groups);
    memset(r, 0, sizeof *r);
}
