"""The one duration parser of aws-anomaly: config files, command-line options and API calls.

A duration is a number with a unit, or several of them in a row (Prometheus' syntax):
``"90s"``, ``"5m"``, ``"5min"``, ``"1h30m"``, ``"2d12h"``, ``"1w"``, ``"250ms"``. Units are
``ms``, ``s`` (``sec``), ``m`` (``min``), ``h``, ``d``, ``w``, in any case (``1D`` as pandas
prints it is one day), each at most once and from the largest to the smallest, as Prometheus
wants them. A plain number (not text) is seconds; a :class:`datetime.timedelta`,
:class:`pandas.Timedelta` or ``numpy.timedelta64`` passes through. The value must be positive.

Every caller names what it parses (``where``: ``"--step"``, ``"job_interval"``, a config key),
so an error says which option is wrong::

    --step '1h30x' is not a duration; use a number and a unit (ms, s, m, h, d, w) or several,
    e.g. 30s, 5m, 1h30m, 2d12h

:func:`parse_duration` gives a :class:`datetime.timedelta` (config), :func:`parse_timedelta` a
nanosecond :class:`pandas.Timedelta` (data grids), :func:`parse_seconds` whole seconds
(Prometheus rules). This module sits at the bottom of the layering with :mod:`errors`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aws_anomaly.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["format_duration", "parse_duration", "parse_seconds", "parse_timedelta"]

_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9,
       "w": 7 * 86400 * 10**9}
_ALIASES = {"sec": "s", "min": "m"}
_ORDER = ("w", "d", "h", "m", "s", "ms")
# One "number unit" part; the alternation tries the longer spellings first ("ms", "min").
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|sec|min|[smhdw])", re.IGNORECASE)
_HELP = "use a number and a unit (ms, s, m, h, d, w) or several, e.g. 30s, 5m, 1h30m, 2d12h"


def _named(where: str) -> str:
    return f"{where} " if where else ""


def _text_ns(text: str, value: Any, where: str) -> int:
    body = text.strip()
    pos, total, seen = 0, Decimal(0), []
    for m in _PART.finditer(body):
        if m.start() != pos:
            break
        unit = m.group(2).lower()
        unit = _ALIASES.get(unit, unit)
        if seen and _ORDER.index(unit) <= _ORDER.index(seen[-1]):
            raise ConfigError(f"{_named(where)}{value!r}: unit '{unit}' repeats or comes after "
                              f"a smaller one; write the parts from the largest unit down, "
                              "e.g. 1h30m")
        seen.append(unit)
        total += Decimal(m.group(1)) * _NS[unit]
        pos = m.end()
    if not body or pos != len(body):
        raise ConfigError(f"{_named(where)}{value!r} is not a duration; {_HELP}")
    return int(total)


def _nanoseconds(value: Any, where: str) -> int:
    if isinstance(value, str):
        return _text_ns(value, value, where)
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{_named(where)}{value!r} is not a duration; {_HELP}")
    if isinstance(value, timedelta):  # pandas.Timedelta too, with its nanoseconds
        us = (value.days * 86400 + value.seconds) * 10**6 + value.microseconds
        return us * 1000 + int(getattr(value, "nanoseconds", 0))
    if type(value).__name__ == "timedelta64":  # numpy, without importing it here
        return int(value.astype("timedelta64[ns]").astype("int64"))
    if isinstance(value, int | float) or hasattr(value, "__float__"):
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ConfigError(f"{_named(where)}{number} is not a duration; {_HELP}")
        return int(Decimal(str(number)) * 10**9)
    raise ConfigError(f"{_named(where)}expected a duration such as '5m', got "
                      f"{type(value).__name__}")


def _positive(value: Any, where: str) -> int:
    ns = _nanoseconds(value, where)
    if ns <= 0:
        shown = value if isinstance(value, str) else _plain(value)
        raise ConfigError(f"{where or 'duration'} must be positive, got {shown!r}")
    return ns


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) and type(value).__module__ == "numpy" else value


def parse_timedelta(value: Any, *, where: str = "duration") -> pd.Timedelta:
    """A positive duration as a nanosecond :class:`pandas.Timedelta`.

    >>> str(parse_timedelta("1h30m")), str(parse_timedelta("5min")), str(parse_timedelta("1D"))
    ('0 days 01:30:00', '0 days 00:05:00', '1 days 00:00:00')
    >>> parse_timedelta("5x", where="--step")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aws_anomaly.errors.ConfigError: --step '5x' is not a duration; use a number and a unit ...
    """
    import pandas as pd

    return pd.Timedelta(_positive(value, where), unit="ns")


def parse_duration(value: Any, *, where: str = "duration") -> timedelta:
    """A positive duration as a :class:`datetime.timedelta` (microsecond resolution).

    >>> parse_duration("2d12h"), parse_duration(90)
    (datetime.timedelta(days=2, seconds=43200), datetime.timedelta(seconds=90))
    """
    return timedelta(microseconds=_positive(value, where) // 1000)


def parse_seconds(value: Any, *, where: str = "duration") -> int:
    """A positive duration in whole seconds (what Prometheus rules and intervals take).

    >>> parse_seconds("1h30m")
    5400
    """
    ns = _positive(value, where)
    if ns % 10**9:
        raise ConfigError(f"{where} must be whole seconds, got {value!r}")
    return ns // 10**9


def format_duration(td: timedelta) -> str:
    """The shortest text for a duration with whole units (``"5m"``, ``"14d"``, ``"1h30m"``).

    The result is also valid Prometheus duration syntax, and :func:`parse_duration` reads it
    back.

    >>> format_duration(timedelta(minutes=90))
    '1h30m'
    >>> format_duration(timedelta(milliseconds=1500))
    '1s500ms'
    """
    ms = round(td.total_seconds() * 1000)
    if ms <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
                       ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
