#!/usr/bin/env bash
# The daemon running real jobs on their cron schedule, through the
# production scheduling code with a fast clock (OPSBACKUP_DAEMON_TIME_SCALE
# = 60: a schedule minute lasts a second):
#   - every-minute jobs run repeatedly; retention keeps what it should;
#   - a failing job notifies Slack, the webhook and mail (job, step, error,
#     host), and once it is older than its rpo the daemon alerts "stale"
#     once (not at every look);
#   - a job still running when due again is not started twice;
#   - a stopped (asleep) daemon runs a missed job once on waking and says
#     how many runs were missed;
#   - SIGHUP loads a new job; a broken config is refused (runs refuse it
#     too, and the daemon notifies that), and fixing the file is enough;
#   - --listen serves /metrics and /health;
#   - SIGTERM stops it cleanly with no job left behind;
#   - --print-crontab.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sink_lib.sh"

export OPSBACKUP_STATE_DIR="$T/state"
mkdir -p "$T/src/sub dir" "$T/slowsrc" "$T/late"
printf 'attachment\n' >"$T/src/sub dir/a.txt"
printf 'slow\n' >"$T/slowsrc/slow.dat"
printf 'late\n' >"$T/late/l.txt"
"$OPSBACKUP" -r "$T/repo" init --kdf-n 1024 >/dev/null

start_sink http http_sink.py
HTTP_PORT=$SINK_PORT
start_sink smtp smtp_sink.py
SMTP_PORT=$SINK_PORT
LISTEN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

CFG="$T/opsbackup.conf"
cat >"$CFG" <<EOF
[repo.local]
url = $T/repo
password-file = $OPSBACKUP_PASSWORD_FILE

[job.att]
kind = files
paths = $T/src
schedule = * * * * *
keep-last = 2

[job.broken]
kind = files
paths = $T/does-not-exist
schedule = * * * * *
rpo = 3s

[job.slow]
kind = files
paths = $T/slowsrc
schedule = * * * * *

[notify]
on = failure
slack-webhook = http://127.0.0.1:$HTTP_PORT/slack/T0/SECRET
webhook = http://127.0.0.1:$HTTP_PORT/hook
email-to = ops@example.com
smtp-url = smtp://127.0.0.1:$SMTP_PORT
EOF
chmod 600 "$CFG"
cp "$CFG" "$T/good.conf"

info "--print-crontab"
expect_code 0 "$OPSBACKUP" -c "$CFG" daemon --print-crontab
assert_grep "^\* \* \* \* \* .*opsbackup -c $CFG -q run att$" "$T/out"

# The slow job's backup pauses when it opens slow.dat, until $T/go exists.
${CC:-cc} -shared -fPIC -o "$T/pauselist.so" "$TOOLS/pauselist.c" -ldl || fail "cannot build pauselist.so"
info "daemon start"
ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" LD_PRELOAD="$T/pauselist.so" \
    PAUSELIST_SUFFIX=/slow.dat PAUSELIST_MARK="$T/paused" PAUSELIST_GO="$T/go" \
    OPSBACKUP_DAEMON_TIME_SCALE=60 \
    "$OPSBACKUP" -c "$CFG" daemon --listen "127.0.0.1:$LISTEN_PORT" --stop-timeout 20s \
    >"$T/daemon.out" 2>"$T/daemon.log" &
DPID=$!
stop_daemon() { kill "$DPID" 2>/dev/null || true; touch "$T/go"; wait "$DPID" 2>/dev/null || true; }
on_exit stop_daemon

# wait_for SECONDS CMD...: poll until CMD succeeds.
wait_for() {
    local s=$1 i; shift
    for i in $(seq 1 $((s * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$DPID" 2>/dev/null || { cat "$T/daemon.log"; fail "the daemon died"; }
        sleep 0.2
    done
    return 1
}
att_runs() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("runs_total",0))' "$T/state/job-att.json" 2>/dev/null || echo 0; }
runs_at_least() { [ "$(att_runs)" -ge "$1" ]; }

wait_for 40 runs_at_least 3 || { cat "$T/daemon.log"; fail "att did not run 3 times"; }
n=$("$OPSBACKUP" -r "$T/repo" --json snapshots --set att | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = 2 ] || problem "att has $n snapshots after $(att_runs) runs, keep-last = 2"

info "the slow job is never started twice"
wait_for 20 test -d "$T/paused" || fail "the slow job never started"
sleep 3   # three schedule minutes while its backup is paused
assert_grep "job slow: due again but still running" "$T/daemon.log"
[ "$(grep -c 'job slow: started' "$T/daemon.log")" = 1 ] || problem "slow was started twice"
touch "$T/go"
wait_for 20 grep -q "job slow: finished ok" "$T/daemon.log" || problem "slow did not finish"

info "notifications of the failing job"
wait_for 20 grep -q '"/hook"' "$T/http.jsonl" || fail "no webhook notification"
report_problems "notifications" < <(python3 - "$T/http.jsonl" "$T/smtp.jsonl" "$T/does-not-exist" "$(uname -n)" <<'EOF'
import json, sys
http, smtp, path, host = sys.argv[1:5]
reqs = [json.loads(l) for l in open(http)]
hooks = [json.loads(r["body"]) for r in reqs if r["path"] == "/hook"]
slack = [json.loads(r["body"]) for r in reqs if r["path"].startswith("/slack/")]
run = [h for h in hooks if h.get("job") == "broken" and h.get("step") == "backup"]
if not run:
    print(f"no webhook for the failed backup of broken: {hooks[:2]}")
else:
    h = run[0]
    if h.get("status") != "failed": print(f"status {h.get('status')}")
    if path not in (h.get("error") or ""): print(f"error does not name {path}: {h.get('error')!r}")
    if h.get("host") != host: print(f"host {h.get('host')} != {host}")
    if (h.get("details") or {}).get("failed_step") != "backup": print("details lack the run summary")
if any(h.get("job") == "att" for h in hooks): print("a successful job was notified with on = failure")
stale = [h for h in hooks if h.get("job") == "broken" and h.get("step") == "schedule"]
if len(stale) != 1: print(f"{len(stale)} stale alerts for broken, want exactly 1")
elif "never succeeded" not in stale[0].get("error", ""): print(f"stale alert says {stale[0].get('error')!r}")
if not any("broken" in s.get("text", "") and "backup" in s.get("text", "") for s in slack):
    print("no Slack message naming the job and the step")
mails = [json.loads(l) for l in open(smtp)]
if not any("FAILED: job broken" in m.get("data", "") for m in mails):
    print(f"no mail with subject FAILED: job broken ({len(mails)} mails)")
EOF
)

info "/metrics and /health"
curl -sS --noproxy '*' "http://127.0.0.1:$LISTEN_PORT/metrics" >"$T/metrics" || problem "GET /metrics failed"
grep -qF 'opsbackup_job_last_run_success{job="att"} 1' "$T/metrics" || problem "metrics: att not ok"
grep -qF 'opsbackup_job_last_run_success{job="broken"} 0' "$T/metrics" || problem "metrics: broken not failed"
grep -qF 'opsbackup_repository_up{repository="local"} 1' "$T/metrics" || problem "metrics: no repository"
code=$(curl -s --noproxy '*' -o "$T/health" -w '%{http_code}' "http://127.0.0.1:$LISTEN_PORT/health")
[ "$code" = 503 ] || problem "/health answered $code with a failing job, want 503"
grep -q 'job broken' "$T/health" || problem "/health does not name the problem"
code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LISTEN_PORT/nope")
[ "$code" = 404 ] || problem "/nope answered $code"

info "asleep: runs missed while stopped run once on waking"
kill -STOP "$DPID"
sleep 4
kill -CONT "$DPID"
wait_for 10 grep -q "job att: [0-9]* scheduled runs were missed" "$T/daemon.log" \
    || problem "no missed-run message after a 4-minute sleep"

info "SIGHUP: a new job; then a broken config is refused"
cat >>"$CFG" <<EOF

[job.late]
kind = files
paths = $T/late
schedule = * * * * *
EOF
kill -HUP "$DPID"
wait_for 10 grep -q "reloaded $CFG: 4 jobs" "$T/daemon.log" || problem "reload not logged"
wait_for 20 test -s "$T/state/job-late.json" || problem "the new job never ran"
cp "$CFG" "$T/good.conf"
echo "[job.bad]" >>"$CFG"
kill -HUP "$DPID"
wait_for 10 grep -q "reload refused" "$T/daemon.log" || problem "a broken config was not refused"
# Runs read the file themselves: they refuse it, and the daemon says so.
wait_for 10 grep -q "the run refused to start: $CFG has problems" "$T/http.jsonl" \
    || problem "no notification that runs refuse the broken config"
kill -0 "$DPID" || fail "the daemon died on a broken config"
cp "$T/good.conf" "$CFG"
before=$(att_runs)
wait_for 10 runs_at_least $((before + 2)) || problem "jobs did not run again once the config was fixed"

info "SIGTERM"
kill -TERM "$DPID"
for _ in $(seq 1 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$DPID" 2>/dev/null; then problem "daemon still running 20 s after SIGTERM"; fi
rc=0; wait "$DPID" || rc=$?
[ $rc = 0 ] || problem "daemon exited $rc after SIGTERM"
assert_grep "daemon stopped" "$T/daemon.log"
if pgrep -f "$CFG run" >/dev/null; then problem "job processes left after the daemon stopped"; fi

finish
