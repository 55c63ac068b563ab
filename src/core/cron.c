/*
 * cron.c — parse cron expressions and compute the next run (cron.h).
 *
 * cron_next works in two clocks: instants (time_t) and "wall" times, the
 * local calendar time written as seconds as if it were UTC (so timegm and
 * gmtime_r do calendar arithmetic without any timezone).  Between two
 * offset changes of the zone, wall = instant + offset is linear; the
 * search finds the next matching wall time, and if an offset change comes
 * first, steps to that change and decides what the DST rules of cron.h say.
 */
#include "core/cron.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct field_spec {
    const char *name;
    int min, max;
    const char *const *names;  /* names[i] is value min_name + i, or NULL */
    int min_name;
} field_spec;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const field_spec fields[5] = {
    {"minute", 0, 59, NULL, 0},
    {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0},
    {"month", 1, 12, month_names, 1},
    {"day-of-week", 0, 7, dow_names, 0}, /* 7 is Sunday too */
};

/* One value: a number or a name.  *p advances past it. */
static int parse_value(const field_spec *f, const char **p, int *out, ob_err *err)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s)) {
            if (v < 100000)          /* keep hostile long numbers from overflowing */
                v = v * 10 + (*s - '0');
            s++;
        }
        if (v < f->min || v > f->max)
            return ob_err_set(err, OB_EUSAGE, "%s %ld is out of range %d-%d", f->name, v,
                              f->min, f->max);
        *out = (int)v;
        *p = s;
        return 0;
    }
    if (f->names && isalpha((unsigned char)*s)) {
        for (int i = 0; f->names[i]; i++)
            if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
                *out = f->min_name + i;
                *p = s + 3;
                return 0;
            }
    }
    size_t n = strcspn(s, ",-/ \t");
    if (n == 0)
        return ob_err_set(err, OB_EUSAGE, "%s: a value is missing", f->name);
    return ob_err_set(err, OB_EUSAGE, "%s: '%.*s' is not a %s", f->name, (int)(n > 20 ? 20 : n),
                      s, f->names ? "number or a name" : "number");
}

/* One field "a,b-c,*\/n..." of length len into a bitmask. */
static int parse_field(const field_spec *f, const char *s, size_t len, uint64_t *mask, int *star,
                       ob_err *err)
{
    char *copy = strndup(s, len);
    if (!copy)
        return ob_err_set(err, OB_EFAIL, "out of memory");
    *mask = 0;
    *star = copy[0] == '*';
    int rc = 0;
    const char *p = copy;
    for (;;) {
        int lo, hi, step = 1, single = 0;
        if (*p == '*') {
            lo = f->min;
            hi = f->max == 7 ? 6 : f->max;
            p++;
        } else {
            if ((rc = parse_value(f, &p, &lo, err)) < 0)
                break;
            hi = lo;
            single = *p != '-';
            if (*p == '-') {
                p++;
                if ((rc = parse_value(f, &p, &hi, err)) < 0)
                    break;
                if (hi < lo) {
                    rc = ob_err_set(err, OB_EUSAGE, "%s range %d-%d is backwards", f->name, lo,
                                    hi);
                    break;
                }
            }
        }
        if (*p == '/') {
            p++;
            if (!isdigit((unsigned char)*p)) {
                rc = ob_err_set(err, OB_EUSAGE, "%s: a step after '/' must be a number",
                                f->name);
                break;
            }
            long v = 0;
            while (isdigit((unsigned char)*p)) {
                if (v < 100000)
                    v = v * 10 + (*p - '0');
                p++;
            }
            if (v < 1 || v > f->max) {
                rc = ob_err_set(err, OB_EUSAGE, "%s step %ld is out of range 1-%d", f->name, v,
                                f->max);
                break;
            }
            step = (int)v;
            /* "5/15" (no range): from 5 to the end, as cronie does. */
            if (single)
                hi = f->max == 7 ? 6 : f->max;
        }
        for (int v = lo; v <= hi; v += step)
            *mask |= (uint64_t)1 << (f->max == 7 && v == 7 ? 0 : v);
        if (*p == '\0')
            break;
        if (*p != ',') {
            rc = ob_err_set(err, OB_EUSAGE, "%s: unexpected '%c' in '%s'", f->name, *p, copy);
            break;
        }
        p++;
        if (*p == '\0' || *p == ',') {
            rc = ob_err_set(err, OB_EUSAGE, "%s: empty item in list '%s'", f->name, copy);
            break;
        }
    }
    free(copy);
    return rc;
}

static const struct {
    const char *name, *expansion;
} macros[] = {
    {"@yearly", "0 0 1 1 *"},   {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"},   {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static int days_in_month_max(int m)
{
    static const int d[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return d[m];
}

int cron_parse(const char *expr, cron *out, ob_err *err)
{
    memset(out, 0, sizeof *out);
    while (*expr == ' ' || *expr == '\t')
        expr++;
    if (*expr == '@') {
        size_t n = strcspn(expr, " \t");
        const char *rest = expr + n;
        while (*rest == ' ' || *rest == '\t')
            rest++;
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
            if (strlen(macros[i].name) == n && strncasecmp(expr, macros[i].name, n) == 0 &&
                *rest == '\0')
                return cron_parse(macros[i].expansion, out, err);
        return ob_err_set(err, OB_EUSAGE,
                          "unknown schedule '%.*s' (use @hourly, @daily, @weekly, @monthly, "
                          "@yearly or 5 fields)",
                          (int)(n > 20 ? 20 : n), expr);
    }
    const char *p = expr;
    uint64_t masks[5];
    int nf = 0;
    while (*p) {
        size_t len = strcspn(p, " \t");
        if (nf == 5)
            return ob_err_set(err, OB_EUSAGE,
                              "too many fields: a schedule has 5 (minute hour day-of-month "
                              "month day-of-week)");
        int star = 0;
        if (parse_field(&fields[nf], p, len, &masks[nf], &star, err) < 0)
            return -1;
        if (star)
            out->flags |= 1u << nf;
        nf++;
        p += len;
        while (*p == ' ' || *p == '\t')
            p++;
    }
    if (nf != 5)
        return ob_err_set(err, OB_EUSAGE,
                          "%d field%s given: a schedule has 5 (minute hour day-of-month month "
                          "day-of-week), e.g. '0 2 * * *'",
                          nf, nf == 1 ? "" : "s");
    out->minute = masks[0];
    out->hour = (uint32_t)masks[1];
    out->dom = (uint32_t)masks[2];
    out->month = (uint16_t)masks[3];
    out->dow = (uint8_t)masks[4];
    /* With the weekday unrestricted, day-of-month alone decides: refuse
     * dates that never exist ("0 0 30 2 *") instead of never running. */
    if ((out->flags & CRON_DOW_STAR) && out->dow == 0x7f) {
        int ok = 0;
        for (int m = 1; m <= 12 && !ok; m++)
            for (int d = 1; d <= days_in_month_max(m) && !ok; d++)
                ok = (out->month >> m & 1) && (out->dom >> d & 1);
        if (!ok)
            return ob_err_set(err, OB_EUSAGE,
                              "day-of-month and month never match: no such date exists");
    }
    return 0;
}

/* ---- wall-clock search (no timezone involved) ---- */

static int day_matches(const cron *c, const struct tm *tm)
{
    int dom = c->dom >> tm->tm_mday & 1, dow = c->dow >> tm->tm_wday & 1;
    if (c->flags & (CRON_DOM_STAR | CRON_DOW_STAR))
        return dom && dow;
    return dom || dow;
}

/* The first wall time >= w (a whole minute) that matches; -1 if none in
 * 30 years. */
static int next_wall(const cron *c, int64_t w, int64_t *out)
{
    time_t t = (time_t)w;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return -1;
    int limit_year = tm.tm_year + 30;
    while (tm.tm_year <= limit_year) {
        if (!(c->month >> (tm.tm_mon + 1) & 1)) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!day_matches(c, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!(c->hour >> tm.tm_hour & 1)) {
            tm.tm_hour++;
            tm.tm_min = 0;
        } else if (!(c->minute >> tm.tm_min & 1)) {
            tm.tm_min++;
        } else {
            *out = (int64_t)timegm(&tm);
            return 0;
        }
        tm.tm_sec = 0;
        tm.tm_isdst = 0;
        t = timegm(&tm); /* normalise (day 32 -> next month) and set tm_wday */
        if (!gmtime_r(&t, &tm))
            return -1;
    }
    return -1;
}

/* ---- timezone ---- */

/*
 * glibc converts to local time only in the zone named by the TZ variable,
 * so computing in another zone means switching TZ.  The switch is kept
 * inside tz_enter/tz_leave under one lock and TZ is restored afterwards;
 * this is the only global state the module touches.
 */
static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct tz_scope {
    char *saved;  /* previous TZ value (heap), NULL if it was unset */
    int switched;
} tz_scope;

static void tz_enter(tz_scope *s, const char *tz)
{
    pthread_mutex_lock(&tz_lock);
    s->saved = NULL;
    s->switched = 0;
    if (tz) {
        const char *old = getenv("TZ");
        s->saved = old ? strdup(old) : NULL;
        setenv("TZ", tz, 1);
        s->switched = 1;
    }
    tzset();
}

static void tz_leave(tz_scope *s)
{
    if (s->switched) {
        if (s->saved)
            setenv("TZ", s->saved, 1);
        else
            unsetenv("TZ");
        free(s->saved);
        tzset();
    }
    pthread_mutex_unlock(&tz_lock);
}

int cron_tz_check(const char *tz, ob_err *err)
{
    if (!tz || !*tz)
        return ob_err_set(err, OB_EUSAGE, "timezone is empty");
    /* Only zoneinfo names, relative to the zoneinfo directory: no absolute
     * paths, no "." or ".." components ('.' is not allowed at all), no
     * empty ones, no POSIX TZ rules.  glibc reads a TZ it cannot open as a
     * POSIX rule, so a mistyped one would silently be UTC. */
    for (const char *p = tz; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("/_+-", *p))
            return ob_err_set(err, OB_EUSAGE,
                              "timezone '%.40s' is not an IANA name such as Europe/Berlin", tz);
    if (tz[0] == '/' || tz[strlen(tz) - 1] == '/' || strstr(tz, "//"))
        return ob_err_set(err, OB_EUSAGE,
                          "timezone '%.40s' is not an IANA name such as Europe/Berlin", tz);
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    char *path = NULL;
    if (asprintf(&path, "%s/%s", dir, tz) < 0)
        return ob_err_set(err, OB_EFAIL, "out of memory");
    /* A zone is a TZif file.  Anything else that opens there would reach
     * glibc, fail to parse, and be UTC: a region ("Europe", a directory)
     * or one of the database's other files ("leapseconds").  stat follows
     * the database's own links (GB -> Europe/London). */
    struct stat st;
    int rc = 0;
    if (stat(path, &st) < 0) {
        rc = ob_err_set(err, OB_EUSAGE, "unknown timezone '%.40s' (not in %s)", tz, dir);
    } else if (S_ISDIR(st.st_mode)) {
        rc = ob_err_set(err, OB_EUSAGE,
                        "timezone '%.40s' is a directory of %s, not a zone: name a zone in it "
                        "(ls %s), such as Europe/Berlin",
                        tz, dir, path);
    } else {
        char magic[4] = {0};
        ssize_t got = -1;
        /* Only a regular file is opened: a FIFO there must not hang us. */
        int fd = S_ISREG(st.st_mode) ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        if (S_ISREG(st.st_mode) && fd < 0) {
            rc = ob_err_errno(err, errno, "timezone '%.40s': cannot read %s", tz, path);
        } else {
            if (fd >= 0) {
                got = read(fd, magic, sizeof magic);
                close(fd);
            }
            if (got != (ssize_t)sizeof magic || memcmp(magic, "TZif", 4) != 0)
                rc = ob_err_set(err, OB_EUSAGE,
                                "timezone '%.40s': %s is not a zone file; name a zone such as "
                                "Europe/Berlin",
                                tz, path);
        }
    }
    free(path);
    return rc;
}

static long offset_at(time_t t)
{
    struct tm tm;
    if (!localtime_r(&t, &tm))
        return 0;
    return tm.tm_gmtoff;
}

/* The first instant in (a, b] whose offset differs from offset_at(a), or
 * 0 if none is seen.  Probed a day at a time (zones do not change offset
 * twice within a day), then bisected to the second. */
static time_t next_change(time_t a, time_t b)
{
    long off = offset_at(a);
    time_t lo = a;
    while (lo < b) {
        time_t hi = b - lo > 86400 ? lo + 86400 : b;
        if (offset_at(hi) != off) {
            while (hi - lo > 1) {
                time_t mid = lo + (hi - lo) / 2;
                if (offset_at(mid) != off)
                    hi = mid;
                else
                    lo = mid;
            }
            return hi;
        }
        lo = hi;
    }
    return 0;
}

static int64_t ceil_minute(int64_t w)
{
    int64_t r = w % 60;
    if (r < 0)
        r += 60;
    return r ? w + (60 - r) : w;
}

/* cron_next's search, in the zone already entered (tz_enter). */
static int next_in_zone(const cron *c, time_t after, time_t *out, ob_err *err)
{
    /* Years beyond 9999 are not a schedule anyone means; refusing them
     * keeps the calendar arithmetic below far from time_t overflow. */
    if (after < -2208988800LL || after > 253402300799LL)
        return ob_err_set(err, OB_EUSAGE, "time %lld is outside the years 1900-9999",
                          (long long)after);
    int wildcard = (c->flags & (CRON_MIN_STAR | CRON_HOUR_STAR)) != 0;
    time_t t = after + 1;
    /* Fixed entries never go back on the wall clock: wall times below
     * `high` were already considered (a fall-back repeats them). */
    int64_t high = ceil_minute((int64_t)t + offset_at(t));
    for (int guard = 0; guard < 1000; guard++) {
        long off = offset_at(t);
        int64_t w = ceil_minute((int64_t)t + off);
        if (!wildcard && w < high)
            w = high;
        int64_t W;
        if (next_wall(c, w, &W) < 0)
            break;
        time_t tW = (time_t)(W - off);
        time_t tx = next_change(t, tW);
        if (!tx) {
            *out = tW;
            return 0;
        }
        long off2 = offset_at(tx);
        if (off2 > off && !wildcard && W < (int64_t)tx + off2) {
            /* W lies in the interval the clock skipped: run at the change. */
            *out = (time_t)ceil_minute(tx);
            return 0;
        }
        high = ceil_minute((int64_t)tx + off);
        t = tx;
    }
    return ob_err_set(err, OB_EUSAGE, "the schedule matches no time in the next 30 years");
}

int cron_next(const cron *c, time_t after, const char *tz, time_t *out, ob_err *err)
{
    if (tz && cron_tz_check(tz, err) < 0)
        return -1;
    tz_scope scope;
    tz_enter(&scope, tz);
    int rc = next_in_zone(c, after, out, err);
    tz_leave(&scope);
    return rc;
}

int cron_count(const cron *c, time_t after, time_t until, const char *tz, unsigned max,
               unsigned *count, time_t *last, ob_err *err)
{
    *count = 0;
    *last = after;
    if (tz && cron_tz_check(tz, err) < 0)
        return -1;
    /* One zone switch for the whole walk: tz_enter and tz_leave each make
     * glibc read the zone file again. */
    tz_scope scope;
    tz_enter(&scope, tz);
    int rc = 0;
    time_t t = after, next;
    while (*count < max) {
        if (next_in_zone(c, t, &next, err) < 0) {
            rc = -1;
            break;
        }
        if (next > until)
            break;
        (*count)++;
        t = *last = next;
    }
    tz_leave(&scope);
    return rc;
}
