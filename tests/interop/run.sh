#!/usr/bin/env bash
# Interop: builds the example server and runs tests/interop/interop.py against it.
# Needs: python3 with `websockets` and `PyJWT` (pip install -r tests/interop/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --example server --features axum,jwt,metrics
python3 tests/interop/interop.py "${CARGO_TARGET_DIR:-target}/debug/examples/server"
