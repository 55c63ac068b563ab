#!/usr/bin/env bash
# S3 answers cut short with nothing at the HTTP level to say so (the body
# stops and the connection closes; no Content-Length): a proxy on
# 127.0.0.1 (tests/tools/cutproxy.py) in front of the S3 server.
#   (a) a listing cut after its first entry is refused, not taken for the
#       whole listing: `snapshots` fails instead of showing one of two, and
#       prune fails and deletes nothing (it used to delete the packs of the
#       snapshot it did not see; found in review);
#   (b) a whole-object GET cut in half is refused as cut short, not handed
#       on as the object, once asking again has not helped; a GET cut once
#       (whole object, or a range whose 206 keeps its Content-Range) is
#       asked again and the command succeeds; it was refused at once, a
#       range as a "truncated" object;
#   (b2) bodies sent chunked (no Content-Length, the end marked by the
#       protocol) are whole: they were all refused as cut short, so the
#       repository could not even be opened;
#   (b3) a DeleteObjects answer cut short (or an error document) is not
#       taken for "deleted": prune asks again; it used to report success
#       with nothing deleted; an empty answer written <DeleteResult …/> is
#       whole;
#   (c) PUT answers as S3 gives them for SSE-KMS buckets (an ETag that is
#       not the MD5, with x-amz-server-side-encryption: aws:kms) are checked
#       by size: every upload used to fail there.
. "$(dirname "$0")/lib.sh"
s3_require
on_exit s3_stop
s3_start "$T/s3"
s3_env
REPO=$(s3_url cut/repo)
init_repo
mkdir -p "$T/a" "$T/b"
head -c 3000000 /dev/urandom >"$T/a/fa"
head -c 3000000 /dev/urandom >"$T/b/fb"
# One set: without one, the two directories would be two retention groups.
ob backup files --set cut "$T/a" >/dev/null
ob backup files --set cut "$T/b" >/dev/null
ob forget --set cut --keep-last 1 >/dev/null # one snapshot goes: prune has packs to delete
ob backup files --set cut "$T/a" >/dev/null  # and back: two snapshots again
expect_code 0 ob snapshots --json
[ "$(json_get "$T/out" 'len(j)')" = 2 ] || fail "test setup: $(json_get "$T/out" 'len(j)') snapshots, not 2"

PX_PID=""
stop_proxy() {
    if [ -n "$PX_PID" ]; then
        kill "$PX_PID" 2>/dev/null || true
        wait "$PX_PID" 2>/dev/null || true
    fi
    PX_PID=""
}
on_exit stop_proxy
start_proxy() { # MODE PATTERN
    stop_proxy
    PX_PORT=$(s3_free_port)
    python3 "$TOOLS/cutproxy.py" "$PX_PORT" "$S3_PORT" "$1" "$2" >"$T/proxy.out" 2>"$T/proxy.err" &
    PX_PID=$!
    for _ in $(seq 1 100); do grep -q "^ready" "$T/proxy.out" 2>/dev/null && return; sleep 0.05; done
    fail "cutproxy did not start: $(cat "$T/proxy.err")"
}
DIRECT=$REPO
# The repository's objects as the server keeps them (names and contents).
objects() { (cd "$(s3_object_dir cut/repo)" && find . -type f -name '*._S3rver_object' -print0 | sort -z | xargs -0 sha256sum); }
PROXIED="s3://$S3_BUCKET/cut/repo?endpoint=http://127.0.0.1:"

info "a listing of snapshots/ cut after its first entry"
before=$(objects)
start_proxy list snapshots
REPO="$PROXIED$PX_PORT"
expect_code 1 ob snapshots
assert_grep "incomplete" "$T/err"
grep -q "cutproxy: cut" "$T/proxy.err" || fail "test setup: the proxy cut nothing"
run_rc ob prune
[ "$RC" != 0 ] || problem "prune over a cut listing succeeded"
REPO=$DIRECT
stop_proxy
[ "$(objects)" = "$before" ] || problem "prune over a cut listing changed the repository"
expect_code 0 ob check --read-data

info "a whole-object GET of a snapshot cut in half, every time"
start_proxy get /snapshots/
REPO="$PROXIED$PX_PORT"
OPSBACKUP_S3_RETRY_SECONDS=2 run_rc ob snapshots
[ "$RC" != 0 ] || problem "snapshots read a snapshot object cut in half"
assert_grep "cut short" "$T/err"
assert_grep "failed after" "$T/err"
REPO=$DIRECT
stop_proxy
expect_code 0 ob check --read-data

info "a whole-object GET cut once: asked again"
start_proxy get1 /snapshots/
REPO="$PROXIED$PX_PORT"
expect_code 0 ob --json snapshots
[ "$(json_get "$T/out" 'len(j)')" = 2 ] || problem "snapshots after one cut GET: $(cat "$T/out")"
grep -q "cutproxy: cut" "$T/proxy.err" || fail "test setup: the proxy cut nothing"
REPO=$DIRECT
stop_proxy

info "a ranged GET of a pack cut once (206 with its Content-Range): asked again"
start_proxy get1 /data/
REPO="$PROXIED$PX_PORT"
expect_code 0 ob restore files latest --set cut --target "$T/r1"
grep -q "cutproxy: cut GET /[^ ]*/data/" "$T/proxy.err" || fail "test setup: the proxy cut no pack read"
cmp -s "$T/a/fa" "$T/r1$T/a/fa" || problem "the file restored through a cut read differs"
REPO=$DIRECT
stop_proxy

info "every GET body chunked, without Content-Length"
start_proxy chunked -
REPO="$PROXIED$PX_PORT"
expect_code 0 ob --json snapshots
[ "$(json_get "$T/out" 'len(j)')" = 2 ] || problem "snapshots over chunked answers: $(cat "$T/out")"
expect_code 0 ob restore files latest --set cut --target "$T/r2"
cmp -s "$T/a/fa" "$T/r2$T/a/fa" || problem "the file restored over chunked answers differs"
expect_code 0 ob check --read-data
REPO=$DIRECT
stop_proxy

info "an SSE-KMS bucket: the ETag is not the MD5, the upload is checked by size"
start_proxy kms -
REPO="$PROXIED$PX_PORT"
mkdir -p "$T/c"
head -c 500000 /dev/urandom >"$T/c/fc"
expect_code 0 ob backup files "$T/c"
REPO=$DIRECT
stop_proxy
expect_code 0 ob check --read-data
expect_code 0 ob restore files latest --target "$T/rc"
cmp -s "$T/c/fc" "$T/rc$T/c/fc" || problem "the file backed up through SSE-KMS answers differs"

info "prune: its first DeleteObjects answer cut (nothing deleted): asked again"
ob forget --set cut --keep-last 1 >/dev/null
start_proxy delete1 delete
REPO="$PROXIED$PX_PORT"
expect_code 0 ob prune
grep -q "cutproxy: cut POST" "$T/proxy.err" || fail "test setup: the proxy cut no delete"
REPO=$DIRECT
stop_proxy
after=$(objects)
# What prune left to do, it did not do: a second prune must find nothing.
expect_code 0 ob prune
[ "$(objects)" = "$after" ] || problem "prune through a cut DeleteObjects answer left objects behind"
expect_code 0 ob check --read-data

info "prune: DeleteObjects answered with an empty root that closes itself"
mkdir -p "$T/d"
head -c 2000000 /dev/urandom >"$T/d/fd"
ob backup files --set cut "$T/d" >/dev/null
ob forget --set cut --keep-last 1 >/dev/null
start_proxy delete-selfclosed delete
REPO="$PROXIED$PX_PORT"
expect_code 0 ob prune
grep -q "cutproxy: self-closed POST" "$T/proxy.err" || fail "test setup: the proxy rewrote no delete answer"
REPO=$DIRECT
stop_proxy
expect_code 0 ob check --read-data

finish
