#!/usr/bin/env bash
# Restore must lose nothing that is already in the target and must not be
# steered outside it (session 12, found in a review of the restore path):
# - a file whose blob is damaged fails, and the copy already at its name
#   stays intact, as do the files queued behind it (each file is written
#   under a temporary name and renamed into place only when complete);
# - a hard-link group restored over files in the target keeps every name as
#   it was if its data is damaged (later names are linked only once the
#   first is complete and in place);
# - a hard link's later name is linked to the file restored first, not to
#   whatever its path leads to once a directory on it was swapped for a
#   symlink during the restore;
# - --delete never empties a filesystem mounted inside the target;
# - a restore by a user who is not root skips device nodes with a warning
#   instead of stopping at the first one.
. "$(dirname "$0")/lib.sh"

init_repo
mkdir -p "$T/src/keep"
head -c 300000 /dev/urandom >"$T/src/app.db"
for i in $(seq -w 1 30); do printf 'small file %s\n' "$i" >"$T/src/keep/b$i.txt"; done
ob --json backup files "$T/src" >"$T/b1.json"
SNAP=$(json_get "$T/b1.json" 'j["id"]')

info "a damaged blob: the restore fails, the copies already in the target stay intact"
TGT="$T/live"
ob restore files "$SNAP" --target "$TGT" >/dev/null || fail "first restore failed"
treecmp "$T/src" "$TGT$T/src" >/dev/null || fail "first restore differs"
# Damage app.db's blob: the largest blob is in the largest data pack; flip
# one byte in its middle.
PACK=$(find "$REPO/data" -type f ! -name '.*' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
flip_middle "$PACK"
run_rc ob restore files "$SNAP" --target "$TGT"
[ "$RC" = 1 ] || problem "restore with a damaged blob exited $RC, not 1"
grep -qiE "authentic|corrupt" "$T/err" || problem "the damage is not reported: $(cat "$T/err")"
cmp -s "$T/src/app.db" "$TGT$T/src/app.db" || problem "the intact app.db in the target was destroyed"
diff -r "$T/src/keep" "$TGT$T/src/keep" >/dev/null || problem "files queued behind the damaged one were lost"
left=$(find "$TGT" -name '.opsbackup-restore.*')
[ -z "$left" ] || problem "temporary files left behind: $left"
# Put the pack back for the rest of the test.
flip_middle "$PACK"
expect_code 0 ob check --read-data

info "a hard-link group over files in the target: a damaged blob leaves every name as it was"
mkdir -p "$T/hg/d1" "$T/hg/d2"
head -c 400000 /dev/urandom >"$T/hg/d1/a"
ln "$T/hg/d1/a" "$T/hg/d1/b"
ln "$T/hg/d1/a" "$T/hg/d2/c"
find "$REPO/data" -type f ! -name '.*' | sort >"$T/packs.before"
ob --json backup files "$T/hg" >"$T/b4.json"
HG=$(json_get "$T/b4.json" 'j["id"]')
HGPACK=$(find "$REPO/data" -type f ! -name '.*' | sort | comm -13 "$T/packs.before" - |
    xargs -r ls -S | head -1)
[ -n "$HGPACK" ] || fail "test setup: no new data pack for the hard-link group"
TGT4="$T/target4"
mkdir -p "$TGT4$T/hg/d1" "$TGT4$T/hg/d2"
for n in d1/a d1/b d2/c; do echo "old $n" >"$TGT4$T/hg/$n"; done
flip_middle "$HGPACK"
run_rc ob restore files "$HG" --target "$TGT4"
[ "$RC" = 1 ] || problem "restore of a damaged hard-link group exited $RC, not 1"
grep -qiE "authentic|corrupt" "$T/err" || problem "the damage is not what is reported: $(cat "$T/err")"
for n in d1/a d1/b d2/c; do
    [ "$(cat "$TGT4$T/hg/$n" 2>/dev/null)" = "old $n" ] ||
        problem "$n in the target was not kept by the failed restore (now: $(head -c 40 "$TGT4$T/hg/$n" 2>&1 | tr -c '[:print:]' '?'))"
done
left=$(find "$TGT4" -name '.opsbackup-restore.*')
[ -z "$left" ] || problem "temporary files left behind: $left"
flip_middle "$HGPACK"
expect_code 0 ob restore files "$HG" --target "$TGT4"
ino=$(stat -c %i "$TGT4$T/hg/d1/a")
for n in d1/a d1/b d2/c; do
    cmp -s "$T/hg/d1/a" "$TGT4$T/hg/$n" || problem "$n was not restored over the old file"
    [ "$(stat -c %i "$TGT4$T/hg/$n")" = "$ino" ] || problem "$n is not a hard link of d1/a"
done
[ "$(stat -c %h "$TGT4$T/hg/d1/a")" = 3 ] || problem "d1/a has $(stat -c %h "$TGT4$T/hg/d1/a") links, not 3"
treecmp "$T/hg" "$TGT4$T/hg" >/dev/null || problem "the restored group differs from the source: $(treecmp "$T/hg" "$TGT4$T/hg" 2>&1 | head -5)"
left=$(find "$TGT4" -name '.opsbackup-restore.*')
[ -z "$left" ] || problem "temporary files left behind: $left"

info "a group of 301 names over old files and a directory: one inode, nothing left over"
mkdir -p "$T/many"
head -c 3000000 /dev/urandom >"$T/many/a"
for i in $(seq -w 1 300); do ln "$T/many/a" "$T/many/l$i"; done
ob --json backup files "$T/many" >"$T/b5.json"
MANY=$(json_get "$T/b5.json" 'j["id"]')
TGT5="$T/target5"
mkdir -p "$TGT5$T/many"
for i in $(seq -w 1 300); do echo "old $i" >"$TGT5$T/many/l$i"; done
rm "$TGT5$T/many/l150"
mkdir -p "$TGT5$T/many/l150/sub"
echo inside >"$TGT5$T/many/l150/sub/f"
expect_code 0 ob restore files "$MANY" --target "$TGT5"
ino=$(stat -c %i "$TGT5$T/many/a")
[ "$(stat -c %h "$TGT5$T/many/a")" = 301 ] || problem "a has $(stat -c %h "$TGT5$T/many/a") links, not 301"
bad=$(find "$TGT5$T/many" -type f ! -inum "$ino" | head -3)
[ -z "$bad" ] || problem "names not linked to the restored file: $bad"
cmp -s "$T/many/a" "$TGT5$T/many/l150" || problem "l150 (a directory in the target) was not restored"
left=$(find "$TGT5" -name '.opsbackup-restore.*')
[ -z "$left" ] || problem "temporary files left behind: $left"

info "a hard link's later name is not steered through a swapped directory"
mkdir -p "$T/hl/a/sub" "$T/hl/zz-second" "$T/evil"
printf 'restored content\n' >"$T/hl/a/sub/f"
ln "$T/hl/a/sub/f" "$T/hl/zz-second/z"
printf 'ATTACKER CONTROLLED\n' >"$T/evil/f"
ob --json backup files "$T/hl" >"$T/b2.json"
HL=$(json_get "$T/b2.json" 'j["id"]')
${CC:-cc} -shared -fPIC -o "$T/pauselist.so" "$TOOLS/pauselist.c" -ldl || fail "cannot build pauselist.so"
TGT2="$T/target2"
# Pause when the restore opens zz-second (after a/sub/f was created), then
# swap a/sub for a symlink to a directory holding another f.
ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" LD_PRELOAD="$T/pauselist.so" \
    PAUSELIST_SUFFIX=zz-second PAUSELIST_MARK="$T/paused" PAUSELIST_GO="$T/go" \
    "$OPSBACKUP" -r "$REPO" restore files "$HL" --target "$TGT2" >"$T/r.out" 2>"$T/r.err" &
RPID=$!
for _ in $(seq 1 200); do [ -e "$T/paused" ] && break; kill -0 $RPID 2>/dev/null || break; sleep 0.05; done
if [ ! -e "$T/paused" ]; then
    touch "$T/go"; wait $RPID || true; cat "$T/r.err"
    fail "restore never opened zz-second (pauselist did not trigger)"
fi
[ -f "$TGT2$T/hl/a/sub/f" ] || { touch "$T/go"; wait $RPID || true; fail "test setup: a/sub/f not created before the pause"; }
mv "$TGT2$T/hl/a/sub" "$TGT2$T/hl/a/sub.moved"
ln -s "$T/evil" "$TGT2$T/hl/a/sub"
touch "$T/go"
rc=0; wait $RPID || rc=$?
[ $rc -lt 128 ] || fail "restore crashed (exit $rc)"
[ $rc != 0 ] || problem "the restore did not report the swapped directory"
assert_grep "not linking" "$T/r.err"
z="$TGT2$T/hl/zz-second/z"
if [ -e "$z" ] && [ "$(stat -c %i "$z")" = "$(stat -c %i "$T/evil/f")" ]; then
    problem "the hard link was made to the attacker's file"
fi
[ "$(cat "$T/evil/f")" = "ATTACKER CONTROLLED" ] || problem "the attacker's file was changed"

info "--delete does not empty a filesystem mounted inside the target"
TGT3="$T/target3"
ob restore files "$SNAP" --target "$TGT3" >/dev/null || fail "restore into target3 failed"
mkdir -p "$TGT3$T/src/vol"
if mount -t tmpfs -o size=1m opsbackup-test "$TGT3$T/src/vol" 2>"$T/mount.err"; then
    echo precious >"$TGT3$T/src/vol/precious"
    run_rc ob restore files "$SNAP" --target "$TGT3" --delete
    [ "$RC" != 0 ] || problem "restore --delete over a mount point succeeded"
    assert_grep "mount point" "$T/err"
    [ "$(cat "$TGT3$T/src/vol/precious" 2>/dev/null)" = precious ] \
        || problem "--delete removed a file of the filesystem mounted in the target"
    umount "$TGT3$T/src/vol"
else
    # Not a pass: say so loudly (a container without CAP_SYS_ADMIN).
    problem "cannot mount a tmpfs here ($(cat "$T/mount.err")): the mount-point case is untested"
fi

info "a restore by a user who is not root skips device nodes and goes on"
mkdir -p "$T/dev/d"
mknod "$T/dev/d/null" c 1 3
printf 'after the device\n' >"$T/dev/d/zfile"
ob --json backup files "$T/dev" >"$T/b3.json"
DEV=$(json_get "$T/b3.json" 'j["id"]')
chmod -R a+rX "$REPO"
chmod a+x "$T"
install -m 0644 "$OPSBACKUP_PASSWORD_FILE" "$T/pw.nobody"
install -d -o nobody -m 0755 "$T/nobody"
expect_code 0 runuser -u nobody -- env OPSBACKUP_PASSWORD_FILE="$T/pw.nobody" \
    "$OPSBACKUP" -r "$REPO" restore files "$DEV" --target "$T/nobody/t"
assert_grep "device node" "$T/err"
[ "$(cat "$T/nobody/t$T/dev/d/zfile" 2>/dev/null)" = "after the device" ] \
    || problem "the file after the device node was not restored"
[ -e "$T/nobody/t$T/dev/d/null" ] && problem "a device node appeared in a non-root restore"

finish
