# bench/scenario_s3.sh — scenario E: scenarios C, A and B with the
# repositories on an S3 server on 127.0.0.1.  Sourced by bench/run.sh.
#
# The server is the tests' S3rver (tests/tools/s3server, installed by
# scripts/deps.sh with npm), started here through bench/s3server.js (the
# same server.js with one signature fix restic needs; see that file) on a
# free 127.0.0.1 port, with its data directory in $WORK/s3/data and a
# fresh random secret key.  Nothing here reaches beyond 127.0.0.1.  S3rver
# is a single Node.js process that writes each object to a file: a slow
# server, so E compares the clients against the same server, not against
# real S3's speed.
#
# Steps: C's steps on a fresh attachments tree (files-initial,
# files-mutation, files-restore verified with diff -r, files-list), then
# A's steps on a fresh cluster (db-initial, db-mutation, db-restore
# verified with row counts and checksums), through c_run and a_run with
# REPO_STORE=s3, so the commands are exactly those of C and A with an S3
# repository URL:
#   restic     -r s3:http://127.0.0.1:PORT/BUCKET/NAME  (AWS_ACCESS_KEY_ID /
#              AWS_SECRET_ACCESS_KEY; path-style, as minio-go picks for an IP)
#   opsbackup  -r 's3://BUCKET/NAME?endpoint=http://127.0.0.1:PORT&path-style=true'
#   pg_dump -Fc -Z0 > /dev/null, the reference of A (no repository)
# Then B's steps (phys-full, phys-incr, phys-restore: b_run with
# REPO_STORE=s3) on a second server that speaks HTTPS, because pgBackRest
# speaks nothing else to S3; archive_command and the restored server's
# restore_command use the same bucket, as the guide's WAL archiving to S3:
#   pgbackrest-zst  repo1-type=s3, repo1-s3-uri-style=path,
#                   repo1-storage-ca-file = the server's certificate
#   opsbackup       -c CONF -r bench, CONF's [repo.bench] holding url,
#                   endpoint, path-style, ca-file and the key pair
# Both verify the server's certificate (a self-signed one made for the run).
# Then D's steps on the same HTTPS server (wal-segment, wal-catch-up,
# wal-backlog: d_run_all with REPO_STORE=s3): pgbench writes while each
# tool's archive-push sends every segment into the bucket.
# Not run: borg (no S3 backend); tar, pg_dump -Z9 and pg_basebackup, the
# guide's scripts (they write local files); pgBackRest gz (zst is the one
# issue 10 compares with).
# "added" and "repo" count the bytes of the objects under the repository's
# prefix (repo_bytes s3objects:), not S3rver's .md5 and metadata files;
# restic's local cache ($WORK/cache/restic) is not counted (opsbackup keeps
# none).

E_FILES_TOOLS=${E_FILES_TOOLS-"restic opsbackup"}
E_DB_TOOLS=${E_DB_TOOLS-"pg_dump-Z0-null restic opsbackup"}
E_PHYS_TOOLS=${E_PHYS_TOOLS-"pgbackrest-zst opsbackup"}
E_WAL_TOOLS=${E_WAL_TOOLS-"pgbackrest-zst opsbackup"}

S3_PID=""

s3_bench_available() {
    command -v node >/dev/null 2>&1 &&
        [ -f "$ROOT/tests/tools/s3server/node_modules/@20minutes/s3rver/package.json" ] &&
        [ -f "$ROOT/tests/tools/s3server/server.js" ]
}

s3_bench_version() {
    local v
    v=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
        "$ROOT/tests/tools/s3server/node_modules/@20minutes/s3rver/package.json" 2>/dev/null | head -1)
    echo "S3rver ${v:-?} on node $(node --version 2>/dev/null || echo '?')"
}

# A self-signed certificate for 127.0.0.1 (in $WORK/s3/tls; not timed):
# sets S3_TLS_KEY_FILE and S3_CA_FILE (the certificate, which is its own CA).
# The address is in the subject alternative names twice: as an IP address
# (what curl, and so opsbackup, matches for an IP host) and as a DNS name
# (pgBackRest 2.45 compares the host with the DNS names only).
s3_bench_tls() {
    local d="$WORK/s3/tls"
    rm -rf "$d"
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
        -addext "subjectAltName=IP:127.0.0.1,DNS:127.0.0.1" -keyout "$d/key.pem" -out "$d/cert.pem" \
        >"$LOGS/s3-tls.log" 2>&1 || die "openssl req failed, see $LOGS/s3-tls.log"
    chmod 644 "$d/cert.pem"
    chmod 755 "$d"
    S3_TLS_KEY_FILE="$d/key.pem" S3_CA_FILE="$d/cert.pem"
}

# Start the server over a fresh DIR on a free 127.0.0.1 port; sets S3_PID,
# S3_PORT, S3_ENDPOINT, S3_DATA, S3_BUCKET and the key pair.  With "tls" it
# speaks HTTPS with s3_bench_tls's certificate (S3_CA_FILE).
s3_bench_start() { # dir [tls]
    S3_DATA=$1
    local key="" cert="" scheme=http
    if [ "${2:-}" = tls ]; then
        s3_bench_tls
        key=$S3_TLS_KEY_FILE cert=$S3_CA_FILE scheme=https
    fi
    S3_BUCKET=bench
    S3_ACCESS_KEY=bench-access-key
    S3_SECRET_KEY="bench-secret-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    local logf="$WORK/s3/server.log" tries i
    rm -rf "$S3_DATA"
    mkdir -p "$S3_DATA"
    : >"$logf"
    for tries in 1 2 3 4 5; do
        S3_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        # Node 20's OpenSSL 3 hides DES, which S3rver's continuation tokens
        # use; the legacy provider brings it back (tests/tools/s3server).
        # BENCH_S3_LOG=1: s3server.js logs every request (method, path,
        # status, milliseconds, size) to server.log; measure() marks each
        # command.
        NODE_OPTIONS=--openssl-legacy-provider S3_ACCESS_KEY="$S3_ACCESS_KEY" \
            S3_SECRET_KEY="$S3_SECRET_KEY" S3_TLS_KEY="$key" S3_TLS_CERT="$cert" \
            BENCH_S3_REQLOG=$([ "${BENCH_S3_LOG:-0}" = 1 ] && echo 1) \
            node "$BENCH_DIR/s3server.js" "$S3_PORT" "$S3_DATA" "$S3_BUCKET" >>"$logf" 2>&1 &
        S3_PID=$!
        for i in $(seq 1 600); do
            if grep -q "^ready $S3_PORT\$" "$logf" 2>/dev/null; then
                S3_ENDPOINT="$scheme://127.0.0.1:$S3_PORT"
                return 0
            fi
            kill -0 "$S3_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$S3_PID" 2>/dev/null || true
        wait "$S3_PID" 2>/dev/null || true
        S3_PID=""
    done
    log "the S3 server did not start, see $logf"
    return 1
}

s3_bench_stop() {
    if [ -n "${S3_PID:-}" ]; then
        kill "$S3_PID" 2>/dev/null || true
        wait "$S3_PID" 2>/dev/null || true
        S3_PID=""
    fi
    return 0
}

scenario_E() {
    log "scenario E (S3 on 127.0.0.1), scale $BENCH_SCALE, seed $BENCH_SEED"
    if ! s3_bench_available; then
        record_unavailable E files-initial opsbackup opsbackup \
            "the S3 test server is not installed (node and npm ci in tests/tools/s3server: scripts/deps.sh)"
        return 0
    fi
    mkdir -p "$WORK/s3"
    s3_bench_start "$WORK/s3/data" || die "cannot start the S3 server"
    log "S3 server $(s3_bench_version) at $S3_ENDPOINT, bucket $S3_BUCKET, data in $S3_DATA"
    export AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" AWS_REGION=us-east-1
    unset AWS_SESSION_TOKEN AWS_DEFAULT_REGION AWS_PROFILE

    REPO_STORE=s3
    [ "${BENCH_S3_LOG:-0}" = 1 ] && S3_REQLOG="$WORK/s3/server.log"
    c_run E files- E-files "$E_FILES_TOOLS"
    a_run E db- E-db "$E_DB_TOOLS"
    S3_REQLOG=""
    REPO_STORE=local
    if [ "${BENCH_S3_LOG:-0}" = 1 ]; then
        cp "$WORK/s3/server.log" "$OUT/s3-server.log"
        python3 "$BENCH_DIR/s3_requests.py" "$OUT/s3-server.log" >"$OUT/s3-requests.md" ||
            log "s3_requests.py failed"
    fi
    record_unavailable E other borg peer "no S3 backend" "not available"
    s3_bench_stop

    # B's and D's steps over HTTPS: pgBackRest speaks nothing else.  Both tools
    # verify the server's certificate against S3_CA_FILE.
    if ob_has_command archive-push; then
        s3_bench_start "$WORK/s3/data-tls" tls || die "cannot start the HTTPS S3 server"
        log "HTTPS S3 server at $S3_ENDPOINT, data in $S3_DATA"
        REPO_STORE=s3
        [ "${BENCH_S3_LOG:-0}" = 1 ] && S3_REQLOG="$WORK/s3/server.log"
        b_run E phys- E-phys "$E_PHYS_TOOLS"
        d_run_all E wal- E-wal "$E_WAL_TOOLS"
        S3_REQLOG=""
        if [ "${BENCH_S3_LOG:-0}" = 1 ]; then
            cp "$WORK/s3/server.log" "$OUT/s3-server-phys.log"
            python3 "$BENCH_DIR/s3_requests.py" "$OUT/s3-server-phys.log" >"$OUT/s3-requests-phys.md" ||
                log "s3_requests.py failed"
        fi
        REPO_STORE=local
        s3_bench_stop
    fi
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$WORK/s3/data" "$WORK/s3/data-tls"
}
