#!/usr/bin/env bash
# Security checks (issue #11):
#   - a database password (inside a job's conninfo) and the repository
#     password never appear in any process's argv or environment while a
#     job runs (every /proc/PID/cmdline and environ sampled throughout), nor
#     in the output, the job state or the error messages — also when the
#     connection fails;
#   - files opsbackup creates (repository, job state, report) are 0600/0700;
#   - TLS certificates are verified by default (S3 endpoint, webhook), and
#     ca-file is the way to trust a private CA;
#   - SQL identifiers are quoted: a database whose name is an injection
#     attempt backs up, verifies and restores as just a name.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
. "$(dirname "$0")/sink_lib.sh"

DBPW='Pw:sec\ret-7781-zq'
REPOPW=$(head -n1 "$OPSBACKUP_PASSWORD_FILE")
pg_start
pg_hba_prepend "local all app scram-sha-256"
pg_sql "CREATE ROLE app LOGIN CREATEDB PASSWORD '$(printf '%s' "$DBPW" | sed "s/'/''/g")'" >/dev/null
pg_sql "CREATE DATABASE secdb OWNER app" >/dev/null
PGPASSWORD="$DBPW" "$PGBIN/psql" -XAtq -U app -d secdb -c \
    "CREATE TABLE documents (id int PRIMARY KEY, body text);
     INSERT INTO documents SELECT g, repeat('x', 2000) FROM generate_series(1, 20000) g" \
    || fail "cannot use the app role with its password"
export OPSBACKUP_STATE_DIR="$T/state"
"$OPSBACKUP" -r "$T/repo" init --kdf-n 1024 >/dev/null
# libpq conninfo quoting: single quotes, backslash escapes.
conn_pw=$(printf '%s' "$DBPW" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g")
CFG="$T/opsbackup.conf"
cat >"$CFG" <<EOF
[repo.local]
url = $T/repo
password-file = $OPSBACKUP_PASSWORD_FILE

[job.db]
kind = db
dbname = user=app password='$conn_pw' dbname=secdb
keep-last = 3
verify-sql = SELECT COUNT(*) FROM documents
EOF
chmod 600 "$CFG"
unset OPSBACKUP_PASSWORD_FILE   # from the config's password-file only

info "no secret in any argv or environment while a job runs"
printf '%s\n%s\n' "$DBPW" "$REPOPW" >"$T/secrets"
cat >"$T/sampler.py" <<'EOF'
import os, sys, time
secrets = [s.encode() for s in open(sys.argv[1]).read().splitlines() if s]
stop, out = sys.argv[2], sys.argv[3]
me = os.getpid()
hits, seen = set(), {}
while not os.path.exists(stop):
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in (me, os.getppid()):
            continue
        try:
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        except OSError:
            continue
        seen[exe] = seen.get(exe, 0) + 1
        for part in ("cmdline", "environ"):
            try:
                data = open(f"/proc/{pid}/{part}", "rb").read()
            except OSError:
                continue
            for s in secrets:
                if s in data:
                    hits.add(f"{exe} (pid {pid}) has a secret in its {part}")
    time.sleep(0.005)
with open(out, "w") as f:
    for h in sorted(hits): f.write("HIT " + h + "\n")
    for exe, n in sorted(seen.items()): f.write(f"SEEN {exe} {n}\n")
EOF
python3 "$T/sampler.py" "$T/secrets" "$T/stop" "$T/sampled" &
SPID=$!
bg_track $SPID
sleep 0.3
"$OPSBACKUP" -c "$CFG" run db >"$T/run.out" 2>"$T/run.err" || { cat "$T/run.out" "$T/run.err"; fail "run db failed"; }
touch "$T/stop"
wait $SPID
while read -r kind h; do
    [ "$kind" = HIT ] && problem "$h"
done <"$T/sampled"
# The sampler must have seen the run's processes, or it proves nothing.
for exe in opsbackup pg_dump pg_restore; do
    grep -q "^SEEN $exe " "$T/sampled" || problem "the sampler never saw a $exe process"
done
if grep -rqF "$DBPW" "$T/run.out" "$T/run.err" "$T/state"; then problem "the database password is in the output or the job state"; fi
if ls /tmp/opsbackup-pgpass.* >/dev/null 2>&1; then problem "a temporary password file was left in /tmp"; fi

info "a failing connection does not print the password"
sed -i "s|dbname=secdb|dbname=secdb host=$PGHOST port=1|" "$CFG"
expect_code 1 "$OPSBACKUP" -c "$CFG" run db
if grep -qF "$DBPW" "$T/out" "$T/err"; then problem "the password appears in a connection error"; fi
if [ -f "${OPSBACKUP_ERROR_LOG:-}" ] && grep -qF "$DBPW" "$OPSBACKUP_ERROR_LOG"; then problem "the password is in an error message"; fi
sed -i "s| host=$PGHOST port=1||" "$CFG"

info "files opsbackup creates are private"
"$OPSBACKUP" -c "$CFG" report --html "$T/report.html" >/dev/null || true
bad=$(find "$T/repo" "$T/state" "$T/report.html" \( -type f -perm /077 \) -o \( -type d -perm /077 \) | head -5)
[ -z "$bad" ] || problem "group/other can read: $bad"

info "TLS: certificates verified by default"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$T/tls.key" -out "$T/tls.crt" 2>/dev/null \
    || fail "openssl cannot make a test certificate"
cat >"$T/https.py" <<'EOF'
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_any(self):
        self.send_response(403); self.send_header("Content-Length", "0"); self.end_headers()
    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_any
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
open(sys.argv[3], "w").write(str(s.server_address[1]))
s.serve_forever()
EOF
python3 "$T/https.py" "$T/tls.crt" "$T/tls.key" "$T/https.port" 2>/dev/null &
bg_track $!
for _ in $(seq 1 50); do [ -s "$T/https.port" ] && break; sleep 0.1; done
HPORT=$(cat "$T/https.port")
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
cat >"$T/tls.conf" <<EOF
[repo.s3]
url = s3://bucket/prefix
endpoint = https://127.0.0.1:$HPORT
region = us-east-1
path-style = true
EOF
chmod 600 "$T/tls.conf"
OPSBACKUP_S3_RETRY_SECONDS=1 run_rc "$OPSBACKUP" -c "$T/tls.conf" -r s3 snapshots
[ "$RC" != 0 ] || problem "a self-signed S3 endpoint was accepted"
grep -qi 'certificate' "$T/err" || { cat "$T/err"; problem "a self-signed S3 endpoint was not refused for its certificate"; }
echo "ca-file = $T/tls.crt" >>"$T/tls.conf"
OPSBACKUP_S3_RETRY_SECONDS=1 run_rc "$OPSBACKUP" -c "$T/tls.conf" -r s3 snapshots
if grep -qi 'certificate' "$T/err"; then cat "$T/err"; problem "ca-file did not make the endpoint trusted"; fi
cat >"$T/hook.conf" <<EOF
[notify]
webhook = https://127.0.0.1:$HPORT/hook
EOF
chmod 600 "$T/hook.conf"
expect_code 1 "$OPSBACKUP" -c "$T/hook.conf" notify test
grep -qi 'certificate' "$T/out" "$T/err" || problem "a self-signed webhook was not refused for its certificate"

info "SQL identifiers are quoted"
WEIRD="we\"ird'; DROP TABLE documents; --"
pg_sql "CREATE DATABASE \"we\"\"ird'; DROP TABLE documents; --\" OWNER app" >/dev/null
"$PGBIN/psql" -XAtq -d "$WEIRD" -c "CREATE TABLE t (x int); INSERT INTO t VALUES (1),(2),(3)" >/dev/null
export OPSBACKUP_PASSWORD_FILE="$T/password"
esc=$(printf '%s' "$WEIRD" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g")
expect_code 0 "$OPSBACKUP" -r "$T/repo" backup db --set weird --dbname "dbname='$esc'"
expect_code 0 "$OPSBACKUP" -r "$T/repo" verify db latest --set weird --dbname "dbname='$esc'"
expect_code 0 "$OPSBACKUP" -r "$T/repo" restore db latest --set weird --target-db "re\"stored'; --"
[ "$("$PGBIN/psql" -XAtq -d "re\"stored'; --" -c 'SELECT count(*) FROM t')" = 3 ] || problem "the weird database did not restore"
[ "$(PGPASSWORD="$DBPW" "$PGBIN/psql" -XAtq -U app -d secdb -c 'SELECT count(*) FROM documents')" = 20000 ] \
    || problem "an identifier was executed as SQL"

finish
