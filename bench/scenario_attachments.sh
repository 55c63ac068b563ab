# bench/scenario_attachments.sh — scenario C: an application's attachments.
# Sourced by bench/run.sh.
#
# Steps, each for every tool, on the tree from gen_attachments.py:
#   initial   first backup into an empty repository
#   mutation  backup after mutation 1 (30 added, 5 modified, 5 deleted)
#   restore   restore of the latest backup into an empty directory,
#             verified with diff -r against the (mutated) source; restic,
#             borg and opsbackup again in BENCH_REPEAT rounds (lib.sh)
#   list      list the snapshots: the fixed cost of one invocation (opening
#             the repository, key derivation), which every other step pays
# Tools: tar -czf (the seed guide's backup-attachments.sh: a full archive
# every time, no encryption), restic, borg (repokey, zstd,3), opsbackup.
# Scenario E runs the same steps (c_run) with restic and opsbackup
# repositories on the S3 server (scenario_s3.sh).

C_TOOLS="tar restic borg opsbackup"

# c_run sets these; scenario E (scenario_s3.sh) runs the same steps with
# other values and REPO_STORE=s3:
#   C_SCEN  the scenario column of the rows (C, or E)
#   C_STEP  prefix of the step names ("", or "files-" in E)
#   C_NAME  prefix of the repository names (C-TOOL, or E-files-TOOL)
C_SCEN=C C_STEP="" C_NAME=C

c_role() {
    case $1 in
    opsbackup) echo opsbackup ;;
    tar) echo guide ;;
    *) echo peer ;;
    esac
}

c_backup() { # tool n step -> measured backup number n of $C_SRC
    local tool=$1 n=$2 step=$C_STEP$3 r p
    r=$(repo_url "$tool" "$C_NAME-$tool")
    p=$(repo_path "$C_NAME-$tool")
    case $tool in
    tar)
        measure "$C_SCEN" "$step" tar guide "$p" - -- \
            tar -czf "$r/attachments_$n.tar.gz" -C "$C_SRC" . ;;
    restic)
        measure "$C_SCEN" "$step" restic peer "$p" - -- \
            restic -r "$r" backup --host bench "$C_SRC" ;;
    borg)
        measure "$C_SCEN" "$step" borg peer "$p" - -- \
            borg create --compression zstd,3 "$r::c$n" "$C_SRC" ;;
    opsbackup)
        measure "$C_SCEN" "$step" opsbackup opsbackup "$p" - -- \
            "$OB" --no-progress -r "$r" backup files --set attachments "$C_SRC" ;;
    esac
}

c_restore() { # tool -> measured restore of the latest backup, verified
    local tool=$1 r t="$WORK/restore/$C_NAME-$1" step=${C_STEP}restore
    r=$(repo_url "$tool" "$C_NAME-$tool")
    rm -rf "$t"
    mkdir -p "$t"
    # Where the source tree lands below $t, per tool.
    local got
    case $tool in
    tar) got=$t ;;              # tar -C SOURCE_DIR . : contents at the top
    *) got=$t$C_SRC ;;          # restic, borg, opsbackup keep the absolute path
    esac
    local verify="diff -r '$C_SRC' '$got'"
    case $tool in
    tar)
        measure "$C_SCEN" "$step" tar guide - "$verify" -- \
            tar -xzf "$r/attachments_2.tar.gz" -C "$t" ;;
    restic)
        measure "$C_SCEN" "$step" restic peer - "$verify" -- \
            restic -r "$r" restore latest --target "$t" ;;
    borg)
        measure "$C_SCEN" "$step" borg peer - "$verify" -- \
            bash -c 'cd "$1" && exec borg extract "$2"' _ "$t" "$r::c2" ;;
    opsbackup)
        measure "$C_SCEN" "$step" opsbackup opsbackup - "$verify" -- \
            "$OB" --no-progress -r "$r" restore files latest --set attachments --target "$t" ;;
    esac
    [ "${BENCH_KEEP:-0}" = 1 ] || retire "$t"
}

c_list() { # tool -> measured listing of the snapshots (per-command fixed cost)
    local tool=$1 r step=${C_STEP}list
    r=$(repo_url "$tool" "$C_NAME-$tool")
    case $tool in
    restic) measure "$C_SCEN" "$step" restic peer - - -- restic -r "$r" snapshots ;;
    borg) measure "$C_SCEN" "$step" borg peer - - -- borg list "$r" ;;
    opsbackup) measure "$C_SCEN" "$step" opsbackup opsbackup - - -- "$OB" -r "$r" snapshots ;;
    esac
}

# c_run SCEN STEP_PREFIX NAME_PREFIX TOOLS: the whole scenario on a fresh
# tree, with the repositories wherever repo_url puts them (REPO_STORE).
c_run() {
    C_SCEN=$1 C_STEP=$2 C_NAME=$3
    local tools=$4
    log "scenario $C_SCEN (attachments), scale $BENCH_SCALE, seed $BENCH_SEED, repositories: $REPO_STORE"
    C_SRC="$WORK/data/attachments"
    rm -rf "$C_SRC"
    mkdir -p "$WORK/data" "$WORK/restore"
    python3 "$BENCH_DIR/gen_attachments.py" generate "$C_SRC" \
        --seed "$BENCH_SEED" --scale "$BENCH_SCALE" 2>>"$LOGS/data.log" ||
        die "generating the attachments tree failed, see $LOGS/data.log"
    tail -n 1 "$LOGS/data.log" >&2
    local tool
    for tool in $tools; do
        case $tool in
        tar) init_repo dir "$C_NAME-$tool" ;;
        *) init_repo "$tool" "$C_NAME-$tool" ;;
        esac
    done

    for tool in $tools; do
        cache_prepare "$C_SRC"
        c_backup "$tool" 1 initial
    done

    python3 "$BENCH_DIR/gen_attachments.py" mutate "$C_SRC" --mutation 1 \
        --seed "$BENCH_SEED" --scale "$BENCH_SCALE" 2>>"$LOGS/data.log" ||
        die "mutating the attachments tree failed, see $LOGS/data.log"
    tail -n 1 "$LOGS/data.log" >&2

    for tool in $tools; do
        cache_prepare "$C_SRC"
        c_backup "$tool" 2 mutation
    done

    local round
    for round in 1 $(extra_rounds); do
        for tool in $tools; do
            # Rounds 2...: the tools the restore target compares (the peers).
            case $round:$tool in 1:* | *:restic | *:borg | *:opsbackup) ;; *) continue ;; esac
            cache_prepare "$(repo_path "$C_NAME-$tool")" "$C_SRC"
            c_restore "$tool"
        done
    done
    # The fixed cost of one invocation (open the repository: key derivation,
    # index load) shows in a command that does almost nothing else.
    for tool in $tools; do
        case $tool in restic | borg | opsbackup) c_list "$tool" ;; esac
    done
    retired_remove
    if [ "${BENCH_KEEP:-0}" != 1 ]; then
        for tool in $tools; do repo_remove "$C_NAME-$tool"; done
    fi
}

scenario_C() {
    c_run C "" C "$C_TOOLS"
}
