# bench/pg.sh — the throwaway PostgreSQL 15 cluster and the database data set.
# Sourced by bench/run.sh.
#
# The cluster lives in $WORK/pg (data/, sock/, log), owned by the postgres
# user, listens only on a Unix socket in $WORK/pg/sock (no TCP at all) on
# port $BENCH_PGPORT (default 55432), trust authentication for local
# connections.  Every client finds it through PGHOST/PGPORT/PGUSER, which
# pg_start exports.  It is created anew for each run (determinism) and
# stopped by pg_stop (run.sh calls it on exit).

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PG_DB=bench
PG_TABLES="pgbench_accounts pgbench_branches pgbench_tellers pgbench_history documents"

pg_as() { runuser -u postgres -- "$@"; }

pg_start() {
    local d="$WORK/pg"
    pg_stop
    rm -rf "$d"
    mkdir -p "$d/sock"
    chown -R postgres:postgres "$d"
    pg_as "$PGBIN/initdb" -D "$d/data" -U postgres --auth=trust -E UTF8 --locale=C \
        >"$LOGS/pg-initdb.log" 2>&1 || die "initdb failed, see $LOGS/pg-initdb.log"
    cat >>"$d/data/postgresql.conf" <<EOF
# opsbackup bench
listen_addresses = ''
unix_socket_directories = '$d/sock'
port = $BENCH_PGPORT
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
wal_level = replica
max_wal_senders = 4
EOF
    pg_as "$PGBIN/pg_ctl" -D "$d/data" -l "$d/log" -w -t 120 start >"$LOGS/pg-start.log" 2>&1 ||
        die "PostgreSQL did not start, see $d/log"
    PG_RUNNING=1
    export PGHOST="$d/sock" PGPORT="$BENCH_PGPORT" PGUSER=postgres
    unset PGDATABASE PGPASSWORD PGSERVICE
    PG_CONNINFO="host=$d/sock port=$BENCH_PGPORT user=postgres dbname=$PG_DB"
}

pg_stop() {
    local d="$WORK/pg"
    if [ -f "$d/data/postmaster.pid" ]; then
        pg_as "$PGBIN/pg_ctl" -D "$d/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    PG_RUNNING=0
}

pg_psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

# The data set: pgbench -i at scale 30 x BENCH_SCALE plus ~200k x BENCH_SCALE
# documents (~650 MB at scale 1).
pg_load() {
    PG_SCALE=$(awk -v s="$BENCH_SCALE" 'BEGIN { n = int(30 * s + 0.5); print (n < 1 ? 1 : n) }')
    PG_NDOCS=$(awk -v s="$BENCH_SCALE" 'BEGIN { n = int(200000 * s + 0.5); print (n < 1000 ? 1000 : n) }')
    log "database: pgbench scale $PG_SCALE + $PG_NDOCS documents"
    "$PGBIN/createdb" "$PG_DB" || die "createdb $PG_DB failed"
    "$PGBIN/pgbench" -i -q -s "$PG_SCALE" "$PG_DB" >"$LOGS/pg-load.log" 2>&1 ||
        die "pgbench -i failed, see $LOGS/pg-load.log"
    pg_psql -d "$PG_DB" -c "CREATE TABLE documents (id bigint NOT NULL, author_id int NOT NULL,
        title text NOT NULL, body text NOT NULL, created_at timestamptz NOT NULL)" ||
        die "CREATE TABLE documents failed"
    pg_docs 1 "$PG_NDOCS"
    pg_psql -d "$PG_DB" -c "ALTER TABLE documents ADD PRIMARY KEY (id)" \
        -c "CREATE INDEX documents_author ON documents (author_id, created_at)" \
        -c "VACUUM ANALYZE" -c "CHECKPOINT" >>"$LOGS/pg-load.log" 2>&1 ||
        die "indexing documents failed, see $LOGS/pg-load.log"
    PG_DB_BYTES=$(pg_psql -d "$PG_DB" -At -c "SELECT pg_database_size('$PG_DB')")
    log "database: $((PG_DB_BYTES / 1048576)) MiB"
}

pg_docs() { # first_id count
    python3 "$BENCH_DIR/gen_db.py" documents --seed "$BENCH_SEED" --first-id "$1" --count "$2" |
        pg_psql -d "$PG_DB" -c "COPY documents FROM STDIN" ||
        die "loading documents failed"
}

# Mutation 1 ("one hour of work"): 1% of pgbench_accounts updated, spread
# over the whole table by a hash of the key; 2k documents added.
# Mutation 2 (locality): the most recent 1% of accounts updated, 2k
# documents appended (for the physical scenario's incremental target).
pg_mutate() { # 1|2
    local nd
    nd=$(awk -v s="$BENCH_SCALE" 'BEGIN { n = int(2000 * s + 0.5); print (n < 100 ? 100 : n) }')
    local first
    first=$(pg_psql -d "$PG_DB" -At -c "SELECT coalesce(max(id), 0) + 1 FROM documents")
    if [ "$1" = 1 ]; then
        pg_psql -d "$PG_DB" -c "UPDATE pgbench_accounts SET abalance = abalance + 1 + aid % 97
            WHERE abs(hashint4(aid) # $BENCH_SEED) % 100 = 0" ||
            die "mutation 1 failed"
    else
        pg_psql -d "$PG_DB" -c "UPDATE pgbench_accounts SET abalance = abalance + 1
            WHERE aid > (SELECT max(aid) - max(aid) / 100 FROM pgbench_accounts)" ||
            die "mutation 2 failed"
    fi
    pg_docs "$first" "$nd"
    log "database: mutation $1 applied ($nd documents added)"
}

# Order-independent content fingerprint of DB: per table, row count and the
# sum of hashtext(row).  Equal fingerprints = same rows in every table.
pg_fingerprint() { # db
    local q="" t
    for t in $PG_TABLES; do
        [ -n "$q" ] && q="$q UNION ALL "
        q="$q SELECT '$t', count(*), coalesce(sum(hashtext(x::text)::numeric), 0) FROM $t x"
    done
    pg_psql -d "$1" -At -c "$q"
}

# Verification used by every database restore: DB's fingerprint equals the
# source's, recorded in $WORK/pg/fingerprint.  Drops DB afterwards.
pg_verify_restore() { # db
    local want got rc=0
    want=$(cat "$WORK/pg/fingerprint")
    got=$(pg_fingerprint "$1") || rc=1
    if [ "$rc" = 0 ] && [ "$want" = "$got" ]; then
        echo "fingerprint ok: $(echo "$got" | tr '\n' ' ')"
    else
        echo "fingerprint mismatch"
        echo "want: $want"
        echo "got:  $got"
        rc=1
    fi
    "$PGBIN/dropdb" --if-exists "$1" || true
    return $rc
}
