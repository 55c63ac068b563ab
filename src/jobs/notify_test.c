/*
 * notify_test.c — what notifications contain and how [notify] is read,
 * without any network: the Slack and webhook JSON (escaping, invalid
 * UTF-8, nulls), the mail message (headers, CRLF lines, header injection
 * through a job name, long lines, non-ASCII subjects), on = failure |
 * always, config errors with their lines, secrets kept out of messages,
 * and the SMTP password file's permission check.  Sending is covered by
 * tests/integration/test_notify.sh against local sinks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/config.h"
#include "jobs/notify.h"

/* 2026-11-28T16:40:00Z and 75 minutes later. */
#define T0 1795884000
#define T1 (T0 + 4500)

static char tmpdir[] = "/tmp/notify_test.XXXXXX";

static char *write_file(const char *name, const char *text, mode_t mode)
{
    char *path = ob_xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static json_t *parse(const char *s)
{
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %s", je.text, s);
    return j;
}

static void test_slack_failure(void **state)
{
    (void)state;
    notify_event ev = {.job = "db", .host = "web1", .ok = 0, .step = "backup",
                       .error = "pg_dump: <!channel> disk full & more \"quoted\"",
                       .summary = "db: FAILED\nrepos: local", .started = T0, .finished = T1};
    char *s = notify_slack_payload(&ev);
    json_t *j = parse(s);
    assert_int_equal(json_object_size(j), 1);
    const char *text = json_string_value(json_object_get(j, "text"));
    assert_non_null(text);
    assert_string_equal(text, ":x: opsbackup job *db* failed on host web1 at step backup: "
                              "pg_dump: &lt;!channel&gt; disk full &amp; more \"quoted\"\n"
                              "```\ndb: FAILED\nrepos: local\n```");
    json_decref(j);
    free(s);
}

static void test_slack_success_and_bad_utf8(void **state)
{
    (void)state;
    /* A step or error on success is not shown; no summary: no code block. */
    notify_event ev = {.job = "files", .host = "web1", .ok = 1, .step = "backup"};
    char *s = notify_slack_payload(&ev);
    json_t *j = parse(s);
    assert_string_equal(json_string_value(json_object_get(j, "text")),
                        ":white_check_mark: opsbackup job *files* succeeded on host web1");
    json_decref(j);
    free(s);
    /* Error texts quote file names, which may not be UTF-8: still JSON. */
    notify_event bad = {.job = "files", .host = NULL, .ok = 0,
                        .error = "cannot read /srv/bad-\xff\xfe name", .summary = "\xc3"};
    s = notify_slack_payload(&bad);
    j = parse(s);
    const char *text = json_string_value(json_object_get(j, "text"));
    assert_non_null(strstr(text, "on host unknown: cannot read /srv/bad-\xEF\xBF\xBD\xEF\xBF\xBD name"));
    assert_non_null(strstr(text, "```\n\xEF\xBF\xBD\n```"));
    json_decref(j);
    free(s);
}

static void test_webhook_payload(void **state)
{
    (void)state;
    json_t *details = json_pack("{s:s, s:i}", "job", "db", "snapshots", 2);
    notify_event ev = {.job = "db", .host = "web1", .ok = 0, .step = "copy to offsite",
                       .error = "offsite: connection refused", .summary = "two\nlines",
                       .details = details, .started = T0, .finished = T1};
    char *s = notify_webhook_payload(&ev);
    json_t *j = parse(s);
    assert_string_equal(json_string_value(json_object_get(j, "source")), "opsbackup");
    assert_string_equal(json_string_value(json_object_get(j, "job")), "db");
    assert_string_equal(json_string_value(json_object_get(j, "host")), "web1");
    assert_string_equal(json_string_value(json_object_get(j, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(j, "step")), "copy to offsite");
    assert_string_equal(json_string_value(json_object_get(j, "error")),
                        "offsite: connection refused");
    assert_string_equal(json_string_value(json_object_get(j, "started")), "2026-11-28T16:40:00Z");
    assert_string_equal(json_string_value(json_object_get(j, "finished")), "2026-11-28T17:55:00Z");
    assert_int_equal(json_integer_value(json_object_get(j, "duration_seconds")), 4500);
    assert_string_equal(json_string_value(json_object_get(j, "summary")), "two\nlines");
    assert_true(json_equal(json_object_get(j, "details"), details));
    json_decref(j);
    free(s);
    assert_int_equal(details->refcount, 1); /* borrowed, not stolen */
    json_decref(details);

    notify_event ok = {.job = "db", .host = "web1", .ok = 1};
    s = notify_webhook_payload(&ok);
    j = parse(s);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    static const char *const nulls[] = {"step", "error", "started", "finished",
                                        "duration_seconds", "summary", "details"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        if (!json_is_null(json_object_get(j, nulls[i])))
            fail_msg("%s should be null in %s", nulls[i], s);
    json_decref(j);
    free(s);
}

/* The header block (up to the empty line) and the body of a message. */
static void split_mail(const char *m, char **head, const char **body)
{
    const char *sep = strstr(m, "\r\n\r\n");
    assert_non_null(sep);
    *head = ob_xstrndup(m, (size_t)(sep - m) + 2);
    *body = sep + 4;
}

static void assert_crlf_only(const char *m)
{
    for (const char *p = m; *p; p++) {
        if (*p == '\n' && (p == m || p[-1] != '\r'))
            fail_msg("bare LF at offset %zu", (size_t)(p - m));
        if (*p == '\r' && p[1] != '\n')
            fail_msg("bare CR at offset %zu", (size_t)(p - m));
    }
}

static void test_mail_message(void **state)
{
    (void)state;
    char *to[] = {"admin@example.com", "ops@example.com"};
    notify_event ev = {.job = "db", .host = "web1", .ok = 0, .step = "backup",
                       .error = "pg_dump failed\nsecond line", .summary = "db: FAILED\n",
                       .started = T0, .finished = T1};
    char *m = notify_mail_message(&ev, "opsbackup@web1", to, 2, T1);
    assert_crlf_only(m);
    char *head;
    const char *body;
    split_mail(m, &head, &body);
    assert_non_null(strstr(head, "From: opsbackup@web1\r\n"));
    assert_non_null(strstr(head, "To: admin@example.com,\r\n ops@example.com\r\n"));
    assert_non_null(strstr(head, "Date: Sat, 28 Nov 2026 17:55:00 +0000\r\n"));
    assert_non_null(strstr(head, "Subject: [opsbackup] FAILED: job db on web1\r\n"));
    assert_non_null(strstr(head, "Message-ID: <opsbackup."));
    assert_non_null(strstr(head, "@web1>\r\n"));
    assert_non_null(strstr(head, "MIME-Version: 1.0\r\n"));
    assert_non_null(strstr(head, "Content-Type: text/plain; charset=utf-8\r\n"));
    assert_non_null(strstr(head, "Content-Transfer-Encoding: 8bit\r\n"));
    assert_non_null(strstr(body, "opsbackup job db FAILED on host web1 at step backup.\r\n"));
    assert_non_null(strstr(body, "Job:      db\r\n"));
    assert_non_null(strstr(body, "Step:     backup\r\n"));
    assert_non_null(strstr(body, "Error:    pg_dump failed\r\nsecond line\r\n"));
    assert_non_null(strstr(body, "Started:  2026-11-28T16:40:00Z\r\n"));
    assert_non_null(strstr(body, "Finished: 2026-11-28T17:55:00Z\r\n"));
    assert_non_null(strstr(body, "Duration: 1h 15m 0s\r\n"));
    assert_non_null(strstr(body, "Summary:\r\ndb: FAILED\r\n"));
    free(head);
    free(m);

    ev.ok = 1;
    m = notify_mail_message(&ev, "opsbackup@web1", to, 1, T1);
    assert_non_null(strstr(m, "Subject: [opsbackup] OK: job db on web1\r\n"));
    assert_non_null(strstr(m, "To: admin@example.com\r\nDate:"));
    free(m);
}

static void test_mail_header_injection(void **state)
{
    (void)state;
    char *to[] = {"admin@example.com"};
    notify_event ev = {.job = "db\r\nBcc: victim@example.com\nX-Evil: 1", .host = "web1\r\nCc: x@y",
                       .ok = 0, .error = "boom\r\nBcc: also@example.com"};
    char *m = notify_mail_message(&ev, "ops@web1\r\nBcc: from@example.com", to, 1, T1);
    assert_crlf_only(m);
    char *head;
    const char *body;
    split_mail(m, &head, &body);
    /* Every header line starts with a known name or is a continuation. */
    static const char *const names[] = {"From: ", "To: ", "Date: ", "Subject: ",
                                        "Message-ID: ", "MIME-Version: ", "Content-Type: ",
                                        "Content-Transfer-Encoding: ", "Auto-Submitted: "};
    for (const char *line = head; *line;) {
        const char *end = strstr(line, "\r\n");
        assert_non_null(end);
        int known = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            known |= strncmp(line, names[i], strlen(names[i])) == 0;
        if (!known)
            fail_msg("unexpected header line: %.*s", (int)(end - line), line);
        line = end + 2;
    }
    assert_null(strstr(head, "\r\nBcc:"));
    assert_null(strstr(head, "\r\nCc:"));
    assert_null(strstr(head, "\r\nX-Evil:"));
    assert_non_null(
        strstr(head, "Subject: [opsbackup] FAILED: job db  Bcc: victim@example.com X-Evil: 1 on "
                     "web1  Cc: x@y\r\n"));
    free(head);
    free(m);
}

static void test_mail_long_lines_and_utf8_subject(void **state)
{
    (void)state;
    char *to[] = {"admin@example.com"};
    /* 3000 bytes of "é" (2 bytes each) in the error: cut into lines <= 998
     * without splitting a character. */
    ob_buf e = OB_BUF_INIT;
    for (int i = 0; i < 1500; i++)
        ob_buf_printf(&e, "\xc3\xa9");
    ob_buf_reserve(&e, 1);
    notify_event ev = {.job = "données", .host = "web1", .ok = 0, .error = (char *)e.data};
    char *m = notify_mail_message(&ev, "opsbackup@web1", to, 1, T1);
    assert_crlf_only(m);
    for (const char *line = m; *line;) {
        const char *end = strstr(line, "\r\n");
        if (!end)
            end = line + strlen(line);
        assert_true(end - line <= 998);
        if (end > line && ((unsigned char)*line & 0xC0) == 0x80) /* a character cut in two */
            fail_msg("a line starts inside a UTF-8 character");
        line = *end ? end + 2 : end;
    }
    /* "[opsbackup] FAILED: job données on web1" as an RFC 2047 word. */
    assert_non_null(strstr(m, "Subject: =?UTF-8?B?W29wc2JhY2t1cF0gRkFJTEVEOiBqb2IgZG9ubsOpZXMgb24gd2ViMQ==?=\r\n"));
    free(m);
    ob_buf_free(&e);
}

static void test_url_target(void **state)
{
    (void)state;
    char *t = notify_url_target("https://hooks.slack.com/services/T0/B0/SECRET");
    assert_string_equal(t, "hooks.slack.com");
    free(t);
    t = notify_url_target("http://127.0.0.1:8080/hook?token=x");
    assert_string_equal(t, "127.0.0.1:8080");
    free(t);
    t = notify_url_target("smtps://user:pw@smtp.example.com:465");
    assert_string_equal(t, "smtp.example.com:465");
    free(t);
    assert_null(notify_url_target("not a url"));
}

/* Load text as a config and make a notifier; returns its result. */
static int from_text(const char *text, notifier **n, ob_err *err)
{
    char *path = write_file("c.conf", text, 0600);
    config *c = NULL;
    ob_err lerr = OB_ERR_INIT;
    if (config_load(path, &c, &lerr) < 0)
        fail_msg("config_load: %s", ob_err_msg(&lerr));
    int rc = notifier_from_config(c, n, err);
    config_free(c); /* the notifier keeps copies */
    free(path);
    return rc;
}

static void expect_config_error(const char *text, const char *want, const char *never)
{
    notifier *n = (notifier *)1;
    ob_err err = OB_ERR_INIT;
    assert_int_equal(from_text(text, &n, &err), -1);
    assert_null(n);
    assert_int_equal(err.code, OB_EUSAGE);
    if (!strstr(ob_err_msg(&err), want))
        fail_msg("error '%s' lacks '%s'", ob_err_msg(&err), want);
    if (never && strstr(ob_err_msg(&err), never))
        fail_msg("error '%s' shows '%s'", ob_err_msg(&err), never);
    ob_err_clear(&err);
}

static void test_config(void **state)
{
    (void)state;
    notifier *n = (notifier *)1;
    ob_err err = OB_ERR_INIT;
    assert_int_equal(notifier_from_config(NULL, &n, &err), 0);
    assert_null(n);
    assert_int_equal(from_text("[repo.a]\nurl = /x\n", &n, &err), 0);
    assert_null(n);
    assert_int_equal(from_text("[notify]\non = always\n", &n, &err), 0);
    assert_null(n); /* names no channel */
    assert_int_equal(from_text("[notify]\nsmtp-url = smtp://127.0.0.1\n", &n, &err), 0);
    assert_null(n); /* a server but no recipient */

    assert_int_equal(from_text("[notify]\nwebhook = https://ops.example.com/hook\n", &n, &err), 0);
    assert_non_null(n);
    assert_int_equal(notifier_channels(n), 1);
    assert_false(notifier_wants(n, 1)); /* on = failure is the default */
    assert_true(notifier_wants(n, 0));
    notifier_free(n);
    assert_int_equal(from_text("[notify]\non = always\nslack-webhook = https://h/s\n"
                               "webhook = http://x/y\nemail-to = a@b\nsmtp-url = smtps://m:465\n",
                               &n, &err),
                     0);
    assert_int_equal(notifier_channels(n), 3);
    assert_true(notifier_wants(n, 1));
    assert_true(notifier_wants(n, 0));
    notifier_free(n);
    assert_false(notifier_wants(NULL, 0));

    expect_config_error("[notify]\n\non = sometimes\nwebhook = https://x/y\n",
                        "c.conf:3: on must be failure or always, not 'sometimes'", NULL);
    expect_config_error("[notify]\nslack-webhook = ftp://hooks.example.com/T0/SECRETPART\n",
                        "c.conf:2: slack-webhook is not an http:// or https:// URL",
                        "SECRETPART");
    expect_config_error("[notify]\nemail-to = a@b\n", "email-to is set but smtp-url is not", NULL);
    expect_config_error("[notify]\nemail-to = a@b\nsmtp-url = http://m\n",
                        "smtp-url must start with smtp:// or smtps://", NULL);
    expect_config_error("[notify]\nemail-to = a@b, nobody\nsmtp-url = smtp://m\n",
                        "email-to: 'nobody' is not an email address", NULL);
    expect_config_error("[notify]\nemail-to = a@b\nsmtp-url = smtp://m\nsmtp-password-file = /x\n",
                        "smtp-password-file is set but smtp-user is not", NULL);
    unsetenv("OPSBACKUP_SMTP_PASSWORD");
    expect_config_error("[notify]\nemail-to = a@b\nsmtp-url = smtp://m\nsmtp-user = u\n",
                        "c.conf:4: smtp-user is set but there is no password", NULL);
    setenv("OPSBACKUP_SMTP_PASSWORD", "from-env", 1);
    assert_int_equal(
        from_text("[notify]\nemail-to = a@b\nsmtp-url = smtp://m\nsmtp-user = u\n", &n, &err), 0);
    assert_non_null(n);
    notifier_free(n);
    unsetenv("OPSBACKUP_SMTP_PASSWORD");
}

static void test_password_file(void **state)
{
    (void)state;
    char *pw = NULL;
    ob_err err = OB_ERR_INIT;
    char *ok = write_file("ok.pw", "s3cret\nignored second line\n", 0600);
    assert_int_equal(notify_password_file(ok, &pw, &err), 0);
    assert_string_equal(pw, "s3cret");
    free(pw);

    char *grp = write_file("grp.pw", "s3cret\n", 0640);
    assert_int_equal(notify_password_file(grp, &pw, &err), -1);
    assert_null(pw);
    assert_int_equal(err.code, OB_EUSAGE);
    assert_non_null(strstr(ob_err_msg(&err), "is readable by its group (mode 0640)"));
    assert_non_null(strstr(ob_err_msg(&err), "chmod 600"));
    assert_null(strstr(ob_err_msg(&err), "s3cret"));
    ob_err_clear(&err);
    char *oth = write_file("oth.pw", "s3cret\n", 0604);
    assert_int_equal(notify_password_file(oth, &pw, &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "readable by others"));
    ob_err_clear(&err);
    char *empty = write_file("empty.pw", "\n", 0600);
    assert_int_equal(notify_password_file(empty, &pw, &err), -1);
    assert_non_null(strstr(ob_err_msg(&err), "is empty"));
    ob_err_clear(&err);
    char *missing = ob_xasprintf("%s/missing.pw", tmpdir);
    assert_int_equal(notify_password_file(missing, &pw, &err), -1);
    assert_int_equal(err.code, OB_EUSAGE);
    ob_err_clear(&err);

    /* Through the config: the refusal names the config line. */
    char *text = ob_xasprintf("[notify]\nemail-to = a@b\nsmtp-url = smtp://m\nsmtp-user = u\n"
                              "smtp-password-file = %s\n",
                              grp);
    expect_config_error(text, "c.conf:5: smtp-password-file", NULL);
    free(text);
    notifier *n = NULL;
    text = ob_xasprintf("[notify]\nemail-to = a@b\nsmtp-url = smtp://m\nsmtp-user = u\n"
                        "smtp-password-file = %s\n",
                        ok);
    assert_int_equal(from_text(text, &n, &err), 0);
    assert_non_null(n);
    notifier_free(n);
    free(text);
    free(ok);
    free(grp);
    free(oth);
    free(empty);
    free(missing);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const names[] = {"c.conf", "ok.pw", "grp.pw", "oth.pw", "empty.pw"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = ob_xasprintf("%s/%s", tmpdir, names[i]);
        unlink(p);
        free(p);
    }
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slack_failure),
        cmocka_unit_test(test_slack_success_and_bad_utf8),
        cmocka_unit_test(test_webhook_payload),
        cmocka_unit_test(test_mail_message),
        cmocka_unit_test(test_mail_header_injection),
        cmocka_unit_test(test_mail_long_lines_and_utf8_subject),
        cmocka_unit_test(test_url_target),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_password_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
