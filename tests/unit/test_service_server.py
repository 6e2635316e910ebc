"""The server's write coalescing (``service/server.py``): one write per response, nothing held
back, with uvicorn's guarded protocol on a real loopback socket."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from aws_anomaly.config import ServiceConfig
from aws_anomaly.service.server import CoalescingTransport, server_config


class Recorder:
    """The transport calls a CoalescingTransport makes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


def test_writes_are_joined_until_flushed_and_never_held_past_the_loop_step() -> None:
    loop = asyncio.new_event_loop()
    try:
        rec = Recorder()
        t = CoalescingTransport(rec, loop)  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        t.write(b"{}")
        assert rec.writes == []
        t.flush()  # the protocol's flush when the response completes
        assert rec.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        t.flush()
        assert len(rec.writes) == 1  # nothing twice
        t.write(b"a chunk")  # a write outside a completed response: sent at the step's end
        loop.run_until_complete(asyncio.sleep(0))
        assert rec.writes[-1] == b"a chunk"
        assert t.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the transport's
        t.write(b"last")
        t.close()  # close sends what is buffered first
        assert rec.writes[-1] == b"last" and rec.closed
        t2 = CoalescingTransport(Recorder(), loop)  # type: ignore[arg-type]
        t2.write(b"dropped")
        t2.abort()
        loop.run_until_complete(asyncio.sleep(0))
        assert t2.transport.writes == [] and t2.transport.aborted  # type: ignore[attr-defined]
    finally:
        loop.close()


#: Set by the client when the first chunk of /stream has arrived.
FIRST_CHUNK_READ = threading.Event()


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/stream":  # chunked; the client must get part0 before the rest
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": f"part{i};".encode(),
                        "more_body": True})
            deadline = time.monotonic() + 5
            while i == 0 and not FIRST_CHUNK_READ.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"end"})
        return
    body = b'{"ok": true}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture()
def server() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg, _ = server_config(app, ServiceConfig(port=port), log_level="warning")
    srv = uvicorn.Server(cfg)
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield port
    srv.should_exit = True
    th.join(15)


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    if b"content-length: " in head:
        n = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < n:
            body += sock.recv(65536)
    else:
        while not body.endswith(b"0\r\n\r\n"):
            body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_kept_alive_and_closing_and_streamed_responses_arrive_whole(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        for _ in range(3):  # keep-alive: each answer whole, in order
            sock.sendall(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{}")
            got = _read_response(sock)
            assert got.startswith(b"HTTP/1.1 200") and got.endswith(b'{"ok": true}')
        sock.sendall(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n")
        first = b""
        while b"part0;" not in first:  # sent while the response is still open
            first += sock.recv(65536)
        assert b"end" not in first
        FIRST_CHUNK_READ.set()
        got = first
        while not got.endswith(b"0\r\n\r\n"):
            got += sock.recv(65536)
        assert b"transfer-encoding: chunked" in got
        assert all(f"part{i};".encode() in got for i in range(3)) and b"end" in got
        sock.sendall(b"GET /x HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        got = _read_response(sock)
        assert got.endswith(b'{"ok": true}')
        assert sock.recv(100) == b""  # closed after the answer was sent
