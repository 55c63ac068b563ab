#!/usr/bin/env bash
# A physical restore never ends recovery early and reports success (found
# in session 22's review of the WAL code):
#   (a) a snapshot whose own WAL range (start_wal..stop_wal) is not all in
#       the archive is refused before anything is written; it used to be
#       restored in full, exit 0, and PostgreSQL refused to start later;
#   (b) a damaged WAL object past the backup stops recovery: archive-get
#       exits 126, not 1, and PostgreSQL aborts instead of taking the damage
#       for the end of the archive, promoting, and leaving out every later
#       transaction (the restore said "recovery has ended", exit 0, with one
#       batch of three); with the object repaired the same restore succeeds;
#   (c) when the archive holds two histories after the backup (a copy
#       restored with --start and left archiving made timeline 2, while
#       production went on on timeline 1), a restore to the end of the
#       archive refuses and names both; it used to follow timeline 2, the
#       copy's, and left out what production did after the fork;
#       --target-timeline picks either; a target LSN before the fork is
#       reached the same on both and is not refused;
#   (b2) the source cluster's postgresql.conf holds a recovery target from
#       a recovery done by hand long ago (ignored while it runs as a
#       primary, restored with the backup): a restore to the end of the
#       archive still replays all of it; it stopped at that target;
#   (d) a backup whose WAL cannot be archived (archive_command failing)
#       ends after --archive-timeout with the segment named; it asked the
#       server to wait for the archive itself, which waits without limit,
#       so the backup hung forever and the timeout never applied.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"

pg_start_archiving

RESTORED=()
stop_restored() {
    local d
    for d in "${RESTORED[@]}"; do
        (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop) >/dev/null 2>&1 || true
    done
    RESTORED=()
}
on_exit stop_restored
new_dir() { install -d -o postgres -m 0700 "$1" "$1.sock"; }
sql_at() { "$PGBIN/psql" -XAtq -h "$1.sock" -p "$2" -U postgres -d postgres -c "$3"; }
# "1:1000 2:1000": rows per batch of table b.
batches_at() {
    sql_at "$1" "$2" "SELECT string_agg(batch || ':' || n, ' ' ORDER BY batch)
                      FROM (SELECT batch, count(*) n FROM b GROUP BY batch) x"
}
# Switch to a new segment and wait until the old one is archived.
switch_and_wait() {
    local last
    last=$(pg_sql "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
    pg_sql "SELECT pg_switch_wal()" >/dev/null
    for _ in $(seq 1 300); do
        [ "$(pg_sql "SELECT coalesce(last_archived_wal >= '$last', false) FROM pg_stat_archiver")" = t ] &&
            return 0
        sleep 0.1
    done
    fail "segment $last was not archived"
}
# restore_start DIR PORT ARGS...: restore db --physical into DIR and start it.
restore_start() {
    local dir=$1 port=$2
    shift 2
    new_dir "$dir"
    RESTORED+=("$dir")
    run_rc obpg restore db --physical "$@" --pgdata "$dir" --start \
        --start-options "-p $port -c unix_socket_directories=$dir.sock"
}
wal_object() { find "$REPO/wal/${1:0:8}" -name "$1-*"; }

pg_sql "CREATE TABLE b (batch int, id int)" >/dev/null
# (b2): a stale target, and the restore point it names after batch 1.
echo "recovery_target_name = 'long_ago'" >>"$PGDATA_DIR/postgresql.conf"
expect_code 0 obpg --json backup db --physical --pgdata "$PGDATA_DIR"
cp "$T/out" "$T/base.json"
BASE=$(json_get "$T/base.json" "j['id']")
STOP_WAL=$(json_get "$T/base.json" "j['extra']['stop_wal']")
pg_sql "INSERT INTO b SELECT 1, g FROM generate_series(1, 1000) g" >/dev/null
LSN1=$(pg_sql "SELECT pg_current_wal_insert_lsn()")
pg_sql "SELECT pg_create_restore_point('long_ago')" >/dev/null
switch_and_wait
SEG2=$(pg_sql "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
pg_sql "INSERT INTO b SELECT 2, g FROM generate_series(1, 1000) g" >/dev/null
switch_and_wait
pg_sql "INSERT INTO b SELECT 3, g FROM generate_series(1, 1000) g" >/dev/null
switch_and_wait
[ -n "$(wal_object "$SEG2")" ] || fail "test setup: batch 2's segment $SEG2 is not archived"

info "(a) the backup's own WAL missing: refused before writing"
OBJ=$(wal_object "$STOP_WAL")
[ -n "$OBJ" ] || fail "test setup: the stop segment $STOP_WAL is not archived"
mv "$OBJ" "$T/moved"
new_dir "$T/r0"
run_rc obpg restore db --physical "$BASE" --pgdata "$T/r0"
[ "$RC" = 1 ] || problem "(a) restore without the backup's WAL: exit $RC, expected 1"
grep -q "1 of the WAL segments .* is missing from the archive, the first $STOP_WAL" "$T/err" ||
    problem "(a) the error does not name the missing segment: $(cat "$T/err")"
[ -z "$(ls -A "$T/r0")" ] || problem "(a) the refused restore wrote into --pgdata: $(ls -A "$T/r0" | head -5)"
mv "$T/moved" "$OBJ"

info "(b) a damaged segment past the backup: recovery stops, nothing promoted"
OBJ=$(wal_object "$SEG2")
cp -p "$OBJ" "$T/seg2-good"
flip_middle "$OBJ"
restore_start "$T/r1" $((PGPORT + 1)) "$BASE"
[ "$RC" != 0 ] || problem "(b) restore over a damaged segment succeeded: $(cat "$T/out")"
[ -e "$T/r1/postmaster.pid" ] && problem "(b) the server is still running after the failed restore"
grep -q "archive-get $SEG2: .*authenticat" "$T/r1/opsbackup-restore.log" "$T/err" ||
    problem "(b) the damaged object is not named: $(tail -5 "$T/err")"
[ -z "$(find "$REPO/wal" -name '00000002*')" ] ||
    problem "(b) the failed restore promoted and archived a new timeline"
stop_restored
run_rc obpg archive-get --prefetch 0 "$SEG2" "$T/seg2-out"
[ "$RC" = 126 ] || problem "(b) archive-get of the damaged segment exited $RC, expected 126"
cp -p "$T/seg2-good" "$OBJ"
restore_start "$T/r1b" $((PGPORT + 2)) "$BASE"
[ "$RC" = 0 ] || { cat "$T/err"; fail "(b) restore with the segment repaired: exit $RC"; }
got=$(batches_at "$T/r1b" $((PGPORT + 2)))
[ "$got" = "1:1000 2:1000 3:1000" ] || problem "(b, b2) restored '$got', not all three batches"
grep -q "^recovery_target_name = 'long_ago'" "$T/r1b/postgresql.conf" ||
    fail "test setup: the stale target is not in the restored postgresql.conf"

info "(c) a copy left archiving forks timeline 2; production goes on on timeline 1"
sql_at "$T/r1b" $((PGPORT + 2)) "INSERT INTO b SELECT 9, g FROM generate_series(1, 10) g"
L=$(sql_at "$T/r1b" $((PGPORT + 2)) "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
sql_at "$T/r1b" $((PGPORT + 2)) "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 300); do
    [ "$(sql_at "$T/r1b" $((PGPORT + 2)) "SELECT coalesce(last_archived_wal >= '$L', false) FROM pg_stat_archiver")" = t ] &&
        break
    sleep 0.1
done
[ -n "$(wal_object "$L")" ] || fail "test setup: the copy's segment $L on timeline 2 is not archived"
stop_restored
pg_sql "INSERT INTO b SELECT 4, g FROM generate_series(1, 1000) g" >/dev/null
switch_and_wait
new_dir "$T/r2"
run_rc obpg restore db --physical "$BASE" --pgdata "$T/r2"
[ "$RC" = 2 ] || problem "(c) restore with two histories in the archive: exit $RC, expected 2"
grep -q "two histories after this backup: timeline 2 forked from timeline 1 .* --target-timeline 1 or --target-timeline 2" "$T/err" ||
    problem "(c) the refusal does not name both timelines: $(cat "$T/err")"
[ -z "$(ls -A "$T/r2")" ] || problem "(c) the refused restore wrote into --pgdata"
new_dir "$T/r5"
expect_code 0 obpg restore db --physical "$BASE" --pgdata "$T/r5" --target-lsn "$LSN1"
grep -q "^recovery_target_lsn = '$LSN1'" "$T/r5/postgresql.auto.conf" ||
    problem "(c) a target before the fork: $(cat "$T/r5/postgresql.auto.conf")"
restore_start "$T/r3" $((PGPORT + 3)) "$BASE" --target-timeline 1
[ "$RC" = 0 ] || { cat "$T/err"; fail "(c) restore --target-timeline 1: exit $RC"; }
got=$(batches_at "$T/r3" $((PGPORT + 3)))
[ "$got" = "1:1000 2:1000 3:1000 4:1000" ] || problem "(c) --target-timeline 1 restored '$got', not production's four batches"
stop_restored
restore_start "$T/r4" $((PGPORT + 4)) "$BASE" --target-timeline 2 --archive-mode off
[ "$RC" = 0 ] || { cat "$T/err"; fail "(c) restore --target-timeline 2: exit $RC"; }
got=$(batches_at "$T/r4" $((PGPORT + 4)))
[ "$got" = "1:1000 2:1000 3:1000 9:10" ] || problem "(c) --target-timeline 2 restored '$got', not the copy's batches"
stop_restored

info "(d) archiving broken: the backup gives up after --archive-timeout"
pg_sql "ALTER SYSTEM SET archive_command = 'false'" >/dev/null
pg_sql "SELECT pg_reload_conf()" >/dev/null
started=$(date +%s)
run_rc timeout 120 runuser -u postgres -- "$OPSBACKUP" -r "$REPO" --password-file "$PGPW" \
    backup db --physical --pgdata "$PGDATA_DIR" --archive-timeout 5s
took=$(($(date +%s) - started))
[ "$RC" = 1 ] || problem "(d) backup with archiving broken: exit $RC after $took s, expected 1"
[ "$took" -lt 60 ] || problem "(d) the backup took $took s with --archive-timeout 5s"
grep -q "did not reach the archive .* within 5 s" "$T/err" ||
    problem "(d) the error does not say which segment is missing: $(cat "$T/err")"
pg_sql "ALTER SYSTEM RESET archive_command" >/dev/null
pg_sql "SELECT pg_reload_conf()" >/dev/null

finish
