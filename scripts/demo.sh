#!/usr/bin/env bash
# End-to-end demo of opsbackup's main job on a local repository and a
# throwaway PostgreSQL 15: install the build dependencies, build, start a
# private PostgreSQL cluster holding a sample OpsCore-like database, write a
# config with the guide's three jobs (database, attachments, config files),
# run each job (`opsbackup run`: backup, retention, verify by a restore into a
# scratch database), show `status`, change data and run again (only changes
# are stored), restore the database into a new one and the files into a
# directory, compare both with the originals, and check every byte.
#
# Safe to re-run: everything lives under ${DEMO_DIR:-/tmp/opsbackup-demo}; the
# PostgreSQL cluster is stopped at the end.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" --no-s3
if [ ! -f "$top/build/build.ninja" ]; then
    meson setup "$top/build" "$top" >/dev/null
fi
ninja -C "$top/build" >/dev/null
ob="$top/build/opsbackup"

demo=${DEMO_DIR:-/tmp/opsbackup-demo}
pgbin=/usr/lib/postgresql/15/bin
if [ -f "$demo/pg/data/postmaster.pid" ]; then
    runuser -u postgres -- "$pgbin/pg_ctl" -D "$demo/pg/data" -m immediate stop >/dev/null 2>&1 || true
fi
rm -rf "$demo"
mkdir -p "$demo"
chmod 711 "$demo"     # the postgres user reaches its own directory inside
app="$demo/app"
export OPSBACKUP_PASSWORD_FILE="$demo/password"
export OPSBACKUP_STATE_DIR="$demo/state"
head -c 24 /dev/urandom | base64 >"$OPSBACKUP_PASSWORD_FILE"
chmod 600 "$OPSBACKUP_PASSWORD_FILE"

echo "== a throwaway PostgreSQL 15 in $demo/pg"
mkdir -p "$demo/pg/sock"
chown -R postgres: "$demo/pg"
(cd / && runuser -u postgres -- "$pgbin/initdb" -D "$demo/pg/data" -U postgres -A trust \
    -E UTF8 --locale=C) >"$demo/pg/initdb.log" 2>&1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >>"$demo/pg/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$demo/pg/sock'
port = $port
EOF
(cd / && runuser -u postgres -- "$pgbin/pg_ctl" -D "$demo/pg/data" -l "$demo/pg/log" -w start) >/dev/null
stop_pg() { (cd / && runuser -u postgres -- "$pgbin/pg_ctl" -D "$demo/pg/data" -m fast -w stop) >/dev/null 2>&1 || true; }
trap stop_pg EXIT
export PGHOST="$demo/pg/sock" PGPORT="$port" PGUSER=postgres
psql() { "$pgbin/psql" -XAtq -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c "CREATE DATABASE opscore"
psql -d opscore <<'SQL'
CREATE TABLE documents (id serial PRIMARY KEY, title text NOT NULL, body text, created timestamptz DEFAULT now());
INSERT INTO documents (title, body)
  SELECT '作業報告 ' || g, repeat('work evidence ' || g || ' ', 20) FROM generate_series(1, 20000) g;
CREATE TABLE access_tokens (id serial PRIMARY KEY, owner text, token_encrypted bytea);
INSERT INTO access_tokens (owner, token_encrypted)
  SELECT 'user' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 500) g;
SQL

echo "== a sample OpsCore-like application in $app"
mkdir -p "$app/storage/evidence/2026-11" "$app/config" "$app/keys"
for i in $(seq 1 40); do
    head -c $((200000 + i * 1000)) /dev/urandom >"$app/storage/evidence/2026-11/screenshot-$i.png"
    printf 'work log %d\n%.0s' "$i" $(seq 1 500) >"$app/storage/evidence/2026-11/log-$i.txt"
done
printf 'DATABASE_URL=postgres://opscore@localhost/opscore\nSECRET_KEY=%s\n' \
    "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" >"$app/.env"
chmod 600 "$app/.env"
printf '[server]\nport = 8080\n' >"$app/config/app.ini"
head -c 32 /dev/urandom >"$app/keys/token-encryption.key"
chmod 400 "$app/keys/token-encryption.key"
ln -s storage/evidence "$app/evidence-link"

echo "== the config: one repository, the guide's three jobs"
cfg="$demo/opsbackup.conf"
cat >"$cfg" <<EOF
[repo.local]
url = $demo/repo
password-file = $OPSBACKUP_PASSWORD_FILE

[job.db]
kind = db
dbname = dbname=opscore
schedule = 0 2 * * *
keep-daily = 30
verify-sql = SELECT COUNT(*) FROM documents

[job.attachments]
kind = files
paths = $app/storage
schedule = 0 3 * * *
keep-within = 90d

[job.config]
kind = config
paths = $app/.env, $app/config, $app/keys
schedule = */15 * * * *
keep = forever

[notify]
size-limit = 1GB
EOF
chmod 600 "$cfg"
o() { "$ob" -c "$cfg" "$@"; }
o config check
echo "== opsbackup init"
o -r local init
echo "== opsbackup run db / attachments / config (backup, retention, verify)"
o run db
o run attachments
o run config
echo "== a second config run with nothing changed makes no snapshot"
o run config
echo "== an hour of work: new rows, a new screenshot; the second runs store only that"
psql -d opscore -c "INSERT INTO documents (title, body) SELECT '追加 ' || g, 'new' FROM generate_series(1, 500) g"
head -c 300000 /dev/urandom >"$app/storage/evidence/2026-11/screenshot-new.png"
o run db
o run attachments
echo "== opsbackup status (exit 3 if any job were stale or failing)"
o status
echo "== opsbackup snapshots"
o snapshots
echo "== opsbackup diff (previous -> latest attachments)"
ids=$(o --json snapshots --set attachments | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))')
o diff $ids
echo "== restore the database into a new one, and the files into $demo/restore"
o restore db latest --set db --target-db opscore_restored
o restore files latest --set attachments --target "$demo/restore"
o restore config latest --set config --target "$demo/restore"
echo "== compare restored with original"
for t in documents access_tokens; do
    a=$(psql -d opscore -c "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM $t t")
    b=$(psql -d opscore_restored -c "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM $t t")
    [ "$a" = "$b" ] || { echo "table $t differs after restore" >&2; exit 1; }
done
echo "restored database is identical ($(psql -d opscore_restored -c 'SELECT count(*) FROM documents') documents)"
diff -r --no-dereference "$app/storage" "$demo/restore$app/storage"
cmp "$app/.env" "$demo/restore$app/.env"
cmp "$app/keys/token-encryption.key" "$demo/restore$app/keys/token-encryption.key"
[ "$(stat -c %a "$demo/restore$app/keys/token-encryption.key")" = 400 ]
echo "restored files are identical (content, links and permissions)"
echo "== opsbackup check --read-data"
o -r local check --read-data
echo
echo "demo finished: repository $demo/repo, config $cfg, restore in $demo/restore"
