#!/usr/bin/env bash
# bench/run.sh - lambda-gateway's benchmark suite (issue 5), what `make bench` runs.
#
# Starts everything it measures on 127.0.0.1 (free ports), measures side by side in one run, stops
# it all again (trap), and writes bench/results/YYYY-MM-DD-HHMM.{md,json,png}:
#   1. local echo: /invoke/echo and the Invoke API face against nginx returning the same bytes
#   2. peer: serverless-offline 13 (--useInProcess) on its Invoke API
#   3. forwarding: lambda mode in front of a local-mode gateway, against that upstream directly
#      (and nginx as a plain reverse proxy in front of it, for reference)
#   4. slow functions: 1,000 callers of a 100 ms function through lambda mode (upstream: a gateway
#      in local mode with enough workers, and bench/slowup.c, a one-thread timer upstream)
#   5. memory: resident memory idle and holding 10,000 busy keep-alive connections
#   6. cold start: fork+exec to the first 200 from /invoke/echo (bench/coldstart.c)
#   7. SigV4 signatures per second (bench/sigv4_bench.c)
# Throughput runs (1-3) are interleaved over ROUNDS rounds and the medians reported, so a burst
# of other load on the machine hits every contender alike.
#
# Usage: bench/run.sh [--quick] [--no-install] [--out DIR]
#   --quick       a smoke run of a few seconds (short runs, fewer connections, no peer, no nginx);
#                 results go to a temporary folder unless --out is given
#   --no-install  do not run scripts/deps.sh or npm ci (scenarios whose tools are missing are
#                 skipped and say so)
# Environment: LGW_BIN (default build/lambda-gateway), LGW_BENCH_DIR (default build/bench).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0
INSTALL=1
OUT=
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --no-install) INSTALL=0 ;;
    --out)
        OUT=${2:?--out needs a folder}
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "run.sh: unknown argument '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done

BIN=${LGW_BIN:-build/lambda-gateway}
BB=${LGW_BENCH_DIR:-build/bench}
for f in "$BIN" "$BB/coldstart" "$BB/connhold" "$BB/sigv4_bench" "$BB/slowup"; do
    [ -x "$f" ] || {
        echo "run.sh: $f is missing: run 'make bench' (or make $BIN ${BB}/...)" >&2
        exit 2
    }
done

# ---- sizes -------------------------------------------------------------------------------------
if [ $QUICK = 1 ]; then
    D=1 ROUNDS=1 WARM=0 LAT_D=1 COLD_RUNS=5 SIG_S=0.2 MEM_CONNS=200 MEM_S=1 SLOW_CONNS=50 SLOW_D=1
    PAUSE=0.1
else
    D=10 ROUNDS=3 WARM=2 LAT_D=5 COLD_RUNS=100 SIG_S=2 MEM_CONNS=10000 MEM_S=5 SLOW_CONNS=1000
    SLOW_D=10 PAUSE=0.5
fi
THREADS=2 CONNS=32 # the issue's wrk -t2 -c32

# ---- installs ----------------------------------------------------------------------------------
if [ $INSTALL = 1 ] && [ $QUICK = 0 ]; then
    DEPS_EXTRA="bench node" scripts/deps.sh
fi
PEER_DIR=$ROOT/bench/peer
if [ $INSTALL = 1 ] && [ $QUICK = 0 ] && command -v npm >/dev/null; then
    if [ ! -x "$PEER_DIR/node_modules/.bin/serverless" ] ||
        [ "$PEER_DIR/package-lock.json" -nt "$PEER_DIR/node_modules/.package-lock.json" ]; then
        echo "run.sh: installing the peer (npm ci in bench/peer)" >&2
        (cd "$PEER_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
    fi
fi

# ---- process bookkeeping -----------------------------------------------------------------------
TMP=$(mktemp -d /tmp/lgw-bench.XXXXXX)
DATA=$TMP/data
mkdir -p "$DATA" "$TMP/bin"
PIDS=()
# Run copies: a rebuild of build/ during the run (a shared work tree) must not change or break
# what is being measured.
cp "$BIN" "$TMP/bin/lambda-gateway"
for f in coldstart connhold sigv4_bench slowup; do cp "$BB/$f" "$TMP/bin/$f"; done
BIN=$TMP/bin/lambda-gateway
BB=$TMP/bin

stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    PIDS=()
}

cleanup() {
    stop_all
    if [ -n "${KEEP_TMP:-}" ]; then
        echo "run.sh: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_gateway NAME [VAR=VALUE...] -- [ARGS...]: starts the gateway on a free port; sets
# GW_PORT and GW_PID. stdout and stderr go to $TMP/NAME.{out,err} (stderr to $GW_STDERR if set).
start_gateway() {
    local name=$1 envs=()
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    # A benchmark never signs with a real identity or asks a metadata service anything.
    env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_CONFIG_FILE -u AWS_SHARED_CREDENTIALS_FILE \
        AWS_ACCESS_KEY_ID=AKIDBENCHMARK AWS_SECRET_ACCESS_KEY=bench-secret-not-a-real-key \
        AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true LGW_FUNCTION_LOGS=0 "${envs[@]}" \
        "$BIN" --listen 127.0.0.1:0 "$@" >"$TMP/$name.out" 2>"${GW_STDERR:-$TMP/$name.err}" &
    GW_PID=$!
    PIDS+=("$GW_PID")
    for _ in $(seq 100); do
        GW_PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\) .*|\1|p' "$TMP/$name.out")
        [ -n "$GW_PORT" ] && return 0
        kill -0 "$GW_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "run.sh: gateway $name did not start:" >&2
    cat "$TMP/$name.err" >&2
    exit 1
}

# wait_ok URL [BODY]: polls until the URL answers 200 to a POST (at most about 60 s).
wait_ok() {
    local body=${2:-}
    [ -n "$body" ] || body='{}'
    for _ in $(seq 600); do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST \
            -H 'Content-Type: application/json' -d "$body" "$1")" = 200 ]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# cpu_ticks PID...: user+system CPU time of the processes, in clock ticks.
cpu_ticks() {
    local pid sum=0 t
    for pid in "$@"; do
        t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        sum=$((sum + t))
    done
    echo "$sum"
}
TCK=$(getconf CLK_TCK)

# run_wrk NAME URL THREADS CONNS SECONDS [BODY]: one bounded wrk run; its WRK line goes to
# $DATA/NAME.wrk (one line per round), with the CPU time the servers in $SERVER_PIDS used per
# request (a figure that other load on the machine disturbs far less than requests/s).
run_wrk() {
    local name=$1 url=$2 t=$3 c=$4 s=$5 body=${6:-} line c0 c1 cpu_us pid
    local out=$TMP/wrk.$name.txt
    # shellcheck disable=SC2086 # a list of pids
    c0=$(cpu_ticks ${SERVER_PIDS:-})
    BENCH_BODY=$body timeout $((s + 30)) wrk -t"$t" -c"$c" -d"${s}s" --timeout 5s \
        -s bench/wrk.lua "$url" >"$out" 2>&1 || true
    # shellcheck disable=SC2086
    c1=$(cpu_ticks ${SERVER_PIDS:-})
    line=$(sed -n 's/^WRK //p' "$out")
    if [ -z "$line" ]; then
        echo "run.sh: wrk gave no result for $name:" >&2
        cat "$out" >&2
        line='{"failed":true}'
    else
        cpu_us=$(awk -v d=$((c1 - c0)) -v tck="$TCK" -v l="$line" 'BEGIN {
            match(l, /"requests":[0-9]+/); n = substr(l, RSTART + 11, RLENGTH - 11);
            printf "%.1f", (n > 0 ? d * 1e6 / tck / n : 0) }')
        line="${line%\}},\"server_cpu_us_per_req\":$cpu_us}"
    fi
    echo "$line" >>"$DATA/$name.wrk"
    log "$name: $(sed -n 's/^Requests\/sec: *//p' "$out") req/s, server CPU ${cpu_us:-?} us/req"
    for pid in ${SERVER_PIDS:-}; do
        kill -0 "$pid" 2>/dev/null || log "WARNING: server process $pid is gone (crashed or killed)"
    done
}

warm() { # warm URL [BODY]: a short untimed run
    [ "$WARM" -gt 0 ] || return 0
    BENCH_BODY=${2:-} timeout $((WARM + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${WARM}s" \
        -s bench/wrk.lua "$1" >/dev/null 2>&1 || true
}

rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
anon_kib() { sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ECHO=/invoke/echo
FACE=/2015-03-31/functions/echo/invocations
SKIPPED=()

# ---- machine and versions ----------------------------------------------------------------------
{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "cores=$(nproc)"
    echo "mem_kib=$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/meminfo)"
    echo "kernel=$(uname -sr)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "uptime_start=$(uptime)"
    # "-dirty" only when the gateway's own sources differ from the commit (not bench/ or docs).
    rev=$(git describe --always 2>/dev/null || echo unknown)
    git diff --quiet HEAD -- server dispatch handlers Makefile 2>/dev/null || rev=$rev-dirty
    echo "gateway_rev=$rev"
    echo "gateway_version=$("$BIN" --version 2>/dev/null | head -1)"
    echo "libmicrohttpd=$(pkg-config --modversion libmicrohttpd 2>/dev/null || echo ?)"
    echo "libcurl=$(pkg-config --modversion libcurl 2>/dev/null || echo ?)"
    echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    echo "nginx=$(nginx -v 2>&1 | sed 's|.*nginx/||' || echo none)"
    echo "node=$(node --version 2>/dev/null || echo none)"
    echo "serverless=$(node -p "require('$PEER_DIR/node_modules/serverless/package.json').version" 2>/dev/null || echo none)"
    echo "serverless_offline=$(node -p "require('$PEER_DIR/node_modules/serverless-offline/package.json').version" 2>/dev/null || echo none)"
    echo "quick=$QUICK"
    echo "rounds=$ROUNDS"
    echo "duration_s=$D"
} >"$DATA/meta.env"

# ---- 1 + 2: local echo, nginx, the peer ---------------------------------------------------------
log "1. local echo and 2. peer: ${ROUNDS} round(s) of ${D}s each, wrk -t$THREADS -c$CONNS"
start_gateway gw LGW_ACCESS_LOG=0 --
GW=$GW_PORT GW_MAIN_PID=$GW_PID
if [ $QUICK = 0 ]; then
    # The same gateway with its access log on, to show what the log costs (to /dev/null, so it
    # is the formatting and the write(2), not a disk).
    GW_STDERR=/dev/null start_gateway gwlog LGW_ACCESS_LOG=1 --
    GWLOG=$GW_PORT GWLOG_PID=$GW_PID
fi
NGINX=
if [ $QUICK = 0 ] && command -v nginx >/dev/null; then
    NGINX=$(free_port)
    mkdir -p "$TMP/nginx"
    sed -e "s|@PREFIX@|$TMP/nginx|g" -e "s|@PORT@|$NGINX|g" bench/nginx.conf.in >"$TMP/nginx/nginx.conf"
    nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx.out" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    if wait_ok "http://127.0.0.1:$NGINX/"; then
        NGINX_WORKERS=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
    else
        cat "$TMP/nginx.out" "$TMP/nginx/error.log" >&2
        SKIPPED+=("nginx: did not start (see above)")
        NGINX=
    fi
else
    SKIPPED+=("nginx: $([ $QUICK = 1 ] && echo 'not in --quick' || echo 'not installed')")
fi
PEER=
PEER_FN=lgw-bench-peer-bench-echo
PEER_PATH=/2015-03-31/functions/$PEER_FN/invocations
if [ $QUICK = 0 ] && [ -x "$PEER_DIR/node_modules/.bin/serverless" ]; then
    PEER=$(free_port)
    (
        cd "$PEER_DIR"
        # Telemetry, update checks and notifications off; dummy credentials; loopback only.
        exec env SLS_TELEMETRY_DISABLED=1 SLS_TRACKING_DISABLED=1 SLS_NOTIFICATIONS_MODE=off \
            SLS_DEPRECATION_DISABLE='*' SLS_INTERACTIVE_SETUP_DISABLE=1 \
            AWS_ACCESS_KEY_ID=AKIDBENCHMARK AWS_SECRET_ACCESS_KEY=bench-secret-not-a-real-key \
            AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
            node_modules/.bin/serverless offline start --host 127.0.0.1 \
            --httpPort "$(free_port)" --lambdaPort "$PEER" --websocketPort "$(free_port)" \
            --albPort "$(free_port)" --useInProcess --noTimeout
    ) >"$TMP/peer.out" 2>&1 &
    PEER_PID=$!
    PIDS+=("$PEER_PID")
    if ! wait_ok "http://127.0.0.1:$PEER$PEER_PATH"; then
        tail -20 "$TMP/peer.out" >&2
        SKIPPED+=("serverless-offline: did not start (see above)")
        PEER=
    fi
else
    SKIPPED+=("serverless-offline: $([ $QUICK = 1 ] && echo 'not in --quick' || echo 'not installed (bench/peer: npm ci)')")
fi
wait_ok "http://127.0.0.1:$GW$ECHO"
[ -z "$NGINX" ] || warm "http://127.0.0.1:$NGINX/"
warm "http://127.0.0.1:$GW$ECHO"
[ $QUICK = 1 ] || warm "http://127.0.0.1:$GWLOG$ECHO"
[ -z "$PEER" ] || warm "http://127.0.0.1:$PEER$PEER_PATH"
for r in $(seq "$ROUNDS"); do
    log "round $r/$ROUNDS"
    if [ -n "$NGINX" ]; then
        SERVER_PIDS="$NGINX_WORKERS" run_wrk nginx "http://127.0.0.1:$NGINX/" $THREADS $CONNS "$D"
    fi
    SERVER_PIDS=$GW_MAIN_PID run_wrk gw_invoke "http://127.0.0.1:$GW$ECHO" $THREADS $CONNS "$D"
    SERVER_PIDS=$GW_MAIN_PID run_wrk gw_face "http://127.0.0.1:$GW$FACE" $THREADS $CONNS "$D"
    if [ $QUICK = 0 ]; then
        SERVER_PIDS=$GWLOG_PID run_wrk gw_invoke_log "http://127.0.0.1:$GWLOG$ECHO" $THREADS \
            $CONNS "$D"
    fi
    if [ -n "$PEER" ]; then
        SERVER_PIDS=$PEER_PID run_wrk peer "http://127.0.0.1:$PEER$PEER_PATH" $THREADS $CONNS "$D"
    fi
done
[ -z "$PEER" ] || echo "peer_rss_kib=$(rss_kib "$PEER_PID")" >>"$DATA/meta.env"
echo "gw_rss_kib_after_echo=$(rss_kib "$GW_MAIN_PID")" >>"$DATA/meta.env"
stop_all

# ---- 3: forwarding ------------------------------------------------------------------------------
log "3. forwarding: lambda mode -> upstream gateway (local mode)"
start_gateway upstream LGW_ACCESS_LOG=0 --
UP=$GW_PORT UP_PID=$GW_PID
echo '{"mode": "lambda", "allow": ["echo", "sleep"], "access_log": false}' >"$TMP/lambda.json"
start_gateway lambda AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$UP" -- --config "$TMP/lambda.json"
LAM=$GW_PORT LAM_PID=$GW_PID
wait_ok "http://127.0.0.1:$LAM$ECHO"
# For reference, nginx as a plain reverse proxy in front of the same upstream: what one more hop
# costs here when the hop signs nothing and parses nothing.
NPROXY=
if [ $QUICK = 0 ] && command -v nginx >/dev/null; then
    NPROXY=$(free_port)
    mkdir -p "$TMP/nginx-proxy"
    sed -e "s|@PREFIX@|$TMP/nginx-proxy|g" -e "s|@PORT@|$NPROXY|g" -e "s|@UPSTREAM@|$UP|g" \
        bench/nginx-proxy.conf.in >"$TMP/nginx-proxy/nginx.conf"
    nginx -p "$TMP/nginx-proxy" -c "$TMP/nginx-proxy/nginx.conf" >"$TMP/nginx-proxy.out" 2>&1 &
    NPROXY_PID=$!
    PIDS+=("$NPROXY_PID")
    if wait_ok "http://127.0.0.1:$NPROXY/"; then
        NPROXY_WORKERS=$(pgrep -P "$NPROXY_PID" | tr '\n' ' ')
        warm "http://127.0.0.1:$NPROXY/"
    else
        cat "$TMP/nginx-proxy.out" "$TMP/nginx-proxy/error.log" >&2
        SKIPPED+=("nginx proxy: did not start (see above)")
        NPROXY=
    fi
fi
warm "http://127.0.0.1:$UP$FACE"
warm "http://127.0.0.1:$LAM$ECHO"
for r in $(seq "$ROUNDS"); do
    log "round $r/$ROUNDS"
    SERVER_PIDS=$UP_PID run_wrk fwd_direct "http://127.0.0.1:$UP$FACE" $THREADS $CONNS "$D"
    SERVER_PIDS="$LAM_PID $UP_PID" run_wrk fwd_lambda "http://127.0.0.1:$LAM$ECHO" $THREADS \
        $CONNS "$D"
    if [ -n "$NPROXY" ]; then
        SERVER_PIDS="$NPROXY_WORKERS $UP_PID" run_wrk fwd_nginx "http://127.0.0.1:$NPROXY/" \
            $THREADS $CONNS "$D"
    fi
done
# Added latency: one caller, one connection, each request after the previous answer.
for r in $(seq "$ROUNDS"); do
    SERVER_PIDS=$UP_PID run_wrk lat_direct "http://127.0.0.1:$UP$FACE" 1 1 "$LAT_D"
    SERVER_PIDS="$LAM_PID $UP_PID" run_wrk lat_lambda "http://127.0.0.1:$LAM$ECHO" 1 1 "$LAT_D"
    if [ -n "$NPROXY" ]; then
        SERVER_PIDS="$NPROXY_WORKERS $UP_PID" run_wrk lat_nginx "http://127.0.0.1:$NPROXY/" 1 1 \
            "$LAT_D"
    fi
done
stop_all

# ---- 4: slow functions, many callers -----------------------------------------------------------
log "4. slow functions: $SLOW_CONNS callers of sleep {\"ms\":100} through lambda mode"
# The upstream holds every call open on its own worker thread (the sleep handler blocks one).
start_gateway slowup LGW_ACCESS_LOG=0 LGW_MAX_WORKERS=$((SLOW_CONNS + 100)) \
    LGW_SYNC_QUEUE_MAX=$((SLOW_CONNS * 2)) --
SUP=$GW_PORT SUP_PID=$GW_PID
start_gateway slowlambda AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$SUP" -- --config "$TMP/lambda.json"
SLAM=$GW_PORT SLAM_PID=$GW_PID
SLOW_BODY='{"ms":100}'
wait_ok "http://127.0.0.1:$SLAM/invoke/sleep" "$SLOW_BODY"
if [ "$WARM" -gt 0 ]; then # start the upstream's workers and the lambda side's connections
    BENCH_BODY=$SLOW_BODY timeout 40 wrk -t2 -c"$SLOW_CONNS" -d${WARM}s --timeout 5s \
        -s bench/wrk.lua "http://127.0.0.1:$SLAM/invoke/sleep" >/dev/null 2>&1 || true
fi
SERVER_PIDS="$SLAM_PID $SUP_PID" run_wrk slow_lambda "http://127.0.0.1:$SLAM/invoke/sleep" 2 \
    "$SLOW_CONNS" "$SLOW_D" "$SLOW_BODY"
if [ $QUICK = 0 ]; then
    SERVER_PIDS=$SUP_PID run_wrk slow_direct "http://127.0.0.1:$SUP/invoke/sleep" 2 \
        "$SLOW_CONNS" "$SLOW_D" "$SLOW_BODY"
fi
{
    echo "slow_callers=$SLOW_CONNS"
    echo "slow_lambda_rss_kib=$(rss_kib "$SLAM_PID")"
    echo "slow_upstream_threads=$(sed -n 's/^Threads:[[:space:]]*//p' "/proc/$SUP_PID/status")"
} >>"$DATA/meta.env"
stop_all
# The same through lambda mode in front of bench/slowup.c, a one-thread upstream that holds every
# call on a timer: what lambda mode itself can do when the upstream is not the limit.
"$BB/slowup" -s $((SLOW_D * 3 + 60)) >"$TMP/slowup.out" 2>&1 &
IUP_PID=$!
PIDS+=("$IUP_PID")
for _ in $(seq 100); do
    IUP=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\) .*|\1|p' "$TMP/slowup.out")
    [ -n "$IUP" ] && break
    sleep 0.05
done
start_gateway ideallambda AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$IUP" -- --config "$TMP/lambda.json"
ILAM=$GW_PORT ILAM_PID=$GW_PID
wait_ok "http://127.0.0.1:$ILAM/invoke/sleep" "$SLOW_BODY"
if [ "$WARM" -gt 0 ]; then
    BENCH_BODY=$SLOW_BODY timeout 40 wrk -t2 -c"$SLOW_CONNS" -d${WARM}s --timeout 5s \
        -s bench/wrk.lua "http://127.0.0.1:$ILAM/invoke/sleep" >/dev/null 2>&1 || true
fi
SERVER_PIDS=$ILAM_PID run_wrk slow_lambda_ideal "http://127.0.0.1:$ILAM/invoke/sleep" 2 \
    "$SLOW_CONNS" "$SLOW_D" "$SLOW_BODY"
if [ $QUICK = 0 ]; then
    SERVER_PIDS=$IUP_PID run_wrk slow_ideal_direct \
        "http://127.0.0.1:$IUP/2015-03-31/functions/sleep/invocations" 2 "$SLOW_CONNS" "$SLOW_D" \
        "$SLOW_BODY"
fi
stop_all

# ---- 5: memory ---------------------------------------------------------------------------------
log "5. memory: idle, then $MEM_CONNS busy keep-alive connections for ${MEM_S}s"
# Every connection has a call in flight at once: the call queue must hold them all, or some are
# (rightly) throttled with 429 instead of being served.
start_gateway mem LGW_ACCESS_LOG=0 LGW_SYNC_QUEUE_MAX=$((MEM_CONNS + 1000)) --
MEM=$GW_PORT MEM_PID=$GW_PID
sleep "$PAUSE"
echo "mem_rss_kib_started=$(rss_kib "$MEM_PID")" >>"$DATA/meta.env"
wait_ok "http://127.0.0.1:$MEM$ECHO"
sleep "$PAUSE"
echo "mem_rss_kib_idle=$(rss_kib "$MEM_PID")" >>"$DATA/meta.env"
echo "mem_anon_kib_idle=$(anon_kib "$MEM_PID")" >>"$DATA/meta.env"
timeout $((MEM_S + 60)) "$BB/connhold" -p "$MEM" -c "$MEM_CONNS" -s "$MEM_S" -P "$MEM_PID" \
    >"$TMP/connhold.txt" 2>&1 || true
sed -n 's/^CONNHOLD //p' "$TMP/connhold.txt" >"$DATA/connhold.json"
[ -s "$DATA/connhold.json" ] || {
    cat "$TMP/connhold.txt" >&2
    echo '{"failed":true}' >"$DATA/connhold.json"
}
sleep "$PAUSE"
echo "mem_rss_kib_after_close=$(rss_kib "$MEM_PID")" >>"$DATA/meta.env"
echo "mem_threads=$(sed -n 's/^Threads:[[:space:]]*//p' "/proc/$MEM_PID/status")" >>"$DATA/meta.env"
stop_all

# ---- 6: cold start -----------------------------------------------------------------------------
log "6. cold start: $COLD_RUNS runs"
env LGW_ACCESS_LOG=0 "$BB/coldstart" -n "$COLD_RUNS" -- "$BIN" --listen 127.0.0.1:0 \
    >"$TMP/coldstart.txt" 2>&1 || true
sed -n 's/^COLDSTART //p' "$TMP/coldstart.txt" >"$DATA/coldstart.json"
[ -s "$DATA/coldstart.json" ] || {
    cat "$TMP/coldstart.txt" >&2
    echo '{"failed":true}' >"$DATA/coldstart.json"
}

# ---- 7: SigV4 ----------------------------------------------------------------------------------
log "7. SigV4 signing, ${SIG_S}s"
"$BB/sigv4_bench" "$SIG_S" >"$DATA/sigv4.txt" 2>&1 || true

# ---- the report --------------------------------------------------------------------------------
echo "uptime_end=$(uptime)" >>"$DATA/meta.env"
printf '%s\n' "${SKIPPED[@]}" >"$DATA/skipped.txt"
if [ -z "$OUT" ]; then
    if [ $QUICK = 1 ]; then OUT=$TMP/results; else OUT=bench/results; fi
fi
mkdir -p "$OUT"
STAMP=$(date +%Y-%m-%d-%H%M)
python3 bench/report.py --data "$DATA" --out "$OUT/$STAMP"
if [ $QUICK = 1 ]; then
    cat "$OUT/$STAMP.md"
else
    log "wrote $OUT/$STAMP.md, .json, .png"
fi
