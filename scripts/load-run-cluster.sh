#!/usr/bin/env bash
# The cluster load run (BENCHMARKS.md, "Cluster mode"): the example server as one node
# without Redis, as one node of a cluster, and as three nodes of a cluster behind one
# private redis-server, each measured by the same load generator over loopback (one
# user's 5 tabs spread over the nodes), with a sixth tab tried for 100 users.
#
#   bash scripts/load-run-cluster.sh [CONNECTIONS] [ROUNDS]
#
# Prints one table row per setup and round. Only 127.0.0.1 is contacted; every phase of
# the load generator has a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

connections="${1:-10000}"
rounds="${2:-1}"
export WSCTX_JWT_SECRET="load-run-secret-$(date +%s%N)-$RANDOM-$RANDOM-$RANDOM"
export WSCTX_HASHING_KEY="load-run-hashing-key-$(date +%s%N)-$RANDOM-$RANDOM"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build --release --features axum,jwt,metrics,redis --example server --example loadgen >&2
bin="${CARGO_TARGET_DIR:-target}/release/examples"

scratch="$(mktemp -d)"
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$scratch" \
  --maxclients 20000 >/dev/null &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null; rm -rf "$scratch"' EXIT
redis_url="redis://127.0.0.1:$redis_port"

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
wait_port "$redis_port"

run() { # label ports... (the servers are started with the flags in $flags)
  local label=$1
  shift
  local pids=() urls=()
  for port in "$@"; do
    # shellcheck disable=SC2086
    "$bin/server" --addr "127.0.0.1:$port" --max-per-user 5 $flags >/dev/null 2>&1 &
    pids+=("$!")
    urls+=("ws://127.0.0.1:$port/ws")
  done
  for port in "$@"; do wait_port "$port"; done
  "$bin/loadgen" --url "$(IFS=,; echo "${urls[*]}")" --connections "$connections" \
    --server-pid "$(IFS=,; echo "${pids[*]}")" --label "$label" --aud wsctx --iss wsctx-demo \
    --check-limit 100 || true
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  redis-cli -p "$redis_port" FLUSHALL >/dev/null
}

echo "| setup | connected | handshakes/s | p50 ms | p99 ms | server bytes/socket | delivered | misdelivered | 6th tab refused |"
echo "|---|---|---|---|---|---|---|---|---|"
for _ in $(seq "$rounds"); do
  flags="" run "one node, no Redis" 18180
  flags="--redis $redis_url" run "one node of a cluster" 18181
  flags="--redis $redis_url" run "three nodes of a cluster" 18182 18183 18184
done
