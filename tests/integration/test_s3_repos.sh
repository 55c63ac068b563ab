#!/usr/bin/env bash
# A local and an S3 repository side by side (3-2-1), against a real
# S3-compatible server on 127.0.0.1:
#   - backup files to both at once (-r local -r s3), copy between them in
#     both directions, restore byte-identical from each;
#   - PostgreSQL's archive_command pushing WAL to S3, a physical backup in
#     S3, and a PITR from it (restore_command fetching from S3).
. "$(dirname "$0")/lib.sh"
s3_require
on_exit s3_stop
s3_start "$T/s3"
. "$(dirname "$0")/pg_lib.sh"

chmod 0711 "$T"
PGPW="$T/pgpw"
install -o postgres -m 0600 "$OPSBACKUP_PASSWORD_FILE" "$PGPW"
install -d -o postgres -m 0700 "$T/etc"
CONF="$T/etc/opsbackup.conf"
cat >"$CONF" <<EOF
[repo.local]
url = $T/local
password-file = $PGPW

[repo.s3]
url = s3://$S3_BUCKET/opsbackup
endpoint = $S3_ENDPOINT
region = us-east-1
access-key-id = $S3_ACCESS_KEY
secret-access-key = $S3_SECRET_KEY
password-file = $PGPW
EOF
chown postgres "$CONF"
chmod 0600 "$CONF"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
oc() { "$OPSBACKUP" -c "$CONF" "$@"; }
ocpg() { runuser -u postgres -- "$OPSBACKUP" -c "$CONF" "$@"; }

install -d -o postgres -m 0700 "$T/local"
ocpg -r local init --kdf-n 1024 >/dev/null
ocpg -r s3 init --kdf-n 1024 >/dev/null

info "files to the local and the S3 repository at once"
install -d -o postgres -g postgres -m 0755 "$T/src"
python3 "$TOOLS/mktree.py" --help >/dev/null 2>&1 || true
runuser -u postgres -- python3 - "$T/src" <<'PY'
import os, random, sys
d = sys.argv[1]
r = random.Random(7)
for i in range(40):
    sub = os.path.join(d, "dir %02d" % (i % 5), "ünïcødé")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "file-%d.bin" % i), "wb") as f:
        f.write(r.randbytes(r.randint(0, 300000)))
os.symlink("dir 00", os.path.join(d, "link"))
PY
expect_code 0 ocpg -r local -r s3 --json backup files --set app "$T/src"
[ "$(json_get "$T/out" "[c['ok'] for c in j['copies']]")" = "[True]" ] || fail "no copy in S3"
echo "extra line" | runuser -u postgres -- tee -a "$T/src/dir 01/ünïcødé/file-1.bin" >/dev/null
expect_code 0 ocpg -r s3 backup files --set app "$T/src"
info "copy S3 -> local (the new snapshot) and local -> S3 (nothing to do)"
expect_code 0 ocpg --json copy --from s3 --to local
[ "$(json_get "$T/out" "len(j['copied'])")" = 1 ] || problem "copy from S3 copied $(json_get "$T/out" "len(j['copied'])")"
expect_code 0 ocpg --json copy --from local --to s3
[ "$(json_get "$T/out" "len(j['copied'])")" = 0 ] || problem "copy back to S3 copied something"
expect_code 0 ocpg -r local -r s3 --json snapshots --set app
[ "$(json_get "$T/out" "[sorted(k for k, v in r['repositories'].items() if v) for r in j]")" = \
  "[['local', 's3'], ['local', 's3']]" ] || problem "not every backup is in both: $(cat "$T/out")"
for r in local s3; do
    install -d -o postgres -m 0700 "$T/restore-$r"
    expect_code 0 ocpg -r "$r" restore files latest --set app --target "$T/restore-$r"
    python3 "$TOOLS/treecmp.py" --ignore-atime "$T/src" "$T/restore-$r$T/src" \
        || problem "restore from $r differs"
done

info "WAL archiving and a physical backup in S3"
PG_EXTRA_CONF="archive_mode = on
archive_command = '$OPSBACKUP -c $CONF -r s3 archive-push %p'
wal_level = replica"
pg_start
pg_sql "CREATE TABLE t (batch int, id int)"
pg_sql "INSERT INTO t SELECT 1, g FROM generate_series(1, 5000) g"
expect_code 0 ocpg -r s3 --json backup db --physical --pgdata "$PGDATA_DIR"
BASE=$(json_get "$T/out" "j['id']")
pg_sql "INSERT INTO t SELECT 2, g FROM generate_series(1, 5000) g"
LSN=$(pg_sql "SELECT pg_current_wal_insert_lsn()")
pg_sql "SELECT pg_switch_wal()" >/dev/null
pg_sql "INSERT INTO t SELECT 3, g FROM generate_series(1, 5000) g"
SEG=$(pg_sql "SELECT pg_walfile_name(pg_current_wal_lsn())")
pg_sql "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 300); do
    [ "$(pg_sql "SELECT coalesce(last_archived_wal >= '$SEG', false) FROM pg_stat_archiver")" = t ] && break
    sleep 0.2
done
[ "$(pg_sql "SELECT failed_count FROM pg_stat_archiver")" = 0 ] || problem "archive_command to S3 failed"

info "PITR from S3 to an LSN between batch 2 and 3"
R="$T/restored"
install -d -o postgres -m 0700 "$R" "$R.sock"
expect_code 0 ocpg -r s3 restore db --physical "$BASE" --pgdata "$R" --target-lsn "$LSN" --start \
    --start-options "-p $((PGPORT + 1)) -c unix_socket_directories=$R.sock -c archive_mode=off"
got=$("$PGBIN/psql" -XAtq -h "$R.sock" -p $((PGPORT + 1)) -U postgres -d postgres \
    -c "SELECT string_agg(batch || ':' || n, ' ' ORDER BY batch) FROM (SELECT batch, count(*) n FROM t GROUP BY batch) x")
(cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$R" -m fast -w stop) >/dev/null 2>&1 || true
[ "$got" = "1:5000 2:5000" ] || problem "PITR from S3: got '$got'"
expect_code 0 ocpg -r s3 check --read-data
assert_grep "WAL files" "$T/out"
finish
