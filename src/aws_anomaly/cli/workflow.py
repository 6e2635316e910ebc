"""What the core commands (``train``, ``evaluate``, ``tune``, ``score``, ``demo``) do: read
the options, call the library (:mod:`aws_anomaly.workflows`: loading, splitting, training,
evaluating), print, write the outputs.

:mod:`aws_anomaly.cli.core` declares the commands and their options and imports this module
only when one of them runs, so ``aws-anomaly --help`` does not import numpy, pandas and
scikit-learn.

Every command that learns splits the data chronologically per entity: the detector and scaler
learn from the training part, the threshold from the validation part, model selection
(``--detector auto``, ``tune``) looks at rolling folds of train + validation only, and the test
part is scored once, for the report. The test part is the last 15 % of each entity by default
(``--split``), everything from a time on (``--split-at``), or another file (``--train`` /
``--test``: train on one period, evaluate on the next).

Labels are optional. Without them ``train`` picks a default detector, calibrates the threshold
to a target false-positive rate and says how often the model would flag and alert on the
training history; ``evaluate`` writes the same report minus the label-based parts.

Every command that reads data takes the loading options of
:func:`aws_anomaly.data.io.read_dataset` (``--step``, ``--resample``, ``--timestamps``,
``--duplicates``, ``--gap-policy``, ``--max-gap-steps``, ``--layout``, ``--entity-label``):
the options that data errors name.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer

from aws_anomaly.cli.app import check_output
from aws_anomaly.data.dataset import DUPLICATE_POLICIES, TIMESTAMP_POLICIES
from aws_anomaly.data.generator import write_demo
from aws_anomaly.detectors import DETECTORS
from aws_anomaly.durations import parse_timedelta, parse_timestamp
from aws_anomaly.errors import ConfigError
from aws_anomaly.evaluation.report import write_metrics_json, write_report
from aws_anomaly.evaluation.split import Split, chronological_split, holdout_split, split_at
from aws_anomaly.model import AnomalyModel
from aws_anomaly.models_io import load_model
from aws_anomaly.progress import stage
from aws_anomaly.threshold import parse_threshold
from aws_anomaly.tuning import tune
from aws_anomaly.workflows import (
    DEFAULT_DESCRIPTION,
    LoadOptions,
    check_constant_policy,
    evaluate_model,
    evaluate_parts,
    load_data,
    metrics_table,
    threshold_text,
    train_model,
)

__all__ = ["DEFAULT_DESCRIPTION", "LoadOptions", "evaluate_model", "load_data", "load_options",
           "run_demo", "run_evaluate", "run_score", "run_train", "run_tune", "train_model"]


def load_options(*, layout: str = "auto", entity_label: str = "cluster",
                 step: str | None = None, gap_policy: str = "ffill",
                 max_gap_steps: str = "36", resample: str = "auto",
                 timestamps: str | None = None, duplicates: str = "first") -> LoadOptions:
    """The loading options as typed on the command line, checked (``ConfigError`` naming the
    option)."""
    for flag, value, allowed in (
            ("--layout", layout, ("auto", "wide", "long")),
            ("--gap-policy", gap_policy, ("ffill", "interpolate", "error")),
            ("--resample", resample, ("auto", "error", "mean", "last")),
            ("--timestamps", timestamps, (None, *TIMESTAMP_POLICIES)),
            ("--duplicates", duplicates, DUPLICATE_POLICIES)):
        if value not in allowed:
            raise ConfigError(f"{flag} must be one of "
                              f"{', '.join(a for a in allowed if a)}; got {value!r}")
    text = max_gap_steps.strip().lower()
    if text in ("none", "null", "unlimited"):
        gap: int | None = None
    else:
        try:
            gap = int(text)
        except ValueError:
            gap = -1
        if gap < 0:
            raise ConfigError(f"--max-gap-steps must be an integer >= 0 or 'none'; got "
                              f"{max_gap_steps!r}")
    the_step = None if step is None else parse_timedelta(step, where="--step")
    label = None if entity_label.strip().lower() in ("none", "") else entity_label
    return LoadOptions(layout=layout, entity_label=label, step=the_step, gap_policy=gap_policy,
                       max_gap_steps=gap, resample=resample, timestamps=timestamps,
                       duplicates=duplicates)


def _split_fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"--split must be three comma-separated fractions, got {text!r}") \
            from exc
    if len(parts) != 3:
        raise ConfigError(f"--split must be three comma-separated fractions, got {text!r}")
    return parts  # type: ignore[return-value]


def _print_table(metrics: dict[str, Any], say: Any = typer.echo) -> None:
    """The labelled metrics of the parts that have labels, then what was flagged in each."""
    for line in metrics_table(metrics):
        say(line)


def _plan(data: Path | None, train_path: Path | None, test_path: Path | None,
          split_time: str | None, opts: LoadOptions,
          fractions: tuple[float, float, float], model_split: dict[str, Any] | None = None
          ) -> tuple[Split, pd.DataFrame | None]:
    """Read the files the options name and cut them into a :class:`Split`."""
    if data is not None and train_path is not None:
        raise ConfigError("pass the training data once: --data PATH or --train PATH, not both")
    source = data if data is not None else train_path
    if source is None:
        raise ConfigError("no data: pass --data PATH (split in time), or --train PATH with "
                          "--test PATH")
    if test_path is not None and split_time is not None:
        raise ConfigError("--test and --split-at both choose the test period; pass one")
    hist, events = load_data(source, opts, say=typer.echo)
    if test_path is not None:
        test, test_events = load_data(test_path, opts, say=typer.echo)
        if test_events is not None:
            events = (test_events if events is None
                      else pd.concat([events, test_events], ignore_index=True))
        return holdout_split(hist, test, fractions, mode="separate"), events
    at = split_time
    if at is None and model_split is not None and model_split.get("mode") == "split-at":
        at = model_split.get("split_at")
    if at is not None:
        before, after = split_at(hist, at)
        t = parse_timestamp(at, where="--split-at")
        return holdout_split(before, after, fractions, mode="split-at", at=t), events
    if train_path is not None:
        raise ConfigError("--train needs the period to evaluate on: add --test PATH (or use "
                          "--data PATH, which is split in time)")
    return chronological_split(hist, fractions), events


def run_train(out: Path, *, data: Path | None, train_path: Path | None,
              test_path: Path | None, split_time: str | None, detector: str, threshold: str,
              seed: int, split: str, constant: str, load: dict[str, Any]) -> None:
    """``aws-anomaly train``: split, select, fit, calibrate, report test once, save."""
    opts = load_options(**load)
    fractions = _split_fractions(split)
    parse_threshold(threshold)
    check_constant_policy(constant)  # every option before the data is read
    if detector not in ("auto", "default", *DETECTORS):
        raise ConfigError(f"unknown detector {detector!r}; use auto, default or one of "
                          f"{sorted(DETECTORS)}")
    check_output(out, "--out")
    the_split, events = _plan(data, train_path, test_path, split_time, opts, fractions)
    model, _, _, _ = train_model(the_split.train, detector=detector, threshold=threshold,
                                 seed=seed, fractions=fractions, events=events,
                                 split=the_split, constant=constant)
    path = model.save(out)
    typer.echo(f"\nmodel ({model.detector}) saved to {path}")


def run_evaluate(model: Path, report: Path, *, data: Path | None, train_path: Path | None,
                 test_path: Path | None, split_time: str | None, load: dict[str, Any]
                 ) -> None:
    """``aws-anomaly evaluate``: score validation and test and write the report."""
    opts = load_options(**load)
    check_output(report, "--report")
    m = load_model(model)  # any bundle kind: feature model or streaming series model
    meta_split = m.metadata.get("split", {}) or {}
    fractions = tuple(meta_split.get("fractions", (0.70, 0.15, 0.15)))
    if data is None and train_path is None and test_path is not None:
        if split_time is not None:
            raise ConfigError("--split-at needs --data PATH to split")
        test, events = load_data(test_path, opts, say=typer.echo)
        metrics, scores = evaluate_parts(m, {"test": (test, None)}, events)
        frames = test.frame
        rows = f"{len(test)} (test only, no look-back: the first rows warm up)"
    else:
        split, events = _plan(data, train_path, test_path, split_time, opts,
                              fractions, model_split=meta_split)  # type: ignore[arg-type]
        metrics, scores = evaluate_model(m, split, events)
        frames = pd.concat([split.validation.frame, split.test.frame], ignore_index=True)
        rows = f"{len(split.validation)} / {len(split.test)}"
    info = {"model": str(model), "detector": m.detector,
            "data": ", ".join(str(p) for p in (data, train_path, test_path) if p is not None),
            "rows (validation / test)": rows,
            "threshold": threshold_text(m)}
    last = metrics.get("test", next(iter(metrics.values())))
    info["flagged (test)"] = (f"{100 * last['flagged_share']:.2f} % of scored points, "
                              f"{last['flagged_periods']} periods, "
                              f"{last['alerts_per_day']:.2f} alerts per day per entity")
    with stage("writing the report"):
        mpath, hpath = write_report(report, metrics=metrics, scores=scores, data=frames,
                                    metric_names=list(m.metrics_), info=info, model=m)
    typer.echo(f"threshold: {threshold_text(m)}")
    _print_table(metrics)
    typer.echo(f"\nwrote {mpath} and {hpath}")


def run_tune(data: Path, *, detector: str, trials: int, storage: str | None,
             study_name: str | None, seed: int, threshold: str, out: Path | None,
             progress: bool, load: dict[str, Any]) -> None:
    """``aws-anomaly tune``: an Optuna study on rolling folds; the best model saved to ``out``."""
    opts = load_options(**load)
    parse_threshold(threshold)
    if out is not None:
        check_output(out, "--out")
    ds, events = load_data(data, opts, say=typer.echo)
    split = chronological_split(ds)
    res = tune(split.development, detector, trials, storage=storage, study_name=study_name,
               seed=seed, calibration=threshold, progress=progress)
    typer.echo(f"study {res.study.study_name}: {res.n_trials} finished trials; best objective "
               f"{res.best_value:.4f} with {res.best_params}")
    if out is not None:
        model = AnomalyModel(detector, res.detector_params, spec=res.spec, calibration=threshold)
        with stage(f"fitting the best {detector} model on {len(split.train):,} rows"):
            model.fit(split.train, split.validation)
        metrics, _ = evaluate_model(model, split, events)
        _print_table(metrics)
        model.metadata = {"split": split.summary(), "evaluation": metrics, "seed": seed,
                          "tuning": res.summary()}
        typer.echo(f"\nbest model saved to {model.save(out)}")


def run_score(data: Path, model: Path, out: Path, *, contributions: bool,
              load: dict[str, Any]) -> None:
    """``aws-anomaly score``: every row's score to a CSV file."""
    opts = load_options(**load)
    if out.is_dir():
        out = out / "scores.csv"
    check_output(out, "--out", kind="file")
    ds, _ = load_data(data, opts)
    if ds.report is not None and ds.report.changed:
        for line in ds.report.lines()[1:]:
            typer.echo(f"{data}: {line}")
    m = load_model(model)  # any bundle kind: feature model or streaming series model
    with stage(f"scoring {len(ds):,} rows"):
        s = m.score(ds)
    cols = ["timestamp", "entity", "anomaly_score", "is_anomaly", "top_metric"]
    if contributions:
        cols += [c for c in s.columns if c.startswith("contrib_")]
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = s[cols].copy()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["is_anomaly"] = frame["is_anomaly"].astype(np.int8)
    with stage(f"writing {out}"):
        frame.to_csv(out, index=False, float_format="%.6g")
    typer.echo(f"scored {len(s)} rows ({int(s['is_anomaly'].sum())} anomalous, "
               f"{int((~s['ready']).sum())} warming up) -> {out}")


def run_demo(out: Path, *, seed: int) -> None:
    """``aws-anomaly demo``: generate, train with auto selection, evaluate, report."""
    check_output(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with stage("generating the demo data"):
        metrics_path, _, ds, events = write_demo(out / "data", seed=seed)
    typer.echo(f"demo data (seed {seed}): {len(ds)} rows, {len(ds.entities)} clusters, "
               f"{len(events)} labelled anomalies -> {metrics_path}")
    model, split, metrics, scores = train_model(ds, detector="auto", seed=seed,
                                                events=events)
    model_dir = model.save(out / "model")
    frames = pd.concat([split.validation.frame, split.test.frame], ignore_index=True)
    report_dir = out / "report"
    with stage("writing the report"):
        mpath, hpath = write_report(report_dir, metrics=metrics, scores=scores, data=frames,
                                    metric_names=list(model.metrics_),
                                    info={"model": model_dir, "detector": model.detector,
                                          "data": str(metrics_path)}, model=model)
    write_metrics_json(out / "summary.json", {
        "detector": model.detector, "test": metrics["test"],
        "validation": metrics["validation"],
        "seconds": round(time.perf_counter() - t0, 1)})
    typer.echo(f"\nmodel:   {model_dir}\nmetrics: {mpath}\nreport:  {hpath}")
