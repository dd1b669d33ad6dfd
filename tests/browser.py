"""Opens an evidence viewer (index.html of an export bundle) in headless Chromium, the way an
auditor does, and checks it: the page loads from file:// without any network request and
without any console error or exception; a click on a command of the timeline moves the replay
to that command's moment and shows the command on the terminal. Saves a screenshot.

Usage: browser.py CHROMIUM PAGE SCREENSHOT COMMAND
Prints one JSON object (what was measured) on stdout; exits 1 with the reasons on stderr when
a check fails. Talks to Chromium over the DevTools protocol on 127.0.0.1 only (the websockets
package); downloads nothing.
"""

import asyncio
import base64
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import websockets

TIMEOUT = 30.0


class Browser:
    def __init__(self, socket):
        self.socket = socket
        self.next_id = 0
        self.pending = {}
        self.events = []
        self.waiters = []
        self.reader = asyncio.ensure_future(self.read())

    async def read(self):
        async for text in self.socket:
            message = json.loads(text)
            if "id" in message:
                future = self.pending.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
            else:
                self.events.append(message)
                for method, future in list(self.waiters):
                    if message.get("method") == method and not future.done():
                        future.set_result(message)

    async def call(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.socket.send(json.dumps(message))
        reply = await asyncio.wait_for(future, TIMEOUT)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def waiter(self, method):
        future = asyncio.get_running_loop().create_future()
        self.waiters.append((method, future))
        return future

    async def evaluate(self, session, expression):
        result = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def until(self, session, expression, what):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            value = await self.evaluate(session, expression)
            if value:
                return value
            await asyncio.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}")


def problems_in(events, page_url):
    """Console errors, exceptions, error log entries and requests that are not the page."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            texts = [arg.get("value", arg.get("description", "")) for arg in params.get("args", [])]
            found.append("console error: " + " ".join(str(text) for text in texts))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append(
                "exception: "
                + str(details.get("exception", {}).get("description", details.get("text")))
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            found.append("log error: " + params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if url != page_url and not url.startswith("data:"):
                found.append("network request: " + url)
    return found


async def check(chromium, page, screenshot, command):
    profile = tempfile.mkdtemp(prefix="sessionlake-chromium-")
    flags = [
        "--headless=new",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        "about:blank",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Chromium's sandbox refuses to run as root (containers, CI).
        flags.insert(0, "--no-sandbox")
    started = time.monotonic()
    process = subprocess.Popen(
        [chromium, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        port_file = pathlib.Path(profile, "DevToolsActivePort")
        deadline = time.monotonic() + TIMEOUT
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if process.poll() is not None:
                raise RuntimeError(
                    "chromium exited: " + process.stderr.read().decode(errors="replace")[-2000:]
                )
            if time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        async with websockets.connect(
            f"ws://127.0.0.1:{port}{path}", max_size=64 * 1024 * 1024
        ) as socket:
            browser = Browser(socket)
            target = await browser.call("Target.createTarget", {"url": "about:blank"})
            attached = await browser.call(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )
            session = attached["sessionId"]
            for domain in ("Runtime", "Log", "Network", "Page"):
                await browser.call(f"{domain}.enable", {}, session)
            await browser.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": 1280, "height": 1600, "deviceScaleFactor": 1, "mobile": False},
                session,
            )
            url = pathlib.Path(page).resolve().as_uri()
            loaded = browser.waiter("Page.loadEventFired")
            opened = time.monotonic()
            await browser.call("Page.navigate", {"url": url}, session)
            await asyncio.wait_for(loaded, TIMEOUT)
            rows = await browser.until(
                session,
                "window.sessionlakePlayer && document.querySelectorAll('#timeline tbody tr').length",
                "the timeline and the player",
            )
            load_seconds = time.monotonic() - opened
            # The row of the command, scrolled into view; a real mouse click at its centre.
            wanted = json.dumps(command)
            target_row = await browser.evaluate(
                session,
                f"""(() => {{
                  const row = [...document.querySelectorAll('#timeline tbody tr')]
                    .find(tr => tr.querySelector('td.command').textContent === {wanted});
                  if (!row) return null;
                  row.scrollIntoView({{block: 'center'}});
                  const box = row.querySelector('td.command').getBoundingClientRect();
                  return {{t: Number(row.dataset.t), x: box.left + box.width / 2,
                           y: box.top + box.height / 2}};
                }})()""",
            )
            if target_row is None:
                raise RuntimeError(f"no row of the timeline shows the command {command!r}")
            for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
                await browser.call(
                    "Input.dispatchMouseEvent",
                    {"type": kind, "x": target_row["x"], "y": target_row["y"],
                     "button": "left" if kind != "mouseMoved" else "none", "clickCount": 1},
                    session,
                )
            expected = target_row["t"]
            moved = await browser.until(
                session,
                f"""(() => {{
                  const t = window.sessionlakePlayer.getCurrentTime();
                  const text = (document.querySelector('.ap-term, .ap-terminal') || {{}}).textContent || '';
                  return Math.abs(t - {expected}) < 0.01 && text.includes({wanted})
                    ? {{t: t, current: document.querySelector('#timeline tr.current td.command').textContent}}
                    : null;
                }})()""",
                f"the player to reach {expected} s and show the command",
            )
            # Let the player draw the frame, then keep a picture of it.
            await asyncio.sleep(0.3)
            picture = await browser.call("Page.captureScreenshot", {"format": "png"}, session)
            pathlib.Path(screenshot).write_bytes(base64.b64decode(picture["data"]))
            problems = problems_in(browser.events, url)
            title = await browser.evaluate(session, "document.title")
            injected = await browser.evaluate(
                session, "document.querySelectorAll('#timeline img, #timeline script, body > img').length"
            )
            if injected:
                problems.append(f"{injected} elements injected into the page")
            result = {
                "rows": rows,
                "clicked": command,
                "expected_time": expected,
                "player_time": moved["t"],
                "current_row": moved["current"],
                "title": title,
                "load_seconds": round(load_seconds, 3),
                "total_seconds": round(time.monotonic() - started, 3),
                "screenshot": str(screenshot),
                "problems": problems,
            }
            browser.reader.cancel()
            return result
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    chromium, page, screenshot, command = sys.argv[1:5]
    try:
        result = asyncio.run(check(chromium, page, screenshot, command))
    except Exception as error:  # every failure is one line for the test's message
        print(f"browser check failed: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(result))
    if result["problems"]:
        print("\n".join(result["problems"]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
