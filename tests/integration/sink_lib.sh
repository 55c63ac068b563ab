# Local receivers for notifications (sourced after lib.sh):
#   start_sink NAME SCRIPT ARGS...   http_sink.py or smtp_sink.py on a free
#                                    127.0.0.1 port: $SINK_PORT, records in
#                                    $T/NAME.jsonl (one JSON line each)
#   count NAME                       records received so far
# Sinks are stopped when the test exits.
# Requests to 127.0.0.1 must not go through a proxy of the environment.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy no_proxy NO_PROXY

SINK_PIDS=()
stop_sinks() {
    local p
    for p in "${SINK_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}
on_exit stop_sinks

# start_sink NAME SCRIPT ARGS...: run a sink on a free port; its port in
# $SINK_PORT, its records in $T/NAME.jsonl.
start_sink() {
    local name=$1 script=$2 i
    shift 2
    rm -f "$T/$name.port"
    : >"$T/$name.jsonl"
    python3 "$TOOLS/$script" --out "$T/$name.jsonl" --port 0 --port-file "$T/$name.port" "$@" \
        >"$T/$name.log" 2>&1 &
    SINK_PIDS+=($!)
    for i in $(seq 1 100); do
        if [ -s "$T/$name.port" ]; then
            SINK_PORT=$(cat "$T/$name.port")
            return 0
        fi
        kill -0 "$!" 2>/dev/null || break
        sleep 0.1
    done
    cat "$T/$name.log" >&2
    fail "sink $name did not start"
}
count() { wc -l <"$T/$1.jsonl" | tr -d ' '; }
