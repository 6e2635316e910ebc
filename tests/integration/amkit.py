"""Test kit: a loopback webhook receiver and a real Alertmanager started by the tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from .promkit import free_port


class Receiver:
    """Records JSON POSTs; answers ``fail_with`` statuses first (e.g. [503, 503]), then 200."""

    def __init__(self, port: int = 0, fail_with: list[int] | None = None) -> None:
        self.bodies: list[object] = []
        self.requests = 0
        self.fail_with = list(fail_with or [])
        self._cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                with outer._cond:
                    outer.requests += 1
                    status = outer.fail_with.pop(0) if outer.fail_with else 200
                    if status == 200:
                        outer.bodies.append(json.loads(raw))
                    outer._cond.notify_all()
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, predicate, timeout: float = 30.0) -> object:
        """Wait until ``predicate(bodies)`` returns something truthy; return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = predicate(self.bodies)
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"receiver got {self.bodies!r}")
                self._cond.wait(left)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def alertmanager_binary() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("Alertmanager is not installed (apt-get install prometheus-alertmanager)")


@contextlib.contextmanager
def running_alertmanager(webhook_url: str) -> Iterator[str]:
    """Start Alertmanager on 127.0.0.1 routing everything to ``webhook_url``; yield its URL."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "alertmanager.yml"
        cfg.write_text(
            "route:\n  receiver: hook\n  group_by: ['alertname', 'entity']\n"
            "  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n"
            f"receivers:\n- name: hook\n  webhook_configs:\n  - url: '{webhook_url}'\n"
            "    send_resolved: true\n"
        )
        proc = subprocess.Popen(
            [alertmanager_binary(), f"--config.file={cfg}", f"--storage.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
             "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"alertmanager exited: {proc.stderr.read().decode()}")
                if time.monotonic() > deadline:
                    raise TimeoutError("alertmanager did not become ready")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
