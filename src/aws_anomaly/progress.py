"""Progress of long steps (reading data, building features, fitting, scoring), on stderr.

Library code marks its long steps with :func:`stage` (a step, optionally counted) or
:func:`track` (an iterable whose items are counted); both cost nothing and show nothing unless a
caller installed a reporter with :func:`reporting`. The CLI does that (``--progress`` /
``--no-progress``; by default only when stderr is a terminal): :class:`StderrProgress` draws tqdm
bars on a terminal and writes plain lines otherwise (CI logs), always on stderr, so whatever a
command prints on stdout (tables, JSON) is never mixed with it.

Stages nest (``train`` > ``detector selection`` > ``features``); a reporter shows the first
``max_depth`` levels and keeps deeper ones silent. The active reporter lives in a
:class:`~contextvars.ContextVar`, so a reporter installed in one thread is not seen by others.

This module imports nothing heavy (tqdm only when a bar is drawn): the CLI's ``--help`` path
imports it.

>>> with stage("nothing is shown without a reporter", total=3) as s:
...     s.advance()
>>> [x for x in track(range(3), "counted")]
[0, 1, 2]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TextIO, TypeVar

__all__ = ["Reporter", "Stage", "StderrProgress", "echo", "reporting", "stage", "track"]

T = TypeVar("T")


class Reporter(Protocol):
    """What :func:`stage` talks to: one call per event, ``depth`` 0 for the outermost stage."""

    def begin(self, key: int, label: str, total: int | None, depth: int) -> None: ...

    def update(self, key: int, done: int, note: str | None) -> None: ...

    def end(self, key: int, seconds: float, ok: bool) -> None: ...

    def write(self, line: str, file: TextIO) -> None: ...


_REPORTER: ContextVar[Reporter | None] = ContextVar("aws_anomaly_progress", default=None)
_DEPTH: ContextVar[int] = ContextVar("aws_anomaly_progress_depth", default=0)
_KEYS = iter(range(1, 1 << 62))


class Stage:
    """An open step: :meth:`advance` counts items done, :meth:`note` names the current one."""

    def __init__(self, reporter: Reporter | None, key: int) -> None:
        self._reporter, self._key, self.done = reporter, key, 0

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self.done += n
        if self._reporter is not None:
            self._reporter.update(self._key, self.done, note)

    def note(self, text: str) -> None:
        if self._reporter is not None:
            self._reporter.update(self._key, self.done, text)


@contextmanager
def stage(label: str, total: int | None = None) -> Iterator[Stage]:
    """Mark a long step; ``total`` items when it is counted (advance with the yielded
    :class:`Stage`). Without an installed reporter this does nothing."""
    reporter = _REPORTER.get()
    depth = _DEPTH.get()
    if reporter is None:
        yield Stage(None, 0)
        return
    key = next(_KEYS)
    started = time.perf_counter()
    reporter.begin(key, label, total, depth)
    token = _DEPTH.set(depth + 1)
    ok = False
    try:
        yield Stage(reporter, key)
        ok = True
    finally:
        _DEPTH.reset(token)
        reporter.end(key, time.perf_counter() - started, ok)


def track(items: Iterable[T], label: str, total: int | None = None,
          note: Callable[[T], str] | None = None) -> Iterator[T]:
    """Yield ``items``, counting each one as done once the caller asks for the next.

    ``total`` defaults to ``len(items)`` when it has one; ``note(item)`` names the item being
    worked on.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with stage(label, total) as s:
        for item in items:
            if note is not None:
                s.note(note(item))
            yield item
            s.advance()


def echo(line: str = "", *, err: bool = False) -> None:
    """Print a line on stdout (stderr with ``err``) without breaking an open progress bar."""
    file = sys.stderr if err else sys.stdout
    reporter = _REPORTER.get()
    if reporter is None:
        print(line, file=file, flush=True)
    else:
        reporter.write(line, file)


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[Reporter | None]:
    """Install ``reporter`` for the steps run inside the block (None: show nothing)."""
    token = _REPORTER.set(reporter)
    depth = _DEPTH.set(0)
    try:
        yield reporter
    finally:
        _DEPTH.reset(depth)
        _REPORTER.reset(token)
        close = getattr(reporter, "close", None)
        if close is not None:
            close()


class StderrProgress:
    """Progress on ``stream`` (stderr): tqdm bars with ``bars=True``, else plain lines.

    Lines read ``progress: <label> ...`` when a stage starts, ``progress: <label>: 3/10 (12 s)``
    at most every ``every`` seconds while a counted stage runs, and ``progress: <label>: done in
    4.2 s`` when it ends; nested stages are indented. Stages deeper than ``max_depth`` are not
    shown.
    """

    def __init__(self, *, bars: bool, stream: TextIO | None = None, max_depth: int = 2,
                 every: float = 5.0) -> None:
        self.bars = bars
        self.stream = stream if stream is not None else sys.stderr
        self.max_depth = max_depth
        self.every = every
        self._open: dict[int, dict[str, Any]] = {}
        self._tqdm: Any = None

    # -- Reporter
    def begin(self, key: int, label: str, total: int | None, depth: int) -> None:
        now = time.perf_counter()
        parent = next((e for e in reversed(self._open.values()) if e["depth"] == depth - 1),
                      None)
        # Hidden: too deep, under a hidden stage, or (in lines) under a counted stage, whose own
        # count lines say how far it is.
        hidden = depth >= self.max_depth or (parent is not None and (
            parent["hidden"] or (not self.bars and parent["total"] is not None)))
        entry: dict[str, Any] = {"label": label, "total": total, "depth": depth,
                                 "started": now, "shown": now, "done": 0, "hidden": hidden}
        self._open[key] = entry
        if hidden:
            return
        if self.bars:
            tqdm = self._tqdm_class()
            entry["bar"] = tqdm(total=total, desc=label, file=self.stream, leave=depth == 0,
                                position=depth, dynamic_ncols=True,
                                unit="" if total is not None else "it",
                                bar_format=None if total is not None else
                                "{desc}: {elapsed}{postfix}")
        else:
            count = f" (0/{total})" if total is not None else ""
            self._line(depth, f"{label}{count} ...")

    def update(self, key: int, done: int, note: str | None) -> None:
        entry = self._open.get(key)
        if entry is None or entry["hidden"]:
            return
        step, entry["done"] = done - entry["done"], done
        if note is not None:
            entry["note"] = note
        if self.bars:
            bar = entry["bar"]
            if note is not None:
                bar.set_postfix_str(note, refresh=False)
            bar.update(step)
            return
        now = time.perf_counter()
        if step and now - entry["shown"] >= self.every:
            entry["shown"] = now
            total = entry["total"]
            count = f"{done}/{total}" if total is not None else f"{done}"
            elapsed = now - entry["started"]
            self._line(entry["depth"], f"{entry['label']}: {count} ({elapsed:.0f} s)"
                       + (f" {entry['note']}" if entry.get("note") else ""))

    def end(self, key: int, seconds: float, ok: bool = True) -> None:
        entry = self._open.pop(key, None)
        if entry is None or entry["hidden"]:
            return
        if self.bars:
            entry["bar"].close()
            return
        total = entry["total"]
        count = f"{entry['done']}/{total} " if total is not None else ""
        how = "done in" if ok else "stopped after"
        self._line(entry["depth"], f"{entry['label']}: {count}{how} {seconds:.1f} s")

    def write(self, line: str, file: TextIO) -> None:
        if self.bars and any(not e["hidden"] for e in self._open.values()):
            self._tqdm_class().write(line, file=file)
        else:
            print(line, file=file, flush=True)

    def close(self) -> None:
        for key in list(self._open):
            self.end(key, time.perf_counter() - self._open[key]["started"], ok=False)

    # -- helpers
    def _line(self, depth: int, text: str) -> None:
        print(f"progress: {'  ' * depth}{text}", file=self.stream, flush=True)

    def _tqdm_class(self) -> Any:
        if self._tqdm is None:
            from tqdm import tqdm

            self._tqdm = tqdm
        return self._tqdm
