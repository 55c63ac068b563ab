#!/usr/bin/env bash
# repair index and the lost-pack recovery path (docs/RELIABILITY.md,
# "Corruption and repair"):
#   (a) every index file deleted: repair index rebuilds it; check --read-data
#       passes and both snapshots restore byte-identical
#   (b) an index file damaged: the same, and --dry-run changes nothing
#   (c) a pack only the second snapshot uses is lost: check names snapshot 2
#       (not 1); repair index; forget snapshot 2; prune; check --read-data
#       passes and snapshot 1 restores byte-identical
#   (d) a pack whose directory (its tail) is cut off is salvaged through the
#       old index
. "$(dirname "$0")/lib.sh"
[ "$S3_MODE" = 1 ] && { echo "posix only: the test edits repository files"; exit 0; }

src="$T/src"
mkdir -p "$src/sub"
python3 - "$src" <<'PY'
import random, sys
r = random.Random(7)
root = sys.argv[1]
open(root + "/big.bin", "wb").write(r.randbytes(3 * 1024 * 1024))
for i in range(10):
    open("%s/sub/f-%02d.txt" % (root, i), "w").write("file %d\n" % i * (i + 1))
PY
init_repo
ob --json backup files "$src" >"$T/s1.json"
s1=$(json_get "$T/s1.json" 'j["id"]')
cp -a "$src" "$T/src1"
ls "$REPO"/data/*/* | sort >"$T/packs1"
python3 -c "import os; open('$src/new.bin','wb').write(os.urandom(200000))"
echo changed >>"$src/sub/f-03.txt"
ob --json backup files "$src" >"$T/s2.json"
s2=$(json_get "$T/s2.json" 'j["id"]')
cp -a "$src" "$T/src2"
ob check --read-data >/dev/null || fail "the pristine repository does not check clean"
cp -a "$REPO" "$T/pristine"
fresh_repo() { rm -rf "$REPO" "$T/dst"; cp -a "$T/pristine" "$REPO"; }

# restores_identical SNAP COPY: restore SNAP and compare with the copy of
# the source taken when it was backed up.
restores_identical() {
    rm -rf "$T/dst"
    run_rc ob restore files "$1" --target "$T/dst"
    [ "$RC" = 0 ] || { cat "$T/err"; problem "$3: restore of ${1:0:8} exited $RC"; return; }
    diff -r "$2" "$T/dst$src" >/dev/null || problem "$3: snapshot ${1:0:8} does not restore byte-identical"
}

# ---------------------------------------------------------------- (a)
info "(a) every index file deleted"
fresh_repo
rm -f "$REPO"/index/*
run_rc ob check
[ "$RC" = 3 ] || problem "(a) check without an index exited $RC, expected 3"
grep -q "repair index" "$T/out" "$T/err" || problem "(a) check does not point at repair index"
expect_code 0 ob --json repair index --dry-run
[ "$(ls "$REPO/index" | wc -l)" = 0 ] || problem "(a) repair --dry-run wrote an index file"
expect_code 0 ob --json repair index
[ "$(json_get "$T/out" 'j["packs_damaged"]')" = 0 ] || problem "(a) repair found damaged packs"
[ "$(json_get "$T/out" 'j["data_lost"]')" = False ] || problem "(a) repair says data was lost"
[ "$(ls "$REPO/index" | wc -l)" -ge 1 ] || problem "(a) repair wrote no index file"
run_rc ob check --read-data
[ "$RC" = 0 ] || { cat "$T/out" "$T/err"; problem "(a) check --read-data after repair exited $RC"; }
restores_identical "$s1" "$T/src1" "(a)"
restores_identical "$s2" "$T/src2" "(a)"

# ---------------------------------------------------------------- (b)
info "(b) a damaged index file; --dry-run changes nothing"
fresh_repo
idx=$(ls "$REPO"/index | head -1)
python3 - "$REPO/index/$idx" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0x20; open(p, "wb").write(bytes(b))
PY
before=$(repo_fingerprint)
expect_code 0 ob repair index --dry-run
grep -q "$idx" "$T/err" || { cat "$T/err"; problem "(b) repair --dry-run does not name the damaged index file"; }
[ "$(repo_fingerprint)" = "$before" ] || problem "(b) repair --dry-run changed the repository"
expect_code 0 ob repair index
[ -e "$REPO/index/$idx" ] && problem "(b) the damaged index file is still there"
run_rc ob check --read-data
[ "$RC" = 0 ] || { cat "$T/out" "$T/err"; problem "(b) check --read-data after repair exited $RC"; }
restores_identical "$s1" "$T/src1" "(b)"
restores_identical "$s2" "$T/src2" "(b)"
# A second repair of a sound repository is harmless.
expect_code 0 ob repair index
expect_code 0 ob check

# ---------------------------------------------------------------- (c)
info "(c) a pack only snapshot 2 uses is lost"
fresh_repo
lost=$(ls "$REPO"/data/*/* | sort | comm -13 "$T/packs1" - | xargs ls -S | head -1)
[ -n "$lost" ] || fail "(c) snapshot 2 wrote no pack of its own"
lostid=$(basename "$lost")
rm "$lost"
run_rc ob --json check
[ "$RC" = 3 ] || problem "(c) check exited $RC, expected 3"
affected=$(json_get "$T/out" '" ".join(a["id"] for a in j["affected_snapshots"])')
[ "$affected" = "$s2" ] || problem "(c) check lists affected snapshots '$affected', expected only $s2"
grep -q "$lostid" "$T/out" || problem "(c) check --json does not name the lost pack"
run_rc ob check
grep -q "${s2:0:8}" "$T/out" || { cat "$T/out"; problem "(c) check does not list snapshot 2 as affected"; }
grep -A3 "cannot be restored in full" "$T/out" | grep -q "${s1:0:8}" && problem "(c) check lists snapshot 1 as affected"

info "(c) restore of the affected snapshot fails naming the file and the missing data"
run_rc ob restore files "$s2" --target "$T/dst"
[ "$RC" = 1 ] || problem "(c) restore of the affected snapshot exited $RC, expected 1"
grep -q "$lostid\|not in any index" "$T/err" || { cat "$T/err"; problem "(c) restore error does not name the missing data"; }

info "(c) recovery: repair index, forget snapshot 2, prune"
expect_code 0 ob --json repair index
[ "$(json_get "$T/out" 'j["packs_missing"]')" = 1 ] || problem "(c) repair did not drop the lost pack"
[ "$(json_get "$T/out" 'j["data_lost"]')" = True ] || problem "(c) repair does not say data was lost"
run_rc ob --json check
[ "$RC" = 3 ] || problem "(c) check after repair exited $RC, expected 3 (snapshot 2 still lost data)"
affected=$(json_get "$T/out" '" ".join(a["id"] for a in j["affected_snapshots"])')
[ "$affected" = "$s2" ] || problem "(c) after repair, check lists '$affected', expected only $s2"
expect_code 0 ob forget "${s2:0:8}"
expect_code 0 ob prune
run_rc ob check --read-data
[ "$RC" = 0 ] || { cat "$T/out" "$T/err"; problem "(c) check --read-data after the recovery exited $RC"; }
restores_identical "$s1" "$T/src1" "(c)"

# ---------------------------------------------------------------- (d)
info "(d) a pack without its directory is salvaged through the old index"
fresh_repo
pack=$(ls -S "$REPO"/data/*/* | head -1)
size=$(stat -c %s "$pack")
truncate -s $((size - 60)) "$pack"
expect_code 0 ob --json repair index
[ "$(json_get "$T/out" 'j["packs_salvaged"]')" = 1 ] || { cat "$T/out"; problem "(d) the pack was not salvaged"; }
restores_identical "$s1" "$T/src1" "(d)"
restores_identical "$s2" "$T/src2" "(d)"

info "usage"
expect_code 2 ob repair
expect_code 2 ob repair snapshots
expect_code 0 ob repair --help
assert_grep "dry-run" "$T/out"
finish
