#!/usr/bin/env bash
# Crafted snapshots whose trees are valid blob by blob but hostile in shape
# (tests/tools/obcraft.c writes them): directories nested far deeper than the
# format allows (TREE_MAX_DEPTH, docs/FORMAT.md 12.6), which every reader of
# trees must refuse with a clear error and a non-zero exit, never a crash;
# and names recorded as one hard-link group (same device and inode) whose
# contents differ, which restore must not link together.
. "$(dirname "$0")/lib.sh"

OBCRAFT="$OPSBACKUP_TEST_TOOLS/obcraft"
[ -x "$OBCRAFT" ] || fail "obcraft not built at $OBCRAFT"
init_repo
craft() { "$OBCRAFT" "$REPO" "$OPSBACKUP_PASSWORD_FILE" "$@"; }
# rc_of CMD...: like run_rc, but a crash is recorded as a problem and the
# test goes on, so one run shows every reader that fails.
rc_of() {
    set +e
    "$@" >"$T/out" 2>"$T/err"
    RC=$?
    set -e
    [ "$RC" -lt 128 ] || problem "crashed (exit $RC): $*"
}
LIMIT=512

info "a tree exactly $LIMIT directories deep restores, within 1024 open files"
at=$(craft deep $LIMIT) || fail "obcraft deep $LIMIT failed"
rc_of bash -c 'ulimit -n 1024 && "$@"' _ "$OPSBACKUP" -r "$REPO" restore files "$at" --target "$T/at"
[ "$RC" = 0 ] || { tail -c 400 "$T/err"; problem "restoring a tree $LIMIT deep: exit $RC"; }
bottom=$(find "$T/at" -name bottom.txt)
[ -n "$bottom" ] && [ "$(cat "$bottom")" = "the bottom" ] ||
    problem "the file at the bottom of a tree $LIMIT deep was not restored"
rc_of ob ls "$at"
[ "$RC" = 0 ] || problem "ls of a tree $LIMIT deep: exit $RC"

info "one level more, and 40000 levels: refused by every reader"
ok=$(craft ok) || fail "obcraft ok failed"
for depth in $((LIMIT + 1)) 40000; do
    id=$(craft deep $depth) || fail "obcraft deep $depth failed"
    for cmd in "restore files $id --target $T/t$depth" \
               "restore files $id --target $T/d$depth --dry-run" \
               "ls $id" "verify files $id" "diff $ok $id"; do
        rc_of ob $cmd
        [ "$RC" = 1 ] || problem "depth $depth: $cmd: exit $RC, expected 1"
        grep -q "more than $LIMIT levels deep" "$T/err" ||
            { tail -c 300 "$T/err"; problem "depth $depth: $cmd: no message naming the limit"; }
        grep -q "snapshot.* ${id:0:8}\|snapshot ${id:0:8}\|snapshots .*${id:0:8}" "$T/err" ||
            { tail -c 300 "$T/err"; problem "depth $depth: $cmd: the message does not name the snapshot"; }
    done
    [ ! -e "$T/d$depth" ] || problem "depth $depth: restore --dry-run created its target"
done

info "check reports the deep snapshots (exit 3), and copy refuses them"
rc_of ob check
[ "$RC" = 3 ] || { tail -c 400 "$T/out"; problem "check exited $RC, expected 3"; }
grep -q "more than $LIMIT levels deep" "$T/out" "$T/err" || problem "check does not name the limit"
"$OPSBACKUP" -r "$T/repo2" init --kdf-n 1024 >/dev/null
rc_of "$OPSBACKUP" copy --from "$REPO" --to "$T/repo2" "$id"
[ "$RC" = 1 ] || problem "copy of a tree 40000 deep: exit $RC, expected 1"
grep -q "more than $LIMIT levels deep" "$T/err" || { tail -c 300 "$T/err"; problem "copy: no message naming the limit"; }

info "a backup leaves out directories below the limit, loudly, and its snapshot restores"
src="$T/src"
p="$src"
for _ in $(seq 1 $((LIMIT + 8))); do p="$p/d"; done
mkdir -p "$p"
echo deep >"$p/f"
echo shallow >"$src/top.txt"
rc_of ob --json backup files "$src"
[ "$RC" = 1 ] || problem "backup of a source deeper than the limit: exit $RC, expected 1 (incomplete)"
grep -q "more than $LIMIT levels deep" "$T/err" || { tail -c 300 "$T/err"; problem "backup: no warning naming the limit"; }
sid=$(json_get "$T/out" 'j["id"]' 2>/dev/null) || sid=latest
rc_of ob restore files "$sid" --target "$T/back"
[ "$RC" = 0 ] || { tail -c 300 "$T/err"; problem "the snapshot of a deep source does not restore: exit $RC"; }
[ "$(cat "$T/back$src/top.txt" 2>/dev/null)" = shallow ] || problem "the deep source's top file was not restored"

info "a hard-link group whose names disagree on content"
hl=$(craft hardlink-mismatch) || fail "obcraft hardlink-mismatch failed"
rc_of ob restore files "$hl" --target "$T/hl"
[ "$RC" = 0 ] || { cat "$T/err"; problem "restoring the inconsistent hard-link group: exit $RC"; }
[ "$(cat "$T/hl/a" 2>/dev/null)" = "the group's content" ] || problem "a: wrong content"
[ "$(cat "$T/hl/b" 2>/dev/null)" = "the group's content" ] || problem "b: wrong content"
[ "$(cat "$T/hl/c" 2>/dev/null)" = "other content, same inode" ] ||
    problem "c got $(cat "$T/hl/c" 2>/dev/null | head -c 40): linked to a on device and inode alone"
[ "$(stat -c %i "$T/hl/a")" = "$(stat -c %i "$T/hl/b")" ] || problem "a and b (same content) are not linked"
[ "$(stat -c %i "$T/hl/a")" != "$(stat -c %i "$T/hl/c")" ] || problem "c is linked to a"
grep -q "/c: recorded as a hard link of /a" "$T/err" || { cat "$T/err"; problem "no warning about c"; }

finish
