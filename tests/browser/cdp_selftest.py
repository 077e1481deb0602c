#!/usr/bin/env python3
"""Drives headless Chromium over the DevTools protocol (with Python's `websockets`):
opens URL, waits in real time (at most TIMEOUT seconds) until the page's #result
element reports "SELFTEST: ...", prints it and exits 0 only on "SELFTEST: PASS".

Usage: cdp_selftest.py CHROMIUM PROFILE_DIR URL
"""

import asyncio
import itertools
import json
import re
import subprocess
import sys
import time

from websockets.asyncio.client import connect

TIMEOUT = 45
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0",
]


class Cdp:
    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method, params=None, session=None):
        msg_id = next(self.ids)
        message = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        await self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})


async def drive(endpoint, url):
    async with connect(endpoint, max_size=None) as ws:
        cdp = Cdp(ws)
        target = await cdp.call("Target.createTarget", {"url": "about:blank"})
        session = (await cdp.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}))["sessionId"]
        await cdp.call("Page.enable", session=session)
        await cdp.call("Page.navigate", {"url": url}, session=session)
        deadline = time.monotonic() + TIMEOUT
        text = ""
        while time.monotonic() < deadline:
            result = await cdp.call("Runtime.evaluate", {
                "expression": "(document.getElementById('result') || {}).textContent || ''",
                "returnByValue": True,
            }, session=session)
            text = result.get("result", {}).get("value", "")
            if "SELFTEST:" in text:
                break
            await asyncio.sleep(0.2)
        log = await cdp.call("Runtime.evaluate", {
            "expression": "(document.getElementById('log') || {}).textContent || ''",
            "returnByValue": True,
        }, session=session)
        return text, log.get("result", {}).get("value", "")


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    chromium, profile, url = sys.argv[1:]
    proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = None
        deadline = time.monotonic() + TIMEOUT
        while endpoint is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                endpoint = match.group(1)
        if endpoint is None:
            print("FAIL chromium did not expose the DevTools endpoint")
            return 1
        text, log = asyncio.run(drive(endpoint, url))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(text.strip())
    if "SELFTEST: PASS" not in text:
        print("--- page log")
        print(log.strip())
        if "SELFTEST:" not in text:
            print(f"FAIL the page reported nothing within {TIMEOUT} s")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
