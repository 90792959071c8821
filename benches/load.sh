#!/usr/bin/env bash
# Load comparison of rpx against nginx, one core each, same origin, same run.
#
# Builds rpx, the bench origin and the handshake client in release, starts
# the origin, then in turn rpx (--threads 1) and nginx (worker_processes 1),
# each pinned to PROXY_CPU, proxying to the origin with keep-alive on both
# sides. Two scenarios, each with its own rpx and nginx processes:
#   plain  wrk, pinned to CLIENT_CPU, loads each over plain HTTP with a
#          12-byte body (/small) and a 1 MiB body (/big); then /small
#          through a group with one server down (failover), and through a
#          location with `allow`/`deny` and `limit_req` (guarded, a rate
#          no request reaches): what access checks cost per request.
#   tls    the same proxies terminating TLS (same ECDSA P-256 certificate,
#          made with openssl in the temp dir): wrk over https with
#          keep-alive on /small (tls-small), then src/bin/handshake.rs, one
#          new connection per request with resumption off, so that each is
#          a full handshake (tls-handshake). wrk -H "Connection: close" is
#          no substitute: it resumes its session on every reconnect.
#   gzip   the origin's 100 KiB JSON document (/json) through both proxies
#          compressing it, gzip_comp_level 1 (/gzip1/json) and 6
#          (/gzip6/json), wrk sending Accept-Encoding: gzip. rpx and nginx
#          read the same nginx config file. Before loading, curl checks that
#          each level answers Content-Encoding: gzip and that the body
#          decompresses to the origin's bytes; the compressed sizes are shown.
# Prints one table: requests/s (handshakes/s), p99 latency, MiB/s and the
# proxy's CPU time per request (per handshake) for both proxies and the
# rpx/nginx ratio, with the targets of issues 2 and 4 and of the gzip issue.
#
# Everything listens on 127.0.0.1 on free ports; everything started is
# stopped on exit. Settings (environment):
#   DURATION=10s     wrk duration of each measured run
#   WARMUP=2s        wrk duration of the unmeasured run before each proxy's runs
#   CONNECTIONS=32   wrk connections
#   WRK_THREADS=1    wrk threads
#   ROUNDS=1         rounds of rpx-then-nginx; the table shows the medians
#                    (use 3 or more on a machine shared with other work)
#   PROXY_CPU=1      core both proxies are pinned to (one at a time)
#   CLIENT_CPU=0     core wrk is pinned to
#   ORIGIN_CPU       core of the origin: 2 when the machine has 3 cores or
#                    more, else CLIENT_CPU (shared with wrk)
#   NGINX_BUFFERING=on  nginx's proxy_buffering (on is nginx's default; rpx
#                    always streams, which is nginx's `off`)
#   SCENARIOS=plain,tls,gzip  which scenarios to run, in this order
#   HS_CONNECTIONS=16  concurrent connections of the handshake client
#   HS_TLS=any       TLS version of the handshake client: 1.2, 1.3 or any
#                    (any: both offered, 1.3 negotiated)
#   NGINX=nginx WRK=wrk  the programs to use
#   BUILD=pgo        which rpx: pgo (scripts/build-pgo, a release build
#                    optimised with a profile of a training load; the
#                    production build) or release (plain cargo build --release)
#   SKIP_BUILD=1     use the binaries already built
#   KEEP=dir         keep each run's wrk output (PROXY.CASE.ROUND.wrk) and the
#                    proxy's CPU ticks (.cpu) there, for per-round figures
set -euo pipefail

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}
ROUNDS=${ROUNDS:-1}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || {
    echo "load.sh: ROUNDS must be a positive integer" >&2
    exit 1
}
PROXY_CPU=${PROXY_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
if [[ -z ${ORIGIN_CPU:-} ]]; then
    if (($(nproc) >= 3)); then ORIGIN_CPU=2; else ORIGIN_CPU=$CLIENT_CPU; fi
fi
NGINX_BUFFERING=${NGINX_BUFFERING:-on}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
WRK=${WRK:-wrk}
SCENARIOS=${SCENARIOS:-plain,tls,gzip}
HS_CONNECTIONS=${HS_CONNECTIONS:-16}
HS_TLS=${HS_TLS:-any}
BUILD=${BUILD:-pgo}
case $BUILD in
    pgo | release) ;;
    *)
        echo "load.sh: BUILD must be pgo or release" >&2
        exit 1
        ;;
esac
scenarios=()
IFS=, read -r -a wanted <<<"$SCENARIOS"
for sc in "${wanted[@]}"; do
    case $sc in
        plain | tls | gzip) scenarios+=("$sc") ;;
        *)
            echo "load.sh: unknown scenario '$sc' in SCENARIOS (plain, tls, gzip)" >&2
            exit 1
            ;;
    esac
done
((${#scenarios[@]})) || {
    echo "load.sh: SCENARIOS is empty" >&2
    exit 1
}
has_tls=
[[ ,$SCENARIOS, != *,tls,* ]] || has_tls=1
has_gzip=
[[ ,$SCENARIOS, != *,gzip,* ]] || has_gzip=1
# The levels the gzip scenario measures, each behind /gzipN/.
gzip_levels=(1 6)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
source "$root/benches/lib.sh"
target=${CARGO_TARGET_DIR:-$root/target}
[[ $target == /* ]] || target=$root/$target

tools=("$NGINX" "$WRK" taskset)
[[ -z $has_tls ]] || tools+=(openssl)
[[ -z $has_gzip ]] || tools+=(curl gzip cmp)
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || {
        echo "load.sh: $tool not found (Debian: apt-get install nginx-light wrk util-linux openssl" \
            "curl gzip diffutils)" >&2
        exit 1
    }
done

if [[ -z ${SKIP_BUILD:-} ]]; then
    echo "building rpx, the origin and the handshake client (release)..." >&2
    (cd "$root" && cargo build --release --quiet --bin rpx --bin origin --bin handshake)
    [[ $BUILD == release ]] || "$root/scripts/build-pgo" >/dev/null
fi
if [[ $BUILD == pgo ]]; then rpx_bin=$target/pgo/release/rpx; else rpx_bin=$target/release/rpx; fi
[[ -x $rpx_bin ]] || {
    echo "load.sh: $rpx_bin not built (run without SKIP_BUILD)" >&2
    exit 1
}
origin_bin=$target/release/origin
handshake_bin=$target/release/handshake

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rpx-load.XXXXXX")
pids=()

cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n ${KEEP:-} ]]; then
        mkdir -p "$KEEP" && cp "$tmp"/*.wrk "$tmp"/*.cpu "$KEEP"/ 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop PID: ends one process started here and forgets it.
stop() {
    local pid=$1 p keep=()
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${pids[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    pids=("${keep[@]+"${keep[@]}"}")
}

# wait_port PORT PID: waits (at most 10 s) until 127.0.0.1:PORT accepts.
wait_port() {
    local port=$1 pid=$2 i
    for ((i = 0; i < 100; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "load.sh: nothing accepts on 127.0.0.1:$port" >&2
    return 1
}

# free_port: a port on 127.0.0.1 nothing listens on, below the ephemeral
# range: a port from that range can be taken between this probe and the
# proxy's bind by any outgoing connection (wrk's, a proxy's to the origin),
# and nginx then fails with EADDRINUSE. The proxy that binds it fails
# loudly if another process takes it in between all the same.
free_port() {
    local i port lo _hi span
    read -r lo _hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
    span=$((lo - 10000))
    ((span >= 1000)) || span=1000
    for ((i = 0; i < 50; i++)); do
        port=$((10000 + RANDOM % span))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "load.sh: no free port found" >&2
    return 1
}

# --- origin ---------------------------------------------------------------
taskset -c "$ORIGIN_CPU" "$origin_bin" 127.0.0.1:0 >"$tmp/origin.out" 2>"$tmp/origin.out.err" &
pids+=($!)
origin=$(wait_line "$tmp/origin.out" "${pids[-1]}")

# --- configs --------------------------------------------------------------
# The failover scenario: a group of two servers, one of them down (nothing
# listens on its port), behind /fo/. Both proxies take the dead one out after
# its first failure (max_fails=1) and retry that request on the live one.
dead=127.0.0.1:$(free_port)
cat >"$tmp/rpx.plain.toml" <<EOF
[[server]]
listen = "127.0.0.1:0"
# As nginx's config below: wrk keeps its connections for the whole run.
keepalive_requests = 1000000

  [[server.location]]
  path = "/"
  proxy_pass = "http://origin"

  [[server.location]]
  path = "/fo/"
  proxy_pass = "http://failover/"

  # As nginx's /lim/: an address list and a rate limit nothing reaches.
  [[server.location]]
  path = "/lim/"
  proxy_pass = "http://origin/"
  allow = "127.0.0.0/8"
  deny = "all"
  rate_limit = { zone = "bench", burst = 1000000, nodelay = true }

[limit_zone.bench]
key = "\$binary_remote_addr"
rate = "100000000r/s"

# The same groups as nginx's config below.
[upstream.origin]
servers = ["$origin"]
keepalive = 32
keepalive_requests = 1000000

[upstream.failover]
servers = ["$origin max_fails=1 fail_timeout=10s", "$dead max_fails=1 fail_timeout=10s"]
keepalive = 32
keepalive_requests = 1000000
EOF

if [[ -n $has_tls ]]; then
    # One self-signed ECDSA P-256 certificate for both proxies.
    self_signed_cert "$tmp" || exit 1
    cat >"$tmp/rpx.tls.toml" <<EOF
[[server]]
listen = "127.0.0.1:0 ssl"
keepalive_requests = 1000000
ssl_certificate = "$tmp/cert.pem"
ssl_certificate_key = "$tmp/key.pem"

  [[server.location]]
  path = "/"
  proxy_pass = "http://origin"

[upstream.origin]
servers = ["$origin"]
keepalive = 32
keepalive_requests = 1000000
EOF
fi

# nginx_conf SCENARIO PORT: nginx's config for SCENARIO, listening on PORT,
# in $tmp/nginx/nginx.SCENARIO.conf.
nginx_conf() {
    local listen="listen 127.0.0.1:$2;" tls=""
    if [[ $1 == tls ]]; then
        listen="listen 127.0.0.1:$2 ssl;"
        tls="ssl_certificate $tmp/cert.pem;
        ssl_certificate_key $tmp/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;"
    fi
    cat >"$tmp/nginx/nginx.$1.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/client_body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    # wrk keeps its connections for the whole run, as rpx lets it.
    keepalive_requests 1000000;
    limit_req_zone \$binary_remote_addr zone=bench:10m rate=100000000r/s;
    upstream origin {
        server $origin;
        keepalive 32;
        keepalive_requests 1000000;
    }
    upstream failover {
        server $origin max_fails=1 fail_timeout=10s;
        server $dead max_fails=1 fail_timeout=10s;
        keepalive 32;
        keepalive_requests 1000000;
    }
    server {
        $listen
        $tls
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering $NGINX_BUFFERING;
        }
        location /lim/ {
            allow 127.0.0.0/8;
            deny all;
            limit_req zone=bench burst=1000000 nodelay;
            proxy_pass http://origin/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering $NGINX_BUFFERING;
        }
        location /fo/ {
            proxy_pass http://failover/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering $NGINX_BUFFERING;
        }
    }
}
EOF
}

# gzip_conf PORT: the gzip scenario's config, in nginx syntax, read by both
# proxies (rpx reads nginx configs; of the lines it has no use for it takes
# daemon and the temp paths silently and pid, worker_processes 1 and
# proxy_buffering on with a warning): /gzipN/ proxies to the origin and
# compresses application/json at level N. Both listen on PORT, one at a
# time.
gzip_conf() {
    local level locations=""
    for level in "${gzip_levels[@]}"; do
        locations+="
        location /gzip$level/ {
            gzip_comp_level $level;
            proxy_pass http://origin/;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffering $NGINX_BUFFERING;
        }"
    done
    cat >"$tmp/nginx/nginx.gzip.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/client_body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    keepalive_requests 1000000;
    upstream origin {
        server $origin;
        keepalive 32;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$1;
        gzip on;
        gzip_types application/json;
        gzip_proxied any;$locations
    }
}
EOF
}

mkdir -p "$tmp/nginx/logs"
declare -A nginx_port
for sc in "${scenarios[@]}"; do
    nginx_port[$sc]=$(free_port)
    if [[ $sc == gzip ]]; then
        gzip_conf "${nginx_port[$sc]}"
    else
        nginx_conf "$sc" "${nginx_port[$sc]}"
    fi
done

# The origin's JSON document as it sends it: what every compressed answer
# must decompress to.
if [[ -n $has_gzip ]]; then
    curl -sS --max-time 10 -o "$tmp/origin.json" -D "$tmp/origin.json.h" "http://$origin/json" || {
        echo "load.sh: the origin did not answer /json" >&2
        exit 1
    }
    if [[ $(stat -c %s "$tmp/origin.json") != 102400 ]] ||
        ! grep -qi '^content-type: application/json' "$tmp/origin.json.h"; then
        echo "load.sh: the origin's /json is not 102400 bytes of application/json:" >&2
        cat "$tmp/origin.json.h" >&2
        exit 1
    fi
fi

# --- measuring ------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)

# cpu_ticks PID: user + system CPU ticks of PID and its children (nginx's
# worker), threads included.
cpu_ticks() {
    local pid total=0 t
    for pid in "$1" $(pgrep -P "$1" || true); do
        t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}

# run_wrk NAME URL PID [WRK_ARGS...]: one wrk run, output in $tmp/NAME.wrk,
# and the proxy's CPU ticks during it in $tmp/NAME.cpu.
run_wrk() {
    local before after
    before=$(cpu_ticks "$3")
    if ! taskset -c "$CLIENT_CPU" "$WRK" -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" \
        --latency "${@:4}" "$2" >"$tmp/$1.wrk"; then
        echo "load.sh: wrk failed on $2:" >&2
        cat "$tmp/$1.wrk" >&2
        exit 1
    fi
    after=$(cpu_ticks "$3")
    echo $((after - before)) >"$tmp/$1.cpu"
    if grep -qE 'Non-2xx|Socket errors' "$tmp/$1.wrk"; then
        echo "load.sh: warning: $1: $(grep -E 'Non-2xx|Socket errors' "$tmp/$1.wrk" | tr -s ' ')" >&2
    fi
}

# run_hs NAME URL PID: one handshake-client run, output in $tmp/NAME.wrk
# (same format as wrk's), and the proxy's CPU ticks during it in
# $tmp/NAME.cpu. A resumed handshake would make the run meaningless.
run_hs() {
    local before after
    before=$(cpu_ticks "$3")
    if ! taskset -c "$CLIENT_CPU" "$handshake_bin" "$2" --duration "$DURATION" \
        --connections "$HS_CONNECTIONS" --tls "$HS_TLS" >"$tmp/$1.wrk" 2>&1; then
        echo "load.sh: the handshake client failed on $2:" >&2
        cat "$tmp/$1.wrk" >&2
        exit 1
    fi
    after=$(cpu_ticks "$3")
    echo $((after - before)) >"$tmp/$1.cpu"
    if ! grep -q '^resumed: 0$' "$tmp/$1.wrk"; then
        echo "load.sh: $1: resumed handshakes, so not all were full:" >&2
        cat "$tmp/$1.wrk" >&2
        exit 1
    fi
    if ! grep -q '^errors: 0$' "$tmp/$1.wrk"; then
        echo "load.sh: warning: $1: $(grep -E '^(errors|first error):' "$tmp/$1.wrk" | tr '\n' ' ')" >&2
    fi
    sed -n 's/^negotiated: /negotiated: /p' "$tmp/$1.wrk" | head -1 >"$tmp/$1.negotiated"
}

# warm_up URL [WRK_ARGS...]: an unmeasured wrk run.
warm_up() {
    taskset -c "$CLIENT_CPU" "$WRK" -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" \
        "${@:2}" "$1" >"$tmp/warmup.wrk" || {
        echo "load.sh: wrk failed on $1:" >&2
        cat "$tmp/warmup.wrk" >&2
        exit 1
    }
}

# measure_plain PROXY ROUND BASE_URL PID: warm-up, then the small and the
# big body, then the small body through the group with one server down.
measure_plain() {
    echo "round $2: loading $1 ($3): warm-up $WARMUP, then /small, /big and /fo/small for $DURATION each..." >&2
    warm_up "$3/small"
    run_wrk "$1.small.$2" "$3/small" "$4"
    run_wrk "$1.big.$2" "$3/big" "$4"
    run_wrk "$1.failover.$2" "$3/fo/small" "$4"
    run_wrk "$1.guarded.$2" "$3/lim/small" "$4"
}

# measure_tls PROXY ROUND BASE_URL PID: warm-up, then /small with
# keep-alive, then full handshakes, for DURATION each.
measure_tls() {
    echo "round $2: loading $1 ($3): warm-up $WARMUP, then /small with keep-alive and" \
        "full handshakes for $DURATION each..." >&2
    warm_up "$3/small"
    run_wrk "$1.tls-small.$2" "$3/small" "$4"
    run_hs "$1.tls-handshake.$2" "$3/small" "$4"
}

# check_gzip PROXY ROUND BASE_URL: fails unless every level's location
# answers 200 with Content-Encoding: gzip and a body that decompresses to
# the origin's document; keeps the compressed size in
# $tmp/PROXY.gzip-N.ROUND.size.
check_gzip() {
    local level url got=$tmp/check.gz head=$tmp/check.h
    for level in "${gzip_levels[@]}"; do
        url=$3/gzip$level/json
        rm -f "$got" "$head"
        if ! curl -sS --max-time 10 -H 'Accept-Encoding: gzip' -D "$head" -o "$got" "$url"; then
            echo "load.sh: $1 did not answer $url" >&2
            exit 1
        fi
        if ! head -1 "$head" | grep -q ' 200'; then
            echo "load.sh: $1 answered $url with:" >&2
            cat "$head" >&2
            exit 1
        fi
        if ! grep -qi '^content-encoding: *gzip' "$head"; then
            echo "load.sh: $1 answered $url without Content-Encoding: gzip" \
                "($(stat -c %s "$got") bytes): the gzip figures would measure an uncompressed body" >&2
            cat "$head" >&2
            exit 1
        fi
        if ! gzip -dc <"$got" | cmp -s - "$tmp/origin.json"; then
            echo "load.sh: $1's gzip answer to $url does not decompress to the origin's /json" >&2
            exit 1
        fi
        stat -c %s "$got" >"$tmp/$1.gzip-$level.$2.size"
    done
}

# measure_gzip PROXY ROUND BASE_URL PID: the gzip check, a warm-up, then
# each level for DURATION, wrk asking for gzip.
measure_gzip() {
    local level
    check_gzip "$1" "$2" "$3"
    echo "round $2: loading $1 ($3): warm-up $WARMUP, then /json with Accept-Encoding: gzip" \
        "at levels ${gzip_levels[*]} for $DURATION each..." >&2
    warm_up "$3/gzip${gzip_levels[0]}/json" -H 'Accept-Encoding: gzip'
    for level in "${gzip_levels[@]}"; do
        run_wrk "$1.gzip-$level.$2" "$3/gzip$level/json" "$4" -H 'Accept-Encoding: gzip'
    done
}

# load_rpx|load_nginx SCENARIO ROUND: start that proxy, measure, stop it.
load_rpx() {
    local scheme=http out config=$tmp/rpx.$1.toml
    [[ $1 != tls ]] || scheme=https
    # gzip: the very file nginx reads.
    [[ $1 != gzip ]] || config=$tmp/nginx/nginx.gzip.conf
    # A new output file each round and scenario: the readiness wait must
    # not read the line of a previous rpx.
    out=$tmp/rpx.$1.$2.out
    RUST_LOG=warn taskset -c "$PROXY_CPU" "$rpx_bin" run --config "$config" \
        --threads 1 >"$out" 2>"$out.err" &
    pids+=($!)
    local rpx_pid=${pids[-1]}
    local rpx_addr
    rpx_addr=$(wait_line "$out" "$rpx_pid")
    "measure_$1" rpx "$2" "$scheme://$rpx_addr" "$rpx_pid"
    stop "$rpx_pid"
}

load_nginx() {
    local scheme=http
    [[ $1 != tls ]] || scheme=https
    taskset -c "$PROXY_CPU" "$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.$1.conf" \
        -e "$tmp/nginx/error.log" >"$tmp/nginx.out" 2>&1 &
    pids+=($!)
    local nginx_pid=${pids[-1]}
    wait_port "${nginx_port[$1]}" "$nginx_pid" || {
        cat "$tmp/nginx.out" "$tmp/nginx/error.log" >&2 2>/dev/null || true
        exit 1
    }
    "measure_$1" nginx "$2" "$scheme://127.0.0.1:${nginx_port[$1]}" "$nginx_pid"
    stop "$nginx_pid"
}

# Odd rounds load rpx first, even rounds nginx first: whatever the machine
# does over a round's minute falls on both alike.
for ((round = 1; round <= ROUNDS; round++)); do
    for sc in "${scenarios[@]}"; do
        if ((round % 2)); then
            load_rpx "$sc" "$round"
            load_nginx "$sc" "$round"
        else
            load_nginx "$sc" "$round"
            load_rpx "$sc" "$round"
        fi
    done
done

# --- report ---------------------------------------------------------------
# metric FILE rps|p99|mibs|cpu: requests/s, p99 in ms, transfer in MiB/s
# (wrk's units are binary: KB = KiB, MB = MiB), proxy CPU µs per request.
metric() {
    local ticks=0
    [[ $2 != cpu ]] || ticks=$(cat "${1%.wrk}.cpu")
    awk -v want="$2" -v ticks="$ticks" -v clk="$clk_tck" '
        function ms(v) {
            if (v ~ /us$/) return v * 0.001
            if (v ~ /ms$/) return v + 0
            if (v ~ /s$/) return v * 1000
            if (v ~ /m$/) return v * 60000
            return v + 0
        }
        function mib(v) {
            if (v ~ /GB$/) return v * 1024
            if (v ~ /MB$/) return v + 0
            if (v ~ /KB$/) return v / 1024
            return v / 1048576
        }
        want == "rps" && $1 == "Requests/sec:" { printf "%.0f", $2 }
        want == "p99" && $1 == "99%" { printf "%.2f", ms($2) }
        want == "mibs" && $1 == "Transfer/sec:" { printf "%.2f", mib($2) }
        want == "cpu" && $2 == "requests" && $3 == "in" && $1 > 0 {
            printf "%.1f", ticks * 1000000 / clk / $1
        }
    ' "$1"
}

# median PROXY BODY METRIC: "MEDIAN SPREAD" over the rounds, SPREAD being
# (max - min) / median in percent.
median() {
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        metric "$tmp/$1.$2.$r.wrk" "$3"
        echo
    done | sort -g | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%s %.0f\n", m, (m > 0) ? (v[NR] - v[1]) * 100 / m : 0
    }'
}

# ratio_median A B METRIC DIGITS: the median over the rounds of each
# round's A/B ratio (A, B: a run's name without its round). A round's runs
# are a minute apart at most, so a shared machine's slow minutes weigh on
# both sides of each ratio.
ratio_median() {
    local r a b
    for ((r = 1; r <= ROUNDS; r++)); do
        a=$(metric "$tmp/$1.$r.wrk" "$3")
        b=$(metric "$tmp/$2.$r.wrk" "$3")
        awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f\n", (b > 0) ? a / b : 0 }'
    done | sort -g | awk -v d="$4" '{ v[NR] = $1 } END {
        printf "%." d "f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

# paired BODY METRIC: the median of the rounds' own rpx/nginx ratios.
paired() {
    ratio_median "rpx.$1" "nginx.$1" "$2" 2
}

echo
echo "rpx vs nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'): one core each (proxy cpu $PROXY_CPU," \
    "wrk cpu $CLIENT_CPU, origin cpu $ORIGIN_CPU), wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION," \
    "nginx proxy_buffering $NGINX_BUFFERING, median of $ROUNDS round(s), rpx build: $BUILD"
if [[ -n $has_tls ]]; then
    echo "tls: ECDSA P-256 certificate; tls-small: wrk as above over https;" \
        "tls-handshake: src/bin/handshake.rs -c$HS_CONNECTIONS -d$DURATION --tls $HS_TLS," \
        "a new connection per request, resumption off;" \
        "rpx $(cat "$tmp/rpx.tls-handshake.1.negotiated" 2>/dev/null | sed 's/negotiated: //')," \
        "nginx $(cat "$tmp/nginx.tls-handshake.1.negotiated" 2>/dev/null | sed 's/negotiated: //')"
fi
if [[ -n $has_gzip ]]; then
    sizes=""
    for level in "${gzip_levels[@]}"; do
        sizes+=" level $level: rpx $(cat "$tmp/rpx.gzip-$level.1.size") B,"
        sizes+=" nginx $(cat "$tmp/nginx.gzip-$level.1.size") B,"
        sizes+=" gzip(1) -$level $(gzip -c "-$level" <"$tmp/origin.json" | wc -c) B;"
    done
    echo "gzip: /json 102400 B of application/json, wrk -H 'Accept-Encoding: gzip';" \
        "compressed size (round 1):${sizes%;}"
fi
echo "rpx/nginx: ratio of the medians; paired: median of the rounds' own ratios, which the targets are" \
    "judged on"
printf '%-13s %-20s %11s %11s %9s %7s  %-20s %s\n' body metric rpx nginx rpx/nginx paired \
    "target" "spread rpx/nginx"
rows=()
for sc in "${scenarios[@]}"; do
    case $sc in
        plain) rows+=(small/rps small/p99 small/mibs small/cpu big/rps big/p99 big/mibs big/cpu
            failover/rps failover/p99 failover/cpu guarded/rps guarded/cpu) ;;
        tls) rows+=(tls-small/rps tls-small/p99 tls-small/cpu tls-handshake/rps tls-handshake/p99
            tls-handshake/cpu) ;;
        gzip) for level in "${gzip_levels[@]}"; do
            rows+=("gzip-$level/rps" "gzip-$level/p99" "gzip-$level/mibs" "gzip-$level/cpu")
        done ;;
    esac
done
for row in "${rows[@]}"; do
    body=${row%/*} m=${row#*/}
    read -r r r_spread < <(median rpx "$body" "$m")
    read -r n n_spread < <(median nginx "$body" "$m")
    pr=$(paired "$body" "$m")
    case $body/$m in
        small/rps | tls-small/rps | tls-handshake/rps | gzip-*/rps) target=">= 1.00" ;;
        tls-handshake/cpu) target="<= 1.00" ;;
        big/mibs) target=">= 1.50" ;;
        small/p99 | big/p99) target="<= 1.00" ;;
        *) target="" ;;
    esac
    awk -v body="$body" -v m="$m" -v r="$r" -v n="$n" -v target="$target" \
        -v spread="$r_spread%/$n_spread%" -v pr="$pr" 'BEGIN {
        hs = (body == "tls-handshake")
        if (m == "rps") label = hs ? "handshakes/s" : "requests/s"
        else if (m == "p99") label = hs ? "p99 connection ms" : "p99 latency ms"
        else if (m == "mibs") label = "transfer MiB/s"
        else label = hs ? "proxy CPU us/hs" : "proxy CPU us/req"
        ratio = (n > 0) ? r / n : 0
        verdict = ""
        if (target != "") {
            split(target, t, " ")
            ok = (t[1] == ">=") ? (pr >= t[2]) : (pr <= t[2])
            verdict = target (ok ? "  ok" : "  MISSED")
        }
        fmt = (m == "rps") ? "%11.0f" : (m == "cpu") ? "%11.1f" : "%11.2f"
        if (target == "") verdict = "-"
        printf "%-13s %-20s " fmt " " fmt " %9.2f %7.2f  %-20s %s\n", body, label, r, n, ratio, pr,
            verdict, spread
    }'
done

if [[ " ${scenarios[*]} " == *" plain "* ]]; then
    echo
    for p in rpx nginx; do
        echo "$p: CPU per request with allow/deny and limit_req over without (guarded/small, paired):" \
            "$(ratio_median "$p.guarded" "$p.small" cpu 3) (issue 25's target for rpx: < 1.05)"
    done
fi
