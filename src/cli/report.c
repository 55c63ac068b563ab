/*
 * report.c — the HTML status dashboard (report.h).
 *
 * Every string from the config, the state or the repository goes through
 * esc(): job names, paths and error messages are not ours to trust.
 */
#include "cli/report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"

static void put(ob_buf *b, const char *s) { ob_buf_append(b, s, strlen(s)); }

static void putf(ob_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(ob_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n >= 0) {
        ob_buf_append(b, s, (size_t)n);
        free(s);
    }
}

/* HTML-escape text content and attribute values alike. */
static void esc(ob_buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': put(b, "&lt;"); break;
        case '>': put(b, "&gt;"); break;
        case '&': put(b, "&amp;"); break;
        case '"': put(b, "&quot;"); break;
        case '\'': put(b, "&#39;"); break;
        default: ob_buf_append(b, s, 1);
        }
    }
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void put_age(ob_buf *b, int64_t s)
{
    char *t = ob_human_duration((double)s);
    esc(b, t);
    free(t);
}

static void put_bytes(ob_buf *b, double v)
{
    char *h = ob_human_bytes(v > 0 ? (uint64_t)v : 0);
    esc(b, h);
    free(h);
}

static void put_time(ob_buf *b, const char *rfc3339)
{
    int64_t sec;
    if (!rfc3339 || ob_time_parse(rfc3339, &sec, NULL) < 0) {
        put(b, "—");
        return;
    }
    char *t = ob_time_local(sec);
    putf(b, "<time datetime=\"");
    esc(b, rfc3339);
    put(b, "\">");
    esc(b, t);
    put(b, "</time>");
    free(t);
}

/* One small line chart of a history field.  Failed runs are red dots;
 * the y axis starts at zero so a small change looks small. */
static void chart(ob_buf *b, const json_t *history, const char *field, const char *title,
                  int bytes)
{
    enum { W = 320, H = 110, L = 8, R = 8, T = 18, B = 16 };
    size_t n = json_array_size(history);
    double max = 0;
    size_t points = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(json_array_get(history, i), field);
        if (json_is_number(v)) {
            points++;
            if (json_number_value(v) > max)
                max = json_number_value(v);
        }
    }
    putf(b, "<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"",
         W, H, W, H);
    esc(b, title);
    putf(b, "\" data-field=\"%s\" data-points=\"%zu\">", field, points);
    putf(b, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" class=\"bg\"/>", W, H);
    putf(b, "<text x=\"%d\" y=\"12\" class=\"t\">", L);
    esc(b, title);
    put(b, " (max ");
    if (bytes)
        put_bytes(b, max);
    else
        putf(b, "%.1fs", max);
    put(b, ")</text>");
    if (points == 0) {
        putf(b, "<text x=\"%d\" y=\"%d\" class=\"t\">no runs recorded</text>", L, H / 2);
    } else {
        double span = n > 1 ? (double)(n - 1) : 1;
        double scale = max > 0 ? (H - T - B) / max : 0;
        ob_buf line = OB_BUF_INIT;
        ob_buf dots = OB_BUF_INIT;
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(history, i);
            const json_t *v = json_object_get(e, field);
            if (!json_is_number(v))
                continue;
            double x = L + (W - L - R) * (n > 1 ? (double)i / span : 0.5);
            double y = H - B - json_number_value(v) * scale;
            putf(&line, "%s%.1f,%.1f", line.len ? " " : "", x, y);
            /* A dot per run: a single run is still visible; failures red. */
            int failed = !json_is_true(json_object_get(e, "ok"));
            putf(&dots, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" class=\"%s\"/>", x, y,
                 failed ? "3" : "2", failed ? "fail" : "pt");
        }
        ob_buf_append(&line, "", 1);
        putf(b, "<polyline points=\"%s\" class=\"line\"/>", (char *)line.data);
        ob_buf_append(&dots, "", 1);
        put(b, (char *)dots.data);
        ob_buf_free(&line);
        ob_buf_free(&dots);
        putf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"axis\"/>", L, H - B,
             W - R, H - B);
        const char *first = str(json_array_get(history, 0), "started");
        const char *last = str(json_array_get(history, n - 1), "started");
        putf(b, "<text x=\"%d\" y=\"%d\" class=\"a\">", L, H - 3);
        esc(b, first ? first : "");
        putf(b, "</text><text x=\"%d\" y=\"%d\" class=\"a\" text-anchor=\"end\">", W - R, H - 3);
        esc(b, last ? last : "");
        put(b, "</text>");
    }
    put(b, "</svg></figure>");
}

static void job_row(ob_buf *b, const json_t *jd)
{
    const json_t *lr = json_object_get(jd, "last_run"), *ls = json_object_get(jd, "last_success"),
                 *lv = json_object_get(jd, "last_verify");
    int stale = json_is_true(json_object_get(jd, "stale"));
    int failed = lr && !json_is_true(json_object_get(lr, "ok"));
    put(b, "<tr class=\"");
    put(b, stale || failed ? "bad" : lr ? "good" : "none");
    put(b, "\"><td class=\"name\">");
    esc(b, str(jd, "name"));
    put(b, "</td><td>");
    esc(b, str(jd, "kind"));
    put(b, "</td><td>");
    esc(b, str(jd, "schedule") ? str(jd, "schedule") : "manual");
    put(b, "</td><td>");
    if (lr) {
        put_time(b, str(lr, "started"));
        putf(b, " <span class=\"%s\">%s</span>", failed ? "badge bad" : "badge good",
             failed ? "FAILED" : "ok");
        if (failed) {
            put(b, "<div class=\"err\">");
            esc(b, str(lr, "failed_step"));
            put(b, ": ");
            esc(b, str(lr, "error"));
            put(b, "</div>");
        }
    } else {
        put(b, "never run");
    }
    put(b, "</td><td>");
    const json_t *age = json_object_get(jd, "age_seconds");
    int64_t max = json_integer_value(json_object_get(jd, "max_age_seconds"));
    if (ls && age) {
        put_age(b, json_integer_value(age));
        put(b, " ago");
    } else {
        put(b, "never");
    }
    if (max > 0) {
        put(b, " <span class=\"limit\">/ limit ");
        put_age(b, max);
        put(b, "</span>");
    }
    if (stale)
        put(b, " <span class=\"badge bad\">STALE</span>");
    put(b, "</td><td>");
    if (lv) {
        int ok = json_is_true(json_object_get(lv, "ok"));
        put_time(b, str(lv, "time"));
        putf(b, " <span class=\"badge %s\">%s</span>", ok ? "good" : "bad", ok ? "ok" : "FAILED");
    } else {
        put(b, "—");
    }
    put(b, "</td><td>");
    put_time(b, str(jd, "next_run"));
    put(b, "</td></tr>\n");
}

static void dr_section(ob_buf *b, const json_t *dr)
{
    put(b, "<section><h2>Disaster recovery</h2>");
    if (!dr) {
        put(b, "<p>No DR run or rehearsal recorded yet (<code>opsbackup dr run</code>).</p>"
               "</section>");
        return;
    }
    /* Shown generically: whatever scalar facts the DR report recorded. */
    const json_t *ok = json_object_get(dr, "ok");
    if (json_is_boolean(ok))
        putf(b, "<p>Last run: <span class=\"badge %s\">%s</span></p>",
             json_is_true(ok) ? "good" : "bad", json_is_true(ok) ? "succeeded" : "FAILED");
    put(b, "<table class=\"kv\">");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)dr, key, v)
    {
        if (json_is_object(v) || json_is_array(v) || strcmp(key, "ok") == 0)
            continue;
        put(b, "<tr><th>");
        esc(b, key);
        put(b, "</th><td>");
        if (json_is_string(v))
            esc(b, json_string_value(v));
        else if (json_is_integer(v))
            putf(b, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
            putf(b, "%.1f", json_real_value(v));
        else if (json_is_boolean(v))
            put(b, json_is_true(v) ? "yes" : "no");
        put(b, "</td></tr>");
    }
    put(b, "</table></section>");
}

static const char style[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em;color:#1d2330;"
    "background:#f6f7f9}h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .5em}"
    ".sub{color:#5a6270;margin:0 0 1em}table{border-collapse:collapse;background:#fff;"
    "width:100%}th,td{padding:.45em .6em;border-bottom:1px solid #e3e6ea;text-align:left;"
    "vertical-align:top;font-size:.92em}th{background:#eef0f3}td.name{font-weight:600}"
    "tr.bad td.name{border-left:4px solid #c62828}tr.good td.name{border-left:4px solid #2e7d32}"
    "tr.none td.name{border-left:4px solid #9aa0a6}.badge{display:inline-block;padding:0 .45em;"
    "border-radius:.6em;font-size:.8em;font-weight:600}.badge.good{background:#e3f2e5;"
    "color:#1b5e20}.badge.bad{background:#fdecea;color:#b71c1c}.err{color:#b71c1c;"
    "font-size:.85em;margin-top:.2em;word-break:break-word}.limit{color:#5a6270}"
    ".status{padding:.6em .9em;border-radius:.4em;font-weight:600;margin-bottom:1em}"
    ".status.good{background:#e3f2e5;color:#1b5e20}.status.bad{background:#fdecea;"
    "color:#b71c1c}.status ul{margin:.4em 0 0;font-weight:400}.charts{display:flex;"
    "flex-wrap:wrap;gap:.8em}.chart{margin:0}.jobcharts{background:#fff;padding:.6em;"
    "margin-bottom:.8em;border:1px solid #e3e6ea}.jobcharts h3{margin:0 0 .4em;font-size:1em}"
    "svg .bg{fill:#fbfbfc;stroke:#e3e6ea}svg .line{fill:none;stroke:#1565c0;stroke-width:2}"
    "svg .fail{fill:#c62828}svg .pt{fill:#1565c0}svg .axis{stroke:#b0b6bf}svg .t{font-size:11px;fill:#1d2330}"
    "svg .a{font-size:9px;fill:#5a6270}.bar{background:#e3e6ea;height:.6em;width:12em;"
    "display:inline-block;vertical-align:middle;margin-left:.6em}.bar span{display:block;"
    "height:100%;background:#1565c0}.bar span.over{background:#c62828}"
    "table.kv{width:auto}footer{color:#5a6270;font-size:.8em;margin-top:2em}";

char *report_html(const json_t *doc)
{
    const json_t *dr = json_object_get(doc, "dr");
    ob_buf b = OB_BUF_INIT;
    int ok = json_is_true(json_object_get(doc, "ok"));
    const json_t *problems = json_object_get(doc, "problems");
    put(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            "<title>opsbackup — ");
    esc(&b, str(doc, "host"));
    put(&b, "</title><style>");
    put(&b, style);
    put(&b, "</style></head><body>\n<h1>opsbackup status — ");
    esc(&b, str(doc, "host"));
    put(&b, "</h1><p class=\"sub\">");
    put_time(&b, str(doc, "time"));
    put(&b, " · config ");
    esc(&b, str(doc, "config"));
    put(&b, "</p>\n");
    putf(&b, "<div class=\"status %s\" id=\"overall\">", ok ? "good" : "bad");
    if (ok) {
        putf(&b, "All %zu jobs healthy.", json_array_size(json_object_get(doc, "jobs")));
    } else {
        putf(&b, "%zu problem%s", json_array_size(problems),
             json_array_size(problems) == 1 ? "" : "s");
        put(&b, "<ul>");
        size_t i;
        json_t *p;
        json_array_foreach(problems, i, p)
        {
            put(&b, "<li>");
            esc(&b, json_string_value(p));
            put(&b, "</li>");
        }
        put(&b, "</ul>");
    }
    put(&b, "</div>\n<section><h2>Jobs</h2><table id=\"jobs\"><tr><th>Job</th><th>Kind</th>"
            "<th>Schedule</th><th>Last run</th><th>Last success</th><th>Last verify</th>"
            "<th>Next run</th></tr>\n");
    size_t i;
    json_t *jd;
    json_array_foreach(json_object_get(doc, "jobs"), i, jd)
        job_row(&b, jd);
    put(&b, "</table></section>\n<section><h2>Repositories</h2><table id=\"repositories\">"
            "<tr><th>Repository</th><th>Location</th><th>Size</th></tr>\n");
    json_array_foreach(json_object_get(doc, "repositories"), i, jd)
    {
        put(&b, "<tr><td class=\"name\">");
        esc(&b, str(jd, "name"));
        put(&b, "</td><td>");
        esc(&b, str(jd, "url"));
        put(&b, "</td><td>");
        const json_t *bytes = json_object_get(jd, "bytes");
        if (!bytes) {
            put(&b, "<span class=\"badge bad\">unreachable</span> <span class=\"err\">");
            esc(&b, str(jd, "error"));
            put(&b, "</span>");
        } else {
            put_bytes(&b, (double)json_integer_value(bytes));
            const json_t *lim = json_object_get(jd, "size_limit");
            if (lim && json_integer_value(lim) > 0) {
                double frac = (double)json_integer_value(bytes) / (double)json_integer_value(lim);
                int over = json_is_true(json_object_get(jd, "over_limit"));
                put(&b, " of ");
                esc(&b, str(jd, "size_limit_text"));
                putf(&b, "<span class=\"bar\"><span class=\"%s\" style=\"width:%.0f%%\"></span>"
                         "</span>%s",
                     over ? "over" : "", frac > 1 ? 100.0 : frac * 100.0,
                     over ? " <span class=\"badge bad\">OVER</span>" : "");
            }
        }
        put(&b, "</td></tr>\n");
    }
    put(&b, "</table></section>\n<section><h2>History</h2>\n");
    json_array_foreach(json_object_get(doc, "jobs"), i, jd)
    {
        const json_t *h = json_object_get(jd, "history");
        put(&b, "<div class=\"jobcharts\" id=\"history-");
        esc(&b, str(jd, "name"));
        put(&b, "\"><h3>");
        esc(&b, str(jd, "name"));
        putf(&b, " — %zu run%s recorded</h3><div class=\"charts\">", json_array_size(h),
             json_array_size(h) == 1 ? "" : "s");
        chart(&b, h, "bytes_total", "backup size", 1);
        chart(&b, h, "bytes_added", "data added", 1);
        chart(&b, h, "duration_seconds", "duration", 0);
        put(&b, "</div></div>\n");
    }
    put(&b, "</section>\n");
    dr_section(&b, dr);
    put(&b, "<footer>opsbackup " OPSBACKUP_VERSION " · generated ");
    put_time(&b, str(doc, "time"));
    put(&b, "</footer>\n</body></html>\n");
    ob_buf_append(&b, "", 1);
    return (char *)b.data;
}
