"""Security of the HTTP service: bearer token, body size limit, headers, bind policy.

* Mutating endpoints (feedback, retrain) need ``Authorization: Bearer <token>``; the token is
  compared with :func:`hmac.compare_digest` (no timing leak). Without a header: 401; with a
  wrong token: 403. A service started without a configured token generates a random one for
  the run (printed at start) so mutations are never open.
* The service refuses to bind a non-loopback address without a configured token (the config
  checks it; :func:`check_bind` repeats it for the CLI's ``--host``).
* Request bodies are limited (``413`` before the JSON is parsed).
* Responses carry a strict Content-Security-Policy (the dashboard loads only its own files).
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aws_anomaly.config import is_loopback
from aws_anomaly.errors import ConfigError

__all__ = ["BodyLimitMiddleware", "SecurityHeadersMiddleware", "check_bind", "check_token",
           "is_loopback", "new_token"]

#: Largest request body accepted (a 10,000-point score request is about 1 MB of JSON).
MAX_BODY_BYTES = 4 * 1024 * 1024

_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


#: The shortest API token accepted for a non-loopback bind.
MIN_TOKEN_CHARS = 16


def check_bind(host: str, token: str | None) -> None:
    """Refuse a blank token anywhere, and a non-loopback bind without a real token."""
    if token is not None and not token.strip():
        raise ConfigError("the API token is blank (only whitespace); set a real token in "
                          "service.token_env / token_file, or none on loopback")
    if token is not None and token != token.strip():
        raise ConfigError("the API token starts or ends with whitespace; remove it (tokens "
                          "are compared exactly)")
    if not is_loopback(host):
        if not token:
            raise ConfigError(f"refusing to listen on {host!r} without an API token: set "
                              "service.token_env (or token_file) in the config, or bind "
                              "127.0.0.1")
        if len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(f"refusing to listen on {host!r} with an API token of "
                              f"{len(token)} characters; use at least {MIN_TOKEN_CHARS} (e.g. "
                              "python -c 'import secrets; print(secrets.token_urlsafe(24))')")


def new_token() -> str:
    """A random token for a run without a configured one."""
    return secrets.token_urlsafe(24)


def check_token(expected: str, authorization: str | None) -> tuple[int, str] | None:
    """``None`` when ``authorization`` carries the token, else ``(status, message)``.

    >>> check_token("s3cret", "Bearer s3cret") is None
    True
    >>> check_token("s3cret", None)[0], check_token("s3cret", "Bearer nope")[0]
    (401, 403)
    """
    if not authorization:
        return 401, ("this endpoint changes data and needs a bearer token: send the header "
                     "'Authorization: Bearer <token>'")
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return 401, "Authorization header must be 'Bearer <token>'"
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return 403, "the bearer token is not valid for this service"
    return None


class BodyLimitMiddleware:
    """Answer 413 to a request whose body exceeds ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await _reply(send, 400, "Content-Length header is not a number")
                return
            if too_big:
                await _reply(send, 413, self._message(int(declared)))
                return
        seen = 0
        limit = self.max_bytes
        too_big = False
        started = False

        async def limited() -> Message:
            nonlocal seen, too_big
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    # The app may catch this while parsing (and answer 400): the flag wins.
                    too_big = True
                    raise _TooLarge(seen)
            return msg

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_big and not started:
                return  # the app's answer to the aborted body is replaced by the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, limited, guarded_send)
        if too_big and not started:
            await _reply(send, 413, self._message(seen))

    def _message(self, size: int) -> str:
        return (f"request body is {size:,} bytes, more than the {self.max_bytes:,} allowed; "
                "send at most 10,000 points per request")


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


async def _reply(send: Send, status: int, message: str) -> None:
    import json

    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """Add CSP, nosniff, frame and referrer headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers") or [])
                headers += [(b"content-security-policy", _CSP.encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"x-frame-options", b"DENY"),
                            (b"referrer-policy", b"no-referrer")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
