#!/usr/bin/env bash
# The S3 server dies in the middle of a `backup files` of a few hundred MB
# (SIGKILL of the server process):
#   (a) back within a few seconds, inside the retry window: the backup rides
#       the outage out and its snapshot restores byte-identical;
#   (b) gone for longer than the retry window: the backup fails cleanly
#       (exit 1, no crash, no snapshot) with an error naming the object,
#       the operation and what went wrong; after the server is back,
#       `check --read-data` passes and a new backup succeeds and restores
#       byte-identical.
. "$(dirname "$0")/lib.sh"
s3_require
on_exit s3_stop
s3_start "$T/s3"
s3_env
port=$S3_PORT
REPO=$(s3_url outage)

# Incompressible data, so every byte is uploaded: 200 MiB and 160 MiB in
# 20 MiB files (dozens of 16 MiB packs).
make_tree() { # DIR SEED MIB
    python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys
d, seed, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d)
r = random.Random(seed)
for i in range(mib // 20):
    with open("%s/f%02d.bin" % (d, i), "wb") as f:
        for _ in range(20):
            f.write(r.randbytes(1 << 20))
PY
}
make_tree "$T/src1" 1 200
make_tree "$T/src2" 2 160
init_repo

# Objects the server holds under the repository's data/ (finished or not).
npacks() { find "$(s3_object_dir outage)/data" -name '*._S3rver_object' 2>/dev/null | wc -l; }

# wait_packs N: until the server holds at least N packs (30 s at most).
wait_packs() {
    local i
    for i in $(seq 1 300); do
        [ "$(npacks)" -ge "$1" ] && return 0
        sleep 0.1
    done
    fail "the backup uploaded fewer than $1 packs in 30 s"
}

# ---------------------------------------------------------------- (a)
info "(a) the server is down for 3 s in the middle of a backup (retry window 60 s)"
OPSBACKUP_S3_RETRY_SECONDS=60 ob --json backup files "$T/src1" >"$T/a.out" 2>"$T/a.err" &
bpid=$!
wait_packs 3
s3_kill
echo "server killed with $(npacks) packs stored"
sleep 3
s3_start "$T/s3" "$port"
set +e
wait $bpid
rc=$?
set -e
[ "$rc" = 0 ] || { cat "$T/a.err"; fail "(a) the backup across a short outage exited $rc"; }
ob restore files latest --target "$T/dst1" >/dev/null
diff -r "$T/src1" "$T/dst1$T/src1" >/dev/null || fail "(a) the restored tree differs"

# ---------------------------------------------------------------- (b)
info "(b) the server stays down longer than the retry window (5 s)"
before=$(npacks)
OPSBACKUP_S3_RETRY_SECONDS=5 ob backup files "$T/src2" >"$T/b.out" 2>"$T/b.err" &
bpid=$!
wait_packs $((before + 2))
s3_kill
echo "server killed with $(npacks) packs stored"
start=$(date +%s)
set +e
wait $bpid
rc=$?
set -e
took=$(( $(date +%s) - start ))
echo "the backup exited $rc after $took s; its error:"
cat "$T/b.err"
[ "$rc" = 1 ] || problem "(b) the backup exited $rc, expected 1"
[ "$took" -lt 60 ] || problem "(b) the backup took $took s to give up with a 5 s retry window"
grep -Eq "object (data|index|snapshots|locks)/" "$T/b.err" || problem "(b) the error does not name the object"
grep -Eq "(PUT|GET|HEAD|DELETE|POST)" "$T/b.err" || problem "(b) the error does not name the operation"
grep -Eiq "connect|HTTP [0-9]{3}" "$T/b.err" || problem "(b) the error does not say what went wrong"
grep -q "failed after" "$T/b.err" || problem "(b) the error does not say it retried"

info "(b) the server comes back: the repository checks clean, a new backup works"
s3_start "$T/s3" "$port"
run_rc ob --json snapshots
[ "$RC" = 0 ] || { cat "$T/err"; fail "(b) snapshots after the outage exited $RC"; }
[ "$(json_get "$T/out" 'len(j)')" = 1 ] || problem "(b) the failed backup left a snapshot"
run_rc ob check --read-data
[ "$RC" = 0 ] || { cat "$T/out" "$T/err"; problem "(b) check --read-data after the failed backup exited $RC"; }
run_rc ob backup files "$T/src2"
[ "$RC" = 0 ] || { cat "$T/err"; fail "(b) the backup after the outage exited $RC"; }
ob restore files latest --target "$T/dst2" >/dev/null
diff -r "$T/src2" "$T/dst2$T/src2" >/dev/null || problem "(b) the restored tree differs"
ob check --read-data >/dev/null || problem "(b) check --read-data after the new backup failed"

finish
