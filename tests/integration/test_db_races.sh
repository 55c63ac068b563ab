#!/usr/bin/env bash
# Logical backups against what a live application does (session 12, found
# in a review of the logical path):
#   - a table truncated and reloaded in one transaction while pg_dump is
#     starting (after the snapshot is exported, before pg_dump locks it)
#     reads as empty in the snapshot, and the row counts agreed with the
#     empty dump, so verify passed: the backup must fail, saving nothing;
#   - a database whose name holds '=' is a name, not a connection string,
#     for pg_dump and pg_restore alike.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"

pg_start
init_repo
pg_sql "CREATE DATABASE racedb"
pg_sql -d racedb "CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 1000)"

info "a table truncated and reloaded while pg_dump starts"
# pg_dump through a wrapper that starts it 2 s late (as a dump command such
# as 'docker compose exec -T postgres pg_dump' does); meanwhile the table is
# truncated and reloaded in one transaction (nobody ever sees it empty).
cat >"$T/slow_pg_dump" <<EOF
#!/bin/sh
sleep 2
exec "$PGBIN/pg_dump" "\$@"
EOF
chmod 755 "$T/slow_pg_dump"
before=$(ob --json snapshots | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
( sleep 0.7; pg_sql -d racedb "BEGIN; TRUNCATE t; INSERT INTO t SELECT generate_series(1, 1000); COMMIT" ) &
reloader=$!
run_rc ob backup db --dbname "dbname=racedb" --dump-command "$T/slow_pg_dump"
wait $reloader
[ "$RC" = 1 ] || problem "a backup racing a TRUNCATE exited $RC, not 1"
assert_grep "public.t was rewritten" "$T/err"
after=$(ob --json snapshots | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$after" = "$before" ] || problem "a backup racing a TRUNCATE saved a snapshot"
# Without the race the same command works and holds every row.
expect_code 0 ob --json backup db --dbname "dbname=racedb" --dump-command "$T/slow_pg_dump"
[ "$(json_get "$T/out" 'j["extra"]["tables"]["public.t"]')" = 1000 ] \
    || problem "the backup after the race does not record 1000 rows"

info "a database named with '=' is a name, for pg_dump and pg_restore"
pg_sql 'CREATE DATABASE "dbname=racedb"'
pg_sql -d 'dbname=dbname=racedb' "CREATE TABLE only_here (i int); INSERT INTO only_here VALUES (42)" 2>/dev/null ||
    "$PGBIN/psql" -X -q -h "$PGHOST" -p "$PGPORT" -U postgres "dbname='dbname=racedb'" \
        -c "CREATE TABLE only_here (i int); INSERT INTO only_here VALUES (42)"
expect_code 0 ob --json backup db --dbname "dbname='dbname=racedb'"
[ "$(json_get "$T/out" 'list(j["extra"]["tables"])')" = "['public.only_here']" ] \
    || problem "backup of database \"dbname=racedb\" dumped another database: $(json_get "$T/out" 'list(j["extra"]["tables"])')"
eqsnap=$(json_get "$T/out" 'j["id"]')
expect_code 0 ob restore db "$eqsnap" --dbname "dbname=postgres" --target-db "dbname=copy"
[ "$("$PGBIN/psql" -XAtq -h "$PGHOST" -p "$PGPORT" -U postgres "dbname='dbname=copy'" \
    -c "SELECT i FROM only_here")" = 42 ] || problem "the restore did not go into database \"dbname=copy\""
[ "$(pg_sql -d racedb "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'")" = 0 ] \
    || problem "the restore into \"dbname=copy\" wrote into racedb"

finish
