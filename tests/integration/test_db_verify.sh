#!/usr/bin/env bash
# verify db: restores a snapshot into a throwaway database, compares every
# table's row count with the counts recorded at backup time, runs the
# --check-sql queries, drops the throwaway database; exit 3 on a mismatch
# (a snapshot tampered with by obtamper).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"

OBTAMPER="$OPSBACKUP_TEST_TOOLS/obtamper"
[ -x "$OBTAMPER" ] || fail "obtamper not built ($OBTAMPER)"

pg_start
make_app_db appdb
init_repo
pg_table_counts appdb >"$T/counts"
docs=$(pg_sql -d appdb "SELECT count(*) FROM documents")
orig=$(pg_checksum appdb)

# no_verify_dbs WHEN: no throwaway database is left.
no_verify_dbs() {
    local left
    left=$(pg_sql "SELECT datname FROM pg_database WHERE datname LIKE 'opsbackup\_verify%'" | tr '\n' ' ')
    [ -z "$left" ] || problem "$1: throwaway database(s) left behind: $left"
}

expect_code 0 ob --json backup db --dbname "dbname=appdb"
id=$(json_get "$T/out" 'j["id"]')
short=$(json_get "$T/out" 'j["short_id"]')

info "verify db latest --check-sql"
start=$(date +%s)
expect_code 0 ob verify db latest --check-sql 'SELECT COUNT(*) FROM documents'
info "verify took $(( $(date +%s) - start )) s"
cat "$T/out"
grep -qw "$docs" "$T/out" || problem "verify output does not show the check result ($docs)"
no_verify_dbs "verify db latest"
[ "$(pg_checksum appdb)" = "$orig" ] || problem "verify db changed appdb"

info "verify db --json"
expect_code 0 ob --json verify db "$short" --check-sql 'SELECT COUNT(*) FROM documents' \
    --check-sql "SELECT count(*) FROM customers WHERE name LIKE '顧客%'"
cp "$T/out" "$T/v.json"
report_problems "verify --json" < <(python3 - "$T/v.json" "$T/counts" "$docs" <<'EOF'
import json, sys
path, counts_path, docs = sys.argv[1:4]
try:
    j = json.load(open(path))
except Exception as e:
    print(f"output is not JSON: {e}: {open(path).read()[:300]!r}")
    sys.exit(0)
if not isinstance(j, dict):
    print(f"output is a {type(j).__name__}, expected an object")
    sys.exit(0)
if j.get("ok") is not True:
    print(f"ok is {j.get('ok')!r}, expected true")
want = [l.rsplit(" ", 1)[0] for l in open(counts_path)]
t = j.get("tables")
if t is None:
    print(f"no 'tables' (keys: {sorted(j)})")
else:
    text = json.dumps(t, ensure_ascii=False)
    missing = [n for n in want if n not in text]
    if missing:
        print(f"tables does not cover {missing}")
    lo = t.get("pg_catalog.pg_largeobject_metadata") if isinstance(t, dict) else None
    if lo != {"expected": 5, "actual": 5, "ok": True}:
        print(f"the 5 large objects of appdb: tables['pg_catalog.pg_largeobject_metadata'] = {lo}")
    if isinstance(t, dict) and isinstance(t.get("public.documents"), dict):
        d = t["public.documents"]
        if str(docs) not in json.dumps(d):
            print(f"tables['public.documents'] = {d}, no {docs} in it")
dur = [k for k in j if "duration" in k or "seconds" in k]
if not dur:
    print(f"no duration field (keys: {sorted(j)})")
elif not all(isinstance(j[k], (int, float)) for k in dur):
    print(f"duration fields not numbers: { {k: j[k] for k in dur} }")
rest = json.dumps({k: v for k, v in j.items() if k != "tables"}, ensure_ascii=False)
if docs not in rest or "1000" not in rest:
    print(f"the check results ({docs} and 1000) are not in the output: {rest[:400]}")
EOF
)
no_verify_dbs "verify db --json"

info "verify compares with the recorded counts, not the live database"
pg_sql -d appdb "INSERT INTO empty_things VALUES (1, 'now not empty'); DELETE FROM invoices WHERE no < 1100"
expect_code 0 ob verify db
no_verify_dbs "verify db (live database changed)"

info "a failing check SQL"
run_rc ob verify db latest --check-sql 'SELECT count(*) FROM no_such_table'
[ "$RC" -ne 0 ] || problem "verify with a failing --check-sql exited 0"
[ "$RC" -eq 3 ] || info "(a failing --check-sql exits $RC)"
grep -q 'no_such_table' "$T/out" "$T/err" || problem "the failing check's error (no_such_table) is not shown"
no_verify_dbs "verify with a failing check"

info "tampered snapshot: documents recorded one row too many"
new=$("$OBTAMPER" "$REPO" "$OPSBACKUP_PASSWORD_FILE" latest public.documents 1) || fail "obtamper failed"
[ "$new" != "$id" ] || fail "obtamper did not make a new snapshot"
expect_code 0 ob --json snapshots --kind db
[ "$(json_get "$T/out" '" ".join(s["id"] for s in j)')" = "$new" ] || fail "after obtamper the db snapshots are not just $new: $(cat "$T/out")"
run_rc ob verify db latest
cat "$T/out" "$T/err"
[ "$RC" -eq 3 ] || problem "verify of the tampered snapshot exited $RC, expected 3"
grep -q 'documents' "$T/out" "$T/err" || problem "verify does not name the mismatching table (documents)"
grep -qw "$((docs + 1))" "$T/out" "$T/err" || problem "verify does not show the recorded count $((docs + 1))"
no_verify_dbs "verify of the tampered snapshot"
run_rc ob --json verify db "${new:0:8}"
[ "$RC" -eq 3 ] || problem "verify --json of the tampered snapshot exited $RC, expected 3"
if python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out" 2>/dev/null; then
    [ "$(json_get "$T/out" 'j.get("ok")')" = False ] || problem "verify --json of the tampered snapshot: ok is not false"
    grep -q 'public.documents' "$T/out" || problem "verify --json does not name public.documents"
else
    problem "verify --json of the tampered snapshot printed no JSON: $(head -c 300 "$T/out")"
fi
no_verify_dbs "verify --json of the tampered snapshot"

info "tampered snapshot: one large object fewer recorded"
lo=$("$OBTAMPER" "$REPO" "$OPSBACKUP_PASSWORD_FILE" "${new:0:8}" pg_catalog.pg_largeobject_metadata -1) ||
    fail "obtamper failed"
run_rc ob --json verify db "${lo:0:8}"
[ "$RC" -eq 3 ] || problem "verify of the snapshot recording 4 large objects exited $RC, expected 3"
report_problems "verify --json, large objects" < <(python3 - "$T/out" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
lo = j.get("tables", {}).get("pg_catalog.pg_largeobject_metadata")
if lo != {"expected": 4, "actual": 5, "ok": False}:
    print(f"large objects: {lo}, expected 4 recorded, 5 restored, not ok")
if j.get("mismatches") != 2:
    print(f"mismatches {j.get('mismatches')}, expected 2 (documents and the large objects)")
EOF
)
no_verify_dbs "verify of the large objects"

info "a dump command leaving data or tables out: verify expects what the dump holds"
# Counted with SQL, the table whose data --exclude-table-data left out was
# expected to come back with its rows, and the table -T left out to exist.
expect_code 0 ob -v -v --json backup db --dbname "dbname=appdb" \
    --dump-command "$PGBIN/pg_dump -U postgres --exclude-table-data=invoices -T empty_things"
ex=$(json_get "$T/out" 'j["id"]')
[ "$(json_get "$T/out" 'j["extra"]["globals"]')" = True ] ||
    problem "the globals were not stored with options after pg_dump: $(cat "$T/err")"
assert_grep "1 not in the dump" "$T/err"
expect_code 0 ob --json verify db "${ex:0:8}"
report_problems "verify of a dump with exclusions" < <(python3 - "$T/out" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1])).get("tables", {})
if t.get("public.invoices") != {"expected": 0, "actual": 0, "ok": True}:
    print(f"public.invoices (data excluded): {t.get('public.invoices')}, expected 0 rows")
if "public.empty_things" in t:
    print(f"public.empty_things (table excluded) is compared: {t['public.empty_things']}")
if not (t.get("public.documents") or {}).get("ok"):
    print(f"public.documents: {t.get('public.documents')}")
EOF
)
no_verify_dbs "verify of a dump with exclusions"
# A snapshot written before quoted keys (no extra.table_keys) is read the
# old way: bare parts, the table after the first dot.
old=$("$OBTAMPER" "$REPO" "$OPSBACKUP_PASSWORD_FILE" "${ex:0:8}" extra table_keys none) ||
    fail "obtamper failed"
expect_code 0 ob --json verify db "${old:0:8}"
[ "$(json_get "$T/out" 'j["tables"]["public.documents"]["ok"]')" = True ] ||
    problem "verify of a snapshot without table_keys: $(head -c 400 "$T/out")"
no_verify_dbs "verify of a snapshot without table_keys"

info "tables whose schema or name holds a dot or a quote each keep their own count"
# Keyed "schema.table" bare, schema a.b with table c and schema a with table
# b.c were both "a.b.c": one count overwrote the other, so verify never
# checked "a.b".c at all.
pg_sql "CREATE DATABASE dotdb"
pg_sql -d dotdb "$(cat <<'SQL'
CREATE SCHEMA "a.b";
CREATE SCHEMA a;
CREATE SCHEMA "q""s";
CREATE TABLE "a.b".c (n int);
CREATE TABLE a."b.c" (n int);
CREATE TABLE "q""s"."t.1" (n int);
INSERT INTO "a.b".c SELECT generate_series(1, 3);
INSERT INTO a."b.c" SELECT generate_series(1, 5);
INSERT INTO "q""s"."t.1" SELECT generate_series(1, 7);
SQL
)"
expect_code 0 ob --json backup db --dbname "dbname=dotdb"
dot=$(json_get "$T/out" 'j["id"]')
expect_code 0 ob --json verify db "${dot:0:8}"
cp "$T/out" "$T/dot.json"
report_problems "verify of dotted names" < <(python3 - "$T/dot.json" <<'EOF2'
import json, sys
j = json.load(open(sys.argv[1]))
want = {'"a.b".c': 3, 'a."b.c"': 5, '"q""s"."t.1"': 7}
t = j.get("tables", {})
if sorted(t) != sorted(want):
    print(f"tables has {sorted(t)}, expected {sorted(want)}")
for k, n in want.items():
    v = t.get(k, {})
    if v.get("expected") != n or v.get("actual") != n or v.get("ok") is not True:
        print(f"tables[{k!r}] = {v}, expected {n} rows recorded and restored")
EOF2
)
no_verify_dbs "verify of dotted names"
finish
