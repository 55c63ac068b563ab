/*
 * retention_test.c — the retention policy against hand-computed answers.
 *
 * Every case lists snapshot times, a policy, and the set of snapshots that
 * must be kept (worked out by hand from the rules in retention.h, with the
 * reasoning in a comment), plus the reasons for a few of them.  Times are
 * UTC and TZ=UTC is set in main, except for the one test that proves
 * buckets follow the local zone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/util.h"
#include "repo/retention.h"

#define MAXN 32

typedef struct fixture {
    retention_item items[MAXN];
    char *ids[MAXN];
    size_t n;
    retention_policy p;
    retention_result res;
} fixture;

/* "2024-03-01 08:00:00" (UTC) -> item; its id is its position, zero-padded,
 * so ties sort by position. */
static void add(fixture *f, const char *when, const char *set, const char *kind,
                char *const *tags, size_t ntags)
{
    assert_true(f->n < MAXN);
    char *iso = ob_xasprintf("%sZ", when);
    int64_t t = 0;
    assert_int_equal(ob_time_parse(iso, &t, NULL), 0);
    free(iso);
    retention_item *it = &f->items[f->n];
    f->ids[f->n] = ob_xasprintf("%02zu", f->n);
    it->time = t;
    it->id = f->ids[f->n];
    it->set = set;
    it->kind = kind;
    it->tags = tags;
    it->ntags = ntags;
    f->n++;
}

static void addt(fixture *f, const char *when) { add(f, when, "s", "files", NULL, 0); }

static void set(fixture *f, const char *key, const char *value)
{
    ob_err e = OB_ERR_INIT;
    if (retention_policy_set(&f->p, key, value, &e) < 0)
        fail_msg("retention_policy_set(%s, %s): %s", key, value, ob_err_msg(&e));
}

static void run(fixture *f)
{
    ob_err e = OB_ERR_INIT;
    if (retention_apply(&f->p, f->items, f->n, &f->res, &e) < 0)
        fail_msg("retention_apply: %s", ob_err_msg(&e));
}

/* want: one character per item in order of add, 'k' kept or '-' removed. */
static void expect(fixture *f, const char *want)
{
    assert_int_equal(strlen(want), f->n);
    char *got = ob_xcalloc(f->n + 1, 1);
    for (size_t i = 0; i < f->n; i++)
        got[i] = f->res.d[i].keep ? 'k' : '-';
    if (strcmp(got, want) != 0)
        fail_msg("kept %s, want %s", got, want);
    free(got);
}

/* The reasons of item i joined with ", ". */
static void expect_reasons(fixture *f, size_t i, const char *want)
{
    ob_buf b = OB_BUF_INIT;
    for (size_t k = 0; k < f->res.d[i].nreasons; k++)
        ob_buf_printf(&b, "%s%s", k ? ", " : "", f->res.d[i].reasons[k]);
    ob_buf_putc(&b, 0);
    if (strcmp((const char *)b.data, want) != 0)
        fail_msg("item %zu: reasons '%s', want '%s'", i, (const char *)b.data, want);
    ob_buf_free(&b);
}

static int setup(void **state)
{
    fixture *f = ob_xcalloc(1, sizeof *f);
    retention_policy_init(&f->p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    retention_result_free(&f->res);
    retention_policy_free(&f->p);
    for (size_t i = 0; i < f->n; i++)
        free(f->ids[i]);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------ */

static void test_empty_policy_refused(void **state)
{
    fixture *f = *state;
    addt(f, "2024-03-01 08:00:00");
    ob_err e = OB_ERR_INIT;
    assert_int_equal(retention_apply(&f->p, f->items, f->n, &f->res, &e), -1);
    assert_int_equal(e.code, OB_EUSAGE);
    assert_non_null(strstr(ob_err_msg(&e), "refusing"));
    ob_err_clear(&e);
}

static void test_policy_set_errors(void **state)
{
    fixture *f = *state;
    static const char *const bad[][2] = {
        {"keep-daily", "0"},     {"keep-daily", "-3"},   {"keep-daily", "x"},
        {"keep-last", ""},       {"keep-within", "5x"},  {"keep-within", "0d"},
        {"keep-within", ""},     {"keep-within", "d"},   {"keep-within", "-1d"},
        {"keep-tag", "novalue"}, {"keep-tag", "=v"},     {"keep", "always"},
        {"keep-often", "3"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ob_err e = OB_ERR_INIT;
        if (retention_policy_set(&f->p, bad[i][0], bad[i][1], &e) != -1)
            fail_msg("%s = '%s' accepted", bad[i][0], bad[i][1]);
        assert_int_equal(e.code, OB_EUSAGE);
        ob_err_clear(&e);
    }
    assert_true(retention_policy_empty(&f->p));
    set(f, "keep-hourly", "unlimited");
    assert_int_equal(f->p.count[RETENTION_HOURLY], RETENTION_UNLIMITED);
    set(f, "keep-within", "1y2m3w4d5h");
    assert_int_equal(f->p.within.years, 1);
    assert_int_equal(f->p.within.months, 2);
    assert_int_equal(f->p.within.days, 25);
    assert_int_equal(f->p.within.hours, 5);
    set(f, "keep", "forever");
    assert_true(f->p.forever);
}

static void test_keep_last(void **state)
{
    fixture *f = *state;
    addt(f, "2024-03-01 08:00:00");
    addt(f, "2024-03-02 08:00:00");
    addt(f, "2024-03-03 08:00:00");
    addt(f, "2024-03-04 08:00:00");
    addt(f, "2024-03-05 08:00:00");
    set(f, "keep-last", "3");
    run(f);
    expect(f, "--kkk");
    expect_reasons(f, 4, "last 1");
    expect_reasons(f, 2, "last 3");
    assert_int_equal(f->res.ngroups, 1);
    assert_int_equal(f->res.groups[0].nkeep, 3);
}

static void test_keep_daily(void **state)
{
    fixture *f = *state;
    addt(f, "2024-03-01 08:00:00"); /* 0 */
    addt(f, "2024-03-01 20:00:00"); /* 1 */
    addt(f, "2024-03-02 09:00:00"); /* 2 */
    addt(f, "2024-03-03 09:00:00"); /* 3 */
    addt(f, "2024-03-03 23:59:59"); /* 4 */
    addt(f, "2024-03-04 00:00:00"); /* 5 */
    set(f, "keep-daily", "3");
    run(f);
    /* newest first: 5 (Mar 4: daily 1), 4 (Mar 3: daily 2), 3 (Mar 3 again),
     * 2 (Mar 2: daily 3), then the count is used up. */
    expect(f, "--k-kk");
    expect_reasons(f, 5, "daily 1");
    expect_reasons(f, 4, "daily 2");
    expect_reasons(f, 2, "daily 3");
}

static void test_keep_daily_more_than_days_keeps_oldest(void **state)
{
    fixture *f = *state;
    addt(f, "2024-03-01 08:00:00"); /* 0 */
    addt(f, "2024-03-01 20:00:00"); /* 1 */
    addt(f, "2024-03-02 09:00:00"); /* 2 */
    addt(f, "2024-03-03 09:00:00"); /* 3 */
    addt(f, "2024-03-03 23:59:59"); /* 4 */
    set(f, "keep-daily", "10");
    run(f);
    /* 4 daily 1, 3 same day, 2 daily 2, 1 daily 3, 0 same day as 1 but it
     * is the oldest and 7 days are left: kept as "oldest daily". */
    expect(f, "kkk-k");
    expect_reasons(f, 1, "daily 3");
    expect_reasons(f, 0, "oldest daily");
}

static void test_keep_hourly(void **state)
{
    fixture *f = *state;
    addt(f, "2024-03-01 10:05:00"); /* 0 */
    addt(f, "2024-03-01 10:55:00"); /* 1 */
    addt(f, "2024-03-01 11:00:00"); /* 2 */
    addt(f, "2024-03-01 11:30:00"); /* 3 */
    addt(f, "2024-03-01 12:59:59"); /* 4 */
    addt(f, "2024-03-02 12:00:00"); /* 5: another day, same hour of day */
    set(f, "keep-hourly", "3");
    run(f);
    /* 5 (Mar 2 12h) hourly 1, 4 (Mar 1 12h) hourly 2, 3 (11h) hourly 3. */
    expect(f, "---kkk");
}

static void test_keep_weekly_iso_weeks(void **state)
{
    fixture *f = *state;
    addt(f, "2020-12-31 12:00:00"); /* 0: Thu, ISO 2020-W53 */
    addt(f, "2021-01-03 12:00:00"); /* 1: Sun, ISO 2020-W53 */
    addt(f, "2021-01-04 12:00:00"); /* 2: Mon, ISO 2021-W01 */
    addt(f, "2024-12-29 12:00:00"); /* 3: Sun, ISO 2024-W52 */
    addt(f, "2024-12-30 12:00:00"); /* 4: Mon, ISO 2025-W01 */
    addt(f, "2025-01-05 12:00:00"); /* 5: Sun, ISO 2025-W01 */
    set(f, "keep-weekly", "3");
    run(f);
    /* 5 weekly 1 (2025-W01), 4 same week, 3 weekly 2 (2024-W52),
     * 2 weekly 3 (2021-W01); 1 and 0 are past the count. */
    expect(f, "--kk-k");
    expect_reasons(f, 2, "weekly 3");
}

static void test_keep_weekly_year_start(void **state)
{
    fixture *f = *state;
    addt(f, "2021-01-01 12:00:00"); /* 0: Fri, ISO 2020-W53 */
    addt(f, "2020-12-28 12:00:00"); /* 1: Mon, ISO 2020-W53 */
    addt(f, "2020-12-27 12:00:00"); /* 2: Sun, ISO 2020-W52 */
    addt(f, "2026-01-01 12:00:00"); /* 3: Thu, ISO 2026-W01 */
    addt(f, "2025-12-29 12:00:00"); /* 4: Mon, ISO 2026-W01 */
    addt(f, "2025-12-28 12:00:00"); /* 5: Sun, ISO 2025-W52 */
    set(f, "keep-weekly", "4");
    run(f);
    /* newest first: 3 (2026-W01) w1, 4 same, 5 (2025-W52) w2,
     * 0 (2020-W53) w3, 1 same, 2 (2020-W52) w4. */
    expect(f, "k-kk-k");
}

static void test_keep_monthly_yearly(void **state)
{
    fixture *f = *state;
    addt(f, "2021-06-15 00:00:00"); /* 0 */
    addt(f, "2022-01-31 23:00:00"); /* 1 */
    addt(f, "2022-12-01 00:00:00"); /* 2 */
    addt(f, "2022-12-31 23:59:59"); /* 3 */
    addt(f, "2023-01-01 00:00:00"); /* 4 */
    addt(f, "2023-01-20 00:00:00"); /* 5 */
    addt(f, "2023-02-01 00:00:00"); /* 6 */
    set(f, "keep-monthly", "2");
    set(f, "keep-yearly", "3");
    run(f);
    /* monthly: 6 (2023-02) m1, 5 (2023-01) m2.
     * yearly: 6 (2023) y1, 3 (2022) y2, 0 (2021) y3. */
    expect(f, "k--k-kk");
    expect_reasons(f, 6, "monthly 1, yearly 1");
    expect_reasons(f, 5, "monthly 2");
    expect_reasons(f, 3, "yearly 2");
    expect_reasons(f, 0, "yearly 3");
}

static void test_keep_within_days(void **state)
{
    fixture *f = *state;
    addt(f, "2024-02-15 00:00:00"); /* 0 */
    addt(f, "2024-03-01 12:00:00"); /* 1: exactly 30 days before the newest */
    addt(f, "2024-03-01 12:00:01"); /* 2 */
    addt(f, "2024-03-31 12:00:00"); /* 3: newest */
    set(f, "keep-within", "30d");
    run(f);
    /* cutoff = Mar 31 12:00 - 30 days = Mar 1 12:00; kept if strictly newer. */
    expect(f, "--kk");
    expect_reasons(f, 2, "within 30d");
}

/* A snapshot dated in the future (a clock that jumped, a mistyped --time)
 * does not move the keep-within window past every real snapshot: the
 * window ends now at the latest. */
static void test_keep_within_future_snapshot(void **state)
{
    fixture *f = *state;
    time_t now = time(NULL);
    char when[4][32];
    const long ago[] = {20 * 86400L, 3 * 86400L, 86400L, -365 * 86400L}; /* the last: ahead */
    for (int i = 0; i < 4; i++) {
        time_t t = now - ago[i];
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when[i], sizeof when[i], "%Y-%m-%d %H:%M:%S", &tm);
        addt(f, when[i]);
    }
    set(f, "keep-within", "7d");
    run(f);
    expect(f, "-kkk");
}

static void test_keep_within_month_is_calendar(void **state)
{
    fixture *f = *state;
    addt(f, "2024-03-01 23:00:00"); /* 0 */
    addt(f, "2024-03-02 00:00:00"); /* 1 */
    addt(f, "2024-03-02 00:00:01"); /* 2 */
    addt(f, "2024-03-31 00:00:00"); /* 3 */
    set(f, "keep-within", "1m");
    run(f);
    /* Mar 31 - 1 month = "Feb 31" 2024 = Mar 2 (leap year), as Go's
     * AddDate and restic compute it; 1 is exactly at the cutoff. */
    expect(f, "--kk");
}

static void test_keep_within_hours_and_weeks(void **state)
{
    fixture *f = *state;
    addt(f, "2024-03-10 11:00:00"); /* 0 */
    addt(f, "2024-03-10 12:30:00"); /* 1 */
    addt(f, "2024-03-24 12:00:00"); /* 2 */
    set(f, "keep-within", "2w1h");
    run(f);
    /* cutoff = Mar 24 12:00 - 14 days - 1 hour = Mar 10 11:00. */
    expect(f, "-kk");
}

static void test_keep_tag(void **state)
{
    fixture *f = *state;
    static char *prod[] = {"env=prod"};
    static char *both[] = {"a=b", "release=1.0"};
    add(f, "2020-01-01 00:00:00", "s", "files", prod, 1);  /* 0 */
    add(f, "2020-06-01 00:00:00", "s", "files", both, 2);  /* 1 */
    add(f, "2021-01-01 00:00:00", "s", "files", NULL, 0);  /* 2 */
    add(f, "2024-01-01 00:00:00", "s", "files", NULL, 0);  /* 3 */
    set(f, "keep-last", "1");
    set(f, "keep-tag", "env=prod");
    set(f, "keep-tag", "release=1.0");
    run(f);
    expect(f, "kk-k");
    expect_reasons(f, 0, "tag env=prod");
    expect_reasons(f, 1, "tag release=1.0");
    expect_reasons(f, 3, "last 1");
}

static void test_groups_by_set_and_kind(void **state)
{
    fixture *f = *state;
    add(f, "2024-03-01 00:00:00", "app", "files", NULL, 0);  /* 0 */
    add(f, "2024-03-02 00:00:00", "app", "files", NULL, 0);  /* 1 */
    add(f, "2024-03-01 00:00:00", "app", "db", NULL, 0);     /* 2 */
    add(f, "2024-03-03 00:00:00", "app", "db", NULL, 0);     /* 3 */
    add(f, "2024-03-04 00:00:00", "", "files", NULL, 0);     /* 4 */
    add(f, "2024-03-05 00:00:00", NULL, "files", NULL, 0);   /* 5: NULL set is "" */
    add(f, "2024-03-09 00:00:00", "zz", "config", NULL, 0);  /* 6 */
    set(f, "keep-last", "1");
    run(f);
    expect(f, "-k-k-kk");
    /* groups sorted by set, then kind: ""/files, app/db, app/files, zz/config */
    assert_int_equal(f->res.ngroups, 4);
    assert_string_equal(f->res.groups[0].set, "");
    assert_string_equal(f->res.groups[1].kind, "db");
    assert_string_equal(f->res.groups[2].kind, "files");
    assert_string_equal(f->res.groups[3].set, "zz");
    assert_int_equal(f->res.groups[0].n, 2);
    assert_int_equal(f->res.groups[0].items[0], 5); /* newest first */
    assert_int_equal(f->res.d[2].group, 1);
}

/* Items with a host and paths (borrowed: the arrays are static). */
static void add_source(fixture *f, const char *when, const char *set, const char *host,
                       char *const *paths, size_t npaths)
{
    add(f, when, set, "db", NULL, 0);
    f->items[f->n - 1].host = host;
    f->items[f->n - 1].paths = paths;
    f->items[f->n - 1].npaths = npaths;
}

static void test_groups_by_host_and_paths(void **state)
{
    fixture *f = *state;
    static char *app[] = {"app"}, *billing[] = {"billing"}, *both[] = {"app", "billing"},
                *rev[] = {"billing", "app"};
    /* Two databases in the unnamed set: keep-last 1 keeps the newest of
     * each source.  Grouped by set and kind alone, only item 7 was kept,
     * and billing's only backup (2) was removed. */
    add_source(f, "2024-03-01 00:00:00", "", "h1", app, 1);     /* 0 */
    add_source(f, "2024-03-02 00:00:00", "", "h1", app, 1);     /* 1 */
    add_source(f, "2024-03-01 12:00:00", "", "h1", billing, 1); /* 2 */
    add_source(f, "2024-03-03 00:00:00", "", "h1", both, 2);    /* 3 */
    add_source(f, "2024-03-03 06:00:00", "", "h1", rev, 2);     /* 4: another order */
    add_source(f, "2024-03-01 00:00:00", "", "h2", app, 1);     /* 5: another host */
    add_source(f, "2024-03-04 00:00:00", "", NULL, app, 1);     /* 6: NULL host is "" */
    add_source(f, "2024-03-05 00:00:00", "", "", app, 1);       /* 7 */
    set(f, "keep-last", "1");
    run(f);
    expect(f, "-kkkkk-k");
    /* sorted by host, then fewer paths first, then the paths */
    assert_int_equal(f->res.ngroups, 6);
    assert_string_equal(f->res.groups[0].host, "");
    assert_int_equal(f->res.groups[0].n, 2);
    assert_int_equal(f->res.groups[0].items[0], 7);
    assert_string_equal(f->res.groups[1].host, "h1");
    assert_string_equal(f->res.groups[1].paths[0], "app");
    assert_int_equal(f->res.groups[1].npaths, 1);
    assert_string_equal(f->res.groups[2].paths[0], "billing");
    assert_int_equal(f->res.groups[3].npaths, 2);
    assert_string_equal(f->res.groups[3].paths[0], "app");
    assert_string_equal(f->res.groups[4].paths[0], "billing");
    assert_string_equal(f->res.groups[5].host, "h2");
    assert_int_equal(f->res.d[0].group, 1);
}

static void test_named_set_is_one_group(void **state)
{
    fixture *f = *state;
    static char *a[] = {"/srv/a"}, *b[] = {"/srv/b"};
    /* A job's history stays one group when its server or paths change. */
    add_source(f, "2024-03-01 00:00:00", "job", "old-host", a, 1); /* 0 */
    add_source(f, "2024-03-02 00:00:00", "job", "new-host", b, 1); /* 1 */
    add_source(f, "2024-03-03 00:00:00", "job", "new-host", a, 1); /* 2 */
    set(f, "keep-last", "2");
    run(f);
    expect(f, "-kk");
    assert_int_equal(f->res.ngroups, 1);
    assert_null(f->res.groups[0].host);
    assert_null(f->res.groups[0].paths);
    assert_int_equal(f->res.groups[0].npaths, 0);
}

static void test_origins_split_a_group(void **state)
{
    fixture *f = *state;
    static char *app[] = {"app"}, *cfg[] = {"/etc/app"};
    /* Database "app" of two servers, dumped from one backup host with no
     * --set: keep-daily 2 keeps two days of each server.  As one group it
     * kept only the server dumped later each day (items 1, 3), and every
     * dump of server A went. */
    add_source(f, "2024-03-01 02:00:00", "", "bk", app, 1); /* 0: A */
    add_source(f, "2024-03-01 03:00:00", "", "bk", app, 1); /* 1: B */
    add_source(f, "2024-03-02 02:00:00", "", "bk", app, 1); /* 2: A */
    add_source(f, "2024-03-02 03:00:00", "", "bk", app, 1); /* 3: B */
    add_source(f, "2024-02-28 02:00:00", "", "bk", app, 1); /* 4: none recorded */
    /* One origin and snapshots from before origins were recorded: one
     * group, so an upgrade does not leave the old ones kept apart forever. */
    add_source(f, "2024-03-01 00:00:00", "", "bk", cfg, 1); /* 5: none */
    add_source(f, "2024-03-02 00:00:00", "", "bk", cfg, 1); /* 6: A */
    add_source(f, "2024-03-03 00:00:00", "", "bk", cfg, 1); /* 7: A */
    /* A named set stays one group whatever its origins. */
    add_source(f, "2024-03-01 00:00:00", "job", "bk", app, 1); /* 8: A */
    add_source(f, "2024-03-02 00:00:00", "job", "bk", app, 1); /* 9: B */
    add_source(f, "2024-03-03 00:00:00", "job", "bk", app, 1); /* 10: B */
    const char *origin[] = {"A", "B", "A", "B", NULL, NULL, "A", "A", "A", "B", "B"};
    for (size_t i = 0; i < f->n; i++)
        f->items[i].origin = origin[i];
    set(f, "keep-daily", "2");
    run(f);
    expect(f, "kkkkk-kk-kk");
    assert_int_equal(f->res.ngroups, 5);
    /* unnamed set, by paths ("/etc/app" first): bk//etc/app whole, then
     * bk/app split in three (none recorded first) */
    assert_null(f->res.groups[0].origin);
    assert_string_equal(f->res.groups[0].paths[0], "/etc/app");
    assert_int_equal(f->res.groups[0].n, 3);
    assert_int_equal(f->res.groups[0].items[0], 7);
    assert_int_equal(f->res.groups[0].items[2], 5);
    assert_string_equal(f->res.groups[1].origin, "");
    assert_int_equal(f->res.groups[1].n, 1);
    assert_int_equal(f->res.groups[1].items[0], 4);
    assert_string_equal(f->res.groups[2].origin, "A");
    assert_int_equal(f->res.groups[2].n, 2);
    assert_int_equal(f->res.groups[2].items[0], 2);
    assert_int_equal(f->res.groups[2].items[1], 0);
    assert_string_equal(f->res.groups[3].origin, "B");
    assert_int_equal(f->res.groups[3].items[0], 3);
    assert_null(f->res.groups[4].origin);
    assert_string_equal(f->res.groups[4].set, "job");
    assert_int_equal(f->res.d[3].group, 3);
    expect_reasons(f, 4, "daily 1");
}

static void test_origins_two_split_groups_in_a_row(void **state)
{
    fixture *f = *state;
    static char *a[] = {"a"}, *b[] = {"b"};
    /* Two databases, each on two servers: two groups split one after the
     * other, four parts, keep-last 1 keeps the newest of each part. */
    add_source(f, "2024-03-01 00:00:00", "", "bk", a, 1); /* 0: a on X */
    add_source(f, "2024-03-02 00:00:00", "", "bk", a, 1); /* 1: a on X */
    add_source(f, "2024-03-01 01:00:00", "", "bk", a, 1); /* 2: a on Y */
    add_source(f, "2024-03-01 00:00:00", "", "bk", b, 1); /* 3: b on X */
    add_source(f, "2024-03-01 01:00:00", "", "bk", b, 1); /* 4: b on Y */
    add_source(f, "2024-03-03 00:00:00", "", "bk", b, 1); /* 5: b on Y */
    const char *origin[] = {"X", "X", "Y", "X", "Y", "Y"};
    for (size_t i = 0; i < f->n; i++)
        f->items[i].origin = origin[i];
    set(f, "keep-last", "1");
    run(f);
    expect(f, "-kkk-k");
    assert_int_equal(f->res.ngroups, 4);
    static const char *const want_path[] = {"a", "a", "b", "b"}, *const want_origin[] = {
                                                                     "X", "Y", "X", "Y"};
    static const size_t want_n[] = {2, 1, 1, 2}, want_first[] = {1, 2, 3, 5};
    for (size_t g = 0; g < 4; g++) {
        assert_string_equal(f->res.groups[g].paths[0], want_path[g]);
        assert_string_equal(f->res.groups[g].origin, want_origin[g]);
        assert_int_equal(f->res.groups[g].n, want_n[g]);
        assert_int_equal(f->res.groups[g].items[0], want_first[g]);
    }
}

static void test_forever(void **state)
{
    fixture *f = *state;
    addt(f, "2001-01-01 00:00:00");
    addt(f, "2001-01-01 00:00:00");
    addt(f, "2024-01-01 00:00:00");
    set(f, "keep", "forever");
    run(f);
    expect(f, "kkk");
    expect_reasons(f, 0, "forever");
}

static void test_combination(void **state)
{
    fixture *f = *state;
    addt(f, "2024-01-10 10:00:00"); /* 0 */
    addt(f, "2024-02-10 10:00:00"); /* 1 */
    addt(f, "2024-02-20 10:00:00"); /* 2 */
    addt(f, "2024-03-01 10:00:00"); /* 3 */
    addt(f, "2024-03-02 10:00:00"); /* 4 */
    addt(f, "2024-03-02 18:00:00"); /* 5 */
    addt(f, "2024-03-03 10:00:00"); /* 6 */
    addt(f, "2024-03-03 10:00:00"); /* 7: same time as 6; id "07" > "06" so newer */
    set(f, "keep-last", "2");
    set(f, "keep-daily", "3");
    set(f, "keep-monthly", "3");
    set(f, "keep-within", "1d");
    run(f);
    /* newest first: 7, 6, 5, 4, 3, 2, 1, 0.
     * last 2: 7, 6.
     * daily 3: 7 (Mar 3), 5 (Mar 2), 3 (Mar 1).
     * monthly 3: 7 (Mar), 2 (Feb), 0 (Jan).
     * within 1d of Mar 3 10:00 (cutoff Mar 2 10:00, strictly after): 7, 6, 5.
     * So kept: 0 2 3 5 6 7; removed: 1 (older Feb), 4 (older Mar 2). */
    expect(f, "k-kk-kkk");
    expect_reasons(f, 7, "last 1, daily 1, monthly 1, within 1d");
    expect_reasons(f, 6, "last 2, within 1d");
    expect_reasons(f, 5, "daily 2, within 1d");
    expect_reasons(f, 3, "daily 3");
    expect_reasons(f, 0, "monthly 3");
    assert_int_equal(f->res.d[4].nreasons, 0);
}

static void test_unlimited(void **state)
{
    fixture *f = *state;
    addt(f, "2024-03-01 08:00:00"); /* 0 */
    addt(f, "2024-03-01 09:00:00"); /* 1 */
    addt(f, "2024-03-02 08:00:00"); /* 2 */
    addt(f, "2024-03-02 09:00:00"); /* 3 */
    set(f, "keep-daily", "unlimited");
    run(f);
    /* the newest of every day, and the oldest overall */
    expect(f, "kk-k");
    expect_reasons(f, 0, "oldest daily");
}

static void test_buckets_follow_local_time(void **state)
{
    fixture *f = *state;
    addt(f, "2024-03-01 10:00:00"); /* 0: 19:00 JST Mar 1 */
    addt(f, "2024-03-01 14:00:00"); /* 1: 23:00 JST Mar 1 */
    addt(f, "2024-03-01 16:00:00"); /* 2: 01:00 JST Mar 2 */
    set(f, "keep-daily", "2");
    run(f);
    /* UTC: one day; 2 daily 1, 0 kept as the oldest (1 day left). */
    expect(f, "k-k");
    retention_result_free(&f->res);

    setenv("TZ", "JST-9", 1);
    tzset();
    run(f);
    /* JST: 2 is Mar 2 (daily 1), 1 is Mar 1 (daily 2), count used up. */
    setenv("TZ", "UTC", 1);
    tzset();
    expect(f, "-kk");
}

/* Europe/Berlin falls back on 2024-10-27 at 03:00 CEST to 02:00 CET: the
 * local hour 02:xx comes twice (00:xx UTC at +02:00, 01:xx UTC at +01:00).
 * They are two real hours, so keep-hourly keeps one snapshot of each. */
static void test_keep_hourly_dst_fall_back(void **state)
{
    fixture *f = *state;
    addt(f, "2024-10-26 23:30:00"); /* 0: 01:30 CEST */
    addt(f, "2024-10-27 00:10:00"); /* 1: 02:10 CEST, first 02:xx */
    addt(f, "2024-10-27 00:50:00"); /* 2: 02:50 CEST */
    addt(f, "2024-10-27 01:10:00"); /* 3: 02:10 CET, second 02:xx */
    addt(f, "2024-10-27 01:50:00"); /* 4: 02:50 CET */
    set(f, "keep-hourly", "2");
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
    run(f);
    setenv("TZ", "UTC", 1);
    tzset();
    /* 4 is the newest of the CET 02:xx (hourly 1), 2 of the CEST 02:xx
     * (hourly 2); merged, 2 would be dropped and 0 kept as hourly 2. */
    expect(f, "--k-k");
    expect_reasons(f, 2, "hourly 2");
}

static void test_no_snapshots(void **state)
{
    fixture *f = *state;
    set(f, "keep-last", "1");
    run(f);
    assert_int_equal(f->res.ngroups, 0);
    assert_int_equal(f->res.n, 0);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_empty_policy_refused),
        T(test_policy_set_errors),
        T(test_keep_last),
        T(test_keep_daily),
        T(test_keep_daily_more_than_days_keeps_oldest),
        T(test_keep_hourly),
        T(test_keep_weekly_iso_weeks),
        T(test_keep_weekly_year_start),
        T(test_keep_monthly_yearly),
        T(test_keep_within_days),
        T(test_keep_within_future_snapshot),
        T(test_keep_within_month_is_calendar),
        T(test_keep_within_hours_and_weeks),
        T(test_keep_tag),
        T(test_groups_by_set_and_kind),
        T(test_groups_by_host_and_paths),
        T(test_origins_split_a_group),
        T(test_origins_two_split_groups_in_a_row),
        T(test_named_set_is_one_group),
        T(test_forever),
        T(test_combination),
        T(test_unlimited),
        T(test_buckets_follow_local_time),
        T(test_keep_hourly_dst_fall_back),
        T(test_no_snapshots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
