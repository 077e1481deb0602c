#!/usr/bin/env python3
"""Cluster end to end: three example-server processes on one private Redis, driven by
Python's `websockets` and `PyJWT`.

Usage: cluster.py PATH_TO_SERVER_BINARY (built with the feature `redis`)

Starts a private `redis-server` on a free loopback port (never the packaged daemon), then
three servers with `--redis` and one shared secret. One user's five tabs are spread over
the three nodes, and a second user has a tab too. Checks: a chat message from any tab
reaches all five tabs once and the other user never; a sixth tab is refused with HTTP
429 on every node (the limit counts every node); a run started on one node reports every
event to all five tabs once, in order, at the same positions; a tab that drops resumes
on another node without loss; `POST /signout` on one node closes the tabs on all three
with 4401; `/healthz` says `degraded` on a node while Redis is stopped and `ok` after.

Prints 'N passed, N failed' and exits non-zero on any failure.
"""

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from interop import (RUN, TIMEOUT, check, close_code, follows, free_port, join, mint, position_of,
                     post_run, recv_json, results)

NODES = 3
TABS = 5


def start_redis(directory):
    binary = os.environ.get("WSCTX_REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        raise RuntimeError("redis-server was not found (scripts/ensure-redis.sh installs it)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", directory],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def start_node(binary, secret, redis_url, hashing_key):
    port = free_port()
    env = dict(os.environ, WSCTX_JWT_SECRET=secret, WSCTX_REDIS_URL=redis_url,
               WSCTX_ADDR=f"127.0.0.1:{port}", WSCTX_HASHING_KEY=hashing_key)
    proc = subprocess.Popen([binary, "--max-per-user", str(TABS)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, port


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.read().decode().strip()
    except OSError as error:
        return f"error {error}"


def wait_ok(ports, procs):
    deadline = time.time() + 60
    while time.time() < deadline:
        if all(healthz(port) == "ok" for port in ports):
            return True
        if any(proc.poll() is not None for proc in procs):
            return False
        time.sleep(0.1)
    return False


def sign_out(port, token):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/signout", method="POST",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return json.loads(response.read().decode())


async def quiet(ws, seconds=0.3):
    """True when nothing arrives within `seconds`."""
    try:
        await asyncio.wait_for(ws.recv(), seconds)
        return False
    except asyncio.TimeoutError:
        return True


async def main(ports, secret, redis_proc):
    urls = [f"ws://127.0.0.1:{port}/ws" for port in ports]
    alice, bob = mint(secret, "user-alice-cluster"), mint(secret, "user-bob-cluster")
    auth = {"additional_headers": {"Authorization": f"Bearer {alice}"}}
    tabs = []
    for i in range(TABS):
        ws, _, position = await join(urls[i % NODES], **auth)
        tabs.append((ws, position))
    bob_ws, _, _ = await join(urls[1], additional_headers={"Authorization": f"Bearer {bob}"})

    # Chat from a tab on each node: every tab gets each message once, bob none.
    for sender in range(NODES):
        text = f"hello from node {sender}"
        await tabs[sender][0].send(text)
        got = [await recv_json(ws) for ws, _ in tabs]
        check(all(frame.get("type") == "message" and frame.get("text") == text for frame in got),
              f"chat: a message from node {sender} reached all {TABS} tabs on {NODES} nodes")
    check(all([await quiet(ws) for ws, _ in tabs]), "chat: each message arrived once")
    check(await quiet(bob_ws), "chat: the other user got nothing")

    # A sixth tab anywhere: 429, the limit counts every node.
    for node, url in enumerate(urls):
        try:
            extra = await connect(url, open_timeout=TIMEOUT, **auth)
            await extra.close()
            check(False, f"limit: a sixth tab on node {node} was refused")
        except InvalidStatus as error:
            check(error.response.status_code == 429, f"limit: a sixth tab on node {node} gets 429 "
                  f"({error.response.status_code})")

    # A run started on node C reaches every tab: the same events at the same positions.
    status, _ = post_run(f"http://127.0.0.1:{ports[2]}", alice)
    check(status == 202, "run: started on node C")
    seen = []
    for ws, position in tabs:
        events = []
        ordered = True
        for _ in RUN:
            frame = await recv_json(ws)
            ordered &= follows(frame, position)
            position = position_of(frame)
            events.append((frame.get("event"), position))
        seen.append(events)
        check(ordered and [name for name, _ in events] == RUN, "run: a tab got every event once, in order")
    check(all(events == seen[0] for events in seen), "run: every tab saw the same positions")

    # A tab on node A drops mid-run and resumes on node B: nothing lost, nothing twice.
    ws, position = tabs[0]
    status, _ = post_run(f"http://127.0.0.1:{ports[1]}", alice)
    frame = await recv_json(ws)
    position = position_of(frame)
    ws.transport.abort()
    await asyncio.sleep(1.5)
    resumed_ws = await connect(f"{urls[1]}?resume={position}", open_timeout=TIMEOUT, **auth)
    welcome = await recv_json(resumed_ws)
    names = [frame.get("event")]
    ordered = True
    while len(names) < len(RUN):
        frame = await recv_json(resumed_ws)
        if frame.get("type") == "resumed":
            continue
        ordered &= follows(frame, position)
        position = position_of(frame)
        names.append(frame.get("event"))
    check(welcome.get("type") == "welcome" and ordered and names == RUN,
          "resume: a tab dropped on node A resumed on node B with every event once")
    tabs[0] = (resumed_ws, position)
    for ws, _ in tabs[1:]:
        for _ in RUN:
            await recv_json(ws)

    # Sign out on node B: every tab on every node closes with 4401.
    done = sign_out(ports[1], alice)
    check(done.get("cluster") is True, f"signout: redis took the disconnect ({done})")
    codes = [await close_code(ws) for ws, _ in tabs]
    check(codes == [4401] * TABS, f"signout: all {TABS} tabs on {NODES} nodes closed with 4401 ({codes})")
    check(await quiet(bob_ws), "signout: the other user's tab stayed open")

    # Redis stopped: /healthz says degraded; continued: ok again.
    redis_proc.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(0.2)
        state = healthz(ports[0])
        check(state.startswith("degraded"), f"healthz: degraded while Redis is stopped ({state!r})")
    finally:
        redis_proc.send_signal(signal.SIGCONT)
    deadline = time.time() + 20
    while healthz(ports[0]) != "ok" and time.time() < deadline:
        await asyncio.sleep(0.2)
    check(healthz(ports[0]) == "ok", "healthz: ok again once Redis is back")
    await bob_ws.close()


def run():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    secret = secrets.token_hex(32)
    hashing_key = secrets.token_hex(32)  # the same on every node
    directory = tempfile.mkdtemp(prefix="wsctx-cluster-e2e-")
    redis_proc, redis_port = start_redis(directory)
    procs, ports = [], []
    try:
        for _ in range(NODES):
            proc, port = start_node(binary, secret, f"redis://127.0.0.1:{redis_port}", hashing_key)
            procs.append(proc)
            ports.append(port)
        if not check(wait_ok(ports, procs), f"start: {NODES} nodes answer /healthz ok"):
            for proc in procs:
                if proc.poll() is not None and proc.stdout:
                    print(proc.stdout.read())
        else:
            try:
                asyncio.run(main(ports, secret, redis_proc))
            except Exception as error:  # a crash is a failure, reported as one
                check(False, f"unexpected {type(error).__name__}: {error}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            output = proc.stdout.read() if proc.stdout else ""
            if secret in output or "user-alice-cluster" in output:
                check(False, "a node printed the secret or a user id")
        redis_proc.kill()
        redis_proc.wait()
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 and results["passed"] > 0 else 1


if __name__ == "__main__":
    sys.exit(run())
