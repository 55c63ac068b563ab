# bench/scenario_scale.sh — scenario S: the "Scale" target of issue #10.
# Sourced by bench/run.sh (BENCH_SCENARIOS=S; not in the default list: the
# 10-million-blob repository and the million-file tree take ~15 minutes),
# or run on its own with an existing build:
#
#   BUILD=/tmp/build bash bench/scenario_scale.sh     # BUILD has opsbackup
#
# (1) Index memory per blob.  scale_gen (bench/scale_gen.c) fills a
#     repository with N synthetic 16-byte blobs through the library's own
#     writer; then `backup files` of a 100-file tree (50 files whose
#     contents are blobs of the repository, so dedup lookups hit, and 50
#     new) runs into it and into an empty repository.
#     bytes/blob = (max RSS with N blobs - max RSS empty) / N.
# (2) Many small files.  `backup files` of trees of F tiny files (distinct
#     contents, 1000 per directory) into empty repositories; the growth of
#     max RSS from the smallest F, minus the index of the new blobs, is what
#     grows per file.
#
# Environment: SCALE_BLOBS="1000000 10000000"  SCALE_FILES="100000 300000 1000000"
# Output: $OUT/scale.tsv (raw) and $OUT/scale.md (the table and figures);
# the logs in $LOGS/S-*.log.  Work files in $WORK/S-* (removed at the end
# unless BENCH_KEEP=1; the generated blob repositories are kept and reused
# while $WORK/S-blobs-N/.scale_gen_done exists, as generating 10 million
# blobs takes ~3 minutes).

: "${SCALE_BLOBS:=1000000 10000000}" "${SCALE_FILES:=100000 300000 1000000}"

s_log() { printf '%s bench: S: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# s_rss NAME CMD... -> runs CMD under /usr/bin/time, appends a row to
# scale.tsv, prints the max RSS in KiB.  Exits the scenario on failure.
s_rss() {
    local name=$1
    shift
    local logf="$LOGS/S-$name.log" tf="$LOGS/.time.S.$$"
    {
        printf '# %q ' "$@"
        echo
    } >"$logf"
    if ! /usr/bin/time -f '%e %U %S %M' -o "$tf" -- "$@" >>"$logf" 2>&1; then
        s_log "$name failed, see $logf"
        return 1
    fi
    local wall user sys rss
    read -r wall user sys rss < <(tail -n 1 "$tf")
    rm -f "$tf"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$wall" "$user" "$sys" "$rss" >>"$OUT/scale.tsv"
    s_log "$name: wall ${wall}s rss ${rss} KiB"
    echo "$rss"
}

s_init() { # dir
    rm -rf "$1"
    "$OB" -r "$1" init --kdf-n 1024 --password-file "$PWFILE" >/dev/null
}

# The 100-file tree: even files hold blob i*7919 mod N of the generated
# repositories ("b%014d\n", 16 bytes: a dedup hit), odd files new content
# (unique per run so every measured backup adds the same 50 blobs).
s_small_tree() { # dir nblobs
    local d=$1 n=$2 i nonce
    nonce=$(date +%s%N)
    rm -rf "$d"
    mkdir -p "$d"
    for ((i = 0; i < 100; i++)); do
        if ((i % 2 == 0)); then
            printf 'b%014d\n' $((i * 7919 % n)) >"$d/f$i"
        else
            printf 'new file %d of run %s\n' "$i" "$nonce" >"$d/f$i"
        fi
    done
}

s_files_tree() { # dir count: COUNT tiny distinct files, 1000 per directory
    python3 - "$1" "$2" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root, exist_ok=True)
for i in range(n):
    d = os.path.join(root, "d%04d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d" % (i % 1000)), "w") as f:
        f.write("small file %d\n" % i)
EOF
}

scenario_S() {
    local gen="$WORK/build/scale_gen"
    if [ -n "${SCALE_GEN:-}" ]; then
        gen=$SCALE_GEN
    else
        ninja -C "$WORK/build" scale_gen >>"$LOGS/build.log" 2>&1 ||
            { s_log "building scale_gen failed, see $LOGS/build.log"; return 1; }
    fi
    printf 'name\twall_s\tuser_s\tsys_s\tmax_rss_kib\n' >"$OUT/scale.tsv"
    local md="$OUT/scale.md" n f rss base
    {
        echo "## S — scale (issue #10)"
        echo
        echo "### Index memory per blob"
        echo
        echo "| blobs in repository | index files | max RSS backup (KiB) | max RSS empty repo (KiB) | bytes/blob |"
        echo "|---:|---:|---:|---:|---:|"
    } >"$md"
    s_init "$WORK/S-empty"
    s_small_tree "$WORK/S-tree" 1000000
    base=$(s_rss backup-empty "$OB" -r "$WORK/S-empty" --password-file "$PWFILE" \
        backup files "$WORK/S-tree") || return 1
    for n in $SCALE_BLOBS; do
        local r="$WORK/S-blobs-$n"
        if [ ! -e "$r/.scale_gen_done" ]; then
            s_init "$r"
            s_rss "generate-$n" "$gen" "$r" "$PWFILE" "$n" >/dev/null || return 1
            touch "$r/.scale_gen_done"
        fi
        s_small_tree "$WORK/S-tree" "$n"
        s_rss "snapshots-$n" "$OB" -r "$r" --password-file "$PWFILE" snapshots >/dev/null ||
            return 1
        rss=$(s_rss "backup-blobs-$n" "$OB" -r "$r" --password-file "$PWFILE" \
            backup files "$WORK/S-tree") || return 1
        echo "| $n | $(ls "$r/index" | wc -l) | $rss | $base | $(awk -v a="$rss" -v b="$base" -v n="$n" 'BEGIN { printf "%.1f", (a - b) * 1024 / n }') |" >>"$md"
    done
    {
        echo
        echo "### Backup of many small files (empty repository each time)"
        echo
        echo "| files | max RSS (KiB) | wall (s) |"
        echo "|---:|---:|---:|"
    } >>"$md"
    for f in $SCALE_FILES; do
        s_log "generating $f files"
        rm -rf "$WORK/S-files"
        s_files_tree "$WORK/S-files" "$f"
        s_init "$WORK/S-files-repo"
        rss=$(s_rss "backup-files-$f" "$OB" -r "$WORK/S-files-repo" --password-file "$PWFILE" \
            backup files "$WORK/S-files") || return 1
        echo "| $f | $rss | $(awk -F'\t' -v k="backup-files-$f" '$1 == k { print $2 }' "$OUT/scale.tsv") |" >>"$md"
        rm -rf "$WORK/S-files-repo"
    done
    rm -rf "$WORK/S-files" "$WORK/S-tree" "$WORK/S-empty"
    if [ "${BENCH_KEEP:-0}" != 1 ]; then
        for n in $SCALE_BLOBS; do rm -rf "$WORK/S-blobs-$n"; done
    fi
    s_log "results: $md"
}

# Run on its own: BUILD=DIR bash bench/scenario_scale.sh
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    : "${BUILD:?set BUILD to a build directory with opsbackup and scale_gen}"
    : "${BENCH_WORK:=$BENCH_DIR/work}" "${BENCH_OUT:=$BENCH_DIR/out}"
    WORK=$BENCH_WORK OUT=$BENCH_OUT LOGS=$BENCH_OUT/logs
    OB=$BUILD/opsbackup SCALE_GEN=$BUILD/scale_gen
    mkdir -p "$WORK" "$LOGS"
    PWFILE=$WORK/password
    if [ ! -s "$PWFILE" ]; then
        (umask 077 && head -c 24 /dev/urandom | base64 >"$PWFILE")
    fi
    chmod 600 "$PWFILE"
    scenario_S
fi
