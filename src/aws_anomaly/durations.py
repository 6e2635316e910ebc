"""The one parser of durations and timestamps of aws-anomaly: config files, command-line
options, API calls, data files and sources.

A duration is a number with a unit, or several of them in a row (Prometheus' syntax):
``"90s"``, ``"5m"``, ``"5min"``, ``"1h30m"``, ``"2d12h"``, ``"1w"``, ``"250ms"``. Units are
``ms``, ``s`` (``sec``), ``m`` (``min``), ``h``, ``d``, ``w``, in any case (``1D`` as pandas
prints it is one day), each at most once and from the largest to the smallest, as Prometheus
wants them. A plain number (not text) is seconds; a :class:`datetime.timedelta`,
:class:`pandas.Timedelta` or ``numpy.timedelta64`` passes through. The value must be positive.

A timestamp is a :class:`pandas.Timestamp`, :class:`datetime.datetime`, ``numpy.datetime64``,
ISO 8601 text, or a number of Unix seconds (rounded to the millisecond, Prometheus'
resolution; above ``MAX_UNIX_SECONDS``, year 5138, it is refused as milliseconds by mistake).
Naive times are UTC; the result is always a tz-aware UTC :class:`pandas.Timestamp`.

Every caller names what it parses (``where``: ``"--step"``, ``"job_interval"``, a config key),
so an error says which option is wrong::

    --step '1h30x' is not a duration; use a number and a unit (ms, s, m, h, d, w) or several,
    e.g. 30s, 5m, 1h30m, 2d12h

:func:`parse_duration` gives a :class:`datetime.timedelta` (config), :func:`parse_timedelta` a
nanosecond :class:`pandas.Timedelta` (data grids), :func:`parse_nanoseconds` an integer
(detectors' time horizons), :func:`parse_seconds` whole seconds
(Prometheus rules); :func:`parse_timestamp` one UTC timestamp (its error class is the caller's:
``ConfigError`` for an option, ``DataError`` for data, ``SourceError`` for a source),
:func:`parse_timestamps` a column of them (``datetime64[ns, UTC]``, ``DataError`` naming the row)
and :func:`format_timestamp` the ISO text messages and files use. This module sits at the
bottom of the layering with :mod:`errors`; pandas is imported when a function needs it, so
importing this module stays cheap (``aws-anomaly --help``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aws_anomaly.errors import AwsAnomalyError, ConfigError, DataError

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

__all__ = [
    "MAX_UNIX_SECONDS",
    "format_duration",
    "format_timestamp",
    "parse_duration",
    "parse_nanoseconds",
    "parse_seconds",
    "parse_timedelta",
    "parse_timestamp",
    "parse_timestamps",
]

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


def parse_nanoseconds(value: Any, *, where: str = "duration", allow_zero: bool = False) -> int:
    """A positive duration (``>= 0`` with ``allow_zero``) in integer nanoseconds: what the
    streaming detectors compare with their records' timestamps.

    >>> parse_nanoseconds("36h"), parse_nanoseconds("0s", allow_zero=True)
    (129600000000000, 0)
    >>> parse_nanoseconds("0s", where="sustain")
    Traceback (most recent call last):
    ...
    aws_anomaly.errors.ConfigError: sustain must be positive, got '0s'
    """
    if allow_zero:
        ns = _nanoseconds(value, where)
        if ns < 0:
            raise ConfigError(f"{where or 'duration'} must be >= 0, got {_plain(value)!r}")
        return ns
    return _positive(value, where)


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


# ---------------------------------------------------------------------------------- timestamps
#: Unix seconds above this are milliseconds by mistake (year 5138).
MAX_UNIX_SECONDS = 1e11
_TIME_HELP = "use ISO 8601, e.g. 2026-03-01T10:05:00Z, or Unix seconds"


def _where(where: str) -> str:
    return f"{where}: " if where else ""


def parse_timestamp(value: Any, *, where: str = "time",
                    error: type[AwsAnomalyError] = ConfigError) -> pd.Timestamp:
    """One point in time as a tz-aware UTC :class:`pandas.Timestamp`.

    Naive times are UTC, aware ones are converted; a number is Unix seconds (to the
    millisecond). ``error`` is the class raised, with a message naming ``where``: the caller's
    (``ConfigError`` for an option, ``DataError`` for data, ``SourceError`` for a source).

    >>> parse_timestamp("2026-03-01T10:05:00+01:00")
    Timestamp('2026-03-01 09:05:00+0000', tz='UTC')
    >>> str(parse_timestamp("2026-03-01 10:05")), str(parse_timestamp(1772359500))
    ('2026-03-01 10:05:00+00:00', '2026-03-01 10:05:00+00:00')
    >>> parse_timestamp("yesterday", where="--start")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aws_anomaly.errors.ConfigError: --start: cannot read 'yesterday' as a time; use ISO 8601, ...
    """
    import pandas as pd

    if type(value) is pd.Timestamp:  # the hot path (live points): no parsing
        tz = value.tzinfo
        if tz is None:
            return value.tz_localize("UTC")
        return value if str(tz) == "UTC" else value.tz_convert("UTC")
    if value is None or isinstance(value, bool):
        raise error(f"{_where(where)}{value!r} is not a time; {_TIME_HELP}")
    if isinstance(value, int | float) or (
            type(value).__module__ == "numpy" and type(value).__name__ != "datetime64"
            and hasattr(value, "__float__")):
        secs = float(value)
        if secs != secs or abs(secs) == float("inf"):
            raise error(f"{_where(where)}{value!r} is not a time; {_TIME_HELP}")
        if abs(secs) > MAX_UNIX_SECONDS:
            raise error(f"{_where(where)}{_show(value)} is not plausible Unix seconds (after "
                        "year 5000); milliseconds? divide by 1000")
        return pd.Timestamp(round(secs * 1000), unit="ms", tz="UTC")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise error(f"{_where(where)}cannot read {value!r} as a time; {_TIME_HELP}") from exc
    if ts is pd.NaT:
        raise error(f"{_where(where)}{value!r} is not a time; {_TIME_HELP}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def format_timestamp(ts: Any) -> str:
    """ISO 8601 UTC text for messages and files: ``2026-03-01T10:05:00Z``.

    >>> import pandas as pd
    >>> format_timestamp(pd.Timestamp("2026-03-01 10:05", tz="UTC"))
    '2026-03-01T10:05:00Z'
    >>> format_timestamp("2026-03-01T11:05:00.25+01:00")
    '2026-03-01T10:05:00.250000Z'
    """
    ts = parse_timestamp(ts, where="format_timestamp")
    if ts.microsecond == 0 and ts.nanosecond == 0:
        return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _show(v: object) -> str:
    """repr of a cell for messages, without numpy's ``np.int64(...)`` wrapping."""
    item = getattr(v, "item", None)
    return repr(item() if callable(item) and type(v).__module__ == "numpy" else v)


def parse_timestamps(raw: pd.Series, where: str,
                     row_names: Callable[[int], str] | None = None) -> pd.Series:
    """A timestamp column as ``datetime64[ns, UTC]``, by the rules of :func:`parse_timestamp`.

    Accepts datetimes (naive ones are taken as UTC), Unix seconds (as Prometheus exports them;
    rounded to the millisecond, Prometheus' resolution) and ISO 8601 text. Raises
    :class:`~aws_anomaly.errors.DataError` naming ``where`` and the first bad row;
    ``row_names`` names a row (by position) in messages; default ``row <position>``.

    >>> import pandas as pd
    >>> [str(t) for t in parse_timestamps(pd.Series([1767225600, 1767225900.5]), "x")]
    ['2026-01-01 00:00:00+00:00', '2026-01-01 00:05:00.500000+00:00']
    >>> parse_timestamps(pd.Series(["2026-01-01T00:05:00Z"]), "x").dtype
    datetime64[ns, UTC]
    """
    import numpy as np
    import pandas as pd

    def name(i: int) -> str:
        return row_names(i) if row_names is not None else f"row {i}"

    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = raw
        if getattr(ts.dt, "tz", None) is None:
            ts = ts.dt.tz_localize("UTC")
        ts = ts.dt.tz_convert("UTC")
        bad = ts.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where}: timestamp in {name(row)} is missing (NaT)")
        return ts.dt.as_unit("ns")
    if pd.api.types.is_bool_dtype(raw):
        raise DataError(f"{where}: timestamps are booleans; use ISO 8601 or unix seconds")
    if pd.api.types.is_numeric_dtype(raw):
        secs = raw.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(secs)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where}: timestamp in {name(row)} is not a number: "
                            f"{_show(raw.iloc[row])}")
        big = np.abs(secs) > MAX_UNIX_SECONDS
        if big.any():
            row = int(np.flatnonzero(big)[0])
            raise DataError(
                f"{where}: timestamp {_show(raw.iloc[row])} in {name(row)} is not plausible unix "
                "seconds (after year 5000); milliseconds? divide by 1000"
            )
        ms = np.round(secs * 1000.0).astype(np.int64)
        out = pd.to_datetime(ms, unit="ms", utc=True).as_unit("ns")
        return pd.Series(out, index=raw.index)
    text = raw.astype("string")
    try:
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    except (ValueError, OverflowError, TypeError) as exc:
        raise DataError(f"{where}: cannot parse timestamps: {exc}") from exc
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}: cannot parse timestamp {_show(raw.iloc[row])} in {name(row)} "
            f"({int(bad.sum())} unparsable in all); use ISO 8601, e.g. 2026-03-01T10:05:00Z"
        )
    return parsed.dt.as_unit("ns")
