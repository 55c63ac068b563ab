#!/usr/bin/env bash
# backup db / restore db against a real PostgreSQL 15 cluster: the snapshot
# records what it should, --target-db makes an identical copy and touches
# nothing else, --replace swaps a restored copy in while a session is
# connected and keeps the old database, --roles restores the globals.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"

pg_start
info "application database"
make_app_db appdb
# A role that exists only in the globals of the backup (dropped later).
pg_sql "CREATE ROLE reporting NOLOGIN CONNECTION LIMIT 7"
# Privileges on parameters (PostgreSQL 15): for a role --roles recreates
# and for one that exists (revoked after the backup; not given back).
pg_sql "CREATE ROLE tuner NOLOGIN"
pg_sql "GRANT SET ON PARAMETER work_mem TO reporting"
pg_sql "GRANT SET ON PARAMETER work_mem TO tuner"
# A partitioned table, and rows that look like COPY's end marker once a
# backslash is escaped: the row counts come from the dump stream (D48).
pg_sql -d appdb "CREATE TABLE measurements (id int, at date, v text) PARTITION BY RANGE (at);
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO measurements SELECT i, date '2025-06-01' + i, E'\\\\.\n\\.' || i FROM generate_series(1, 300) i;"
init_repo

orig=$(pg_checksum appdb)
cp "$T/fingerprint.appdb" "$T/fingerprint.orig"
pg_table_counts appdb >"$T/counts"
docs=$(pg_sql -d appdb "SELECT count(*) FROM documents")
[ "$docs" = 20000 ] || fail "make_app_db made $docs documents"

info "backup db (human output)"
expect_code 0 ob backup db --dbname appdb  # a bare name, as psql -d and pg_dump -d take it
grep -Eq '^snapshot [0-9a-f]{8} saved' "$T/out" || { cat "$T/out"; problem "backup db does not print 'snapshot XXXXXXXX saved: ...'"; }

info "backup db --json"
expect_code 0 ob -v -v --json backup db --dbname "dbname=appdb"
cp "$T/out" "$T/b.json"
report_problems "backup db --json" < <(db_snapshot_problems "$T/b.json" appdb "$T/counts")
# Every table with rows was counted from the archive pg_dump wrote, not
# scanned again; the partitioned parent has no data of its own in the dump.
ntables=$(wc -l <"$T/counts")
assert_grep "row counts: $((ntables - 1)) of $ntables tables from the dump stream, 1 without data in the dump, 0 not in the dump, 0 with SELECT count" "$T/err"
[ "$(json_get "$T/b.json" 'j["extra"]["tables"]["public.measurements_2025"]')" = 213 ] ||
    problem "snapshot does not record 213 rows in measurements_2025"
tdocs=$(json_get "$T/b.json" 'j.get("extra", {}).get("tables", {}).get("public.documents")' || true)
[ "$tdocs" = "$docs" ] || problem "snapshot records $tdocs documents, the database has $docs"
id=$(json_get "$T/b.json" 'j["id"]')
short=$(json_get "$T/b.json" 'j["short_id"]')
[ "$(pg_checksum appdb)" = "$orig" ] || problem "backup db changed the database"

info "snapshots --kind db"
expect_code 0 ob snapshots --kind db
assert_grep "$short" "$T/out"
expect_code 0 ob --json snapshots --kind db
n=$(json_get "$T/out" 'len(j)')
[ "$n" = 2 ] || problem "snapshots --kind db --json lists $n snapshots, expected 2"
[ "$(json_get "$T/out" 'j[-1]["id"]')" = "$id" ] || problem "the newest db snapshot is not $id"
expect_code 0 ob --json snapshots --kind files
[ "$(json_get "$T/out" 'len(j)')" = 0 ] || problem "snapshots --kind files lists db snapshots"

info "restore db --target-db appdb_copy"
expect_code 0 ob restore db latest --target-db appdb_copy
pg_db_exists appdb_copy || fail "restore --target-db did not create appdb_copy"
copy=$(pg_checksum appdb_copy)
if [ "$copy" != "$orig" ]; then
    pg_fingerprint_diff orig appdb_copy
    problem "appdb_copy differs from appdb (diff above)"
fi
[ "$(pg_checksum appdb)" = "$orig" ] || problem "restore --target-db changed appdb"
# Who owns the restored objects: the roles of the original, not the restorer.
owner=$(pg_sql -d appdb_copy "SELECT tableowner FROM pg_tables WHERE tablename = 'documents'")
[ "$owner" = opscore ] || problem "restored documents table is owned by '$owner', not opscore"

info "restore db --target-db into an existing database fails and changes nothing"
dbs_before=$(pg_databases)
for target in appdb_copy appdb; do
    run_rc ob restore db latest --target-db "$target"
    [ "$RC" -ne 0 ] || problem "restore --target-db $target (existing) exited 0"
    [ -s "$T/err" ] || problem "restore --target-db $target (existing) printed no error"
done
[ "$(pg_databases)" = "$dbs_before" ] || problem "failed restores changed the list of databases: $(pg_databases | tr '\n' ' ')"
[ "$(pg_checksum appdb)" = "$orig" ] || problem "failed restore --target-db appdb changed appdb"
[ "$(pg_checksum appdb_copy)" = "$orig" ] || problem "failed restore --target-db appdb_copy changed appdb_copy"

info "restore db --jobs 2 (parallel pg_restore)"
# (Parallel pg_restore needs a seekable archive: any spool file must go.)
mkdir "$T/tmpdir"
TMPDIR="$T/tmpdir" expect_code 0 ob restore db "$short" --target-db appdb_par --jobs 2
[ -z "$(ls -A "$T/tmpdir")" ] || problem "restore --jobs left files in TMPDIR: $(ls -A "$T/tmpdir")"
[ "$(pg_checksum appdb_par)" = "$orig" ] || { pg_fingerprint_diff orig appdb_par; problem "restore --jobs 2 gives a different database"; }

info "restore db --roles recreates a dropped role"
pg_sql "REVOKE SET ON PARAMETER work_mem FROM reporting"
pg_sql "DROP ROLE reporting"
pg_sql "REVOKE SET ON PARAMETER work_mem FROM tuner"
expect_code 0 ob restore db latest --target-db appdb_noroles
[ "$(pg_sql "SELECT count(*) FROM pg_roles WHERE rolname = 'reporting'")" = 0 ] \
    || problem "restore without --roles created role reporting"
run_rc ob restore db latest --target-db appdb_roles --roles
if [ "$RC" -ne 0 ]; then
    cat "$T/err" >&2
    problem "restore db --roles exited $RC (roles postgres and opscore exist already; that must not be fatal)"
fi
limit=$(pg_sql "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'reporting'")
[ "$limit" = 7 ] || problem "restore --roles did not recreate role reporting (connection limit 7): got '$limit'"
[ "$(pg_sql "SELECT has_parameter_privilege('reporting', 'work_mem', 'SET')")" = t ] ||
    problem "restore --roles did not give the recreated role reporting its SET ON PARAMETER work_mem"
[ "$(pg_sql "SELECT has_parameter_privilege('tuner', 'work_mem', 'SET')")" = f ] ||
    problem "restore --roles changed the privileges of the existing role tuner"
grep -q "not restored, as it would change an existing role.*PARAMETER work_mem TO tuner" "$T/err" ||
    problem "restore --roles skipped the existing role's parameter grant without a word: $(cat "$T/err")"
if pg_db_exists appdb_roles; then
    [ "$(pg_checksum appdb_roles)" = "$orig" ] || problem "restore --roles gives a different database"
fi

info "modify appdb, then restore db --replace while a session is connected"
pg_sql -d appdb "
    UPDATE documents SET title = 'changed ' || id, body = 'new body' WHERE id <= 500;
    DELETE FROM document_tags WHERE document_id > 19000;
    INSERT INTO customers (name, email, ext_id) VALUES ('新しい顧客', 'new@example.com', md5('new')::uuid);
    SELECT nextval('invoice_no_seq');
    SELECT lo_unlink(424203);" >/dev/null
modified=$(pg_checksum appdb)
cp "$T/fingerprint.appdb" "$T/fingerprint.modified"
[ "$modified" != "$orig" ] || fail "the modification did not change the checksum"
"$PGBIN/psql" -X -d appdb -c 'SELECT pg_sleep(60)' >"$T/sleeper.out" 2>&1 &
sleeper=$!
bg_track $sleeper
connected=0
for _ in $(seq 100); do
    if [ "$(pg_sql "SELECT count(*) FROM pg_stat_activity WHERE datname = 'appdb' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()")" = 1 ]; then
        connected=1
        break
    fi
    sleep 0.1
done
[ $connected = 1 ] || { cat "$T/sleeper.out"; fail "the background session did not connect to appdb"; }
dbs_before=$(pg_databases)
start=$(date -u +%Y%m%d%H%M%S)
expect_code 0 ob restore db latest --replace --dbname appdb
end=$(date -u +%Y%m%d%H%M%S)
now=$(pg_checksum appdb)
if [ "$now" != "$orig" ]; then
    pg_fingerprint_diff orig appdb
    problem "after --replace, appdb does not hold the backed-up content (diff above)"
fi
mapfile -t kept < <(pg_sql "SELECT datname FROM pg_database WHERE datname LIKE 'appdb\_before\_restore\_%'")
if [ ${#kept[@]} -ne 1 ]; then
    problem "expected one appdb_before_restore_* database, found ${#kept[@]}: ${kept[*]:-}"
else
    old=${kept[0]}
    [[ "$old" =~ ^appdb_before_restore_[0-9]{14}$ ]] || problem "kept database name '$old' is not appdb_before_restore_YYYYMMDDHHMMSS"
    stamp=${old#appdb_before_restore_}
    # Local or UTC time: accept either (within the day around the run).
    [[ "$stamp" =~ ^20[0-9]{12}$ ]] || problem "kept database stamp '$stamp' is not a date"
    if [ "$(pg_checksum "$old")" != "$modified" ]; then
        pg_fingerprint_diff modified "$old"
        problem "$old does not hold appdb's content from before the restore"
    fi
fi
# Exactly one new database; no temporary one left behind.
extra=$(LC_ALL=C comm -13 <(echo "$dbs_before") <(pg_databases) | tr '\n' ' ')
[ "$extra" = "${kept[0]:-} " ] || problem "databases added by --replace: '$extra' (expected only the kept one)"
# The connected session was terminated (renaming needs that).
for _ in $(seq 50); do kill -0 $sleeper 2>/dev/null || break; sleep 0.1; done
kill -0 $sleeper 2>/dev/null && problem "the session connected to the old appdb is still running"
# The replaced database keeps its owner (the application's role).
dbowner=$(pg_sql "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'appdb'")
[ "$dbowner" = opscore ] || problem "after --replace, database appdb is owned by '$dbowner', not opscore (as before)"
info "(replace ran between $start and $end UTC)"

# Debian's /usr/bin/pg_dump is a Perl wrapper costing ~0.2 s of CPU a call:
# without --dump-command the server's own pg_dump (and pg_dumpall) run
# directly (D47), and the dump still restores (checked above).
if [ "$(basename "$(readlink -f "$(command -v pg_dump)")")" = pg_wrapper ]; then
    info "backup db runs the server's pg_dump, not Debian's wrapper"
    expect_code 0 ob -v -v backup db --dbname "dbname=appdb"
    major=$(pg_sql "SHOW server_version_num" | cut -c1-2)
    assert_grep "dump command: /usr/lib/postgresql/$major/bin/pg_dump\$" "$T/err"
    grep -q "cluster globals (roles) are not stored" "$T/err" &&
        problem "pg_dumpall did not run next to the direct pg_dump: $(cat "$T/err")"
fi

info "backup db with a dump command writing INSERTs: counted with SQL instead"
# pg_dump's own options after it do not stop pg_dumpall: the globals are
# stored (pg_dumpall_words drops the options it would refuse).
pg_table_counts appdb >"$T/counts"
expect_code 0 ob -v -v --json backup db --dbname "dbname=appdb" \
    --dump-command "$PGBIN/pg_dump --inserts --rows-per-insert=7"
report_problems "backup db --inserts" < <(db_snapshot_problems "$T/out" appdb "$T/counts")
assert_grep "row counts: 0 of $ntables tables from the dump stream, 1 without data in the dump, 0 not in the dump, $((ntables - 1)) with SELECT count" "$T/err"

info "the repository verifies"
expect_code 0 ob check --read-data
finish
