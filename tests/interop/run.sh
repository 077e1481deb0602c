#!/usr/bin/env bash
# Interop: builds the example server (with cluster mode) and runs, against it,
# tests/interop/interop.py (one node; then a JWKS run) and tests/interop/cluster.py (three
# nodes on a private redis-server).
# Needs: python3 with `websockets` and `PyJWT` (pip install -r tests/interop/requirements.txt),
# and redis-server (scripts/ensure-redis.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --example server --features axum,jwt,metrics,redis
server="${CARGO_TARGET_DIR:-target}/debug/examples/server"
python3 tests/interop/interop.py "$server"
python3 tests/interop/cluster.py "$server"
