"""Keep credentials and secret URLs out of answers, logs and error messages.

* :func:`redact_url` shows a URL without its user name, password, query and (for hosts whose
  path *is* the secret, such as Slack incoming webhooks) its path.
* :func:`redact` rewrites every URL inside a text that way, and replaces any registered secret
  (API tokens, webhook URLs, header values: :func:`register_secret`) by ``***``.
* :class:`RedactingFilter` applies :func:`redact` to every log record; :func:`install_logging`
  puts it on the root handlers and quiets per-request logging of httpx/httpcore (which logs
  each URL at INFO).

>>> redact_url("https://user:pa55@prom.example.com:9090/api?token=abc")
'https://***@prom.example.com:9090/api?***'
>>> redact_url("https://hooks.slack.com/services/T000/B000/XXXX")
'https://hooks.slack.com/***'
>>> redact("cannot reach http://u:p@10.0.0.1:9090/q: refused")
'cannot reach http://***@10.0.0.1:9090/q: refused'
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit, urlunsplit

__all__ = ["RedactingFilter", "hide_paths", "install_logging", "redact", "redact_url",
           "register_secret"]

#: Hosts whose URL path is itself a credential (incoming webhooks).
SECRET_PATH_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com", "discord.com",
                     "discordapp.com", "outlook.office.com", "webhook.office.com")

_URL_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
#: Libraries that log every request URL at INFO.
CHATTY_LOGGERS = ("httpx", "httpcore", "urllib3", "botocore", "uvicorn.access")


def register_secret(value: str | None) -> None:
    """Never show ``value`` (a token, a webhook URL, a header value) in :func:`redact`."""
    if value and len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)


def redact_url(url: str) -> str:
    """``url`` without credentials, query string, fragment or a secret path."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url>"
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"***@{host}" if "@" in parts.netloc else host
    hostname = (parts.hostname or "").lower()
    path = parts.path
    if any(hostname == h or hostname.endswith("." + h) for h in SECRET_PATH_HOSTS):
        path = "/***" if path not in ("", "/") else path
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, path, query, ""))


_PATH_RE = re.compile(r"(?<![\w:/.~-])(?:~|[A-Za-z]:)?(?:/[\w.@+-]+)+/?")


def hide_paths(text: str) -> str:
    """``text`` with absolute file-system paths replaced by ``<path>`` (URLs are kept).

    >>> hide_paths("saving bundle to /srv/data/models/demo: [Errno 28] No space left")
    'saving bundle to <path>: [Errno 28] No space left'
    >>> hide_paths("cannot reach http://127.0.0.1:9090/api/v1/query")
    'cannot reach http://127.0.0.1:9090/api/v1/query'
    """
    return _PATH_RE.sub("<path>", text) if text else text


def _host_only(url: str) -> str:
    scheme, _, rest = redact_url(url).partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0]}/***"


def redact(text: str) -> str:
    """``text`` with every URL passed through :func:`redact_url` and secrets masked."""
    if not text:
        return text
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, _host_only(s) if "://" in s else "***")
    return _URL_RE.sub(lambda m: redact_url(m.group(0)), text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message (and drops its arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string: leave the record to the handler
            return True
        clean = redact(msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if clean != msg or record.args:
            record.msg, record.args = clean, None
        return True


def install_logging(level: int = logging.INFO) -> None:
    """Redact every log line of this process; library request logs only at WARNING."""
    flt = RedactingFilter()
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(flt)
    if not any(isinstance(f, RedactingFilter) for f in root.filters):
        root.addFilter(flt)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
