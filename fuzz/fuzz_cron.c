/*
 * fuzz_cron.c — cron expressions (core/cron.c) as they come from a job's
 * `schedule =` line: cron_parse, then cron_next in UTC and in a zone with
 * daylight saving time, from a moment just before the 2026 spring-forward.
 *
 * In UTC there is no DST rule to argue about, so the answer is checked:
 * strictly later, a whole minute, and matching every field under the
 * Vixie day rule (cron.h).  cron_count over the next two days (across the
 * spring-forward in Berlin) must give what a loop of cron_next gives.
 */
#include <stdlib.h>
#include <time.h>

#include "core/cron.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_utc(const cron *c, time_t after, time_t t)
{
    struct tm tm;
    if (t <= after || t % 60 != 0 || !gmtime_r(&t, &tm))
        __builtin_trap();
    int dom = c->dom >> tm.tm_mday & 1, dow = c->dow >> tm.tm_wday & 1;
    int day = (c->flags & (CRON_DOM_STAR | CRON_DOW_STAR)) ? dom && dow : dom || dow;
    if (!(c->minute >> tm.tm_min & 1) || !(c->hour >> tm.tm_hour & 1) ||
        !(c->month >> (tm.tm_mon + 1) & 1) || !day)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256) /* a schedule is one short line */
        return 0;
    char *expr = fuzz_strndup(data, size);
    cron c;
    ob_err err = OB_ERR_INIT;
    if (cron_parse(expr, &c, &err) == 0) {
        const time_t after = 1774744200; /* 2026-03-29 00:30:00 UTC */
        time_t t;
        if (cron_next(&c, after, "UTC", &t, &err) == 0)
            check_utc(&c, after, t);
        ob_err_clear(&err);
        if (cron_next(&c, after, "Europe/Berlin", &t, &err) == 0 && t <= after)
            __builtin_trap();
        ob_err_clear(&err);
        const time_t until = after + 2 * 86400;
        unsigned want = 0, n = 0;
        time_t at = after, want_last = after, last;
        while (want < 5000 && cron_next(&c, at, "Europe/Berlin", &t, &err) == 0 && t <= until) {
            want++;
            at = want_last = t;
        }
        ob_err_clear(&err);
        if (cron_count(&c, after, until, "Europe/Berlin", 5000, &n, &last, &err) == 0 &&
            (n != want || last != want_last))
            __builtin_trap();
    }
    ob_err_clear(&err);
    free(expr);
    return 0;
}
