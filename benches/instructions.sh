#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: a
# figure that does not move with the load of a shared machine, for
# comparing two builds of rpx where wall-clock runs (load.sh) are too noisy.
#
# Starts the bench origin and rpx (--threads 1) under valgrind's callgrind,
# sends N1 then N2 keep-alive GET /small requests (8 connections, python3
# client) in two separate runs, and prints (Ir(N2) - Ir(N1)) / (N2 - N1):
# start-up and shutdown cancel out. Kernel time is not counted.
#
# Needs valgrind and python3 (apt-get install -y valgrind python3).
# Settings: RPX=path to the rpx binary (default: the release build),
# N1=1000 N2=11000, SKIP_BUILD=1, KEEP=dir (keep the callgrind files there,
# for callgrind_annotate).
# Everything listens on 127.0.0.1 on free ports and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

N1=${N1:-1000}
N2=${N2:-11000}
RPX=${RPX:-target/release/rpx}
if [[ -z ${SKIP_BUILD:-} ]]; then
    cargo build --release --quiet --bin rpx --bin origin
fi
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

target/release/origin 127.0.0.1:0 >"$tmp/origin.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    origin=$(grep -m1 -o 'listening on [0-9.:]*' "$tmp/origin.out" | sed 's/listening on //' || true)
    [[ -n $origin ]] && break
    sleep 0.1
done
[[ -n $origin ]] || { echo "instructions.sh: origin did not start" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/rpx.toml" <<EOF
[[server]]
listen = "127.0.0.1:$port"
keepalive_requests = 1000000
  [[server.location]]
  path = "/"
  proxy_pass = "http://$origin"
EOF

cat >"$tmp/client.py" <<'EOF'
import asyncio, sys
port, total, conns = int(sys.argv[1]), int(sys.argv[2]), 8
req = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
async def one(n):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(n):
        w.write(req)
        head = await r.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
        await r.readexactly(length)
    w.close()
async def main():
    await asyncio.gather(*[one(total // conns) for _ in range(conns)])
asyncio.run(main())
EOF

# Ir of a whole rpx run that serves $1 requests.
count() {
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$1" \
        "$RPX" run --threads 1 --config "$tmp/rpx.toml" >"$tmp/rpx.$1.out" 2>&1 &
    local vp=$!
    pids+=("$vp")
    local ready=""
    for _ in $(seq 300); do
        if grep -q "listening on" "$tmp/rpx.$1.out"; then ready=1; break; fi
        sleep 0.1
    done
    [[ -n $ready ]] || { echo "instructions.sh: rpx did not start" >&2; exit 1; }
    python3 "$tmp/client.py" "$port" "$1"
    kill -TERM "$vp"
    wait "$vp" || true
    grep -oE "^summary: [0-9]+" "$tmp/cg.$1" | grep -oE "[0-9]+"
}
a=$(count "$N1")
b=$(count "$N2")
if [[ -n ${KEEP:-} ]]; then
    mkdir -p "$KEEP" && cp "$tmp"/cg.* "$KEEP"/
fi
echo "user-space instructions per proxied request: $(((b - a) / (N2 - N1)))"
