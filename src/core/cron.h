/*
 * cron.h — 5-field cron expressions and "when is the next run".
 *
 *   minute hour day-of-month month day-of-week
 *   0 2 * * *      *\/15 * * * *      0 9-17/2 * * mon-fri      @daily
 *
 * Fields take lists (1,15), ranges (1-5), steps (*\/15, 1-5/2, 5/15 = 5-max
 * by 15), month names jan..dec and weekday names sun..sat (any case), and
 * weekday 7 = Sunday.  @hourly @daily (@midnight) @weekly @monthly @yearly
 * (@annually) stand for their usual expansions.
 *
 * Semantics follow Vixie cron / cronie (DECISIONS.md D32):
 * - Day matching: if the day-of-month or the day-of-week field starts with
 *   '*', a day must match both; otherwise (both restricted) either one.
 *   So "0 0 1 * mon" runs on the 1st and on every Monday, while
 *   "0 0 *\/2 * mon" runs on odd-numbered days that are Mondays.
 * - Daylight saving time: an entry is "wildcard" if its minute or hour
 *   field starts with '*' (*\/15 * * * *, @hourly), else "fixed".
 *   Wildcard entries follow elapsed time: minutes skipped by a spring-
 *   forward do not happen; minutes repeated by a fall-back happen twice.
 *   Fixed entries follow the wall clock: a time inside a skipped interval
 *   runs once, at the moment of the change (02:30 on the Berlin spring-
 *   forward day runs at 03:00 CEST); a repeated wall time runs only in its
 *   first pass.  cron_next judges "first pass" from `after`: when `after`
 *   itself lies in the second pass, later fixed times of that pass still
 *   fire (the function cannot know what ran before `after`).
 *
 * Timezones are IANA names ("Europe/Berlin") read from the system's
 * zoneinfo; NULL means the process's local time.  glibc has no per-call
 * timezone, so cron_next switches the TZ environment variable for the
 * duration of the call under a process-wide lock and restores it (see
 * cron.c).  Other threads calling localtime() at that moment could see the
 * other zone: call cron_next from the thread that owns scheduling.
 *
 * A cron value is plain data (no heap); copy it freely.
 */
#ifndef OB_CRON_H
#define OB_CRON_H

#include <stdint.h>
#include <time.h>

#include "core/err.h"

enum {
    CRON_MIN_STAR = 1,   /* the minute field starts with '*' */
    CRON_HOUR_STAR = 2,
    CRON_DOM_STAR = 4,
    CRON_MONTH_STAR = 8,
    CRON_DOW_STAR = 16,  /* bit n: field n (cron_parse relies on the order) */
};

typedef struct cron {
    uint64_t minute;     /* bit m: minute m (0-59) */
    uint32_t hour;       /* bit h (0-23) */
    uint32_t dom;        /* bit d (1-31) */
    uint16_t month;      /* bit m (1-12) */
    uint8_t dow;         /* bit d (0-6, 0 = Sunday) */
    unsigned flags;      /* CRON_*_STAR */
} cron;

/* Parse an expression.  OB_EUSAGE with a message naming the field and the
 * problem ("minute 61 is out of range 0-59") on bad input. */
int cron_parse(const char *expr, cron *out, ob_err *err);

/* The first whole minute strictly after `after` that the expression
 * matches, in timezone tz (IANA name, NULL = local), into *out.  Fails
 * (OB_EUSAGE) for an unknown timezone, an `after` outside the years
 * 1900-9999, or when nothing matches within 30 years (cron_parse refuses
 * impossible dates such as "0 0 31 4 *", so this needs a contrived
 * expression like Feb 31 by weekday-AND rules). */
int cron_next(const cron *c, time_t after, const char *tz, time_t *out, ob_err *err);

/* How many fire times lie in (after, until], counting at most max: *count,
 * and the last of them in *last (after if none).  The same times as calling
 * cron_next from after on, with one timezone switch for all of them.
 * Fails as cron_next does, with *count and *last as far as it got. */
int cron_count(const cron *c, time_t after, time_t until, const char *tz, unsigned max,
               unsigned *count, time_t *last, ob_err *err);

/* Is tz a zone the system knows: a name relative to $TZDIR (default
 * /usr/share/zoneinfo) of a TZif file there?  A region directory
 * ("Europe"), a path ("/etc/localtime", "a/../b"), a POSIX rule or one of
 * the database's other files ("leapseconds") is refused: glibc would read
 * each as UTC without a word.  OB_EUSAGE (OB_EIO when the file cannot be
 * read) with a message naming tz and saying why not. */
int cron_tz_check(const char *tz, ob_err *err);

#endif
