#!/usr/bin/env bash
# A hostile (or corrupted) repository must not make restore write outside
# --target: entries named "..", ".", "../../escape", duplicate names, and a
# symlink restored by one snapshot that a later snapshot's directory would
# be written through.  The snapshots are crafted with tests/tools/obcraft.c
# (build/obcraft), which stores trees without validating names.  Also, a
# symlink or hard link already present in the target is never written
# through by a normal restore.
. "$(dirname "$0")/lib.sh"

OBCRAFT="$OPSBACKUP_TEST_TOOLS/obcraft"
[ -x "$OBCRAFT" ] || fail "obcraft not built at $OBCRAFT"
init_repo
craft() { "$OBCRAFT" "$REPO" "$OPSBACKUP_PASSWORD_FILE" "$@"; }

# The target sits three levels below $T/jail, so "..", "../../escape" and
# the like land inside the jail if they escape; sentinel is a directory a
# symlink points to.  Anything appearing or changing in the jail outside the
# target, or in the sentinel, is a write outside the target.
J="$T/jail"
TGT="$J/a/b/target"
S="$T/sentinel"
mkdir -p "$J/a/b" "$S"
echo "jail file" >"$J/a/b/neighbour.txt"
snapshot_jail() {
    (cd "$J" && find . -path ./a/b/target -prune -o -print0 | sort -z | xargs -0 stat -c '%n %F %s' ;
     cd "$J" && find . -path ./a/b/target -prune -o -type f -print0 | sort -z | xargs -0 sha256sum) >"$1"
    (cd "$S" && find . | sort) >>"$1"
}
snapshot_jail "$T/jail.before"

info "control: a harmless crafted snapshot restores"
ok=$(craft ok) || fail "obcraft ok failed"
ob restore files "$ok" --target "$T/okdst" >/dev/null || fail "the harmless crafted snapshot does not restore"
[ "$(cat "$T/okdst/ok.txt")" = harmless ] || fail "the harmless crafted snapshot restored wrong bytes"

for mode in dotdot slash dot dup nested-dotdot; do
    info "mode $mode"
    id=$(craft "$mode") || fail "obcraft $mode failed"
    rm -rf "$TGT"
    run_rc ob restore files "$id" --target "$TGT"
    [ "$RC" != 0 ] || problem "$mode: restore succeeded"
    grep -Eqi "unsafe|refus" "$T/err" || { cat "$T/err"; problem "$mode: no clear 'unsafe'/'refusing' message"; }
    snapshot_jail "$T/jail.after"
    cmp -s "$T/jail.before" "$T/jail.after" ||
        { diff "$T/jail.before" "$T/jail.after" || true; problem "$mode: something was written outside the target"; }
    # the same hostile snapshot through the other readers: no crash, no success
    run_rc ob ls "$id"
    echo "$mode: ls exit $RC"
    run_rc ob restore files "$id" --target "$TGT" --dry-run
    [ "$RC" != 0 ] || problem "$mode: restore --dry-run succeeded"
    run_rc ob restore files "$id" --target "$TGT" --delete
    [ "$RC" != 0 ] || problem "$mode: restore --delete succeeded"
    snapshot_jail "$T/jail.after"
    cmp -s "$T/jail.before" "$T/jail.after" || problem "$mode (--delete): something outside the target changed"
    run_rc ob check
    [ "$RC" = 3 ] || { cat "$T/out" "$T/err"; problem "$mode: check exited $RC, expected 3 (a hostile tree is a problem)"; }
done

info "mode abs-symlink-then-dir: a symlink, then a directory of the same name"
craft abs-symlink-then-dir "$S" >"$T/ids" || fail "obcraft abs-symlink-then-dir failed"
first=$(sed -n 1p "$T/ids")
second=$(sed -n 2p "$T/ids")
rm -rf "$TGT"
run_rc ob restore files "$first" --target "$TGT"
[ "$RC" = 0 ] || { cat "$T/err"; problem "restoring a snapshot with an absolute symlink failed"; }
[ "$(readlink "$TGT/link")" = "$S" ] || problem "the symlink was not restored as a symlink to $S"
run_rc ob restore files "$second" --target "$TGT"
[ "$RC" != 0 ] || problem "the second restore wrote a directory over the symlink and succeeded"
grep -Eqi "unsafe|refus" "$T/err" || { cat "$T/err"; problem "second restore: no clear 'unsafe'/'refusing' message"; }
[ -z "$(ls -A "$S")" ] || { ls -la "$S"; problem "the second restore wrote through the symlink into $S"; }
run_rc ob restore files "$second" --target "$TGT" --delete
[ -z "$(ls -A "$S")" ] || problem "restore --delete wrote through the symlink into $S"

info "a symlink already in the target is not followed"
src="$T/src"
mkdir -p "$src/sub"
echo "real content" >"$src/sub/file.txt"
echo "second" >"$src/sub/other.txt"
ob --json backup files "$src" >"$T/b.json"
sid=$(json_get "$T/b.json" 'j["id"]')
top=${src#/}; top=${top%%/*}      # first component of $src, e.g. "tmp"
D="$T/planted"
mkdir -p "$D"
ln -s "$S" "$D/$top"               # target/tmp -> sentinel
run_rc ob restore files "$sid" --target "$D"
echo "restore over a planted $top symlink: exit $RC"
[ -z "$(ls -A "$S")" ] || { find "$S"; problem "restore followed the planted symlink $D/$top into $S"; }
if [ "$RC" = 0 ]; then
    [ ! -L "$D/$top" ] && cmp -s "$src/sub/file.txt" "$D$src/sub/file.txt" ||
        problem "restore succeeded but did not restore below a real directory $D/$top"
else
    grep -Eqi "unsafe|refus" "$T/err" || { cat "$T/err"; problem "planted symlink: no clear message"; }
fi

info "a symlink planted where a file will be restored is replaced, not written through"
rm -rf "$D" && mkdir -p "$D$src/sub"
echo "victim" >"$S/victim.txt"
ln -s "$S/victim.txt" "$D$src/sub/file.txt"
ob restore files "$sid" --target "$D" >/dev/null || problem "restore over a planted file symlink failed"
[ "$(cat "$S/victim.txt")" = victim ] || problem "restore wrote through a planted symlink into $S/victim.txt"
[ ! -L "$D$src/sub/file.txt" ] && cmp -s "$src/sub/file.txt" "$D$src/sub/file.txt" ||
    problem "the planted symlink was not replaced by the file"

info "a hard link planted in the target is not written through"
rm -rf "$D" && mkdir -p "$D$src/sub"
echo "victim2" >"$S/victim2.txt"
ln "$S/victim2.txt" "$D$src/sub/other.txt"
ob restore files "$sid" --target "$D" >/dev/null || problem "restore over a planted hard link failed"
[ "$(cat "$S/victim2.txt")" = victim2 ] || problem "restore wrote through a planted hard link into $S/victim2.txt"
cmp -s "$src/sub/other.txt" "$D$src/sub/other.txt" || problem "the hard-linked file was not restored"

info "--delete does not follow a symlink planted in the target"
rm -rf "$D" && mkdir -p "$D$src/sub"
ln -s "$S" "$D$src/sub/planted-dir-link"
ob restore files "$sid" --target "$D" --delete >/dev/null || problem "restore --delete failed"
[ -e "$S/victim.txt" ] && [ -e "$S/victim2.txt" ] || problem "restore --delete deleted files through a planted symlink"
[ ! -e "$D$src/sub/planted-dir-link" ] && [ ! -L "$D$src/sub/planted-dir-link" ] ||
    problem "restore --delete kept the extra symlink"

finish
