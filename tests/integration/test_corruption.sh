#!/usr/bin/env bash
# Damage a repository and require that opsbackup notices, names the damaged
# object, fails with the documented exit code (1 failure, 3 a check found a
# problem) and never crashes.  For each object type, a flipped byte, a
# truncation and a deletion (docs/RELIABILITY.md has the matrix):
#   (a) pack: flipped byte            (c) pack deleted   (c2) pack truncated
#   (b) index file truncated          (b2) flipped byte  (b3) deleted
#   (d) snapshot: flipped byte        (d2) truncated     (d3) deleted
#   (e) tree (a region of a pack): flipped byte, truncated, deleted
#   (f) key slot: flipped byte, truncated, deleted
#   (g) WAL object: flipped byte, truncated, deleted
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

# all_names TAG ID...: check, restore... output ($T/out + $T/err) names each ID
names_all() {
    local tag=$1; shift
    cat "$T/out" "$T/err" >"$T/all"
    for id in "$@"; do
        grep -q -- "$id" "$T/all" || { cat "$T/all"; problem "$tag: the output does not name $id"; }
    done
}
truncate_half() { truncate -s $(($(stat -c %s "$1") / 2)) "$1"; }

# ---------------------------------------------------------------- (b2, b3)
for how in flip delete; do
    info "(b) index file: $how"
    fresh_repo
    idx=$(cd "$REPO" && find index -type f ! -name '.*' | sort | head -1)
    idxid=$(basename "$idx")
    if [ $how = flip ]; then flip_middle "$REPO/$idx"; else rm "$REPO/$idx"; fi
    run_rc ob check
    [ "$RC" = 3 ] || problem "(b $how) check exited $RC, expected 3"
    if [ $how = flip ]; then
        names_all "(b flip) check" "$idxid"
        run_rc ob restore files "$s2" --target "$T/dst"
        [ "$RC" = 1 ] || problem "(b flip) restore exited $RC, expected 1"
        names_all "(b flip) restore" "$idxid"
    else
        # A deleted index file leaves no name behind: check names the packs
        # it indexed (in no index now) and the files whose chunks are gone.
        grep -q "is not in any index" "$T/out" || { cat "$T/out"; problem "(b delete) check does not name the packs the lost index file listed"; }
        grep -q "repair index" "$T/out" || problem "(b delete) check does not point at repair index"
        run_rc ob --json check
        victim=$(json_get "$T/out" 'j["affected_snapshots"][0]["id"]')
        run_rc ob restore files "$victim" --target "$T/dst"
        [ "$RC" = 1 ] || problem "(b delete) restore exited $RC, expected 1"
        grep -q "not in any index" "$T/err" || { cat "$T/err"; problem "(b delete) restore error does not name the missing blob"; }
    fi
done

# ---------------------------------------------------------------- (d2, d3)
info "(d) snapshot object truncated"
fresh_repo
truncate_half "$REPO/snapshots/$s2"
run_rc ob check
[ "$RC" = 3 ] || problem "(d truncate) check exited $RC, expected 3"
names_all "(d truncate) check" "$s2"
run_rc ob restore files "$s2" --target "$T/dst"
[ "$RC" = 1 ] || problem "(d truncate) restore exited $RC, expected 1"
names_all "(d truncate) restore" "${s2:0:8}"
info "(d) snapshot object deleted: undetectable by check (a deletion is what forget does), restore names it"
fresh_repo
rm "$REPO/snapshots/$s2"
run_rc ob restore files "$s2" --target "$T/dst"
[ "$RC" != 0 ] || problem "(d delete) restore of a deleted snapshot succeeded"
names_all "(d delete) restore" "$s2"

# ---------------------------------------------------------------- (e)
for how in flip truncate delete; do
    info "(e) root tree of snapshot 1: $how"
    fresh_repo
    read -r tpack toff tlen < <("$OPSBACKUP_TEST_TOOLS/obtamper" "$REPO" "$OPSBACKUP_PASSWORD_FILE" tree "$s1")
    [ -n "$tlen" ] || fail "(e) obtamper could not locate the root tree"
    case $how in
    flip) python3 - "$REPO/$tpack" "$((toff + tlen / 2))" <<'PY'
import sys
p, off = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read()); b[off] ^= 0x01; open(p, "wb").write(bytes(b))
PY
        ;;
    truncate) truncate -s $((toff + tlen / 2)) "$REPO/$tpack" ;;
    delete) rm "$REPO/$tpack" ;;
    esac
    run_rc ob --json check
    [ "$RC" = 3 ] || problem "(e $how) check exited $RC, expected 3"
    names_all "(e $how) check" "$(basename "$tpack")"
    json_get "$T/out" '[a["id"] for a in j["affected_snapshots"]]' | grep -q "$s1" ||
        problem "(e $how) check does not list snapshot 1 as affected"
    run_rc ob restore files "$s1" --target "$T/dst"
    [ "$RC" = 1 ] || problem "(e $how) restore exited $RC, expected 1"
    names_all "(e $how) restore" "$(basename "$tpack")"
done

# ---------------------------------------------------------------- (f)
info "(f) key slots: a second slot, then each slot damaged in turn"
fresh_repo
printf 'second password\n' >"$T/pw2"
ob key add --new-password-file "$T/pw2" --kdf-n 1024 >/dev/null
cp -a "$REPO" "$T/pristine-keys"
for how in flip truncate delete; do
    rm -rf "$REPO"; cp -a "$T/pristine-keys" "$REPO"
    slot=$(ls "$REPO/keys" | head -1)
    for k in $(ls "$REPO/keys"); do
        case $how in
        flip) python3 - "$REPO/keys/$k" <<'PY'
import sys
p = sys.argv[1]; t = open(p).read()
i = t.index('"master": "') + 20
t = t[:i] + ("0" if t[i] != "0" else "1") + t[i + 1:]
open(p, "w").write(t)
PY
            ;;
        truncate) truncate_half "$REPO/keys/$k" ;;
        delete) rm "$REPO/keys/$k" ;;
        esac
    done
    info "(f) every key slot: $how"
    run_rc ob snapshots
    [ "$RC" != 0 ] || problem "(f $how) the repository opened with every key slot damaged"
    if [ $how = delete ]; then
        grep -q "no key slots" "$T/err" || { cat "$T/err"; problem "(f delete) open does not say the key slots are gone"; }
    else
        names_all "(f $how) open" "$slot"
    fi
    # One damaged slot of two: the other opens, and check names the damaged one.
    rm -rf "$REPO"; cp -a "$T/pristine-keys" "$REPO"
    ob --json key list >"$T/keys.json"
    other=$(json_get "$T/keys.json" '[k["id"] for k in j if not k["current"]][0]')
    [ -n "$other" ] || fail "(f) no second key slot"
    if [ $how != delete ]; then
        if [ $how = flip ]; then
            sed -i 's/"master": "\(.\)/"master": "\1\1/' "$REPO/keys/$other"
        else
            truncate_half "$REPO/keys/$other"
        fi
        run_rc ob check
        [ "$RC" = 3 ] || problem "(f $how) check with one damaged key slot exited $RC, expected 3"
        names_all "(f $how, one slot) check" "$other"
    fi
done

# ---------------------------------------------------------------- (g)
info "(g) WAL object: archive one segment"
fresh_repo
mkdir -p "$T/pg_wal"
head -c $((16 * 1024 * 1024)) /dev/urandom >"$T/pg_wal/000000010000000000000003"
expect_code 0 ob archive-push "$T/pg_wal/000000010000000000000003"
expect_code 0 ob check --read-data
cp -a "$REPO" "$T/pristine-wal"
for how in flip truncate delete; do
    info "(g) WAL object: $how"
    rm -rf "$REPO" "$T/back"; cp -a "$T/pristine-wal" "$REPO"
    wobj=$(cd "$REPO" && find wal -type f ! -name '.*')
    case $how in
    flip) flip_middle "$REPO/$wobj" ;;
    truncate) truncate_half "$REPO/$wobj" ;;
    delete) rm "$REPO/$wobj" ;;
    esac
    run_rc ob archive-get --prefetch 0 000000010000000000000003 "$T/back"
    # 1 is "not in the archive" (PostgreSQL ends recovery there); a damaged
    # object must stop recovery instead: above 125.
    want=126
    [ $how = delete ] && want=1
    [ "$RC" = $want ] || problem "(g $how) archive-get exited $RC, expected $want"
    [ -e "$T/back" ] && problem "(g $how) archive-get left a file behind"
    names_all "(g $how) archive-get" 000000010000000000000003
    if [ $how != delete ]; then
        names_all "(g $how) archive-get" "$(basename "$wobj")"
        run_rc ob check --read-data
        [ "$RC" = 3 ] || problem "(g $how) check --read-data exited $RC, expected 3"
        names_all "(g $how) check --read-data" "$(basename "$wobj")"
    fi
done

info "(h) one WAL segment archived twice with different contents"
# Two pushes racing past the "different content" refusal (two servers on one
# timeline) leave two objects; either could be the wrong history.
rm -rf "$REPO" "$T/back"; cp -a "$T/pristine-wal" "$REPO"
wobj=$(cd "$REPO" && find wal -type f ! -name '.*')
mv "$REPO/$wobj" "$T/first-copy"
head -c $((16 * 1024 * 1024)) /dev/urandom >"$T/pg_wal/000000010000000000000003"
expect_code 0 ob archive-push "$T/pg_wal/000000010000000000000003"
mv "$T/first-copy" "$REPO/$wobj"
[ "$(find "$REPO/wal" -type f -name '000000010000000000000003-*' | wc -l)" = 2 ] ||
    fail "(h) test setup: not two objects"
run_rc ob archive-get --prefetch 0 000000010000000000000003 "$T/back"
[ "$RC" = 126 ] || problem "(h) archive-get of a segment archived twice exited $RC, expected 126"
[ -e "$T/back" ] && problem "(h) archive-get handed over one of two contents"
assert_grep "archived 2 times with different contents" "$T/err"
run_rc ob check
[ "$RC" = 3 ] || problem "(h) check exited $RC, expected 3"
assert_grep "000000010000000000000003 is archived more than once" "$T/err"
# PostgreSQL pushing again what one of them holds succeeds (its archiver
# would otherwise retry forever and pg_wal fill up); other content is refused.
expect_code 0 ob archive-push "$T/pg_wal/000000010000000000000003"
head -c $((16 * 1024 * 1024)) /dev/urandom >"$T/pg_wal/000000010000000000000003"
expect_code 1 ob archive-push "$T/pg_wal/000000010000000000000003"
assert_grep "archived 2 times with different contents" "$T/err"

finish
