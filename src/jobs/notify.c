/*
 * notify.c — notifications of job outcomes (notify.h): message building
 * for Slack, a generic JSON webhook and email, and sending them with
 * libcurl.
 *
 * Network hygiene follows storage_s3.c: protocols restricted per channel
 * (http/https for webhooks, smtp/smtps for mail), TLS peer and host
 * verification always on, a connect timeout and a total timeout per
 * channel, and no redirects followed (a POST that is redirected is a
 * misconfigured URL; following it could carry the payload elsewhere).
 *
 * Messages quote error texts, which may hold file names that are not
 * UTF-8; jansson refuses such strings and mail declares charset=utf-8, so
 * every quoted text goes through notify_utf8 first.
 *
 * Secrets: the webhook URLs and the SMTP password live only in the
 * notifier.  Everything printed names a channel by its `target`
 * (host[:port]); curl's own error texts are scrubbed of the URL in case a
 * future curl quotes it.
 */
#include "jobs/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "storage/curl_lib.h"

#define NOTIFY_CONNECT_TIMEOUT 10L /* seconds */
#define NOTIFY_TIMEOUT 30L         /* seconds, whole transfer, per channel */
/* What we keep of a server's answer: enough to quote an error, never a flood. */
#define NOTIFY_ANSWER_MAX ((size_t)64 << 10)
/* Characters of a server's error answer quoted in a message. */
#define NOTIFY_ANSWER_QUOTE 200
/* RFC 5321/5322: a line is at most 998 octets before CRLF; longer lines
 * are cut (at a UTF-8 character boundary) below that. */
#define NOTIFY_MAIL_LINE_MAX 990
/* Job and host names in the Subject are cut to this many bytes. */
#define NOTIFY_SUBJECT_PART_MAX 200
/* A password file larger than this is not a password file. */
#define NOTIFY_PASSWORD_FILE_MAX ((size_t)64 << 10)

enum notify_kind { NOTIFY_SLACK, NOTIFY_WEBHOOK, NOTIFY_EMAIL };

static const char *const notify_kind_names[] = {"slack", "webhook", "email"};

typedef struct notify_channel {
    enum notify_kind kind;
    char *url;    /* never printed: the Slack URL is a secret */
    char *target; /* host[:port] of url: what messages show */
} notify_channel;

struct notifier {
    int always;             /* on = always */
    notify_channel ch[3];
    size_t n;
    /* email */
    char *mail_from;
    char **mail_to;
    size_t nto;
    char *smtp_user;        /* NULL: no authentication */
    char *smtp_password;    /* wiped on free */
};

/* ------------------------------------------------------------- text helpers */

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if there is none. */
static size_t notify_utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* s with every byte that is not part of valid UTF-8 replaced by U+FFFD. */
static char *notify_utf8(const char *s)
{
    ob_buf b = OB_BUF_INIT;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        size_t n = notify_utf8_len(p);
        if (n) {
            ob_buf_append(&b, p, n);
            p += n;
        } else {
            ob_buf_append(&b, "\xEF\xBF\xBD", 3);
            p++;
        }
    }
    return (char *)ob_buf_steal(&b, NULL);
}

/* One header-safe line: UTF-8-clean, every control character (CR and LF
 * above all: they would start a new header) turned into a space, cut to
 * max bytes at a character boundary. */
static char *notify_header_text(const char *s, size_t max)
{
    char *u = notify_utf8(s);
    ob_buf b = OB_BUF_INIT;
    const unsigned char *p = (const unsigned char *)u;
    while (*p) {
        size_t n = notify_utf8_len(p);
        if (b.len + n > max)
            break;
        if (*p < 0x20 || *p == 0x7F)
            ob_buf_putc(&b, ' ');
        else
            ob_buf_append(&b, p, n);
        p += n;
    }
    free(u);
    return (char *)ob_buf_steal(&b, NULL);
}

/* Slack's mrkdwn treats <...> as links and mentions (<!channel>): an error
 * message must not be able to ping a whole channel.  Slack asks for
 * exactly these three escapes. */
static void notify_slack_escape(ob_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': ob_buf_printf(b, "&amp;"); break;
        case '<': ob_buf_printf(b, "&lt;"); break;
        case '>': ob_buf_printf(b, "&gt;"); break;
        default: ob_buf_putc(b, (uint8_t)*s);
        }
    }
}

/* msg with every occurrence of secret replaced by shown.  Takes msg and
 * returns it, or a new string in its place (msg freed). */
static char *notify_scrub(char *msg, const char *secret, const char *shown)
{
    if (!secret || !*secret || !strstr(msg, secret))
        return msg;
    ob_buf b = OB_BUF_INIT;
    size_t sl = strlen(secret);
    const char *p = msg, *hit;
    while ((hit = strstr(p, secret))) {
        ob_buf_append(&b, p, (size_t)(hit - p));
        ob_buf_printf(&b, "%s", shown);
        p = hit + sl;
    }
    ob_buf_printf(&b, "%s", p);
    free(msg);
    return (char *)ob_buf_steal(&b, NULL);
}

static const char *notify_host(const notify_event *ev)
{
    return ev->host && *ev->host ? ev->host : "unknown";
}

/* RFC 3339 UTC, or NULL when the time is unknown (0). */
static char *notify_time(int64_t t)
{
    return t ? ob_time_rfc3339(t, 0) : NULL;
}

/* "1h 2m 3s" */
static char *notify_duration(int64_t s)
{
    if (s < 0)
        s = 0;
    if (s >= 3600)
        return ob_xasprintf("%" PRId64 "h %" PRId64 "m %" PRId64 "s", s / 3600, s / 60 % 60,
                            s % 60);
    if (s >= 60)
        return ob_xasprintf("%" PRId64 "m %" PRId64 "s", s / 60, s % 60);
    return ob_xasprintf("%" PRId64 "s", s);
}

/* ---------------------------------------------------------------- payloads */

char *notify_slack_payload(const notify_event *ev)
{
    char *job = notify_utf8(ev->job ? ev->job : "?");
    char *host = notify_utf8(notify_host(ev));
    ob_buf t = OB_BUF_INIT;
    ob_buf_printf(&t, "%s opsbackup job *", ev->ok ? ":white_check_mark:" : ":x:");
    notify_slack_escape(&t, job);
    ob_buf_printf(&t, "* %s on host ", ev->ok ? "succeeded" : "failed");
    notify_slack_escape(&t, host);
    if (!ev->ok && ev->step) {
        char *step = notify_utf8(ev->step);
        ob_buf_printf(&t, " at step ");
        notify_slack_escape(&t, step);
        free(step);
    }
    if (!ev->ok && ev->error) {
        char *error = notify_utf8(ev->error);
        ob_buf_printf(&t, ": ");
        notify_slack_escape(&t, error);
        free(error);
    }
    if (ev->summary && *ev->summary) {
        char *summary = notify_utf8(ev->summary);
        ob_buf_printf(&t, "\n```\n");
        notify_slack_escape(&t, summary);
        ob_buf_printf(&t, "\n```");
        free(summary);
    }
    char *text = (char *)ob_buf_steal(&t, NULL);
    json_t *j = json_pack("{s:s}", "text", text);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    free(text);
    free(job);
    free(host);
    if (!s)
        abort(); /* only out of memory: the text is valid UTF-8 */
    return s;
}

/* A JSON string of valid UTF-8, or null for NULL. */
static json_t *notify_json_str(const char *s)
{
    if (!s)
        return json_null();
    char *u = notify_utf8(s);
    json_t *j = json_string(u);
    free(u);
    return j ? j : json_null();
}

char *notify_webhook_payload(const notify_event *ev)
{
    json_t *j = json_object();
    json_object_set_new(j, "source", json_string("opsbackup"));
    json_object_set_new(j, "job", notify_json_str(ev->job));
    json_object_set_new(j, "host", notify_json_str(notify_host(ev)));
    json_object_set_new(j, "status", json_string(ev->ok ? "ok" : "failed"));
    json_object_set_new(j, "step", notify_json_str(ev->step));
    json_object_set_new(j, "error", notify_json_str(ev->error));
    char *started = notify_time(ev->started), *finished = notify_time(ev->finished);
    json_object_set_new(j, "started", notify_json_str(started));
    json_object_set_new(j, "finished", notify_json_str(finished));
    free(started);
    free(finished);
    if (ev->started && ev->finished && ev->finished >= ev->started)
        json_object_set_new(j, "duration_seconds", json_integer(ev->finished - ev->started));
    else
        json_object_set_new(j, "duration_seconds", json_null());
    json_object_set_new(j, "summary", notify_json_str(ev->summary));
    /* Borrowed: json_object_set takes its own reference. */
    json_object_set(j, "details", ev->details ? ev->details : json_null());
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s)
        abort();
    return s;
}

/* Append text to a mail as CRLF lines: any CR, LF or CRLF ends a line,
 * and lines longer than NOTIFY_MAIL_LINE_MAX are cut at a character
 * boundary (SMTP servers may refuse longer ones). */
static void notify_mail_lines(ob_buf *b, const char *text)
{
    char *u = notify_utf8(text);
    size_t col = 0;
    for (const unsigned char *p = (const unsigned char *)u; *p;) {
        if (*p == '\r' || *p == '\n') {
            ob_buf_printf(b, "\r\n");
            col = 0;
            p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
            continue;
        }
        size_t n = notify_utf8_len(p);
        if (col + n > NOTIFY_MAIL_LINE_MAX) {
            ob_buf_printf(b, "\r\n");
            col = 0;
        }
        ob_buf_append(b, p, n);
        col += n;
        p += n;
    }
    free(u);
}

/* RFC 5322 date in UTC, with English names whatever the locale. */
static char *notify_mail_date(int64_t now)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)now;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        memset(&tm, 0, sizeof tm);
    return ob_xasprintf("%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
                        tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
                        tm.tm_min, tm.tm_sec);
}

/* The Subject value: plain when ASCII, else RFC 2047 encoded words of at
 * most 75 characters, folded onto continuation lines. */
static void notify_mail_subject(ob_buf *b, const char *subject)
{
    int ascii = 1;
    for (const unsigned char *p = (const unsigned char *)subject; *p; p++)
        if (*p >= 0x80)
            ascii = 0;
    if (ascii) {
        ob_buf_printf(b, "Subject: %s\r\n", subject);
        return;
    }
    ob_buf_printf(b, "Subject:");
    const unsigned char *p = (const unsigned char *)subject;
    while (*p) {
        /* 45 bytes -> 60 base64 characters; with "=?UTF-8?B?" and "?=", 72. */
        size_t len = 0;
        while (p[len]) {
            size_t n = notify_utf8_len(p + len);
            if (len + n > 45)
                break;
            len += n;
        }
        char enc[64];
        EVP_EncodeBlock((unsigned char *)enc, p, (int)len);
        ob_buf_printf(b, " =?UTF-8?B?%s?=\r\n", enc);
        p += len;
    }
}

/* The address part of "Name <addr>" or a bare address. */
static char *notify_mail_addr(const char *s)
{
    const char *lt = strrchr(s, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (lt && gt)
        return ob_xstrndup(lt + 1, (size_t)(gt - lt - 1));
    return ob_xstrdup(s);
}

char *notify_mail_message(const notify_event *ev, const char *from, char *const *to, size_t nto,
                          int64_t now)
{
    const char *status = ev->ok ? "OK" : "FAILED";
    char *job = notify_header_text(ev->job ? ev->job : "?", NOTIFY_SUBJECT_PART_MAX);
    char *host = notify_header_text(notify_host(ev), NOTIFY_SUBJECT_PART_MAX);
    char *hfrom = notify_header_text(from, NOTIFY_MAIL_LINE_MAX - 10);
    char *date = notify_mail_date(now);
    char *addr = notify_mail_addr(hfrom);
    const char *domain = strchr(addr, '@') ? strchr(addr, '@') + 1 : host;
    uint8_t rnd[8] = {0};
    if (ob_random(rnd, sizeof rnd, NULL) < 0) /* a unique ID needs no secrecy: time and pid suffice then */
        memset(rnd, 0, sizeof rnd);
    uint64_t r = ob_get_le64(rnd);

    ob_buf m = OB_BUF_INIT;
    ob_buf_printf(&m, "From: %s\r\n", hfrom);
    ob_buf_printf(&m, "To: ");
    for (size_t i = 0; i < nto; i++) {
        char *a = notify_header_text(to[i], NOTIFY_MAIL_LINE_MAX - 10);
        /* One recipient per line: a long list stays within line limits. */
        ob_buf_printf(&m, "%s%s", i ? ",\r\n " : "", a);
        free(a);
    }
    ob_buf_printf(&m, "\r\nDate: %s\r\n", date);
    char *subject = ob_xasprintf("[opsbackup] %s: job %s on %s", status, job, host);
    notify_mail_subject(&m, subject);
    free(subject);
    ob_buf_printf(&m, "Message-ID: <opsbackup.%" PRId64 ".%ld.%016" PRIx64 "@%s>\r\n", now,
                  (long)getpid(), r, domain);
    ob_buf_printf(&m, "MIME-Version: 1.0\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n"
                      "Content-Transfer-Encoding: 8bit\r\n"
                      "Auto-Submitted: auto-generated\r\n"
                      "\r\n");

    /* The body, built with \n and turned into CRLF lines at the end. */
    ob_buf body = OB_BUF_INIT;
    if (ev->ok)
        ob_buf_printf(&body, "opsbackup job %s succeeded on host %s.\n\n", job, host);
    else
        ob_buf_printf(&body, "opsbackup job %s FAILED on host %s%s%s.\n\n", job, host,
                      ev->step ? " at step " : "", ev->step ? ev->step : "");
    ob_buf_printf(&body, "Job:      %s\n", ev->job ? ev->job : "?");
    ob_buf_printf(&body, "Status:   %s\n", status);
    ob_buf_printf(&body, "Host:     %s\n", notify_host(ev));
    if (ev->step)
        ob_buf_printf(&body, "Step:     %s\n", ev->step);
    if (ev->error)
        ob_buf_printf(&body, "Error:    %s\n", ev->error);
    char *started = notify_time(ev->started), *finished = notify_time(ev->finished);
    if (started)
        ob_buf_printf(&body, "Started:  %s\n", started);
    if (finished)
        ob_buf_printf(&body, "Finished: %s\n", finished);
    if (started && finished && ev->finished >= ev->started) {
        char *d = notify_duration(ev->finished - ev->started);
        ob_buf_printf(&body, "Duration: %s\n", d);
        free(d);
    }
    free(started);
    free(finished);
    if (ev->summary && *ev->summary)
        ob_buf_printf(&body, "\nSummary:\n%s\n", ev->summary);
    char *btext = (char *)ob_buf_steal(&body, NULL);
    notify_mail_lines(&m, btext);
    free(btext);

    free(job);
    free(host);
    free(hfrom);
    free(date);
    free(addr);
    return (char *)ob_buf_steal(&m, NULL);
}

/* ------------------------------------------------------------------ config */

char *notify_url_target(const char *url)
{
    ob_err lerr = OB_ERR_INIT;
    if (curl_lib_load(&lerr) < 0) { /* then no message names the host */
        ob_err_clear(&lerr);
        return NULL;
    }
    CURLU *u = curl_url();
    if (!u)
        return NULL;
    char *host = NULL, *port = NULL, *out = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && *host) {
        /* The port only when the URL names one (CURLUE_NO_PORT otherwise). */
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && port)
            out = ob_xasprintf("%s:%s", host, port);
        else
            out = ob_xstrdup(host);
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return out;
}

int notify_password_file(const char *path, char **out, ob_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        ob_err_errno(err, errno, "smtp-password-file %s", path);
        err->code = OB_EUSAGE;
        return -1;
    }
    /* fstat of the open file: the mode checked is the file read. */
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return ob_err_errno(err, e, "smtp-password-file %s", path);
    }
    if (st.st_mode & (S_IRGRP | S_IROTH)) {
        close(fd);
        return ob_err_set(err, OB_EUSAGE,
                          "smtp-password-file %s is readable by %s (mode %04o): the SMTP "
                          "password must be readable by its owner only; run chmod 600 %s",
                          path, (st.st_mode & S_IROTH) ? "others" : "its group",
                          (unsigned)(st.st_mode & 07777), path);
    }
    ob_buf b = OB_BUF_INIT;
    char tmp[4096];
    for (;;) {
        ssize_t k = read(fd, tmp, sizeof tmp);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 || b.len + (size_t)k > NOTIFY_PASSWORD_FILE_MAX) {
            int e = k < 0 ? errno : EFBIG;
            close(fd);
            ob_wipe(tmp, sizeof tmp);
            ob_wipe(b.data, b.cap);
            ob_buf_free(&b);
            return ob_err_errno(err, e, "reading smtp-password-file %s", path);
        }
        if (k == 0)
            break;
        ob_buf_append(&b, tmp, (size_t)k);
    }
    close(fd);
    ob_wipe(tmp, sizeof tmp);
    char *s = (char *)ob_buf_steal(&b, NULL);
    size_t len = strlen(s), keep = strcspn(s, "\r\n");
    ob_wipe(s + keep, len - keep);
    if (!*s) {
        free(s);
        return ob_err_set(err, OB_EUSAGE, "smtp-password-file %s is empty: no password", path);
    }
    *out = s;
    return 0;
}

/* Comma-separated list -> trimmed items; empty items kept (for errors). */
static size_t notify_split(const char *s, char ***out)
{
    size_t n = 0;
    char **v = NULL;
    for (;;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        const char *a = s, *z = s + len;
        while (a < z && (*a == ' ' || *a == '\t'))
            a++;
        while (z > a && (z[-1] == ' ' || z[-1] == '\t' || z[-1] == '\r'))
            z--;
        v = ob_xrealloc(v, (n + 1) * sizeof *v);
        v[n++] = ob_xstrndup(a, (size_t)(z - a));
        if (!e)
            break;
        s = e + 1;
    }
    *out = v;
    return n;
}

static int notify_conf_err(ob_err *err, const config *c, const config_entry *e,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int notify_conf_err(ob_err *err, const config *c, const config_entry *e,
                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *why = NULL;
    if (vasprintf(&why, fmt, ap) < 0)
        why = NULL;
    va_end(ap);
    ob_err_set(err, OB_EUSAGE, "%s:%d: %s", c->path ? c->path : "config",
               e ? e->line : 0, why ? why : "bad value");
    free(why);
    return -1;
}

/* A webhook channel from key (slack-webhook / webhook).  The value is not
 * quoted in errors: it is a secret. */
static int notify_add_hook(notifier *n, const config *c, const config_section *s,
                           const char *key, enum notify_kind kind, ob_err *err)
{
    const config_entry *e = config_entry_get(s, key);
    if (!e || !*e->value)
        return 0;
    int scheme_ok = strncmp(e->value, "https://", 8) == 0 || strncmp(e->value, "http://", 7) == 0;
    char *target = scheme_ok ? notify_url_target(e->value) : NULL;
    if (!target)
        return notify_conf_err(err, c, e,
                               "%s is not an http:// or https:// URL with a host (the value is "
                               "not shown: it may hold a secret)",
                               key);
    notify_channel *ch = &n->ch[n->n++];
    ch->kind = kind;
    ch->url = ob_xstrdup(e->value);
    ch->target = target;
    return 0;
}

static int notify_add_email(notifier *n, const config *c, const config_section *s, ob_err *err)
{
    const config_entry *to = config_entry_get(s, "email-to");
    const config_entry *url = config_entry_get(s, "smtp-url");
    const config_entry *user = config_entry_get(s, "smtp-user");
    const config_entry *pwfile = config_entry_get(s, "smtp-password-file");
    const config_entry *from = config_entry_get(s, "email-from");
    if (!to || !*to->value)
        return 0; /* smtp-url alone names no recipient: no email channel */
    if (!url || !*url->value)
        return notify_conf_err(err, c, to,
                               "email-to is set but smtp-url is not (e.g. "
                               "smtps://smtp.example.com:465)");
    if (strncmp(url->value, "smtp://", 7) != 0 && strncmp(url->value, "smtps://", 8) != 0)
        return notify_conf_err(err, c, url, "smtp-url must start with smtp:// or smtps://");
    char *target = notify_url_target(url->value);
    if (!target)
        return notify_conf_err(err, c, url, "smtp-url is not a URL with a host");
    char **v;
    size_t nv = notify_split(to->value, &v);
    for (size_t i = 0; i < nv; i++)
        if (!strchr(v[i], '@') || strpbrk(v[i], "<>\r\n")) {
            notify_conf_err(err, c, to, "email-to: '%s' is not an email address", v[i]);
            for (size_t k = 0; k < nv; k++)
                free(v[k]);
            free(v);
            free(target);
            return -1;
        }
    n->mail_to = v;
    n->nto = nv;
    notify_channel *ch = &n->ch[n->n++];
    ch->kind = NOTIFY_EMAIL;
    ch->url = ob_xstrdup(url->value);
    ch->target = target;

    if (from && *from->value) {
        if (!strchr(from->value, '@'))
            return notify_conf_err(err, c, from, "email-from: '%s' is not an email address",
                                   from->value);
        n->mail_from = ob_xstrdup(from->value);
    } else {
        char *h = ob_hostname();
        n->mail_from = ob_xasprintf("opsbackup@%s", *h ? h : "localhost");
        free(h);
    }

    if (pwfile && *pwfile->value && !(user && *user->value))
        return notify_conf_err(err, c, pwfile,
                               "smtp-password-file is set but smtp-user is not: set the user "
                               "name to log in with");
    if (!user || !*user->value)
        return 0;
    n->smtp_user = ob_xstrdup(user->value);
    if (pwfile && *pwfile->value) {
        if (notify_password_file(pwfile->value, &n->smtp_password, err) < 0) {
            ob_err_prefix(err, "%s:%d", c->path ? c->path : "config", pwfile->line);
            return -1;
        }
        return 0;
    }
    const char *env = getenv("OPSBACKUP_SMTP_PASSWORD");
    if (!env || !*env)
        return notify_conf_err(err, c, user,
                               "smtp-user is set but there is no password: set "
                               "smtp-password-file (a file of mode 600) or "
                               "OPSBACKUP_SMTP_PASSWORD");
    n->smtp_password = ob_xstrdup(env);
    return 0;
}

int notifier_from_config(const config *c, notifier **out, ob_err *err)
{
    *out = NULL;
    const config_section *s = c ? config_section_get(c, "notify") : NULL;
    if (!s)
        return 0;
    notifier *n = ob_xcalloc(1, sizeof *n);
    const config_entry *on = config_entry_get(s, "on");
    if (on && strcmp(on->value, "always") == 0)
        n->always = 1;
    else if (on && strcmp(on->value, "failure") != 0) {
        notify_conf_err(err, c, on, "on must be failure or always, not '%s'", on->value);
        notifier_free(n);
        return -1;
    }
    if (notify_add_hook(n, c, s, "slack-webhook", NOTIFY_SLACK, err) < 0 ||
        notify_add_hook(n, c, s, "webhook", NOTIFY_WEBHOOK, err) < 0 ||
        notify_add_email(n, c, s, err) < 0) {
        notifier_free(n);
        return -1;
    }
    if (n->n == 0) {
        notifier_free(n);
        return 0;
    }
    *out = n;
    return 0;
}

int notifier_wants(const notifier *n, int ok)
{
    return n && (!ok || n->always);
}

size_t notifier_channels(const notifier *n)
{
    return n ? n->n : 0;
}

void notifier_free(notifier *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        /* The URL may be a credential (Slack): wipe it like a password. */
        ob_wipe(n->ch[i].url, strlen(n->ch[i].url));
        free(n->ch[i].url);
        free(n->ch[i].target);
    }
    for (size_t i = 0; i < n->nto; i++)
        free(n->mail_to[i]);
    free(n->mail_to);
    free(n->mail_from);
    free(n->smtp_user);
    if (n->smtp_password) {
        ob_wipe(n->smtp_password, strlen(n->smtp_password));
        free(n->smtp_password);
    }
    free(n);
}

/* ----------------------------------------------------------------- sending */

typedef struct notify_io {
    ob_buf answer;      /* what the server sent (capped) */
    const char *up;     /* mail upload */
    size_t up_left;
} notify_io;

static size_t notify_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    notify_io *io = ud;
    size_t n = size * nmemb;
    if (io->answer.len < NOTIFY_ANSWER_MAX)
        ob_buf_append(&io->answer, ptr,
                      n < NOTIFY_ANSWER_MAX - io->answer.len ? n : NOTIFY_ANSWER_MAX - io->answer.len);
    return n; /* the rest is dropped, not an error */
}

static size_t notify_read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    notify_io *io = ud;
    size_t n = size * nitems;
    if (n > io->up_left)
        n = io->up_left;
    memcpy(buf, io->up, n);
    io->up += n;
    io->up_left -= n;
    return n;
}

/* Settings every channel shares. */
static void notify_curl_common(CURL *h, const notify_channel *ch, char *errbuf)
{
    curl_easy_setopt(h, CURLOPT_URL, ch->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, NOTIFY_CONNECT_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, NOTIFY_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
}

/* curl's failure as a message without the URL. */
static int notify_curl_err(ob_err *err, const notify_channel *ch, CURLcode cc, const char *errbuf,
                           long code)
{
    char *msg = ob_xstrdup(errbuf[0] ? errbuf : curl_easy_strerror(cc));
    msg = notify_scrub(msg, ch->url, ch->target);
    const char *hint = "";
    if (cc == CURLE_LOGIN_DENIED)
        hint = " (check smtp-user and the SMTP password)";
    else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE)
        hint = " (the server's TLS certificate is not trusted for this host name)";
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        hint = " (no answer within the time limit)";
    if (ch->kind == NOTIFY_EMAIL && code > 0)
        ob_err_set(err, OB_EIO, "%s%s (last SMTP reply %ld)", msg, hint, code);
    else
        ob_err_set(err, OB_EIO, "%s%s", msg, hint);
    free(msg);
    return -1;
}

static int notify_http_post(const notify_channel *ch, const char *body, ob_err *err)
{
    if (curl_lib_load(err) < 0)
        return -1;
    CURL *h = curl_easy_init();
    if (!h)
        return ob_err_set(err, OB_EFAIL, "cannot create an HTTP handle (out of memory?)");
    char errbuf[CURL_ERROR_SIZE]; /* curl's API wants exactly this buffer */
    errbuf[0] = '\0';
    notify_io io = {OB_BUF_INIT, NULL, 0};
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h2 = hl ? curl_slist_append(hl, "Expect:") : NULL;
    if (!h2) {
        curl_slist_free_all(hl);
        curl_easy_cleanup(h);
        return ob_err_set(err, OB_EFAIL, "out of memory building an HTTP request");
    }
    hl = h2;
    notify_curl_common(h, ch, errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "opsbackup/" OPSBACKUP_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, notify_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &io);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    int rc = 0;
    if (cc != CURLE_OK) {
        rc = notify_curl_err(err, ch, cc, errbuf, 0);
    } else if (status < 200 || status > 299) {
        /* Quote the start of the answer: Slack says why ("invalid_token",
         * "no_service"), and so do most webhook receivers. */
        ob_buf q = OB_BUF_INIT;
        for (size_t i = 0; i < io.answer.len && q.len < NOTIFY_ANSWER_QUOTE; i++) {
            uint8_t c = io.answer.data[i];
            ob_buf_putc(&q, c < 0x20 || c == 0x7F ? ' ' : c);
        }
        char *raw = (char *)ob_buf_steal(&q, NULL);
        char *quote = notify_scrub(notify_utf8(raw), ch->url, ch->target);
        free(raw);
        ob_err_set(err, OB_EIO, "the server answered HTTP %ld%s%s%s%s", status,
                   status >= 300 && status < 400 ? " (a redirect: opsbackup does not follow "
                                                   "redirects; check the URL)"
                                                 : "",
                   *quote ? ": \"" : "", quote, *quote ? "\"" : "");
        free(quote);
        rc = -1;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    ob_buf_free(&io.answer);
    return rc;
}

static int notify_smtp_send(const notifier *n, const notify_channel *ch, const char *msg,
                            ob_err *err)
{
    if (curl_lib_load(err) < 0)
        return -1;
    CURL *h = curl_easy_init();
    if (!h)
        return ob_err_set(err, OB_EFAIL, "cannot create an SMTP handle (out of memory?)");
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';
    struct curl_slist *rcpt = NULL;
    for (size_t i = 0; i < n->nto; i++) {
        char *a = ob_xasprintf("<%s>", n->mail_to[i]);
        struct curl_slist *r2 = curl_slist_append(rcpt, a);
        free(a);
        if (!r2) {
            curl_slist_free_all(rcpt);
            curl_easy_cleanup(h);
            return ob_err_set(err, OB_EFAIL, "out of memory building the mail envelope");
        }
        rcpt = r2;
    }
    char *addr = notify_mail_addr(n->mail_from);
    char *env_from = ob_xasprintf("<%s>", addr);
    free(addr);
    notify_io io = {OB_BUF_INIT, msg, strlen(msg)};
    notify_curl_common(h, ch, errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    /* smtps:// is TLS from the first byte; on smtp:// STARTTLS is used
     * when the server offers it (a server without it still gets mail). */
    curl_easy_setopt(h, CURLOPT_USE_SSL,
                     strncmp(ch->url, "smtps://", 8) == 0 ? (long)CURLUSESSL_ALL
                                                          : (long)CURLUSESSL_TRY);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, env_from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    if (n->smtp_user) {
        curl_easy_setopt(h, CURLOPT_USERNAME, n->smtp_user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, n->smtp_password);
    }
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, notify_read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, &io);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)io.up_left);
    CURLcode cc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    int rc = cc == CURLE_OK ? 0 : notify_curl_err(err, ch, cc, errbuf, code);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, NULL);
    curl_easy_cleanup(h);
    curl_slist_free_all(rcpt);
    free(env_from);
    ob_buf_free(&io.answer);
    return rc;
}

static int notify_send_one(const notifier *n, const notify_channel *ch, const notify_event *ev,
                           ob_err *err)
{
    char *payload;
    int rc;
    switch (ch->kind) {
    case NOTIFY_SLACK:
        payload = notify_slack_payload(ev);
        rc = notify_http_post(ch, payload, err);
        break;
    case NOTIFY_WEBHOOK:
        payload = notify_webhook_payload(ev);
        rc = notify_http_post(ch, payload, err);
        break;
    default: {
        int64_t now;
        uint32_t ns;
        ob_time_now(&now, &ns);
        payload = notify_mail_message(ev, n->mail_from, n->mail_to, n->nto, now);
        rc = notify_smtp_send(n, ch, payload, err);
    }
    }
    free(payload);
    return rc;
}

size_t notifier_send_report(notifier *n, const notify_event *ev, notify_report_fn report,
                            void *ud, size_t *attempted)
{
    if (attempted)
        *attempted = 0;
    if (!n || !ev)
        return 0;
    notify_event e = *ev;
    char *host = NULL;
    if (!e.host || !*e.host)
        e.host = host = ob_hostname();
    size_t failed = 0;
    for (size_t i = 0; i < n->n; i++) {
        const notify_channel *ch = &n->ch[i];
        ob_err err = OB_ERR_INIT;
        int rc = notify_send_one(n, ch, &e, &err);
        if (attempted)
            (*attempted)++;
        if (rc < 0)
            failed++;
        if (report)
            report(notify_kind_names[ch->kind], ch->target, rc < 0 ? &err : NULL, ud);
        else if (rc < 0)
            ob_warn("notification by %s (%s) failed: %s", notify_kind_names[ch->kind],
                    ch->target, ob_err_msg(&err));
        else
            ob_debug("notification by %s (%s) sent", notify_kind_names[ch->kind], ch->target);
        ob_err_clear(&err);
    }
    free(host);
    return failed;
}

size_t notifier_send(notifier *n, const notify_event *ev, size_t *attempted)
{
    return notifier_send_report(n, ev, NULL, NULL, attempted);
}

void notify_outcome(const config *c, const notify_event *ev, json_t *record)
{
    notifier *nf;
    ob_err err = OB_ERR_INIT;
    if (notifier_from_config(c, &nf, &err) < 0) {
        ob_warn("notifications not sent: %s", ob_err_msg(&err));
        if (record)
            json_object_set_new(record, "notifications",
                                json_pack("{s:s}", "error", ob_err_msg(&err)));
        ob_err_clear(&err);
        return;
    }
    if (nf && notifier_wants(nf, ev->ok)) {
        size_t attempted = 0;
        size_t failed = notifier_send(nf, ev, &attempted);
        if (record)
            json_object_set_new(record, "notifications",
                                json_pack("{s:I, s:I}", "sent", (json_int_t)(attempted - failed),
                                          "failed", (json_int_t)failed));
    }
    notifier_free(nf);
}
