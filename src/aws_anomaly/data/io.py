"""Read and write datasets: CSV (``.csv``, ``.csv.gz``) and Parquet, wide or long layout.

* **wide**: one row per (timestamp, entity), one column per metric, as
  :meth:`Dataset.from_frame` takes it (and as :func:`write_dataset` writes it).
* **long**: one row per sample, as Prometheus exports produce: ``timestamp`` (unix seconds or
  ISO 8601), ``metric`` (or ``__name__``), ``value``, and labels either in a ``labels`` column,
  in Prometheus text form ``{cluster="a",namespace="x"}`` or as JSON, or as separate columns.
  The entity is the value of the label ``entity_label`` (default ``cluster``).

Every error names the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aws_anomaly.data.dataset import (
    DEFAULT_ENTITY,
    LABEL_COLUMNS,
    Dataset,
    GapPolicy,
    ResamplePolicy,
    format_timestamp,
    parse_timestamps,
)
from aws_anomaly.errors import ConfigError, DataError

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
                  where: str) -> pd.DataFrame:
    if "timestamp" not in df.columns:
        raise DataError(f"{where}: missing column 'timestamp'; columns are {list(df.columns)}")
    if "metric" in df.columns and "__name__" in df.columns:
        raise DataError(f"{where}: both 'metric' and '__name__' columns are present; keep one")
    name_col = "metric" if "metric" in df.columns else "__name__"
    if len(df) == 0:
        raise DataError(f"{where}: no rows")
    names = df[name_col].astype("string")
    if names.isna().any() or (names.str.strip() == "").any():
        row = int(np.flatnonzero((names.isna() | (names.str.strip() == "")).to_numpy())[0])
        raise DataError(f"{where}: metric name is empty in row {row}")
    label_cols = [c for c in df.columns if c not in _LONG_FIXED]
    # One parse per distinct series, not per row.
    parts = [names.astype(str)]
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
                            f"present: {seen or 'none'}; pass entity_label=... (or None for a "
                            "single entity)")
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

    ts = parse_timestamps(df["timestamp"], where)
    raw_values = df["value"]
    values = pd.to_numeric(raw_values, errors="coerce")
    bad = (values.isna() & raw_values.notna()
           & ~raw_values.astype("string").str.strip().str.lower().isin(
               ["nan", "", "+nan", "-nan"]).fillna(False)).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: 'value' in row {row} is not a number: {raw_values.iloc[row]!r}")
    long = pd.DataFrame({
        "timestamp": ts.reset_index(drop=True),
        "entity": np.asarray(entities, dtype=object)[codes],
        "metric": np.asarray(metric_of, dtype=object)[codes],
        "value": values.to_numpy(dtype=np.float64, na_value=np.nan),
    })
    if metrics is not None:
        wanted = [metrics] if isinstance(metrics, str) else list(metrics)
        have = set(metric_of)
        missing = [m for m in wanted if m not in have]
        if missing:
            raise DataError(f"{where}: metric(s) {missing} not in the file; metrics are "
                            f"{sorted(have)}")
        long = long[long["metric"].isin(wanted)]
    dup = long.duplicated(["timestamp", "entity", "metric"]).to_numpy()
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        r = long.iloc[k]
        raise DataError(f"{where}: metric {r['metric']!r} of entity {r['entity']!r} has two "
                        f"values at {format_timestamp(r['timestamp'])} (row {long.index[k]}); "
                        "each (timestamp, entity, metric) may appear once")
    wide = long.pivot(index=["entity", "timestamp"], columns="metric", values="value")
    order = wanted if metrics is not None else sorted(set(metric_of))
    wide = wide[order].reset_index()
    wide.columns.name = None
    return wide[["timestamp", "entity", *order]]


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
    resample: ResamplePolicy = "error",
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
    step, gap_policy, max_gap_steps, resample
        As in :meth:`Dataset.from_frame`.

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
    p = Path(path)
    df = read_frame(p)
    where = str(p)
    kind = _detect_layout(df, layout, where)
    if kind == "long":
        df = _long_to_wide(df, entity_label, metrics, where)
        metrics = None if metrics is None else list(metrics)
    elif "entity" not in df.columns and entity_label and entity_label in df.columns:
        # A wide export keyed by its label column (e.g. "cluster") instead of "entity".
        df = df.rename(columns={entity_label: "entity"})
    return Dataset.from_frame(df, metrics=metrics, step=step, gap_policy=gap_policy,
                              max_gap_steps=max_gap_steps, resample=resample, source=where)


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
    df["start"] = parse_timestamps(df["start"], f"{where}: column 'start'")
    df["end"] = parse_timestamps(df["end"], f"{where}: column 'end'")
    bad = (df["end"] < df["start"]).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: event in row {row} ends before it starts")
    if "magnitude" in df.columns:
        df["magnitude"] = pd.to_numeric(df["magnitude"], errors="coerce").astype(np.float64)
    return df
