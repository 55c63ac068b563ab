# bench/scenario_attachments.sh — scenario C: an application's attachments.
# Sourced by bench/run.sh.
#
# Steps, each for every tool, on the tree from gen_attachments.py:
#   initial   first backup into an empty repository
#   mutation  backup after mutation 1 (30 added, 5 modified, 5 deleted)
#   restore   restore of the latest backup into an empty directory,
#             verified with diff -r against the (mutated) source
#   list      list the snapshots: the fixed cost of one invocation (opening
#             the repository, key derivation), which every other step pays
# Tools: tar -czf (the seed guide's backup-attachments.sh: a full archive
# every time, no encryption), restic, borg (repokey, zstd,3), opsbackup.

C_TOOLS="tar restic borg opsbackup"

c_role() {
    case $1 in
    opsbackup) echo opsbackup ;;
    tar) echo guide ;;
    *) echo peer ;;
    esac
}

c_backup() { # tool n -> measured backup number n of $C_SRC
    local tool=$1 n=$2 step=$3 r="$WORK/repos/C-$1"
    case $tool in
    tar)
        measure C "$step" tar guide "$r" - -- \
            tar -czf "$r/attachments_$n.tar.gz" -C "$C_SRC" . ;;
    restic)
        measure C "$step" restic peer "$r" - -- \
            restic -r "$r" backup --host bench "$C_SRC" ;;
    borg)
        measure C "$step" borg peer "$r" - -- \
            borg create --compression zstd,3 "$r::c$n" "$C_SRC" ;;
    opsbackup)
        measure C "$step" opsbackup opsbackup "$r" - -- \
            "$OB" --no-progress -r "$r" backup files --set attachments "$C_SRC" ;;
    esac
}

c_restore() { # tool -> measured restore of the latest backup, verified
    local tool=$1 r="$WORK/repos/C-$1" t="$WORK/restore/C-$1"
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
        measure C restore tar guide - "$verify" -- \
            tar -xzf "$r/attachments_2.tar.gz" -C "$t" ;;
    restic)
        measure C restore restic peer - "$verify" -- \
            restic -r "$r" restore latest --target "$t" ;;
    borg)
        measure C restore borg peer - "$verify" -- \
            bash -c 'cd "$1" && exec borg extract "$2"' _ "$t" "$r::c2" ;;
    opsbackup)
        measure C restore opsbackup opsbackup - "$verify" -- \
            "$OB" --no-progress -r "$r" restore files latest --set attachments --target "$t" ;;
    esac
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$t"
}

c_list() { # tool -> measured listing of the snapshots (per-command fixed cost)
    local tool=$1 r="$WORK/repos/C-$1"
    case $tool in
    restic) measure C list restic peer - - -- restic -r "$r" snapshots ;;
    borg) measure C list borg peer - - -- borg list "$r" ;;
    opsbackup) measure C list opsbackup opsbackup - - -- "$OB" -r "$r" snapshots ;;
    esac
}

scenario_C() {
    log "scenario C (attachments), scale $BENCH_SCALE, seed $BENCH_SEED"
    C_SRC="$WORK/data/attachments"
    rm -rf "$C_SRC"
    mkdir -p "$WORK/data" "$WORK/repos" "$WORK/restore"
    python3 "$BENCH_DIR/gen_attachments.py" generate "$C_SRC" \
        --seed "$BENCH_SEED" --scale "$BENCH_SCALE" 2>>"$LOGS/data.log" ||
        die "generating the attachments tree failed, see $LOGS/data.log"
    tail -n 1 "$LOGS/data.log" >&2
    local tool
    for tool in $C_TOOLS; do
        init_repo "$tool" "$WORK/repos/C-$tool"
    done

    for tool in $C_TOOLS; do
        cache_prepare "$C_SRC"
        c_backup "$tool" 1 initial
    done

    python3 "$BENCH_DIR/gen_attachments.py" mutate "$C_SRC" --mutation 1 \
        --seed "$BENCH_SEED" --scale "$BENCH_SCALE" 2>>"$LOGS/data.log" ||
        die "mutating the attachments tree failed, see $LOGS/data.log"
    tail -n 1 "$LOGS/data.log" >&2

    for tool in $C_TOOLS; do
        cache_prepare "$C_SRC"
        c_backup "$tool" 2 mutation
    done

    for tool in $C_TOOLS; do
        cache_prepare "$WORK/repos/C-$tool" "$C_SRC"
        c_restore "$tool"
    done
    # The fixed cost of one invocation (open the repository: key derivation,
    # index load) shows in a command that does almost nothing else.
    for tool in restic borg opsbackup; do
        c_list "$tool"
    done
    if [ "${BENCH_KEEP:-0}" != 1 ]; then
        for tool in $C_TOOLS; do rm -rf "$WORK/repos/C-$tool"; done
    fi
}
