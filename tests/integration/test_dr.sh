#!/usr/bin/env bash
# dr plan / dr run (issue #9) against a small application stand-in: a
# PostgreSQL database, an attachments directory with awkward names, an .env
# and a key file, and a health endpoint (tests/tools/health_app.py) that
# answers 200 only while the database holds its data.
#   - the whole disaster: everything backed up by `run JOB`, then the
#     database, the attachments and the config destroyed; `dr run --yes`
#     brings every row, byte and mode back, runs the hooks (without a
#     shell), passes the health check, and its report's RTO and RPO are the
#     measured ones;
#   - a damaged (not dropped) database is replaced, the old one kept;
#   - plan: one repository unreachable (fallback, said so), a stale backup
#     (RPO breach, exit 3);
#   - a failing hook and a hook over its time limit stop the run with what
#     is done and what is not, in the messages and the report;
#   - no terminal and no --yes: refused, nothing done;
#   - rehearsal: production untouched, the data restored beside it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
# The health check goes to 127.0.0.1: never through a proxy of the environment.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy no_proxy NO_PROXY

pg_start
make_app_db appdb 3000
docs=$(pg_sql -d appdb "SELECT count(*) FROM documents")
export OPSBACKUP_STATE_DIR="$T/state"

# The application's files: attachments with awkward names, .env, a key file.
APP="$T/app"
mkdir -p "$APP/storage/screenshots 2026" "$APP/storage/-dash" "$APP/storage/日本語 フォルダ" \
    "$APP/keys"
printf 'evidence\n' >"$APP/storage/screenshots 2026/shot 1.png"
printf 'line\nbreak\n' >"$APP/storage/-dash/--looks-like-an-option"
printf 'x' >"$APP/storage/日本語 フォルダ/添付 ファイル.pdf"
printf 'nl' >"$APP/storage/name with
newline.txt"
head -c 300000 /dev/urandom >"$APP/storage/big.bin"
: >"$APP/storage/empty"
ln -s "screenshots 2026/shot 1.png" "$APP/storage/link to shot"
chmod 0640 "$APP/storage/big.bin"
printf 'DB_PASSWORD=s3cret\nAPP_KEY=base64:abc\n' >"$APP/.env"
chmod 0600 "$APP/.env"
head -c 32 /dev/urandom >"$APP/keys/app.key"
chmod 0400 "$APP/keys/app.key"
touch -d '2024-01-02 03:04:05' "$APP/storage/big.bin"

for r in local offsite; do "$OPSBACKUP" -r "$T/$r" init --kdf-n 1024 >/dev/null; done

# Health endpoint: 200 only with every document and the key file back.
health_app_start --db appdb --min-rows "$docs" --require-file "$APP/keys/app.key"

CFG="$T/opsbackup.conf"
# write_config RPO BEFORE HOOK_TIMEOUT
write_config() {
    cat >"$CFG" <<EOF
[repo.local]
url = $T/local
password-file = $OPSBACKUP_PASSWORD_FILE

[repo.offsite]
url = $T/offsite
password-file = $OPSBACKUP_PASSWORD_FILE

[job.db]
kind = db
dbname = host=$PGHOST port=$PGPORT user=$PGUSER dbname=appdb
repos = local, offsite
verify-sql = SELECT COUNT(*) FROM documents

[job.attachments]
kind = files
paths = $APP/storage
repos = local, offsite

[job.config]
kind = config
paths = $APP/.env, $APP/keys
repos = local, offsite
keep = forever

[dr]
rto = 1h
rpo = $1
jobs = db, attachments, config
before = $2
after = touch '$T/after ran'
hook-timeout = $3
health-url = $HEALTH
health-retries = 20
health-interval = 1s
health-timeout = 5s
check-sql = SELECT COUNT(*) FROM documents
check-sql = SELECT count(*) FROM audit.events
EOF
    chmod 600 "$CFG"
}
# The before hook proves there is no shell: $(id) and ; stay parts of words
# (a shell would run id, and split at ; to run a command "b").
write_config 1h "touch '$T/before ran' $T/nosh-\$(id) $T/a;b" 1m
obc() { "$OPSBACKUP" -c "$CFG" "$@"; }

expect_code 0 obc config check

info "back up every job"
for j in db attachments config; do
    obc run "$j" >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err"; fail "run $j failed"; }
done
before_sum=$(pg_checksum appdb)
cp -a "$APP" "$T/app.orig"
# The newest data time among the backups is at most now; remember when the
# backups ended to bound the RPO the report gives.
backups_done=$(date +%s)

info "dr plan: nothing is changed, every job from its first repository"
expect_code 0 obc --json dr plan
cp "$T/out" "$T/plan.json"
report_problems "plan" < <(python3 - "$T/plan.json" "$docs" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
jobs = {x["job"]: x for x in j["jobs"]}
if list(jobs) != ["db", "attachments", "config"]:
    print(f"jobs {list(jobs)}")
for name, x in jobs.items():
    if x.get("repository") != "local":
        print(f"{name}: repository {x.get('repository')!r}, expected local")
    if x.get("fallbacks"):
        print(f"{name}: fallbacks {x['fallbacks']}")
    if not (x.get("snapshot") or {}).get("id"):
        print(f"{name}: no snapshot")
    if not isinstance(x.get("data_loss_seconds"), int) or x["data_loss_seconds"] > 600:
        print(f"{name}: data_loss_seconds {x.get('data_loss_seconds')!r}")
    if x.get("rpo_ok") is not True:
        print(f"{name}: rpo_ok {x.get('rpo_ok')!r}")
# db was verified by its run: an estimate from the verify's restore time.
if not isinstance(jobs["db"].get("estimate_seconds"), (int, float)):
    print(f"db estimate {jobs['db'].get('estimate_seconds')!r}, expected the verify's time")
elif "verify" not in (jobs["db"].get("estimate_source") or ""):
    print(f"db estimate source {jobs['db'].get('estimate_source')!r}")
if jobs["attachments"].get("estimate_seconds") is not None:
    print(f"attachments estimate {jobs['attachments'].get('estimate_seconds')!r}, expected null (never timed)")
if j["rto"].get("complete") is not False or j["rto"].get("estimate_seconds") is not None:
    print(f"rto {j['rto']}: an unknown part must make the estimate incomplete")
if jobs["db"].get("database") != "appdb" or jobs["db"].get("database_exists") is not True:
    print(f"db database {jobs['db'].get('database')!r} exists {jobs['db'].get('database_exists')!r}")
steps = [s["step"] for s in j["steps"]]
want = ["before", "restore db", "check db", "restore attachments", "restore config", "after", "health check"]
if steps != want:
    print(f"steps {steps} != {want}")
if j.get("ok") is not True or j.get("problems"):
    print(f"ok {j.get('ok')!r} problems {j.get('problems')!r}")
r = [s["command"] for s in j["steps"] if s["step"] == "restore attachments"][0]
if "--target /" not in r or jobs["attachments"]["snapshot"]["id"] not in r:
    print(f"attachments restore command {r!r}")
EOF
)
expect_code 0 obc dr plan
assert_grep "RTO: restore time estimate at least" "$T/out"
assert_grep "unknown (no verify or dr run has timed it)" "$T/out"
[ ! -e "$T/before ran" ] || problem "dr plan ran the before hook"

info "without a terminal and without --yes: refused, nothing done"
expect_code 2 obc dr run </dev/null
assert_grep "dr run --yes" "$T/err"
[ ! -e "$T/before ran" ] || problem "a refused dr run ran the before hook"

info "the disaster: database, attachments and config destroyed"
pg_sql "DROP DATABASE appdb WITH (FORCE)" >/dev/null
rm -rf "$APP"
curl -s -o /dev/null -w '%{http_code}' "$HEALTH" >"$T/code" || true
[ "$(cat "$T/code")" = 503 ] || fail "health endpoint answers $(cat "$T/code") without the data"

info "dr run --yes"
t0=$(date +%s.%N)
set +e
# Without the PG* environment: every step must reach the server through the
# job's own dbname (read from the config, never passed to the steps).
env -u PGHOST -u PGPORT -u PGUSER "$OPSBACKUP" -c "$CFG" --json dr run --yes \
    >"$T/run.json" 2>"$T/run.err"
rc=$?
set -e
t1=$(date +%s.%N)
[ $rc -eq 0 ] || { cat "$T/run.err"; head -c 3000 "$T/run.json"; fail "dr run exited $rc"; }
after_sum=$(pg_checksum appdb)
[ "$after_sum" = "$before_sum" ] || { pg_fingerprint_diff appdb appdb; problem "restored database differs (checksum)"; }
treecmp "$T/app.orig/storage" "$APP/storage" >"$T/tc" 2>&1 || { cat "$T/tc"; problem "attachments differ"; }
treecmp "$T/app.orig/keys" "$APP/keys" >"$T/tc" 2>&1 || { cat "$T/tc"; problem "key directory differs"; }
cmp -s "$T/app.orig/.env" "$APP/.env" || problem ".env differs"
[ "$(stat -c %a "$APP/.env")" = 600 ] || problem ".env mode $(stat -c %a "$APP/.env")"
[ "$(stat -c %a "$APP/keys/app.key")" = 400 ] || problem "key mode $(stat -c %a "$APP/keys/app.key")"
[ -e "$T/before ran" ] || problem "the before hook did not run"
[ -e "$T/after ran" ] || problem "the after hook did not run"
# No shell: the words were passed to touch as they are.
[ -e "$T/nosh-\$(id)" ] && [ -e "$T/a;b" ] || problem "the before hook went through a shell"
curl -sf "$HEALTH" >/dev/null || problem "health endpoint not healthy after dr run"

report_problems "run report" < <(python3 - "$T/run.json" "$t0" "$t1" "$backups_done" "$T/state" <<'EOF'
import json, os, sys, datetime
j = json.load(open(sys.argv[1]))
t0, t1, backups_done, state = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
if j.get("ok") is not True or j.get("exit_code") != 0:
    print(f"ok {j.get('ok')!r} exit_code {j.get('exit_code')!r} error {j.get('error')!r}")
st = {s["step"]: s for s in j["steps"]}
for name, s in st.items():
    if s.get("status") != "ok":
        print(f"step {name} status {s.get('status')!r}: {s.get('error')}")
    if not isinstance(s.get("seconds"), (int, float)):
        print(f"step {name} has no seconds")
if "--target-db appdb" not in st["restore db"].get("command", ""):
    print(f"restore db of a dropped database: {st['restore db'].get('command')!r}")
a = j["achieved"]
wall = t1 - t0
# RTO: the run's own wall time; the process's start-up and the plan (a few
# snapshot listings) happen before the clock starts, so it is a little less.
if not (wall - 8 <= a["rto_seconds"] <= wall):
    print(f"achieved RTO {a['rto_seconds']} vs measured wall time {wall:.2f}")
if a.get("rto_ok") is not True or a.get("rto_target_seconds") != 3600:
    print(f"rto_ok {a.get('rto_ok')!r} target {a.get('rto_target_seconds')!r}")
# RPO: the run's start minus the oldest snapshot time of the restored jobs.
snaps = [ts(x["snapshot"]["time"]) for x in j["jobs"]]
started = ts(j["started"])
want = started - min(snaps)
if abs(a["rpo_seconds"] - want) > 1:
    print(f"achieved RPO {a['rpo_seconds']} != start - oldest snapshot {want:.1f}")
if not (0 <= a["rpo_seconds"] <= t1 - backups_done + 120):
    print(f"achieved RPO {a['rpo_seconds']} is not what the test knows of the backups' age")
if a.get("rpo_ok") is not True:
    print(f"rpo_ok {a.get('rpo_ok')!r}")
if abs(started - t0) > 10:
    print(f"started {j['started']} far from the test's t0")
v = j["verification"]
dbs = v.get("databases") or []
if len(dbs) != 1 or dbs[0].get("mismatches") != 0 or len(dbs[0].get("tables") or {}) < 5:
    print(f"database verification {dbs}")
else:
    for c in dbs[0]["checks"]:
        if c.get("ok") is not True:
            print(f"check {c}")
    if dbs[0]["checks"][0]["result"] != [[dbs[0]["tables"]["public.documents"]["expected"].__str__()]]:
        print(f"check-sql result {dbs[0]['checks'][0]['result']} != the documents count")
files = v.get("files") or []
if [f.get("job") for f in files] != ["attachments", "config"]:
    print(f"files verification {files}")
h = v.get("health") or {}
if h.get("ok") is not True or h.get("status") != 200:
    print(f"health {h}")
if j.get("not_done"):
    print(f"not_done {j['not_done']}")
for k in ("report_json", "report_markdown"):
    p = j.get(k)
    if not p or not os.path.isfile(p) or os.path.dirname(p) != state:
        print(f"{k} {p!r} is not a file in the state directory")
md = open(j["report_markdown"]).read()
for want in ("SUCCEEDED", "RTO", "RPO", "health check", "every row count equal"):
    if want not in md:
        print(f"markdown report lacks {want!r}")
last = json.load(open(os.path.join(state, "dr-last.json")))
if last.get("started") != j["started"] or last.get("mode") != "production":
    print("dr-last.json is not this run")
# The dashboard shows its scalar fields: the headline figures are there.
if last.get("rto_seconds") != a["rto_seconds"] or last.get("rpo_seconds") != a["rpo_seconds"]:
    print(f"dr-last.json rto/rpo_seconds {last.get('rto_seconds')}/{last.get('rpo_seconds')}")
EOF
)

info "a damaged database is replaced; the old one is kept beside it"
pg_sql -d appdb "DELETE FROM document_tags; DELETE FROM audit.settings" >/dev/null
expect_code 0 obc dr run --yes
[ "$(pg_checksum appdb)" = "$before_sum" ] || problem "replaced database differs"
pg_databases | grep -q '^appdb_before_restore_' || problem "the damaged database was not kept"
assert_grep "RPO achieved" "$T/out"
report=$(ls -t "$T/state"/dr-*.json | grep -v dr-last | head -1)
json_get "$report" '[s["command"] for s in j["steps"] if s["step"]=="restore db"][0]' | grep -q -- '--replace' \
    || problem "an existing database was not restored with --replace"
for d in $(pg_databases | grep '^appdb_before_restore_'); do pg_sql "DROP DATABASE \"$d\"" >/dev/null; done

info "plan with the first repository unreachable: falls back to offsite"
mv "$T/local" "$T/local.away"
expect_code 0 obc --json dr plan
report_problems "fallback plan" < <(python3 - "$T/out" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
for x in j["jobs"]:
    if x.get("repository") != "offsite":
        print(f"{x['job']}: repository {x.get('repository')!r}, expected offsite")
    fb = x.get("fallbacks") or []
    if len(fb) != 1 or fb[0].get("repository") != "local" or not fb[0].get("error"):
        print(f"{x['job']}: fallbacks {fb}")
r = [s["command"] for s in j["steps"] if s["step"] == "restore db"][0]
if "-r offsite" not in r:
    print(f"restore db command {r!r} does not use offsite")
EOF
)
expect_code 0 obc dr plan
assert_grep "repository local skipped" "$T/out"
assert_grep "(fallback)" "$T/out"
info "every repository unreachable: exit 3, and dr run does nothing"
mv "$T/offsite" "$T/offsite.away"
expect_code 3 obc dr plan
assert_grep "NOTHING TO RESTORE" "$T/out"
rm -f "$T/before ran"
expect_code 1 obc dr run --yes
assert_grep "nothing was done" "$T/err"
[ ! -e "$T/before ran" ] || problem "dr run without data ran the before hook"
mv "$T/local.away" "$T/local"
mv "$T/offsite.away" "$T/offsite"

info "a stale backup: RPO breached, plan exits 3"
write_config 2s "touch '$T/before ran'" 1m
sleep 3
expect_code 3 obc dr plan
assert_grep "RPO breached" "$T/out"
assert_grep "RPO BREACH" "$T/out"
expect_code 3 obc --json dr plan
[ "$(json_get "$T/out" 'j["rpo"]["ok"]')" = False ] || problem "plan --json rpo.ok is not false"
# An old snapshot made with --time: the plan uses the newest one, and a
# target time before the newest picks the old one.
"$OPSBACKUP" -r "$T/local" backup files --set attachments --time '2020-01-02 03:04:05' \
    "$APP/storage" >/dev/null
write_config 1h "touch '$T/before ran'" 1m
expect_code 0 obc --json dr plan
[ "$(json_get "$T/out" '[x for x in j["jobs"] if x["job"]=="attachments"][0]["snapshot"]["time"][:4]')" != 2020 ] \
    || problem "the plan took the old snapshot, not the newest"
expect_code 3 obc --json dr plan --target-time '2021-01-01 00:00:00'
report_problems "target-time plan" < <(python3 - "$T/out" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
x = {y["job"]: y for y in j["jobs"]}
if not x["attachments"].get("snapshot", {}).get("time", "").startswith("2020-01-0"):
    print(f"attachments snapshot {x['attachments'].get('snapshot')}")
if not x["db"].get("error"):
    print("db has no snapshot before 2021 but no error")
EOF
)

info "a failing before hook stops the run: done / not done"
write_config 1h "false" 1m
pg_sql -d appdb "INSERT INTO audit.settings VALUES ('marker', '1')" >/dev/null
marker_sum=$(pg_checksum appdb)
expect_code 1 obc dr run --yes
assert_grep "failed at step 1 (before)" "$T/err"
assert_grep "exited with status 1" "$T/err"
assert_grep "NOT done: restore db" "$T/err"
assert_grep "NOT done: health check" "$T/err"
[ "$(pg_checksum appdb)" = "$marker_sum" ] || problem "a run stopped at its before hook changed the database"
report=$(ls -t "$T/state"/dr-*.json | grep -v dr-last | head -1)
report_problems "failed report" < <(python3 - "$report" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
if j.get("ok") is not False or j.get("failed_step") != "before":
    print(f"ok {j.get('ok')!r} failed_step {j.get('failed_step')!r}")
st = [s["status"] for s in j["steps"]]
if st[0] != "failed" or any(s != "not run" for s in st[1:]):
    print(f"statuses {st}")
if len(j.get("done") or []) != 0 or len(j.get("not_done") or []) != len(st):
    print(f"done {j.get('done')} not_done {j.get('not_done')}")
if j["achieved"].get("rpo_seconds") is not None:
    print(f"nothing restored but rpo_seconds {j['achieved'].get('rpo_seconds')}")
if j["achieved"].get("rto_ok") is not False:
    print("a failed recovery met its RTO")
md = open(j["report_markdown"]).read()
for want in ("FAILED", "NOT done: restore db", "not run"):
    if want not in md:
        print(f"markdown lacks {want!r}")
EOF
)

info "shell = true: the hook is a shell command line"
write_config 1h "echo from-a-shell >'$T/sh out'&& exit 7" 1m
printf 'shell = true\n' >>"$CFG"
expect_code 1 obc dr run --yes
assert_grep "exited with status 7" "$T/err"
[ "$(cat "$T/sh out" 2>/dev/null)" = from-a-shell ] || problem "shell = true did not run the hook through a shell"

info "a hook over its time limit is killed, with its children"
# Through a shell, with a child of its own: the whole process group goes.
write_config 1h "sleep 31 & sleep 30" 1s
printf 'shell = true\n' >>"$CFG"
s0=$(date +%s)
expect_code 1 obc dr run --yes
s1=$(date +%s)
[ $((s1 - s0)) -lt 20 ] || problem "the hook ran $((s1 - s0))s with a 1s limit"
assert_grep "time limit of 1s" "$T/err"
sleep 0.5
pgrep -f '^sleep 3[01]$' >/dev/null && problem "the timed-out hook left a process running: $(pgrep -af '^sleep 3[01]$')"

info "a failed health check fails the run after its retries"
write_config 1h "true" 1m
sed -i -e "s|^health-url = .*|health-url = http://127.0.0.1:1/health|" \
    -e "s|^health-retries = .*|health-retries = 2|" "$CFG"
expect_code 1 obc dr run --yes
assert_grep "failed at step 7 (health check)" "$T/err"
assert_grep "done:     restore db" "$T/err"
assert_grep "after 2 attempts" "$T/err"

info "rehearsal: production untouched, the data restored beside it"
write_config 1h "touch '$T/before ran'" 1m
rm -f "$T/before ran" "$T/after ran"
prod_sum=$(pg_checksum appdb)
printf 'changed after the backup\n' >"$APP/storage/new after backup.txt"
cp -a "$APP" "$T/app.prod"
expect_code 0 obc dr run --yes --rehearsal --target "$T/rehearsal" --target-db appdb_rehearsal --keep
[ "$(pg_checksum appdb)" = "$prod_sum" ] || problem "a rehearsal changed the production database"
treecmp "$T/app.prod" "$APP" >"$T/tc" 2>&1 || { cat "$T/tc"; problem "a rehearsal changed production files"; }
[ ! -e "$T/before ran" ] && [ ! -e "$T/after ran" ] || problem "a rehearsal ran the hooks"
pg_db_exists appdb_rehearsal || fail "no rehearsal database"
[ "$(pg_checksum appdb_rehearsal)" = "$before_sum" ] || problem "rehearsal database differs from the backup"
treecmp "$T/app.orig/storage" "$T/rehearsal$APP/storage" >"$T/tc" 2>&1 \
    || { cat "$T/tc"; problem "rehearsal attachments differ"; }
cmp -s "$T/app.orig/.env" "$T/rehearsal$APP/.env" || problem "rehearsal .env differs"
json_get "$T/state/dr-last.json" 'j["mode"]' | grep -qx rehearsal || problem "dr-last.json is not the rehearsal"
[ "$(json_get "$T/state/dr-last.json" '[s["status"] for s in j["steps"] if s["step"]=="health check"][0]')" = skipped ] \
    || problem "the rehearsal did not skip the health check"
info "rehearsal without --keep drops its scratch database"
expect_code 0 obc --json dr run --yes --rehearsal --target "$T/rehearsal2"
scratch=$(json_get "$T/out" '[x for x in j["jobs"] if x["job"]=="db"][0]["database"]')
case "$scratch" in appdb_dr_rehearsal_*) ;; *) problem "scratch database name $scratch" ;; esac
pg_db_exists "$scratch" && problem "scratch database $scratch was kept"
[ "$(pg_checksum appdb)" = "$prod_sum" ] || problem "the second rehearsal changed the production database"

finish
