#!/usr/bin/env bash
# forget: snapshots at synthetic times (backup --time), each keep rule and
# combinations checked against hand-computed keep sets (--dry-run --json),
# grouping by set, kind, host and paths, refusal without rules, --dry-run touching
# nothing, and a real forget removing exactly the computed snapshots.
. "$(dirname "$0")/lib.sh"
export TZ=UTC   # buckets are local time; the expectations below are UTC

init_repo
mkdir -p "$T/src"

# snap LABEL TIME [backup options]: a snapshot at TIME; the label names it
# in expectations.  The source changes every time so each is distinct.
snap() {
    local label=$1 when=$2; shift 2
    echo "$label" >"$T/src/label.txt"
    ob --json backup files --time "$when" "$@" "$T/src" >"$T/snap.json"
    echo "$label $(json_get "$T/snap.json" 'j["id"]')" >>"$T/labels"
}

# Newest first, as the rules count them (set app, kind files):
snap N12 "2023-06-01 12:00:00" --set app --tag keep=yes
snap N11 "2023-12-31 23:00:00" --set app
snap N10 "2024-01-01 10:00:00" --set app
snap N9  "2024-01-15 10:00:00" --set app
snap N8  "2024-02-01 09:00:00" --set app
snap N7  "2024-02-01 18:00:00" --set app
snap N6  "2024-02-28 10:00:00" --set app
snap N5  "2024-03-01 08:00:00" --set app
snap N4  "2024-03-01 20:00:00" --set app
snap N3  "2024-03-02 09:00:00" --set app
snap N2  "2024-03-03 09:00:00" --set app
snap N1  "2024-03-03 23:00:00" --set app
# other groups
snap O2 "2024-03-01 00:00:00" --set other
snap O1 "2024-03-05 00:00:00" --set other
snap U1 "2024-01-01 00:00:00"

# kept_labels FILE SET KIND: labels of the kept snapshots of one group in
# a forget --json output, sorted
kept_labels() {
    python3 - "$1" "$2" "$3" "$T/labels" <<'EOF'
import json, sys
out, st, kind, labels = sys.argv[1:5]
names = dict(reversed(l.split()) for l in open(labels))
j = json.load(open(out))
ids = [k["id"] for g in j["groups"] if g["set"] == st and g["kind"] == kind for k in g["keep"]]
print(" ".join(sorted(names[i] for i in ids)))
EOF
}

# rule "EXPECTED" ARGS...: forget --dry-run --json --set app ARGS keeps EXPECTED
rule() {
    local want=$1; shift
    run_rc ob --json forget --set app --dry-run "$@"
    [ "$RC" = 0 ] || { cat "$T/err"; problem "forget $* exited $RC"; return; }
    local got
    got=$(kept_labels "$T/out" app files)
    [ "$got" = "$want" ] || problem "forget $*: kept '$got', expected '$want'"
}

info "each rule, by hand"
rule "N1 N2 N3"             --keep-last 3
rule "N1 N3 N4"             --keep-daily 3                  # Mar 3, Mar 2, Mar 1
rule "N1 N2"                --keep-hourly 2                 # Mar 3 23h, Mar 3 9h
rule "N1 N7"                --keep-weekly 2                 # 2024-W09, 2024-W05
rule "N1 N6"                --keep-monthly 2                # Mar, Feb
rule "N1 N11 N12"           --keep-yearly 5                 # 2024, 2023, + the oldest (3 years left)
rule "N1 N2 N3"             --keep-within 2d                # after Mar 1 23:00
rule "N1 N2 N3 N4 N5 N6"    --keep-within 1w                # after Feb 25 23:00
rule "N1 N2 N3 N4 N5 N6"    --keep-within 1m                # after Feb 3 23:00 (a calendar month)
rule "N1 N2 N3 N4 N5 N6 N7 N8" --keep-within 5w             # after Jan 28 23:00
rule "N1 N12"               --keep-last 1 --keep-tag keep=yes
info "combinations"
# last 2: N1 N2; daily 4: N1 N3 N4 N6; monthly 3: N1 N6 N9; within 1d: N1 N2
rule "N1 N2 N3 N4 N6 N9"    --keep-last 2 --keep-daily 4 --keep-monthly 3 --keep-within 1d
# weekly 3: N1 (W09) N7 (W05) N9 (W03); yearly 1: N1
rule "N1 N7 N9"             --keep-weekly 3 --keep-yearly 1
# daily 30 covers every day (10 distinct), so the newest of each day plus
# the oldest snapshot: all but N2 (Mar 3 9h), N5 (Mar 1 8h) and N8 (Feb 1 9h)
rule "N1 N10 N11 N12 N3 N4 N6 N7 N9" --keep-daily 30

info "reasons are reported"
ob --json forget --set app --dry-run --keep-last 2 --keep-daily 4 --keep-monthly 3 --keep-within 1d >"$T/r.json"
n1=$(awk '$1=="N1"{print $2}' "$T/labels")
reasons=$(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(', '.join(next(k['reasons'] for g in j['groups'] for k in g['keep'] if k['id']==sys.argv[2])))" "$T/r.json" "$n1")
[ "$reasons" = "last 1, daily 1, monthly 1, within 1d" ] || problem "reasons of N1: '$reasons'"
[ "$(json_get "$T/r.json" 'j["kept"]')" = 6 ] || problem "kept count: $(json_get "$T/r.json" 'j["kept"]')"
[ "$(json_get "$T/r.json" 'j["removed"]')" = 6 ] || problem "removed count: $(json_get "$T/r.json" 'j["removed"]')"
ob forget --set app --dry-run --keep-daily 3 >"$T/human.out"
assert_grep "keep    ${n1:0:8}  2024-03-03 23:00:00  daily 1" "$T/human.out"
assert_grep "would remove 9 snapshots, kept 3" "$T/human.out"

info "groups: per set and kind"
run_rc ob --json forget --dry-run --keep-last 1
[ "$(json_get "$T/out" 'len(j["groups"])')" = 3 ] || problem "expected 3 groups, got $(json_get "$T/out" 'len(j["groups"])')"
[ "$(kept_labels "$T/out" app files)" = "N1" ] || problem "app/files group"
[ "$(kept_labels "$T/out" other files)" = "O1" ] || problem "other/files group"
[ "$(kept_labels "$T/out" "" files)" = "U1" ] || problem "unnamed-set group"
run_rc ob --json forget --dry-run --keep-last 1 --kind config
[ "$(json_get "$T/out" 'len(j["groups"])')" = 0 ] || problem "--kind config selected files snapshots"

info "no rule, bad values: usage errors, nothing removed"
before=$(repo_fingerprint)
expect_code 2 ob forget
assert_grep "refusing" "$T/err"
expect_code 2 ob forget --keep-daily 0
expect_code 2 ob forget --keep-within 5x
expect_code 2 ob forget --keep-tag novalue
expect_code 2 ob forget --keep-last 1 --kind tapes
info "--dry-run changes nothing"
ob forget --dry-run --keep-last 1 --prune >/dev/null
ob prune --dry-run >/dev/null
[ "$(repo_fingerprint)" = "$before" ] || problem "a refused or dry-run forget changed the repository"

info "a real forget removes exactly the computed snapshots"
ob --json forget --set app --keep-last 2 --keep-daily 4 --keep-monthly 3 --keep-within 1d >"$T/real.json"
ob --json snapshots --set app >"$T/left.json"
left=$(python3 - "$T/left.json" "$T/labels" <<'EOF'
import json, sys
names = dict(reversed(l.split()) for l in open(sys.argv[2]))
print(" ".join(sorted(names[s["id"]] for s in json.load(open(sys.argv[1])))))
EOF
)
[ "$left" = "N1 N2 N3 N4 N6 N9" ] || problem "after forget, set app has '$left'"
[ "$(ob --json snapshots | json_get /dev/stdin 'len(j)')" = 9 ] || problem "other groups were touched"
run_rc ob check
[ "$RC" = 0 ] || { cat "$T/out" "$T/err"; problem "check after forget exited $RC"; }
[ -z "$(ls "$REPO/locks" 2>/dev/null)" ] || problem "forget left a lock"

info "the unnamed set: two sources are two groups, keep-last 1 keeps the newest of each"
# Grouped by set and kind alone, the older source's only snapshot was removed.
mkdir -p "$T/two a" "$T/two b"
echo a >"$T/two a/f"
echo b >"$T/two b/f"
ob --json backup files --time "2024-04-01 00:00:00" "$T/two a" >"$T/a.json"
ob --json backup files --time "2024-04-02 00:00:00" "$T/two b" >"$T/b.json"
ob --json backup files --time "2024-04-03 00:00:00" "$T/two b" >"$T/b2.json"
a=$(json_get "$T/a.json" 'j["id"]')
b=$(json_get "$T/b.json" 'j["id"]')
b2=$(json_get "$T/b2.json" 'j["id"]')
ob --json forget --keep-last 1 >"$T/two.json"
report_problems "forget of two sources" < <(python3 - "$T/two.json" "$T/two a" "$T/two b" "$a" "$b" "$b2" <<'EOF'
import json, socket, sys
path, pa, pb, a, b, b2 = sys.argv[1:7]
g = {tuple(x.get("paths", ())): x for x in json.load(open(path))["groups"] if x["set"] == ""}
for p, keep, remove in ((pa, [a], []), (pb, [b2], [b])):
    x = g.get((p,))
    if not x:
        print(f"no group for {p}: {sorted(g)}")
        continue
    got = ([k["id"] for k in x["keep"]], [k["id"] for k in x["remove"]])
    if got != (keep, remove):
        print(f"group {p}: kept, removed {got}, expected {(keep, remove)}")
    if x["kind"] != "files" or x["host"] != socket.gethostname():
        print(f"group {p}: kind {x['kind']}, host {x['host']}")
EOF
)
ids=$(ob --json snapshots | json_get /dev/stdin '" ".join(s["id"] for s in j)')
case " $ids " in *" $a "*) ;; *) problem "the only snapshot of '$T/two a' was removed" ;; esac
case " $ids " in *" $b "*) problem "the older snapshot of '$T/two b' is still there" ;; esac
ob forget --keep-last 1 --dry-run >"$T/two.txt"
assert_grep "set (none), kind files, host $(hostname), $T/two a: keeping 1 of 1 snapshot" "$T/two.txt"
assert_grep "set app, kind files: keeping 1 of" "$T/two.txt"

finish
