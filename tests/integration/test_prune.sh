#!/usr/bin/env bash
# prune: after forgetting most snapshots the repository shrinks to close to
# a fresh repository holding only the kept ones, the kept snapshots restore
# byte-identical and check --read-data passes; --dry-run touches nothing;
# old temporaries of killed writers go, fresh ones stay; prune killed with
# SIGKILL at several points leaves a repository that passes check
# --read-data and the next prune finishes the job; prune beside a running
# backup (which holds a shared lease and has deduplicated against data no
# snapshot uses any more) defers and that backup loses nothing.
. "$(dirname "$0")/lib.sh"
export TZ=UTC

# mk N: source tree s.N — a shared file (same in every tree),
# a unique random file, and small files, some shared with tree N-1
mk() {
    python3 - "$T/s.$1" "$1" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root + "/d", exist_ok=True)
open(root + "/shared.bin", "wb").write(random.Random(1).randbytes(3 * 1024 * 1024))
open(root + "/unique.bin", "wb").write(random.Random(1000 + n).randbytes(2 * 1024 * 1024 + n))
for i in range(20):
    # file i changes every (i % 4 + 1) snapshots
    gen = n // (i % 4 + 1)
    open("%s/d/f%02d.txt" % (root, i), "wb").write(random.Random(gen * 100 + i).randbytes(3000 + i))
EOF
}
sizeof() { find "$1" -type f ! -name '.*' ! -path '*/locks/*' -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
restore_ok() {   # restore_ok ID N: snapshot ID restores s.N identical
    rm -rf "$T/r"
    ob restore files "$1" --target "$T/r" >/dev/null || { problem "restore of ${1:0:8} (s.$2) failed"; return; }
    treecmp "$T/s.$2" "$T/r$T/s.$2" >/dev/null 2>&1 || problem "snapshot ${1:0:8} does not restore s.$2 identical"
}
check_ok() {   # check_ok WHEN
    run_rc ob check --read-data
    [ "$RC" = 0 ] || { cat "$T/out" "$T/err"; problem "$1: check --read-data exited $RC"; }
}

init_repo
for n in 1 2 3 4 5 6 7 8; do
    mk $n
    ob --json backup files --set app --time "2024-03-0$n 10:00:00" "$T/s.$n" >"$T/b$n.json"
    echo "$(json_get "$T/b$n.json" 'j["id"]')" >"$T/id.$n"
done
size0=$(sizeof "$REPO")

info "--dry-run changes nothing"
before=$(repo_fingerprint)
ob --json forget --keep-last 2 --prune --dry-run >"$T/dry.json"
[ "$(json_get "$T/dry.json" 'j["removed"]')" = 6 ] || problem "dry run would remove $(json_get "$T/dry.json" 'j["removed"]') snapshots, not 6"
planned=$(json_get "$T/dry.json" 'j["prune"]["bytes_freed"]')
[ "$planned" -gt $((10 * 1024 * 1024)) ] || problem "dry run plans to free only $planned bytes"
ob prune --dry-run >/dev/null
[ "$(repo_fingerprint)" = "$before" ] || problem "a dry run changed the repository"

info "temporaries: old ones go, fresh ones stay"
mkdir -p "$REPO/data/00"
head -c 1000 /dev/urandom >"$REPO/data/00/.tmp-00000000000000aa"
head -c 1000 /dev/urandom >"$REPO/index/.tmp-00000000000000bb"
touch -d '3 hours ago' "$REPO/data/00/.tmp-00000000000000aa" "$REPO/index/.tmp-00000000000000bb"
head -c 1000 /dev/urandom >"$REPO/data/00/.tmp-00000000000000cc"

info "forget --keep-last 2 --prune"
ob --json forget --keep-last 2 --prune >"$T/fp.json"
[ "$(json_get "$T/fp.json" 'j["prune"]["deferred"]')" = False ] || problem "prune deferred with nobody else in the repository"
[ "$(json_get "$T/fp.json" 'j["prune"]["tmp_removed"]')" = 2 ] || problem "removed $(json_get "$T/fp.json" 'j["prune"]["tmp_removed"]') old temporaries, not 2"
[ -e "$REPO/data/00/.tmp-00000000000000cc" ] || problem "a fresh temporary file was removed"
[ -e "$REPO/data/00/.tmp-00000000000000aa" ] && problem "an old temporary file was left"
rm -f "$REPO/data/00/.tmp-00000000000000cc"
freed=$(json_get "$T/fp.json" 'j["prune"]["bytes_freed"]')
size1=$(sizeof "$REPO")
info "repository $size0 -> $size1 bytes (prune says it freed $freed, planned $planned)"
[ "$size1" -lt "$size0" ] || problem "the repository did not get smaller"
check_ok "after forget --prune"
grep -q '^warning' "$T/out" && { cat "$T/out"; problem "check warns after prune"; }
restore_ok "$(cat "$T/id.7")" 7
restore_ok "$(cat "$T/id.8")" 8

info "close to a fresh repository holding only the kept snapshots"
fresh="$T/fresh"
"$OPSBACKUP" -r "$fresh" init --kdf-n 1024 >/dev/null
"$OPSBACKUP" -r "$fresh" backup files "$T/s.7" >/dev/null
"$OPSBACKUP" -r "$fresh" backup files "$T/s.8" >/dev/null
sizef=$(sizeof "$fresh")
info "pruned $size1 bytes, fresh $sizef bytes"
[ "$size1" -le $((sizef * 110 / 100 + 65536)) ] || problem "pruned repository ($size1) is not within 10% of a fresh one ($sizef)"

info "prune again: nothing to do"
ob --json prune >"$T/p2.json"
[ "$(json_get "$T/p2.json" 'j["packs_deleted"] + j["packs_repacked"]')" = 0 ] || problem "a second prune still found work"

info "SIGKILL during prune, at several points"
# killer.py MODE: run one prune and SIGKILL it at MODE
#   delay:S     after S seconds
#   tmp:DIR     when a new temporary object appears under REPO/DIR
#   fewer:DIR   when the first object under REPO/DIR is deleted
cat >"$T/killer.py" <<'EOF'
import os, signal, subprocess, sys, time
mode, ob, repo = sys.argv[1:4]
def objs(top, tmp):
    top = os.path.join(repo, top)
    return {os.path.join(dp, n) for dp, dns, fns in os.walk(top) for n in fns
            if n.startswith(".tmp-") == tmp}
kind, arg = mode.split(":", 1)
old = objs(arg, kind == "tmp") if kind != "delay" else set()
p = subprocess.Popen([ob, "-r", repo, "prune"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
if kind == "delay":
    try:
        p.wait(timeout=float(arg))
    except subprocess.TimeoutExpired:
        pass
else:
    deadline = time.time() + 60
    while p.poll() is None and time.time() < deadline:
        now = objs(arg, kind == "tmp")
        if (kind == "tmp" and now - old) or (kind == "fewer" and old - now):
            break
if p.poll() is None:
    p.send_signal(signal.SIGKILL)
    p.wait()
    print("killed")
else:
    print("finished %d" % p.returncode)
    sys.stderr.write(p.stderr.read().decode())
EOF
n=8
for pt in tmp:index tmp:data fewer:index fewer:data delay:0.05 delay:0.15 delay:0.3 delay:0.6; do
    # new garbage for this round: two more snapshots, then forget all but 2
    for k in 1 2; do
        n=$((n + 1)); mk $n
        ob --json backup files --set app --time "$(printf "2024-04-%02d 10:00:00" $n)" "$T/s.$n" >"$T/b$n.json"
        json_get "$T/b$n.json" 'j["id"]' >"$T/id.$n"
    done
    ob forget --keep-last 2 >/dev/null
    outcome=$(python3 "$T/killer.py" "$pt" "$OPSBACKUP" "$REPO")
    info "kill at $pt: $outcome"
    case "$outcome" in killed|"finished 0") ;; *) problem "$pt: prune failed on its own: $outcome" ;; esac
    check_ok "after a prune killed at $pt"
    restore_ok "$(cat "$T/id.$n")" $n
    restore_ok "$(cat "$T/id.$((n - 1))")" $((n - 1))
done
info "the next prune finishes the job"
ob prune >/dev/null || problem "prune after the kills failed"
ob --json prune >"$T/p3.json"
[ "$(json_get "$T/p3.json" 'j["packs_deleted"] + j["packs_repacked"] + j["packs_unindexed"]')" = 0 ] ||
    problem "prune after prune still found work: $(cat "$T/p3.json")"
check_ok "after the final prune"
grep -q '^warning' "$T/out" && { cat "$T/out"; problem "check warns after the final prune"; }
restore_ok "$(cat "$T/id.$n")" $n

info "prune beside a running backup"
# The backup deduplicates against data no snapshot uses any more: s.1 is
# stored again under set "old" and forgotten (not pruned), so its unique
# file is unused but still in the index when the backup starts.  The
# backup pauses (tests/tools/pauselist.c) when it opens its last file,
# after it has looked up a.bin, and prune runs meanwhile.
ob --json backup files --set old "$T/s.1" >"$T/old.json"
ob forget --set old --keep-tag none=none >/dev/null   # removes it: nothing has that tag
mkdir -p "$T/live"
cp "$T/s.1/unique.bin" "$T/live/a.bin"                # deduplicates against unused data
head -c 300000 /dev/urandom >"$T/live/b.bin"
echo pause >"$T/live/z.txt"
${CC:-cc} -shared -fPIC -o "$T/pauselist.so" "$TOOLS/pauselist.c" -ldl || fail "cannot build pauselist.so"
PAUSELIST_SUFFIX=/live/z.txt PAUSELIST_MARK="$T/paused" PAUSELIST_GO="$T/go" \
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" LD_PRELOAD="$T/pauselist.so" \
    "$OPSBACKUP" -r "$REPO" --json backup files --set live "$T/live" >"$T/live.json" 2>"$T/live.err" &
bpid=$!
for _ in $(seq 600); do [ -e "$T/paused" ] && break; kill -0 $bpid 2>/dev/null || break; sleep 0.05; done
[ -e "$T/paused" ] || { touch "$T/go"; wait $bpid || true; cat "$T/live.err"; fail "the backup never paused"; }
data_before=$( (cd "$REPO" && find data index -type f ! -name '.*' | sort | xargs sha256sum) )
run_rc ob --json prune
[ "$RC" = 0 ] || { cat "$T/err"; problem "prune beside a backup exited $RC"; }
[ "$(json_get "$T/out" 'j["deferred"]')" = True ] || problem "prune beside a backup did not defer"
[ "$(json_get "$T/out" 'j["packs_deleted"] + j["packs_repacked"]')" -gt 0 ] || problem "prune beside a backup found nothing to defer (test setup)"
data_after=$( (cd "$REPO" && find data index -type f ! -name '.*' | sort | xargs sha256sum) )
[ "$data_before" = "$data_after" ] || problem "a deferred prune changed packs or index files"
ob prune >"$T/human.out" 2>&1 || true
assert_grep "deferred" "$T/human.out"
touch "$T/go"
brc=0
wait $bpid || brc=$?
[ "$brc" = 0 ] || { cat "$T/live.err"; fail "the backup beside prune exited $brc"; }
live=$(json_get "$T/live.json" 'j["id"]')
check_ok "after the backup beside prune"
rm -rf "$T/r"; ob restore files "$live" --target "$T/r" >/dev/null || problem "the backup made beside prune does not restore"
treecmp "$T/live" "$T/r$T/live" >/dev/null || problem "the backup made beside prune does not restore identical"
info "now nobody else is there: prune frees the space"
ob --json prune >"$T/p4.json"
[ "$(json_get "$T/p4.json" 'j["deferred"]')" = False ] || problem "prune deferred after the backup ended"
check_ok "after the prune that followed"
rm -rf "$T/r"; ob restore files "$live" --target "$T/r" >/dev/null || problem "the live backup does not restore after prune"
treecmp "$T/live" "$T/r$T/live" >/dev/null || problem "the live backup does not restore identical after prune"
[ -z "$(ls "$REPO/locks" 2>/dev/null)" ] || problem "locks left behind: $(ls "$REPO/locks")"

info "a blob stored twice, one copy in a truncated pack: prune deletes nothing"
# Two backups at once each store a new blob (here: the second one does not
# see the first's index).  Whichever copy prune placed the blob in, a
# truncated pack must stop it: placing the blob there and deleting the
# intact copy's pack as unused lost the file (found in review).
REPO="$T/dup"
init_repo
mkdir -p "$T/da" "$T/db" "$T/stash"
head -c 200000 /dev/urandom >"$T/da/f"
cp "$T/da/f" "$T/db/f"
ob backup files "$T/da" >/dev/null
first=$(cd "$REPO" && find data -type f ! -name '.*' | sort)
mv "$REPO"/index/* "$T/stash/"
ob backup files "$T/db" >/dev/null
mv "$T/stash"/* "$REPO/index/"
# The data pack of each backup is the larger of its two packs.
d1=$(cd "$REPO" && ls -S $first | head -1)
d2=$(cd "$REPO" && find data -type f ! -name '.*' | sort | grep -vxF "$first" | xargs ls -S | head -1)
[ -n "$d1" ] && [ -n "$d2" ] && [ "$d1" != "$d2" ] || fail "test setup: data packs '$d1' '$d2'"
for victim in "$d1" "$d2"; do
    cp "$REPO/$victim" "$T/victim.bak"
    truncate -s 1000 "$REPO/$victim"
    before=$(repo_fingerprint)
    run_rc ob prune
    [ "$RC" = 1 ] || problem "prune with the truncated pack $victim exited $RC, not 1"
    assert_grep "truncated" "$T/err"
    [ "$(repo_fingerprint)" = "$before" ] || problem "prune changed a repository with a truncated pack"
    cp "$T/victim.bak" "$REPO/$victim"
done
check_ok "after the truncated packs were put back"

finish
