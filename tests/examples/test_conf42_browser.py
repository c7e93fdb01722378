"""Example 2 in a real browser: the conf42 page, run by headless Chromium, shows
what the native publisher (warren.messaging) sends.

Debian's ``chromium`` (installed by scripts/test.sh) is driven over the DevTools
protocol on a pipe (``--remote-debugging-pipe``: file descriptors 3 and 4 carry
NUL-terminated JSON), so there is no debugging port to find or race for, and no
browser is downloaded by a test tool. The page takes the broker's WebSocket URL
from its ``?broker=`` query string, which serve_page.py prints, so it reaches the
broker's ephemeral port. Every wait polls the page's DOM under a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import MakeBroker

ROOT = Path(__file__).resolve().parents[2]
CONF42 = ROOT / "examples" / "conf42"
CHROMIUM = "/usr/bin/chromium"
WAIT = 30.0  # seconds: an upper bound for anything the test waits for, never a delay
POLL = 0.05  # seconds between two looks at the DOM
COUNT = 3

# What the page shows: its status line and its list of messages (newest first).
PAGE_STATE = """JSON.stringify({
  status: document.getElementById("status")?.textContent ?? null,
  items: Array.from(document.querySelectorAll("#messages li"), li => li.textContent),
})"""


class BrowserError(AssertionError):
    pass


class Chromium:
    """Headless Chromium and a DevTools-protocol session with one page, over a pipe."""

    def __init__(self, profile: Path, log: Path) -> None:
        if not os.access(CHROMIUM, os.X_OK):
            pytest.fail(f"{CHROMIUM} not found: `apt-get install chromium` "
                        "(scripts/test.sh installs it)", pytrace=False)
        self.log = log
        to_child, self._to_browser = os.pipe()  # the browser reads commands on fd 3
        self._from_browser, from_child = os.pipe()  # ... and writes replies on fd 4

        def to_fds_3_and_4() -> None:  # runs in the child, between fork and exec
            read_end, write_end = os.dup(to_child), os.dup(from_child)
            os.dup2(read_end, 3)  # dup2'd descriptors are inheritable
            os.dup2(write_end, 4)

        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage",  # containers often have a small /dev/shm
                 f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
                close_fds=False,  # fds 3 and 4 must survive; Python's own fds are CLOEXEC
                preexec_fn=to_fds_3_and_4,
                start_new_session=True,  # its renderer and helpers share its process group
            )
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""
        try:
            targets = self.call("Target.getTargets")["targetInfos"]
            page = next((t["targetId"] for t in targets if t["type"] == "page"), None)
            if page is None:
                page = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget",
                                     {"targetId": page, "flatten": True})["sessionId"]
            self.call("Runtime.enable")  # console messages and uncaught exceptions
        except BaseException:
            self.close()
            raise

    # --- the protocol ---------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + WAIT
        while True:
            reply = self._read(deadline)
            if reply.get("id") != self._next_id:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise BrowserError(f"{method}: {reply['error']}")
            result: dict[str, Any] = reply["result"]
            return result

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer from Chromium in {WAIT}s\n{self.diagnostics()}")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise BrowserError(f"Chromium closed its pipe\n{self.diagnostics()}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    # --- the page -------------------------------------------------------------------

    def navigate(self, url: str) -> None:
        result = self.call("Page.navigate", {"url": url})
        if "errorText" in result:
            raise BrowserError(f"cannot load {url}: {result['errorText']}")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def state(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.evaluate(PAGE_STATE))
        return value

    def wait_for(self, what: str, done: Any) -> dict[str, Any]:
        """Poll the page's DOM until ``done(state)``; fail after WAIT seconds."""
        deadline = time.monotonic() + WAIT
        while True:
            state = self.state()
            if done(state):
                return state
            if time.monotonic() > deadline:
                raise BrowserError(f"{what}: not within {WAIT}s; the page shows {state}\n"
                                   f"{self.diagnostics()}")
            time.sleep(POLL)

    def diagnostics(self) -> str:
        """The page's console and exceptions, and the end of Chromium's own log."""
        lines = []
        for event in self.events:
            if event.get("method") == "Runtime.consoleAPICalled":
                args = event["params"]["args"]
                lines.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                    for a in args))
            elif event.get("method") == "Runtime.exceptionThrown":
                details = event["params"]["exceptionDetails"]
                lines.append("exception: "
                             + details.get("exception", {}).get("description", details["text"]))
        try:  # without D-Bus (containers, CI) Chromium logs errors that do not matter
            tail = [line for line in self.log.read_text(errors="replace").splitlines()
                    if "dbus/" not in line][-20:]
        except OSError:
            tail = []
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return "\n".join([*lines, f"--- chromium ({state}) log tail ---", *tail])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.session = ""
                self.call("Browser.close")
                self.proc.wait(10)
            except (BrowserError, OSError, subprocess.TimeoutExpired):
                pass
        with contextlib.suppress(ProcessLookupError):  # what is left of its process group
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    browser = Chromium(tmp_path / "chromium-profile", tmp_path / "chromium.log")
    try:
        yield browser
    finally:
        browser.close()


def test_example_2_page_in_chromium_shows_native_messages(
    make_broker: MakeBroker, chromium: Chromium
) -> None:
    # The example's own configuration (VPN "public" everywhere), on free ports.
    config = (CONF42 / "warren.toml").read_text()
    broker = make_broker(re.sub(r"(?m)^port = \d+$", "port = 0", config))
    page = subprocess.Popen(
        [sys.executable, str(CONF42 / "serve_page.py"), "--port", "0",
         "--broker", broker.ws_url],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert page.stdout is not None
        url = page.stdout.readline().split()[-1]  # "open http://127.0.0.1:N/?broker=ws://..."
        assert url.endswith(f"?broker={broker.ws_url}"), url
        chromium.navigate(url)
        state = chromium.wait_for(
            "the page subscribes", lambda s: (s["status"] or "").startswith("subscribed")
        )
        assert state["status"] == f"subscribed to conf42/# at {broker.ws_url}"
        assert state["items"] == []

        published = subprocess.run(
            [sys.executable, str(CONF42 / "publisher.py"),
             "--native", f"tcp://{broker.host}:{broker.native_port}",
             "--count", str(COUNT), "--interval", "0"],
            capture_output=True, text=True, timeout=WAIT, check=False, cwd=ROOT,
        )
        assert published.returncode == 0, published.stdout + published.stderr

        state = chromium.wait_for(f"{COUNT} messages in the page",
                                  lambda s: len(s["items"]) >= COUNT)
        # The page puts the newest message first.
        assert state["items"] == [
            f"conf42/warren/python/{n}: hello from conf42 {n}" for n in range(COUNT, 0, -1)
        ]
        assert state["status"] == f"subscribed to conf42/# at {broker.ws_url}"
    finally:
        page.terminate()
        page.wait(10)
