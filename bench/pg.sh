# bench/pg.sh — the throwaway PostgreSQL 15 cluster and the database data set.
# Sourced by bench/run.sh.
#
# The cluster lives in $WORK/pg (data/, sock/, log), owned by the postgres
# user, listens only on a Unix socket in $WORK/pg/sock (no TCP at all) on
# port $BENCH_PGPORT (default 55432), trust authentication for local
# connections.  Every client finds it through PGHOST/PGPORT/PGUSER, which
# pg_start exports.  It is created anew for each run (determinism) and
# stopped by pg_stop (run.sh calls it on exit).  PG_EXTRA_CONF, if set, is
# appended to postgresql.conf (scenarios B and D: archive_mode = on).

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
${PG_EXTRA_CONF:-}
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
    # Settle the database as after the initial load: otherwise whichever tool
    # dumps first pays for the first scan of the updated rows (hint bits) and
    # races autovacuum, which made the reference 1.3-3.5 s from run to run.
    pg_psql -d "$PG_DB" -c "VACUUM ANALYZE" -c "CHECKPOINT" >>"$LOGS/pg-load.log" 2>&1 ||
        die "VACUUM after mutation $1 failed, see $LOGS/pg-load.log"
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

# --- WAL archiving (scenarios B and D) -----------------------------------------
# The cluster then runs with archive_mode = on and the archive_command of the
# tool being measured; PostgreSQL runs it as the postgres user.

# Segments complete and waiting for the archiver (.ready files).
pg_ready_count() {
    find "$WORK/pg/data/pg_wal/archive_status" -name '*.ready' 2>/dev/null | wc -l
}

# Wait until nothing waits for the archiver (up to $1 s, default 600).
pg_wait_archived() { # [timeout_s]
    local t=$((${1:-600} * 10))
    while [ "$(pg_ready_count)" -gt 0 ]; do
        t=$((t - 1))
        if [ $t -le 0 ]; then
            pg_psql -d postgres -c "SELECT * FROM pg_stat_archiver" >&2 || true
            die "the archiver did not catch up (archive_command failing? see $WORK/pg/log)"
        fi
        sleep 0.1
    done
}

# Close the current segment, let the current archive_command archive
# everything, then switch to CMD (reload; the archiver picks it up on its
# next cycle).  With "nowait": only switch to CMD (when the current command
# is '' and segments are meant to wait).
pg_set_archive_command() { # cmd [nowait]
    if [ "${2:-}" != nowait ]; then
        pg_psql -d postgres -At -c "SELECT pg_switch_wal()" >/dev/null || die "pg_switch_wal failed"
        pg_wait_archived
    fi
    local q=${1//\'/\'\'}
    pg_psql -d postgres -c "ALTER SYSTEM SET archive_command = '$q'" -c "SELECT pg_reload_conf()" \
        >/dev/null || die "setting archive_command failed"
    [ "${2:-}" = nowait ] || sleep 1
}

# pgBackRest's options for a repository in the bucket of the HTTPS S3
# server scenario E started (S3_PORT, S3_CA_FILE, the key pair): the array
# PGBR_S3, for pgbr_conf's key=value arguments.
pgbr_s3_opts() {
    PGBR_S3=(repo1-type=s3 "repo1-s3-bucket=$S3_BUCKET" repo1-s3-endpoint=127.0.0.1
        "repo1-storage-port=$S3_PORT" "repo1-storage-ca-file=$S3_CA_FILE"
        repo1-s3-region=us-east-1 repo1-s3-uri-style=path
        "repo1-s3-key=$S3_ACCESS_KEY" "repo1-s3-key-secret=$S3_SECRET_KEY")
}

# opsbackup's global options for repository NAME, as words (the array
# OB_REPO_ARGS) and as one shell-quoted string for archive_command and
# restore_command (OB_REPO_ARGS_Q).  Locally: -r $WORK/repos/NAME.  With
# REPO_STORE=s3: a config file only postgres reads, whose [repo.bench]
# holds the bucket prefix, endpoint, CA and key pair, because those
# commands run in the PostgreSQL server's environment, not ours.
ob_repo_args() { # name
    if [ "$REPO_STORE" = s3 ]; then
        local conf="$WORK/pg/$1.opsbackup.conf"
        {
            echo "[repo.bench]"
            echo "url = s3://$S3_BUCKET/$1"
            echo "endpoint = $S3_ENDPOINT"
            echo "region = us-east-1"
            echo "path-style = true"
            echo "ca-file = $S3_CA_FILE"
            echo "access-key-id = $S3_ACCESS_KEY"
            echo "secret-access-key = $S3_SECRET_KEY"
        } >"$conf"
        chown postgres: "$conf"
        chmod 600 "$conf"
        OB_REPO_ARGS=(-c "$conf" -r bench)
    else
        OB_REPO_ARGS=(-r "$WORK/repos/$1")
    fi
    OB_REPO_ARGS_Q=$(printf '%q ' "${OB_REPO_ARGS[@]}")
}

# A pgBackRest configuration: CONF for a repository REPO, stanza "bench" on
# the bench cluster, encrypted with the bench password.  Extra [global]
# lines follow as arguments.
pgbr_conf() { # conf repo compress-type [key=value]...
    local conf=$1 repo=$2 ct=$3
    shift 3
    local name
    name=$(basename "$conf" .conf)
    install -d -o postgres -m 0700 "$WORK/pg/pgbackrest" "$WORK/pg/pgbackrest/lock-$name" \
        "$WORK/pg/pgbackrest/spool-$name"
    # A local repository's directory; with repo1-type=s3, REPO is a prefix
    # in the bucket.
    case " $* " in
    *" repo1-type=s3 "*) ;;
    *) install -d -o postgres -m 0700 "$repo" ;;
    esac
    {
        echo "[global]"
        echo "repo1-path=$repo"
        echo "repo1-cipher-type=aes-256-cbc"
        echo "repo1-cipher-pass=$(cat "$PWFILE")"
        echo "compress-type=$ct"
        echo "process-max=2"
        echo "start-fast=y"
        echo "archive-timeout=600"
        echo "log-level-console=info"
        echo "log-level-file=off"
        echo "log-path=$WORK/pg/pgbackrest"
        echo "lock-path=$WORK/pg/pgbackrest/lock-$name"
        echo "spool-path=$WORK/pg/pgbackrest/spool-$name"
        local kv
        for kv in "$@"; do echo "$kv"; done
        echo
        echo "[bench]"
        echo "pg1-path=$WORK/pg/data"
        echo "pg1-port=$BENCH_PGPORT"
        echo "pg1-socket-path=$WORK/pg/sock"
        echo "pg1-user=postgres"
    } >"$conf"
    chown postgres:postgres "$conf"
    chmod 600 "$conf"
    pg_as pgbackrest --config="$conf" --stanza=bench stanza-create \
        >"$LOGS/stanza-$name.log" 2>&1 || die "pgbackrest stanza-create failed, see $LOGS/stanza-$name.log"
}

# The bench password, readable by the postgres user (archive_command and
# the physical backup run as postgres).
pg_password_file() {
    install -o postgres -m 0600 "$PWFILE" "$WORK/pg/password"
    echo "$WORK/pg/password"
}

# The archiver's key slot, as docs/OPERATIONS.md recommends for production
# (§ archive_command): a long random password in a file only postgres reads,
# and a slot with a cheap key derivation (scrypt N=1024, D35), because
# PostgreSQL runs archive_command once per segment and restore_command once
# per file recovery asks for, and each call opens the repository.  The
# user's own slot (PWFILE, default KDF) stays for backups and restores.
# Prints the password file's path; the file is made once per run.
pg_archiver_password_file() {
    local f="$WORK/pg/archive.password"
    if [ ! -s "$f" ]; then
        (umask 077 && head -c 32 /dev/urandom | base64 >"$f")
        chown postgres: "$f"
        chmod 600 "$f"
    fi
    echo "$f"
}

# ob_add_archiver_slot USER_PW_FILE ARCHIVER_PW_FILE LOG REPO_ARGS...: add
# the archiver's slot to an opsbackup repository (as postgres); REPO_ARGS
# are the global options that name it (-r DIR, or -c CONF -r NAME).
ob_add_archiver_slot() {
    local pw=$1 apw=$2 logf=$3
    shift 3
    runuser -u postgres -- "$OB" --no-progress "$@" --password-file "$pw" \
        key add --kdf-n 1024 --new-password-file "$apw" >"$logf" 2>&1 ||
        die "opsbackup key add --kdf-n 1024 failed, see $logf"
}
