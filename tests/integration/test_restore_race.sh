#!/usr/bin/env bash
# Restore against a symlink race (issue #11): while restore is about to
# create a file, the directory it is writing into is replaced by a symlink
# to a directory outside the target.  Restore enters directories only
# through descriptors opened with O_NOFOLLOW and creates files relative to
# them (openat), so nothing may appear outside the target — whatever
# restore then reports.  The pause is tests/tools/pauselist.c, stopping the
# restore at the openat() of the victim file until the swap is done.
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/src/d" "$T/outside"
for i in 1 2 3; do printf 'file %d\n' "$i" >"$T/src/d/a$i.txt"; done
printf 'victim\n' >"$T/src/d/victim.txt"
init_repo
ob backup files "$T/src" >/dev/null
${CC:-cc} -shared -fPIC -o "$T/pauselist.so" "$TOOLS/pauselist.c" -ldl || fail "cannot build pauselist.so"

TGT="$T/target"
ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" LD_PRELOAD="$T/pauselist.so" \
    PAUSELIST_SUFFIX=victim.txt PAUSELIST_MARK="$T/paused" PAUSELIST_GO="$T/go" \
    "$OPSBACKUP" -r "$REPO" restore files latest --target "$TGT" >"$T/r.out" 2>"$T/r.err" &
RPID=$!
for _ in $(seq 1 200); do [ -d "$T/paused" ] && break; kill -0 $RPID 2>/dev/null || break; sleep 0.05; done
if [ ! -d "$T/paused" ]; then
    touch "$T/go"; wait $RPID || true; cat "$T/r.err"
    fail "restore never opened victim.txt (pauselist did not trigger)"
fi
info "swap the directory being restored for a symlink to $T/outside"
mv "$TGT$T/src/d" "$TGT$T/src/d.moved"
ln -s "$T/outside" "$TGT$T/src/d"
touch "$T/go"
rc=0; wait $RPID || rc=$?
info "restore exited $rc"
cat "$T/r.out" "$T/r.err"
[ $rc -lt 128 ] || fail "restore crashed (exit $rc)"
if [ -n "$(ls -A "$T/outside")" ]; then
    ls -la "$T/outside"
    problem "restore wrote through the symlink into $T/outside"
fi
[ "$(readlink "$TGT$T/src/d")" = "$T/outside" ] || problem "the planted symlink was replaced or followed"
# What it wrote went into the directory it had opened (now d.moved).
[ -f "$TGT$T/src/d.moved/victim.txt" ] || [ $rc != 0 ] \
    || problem "restore succeeded but victim.txt is nowhere"
finish
