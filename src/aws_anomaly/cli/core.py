"""Core commands: ``train``, ``evaluate``, ``tune``, ``score`` and ``demo``.

Every command that learns splits the data chronologically per entity (70/15/15 by default):
the detector and scaler learn from the training part, the threshold from the validation part,
model selection (``--detector auto``, ``tune``) looks at rolling folds of train + validation
only, and the test part is scored once, for the report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

from aws_anomaly.cli.app import app
from aws_anomaly.data import Dataset
from aws_anomaly.data.generator import write_demo
from aws_anomaly.data.io import read_dataset
from aws_anomaly.detectors import DETECTORS
from aws_anomaly.errors import ConfigError, DataError
from aws_anomaly.evaluation.metrics import evaluate_flags
from aws_anomaly.evaluation.report import write_metrics_json, write_report
from aws_anomaly.evaluation.split import Split, chronological_split, concat
from aws_anomaly.model import AnomalyModel, parse_threshold
from aws_anomaly.tuning import (
    AUTO_CANDIDATES,
    params_table,
    seeded_params,
    select_detector,
    tune,
)

__all__ = ["evaluate_model", "load_data", "train_model"]

DataOpt = Annotated[Path, typer.Option("--data", help="CSV/Parquet file, or a folder holding "
                                       "metrics.csv (and optionally events.csv).")]
ModelOpt = Annotated[Path, typer.Option("--model", help="Model bundle folder.")]
SEP = "-" * 58


def load_data(path: Path) -> tuple[Dataset, pd.DataFrame | None]:
    """Read a dataset (file or folder with metrics.csv) and its events.csv when present."""
    p = Path(path)
    events = None
    if p.is_dir():
        candidates = [p / n for n in ("metrics.csv", "metrics.parquet")]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise DataError(f"{p} is a folder without metrics.csv or metrics.parquet; pass a "
                            "data file or a folder that holds one")
        ev = p / "events.csv"
        if ev.is_file():
            events = pd.read_csv(ev)
        p = found[0]
    elif not p.exists():
        raise DataError(f"data file {p} does not exist")
    return read_dataset(p), events


def _split_fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"--split must be three comma-separated fractions, got {text!r}") \
            from exc
    if len(parts) != 3:
        raise ConfigError(f"--split must be three comma-separated fractions, got {text!r}")
    return parts  # type: ignore[return-value]


def evaluate_model(model: AnomalyModel, split: Split, events: pd.DataFrame | None = None
                   ) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Score validation and test with causal look-back; point and event metrics for each."""
    if not split.test.has_labels:
        raise DataError("evaluation needs labels: the data has no is_anomaly column")
    parts = {"validation": (split.validation, split.train),
             "test": (split.test, concat([split.train, split.validation]))}
    metrics: dict[str, Any] = {}
    scores: dict[str, pd.DataFrame] = {}
    for name, (part, history) in parts.items():
        s = model.score(part, history=history)
        scores[name] = s
        ev = None
        if events is not None:
            ev = events[events["entity"].astype(str).isin(part.entities)]
        m = evaluate_flags(part.frame, s["is_anomaly"].to_numpy(), events=ev)
        m["rows"] = len(part)
        m["scored_rows"] = int(s["ready"].sum())
        metrics[name] = m
    return metrics, scores


def _print_table(metrics: dict[str, Any], say: Any = typer.echo) -> None:
    typer_echo = say
    v, t = metrics["validation"], metrics["test"]
    typer_echo(f"{'Metric':<12}{'Validation':>12}{'Test':>12}{'Difference':>12}")
    typer_echo(SEP[:48])
    for key, label in (("f1", "F1-Score"), ("precision", "Precision"), ("recall", "Recall"),
                       ("fpr", "FPR")):
        typer_echo(f"{label:<12}{v[key]:>12.3f}{t[key]:>12.3f}{abs(v[key] - t[key]):>12.3f}")
    for key, label in (("event_recall", "Event rec."), ("event_precision", "Event prec.")):
        typer_echo(f"{label:<12}{v[key]:>12.3f}{t[key]:>12.3f}{abs(v[key] - t[key]):>12.3f}")
    d_v, d_t = v["mean_detection_delay_steps"], t["mean_detection_delay_steps"]
    fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    typer_echo(f"{'Delay steps':<12}{fmt(d_v):>12}{fmt(d_t):>12}")
    cm = t["confusion_matrix"]
    typer_echo("\nConfusion matrix (test set)")
    typer_echo(f"{'':15}{'Predicted':>16}")
    typer_echo(f"{'':15}{'Normal':>8}{'Anomaly':>9}")
    typer_echo(f"{'Actual Normal':<15}{cm[0][0]:>8}{cm[0][1]:>9}")
    typer_echo(f"{'       Anomaly':<15}{cm[1][0]:>8}{cm[1][1]:>9}")


def train_model(ds: Dataset, *, detector: str = "auto", threshold: str = "auto", seed: int = 0,
                fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
                events: pd.DataFrame | None = None, echo: bool = True,
                model_options: dict[str, Any] | None = None
                ) -> tuple[AnomalyModel, Split, dict[str, Any], dict[str, pd.DataFrame]]:
    """Split, select (when ``auto``), fit, calibrate and evaluate; returns the model, the split,
    the evaluation metrics and the score frames (validation and test; empty without labels)."""
    parse_threshold(threshold)  # fail before any work on a bad value
    split = chronological_split(ds, fractions)
    say = typer.echo if echo else (lambda *_a, **_k: None)
    say(f"data: {len(ds)} rows, {len(ds.entities)} entities, metrics {list(ds.metrics)}; "
        f"split train/validation/test = {len(split.train)}/{len(split.validation)}/"
        f"{len(split.test)} rows")
    selection: dict[str, Any] | None = None
    if detector == "auto":
        t0 = time.perf_counter()
        chosen, table, reason = select_detector(
            split.development, AUTO_CANDIDATES, calibration=threshold, seed=seed,
            progress=lambda msg: say(f"  {msg}"))
        say("\nDetector selection (rolling folds of train+validation; test untouched)")
        say(params_table(table))
        say(f"chosen: {chosen} — {reason}")
        selection = {"method": "rolling-origin validation folds", "table": table,
                     "chosen": chosen, "reason": reason,
                     "seconds": round(time.perf_counter() - t0, 2)}
        detector = chosen
    elif detector not in DETECTORS:
        raise ConfigError(f"unknown detector {detector!r}; use auto or one of "
                          f"{sorted(DETECTORS)}")
    model = AnomalyModel(detector, seeded_params({}, detector, seed), calibration=threshold,
                         **(model_options or {}))
    model.fit(split.train, split.validation)
    metrics: dict[str, Any] = {}
    scores: dict[str, pd.DataFrame] = {}
    if ds.has_labels:
        metrics, scores = evaluate_model(model, split, events)
        say("")
        _print_table(metrics, say)
    model.metadata = {"split": split.summary(), "evaluation": metrics, "seed": seed}
    if selection is not None:
        model.metadata["selection"] = selection
    return model, split, metrics, scores


@app.command()
def train(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the model bundle to.")],
    detector: Annotated[str, typer.Option(
        help="ocsvm, iforest, lof, robust, or auto (chosen on validation folds).")] = "auto",
    threshold: Annotated[str, typer.Option(
        help="best-f1, fpr:<rate>, share:<fraction> or auto (best-f1 with labels).")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    split: Annotated[str, typer.Option(help="Train,validation,test fractions.")] =
    "0.70,0.15,0.15",
) -> None:
    """Split chronologically, fit, calibrate on validation, report test once, save the model."""
    ds, events = load_data(data)
    model, _, _, _ = train_model(ds, detector=detector, threshold=threshold, seed=seed,
                                    fractions=_split_fractions(split), events=events)
    path = model.save(out)
    typer.echo(f"\nmodel ({model.detector}) saved to {path}")


@app.command()
def evaluate(
    data: DataOpt,
    model: ModelOpt,
    report: Annotated[Path, typer.Option("--report", help="Folder for metrics.json and "
                                         "report.html.")],
) -> None:
    """Score the validation and test parts (same split as training) and write a report."""
    ds, events = load_data(data)
    m = AnomalyModel.load(model)
    fractions = tuple(m.metadata.get("split", {}).get("fractions", (0.70, 0.15, 0.15)))
    split = chronological_split(ds, fractions)  # type: ignore[arg-type]
    metrics, scores = evaluate_model(m, split, events)
    frames = pd.concat([split.validation.frame, split.test.frame], ignore_index=True)
    info = {"model": str(model), "detector": m.detector, "data": str(data),
            "rows (validation / test)": f"{len(split.validation)} / {len(split.test)}",
            "threshold": json.dumps(m.calibration_used_)}
    mpath, hpath = write_report(report, metrics=metrics, scores=scores, data=frames,
                                metric_names=list(m.metrics_), info=info)
    _print_table(metrics)
    typer.echo(f"\nwrote {mpath} and {hpath}")


@app.command("tune")
def tune_cmd(
    data: DataOpt,
    detector: Annotated[str, typer.Option(help="Detector to tune.")] = "ocsvm",
    trials: Annotated[int, typer.Option(help="Finished trials the study should hold (a "
                                        "resumed study runs only the rest).")] = 40,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL, e.g. "
                                                "sqlite:///study.db (resumable).")] = None,
    study_name: Annotated[str | None, typer.Option(help="Study name in the storage.")] = None,
    seed: Annotated[int, typer.Option(help="Sampler seed.")] = 0,
    threshold: Annotated[str, typer.Option(help="Threshold rule (see train).")] = "auto",
    out: Annotated[Path | None, typer.Option("--out", help="Save the best model here.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Optuna TPE search on rolling validation folds (never the test split)."""
    ds, events = load_data(data)
    parse_threshold(threshold)
    split = chronological_split(ds)
    res = tune(split.development, detector, trials, storage=storage, study_name=study_name,
               seed=seed, calibration=threshold, progress=progress)
    typer.echo(f"study {res.study.study_name}: {res.n_trials} finished trials; best objective "
               f"{res.best_value:.4f} with {res.best_params}")
    if out is not None:
        model = AnomalyModel(detector, res.detector_params, spec=res.spec, calibration=threshold)
        model.fit(split.train, split.validation)
        metrics, _ = evaluate_model(model, split, events)
        _print_table(metrics)
        model.metadata = {"split": split.summary(), "evaluation": metrics, "seed": seed,
                          "tuning": res.summary()}
        typer.echo(f"\nbest model saved to {model.save(out)}")


@app.command()
def score(
    data: DataOpt,
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
    contributions: Annotated[bool, typer.Option(help="Also write contrib_<metric> columns.")]
    = False,
) -> None:
    """Score every row: timestamp, entity, anomaly_score, is_anomaly, top_metric."""
    ds, _ = load_data(data)
    m = AnomalyModel.load(model)
    s = m.score(ds)
    cols = ["timestamp", "entity", "anomaly_score", "is_anomaly", "top_metric"]
    if contributions:
        cols += [c for c in s.columns if c.startswith("contrib_")]
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = s[cols].copy()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["is_anomaly"] = frame["is_anomaly"].astype(np.int8)
    frame.to_csv(out, index=False, float_format="%.6g")
    typer.echo(f"scored {len(s)} rows ({int(s['is_anomaly'].sum())} anomalous, "
               f"{int((~s['ready']).sum())} warming up) -> {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for data, model and report.")] =
    Path("out/demo"),
    seed: Annotated[int, typer.Option(help="Seed of the demo data.")] = 0,
) -> None:
    """Generate demo data, train with auto selection, evaluate and write the report."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    metrics_path, _, ds, events = write_demo(out / "data", seed=seed)
    typer.echo(f"demo data (seed {seed}): {len(ds)} rows, {len(ds.entities)} clusters, "
               f"{len(events)} labelled anomalies -> {metrics_path}")
    model, split, metrics, scores = train_model(ds, detector="auto", seed=seed,
                                                events=events)
    model_dir = model.save(out / "model")
    frames = pd.concat([split.validation.frame, split.test.frame], ignore_index=True)
    report_dir = out / "report"
    mpath, hpath = write_report(report_dir, metrics=metrics, scores=scores, data=frames,
                                metric_names=list(model.metrics_),
                                info={"model": model_dir, "detector": model.detector,
                                      "data": str(metrics_path)})
    write_metrics_json(out / "summary.json", {
        "detector": model.detector, "test": metrics["test"],
        "validation": metrics["validation"],
        "seconds": round(time.perf_counter() - t0, 1)})
    typer.echo(f"\nmodel:   {model_dir}\nmetrics: {mpath}\nreport:  {hpath}")
