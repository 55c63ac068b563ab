#!/usr/bin/env bash
# `opsbackup notify test` (issue #7) against local sinks (tests/tools/http_sink.py,
# smtp_sink.py): the Slack payload, the generic webhook's JSON fields and the
# mail (headers, body, CRLF, envelope, SMTP AUTH with the password from
# smtp-password-file, or from $OPSBACKUP_SMTP_PASSWORD; PLAIN and LOGIN) as
# received; a webhook answering 500 fails that channel only (exit 1, named),
# the others still get their message; a wrong SMTP password, an unreachable
# Slack URL; a group-readable smtp-password-file, a bad `on`, no channel and
# no config are refused with exit 2; the Slack URL's secret path never shows.
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/sink_lib.sh"
unset OPSBACKUP_SMTP_PASSWORD


SECRET="B07SECRET/xoxSECRETTOKENq9"
SMTP_PASSWORD='pa ss:wörd%"1'
start_sink http http_sink.py
HTTP_PORT=$SINK_PORT
start_sink http500 http_sink.py --status 500
HTTP500_PORT=$SINK_PORT
start_sink smtp smtp_sink.py --require-auth "mailer:$SMTP_PASSWORD"
SMTP_PORT=$SINK_PORT
start_sink smtplogin smtp_sink.py --require-auth "mailer:$SMTP_PASSWORD" --auth-mechanisms LOGIN
SMTPLOGIN_PORT=$SINK_PORT
HOST=$(uname -n)

printf '%s\n' "$SMTP_PASSWORD" >"$T/smtp.password"
chmod 600 "$T/smtp.password"
SLACK_URL="http://127.0.0.1:$HTTP_PORT/services/T000/$SECRET"
# write_conf WEBHOOK_PORT SMTP_PORT [EXTRA LINES]
write_conf() {
    cat >"$T/notify.conf" <<CONF
[notify]
on = failure
slack-webhook = $SLACK_URL
webhook = http://127.0.0.1:$1/hooks/backup
email-to = admin@example.com, ops@example.com
email-from = backup@example.org
smtp-url = smtp://127.0.0.1:$2
smtp-user = mailer
$3
CONF
    chmod 600 "$T/notify.conf"
}
write_conf "$HTTP_PORT" "$SMTP_PORT" "smtp-password-file = $T/smtp.password"
# Everything opsbackup prints, to check that the Slack secret never shows.
: >"$T/all_output"
nt() { run_rc "$OPSBACKUP" -c "$T/notify.conf" "$@" notify test; cat "$T/out" "$T/err" >>"$T/all_output"; }

info "every channel gets the test event (whatever 'on' says); exit 0"
nt
[ "$RC" = 0 ] || { cat "$T/out" "$T/err"; fail "notify test exited $RC"; }
assert_grep "^slack (127.0.0.1:$HTTP_PORT): ok\$" "$T/out"
assert_grep "^webhook (127.0.0.1:$HTTP_PORT): ok\$" "$T/out"
assert_grep "^email (127.0.0.1:$SMTP_PORT): ok\$" "$T/out"
[ "$(wc -l <"$T/out")" = 3 ] || fail "expected 3 lines: $(cat "$T/out")"
[ "$(count http)" = 2 ] || fail "the HTTP sink got $(count http) requests, not 2"
[ "$(count smtp)" = 1 ] || fail "the SMTP sink got $(count smtp) messages, not 1"

info "the Slack payload"
python3 - "$T/http.jsonl" "$SECRET" "$HOST" <<'PY' || fail "Slack payload"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
secret, host = sys.argv[2], sys.argv[3]
r = [q for q in reqs if q["path"].startswith("/services/")]
assert len(r) == 1, r
r = r[0]
assert r["method"] == "POST", r
assert r["path"] == "/services/T000/" + secret, r["path"]
assert r["headers"]["Content-Type"] == "application/json", r["headers"]
body = json.loads(r["body"])
assert list(body) == ["text"], body
t = body["text"]
first = t.split("\n")[0]
assert first == ":white_check_mark: opsbackup job *test* succeeded on host %s" % host, first
assert "\n```\nThis is a test notification sent by `opsbackup notify test`" in t, t
assert t.endswith("\n```"), t
PY

info "the generic webhook's JSON"
python3 - "$T/http.jsonl" "$HOST" <<'PY' || fail "webhook payload"
import json, re, sys, datetime
reqs = [json.loads(l) for l in open(sys.argv[1])]
r = [q for q in reqs if q["path"] == "/hooks/backup"]
assert len(r) == 1, r
r = r[0]
assert r["method"] == "POST" and r["headers"]["Content-Type"] == "application/json", r
j = json.loads(r["body"])
want = {"source", "job", "host", "status", "step", "error", "started", "finished",
        "duration_seconds", "summary", "details"}
assert set(j) == want, set(j) ^ want
assert j["source"] == "opsbackup" and j["job"] == "test" and j["host"] == sys.argv[2], j
assert j["status"] == "ok" and j["step"] is None and j["error"] is None, j
rfc = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
assert rfc.match(j["started"]) and rfc.match(j["finished"]), j
s = datetime.datetime.strptime(j["started"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
now = datetime.datetime.now(datetime.timezone.utc)
assert abs((now - s).total_seconds()) < 300, (now, s)
assert isinstance(j["duration_seconds"], int) and 0 <= j["duration_seconds"] < 60, j
assert "opsbackup notify test" in j["summary"], j
assert j["details"] == {"test": True}, j
PY

info "the mail: envelope, AUTH with the password file, headers, body"
python3 - "$T/smtp.jsonl" "$SMTP_PASSWORD" "$HOST" <<'PY' || fail "mail"
import json, re, sys
m = [json.loads(l) for l in open(sys.argv[1])][-1]
password, host = sys.argv[2], sys.argv[3]
assert m["mail_from"] == "backup@example.org", m["mail_from"]
assert m["rcpt_to"] == ["admin@example.com", "ops@example.com"], m["rcpt_to"]
assert m["auth_user"] == "mailer" and m["auth_password"] == password, (m["auth_user"], m["auth_password"])
d = m["data"]
assert "\n" not in d.replace("\r\n", ""), "a line not ending in CRLF"
head, sep, body = d.partition("\r\n\r\n")
assert sep, "no empty line after the headers"
hdr = {}
for line in head.replace("\r\n ", " ").split("\r\n"):
    k, _, v = line.partition(": ")
    assert k not in hdr, "header twice: " + k
    hdr[k] = v
assert hdr["From"] == "backup@example.org", hdr
assert hdr["To"] == "admin@example.com, ops@example.com", hdr
assert re.match(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000$", hdr["Date"]), hdr["Date"]
assert hdr["Subject"] == "[opsbackup] OK: job test on " + host, hdr["Subject"]
assert re.match(r"^<[^<>@\s]+@example\.org>$", hdr["Message-ID"]), hdr["Message-ID"]
assert hdr["MIME-Version"] == "1.0", hdr
assert hdr["Content-Type"] == "text/plain; charset=utf-8", hdr
assert hdr["Content-Transfer-Encoding"] == "8bit", hdr
for want in ("opsbackup job test succeeded on host " + host, "Job:      test", "Status:   OK",
             "Host:     " + host, "Started:  ", "Finished: ", "Summary:",
             "This is a test notification sent by `opsbackup notify test`"):
    assert want in body, (want, body)
PY

info "--json: one entry per channel"
nt --json
[ "$RC" = 0 ] || fail "notify test --json exited $RC"
[ "$(json_get "$T/out" '[(c["channel"], c["ok"]) for c in j["channels"]], j["attempted"], j["failed"]')" = \
  "[('slack', True), ('webhook', True), ('email', True)] 3 0" ] || fail "json: $(cat "$T/out")"

info "SMTP AUTH LOGIN, and the password from OPSBACKUP_SMTP_PASSWORD"
write_conf "$HTTP_PORT" "$SMTPLOGIN_PORT" ""
OPSBACKUP_SMTP_PASSWORD=$SMTP_PASSWORD nt
[ "$RC" = 0 ] || { cat "$T/out" "$T/err"; fail "notify test with LOGIN exited $RC"; }
python3 - "$T/smtplogin.jsonl" "$SMTP_PASSWORD" <<'PY' || fail "LOGIN mail"
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])]
assert len(m) == 1, m
assert (m[0]["auth_mechanism"], m[0]["auth_user"], m[0]["auth_password"]) == ("LOGIN", "mailer", sys.argv[2]), m[0]
PY

info "a webhook answering 500: exit 1 naming it; Slack and mail still sent"
write_conf "$HTTP500_PORT" "$SMTP_PORT" "smtp-password-file = $T/smtp.password"
before_http=$(count http)
before_smtp=$(count smtp)
nt
[ "$RC" = 1 ] || { cat "$T/out" "$T/err"; fail "expected exit 1, got $RC"; }
assert_grep "^webhook (127.0.0.1:$HTTP500_PORT): failed: the server answered HTTP 500" "$T/out"
assert_grep "^slack (127.0.0.1:$HTTP_PORT): ok\$" "$T/out"
assert_grep "^email (127.0.0.1:$SMTP_PORT): ok\$" "$T/out"
assert_grep "1 of 3 notification channels failed" "$T/err"
[ "$(count http500)" = 1 ] || fail "the failing webhook got $(count http500) requests"
[ "$(count http)" = $((before_http + 1)) ] || fail "Slack did not get its message"
[ "$(count smtp)" = $((before_smtp + 1)) ] || fail "the mail was not sent"

info "a wrong SMTP password: the email channel fails with a hint"
printf 'wrong\n' >"$T/wrong.password"
chmod 600 "$T/wrong.password"
write_conf "$HTTP_PORT" "$SMTP_PORT" "smtp-password-file = $T/wrong.password"
before_smtp=$(count smtp)
nt
[ "$RC" = 1 ] || fail "wrong SMTP password: exit $RC"
assert_grep "^email (127.0.0.1:$SMTP_PORT): failed: .*check smtp-user and the SMTP password" "$T/out"
assert_grep "^slack (127.0.0.1:$HTTP_PORT): ok\$" "$T/out"
[ "$(count smtp)" = "$before_smtp" ] || fail "a mail was accepted with a wrong password"

info "an unreachable Slack URL (verbose): the error names the host only"
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SLACK_URL="http://127.0.0.1:$closed/services/T000/$SECRET"
write_conf "$HTTP_PORT" "$SMTP_PORT" "smtp-password-file = $T/smtp.password"
nt -v -v
[ "$RC" = 1 ] || fail "unreachable Slack: exit $RC"
assert_grep "^slack (127.0.0.1:$closed): failed: " "$T/out"
SLACK_URL="http://127.0.0.1:$HTTP_PORT/services/T000/$SECRET"

info "a group-readable smtp-password-file is refused; nothing is sent"
write_conf "$HTTP_PORT" "$SMTP_PORT" "smtp-password-file = $T/smtp.password"
chmod 640 "$T/smtp.password"
before_http=$(count http)
before_smtp=$(count smtp)
nt
[ "$RC" = 2 ] || { cat "$T/out" "$T/err"; fail "group-readable password file: exit $RC, not 2"; }
assert_grep "smtp-password-file $T/smtp.password is readable by its group (mode 0640)" "$T/err"
assert_grep "chmod 600 $T/smtp.password" "$T/err"
assert_grep "notify.conf:9: smtp-password-file" "$T/err"
if grep -qF "$SMTP_PASSWORD" "$T/err" "$T/out"; then fail "the SMTP password was printed"; fi
[ "$(count http)" = "$before_http" ] && [ "$(count smtp)" = "$before_smtp" ] ||
    fail "something was sent although the config was refused"
chmod 600 "$T/smtp.password"

info "a bad 'on', no channel, no config: exit 2"
sed -i 's/^on = failure$/on = sometimes/' "$T/notify.conf"
nt
[ "$RC" = 2 ] || fail "bad on: exit $RC"
assert_grep "notify.conf:2: on must be failure or always" "$T/err"
printf '[notify]\non = always\n' >"$T/notify.conf"
nt
[ "$RC" = 2 ] || fail "no channel: exit $RC"
assert_grep "has no notification channel" "$T/err"
run_rc "$OPSBACKUP" -c "$T/missing.conf" notify test
[ "$RC" = 2 ] || fail "missing config: exit $RC"
run_rc "$OPSBACKUP" notify --help
[ "$RC" = 0 ] || fail "notify --help: exit $RC"
assert_grep "usage: opsbackup notify test \[--json\]" "$T/out"

info "the Slack URL's secret never appeared in any output"
if grep -qF "$SECRET" "$T/all_output"; then
    grep -F "$SECRET" "$T/all_output"
    fail "the Slack webhook secret was printed"
fi
grep -q "Failed to connect\|Couldn't connect\|refused" "$T/all_output" ||
    fail "the unreachable-Slack case did not produce a connection error (test is not testing)"
echo "all checks passed"
