#!/usr/bin/env bash
# Makes sure the cluster tests can start `redis-server` (7.0 or newer) and `redis-cli`.
#
# When either is missing (and WSCTX_REDIS_SERVER does not name a binary), installs
# Debian's `redis-server` and `redis-tools` as root, keeping the package's own daemon on
# 6379 from starting (and stopping it if it started anyway); otherwise stops with a
# message that says what to install. Called by scripts/test.sh and by .ci/run.
set -euo pipefail

have_redis() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1
}

install_redis() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: redis-server and redis-cli are needed by the cluster tests, and installing them needs root." >&2
    echo "       Install them (Debian/Ubuntu: sudo apt-get install redis-server redis-tools)," >&2
    echo "       or point WSCTX_REDIS_SERVER at a redis-server binary (7.0 or newer), then run this again." >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: redis-server is missing and this is not a Debian-like system (no apt-get)." >&2
    echo "       Install Redis 7.0 or newer, or set WSCTX_REDIS_SERVER to its redis-server binary." >&2
    exit 1
  fi
  echo "installing redis-server and redis-tools from Debian's packages"
  # The package starts its own daemon on 6379 when installed; a policy-rc.d that
  # answers 101 keeps it from starting (the tests never use it).
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
  fi
  local status=0
  {
    apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        redis-server redis-tools >/dev/null
  } || status=$?
  if [ "$created_policy" -eq 1 ]; then
    rm -f "$policy"
  fi
  if [ "$status" -ne 0 ]; then
    echo "error: apt-get could not install redis-server and redis-tools (exit $status)." >&2
    exit 1
  fi
  # If the daemon started anyway (an init system that ignores policy-rc.d), stop it:
  # this install started it, and nothing here needs it.
  local pidfile=/run/redis/redis-server.pid
  if [ -s "$pidfile" ]; then
    if command -v service >/dev/null 2>&1; then
      service redis-server stop >/dev/null 2>&1 || true
    fi
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      kill "$(cat "$pidfile")" || true
    fi
  fi
}

if [ -z "${WSCTX_REDIS_SERVER:-}" ] && ! have_redis; then
  install_redis
fi
if [ -z "${WSCTX_REDIS_SERVER:-}" ]; then
  echo "cluster tests use $(redis-server --version | head -n 1)"
fi
