#!/usr/bin/env bash
# S3 repositories through the CLI, on a private S3 server on 127.0.0.1:
# settings and credentials from the environment or a [repo.NAME] section,
# and errors that say what to do: a wrong secret, an unknown access key,
# no credentials, a missing bucket, an unreachable endpoint, a config file
# with secrets that others can read.
. "$(dirname "$0")/lib.sh"
s3_require
on_exit s3_stop
s3_start "$T/s3"
s3_env
REPO=$(s3_url basics/repo)

src="$T/src"
mkdir -p "$src/sub"
python3 - "$src" <<'PY'
import os, random, sys
r = random.Random(5)
root = sys.argv[1]
open(root + "/big.bin", "wb").write(r.randbytes(5 * 1024 * 1024))
for i in range(50):
    open("%s/sub/f%02d" % (root, i), "wb").write(r.randbytes(r.randrange(0, 20000)))
open(root + "/name with spaces & ampersand", "w").write("x\n")
PY

info "init, backup, restore and check with credentials from the environment"
init_repo
ob --json backup files "$src" >"$T/b1.json"
ob restore files latest --target "$T/dst" >/dev/null
treecmp "$src" "$T/dst$src" || fail "restored tree differs"
ob check --read-data >/dev/null || fail "check --read-data failed"

info "wrong secret key: the credentials are rejected, the secret is not shown"
AWS_SECRET_ACCESS_KEY=not-the-right-secret-XYZ run_rc ob snapshots
[ "$RC" = 1 ] || problem "wrong secret: exit $RC, expected 1"
grep -q "credentials were rejected" "$T/err" || { cat "$T/err"; problem "wrong secret: no 'credentials were rejected'"; }
grep -q "SignatureDoesNotMatch" "$T/err" || { cat "$T/err"; problem "wrong secret: the S3 error code is not named"; }
grep -q "not-the-right-secret-XYZ" "$T/out" "$T/err" && problem "wrong secret: the secret appears in the output"

info "unknown access key ID"
AWS_ACCESS_KEY_ID=NOSUCHKEYID run_rc ob snapshots
[ "$RC" = 1 ] || problem "unknown access key: exit $RC, expected 1"
grep -q "InvalidAccessKeyId" "$T/err" || { cat "$T/err"; problem "unknown access key: code not named"; }

info "no credentials at all: a usage error naming the variables"
run_rc env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$OPSBACKUP" -r "$REPO" snapshots
[ "$RC" = 2 ] || problem "no credentials: exit $RC, expected 2"
grep -q "AWS_ACCESS_KEY_ID" "$T/err" && grep -q "AWS_SECRET_ACCESS_KEY" "$T/err" ||
    { cat "$T/err"; problem "no credentials: the variables are not named"; }

info "a bucket that does not exist is named, with what to do"
run_rc "$OPSBACKUP" -r "s3://no-such-bucket/x?endpoint=$S3_ENDPOINT" init --kdf-n 1024
[ "$RC" = 1 ] || problem "missing bucket: exit $RC, expected 1"
grep -q "no-such-bucket" "$T/err" && grep -q "create it" "$T/err" ||
    { cat "$T/err"; problem "missing bucket: message does not name it or say to create it"; }
[ -e "$S3_DATA/no-such-bucket" ] && problem "init created a bucket"

info "an endpoint where nothing listens: fails after the retry window, naming it"
dead=$(s3_free_port)
start=$(date +%s)
OPSBACKUP_S3_RETRY_SECONDS=2 run_rc "$OPSBACKUP" -r "s3://obtest/x?endpoint=http://127.0.0.1:$dead" snapshots
[ "$RC" = 1 ] || problem "dead endpoint: exit $RC, expected 1"
grep -q "127.0.0.1:$dead" "$T/err" || { cat "$T/err"; problem "dead endpoint: not named"; }
[ $(( $(date +%s) - start )) -lt 20 ] || problem "dead endpoint: retried far longer than the window"

info "settings and credentials from a [repo.NAME] section"
conf="$T/opsbackup.conf"
cat >"$conf" <<CONF
[repo.offsite]
url = s3://$S3_BUCKET/basics/repo
endpoint = $S3_ENDPOINT
region = us-east-1
path-style = true
access-key-id = $S3_ACCESS_KEY
secret-access-key = $S3_SECRET_KEY
CONF
chmod 600 "$conf"
run_rc env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$OPSBACKUP" -c "$conf" -r offsite --json snapshots
[ "$RC" = 0 ] || { cat "$T/err"; problem "config credentials: exit $RC"; }
[ "$(json_get "$T/out" 'len(j)')" = 1 ] || problem "config credentials: expected 1 snapshot"
# The config's secret wins over the environment's.
AWS_SECRET_ACCESS_KEY=wrong run_rc "$OPSBACKUP" -c "$conf" -r offsite snapshots
[ "$RC" = 0 ] || { cat "$T/err"; problem "config secret did not take precedence over the environment"; }
chmod 644 "$conf"
run_rc "$OPSBACKUP" -c "$conf" -r offsite snapshots
[ "$RC" = 2 ] || problem "world-readable config with a secret: exit $RC, expected 2"
grep -q "world-readable" "$T/err" || { cat "$T/err"; problem "world-readable config: no clear message"; }
chmod 640 "$conf"
run_rc "$OPSBACKUP" -c "$conf" -r offsite snapshots
[ "$RC" = 2 ] || problem "group-readable config with a secret: exit $RC, expected 2"
grep -q "its group" "$T/err" || { cat "$T/err"; problem "group-readable config: no clear message"; }
# Without credentials in the file, the environment's apply.
grep -v -e access-key-id -e secret-access-key "$conf" >"$conf.2"
chmod 644 "$conf.2"
run_rc "$OPSBACKUP" -c "$conf.2" -r offsite snapshots
[ "$RC" = 0 ] || { cat "$T/err"; problem "config without credentials + environment: exit $RC"; }
sed -i 's/^path-style = true/path-style = maybe/' "$conf.2"
run_rc "$OPSBACKUP" -c "$conf.2" -r offsite snapshots
[ "$RC" = 2 ] || problem "path-style = maybe: exit $RC, expected 2"

info "the server really checks signatures (an unsigned client gets nothing private)"
# Our driver always signs; this proves a wrong signature is refused by the
# server and not just by chance accepted (see tests/tools/s3server/README.md).
AWS_SECRET_ACCESS_KEY="${S3_SECRET_KEY}x" run_rc ob restore files latest --target "$T/dst2"
[ "$RC" = 1 ] || problem "a restore with a slightly wrong secret: exit $RC"
[ -e "$T/dst2$src/big.bin" ] && problem "a restore with a wrong secret wrote files"

info "throttling and server errors (503 SlowDown, 500) are retried; past the window the error names the S3 code"
# tests/tools/faultproxy.py sits in front of the server and answers the
# first requests (or all of them) with S3's throttling or error answer.
PROXY_PID=""
stop_proxy() { if [ -n "$PROXY_PID" ]; then kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; PROXY_PID=""; fi; }
on_exit stop_proxy
start_proxy() { # RULE (faultproxy.py)
    local p
    p=$(s3_free_port)
    python3 "$TOOLS/faultproxy.py" "$p" "$S3_PORT" "$1" >"$T/proxy.log" 2>&1 &
    PROXY_PID=$!
    wait_ready "$T/proxy.log" $PROXY_PID || fail "the fault proxy did not start: $(cat "$T/proxy.log")"
    PROXY_REPO="s3://$S3_BUCKET/basics/repo?endpoint=http://127.0.0.1:$p"
}
start_proxy "503@#1-4"
run_rc "$OPSBACKUP" -r "$PROXY_REPO" --json snapshots
[ "$RC" = 0 ] || { cat "$T/err"; problem "4 x 503 SlowDown were not ridden out (exit $RC)"; }
stop_proxy
start_proxy "500@#1-3"
run_rc "$OPSBACKUP" -r "$PROXY_REPO" backup files "$src"
[ "$RC" = 0 ] || { cat "$T/err"; problem "3 x 500 InternalError were not ridden out (exit $RC)"; }
stop_proxy
start_proxy "503@1"
OPSBACKUP_S3_RETRY_SECONDS=2 run_rc "$OPSBACKUP" -r "$PROXY_REPO" snapshots
[ "$RC" = 1 ] || problem "permanent 503: exit $RC, expected 1"
grep -q "HTTP 503 SlowDown: Please reduce your request rate" "$T/err" && grep -q "failed after" "$T/err" ||
    { cat "$T/err"; problem "permanent 503: the error does not give the status, S3 code and message"; }
stop_proxy

info "a request that stalls past the low-speed limit is tried again, however long it took"
# The first GET's answer is held back 6 s; the low-speed limit abandons it
# after 2 s.  The retry window (2 s) starts when that attempt has failed:
# it used to start with the attempt, so a stall as long as the window (60 s
# each by default: a connection a NAT forgot) was never tried again.
start_proxy "delay:6@GET:#1"
OPSBACKUP_S3_LOW_SPEED_SECONDS=2 OPSBACKUP_S3_RETRY_SECONDS=2 run_rc "$OPSBACKUP" -v -r "$PROXY_REPO" snapshots
[ "$RC" = 0 ] || { cat "$T/err"; problem "one stalled request failed the command (exit $RC)"; }
grep -q "attempt 1 failed" "$T/err" || problem "the stalled request was not abandoned and retried: $(cat "$T/err")"
stop_proxy
start_proxy "400token@1"
run_rc "$OPSBACKUP" -r "$PROXY_REPO" snapshots
grep -q "credentials were rejected" "$T/err" && grep -q "ExpiredToken" "$T/err" ||
    problem "an expired session token (400 ExpiredToken) is not reported as the credentials: $(cat "$T/err")"
stop_proxy
OPSBACKUP_S3_LOW_SPEED_SECONDS=0 run_rc "$OPSBACKUP" -r "$REPO" snapshots
[ "$RC" = 2 ] && grep -q "OPSBACKUP_S3_LOW_SPEED_SECONDS=0 is not a number of seconds" "$T/err" ||
    problem "OPSBACKUP_S3_LOW_SPEED_SECONDS=0: exit $RC, $(cat "$T/err")"

info "HTTPS: the certificate is verified; ca-file trusts a private CA"
s3_stop
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=opsbackup test CA" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$T/tls.key" -out "$T/tls.crt" 2>/dev/null ||
    fail "openssl could not make a test certificate"
S3_TLS_KEY="$T/tls.key" S3_TLS_CERT="$T/tls.crt" s3_start "$T/s3tls"
case "$S3_ENDPOINT" in https://*) ;; *) fail "the TLS server did not start with https" ;; esac
REPO=$(s3_url tls/repo)
run_rc ob init --kdf-n 1024
[ "$RC" != 0 ] || problem "https with an unknown CA: init succeeded (TLS not verified)"
grep -Eiq "certificate|SSL" "$T/err" && grep -q "ca-file" "$T/err" ||
    { cat "$T/err"; problem "https with an unknown CA: the error does not point at the certificate and ca-file"; }
cat >"$T/tls.conf" <<CONF
[repo.tls]
url = s3://$S3_BUCKET/tls/repo
endpoint = $S3_ENDPOINT
ca-file = $T/tls.crt
CONF
run_rc "$OPSBACKUP" -c "$T/tls.conf" -r tls init --kdf-n 1024
[ "$RC" = 0 ] || { cat "$T/err"; problem "https with ca-file: init exited $RC"; }
run_rc "$OPSBACKUP" -c "$T/tls.conf" -r tls backup files "$src"
[ "$RC" = 0 ] || { cat "$T/err"; problem "https with ca-file: backup exited $RC"; }

finish
