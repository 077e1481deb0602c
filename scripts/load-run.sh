#!/usr/bin/env bash
# The load run (BENCHMARKS.md, "Load run"): the example server (wsctx) and a bare axum
# server doing the same JWT check without wsctx, measured one after the other in the same
# run by the same load generator over loopback.
#
#   bash scripts/load-run.sh [CONNECTIONS] [ROUNDS]
#
# Prints one table row per server and round. Only 127.0.0.1 is contacted; every phase of
# the load generator has a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

connections="${1:-10000}"
rounds="${2:-3}"
export WSCTX_JWT_SECRET="load-run-secret-$(date +%s%N)-$RANDOM-$RANDOM-$RANDOM"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build --release --features axum,jwt,metrics --example server --example bare_server --example loadgen >&2
bin=target/release/examples

run() { # label port command...
  local label=$1 port=$2
  shift 2
  "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  "$bin/loadgen" --url "ws://127.0.0.1:$port/ws" --connections "$connections" \
    --server-pid "$pid" --label "$label" --aud wsctx --iss wsctx-demo || true
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

echo "| server | connected | handshakes/s | p50 ms | p99 ms | server bytes/socket | delivered | misdelivered | 6th tab refused |"
echo "|---|---|---|---|---|---|---|---|---|"
for _ in $(seq "$rounds"); do
  run wsctx 18080 "$bin/server" --addr 127.0.0.1:18080 --max-per-user 5
  run bare 18090 "$bin/bare_server" --addr 127.0.0.1:18090
done
