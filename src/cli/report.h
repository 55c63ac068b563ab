/*
 * report.h — the status dashboard: one self-contained HTML page (inline
 * CSS and SVG, no script, no external asset) built from the document
 * monitor_collect returns, so it can be mailed (`report --html FILE`) or
 * served (`daemon --listen`, path /).
 *
 * It shows every job with its last run, result, age against its limit,
 * last verify, next run and charts of backup size, data added and
 * duration over the recorded runs; every repository's size against the
 * size-limit; the problems `status` reports; and the latest DR run or
 * rehearsal.
 *
 * Ownership: the returned string is the caller's (free).
 */
#ifndef OB_REPORT_H
#define OB_REPORT_H

#include <jansson.h>

/* doc: from monitor_collect (with "history" per job and "dr", the last
 * DR run, when there was one). */
char *report_html(const json_t *doc);

#endif
