#!/usr/bin/env bash
# The same database name on two PostgreSQL servers, dumped from one backup
# host into one repository without --set (D77):
# - each dump records its server's system identifier;
# - forget splits the group by server, so keep-daily keeps each server's
#   days (as one group it kept only the server dumped later each day, and
#   every dump of the other was removed);
# - `restore db latest --replace` takes the newest dump of the server being
#   replaced, not the other server's newer one, and refuses when the server
#   is neither (a new server: the operator names the snapshot);
# - a dump without one (an older binary, or a role that may not call
#   pg_control_system()) is made all the same, and forms a part of its own
#   (src/repo/retention_test.c shows it staying in the group when only one
#   server has dumps there, so an upgrade does not set old dumps apart).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
export TZ=UTC

pg_start
pg_sql "CREATE DATABASE twin"
pg_sql -d twin "CREATE TABLE t (v text); INSERT INTO t VALUES ('server one')"

info "a second server: its own initdb, so its own system identifier"
PG2="$T/pg2"
PORT2=$((PGPORT + 1))
mkdir -p "$PG2"
chown postgres: "$PG2"
stop_pg2() { (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PG2/data" -m immediate -w stop) >/dev/null 2>&1 || true; }
on_exit stop_pg2
# start_pg2 LABEL: a new cluster in $PG2/data (so a new system identifier),
# listening on port PORT2 beside the first one.
start_pg2() {
    rm -rf "$PG2/data"
    (cd / && runuser -u postgres -- "$PGBIN/initdb" -D "$PG2/data" -U postgres -A trust -E UTF8 \
        --locale=C --no-sync) >"$T/initdb-$1.log" 2>&1 || { cat "$T/initdb-$1.log"; fail "initdb ($1) failed"; }
    cat >>"$PG2/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$PGSOCK'
fsync = off
EOF
    (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PG2/data" -l "$PG2/log" -o "-p $PORT2" -w -t 60 start) \
        >"$T/pg_ctl-$1.log" 2>&1 || { cat "$T/pg_ctl-$1.log" "$PG2/log"; fail "cannot start the $1 server"; }
}
start_pg2 second
"$PGBIN/psql" -X -q -p "$PORT2" -d postgres -c "CREATE DATABASE twin" || fail "CREATE DATABASE on server 2"
"$PGBIN/psql" -X -q -p "$PORT2" -d twin -c "CREATE TABLE t (v text); INSERT INTO t VALUES ('server two')" ||
    fail "table on server 2"
SYS1=$(pg_sql "SELECT system_identifier FROM pg_control_system()")
SYS2=$("$PGBIN/psql" -X -At -p "$PORT2" -d postgres -c "SELECT system_identifier FROM pg_control_system()")
[ -n "$SYS1" ] && [ -n "$SYS2" ] && [ "$SYS1" != "$SYS2" ] || fail "test setup: system identifiers '$SYS1' '$SYS2'"

init_repo
# dump SERVER(1|2) LABEL TIME
dump() {
    local port=$PGPORT
    [ "$1" = 2 ] && port=$PORT2
    ob --json backup db --dbname "port=$port dbname=twin" --time "$3" >"$T/d.json" ||
        fail "backup db of server $1 at $3"
    echo "$2 $(json_get "$T/d.json" 'j["id"]')" >>"$T/labels"
}
# Server 1 is dumped at 02:00, server 2 at 03:00, on three days; one older
# dump of server 1 is made to look like one from before this change.
dump 1 OLD1 "2024-02-28 02:00:00"
dump 1 A1 "2024-03-01 02:00:00"
dump 2 B1 "2024-03-01 03:00:00"
dump 1 A2 "2024-03-02 02:00:00"
dump 2 B2 "2024-03-02 03:00:00"
dump 1 A3 "2024-03-03 02:00:00"
dump 2 B3 "2024-03-03 03:00:00"

label_id() { awk -v l="$1" '$1 == l { print $2 }' "$T/labels"; }
info "each dump records its server"
for l in A1 A2 A3 OLD1; do
    got=$(ob --json snapshots | python3 -c "import json,sys; print([s for s in json.load(sys.stdin) if s['id'] == '$(label_id $l)'][0]['extra'].get('system_identifier'))")
    [ "$got" = "$SYS1" ] || problem "$l records system identifier $got, not server one's $SYS1"
done
for l in B1 B2 B3; do
    got=$(ob --json snapshots | python3 -c "import json,sys; print([s for s in json.load(sys.stdin) if s['id'] == '$(label_id $l)'][0]['extra'].get('system_identifier'))")
    [ "$got" = "$SYS2" ] || problem "$l records system identifier $got, not server two's $SYS2"
done

info "snapshots (text) shows each dump's server"
ob snapshots >"$T/snaps.txt" || fail "snapshots"
for l in A3 B3; do
    addr=$(ob --json snapshots | python3 -c "import json,sys; print([s for s in json.load(sys.stdin) if s['id'] == '$(label_id $l)'][0]['extra']['server'])")
    case "$addr" in *:"$PGPORT" | *:"$PORT2") ;; *) problem "$l records server '$addr'" ;; esac
    grep -q "^$(label_id $l | cut -c1-8) .* twin on $addr\$" "$T/snaps.txt" ||
        problem "snapshots does not show $l's server $addr: $(cat "$T/snaps.txt")"
done

# keep SERVER-OPTIONS...: the labels forget --dry-run keeps, sorted.
kept() {
    ob --json forget --dry-run "$@" >"$T/f.json" || fail "forget --dry-run $*"
    python3 - "$T/f.json" "$T/labels" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
label = dict(reversed(l.split()) for l in open(sys.argv[2]))
ids = [s["id"] for g in j["groups"] for s in g["keep"]]
print(" ".join(sorted(label[i] for i in ids)))
PY
}

info "forget --keep-daily 2: two days of each server"
got=$(kept --keep-daily 2)
[ "$got" = "A2 A3 B2 B3" ] || problem "keep-daily 2 kept '$got', not 'A2 A3 B2 B3'"
python3 - "$T/f.json" "$SYS1" "$SYS2" <<'PY' || problem "forget's groups: $(cat "$T/f.json")"
import json, sys
j = json.load(open(sys.argv[1]))
got = sorted(g.get("system_identifier") for g in j["groups"])
assert got == sorted([sys.argv[2], sys.argv[3]]), got
PY
ob forget --dry-run --keep-daily 2 >"$T/f.txt" || fail "forget --dry-run (text)"
assert_grep "system identifier $SYS1" "$T/f.txt"
assert_grep "system identifier $SYS2" "$T/f.txt"

info "a dump by a role that may not call pg_control_system(): made, in a part of its own"
# OLD1 again, without the identifier (as an older binary wrote it).
ob forget "$(label_id OLD1)" >/dev/null || fail "forget OLD1"
sed -i '/^OLD1 /d' "$T/labels"
pg_sql "CREATE ROLE nosys LOGIN; GRANT CONNECT ON DATABASE twin TO nosys" >/dev/null
pg_sql -d twin "GRANT SELECT ON t TO nosys" >/dev/null
pg_sql -d twin "REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC" >/dev/null
ob --json backup db --dbname "port=$PGPORT dbname=twin user=nosys" --time "2024-02-28 02:00:00" \
    >"$T/d.json" 2>"$T/nosys.err" || { cat "$T/nosys.err"; fail "backup db as a role refused pg_control_system()"; }
echo "OLD1 $(json_get "$T/d.json" 'j["id"]')" >>"$T/labels"
[ "$(json_get "$T/d.json" 'j["extra"].get("system_identifier")')" = None ] ||
    problem "a role that may not call pg_control_system() still recorded an identifier"
pg_sql -d twin "GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC" >/dev/null
got=$(ob --json forget --dry-run --keep-daily 3 | python3 -c "
import json, sys
j = json.load(sys.stdin)
label = dict(reversed(l.split()) for l in open('$T/labels'))
for g in j['groups']:
    names = sorted(label[s['id']] for s in g['keep'] + g['remove'])
    print(','.join(names) + ':' + str(g.get('system_identifier', 'whole')))
" | sort | tr '\n' ' ')
[ "$got" = "A1,A2,A3:$SYS1 B1,B2,B3:$SYS2 OLD1:None " ] ||
    problem "with OLD1 unrecorded and two servers, groups are '$got'"

info "restore db latest --replace: the server being replaced gets its own newest dump"
pg_sql -d twin "INSERT INTO t VALUES ('after the backup')"
ob restore db latest --replace --dbname "port=$PGPORT dbname=twin" >"$T/r1.out" 2>"$T/r1.err" ||
    { cat "$T/r1.err"; fail "restore db latest --replace on server one"; }
got=$(pg_sql -d twin "SELECT string_agg(v, ',' ORDER BY v) FROM t")
[ "$got" = "server one" ] || problem "server one's twin after restore latest --replace: '$got' (B3, server two's newer dump, is 'server two')"
A3=$(label_id A3)
assert_grep "restored snapshot ${A3:0:8} into twin" "$T/r1.out"

info "a newer dump of the database that recorded no server: latest is ambiguous, refused"
# (A3, restored above, was dumped before nosys was given the table.)
pg_sql -d twin "GRANT SELECT ON t TO nosys; REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC" >/dev/null
ob --json backup db --dbname "port=$PGPORT dbname=twin user=nosys" --time "2024-03-04 02:00:00" \
    >"$T/d.json" 2>"$T/nosys.err" || { cat "$T/nosys.err"; fail "backup db as nosys"; }
pg_sql -d twin "GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC" >/dev/null
UNREC=$(json_get "$T/d.json" 'j["id"]')
run_rc ob restore db latest --replace --dbname "port=$PGPORT dbname=twin"
[ "$RC" != 0 ] || problem "restore db latest --replace with a newer unrecorded dump succeeded"
assert_grep "${UNREC:0:8}, newer than this server's newest (${A3:0:8}), recorded none" "$T/err"
ob forget "$UNREC" >/dev/null || fail "forget the unrecorded dump"

info "a new server with the same database: latest is refused, an ID is taken"
stop_pg2
start_pg2 new
"$PGBIN/psql" -X -q -p "$PORT2" -d postgres -c "CREATE DATABASE twin" || fail "CREATE DATABASE on the new server"
"$PGBIN/psql" -X -q -p "$PORT2" -d twin -c "CREATE TABLE t (v text); INSERT INTO t VALUES ('new server')" ||
    fail "table on the new server"
run_rc ob restore db latest --replace --dbname "port=$PORT2 dbname=twin"
[ "$RC" != 0 ] || problem "restore db latest --replace on a third server succeeded"
assert_grep "come from several PostgreSQL servers" "$T/err"
assert_grep "${A3:0:8}" "$T/err"
B3=$(label_id B3)
assert_grep "${B3:0:8}" "$T/err"
assert_grep "dumped from $PGSOCK:$PORT2" "$T/err"
got=$("$PGBIN/psql" -X -At -p "$PORT2" -d twin -c "SELECT string_agg(v, ',') FROM t")
[ "$got" = "new server" ] || problem "the refused restore changed the new server's twin: '$got'"
expect_code 0 ob restore db "$B3" --replace --dbname "port=$PORT2 dbname=twin"
got=$("$PGBIN/psql" -X -At -p "$PORT2" -d twin -c "SELECT string_agg(v, ',') FROM t")
[ "$got" = "server two" ] || problem "restore of B3 by ID into the new server gave '$got'"

finish
