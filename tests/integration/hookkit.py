"""Test kit: a loopback webhook receiver whose behaviour can be switched while it runs.

``mode`` is one of ``"ok"`` (200), ``"fail"`` (answers ``fail_status``), ``"hang"`` (reads the
request, then answers nothing until the client gives up or the receiver closes). Every
delivered alert is recorded as ``(event_id, status)`` so tests can check exactly-once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SwitchableReceiver:
    def __init__(self, mode: str = "ok", fail_status: int = 500, port: int = 0) -> None:
        self.mode = mode
        self.fail_status = fail_status
        self.requests = 0
        self.failed = 0
        self.bodies: list[Any] = []
        self.alerts: list[tuple[str, str]] = []
        self._cond = threading.Condition()
        self._closing = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                with outer._cond:
                    outer.requests += 1
                    mode = outer.mode
                if mode == "hang":
                    outer._closing.wait(60)
                    return
                if mode == "fail":
                    with outer._cond:
                        outer.failed += 1
                    self._answer(outer.fail_status)
                    return
                body = json.loads(raw)
                with outer._cond:
                    outer.bodies.append(body)
                    for a in body.get("alerts", []) if isinstance(body, dict) else body:
                        if "event_id" in a:
                            outer.alerts.append((a["event_id"], a["status"]))
                        else:  # Alertmanager's own payload
                            outer.alerts.append((a["annotations"]["event_id"],
                                                 "resolved" if "endsAt" in a else "firing"))
                    outer._cond.notify_all()
                self._answer(200)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def duplicates(self) -> dict[tuple[str, str], int]:
        with self._cond:
            return {k: n for k, n in Counter(self.alerts).items() if n > 1}

    def delivered(self) -> set[tuple[str, str]]:
        with self._cond:
            return set(self.alerts)

    def wait_for(self, predicate: Callable[[set[tuple[str, str]]], bool],
                 timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(set(self.alerts)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"receiver got {sorted(set(self.alerts))}")
                self._cond.wait(min(left, 0.5))

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
