#!/usr/bin/env bash
# Crash safety: `backup files` killed with SIGKILL at many points (fixed
# delays, delays from a seeded sequence, and the moment a pack, an index
# file or a snapshot is being written) never damages the repository:
# afterwards `check` passes (unindexed packs are only warnings), the first
# snapshot still restores byte-identical, every listed snapshot is complete
# and restores, the dead process's lock does not block anyone, and a final
# normal backup succeeds and restores identical.
. "$(dirname "$0")/lib.sh"

src="$T/src"
churn="$T/churn"
python3 "$TOOLS/mktree.py" "$src" --seed 11 --small-files 2000 --big-mb 40 2>/dev/null
mkdir -p "$src/extra" "$churn"
python3 - "$src/extra" <<'EOF'
import random, sys
r = random.Random(77)
for i, size in enumerate((1, 700 * 1024, 2 * 1024 * 1024, 5 * 1024 * 1024 + 3)):
    open("%s/random-%d.bin" % (sys.argv[1], i), "wb").write(r.randbytes(size))
EOF
init_repo

info "first good snapshot"
ob --json backup files "$src" >"$T/s1.json"
s1=$(json_get "$T/s1.json" 'j["id"]')
ob restore files "$s1" --target "$T/r0" >/dev/null
treecmp "$src" "$T/r0$src" || fail "the first snapshot does not restore identical before any kill"
rm -rf "$T/r0"
# Every object that exists now is immutable: it must survive every kill
# byte for byte.
(cd "$REPO" && find . -type f ! -path './locks/*' ! -name '.*' -print0 | sort -z | xargs -0 sha256sum) >"$T/base.sums"

# killer.py MODE OUT: run one `backup files $src $churn`, SIGKILL it at MODE
#   delay:S   after S seconds
#   tmp:DIR   the first moment a temporary object appears under REPO/DIR
#             (a pack, index file or snapshot being written)
# and print "killed" or "finished RC".
cat >"$T/killer.py" <<'EOF'
import os, signal, subprocess, sys, time
mode, out, ob, repo = sys.argv[1:5]
paths = sys.argv[5:]
with open(out, "wb") as o, open(out + ".err", "wb") as e:
    p = subprocess.Popen([ob, "-r", repo, "backup", "files"] + paths, stdout=o, stderr=e)
    kind, arg = mode.split(":", 1)
    if kind == "delay":
        try:
            p.wait(timeout=float(arg))
        except subprocess.TimeoutExpired:
            pass
    else:
        # temporaries left by earlier kills do not count: only new ones
        top = os.path.join(repo, arg)
        def tmps():
            return {os.path.join(dp, n) for dp, dns, fns in os.walk(top)
                    for n in fns if n.startswith(".tmp-")}
        old = tmps()
        deadline = time.time() + 30
        while p.poll() is None and time.time() < deadline:
            if tmps() - old:
                break
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        p.wait()
        print("killed")
    else:
        print("finished %d" % p.returncode)
EOF

kill_backup() {   # kill_backup MODE OUT: as killer.py, delays without Python
    local mode=$1 out=$2
    case "$mode" in
    delay:*)
        "$OPSBACKUP" -r "$REPO" backup files "$src" "$churn" >"$out" 2>"$out.err" &
        local pid=$! rc=0
        sleep "${mode#delay:}"
        if kill -9 $pid 2>/dev/null; then
            wait $pid 2>/dev/null || true
            echo killed
        else
            wait $pid || rc=$?
            echo "finished $rc"
        fi
        ;;
    *) python3 "$T/killer.py" "$mode" "$out" "$OPSBACKUP" "$REPO" "$src" "$churn" ;;
    esac
}

# the churn file changes before every attempt, so each backup stores new
# data (about two packs); its checksums say which versions are legitimate
# (AES-CTR keyed by N: fast, deterministic pseudo-random bytes)
newchurn() {
    local key
    key=$(printf '%032x' "$1")
    if command -v openssl >/dev/null; then
        openssl enc -aes-128-ctr -nosalt -K "$key" -iv 00000000000000000000000000000000 \
            -in /dev/zero 2>/dev/null | head -c $((20 * 1024 * 1024 + $1)) >"$churn/data.bin" || true
    else
        head -c $((20 * 1024 * 1024 + $1)) /dev/urandom >"$churn/data.bin"
    fi
    [ "$(stat -c %s "$churn/data.bin")" = $((20 * 1024 * 1024 + $1)) ] || fail "could not write the churn file"
    sha256sum <"$churn/data.bin" | cut -d' ' -f1 >>"$T/churn.sums"
}

points="delay:0.05 delay:0.1 delay:0.2 delay:0.4 delay:0.8"
points="$points $(python3 -c 'import random; r=random.Random(2026); print(" ".join("delay:%.3f" % r.uniform(0.02, 1.0) for _ in range(1)))')"
points="$points tmp:data tmp:index tmp:snapshots"
seen="$s1"
n=0
for pt in $points; do
    n=$((n + 1))
    newchurn $n
    outcome=$(kill_backup "$pt" "$T/kill$n.out")
    info "kill point $n ($pt): $outcome; $(find "$REPO" -name '.tmp-*' | wc -l) temporary files left"
    case "$outcome" in
    killed) ;;
    "finished 0") ;;
    *) cat "$T/kill$n.out.err"; problem "$pt: the backup exited on its own with an error: $outcome" ;;
    esac

    run_rc ob check
    [ "$RC" = 0 ] || { cat "$T/out" "$T/err"; problem "$pt: check exited $RC after the kill"; }
    grep -q '^error' "$T/err" && { cat "$T/err"; problem "$pt: check reported errors"; }
    [ -z "$(ls "$REPO/locks" 2>/dev/null)" ] ||
        problem "$pt: the killed backup's lock is still there after check: $(ls "$REPO/locks")"

    (cd "$REPO" && sha256sum --quiet -c "$T/base.sums") >"$T/sums.out" 2>&1 ||
        { cat "$T/sums.out"; problem "$pt: objects of the first snapshot changed or vanished"; }

    # a fresh target every time; old ones are removed in the background
    if ob restore files "$s1" --target "$T/r1.$n" >/dev/null; then
        treecmp "$src" "$T/r1.$n$src" >/dev/null || problem "$pt: the first snapshot no longer restores identical"
    else
        problem "$pt: the first snapshot no longer restores"
    fi
    rm -rf "$T/r1.$n" &

    # every listed snapshot is complete: restore each new one once
    ob --json snapshots >"$T/snaps.json" || { problem "$pt: snapshots fails"; continue; }
    for id in $(grep -o '"id": *"[0-9a-f]*"' "$T/snaps.json" | cut -d'"' -f4); do
        case " $seen " in *" $id "*) continue ;; esac
        seen="$seen $id"
        info "  new complete snapshot ${id:0:8}: restoring it"
        rn="$T/rn.${id:0:8}"
        if ! ob restore files "$id" --target "$rn" >/dev/null; then
            problem "$pt: listed snapshot ${id:0:8} does not restore"
            continue
        fi
        treecmp "$src" "$rn$src" >/dev/null || problem "$pt: snapshot ${id:0:8}: $src differs"
        sum=$(sha256sum <"$rn$churn/data.bin" | cut -d' ' -f1)
        grep -qx "$sum" "$T/churn.sums" || problem "$pt: snapshot ${id:0:8}: churn/data.bin is no version that ever existed"
        rm -rf "$rn" &
    done
done

wait   # background removals

info "a stale lock of a dead process on this host does not block anyone"
# the killed backups' locks were removed by check above (temporaries of
# interrupted lock writes are not locks); leave one of a
# dead pid through an interrupted backup and go straight to a backup
newchurn 100
outcome=$(python3 "$T/killer.py" tmp:data "$T/last.out" "$OPSBACKUP" "$REPO" "$src" "$churn")
nlocks=$(ls "$REPO/locks" 2>/dev/null | wc -l)
echo "backup $outcome while writing a pack; it left $nlocks lock(s)"
if [ "$outcome" = killed ]; then
    [ "$nlocks" -ge 1 ] || problem "a backup killed while writing a pack left no lock (was it locked at all?)"
fi

info "a normal backup after all the kills"
newchurn 101
run_rc ob --json backup files "$src" "$churn"
[ "$RC" = 0 ] || { cat "$T/err"; fail "the backup after the kills failed (exit $RC)"; }
cp "$T/out" "$T/final.json"
final=$(json_get "$T/final.json" 'j["id"]')
ob restore files "$final" --target "$T/rf" >/dev/null || fail "the final snapshot does not restore"
treecmp "$src" "$T/rf$src" || problem "the final snapshot: $src differs"
cmp -s "$churn/data.bin" "$T/rf$churn/data.bin" || problem "the final snapshot: churn/data.bin differs"
[ -z "$(ls "$REPO/locks" 2>/dev/null)" ] || problem "locks remain after the final backup: $(ls "$REPO/locks")"
run_rc ob check --read-data
[ "$RC" = 0 ] || { cat "$T/out" "$T/err"; problem "check --read-data exited $RC at the end"; }
grep -q '^error' "$T/err" && problem "check --read-data reported errors at the end"

finish
