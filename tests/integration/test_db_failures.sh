#!/usr/bin/env bash
# backup db / restore db when things go wrong: a failing or truncated
# pg_dump commits nothing and reports pg_dump's own error; a restore that
# fails before the swap leaves the live database as it was and no half-
# restored database behind; --dump-command is a command prefix; passwords
# (conninfo, URI, PGPASSWORD, .pgpass) work and never reach a command line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"

pg_start
make_app_db appdb 5000
init_repo
orig=$(pg_checksum appdb)
cp "$T/fingerprint.appdb" "$T/fingerprint.orig"
docs=$(pg_sql -d appdb "SELECT count(*) FROM documents")

# snapshot_count: how many snapshots the repository holds.
snapshot_count() {
    ob --json snapshots >"$T/snaps.json" 2>"$T/snaps.err" || { cat "$T/snaps.err" >&2; fail "snapshots --json failed"; }
    json_get "$T/snaps.json" 'len(j)'
}

info "a database that does not exist"
run_rc ob backup db --dbname "dbname=nosuchdb"
[ "$RC" -ne 0 ] || problem "backup of a missing database exited 0"
grep -q 'does not exist' "$T/err" || { cat "$T/err" >&2; problem "stderr does not carry pg_dump's 'does not exist' error"; }
grep -q 'nosuchdb' "$T/err" || problem "stderr does not name the database nosuchdb"
n=$(snapshot_count)
[ "$n" = 0 ] || problem "a failed backup left $n snapshot(s)"

info "a wrong repository password: pg_dump, started first, is stopped"
# backup db starts pg_dump before it opens the repository (the catalog reads
# overlap the key derivation); a repository that does not open must stop it
# and end the exported snapshot's session.
printf 'not the password\n' >"$T/wrongpw"
OPSBACKUP_PASSWORD_FILE="$T/wrongpw" run_rc ob backup db --dbname "dbname=appdb"
[ "$RC" = 1 ] || problem "backup db with a wrong password exited $RC, expected 1"
grep -qi "wrong password" "$T/err" || { cat "$T/err" >&2; problem "no 'wrong password' in the message"; }
left=1
for _ in $(seq 50); do
    left=$(pg_sql "SELECT count(*) FROM pg_stat_activity WHERE datname = 'appdb'")
    [ "$left" = 0 ] && ! pgrep -f "pg_dump.*appdb" >/dev/null && break
    sleep 0.1
done
[ "$left" = 0 ] || problem "$left session(s) on appdb left after the failed backup"
pgrep -af "pg_dump.*appdb" && problem "pg_dump still runs after the failed backup"
n=$(snapshot_count)
[ "$n" = 0 ] || problem "a wrong password left $n snapshot(s)"

info "a dump command that writes 1000 bytes and exits 1"
cat >"$T/halfdump" <<EOF
#!/bin/sh
"$PGBIN/pg_dump" "\$@" | head -c 1000
echo "halfdump: injected failure" >&2
exit 1
EOF
chmod +x "$T/halfdump"
run_rc ob backup db --dbname "dbname=appdb" --dump-command "$T/halfdump"
[ "$RC" -ne 0 ] || problem "backup with a dump command exiting 1 exited 0"
grep -q 'injected failure' "$T/err" || { cat "$T/err" >&2; problem "the dump command's stderr is not shown"; }
n=$(snapshot_count)
[ "$n" = 0 ] || problem "a failed dump left $n snapshot(s)"

info "a dump command killed by a signal mid-stream"
cat >"$T/killeddump" <<EOF
#!/bin/sh
"$PGBIN/pg_dump" "\$@" | head -c 200000
kill -9 \$\$
EOF
chmod +x "$T/killeddump"
run_rc ob backup db --dbname "dbname=appdb" --dump-command "$T/killeddump"
[ "$RC" -ne 0 ] || problem "backup with a dump command killed by SIGKILL exited 0"
n=$(snapshot_count)
[ "$n" = 0 ] || problem "a killed dump left $n snapshot(s)"

info "a dump command that does not exist"
run_rc ob backup db --dbname "dbname=appdb" --dump-command "$T/no/such/pg_dump"
[ "$RC" -ne 0 ] || problem "backup with a missing dump command exited 0"
grep -q "$T/no/such/pg_dump" "$T/err" || { cat "$T/err" >&2; problem "the error does not name the missing dump command"; }
n=$(snapshot_count)
[ "$n" = 0 ] || problem "a missing dump command left $n snapshot(s)"

info "--dump-command as a prefix: a wrapper script, and a multi-word prefix"
cat >"$T/mydump" <<EOF
#!/bin/sh
printf '%s\n' "\$@" >"$T/mydump.args"
echo "mark=\${OB_TEST_MARK:-unset}" >>"$T/mydump.args"
exec "$PGBIN/pg_dump" "\$@"
EOF
chmod +x "$T/mydump"
expect_code 0 ob --json backup db --dbname "dbname=appdb" --dump-command "$T/mydump"
[ -f "$T/mydump.args" ] || fail "the --dump-command wrapper was not run"
[ "$(json_get "$T/out" 'j["kind"]')" = db ] || problem "prefix-form snapshot kind is not db"
[ "$(json_get "$T/out" 'j["extra"]["tables"]["public.documents"]')" = "$docs" ] \
    || problem "prefix-form snapshot records a wrong documents count"
grep -qx 'mark=unset' "$T/mydump.args" || problem "mark file: $(cat "$T/mydump.args")"
rm -f "$T/mydump.args"
expect_code 0 ob --json backup db --dbname "dbname=appdb" --dump-command "env OB_TEST_MARK=yes $T/mydump"
grep -qx 'mark=yes' "$T/mydump.args" || problem "the multi-word prefix 'env OB_TEST_MARK=yes $T/mydump' was not run as given"
expect_code 0 ob restore db latest --target-db appdb_prefix
[ "$(pg_checksum appdb_prefix)" = "$orig" ] || problem "the prefix-form snapshot restores a different database"
n=$(snapshot_count)
[ "$n" = 2 ] || problem "expected 2 snapshots after the prefix-form backups, found $n"

info "restore --replace with a restore command that fails before the swap"
cat >"$T/badrestore" <<'EOF'
#!/bin/sh
cat >/dev/null
echo "badrestore: injected failure" >&2
exit 1
EOF
cat >"$T/latefail" <<EOF
#!/bin/sh
# A real, complete restore, then a failure: the new database is full.
"$PGBIN/pg_restore" "\$@"
echo "latefail: injected failure" >&2
exit 1
EOF
chmod +x "$T/badrestore" "$T/latefail"
for cmd in badrestore latefail; do
    dbs_before=$(pg_databases)
    run_rc ob restore db latest --replace --dbname dbname=appdb --restore-command "$T/$cmd"
    [ "$RC" -ne 0 ] || problem "restore --replace with failing $cmd exited 0"
    grep -q 'injected failure' "$T/err" || { cat "$T/err" >&2; problem "$cmd: the restore command's stderr is not shown"; }
    [ "$(pg_checksum appdb)" = "$orig" ] || { pg_fingerprint_diff orig appdb; problem "$cmd: the live appdb changed"; }
    after=$(pg_databases)
    [ "$after" = "$dbs_before" ] || problem "$cmd: databases before: $(echo "$dbs_before" | tr "\n" " "), after: $(echo "$after" | tr "\n" " ")"
done

info "restore --replace refuses a restored copy that lacks rows the backup recorded"
# (Session 20.)  A restore command that exits 0 but loses data (a wrapper
# that does not pass a failure on, a filter) replaced the live database
# with a partial one.  Now the copy's row counts are compared with the
# snapshot's before the swap, as verify db compares them.
cat >"$T/lossy" <<EOF
#!/bin/sh
# pg_restore, then some document tags gone: exit 0, as a careless wrapper would.
"$PGBIN/pg_restore" "\$@" || exit
for a in "\$@"; do case "\$a" in --dbname=*) db="\${a#--dbname=}";; esac; done
"$PGBIN/psql" -X -q -d "\$db" -c "DELETE FROM document_tags WHERE document_id % 7 = 0" >/dev/null
EOF
chmod +x "$T/lossy"
dbs_before=$(pg_databases)
run_rc ob restore db latest --replace --dbname dbname=appdb --restore-command "$T/lossy"
[ "$RC" -ne 0 ] || problem "restore --replace of a copy missing rows exited 0"
info "($(tail -n 1 "$T/err"))"
tags=$(pg_sql -d appdb "SELECT count(*) FROM document_tags")
lost=$(pg_sql -d appdb "SELECT count(*) FROM document_tags WHERE document_id % 7 = 0")
[ "$lost" -gt 0 ] || problem "the lossy restore command would lose nothing here"
grep -q "table public.document_tags: $((tags - lost)) rows, the snapshot recorded $tags" "$T/err" ||
    problem "the refusal does not name the table and both counts: $(cat "$T/err")"
grep -q "appdb was not replaced" "$T/err" || problem "the refusal does not say the live database was kept: $(cat "$T/err")"
[ "$(pg_checksum appdb)" = "$orig" ] || { pg_fingerprint_diff orig appdb; problem "lossy: the live appdb changed"; }
[ "$(pg_databases)" = "$dbs_before" ] || problem "lossy: the partial copy was left behind: $(pg_databases | tr "\n" " ")"
# The same command into a new database is the user's to judge: no refusal.
expect_code 0 ob restore db latest --target-db appdb_lossy --restore-command "$T/lossy"
pg_sql "DROP DATABASE appdb_lossy"

info "restore --target-db with a failing restore command leaves no half-restored database"
run_rc ob restore db latest --target-db appdb_half --restore-command "$T/latefail"
[ "$RC" -ne 0 ] || problem "restore --target-db with failing latefail exited 0"
pg_db_exists appdb_half && problem "a failed restore --target-db left database appdb_half behind (a retry would then fail: it exists)"

info "passwords: conninfo, URI, PGPASSWORD and .pgpass work and never reach a command line"
secret=connsecret456
pg_sql "CREATE ROLE pwuser LOGIN SUPERUSER PASSWORD '$secret'"
pg_hba_prepend "local all pwuser scram-sha-256"
"$PGBIN/psql" -Xw -d appdb -U pwuser -c 'SELECT 1' >/dev/null 2>&1 \
    && fail "pwuser can connect without a password: the scram rule is not in force"
printf '%s\n' "$secret" >"$T/secrets"
# Wrappers first on PATH log the arguments of every PostgreSQL client
# opsbackup runs through PATH.
mkdir -p "$T/wrapbin"
for tool in pg_dump pg_dumpall pg_restore psql; do
    cat >"$T/wrapbin/$tool" <<EOF
#!/bin/sh
printf '%s\n' "$tool" "\$@" >>"$T/wrapbin.args"
exec "$PGBIN/$tool" "\$@"
EOF
    chmod +x "$T/wrapbin/$tool"
done
cat >"$T/slowdump" <<EOF
#!/bin/sh
printf '%s\n' "\$@" >>"$T/slowdump.args"
sleep 2
exec "$PGBIN/pg_dump" "\$@"
EOF
chmod +x "$T/slowdump"

# backup_watching WHAT ARGS...: run a backup in the background and look at
# every process's command line until it ends.  opsbackup's own (which holds
# what the user typed) is the one exception.
backup_watching() {
    local what=$1; shift
    PATH="$T/wrapbin:$PATH" "$OPSBACKUP" -r "$REPO" backup db "$@" >"$T/bw.out" 2>"$T/bw.err" &
    local obpid=$! seen="" f p
    bg_track $obpid
    while kill -0 $obpid 2>/dev/null; do
        for f in $(grep -l -a -F -f "$T/secrets" /proc/[0-9]*/cmdline 2>/dev/null); do
            p=${f#/proc/}; p=${p%/cmdline}
            [ "$p" = "$obpid" ] && continue
            seen+="[$p: $(tr '\0' ' ' <"$f" 2>/dev/null)] "
        done
        sleep 0.05
    done
    set +e; wait $obpid; local rc=$?; set -e
    [ $rc -eq 0 ] || { cat "$T/bw.err" >&2; problem "$what: backup failed (exit $rc)"; }
    [ -z "$seen" ] || problem "$what: the password is on a command line: $seen"
}

backup_watching "conninfo password" --dbname "dbname=appdb user=pwuser password=$secret" \
    --dump-command "$T/slowdump"
backup_watching "URI password" --dbname "postgresql://pwuser:$secret@/appdb?host=$PGHOST&port=$PGPORT" \
    --dump-command "$T/slowdump"
PGPASSWORD=$secret backup_watching "PGPASSWORD" --dbname "dbname=appdb user=pwuser" \
    --dump-command "$T/slowdump"
printf '*:*:*:pwuser:%s\n' "$secret" >"$T/pgpass"
chmod 0600 "$T/pgpass"
PGPASSFILE="$T/pgpass" backup_watching "PGPASSFILE" --dbname "dbname=appdb user=pwuser"
unset PGPASSWORD PGPASSFILE
for f in "$T/slowdump.args" "$T/wrapbin.args"; do
    [ -f "$f" ] || { info "(not run: $f)"; continue; }
    if grep -q -F -f "$T/secrets" "$f"; then
        problem "the password was passed as an argument (logged in $(basename "$f")): $(grep -F -f "$T/secrets" "$f" | head -3 | tr '\n' ' ')"
    fi
done
[ -f "$T/wrapbin.args" ] && info "clients run through PATH: $(grep -xE 'pg_dump|pg_dumpall|pg_restore|psql' "$T/wrapbin.args" | sort | uniq -c | tr '\n' ' ')"
n=$(snapshot_count)
[ "$n" = 6 ] || problem "expected 6 snapshots after the password backups, found $n"
expect_code 0 ob restore db latest --target-db appdb_pw
[ "$(pg_checksum appdb_pw)" = "$orig" ] || problem "the .pgpass snapshot restores a different database"

info "failed backups leave a repository that checks clean"
run_rc ob check
[ "$RC" -eq 0 ] || { cat "$T/out" "$T/err" >&2; problem "check exited $RC after the failed backups"; }
finish
