#!/usr/bin/env bash
# Browser test: headless Chromium loads the example server's page in self-test mode. The
# page connects with a token in the subprotocol, receives the welcome, sends a message to
# itself, refreshes its token (a fresh one from the demo-only POST /demo/token, sent as a
# refresh frame, answered "refreshed"), and observes two refused connections' close codes
# and reasons (4401 no_token, 4401 invalid_format). Then it starts an agent run
# (POST /runs), drops its live socket after two events (the page reconnects by itself with
# ?resume= and shows "resumed, n missed"), reloads itself after four (the reloaded page
# resumes from sessionStorage), and checks that the timeline shows every event of the run
# exactly once, in order; last, a stored position of another epoch makes the page say
# "gap — reload". It writes PASS/FAIL lines into the DOM; cdp_selftest.py reads
# them over the DevTools protocol and this script fails unless it reads "SELFTEST: PASS".
# Needs: Debian's `chromium` package (apt-get install -y chromium) and python3 with
# `websockets` (pip install -r tests/interop/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."

CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [[ -z "$CHROMIUM" ]]; then
  echo "FAIL browser test: chromium not found (apt-get install -y chromium)" >&2
  exit 1
fi

cargo build --quiet --example server --features axum,jwt,metrics,redis
SERVER="${CARGO_TARGET_DIR:-target}/debug/examples/server"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

export WSCTX_JWT_SECRET="browser-test-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
TOKEN="$("$SERVER" --mint-token user-alice-7f3a)"

# Port 0: the server picks a free port and prints it.
"$SERVER" --addr 127.0.0.1:0 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 100); do
  ADDR="$(sed -n 's|^wsctx example server listening on http://||p' "$WORK/server.log" | head -n1)"
  [[ -n "$ADDR" ]] && break
  sleep 0.1
done
if [[ -z "$ADDR" ]]; then
  echo "FAIL browser test: the server did not start" >&2
  cat "$WORK/server.log" >&2
  exit 1
fi

URL="http://$ADDR/#token=$TOKEN&selftest=1"
# Real time, not --virtual-time-budget: virtual time does not wait for WebSocket frames.
set +e
RESULT="$(python3 tests/browser/cdp_selftest.py "$CHROMIUM" "$WORK/profile" "$URL")"
STATUS=$?
set -e
echo "$RESULT"
if [[ $STATUS -ne 0 ]] || ! grep -q "SELFTEST: PASS" <<<"$RESULT"; then
  echo "FAIL browser test: the page did not report SELFTEST: PASS" >&2
  exit 1
fi
PASSED="$(grep -c '^PASS ' <<<"$RESULT" || true)"
echo "$PASSED passed, 0 failed"
