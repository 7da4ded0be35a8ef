# SPDX-License-Identifier: GPL-2.0-or-later
"""A real browser for tests: Debian's chromium, headless, driven over the
DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages ended by
a NUL byte on file descriptors 3 and 4), the way puppeteer drives it, with
nothing but the standard library.

    with Browser(workdir) as b:
        p = b.new_page()
        p.navigate("file:///tmp/report.html")
        assert not p.errors()                  # console errors, exceptions,
        n = p.evaluate("document.querySelectorAll('rect.cell').length")
        p.screenshot("/tmp/shot.png")

Chromium runs under `timeout`, with a fresh profile in the work directory,
and the flags a root, network-less machine needs; close() ends it (by pid).
"""
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time

CHROMIUM = os.environ.get("BLKIN_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--no-default-browser-check",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
         "--remote-debugging-pipe"]


class BrowserError(RuntimeError):
    pass


def available():
    return os.access(CHROMIUM, os.X_OK)


class Browser:
    def __init__(self, workdir, width=1280, height=900, timeout=600):
        self.workdir = workdir
        self.width, self.height = width, height
        self.timeout = timeout
        self.proc = None
        self._next = 0
        self._buf = b""
        self._events = {}  # session id -> [event]

    def start(self):
        profile = os.path.join(self.workdir, "chromium-profile")
        shutil.rmtree(profile, ignore_errors=True)
        os.makedirs(profile)
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # Out of the way of 3 and 4, where the child wants them.
        hi_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        hi_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def child():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.log_path = os.path.join(self.workdir, "chromium.log")
        self.proc = subprocess.Popen(
            ["timeout", "-k", "5", str(self.timeout), CHROMIUM, *FLAGS,
             f"--user-data-dir={profile}", f"--window-size={self.width},{self.height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "w"), preexec_fn=child, close_fds=False,
            start_new_session=True)
        os.close(hi_r)
        os.close(hi_w)
        self._w, self._r = to_child_w, from_child_r
        self.send("Target.setDiscoverTargets", discover=False)
        return self

    # -- the protocol --------------------------------------------------
    def _read_message(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("chromium did not answer in time")
            ready, _, _ = select.select([self._r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise BrowserError("chromium went away: " + open(self.log_path).read()[-2000:])
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, session=None, timeout=60, **params):
        self._next += 1
        mid = self._next
        msg = {"id": mid, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._w, data):]
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == mid:
                if "error" in m:
                    raise BrowserError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self._events.setdefault(m.get("sessionId"), []).append(m)

    def pump(self, seconds):
        """Reads events for @seconds."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                m = self._read_message(deadline)
            except BrowserError:
                if time.monotonic() >= deadline:
                    return
                raise
            if "method" in m:
                self._events.setdefault(m.get("sessionId"), []).append(m)

    def new_page(self):
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        return Page(self, session)

    # -- lifecycle -----------------------------------------------------
    def close(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.send("Browser.close", timeout=10)
            except (BrowserError, OSError):
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        for fd in (getattr(self, "_w", None), getattr(self, "_r", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._w = self._r = None
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


class Page:
    def __init__(self, browser, session):
        self.b = browser
        self.session = session
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(domain + ".enable")
        self.send("Emulation.setDeviceMetricsOverride", width=browser.width, height=browser.height,
                  deviceScaleFactor=1, mobile=False)

    def send(self, method, timeout=60, **params):
        return self.b.send(method, session=self.session, timeout=timeout, **params)

    def events(self, method=None):
        ev = self.b._events.get(self.session, [])
        return [e for e in ev if method is None or e["method"] == method]

    def errors(self):
        """What the page's console shows as errors: console.error/assert,
        uncaught exceptions, and the browser's own error entries (failed
        loads, refused scripts or styles)."""
        out = []
        for e in self.events():
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console.%s: %s" % (p["type"], " ".join(
                    str(a.get("value", a.get("description", ""))) for a in p.get("args", []))))
            elif e["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: %s %s" % (d.get("text", ""),
                                                 d.get("exception", {}).get("description", "")))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: %s (%s)" % (p["entry"].get("text"), p["entry"].get("url", "")))
        return out

    def requests(self):
        """URLs the page asked the network for."""
        return [e["params"]["request"]["url"] for e in self.events("Network.requestWillBeSent")]

    def navigate(self, url, timeout=60):
        n = len(self.events("Page.loadEventFired"))
        r = self.send("Page.navigate", url=url)
        if r.get("errorText"):
            raise BrowserError(f"{url}: {r['errorText']}")
        deadline = time.monotonic() + timeout
        while len(self.events("Page.loadEventFired")) == n:
            if time.monotonic() > deadline:
                raise BrowserError(f"{url} did not load within {timeout} s")
            self.b.pump(0.1)

    def evaluate(self, expression, timeout=60):
        r = self.send("Runtime.evaluate", timeout=timeout, expression=expression,
                      returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise BrowserError(f"{expression[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression, timeout=30, interval=0.2):
        """Polls @expression until it is truthy; returns its value, or the
        last (falsy) one at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.evaluate(expression)
            if v or time.monotonic() > deadline:
                return v
            self.b.pump(interval)

    def offline(self, on=True):
        self.send("Network.emulateNetworkConditions", offline=on, latency=0,
                  downloadThroughput=-1, uploadThroughput=-1)

    def screenshot(self, path, selector=None, full_page=True):
        """A PNG of the page (all of it), or of the first element matching
        @selector."""
        params = {"format": "png", "captureBeyondViewport": True}
        if selector:
            box = self.evaluate(
                "(function(){var e=document.querySelector(%s); if(!e) return null;"
                "var r=e.getBoundingClientRect(); return [r.left+scrollX, r.top+scrollY, r.width, r.height];})()"
                % json.dumps(selector))
            if not box:
                raise BrowserError(f"nothing matches {selector}")
            params["clip"] = {"x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 1}
        elif full_page:
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
        data = self.send("Page.captureScreenshot", **params)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path
