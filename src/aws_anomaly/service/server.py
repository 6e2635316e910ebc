"""Serving the app with uvicorn, protected against slow and abusive clients.

uvicorn (0.5x) has a keep-alive timeout between requests, but no limit on how long a client may
take to send a request's headers or its body, and no cap on open connections: thousands of
half-sent requests hold a file descriptor each until the process runs out and even
``/healthz`` stops answering. :class:`GuardedHttpToolsProtocol` adds, per connection:

* a **header timeout** from the connection (or the start of the next request on a kept-alive
  connection) to the end of the headers: past it the client gets ``408`` and the connection is
  closed;
* a **body timeout** from the end of the headers to the end of the body: past it the
  connection is closed (the app sees a disconnect);
* a **connection cap** shared by the server (:class:`ConnectionGuard`): a connection beyond
  ``max_connections`` evicts the oldest connection that is not running a request (half-sent
  headers first, then idle keep-alive, then slow bodies). A client that sends a whole request
  at once (a probe of ``/healthz``) is therefore always served, however many slow clients hold
  the rest; when every connection is running a request, the newcomer is refused.

Counters (``evicted``, ``header_timeouts``, ``body_timeouts``, ``refused``) are kept on the
guard for tests and status.

It also sends each response in one write (:class:`CoalescingTransport`): uvicorn writes the
status line and headers, then the body, each straight to the socket, so a small answer costs
two sends and two TCP segments (``TCP_NODELAY``) that wake the client twice. Writes made while
a response is being sent are joined and go out when it completes (or, for anything else, at the
end of the event loop's step).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingTransport", "ConnectionGuard", "GuardedHttpToolsProtocol",
           "guarded_protocol", "run_server", "server_config"]

log = logging.getLogger(__name__)

_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\nconnection: close\r\n"
        b"content-length: 40\r\n\r\nrequest headers not received in time\r\n\r\n")
#: Eviction order: connections in these phases go first.
_EVICT_ORDER = ("headers", "idle", "body")


@dataclass
class ConnectionGuard:
    """Limits shared by every connection of one server."""

    max_connections: int = 1000
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    conns: OrderedDict[Any, None] = field(default_factory=OrderedDict)
    evicted: int = 0
    refused: int = 0
    header_timeouts: int = 0
    body_timeouts: int = 0

    def admit(self, proto: GuardedHttpToolsProtocol) -> bool:
        """Register a new connection; evict one to make room; False to refuse it."""
        self.conns[proto] = None
        if len(self.conns) <= self.max_connections:
            return True
        for phase in _EVICT_ORDER:
            victim = next((p for p in self.conns if p is not proto and p.phase == phase), None)
            if victim is not None:
                self.evicted += 1
                victim.drop()
                return True
        self.refused += 1
        self.conns.pop(proto, None)
        return False

    def forget(self, proto: GuardedHttpToolsProtocol) -> None:
        self.conns.pop(proto, None)


class CoalescingTransport:
    """A transport whose writes are buffered and sent as one by :meth:`flush`: by the
    protocol when a response completes, else at the end of the event loop's step (so nothing
    waits longer than the step that wrote it). ``close`` sends what is buffered first;
    ``abort`` drops it. Everything else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._buffer:
            self._loop.call_soon(self.flush)
        self._buffer.append(data)

    def flush(self) -> None:
        if not self._buffer:
            return
        data = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
        self._buffer = []
        if not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._buffer = []
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body timeouts and a connection cap."""

    guard: ConnectionGuard = ConnectionGuard()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phase = "headers"  # headers | body | app | idle
        self._timer: asyncio.TimerHandle | None = None
        self._dropped = False

    # ------------------------------------------------------------------ timers
    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, what: str) -> None:
        self._timer = None
        if self.transport is None or self.transport.is_closing():
            return
        if what == "headers":
            self.guard.header_timeouts += 1
            self.transport.write(_408)
        else:
            self.guard.body_timeouts += 1
        self.transport.close()

    def drop(self) -> None:
        """Close this connection to make room for another."""
        self._dropped = True
        self._disarm()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    # ------------------------------------------------------------------ protocol
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Responses go out in one write; the flow control keeps the real transport.
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        if not self.guard.admit(self):
            transport.abort()
            return
        self.move_to_end()
        self._arm(self.guard.header_timeout_s, "headers")

    def move_to_end(self) -> None:
        if self in self.guard.conns:
            self.guard.conns.move_to_end(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.forget(self)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.phase == "idle":  # the next request on a kept-alive connection
            self.phase = "headers"
            self.move_to_end()
            self._arm(self.guard.header_timeout_s, "headers")

    def on_headers_complete(self) -> None:
        self.phase = "body"
        self._arm(self.guard.body_timeout_s, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self.phase = "app"
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self.phase == "app":
            self.phase = "idle"
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedHttpToolsProtocol]:
    """A protocol class bound to ``guard`` (one per server)."""
    return type("GuardedHttpTools", (GuardedHttpToolsProtocol,), {"guard": guard})


def server_config(app: Any, svc: Any, *, log_level: str = "info",
                  guard: ConnectionGuard | None = None) -> tuple[uvicorn.Config, ConnectionGuard]:
    """The uvicorn config for ``app`` with ``svc``'s (``ServiceConfig``) limits."""
    guard = guard or ConnectionGuard(max_connections=svc.max_connections,
                                     header_timeout_s=svc.header_timeout_s,
                                     body_timeout_s=svc.body_timeout_s)
    cfg = uvicorn.Config(app, host=svc.host, port=svc.port, log_level=log_level,
                         access_log=False, timeout_graceful_shutdown=30,
                         http=guarded_protocol(guard), log_config=None,
                         timeout_keep_alive=5, server_header=False)
    return cfg, guard


def run_server(app: Any, svc: Any, *, log_level: str = "info") -> None:
    """Serve ``app`` until SIGTERM/SIGINT (uvicorn's graceful shutdown)."""
    cfg, _ = server_config(app, svc, log_level=log_level)
    uvicorn.Server(cfg).run()
