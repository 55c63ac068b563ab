#!/usr/bin/env bash
# A backup whose lease was lost writes nothing more (DECISIONS.md D79).
#
# The backup is stopped past the stale time (simulated: its lock object is
# deleted, which is exactly what another process does to a stale lock) and
# a prune runs meanwhile and deletes the packs the backup had stored but
# not yet indexed.  Once resumed, the backup must not write an index file
# naming those packs: the repository would fail `check`, and the next
# backup of the same data would deduplicate against the dangling entries,
# exit 0 and save a snapshot that cannot be restored (review_prune finding
# 1, which this test reproduced before the fix).
#
# About 2.5 minutes, mostly waiting for the stopped backup's renewer turn
# (LOCK_RENEW_SECONDS, 120 s).  Posix only: it stops a process and looks at
# the repository's files.
. "$(dirname "$0")/lib.sh"
if [ "$S3_MODE" = 1 ]; then echo "SKIP: posix only"; exit 77; fi
init_repo
mkdir -p "$T/src"
# Larger than two packs, so packs are stored before the backup reaches
# zz.txt, where it is held (the walk goes in name order).
python3 -c "import random,sys; sys.stdout.buffer.write(random.Random(5).randbytes(48*1024*1024))" >"$T/src/a.bin"
echo hello >"$T/src/zz.txt"
${CC:-cc} -shared -fPIC -o "$T/pauselist.so" "$TOOLS/pauselist.c" -ldl || fail "cannot build pauselist.so"
ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" LD_PRELOAD="$T/pauselist.so" \
PAUSELIST_SUFFIX=/src/zz.txt PAUSELIST_MARK="$T/mark" PAUSELIST_GO="$T/go" \
    "$OPSBACKUP" -r "$REPO" --json backup files "$T/src" >"$T/b1.json" 2>"$T/b1.err" &
B=$!
stop_backup() { kill -CONT $B 2>/dev/null || true; touch "$T/go"; }
on_exit stop_backup
for i in $(seq 600); do [ -d "$T/mark" ] && break; sleep 0.1; done
[ -d "$T/mark" ] || fail "the backup never reached zz.txt"
sleep 2
kill -STOP $B
packs() { find "$REPO/data" -type f -not -name '.*' | wc -l; }
nindex() { ls "$REPO/index" 2>/dev/null | wc -l; }
info "backup stopped with $(packs) packs and $(nindex) index files"
[ "$(packs)" -ge 1 ] || fail "the backup stored no pack before zz.txt"
[ "$(nindex)" -eq 0 ] || fail "the backup wrote an index file already; the test needs none"

# More than 30 minutes pass: another process removes the lock as stale,
# and a prune deletes the backup's packs, which no index file names.
rm -f "$REPO"/locks/*
ob prune >"$T/prune.out" 2>&1 || { cat "$T/prune.out"; fail "prune failed"; }
[ "$(packs)" -eq 0 ] || problem "prune left $(packs) unindexed packs (the test expects it to delete them)"

# Resume once the renewer's turn has come (120 s after the lock was
# taken); the backup is let past zz.txt only once its renewer has found
# the lock gone, so the outcome does not depend on which thread runs first.
sleep 125
kill -CONT $B
for i in $(seq 300); do grep -q "removed it as stale" "$T/b1.err" && break; sleep 0.1; done
grep -q "removed it as stale" "$T/b1.err" || problem "the renewer did not find its lock gone"
touch "$T/go"
rc=0; wait $B || rc=$?
info "the resumed backup exited $rc: $(tail -1 "$T/b1.err")"
[ $rc -ne 0 ] || problem "the backup whose lease was lost exited 0"
grep -q "the repository lock was lost" "$T/b1.err" || problem "the backup did not say its lock was lost"
[ "$(nindex)" -eq 0 ] || problem "the backup wrote $(nindex) index file(s) after its lease was lost"
run_rc ob check
[ "$RC" -eq 0 ] || { cat "$T/out" "$T/err"; problem "check after the lost backup: exit $RC"; }

# The next backup of the same data must store it again and be restorable.
run_rc ob --json backup files "$T/src"
[ "$RC" -eq 0 ] || { cat "$T/err"; fail "the second backup failed: exit $RC"; }
cp "$T/out" "$T/b2.json"
id=$(json_get "$T/b2.json" "j['id']")
run_rc ob check
[ "$RC" -eq 0 ] || { cat "$T/out" "$T/err"; problem "check after the second backup: exit $RC"; }
run_rc ob restore files "$id" --target "$T/r"
if [ "$RC" -ne 0 ]; then
    cat "$T/err"
    problem "the second backup's snapshot cannot be restored: exit $RC"
else
    restored=$(find "$T/r" -name a.bin | head -1)
    cmp "$T/src/a.bin" "$restored" || problem "restored a.bin differs"
fi
finish
