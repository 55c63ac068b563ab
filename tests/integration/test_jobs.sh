#!/usr/bin/env bash
# run JOB from a config against a real PostgreSQL and two local
# repositories: the whole job (backup + copy + forget --prune + verify +
# size check), then a failing step in each position (backup, copy,
# forget, verify, size check) with the summary and exit code each must
# give; overlapping runs; status (stale job, never-run job, over-size
# repository) and metrics.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"

pg_start
make_app_db appdb
docs=$(pg_sql -d appdb "SELECT count(*) FROM documents")
export OPSBACKUP_STATE_DIR="$T/state"
mkdir -p "$T/app/storage/screenshots 2026" "$T/app/config"
printf 'evidence\n' >"$T/app/storage/screenshots 2026/shot 1.png"
head -c 200000 /dev/urandom >"$T/app/storage/big.bin"
printf 'DB_PASSWORD=s3cret\n' >"$T/app/.env"
printf 'port = 8080\n' >"$T/app/config/app.ini"
for r in local offsite; do "$OPSBACKUP" -r "$T/$r" init --kdf-n 1024 >/dev/null; done

CFG="$T/opsbackup.conf"
write_config() { # write_config OFFSITE_URL SIZE_LIMIT VERIFY_SQL
    cat >"$CFG" <<EOF
[repo.local]
url = $T/local
password-file = $OPSBACKUP_PASSWORD_FILE

[repo.offsite]
url = $1
password-file = $OPSBACKUP_PASSWORD_FILE

[job.db]
kind = db
dbname = dbname=appdb
schedule = 0 2 * * *
keep-last = 2
repos = local, offsite
verify-sql = $3

[job.attachments]
kind = files
paths = $T/app/storage
keep-within = 90d
repos = local

[job.config]
kind = config
paths = $T/app/.env, $T/app/config
keep = forever

[notify]
size-limit = $2
EOF
    chmod 600 "$CFG"
}
write_config "$T/offsite" 100GB 'SELECT COUNT(*) FROM documents'
job() { "$OPSBACKUP" -c "$CFG" "$@"; }
snap_count() { "$OPSBACKUP" -r "$T/$1" --json snapshots --set "$2" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

# check_run FILE EXPECTED_FAILED_STEP EXPECTED_EXIT STEPS...: the --json
# summary names the failed step (or none) and has exactly these steps, each
# "name=ok|failed|skipped".
check_run() {
    local file=$1 failed=$2 code=$3; shift 3
    report_problems "run summary ($failed)" < <(python3 - "$file" "$failed" "$code" "$@" <<'EOF'

import json, sys
path, failed, code = sys.argv[1:4]
want = sys.argv[4:]
try:
    j = json.load(open(path))
except Exception as e:
    print(f"not JSON: {e}: {open(path).read()[:300]!r}"); sys.exit(0)
if str(j.get("exit_code")) != code:
    print(f"exit_code {j.get('exit_code')} != {code}")
if (j.get("failed_step") or "") != failed:
    print(f"failed_step {j.get('failed_step')!r} != {failed!r}")
if j.get("ok") != (code == "0"):
    print(f"ok {j.get('ok')!r} with exit code {code}")
got = []
for s in j.get("steps", []):
    st = "skipped" if s.get("skipped") else ("ok" if s.get("ok") else "failed")
    got.append(f"{s.get('step')}={st}")
if got != want:
    print(f"steps {got} != {want}")
for k in ("job", "host", "started", "finished", "duration_seconds"):
    if k not in j:
        print(f"no {k}")
if failed and not j.get("error"):
    print("a failed run without an error message")
EOF
)
}

info "run db: backup, copy, verify on both, forget on both"
expect_code 0 job --json run db
cp "$T/out" "$T/run1.json"
check_run "$T/run1.json" "" 0 backup=ok "copy to offsite=ok" "verify on local=ok" \
    "verify on offsite=ok" "forget on local=ok" "forget on offsite=ok"
id=$(json_get "$T/run1.json" 'j["snapshot"]')
[ "$(json_get "$T/run1.json" '[x for x in j["steps"] if x["step"] == "verify on offsite"][0]["result"]["checks"][0]["result"][0][0]')" = "$docs" ] \
    || problem "verify-sql result is not the row count $docs"
for r in local offsite; do
    "$OPSBACKUP" -r "$T/$r" --json snapshots --set db >"$T/s.json"
    # A copy has an ID of its own and names the original in extra.copied_from.
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if any(x["id"]==sys.argv[2] or (x.get("extra") or {}).get("copied_from",{}).get("snapshot")==sys.argv[2] for x in s) else 1)' \
        "$T/s.json" "$id" || problem "snapshot $id is not in $r"
done
# The copy is a real, restorable database: restore it from offsite.
"$OPSBACKUP" -r "$T/offsite" restore db latest --set db --target-db restored >/dev/null 2>"$T/err" \
    || { cat "$T/err"; fail "restore from offsite failed"; }
[ "$(pg_checksum restored)" = "$(pg_checksum appdb)" ] || problem "restored database differs"

info "human summary; retention keeps 2"
job run db >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err"; fail "second run failed"; }
assert_grep "job db (db): ok" "$T/out"
assert_grep "forget on offsite" "$T/out"
job run db >/dev/null 2>&1 || fail "third run failed"
[ "$(snap_count local db)" = 2 ] || problem "local has $(snap_count local db) db snapshots, keep-last = 2"
[ "$(snap_count offsite db)" = 2 ] || problem "offsite has $(snap_count offsite db) db snapshots"

info "files and config jobs; config keeps forever and skips unchanged"
expect_code 0 job --json run attachments
check_run "$T/out" "" 0 backup=ok "forget on local=ok"
expect_code 0 job --json run config
check_run "$T/out" "" 0 backup=ok "copy to offsite=ok"
expect_code 0 job --json run config
[ "$(json_get "$T/out" 'j["steps"][0]["result"]["unchanged"]')" = True ] \
    || problem "an unchanged config made a new snapshot"
printf 'DB_PASSWORD=n3w\n' >"$T/app/.env"
expect_code 0 job run config
[ "$(snap_count local config)" = 2 ] || problem "config snapshots: $(snap_count local config), want 2"
[ "$(snap_count offsite config)" = 2 ] || problem "config not copied to offsite (repos default: all)"

info "failing step: backup (the database is gone) -> nothing forgotten"
before=$(snap_count local db)
pg_sql "ALTER DATABASE appdb RENAME TO appdb_away" >/dev/null
expect_code 1 job --json run db
check_run "$T/out" backup 1 backup=failed
grep -q 'appdb' "$T/out" || problem "the backup error does not name the database"
pg_sql "ALTER DATABASE appdb_away RENAME TO appdb" >/dev/null
[ "$(snap_count local db)" = "$before" ] || problem "snapshots changed after a failed backup"
expect_code 2 job run nosuchjob
assert_grep "no job 'nosuchjob'" "$T/err"

info "failing step: copy (offsite unreachable) -> offsite left alone"
write_config "$T/missing-offsite" 100GB 'SELECT COUNT(*) FROM documents'
expect_code 1 job --json run db
check_run "$T/out" "copy to offsite" 1 backup=ok "copy to offsite=failed" "verify on local=ok" \
    "verify on offsite=skipped" "forget on local=ok" "forget on offsite=skipped"
write_config "$T/offsite" 100GB 'SELECT COUNT(*) FROM documents'

info "failing step: forget (an unreadable snapshot makes prune refuse)"
bad="$T/offsite/snapshots/$(printf 'ab%.0s' $(seq 32))"
echo garbage >"$bad"
expect_code 1 job --json run db
check_run "$T/out" "forget on offsite" 1 backup=ok "copy to offsite=ok" "verify on local=ok" \
    "verify on offsite=ok" "forget on local=ok" "forget on offsite=failed"
grep -q 'cannot be read' "$T/out" || problem "forget's error is not in the summary"
rm -f "$bad"

info "failing step: verify (a check query fails) -> exit 3, and retention is skipped"
write_config "$T/offsite" 100GB 'SELECT COUNT(*) FROM no_such_table'
n_before=$(snap_count local db)
expect_code 3 job --json run db
check_run "$T/out" "verify on local" 3 backup=ok "copy to offsite=ok" "verify on local=failed" \
    "verify on offsite=failed" retention=skipped
[ "$(snap_count local db)" = $((n_before + 1)) ] \
    || problem "a run whose backup did not verify forgot older backups ($n_before -> $(snap_count local db))"
grep -q 'no_such_table.*does not exist' "$T/out" || problem "the verify error does not quote the failed check"

info "failing step: size check (over size-limit) -> exit 3"
write_config "$T/offsite" 10KB 'SELECT COUNT(*) FROM documents'
expect_code 3 job --json run attachments
check_run "$T/out" "size check" 3 backup=ok "forget on local=ok" "size check=failed"
grep -q 'over the size-limit' "$T/out" || problem "size check error does not say why"

info "status: over-size repository, failed last runs -> exit 3"
expect_code 3 job status
cat "$T/out"
assert_grep "PROBLEM: repository local" "$T/out"
assert_grep "over the size-limit" "$T/out"
expect_code 3 job --json status
report_problems "status --json" < <(python3 - "$T/out" <<'EOF'

import json, sys
j = json.load(open(sys.argv[1]))
if j.get("ok") is not False: print("ok is not false")
jobs = {x["name"]: x for x in j["jobs"]}
if set(jobs) != {"db", "attachments", "config"}: print(f"jobs {sorted(jobs)}")
db = jobs.get("db", {})
if not db.get("last_success"): print("db has no last_success")
if db.get("max_age_seconds") != 2 * 86400: print(f"db max_age {db.get('max_age_seconds')} != 2 days")
if db.get("stale") is not False: print("db is stale after a recent success")
if db.get("last_verify", {}).get("ok") is not False: print("db's last verify should be the failed one")
repos = {x["name"]: x for x in j["repositories"]}
if not repos.get("local", {}).get("over_limit"): print("local is not over its limit")
if not isinstance(repos.get("local", {}).get("bytes"), int): print("no size for local")
EOF
)

info "status: all well -> exit 0"
write_config "$T/offsite" 100GB 'SELECT COUNT(*) FROM documents'
for j in db attachments config; do job run "$j" >/dev/null 2>&1 || fail "run $j failed"; done
expect_code 0 job status
assert_grep "OK: 3 jobs, no problems" "$T/out"

info "status: a stale job (rpo passed) and a job that never ran"
cat >>"$CFG" <<EOF

[job.hourly]
kind = files
paths = $T/app/config
rpo = 2s
repos = local

[job.never]
kind = files
paths = $T/app/config
schedule = 0 * * * *
repos = local
EOF
job run hourly >/dev/null 2>&1 || fail "run hourly failed"
sleep 3
expect_code 3 job status
assert_grep "job hourly: last success .* ago, older than its limit" "$T/out"
assert_grep "job never: has never succeeded" "$T/out"

info "metrics"
expect_code 0 job metrics
cp "$T/out" "$T/metrics"
for want in 'opsbackup_job_last_run_success{job="db"} 1' 'opsbackup_job_stale{job="hourly"} 1' \
    'opsbackup_job_stale{job="db"} 0' 'opsbackup_repository_up{repository="offsite"} 1' \
    '# TYPE opsbackup_job_failures_total counter'; do
    grep -qF "$want" "$T/metrics" || problem "metrics lack: $want"
done
fails=$(sed -n 's/^opsbackup_job_failures_total{job="db"} //p' "$T/metrics")
[ "$fails" = 4 ] || problem "db failures_total is '$fails', want 4 (backup, copy, forget, verify)"
size=$(sed -n 's/^opsbackup_repository_size_bytes{repository="local"} //p' "$T/metrics")
real=$(find "$T/local" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
[ "$size" = "$real" ] || problem "local size $size != $real bytes on disk"

info "two runs of one job never overlap"
flock "$T/state/job-db.lock" sleep 3 &
bg_track $!
sleep 0.5
expect_code 1 job run db
assert_grep "already running" "$T/err"
wait

info "a notification that cannot be sent does not change the job's result"
sed -i '/^\[notify\]/,$d' "$CFG"
cat >>"$CFG" <<EOF
[notify]
on = always
webhook = http://127.0.0.1:1/hook
EOF
expect_code 0 job --json run attachments
assert_grep "webhook" "$T/err"
[ "$(json_get "$T/out" 'j["notifications"]["failed"]')" = 1 ] || problem "the failed notification is not in the summary"
[ "$(json_get "$T/out" 'j["ok"]')" = True ] || problem "a failed notification turned the run into a failure"

info "a config with a problem runs nothing"
echo "bogus-key = 1" >>"$CFG"
n=$(snap_count local db)
expect_code 2 job run db
assert_grep "unknown key 'bogus-key'" "$T/err"
[ "$(snap_count local db)" = "$n" ] || problem "a bad config still ran the job"

finish
