"""The real-server bench: multivariate detectors on labelled server metrics (SMD, ASD, ...).

For a folder laid out as ``<dataset>/<server>/{train,test}.parquet`` (``train``: ``timestamp``,
``entity``, metric columns, no labels; ``test``: the same plus ``is_anomaly`` 0/1)
:func:`run_servers_bench`, for every server and every detector of the registry:

1. fits the detector on ``train.parquet`` **without labels** (training labels, if a file has
   any, are dropped before the detector sees the data);
2. scores ``test.parquet`` **causally**, with the training rows as look-back
   (``score(test, history=train)``), so the first test rows are scored too; the test labels
   never reach the detector;
3. checks causality (unless told not to): the test rows' first half is scored again on its own
   and must give the same scores and flags as the full run, else the run counts as failed;
4. measures, against ``is_anomaly``: point precision / recall / F1 / false-positive rate at the
   detector's own flag (its label-free threshold), the best F1 over all thresholds (the oracle
   figure papers report; no point-adjust), event recall and event precision (events = runs of
   consecutive labelled points; a predicted event = a run of consecutive flagged points; event
   precision = share of predicted runs that overlap a labelled event), composite F1 (the
   harmonic mean of point precision and event recall, Garg et al. 2021), flagged runs per day
   and fit / score seconds;
5. for detectors that declare a parameter grid, runs every grid point and reports
   **leave-one-server-out** figures: for each server, the parameter set with the best mean
   best-F1 on the *other* servers, measured on the held-out one;
6. writes ``scores.json`` (schema :data:`SCHEMA`) and ``scores.md``.

A detector that raises on a server (e.g. the product refusing constant metrics) is recorded as
failed there, with its message; the bench carries on.

Detectors are a registry, :data:`DETECTORS` (name -> :class:`DetectorSpec`). A detector factory
returns an object following the contract::

    det = factory(**params)
    det.fit(train)                                  # a Dataset without labels
    scores, flags = det.score(test, history=train)  # one float and one bool per test row

Higher scores mean more anomalous; ``flags`` is the detector's own decision. Add one with
``DETECTORS["name"] = DetectorSpec(factory, grid=param_grid(x=(1, 2)))`` or
:func:`register_detector`. With ``workers > 1`` factories must be picklable (module level).
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import math
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from aws_anomaly.data import LABEL_COLUMNS, Dataset
from aws_anomaly.errors import ConfigError, DataError, show
from aws_anomaly.evaluation.baselines import (
    HOLDOUT_SHARE,
    STD_FLOOR_RATIO,
    TARGET_FPR,
    IForestBaseline,
    KnnBaseline,
    MaxZBaseline,
    PcaBaseline,
)
from aws_anomaly.evaluation.metrics import event_metrics_arrays, point_metrics, pr_curve

__all__ = [
    "DETECTORS",
    "METRIC_KEYS",
    "SCHEMA",
    "BenchDetector",
    "DetectorSpec",
    "ModelDetector",
    "ServerData",
    "best_f1",
    "discover_servers",
    "leave_one_server_out",
    "load_server",
    "param_grid",
    "register_detector",
    "render_markdown",
    "run_servers_bench",
    "score_server",
    "server_metrics",
]

SCHEMA = "aws-anomaly/bench-servers/1"
#: Share of each training series (the most recent rows) the product model calibrates on.
MODEL_VALIDATION_SHARE = 0.15
#: Metrics averaged over servers (means tables, LOSO means).
METRIC_KEYS = ("precision", "recall", "f1", "fpr", "best_f1", "event_recall",
               "event_precision", "composite_f1", "flagged_runs_per_day", "flagged_share",
               "fit_s", "score_s")


class BenchDetector(Protocol):
    """What a detector factory returns (see the module docstring)."""

    def fit(self, train: Any) -> Any: ...

    def score(self, test: Any, history: Any = None) -> tuple[Any, Any]: ...


@dataclass(frozen=True)
class DetectorSpec:
    """A registry entry: how to build a detector, its defaults and its tuning grid.

    ``grid``: parameter sets (each merged over ``params``) tried for leave-one-server-out;
    empty: the detector runs with ``params`` only. ``named_only``: left out of a run that
    names no detectors (one that needs an optional extra, e.g. PyTorch for ``aws_lstm``).
    """

    factory: Callable[..., BenchDetector]
    params: Mapping[str, Any] = field(default_factory=dict)
    grid: tuple[Mapping[str, Any], ...] = ()
    kind: str = "product"
    description: str = ""
    named_only: bool = False

    def configs(self) -> list[dict[str, Any]]:
        """The parameter sets to run: the defaults first, then the grid (no repeats)."""
        out = [dict(self.params)]
        for g in self.grid:
            p = {**self.params, **g}
            if p not in out:
                out.append(p)
        return out


def param_grid(**choices: Sequence[Any]) -> tuple[dict[str, Any], ...]:
    """Every combination of the given choices.

    >>> param_grid(k=(1, 5), p=("a",))
    ({'k': 1, 'p': 'a'}, {'k': 5, 'p': 'a'})
    """
    keys = list(choices)
    return tuple(dict(zip(keys, combo, strict=True))
                 for combo in itertools.product(*(choices[k] for k in keys)))


def params_label(params: Mapping[str, Any]) -> str:
    """``k=1, variance=0.95``; ``defaults`` for none.

    >>> params_label({"variance": 0.9, "k": 1})
    'k=1, variance=0.9'
    """
    return ", ".join(f"{k}={params[k]}" for k in sorted(params)) or "defaults"


class ModelDetector:
    """The product, an :class:`aws_anomaly.model.AnomalyModel`, as shipped.

    ``builder`` None: ``AnomalyModel(**model_params)`` (its defaults); else the name of a
    function of :mod:`aws_anomaly.model` called as ``builder(step, **model_params)`` (e.g.
    ``"default_model"``).

    ``fit(train)``: with ``validation_share`` (default 0.15) the model is fit on the first 85 %
    of each entity's training rows and calibrated without labels (``auto`` without labels: a
    1 % target FPR) on the last 15 %, scored with the first part as look-back; with
    ``validation_share=None`` it is fit on all training rows and calibrates as it does without
    validation data. ``score(test, history)`` is ``model.score(test, history=history)``:
    ``anomaly_score`` and ``is_anomaly``.
    """

    def __init__(self, validation_share: float | None = MODEL_VALIDATION_SHARE,
                 builder: str | None = None, **model_params: Any) -> None:
        if validation_share is not None and not 0.0 < validation_share < 1.0:
            raise ConfigError(f"validation_share must be None or in (0, 1), got "
                              f"{validation_share!r}")
        self.validation_share = validation_share
        self.builder = builder
        self.model_params = dict(model_params)

    def _build(self, step: pd.Timedelta) -> Any:
        from aws_anomaly import model as model_module

        if self.builder is None:
            return model_module.AnomalyModel(**self.model_params)
        build = getattr(model_module, self.builder, None)
        if not callable(build):
            raise ConfigError(f"aws_anomaly.model has no model builder {self.builder!r}")
        return build(step, **self.model_params)

    def fit(self, train: Dataset | pd.DataFrame) -> ModelDetector:
        ds = train if isinstance(train, Dataset) else Dataset.from_frame(train,
                                                                          source="training data")
        model = self._build(ds.step)
        if self.validation_share is None:
            self.model_ = model.fit(ds)
            return self
        self.model_ = model.fit(*ds.split_tail(self.validation_share))
        return self

    def score(self, test: Dataset | pd.DataFrame,
              history: Dataset | pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
        out = self.model_.score(test, history=history, explain="none")
        return (out["anomaly_score"].to_numpy(dtype=np.float64),
                out["is_anomaly"].to_numpy(dtype=bool))


#: The detectors of the bench, run in this order. One line adds one.
DETECTORS: dict[str, DetectorSpec] = {
    "knn": DetectorSpec(KnnBaseline, {"k": 1}, param_grid(k=(1, 5, 10)), "baseline",
                        "mean distance to the k nearest training rows (standardised raw)"),
    "pca": DetectorSpec(PcaBaseline, {"variance": 0.95}, param_grid(variance=(0.90, 0.95)),
                        "baseline", "PCA reconstruction error (standardised raw)"),
    "iforest": DetectorSpec(IForestBaseline, {}, (), "baseline",
                            "Isolation Forest, 100 trees (standardised raw)"),
    "max_z": DetectorSpec(MaxZBaseline, {}, (), "baseline", "max |z| over the metrics"),
    "aws_model": DetectorSpec(ModelDetector, {}, (), "product",
                              "aws_anomaly.model.AnomalyModel with its defaults"),
    "aws_default": DetectorSpec(ModelDetector, {"builder": "default_model",
                                                "validation_share": None}, (), "product",
                                "aws_anomaly.model.default_model(step), fit on all training "
                                "rows"),
    # The default as it is for fewer than 10 metrics, no tail or volatility-excess term (the
    # default until 2026-12-02 evening; docs/model.md, "the terms for many metrics"): the A/B.
    "aws_default_narrow": DetectorSpec(
        ModelDetector, {"builder": "default_model", "validation_share": None,
                        "detector_params": {"tail_weight": 0.0, "excess_weight": 0.0}}, (),
        "product", "default_model(step) without its terms for many metrics (tail, excess)",
        named_only=True),
    # One of the two terms alone: the volatility excess (measured 2026-12-01 night as the
    # option `aws_default_excess`) and the tail term (2026-12-02 evening).
    "aws_default_excess": DetectorSpec(
        ModelDetector, {"builder": "default_model", "validation_share": None,
                        "detector_params": {"tail_weight": 0.0}}, (), "product",
        "default_model(step) with the volatility excess, no tail term", named_only=True),
    "aws_default_tail": DetectorSpec(
        ModelDetector, {"builder": "default_model", "validation_share": None,
                        "detector_params": {"excess_weight": 0.0}}, (), "product",
        "default_model(step) with the tail term, no volatility excess", named_only=True),
    # The LSTM autoencoder (PyTorch, the 'deep' extra) in place of kNN in the default pipeline
    # (docs/model.md, "How it was chosen"; benchmarks/servers_lstm.py also averages the two).
    "aws_lstm": DetectorSpec(ModelDetector, {"builder": "default_model", "validation_share": None,
                                             "detector": "lstm_ae"}, (), "product",
                             "default_model(step, detector='lstm_ae'): an LSTM autoencoder on "
                             "the default features, fit on all training rows", named_only=True),
}


def register_detector(name: str, factory: Callable[..., BenchDetector], *,
                      params: Mapping[str, Any] | None = None,
                      grid: Sequence[Mapping[str, Any]] = (), kind: str = "product",
                      description: str = "",
                      registry: dict[str, DetectorSpec] | None = None) -> DetectorSpec:
    """Add (or replace) a detector in ``registry`` (default :data:`DETECTORS`)."""
    if not name or not isinstance(name, str):
        raise ConfigError(f"detector name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise ConfigError(f"detector {name!r}: factory must be callable, got {factory!r}")
    spec = DetectorSpec(factory, dict(params or {}), tuple(dict(g) for g in grid), kind,
                        description)
    (DETECTORS if registry is None else registry)[name] = spec
    return spec


# ---------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class ServerData:
    """One server: training rows (no labels), test rows (no labels) and the test labels."""

    key: str
    dataset: str
    server: str
    folder: Path
    train: Dataset
    test: Dataset
    labels: np.ndarray
    notes: tuple[str, ...] = ()

    def info(self) -> dict[str, Any]:
        y = self.labels
        ev = event_metrics_arrays(y, np.zeros(len(y), dtype=bool))["n_events"]
        t_end = self.train.frame["timestamp"].iloc[-1]
        return {
            "dataset": self.dataset, "server": self.server, "folder": str(self.folder),
            "metrics": len(self.train.metrics), "step": _step_text(self.train.step),
            "train_rows": len(self.train), "test_rows": len(self.test),
            "anomalous_share": float(y.mean()) if len(y) else 0.0, "events": int(ev),
            "test_days": _days(len(self.test), self.train.step),
            "history_contiguous": bool(self.test.frame["timestamp"].iloc[0]
                                       == t_end + self.train.step),
            "notes": list(self.notes),
        }


def _step_text(step: pd.Timedelta) -> str:
    """``5min``, ``1min``, ``30s``: the step as a pandas frequency string."""
    try:
        text = str(pd.tseries.frequencies.to_offset(pd.Timedelta(step)).freqstr)
        return text if text[:1].isdigit() else f"1{text}"
    except ValueError:
        return str(step)


def _days(rows: int, step: pd.Timedelta) -> float:
    return rows * pd.Timedelta(step) / pd.Timedelta(days=1)


def discover_servers(root: str | Path, patterns: Sequence[str] | None = None
                     ) -> list[tuple[str, Path]]:
    """``(dataset/server, folder)`` for every server folder under ``root``, sorted.

    A server folder holds ``train.parquet`` and ``test.parquet``; ``root`` holds
    ``<dataset>/<server>/`` folders (or is itself one dataset: ``<server>/``). ``patterns``:
    globs on ``dataset/server`` or ``server`` (any may match).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"servers data folder {root} does not exist or is not a folder")
    found: dict[str, Path] = {}
    for depth, glob in ((2, "*/*/*.parquet"), (1, "*/*.parquet")):
        for f in sorted(root.glob(glob)):
            if f.name not in ("train.parquet", "test.parquet"):
                continue
            folder = f.parent
            key = (f"{folder.parent.name}/{folder.name}" if depth == 2
                   else f"{root.name}/{folder.name}")
            found.setdefault(key, folder)
        if found:
            break
    if not found:
        raise DataError(f"{root}: no server folders found; expected "
                        "<dataset>/<server>/train.parquet and test.parquet")
    if patterns:
        selected = {k: v for k, v in found.items()
                    if any(fnmatch.fnmatch(k, g) or fnmatch.fnmatch(k.split("/", 1)[1], g)
                           for g in patterns)}
        if not selected:
            raise DataError(f"{root}: no server matches {list(patterns)}; servers are "
                            f"{sorted(found)}")
        found = selected
    for folder in found.values():
        for name in ("train.parquet", "test.parquet"):
            if not (folder / name).is_file():
                raise DataError(f"server folder {folder}: {name} is missing")
    return sorted(found.items())


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many kinds; all mean "cannot read this file"
        raise DataError(f"{path}: cannot read parquet ({type(exc).__name__}: {exc})") from exc


def load_server(key: str, folder: str | Path) -> ServerData:
    """Read and check one server folder. Errors name the folder and the file."""
    folder = Path(folder)
    dataset, server = key.split("/", 1)
    tr_path, te_path = folder / "train.parquet", folder / "test.parquet"
    train_df, test_df = _read(tr_path), _read(te_path)
    notes = []
    reserved = {"timestamp", "entity", *LABEL_COLUMNS}
    for path, df in ((tr_path, train_df), (te_path, test_df)):
        if "timestamp" not in df.columns:
            raise DataError(f"{path}: no 'timestamp' column; columns are {list(df.columns)}")
        bad = [c for c in df.columns if c not in reserved
               and (not pd.api.types.is_numeric_dtype(df[c])
                    or pd.api.types.is_bool_dtype(df[c]))]
        if bad:
            raise DataError(f"{path}: non-numeric metric column(s) {bad}")
    metrics = [c for c in train_df.columns if c not in reserved]
    if not metrics:
        raise DataError(f"{tr_path}: no metric columns; columns are {list(train_df.columns)}")
    if any(c in train_df.columns for c in LABEL_COLUMNS):
        train_df = train_df.drop(columns=[c for c in LABEL_COLUMNS if c in train_df.columns])
        notes.append("training labels dropped: detectors are fit without labels")
    if "is_anomaly" not in test_df.columns:
        raise DataError(f"{te_path}: no 'is_anomaly' label column; columns are "
                        f"{list(test_df.columns)}")
    test_metrics = [c for c in test_df.columns if c not in reserved]
    if sorted(test_metrics) != sorted(metrics):
        raise DataError(f"{te_path}: metric columns {sorted(test_metrics)} differ from "
                        f"{tr_path}'s {sorted(metrics)}")
    lab = test_df["is_anomaly"]
    if lab.isna().any() or not lab.isin((0, 1)).all():
        odd = lab[lab.isna() | ~lab.isin((0, 1))].iloc[:3].tolist()
        raise DataError(f"{te_path}: 'is_anomaly' must be 0/1, found {odd}")
    test_df = test_df.drop(columns=[c for c in LABEL_COLUMNS if c in test_df.columns
                                    and c != "is_anomaly"])
    dsets = []
    for path, df in ((tr_path, train_df), (te_path, test_df)):
        # gap_policy="error": every file row is measured as it is, nothing filled in.
        ds = Dataset.from_frame(df, metrics=metrics, gap_policy="error", source=str(path))
        if len(ds) != len(df):
            raise DataError(f"{path}: {len(df)} rows became {len(ds)} on the time grid")
        if len(ds.entities) != 1:
            raise DataError(f"{path}: one server per folder, found entities "
                            f"{list(ds.entities)[:5]}")
        dsets.append(ds)
    train, test = dsets
    if train.entities != test.entities:
        raise DataError(f"{te_path}: entity {test.entities[0]!r} differs from {tr_path}'s "
                        f"{train.entities[0]!r}")
    if train.step != test.step:
        raise DataError(f"{te_path}: step {test.step} differs from {tr_path}'s {train.step}")
    labels = test.frame["is_anomaly"].to_numpy().astype(bool)
    test = test.subset(labels=False, where=str(te_path))
    return ServerData(key, dataset, server, folder, train, test, labels, tuple(notes))


# ------------------------------------------------------------------------------- metrics
def best_f1(y_true: Any, scores: Any) -> dict[str, float]:
    """The best point F1 over every threshold ``scores >= t`` (no point-adjust).

    >>> best_f1([0, 0, 1, 1, 0], [0.1, 0.2, 0.9, 0.3, 0.4])["best_f1"]
    0.8
    """
    curve = pr_curve(y_true, scores, max_points=max(len(np.asarray(scores)), 1))
    p = np.asarray(curve["precision"])
    r = np.asarray(curve["recall"])
    if p.size == 0:
        return {"best_f1": 0.0, "best_f1_precision": 0.0, "best_f1_recall": 0.0,
                "best_f1_threshold": float("nan")}
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    i = int(np.argmax(f))
    return {"best_f1": float(f[i]), "best_f1_precision": float(p[i]),
            "best_f1_recall": float(r[i]), "best_f1_threshold": float(curve["threshold"][i])}


def server_metrics(y_true: Any, scores: Any, flags: Any, step: pd.Timedelta) -> dict[str, Any]:
    """Every bench metric for one server (see the module docstring).

    >>> m = server_metrics([0, 1, 1, 0, 0, 0], [0, 2, 0, 0, 3, 0],
    ...                    [0, 1, 0, 0, 1, 0], pd.Timedelta("12h"))
    >>> m["precision"], m["recall"], m["event_recall"], m["event_precision"]
    (0.5, 0.5, 1.0, 0.5)
    >>> round(m["composite_f1"], 4), round(m["flagged_runs_per_day"], 4), m["best_f1"]
    (0.6667, 0.6667, 0.5)
    """
    y = np.asarray(y_true).astype(bool)
    flags = np.asarray(flags).astype(bool)
    pm = point_metrics(y, flags)
    em = event_metrics_arrays(y, flags)
    days = _days(len(y), step)
    p, er = pm["precision"], em["event_recall"]
    out: dict[str, Any] = {k: pm[k] for k in ("precision", "recall", "f1", "fpr",
                                              "confusion_matrix")}
    out.update(best_f1(y, scores))
    out.update({k: em[k] for k in ("event_recall", "event_precision", "n_events",
                                   "n_detected_events", "n_flagged_runs", "n_false_events",
                                   "mean_detection_delay_steps")})
    out["composite_f1"] = 2 * p * er / (p + er) if p + er > 0 else 0.0
    out["flagged_runs_per_day"] = em["n_flagged_runs"] / days if days > 0 else 0.0
    out["flagged_share"] = float(flags.mean()) if len(flags) else 0.0
    return out


# ------------------------------------------------------------------------------- running
def score_server(factory: Callable[..., BenchDetector], params: Mapping[str, Any],
                 data: ServerData, *, check_causality: bool = True,
                 name: str = "detector") -> dict[str, Any]:
    """Fit on the training rows, score the test rows with the training rows as history.

    Returns ``scores``, ``flags``, ``fit_s``, ``score_s`` and ``causal`` (None when not
    checked). Raises :class:`DataError` for output of the wrong shape or non-finite scores, or
    when the prefix run differs from the full one (look-ahead).
    """
    where = f"detector {name!r} on {data.key}"
    t0 = time.perf_counter()
    det = factory(**params)
    det.fit(data.train)
    t1 = time.perf_counter()
    scores, flags = det.score(data.test, history=data.train)
    t2 = time.perf_counter()
    scores, flags = _check_output(scores, flags, len(data.test), where)
    causal = None
    if check_causality:
        cut = max(1, len(data.test) // 2)
        prefix = data.test.subset(slice(0, cut), where=f"{where}: causality check")
        ps, pf = _check_output(*det.score(prefix, history=data.train), cut, where)
        causal = bool(np.allclose(ps, scores[:cut], rtol=1e-9, atol=1e-12)
                      and np.array_equal(pf, flags[:cut]))
        if not causal:
            row = int(np.flatnonzero(~np.isclose(ps, scores[:cut], rtol=1e-9, atol=1e-12)
                                     | (pf != flags[:cut]))[0])
            raise DataError(f"{where}: look-ahead: scoring the first {cut} test rows alone "
                            f"changes row {row} (score {show(ps[row])} vs "
                            f"{show(scores[row])} in the full run)")
    return {"scores": scores, "flags": flags, "fit_s": t1 - t0, "score_s": t2 - t1,
            "causal": causal}


def _check_output(scores: Any, flags: Any, n: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    f = np.asarray(flags).reshape(-1)
    if s.shape != (n,) or f.shape != (n,):
        raise DataError(f"{where}: returned {s.shape} scores and {f.shape} flags for {n} rows")
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        raise DataError(f"{where}: score {show(s[bad[0]])} at test row {int(bad[0])} is not finite "
                        f"({bad.size} such rows)")
    return s, f.astype(bool)


@dataclass(frozen=True)
class _Task:
    detector: str
    label: str
    factory: Callable[..., BenchDetector]
    params: dict[str, Any]
    data: ServerData
    check_causality: bool
    single_thread: bool


def _run_task(task: _Task) -> dict[str, Any]:
    """Run one (detector, parameters, server); never raises for a detector's failure."""
    out: dict[str, Any] = {"detector": task.detector, "label": task.label,
                           "server": task.data.key}
    try:
        if task.single_thread:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):
                run = score_server(task.factory, task.params, task.data,
                                   check_causality=task.check_causality, name=task.detector)
        else:
            run = score_server(task.factory, task.params, task.data,
                               check_causality=task.check_causality, name=task.detector)
    except Exception as exc:  # a detector's failure is a result of the bench, not a crash
        out.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        return out
    out.update(status="ok", **server_metrics(task.data.labels, run["scores"], run["flags"],
                                             task.data.train.step))
    out.update(fit_s=run["fit_s"], score_s=run["score_s"], causal=run["causal"])
    return out


def _execute(tasks: list[_Task], workers: int, progress: bool) -> list[dict[str, Any]]:
    bar = tqdm(total=len(tasks), desc="servers bench", unit="run", disable=not progress)
    results = []
    try:
        if workers <= 1 or len(tasks) <= 1:
            for t in tasks:
                bar.set_postfix_str(f"{t.detector} {t.data.key}", refresh=False)
                results.append(_run_task(t))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_run_task, t) for t in tasks]
                for fut in as_completed(futures):
                    res = fut.result()
                    bar.set_postfix_str(f"{res['detector']} {res['server']}", refresh=False)
                    results.append(res)
                    bar.update()
    finally:
        bar.close()
    return results


def _resolve(registry: Mapping[str, DetectorSpec | Callable[..., BenchDetector]],
             names: Sequence[str] | None) -> dict[str, DetectorSpec]:
    specs = {n: (s if isinstance(s, DetectorSpec) else DetectorSpec(s))
             for n, s in registry.items()}
    if not names:
        return {n: s for n, s in specs.items() if not s.named_only}
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ConfigError(f"unknown detector(s) {unknown}; available: {list(specs)}")
    return {n: specs[n] for n in dict.fromkeys(names)}


def _mean(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"servers": len(rows)}
    for k in METRIC_KEYS:
        vals = [r[k] for r in rows if r.get(k) is not None]
        out[k] = float(np.mean(vals)) if vals else None
    return out


def leave_one_server_out(per_config: Mapping[str, Mapping[str, Mapping[str, Any]]],
                         order: Sequence[str]) -> dict[str, Any]:
    """For each server, the config (label) with the best mean best-F1 on the other servers.

    ``per_config[label][server]`` holds that run's metrics (``status`` "ok" or "failed");
    ``order``: the labels in preference order for ties (defaults first). A config is eligible
    for a held-out server when it ran on every other server. Returns ``servers`` (held-out
    server -> ``params``, ``choice_mean_best_f1`` and the held-out metrics) and ``mean``.

    >>> r = lambda f: {"status": "ok", "best_f1": f}
    >>> cfg = {"a": {"s1": r(0.9), "s2": r(0.1), "s3": r(0.2)},
    ...        "b": {"s1": r(0.5), "s2": r(0.3), "s3": r(0.4)}}
    >>> out = leave_one_server_out(cfg, ["a", "b"])
    >>> {s: v["params"] for s, v in out["servers"].items()}
    {'s1': 'b', 's2': 'a', 's3': 'a'}
    """
    servers = sorted({s for runs in per_config.values() for s in runs})
    chosen: dict[str, Any] = {}
    for held in servers:
        others = [s for s in servers if s != held]
        best_label, best_value = None, -math.inf
        for label in order:
            runs = per_config.get(label, {})
            if not others or not all(runs.get(s, {}).get("status") == "ok" for s in others):
                continue
            value = float(np.mean([runs[s]["best_f1"] for s in others]))
            if value > best_value:
                best_label, best_value = label, value
        if best_label is None:
            chosen[held] = {"status": "failed",
                            "error": "no parameter set ran on every other server"}
            continue
        res = dict(per_config[best_label].get(held, {"status": "failed", "error": "not run"}))
        res.update(params=best_label, choice_mean_best_f1=best_value)
        chosen[held] = res
    ok = [v for v in chosen.values() if v.get("status") == "ok"]
    return {"servers": chosen, "mean": _mean(ok), "failed": len(chosen) - len(ok)}


def run_servers_bench(
    data: str | Path,
    out: str | Path | None = None,
    *,
    servers: Sequence[str] | None = None,
    detectors: Sequence[str] | None = None,
    registry: Mapping[str, DetectorSpec | Callable[..., BenchDetector]] | None = None,
    workers: int = 2,
    progress: bool = True,
    check_causality: bool = True,
) -> dict[str, Any]:
    """Run the bench (see the module docstring); write ``OUT/scores.{json,md}`` when ``out``.

    ``registry``: name -> :class:`DetectorSpec` (or a bare factory); default :data:`DETECTORS`.
    ``detectors``: names to run from it (default all but the ``named_only`` ones).
    ``servers``: globs on ``dataset/server`` or ``server``.
    """
    started = time.perf_counter()
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    specs = _resolve(DETECTORS if registry is None else registry, detectors)
    found = discover_servers(data, servers)
    loaded = [load_server(k, f) for k, f in found]
    if workers > 1:
        for name, spec in specs.items():
            try:
                pickle.dumps(spec.factory)
            except Exception as exc:
                raise ConfigError(f"detector {name!r}: its factory cannot be sent to worker "
                                  f"processes ({exc}); use workers=1 or a module-level "
                                  "factory") from exc
    configs = {n: [(params_label(p), p) for p in s.configs()] for n, s in specs.items()}
    # Large servers first, so the pool's last tasks are short.
    tasks = [_Task(n, label, specs[n].factory, p, d, check_causality, workers > 1)
             for d in sorted(loaded, key=lambda d: -len(d.test) * len(d.test.metrics))
             for n in specs for label, p in configs[n]]
    results = _execute(tasks, workers, progress)
    by: dict[str, dict[str, dict[str, dict[str, Any]]]] = {n: {} for n in specs}
    for r in results:
        rec = {k: v for k, v in r.items() if k not in ("detector", "label", "server")}
        by[r["detector"]].setdefault(r["label"], {})[r["server"]] = rec
    keys = [d.key for d in loaded]
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "data": str(data),
        "created": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rules": {
            "fit": "train.parquet without labels; test.parquet scored causally with the "
                   "training rows as look-back; test labels never reach a detector",
            "baseline_threshold": f"baselines fit (standardisation and detector) on the first "
                                  f"{1 - HOLDOUT_SHARE:.0%} of the training rows; threshold = "
                                  f"the lowest score flagging at most {TARGET_FPR:.0%} of the "
                                  f"last {HOLDOUT_SHARE:.0%} (held back, scored out-of-fit); "
                                  "flag = score >= threshold",
            "std_floor": f"standard deviation floored at {STD_FLOOR_RATIO} x the median "
                         "non-zero training standard deviation",
            "model_threshold": f"AnomalyModel defaults, fit on the first "
                               f"{1 - MODEL_VALIDATION_SHARE:.0%} of the training rows, "
                               f"calibrated without labels on the last "
                               f"{MODEL_VALIDATION_SHARE:.0%}; flag = is_anomaly",
            "best_f1": "best point F1 over every threshold on the test scores (oracle, no "
                       "point-adjust)",
            "events": "event = run of consecutive labelled points; predicted event = run of "
                      "consecutive flagged points; event precision = share of predicted runs "
                      "overlapping a labelled event",
            "composite_f1": "harmonic mean of point precision and event recall (Garg et al.)",
            "loso": "for detectors with a grid: per held-out server, the parameter set with "
                    "the best mean best-F1 on the other servers",
            "causality": "checked: the first half of the test rows scored alone must match"
                         if check_causality else "not checked",
        },
        "servers": {d.key: d.info() for d in loaded},
        "detectors": {},
        "workers": workers,
    }
    ok_everywhere = [k for k in keys
                     if all(by[n].get(configs[n][0][0], {}).get(k, {}).get("status") == "ok"
                            for n in specs)]
    for n, spec in specs.items():
        default = configs[n][0][0]
        per_server = {k: by[n].get(default, {}).get(k, {"status": "failed", "error": "not run"})
                      for k in keys}
        ok = [v for v in per_server.values() if v["status"] == "ok"]
        entry: dict[str, Any] = {
            "kind": spec.kind, "description": spec.description, "params": default,
            "grid": [label for label, _ in configs[n]],
            "servers": per_server,
            "mean": _mean(ok),
            "mean_common": _mean([per_server[k] for k in ok_everywhere]),
            "mean_by_dataset": {
                ds: _mean([per_server[k] for k in keys
                           if k.startswith(ds + "/") and per_server[k]["status"] == "ok"])
                for ds in dict.fromkeys(k.split("/", 1)[0] for k in keys)
            },
            "failed": {k: v["error"] for k, v in per_server.items() if v["status"] != "ok"},
        }
        if len(configs[n]) > 1:
            entry["grid_best_f1"] = {
                label: {k: by[n].get(label, {}).get(k, {}).get("best_f1") for k in keys}
                for label, _ in configs[n]}
            entry["loso"] = leave_one_server_out(by[n], [label for label, _ in configs[n]])
        report["detectors"][n] = entry
    report["common_servers"] = ok_everywhere
    report["elapsed_s"] = time.perf_counter() - started
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "scores.json").write_text(json.dumps(_jsonable(report), indent=1) + "\n")
        (out / "scores.md").write_text(render_markdown(report))
    return report


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ------------------------------------------------------------------------------ markdown
_COLS = (("precision", "P", 3), ("recall", "R", 3), ("f1", "F1", 3), ("fpr", "FPR", 4),
         ("best_f1", "best F1", 3), ("event_recall", "event R", 3),
         ("event_precision", "event P", 3), ("composite_f1", "composite F1", 3),
         ("flagged_runs_per_day", "runs/day", 1), ("fit_s", "fit s", 1),
         ("score_s", "score s", 1))


def _fmt(v: Any, digits: int) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def _row(name: str, m: Mapping[str, Any], extra: Sequence[str] = ()) -> str:
    cells = [name, *extra, *(_fmt(m.get(k), d) for k, _, d in _COLS)]
    return "| " + " | ".join(cells) + " |"


def _header(first: Sequence[str]) -> list[str]:
    names = [*first, *(h for _, h, _ in _COLS)]
    return ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]


def render_markdown(report: Mapping[str, Any]) -> str:
    """The tables of a :func:`run_servers_bench` report as Markdown."""
    dets = report["detectors"]
    servers = report["servers"]
    n = len(servers)
    by_ds: dict[str, int] = {}
    for info in servers.values():
        by_ds[info["dataset"]] = by_ds.get(info["dataset"], 0) + 1
    lines = [
        "# Real servers: detection quality",
        "",
        f"Data `{report['data']}`: {n} servers ("
        + ", ".join(f"{ds} {c}" for ds, c in by_ds.items())
        + f"); {len(dets)} detectors; {report.get('elapsed_s', 0):.0f} s.",
        "",
        "P / R / F1 / FPR: points at the detector's own label-free flag. best F1: best point "
        "F1 over all thresholds (oracle, no point-adjust). event R / P: labelled events hit / "
        "flagged runs touching an event. composite F1: P and event R. runs/day: flagged runs "
        "per day of test data.",
        "",
        "## Means over servers",
        "",
        *_header(["detector", "servers"]),
    ]
    for name, d in dets.items():
        lines.append(_row(name, d["mean"], [f"{d['mean']['servers']}/{n}"]))
    common = report.get("common_servers", [])
    if any(d["failed"] for d in dets.values()) and common:
        lines += ["", f"Means over the {len(common)} servers every detector scored: "
                  + ", ".join(common), "", *_header(["detector"])]
        lines += [_row(name, d["mean_common"]) for name, d in dets.items()]
    datasets = list(by_ds)
    if len(datasets) > 1:
        lines += ["", "## Means by dataset", "",
                  "| detector | " + " | ".join(f"{ds} best F1 | {ds} F1 | {ds} composite F1"
                                               for ds in datasets) + " |",
                  "|---|" + "---|---|---|" * len(datasets)]
        for name, d in dets.items():
            cells = []
            for ds in datasets:
                m = d["mean_by_dataset"][ds]
                note = "" if m["servers"] == by_ds[ds] else f" ({m['servers']}/{by_ds[ds]})"
                cells += [_fmt(m["best_f1"], 3) + note, _fmt(m["f1"], 3),
                          _fmt(m["composite_f1"], 3)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    loso = {name: d for name, d in dets.items() if "loso" in d}
    if loso:
        lines += ["", "## Leave-one-server-out (parameter grids)", "",
                  "Per held-out server: the parameter set with the best mean best-F1 on the "
                  "other servers, measured on the held-out server.", "",
                  *_header(["detector", "grid", "defaults best F1", "LOSO servers"])]
        for name, d in loso.items():
            m = d["loso"]["mean"]
            lines.append(_row(name, m, ["; ".join(d["grid"]), _fmt(d["mean"]["best_f1"], 3),
                                        f"{m['servers']}/{n}"]))
        lines += ["", "| server | " + " | ".join(f"{name} choice | {name} best F1"
                                                 for name in loso) + " |",
                  "|---|" + "---|---|" * len(loso)]
        for key in servers:
            cells = []
            for d in loso.values():
                r = d["loso"]["servers"].get(key, {})
                cells += [r.get("params", "–"),
                          _fmt(r.get("best_f1"), 3) if r.get("status") == "ok" else "failed"]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", "## Per server"]
    for key, info in servers.items():
        lines += ["", f"### {key}", "",
                  f"{info['metrics']} metrics, step {info['step']}, {info['train_rows']} train / "
                  f"{info['test_rows']} test rows, {100 * info['anomalous_share']:.1f} % "
                  f"anomalous, {info['events']} events.", "", *_header(["detector"])]
        for name, d in dets.items():
            r = d["servers"][key]
            if r["status"] == "ok":
                lines.append(_row(name, r))
            else:
                lines.append(f"| {name} | failed (see below) |" + " |" * (len(_COLS) - 1))
    failures = [(name, key, err) for name, d in dets.items() for key, err in d["failed"].items()]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- `{name}` on `{key}`: {' '.join(str(err).split())}"
                  for name, key, err in failures]
    return "\n".join(lines) + "\n"
