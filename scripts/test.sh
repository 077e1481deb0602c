#!/usr/bin/env bash
# The README's test command: every test, the Redis cluster tests included, for real.
#
# The cluster tests start their own `redis-server` processes on random loopback ports or
# unix sockets (never the packaged daemon on 6379). scripts/ensure-redis.sh installs
# Debian's `redis-server` and `redis-tools` first when they are missing (as root), or
# stops with a clear message. Extra arguments go to `cargo test`, e.g.
# `scripts/test.sh --test cluster_leases`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-redis.sh
exec cargo test --all-features "$@"
