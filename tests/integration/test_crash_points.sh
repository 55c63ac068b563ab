#!/usr/bin/env bash
# Crash testing (issue #11): opsbackup is killed with SIGKILL at every
# durable storage mutation (before it, and after it) of backup files,
# backup db (logical and physical), archive-push, forget, prune and copy,
# on local repositories and on S3 (fewer steps there by default).  The kill points come from
# the storage layer's test hook (OPSBACKUP_FAULT_KILL_AT, src/storage/
# storage.h); tests/tools/crashpoints.py drives each operation and, after
# every kill, requires `check --read-data` to pass, every committed snapshot
# to restore exactly, and the re-run to succeed (docs/RELIABILITY.md,
# "Crash testing").
#
# Default: at least 200 kill points in a few minutes.  OB_CRASH_POINTS=all
# runs more steps of every scenario, and every scenario on S3 as well.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"

long=0
[ "${OB_CRASH_POINTS:-}" = all ] && long=1
steps() { if [ $long = 1 ]; then echo "$2"; else echo "$1"; fi; }

# Local repositories and trees live on a private tmpfs when this may mount
# one: a SIGKILL leaves the page cache intact, so fsync does not take part in
# these kill points, and skipping its cost buys more kill points per minute.
# (Power loss is another matter: docs/RELIABILITY.md.)
F="$T/fast"
mkdir -p "$F"
if mount -t tmpfs -o size=1g,mode=0711 tmpfs "$F" 2>/dev/null; then
    umount_fast() { umount -l "$F" 2>/dev/null || true; }
    on_exit umount_fast
    echo "scenarios on a private tmpfs ($F)"
else
    echo "cannot mount a tmpfs here: scenarios run on $T's file system (slower)"
fi
STATS="$T/stats.jsonl"
cp_run() { # SCENARIO LABEL ARGS...: one crashpoints.py scenario, its log in $T/LABEL.log
    local sc=$1 label=$2
    shift 2
    env "${CP_ENV[@]}" python3 -u "$TOOLS/crashpoints.py" "$sc" --work "$F/w.$label" --label "$label" --stats "$STATS" \
        "$@" >"$T/$label.log" 2>&1
}
PIDS=()
LABELS=()
CP_ENV=()
spawn() { cp_run "$@" & PIDS+=($!); LABELS+=("$2"); }
reap() {
    local i rc
    for i in "${!PIDS[@]}"; do
        rc=0
        wait "${PIDS[$i]}" || rc=$?
        grep -E "kill points|PROBLEM" "$T/${LABELS[$i]}.log" || true
        [ $rc = 0 ] || { tail -30 "$T/${LABELS[$i]}.log"; problem "${LABELS[$i]}: exit $rc"; }
    done
    PIDS=()
    LABELS=()
}

info "set-up: the S3 test server and PostgreSQL (archive_mode on)"
# S3 first: the server's archiver inherits the AWS_* variables from here.
S3=0
if s3_available; then
    on_exit s3_stop
    s3_start "$T/s3"
    s3_env
    S3=1
elif [ "${OB_REQUIRE_S3:-0}" = 1 ]; then
    fail "OB_REQUIRE_S3=1 but the S3 test server is not installed"
else
    echo "SKIPPED PART: the S3 scenarios (the S3 test server is not installed)"
fi
# Physical backups and the archiver run as postgres, as on a server; the
# repository and the password file are postgres'.
PGPW="$T/pgpw"
install -o postgres -m 0600 "$OPSBACKUP_PASSWORD_FILE" "$PGPW"
chmod 0711 "$T"
PHYS="$T/repo-phys"
install -d -o postgres -m 0700 "$PHYS"
install -d -o postgres -m 0700 "$F/w.db-physical"
runuser -u postgres -- "$OPSBACKUP" -r "$PHYS" --password-file "$PGPW" init --kdf-n 1024 >/dev/null
# A physical backup waits for its WAL in the repository it writes to, so the
# archiver pushes every segment to both physical repositories (one
# archive-push, two -r: a segment counts as archived once both have it).
ARCHIVE_REPOS="-r $PHYS"
if [ $S3 = 1 ]; then
    PHYS_S3=$(s3_url phys)
    runuser -u postgres -- "$OPSBACKUP" -r "$PHYS_S3" --password-file "$PGPW" init --kdf-n 1024 >/dev/null
    ARCHIVE_REPOS="$ARCHIVE_REPOS -r \"$PHYS_S3\""  # quoted: the URL has a '?'
fi
PG_EXTRA_CONF="archive_mode = on
archive_command = '$OPSBACKUP $ARCHIVE_REPOS --password-file $PGPW archive-push %p'
wal_level = replica
max_wal_senders = 2"
pg_start
make_app_db app 2000
make_app_db app_s3 500   # its own database: the S3 db scenario changes it between steps
# crashpoints.py compares restored databases with pg_checksum (pg_lib.sh)
export T PGBIN
export -f pg_checksum pg_fingerprint fail

# Several scenarios at a time: most of a kill point's time is process
# start-up and waiting (PostgreSQL, the S3 server), not CPU.
# The two physical scenarios run in different phases: both change the same
# cluster between their steps.
info "phase 1: backup files, forget + prune, backup db (logical); S3: backup files, backup db (logical and physical)"
spawn files local-files --repo "$F/repo-files" --steps "$(steps 4 10)"
spawn prune local-prune --repo "$F/repo-prune" --steps "$(steps 2 5)"
spawn db-logical db-logical --repo "$F/repo-db" --steps "$(steps 2 4)" --dbname "dbname=app"
if [ $S3 = 1 ]; then
    spawn files s3-files --repo "$(s3_url files)" --steps "$(steps 2 6)"
    spawn db-logical s3-db-logical --repo "$(s3_url db)" --steps "$(steps 1 3)" --dbname "dbname=app_s3"
    install -d -o postgres -m 0700 "$F/w.s3-db-physical"
    CP_ENV=(OPSBACKUP_PASSWORD_FILE="$PGPW")
    # Every other mutation by default: each kill point here is a base
    # backup, a WAL switch through the archiver and a restore from S3 (the
    # longest scenario of the phase, most of all under ASan).
    spawn db-physical s3-db-physical --repo "$PHYS_S3" --existing \
        --steps "$(steps 1 2)" --stride "$(steps 2 1)" --as-user postgres --pgdata "$PGDATA_DIR"
    CP_ENV=()
fi
reap
info "phase 2: copy, archive-push, backup db (physical); S3: forget + prune, copy local -> S3, archive-push"
spawn copy local-copy --repo "$F/repo-copy-src" --repo2 "$F/repo-copy-dst" --steps "$(steps 3 5)"
spawn archive local-archive --repo "$F/repo-wal" --steps "$(steps 6 12)"
CP_ENV=(OPSBACKUP_PASSWORD_FILE="$PGPW")
spawn db-physical db-physical --repo "$PHYS" --existing \
    --steps "$(steps 1 3)" --as-user postgres --pgdata "$PGDATA_DIR"
CP_ENV=()
if [ $S3 = 1 ]; then
    spawn prune s3-prune --repo "$(s3_url prune)" --steps "$(steps 2 4)"
    spawn copy s3-copy --repo "$F/repo-copy2-src" --repo2 "$(s3_url copy)" --steps "$(steps 1 3)"
    spawn archive s3-archive --repo "$(s3_url wal)" --steps "$(steps 2 8)"
fi
reap

info "figures"
python3 - "$STATS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
total = 0
for r in rows:
    for op, s in r["ops"].items():
        n = s["before"] + s["after"]
        total += n
        print("%-14s %-22s %4d kill points (%d before, %d after), %d completed runs"
              % (r["label"], op, n, s["before"], s["after"], s["completed"]))
print("total: %d kill points" % total)
open(sys.argv[1] + ".total", "w").write(str(total))
EOF
total=$(cat "$STATS.total")
min=200
[ "$total" -ge $min ] || problem "only $total kill points (at least $min expected)"

finish
