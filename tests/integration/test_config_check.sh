#!/usr/bin/env bash
# `opsbackup config check` (issue #7): the CLI.md example config passes; a
# config with one mistake of each kind reports each one with its line and
# exits 2; a config holding a secret that group/others can read is refused;
# --json lists the problems with file, line and message; a syntax error is
# reported with the parser's file:line.
. "$(dirname "$0")/lib.sh"

info "the CLI.md example (local paths) is accepted"
cat >"$T/ok.conf" <<CONF
[repo.local]
url = $T/repo

[repo.offsite]
url = s3://opscore-backups/opsbackup
endpoint = https://s3.ap-northeast-1.amazonaws.com
region = ap-northeast-1

[job.db]
kind = db                     ; db | db-physical | files | config
dbname = host=localhost port=5432 user=opscore dbname=opscore
schedule = 0 2 * * *
keep-daily = 30
repos = local, offsite
verify-sql = SELECT COUNT(*) FROM documents

[job.attachments]
kind = files
paths = $T/app/storage
schedule = 0 3 * * *
keep-within = 90d

[job.config]
kind = config
paths = $T/app/.env, $T/app/config
schedule = */15 * * * *
keep = forever

[notify]
on = failure                  ; failure | always
slack-webhook = https://hooks.slack.com/services/...
webhook = https://ops.example.com/hooks/backup   ; generic JSON POST
email-to = admin@example.com
smtp-url = smtps://smtp.example.com:465
size-limit = 100GB

[dr]
rto = 4h
rpo = 1h
jobs = db, attachments, config   ; what to restore, in order
before = docker compose up -d postgres
after = docker compose up -d backend frontend
health-url = http://localhost:8080/health
CONF
# Its webhook URLs are bearer tokens: a readable file is refused...
chmod 644 "$T/ok.conf"
expect_code 2 "$OPSBACKUP" -c "$T/ok.conf" config check
cat "$T/out" "$T/err" >"$T/both"
assert_grep "'slack-webhook' in \[notify\] is a secret" "$T/both"
if grep -q 'hooks.slack.com' "$T/both"; then fail "config check printed the Slack URL"; fi
chmod 600 "$T/ok.conf"
expect_code 0 "$OPSBACKUP" -c "$T/ok.conf" config check
assert_grep "config OK: 2 repositories, 3 jobs" "$T/out"
OPSBACKUP_CONFIG="$T/ok.conf" expect_code 0 "$OPSBACKUP" config check
expect_code 0 "$OPSBACKUP" -c "$T/ok.conf" config check --json
[ "$(json_get "$T/out" 'j["ok"], j["repositories"], j["jobs"], j["problems"]')" = "True 2 3 []" ] ||
    fail "json of a good config: $(cat "$T/out")"

info "one mistake of each kind, each reported with its line"
# The line numbers in the comments are the ones the test expects.
cat >"$T/bad.conf" <<'CONF'
[repo.local]
path = /backup
[repo.s3]
url = s3://bucket/prefix
path-style = maybe
[job.db]
kind = database
schedule = 61 2 * * *
keep-daily = -3
keep-within = 90x
repos = local, nowhere
timezone = Mars/Olympus
[job.files]
kind = files
schedule = 0 2 * *
[job.phys]
kind = db-physical
verify = perhaps
colour = blue
[job.nokind]
paths = /srv
[notify]
on = sometimes
slack-webhook = hooks.slack.com/services/x
webhook = ftp://example.com/hook
size-limit = lots
[dr]
rto = four hours
jobs = db, ghost
health-url = localhost:8080/health
[backup]
x = 1
[job.phys2]
kind = db-physical
pgdata = /srv/pg
archive-get-command = opsbackup archive-get %f
[job.files2]
kind = files
paths = /srv
archive-get-command = opsbackup archive-get %f "%p"
full-every = 7d
[job.phys3]
kind = db-physical
pgdata = /srv/pg
full-every = weekly
CONF
chmod 600 "$T/bad.conf"
expect_code 2 "$OPSBACKUP" -c "$T/bad.conf" config check
cp "$T/err" "$T/bad.err"
want() { # LINE TEXT: the report has FILE:LINE: ...TEXT...
    grep -F -- "$T/bad.conf:$1: " "$T/bad.err" | grep -qF -- "$2" ||
        { cat "$T/bad.err"; fail "no problem '$2' reported at line $1"; }
}
want 1 "[repo.local] has no 'url'"
want 2 "unknown key 'path' in [repo.local]"
want 5 "path-style must be true or false"
want 7 "kind 'database' is not one of db, db-physical, files, config"
want 8 "minute 61 is out of range 0-59"
want 9 "keep-daily"
want 10 "keep-within"
want 11 "no [repo.nowhere]"
want 12 "unknown timezone 'Mars/Olympus'"
want 13 "[job.files] has no 'paths'"
want 15 "4 fields given"
want 16 "[job.phys] has no 'pgdata'"
want 18 "verify must be true or false"
want 19 "unknown key 'colour' in [job.phys]"
want 20 "[job.nokind] has no 'kind'"
want 23 "on must be failure or always"
want 24 "slack-webhook must be an http:// or https:// URL"
want 25 "webhook must be an http:// or https:// URL"
want 26 "size-limit 'lots' is not a size"
want 28 "rto 'four hours' is not a duration"
want 29 "jobs names job 'ghost' but there is no [job.ghost]"
want 30 "health-url"
want 31 "unknown section [backup]"
want 36 "archive-get-command 'opsbackup archive-get %f' has no %p"
want 40 "archive-get-command is for db-physical jobs"
want 41 "full-every is for db-physical jobs"
want 45 "full-every 'weekly' is not a duration"
assert_grep "problems in $T/bad.conf" "$T/bad.err"
# nothing but problem lines and the summary
[ "$(grep -vc "^$T/bad.conf:[0-9]*: " "$T/bad.err")" = 1 ] || { cat "$T/bad.err"; fail "stray output"; }
# problems come in line order
grep -o "^$T/bad.conf:[0-9]*" "$T/bad.err" | sed 's/.*://' >"$T/lines"
sort -n -c "$T/lines" || fail "problems not in line order"

info "--json lists the same problems with file, line, message"
expect_code 2 "$OPSBACKUP" -c "$T/bad.conf" config check --json
json_get "$T/out" 'j["ok"]' | grep -qx False || fail "ok should be false"
n_text=$(($(wc -l <"$T/bad.err") - 1))
n_json=$(json_get "$T/out" 'len(j["problems"])')
[ "$n_text" = "$n_json" ] || fail "text shows $n_text problems, json $n_json"
json_get "$T/out" '[p for p in j["problems"] if p["line"] == 8][0]["message"]' | grep -q "minute 61" ||
    fail "json lacks the schedule problem at line 8"
json_get "$T/out" 'set(p["file"] for p in j["problems"])' | grep -qF "$T/bad.conf" || fail "json file field"

info "a secret in a file group or others can read is refused"
cat >"$T/secret.conf" <<CONF
[repo.offsite]
url = s3://bucket/prefix
access-key-id = AKIAEXAMPLE
secret-access-key = wJalrXUtnFEMI/K7MDENG
CONF
chmod 644 "$T/secret.conf"
expect_code 2 "$OPSBACKUP" -c "$T/secret.conf" config check
assert_grep "$T/secret.conf:4: 'secret-access-key' in \[repo.offsite\] is a secret" "$T/err"
assert_grep "chmod 600 $T/secret.conf" "$T/err"
chmod 640 "$T/secret.conf"
expect_code 2 "$OPSBACKUP" -c "$T/secret.conf" config check
assert_grep "readable by its group" "$T/err"
chmod 600 "$T/secret.conf"
expect_code 0 "$OPSBACKUP" -c "$T/secret.conf" config check
assert_grep "config OK: 1 repository, 0 jobs" "$T/out"
# a password-file is a path, not a secret; a smtp password inline is one
printf '[notify]\nsmtp-password-file = /etc/x\n' >"$T/pwfile.conf"
chmod 644 "$T/pwfile.conf"
expect_code 0 "$OPSBACKUP" -c "$T/pwfile.conf" config check
printf '[notify]\nsmtp-password = hunter2\n' >"$T/pw.conf"
chmod 644 "$T/pw.conf"
expect_code 2 "$OPSBACKUP" -c "$T/pw.conf" config check
assert_grep "pw.conf:2: unknown key 'smtp-password'" "$T/err"
assert_grep "pw.conf:2: 'smtp-password' in \[notify\] is a secret" "$T/err"

info "a syntax error is the parser's file:line"
printf '[repo.local]\nurl = /x\nthis line has no equals sign\n' >"$T/syntax.conf"
expect_code 2 "$OPSBACKUP" -c "$T/syntax.conf" config check
assert_grep "$T/syntax.conf:3: expected 'key = value'" "$T/err"
expect_code 2 "$OPSBACKUP" -c "$T/syntax.conf" config check --json
[ "$(json_get "$T/out" 'j["problems"][0]["line"]')" = 3 ] || fail "json syntax error line"

info "a missing config file is an error"
expect_code 2 "$OPSBACKUP" -c "$T/none.conf" config check
assert_grep "none.conf" "$T/err"

info "job and repository names must be usable as file names"
printf '[job.../x]\nkind = files\npaths = /tmp\n[repo.a b]\nurl = /tmp/r\n' >"$T/names.conf"
chmod 600 "$T/names.conf"
expect_code 2 "$OPSBACKUP" -c "$T/names.conf" config check
cat "$T/out" "$T/err" >"$T/both"
assert_grep "1: \[job.../x\]: the name '../x' may only use" "$T/both"
assert_grep "4: \[repo.a b\]: the name 'a b'" "$T/both"

info "a job kept by keep-tag alone is refused (it would forget every untagged snapshot)"
printf '[repo.x]\nurl = /tmp/r\n[job.t]\nkind = files\npaths = /tmp\nkeep-tag = keep=yes\n' >"$T/tag.conf"
chmod 600 "$T/tag.conf"
expect_code 2 "$OPSBACKUP" -c "$T/tag.conf" config check
assert_grep "3: keeps snapshots by keep-tag alone" "$T/err"
expect_code 2 "$OPSBACKUP" -c "$T/tag.conf" run t
assert_grep "keep-tag alone" "$T/err"
printf 'keep-last = 3\n' >>"$T/tag.conf"
expect_code 0 "$OPSBACKUP" -c "$T/tag.conf" config check

info "a timezone must be a zone, not a region directory or a path"
# TZ=Europe is no zone to glibc: it would be read as a POSIX rule, i.e.
# UTC, and the job would run and bucket its retention hours off.
for tz in Europe America Europe/ ../zoneinfo/Europe/Berlin /usr/share/zoneinfo/UTC leapseconds; do
    printf '[repo.x]\nurl = /tmp/r\n[job.t]\nkind = files\npaths = /tmp\nschedule = 0 2 * * *\ntimezone = %s\n' \
        "$tz" >"$T/tz.conf"
    chmod 600 "$T/tz.conf"
    expect_code 2 "$OPSBACKUP" -c "$T/tz.conf" config check
    assert_grep "tz.conf:7: timezone '$tz'" "$T/err"
done
printf '[repo.x]\nurl = /tmp/r\n[job.t]\nkind = files\npaths = /tmp\nschedule = 0 2 * * *\ntimezone = Europe\n' >"$T/tz.conf"
expect_code 2 "$OPSBACKUP" -c "$T/tz.conf" config check
assert_grep "timezone 'Europe' is a directory" "$T/err"
expect_code 2 "$OPSBACKUP" -c "$T/tz.conf" run t
assert_grep "timezone 'Europe' is a directory" "$T/err"
sed -i 's|^timezone = .*|timezone = Europe/Berlin|' "$T/tz.conf"
expect_code 0 "$OPSBACKUP" -c "$T/tz.conf" config check

info "the example configs pass config check"
for ex in production development; do
    install -m 600 "$OPSBACKUP_TOP/examples/$ex.conf" "$T/$ex.conf"
    expect_code 0 "$OPSBACKUP" -c "$T/$ex.conf" config check
done
expect_code 0 "$OPSBACKUP" -c "$T/production.conf" daemon --print-crontab
assert_grep "^0 2 \* \* \* .* run db$" "$T/out"
assert_grep "^CRON_TZ=Asia/Tokyo$" "$T/out"
echo "PASS"
