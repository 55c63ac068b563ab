/*
 * cron_test.c — cron expressions against answers worked out by hand from
 * the calendar (weekdays checked against `cal`) and the published DST
 * rules:
 *   Europe/Berlin 2026: CET = UTC+1, CEST = UTC+2; spring forward on Sun
 *     29 Mar at 01:00 UTC (02:00 CET -> 03:00 CEST), fall back on Sun
 *     25 Oct at 01:00 UTC (03:00 CEST -> 02:00 CET).
 *   America/New_York 2026: EST = UTC-5, EDT = UTC-4; spring forward Sun
 *     8 Mar at 07:00 UTC (02:00 EST -> 03:00 EDT), fall back Sun 1 Nov at
 *     06:00 UTC (02:00 EDT -> 01:00 EST).
 * Times below are UTC unless a comment says otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/cron.h"

/* "YYYY-MM-DD HH:MM[:SS]" in UTC -> time_t */
static time_t utc(const char *s)
{
    struct tm tm = {0};
    int n = sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec);
    assert_true(n >= 5);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

static void expect_next(const char *expr, const char *tz, const char *after, const char *want)
{
    cron c;
    ob_err err = OB_ERR_INIT;
    if (cron_parse(expr, &c, &err) < 0)
        fail_msg("parse '%s': %s", expr, ob_err_msg(&err));
    time_t got;
    if (cron_next(&c, utc(after), tz, &got, &err) < 0)
        fail_msg("next '%s': %s", expr, ob_err_msg(&err));
    if (got != utc(want)) {
        struct tm tm;
        gmtime_r(&got, &tm);
        char buf[64];
        strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
        fail_msg("'%s' in %s after %s: want %s, got %s", expr, tz ? tz : "local", after, want,
                 buf);
    }
}

static void expect_error(const char *expr, const char *msg)
{
    cron c;
    ob_err err = OB_ERR_INIT;
    if (cron_parse(expr, &c, &err) == 0)
        fail_msg("'%s' parsed but should fail", expr);
    assert_int_equal(err.code, OB_EUSAGE);
    if (!strstr(ob_err_msg(&err), msg))
        fail_msg("'%s': message '%s' lacks '%s'", expr, ob_err_msg(&err), msg);
    ob_err_clear(&err);
}

static void test_basic(void **state)
{
    (void)state;
    expect_next("*/15 * * * *", "UTC", "2026-01-01 10:07", "2026-01-01 10:15");
    /* strictly after: a run at exactly `after` is not the next one */
    expect_next("0 2 * * *", "UTC", "2026-01-01 02:00", "2026-01-02 02:00");
    expect_next("* * * * *", "UTC", "2026-01-01 10:07:30", "2026-01-01 10:08");
    expect_next("0 1-5/2 * * *", "UTC", "2026-01-01 03:00", "2026-01-01 05:00");
    expect_next("0 1-5/2 * * *", "UTC", "2026-01-01 05:00", "2026-01-02 01:00");
    expect_next("10,20,40 * * * *", "UTC", "2026-01-01 10:25", "2026-01-01 10:40");
    expect_next("50/5 * * * *", "UTC", "2026-01-01 10:56", "2026-01-01 11:50");
    expect_next("59 23 31 12 *", "UTC", "2026-06-01 00:00", "2026-12-31 23:59");
}

static void test_calendar(void **state)
{
    (void)state;
    /* Feb 29: 2027 is not a leap year, 2028 is */
    expect_next("0 0 29 2 *", "UTC", "2026-03-01 00:00", "2028-02-29 00:00");
    /* month end: April has no 31st */
    expect_next("0 0 31 * *", "UTC", "2026-04-01 00:00", "2026-05-31 00:00");
    expect_next("0 0 31 * *", "UTC", "2026-01-31 00:00", "2026-03-31 00:00");
    /* names, case-insensitive; April..December excluded; 2027-01-01 is a Friday */
    expect_next("30 8 * JAN-mar Mon-FRI", "UTC", "2026-03-31 09:00", "2027-01-01 08:30");
    /* 7 and 0 are both Sunday; 2026-02-08 is a Sunday */
    expect_next("0 12 * * 7", "UTC", "2026-02-02 00:00", "2026-02-08 12:00");
    expect_next("0 12 * * 0", "UTC", "2026-02-02 00:00", "2026-02-08 12:00");
    expect_next("0 12 * * 5-7", "UTC", "2026-02-07 13:00", "2026-02-08 12:00");
    /* macros */
    expect_next("@weekly", "UTC", "2026-02-02 00:00", "2026-02-08 00:00");
    expect_next("@hourly", "UTC", "2026-02-02 00:00", "2026-02-02 01:00");
    expect_next("@daily", "UTC", "2026-02-02 00:00", "2026-02-03 00:00");
    expect_next("@monthly", "UTC", "2026-02-02 00:00", "2026-03-01 00:00");
    expect_next("@YEARLY", "UTC", "2026-02-02 00:00", "2027-01-01 00:00");
}

static void test_dom_dow_rule(void **state)
{
    (void)state;
    /* both restricted: either matches.  2026-02-01 is a Sunday (the 1st),
     * 2026-02-02 a Monday. */
    expect_next("0 0 1 * mon", "UTC", "2026-01-28 00:00", "2026-02-01 00:00");
    expect_next("0 0 1 * mon", "UTC", "2026-02-01 00:00", "2026-02-02 00:00");
    /* day-of-month starts with '*': both must match (odd days that are
     * Mondays): Feb 2 is even, Feb 9 is the next odd Monday */
    expect_next("0 0 */2 * mon", "UTC", "2026-02-01 00:00", "2026-02-09 00:00");
    /* day-of-week '*': day-of-month alone */
    expect_next("0 0 15 * *", "UTC", "2026-02-01 00:00", "2026-02-15 00:00");
}

static void test_dst_berlin(void **state)
{
    (void)state;
    const char *tz = "Europe/Berlin";
    /* ordinary day: 02:00 CET = 01:00 UTC */
    expect_next("0 2 * * *", tz, "2026-01-10 00:00", "2026-01-10 01:00");
    /* spring forward, fixed time in the skipped hour: runs at the change
     * (03:00 CEST = 01:00 UTC), then at 02:30 CEST the day after */
    expect_next("30 2 * * *", tz, "2026-03-28 12:00", "2026-03-29 01:00");
    expect_next("30 2 * * *", tz, "2026-03-29 01:00", "2026-03-30 00:30");
    /* wildcard hour: 02:30 does not exist that day, next is 03:30 CEST */
    expect_next("30 * * * *", tz, "2026-03-29 00:45", "2026-03-29 01:30");
    /* fall back, fixed: 02:30 CEST (00:30 UTC) only, not 02:30 CET again */
    expect_next("30 2 * * *", tz, "2026-10-24 12:00", "2026-10-25 00:30");
    expect_next("30 2 * * *", tz, "2026-10-25 00:30", "2026-10-26 01:30");
    /* fall back, wildcard: 02:30 CEST, 02:30 CET, 03:30 CET */
    expect_next("30 * * * *", tz, "2026-10-24 23:45", "2026-10-25 00:30");
    expect_next("30 * * * *", tz, "2026-10-25 00:30", "2026-10-25 01:30");
    expect_next("30 * * * *", tz, "2026-10-25 01:30", "2026-10-25 02:30");
    /* 02:50 CEST -> 02:00 CET (the clock went back) */
    expect_next("*/15 * * * *", tz, "2026-10-25 00:50", "2026-10-25 01:00");
    /* a year ahead across both changes: 00:00 CET on 1 Jan */
    expect_next("0 0 1 1 *", tz, "2026-06-01 00:00", "2026-12-31 23:00");
}

static void test_dst_new_york(void **state)
{
    (void)state;
    const char *tz = "America/New_York";
    /* 02:00 EST does not exist on 8 Mar: runs at the change, 07:00 UTC */
    expect_next("0 2 * * *", tz, "2026-03-07 12:00", "2026-03-08 07:00");
    expect_next("0 2 * * *", tz, "2026-03-08 07:00", "2026-03-09 06:00");
    /* 01:30 on 1 Nov happens twice: only the first (EDT, 05:30 UTC) */
    expect_next("30 1 * * *", tz, "2026-10-31 12:00", "2026-11-01 05:30");
    expect_next("30 1 * * *", tz, "2026-11-01 05:30", "2026-11-02 06:30");
    expect_next("*/30 * * * *", tz, "2026-11-01 05:30", "2026-11-01 06:00");
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("61 * * * *", "minute 61 is out of range 0-59");
    expect_error("0 24 * * *", "hour 24 is out of range 0-23");
    expect_error("0 0 0 * *", "day-of-month 0 is out of range 1-31");
    expect_error("0 0 * 13 *", "month 13 is out of range 1-12");
    expect_error("0 0 * * 8", "day-of-week 8 is out of range 0-7");
    expect_error("* * * *", "4 fields given");
    expect_error("", "0 fields given");
    expect_error("* * * * * *", "too many fields");
    expect_error("5-1 * * * *", "range 5-1 is backwards");
    expect_error("*/0 * * * *", "step 0 is out of range");
    expect_error("*/ * * * *", "step after '/' must be a number");
    expect_error("1,,2 * * * *", "empty item");
    expect_error("1, * * * *", "empty item");
    expect_error("abc * * * *", "'abc' is not a number");
    expect_error("0 0 * foo *", "'foo' is not a number or a name");
    expect_error("0 0 * * monday", "is not a number or a name");
    expect_error("0 0 30 2 *", "never match");
    expect_error("0 0 31 4,6 *", "never match");
    expect_error("@often", "unknown schedule");
    expect_error("@daily 5", "unknown schedule");
    expect_error("99999999999999999999999 * * * *", "out of range 0-59");
    expect_error("1-2-3 * * * *", "unexpected '-'");
    char *big = malloc(100001);
    memset(big, '1', 100000);
    big[100000] = '\0';
    expect_error(big, "out of range");
    free(big);
    /* hostile input: random bytes from the cron alphabet and beyond must
     * parse or fail cleanly (run under ASan/UBSan by tests/run --asan) */
    srand(7);
    static const char alphabet[] = "0123456789*/,- \tjanmonSUN@#\x80xyz";
    for (int i = 0; i < 20000; i++) {
        char s[40];
        size_t n = (size_t)(rand() % 39);
        for (size_t j = 0; j < n; j++)
            s[j] = alphabet[rand() % (int)(sizeof alphabet - 1)];
        s[n] = '\0';
        cron c2;
        ob_err e2 = OB_ERR_INIT;
        if (cron_parse(s, &c2, &e2) == 0) {
            time_t t2;
            if (cron_next(&c2, 1800000000, "UTC", &t2, &e2) == 0)
                assert_true(t2 > 1800000000);
        }
        ob_err_clear(&e2);
    }
    /* the OR rule makes a never-existing day-of-month harmless */
    cron c;
    ob_err err = OB_ERR_INIT;
    assert_int_equal(cron_parse("0 0 30 2 mon", &c, &err), 0);
}

/* The zone must be a TZif file under $TZDIR: not a directory, not
 * another kind of file the database ships (leapseconds, zone.tab). */
static void test_tz_zoneinfo_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/cron_test_tz.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/Region", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/Region/City", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("TZif2 and the rest of a zone file", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/leapseconds", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("# Allowance for leap seconds\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/Fifo", dir);
    assert_int_equal(mkfifo(path, 0644), 0);
    setenv("TZDIR", dir, 1);
    ob_err err = OB_ERR_INIT;
    assert_int_equal(cron_tz_check("Region/City", &err), 0);
    assert_int_equal(cron_tz_check("Region", &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "timezone 'Region' is a directory"));
    assert_int_equal(cron_tz_check("leapseconds", &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "'leapseconds'"));
    assert_non_null(strstr(ob_err_msg(&err), "not a zone file"));
    /* Must not block on open. */
    assert_int_equal(cron_tz_check("Fifo", &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "'Fifo'"));
    assert_int_equal(cron_tz_check("Region/Nowhere", &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "unknown timezone 'Region/Nowhere'"));
    ob_err_clear(&err);
    unsetenv("TZDIR");
    const char *made[] = {"Fifo", "leapseconds", "Region/City", "Region"};
    for (size_t i = 0; i < sizeof made / sizeof *made; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, made[i]);
        assert_int_equal(remove(path), 0);
    }
    assert_int_equal(rmdir(dir), 0);
}

static void test_timezones(void **state)
{
    (void)state;
    ob_err err = OB_ERR_INIT;
    assert_int_equal(cron_tz_check("Europe/Berlin", &err), 0);
    assert_int_equal(cron_tz_check("UTC", &err), 0);
    assert_int_equal(cron_tz_check("Europe/Nowhere", &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "unknown timezone"));
    assert_int_equal(cron_tz_check("../../etc/passwd", &err), -1);
    assert_int_equal(cron_tz_check("/etc/localtime", &err), -1);
    assert_int_equal(cron_tz_check("CET-1CEST,M3.5.0,M10.5.0/3", &err), -1);
    /* A region of the zoneinfo database is a directory, not a zone:
     * TZ=Europe would be read as a POSIX rule, i.e. UTC, without a word. */
    assert_int_equal(cron_tz_check("Europe", &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "'Europe' is a directory"));
    assert_int_equal(cron_tz_check("America", &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "'America'"));
    assert_int_equal(cron_tz_check("Europe/", &err), -1);
    assert_int_equal(cron_tz_check("Europe//Berlin", &err), -1);
    assert_int_equal(cron_tz_check("Europe/./Berlin", &err), -1);
    assert_int_equal(cron_tz_check("Europe/../Europe/Berlin", &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "'Europe/../Europe/Berlin'"));
    assert_int_equal(cron_tz_check("/usr/share/zoneinfo/Europe/Berlin", &err), -1);
    ob_err_clear(&err);
    cron c;
    assert_int_equal(cron_parse("@daily", &c, &err), 0);
    time_t t;
    assert_int_equal(cron_next(&c, 0, "Mars/Olympus", &t, &err), -1);
    ob_err_clear(&err);
    assert_int_equal(cron_next(&c, (time_t)INT64_MAX, "UTC", &t, &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "outside the years"));
    ob_err_clear(&err);
    /* TZ of the process is left as it was */
    setenv("TZ", "Asia/Tokyo", 1);
    assert_int_equal(cron_next(&c, utc("2026-01-01 00:00"), "Europe/Berlin", &t, &err), 0);
    assert_string_equal(getenv("TZ"), "Asia/Tokyo");
    /* NULL = local time (Tokyo, UTC+9): midnight JST is 15:00 UTC */
    assert_int_equal(cron_next(&c, utc("2026-01-01 00:00"), NULL, &t, &err), 0);
    assert_true(t == utc("2026-01-01 15:00"));
    unsetenv("TZ");
}

/* cron_count gives the times cron_next gives one by one, across both DST
 * changes of a year in Berlin, stops at max and at until, and fails as
 * cron_next does for an unknown zone. */
static void test_count(void **state)
{
    (void)state;
    const char *exprs[] = {"30 2 * * *", "*/7 * * * *", "0 0 1 * *", "15 1-3 * * 0"};
    for (size_t i = 0; i < sizeof exprs / sizeof *exprs; i++) {
        cron c;
        ob_err err = OB_ERR_INIT;
        assert_int_equal(cron_parse(exprs[i], &c, &err), 0);
        time_t from = utc("2026-01-01 00:00"), until = utc("2027-01-01 00:00");
        unsigned want = 0;
        time_t t = from, next, want_last = from;
        while (cron_next(&c, t, "Europe/Berlin", &next, &err) == 0 && next <= until) {
            want++;
            t = want_last = next;
        }
        unsigned n;
        time_t last;
        assert_int_equal(cron_count(&c, from, until, "Europe/Berlin", 1000000, &n, &last, &err),
                         0);
        assert_int_equal(n, want);
        assert_true(last == want_last);
        assert_true(n > 0);
        /* max stops it at exactly max, on the max-th time. */
        unsigned k = n / 2 + 1;
        assert_int_equal(cron_count(&c, from, until, "Europe/Berlin", k, &n, &last, &err), 0);
        assert_int_equal(n, k);
        time_t kth = from;
        for (unsigned j = 0; j < k; j++)
            assert_int_equal(cron_next(&c, kth, "Europe/Berlin", &kth, &err), 0);
        assert_true(last == kth);
    }
    cron c;
    ob_err err = OB_ERR_INIT;
    unsigned n = 7;
    time_t last = 0;
    /* Known answers for 2026 in Berlin: 02:30 every day, also on the day
     * 02:30 does not exist (run at 03:00) and once on the day it happens
     * twice; the first of each month at local midnight, which for January
     * 2026 is 2025-12-31 23:00 UTC (before the range) and for January 2027
     * is 2026-12-31 23:00 UTC (inside it). */
    assert_int_equal(cron_parse("30 2 * * *", &c, &err), 0);
    assert_int_equal(cron_count(&c, utc("2026-01-01 00:00"), utc("2027-01-01 00:00"),
                                "Europe/Berlin", 1000000, &n, &last, &err),
                     0);
    assert_int_equal(n, 365);
    assert_true(last == utc("2026-12-31 01:30"));
    assert_int_equal(cron_parse("0 0 1 * *", &c, &err), 0);
    assert_int_equal(cron_count(&c, utc("2026-01-01 00:00"), utc("2027-01-01 00:00"),
                                "Europe/Berlin", 1000000, &n, &last, &err),
                     0);
    assert_int_equal(n, 12);
    assert_true(last == utc("2026-12-31 23:00"));
    /* The process's own zone (NULL) too. */
    assert_int_equal(cron_parse("*/7 * * * *", &c, &err), 0);
    unsigned want = 0;
    time_t t = utc("2026-03-01 00:00"), next, want_last = t;
    while (cron_next(&c, t, NULL, &next, &err) == 0 && next <= utc("2026-03-02 00:00")) {
        want++;
        t = want_last = next;
    }
    assert_int_equal(cron_count(&c, utc("2026-03-01 00:00"), utc("2026-03-02 00:00"), NULL,
                                1000000, &n, &last, &err),
                     0);
    assert_int_equal(n, want);
    assert_true(last == want_last);
    /* A walk that fails part of the way keeps what it counted: past the
     * last minute of 9999 there is no next time. */
    assert_int_equal(cron_parse("*/10 * * * *", &c, &err), 0);
    assert_int_equal(cron_count(&c, 253402300799LL - 3600, 253402300799LL + 86400, "UTC", 1000,
                                &n, &last, &err),
                     -1);
    assert_int_equal(err.code, OB_EUSAGE);
    ob_err_clear(&err);
    /* 23:00, 23:10, ... 23:50 and 10000-01-01 00:00 (cron_next gives
     * that one too), then the next step starts after 9999 and fails. */
    assert_int_equal(n, 7);
    assert_true(last == 253402300800LL);
    assert_int_equal(cron_parse("0 * * * *", &c, &err), 0);
    n = 7;
    last = 0;
    /* Nothing due: 0, and last is `after`. */
    assert_int_equal(cron_count(&c, utc("2026-03-01 10:00"), utc("2026-03-01 10:59"), "UTC", 10,
                                &n, &last, &err),
                     0);
    assert_int_equal(n, 0);
    assert_true(last == utc("2026-03-01 10:00"));
    assert_int_equal(cron_count(&c, 0, 100000, "Mars/Olympus", 10, &n, &last, &err), -1);
    assert_int_equal(err.code, OB_EUSAGE);
    ob_err_clear(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),         cmocka_unit_test(test_calendar),
        cmocka_unit_test(test_dom_dow_rule),  cmocka_unit_test(test_dst_berlin),
        cmocka_unit_test(test_dst_new_york),  cmocka_unit_test(test_errors),
        cmocka_unit_test(test_timezones),     cmocka_unit_test(test_tz_zoneinfo_files),
        cmocka_unit_test(test_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
