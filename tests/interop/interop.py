#!/usr/bin/env python3
"""Interop test: the example server binary against Python's `websockets` and `PyJWT`.

Usage: interop.py PATH_TO_SERVER_BINARY

Starts the server on a free 127.0.0.1 port with a fresh secret, mints its own tokens,
and checks: connect (header and subprotocol token), delivery to every tab of a user and
to no other user, a run (POST /runs) whose tab drops mid-run without a close handshake and
resumes with ?resume= (every event once, in order), four rejections (HTTP 401 before the
upgrade, close 4400 after it, HTTP 400 for a malformed resume point, HTTP 429 for a sixth
tab), and a clean shutdown with 1012 on SIGTERM.

Then the JWKS run: a key set (RS256, ES256 and EdDSA keys made with `cryptography`, plus
a 1024-bit RSA key the server must refuse) is served by a local HTTP server, the server
is started with `--jwks-url`, and PyJWT signs tokens with a `kid`: each algorithm
connects; a wrong key, an unknown `kid` and the refused key are 401 VALIDATION_FAILED;
forged `kid`s cause no fetch storm; a server whose key set URL fails does not start.

Prints 'N passed, N failed' and exits non-zero on any failure.
"""

import asyncio
import base64
import http.server
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

AUDIENCE = "wsctx"
ISSUER = "wsctx-demo"
TIMEOUT = 5

results = {"passed": 0, "failed": 0}


def check(ok, what):
    status = "PASS" if ok else "FAIL"
    print(f"{status} {what}", flush=True)
    results["passed" if ok else "failed"] += 1
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mint(secret, sub, exp_in=600, **extra):
    claims = {"sub": sub, "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + exp_in}
    claims.update(extra)
    return jwt.encode(claims, secret, algorithm="HS256")


def b64url(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def recv_json(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def join(url, **kwargs):
    """Connects; returns the socket, its welcome frame and its position ("epoch.seq")."""
    ws = await connect(url, open_timeout=TIMEOUT, **kwargs)
    welcome = await recv_json(ws)
    position = await recv_json(ws)
    if position.get("type") != "position":
        raise AssertionError(f"expected a position frame, got {position}")
    return ws, welcome, f"{position['epoch']}.{position['seq']}"


def post_run(http_base, token):
    request = urllib.request.Request(f"{http_base}/runs", method="POST",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.status, json.loads(response.read().decode())


RUN = ["agent_started", "agent_thinking", "agent_thinking", "tool_executing",
       "tool_completed", "agent_thinking", "agent_completed"]


def follows(frame, position):
    epoch, seq = position.split(".")
    return frame.get("type") == "event" and frame.get("epoch") == epoch and frame.get("seq") == int(seq) + 1


async def close_code(ws):
    """Reads until the socket closes; its close code, or "open" after TIMEOUT."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    except asyncio.TimeoutError:
        return "open"


def position_of(frame):
    return f"{frame['epoch']}.{frame['seq']}"


async def run_with_a_drop(base, http_base, token):
    """Starts a run, drops the socket (no close handshake) after two events, waits while
    the run goes on, resumes, and checks every event arrived once and in order."""
    ws, _, position = await join(f"{base}/ws", additional_headers={"Authorization": f"Bearer {token}"})
    status, run = post_run(http_base, token)
    check(status == 202 and run.get("run_id", "").startswith("run_"), f"run: POST /runs accepted ({status})")
    events = []
    ordered = True
    for _ in range(2):
        frame = await recv_json(ws)
        ordered &= follows(frame, position)
        position = position_of(frame)
        events.append(frame)
    ws.transport.abort()  # the connection drops: no close frame
    await asyncio.sleep(1.0)
    ws = await connect(f"{base}/ws?resume={position}", additional_headers={"Authorization": f"Bearer {token}"},
                       open_timeout=TIMEOUT)
    welcome = await recv_json(ws)
    missed = None
    while missed is None:
        frame = await recv_json(ws)
        if frame.get("type") == "resumed":
            missed = frame.get("missed")
            break
        ordered &= follows(frame, position)
        position = position_of(frame)
        events.append(frame)
    while len(events) < len(RUN):
        frame = await recv_json(ws)
        ordered &= follows(frame, position)
        position = position_of(frame)
        events.append(frame)
    names = [e.get("event") for e in events]
    check(welcome.get("type") == "welcome", "resume: welcome first")
    check(isinstance(missed, int) and missed >= 1, f"resume: {missed} missed events replayed")
    check(names == RUN and ordered, f"resume: every event once, in order ({names})")
    check(all(e.get("run_id") == run["run_id"] and "user-" not in json.dumps(e) for e in events),
          "resume: events carry the run's ids and no user id")
    check(await expect_silence(ws), "resume: nothing after the run")
    await ws.close()


async def expect_silence(ws, seconds=0.4):
    try:
        frame = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return True
    print(f"  unexpected frame: {frame}")
    return False


async def expect_http_refusal(url, headers, status, code, secret_parts):
    try:
        async with connect(url, additional_headers=headers, open_timeout=TIMEOUT):
            return check(False, f"HTTP {status} {code}: connection was accepted")
    except InvalidStatus as error:
        response = error.response
        body = response.body.decode() if response.body else ""
        try:
            frame = json.loads(body)
        except ValueError:
            frame = {}
        leaks = [p for p in secret_parts if p and p in body]
        return check(
            response.status_code == status and frame.get("code") == code and not leaks,
            f"HTTP {status} {code} before the upgrade (got {response.status_code} {frame.get('code')}, leaks {leaks})",
        )


async def main(server, base, http_base, secret, proc):
    alice = mint(secret, "user-alice-7f3a")
    bob = mint(secret, "user-bob-2b9c")

    # Connect: a bearer header and a subprotocol token.
    a1, w1, p1 = await join(f"{base}/ws", additional_headers={"Authorization": f"Bearer {alice}"})
    check(w1.get("type") == "welcome" and w1.get("client_id", "").startswith("ws_"), "bearer header: welcome")
    check(len(p1.split(".")[0]) == 16, f"bearer header: position frame {p1}")
    a2, w2, _ = await join(f"{base}/ws", subprotocols=["wsctx.v1", f"jwt.{b64url(alice)}"])
    check(w2.get("type") == "welcome", "subprotocol token: welcome")
    check(a2.subprotocol == "wsctx.v1", f"subprotocol token: selected {a2.subprotocol!r}, never the jwt. entry")
    b1, wb, _ = await join(f"{base}/ws?thread_id=py-thread-1", additional_headers={"Authorization": f"Bearer {bob}"})
    check(wb.get("thread_id") == "py-thread-1", "query context: thread_id taken from the query")

    # Delivery: every tab of alice, nobody else.
    await a1.send("hello from python")
    m1, m2 = await recv_json(a1), await recv_json(a2)
    expected = {"type": "message", "from": w1["client_id"], "text": "hello from python"}
    check(m1 == expected and m2 == expected, "delivery: both of alice's tabs get the message")
    check(await expect_silence(b1), "isolation: bob gets nothing of alice's")
    await b1.send("bob only")
    check((await recv_json(b1)).get("text") == "bob only", "delivery: bob gets his own message")
    check(await expect_silence(a1) and await expect_silence(a2), "isolation: alice gets nothing of bob's")

    # A run for bob: his tab drops mid-run and resumes; alice's tabs get none of it.
    await run_with_a_drop(base, http_base, bob)
    check(await expect_silence(a1) and await expect_silence(a2), "isolation: alice gets nothing of bob's run")

    # Rejection 1: expired token, HTTP 401 before the upgrade.
    expired = mint(secret, "user-alice-7f3a", exp_in=-3600)
    await expect_http_refusal(f"{base}/ws", {"Authorization": f"Bearer {expired}"}, 401, "TOKEN_EXPIRED",
                              [expired, expired.rsplit(".", 1)[-1], "user-alice-7f3a"])

    # Rejection 2: a placeholder subject on the browser route, close 4400 after the upgrade.
    placeholder = mint(secret, "test")
    async with connect(f"{base}/ws/browser", subprotocols=["wsctx.v1", f"jwt.{b64url(placeholder)}"], open_timeout=TIMEOUT) as ws:
        frame = await recv_json(ws)
        try:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            check(False, "close 4400: socket stayed open")
        except ConnectionClosed as closed:
            rcvd = closed.rcvd
            check(frame.get("type") == "error" and frame.get("code") == "INVALID_CONTEXT", "close 4400: error frame first")
            check(rcvd is not None and rcvd.code == 4400 and rcvd.reason == "invalid_context:user_id"
                  and placeholder not in rcvd.reason,
                  f"close 4400 invalid_context:user_id after the upgrade (got {rcvd and rcvd.code} {rcvd and rcvd.reason!r})")

    # Rejection 3: a malformed resume point, HTTP 400 INVALID_CONTEXT.
    await expect_http_refusal(f"{base}/ws?resume=not-a-point", {"Authorization": f"Bearer {alice}"}, 400,
                              "INVALID_CONTEXT", [alice, "not-a-point", "user-alice-7f3a"])

    # Rejection 4: the sixth tab of alice, HTTP 429 with Retry-After.
    extra = []
    for _ in range(3):
        ws, _, _ = await join(f"{base}/ws", additional_headers={"Authorization": f"Bearer {alice}"})
        extra.append(ws)
    await expect_http_refusal(f"{base}/ws", {"Authorization": f"Bearer {alice}"}, 429, "CONNECTION_LIMIT",
                              [alice, "user-alice-7f3a"])

    with urllib.request.urlopen(f"{http_base}/metrics", timeout=TIMEOUT) as response:
        metrics = response.read().decode()
    check("wsctx_connections_active 6" in metrics and "alice" not in metrics,
          "metrics: 6 active sockets, no user id")

    # Shutdown: SIGTERM closes every socket with 1012, the process exits 0.
    proc.send_signal(signal.SIGTERM)
    codes = [await close_code(ws) for ws in [a1, a2, b1, *extra]]
    check(codes == [1012] * 6, f"shutdown: every socket closed with 1012 (got {codes})")
    try:
        exit_code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        exit_code = "still running"
    check(exit_code == 0, f"shutdown: the server exits 0 (got {exit_code})")


# ---- JWKS run ---------------------------------------------------------------------------


def public_jwk(private_key, algorithm, kid):
    """The public JWK of `private_key` for `algorithm`, under `kid` (PyJWT's converters)."""
    jwk = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(private_key.public_key()))
    jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
    return jwk


class KeySetServer:
    """Serves a JWK set at /jwks.json (or 503 at /down.json) and counts the fetches."""

    def __init__(self, keys):
        self.body = json.dumps({"keys": keys}).encode()
        self.fetches = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/jwks.json":
                    outer.fetches += 1
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(outer.body)))
                    self.end_headers()
                    self.wfile.write(outer.body)
                else:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path="/jwks.json"):
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.httpd.shutdown()


def start_server(binary, args, env):
    port = free_port()
    proc = subprocess.Popen([binary, "--addr", f"127.0.0.1:{port}", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    http_base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{http_base}/healthz", timeout=1) as response:
                if response.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.1)
    return proc, None


async def jwks_checks(base, keys, key_set):
    def token(key, algorithm, kid, sub, exp_in=600):
        claims = {"sub": sub, "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + exp_in}
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})

    for algorithm, kid in [("RS256", "rsa-1"), ("ES256", "ec-1"), ("EdDSA", "ed-1")]:
        signed = token(keys[kid], algorithm, kid, f"user-{kid}")
        try:
            async with connect(f"{base}/ws", additional_headers={"Authorization": f"Bearer {signed}"},
                               open_timeout=TIMEOUT) as ws:
                welcome = await recv_json(ws)
                check(welcome.get("type") == "welcome", f"jwks: {algorithm} token with kid {kid}: welcome")
        except Exception as error:  # noqa: BLE001 - reported as a failure
            check(False, f"jwks: {algorithm} token with kid {kid}: {type(error).__name__}: {error}")

    signed = token(keys["rsa-1"], "RS256", "rsa-1", "user-sub")
    async with connect(f"{base}/ws", subprotocols=["wsctx.v1", f"jwt.{b64url(signed)}"],
                       open_timeout=TIMEOUT) as ws:
        check((await recv_json(ws)).get("type") == "welcome", "jwks: subprotocol token: welcome")

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong_key = token(other, "RS256", "rsa-1", "user-rsa-1")
    await expect_http_refusal(f"{base}/ws", {"Authorization": f"Bearer {wrong_key}"}, 401,
                              "VALIDATION_FAILED", [wrong_key])
    with warnings.catch_warnings():  # PyJWT warns about the deliberately small key
        warnings.simplefilter("ignore")
        weak = token(keys["weak"], "RS256", "weak", "user-weak")
    await expect_http_refusal(f"{base}/ws", {"Authorization": f"Bearer {weak}"}, 401,
                              "VALIDATION_FAILED", [weak])
    expired = token(keys["rsa-1"], "RS256", "rsa-1", "user-rsa-1", exp_in=-3600)
    await expect_http_refusal(f"{base}/ws", {"Authorization": f"Bearer {expired}"}, 401,
                              "TOKEN_EXPIRED", [expired])

    before = key_set.fetches
    for i in range(30):
        forged = token(other, "RS256", f"forged-{i}-{secrets.token_hex(4)}", "user-rsa-1")
        if i == 0:
            await expect_http_refusal(f"{base}/ws", {"Authorization": f"Bearer {forged}"}, 401,
                                      "VALIDATION_FAILED", [forged])
        else:
            await quiet_refusal(base, forged)
    check(key_set.fetches - before <= 1,
          f"jwks: 30 forged kids cause at most one refetch (got {key_set.fetches - before})")


async def quiet_refusal(base, signed):
    try:
        async with connect(f"{base}/ws", additional_headers={"Authorization": f"Bearer {signed}"},
                           open_timeout=TIMEOUT):
            check(False, "jwks: a forged kid was accepted")
    except InvalidStatus as error:
        if error.response.status_code != 401:
            check(False, f"jwks: a forged kid got {error.response.status_code}")


def run_jwks(binary):
    keys = {
        "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec-1": ec.generate_private_key(ec.SECP256R1()),
        "ed-1": ed25519.Ed25519PrivateKey.generate(),
        "weak": rsa.generate_private_key(public_exponent=65537, key_size=1024),
    }
    algorithms = {"rsa-1": "RS256", "ec-1": "ES256", "ed-1": "EdDSA", "weak": "RS256"}
    key_set = KeySetServer([public_jwk(keys[kid], algorithms[kid], kid) for kid in keys])
    env = {k: v for k, v in os.environ.items() if k != "WSCTX_JWT_SECRET"}
    proc, port = start_server(binary, ["--jwks-url", key_set.url()], env)
    output = ""
    try:
        if port is None:
            check(False, "jwks: the server did not start")
        else:
            check(key_set.fetches == 1, f"jwks: the key set is loaded at start-up (fetches {key_set.fetches})")
            try:
                asyncio.run(jwks_checks(f"ws://127.0.0.1:{port}", keys, key_set))
            except Exception as error:  # a crash is a failure, reported as one
                check(False, f"jwks: unexpected {type(error).__name__}: {error}")
            proc.send_signal(signal.SIGTERM)
            try:
                check(proc.wait(timeout=10) == 0, "jwks: the server exits 0 on SIGTERM")
            except subprocess.TimeoutExpired:
                check(False, "jwks: the server did not stop")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        output = proc.stdout.read() if proc.stdout else ""
    check("key \"weak\" of the set is not used" in output,
          "jwks: the server reports the refused 1024-bit key at start-up")

    # A key set URL that fails: the server does not start (exit code 2).
    proc = subprocess.Popen([binary, "--addr", f"127.0.0.1:{free_port()}", "--jwks-url", key_set.url("/down.json")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = "still running"
    output = proc.stdout.read() if proc.stdout else ""
    check(code == 2 and "cannot load the key set" in output,
          f"jwks: a failing key set URL stops the server at start-up (exit {code})")
    key_set.close()


def run():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    secret = secrets.token_urlsafe(48)
    port = free_port()
    env = dict(os.environ, WSCTX_JWT_SECRET=secret)
    proc = subprocess.Popen([binary, "--addr", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    http_base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{http_base}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                print(proc.stdout.read() if proc.stdout else "")
                print("FAIL the server did not start")
                print("0 passed, 1 failed")
                return 1
            time.sleep(0.1)
        try:
            asyncio.run(main(binary, f"ws://127.0.0.1:{port}", http_base, secret, proc))
        except Exception as error:  # a crash is a failure, reported as one
            check(False, f"unexpected {type(error).__name__}: {error}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        output = proc.stdout.read() if proc.stdout else ""
        if secret in output:
            check(False, "the server printed its secret")
    run_jwks(binary)
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 and results["passed"] > 0 else 1


if __name__ == "__main__":
    sys.exit(run())
