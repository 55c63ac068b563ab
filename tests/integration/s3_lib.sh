# S3 test server helpers (sourced).  Starts S3rver (tests/tools/s3server)
# on a free 127.0.0.1 port over a data directory, and points opsbackup at
# it through the AWS_* variables and an s3:// URL.  Nothing here reaches
# beyond 127.0.0.1.
#
# Used by lib.sh in S3 mode (OB_TEST_STORAGE=s3), by S3-only tests and by
# tests/run (for the unit tests).  Needs OPSBACKUP_TOP.
#
#   s3_available           node and the installed server are there
#   s3_start DIR [PORT]    start (or restart, on the same DIR and PORT);
#                          sets S3_PID S3_PORT S3_DATA S3_ENDPOINT S3_LOG.
#                          HTTPS when S3_TLS_KEY and S3_TLS_CERT name PEM files
#   s3_stop                stop it (SIGTERM) and wait
#   s3_kill                SIGKILL it (a crash), and wait
#   s3_env                 export AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
#                          AWS_REGION for the server; unset AWS_SESSION_TOKEN
#   s3_url PREFIX          the s3:// URL of PREFIX in the test bucket
#   s3_object_dir PREFIX   where the server keeps PREFIX's objects on disk
#                          (each object NAME is NAME._S3rver_object)

S3SERVER_DIR="$OPSBACKUP_TOP/tests/tools/s3server"
S3_BUCKET=obtest
S3_ACCESS_KEY=obtest-access-key
# A fresh secret per test run: nothing outside the run can know it.
S3_SECRET_KEY="obtest-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')"
S3_PID=""
S3_PORT=""

s3_available() {
    command -v node >/dev/null 2>&1 && [ -f "$S3SERVER_DIR/node_modules/@20minutes/s3rver/package.json" ]
}

s3_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# s3_drop_torn DIR: S3rver writes an object as three files one after the
# other, so a server killed mid-PUT (test_s3_outage) can leave an object
# with an empty or missing metadata file, and every later listing of its
# prefix fails with HTTP 500.  Real S3 never shows an object whose PUT did
# not complete, so before a restart such leftovers are dropped.
s3_drop_torn() {
    python3 - "$1" <<'PY'
import json, os, sys
SUFFIXES = ("._S3rver_object", "._S3rver_object.md5", "._S3rver_metadata.json")
for root, _, files in os.walk(sys.argv[1]):
    bases = {os.path.join(root, f[: -len(x)]) for f in files for x in SUFFIXES if f.endswith(x)}
    for base in sorted(bases):
        try:
            json.load(open(base + "._S3rver_metadata.json"))
            if os.path.exists(base + "._S3rver_object"):
                continue
        except (OSError, ValueError):
            pass
        for suffix in SUFFIXES:
            try:
                os.unlink(base + suffix)
            except OSError:
                pass
        sys.stderr.write("s3_drop_torn: dropped %s (its PUT never completed)\n" % base)
PY
}

s3_start() {
    S3_DATA=$1
    local want=${2:-} tries
    mkdir -p "$S3_DATA"
    s3_drop_torn "$S3_DATA"
    S3_LOG="$S3_DATA.log"
    for tries in 1 2 3 4 5; do
        S3_PORT=${want:-$(s3_free_port)}
        # Node 20's OpenSSL 3 hides DES, which S3rver's continuation
        # tokens use; the legacy provider brings it back.
        NODE_OPTIONS=--openssl-legacy-provider S3_ACCESS_KEY="$S3_ACCESS_KEY" \
            S3_SECRET_KEY="$S3_SECRET_KEY" S3_TLS_KEY="${S3_TLS_KEY:-}" S3_TLS_CERT="${S3_TLS_CERT:-}" \
            node "$S3SERVER_DIR/server.js" "$S3_PORT" "$S3_DATA" "$S3_BUCKET" >>"$S3_LOG" 2>&1 &
        S3_PID=$!
        local i
        for i in $(seq 1 200); do
            if grep -q "^ready $S3_PORT\$" "$S3_LOG" 2>/dev/null; then
                S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
                if [ -n "${S3_TLS_CERT:-}" ]; then S3_ENDPOINT="https://127.0.0.1:$S3_PORT"; fi
                return 0
            fi
            kill -0 "$S3_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$S3_PID" 2>/dev/null || true
        wait "$S3_PID" 2>/dev/null || true
        S3_PID=""
        # A port taken between choosing and binding: choose again.  A
        # restart on a given port may have to wait for it to be free.
        if [ -n "$want" ]; then sleep 1; fi
    done
    echo "s3_lib: the S3 test server did not start; its log:" >&2
    cat "$S3_LOG" >&2
    return 1
}

s3_stop() {
    if [ -n "$S3_PID" ]; then
        kill "$S3_PID" 2>/dev/null || true
        wait "$S3_PID" 2>/dev/null || true
        S3_PID=""
    fi
    return 0
}

s3_kill() {
    if [ -n "$S3_PID" ]; then
        kill -9 "$S3_PID" 2>/dev/null || true
        wait "$S3_PID" 2>/dev/null || true
        S3_PID=""
    fi
    return 0
}

s3_env() {
    export AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY"
    export AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY"
    export AWS_REGION=us-east-1
    unset AWS_SESSION_TOKEN AWS_DEFAULT_REGION
}

s3_url() { echo "s3://$S3_BUCKET/$1?endpoint=$S3_ENDPOINT"; }

s3_object_dir() { echo "$S3_DATA/$S3_BUCKET/$1"; }

# s3_require: for tests that only make sense on S3.  Without the server
# they are skipped (exit 77), except when OB_REQUIRE_S3=1 (CI), where that
# is a failure.
s3_require() {
    s3_available && return 0
    if [ "${OB_REQUIRE_S3:-0}" = 1 ]; then
        echo "FAIL: OB_REQUIRE_S3=1 but the S3 test server is not installed (scripts/deps.sh)" >&2
        exit 1
    fi
    echo "the S3 test server is not installed (node; npm ci in tests/tools/s3server)"
    exit 77
}
