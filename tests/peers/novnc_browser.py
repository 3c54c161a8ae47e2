"""Drives headless Chromium to noVNC's page and waits until noVNC reports a live VNC session.

Usage: novnc_browser.py URL [SCREENSHOT.png]
Starts Chromium with a fresh profile and an ephemeral DevTools port, opens URL, then asks the
page over the DevTools protocol (with the `websockets` client) for noVNC's state until
<html> carries `noVNC_connected`, which noVNC sets only after the RFB handshake and ServerInit
came back through the bridge. Prints `ok state=connected title=...`; exits non-zero with the
page's last state as soon as noVNC shows an error, or at the deadline. It polls rather than
sleeping a fixed time, so it ends as soon as the session is up (about a second here).
"""
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from websockets.asyncio.client import connect

# Chromium's first start on a cold 2-core machine takes a few seconds; noVNC then connects in
# well under one. Generous, since the loop ends as soon as the state is reached.
DEADLINE_SECONDS = 40
STATE_JS = """(() => {
    const status = document.getElementById('noVNC_status') || {};
    return JSON.stringify({cls: document.documentElement.className, title: document.title,
                           status: status.textContent || '', status_cls: status.className || ''});
})()"""
FLAGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root, where the sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",  # ephemeral; Chromium writes it to DevToolsActivePort
    "--window-size=1024,768",
]


def find_browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no chromium on PATH: run scripts/install-test-deps")


async def devtools_port(profile: str, browser: subprocess.Popen) -> int:
    active = os.path.join(profile, "DevToolsActivePort")
    while not os.path.exists(active) or os.path.getsize(active) == 0:
        if browser.poll() is not None:
            sys.exit(f"chromium exited early with {browser.returncode}")
        await asyncio.sleep(0.05)
    with open(active) as file:
        return int(file.readline())


def page_socket(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
        targets = json.load(reply)
    pages = [t for t in targets if t.get("type") == "page"]
    if not pages:
        sys.exit(f"no page target: {targets}")
    return pages[0]["webSocketDebuggerUrl"]


class Page:
    """One DevTools session on a page: numbered commands, answers matched by id."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def state(self) -> dict:
        result = await self.call("Runtime.evaluate", expression=STATE_JS, returnByValue=True)
        return json.loads(result["result"].get("value") or "{}")


async def wait_connected(url: str, screenshot: str | None) -> None:
    profile = tempfile.mkdtemp(prefix="wsgate-chromium-")
    browser = subprocess.Popen(
        [find_browser(), *FLAGS, f"--user-data-dir={profile}", url],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_SECONDS
        port = await asyncio.wait_for(devtools_port(profile, browser), DEADLINE_SECONDS)
        async with connect(page_socket(port), max_size=None) as ws:
            page = Page(ws)
            state = {}
            while loop.time() < deadline:
                state = await page.state()
                if "noVNC_connected" in state.get("cls", "").split():
                    break
                if "noVNC_status_error" in state.get("status_cls", "").split():
                    sys.exit(f"noVNC failed: {state}")
                await asyncio.sleep(0.1)
            else:
                sys.exit(f"noVNC never connected; last state {state}")
            if screenshot:
                shot = await page.call("Page.captureScreenshot", format="png")
                with open(screenshot, "wb") as file:
                    file.write(base64.b64decode(shot["data"]))
        print(f"ok state=connected title={state['title']!r} status={state['status']!r}")
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
        remove_profile(profile)


def remove_profile(profile: str) -> None:
    """Chromium's helper processes may still write to the profile for a moment after it exits."""
    for _ in range(50):
        shutil.rmtree(profile, ignore_errors=True)
        if not os.path.exists(profile):
            return
        time.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(wait_connected(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
