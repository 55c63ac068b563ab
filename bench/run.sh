#!/usr/bin/env bash
# bench/run.sh — opsbackup side by side with the tools users would otherwise
# run, on the same deterministic data, in one run.  See bench/README.md.
#
#   sudo bash bench/run.sh                 # full size (~1 GB files, ~650 MB database)
#   sudo bash bench/run.sh --quick         # BENCH_SCALE=0.1, a few minutes
#   sudo bash bench/run.sh --scenarios C   # only some scenarios (A B C D E)
#
# Environment (all optional):
#   BENCH_SCALE=1       data set size factor (files, bytes, pgbench scale, rows)
#   BENCH_SEED=1        data set seed (an integer)
#   BENCH_SCENARIOS="C A B D E"  (S, the scale scenario of scenario_scale.sh,
#                       ~15 min, runs only when named)
#   BENCH_INSTALL=1     install missing Debian packages (0: only check)
#   BENCH_DROP_CACHES=0 1: drop the page cache before each measured command
#   BENCH_KEEP=0        1: keep repositories, restores and the cluster
#   BENCH_REPEAT=3      rounds of the steps whose targets compare wall times
#                       (A's dumps, B's and C's restores); the report takes
#                       each metric's median
#   BENCH_PGPORT=55432  port number of the private cluster's Unix socket
#   BENCH_WORK=bench/work  BENCH_OUT=bench/out
#
# Output: $BENCH_OUT/results.tsv (raw), $BENCH_OUT/results.md (table with
# ratios and targets), $BENCH_OUT/logs/ (one log per measured command).
# Exit status: 0 if every row passed, 1 if any row FAILED or setup failed.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")

while [ $# -gt 0 ]; do
    case $1 in
    --quick) BENCH_SCALE=${BENCH_SCALE_QUICK:-0.1} ;;
    --scenarios) BENCH_SCENARIOS=$2; shift ;;
    --scenarios=*) BENCH_SCENARIOS=${1#*=} ;;
    --no-install) BENCH_INSTALL=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

: "${BENCH_SCALE:=1}" "${BENCH_SEED:=1}" "${BENCH_SCENARIOS:=C A B D E}"
: "${BENCH_INSTALL:=1}" "${BENCH_DROP_CACHES:=0}" "${BENCH_KEEP:=0}" "${BENCH_PGPORT:=55432}"
: "${BENCH_REPEAT:=3}"
: "${BENCH_WORK:=$BENCH_DIR/work}" "${BENCH_OUT:=$BENCH_DIR/out}"
case $BENCH_SEED in '' | *[!0-9]*) echo "run.sh: BENCH_SEED must be an integer" >&2; exit 2 ;; esac
case $BENCH_REPEAT in '' | 0* | *[!0-9]*) echo "run.sh: BENCH_REPEAT must be a positive integer" >&2; exit 2 ;; esac
export BENCH_SCALE BENCH_SEED BENCH_DROP_CACHES BENCH_KEEP BENCH_PGPORT BENCH_REPEAT

WORK=$BENCH_WORK
OUT=$BENCH_OUT
LOGS=$OUT/logs
TSV=$OUT/results.tsv
PWFILE=$WORK/password
OB=$WORK/build/opsbackup

. "$BENCH_DIR/lib.sh"
. "$BENCH_DIR/pg.sh"
. "$BENCH_DIR/scenario_attachments.sh"
. "$BENCH_DIR/scenario_logical.sh"
. "$BENCH_DIR/scenario_physical.sh"
. "$BENCH_DIR/scenario_wal.sh"
. "$BENCH_DIR/scenario_s3.sh"
. "$BENCH_DIR/scenario_future.sh"
. "$BENCH_DIR/scenario_scale.sh"

[ "$(id -u)" -eq 0 ] || die "run as root (package installs, the postgres user, dropping caches)"

install_deps() {
    local pkgs=(restic borgbackup pgbackrest time python3 coreutils diffutils tar gzip
        postgresql-15 postgresql-client-15)
    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$BENCH_INSTALL" = 1 ] || die "missing packages: ${missing[*]}"
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # opsbackup's own build dependencies.
    if [ "$BENCH_INSTALL" = 1 ]; then bash "$ROOT/scripts/deps.sh"; fi
}

build() {
    local b="$WORK/build"
    log "building opsbackup (release) in $b"
    if [ -f "$b/build.ninja" ]; then
        meson setup --reconfigure "$b" "$ROOT" -Dbuildtype=release -Dtests=false >"$LOGS/build.log" 2>&1
    else
        meson setup "$b" "$ROOT" -Dbuildtype=release -Dtests=false >"$LOGS/build.log" 2>&1
    fi || die "meson setup failed, see $LOGS/build.log"
    ninja -C "$b" opsbackup >>"$LOGS/build.log" 2>&1 || die "build failed, see $LOGS/build.log"
}

describe_machine() {
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, Linux $(uname -r)"
        echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; $(nproc) CPUs)"
        echo "scale: $BENCH_SCALE"
        echo "seed: $BENCH_SEED"
        echo "cache: $([ "$BENCH_DROP_CACHES" = 1 ] && echo 'dropped before each command' || echo 'warm (source read once before each command)')"
        echo "opsbackup: $("$OB" --version | awk '{ print $2 }') ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src meson.build 2>/dev/null || echo '+local changes'))"
        echo "restic: $(restic version | awk '{ print $2 }')"
        echo "borg: $(borg --version | awk '{ print $2 }')"
        echo "pgbackrest: $(pgbackrest version | awk '{ print $2 }')"
        echo "postgresql: $("$PGBIN/postgres" --version | awk '{ print $3 }')"
        echo "tar: $(tar --version | head -1 | awk '{ print $NF }'), gzip $(gzip --version | head -1 | awk '{ print $2 }')"
        case " $BENCH_SCENARIOS " in
        *" E "*) echo "s3 server (E): $(s3_bench_version), 127.0.0.1, plain HTTP" ;;
        esac
    } >"$OUT/machine.txt"
}

finish() {
    local rc=$?
    if [ "${PG_RUNNING:-0}" = 1 ] && [ "$BENCH_KEEP" != 1 ]; then pg_stop; fi
    s3_bench_stop
    exit $rc
}
trap finish EXIT

mkdir -p "$WORK" "$OUT"
rm -rf "$LOGS"
mkdir -p "$LOGS"
install_deps
build
if [ ! -s "$PWFILE" ]; then
    (umask 077 && head -c 24 /dev/urandom | base64 >"$PWFILE")
fi
chmod 600 "$PWFILE"
setup_tool_env
describe_machine
printf '%s\n' "$TSV_HEADER" >"$TSV"

start=$(date +%s)
for s in $BENCH_SCENARIOS; do
    case $s in
    A | B | C | D | E | S) "scenario_$s" ;;
    *) die "unknown scenario '$s' (A B C D E S)" ;;
    esac
done
log "all scenarios done in $(( $(date +%s) - start ))s"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg); duration $(( $(date +%s) - start )) s" >>"$OUT/machine.txt"

python3 "$BENCH_DIR/report.py" "$TSV" --machine "$OUT/machine.txt" >"$OUT/results.md" ||
    die "report.py failed"
log "results: $OUT/results.md and $TSV"
if awk -F'\t' 'NR > 1 && $5 == "FAILED" { bad = 1 } END { exit !bad }' "$TSV"; then
    log "some rows FAILED (see the status and note columns, and $LOGS)"
    exit 1
fi
