/*
 * notify.h — telling operators how a job went (issue #7): a Slack incoming
 * webhook, a generic JSON webhook and email over SMTP/SMTPS, all through
 * libcurl, configured by the [notify] section of the config (CLI.md).
 *
 *   [notify]
 *   on = failure                 ; failure (default) | always
 *   slack-webhook = https://hooks.slack.com/services/...   ; a secret
 *   webhook = https://ops.example.com/hooks/backup
 *   email-to = admin@example.com, ops@example.com
 *   email-from = opsbackup@web1  ; default opsbackup@HOSTNAME
 *   smtp-url = smtps://smtp.example.com:465   ; or smtp:// (STARTTLS if offered)
 *   smtp-user = backup
 *   smtp-password-file = /etc/opsbackup/smtp.password    ; mode 0600
 *
 * Secrets: a Slack webhook URL is a credential (anyone holding it can post
 * to the channel), and a generic webhook URL often carries a token too, so
 * neither URL is ever printed or logged: messages name the channel and the
 * host[:port] of its URL only.  The SMTP password comes from
 * smtp-password-file (refused when group or others can read it) or
 * $OPSBACKUP_SMTP_PASSWORD; it is wiped from memory by notifier_free.
 *
 * Ownership: a notifier owns copies of everything it needs from the config
 * (the config may be freed after notifier_from_config).  A notify_event
 * only borrows its strings and its details object.  Strings returned by
 * the message builders below belong to the caller.
 *
 * Thread safety: a notifier is immutable after it is made; sending from
 * several threads at once is safe (libcurl is opened and initialised once,
 * under a lock, by the first send: curl_lib_load).
 */
#ifndef OB_NOTIFY_H
#define OB_NOTIFY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"

typedef struct notify_event {
    const char *job;        /* job name ("db"), or "dr", or "test" */
    const char *host;       /* NULL: gethostname() */
    int ok;                 /* 1 success, 0 failure */
    const char *step;       /* the failed step ("backup", "copy to offsite", "verify on local", "forget on local") or NULL */
    const char *error;      /* that step's error message, or NULL */
    const char *summary;    /* human multi-line summary of the run (may be NULL) */
    json_t *details;        /* borrowed jansson object: the run's JSON summary (may be NULL) */
    int64_t started, finished;  /* unix seconds (0: unknown) */
} notify_event;

typedef struct notifier notifier;

/* From the [notify] section of c; *out = NULL (and 0) when there is no
 * [notify] or it names no channel.  A bad value, an email-to without
 * smtp-url, or an SMTP password that cannot be read (or is in a file group
 * or others can read) fails with OB_EUSAGE and "CONFIG:LINE: why". */
int notifier_from_config(const config *c, notifier **out, ob_err *err);

/* Whether an event of this outcome is to be sent: on = failure (default)
 * sends failures only, on = always every run.  notifier_send itself does
 * not filter (`notify test` sends regardless of `on`). */
int notifier_wants(const notifier *n, int ok);

/* The number of channels (1 to 3: slack, webhook, email). */
size_t notifier_channels(const notifier *n);

/* Send to every channel. Each failure is logged with ob_warn (channel, host
 * part of the URL only, and the cause) and counted; one failing channel
 * never stops the others.  Returns the number of channels that failed;
 * *attempted (may be NULL) = channels tried. */
size_t notifier_send(notifier *n, const notify_event *ev, size_t *attempted);

/* Called once per channel by notifier_send_report: channel is "slack",
 * "webhook" or "email", target the host[:port] it went to, err NULL on
 * success or the cause. */
typedef void (*notify_report_fn)(const char *channel, const char *target, const ob_err *err,
                                 void *ud);
/* notifier_send, but each channel's outcome goes to report instead of the
 * log (for `notify test`, which prints one line per channel). */
size_t notifier_send_report(notifier *n, const notify_event *ev, notify_report_fn report,
                            void *ud, size_t *attempted);

void notifier_free(notifier *n);

/* The outcome of a run (a job, a DR run) to every channel of c's [notify]
 * when it wants an outcome like ev->ok: builds the notifier, sends, frees.
 * Records {"sent", "failed"} — or {"error"} when [notify] cannot be used —
 * under "notifications" in record (may be NULL).  A failure is logged and
 * never returned: a notification must not change the run's own result. */
void notify_outcome(const config *c, const notify_event *ev, json_t *record);

/* ---- Internals, exposed for notify_test.c (no network involved). ---- */

/* Slack: {"text": ":x: opsbackup job *db* failed on host web1 at step
 * backup: ERROR\n```\nSUMMARY\n```"}.  ev->host NULL reads as "unknown". */
char *notify_slack_payload(const notify_event *ev);
/* The generic webhook's JSON document (CLI.md "[notify]"). */
char *notify_webhook_payload(const notify_event *ev);
/* The whole RFC 5322 message (CRLF line ends, no dot-stuffing: libcurl
 * does that).  now is the Date header's time. */
char *notify_mail_message(const notify_event *ev, const char *from, char *const *to, size_t nto,
                          int64_t now);
/* "host" or "host:port" of a URL (what messages may show), or NULL when
 * url is not a URL. */
char *notify_url_target(const char *url);
/* The first line of an SMTP password file; refused when group or others
 * can read the file.  *out is wiped and freed by the caller (ob_wipe). */
int notify_password_file(const char *path, char **out, ob_err *err);

#endif
