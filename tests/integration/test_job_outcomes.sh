#!/usr/bin/env bash
# What a job run records and what `status` makes of it, with files jobs
# only (no PostgreSQL): a run with findings (exit 3) is not a success;
# verify covers every repository the job wrote to and names the one that
# failed; the job's age is measured from its backup's snapshot time, not
# from the end of the run; retention buckets in the job's timezone.
. "$(dirname "$0")/lib.sh"

export OPSBACKUP_STATE_DIR="$T/state"
# Retention and status must not depend on the machine's zone.
export TZ=UTC
mkdir -p "$T/data" "$T/cfg"
printf 'KEY=value\n' >"$T/cfg/app.env"
head -c 300000 /dev/urandom >"$T/data/a.bin"
printf 'hello\n' >"$T/data/b.txt"
for r in local offsite; do "$OPSBACKUP" -r "$T/$r" init --kdf-n 1024 >/dev/null; done

CFG="$T/opsbackup.conf"
write_config() { # write_config SIZE_LIMIT
    cat >"$CFG" <<EOF
[repo.local]
url = $T/local

[repo.offsite]
url = $T/offsite

[job.multi]
kind = files
paths = $T/data
repos = local, offsite
verify = true
rpo = 1h

[job.cfgmulti]
kind = config
paths = $T/cfg
repos = local, offsite
verify = true

[job.tz]
kind = files
paths = $T/data
repos = local
keep-daily = 3
timezone = Pacific/Kiritimati

[notify]
size-limit = $1
EOF
    chmod 600 "$CFG"
}
write_config 100GB
job() { "$OPSBACKUP" -c "$CFG" "$@"; }
state() { json_get "$OPSBACKUP_STATE_DIR/job-$1.json" "$2"; }

# The password through a command that is slow only for verify steps: a run
# whose verify takes 3 s ends 3 s after its snapshot was taken.
cat >"$T/pwcmd" <<EOF
#!/bin/sh
p=\$PPID
for i in 1 2 3 4; do
    if tr '\\0' ' ' <"/proc/\$p/cmdline" 2>/dev/null | grep -q ' verify '; then sleep 3; break; fi
    p=\$(awk '{print \$4}' "/proc/\$p/stat" 2>/dev/null) || break
    [ -n "\$p" ] && [ "\$p" -gt 1 ] || break
done
cat "$OPSBACKUP_PASSWORD_FILE"
EOF
chmod 755 "$T/pwcmd"

info "a good run verifies on every repository"
OPSBACKUP_PASSWORD_COMMAND="$T/pwcmd" OPSBACKUP_PASSWORD_FILE= expect_code 0 job --json run multi
cp "$T/out" "$T/run1.json"
steps=$(json_get "$T/run1.json" '" ".join(s["step"].replace(" ", "_") + "=" + ("ok" if s.get("ok") else "failed") for s in j["steps"])')
[ "$steps" = "backup=ok copy_to_offsite=ok verify_on_local=ok verify_on_offsite=ok" ] \
    || problem "steps of a good run: $steps"
[ "$(json_get "$T/run1.json" '[s.get("repository") for s in j["verify"]["repositories"]]')" = "['local', 'offsite']" ] \
    || problem "the verify record does not list both repositories"

info "status measures the age from the snapshot time, not from the end of the run"
snap_time=$("$OPSBACKUP" -r "$T/local" --json snapshots --set multi | python3 -c '
import json, sys, datetime
s = json.load(sys.stdin)[-1]["time"]
print(int(datetime.datetime.fromisoformat(s.replace("Z", "+00:00")[:19] + "+00:00").timestamp()))')
before=$(date +%s)
expect_code 0 job --json status
report_problems "age" < <(python3 - "$T/out" "$snap_time" "$before" "$T/run1.json" <<'EOF'
import json, sys, datetime
doc = json.load(open(sys.argv[1]))
snap, before = int(sys.argv[2]), int(sys.argv[3])
run = json.load(open(sys.argv[4]))
def ts(s): return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
if ts(run["finished"]) - snap < 3:
    print(f"the run did not take 3 s after its snapshot (finished {run['finished']}): test setup")
jd = {x["name"]: x for x in doc["jobs"]}["multi"]
age = jd.get("age_seconds")
if age is None or age < before - snap:
    print(f"age_seconds {age} is less than the {before - snap} s since the snapshot was taken")
if int(ts(jd.get("last_success", {}).get("snapshot_time", "1970-01-01T00:00:00Z"))) != snap:
    print(f"last_success.snapshot_time {jd.get('last_success', {}).get('snapshot_time')} is not the snapshot's time")
EOF
)

info "a copy that does not read back fails the verify on its repository"
# Run 2 stores nothing new in offsite (same data): its snapshot there
# refers to the packs written by run 1, which are now damaged.
for f in $(find "$T/offsite/data" -type f); do
    size=$(stat -c %s "$f")
    printf 'XXXXXXXXXXXXXXXX' | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc status=none
done
set +e
job --json run multi >"$T/out" 2>"$T/err"
rc=$?
set -e
[ "$rc" -ne 0 ] || problem "a run whose backup does not read back from offsite exited 0"
cp "$T/out" "$T/run2.json"
[ "$(json_get "$T/run2.json" 'j.get("failed_step")')" = "verify on offsite" ] \
    || problem "failed_step is '$(json_get "$T/run2.json" 'j.get("failed_step")')', want 'verify on offsite'"
[ "$(json_get "$T/run2.json" '[s["step"] for s in j["steps"] if s["step"].startswith("verify") and s.get("ok")]')" = "['verify on local']" ] \
    || problem "verify on local should pass while offsite fails"
[ "$(json_get "$T/run2.json" 'j["verify"].get("failed_repository")')" = offsite ] \
    || problem "the verify record does not name offsite as the failed repository"
[ "$(state multi 'j["last_success"]["started"] == j["last_run"]["started"]')" = False ] \
    || problem "the failed run became last_success"

info "a run with findings (exit 3) is not a success"
rm -rf "$T/offsite"
"$OPSBACKUP" -r "$T/offsite" init --kdf-n 1024 >/dev/null
expect_code 0 job run multi
good=$(state multi 'j["last_success"]["started"]')
sleep 1
write_config 1KB
expect_code 3 job --json run multi
[ "$(json_get "$T/out" 'j["exit_code"]')" = 3 ] || problem "the over-size run did not exit 3"
[ "$(state multi 'j["last_success"]["started"]')" = "$good" ] \
    || problem "a run that exited 3 was recorded as last_success"
write_config 100GB
expect_code 3 job --json status
report_problems "status after exit 3" < <(python3 - "$T/out" "$good" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
jd = {x["name"]: x for x in doc["jobs"]}["multi"]
if jd.get("last_success", {}).get("started") != sys.argv[2]:
    print(f"status shows last_success {jd.get('last_success', {}).get('started')}, want {sys.argv[2]}")
if not any("multi" in p and "failed" in p for p in doc["problems"]):
    print(f"status does not report the failed run: {doc['problems']}")
EOF
)

info "retention buckets days in the job's timezone"
# Pacific/Kiritimati is UTC+14.  Days in UTC: Jan 9 | Jan 10 (05:00, 12:00);
# in Kiritimati: Jan 10 02:00 | Jan 10 19:00 | Jan 11 02:00.
for t in '2026-01-09 12:00:00' '2026-01-10 05:00:00' '2026-01-10 12:00:00'; do
    "$OPSBACKUP" -r "$T/local" backup files --set tz --time "$t" "$T/data" >/dev/null
done
expect_code 0 job --json run tz
"$OPSBACKUP" -r "$T/local" --json snapshots --set tz >"$T/snaps.json"
kept=$(json_get "$T/snaps.json" '" ".join(sorted(s["time"][:13] for s in j if s["time"] < "2026-02"))')
# keep-daily = 3 with the run's own snapshot as day 1: Kiritimati keeps
# Jan 11 02:00 and Jan 10 19:00 (UTC 12:00 and 05:00); UTC would keep
# Jan 10 12:00 and Jan 9 12:00.
[ "$kept" = "2026-01-10T05 2026-01-10T12" ] \
    || problem "kept '$kept', want the snapshots of 2026-01-10 05:00 and 12:00 UTC (two Kiritimati days)"

info "a config snapshot already in a repository is verified there on every run"
# An unchanged config snapshot is "already there" in offsite on every run
# after the first; its copy must still be verified, under its ID there.
expect_code 0 job --json run cfgmulti
expect_code 0 job --json run cfgmulti
cp "$T/out" "$T/cfg2.json"
[ "$(json_get "$T/cfg2.json" '[s["step"] for s in j["steps"] if s["step"].startswith("verify") and s.get("ok")]')" = "['verify on local', 'verify on offsite']" ] \
    || problem "the unchanged config snapshot was not verified on both repositories: $(json_get "$T/cfg2.json" 'j["steps"]')"
for f in $(find "$T/offsite/data" -type f); do
    size=$(stat -c %s "$f")
    printf 'XXXXXXXXXXXXXXXX' | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc status=none
done
set +e
job --json run cfgmulti >"$T/out" 2>"$T/err"
rc=$?
set -e
[ "$rc" -ne 0 ] || problem "a run whose config snapshot does not read back from offsite exited 0"
[ "$(json_get "$T/out" 'j.get("failed_step")')" = "verify on offsite" ] \
    || problem "failed_step is '$(json_get "$T/out" 'j.get("failed_step")')', want 'verify on offsite'"

info "an incomplete backup is verified where it was saved, and retention is skipped"
# One file fails with EIO (faultfs): the snapshot is saved without it,
# marked incomplete, and copied.  That snapshot is what a restore would
# take, so it is verified on both repositories; retention must not make
# room for it, and every reason shown must be the true one.
${CC:-cc} -shared -fPIC -o "$T/faultfs.so" "$TOOLS/faultfs.c" -ldl || fail "cannot build faultfs.so"
mkdir -p "$T/eio"
head -c 2000000 /dev/urandom >"$T/eio/bad.bin"
printf 'fine\n' >"$T/eio/good.txt"
# Repositories of their own: offsite was damaged above.
for r in eio-local eio-offsite; do "$OPSBACKUP" -r "$T/$r" init --kdf-n 1024 >/dev/null; done
cat >"$T/eio.conf" <<EOF
[repo.local]
url = $T/eio-local

[repo.offsite]
url = $T/eio-offsite

[job.eio]
kind = files
paths = $T/eio
repos = local, offsite
verify = true
keep-last = 1
EOF
chmod 600 "$T/eio.conf"
expect_code 0 "$OPSBACKUP" -c "$T/eio.conf" run eio
printf 'changed\n' >"$T/eio/good.txt"
ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" LD_PRELOAD="$T/faultfs.so" \
    FAULTFS_EIO="$T/eio/bad.bin" FAULTFS_EIO_AT=1048576 \
    expect_code 1 "$OPSBACKUP" -c "$T/eio.conf" --json run eio
cp "$T/out" "$T/eio.json"
steps=$(json_get "$T/eio.json" '" ".join(s["step"].replace(" ", "_") + "=" + ("skipped" if s.get("skipped") else "ok" if s.get("ok") else "failed") for s in j["steps"])')
[ "$steps" = "backup=failed copy_to_offsite=ok verify_on_local=ok verify_on_offsite=ok retention=skipped" ] \
    || problem "steps of an incomplete run: $steps"
[ "$(json_get "$T/eio.json" 'j.get("failed_step")')" = backup ] \
    || problem "failed_step of an incomplete run is '$(json_get "$T/eio.json" 'j.get("failed_step")')'"
json_get "$T/eio.json" 'j.get("error")' | grep -q 'incomplete' \
    || problem "the run's error does not say the backup is incomplete: $(json_get "$T/eio.json" 'j.get("error")')"
json_get "$T/eio.json" '[(s.get("reason"), "ok" in s, "error" in s) for s in j["steps"] if s.get("skipped")]' | grep -q "incomplete.*', False, False)" \
    || problem "retention's skip reason does not say the backup is incomplete: $(json_get "$T/eio.json" 'j["steps"]')"
if grep -q "did not get this run's backup" "$T/eio.json"; then
    problem "a step claims a repository did not get the backup: $(json_get "$T/eio.json" 'j["steps"]')"
fi
[ "$(json_get "$T/eio.json" 'j["verify"] and (j["verify"]["ok"], j["verify"]["snapshot"] == j["snapshot"])')" = "(True, True)" ] \
    || problem "the verify record is not a passed verify of the incomplete snapshot: $(json_get "$T/eio.json" 'j["verify"]')"
for r in eio-local eio-offsite; do
    "$OPSBACKUP" -r "$T/$r" --json snapshots --set eio >"$T/snaps.json"
    [ "$(json_get "$T/snaps.json" 'len(j), sorted(s["stats"].get("errors", 0) for s in j)')" = "2 [0, 1]" ] \
        || problem "$r should hold the complete snapshot and the incomplete one: $(cat "$T/snaps.json")"
done
[ "$(state eio 'j["last_verify"]["snapshot"] == j["last_run"]["snapshot"]' 2>/dev/null)" = True ] \
    || problem "the job state's last verify is not the incomplete run's"
# Without retention (keep = forever) there is nothing to skip, and no
# message may say retention was skipped.
sed -i 's/^keep-last = 1$/keep = forever/' "$T/eio.conf"
printf 'changed again\n' >"$T/eio/good.txt"
ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" LD_PRELOAD="$T/faultfs.so" \
    FAULTFS_EIO="$T/eio/bad.bin" FAULTFS_EIO_AT=1048576 \
    expect_code 1 "$OPSBACKUP" -c "$T/eio.conf" --json run eio
if grep -qi "retention" "$T/out"; then
    problem "a run of a job without retention mentions retention: $(json_get "$T/out" 'j["steps"]')"
fi

finish
