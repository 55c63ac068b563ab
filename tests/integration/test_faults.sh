#!/usr/bin/env bash
# Fault injection (issue #11): each fault gives a clear error and no
# corruption (docs/RELIABILITY.md, "Fault injection").
#   1. ENOSPC in the repository (a small tmpfs, else a loop-mounted ext4):
#      the backup fails naming the repository file and "No space left";
#      after space is freed the repository checks clean (data included),
#      the earlier snapshot restores and the next backup succeeds.
#   2. ENOSPC in the restore target: restore fails clearly and leaves no
#      half-written file under its final name.
#   3. A read-only repository (read-only bind mount): backup fails clearly;
#      snapshots, check and restore work.
#   4. Permission denied on source files (run as nobody): the backup warns
#      naming each unreadable entry, backs up the rest, saves the snapshot
#      marked incomplete and exits 1, as documented (files_backup.c).
#   5. S3 through tests/tools/faultproxy.py on 127.0.0.1: 500, 503 SlowDown,
#      slow answers, connection resets before and after the request took
#      effect.  Backups either succeed (retries) or fail with a clear
#      error; `check --read-data` straight against the server passes and
#      every completed snapshot restores.
# A sub-check that cannot run here (no mount permission) says
# "SKIPPED PART: ..." and the rest still runs.
. "$(dirname "$0")/lib.sh"

# (small_fs runs in $(...), a subshell: the mount points are fixed names)
umount_all() {
    local d
    for d in "$T/ro" "$T/tgt" "$T/small"; do
        if mountpoint -q "$d"; then umount -l "$d" 2>/dev/null || true; fi
    done
}
on_exit umount_all

# small_fs DIR SIZE_MB: a small file system on DIR: tmpfs, else a loop ext4
# image; prints which, returns 1 if neither can be mounted.
small_fs() {
    local dir=$1 mb=$2
    mkdir -p "$dir"
    if mount -t tmpfs -o "size=${mb}m" tmpfs "$dir" 2>"$T/mount.err"; then
        echo tmpfs; return 0
    fi
    local img="$T/$(basename "$dir").img"
    if truncate -s "${mb}M" "$img" && mkfs.ext4 -q -F "$img" >/dev/null 2>&1 \
        && mount -o loop "$img" "$dir" 2>>"$T/mount.err"; then
        echo ext4; return 0
    fi
    return 1
}
grow_fs() { # DIR KIND NEW_MB
    if [ "$2" = tmpfs ]; then
        mount -o "remount,size=${3}m" "$1"
    else
        local img="$T/$(basename "$1").img"
        truncate -s "${3}M" "$img" && resize2fs "$(findmnt -n -o SOURCE "$1")" >/dev/null 2>&1
    fi
}

rand_file() { python3 -c "import random,sys; sys.stdout.buffer.write(random.Random($2).randbytes($3))" >"$1"; }

mkdir -p "$T/src1" "$T/src2"
rand_file "$T/src1/a.bin" 1 $((2 * 1024 * 1024))
echo "small" >"$T/src1/small.txt"
for i in 1 2 3 4 5 6; do rand_file "$T/src2/big$i.bin" $((10 + i)) $((3 * 1024 * 1024)); done
FAULTS=0

# ------------------------------------------------------------ 1. ENOSPC repo
info "1. ENOSPC in the repository"
if kind=$(small_fs "$T/small" 8); then
    echo "repository on an 8 MiB $kind"
    R="$T/small/repo"
    "$OPSBACKUP" -r "$R" init --kdf-n 1024 >/dev/null
    run_rc "$OPSBACKUP" -r "$R" --json backup files "$T/src1"
    [ "$RC" = 0 ] || fail "the first (small) backup failed: $(cat "$T/err")"
    s1=$(json_get "$T/out" 'j["id"]')
    run_rc "$OPSBACKUP" -r "$R" backup files "$T/src2"
    FAULTS=$((FAULTS + 1))
    echo "exit $RC: $(cat "$T/err")"
    [ "$RC" = 1 ] || problem "ENOSPC: backup exited $RC, expected 1"
    grep -qi "no space left" "$T/err" || problem "ENOSPC: the error does not say 'No space left'"
    grep -Eq "object (data|index|snapshots|locks)/" "$T/err" || problem "ENOSPC: the error does not name the repository file"
    grep -q "$R" "$T/err" || problem "ENOSPC: the error does not name the repository"
    [ "$(ls "$R/snapshots" | wc -l)" = 1 ] || problem "ENOSPC: the failed backup left a snapshot"
    # Packs are written into temporary files as they fill (D51): the one
    # that hit ENOSPC, and every other open one, is removed on the way out.
    left=$(find "$R" -name '.tmp-*' | wc -l)
    [ "$left" = 0 ] || problem "ENOSPC: the failed backup left $left temporary files: $(find "$R" -name '.tmp-*' | head -3)"
    info "   with the file system still full: the repository reads fine"
    run_rc "$OPSBACKUP" -r "$R" check --read-data
    [ "$RC" = 0 ] || problem "ENOSPC: check --read-data on the full repository exited $RC: $(cat "$T/err")"
    info "   space freed: check, restore, next backup"
    grow_fs "$T/small" "$kind" 64 || fail "cannot grow the $kind"
    run_rc "$OPSBACKUP" -r "$R" check --read-data
    [ "$RC" = 0 ] || problem "ENOSPC: check --read-data after freeing space exited $RC: $(cat "$T/out" "$T/err")"
    "$OPSBACKUP" -r "$R" restore files "$s1" --target "$T/r1" >/dev/null || problem "ENOSPC: the earlier snapshot does not restore"
    diff -r "$T/src1" "$T/r1$T/src1" >/dev/null || problem "ENOSPC: the earlier snapshot restores different"
    run_rc "$OPSBACKUP" -r "$R" --json backup files "$T/src2"
    [ "$RC" = 0 ] || problem "ENOSPC: the backup after freeing space exited $RC: $(cat "$T/err")"
    if [ "$RC" = 0 ]; then
        s2=$(json_get "$T/out" 'j["id"]')
        "$OPSBACKUP" -r "$R" restore files "$s2" --target "$T/r2" >/dev/null || problem "ENOSPC: the new snapshot does not restore"
        diff -r "$T/src2" "$T/r2$T/src2" >/dev/null || problem "ENOSPC: the new snapshot restores different"
        rm -rf "$T/r2"
    fi
    run_rc "$OPSBACKUP" -r "$R" check --read-data
    [ "$RC" = 0 ] || problem "ENOSPC: check --read-data at the end exited $RC"
    REPO_OK="$R" S2=${s2:-}
else
    echo "SKIPPED PART: ENOSPC in the repository: cannot mount a tmpfs or a loop ext4 here: $(cat "$T/mount.err")"
    REPO_OK=""
fi

# ----------------------------------------------------- 2. ENOSPC restore target
info "2. ENOSPC in the restore target"
if [ -n "$REPO_OK" ] && [ -n "${S2:-}" ] && kind=$(small_fs "$T/tgt" 7); then
    echo "restore target on a 7 MiB $kind (the snapshot holds 18 MiB)"
    run_rc "$OPSBACKUP" -r "$REPO_OK" restore files "$S2" --target "$T/tgt/r"
    FAULTS=$((FAULTS + 1))
    echo "exit $RC: $(tail -3 "$T/err")"
    [ "$RC" = 1 ] || problem "ENOSPC restore: exited $RC, expected 1"
    grep -qi "no space left" "$T/err" || problem "ENOSPC restore: the error does not say 'No space left'"
    grep -q "$T/tgt/r" "$T/err" || problem "ENOSPC restore: the error does not name the target"
    grep -q "$T/src2/big" "$T/err" || problem "ENOSPC restore: the error does not name the file"
    # every file under its final name is complete; anything else is a
    # temporary (hidden) name
    if [ -d "$T/tgt/r$T/src2" ]; then
        for f in "$T/tgt/r$T/src2"/*; do
            [ -e "$f" ] || continue
            b=$(basename "$f")
            cmp -s "$f" "$T/src2/$b" || problem "ENOSPC restore: $b is left half-written under its final name"
        done
    fi
    ls -la "$T/tgt/r$T/src2" 2>/dev/null || true
else
    echo "SKIPPED PART: ENOSPC in the restore target (no small file system, or part 1 did not run)"
fi

# --------------------------------------------------- 3. read-only repository
info "3. a read-only repository"
init_repo
ob --json backup files "$T/src1" >"$T/ro1.json"
ro1=$(json_get "$T/ro1.json" 'j["id"]')
mkdir -p "$T/ro"
if mount --bind "$REPO" "$T/ro" 2>"$T/mount.err" \
    && mount -o remount,bind,ro "$T/ro" 2>>"$T/mount.err"; then
    before=$(repo_fingerprint)
    run_rc "$OPSBACKUP" -r "$T/ro" backup files "$T/src2"
    FAULTS=$((FAULTS + 1))
    echo "backup: exit $RC: $(cat "$T/err")"
    [ "$RC" = 1 ] || problem "read-only: backup exited $RC, expected 1"
    grep -qi "read-only file system" "$T/err" || problem "read-only: the error does not say 'Read-only file system'"
    grep -q "$T/ro" "$T/err" || problem "read-only: the error does not name the repository"
    run_rc "$OPSBACKUP" -r "$T/ro" snapshots
    [ "$RC" = 0 ] || problem "read-only: snapshots exited $RC: $(cat "$T/err")"
    run_rc "$OPSBACKUP" -r "$T/ro" check --read-data
    echo "check: exit $RC: $(cat "$T/out" "$T/err" | tail -3)"
    [ "$RC" = 0 ] || problem "read-only: check --read-data exited $RC"
    run_rc "$OPSBACKUP" -r "$T/ro" restore files "$ro1" --target "$T/ro-r"
    [ "$RC" = 0 ] || problem "read-only: restore exited $RC: $(cat "$T/err")"
    diff -r "$T/src1" "$T/ro-r$T/src1" >/dev/null || problem "read-only: restore differs"
    [ "$before" = "$(repo_fingerprint)" ] || problem "read-only: the repository changed"
else
    echo "SKIPPED PART: read-only repository: cannot make a read-only bind mount here: $(cat "$T/mount.err")"
fi

# ------------------------------------------------- 4. permission denied
info "4. permission denied on source files (backup as nobody)"
P="$T/perm"
mkdir -p "$P/src/open" "$P/src/closed"
echo readable >"$P/src/open/a.txt"
echo secret >"$P/src/open/secret.txt"
echo hidden >"$P/src/closed/x.txt"
rand_file "$P/src/open/data.bin" 5 300000
chown -R nobody: "$P/src"
chmod 000 "$P/src/open/secret.txt"
chmod 000 "$P/src/closed"
install -d -o nobody -m 0700 "$P/repo"
install -o nobody -m 0600 "$OPSBACKUP_PASSWORD_FILE" "$P/pw"
chmod 0711 "$T" "$P"
asnobody() { runuser -u nobody -- "$OPSBACKUP" -r "$P/repo" --password-file "$P/pw" "$@"; }
asnobody init --kdf-n 1024 >/dev/null
run_rc asnobody --json backup files "$P/src"
FAULTS=$((FAULTS + 1))
echo "exit $RC:"; cat "$T/err"
[ "$RC" = 1 ] || problem "permission denied: backup exited $RC, expected 1 (documented: snapshot saved, marked incomplete)"
grep -q "$P/src/open/secret.txt.*Permission denied" "$T/err" || problem "permission denied: no warning naming secret.txt"
grep -q "$P/src/closed.*Permission denied" "$T/err" || problem "permission denied: no warning naming the closed directory"
grep -q "incomplete" "$T/err" || problem "permission denied: the error does not say the snapshot is incomplete"
run_rc asnobody --json snapshots
n=$(json_get "$T/out" 'len(j)')
[ "$n" = 1 ] || problem "permission denied: expected the incomplete snapshot to be saved, found $n snapshots"
if [ "$n" = 1 ]; then
    errs=$(json_get "$T/out" 'j[0]["stats"].get("errors")')
    [ "$errs" = 2 ] || problem "permission denied: the snapshot records $errs errors, expected 2"
    install -d -o nobody -m 0700 "$P/r"
    runuser -u nobody -- "$OPSBACKUP" -r "$P/repo" --password-file "$P/pw" restore files latest --target "$P/r" >/dev/null \
        || problem "permission denied: the incomplete snapshot does not restore"
    cmp -s "$P/src/open/a.txt" "$P/r$P/src/open/a.txt" || problem "permission denied: a.txt not backed up"
    cmp -s "$P/src/open/data.bin" "$P/r$P/src/open/data.bin" || problem "permission denied: data.bin not backed up"
    [ ! -e "$P/r$P/src/open/secret.txt" ] || problem "permission denied: an unreadable file was restored (with what content?)"
fi
run_rc asnobody check --read-data
[ "$RC" = 0 ] || problem "permission denied: check exited $RC"

# ----------------------------------------------------------- 5. S3 faults
info "5. S3 through a fault-injecting proxy"
if ! s3_available; then
    if [ "${OB_REQUIRE_S3:-0}" = 1 ]; then problem "OB_REQUIRE_S3=1 but the S3 test server is not installed"; fi
    echo "SKIPPED PART: S3 faults (the S3 test server is not installed)"
    echo "faults injected: $FAULTS"
    finish
    exit 0
fi
on_exit s3_stop
s3_start "$T/s3"
s3_env
PROXY_PID=""
stop_proxy() { if [ -n "$PROXY_PID" ]; then kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; PROXY_PID=""; fi; }
on_exit stop_proxy
# proxy RULE...: (re)start the proxy; PROXY_URL is the repository through it
proxy() {
    stop_proxy
    : >"$T/proxy.out"
    python3 "$TOOLS/faultproxy.py" 0 "$S3_PORT" "$@" --seed 7 --log "$T/faults.log" >"$T/proxy.out" 2>&1 &
    PROXY_PID=$!
    wait_ready "$T/proxy.out" $PROXY_PID
    local port
    port=$(awk '/^ready/ {print $2}' "$T/proxy.out")
    [ -n "$port" ] || fail "the fault proxy did not start: $(cat "$T/proxy.out")"
    PROXY_URL="s3://$S3_BUCKET/faulty?endpoint=http://127.0.0.1:$port"
}
DIRECT=$(s3_url faulty)
"$OPSBACKUP" -r "$DIRECT" init --kdf-n 1024 >/dev/null
: >"$T/faults.log"
COMPLETED=()
mkdir -p "$T/s3src"
s3round=0
# through_proxy WHAT WANT: back up a changed tree through the proxy; WANT is
# ok (must succeed), fail (must fail clearly) or either
through_proxy() {
    local what=$1 want=$2
    s3round=$((s3round + 1))
    rand_file "$T/s3src/f$s3round.bin" $((100 + s3round)) $((5 * 1024 * 1024))
    echo "round $s3round" >"$T/s3src/round.txt"
    local before
    before=$(wc -l <"$T/faults.log")
    run_rc "$OPSBACKUP" -r "$PROXY_URL" --json backup files "$T/s3src"
    cp "$T/err" "$T/proxy.err"
    local injected=$(($(wc -l <"$T/faults.log") - before))
    FAULTS=$((FAULTS + injected))
    echo "$what: exit $RC, $injected faults injected"
    if [ "$RC" = 0 ]; then
        local id
        id=$(json_get "$T/out" 'j["id"]')
        rm -rf "$T/s3keep.$id"
        cp -a "$T/s3src" "$T/s3keep.$id"
        COMPLETED+=("$id")
        [ "$want" != fail ] || problem "$what: the backup succeeded although every request failed"
    else
        tail -3 "$T/err"
        [ "$RC" = 1 ] || problem "$what: exit $RC (expected 0 or 1)"
        [ "$want" != ok ] || problem "$what: the backup failed: $(tail -1 "$T/err")"
        grep -Eq "object [a-z]+/|s3://|bucket $S3_BUCKET" "$T/err" || problem "$what: the error names no object, bucket or repository"
    fi
    # the repository, straight from the server: sound, every snapshot whole
    run_rc "$OPSBACKUP" -r "$DIRECT" check --read-data
    [ "$RC" = 0 ] || problem "$what: check --read-data (direct) exited $RC: $(cat "$T/out" "$T/err" | tail -5)"
    local id
    for id in "${COMPLETED[@]}"; do
        rm -rf "$T/s3r"
        if "$OPSBACKUP" -r "$DIRECT" restore files "$id" --target "$T/s3r" >/dev/null 2>"$T/s3r.err"; then
            diff -r "$T/s3keep.$id" "$T/s3r$T/s3src" >/dev/null || problem "$what: snapshot ${id:0:8} restores different"
        else
            problem "$what: snapshot ${id:0:8} does not restore: $(cat "$T/s3r.err")"
        fi
    done
}
export OPSBACKUP_S3_RETRY_SECONDS=20
proxy 503@0.3
through_proxy "503 SlowDown on 30% of requests" ok
proxy 500@0.3
through_proxy "500 on 30% of requests" ok
proxy delay:1.5@0.3
through_proxy "slow answers (1.5 s) on 30% of requests" ok
proxy reset@0.2
through_proxy "connection reset before the request on 20%" ok
proxy reset-after@PUT:0.3 reset-after@DELETE:0.5
through_proxy "connection reset after a PUT/DELETE took effect (30%/50%)" ok
proxy 503@0.1 500@0.1 reset@0.05 reset-after@0.05 delay:0.5@0.05
through_proxy "a mix of every fault on 35% of requests" ok
export OPSBACKUP_S3_RETRY_SECONDS=3
proxy 503@1
through_proxy "503 SlowDown on every request (3 s retry budget)" fail
grep -q "SlowDown\|503" "$T/proxy.err" || problem "every 503: the error does not give the S3 status"
grep -q "failed after" "$T/proxy.err" || problem "every 503: the error does not say it retried"
proxy reset@1
through_proxy "every connection reset (3 s retry budget)" fail
grep -Eiq "reset|connection|recv|send" "$T/proxy.err" || problem "every reset: the error does not say the connection failed"
proxy 503@PUT:1
through_proxy "503 SlowDown on every PUT (3 s retry budget)" fail
proxy 503@#25-100000
through_proxy "503 from the 25th request on: an outage in mid-backup (3 s budget)" either
stop_proxy

info "after the faults: a clean backup straight to the server"
export OPSBACKUP_S3_RETRY_SECONDS=20
PROXY_URL=$DIRECT
through_proxy "no faults" ok
echo "S3 faults injected by kind:"; awk '{print $2}' "$T/faults.log" | sort | uniq -c
echo "faults injected: $FAULTS"

finish
