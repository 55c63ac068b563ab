#!/usr/bin/env bash
# Physical backups, WAL archiving and point-in-time recovery against a real
# PostgreSQL 15 whose archive_command is 'opsbackup archive-push %p'.
#
#   base backup; three batches of rows with pg_switch_wal between them;
#   PITR to a time, an LSN and a restore point between batches 2 and 3
#   (exactly batches 1-2 come back); --delta; promotion to timeline 2, a
#   backup and PITR there; a second backup after a 1% pgbench update
#   stores a small fraction of the first; archive-push/get edge cases.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"

# Everything runs as the postgres user, as it would on a server: the
# archiver runs archive-push as postgres, so the repository is postgres'.
pg_start_archiving

RESTORES=()
stop_restores() {
    local d
    for d in "${RESTORES[@]}"; do
        (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop) \
            >/dev/null 2>&1 || true
    done
    RESTORES=()
}
_pitr_prev_trap=$(trap -p EXIT | sed -e "s/^trap -- '\\(.*\\)' EXIT\$/\\1/")
trap 'rc=$?; set +e; stop_restores; (exit $rc); eval "$_pitr_prev_trap"' EXIT

# sql_at DIR PORT SQL: query a restored cluster (its socket is in DIR.sock).
sql_at() { "$PGBIN/psql" -XAtq -h "$1.sock" -p "$2" -U postgres -d postgres -c "$3"; }
# start_at DIR PORT: start a restored cluster by hand (no --start).
start_at() {
    RESTORES+=("$1")
    (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$1" -l "$1.sock/log" -w -t 120 \
        -o "-p $2 -c unix_socket_directories=$1.sock" start) >/dev/null \
        || { tail -30 "$1.sock/log"; fail "restored cluster in $1 did not start"; }
}
# wait_promoted DIR PORT: until recovery has ended.
wait_promoted() {
    for _ in $(seq 1 300); do
        [ "$(sql_at "$1" "$2" 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && return 0
        sleep 0.2
    done
    tail -30 "$1.sock/log" 2>/dev/null || true
    fail "recovery in $1 did not end"
}
new_dir() { install -d -o postgres -m 0700 "$1"; install -d -o postgres -m 0700 "$1.sock"; }
# wait_archived_at HOST PORT: switch WAL and wait until it is archived.
wait_archived_at() {
    local q="$PGBIN/psql -XAtq -h $1 -p $2 -U postgres -d postgres -c"
    local seg
    seg=$($q "SELECT pg_walfile_name(pg_current_wal_lsn())")
    $q "SELECT pg_switch_wal()" >/dev/null
    for _ in $(seq 1 300); do
        [ "$($q "SELECT coalesce(last_archived_wal >= '$seg', false) FROM pg_stat_archiver")" = t ] \
            && return 0
        sleep 0.2
    done
    $q "SELECT * FROM pg_stat_archiver"
    fail "segment $seg was not archived"
}
batches_at() {
    sql_at "$1" "$2" "SELECT string_agg(batch || ':' || n, ' ' ORDER BY batch) FROM (SELECT batch, count(*) n FROM batches GROUP BY batch) x"
}
check_batches() { # DIR PORT WHAT
    local got
    got=$(batches_at "$1" "$2")
    [ "$got" = "1:1000 2:1000" ] || problem "$3: expected batches 1:1000 2:1000, got '$got'"
}

info "schema and a pgbench data set"
pg_sql "CREATE TABLE batches (batch int, id int, at timestamptz DEFAULT clock_timestamp())"
"$PGBIN/pgbench" -i -s 2 -q postgres >/dev/null 2>&1 || fail "pgbench -i failed"
# An unlogged table: only its init fork may be copied.
pg_sql "CREATE UNLOGGED TABLE scratch AS SELECT g FROM generate_series(1, 50000) g"

info "base backup"
expect_code 0 obpg --json backup db --physical --pgdata "$PGDATA_DIR"
cp "$T/out" "$T/base1.json"
BASE1=$(json_get "$T/base1.json" "j['id']")
STORED1=$(json_get "$T/base1.json" "j['stats']['bytes_stored']")
[ "$(json_get "$T/base1.json" "j['kind']")" = db-physical ] || fail "kind is not db-physical"
for k in start_lsn stop_lsn timeline system_identifier pg_version stop_time backup_label; do
    [ "$(json_get "$T/base1.json" "j['extra'].get('$k')")" != None ] || problem "snapshot lacks $k"
done
obpg ls "$BASE1" >"$T/ls1"
grep -q 'postmaster.pid' "$T/ls1" && problem "postmaster.pid was copied"
grep -q '/backup_label$' "$T/ls1" && problem "a backup_label file was copied from PGDATA"
grep -q 'pg_wal/0000' "$T/ls1" && problem "pg_wal contents were copied"
grep -q 'global/pg_control$' "$T/ls1" || problem "pg_control missing from the backup"
SCRATCH=$(pg_sql "SELECT pg_relation_filepath('scratch')")
grep -q "/$SCRATCH\$" "$T/ls1" && problem "unlogged relation data $SCRATCH was copied"
grep -q "/${SCRATCH}_init\$" "$T/ls1" || problem "unlogged relation init fork ${SCRATCH}_init missing"

info "three batches with known commit times"
pg_sql "INSERT INTO batches (batch, id) SELECT 1, g FROM generate_series(1, 1000) g"
pg_sql "SELECT pg_switch_wal()" >/dev/null
XID2=$(pg_sql "BEGIN; INSERT INTO batches (batch, id) SELECT 2, g FROM generate_series(1, 1000) g; SELECT pg_current_xact_id(); COMMIT")
sleep 1.1
T2=$(pg_sql "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
LSN2=$(pg_sql "SELECT pg_current_wal_insert_lsn()")
pg_sql "SELECT pg_create_restore_point('before_batch3')" >/dev/null
sleep 1.1
pg_sql "SELECT pg_switch_wal()" >/dev/null
pg_sql "INSERT INTO batches (batch, id) SELECT 3, g FROM generate_series(1, 1000) g"
wait_archived_at "$PGHOST" "$PGPORT"

info "PITR to a time between batch 2 and 3 (snapshot picked by the time, --start)"
R1="$T/r_time"
P1=$((PGPORT + 1))
new_dir "$R1"
RESTORES+=("$R1")
expect_code 0 obpg restore db --physical --pgdata "$R1" --target-time "$T2" --start \
    --start-options "-p $P1 -c unix_socket_directories=$R1.sock"
assert_grep "${BASE1:0:8}" "$T/out"
[ -f "$R1/recovery.conf" ] && problem "recovery.conf was written"
grep -q "^restore_command" "$R1/postgresql.auto.conf" || problem "no restore_command in postgresql.auto.conf"
sql1() { "$PGBIN/psql" -XAtq -h "$R1.sock" -p "$P1" -U postgres -d postgres -c "$1"; }
got=$(sql1 "SELECT string_agg(batch || ':' || n, ' ' ORDER BY batch) FROM (SELECT batch, count(*) n FROM batches GROUP BY batch) x")
[ "$got" = "1:1000 2:1000" ] || problem "time target: expected batches 1:1000 2:1000, got '$got'"
[ "$(sql1 'SELECT pg_is_in_recovery()')" = f ] || problem "--start: recovery has not ended"
[ "$(sql1 'SELECT count(*) FROM scratch')" = 0 ] || problem "unlogged table not empty after restore"

info "PITR to an LSN (started by hand)"
R2="$T/r_lsn"
new_dir "$R2"
expect_code 0 obpg restore db --physical "$BASE1" --pgdata "$R2" --target-lsn "$LSN2" --archive-mode off
[ -f "$R2/recovery.signal" ] || problem "no recovery.signal"
grep -q "^archive_mode = 'off'" "$R2/postgresql.auto.conf" || problem "--archive-mode off not written"
start_at "$R2" $((PGPORT + 2))
wait_promoted "$R2" $((PGPORT + 2))
check_batches "$R2" $((PGPORT + 2)) "LSN target"
[ "$(sql_at "$R2" $((PGPORT + 2)) 'SHOW archive_mode')" = off ] || problem "restored cluster archives"

info "PITR to a transaction ID (batch 2's)"
R6="$T/r_xid"
new_dir "$R6"
expect_code 0 obpg restore db --physical "$BASE1" --pgdata "$R6" --target-xid "$XID2"
start_at "$R6" $((PGPORT + 6))
wait_promoted "$R6" $((PGPORT + 6))
check_batches "$R6" $((PGPORT + 6)) "xid target"

info "PITR to a restore point"
R3="$T/r_name"
new_dir "$R3"
expect_code 0 obpg restore db --physical latest --pgdata "$R3" --target-name before_batch3
start_at "$R3" $((PGPORT + 3))
wait_promoted "$R3" $((PGPORT + 3))
check_batches "$R3" $((PGPORT + 3)) "named restore point"
(cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$R3" -m fast -w stop) >/dev/null

info "a non-empty PGDATA is refused without --delta"
expect_code 2 obpg restore db --physical "$BASE1" --pgdata "$R3"
assert_grep "not empty" "$T/err"

info "--delta rewrites only what differs"
echo garbage >"$R3/base/extra_file"
expect_code 0 obpg -v restore db --physical "$BASE1" --pgdata "$R3" --delta --target-name before_batch3
[ -e "$R3/base/extra_file" ] && problem "--delta left an extra file"
assert_grep "already right" "$T/err"
start_at "$R3" $((PGPORT + 3))
wait_promoted "$R3" $((PGPORT + 3))
check_batches "$R3" $((PGPORT + 3)) "delta restore"

info "timeline 2: the time-restored cluster was promoted; back it up and PITR on it"
TL=$(sql1 'SELECT timeline_id FROM pg_control_checkpoint()')
[ "$TL" -ge 2 ] || fail "restored cluster is on timeline $TL, expected 2 or more"
expect_code 0 runuser -u postgres -- env PGHOST="$R1.sock" PGPORT="$P1" \
    "$OPSBACKUP" -r "$REPO" --password-file "$PGPW" --json backup db --physical --pgdata "$R1" --set tl2
BASE2=$(json_get "$T/out" "j['id']")
[ "$(json_get "$T/out" "j['extra']['timeline']")" = "$TL" ] || problem "backup timeline is not $TL"
sql1 "INSERT INTO batches (batch, id) SELECT 4, g FROM generate_series(1, 500) g"
LSN4=$(sql1 "SELECT pg_current_wal_insert_lsn()")
sql1 "INSERT INTO batches (batch, id) SELECT 5, g FROM generate_series(1, 500) g"
wait_archived_at "$R1.sock" "$P1"
find "$REPO/wal" -name "$(printf '%08X' "$TL").history-*" | grep -q . \
    || problem "timeline history file not archived"
R4="$T/r_tl2"
new_dir "$R4"
expect_code 0 obpg restore db --physical "$BASE2" --pgdata "$R4" --target-lsn "$LSN4"
start_at "$R4" $((PGPORT + 4))
wait_promoted "$R4" $((PGPORT + 4))
got=$(batches_at "$R4" $((PGPORT + 4)))
[ "$got" = "1:1000 2:1000 4:500" ] || problem "timeline $TL PITR: got '$got'"
stop_restores

info "a backup after updating recent rows stores only the blocks they are in"
# The most recent 1% of accounts (the last 33 of 3,279 pages) plus the new
# row versions appended after them: a block-level copy stores a few 32 KiB
# blocks of the table and its index; a file-level incremental (pgBackRest)
# would copy both files whole.  Compared as bytes stored (compressed).
pg_sql "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid > 198000"
pg_sql "CHECKPOINT"
expect_code 0 obpg --json backup db --physical --pgdata "$PGDATA_DIR"
STORED2=$(json_get "$T/out" "j['stats']['bytes_stored']")
echo "first backup stored $STORED1 bytes; after updating the recent rows the next stored $STORED2"
python3 -c "import sys; r=$STORED2/$STORED1; print('ratio to first %.3f' % r); sys.exit(0 if r < 0.1 else 1)" \
    || problem "backup after a local update stored too much ($STORED2 vs $STORED1)"

info "a backup after a random 1% pgbench update stores less than the first"
"$PGBIN/pgbench" -n -t 2000 -c 1 postgres >/dev/null 2>&1 || fail "pgbench run failed"
expect_code 0 obpg --json backup db --physical --pgdata "$PGDATA_DIR"
BASE3=$(json_get "$T/out" "j['id']")
STORED3=$(json_get "$T/out" "j['stats']['bytes_stored']")
# Random 1% row updates touch about 46% of pgbench_accounts' pages (61 rows
# a page) and 91% of its 32 KiB blocks (D56), so this backup stores most of
# that table and its index again, as a file-level incremental would, but not
# the rest of the cluster.  Measured: 1.60 MB against the first backup's
# 2.60 MB (0.62) with 1 MiB super blocks (D64); 1.91 against 3.03 MB with
# 32 KiB blocks (D56); 2.28 against 4.45 MB with 8 KiB blocks before.
echo "first backup stored $STORED1 bytes; after a 1% update the second stored $STORED3"
python3 -c "import sys; r=$STORED3/$STORED1; print('ratio to first %.3f' % r); sys.exit(0 if r < 0.85 else 1)" \
    || problem "second backup stored too much ($STORED3 vs $STORED1)"
# Its super blocks are slices of the first backup's chunks between the
# blocks that changed: verify reads every one of them back.
expect_code 0 obpg verify files "$BASE3"
ACCT=$(pg_sql "SELECT sum(abalance) FROM pgbench_accounts")
R5="$T/r_incr"
new_dir "$R5"
expect_code 0 obpg restore db --physical "$BASE3" --pgdata "$R5" --target-immediate
start_at "$R5" $((PGPORT + 5))
wait_promoted "$R5" $((PGPORT + 5))
[ "$(sql_at "$R5" $((PGPORT + 5)) 'SELECT sum(abalance) FROM pgbench_accounts')" = "$ACCT" ] \
    || problem "restored second backup has different pgbench balances"
stop_restores

info "the archiver keeps up with a write-heavy pgbench run"
"$PGBIN/pgbench" -n -T 15 -c 2 -j 2 postgres >/dev/null 2>&1 &
PGB=$!
bg_track $PGB
maxready=0
while kill -0 $PGB 2>/dev/null; do
    n=$(find "$PGDATA_DIR/pg_wal/archive_status" -name '*.ready' | wc -l)
    [ "$n" -gt "$maxready" ] && maxready=$n
    sleep 0.5
done
wait $PGB || fail "pgbench -T failed"
echo "most segments waiting for the archiver at once: $maxready"
[ "$maxready" -le 8 ] || problem "archiver fell behind: $maxready segments waiting"
wait_archived_at "$PGHOST" "$PGPORT"
[ "$(pg_sql "SELECT failed_count FROM pg_stat_archiver")" = 0 ] || problem "archive_command failed during the run"

info "archive-push: same content again succeeds, different content fails"
W="$T/walcopy"
install -d -o postgres "$W"
ARCH=$(find "$REPO/wal/00000001" -name '00000001000000000000000*' | sed 's|.*/||; s|-.*||' | sort | head -1)
expect_code 0 obpg archive-get "$ARCH" "$W/$ARCH"
expect_code 0 obpg archive-push "$W/$ARCH"
printf 'X' | dd of="$W/$ARCH" bs=1 seek=100 conv=notrunc 2>/dev/null
expect_code 1 obpg archive-push "$W/$ARCH"
assert_grep "different content" "$T/err"

info "archive-get of a missing file exits 1 cleanly; any other failure exits 126"
# PostgreSQL takes exit 1..125 for "not in the archive", the end of
# recovery; above 125 it stops recovery instead of promoting early.
expect_code 1 obpg archive-get 00000009.history "$W/x"
expect_code 1 obpg archive-get 0000000900000000000000AA "$W/x"
expect_code 1 obpg -v archive-get 00000009.history "$W/x" # -v changes the message only
[ -e "$W/x" ] && problem "archive-get left a file for a missing segment"
# No repository there (an unmounted directory) is not "not archived".
expect_code 126 runuser -u postgres -- "$OPSBACKUP" -r "$T/no-such-repo" --password-file "$PGPW" \
    archive-get 00000009.history "$W/x"
install -d -o postgres "$T/empty-dir"
expect_code 126 runuser -u postgres -- "$OPSBACKUP" -r "$T/empty-dir" --password-file "$PGPW" \
    archive-get 00000009.history "$W/x"
expect_code 126 obpg archive-get ../../etc/passwd "$W/x"
# DEST is replaced by rename: never a device or a symlink.
ln -s /dev/null "$W/link"
expect_code 126 obpg archive-get "$ARCH" "$W/link"
[ -L "$W/link" ] || problem "archive-get replaced a symlink"
[ -c /dev/null ] || fail "/dev/null is no longer a device"

info "archive-get removes what a killed archive-get left beside DEST, not a live one's"
# A fetch killed between its write and its rename leaves DEST.opsbackup-tmp.PID,
# a segment's size, that nothing else removes.
sleep 0 & dead=$!
wait $dead
echo leftover >"$W/RECOVERYXLOG.opsbackup-tmp.$dead"
echo live >"$W/RECOVERYXLOG.opsbackup-tmp.$$"
chown postgres "$W"/RECOVERYXLOG.opsbackup-tmp.*
expect_code 0 obpg archive-get --prefetch 0 "$ARCH" "$W/RECOVERYXLOG"
[ -e "$W/RECOVERYXLOG.opsbackup-tmp.$dead" ] && problem "a dead archive-get's temporary file was left"
[ -e "$W/RECOVERYXLOG.opsbackup-tmp.$$" ] || problem "a live process's temporary file was removed"
rm -f "$W/RECOVERYXLOG.opsbackup-tmp.$$" "$W/RECOVERYXLOG"

info "check --read-data reads every WAL object"
expect_code 0 obpg check --read-data
assert_grep "WAL files" "$T/out"

info "check reports a physical snapshot whose WAL range is gone from the archive"
START1=$(json_get "$T/base1.json" "j['extra']['start_wal']")
GONE=$(find "$REPO/wal/${START1:0:8}" -name "$START1-*")
[ -n "$GONE" ] || fail "the base backup's first segment $START1 is not in the archive"
mv "$GONE" "$T/gone-segment"
expect_code 3 obpg check
assert_grep "snapshot ${BASE1:0:8} (db-physical, .*) cannot be restored: 1 of the WAL segments $START1 to .* is missing from the archive, the first $START1" "$T/err"
assert_grep "${BASE1:0:8} .* (1 WAL segment missing from the archive)" "$T/out"
expect_code 3 obpg check --json
[ "$(json_get "$T/out" "[(a['id'], a['wal_missing']) for a in j['affected_snapshots']]")" = "[('$BASE1', 1)]" ] ||
    problem "check --json does not list the snapshot without its WAL as affected: $(cat "$T/out")"
mv "$T/gone-segment" "$GONE"
expect_code 0 obpg check

info "a corrupted WAL object is detected, not replayed"
OBJ=$(find "$REPO/wal/00000001" -name "$ARCH-*")
python3 - "$OBJ" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0x40
open(p, 'wb').write(bytes(b))
PY
# A prefetch of an earlier archive-get may still be writing into the
# spool: wait for its lock (it writes nothing without it), then remove the
# spool (again if a write begun meanwhile landed: once the directory is
# gone, a prefetch cannot create it).
[ -e "$W/opsbackup.get/.lock" ] && flock -w 60 "$W/opsbackup.get/.lock" true
for _ in $(seq 1 50); do rm -rf "$W/opsbackup.get" 2>/dev/null && break; sleep 0.1; done
[ -e "$W/opsbackup.get" ] && fail "cannot remove the spool $W/opsbackup.get"
expect_code 126 obpg archive-get "$ARCH" "$W/y"
[ -e "$W/y" ] && problem "a corrupted segment was written"
grep -qiE "corrupt|authentic|tamper" "$T/err" || problem "corruption not reported: $(cat "$T/err")"
expect_code 3 obpg check --read-data
assert_grep "$ARCH" "$T/err"
finish
