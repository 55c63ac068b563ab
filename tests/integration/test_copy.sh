#!/usr/bin/env bash
# copy --from A --to B between repositories with different passwords (and
# so different keys): only missing data is written, a second run copies
# nothing, copies restore byte-identical, and the WAL archive goes along.
. "$(dirname "$0")/lib.sh"

A="$T/repoA"
B="$T/repoB"
printf 'password of A\n' >"$T/pwa"
printf 'password of B\n' >"$T/pwb"
chmod 0600 "$T/pwa" "$T/pwb"
cat >"$T/conf" <<EOF
[repo.a]
url = $A
password-file = $T/pwa

[repo.b]
url = $B
password-file = $T/pwb
EOF
chmod 0600 "$T/conf"
oc() { "$OPSBACKUP" -c "$T/conf" "$@"; }
oc -r a init --kdf-n 1024 >/dev/null
oc -r b init --kdf-n 1024 >/dev/null

python3 "$TOOLS/mktree.py" "$T/src" >/dev/null
head -c 4000000 /dev/urandom >"$T/src/big.bin"

info "copy one snapshot to a repository with another password"
oc -r a -q backup files --set app "$T/src"
expect_code 0 oc --json copy --from a --to b
[ "$(json_get "$T/out" "len(j['copied'])")" = 1 ] || fail "expected one snapshot copied"
ADDED1=$(json_get "$T/out" "j['bytes_added']")
[ "$ADDED1" -gt 4000000 ] || problem "first copy wrote only $ADDED1 bytes"

info "a second run copies nothing"
expect_code 0 oc --json copy --from a --to b
[ "$(json_get "$T/out" "len(j['copied'])")" = 0 ] || problem "second copy copied again"
[ "$(json_get "$T/out" "j['already']")" = 1 ] || problem "second copy did not see the copy"
[ "$(json_get "$T/out" "j['bytes_added']")" = 0 ] || problem "second copy wrote data"

info "after a small change only the new data is written"
echo "one more line" >>"$T/src/small-change.txt"
oc -r a -q backup files --set app "$T/src"
expect_code 0 oc --json copy --from a --to b
ADDED2=$(json_get "$T/out" "j['bytes_added']")
echo "first copy wrote $ADDED1 bytes, the incremental one $ADDED2"
[ "$ADDED2" -lt 100000 ] || problem "incremental copy wrote $ADDED2 bytes"

info "both copies restore byte-identical from B, and B checks clean"
n=0
oc -r b --json snapshots >"$T/snaps.json"
for id in $(json_get "$T/snaps.json" "' '.join(s['id'] for s in j)"); do
    n=$((n + 1))
    rm -rf "$T/r"
    oc -r b restore files "$id" --target "$T/r" >/dev/null
    python3 "$TOOLS/treecmp.py" --ignore-atime "$T/src" "$T/r$T/src" >/dev/null 2>&1 || [ $n = 1 ] \
        || problem "restored copy $id differs"
done
[ $n = 2 ] || problem "B has $n snapshots, expected 2"
# The last one must equal the current source exactly.
python3 "$TOOLS/treecmp.py" --ignore-atime "$T/src" "$T/r$T/src" || problem "latest copy differs"
expect_code 0 oc -r b check --read-data
# Time, set and paths are kept.
oc -r a --json snapshots >"$T/a.json"
[ "$(json_get "$T/a.json" "sorted((s['time'], s['set'], tuple(s['paths'])) for s in j)")" = \
  "$(json_get "$T/snaps.json" "sorted((s['time'], s['set'], tuple(s['paths'])) for s in j)")" ] \
    || problem "copied snapshots do not keep time, set and paths"

info "selected snapshots only, and bad arguments"
oc -r a -q backup files --set other "$T/src/small-change.txt" 2>/dev/null || oc -r a -q backup files --set other "$T/src"
expect_code 0 oc --json copy --from a --to b --set app
[ "$(json_get "$T/out" "len(j['copied'])")" = 0 ] || problem "--set app copied another set"
expect_code 2 oc copy --from a --to a
expect_code 2 oc copy --from a
expect_code 1 oc copy --from a --to b --to-password-file "$T/pwa"
assert_grep "wrong password\|no key slot\|password" "$T/err"

info "backup with several --repo: the same snapshot in each"
expect_code 0 oc -r a -r b --json backup files --set multi "$T/src/small-change.txt"
[ "$(json_get "$T/out" "[c['ok'] for c in j['copies']]")" = "[True]" ] || problem "no copy reported for b"
ID_A=$(json_get "$T/out" "j['id']")
ID_B=$(json_get "$T/out" "j['copies'][0]['snapshot']")
oc -r b --json snapshots --set multi >"$T/m.json"
[ "$(json_get "$T/m.json" "[s['id'] for s in j]")" = "['$ID_B']" ] || problem "b lacks the multi-repo snapshot"
rm -rf "$T/r2"
oc -r b restore files latest --set multi --target "$T/r2" >/dev/null
cmp -s "$T/src/small-change.txt" "$T/r2$T/src/small-change.txt" || problem "multi-repo copy differs"
info "a repository that cannot be reached fails the command, the others keep their backup"
expect_code 1 oc -r a -r "$T/nowhere" backup files --set multi "$T/src/small-change.txt"
assert_grep "nowhere" "$T/err"
oc -r a --json snapshots --set multi >"$T/m2.json"
[ "$(json_get "$T/m2.json" "len(j)")" = 2 ] || problem "the primary lost its backup when a copy failed"
expect_code 2 oc -r a -r b ls latest
assert_grep "one repository" "$T/err"

info "snapshots -r a -r b: which backup is where"
expect_code 0 oc -r a -r b --json snapshots --set multi
[ "$(json_get "$T/out" "[(r['repositories']['a'] is not None, r['repositories']['b'] is not None) for r in j]")" = \
  "[(True, True), (True, False)]" ] || problem "snapshots where: $(cat "$T/out")"
expect_code 0 oc -r a -r b snapshots
assert_grep "in 2 repositories" "$T/out"

info "check on each repository"
expect_code 0 oc -r a -r b check --read-data
[ "$(grep -c 'no errors found' "$T/out")" = 2 ] || problem "check did not cover both repositories"

info "WAL files go along"
printf 'x%.0s' $(seq 1 100) >"$T/wal1"
mkdir -p "$T/pg_wal"
head -c 1048576 /dev/urandom >"$T/pg_wal/000000010000000000000007"
expect_code 0 oc -r a archive-push "$T/pg_wal/000000010000000000000007"
expect_code 0 oc --json copy --from a --to b
[ "$(json_get "$T/out" "j['wal_files']")" = 1 ] || problem "WAL file not copied"
expect_code 0 oc -r b archive-get 000000010000000000000007 "$T/back"
cmp -s "$T/back" "$T/pg_wal/000000010000000000000007" || problem "copied WAL file differs"
finish
