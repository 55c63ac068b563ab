#!/usr/bin/env bash
# dr run (issue #9) for a cluster protected by physical backups and WAL
# archiving, as the seed guide's production setup is: the data directory,
# the attachments and the config are destroyed; `dr run --yes` (run as
# root, like a runbook) restores the base backup, starts PostgreSQL as its
# owner, which replays the archived WAL, and checks the result.
#   - every row committed up to the last archived WAL segment is back, and
#     nothing after it (rows in the unarchived segment are the data lost);
#   - the attachments and the config are back byte for byte, the health
#     endpoint (200 only with every row of the archive) passes;
#   - the report's RPO is measured from the last transaction the server
#     replayed (pg_last_xact_replay_timestamp), not from the backup's end;
#     its RTO is the run's wall time;
#   - a root restore whose restore_command the postgres user could not run
#     (a root-only config) is refused before anything is written.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy no_proxy NO_PROXY
export OPSBACKUP_STATE_DIR="$T/state"
chmod 0711 "$T"

info "set-up: a repository the archiver (postgres) writes to, with its own key slot"
LOCAL="$T/local"
"$OPSBACKUP" -r "$LOCAL" init --kdf-n 1024 >/dev/null
ARCH_PW="$T/archive.password"
(umask 077 && head -c 32 /dev/urandom | base64 >"$ARCH_PW")
"$OPSBACKUP" -r "$LOCAL" key add --kdf-n 1024 --new-password-file "$ARCH_PW" >/dev/null
chown -R postgres: "$LOCAL" "$ARCH_PW"
ARCH_CONF="$T/archive.conf"
cat >"$ARCH_CONF" <<EOF
[repo.local]
url = $LOCAL
password-file = $ARCH_PW
EOF
chown postgres: "$ARCH_CONF"
chmod 0600 "$ARCH_CONF"
PG_EXTRA_CONF="archive_mode = on
archive_command = '$OPSBACKUP -c $ARCH_CONF archive-push %p'
wal_level = replica"
pg_start
make_app_db appdb 2000

# The application's files.
APP="$T/app"
mkdir -p "$APP/storage/screenshots 2026" "$APP/keys"
printf 'evidence\n' >"$APP/storage/screenshots 2026/shot 1.png"
head -c 200000 /dev/urandom >"$APP/storage/big.bin"
printf 'DB_PASSWORD=s3cret\n' >"$APP/.env"
chmod 0600 "$APP/.env"
head -c 32 /dev/urandom >"$APP/keys/app.key"
chmod 0400 "$APP/keys/app.key"

CFG="$T/opsbackup.conf"
# write_config [EXTRA LINE FOR job.pg]
write_config() {
    cat >"$CFG" <<EOF
[repo.local]
url = $LOCAL
password-file = $OPSBACKUP_PASSWORD_FILE

[job.pg]
kind = db-physical
dbname = host=$PGHOST port=$PGPORT user=$PGUSER dbname=appdb
pgdata = $PGDATA_DIR
$1

[job.attachments]
kind = files
paths = $APP/storage

[job.config]
kind = config
paths = $APP/.env, $APP/keys

[dr]
rto = 1h
rpo = 1h
jobs = pg, attachments, config
health-url = $HEALTH
health-retries = 30
health-interval = 1s
health-timeout = 5s
check-sql = SELECT count(*) FROM wal_marks
EOF
    chmod 600 "$CFG"
}
obc() { "$OPSBACKUP" -c "$CFG" "$@"; }
GET_CMD="archive-get-command = $OPSBACKUP -c $ARCH_CONF archive-get %f \"%p\""

info "back up every job (physical base backup as root; WAL pushed by the archiver as postgres)"
HEALTH=http://127.0.0.1:1/health # set below; the backups do not use it
write_config "$GET_CMD
full-every = 1s"
expect_code 0 obc config check
for j in pg attachments config; do
    obc run "$j" >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err"; fail "run $j failed"; }
done
# full-every (session 20): run passes it to the backup, so the job's next
# run, two seconds on, reads every file again (a full backup with a parent).
sleep 2
obc run pg >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err"; fail "second run of pg failed"; }
expect_code 0 obc --json snapshots --set pg
[ "$(json_get "$T/out" "'%d %s %s' % (len(j), j[-1]['extra']['full'], 'parent' in j[-1])")" = "2 True True" ] ||
    problem "the second run of job pg with full-every = 1s is not a full backup: $(json_get "$T/out" "[(s['extra'].get('full'), 'parent' in s) for s in j]")"
# status and metrics show the job's last full backup: the second run's.
LASTFULL=$(json_get "$T/out" "j[-1]['id']")
obc --json status >"$T/status.json" 2>"$T/err" || true
[ "$(json_get "$T/status.json" "[x for x in j['jobs'] if x['name'] == 'pg'][0].get('last_full', {}).get('snapshot')")" = "$LASTFULL" ] ||
    problem "status --json does not give the pg job's last full backup $LASTFULL: $(cat "$T/status.json")"
obc status >"$T/status.txt" 2>"$T/err" || true
assert_grep "last full backup .*(snapshot ${LASTFULL:0:8})" "$T/status.txt"
obc metrics >"$T/metrics.txt" 2>"$T/err" || fail "metrics failed: $(cat "$T/err")"
assert_grep 'opsbackup_job_last_full_timestamp_seconds{job="pg"}' "$T/metrics.txt"
cp -a "$APP" "$T/app.orig"

info "work after the backup: three batches, then the segment is switched and archived"
pg_sql -d appdb "CREATE TABLE wal_marks (n int, batch text, at timestamptz DEFAULT clock_timestamp())" >/dev/null
for b in 1 2 3; do
    pg_sql -d appdb "INSERT INTO wal_marks (n, batch) SELECT g, 'archived-$b' FROM generate_series(1, 100) g" >/dev/null
    sleep 1.1
    # A point in time strictly between batch 1 and batch 2 (whole seconds:
    # at least 0.1 s after batch 1 committed, 1.1 s before batch 2).
    if [ $b = 1 ]; then T1=$(date -u '+%Y-%m-%d %H:%M:%S+00'); sleep 1.1; fi
done
last_commit=$(pg_sql -d appdb "SELECT floor(extract(epoch FROM max(at)))::bigint FROM wal_marks")
seg=$(pg_sql "SELECT pg_walfile_name(pg_switch_wal())")
switched=$(date +%s)
for _ in $(seq 1 300); do
    done_seg=$(pg_sql "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
    [[ "$done_seg" < "$seg" ]] || break
    sleep 0.2
done
[[ "$done_seg" < "$seg" ]] && fail "segment $seg was not archived (last: $done_seg)"
# What must come back: every table's rows as of now (sequences aside: they
# are WAL-logged 32 values ahead, so any crash recovery may move them on).
data_sum() { pg_fingerprint "$1" | grep -v '^sequence ' | sha256sum | cut -d' ' -f1; }
want_sum=$(data_sum appdb)
pg_fingerprint appdb | grep -v '^sequence ' >"$T/want.fp"
# Committed but never archived: lost in the disaster (the RPO's data loss).
pg_sql -d appdb "INSERT INTO wal_marks (n, batch) SELECT g, 'lost' FROM generate_series(1, 50) g" >/dev/null

# Health endpoint: 200 only with every archived row and the key file back.
health_app_start --db appdb --table wal_marks --min-rows 300 --require-file "$APP/keys/app.key"

info "a root restore whose restore_command postgres cannot run is refused, nothing written"
write_config ""
expect_code 2 obc restore db --physical latest --set pg --pgdata "$T/scratch" --start
assert_grep "as postgres, who cannot read $CFG" "$T/err"
assert_grep "archive-get-command" "$T/err"
[ ! -e "$T/scratch" ] || problem "the refused restore created $T/scratch"
# dr plan sees it coming: a problem, exit 3.
expect_code 3 obc dr plan
assert_grep "job pg: the restored server would run restore_command as postgres, who cannot read $CFG" "$T/out"
write_config "$GET_CMD"

info "dr plan: the physical job restores with the archiver's restore_command and is checked"
expect_code 0 obc --json dr plan
report_problems "plan" < <(python3 - "$T/out" "$ARCH_CONF" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
steps = {s["step"]: s for s in j["steps"]}
want = ["restore pg", "check pg", "restore attachments", "restore config", "health check"]
if [s["step"] for s in j["steps"]] != want:
    print(f"steps {[s['step'] for s in j['steps']]} != {want}")
cmd = steps.get("restore pg", {}).get("command", "")
for w in ("--physical", "--start", "--archive-get-command", sys.argv[2]):
    if w not in cmd:
        print(f"restore pg command {cmd!r} lacks {w}")
pg = [x for x in j["jobs"] if x["job"] == "pg"][0]
if "stop_time" not in pg.get("data_time_basis", ""):
    print(f"plan data time basis {pg.get('data_time_basis')!r}")
EOF
)

info "the disaster: the server dies, its data directory, the attachments and the config are gone"
(cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w stop) >/dev/null
rm -rf "$PGDATA_DIR" "$APP"
code=$(curl -s -o /dev/null -w '%{http_code}' "$HEALTH" || true)
[ "$code" = 503 ] || fail "health endpoint answers $code without the data"

info "dr run --yes (as root, without the PG* environment)"
t0=$(date +%s.%N)
set +e
env -u PGHOST -u PGPORT -u PGUSER "$OPSBACKUP" -c "$CFG" --json dr run --yes \
    >"$T/run.json" 2>"$T/run.err"
rc=$?
set -e
t1=$(date +%s.%N)
[ $rc -eq 0 ] || { cat "$T/run.err"; head -c 4000 "$T/run.json"; fail "dr run exited $rc"; }

[ "$(stat -c %U "$PGDATA_DIR")" = postgres ] || problem "data directory owned by $(stat -c %U "$PGDATA_DIR")"
[ "$(pg_sql "SELECT pg_is_in_recovery()")" = f ] || problem "the restored server is still in recovery"
got=$(pg_sql -d appdb "SELECT batch || ':' || count(*) FROM wal_marks GROUP BY batch ORDER BY batch" | tr '\n' ' ')
[ "$got" = "archived-1:100 archived-2:100 archived-3:100 " ] \
    || problem "rows after recovery: '$got' (want the three archived batches, not the lost one)"
if [ "$(data_sum appdb)" != "$want_sum" ]; then
    pg_fingerprint appdb | grep -v '^sequence ' | diff "$T/want.fp" - | head -20
    problem "the restored database differs from the one at the last archived segment"
fi
treecmp "$T/app.orig/storage" "$APP/storage" >"$T/tc" 2>&1 || { cat "$T/tc"; problem "attachments differ"; }
treecmp "$T/app.orig/keys" "$APP/keys" >"$T/tc" 2>&1 || { cat "$T/tc"; problem "keys differ"; }
cmp -s "$T/app.orig/.env" "$APP/.env" || problem ".env differs"
curl -sf "$HEALTH" >/dev/null || problem "health endpoint not healthy after dr run"

report_problems "run report" < <(python3 - "$T/run.json" "$t0" "$t1" "$last_commit" "$switched" <<'EOF'
import json, os, sys, datetime
j = json.load(open(sys.argv[1]))
t0, t1 = float(sys.argv[2]), float(sys.argv[3])
last_commit, switched = int(sys.argv[4]), int(sys.argv[5])
def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
if j.get("ok") is not True:
    print(f"ok {j.get('ok')!r}: {j.get('error')}")
st = {s["step"]: s for s in j["steps"]}
for name, s in st.items():
    if s.get("status") != "ok":
        print(f"step {name} status {s.get('status')!r}: {s.get('error')}")
dbs = j["verification"].get("databases") or []
if len(dbs) != 1:
    print(f"database verification {dbs}")
    sys.exit(0)
d = dbs[0]
if d.get("in_recovery") is not False or d.get("database") != "appdb":
    print(f"restored server: in_recovery {d.get('in_recovery')!r} database {d.get('database')!r}")
if [c.get("result") for c in d.get("checks", [])] != [[["300"]]]:
    print(f"check-sql results {d.get('checks')}")
# How far recovery got: the last archived commit (autovacuum may have
# committed a little later, never after the switch).
r = d.get("replayed_until")
if not r or not (last_commit <= ts(r) <= switched):
    print(f"replayed_until {r!r}, want between the last insert ({last_commit}) and the switch ({switched})")
pg = [x for x in j["jobs"] if x["job"] == "pg"][0]
if pg.get("data_time") != r or "replayed" not in pg.get("data_time_basis", ""):
    print(f"job pg data_time {pg.get('data_time')!r} basis {pg.get('data_time_basis')!r}, want the replay time {r!r}")
a = j["achieved"]
started = ts(j["started"])
# Every job's data time: the oldest decides the RPO (the config snapshot is
# older than the replayed WAL here).
oldest = min(ts(x["data_time"]) for x in j["jobs"])
if abs(a["rpo_seconds"] - (started - oldest)) > 1:
    print(f"achieved RPO {a['rpo_seconds']} != start - oldest data time {started - oldest:.1f}")
if pg.get("data_loss_seconds") != int(started - ts(r)) and abs(pg.get("data_loss_seconds", -99) - (started - ts(r))) > 1:
    print(f"pg data_loss_seconds {pg.get('data_loss_seconds')} != start - replay time {started - ts(r):.1f}")
wall = t1 - t0
if not (wall - 8 <= a["rto_seconds"] <= wall):
    print(f"achieved RTO {a['rto_seconds']} vs measured wall time {wall:.2f}")
if a.get("rto_ok") is not True or a.get("rpo_ok") is not True:
    print(f"rto_ok {a.get('rto_ok')!r} rpo_ok {a.get('rpo_ok')!r}")
h = j["verification"].get("health") or {}
if h.get("ok") is not True or h.get("status") != 200:
    print(f"health {h}")
md = j.get("report_markdown")
if not md or not os.path.isfile(md):
    print(f"no markdown report {md!r}")
else:
    text = open(md).read()
    if "replayed the archived WAL up to " + r not in text:
        print("the markdown report does not say how far recovery replayed")
EOF
)

info "rehearsal beside production: the physical job restored into DIR/pgdata-pg and checked on --pg-port"
PORT2=$((PGPORT + 1))
REH="$T/rehearsal"
stop_rehearsal() {
    [ -f "$REH/pgdata-pg/postmaster.pid" ] || return 0
    (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$REH/pgdata-pg" -m immediate -w stop) >/dev/null 2>&1 || true
}
on_exit stop_rehearsal
expect_code 0 env -u PGHOST -u PGPORT -u PGUSER "$OPSBACKUP" -c "$CFG" --json dr run --yes \
    --rehearsal --target "$REH" --pg-port "$PORT2"
report_problems "rehearsal" < <(python3 - "$T/out" <<'EOF2'
import json, sys
j = json.load(open(sys.argv[1]))
st = {s["step"]: s for s in j["steps"]}
if st.get("check pg", {}).get("status") != "ok":
    print(f"check pg {st.get('check pg')}")
if "--archive-mode off" not in st.get("restore pg", {}).get("command", ""):
    print(f"rehearsal restore must not archive: {st.get('restore pg', {}).get('command')!r}")
d = (j["verification"].get("databases") or [{}])[0]
if d.get("in_recovery") is not False or not d.get("replayed_until"):
    print(f"rehearsal server check {d}")
if [c.get("result") for c in d.get("checks", [])] != [[["300"]]]:
    print(f"rehearsal check-sql {d.get('checks')}")
EOF2
)
got=$("$PGBIN/psql" -XAtq -p "$PORT2" -d appdb -c "SELECT count(*) FROM wal_marks")
[ "$got" = 300 ] || problem "rehearsal server has $got rows in wal_marks, want 300"
[ "$(pg_sql -d appdb "SELECT count(*) FROM wal_marks")" = 300 ] || problem "production changed by the rehearsal"
stop_rehearsal

info "rehearsal to a point in time: --target-time between batch 1 and batch 2"
rm -rf "$REH"
expect_code 0 env -u PGHOST -u PGPORT -u PGUSER "$OPSBACKUP" -c "$CFG" --json dr run --yes \
    --rehearsal --target "$REH" --pg-port "$PORT2" --target-time "$T1"
got=$("$PGBIN/psql" -XAtq -p "$PORT2" -d appdb -c "SELECT batch || ':' || count(*) FROM wal_marks GROUP BY batch ORDER BY batch")
[ "$got" = "archived-1:100" ] || problem "recovery to $T1 gave '$got', want only batch 1"
report_problems "rehearsal to a time" < <(python3 - "$T/out" "$T1" <<'EOF2'
import json, sys
j = json.load(open(sys.argv[1]))
st = {s["step"]: s for s in j["steps"]}
if "--target-time" not in st.get("restore pg", {}).get("command", ""):
    print(f"restore pg command {st.get('restore pg', {}).get('command')!r}")
pg = [x for x in j["jobs"] if x["job"] == "pg"][0]
want = sys.argv[2].replace(" ", "T").replace("+00", "Z")
if pg.get("data_time") != want or "target time" not in pg.get("data_time_basis", ""):
    print(f"pg data_time {pg.get('data_time')!r} basis {pg.get('data_time_basis')!r}, want the target {want}")
if j["achieved"].get("rpo_reference_time") != want:
    print(f"RPO reference {j['achieved'].get('rpo_reference_time')!r}, want the target time")
EOF2
)
stop_rehearsal

finish
