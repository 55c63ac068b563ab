#!/usr/bin/env bash
# Damage a repository in four ways and require that opsbackup notices, names
# the damaged object, fails with the documented exit code (1 failure, 3 a
# check found a problem) and never crashes:
#   (a) a flipped byte in the middle of a pack
#   (b) an index file truncated to half its size
#   (c) a deleted pack, (c2) a truncated pack
#   (d) a flipped byte in a snapshot object
# Each case starts from a fresh copy of the same pristine repository.
. "$(dirname "$0")/lib.sh"

src="$T/src"
mkdir -p "$src/sub"
python3 - "$src" <<'EOF'
import random, sys
r = random.Random(42)
root = sys.argv[1]
# 3 MiB of incompressible data: most of the pack, so its middle byte is data.
open(root + "/big.bin", "wb").write(r.randbytes(3 * 1024 * 1024))
for i in range(20):
    open("%s/sub/small-%02d.txt" % (root, i), "w").write("small file %d\n" % i * (i + 1))
EOF
init_repo

info "two snapshots: the second changes one small file"
ob --json backup files "$src" >"$T/s1.json"
s1=$(json_get "$T/s1.json" 'j["id"]')
echo "changed" >>"$src/sub/small-03.txt"
ob --json backup files "$src" >"$T/s2.json"
s2=$(json_get "$T/s2.json" 'j["id"]')
ob check --read-data >/dev/null || fail "the pristine repository does not check clean"
cp -a "$REPO" "$T/pristine"

fresh_repo() { rm -rf "$REPO" "$T/dst"; cp -a "$T/pristine" "$REPO"; }

# The pack holding big.bin: the largest object under data/.
big_pack() { (cd "$REPO" && find data -type f ! -name '.*' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2); }

flip_middle() {
    python3 - "$1" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x5A
open(p, "wb").write(bytes(b))
EOF
}

# ---------------------------------------------------------------- (a)
info "(a) flipped byte in the middle of a pack"
fresh_repo
pack=$(big_pack)
packid=$(basename "$pack")
echo "damaging $pack"
flip_middle "$REPO/$pack"

run_rc ob check
echo "plain check: exit $RC (it may or may not read pack contents)"
[ "$RC" = 0 ] || [ "$RC" = 3 ] || problem "(a) plain check exited $RC, expected 0 or 3"

run_rc ob check --read-data
[ "$RC" = 3 ] || problem "(a) check --read-data exited $RC, expected 3"
cat "$T/out" "$T/err" >"$T/all"
grep -q "$packid" "$T/all" || { cat "$T/all"; problem "(a) check --read-data does not name pack $pack"; }

run_rc ob restore files "$s1" --target "$T/dst"
[ "$RC" = 1 ] || problem "(a) restore of a snapshot whose data is damaged exited $RC, expected 1"
grep -q "$packid" "$T/err" || { cat "$T/err"; problem "(a) restore error does not name pack $pack"; }
if [ -e "$T/dst$src/big.bin" ] && ! cmp -s "$src/big.bin" "$T/dst$src/big.bin"; then
    problem "(a) restore left a big.bin with wrong content in the target"
fi

# ---------------------------------------------------------------- (b)
info "(b) index file truncated to half"
fresh_repo
idx=$(cd "$REPO" && find index -type f ! -name '.*' | sort | head -1)
idxid=$(basename "$idx")
size=$(stat -c %s "$REPO/$idx")
truncate -s $((size / 2)) "$REPO/$idx"
echo "truncated $idx from $size to $((size / 2)) bytes"

run_rc ob check
[ "$RC" = 3 ] || problem "(b) check exited $RC, expected 3"
cat "$T/out" "$T/err" >"$T/all"
grep -q "$idxid" "$T/all" || { cat "$T/all"; problem "(b) check does not name index file $idx"; }

run_rc ob restore files "$s2" --target "$T/dst"
[ "$RC" != 0 ] || problem "(b) restore with a damaged index succeeded"
grep -q "$idxid" "$T/err" || { cat "$T/err"; problem "(b) restore error does not name index file $idx"; }

# ---------------------------------------------------------------- (c)
info "(c) deleted pack"
fresh_repo
pack=$(big_pack)
packid=$(basename "$pack")
rm "$REPO/$pack"
echo "deleted $pack"

run_rc ob check
[ "$RC" = 3 ] || problem "(c) check exited $RC, expected 3"
cat "$T/out" "$T/err" >"$T/all"
grep -q "$packid" "$T/all" || { cat "$T/all"; problem "(c) check does not name the missing pack $pack"; }

run_rc ob restore files "$s1" --target "$T/dst"
[ "$RC" = 1 ] || problem "(c) restore with a missing pack exited $RC, expected 1"
grep -q "$packid" "$T/err" || { cat "$T/err"; problem "(c) restore error does not name the missing pack $pack"; }

# ---------------------------------------------------------------- (c2)
info "(c2) pack truncated: its tail (the pack directory) or half of it"
fresh_repo
pack=$(big_pack)
packid=$(basename "$pack")
size=$(stat -c %s "$REPO/$pack")
truncate -s $((size - 100)) "$REPO/$pack"
# every blob is still whole: a plain check may not notice, --read-data must
run_rc ob check
[ "$RC" = 0 ] || [ "$RC" = 3 ] || problem "(c2) plain check of a pack without its tail exited $RC"
run_rc ob check --read-data
[ "$RC" = 3 ] || problem "(c2) check --read-data of a pack without its tail exited $RC, expected 3"
cat "$T/out" "$T/err" >"$T/all"
grep -q "$packid" "$T/all" || { cat "$T/all"; problem "(c2) check --read-data does not name the truncated pack $pack"; }
truncate -s $((size / 2)) "$REPO/$pack"
run_rc ob check
[ "$RC" = 3 ] || problem "(c2) check of a pack truncated to half exited $RC, expected 3"
cat "$T/out" "$T/err" >"$T/all"
grep -q "$packid" "$T/all" || { cat "$T/all"; problem "(c2) check does not name the half-truncated pack $pack"; }
run_rc ob restore files "$s1" --target "$T/dst"
[ "$RC" = 1 ] || problem "(c2) restore from a half-truncated pack exited $RC, expected 1"
grep -q "$packid" "$T/err" || { cat "$T/err"; problem "(c2) restore error does not name the truncated pack"; }

# ---------------------------------------------------------------- (d)
info "(d) flipped byte in a snapshot object"
fresh_repo
flip_middle "$REPO/snapshots/$s2"

run_rc ob snapshots
cat "$T/out" "$T/err" >"$T/all"
echo "snapshots: exit $RC"
[ "$RC" = 0 ] || [ "$RC" = 1 ] || problem "(d) snapshots exited $RC, expected 0 (with a warning) or 1"
grep -q "$s2" "$T/all" || grep -q "${s2:0:8}" "$T/all" ||
    { cat "$T/all"; problem "(d) snapshots does not name the damaged snapshot $s2"; }

run_rc ob check
[ "$RC" = 3 ] || problem "(d) check exited $RC, expected 3"
cat "$T/out" "$T/err" >"$T/all"
grep -q "${s2:0:8}" "$T/all" || { cat "$T/all"; problem "(d) check does not name the damaged snapshot $s2"; }

# One damaged snapshot must not take the others down with it: the intact
# snapshot still restores, and new backups still work.
run_rc ob restore files "$s1" --target "$T/dst"
if [ "$RC" != 0 ]; then
    cat "$T/err"
    problem "(d) restore of the intact snapshot $s1 fails (exit $RC) because another snapshot is damaged"
else
    # small-03.txt changed after s1: compare everything else, then it.
    cmp -s "$src/big.bin" "$T/dst$src/big.bin" || problem "(d) restored big.bin differs"
    [ "$(cat "$T/dst$src/sub/small-03.txt")" = "$(head -c -8 "$src/sub/small-03.txt")" ] ||
        problem "(d) restored small-03.txt is not the s1 version"
fi
run_rc ob backup files "$src"
[ "$RC" = 0 ] || { cat "$T/err"; problem "(d) backup fails (exit $RC) because one old snapshot is damaged"; }

finish
