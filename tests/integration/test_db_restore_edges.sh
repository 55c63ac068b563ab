#!/usr/bin/env bash
# restore db edge cases found in a review of the logical restore (session 13):
#   - --roles creates the roles the cluster lacks and leaves existing roles
#     exactly as they are (password, attributes, settings, memberships);
#   - SIGTERM while --replace swaps the names never leaves the live database
#     refusing connections;
#   - a taken NAME_before_restore_<time> is refused before anything is restored;
#   - a multibyte database name is cut at a character boundary for the
#     temporary names;
#   - a restore command that stops reading early is an error (it killed
#     opsbackup with SIGPIPE, leaving the half-made database);
#   - --replace and --target-db keep the database's own properties (GRANT /
#     REVOKE on it, ALTER DATABASE SET, ALTER ROLE IN DATABASE SET, COMMENT,
#     connection limit);
#   - a locale the restoring server lacks: the database is made with the
#     server's default locale and a warning, not refused (session 16);
#   - --jobs spools the dump into a file without a name, and a signal
#     during that copy ends the restore cleanly (session 19).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"

pg_start
init_repo

# authid ROLE: its password hash, connection limit, LOGIN and settings.
authid() { pg_sql "SELECT coalesce(a.rolpassword, '-') || ' ' || a.rolconnlimit || ' ' || a.rolcanlogin || ' ' || coalesce(array_to_string(r.rolconfig, ','), '-') FROM pg_authid a JOIN pg_roles r ON r.oid = a.oid WHERE a.rolname = '$1'"; }
member_of() { pg_sql "SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = '$1' AND u.rolname = '$2'"; }

info "--roles keeps existing roles and creates missing ones"
pg_sql "CREATE ROLE app_owner LOGIN PASSWORD 'old-secret' CONNECTION LIMIT 9;
ALTER ROLE app_owner SET work_mem = '1MB';
CREATE ROLE grp NOLOGIN;
CREATE ROLE \"Missing \"\"One\" LOGIN PASSWORD 'm-secret' CONNECTION LIMIT 4;
ALTER ROLE \"Missing \"\"One\" SET work_mem = '2MB';
COMMENT ON ROLE \"Missing \"\"One\" IS 'from the backup';
GRANT grp TO \"Missing \"\"One\";
GRANT grp TO app_owner"
pg_sql "CREATE DATABASE edb OWNER app_owner"
pg_sql -d edb "SET ROLE app_owner; CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 100)"
missing_before=$(authid 'Missing "One')
expect_code 0 ob backup db --dbname edb
# After the backup the existing role changes: a new password, other
# attributes, no setting, no membership.  The missing role goes.
pg_sql "ALTER ROLE app_owner PASSWORD 'new-secret' CONNECTION LIMIT 5 NOLOGIN;
ALTER ROLE app_owner RESET work_mem;
REVOKE grp FROM app_owner;
DROP ROLE \"Missing \"\"One\""
owner_before=$(authid app_owner)
run_rc ob restore db latest --target-db edb_roles --roles
[ "$RC" = 0 ] || { cat "$T/err" >&2; problem "restore db --roles exited $RC"; }
owner_after=$(authid app_owner)
[ "$owner_after" = "$owner_before" ] ||
    problem "restore db --roles changed the existing role app_owner: '$owner_before' became '$owner_after'"
[ "$(member_of grp app_owner)" = 0 ] || problem "restore db --roles made the existing role app_owner a member of grp again"
missing_after=$(authid 'Missing "One')
[ "$missing_after" = "$missing_before" ] ||
    problem "restore db --roles did not recreate the missing role as it was: '$missing_before', got '$missing_after'"
[ "$(member_of grp 'Missing "One')" = 1 ] || problem "restore db --roles did not restore the missing role's membership in grp"
[ "$(pg_sql "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = 'Missing \"One'")" = "from the backup" ] ||
    problem "restore db --roles did not restore the missing role's comment"
grep -q 'SCRAM' "$T/err" "$T/out" && problem "restore db --roles printed a password hash"
pg_db_exists edb_roles && [ "$(pg_sql -d edb_roles "SELECT count(*) FROM t")" = 100 ] ||
    problem "restore db --roles did not restore the data"

info "SIGTERM while --replace swaps never leaves the live database refusing connections"
pg_sql "CREATE DATABASE sigdb"
pg_sql -d sigdb "CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 100)"
expect_code 0 ob --json backup db --dbname sigdb
sigsnap=$(json_get "$T/out" 'j["id"]')
pg_sql -d sigdb "INSERT INTO t VALUES (0)"
# A session that outlives pg_terminate_backend for a few seconds: its
# backend waits in pclose() for a program that ignores SIGTERM (the whole
# process group is signalled).  --replace waits for it with the live
# database's ALLOW_CONNECTIONS off: the window the signal must hit.
"$PGBIN/psql" -X -d sigdb -c "COPY (SELECT 1) TO PROGRAM 'trap \"\" TERM; sleep 6'" >"$T/blocker.out" 2>&1 &
bg_track $!
for _ in $(seq 100); do
    [ "$(pg_sql "SELECT count(*) FROM pg_stat_activity WHERE datname = 'sigdb' AND query LIKE '%TO PROGRAM%' AND pid <> pg_backend_pid()")" = 1 ] && break
    sleep 0.05
done
"$OPSBACKUP" -r "$REPO" restore db "$sigsnap" --replace --dbname sigdb >"$T/sig.out" 2>"$T/sig.err" &
restorer=$!
bg_track $restorer
hit=0
for _ in $(seq 400); do
    if [ "$(pg_sql "SELECT datallowconn FROM pg_database WHERE datname = 'sigdb'")" = f ]; then
        kill -TERM $restorer
        hit=1
        break
    fi
    kill -0 $restorer 2>/dev/null || break
    sleep 0.02
done
set +e
wait $restorer
sigrc=$?
set -e
[ $hit = 1 ] || { cat "$T/sig.err" >&2; fail "never saw sigdb refusing connections during --replace (exit $sigrc)"; }
info "(restore db --replace got SIGTERM while sigdb refused connections; exit $sigrc)"
[ "$(pg_sql "SELECT datallowconn FROM pg_database WHERE datname = 'sigdb'")" = t ] ||
    problem "after SIGTERM during the swap, database sigdb refuses connections (datallowconn false)"
rows=$(pg_sql -d sigdb "SELECT count(*) FROM t" 2>&1) || problem "cannot connect to sigdb after SIGTERM during the swap: $rows"
kept=$(pg_sql "SELECT count(*) FROM pg_database WHERE datname LIKE 'sigdb\_before\_restore\_%'")
# Either rolled back (the live data as it was, nothing kept) or completed
# (the backup's rows, the old database kept); never in between.
if [ "$rows" = 101 ] && [ "$kept" = 0 ]; then
    assert_grep "interrupted by signal" "$T/sig.err"
elif [ "$rows" = 100 ] && [ "$kept" = 1 ]; then
    :
else
    problem "after SIGTERM during the swap: sigdb has $rows rows and $kept kept database(s)"
fi
[ "$(pg_sql "SELECT count(*) FROM pg_database WHERE datname LIKE 'sigdb\_restore\_%'")" = 0 ] ||
    problem "SIGTERM during the swap left the temporary sigdb_restore_* database"
[ "$sigrc" = 143 ] || problem "restore db --replace ended with $sigrc after SIGTERM, not 143"

# term_restorer: SIGTERM to $restorer, then wait for it; sets TERM_RC (its
# exit status) and TERM_MS (milliseconds from the signal to its end).
term_restorer() {
    local t0
    t0=$(date +%s%N)
    kill -TERM "$restorer"
    set +e
    wait "$restorer"
    TERM_RC=$?
    set -e
    TERM_MS=$((($(date +%s%N) - t0) / 1000000))
}

info "SIGTERM while pg_restore runs drops the half-made database and ends by the signal"
# The restore command waits (its stdin left alone, not handed to sleep) so
# that the signal lands while pg_restore is the running command; opsbackup
# must stop it, drop what it created and still end by SIGTERM (143).
# The wrappers' sleeps outlive them when they are killed: their PIDs are
# kept so the test can end them (other tests look for stray sleeps).
cat >"$T/slow_pg_restore" <<EOF
#!/bin/sh
sleep 20 </dev/null &
echo \$! >>"$T/sleeps"
touch "$T/slow.started"
wait \$!
exec "$PGBIN/pg_restore" "\$@"
EOF
chmod 755 "$T/slow_pg_restore"
for mode in "--target-db intrdb" "--replace --dbname sigdb"; do
    rm -f "$T/slow.started"
    # shellcheck disable=SC2086 # mode is two or three words
    "$OPSBACKUP" -r "$REPO" restore db "$sigsnap" $mode --restore-command "$T/slow_pg_restore" \
        >"$T/intr.out" 2>"$T/intr.err" &
    restorer=$!
    bg_track $restorer
    for _ in $(seq 200); do
        [ -e "$T/slow.started" ] && break
        sleep 0.05
    done
    [ -e "$T/slow.started" ] || fail "restore db $mode never started its restore command"
    term_restorer
    intrrc=$TERM_RC
    [ "$TERM_MS" -lt 15000 ] ||
        problem "restore db $mode took until its restore command ended to stop after SIGTERM"
    [ "$intrrc" = 143 ] || problem "restore db $mode ended with $intrrc after SIGTERM, not 143"
    assert_grep "interrupted by signal 15" "$T/intr.err"
    [ "$(pg_sql "SELECT count(*) FROM pg_database WHERE datname = 'intrdb' OR datname LIKE 'sigdb\_restore\_%'")" = 0 ] ||
        problem "SIGTERM during restore db $mode left a database behind: $(pg_databases | tr '\n' ' ')"
done
[ "$(pg_sql -d sigdb "SELECT datallowconn FROM pg_database WHERE datname = 'sigdb'")" = t ] ||
    problem "sigdb refuses connections after an interrupted --replace"

info "SIGTERM while --replace counts the restored copy's rows cancels the count"
# (Session 20.)  --replace compares the copy's row counts with the
# snapshot's before the swap; a count can take minutes on a large table.
# Here it waits for a lock the restore command leaves held on t (a
# session sleeping in its transaction), so the signal lands during the
# count: the query is cancelled, the copy dropped (WITH FORCE ends the
# locking session), the live database untouched, exit 143.
# locking_restore_command FILE SECONDS: a restore command that runs
# pg_restore, then leaves a session holding an exclusive lock on the new
# database's table t for SECONDS, and exits 0 once the lock is held.
locking_restore_command() {
    cat >"$1" <<EOF
#!/bin/sh
"$PGBIN/pg_restore" "\$@" || exit
for a in "\$@"; do case "\$a" in --dbname=*) db="\${a#--dbname=}";; esac; done
"$PGBIN/psql" -X -q -d "\$db" -c "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep($2)" \
    </dev/null >/dev/null 2>&1 &
for i in \$(seq 100); do
    [ "\$("$PGBIN/psql" -X -At -d "\$db" -c "SELECT count(*) FROM pg_locks WHERE relation = 't'::regclass AND mode = 'AccessExclusiveLock' AND granted")" = 1 ] && break
    sleep 0.1
done
EOF
    chmod 755 "$1"
}
locking_restore_command "$T/locking_pg_restore" 120
dbs_before=$(pg_databases)
live_rows=$(pg_sql -d sigdb "SELECT count(*) FROM t")
pg_sql -d sigdb "INSERT INTO t VALUES (-1)" # the live data differs from the backup's
live_rows=$((live_rows + 1))
"$OPSBACKUP" -r "$REPO" restore db "$sigsnap" --replace --dbname sigdb \
    --restore-command "$T/locking_pg_restore" >"$T/cnt.out" 2>"$T/cnt.err" &
restorer=$!
bg_track $restorer
waiting=0
for _ in $(seq 300); do
    if [ "$(pg_sql "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT count(*) FROM ONLY%'")" = 1 ]; then
        waiting=1
        break
    fi
    kill -0 $restorer 2>/dev/null || break
    sleep 0.1
done
[ $waiting = 1 ] || { cat "$T/cnt.err" >&2; fail "restore db --replace never counted the restored copy's rows"; }
term_restorer
cntrc=$TERM_RC
[ "$TERM_MS" -lt 10000 ] || problem "restore db --replace waited for a row count to end after SIGTERM"
[ "$cntrc" = 143 ] || { cat "$T/cnt.err" >&2; problem "restore db --replace ended with $cntrc after SIGTERM during the count, not 143"; }
assert_grep "interrupted by signal 15" "$T/cnt.err"
[ "$(pg_databases)" = "$dbs_before" ] ||
    problem "SIGTERM during the count left a database behind or took one: $(pg_databases | tr '\n' ' ')"
[ "$(pg_sql -d sigdb "SELECT count(*) FROM t")" = "$live_rows" ] || problem "SIGTERM during the count changed the live sigdb"
[ "$(pg_sql -d sigdb "SELECT datallowconn FROM pg_database WHERE datname = 'sigdb'")" = t ] ||
    problem "sigdb refuses connections after a --replace stopped during the count"
# A restore command that ignores SIGTERM (a hung ssh or docker exec): a
# second signal kills it, and the restore still ends and cleans up.
cat >"$T/deaf_pg_restore" <<EOF
#!/bin/sh
trap '' TERM
sleep 20 </dev/null &
echo \$! >>"$T/sleeps"
touch "$T/deaf.started"
wait \$!
exec "$PGBIN/pg_restore" "\$@"
EOF
chmod 755 "$T/deaf_pg_restore"
"$OPSBACKUP" -r "$REPO" restore db "$sigsnap" --target-db deafdb --restore-command "$T/deaf_pg_restore" \
    >"$T/deaf.out" 2>"$T/deaf.err" &
restorer=$!
bg_track $restorer
for _ in $(seq 200); do
    [ -e "$T/deaf.started" ] && break
    sleep 0.05
done
started=$(date +%s)
kill -TERM $restorer
sleep 1
kill -TERM $restorer 2>/dev/null || true
set +e
wait $restorer
deafrc=$?
set -e
[ $(($(date +%s) - started)) -lt 10 ] ||
    problem "restore db did not end within 10 s of a second SIGTERM to a command that ignores SIGTERM"
[ "$deafrc" = 143 ] || problem "restore db with a deaf restore command ended with $deafrc, not 143"
assert_grep "send it again" "$T/deaf.err"
[ "$(pg_sql "SELECT count(*) FROM pg_database WHERE datname = 'deafdb'")" = 0 ] ||
    problem "an interrupted restore with a deaf restore command left deafdb behind"
while read -r p; do kill -KILL "$p" 2>/dev/null || true; done <"$T/sleeps"

info "the count before the swap does not take the database's lock_timeout"
# pg_restore copies the database's settings onto the restored copy, and a
# role's or database's lock_timeout / statement_timeout used to end the
# count of a busy or large table: a sound copy was refused as a mismatch.
# Here the copy gets lock_timeout = 10ms and a session holds t for 2 s.
locking_restore_command "$T/timeout_pg_restore" 2
cat >>"$T/timeout_pg_restore" <<EOF
dbname=\$("$PGBIN/psql" -X -At -d "\$db" -c "SELECT current_database()")
"$PGBIN/psql" -X -q -d "\$db" -c "ALTER DATABASE \"\$dbname\" SET lock_timeout = '10ms'" >/dev/null
EOF
run_rc ob restore db "$sigsnap" --replace --dbname sigdb --restore-command "$T/timeout_pg_restore"
[ "$RC" = 0 ] || problem "restore db --replace refused a copy whose count met the database's lock_timeout: $(cat "$T/err")"
[ "$(pg_sql -d sigdb "SELECT count(*) FROM t")" = 100 ] || problem "sigdb does not hold the snapshot's 100 rows after the restore"
for d in $(pg_sql "SELECT datname FROM pg_database WHERE datname LIKE 'sigdb\_before\_restore\_%'"); do
    pg_sql "DROP DATABASE \"$d\""
done

info "restore db --jobs: the dump's spool file has no name, and a signal stops the copy into it"
# Parallel pg_restore needs a seekable copy of the dump.  It was a named
# file in TMPDIR, which a kill -9 left there (as large as the dump); now
# it has no name and pg_restore reads it as its stdin.  The pg_restore
# found on PATH is this wrapper, which only shows what it was given.
mkdir -p "$T/partmp" "$T/parbin"
cat >"$T/parbin/pg_restore" <<EOF
#!/bin/sh
[ -f /proc/self/fd/0 ] && [ -s /proc/self/fd/0 ] && echo "\$*" >"$T/par.args"
echo \$\$ >>"$T/sleeps"
touch "$T/par.started"
exec sleep 20 </dev/null
EOF
chmod 755 "$T/parbin/pg_restore"
TMPDIR="$T/partmp" PATH="$T/parbin:$PATH" "$OPSBACKUP" -r "$REPO" restore db "$sigsnap" \
    --target-db pardb --jobs 2 >"$T/par.out" 2>"$T/par.err" &
restorer=$!
bg_track $restorer
for _ in $(seq 200); do
    [ -e "$T/par.started" ] && break
    sleep 0.05
done
[ -e "$T/par.started" ] || { cat "$T/par.err" >&2; fail "restore db --jobs 2 never started pg_restore"; }
[ -z "$(ls -A "$T/partmp")" ] || problem "restore db --jobs named its spool file in TMPDIR: $(ls -A "$T/partmp")"
assert_grep "jobs=2 /proc/self/fd/0" "$T/par.args"
kill -KILL $restorer
wait $restorer 2>/dev/null || true
[ -z "$(ls -A "$T/partmp")" ] || problem "kill -9 during restore db --jobs left files in TMPDIR: $(ls -A "$T/partmp")"
pg_sql "DROP DATABASE IF EXISTS pardb"
while read -r p; do kill -KILL "$p" 2>/dev/null || true; done <"$T/sleeps"

# The copy into the spool file holds the signals back (the watcher takes
# them for pg_restore), so it looks for one itself before each write: a
# copy of a large dump went on to its end after Ctrl-C.  Here the copy is
# slowed by S3 behind a proxy that holds back every ranged GET (blob
# reads) for 1 s; the signal comes once the spool file is open.  The dump
# fills four packs: a copy that stops at the signal makes at most the GET
# in flight after it (2 in all, with the tree's), one that does not makes
# them all (17 with the copy that did not look).
# (The suite runs this test on a directory: the S3 test server is started
# for this part.)
if s3_available; then
    if [ "$S3_MODE" = 0 ]; then
        on_exit s3_stop
        s3_start "$T/s3par" || fail "the S3 test server did not start"
        s3_env
    fi
    parrepo="s3://$S3_BUCKET/parrepo?endpoint=$S3_ENDPOINT"
    "$OPSBACKUP" -r "$parrepo" init --kdf-n 1024 >/dev/null
    pg_sql "CREATE DATABASE bigdb"
    pg_sql -d bigdb "CREATE TABLE big AS SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 64) i) AS v FROM generate_series(1, 52000) g"
    "$OPSBACKUP" -r "$parrepo" --json backup db --dbname bigdb >"$T/big.json" ||
        fail "backup db of bigdb to S3 failed"
    bigsnap=$(json_get "$T/big.json" 'j["id"]')
    pg_sql "DROP DATABASE bigdb"
    # hold_proxy RULE: a faultproxy in front of the S3 server; sets pport
    # and proxy; the requests it holds are logged to $T/proxy.held.
    hold_proxy() {
        pport=$(s3_free_port)
        rm -f "$T/proxy.held" "$T/proxy.log"
        python3 "$TOOLS/faultproxy.py" "$pport" "$S3_PORT" "$1" --log "$T/proxy.held" \
            >"$T/proxy.log" 2>&1 &
        proxy=$!
        bg_track $proxy
        wait_ready "$T/proxy.log" $proxy || fail "the fault proxy did not start: $(cat "$T/proxy.log")"
    }
    hold_proxy "delay:1@RANGE:1"
    rm -f "$T/par.started"
    TMPDIR="$T/partmp" PATH="$T/parbin:$PATH" "$OPSBACKUP" \
        -r "s3://$S3_BUCKET/parrepo?endpoint=http://127.0.0.1:$pport" restore db "$bigsnap" \
        --target-db bigdb --jobs 2 >"$T/par.out" 2>"$T/par.err" &
    restorer=$!
    bg_track $restorer
    # The copy has begun once the restore holds a file of TMPDIR open.
    copying=0
    for _ in $(seq 600); do
        if ls -l "/proc/$restorer/fd" 2>/dev/null | grep -q "$T/partmp"; then copying=1; break; fi
        kill -0 $restorer 2>/dev/null || break
        sleep 0.05
    done
    [ $copying = 1 ] || { cat "$T/par.err" >&2; fail "restore db --jobs from S3 never began copying the dump"; }
    term_restorer
    parrc=$TERM_RC
    kill $proxy 2>/dev/null || true
    wait $proxy 2>/dev/null || true
    packs=$(json_get "$T/big.json" 'j["stats"]["bytes_stored"] // (16 << 20) + 1')
    held=$(wc -l <"$T/proxy.held")
    info "(SIGTERM during the copy: exit $parrc after $held ranged GETs; the dump fills $packs packs)"
    [ "$packs" -ge 4 ] || problem "the dump fills $packs packs, too few to tell a copy that stops from one that does not"
    [ "$held" -le 2 ] || problem "restore db --jobs went on reading ($held ranged GETs) after SIGTERM during the copy"
    [ "$parrc" = 143 ] || { cat "$T/par.err" >&2; problem "restore db --jobs ended with $parrc after SIGTERM during the copy, not 143"; }
    assert_grep "interrupted by signal 15" "$T/par.err"
    [ ! -e "$T/par.started" ] || problem "restore db --jobs started pg_restore after SIGTERM during the copy"
    [ "$(pg_sql "SELECT count(*) FROM pg_database WHERE datname = 'bigdb'")" = 0 ] ||
        problem "SIGTERM during the copy of restore db --jobs left database bigdb behind"
    [ -z "$(ls -A "$T/partmp")" ] || problem "an interrupted restore db --jobs left files in TMPDIR"

    # A read from a stalled server: the proxy holds the first data read
    # (the second ranged GET, after the tree's) for 10 minutes.  The signal
    # is held back for the watcher, so nothing interrupted the GET: the
    # restore went on waiting for curl's low-speed limit (60 s), then
    # retried.  Now the storage asks the watcher and gives up the request
    # within about a second.  With and without --jobs (the copy into the
    # spool file, the copy into pg_restore's stdin).
    for jobs in 2 1; do
        hold_proxy "delay:600@RANGE:#2"
        rm -f "$T/par.started"
        TMPDIR="$T/partmp" PATH="$T/parbin:$PATH" "$OPSBACKUP" \
            -r "s3://$S3_BUCKET/parrepo?endpoint=http://127.0.0.1:$pport" restore db "$bigsnap" \
            --target-db bigdb --jobs $jobs >"$T/par.out" 2>"$T/par.err" &
        restorer=$!
        bg_track $restorer
        for _ in $(seq 600); do
            [ -s "$T/proxy.held" ] && break
            kill -0 $restorer 2>/dev/null || break
            sleep 0.05
        done
        [ -s "$T/proxy.held" ] || { cat "$T/par.err" >&2; fail "restore db --jobs $jobs never reached the held GET"; }
        sleep 0.5
        term_restorer
        parrc=$TERM_RC
        ms=$TERM_MS
        kill $proxy 2>/dev/null || true
        wait $proxy 2>/dev/null || true
        info "(SIGTERM during a held GET, --jobs $jobs: exit $parrc after $ms ms)"
        [ "$ms" -lt 15000 ] || problem "restore db --jobs $jobs waited $ms ms on a stalled GET after SIGTERM"
        [ "$parrc" = 143 ] || { cat "$T/par.err" >&2; problem "restore db --jobs $jobs ended with $parrc after SIGTERM during a stalled GET, not 143"; }
        assert_grep "interrupted by signal 15" "$T/par.err"
        [ "$(pg_sql "SELECT count(*) FROM pg_database WHERE datname = 'bigdb'")" = 0 ] ||
            problem "SIGTERM during a stalled GET (--jobs $jobs) left database bigdb behind"
        [ -z "$(ls -A "$T/partmp")" ] || problem "restore db --jobs $jobs stopped during a stalled GET left files in TMPDIR"
    done
elif [ "${OB_REQUIRE_S3:-0}" = 1 ]; then
    problem "OB_REQUIRE_S3=1 but the S3 test server is not installed: the interrupted copy was not tested"
else
    info "SKIP the interrupted copy of restore db --jobs: the S3 test server is not installed"
fi

info "restore db latest --replace takes the newest snapshot of the database it replaces"
# (Session 20.)  latest was the newest db snapshot of any database: with
# two databases backed up without a set, --replace --dbname lat_a swapped
# lat_b's dump in under lat_a's name.
for d in lat_a lat_b lat_c; do pg_sql "CREATE DATABASE $d"; done
pg_sql -d lat_a "CREATE TABLE t (i int); INSERT INTO t VALUES (1)"
pg_sql -d lat_b "CREATE TABLE t (i int); INSERT INTO t VALUES (2), (3)"
pg_sql -d lat_c "CREATE TABLE t (i int); INSERT INTO t VALUES (4)"
expect_code 0 ob --json backup db --dbname lat_a
expect_code 0 ob --json backup db --dbname lat_b
latb=$(json_get "$T/out" 'j["id"]')
pg_sql -d lat_a "INSERT INTO t VALUES (9)"
run_rc ob restore db latest --replace --dbname dbname=lat_a
[ "$RC" = 0 ] || problem "restore db latest --replace --dbname dbname=lat_a exited $RC: $(cat "$T/err")"
[ "$(pg_sql -d lat_a "SELECT string_agg(i::text, ',' ORDER BY i) FROM t")" = 1 ] ||
    problem "latest --replace of lat_a did not restore lat_a's own backup: $(pg_sql -d lat_a "SELECT string_agg(i::text, ',' ORDER BY i) FROM t")"
# A database with no snapshot of its own: refused, nothing changes (named
# bare, as --dbname also takes it).
dbs_before=$(pg_databases)
run_rc ob restore db latest --replace --dbname lat_c
[ "$RC" != 0 ] || problem "restore db latest --replace of a database never backed up exited 0"
assert_grep "no logical snapshot of database lat_c" "$T/err"
[ "$(pg_sql -d lat_c "SELECT string_agg(i::text, ',') FROM t")" = 4 ] || problem "the refused restore changed lat_c"
[ "$(pg_databases)" = "$dbs_before" ] || problem "the refused restore changed the databases"
# Given by ID, another database's dump in its place is the user's choice.
expect_code 0 ob restore db "$latb" --replace --dbname dbname=lat_c
[ "$(pg_sql -d lat_c "SELECT string_agg(i::text, ',' ORDER BY i) FROM t")" = 2,3 ] ||
    problem "restore db ID --replace did not put lat_b's dump in lat_c's place"
for d in $(pg_sql "SELECT datname FROM pg_database WHERE datname LIKE 'lat\_%'"); do
    pg_sql "DROP DATABASE \"$d\""
done

info "a taken NAME_before_restore_<time> is refused before anything is restored"
pg_sql "CREATE DATABASE takendb"
pg_sql -d takendb "CREATE TABLE t (i int); INSERT INTO t VALUES (1)"
expect_code 0 ob --json backup db --dbname takendb
takensnap=$(json_get "$T/out" 'j["id"]')
# The name holds the second the restore starts (local time): take the next
# few, counted from one instant (a date per name skipped a second whenever
# the loop crossed one, and the restore could start in that gap).
base=$(date +%s)
for k in $(seq 0 14); do
    pg_sql "CREATE DATABASE \"takendb_before_restore_$(date -d "@$((base + k))" +%Y%m%d%H%M%S)\""
done
dbs_before=$(pg_databases)
cat >"$T/marking_pg_restore" <<EOF
#!/bin/sh
touch "$T/pg_restore.ran"
exec "$PGBIN/pg_restore" "\$@"
EOF
chmod 755 "$T/marking_pg_restore"
run_rc ob restore db "$takensnap" --replace --dbname takendb --restore-command "$T/marking_pg_restore"
[ "$RC" != 0 ] || problem "restore db --replace with takendb_before_restore_<now> taken exited 0"
grep -q 'takendb_before_restore_[0-9]* already exists' "$T/err" ||
    problem "restore db --replace with a taken _before_restore_ name does not say so: $(cat "$T/err")"
[ -e "$T/pg_restore.ran" ] && problem "restore db --replace ran pg_restore before finding its _before_restore_ name taken"
[ "$(pg_databases)" = "$dbs_before" ] || problem "the refused --replace changed the list of databases"

info "a multibyte database name is cut at a character boundary for the temporary names"
# 2 + 20 × 3 = 62 bytes: with _restore_<time> (23 bytes) 40 bytes of it are
# kept, with _before_restore_<time> 33: both fall inside a character.
mbdb="ab$(printf '漢%.0s' $(seq 20))"
pg_sql "CREATE DATABASE \"$mbdb\""
pg_sql -d "$mbdb" "CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 10)"
expect_code 0 ob --json backup db --dbname "$mbdb"
mbsnap=$(json_get "$T/out" 'j["id"]')
pg_sql -d "$mbdb" "INSERT INTO t VALUES (0)"
run_rc ob restore db "$mbsnap" --replace --dbname "$mbdb"
[ "$RC" = 0 ] || problem "restore db --replace of a 62-byte Japanese database name exited $RC: $(cat "$T/err")"
[ "$(pg_sql -d "$mbdb" "SELECT count(*) FROM t")" = 10 ] || problem "restore db --replace of $mbdb did not restore its rows"
kept=$(pg_sql "SELECT datname FROM pg_database WHERE datname LIKE 'ab%\_before\_restore\_%'")
[ "$kept" = "ab$(printf '漢%.0s' $(seq 10))_before_restore_${kept##*_}" ] ||
    problem "the kept database is named '$kept', not ab + 10 characters + _before_restore_<time>"

info "a restore command that stops reading early is an error, not a SIGPIPE death"
# pg_restore --exit-on-error failing on an early statement stops reading a
# dump larger than the pipe: opsbackup died of SIGPIPE (exit 141), saying
# nothing and leaving the half-made database.
pg_sql "CREATE DATABASE pipedb"
pg_sql -d pipedb "CREATE TABLE t AS SELECT i, md5(i::text) AS m FROM generate_series(1, 100000) i"
expect_code 0 ob --json backup db --dbname pipedb
pipesnap=$(json_get "$T/out" 'j["id"]')
printf '#!/bin/sh\necho "early: injected failure" >&2\nexit 1\n' >"$T/early_exit"
chmod 755 "$T/early_exit"
for mode in "--target-db pipedb_copy" "--replace --dbname pipedb"; do
    dbs_before=$(pg_databases)
    set +e
    # shellcheck disable=SC2086
    ob restore db "$pipesnap" $mode --restore-command "$T/early_exit" >"$T/out" 2>"$T/err"
    RC=$?
    set -e
    [ "$RC" = 1 ] || problem "restore db $mode with a restore command exiting early ended with $RC, not 1"
    grep -q 'early: injected failure' "$T/err" || problem "restore db $mode does not show the restore command's error: $(cat "$T/err")"
    [ "$(pg_databases)" = "$dbs_before" ] || problem "restore db $mode with a restore command exiting early left: $(LC_ALL=C comm -13 <(echo "$dbs_before") <(pg_databases) | tr '\n' ' ')"
done

info "--replace and --target-db keep the database's own properties"
# pg_restore writes these only with --create (GRANT/REVOKE on the database,
# ALTER DATABASE SET, ALTER ROLE IN DATABASE SET, COMMENT, connection limit).
# The name needs quoting, and the new names differ from the archive's.
propdb='Prop"db'
pg_sql "CREATE DATABASE \"Prop\"\"db\""
pg_sql "REVOKE CONNECT, TEMPORARY ON DATABASE \"Prop\"\"db\" FROM PUBLIC;
GRANT CONNECT ON DATABASE \"Prop\"\"db\" TO grp;
ALTER DATABASE \"Prop\"\"db\" SET search_path = app, public;
ALTER ROLE grp IN DATABASE \"Prop\"\"db\" SET work_mem = '3MB';
COMMENT ON DATABASE \"Prop\"\"db\" IS 'プロパティ ''quoted''';
ALTER DATABASE \"Prop\"\"db\" CONNECTION LIMIT 17"
pg_sql -d "$propdb" "CREATE TABLE t (i int); INSERT INTO t VALUES (1)"
# db_props NAME: connection limit, privileges (sorted), comment, and the
# database's settings for everyone and per role.
db_props() {
    local lit=${1//\'/\'\'}
    pg_sql "SELECT datconnlimit || ' | ' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(datacl) x), '-')
                || ' | ' || coalesce(shobj_description(oid, 'pg_database'), '-') FROM pg_database WHERE datname = '$lit'"
    pg_sql "SELECT coalesce(r.rolname, '*') || ' ' || s.setconfig::text FROM pg_db_role_setting s
            JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole
            WHERE d.datname = '$lit' ORDER BY 1"
}
props_orig=$(db_props "$propdb")
info "(properties: $(echo "$props_orig" | tr '\n' ';'))"
expect_code 0 ob --json backup db --dbname "$propdb"
propsnap=$(json_get "$T/out" 'j["id"]')
expect_code 0 ob restore db "$propsnap" --target-db prop_copy
props_copy=$(db_props prop_copy)
[ "$props_copy" = "${props_orig//Prop\"db/prop_copy}" ] ||
    problem "restore db --target-db lost the database's properties: '$props_orig' became '$props_copy'"
# Change them all on the live database, then --replace brings them back.
pg_sql "GRANT CONNECT, TEMPORARY ON DATABASE \"Prop\"\"db\" TO PUBLIC;
REVOKE CONNECT ON DATABASE \"Prop\"\"db\" FROM grp;
ALTER DATABASE \"Prop\"\"db\" RESET search_path;
ALTER ROLE grp IN DATABASE \"Prop\"\"db\" RESET work_mem;
COMMENT ON DATABASE \"Prop\"\"db\" IS NULL;
ALTER DATABASE \"Prop\"\"db\" CONNECTION LIMIT -1"
[ "$(db_props "$propdb")" != "$props_orig" ] || fail "changing the properties of $propdb changed nothing"
run_rc ob restore db "$propsnap" --replace --dbname "$propdb"
[ "$RC" = 0 ] || problem "restore db --replace of $propdb exited $RC: $(cat "$T/err")"
props_now=$(db_props "$propdb")
[ "$props_now" = "$props_orig" ] ||
    problem "restore db --replace lost the database's properties: '$props_orig' became '$props_now'"

info "only the database's own settings are run from the dump, never pieces of its schema"
# A BEGIN ATOMIC body is deparsed with bare ';' between its statements; an
# earlier version split the whole schema script there and ran pieces that
# mentioned set_config on the postgres database as the restoring user.
pg_sql "CREATE DATABASE atomdb"
pg_sql -d atomdb "CREATE TABLE tenants (id text);
CREATE FUNCTION evil() RETURNS integer LANGUAGE sql BEGIN ATOMIC
  SELECT 1;
  SELECT pg_catalog.lo_from_bytea(424242, '\\x70776e6564'::bytea) WHERE 'set_config' <> '';
  SELECT count(*) FROM public.tenants t WHERE pg_catalog.set_config('app.t', t.id, true) = 'x';
END"
pg_sql "COMMENT ON DATABASE atomdb IS 'atomic'"
expect_code 0 ob --json backup db --dbname atomdb
atomsnap=$(json_get "$T/out" 'j["id"]')
run_rc ob restore db "$atomsnap" --target-db atom_copy
[ "$RC" = 0 ] || problem "restore db of a database with BEGIN ATOMIC functions exited $RC: $(cat "$T/err")"
[ "$(pg_sql "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = 424242")" = 0 ] ||
    problem "restore db ran a statement from a function body on the postgres database"
[ "$(pg_sql "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'atom_copy'")" = atomic ] ||
    problem "restore db --target-db atom_copy lost the database's comment"

info "a LATIN1 database's settings reach a restored copy, its comment in LATIN1"
pg_sql "CREATE DATABASE latdb ENCODING LATIN1 LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
# Set from a session on latdb, so the comment is stored in LATIN1; read
# back from a session on the copy, so it is compared as text.
pg_sql -d latdb "COMMENT ON DATABASE latdb IS 'café crème'; ALTER DATABASE latdb SET work_mem = '2MB'"
expect_code 0 ob --json backup db --dbname latdb
latsnap=$(json_get "$T/out" 'j["id"]')
run_rc ob restore db "$latsnap" --target-db lat_copy
[ "$RC" = 0 ] || problem "restore db --target-db lat_copy of a LATIN1 database exited $RC: $(cat "$T/err")"
[ "$(pg_sql -d lat_copy "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()")" = "café crème" ] ||
    problem "the LATIN1 database's comment did not reach its copy lat_copy as LATIN1 text"
[ "$(pg_sql "SELECT s.setconfig::text FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'lat_copy'")" = "{work_mem=2MB}" ] ||
    problem "the LATIN1 database's ALTER DATABASE SET did not reach its copy lat_copy"
# A non-ASCII new name (stored in UTF-8 by the session on postgres that
# created it) still gets the settings.
run_rc ob restore db "$latsnap" --target-db "thé"
[ "$RC" = 0 ] || problem "restore db --target-db thé of a LATIN1 database exited $RC: $(cat "$T/err")"
[ "$(pg_sql "SELECT s.setconfig::text FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'thé'")" = "{work_mem=2MB}" ] ||
    problem "the LATIN1 database's ALTER DATABASE SET did not reach its copy thé"

info "a SQL_ASCII database's comment bytes come back as they were"
pg_sql "CREATE DATABASE sadb ENCODING SQL_ASCII LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
PGCLIENTENCODING=LATIN1 pg_sql -d sadb "COMMENT ON DATABASE sadb IS 'caf$(printf '\351')'"
expect_code 0 ob --json backup db --dbname sadb
sasnap=$(json_get "$T/out" 'j["id"]')
run_rc ob restore db "$sasnap" --target-db sa_copy
[ "$RC" = 0 ] || problem "restore db of a SQL_ASCII database with a LATIN1 comment exited $RC: $(cat "$T/err")"
[ "$(PGCLIENTENCODING=LATIN1 pg_sql -d sa_copy "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()" | od -An -tx1 | tr -d ' \n')" = 636166e90a ] ||
    problem "the SQL_ASCII database's comment bytes changed in its copy"

info "a locale this server lacks: restored with the server's default locale and a warning"
OBTAMPER="$OPSBACKUP_TEST_TOOLS/obtamper"
[ -x "$OBTAMPER" ] || fail "obtamper not built ($OBTAMPER)"
pg_sql "CREATE DATABASE locdb OWNER app_owner ENCODING UTF8 LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0"
pg_sql -d locdb "CREATE TABLE words (w text); INSERT INTO words SELECT 'wort ' || i FROM generate_series(1, 50) i"
expect_code 0 ob --json backup db --dbname locdb
loc=$(json_get "$T/out" 'j["id"]')
[ "$(json_get "$T/out" 'j["extra"]["encoding"]')" = "UTF8|C.UTF-8|C.UTF-8" ] ||
    problem "locdb's snapshot records encoding $(json_get "$T/out" 'j["extra"]["encoding"]')"
# The backup's server had a locale this one lacks (a DR server where it was
# never generated): the same snapshot, recording xx_XX.UTF-8.
loc=$("$OBTAMPER" "$REPO" "$OPSBACKUP_PASSWORD_FILE" "${loc:0:8}" extra encoding \
    "UTF8|xx_XX.UTF-8|xx_XX.UTF-8") || fail "obtamper failed"
run_rc ob restore db "${loc:0:8}" --target-db loc_copy
[ "$RC" = 0 ] || problem "restore db of a snapshot whose locale this server lacks exited $RC: $(cat "$T/err")"
assert_grep "created with this server's default locale, not LC_COLLATE xx_XX.UTF-8" "$T/err"
[ "$(pg_sql -d loc_copy "SELECT count(*) FROM words")" = 50 ] || problem "loc_copy does not have the 50 rows of locdb"
[ "$(pg_sql "SELECT datcollate || ' ' || pg_encoding_to_char(encoding) || ' ' || pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'loc_copy'")" = "$(pg_sql "SELECT datcollate FROM pg_database WHERE datname = 'template0'") UTF8 app_owner" ] ||
    problem "loc_copy is not UTF8 with the server's default collation and its owner: $(pg_sql "SELECT datcollate, encoding, datdba FROM pg_database WHERE datname = 'loc_copy'")"

finish
