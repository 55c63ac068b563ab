#!/usr/bin/env bash
# Physical backups and the WAL archive, the less common paths:
#   - archive_command writing to two repositories of a config file (3-2-1);
#     archive-get falls back to the second when the first lacks a segment;
#   - archive-get prefetch: the next segments are spooled, and so is the
#     one delivered (asked for again at the end of recovery); a spooled
#     segment is served without opening the repository at all;
#   - a tablespace is backed up through its link and restored (in place)
#     with its rows;
#   - .partial and .backup history files are archived like segments;
#   - pg_wal as a symlink to another directory (initdb -X) is backed up and
#     restored as an empty directory, never as the link: a restore on the
#     same host would otherwise write into the live cluster's WAL;
#   - restore --delta into a new data directory refuses a tablespace's
#     original location when it is not where that directory's pg_tblspc
#     link leads (it is the live cluster's);
#   - the cluster's own archive_mode (ALTER SYSTEM) survives a restore
#     made without --archive-mode off.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"

PGPW="$T/pgpw"
install -o postgres -m 0600 "$OPSBACKUP_PASSWORD_FILE" "$PGPW"
chmod 0711 "$T"
REPO_A="$T/repo_a"
REPO_B="$T/repo_b"
install -d -o postgres -m 0700 "$REPO_A" "$REPO_B"
CONF="$T/opsbackup.conf"
cat >"$CONF" <<EOF
[repo.a]
url = $REPO_A

[repo.b]
url = $REPO_B
EOF
chown postgres "$CONF"
chmod 0600 "$CONF"
oba() { runuser -u postgres -- "$OPSBACKUP" -c "$CONF" -r a --password-file "$PGPW" "$@"; }
obb() { runuser -u postgres -- "$OPSBACKUP" -c "$CONF" -r b --password-file "$PGPW" "$@"; }
oball() { runuser -u postgres -- "$OPSBACKUP" -c "$CONF" --password-file "$PGPW" "$@"; }
PG_EXTRA_CONF="archive_mode = on
archive_command = '$OPSBACKUP -c $CONF --password-file $PGPW archive-push %p'
wal_level = replica"
oba init --kdf-n 1024 >/dev/null
obb init --kdf-n 1024 >/dev/null
pg_start

RESTORED=""
_more_prev_trap=$(trap -p EXIT | sed -e "s/^trap -- '\\(.*\\)' EXIT\$/\\1/")
trap 'rc=$?; set +e; [ -n "$RESTORED" ] && (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$RESTORED" -m immediate -w stop) >/dev/null 2>&1; (exit $rc); eval "$_more_prev_trap"' EXIT

info "pg_wal on another disk: a symlink in the data directory"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null
install -d -o postgres -m 0700 "$T/walsep"
mv "$PGDATA_DIR/pg_wal" "$T/walsep/pg_wal"
ln -s "$T/walsep/pg_wal" "$PGDATA_DIR/pg_wal"
chown -h postgres: "$PGDATA_DIR/pg_wal"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -w start >/dev/null
pg_sql "ALTER SYSTEM SET archive_mode = 'on'" >/dev/null

info "a tablespace with rows"
install -d -o postgres -m 0700 "$T/ts"
pg_sql "CREATE TABLESPACE ts LOCATION '$T/ts'"
pg_sql "CREATE TABLE in_ts TABLESPACE ts AS SELECT g, md5(g::text) h FROM generate_series(1, 20000) g"
SUM=$(pg_sql "SELECT sum(g) || ':' || count(*) FROM in_ts")

info "physical backup into repository a while WAL goes to a and b"
expect_code 0 runuser -u postgres -- "$OPSBACKUP" -c "$CONF" -r a --password-file "$PGPW" --json \
    backup db --physical --pgdata "$PGDATA_DIR"
SNAP=$(json_get "$T/out" "j['id']")
pg_sql "INSERT INTO in_ts SELECT g, 'after' FROM generate_series(20001, 20100) g"
SUM2=$(pg_sql "SELECT sum(g) || ':' || count(*) FROM in_ts")
for i in 1 2 3; do
    pg_sql "INSERT INTO in_ts SELECT g, 'more' FROM generate_series(1, 10) g WHERE false"
    pg_sql "SELECT pg_switch_wal()" >/dev/null
    pg_sql "CREATE TABLE filler$i AS SELECT g FROM generate_series(1, 1000) g"
done
SEG=$(pg_sql "SELECT pg_walfile_name(pg_current_wal_lsn())")
pg_sql "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 300); do
    [ "$(pg_sql "SELECT coalesce(last_archived_wal >= '$SEG', false) FROM pg_stat_archiver")" = t ] && break
    sleep 0.2
done
# Archived files up to SEG: archive-push also pushes segments that are
# ready ahead of PostgreSQL's calls (--batch), repository a first, so a
# segment after SEG may be in a and not yet in b; PostgreSQL's own call
# for it pushes it to both.
wal_upto() { find "$1/wal" -type f -printf '%f\n' | awk -v seg="$SEG" 'substr($0, 1, 24) <= seg' | wc -l; }
na=$(wal_upto "$REPO_A")
nb=$(wal_upto "$REPO_B")
echo "WAL objects up to $SEG: repository a $na, repository b $nb"
[ "$na" -gt 3 ] && [ "$na" = "$nb" ] || problem "WAL not in both repositories (a: $na, b: $nb)"
find "$REPO_A/wal" -name '*.backup-*' | grep -q . || problem "backup history file not archived"

info "backup db --physical --force reads every file (pgBackRest's full backup)"
# (Session 20.)  An incremental reads only the files changed since its
# parent (by ctime); --force reads them all and stores them as a first
# backup does, in whole 1 MiB slices, so only the slices the repository
# does not hold whole take space.  The first backup catches up with the
# changes above; the second is the incremental measured.
expect_code 0 runuser -u postgres -- "$OPSBACKUP" -c "$CONF" -r a --password-file "$PGPW" \
    backup db --physical --pgdata "$PGDATA_DIR"
expect_code 0 runuser -u postgres -- "$OPSBACKUP" -c "$CONF" -r a --password-file "$PGPW" --json \
    backup db --physical --pgdata "$PGDATA_DIR"
incr=$(json_get "$T/out" "'%d %d %d' % (j['extra']['bytes_read'], j['stats']['bytes'], j['stats']['bytes_added'])")
expect_code 0 runuser -u postgres -- "$OPSBACKUP" -c "$CONF" -r a --password-file "$PGPW" --json \
    backup db --physical --pgdata "$PGDATA_DIR" --force
full=$(json_get "$T/out" "'%d %d %d' % (j['extra']['bytes_read'], j['stats']['bytes'], j['stats']['bytes_added'])")
info "(bytes read, size, added: incremental $incr; --force $full)"
set -- $incr
[ "$1" -lt $(($2 / 2)) ] || problem "the incremental read $1 of $2 bytes: the test cannot tell --force from it"
set -- $full
[ "$1" -ge "$2" ] || problem "backup db --physical --force read $1 bytes of $2"
[ "$3" -lt $(($2 / 4)) ] || problem "backup db --physical --force added $3 of $2 bytes: it should store only the slices not stored whole"
run_rc "$OPSBACKUP" -r "$REPO_A" restore db latest --force --target-db x
[ "$RC" = 2 ] || problem "restore db --force exited $RC, not 2 (usage)"

info "--full-every: a full backup once the set's newest full one is that old"
# The --force backup above is the newest full one: within an hour of it a
# backup is incremental; with --full-every 1s, two seconds on, it is full.
fullrun() { # DURATION: prints "bytes_read size full"
    expect_code 0 runuser -u postgres -- "$OPSBACKUP" -c "$CONF" -r a --password-file "$PGPW" --json \
        backup db --physical --pgdata "$PGDATA_DIR" --full-every "$1"
    json_get "$T/out" "'%d %d %s' % (j['extra']['bytes_read'], j['stats']['bytes'], j['extra']['full'])"
}
set -- $(fullrun 1h)
[ "$1" -lt $(($2 / 2)) ] && [ "$3" = False ] || problem "--full-every 1h right after a full backup read $1 of $2 bytes, full=$3"
sleep 2
set -- $(fullrun 1s)
[ "$1" -ge "$2" ] && [ "$3" = True ] || problem "--full-every 1s, 2 s after the last full backup, read $1 of $2 bytes, full=$3"

info "copy of a physical snapshot: its WAL first, so a failed WAL copy saves no snapshot"
REPO_C="$T/repo_c"
install -d -o postgres -m 0700 "$REPO_C"
runuser -u postgres -- "$OPSBACKUP" -r "$REPO_C" --password-file "$PGPW" init --kdf-n 1024 >/dev/null
# A file where the WAL directory belongs: the WAL copy fails.
runuser -u postgres -- touch "$REPO_C/wal"
run_rc runuser -u postgres -- "$OPSBACKUP" -c "$CONF" --password-file "$PGPW" copy --from a --to "$REPO_C"
[ "$RC" = 1 ] || problem "copy with a broken WAL archive exited $RC, not 1"
[ -z "$(ls -A "$REPO_C/snapshots" 2>/dev/null)" ] \
    || problem "copy saved a physical snapshot whose WAL it could not copy"
rm -f "$REPO_C/wal"
expect_code 0 runuser -u postgres -- "$OPSBACKUP" -c "$CONF" --password-file "$PGPW" copy --from a --to "$REPO_C"
[ -n "$(ls -A "$REPO_C/snapshots")" ] || problem "copy saved no snapshot once the WAL archive was fixed"

info "archive-get falls back to the second repository"
W="$T/w"
install -d -o postgres -m 0700 "$W"
FIRST=$(find "$REPO_A/wal/00000001" -name '0000000100000000000000*' | sed 's|.*/||; s|-.*||' | sort | sed -n 2p)
ORIG=$(find "$REPO_A/wal/00000001" -name "$FIRST-*")
mv "$ORIG" "$T/moved-away"
expect_code 0 oball archive-get --prefetch 0 "$FIRST" "$W/$FIRST"
[ -s "$W/$FIRST" ] || problem "fallback fetch wrote nothing"
mv "$T/moved-away" "$ORIG"

info "prefetch: the next segments are spooled and served without the repository"
expect_code 0 oba archive-get --prefetch 3 "$FIRST" "$W/RECOVERYXLOG"
NEXT=$(python3 -c "s='$FIRST'; n=int(s[16:],16)+1; print(s[:16]+'%08X'%n)")
for _ in $(seq 1 100); do [ -f "$W/opsbackup.get/$NEXT" ] && break; sleep 0.1; done
[ -f "$W/opsbackup.get/$NEXT" ] || fail "segment $NEXT was not prefetched"
# The delivered segment is kept too: PostgreSQL asks for its last one again
# at the end of recovery.  Served without the repository, the same bytes.
for _ in $(seq 1 100); do [ -f "$W/opsbackup.get/$FIRST" ] && break; sleep 0.1; done
expect_code 0 runuser -u postgres -- "$OPSBACKUP" -c "$CONF" -r a --password-file /nonexistent \
    archive-get "$FIRST" "$W/again"
cmp -s "$W/again" "$W/RECOVERYXLOG" || problem "the kept segment differs from the delivered one"
# Without a readable password the repository cannot be opened: only the
# spool can answer now.
expect_code 0 runuser -u postgres -- "$OPSBACKUP" -c "$CONF" -r a --password-file /nonexistent \
    archive-get "$NEXT" "$W/RECOVERYXLOG"
expect_code 0 oba archive-get --prefetch 0 "$NEXT" "$W/check"
cmp -s "$W/RECOVERYXLOG" "$W/check" || problem "spooled segment differs from the archived one"

info "a damaged spooled copy (a crash mid-write) is never handed to PostgreSQL"
# The prefetch after FIRST spooled the segment after NEXT too.  Zero it at
# full size (what a crash can leave): without the repository archive-get
# must now fail (the password file is missing: exit 126, which stops
# PostgreSQL's recovery instead of ending it there) rather
# than deliver it, and with it fetch the real bytes.
NEXT2=$(python3 -c "s='$NEXT'; n=int(s[16:],16)+1; print(s[:16]+'%08X'%n)")
[ -n "$(find "$REPO_A/wal/00000001" -name "$NEXT2-*")" ] || fail "test setup: $NEXT2 is not archived"
for _ in $(seq 1 100); do [ -f "$W/opsbackup.get/$NEXT2" ] && break; sleep 0.1; done
[ -f "$W/opsbackup.get/$NEXT2" ] || fail "segment $NEXT2 was not prefetched"
SZ=$(stat -c %s "$W/opsbackup.get/$NEXT2")
head -c "$SZ" /dev/zero >"$W/opsbackup.get/$NEXT2"
rm -f "$W/zeroed"
expect_code 126 runuser -u postgres -- "$OPSBACKUP" -c "$CONF" -r a --password-file /nonexistent \
    archive-get --prefetch 0 "$NEXT2" "$W/zeroed"
assert_grep "not a whole WAL segment" "$T/err"
[ -e "$W/zeroed" ] && problem "archive-get delivered a zeroed spool file"
[ -e "$W/opsbackup.get/$NEXT2" ] && problem "the damaged spool file was kept"
# The same for a copy cut short (its header intact).
expect_code 0 oba archive-get --prefetch 0 "$NEXT2" "$W/full"
head -c 100000 "$W/full" >"$W/opsbackup.get/$NEXT2"
expect_code 0 oba archive-get --prefetch 0 "$NEXT2" "$W/RECOVERYXLOG"
cmp -s "$W/RECOVERYXLOG" "$W/full" || problem "archive-get did not fetch $NEXT2 again after a short spool file"

info "restore --delta into a new directory leaves the live tablespace alone"
ts_before=$(find "$T/ts" -type f -printf '%P %s %T@\n' | sort | sha256sum)
expect_code 2 oba restore db --physical "$SNAP" --pgdata "$T/deltacopy" --delta
assert_grep "is not where" "$T/err"
[ "$(find "$T/ts" -type f -printf '%P %s %T@\n' | sort | sha256sum)" = "$ts_before" ] \
    || problem "restore --delta changed the live cluster's tablespace"

info "restore with the tablespace, to the end of the archive"
R="$T/restored"
install -d -o postgres -m 0700 "$R" "$R.sock"
OID=$(pg_sql "SELECT oid FROM pg_tablespace WHERE spcname = 'ts'")
# Its original location is in use (by the live cluster): refused.
expect_code 2 oba restore db --physical "$SNAP" --pgdata "$R"
assert_grep "tablespace-map" "$T/err"
[ -z "$(ls -A "$R")" ] || problem "a refused restore wrote into the data directory"
expect_code 2 oba restore db --physical "$SNAP" --pgdata "$R" --tablespace-map 99999="$T/x"
RESTORED="$R"
install -d -o postgres -m 0700 "$T/ts_restored"
expect_code 0 oba restore db --physical "$SNAP" --pgdata "$R" --tablespace-map "$OID=$T/ts_restored" \
    --start --start-options "-p $((PGPORT + 1)) -c unix_socket_directories=$R.sock"
sqlr() { "$PGBIN/psql" -XAtq -h "$R.sock" -p $((PGPORT + 1)) -U postgres -d postgres -c "$1"; }
[ "$(sqlr "SELECT sum(g) || ':' || count(*) FROM in_ts")" = "$SUM2" ] \
    || problem "tablespace table differs after restore (want $SUM2, base had $SUM)"
[ "$(readlink "$R/pg_tblspc/$OID")" = "$T/ts_restored" ] \
    || problem "pg_tblspc/$OID does not link to the mapped location"
[ "$(sqlr "SELECT pg_tablespace_location($OID)")" = "$T/ts_restored" ] \
    || problem "restored server sees the tablespace elsewhere"
[ -z "$(ls -A "$T/ts_restored" 2>/dev/null)" ] && problem "nothing restored into the tablespace directory"
[ -d "$R/pg_wal" ] && [ ! -L "$R/pg_wal" ] \
    || problem "pg_wal was restored as $(stat -c %F "$R/pg_wal"), not a directory"
grep -q "^archive_mode" "$R/postgresql.auto.conf" \
    || problem "the cluster's archive_mode (ALTER SYSTEM) was dropped from postgresql.auto.conf"
# Recovery fetched its segments through archive-get's spool; --start
# removes it once the server is promoted.
[ -e "$R/pg_wal/opsbackup.get" ] && problem "archive-get's spool is left in pg_wal after promotion"

info ".partial segments (a standby's last segment at promotion) are archived and fetched"
cp "$W/check" "$W/${NEXT}.partial"
chown postgres "$W/${NEXT}.partial"
expect_code 0 oball archive-push "$W/${NEXT}.partial"
expect_code 0 obb archive-get "${NEXT}.partial" "$W/partial.back"
cmp -s "$W/${NEXT}.partial" "$W/partial.back" || problem ".partial came back different"
info "WAL retention: forget removes WAL older than the oldest kept physical backup"
(cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$R" -m fast -w stop) >/dev/null
RESTORED=""
expect_code 0 runuser -u postgres -- "$OPSBACKUP" -c "$CONF" -r a --password-file "$PGPW" --json \
    backup db --physical --pgdata "$PGDATA_DIR"
SNAP2=$(json_get "$T/out" "j['id']")
START2=$(json_get "$T/out" "j['extra']['start_wal']")
older() { find "$REPO_A/wal" -type f -name '[0-9A-F]*' | sed 's|.*/||' \
    | grep -v '\.history-' | awk -v s="${START2:8:16}" 'length($0) > 24 && substr($0, 9, 16) < s' | wc -l; }
before=$(older)
[ "$before" -gt 0 ] || fail "no WAL older than the second backup to expire"
nhist=$(find "$REPO_A/wal" -name '*.history-*' | wc -l)
# A snapshot forget cannot read may be an older physical backup whose WAL
# must stay: with one damaged, no WAL goes (it used to be judged by the
# snapshots that could be read alone).
OTHER=$(find "$REPO_A/snapshots" -type f ! -name "$SNAP2" ! -name '.*' | head -1)
[ -n "$OTHER" ] || fail "test setup: no snapshot but $SNAP2"
cp -p "$OTHER" "$T/other-snapshot"
flip_middle "$OTHER"
expect_code 0 oba forget --kind db-physical --keep-last 1 --dry-run
assert_grep "could not be read .* so no WAL is removed" "$T/err"
grep -q "WAL file" "$T/out" && problem "forget would remove WAL with a snapshot it could not read: $(cat "$T/out")"
cp -p "$T/other-snapshot" "$OTHER"
expect_code 0 oba forget --kind db-physical --keep-last 1 --dry-run
assert_grep "would remove $before WAL file" "$T/out"
[ "$(older)" = "$before" ] || problem "--dry-run removed WAL"
expect_code 0 oba --json forget --kind db-physical --keep-last 1
[ "$(json_get "$T/out" "j['wal']['removed']")" = "$before" ] || problem "forget --json wal count wrong"
[ "$(older)" = 0 ] || problem "WAL older than the kept backup was not removed"
[ "$(find "$REPO_A/wal" -name '*.history-*' | wc -l)" = "$nhist" ] || problem "history files removed"
find "$REPO_A/wal" -name "$START2-*" | grep -q . || problem "the kept backup's first segment was removed"
expect_code 0 oba check --read-data
R2="$T/restored2"
install -d -o postgres -m 0700 "$R2" "$R2.sock"
install -d -o postgres -m 0700 "$T/ts_restored2"
RESTORED="$R2"
expect_code 0 oba restore db --physical "$SNAP2" --pgdata "$R2" --target-immediate \
    --tablespace-map "$OID=$T/ts_restored2" \
    --start --start-options "-p $((PGPORT + 2)) -c unix_socket_directories=$R2.sock"
got=$("$PGBIN/psql" -XAtq -h "$R2.sock" -p $((PGPORT + 2)) -U postgres -d postgres \
    -c "SELECT sum(g) || ':' || count(*) FROM in_ts")
[ "$got" = "$SUM2" ] || problem "kept backup restored after WAL retention: got $got, want $SUM2"
expect_code 0 obb check --read-data
finish
