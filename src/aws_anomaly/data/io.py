"""Read and write datasets: CSV (``.csv``, ``.csv.gz``) and Parquet, wide or long layout.

* **wide**: one row per (timestamp, entity), one column per metric, as
  :meth:`Dataset.from_frame` takes it (and as :func:`write_dataset` writes it).
* **long**: one row per sample, as Prometheus exports produce: ``timestamp`` (unix seconds or
  ISO 8601), ``metric`` (or ``__name__``), ``value``, and labels either in a ``labels`` column,
  in Prometheus text form ``{cluster="a",namespace="x"}`` or as JSON, or as separate columns.
  The entity is the value of the label ``entity_label`` (default ``cluster``).

Every error names the file, and the row: CSV rows by the line an editor shows (header = line
1), Parquet rows by their position counted from 1.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from aws_anomaly.data.dataset import (
    DEFAULT_ENTITY,
    DUPLICATE_POLICIES,
    LABEL_COLUMNS,
    TIMESTAMP_POLICIES,
    Dataset,
    DuplicatePolicy,
    GapPolicy,
    ResamplePolicy,
    RowNames,
    TimestampPolicy,
    _check_choice,
    _order_rows,
    format_timestamp,
    parse_timestamps,
)
from aws_anomaly.errors import ConfigError, DataError, show

__all__ = ["parse_labels", "read_dataset", "read_events", "read_frame", "write_dataset"]

_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
_LAYOUTS = ("auto", "wide", "long")
_LONG_FIXED = ("timestamp", "metric", "__name__", "value", "labels")
# Read as text in any layout; a wide metric column never has these names.
_TEXT_COLUMNS = ("entity", "cluster", "metric", "__name__", "labels", "anomaly_type", "type",
                 "metrics")
_NA = ["", "NaN", "nan", "NA", "N/A", "null", "None", "-NaN", "-nan"]
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_.\-]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)',
                       re.DOTALL)
_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}


def _kind(path: Path) -> str:
    name = path.name.lower()
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return "parquet" if suffix in (".parquet", ".pq") else "csv"
    raise DataError(f"{path}: unknown file type; use one of {', '.join(_SUFFIXES)}")


def parse_labels(text: str, where: str = "labels") -> dict[str, str]:
    """Parse Prometheus label text ``{a="x",b="y"}`` (optionally after a metric name) or JSON.

    >>> parse_labels('{cluster="eks-a",msg="say \\\\"hi\\\\""}')
    {'cluster': 'eks-a', 'msg': 'say "hi"'}
    >>> parse_labels('up{job="node"}')
    {'job': 'node'}
    >>> parse_labels('{"cluster": "eks-a"}')
    {'cluster': 'eks-a'}
    >>> parse_labels("")
    {}
    """
    s = text.strip()
    if not s or s == "{}":
        return {}
    if s.startswith('{"') or s.startswith("{ \""):
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: labels {text!r} are not valid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict) or not all(isinstance(v, str | int | float)
                                                for v in obj.values()):
            raise DataError(f"{where}: labels {text!r} must be a JSON object of strings")
        return {str(k): str(v) for k, v in obj.items()}
    brace = s.find("{")
    if brace < 0 or not s.endswith("}"):
        raise DataError(f"{where}: cannot parse labels {text!r}; expected {{name=\"value\",...}}")
    body = s[brace + 1:-1]
    out: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        if not body[pos:].strip():
            break
        m = _LABEL_RE.match(body, pos)
        if m is None:
            raise DataError(f"{where}: cannot parse labels {text!r} at character "
                            f"{brace + 1 + pos}; expected name=\"value\"")
        value = re.sub(r"\\(.)", lambda g: _UNESCAPE.get(g.group(1), "\\" + g.group(1)),
                       m.group(2))
        if m.group(1) in out:
            raise DataError(f"{where}: label {m.group(1)!r} repeats in {text!r}")
        out[m.group(1)] = value
        pos = m.end()
        if m.group(3) == "" and pos < len(body) and body[pos:].strip():
            raise DataError(f"{where}: cannot parse labels {text!r}; missing comma")
    return out


def read_frame(path: str | Path) -> pd.DataFrame:
    """Read a .csv / .csv.gz / .parquet file as it is (string columns kept as text).

    Raises ``DataError`` naming the path when the file is missing, of an unknown type or
    unreadable.

    >>> read_frame("no/such/file.csv")
    Traceback (most recent call last):
    ...
    aws_anomaly.errors.DataError: no/such/file.csv: file not found
    """
    p = Path(path)
    kind = _kind(p)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    try:
        if kind == "parquet":
            return pd.read_parquet(p)
        header = pd.read_csv(p, nrows=0)
        cols = list(header.columns)
        # Names and labels stay text ("007" is not 7, "NA" is a namespace); numbers get the
        # usual missing-value markers.
        text_cols = [c for c in cols if c not in ("timestamp", "value")
                     and (c in _TEXT_COLUMNS or _is_label_column(cols, c))]
        na = {c: _NA for c in cols if c not in text_cols}
        return pd.read_csv(p, dtype=dict.fromkeys(text_cols, str), keep_default_na=False,
                           na_values=na)
    except DataError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as exc:
        raise DataError(f"{p}: cannot read the file: {exc}") from exc
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        if type(exc).__module__.startswith("pyarrow"):
            raise DataError(f"{p}: cannot read the file: {exc}") from exc
        raise


def _csv_record_lines(path: Path) -> list[int]:
    """The line (1-based, header = line 1) on which each data record of a CSV file starts,
    counted as an editor counts them: blank lines are skipped (as pandas skips them) but
    counted, and a quoted value spanning lines counts all of its lines."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    out: list[int] = []
    with opener(path, "rt", newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        prev = 0
        header = True
        for rec in reader:
            start = prev + 1
            prev = reader.line_num
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            if header:
                header = False
                continue
            out.append(start)
    return out


class _CsvLines:
    """Names data row ``i`` of a CSV file by its line number; the file is scanned only when a
    message needs a line (errors), never on the normal path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: list[int] | None = None

    def __call__(self, i: int) -> str:
        if self._lines is None:
            try:
                self._lines = _csv_record_lines(self.path)
            except (OSError, EOFError, csv.Error, UnicodeError):
                self._lines = []
        if 0 <= i < len(self._lines):
            return f"line {self._lines[i]}"
        return f"data row {i + 1}"


def _parquet_row(i: int) -> str:
    return f"row {i + 1}"


def _row_names(path: Path) -> RowNames:
    return _CsvLines(path) if _kind(path) == "csv" else _parquet_row


def _is_label_column(cols: list[str], c: str) -> bool:
    """In a long layout every column besides the fixed ones is a label (text)."""
    long = "value" in cols and ("metric" in cols or "__name__" in cols)
    return long and c not in _LONG_FIXED


def _detect_layout(df: pd.DataFrame, layout: str, where: str) -> str:
    if layout not in _LAYOUTS:
        raise ConfigError(f"layout must be one of {list(_LAYOUTS)}, got {layout!r}")
    long = "value" in df.columns and ("metric" in df.columns or "__name__" in df.columns)
    if layout == "auto":
        return "long" if long else "wide"
    if layout == "long" and not long:
        raise DataError(f"{where}: layout='long' needs columns 'timestamp', 'metric' (or "
                        f"'__name__') and 'value'; columns are {list(df.columns)}")
    return layout


def _long_to_wide(df: pd.DataFrame, entity_label: str | None, metrics: Sequence[str] | None,
                  where: str, names: RowNames, timestamps: str, duplicates: str
                  ) -> tuple[pd.DataFrame, np.ndarray, int, int]:
    """Pivot long rows to the wide layout, applying the time-order and duplicate policies per
    series (entity, metric) in file order first.

    Returns the wide frame, the file position of the first row behind each wide row (for
    messages), and the counts of rows behind in time and of duplicate rows merged.
    """
    if "timestamp" not in df.columns:
        raise DataError(f"{where}: missing column 'timestamp'; columns are {list(df.columns)}")
    if "metric" in df.columns and "__name__" in df.columns:
        raise DataError(f"{where}: both 'metric' and '__name__' columns are present; keep one")
    name_col = "metric" if "metric" in df.columns else "__name__"
    if len(df) == 0:
        raise DataError(f"{where}: no rows")
    names_col = df[name_col].astype("string")
    if names_col.isna().any() or (names_col.str.strip() == "").any():
        row = int(np.flatnonzero((names_col.isna() | (names_col.str.strip() == "")).to_numpy())[0])
        raise DataError(f"{where}: metric name is empty in {names(row)}")
    label_cols = [c for c in df.columns if c not in _LONG_FIXED]
    # One parse per distinct series, not per row.
    parts = [names_col.astype(str)]
    if "labels" in df.columns:
        parts.append(df["labels"].astype("string").fillna("").astype(str))
    for c in label_cols:
        parts.append(df[c].astype("string").fillna("").astype(str))
    key = pd.MultiIndex.from_arrays(parts)
    codes, uniques = pd.factorize(key)
    series_labels: list[dict[str, str]] = []
    for tup in uniques:
        labels: dict[str, str] = {}
        if "labels" in df.columns:
            labels.update(parse_labels(tup[1], f"{where}: series {tup[0]}"))
            extra = tup[2:]
        else:
            extra = tup[1:]
        for c, v in zip(label_cols, extra, strict=True):
            if v != "":
                labels[c] = v
        series_labels.append(labels)

    if entity_label is None:
        entities = [DEFAULT_ENTITY] * len(uniques)
    else:
        has = [entity_label in lab for lab in series_labels]
        if not any(has):
            seen = sorted({k for lab in series_labels for k in lab})
            raise DataError(f"{where}: no series has the entity label {entity_label!r}; labels "
                            f"present: {seen or 'none'}; name the label with --entity-label "
                            "(`entity_label` in a job's file source), or pass --entity-label "
                            "none for a single entity")
        if not all(has):
            k = has.index(False)
            raise DataError(f"{where}: series {uniques[k][0]}{_fmt_labels(series_labels[k])} "
                            f"has no entity label {entity_label!r}; every series needs one")
        entities = [lab[entity_label] for lab in series_labels]
    metric_of = [u[0] for u in uniques]
    # Two series for one (entity, metric) that differ in other labels cannot be merged silently.
    seen_pairs: dict[tuple[str, str], int] = {}
    for k, (e, m) in enumerate(zip(entities, metric_of, strict=True)):
        if (e, m) in seen_pairs:
            other = series_labels[seen_pairs[(e, m)]]
            raise DataError(
                f"{where}: metric {m!r} of entity {e!r} comes from several series: "
                f"{_fmt_labels(other)} and {_fmt_labels(series_labels[k])}; aggregate them in "
                f"the query (e.g. sum by ({entity_label}) (...)) or filter one"
            )
        seen_pairs[(e, m)] = k

    ts = parse_timestamps(df["timestamp"], where, names)
    raw_values = df["value"]
    values = pd.to_numeric(raw_values, errors="coerce")
    bad = (values.isna() & raw_values.notna()
           & ~raw_values.astype("string").str.strip().str.lower().isin(
               ["nan", "", "+nan", "-nan"]).fillna(False)).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: 'value' in {names(row)} is not a number: "
                        f"{show(raw_values.iloc[row])}")
    vals = values.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isinf(vals).any():
        row = int(np.flatnonzero(np.isinf(vals))[0])
        raise DataError(f"{where}: 'value' in {names(row)} is infinite "
                        f"({show(raw_values.iloc[row])}); infinities are not measurements: fix "
                        "or drop those rows")
    positions = np.arange(len(df))
    if metrics is not None:
        wanted = [metrics] if isinstance(metrics, str) else list(metrics)
        have = set(metric_of)
        missing = [m for m in wanted if m not in have]
        if missing:
            raise DataError(f"{where}: metric(s) {missing} not in the file; metrics are "
                            f"{sorted(have)}")
        keep_series = np.isin(np.asarray(metric_of, dtype=object), wanted)
        positions = positions[keep_series[codes]]
    order = positions[np.argsort(codes[positions], kind="stable")]
    t_ns = pd.DatetimeIndex(ts).asi8[order]
    t_ns, series, col, _, _, rows, behind, dups = _order_rows(
        t_ns, codes[order].astype(np.int64), vals[order][:, None], None, None, order,
        timestamps=timestamps, duplicates=duplicates, source=where,
        series=lambda c: f"metric {metric_of[c]!r} of entity {entities[c]!r}", names=names)
    long = pd.DataFrame({
        "timestamp": pd.to_datetime(t_ns, utc=True),
        "entity": np.asarray(entities, dtype=object)[series],
        "metric": np.asarray(metric_of, dtype=object)[series],
        "value": col[:, 0],
        "_row": rows,
    })
    wide = long.pivot(index=["entity", "timestamp"], columns="metric", values="value")
    first_row = long.groupby(["entity", "timestamp"])["_row"].min().reindex(wide.index)
    order_m = wanted if metrics is not None else sorted(set(metric_of))
    wide = wide[order_m].reset_index()
    wide.columns.name = None
    return (wide[["timestamp", "entity", *order_m]], first_row.to_numpy(dtype=np.int64),
            behind, dups)


def _fmt_labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def read_dataset(
    path: str | Path,
    *,
    layout: str = "auto",
    metrics: Sequence[str] | None = None,
    entity_label: str | None = "cluster",
    step: str | pd.Timedelta | None = None,
    gap_policy: GapPolicy = "ffill",
    max_gap_steps: int | None = 36,
    resample: ResamplePolicy = "auto",
    timestamps: TimestampPolicy | None = None,
    duplicates: DuplicatePolicy = "first",
) -> Dataset:
    """Read a dataset from ``.csv``, ``.csv.gz`` or ``.parquet``, wide or long layout.

    Parameters
    ----------
    layout
        ``"auto"`` (long when the columns include ``value`` and ``metric`` / ``__name__``),
        ``"wide"`` or ``"long"``.
    metrics
        Metrics to keep (default all).
    entity_label
        Long layout: the label naming the entity (``None``: one entity, ``"default"``).
        Wide layout without an ``entity`` column: a column of that name is the entity.
    step, gap_policy, max_gap_steps, resample, duplicates
        As in :meth:`Dataset.from_frame`.
    timestamps
        As in :meth:`Dataset.from_frame`; ``None`` (default) is ``"error"`` for the wide
        layout and ``"sort"`` for the long layout, whose rows have no order of their own (an
        export may list them by metric, by time or not at all). In the long layout the
        time-order and duplicate policies apply to each series (entity, metric) in file order.

    The result's ``report`` (:class:`~aws_anomaly.data.dataset.LoadReport`) counts what the
    policies changed. Errors name CSV rows by line number (header = line 1) and Parquet rows
    by position from 1.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "m.csv").write_text(
    ...     "timestamp,metric,labels,value\\n"
    ...     '1767225600,cpu,"{cluster=""a""}",0.5\\n'
    ...     '1767225900,cpu,"{cluster=""a""}",0.6\\n')
    >>> ds = read_dataset(d / "m.csv")
    >>> ds.entities, ds.metrics, ds.values("a")[:, 0].tolist()
    (('a',), ('cpu',), [0.5, 0.6])
    """
    if timestamps is not None:
        _check_choice("timestamps", timestamps, TIMESTAMP_POLICIES)
    _check_choice("duplicates", duplicates, DUPLICATE_POLICIES)
    p = Path(path)
    df = read_frame(p)
    where = str(p)
    names = _row_names(p)
    kind = _detect_layout(df, layout, where)
    if kind == "long":
        timestamps = timestamps or "sort"
        rows_in = len(df)
        df, first_row, behind, dups = _long_to_wide(df, entity_label, metrics, where, names,
                                                    timestamps, duplicates)
        metrics = None if metrics is None else list(metrics)
        ds = Dataset.from_frame(df, metrics=metrics, step=step, gap_policy=gap_policy,
                                max_gap_steps=max_gap_steps, resample=resample,
                                timestamps=timestamps, duplicates=duplicates, source=where,
                                row_names=lambda i: names(int(first_row[i])))
        if ds.report is not None:
            ds = replace(ds, report=replace(ds.report, rows_in=rows_in, behind=behind,
                                            duplicate_rows=dups))
        return ds
    if "entity" not in df.columns and entity_label and entity_label in df.columns:
        # A wide export keyed by its label column (e.g. "cluster") instead of "entity".
        df = df.rename(columns={entity_label: "entity"})
    return Dataset.from_frame(df, metrics=metrics, step=step, gap_policy=gap_policy,
                              max_gap_steps=max_gap_steps, resample=resample,
                              timestamps=timestamps or "error", duplicates=duplicates,
                              source=where,
                              row_names=names)


def write_dataset(ds: Dataset, path: str | Path) -> Path:
    """Write a dataset in the wide layout (CSV, CSV.gz or Parquet); returns the path.

    CSV timestamps are ISO 8601 UTC (``2026-01-01T00:05:00Z``); values round-trip exactly.

    >>> import tempfile, pathlib
    >>> ts = pd.date_range("2026-01-01", periods=3, freq="5min", tz="UTC")
    >>> ds = Dataset.from_frame(pd.DataFrame({"timestamp": ts, "cpu": [0.1, 0.2, 0.3]}))
    >>> p = write_dataset(ds, pathlib.Path(tempfile.mkdtemp()) / "x.csv")
    >>> read_dataset(p).frame.equals(ds.frame)
    True
    """
    if not isinstance(ds, Dataset):
        raise DataError(f"write_dataset expects a Dataset, got {type(ds).__name__}")
    p = Path(path)
    kind = _kind(p)
    frame = ds.frame
    cols = ["timestamp", "entity", *ds.metrics] + ([*LABEL_COLUMNS] if ds.has_labels else [])
    frame = frame[cols]
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        if kind == "parquet":
            frame.to_parquet(p, index=False)
        else:
            out = frame.copy()
            out["timestamp"] = _iso(out["timestamp"])
            out.to_csv(p, index=False, lineterminator="\n")
    except OSError as exc:
        raise DataError(f"{p}: cannot write the file: {exc}") from exc
    return p


def _iso(col: pd.Series) -> pd.Series:
    """ISO 8601 UTC text; sub-second parts only where present."""
    whole = (col.dt.microsecond == 0) & (col.dt.nanosecond == 0)
    if bool(whole.all()):
        return col.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return col.map(format_timestamp)


_EVENT_COLUMNS = ("entity", "start", "end", "type")


def read_events(path: str | Path) -> pd.DataFrame:
    """Read an events file (as ``write_demo`` writes ``events.csv``) with typed columns.

    ``entity``, ``type`` and ``metrics`` stay text; ``start`` / ``end`` become UTC datetimes
    (``end`` inclusive); ``magnitude`` a float when present.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "events.csv"
    >>> _ = p.write_text("entity,start,end,type,metrics,magnitude\\n"
    ...                  "007,2026-01-01T00:05:00Z,2026-01-01T00:10:00Z,spike,cpu,0.2\\n")
    >>> ev = read_events(p); ev["entity"][0], str(ev["end"][0])
    ('007', '2026-01-01 00:10:00+00:00')
    """
    p = Path(path)
    df = read_frame(p)
    where = str(p)
    missing = [c for c in _EVENT_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing event column(s) {missing}; columns are "
                        f"{list(df.columns)}")
    df = df.copy()
    for c in ("entity", "type", "metrics"):
        if c in df.columns:
            df[c] = df[c].astype("string").fillna("").astype(str)
    names = _row_names(p)
    df["start"] = parse_timestamps(df["start"], f"{where}: column 'start'", names)
    df["end"] = parse_timestamps(df["end"], f"{where}: column 'end'", names)
    bad = (df["end"] < df["start"]).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: the event in {names(row)} ends before it starts")
    if "magnitude" in df.columns:
        df["magnitude"] = pd.to_numeric(df["magnitude"], errors="coerce").astype(np.float64)
    return df
