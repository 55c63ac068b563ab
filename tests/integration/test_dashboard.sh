#!/usr/bin/env bash
# The status dashboard: `report --html` over a repository with history
# (successful runs, a failure whose message carries HTML, an over-size
# repository, a recorded DR run) is one self-contained page with the
# right content, every hostile string escaped; `daemon --listen` serves the
# same page behind its token; headless Chromium renders it.
. "$(dirname "$0")/lib.sh"

export OPSBACKUP_STATE_DIR="$T/state"
mkdir -p "$T/src" "$T/etc"
printf 'one\n' >"$T/src/a.txt"
printf 'KEY=1\n' >"$T/etc/app.env"
"$OPSBACKUP" -r "$T/repo" init --kdf-n 1024 >/dev/null
CFG="$T/opsbackup.conf"
write_config() { # PATHS_OF_ATT SIZE_LIMIT
    cat >"$CFG" <<EOF
[repo.local]
url = $T/repo
password-file = $OPSBACKUP_PASSWORD_FILE

[job.attachments]
kind = files
paths = $1
schedule = 0 3 * * *
keep-last = 10

[job.config]
kind = config
paths = $T/etc
schedule = */15 * * * *
keep = forever

[notify]
size-limit = $2
EOF
    chmod 600 "$CFG"
}
write_config "$T/src" 1GB
job() { "$OPSBACKUP" -c "$CFG" "$@"; }

info "history: 4 good runs of growing size, one failure, the config job"
for i in 1 2 3 4; do
    head -c $((i * 50000)) /dev/urandom >"$T/src/file$i.bin"
    job run attachments >/dev/null 2>&1 || fail "run $i failed"
done
job run config >/dev/null 2>&1 || fail "run config failed"
write_config "$T/gone <em>x" 1GB
expect_code 1 job run attachments
write_config "$T/src" 10KB
cat >"$T/state/dr-last.json" <<'EOF'
{"ok": true, "mode": "rehearsal", "finished": "2026-11-01T04:00:00Z", "rto_seconds": 754.2, "rpo_seconds": 1800, "steps": []}
EOF

info "report --html"
expect_code 0 job report --html "$T/report.html"
assert_grep "problems found" "$T/out"
report_problems "report" < <(python3 - "$T/report.html" "$T/repo" <<'EOF'
import html.parser, os, re, sys
path, repo = sys.argv[1:3]
text = open(path, encoding="utf-8").read()
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.stack, self.by_id, self.svgs, self.cur = [], [], {}, [], None
        self.text = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "svg": self.svgs.append(a)
        if "id" in a: self.cur = a["id"]; self.by_id.setdefault(a["id"], "")
    def handle_data(self, d):
        self.text.append(d)
        if self.cur: self.by_id[self.cur] += d
p = P(); p.feed(text)
for tag, a in p.tags:
    if tag in ("script", "link", "img", "iframe", "object"): print(f"external or active element <{tag}>")
    for k, v in a.items():
        if k in ("src", "href") or (v and "url(" in v): print(f"external reference {k}={v!r}")
if "<em>" in text: print("the failure message was not escaped")
if "gone &lt;em&gt;x" not in text: print("the failure message is missing")
jobs = p.by_id.get("jobs", "")
for want in ("attachments", "config", "FAILED", "0 3 * * *", "*/15 * * * *"):
    if want not in jobs: print(f"jobs table lacks {want!r}")
overall = p.by_id.get("overall", "")
if "problem" not in overall or "size-limit" not in overall: print(f"overall status: {overall[:200]!r}")
repos = p.by_id.get("repositories", "")
if "local" not in repos or "OVER" not in repos or "10KB" not in repos: print(f"repositories: {repos[:200]!r}")
att = [s for s in p.svgs if s.get("data-field") == "bytes_total"]
if len(att) != 2: print(f"{len(att)} size charts, want one per job")
elif att[0].get("data-points") != "4": print(f"attachments size chart has {att[0].get('data-points')} points, want the 4 good runs")
dur = [s for s in p.svgs if s.get("data-field") == "duration_seconds"]
if dur and dur[0].get("data-points") != "5": print(f"duration chart has {dur[0].get('data-points')} points, want 5 runs")
if 'class="fail"' not in text: print("the failed run is not marked in the charts")
body = "".join(p.text)
for want in ("Disaster recovery", "rehearsal", "754.2"):
    if want not in body: print(f"DR section lacks {want!r}")
EOF
)

info "daemon --listen serves it behind a token"
head -c 24 /dev/urandom | base64 >"$T/token"
chmod 600 "$T/token"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$OPSBACKUP" -c "$CFG" daemon --listen "127.0.0.1:$PORT" --token-file "$T/token" 2>"$T/daemon.log" &
DPID=$!
stop_daemon() { kill "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; }
on_exit stop_daemon
for _ in $(seq 1 50); do curl -s --noproxy '*' -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/")
[ "$code" = 401 ] || problem "/ without the token answered $code, want 401"
code=$(curl -s --noproxy '*' -o "$T/served.html" -w '%{http_code}' -H "Authorization: Bearer $(cat "$T/token")" "http://127.0.0.1:$PORT/")
[ "$code" = 200 ] || problem "/ with the token answered $code"
grep -q 'id="jobs"' "$T/served.html" || problem "the served page is not the dashboard"
code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics?token=wrong-token-wrong")
[ "$code" = 401 ] || problem "a wrong token answered $code"
stop_daemon
expect_code 2 "$OPSBACKUP" -c "$CFG" daemon --listen 0.0.0.0:$PORT
assert_grep "token-file" "$T/err"
chmod 644 "$T/token"
expect_code 2 "$OPSBACKUP" -c "$CFG" daemon --listen "127.0.0.1:$PORT" --token-file "$T/token"
assert_grep "readable by others" "$T/err"

info "headless Chromium renders it"
command -v chromium >/dev/null || fail "chromium is not installed (scripts/deps.sh installs it)"
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1400 \
    --screenshot="$T/dashboard.png" "file://$T/report.html" >"$T/chromium.log" 2>&1 \
    || { cat "$T/chromium.log"; fail "chromium could not render the page"; }
python3 - "$T/dashboard.png" <<'EOF' || problem "the screenshot is not a real rendering"
import sys, struct, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", data[16:24])
assert (w, h) == (1280, 1400), (w, h)
assert len(data) > 20000, f"only {len(data)} bytes: a blank page?"
EOF
if [ -n "${OB_DASHBOARD_SCREENSHOT:-}" ]; then cp "$T/dashboard.png" "$OB_DASHBOARD_SCREENSHOT"; fi

finish
