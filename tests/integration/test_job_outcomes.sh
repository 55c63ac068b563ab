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
mkdir -p "$T/data"
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

finish
