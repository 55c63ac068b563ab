# bench/lib.sh — measurement and bookkeeping shared by every scenario.
# Sourced by bench/run.sh; expects WORK, OUT, LOGS, TSV, OB, PWFILE set.
#
# One measured command = one row of $TSV:
#   scenario step tool role status wall_s user_s sys_s cpu_s maxrss_kib
#   bytes_added repo_bytes verify note
# role: opsbackup | peer (restic, borg, pgbackrest: the tools to beat) |
#       guide (the seed guide's own script: tar -czf, pg_dump -Z9, ...) |
#       reference (a lower bound such as pg_dump > /dev/null).
# status: ok | FAILED | not yet available.  verify: ok | FAILED | - (nothing
# to verify, e.g. a backup step).

TSV_HEADER="scenario	step	tool	role	status	wall_s	user_s	sys_s	cpu_s	maxrss_kib	bytes_added	repo_bytes	verify	note"

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Apparent size of a repository (file or directory), 0 if it does not exist.
# "s3objects:DIR" (repo_path in S3 mode): the sum of the objects' sizes
# under DIR, the S3 server's directory of one prefix (each object is a file
# NAME._S3rver_object beside its .md5 and metadata files, not counted).
repo_bytes() {
    case $1 in
    s3objects:*)
        local d=${1#s3objects:}
        if [ -d "$d" ]; then
            find "$d" -type f -name '*._S3rver_object' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'
        else
            echo 0
        fi ;;
    *) if [ -e "$1" ]; then du -sb "$1" | cut -f1; else echo 0; fi ;;
    esac
}

# Before a measured run: flush dirty pages left by the previous tool, then
# either drop the page cache (BENCH_DROP_CACHES=1, cold reads; needs a
# writable /proc/sys/vm/drop_caches) or read PATHs once so that every tool
# starts from the same warm cache whatever its position in the row.
cache_prepare() {
    sync
    if [ "${BENCH_DROP_CACHES:-0}" = 1 ]; then
        echo 3 >/proc/sys/vm/drop_caches 2>/dev/null ||
            log "warning: cannot drop caches (BENCH_DROP_CACHES=1 ignored)"
        return 0
    fi
    local p
    for p in "$@"; do
        p=${p#s3objects:}
        [ -e "$p" ] && find "$p" -type f -print0 | xargs -0 -r cat >/dev/null
    done
    return 0
}

# A restored tree is not deleted right after its verification but moved
# aside, and all of a scenario's restored trees go at its end
# (retired_remove).  Deleting one tool's restore and then timing the next
# tool's restore made the next tool's time depend on the deletion, in two
# ways that pull against each other (measured on this bench VM, the same
# opsbackup restore of C's 1 GB tree three times each way, alternating):
#   - the page cache the deletion frees is reused at once, while memory the
#     guest has not touched lately costs ~2.5 s of system time per GB on
#     first touch (the host backs it again): 1.3-1.9 s right after an
#     rm -rf, 2.33-2.37 s without one;
#   - on ext4 without a journal (this VM's) the kernel skips inodes freed in
#     the last 30 s, and every create scans past them (perf: ext4_create ->
#     find_inode_bit -> recently_deleted, 30-45 % of a restore's samples),
#     so the gain above shrank with each repetition (1.34, 1.56, 1.91 s).
# Keeping the trees gives every tool the same start, whatever its place in
# the order.
retire() { # path...
    local p
    mkdir -p "$WORK/retired"
    for p in "$@"; do
        [ -e "$p" ] || continue
        mv "$p" "$(mktemp -d "$WORK/retired/r.XXXXXX")/"
    done
}

retired_remove() {
    rm -rf "${WORK:?}/retired"
}

tsv_row() { # fields...
    local IFS=$'\t'
    printf '%s\n' "$*" >>"$TSV"
}

# A row for a tool that cannot run this scenario (yet).  STATUS: "not yet
# available" (the default: opsbackup or the harness lacks something) or
# "not available" (the tool itself cannot, e.g. borg has no S3 backend).
record_unavailable() { # scenario step tool role note [status]
    local st=${6:-not yet available}
    tsv_row "$1" "$2" "$3" "$4" "$st" - - - - - - - - "$5"
    log "$1/$2/$3: $st ($5)"
}

# measure SCENARIO STEP TOOL ROLE REPO VERIFY -- CMD...
#   REPO   what grows: a repository directory or a directory of archives;
#          "-" for nothing (restores, dumps to /dev/null).
#   VERIFY a shell snippet evaluated after CMD succeeded (not timed); it
#          must exit 0 for the row to pass.  "-" for none.
# CMD runs under /usr/bin/time: wall (%e), user (%U), sys (%S) and max RSS
# (%M, KiB) of CMD and every descendant it waited for (for a pipeline run
# through `bash -c`, max RSS is that of its largest process).  Output goes
# to $LOGS/SCENARIO-STEP-TOOL.log.  Never fails: a failure is a FAILED row.
measure() {
    local scen=$1 step=$2 tool=$3 role=$4 repo=$5 verify=$6
    shift 6
    [ "$1" = -- ] && shift
    local logf="$LOGS/$scen-$step-$tool.log" tf="$LOGS/.time.$$"
    local before after rc=0 status=ok vstatus=- note=""
    before=$(repo_bytes "$repo")
    log "$scen/$step/$tool: $*"
    {
        echo "# $(date -Is) $scen/$step/$tool"
        printf '# %q ' "$@"
        echo
    } >"$logf"
    # BENCH_S3_LOG=1 (scenario E): mark the S3 server's request log, so
    # bench/s3_requests.py can count each command's requests.
    [ -z "${S3_REQLOG:-}" ] || echo "### begin $scen/$step/$tool" >>"$S3_REQLOG"
    if /usr/bin/time -f '%e %U %S %M' -o "$tf" -- "$@" >>"$logf" 2>&1; then rc=0; else rc=$?; fi
    [ -z "${S3_REQLOG:-}" ] || echo "### end $scen/$step/$tool" >>"$S3_REQLOG"
    after=$(repo_bytes "$repo")
    local wall user sys rss
    read -r wall user sys rss < <(tail -n 1 "$tf")
    rm -f "$tf"
    if [ "$rc" -ne 0 ]; then
        status=FAILED
        note="exit $rc, see logs/$(basename "$logf")"
    elif [ "$verify" != - ]; then
        echo "# verify: $verify" >>"$logf"
        if (eval "$verify") >>"$logf" 2>&1; then
            vstatus=ok
        else
            vstatus=FAILED
            status=FAILED
            note="restore verification failed, see logs/$(basename "$logf")"
        fi
    fi
    local cpu
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    local added=- total=-
    if [ "$repo" != - ]; then
        added=$((after - before))
        total=$after
    fi
    tsv_row "$scen" "$step" "$tool" "$role" "$status" "$wall" "$user" "$sys" "$cpu" "$rss" \
        "$added" "$total" "$vstatus" "$note"
    log "$scen/$step/$tool: $status wall ${wall}s cpu ${cpu}s rss $((rss / 1024))MiB added $added verify $vstatus"
    return 0
}

# --- the tools ---------------------------------------------------------------
# Encryption is on for every tool that has it; each reads the same password.

setup_tool_env() {
    export RESTIC_PASSWORD_FILE="$PWFILE"
    export RESTIC_CACHE_DIR="$WORK/cache/restic"
    BORG_PASSPHRASE=$(cat "$PWFILE")
    export BORG_PASSPHRASE
    export BORG_BASE_DIR="$WORK/cache/borg"
    export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
    export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=no
    export OPSBACKUP_PASSWORD_FILE="$PWFILE"
    unset OPSBACKUP_REPOSITORY OPSBACKUP_CONFIG OPSBACKUP_PASSWORD OPSBACKUP_PASSWORD_COMMAND
}

# --- where the repositories of A, C and E live -------------------------------
# REPO_STORE=local (scenarios A and C): repository NAME is the directory
# $WORK/repos/NAME.  REPO_STORE=s3 (scenario E, scenario_s3.sh): NAME is a
# prefix in the bucket of the S3 server on 127.0.0.1 that s3_bench_start
# started; the server keeps its objects as files under
# $S3_DATA/$S3_BUCKET/NAME.  Scenarios take their repository from these
# functions, so E runs C's and A's steps unchanged against S3.
REPO_STORE=local

repo_url() { # tool name -> the repository argument TOOL is given
    local tool=$1 name=$2
    if [ "$REPO_STORE" != s3 ]; then
        echo "$WORK/repos/$name"
        return 0
    fi
    case $tool in
    restic) echo "s3:$S3_ENDPOINT/$S3_BUCKET/$name" ;;
    opsbackup) echo "s3://$S3_BUCKET/$name?endpoint=$S3_ENDPOINT&path-style=true" ;;
    *) die "$tool has no S3 repository in this harness" ;;
    esac
}

repo_path() { # name -> what measure's REPO argument and cache_prepare take
    if [ "$REPO_STORE" = s3 ]; then
        echo "s3objects:$S3_DATA/$S3_BUCKET/$1"
    else
        echo "$WORK/repos/$1"
    fi
}

repo_remove() { # name
    if [ "$REPO_STORE" = s3 ]; then
        rm -rf "${S3_DATA:?}/$S3_BUCKET/$1"
    else
        rm -rf "$WORK/repos/$1" "$WORK/repos/$1.round"
    fi
}

# --- rounds (BENCH_REPEAT) ---------------------------------------------------
# One run of a command on this machine is not a measurement: the same
# `pg_dump > /dev/null` took 1.87-3.08 s in six runs in a row (session 17),
# so a ratio of two single runs is decided by which one drew the slow run.
# The steps whose targets compare one wall time with another (A's dumps
# with the reference, B's and C's restores with the peers) run again in
# rounds 2..BENCH_REPEAT, the tools interleaved, and report.py takes each
# metric's median over a tool's rounds.  Every round is a whole measured
# row in results.tsv.

# The rounds after the first: "2 3 ...".  None over S3 (scenario E): it has
# no wall target, and S3rver's objects are not put back between rounds.
extra_rounds() {
    [ "$REPO_STORE" = s3 ] || seq 2 "$BENCH_REPEAT"
}

# A step that adds to a repository must start every round from the same
# repository: repo_save keeps a copy of NAME before round 1, repo_reset
# puts it back before each later round (local repositories only).
repo_save() { # name
    rm -rf "$WORK/repos/$1.round"
    cp -a "$WORK/repos/$1" "$WORK/repos/$1.round"
}

repo_reset() { # name
    rm -rf "$WORK/repos/$1"
    cp -a "$WORK/repos/$1.round" "$WORK/repos/$1"
}

# Fresh, empty, encrypted repository NAME for TOOL (not timed).
init_repo() { # tool name
    local tool=$1 name=$2 logf="$LOGS/init-$2.log" url
    repo_remove "$name"
    [ "$REPO_STORE" = s3 ] || mkdir -p "$WORK/repos"
    url=$(repo_url "$tool" "$name")
    case $tool in
    restic) restic init --repository-version 2 -r "$url" >"$logf" 2>&1 ;;
    borg) borg init --encryption=repokey "$url" >"$logf" 2>&1 ;;
    opsbackup) "$OB" --no-progress -r "$url" init >"$logf" 2>&1 ;;
    *) mkdir -p "$url" ;; # plain directory of archives / dump files
    esac || die "init of $tool repository $url failed, see $logf"
}

# Does this opsbackup build know `backup KIND`?  `backup KIND --help`
# exits 0 for any KIND (the help is handled before the kind is checked),
# so also make sure the kind is not rejected as unknown.
ob_has_backup_kind() { # kind
    "$OB" backup "$1" --help >/dev/null 2>&1 || return 1
    local out
    out=$("$OB" -r /nonexistent/opsbackup-bench backup "$1" 2>&1) || true
    case $out in
    *"unknown backup kind"*) return 1 ;;
    esac
    return 0
}

ob_has_command() { # name: is NAME an opsbackup command?
    local cmds
    cmds=$("$OB" --help 2>/dev/null | awk '/^Commands:/ { on = 1; next }
        on && NF == 0 { on = 0 } on { print $1 }') || true
    printf '%s\n' "$cmds" | grep -qx -- "$1"
}
