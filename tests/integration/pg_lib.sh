# PostgreSQL helpers for the db integration tests (sourced after lib.sh).
#
#   pg_start                 start a throwaway PostgreSQL 15 cluster in $T/pg
#   pg_start_archiving       the same, archiving into $REPO (as postgres; obpg)
#   pg_sql [-d DB] SQL       run SQL (default database: postgres), print rows
#   pg_databases             the cluster's databases, one per line, sorted
#   pg_checksum DB           a fingerprint of DB's data, objects and owners
#   pg_fingerprint DB        the text pg_checksum hashes (to diff failures)
#   make_app_db DB           a realistic application database
#   bg_track PID             kill PID (a background job) when the test exits
#   health_app_start ARGS... start tests/tools/health_app.py (an application's
#                            health endpoint over this cluster) on a free port;
#                            sets HEALTH to its URL and requires it healthy now
#
# The cluster belongs to the `postgres` system user (initdb refuses root),
# listens only on a unix socket in $T/pg/sock on a private port, and trusts
# every local connection.  PGHOST, PGPORT and PGUSER are exported, so
# opsbackup, and the pg_dump/psql it runs, reach it with no other settings.
# The cluster is stopped when the test exits, before lib.sh's cleanup runs.
#
# Our own client calls use the Debian paths under $PGBIN; PATH is left as
# it is, so opsbackup finds pg_dump exactly as it would on a user's machine.

export PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/postgres" ] || fail "PostgreSQL 15 server not found in $PGBIN"
id postgres >/dev/null 2>&1 || fail "no 'postgres' system user"

PGBASE="$T/pg"
PGDATA_DIR="$PGBASE/data"
PGSOCK="$PGBASE/sock"
PG_STARTED=0
BG_PIDS=()

bg_track() { BG_PIDS+=("$1"); }

# Stop the cluster and background jobs, then run the EXIT trap lib.sh set
# (with the test's exit status intact, which it uses to keep $T).
_pg_prev_exit_trap=$(trap -p EXIT | sed -e "s/^trap -- '\\(.*\\)' EXIT\$/\\1/")
_pg_on_exit() {
    local rc=$?
    # Under set -e, `(exit $rc)` below would end the shell before the
    # chained trap (lib.sh's cleanup: exit hooks, "scratch kept") runs.
    set +e
    local p
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ "$PG_STARTED" = 1 ]; then
        (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w stop) \
            >/dev/null 2>&1 || true
        PG_STARTED=0
        if [ $rc -ne 0 ] && [ -f "$PGBASE/log" ]; then
            echo "--- last lines of the PostgreSQL log ($PGBASE/log):" >&2
            tail -20 "$PGBASE/log" >&2 || true
        fi
    fi
    (exit $rc)
    eval "$_pg_prev_exit_trap"
}
trap _pg_on_exit EXIT
# A test killed by tests/run's timeout (SIGTERM) or ^C still stops its cluster.
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

# pg_start: initdb and start the cluster; exports PGHOST, PGPORT, PGUSER.
pg_start() {
    # The postgres user must reach its directories inside root's 0700 $T
    # (search permission only; the repository password stays private).
    chmod 0600 "$OPSBACKUP_PASSWORD_FILE"
    chmod 0711 "$T"
    mkdir -p "$PGBASE" "$PGSOCK"
    chown postgres: "$PGBASE" "$PGSOCK"
    chmod 0700 "$PGSOCK"
    (cd / && runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust \
        -E UTF8 --locale=C --no-sync) >"$T/initdb.log" 2>&1 \
        || { cat "$T/initdb.log"; fail "initdb failed"; }
    cat >"$PGDATA_DIR/pg_hba.conf" <<'EOF'
# Tests may prepend lines (see pg_hba_prepend).
local all all trust
EOF
    cat >>"$PGDATA_DIR/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$PGSOCK'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 40
max_wal_size = 1GB
logging_collector = off
log_checkpoints = off
EOF
    # Tests may add settings (archive_mode, archive_command...).
    if [ -n "${PG_EXTRA_CONF:-}" ]; then
        printf '%s\n' "$PG_EXTRA_CONF" >>"$PGDATA_DIR/postgresql.conf"
    fi
    local port=$((20000 + $$ % 10000))
    for _ in 1 2 3 4 5; do
        if [ ! -e "$PGSOCK/.s.PGSQL.$port" ] \
            && (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGBASE/log" \
                -o "-p $port" -w -t 60 start) >"$T/pg_ctl.log" 2>&1; then
            PG_STARTED=1
            break
        fi
        port=$((20000 + (port - 20000 + 7919) % 10000))
    done
    if [ "$PG_STARTED" != 1 ]; then
        cat "$T/pg_ctl.log" "$PGBASE/log" 2>/dev/null || true
        fail "cannot start PostgreSQL"
    fi
    # pg_ctl -o -p: make the port stick for restarts and reloads too.
    echo "port = $port" >>"$PGDATA_DIR/postgresql.conf"
    export PGHOST="$PGSOCK" PGPORT="$port" PGUSER=postgres
    unset PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE PGSERVICEFILE PGOPTIONS PGSSLMODE
    unset PGCONNECT_TIMEOUT PGAPPNAME PGTARGETSESSIONATTRS
    info "PostgreSQL $(pg_sql 'SHOW server_version') on $PGHOST port $PGPORT"
}

# pg_start_archiving: the repository $REPO, owned by postgres as on a
# server (the archiver runs archive-push as postgres), initialised; PGPW, a
# copy of the password file postgres can read; obpg ARGS..., opsbackup run
# as postgres on $REPO; and the cluster started archiving into $REPO.
pg_start_archiving() {
    PGPW="$T/pgpw"
    install -o postgres -m 0600 "$OPSBACKUP_PASSWORD_FILE" "$PGPW"
    chmod 0711 "$T"
    install -d -o postgres -m 0700 "$REPO"
    PG_EXTRA_CONF="archive_mode = on
archive_command = '$OPSBACKUP -r $REPO --password-file $PGPW archive-push %p'
wal_level = replica
max_wal_senders = 0${PG_EXTRA_CONF:+
$PG_EXTRA_CONF}"
    obpg init --kdf-n 1024 >/dev/null || fail "opsbackup init of $REPO"
    pg_start
}
obpg() { runuser -u postgres -- "$OPSBACKUP" -r "$REPO" --password-file "$PGPW" "$@"; }

# pg_hba_prepend LINE: add an authentication rule before the trust rule.
pg_hba_prepend() {
    local f="$PGDATA_DIR/pg_hba.conf"
    { echo "$1"; cat "$f"; } >"$f.new"
    chown postgres: "$f.new"
    mv "$f.new" "$f"
    pg_sql "SELECT pg_reload_conf()" >/dev/null
    sleep 0.3
}

# pg_sql [-d DB] SQL: run SQL, print unaligned tuples only.
pg_sql() {
    local db=postgres
    if [ "$1" = -d ]; then db=$2; shift 2; fi
    "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -d "$db" -c "$1"
}

pg_databases() {
    pg_sql "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname"
}

pg_db_exists() {
    [ "$(pg_sql "SELECT count(*) FROM pg_database WHERE datname = '$1'")" = 1 ]
}

# pg_fingerprint DB: one line per fact.  Table contents are hashed per table
# (rows ordered by their text form, so the physical order does not matter);
# large objects, sequences, owners, privileges and definitions of tables,
# columns, constraints, indexes, views, functions and types are listed.
# Everything is compared by name, never by OID, so a restored copy of a
# database gives the same text as the original.
pg_fingerprint() {
    local db=$1
    "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -d "$db" <<'EOF'
SELECT format($q$SELECT 'table %s rows=' || count(*) || ' md5=' || md5(coalesce(string_agg(t::text, E'\n' ORDER BY t::text), '')) FROM %I.%I t$q$,
              n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY n.nspname, c.relname
\gexec
SELECT 'relation ' || n.nspname || '.' || c.relname || ' kind=' || c.relkind::text
       || ' owner=' || pg_get_userbyid(c.relowner) || ' acl=' || coalesce(c.relacl::text, '-')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY n.nspname, c.relname;
SELECT 'column ' || c.oid::regclass::text || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
       || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1;
SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
ORDER BY 1;
SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1;
SELECT 'view ' || c.oid::regclass::text || ' ' || md5(pg_get_viewdef(c.oid))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1;
SELECT 'function ' || p.oid::regprocedure::text || ' owner=' || pg_get_userbyid(p.proowner)
       || ' def=' || md5(pg_get_functiondef(p.oid))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind IN ('f', 'p')
ORDER BY 1;
SELECT 'trigger ' || tgrelid::regclass::text || ' ' || pg_get_triggerdef(oid)
FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1;
SELECT 'type ' || t.oid::regtype::text || ' kind=' || t.typtype::text || ' owner=' || pg_get_userbyid(t.typowner)
       || coalesce(' base=' || format_type(t.typbasetype, t.typtypmod), '')
       || coalesce(' labels=' || (SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder)
                                  FROM pg_enum e WHERE e.enumtypid = t.oid), '')
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND t.typtype IN ('e', 'd')
ORDER BY 1;
SELECT 'schema ' || nspname || ' owner=' || pg_get_userbyid(nspowner)
FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public')
  AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%'
ORDER BY 1;
SELECT 'sequence ' || schemaname || '.' || sequencename || ' owner=' || sequenceowner
       || ' last_value=' || coalesce(last_value::text, 'null')
       || ' start=' || start_value || ' inc=' || increment_by
FROM pg_sequences ORDER BY 1;
SELECT 'large object ' || m.oid || ' owner=' || pg_get_userbyid(m.lomowner)
       || ' size=' || length(lo_get(m.oid)) || ' md5=' || md5(lo_get(m.oid))
FROM pg_largeobject_metadata m ORDER BY m.oid;
SELECT 'comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-') || ' on ' || c.oid::regclass::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE obj_description(c.oid, 'pg_class') IS NOT NULL ORDER BY 1;
EOF
}

# pg_checksum DB: md5 of pg_fingerprint; the full text is kept in
# $T/fingerprint.DB (one file per database, overwritten) for diffing.
pg_checksum() {
    local f="$T/fingerprint.$1"
    pg_fingerprint "$1" >"$f" || fail "pg_fingerprint $1 failed"
    md5sum <"$f" | cut -d' ' -f1
}

# pg_checksum_eq DB1 DB2 WHAT: fail with a diff when the fingerprints differ.
# (Use the cached files from the last pg_checksum of each name.)
pg_fingerprint_diff() {
    diff "$T/fingerprint.$1" "$T/fingerprint.$2" | head -40 >&2 || true
}

# make_app_db DB [DOCUMENTS]: a realistic application database, owned by
# the non-superuser role opscore (database, schemas, most tables, types,
# functions, large objects), with one table owned by postgres and a grant
# to a second role.  Contents are deterministic (no random()); the uuid
# column defaults to gen_random_uuid() but every generated row sets it.
make_app_db() {
    local db=$1 ndocs=${2:-20000}
    "$PGBIN/psql" -Xq -v ON_ERROR_STOP=1 -d postgres -v db="$db" -v ndocs="$ndocs" <<'EOF' >/dev/null
DO $$BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'opscore') THEN
    CREATE ROLE opscore LOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_reader') THEN
    CREATE ROLE app_reader NOLOGIN;
  END IF;
END$$;
CREATE DATABASE :"db" OWNER opscore;
\connect :"db"
SET ROLE opscore;
CREATE SCHEMA audit;
CREATE TYPE doc_status AS ENUM ('draft', 'review', 'published', 'archived');
CREATE DOMAIN positive_amount AS numeric(12, 2) CHECK (VALUE >= 0);

CREATE TABLE customers (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    active      boolean NOT NULL DEFAULT true,
    balance     positive_amount NOT NULL DEFAULT 0,
    tags        text[] NOT NULL DEFAULT '{}',
    ext_id      uuid NOT NULL DEFAULT gen_random_uuid(),
    notes       text
);
COMMENT ON TABLE customers IS '顧客マスタ';
CREATE INDEX customers_email_lower ON customers (lower(email));

CREATE TABLE documents (
    id          bigserial PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (id),
    title       text NOT NULL,
    body        text,
    status      doc_status NOT NULL DEFAULT 'draft',
    metadata    jsonb NOT NULL DEFAULT '{}',
    content     bytea,
    scores      integer[],
    version     bigint NOT NULL DEFAULT 1,
    price       numeric(10, 2),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz,
    is_public   boolean NOT NULL DEFAULT false,
    doc_uuid    uuid NOT NULL DEFAULT gen_random_uuid(),
    attachment  oid
);
CREATE INDEX documents_customer ON documents (customer_id);
CREATE INDEX documents_metadata ON documents USING gin (metadata);
CREATE INDEX documents_published ON documents (created_at) WHERE status = 'published';
CREATE UNIQUE INDEX documents_uuid ON documents (doc_uuid);

CREATE TABLE document_tags (
    document_id bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    tag         text NOT NULL,
    PRIMARY KEY (document_id, tag)
);

CREATE SEQUENCE invoice_no_seq START 1000;
CREATE TABLE invoices (
    no          bigint PRIMARY KEY DEFAULT nextval('invoice_no_seq'),
    customer_id integer NOT NULL REFERENCES customers (id),
    amount      positive_amount NOT NULL,
    issued_on   date NOT NULL,
    paid        boolean
);
ALTER SEQUENCE invoice_no_seq OWNED BY invoices.no;

CREATE TABLE audit.settings (key text PRIMARY KEY, value jsonb);
CREATE TABLE empty_things (id int PRIMARY KEY, what text);

CREATE FUNCTION word_count(t text) RETURNS integer
    LANGUAGE sql IMMUTABLE AS $f$ SELECT coalesce(array_length(regexp_split_to_array(trim(t), '\s+'), 1), 0) $f$;
CREATE FUNCTION touch_version() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN NEW.version := OLD.version + 1; RETURN NEW; END $f$;
CREATE TRIGGER documents_version BEFORE UPDATE ON documents
    FOR EACH ROW WHEN (OLD.body IS DISTINCT FROM NEW.body) EXECUTE FUNCTION touch_version();
CREATE VIEW published_documents AS
    SELECT d.id, d.title, c.name AS customer, word_count(d.body) AS words
    FROM documents d JOIN customers c ON c.id = d.customer_id
    WHERE d.status = 'published';

INSERT INTO customers (name, email, created_at, active, balance, tags, ext_id, notes)
SELECT '顧客 ' || i || CASE WHEN i % 3 = 0 THEN ' 株式会社' ELSE '' END,
       'customer' || i || '@example.com',
       timestamptz '2020-01-01 00:00:00+00' + i * interval '3 hours 17 minutes',
       i % 11 <> 0,
       (i * 37 % 100000) / 100.0,
       CASE WHEN i % 5 = 0 THEN ARRAY['vip', 'タグ' || (i % 7)] ELSE ARRAY[]::text[] END,
       md5('customer' || i)::uuid,
       CASE WHEN i % 4 = 0 THEN NULL ELSE E'備考:\n' || md5(i::text) END
FROM generate_series(1, 1000) i;

INSERT INTO documents (customer_id, title, body, status, metadata, content, scores, version,
                       price, created_at, updated_at, is_public, doc_uuid)
SELECT 1 + i % 1000,
       '文書 ' || i || E'\n第' || (i % 7 + 1) || '章 「テスト」',
       CASE WHEN i % 50 = 0 THEN NULL
            ELSE 'Lorem ipsum ' || repeat(md5(i::text) || ' ', 1 + i % 5) || E'\n改行と\ttab, "quotes", \\backslash' END,
       (ARRAY['draft', 'review', 'published', 'archived'])[1 + i % 4]::doc_status,
       jsonb_build_object('n', i, 'lang', CASE WHEN i % 2 = 0 THEN 'ja' ELSE 'en' END,
                          'labels', jsonb_build_array('a' || i % 13, 'ラベル'), 'ratio', i / 7.0),
       CASE WHEN i % 10 = 0 THEN NULL ELSE decode(md5(i::text) || md5((i * 3)::text), 'hex') END,
       ARRAY[i % 100, i % 37, i % 7],
       1 + i % 3,
       (i % 100000) / 100.0,
       timestamptz '2022-06-01 09:00:00+09' + i * interval '37 minutes 11 seconds',
       CASE WHEN i % 3 = 0 THEN timestamptz '2023-01-01 00:00:00+00' + i * interval '1 minute' END,
       i % 6 = 0,
       md5('doc' || i)::uuid
FROM generate_series(1, :ndocs) i;

INSERT INTO document_tags
SELECT d, t FROM generate_series(1, :ndocs, 3) d,
       unnest(ARRAY['重要', 'report', 'q' || (d % 4 + 1)]) t;

INSERT INTO invoices (customer_id, amount, issued_on, paid)
SELECT 1 + i * 7 % 1000, (i * 1234 % 99999) / 100.0, date '2023-01-01' + i,
       CASE WHEN i % 9 = 0 THEN NULL ELSE i % 2 = 0 END
FROM generate_series(1, 500) i;

-- Large objects with fixed OIDs, one of 1 MiB, referenced by documents.
SELECT lo_from_bytea(424200 + i,
       CASE WHEN i = 1 THEN convert_to(repeat(md5('big') || E'\n', 32768), 'UTF8')
            ELSE convert_to('添付ファイル ' || i || E'\n' || repeat(md5(i::text), i * 10), 'UTF8') END)
FROM generate_series(1, 5) i;
UPDATE documents SET attachment = 424200 + (id % 5) + 1 WHERE id % 1000 = 0;
-- The UPDATE above bumped version through the trigger only where body changed: none.

RESET ROLE;
-- A table owned by the superuser, and privileges for a second role.
CREATE TABLE audit.events (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doc_id  bigint REFERENCES documents (id),
    event   text NOT NULL,
    at      timestamptz NOT NULL
);
INSERT INTO audit.events (doc_id, event, at)
SELECT 1 + i * 13 % :ndocs, (ARRAY['created', 'viewed', '更新'])[1 + i % 3],
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'
FROM generate_series(1, 2000) i;
INSERT INTO audit.settings VALUES ('retention', '{"days": 30}'), ('名前', '"値"');
GRANT USAGE ON SCHEMA audit TO app_reader;
GRANT SELECT ON documents, customers, published_documents TO app_reader;
GRANT SELECT ON audit.events TO opscore;
ANALYZE;
EOF
}

# pg_table_counts DB: "schema.table count" for every user table, sorted
# (FROM ONLY: a partitioned parent holds no rows of its own).
pg_table_counts() {
    "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -d "$1" <<'EOF2'
SELECT format($q$SELECT %L || ' ' || count(*) FROM ONLY %I.%I$q$, n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY n.nspname, c.relname
\gexec
EOF2
}

# db_snapshot_problems JSON DB COUNTS: check a `backup db --json` snapshot
# against the database it came from (COUNTS: pg_table_counts output taken
# at backup time).  Prints one line per problem, nothing when all is well.
db_snapshot_problems() {
    python3 - "$@" <<'EOF2'
import json, sys
path, db, counts_path = sys.argv[1:4]
try:
    j = json.load(open(path))
except Exception as e:
    print(f"snapshot JSON unreadable: {e}")
    sys.exit(0)
want = {}
for line in open(counts_path):
    name, n = line.rsplit(" ", 1)
    want[name] = int(n)
def p(msg): print(msg)
for k in ("id", "short_id", "time", "kind", "stats", "extra"):
    if k not in j:
        p(f"snapshot JSON has no '{k}'")
if j.get("kind") != "db":
    p(f"kind is {j.get('kind')!r}, not 'db'")
x = j.get("extra") or {}
if x.get("database") != db:
    p(f"extra.database is {x.get('database')!r}, not {db!r}")
sv = x.get("server_version")
if not isinstance(sv, (str, int)) or not str(sv).startswith("15"):
    p(f"extra.server_version is {sv!r}, expected 15.x")
dv = x.get("pg_dump_version")
if not isinstance(dv, (str, int)) or "15" not in str(dv):
    p(f"extra.pg_dump_version is {dv!r}, expected to mention 15")
size = x.get("database_size")
if not isinstance(size, int) or size <= 0:
    p(f"extra.database_size is {size!r}, expected an integer > 0")
if x.get("globals") is not True:
    p(f"extra.globals is {x.get('globals')!r}, expected true")
db_ = x.get("dump_bytes")
if not isinstance(db_, int) or db_ <= 0:
    p(f"extra.dump_bytes is {db_!r}, expected an integer > 0")
t = x.get("tables")
if not isinstance(t, dict):
    p(f"extra.tables is {type(t).__name__}, expected an object")
else:
    for name, n in want.items():
        if name not in t:
            p(f"extra.tables lacks {name} (has {sorted(t)[:10]})")
        elif t[name] != n:
            p(f"extra.tables[{name}] = {t[name]!r}, the database has {n}")
    # The large objects, under the key of their catalog, when there are any.
    import os, subprocess
    nlo = int(subprocess.run([os.environ["PGBIN"] + "/psql", "-XAtq", "-d", db, "-c",
                              "SELECT count(*) FROM pg_largeobject_metadata"],
                             capture_output=True, text=True, check=True).stdout)
    lo = "pg_catalog.pg_largeobject_metadata"
    if t.get(lo, 0) != nlo:
        p(f"extra.tables[{lo}] = {t.get(lo)!r}, the database has {nlo} large objects")
    for name in t:
        if name not in want and name != lo:
            p(f"extra.tables has {name}, which is not a table of {db}")
s = j.get("stats") or {}
for k in ("bytes", "bytes_added", "bytes_stored"):
    if not isinstance(s.get(k), int):
        p(f"stats.{k} is {s.get(k)!r}, expected an integer")
EOF2
}

# health_app_start ARGS...: the DR tests' application stand-in (health_app.py
# ARGS: --db, --min-rows, --table, --require-file), on a port the OS picks.
health_app_start() {
    rm -f "$T/health.port"
    python3 "$TOOLS/health_app.py" --psql "$PGBIN/psql" "$@" --port 0 --port-file "$T/health.port" \
        >"$T/health.log" 2>&1 &
    bg_track $!
    local _
    for _ in $(seq 1 100); do [ -s "$T/health.port" ] && break; sleep 0.1; done
    [ -s "$T/health.port" ] || { cat "$T/health.log"; fail "health endpoint did not start"; }
    HEALTH="http://127.0.0.1:$(cat "$T/health.port")/health"
    curl -sf "$HEALTH" >/dev/null || fail "health endpoint is not healthy before the disaster"
}
