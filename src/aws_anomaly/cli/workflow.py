"""What the core commands (``train``, ``evaluate``, ``tune``, ``score``, ``demo``) do.

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

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer

from aws_anomaly.cli.app import check_output
from aws_anomaly.data import Dataset
from aws_anomaly.data.dataset import (
    CONSTANT_POLICIES,
    DUPLICATE_POLICIES,
    TIMESTAMP_POLICIES,
    constant_summary,
    format_step,
)
from aws_anomaly.data.generator import write_demo
from aws_anomaly.data.io import read_dataset
from aws_anomaly.detectors import DETECTORS
from aws_anomaly.durations import parse_timedelta
from aws_anomaly.errors import ConfigError, DataError
from aws_anomaly.evaluation.metrics import evaluate_flags, undefined_metrics
from aws_anomaly.evaluation.report import flag_summary, write_metrics_json, write_report
from aws_anomaly.evaluation.split import (
    Split,
    chronological_split,
    concat,
    holdout_split,
    split_at,
)
from aws_anomaly.model import AnomalyModel, default_model, parse_threshold
from aws_anomaly.progress import echo as progress_echo
from aws_anomaly.progress import stage
from aws_anomaly.tuning import (
    AUTO_CANDIDATES,
    params_table,
    seeded_params,
    select_detector,
    tune,
)

__all__ = ["DEFAULT_DESCRIPTION", "LoadOptions", "evaluate_model", "load_data", "run_demo",
           "run_evaluate", "run_score", "run_train", "run_tune", "train_model"]

#: ``--detector default``, and ``auto`` when the training history has no labelled anomalies
#: (detector selection compares F1 on labelled folds, so it cannot run): the label-free
#: :func:`aws_anomaly.model.default_model`.
DEFAULT_DESCRIPTION = ("the label-free default model: kNN distance in two views of each metric "
                       "(its level and volatility; its deviations from rolling and daily "
                       "baselines), peaks-over-threshold threshold")

SEP = "-" * 58


@dataclass(frozen=True)
class LoadOptions:
    """How to read data files: the arguments of :func:`~aws_anomaly.data.io.read_dataset`."""

    layout: str = "auto"
    entity_label: str | None = "cluster"
    step: pd.Timedelta | None = None
    gap_policy: str = "ffill"
    max_gap_steps: int | None = 36
    resample: str = "auto"
    timestamps: str | None = None
    duplicates: str = "first"

    @classmethod
    def from_cli(cls, *, layout: str = "auto", entity_label: str = "cluster",
                 step: str | None = None, gap_policy: str = "ffill",
                 max_gap_steps: str = "36", resample: str = "auto",
                 timestamps: str | None = None, duplicates: str = "first") -> LoadOptions:
        """Check the options' values as typed on the command line."""
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
        return cls(layout=layout, entity_label=label, step=the_step, gap_policy=gap_policy,
                   max_gap_steps=gap, resample=resample, timestamps=timestamps,
                   duplicates=duplicates)

    def read(self, path: Path) -> Dataset:
        return read_dataset(path, layout=self.layout, entity_label=self.entity_label,
                            step=self.step, gap_policy=self.gap_policy,  # type: ignore[arg-type]
                            max_gap_steps=self.max_gap_steps,
                            resample=self.resample,  # type: ignore[arg-type]
                            timestamps=self.timestamps,  # type: ignore[arg-type]
                            duplicates=self.duplicates)  # type: ignore[arg-type]


def load_data(path: Path, options: LoadOptions | None = None, *, say: Any = None
              ) -> tuple[Dataset, pd.DataFrame | None]:
    """Read a dataset (file or folder with metrics.csv) and its events.csv when present.

    ``say`` (e.g. ``typer.echo``) receives one line on what was read and one per thing the
    loading policies changed (duplicates merged, rows moved onto the grid, gaps filled...).
    """
    opts = options or LoadOptions()
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
    with stage(f"reading {p}"):
        ds = opts.read(p)
    if say is not None:
        _say_loaded(ds, p, say)
    return ds, events


def _say_loaded(ds: Dataset, path: Path, say: Any) -> None:
    ents = ds.entities
    labels = "labelled" if ds.has_labels else "no labels"
    if ds.has_labels:
        labels = f"labels: {int(ds.frame['is_anomaly'].sum())} anomalous points"
    say(f"read {path}: {len(ds)} rows, {len(ents)} entit{'y' if len(ents) == 1 else 'ies'}, "
        f"{len(ds.metrics)} metric{'' if len(ds.metrics) == 1 else 's'}, step "
        f"{format_step(ds.step)}, "
        f"{ds.frame['timestamp'].min():%Y-%m-%d %H:%M} .. "
        f"{ds.frame['timestamp'].max():%Y-%m-%d %H:%M} UTC; {labels}")
    if ds.report is not None and ds.report.changed:
        for line in ds.report.lines()[1:]:
            say(f"  {line}")


def _split_fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"--split must be three comma-separated fractions, got {text!r}") \
            from exc
    if len(parts) != 3:
        raise ConfigError(f"--split must be three comma-separated fractions, got {text!r}")
    return parts  # type: ignore[return-value]


def _has_anomalies(ds: Dataset) -> bool:
    return ds.has_labels and bool(ds.frame["is_anomaly"].to_numpy().any())


def _evaluate_parts(model: AnomalyModel, parts: dict[str, tuple[Dataset, Dataset | None]],
                    events: pd.DataFrame | None = None
                    ) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    metrics: dict[str, Any] = {}
    scores: dict[str, pd.DataFrame] = {}
    for name, (part, history) in parts.items():
        with stage(f"scoring the {name} part ({len(part):,} rows)"):
            s = model.score(part, history=history)
        scores[name] = s
        m: dict[str, Any] = flag_summary(s, part.step)
        if part.has_labels:
            ev = None
            if events is not None:
                ev = events[events["entity"].astype(str).isin(part.entities)]
            m.update(evaluate_flags(part.frame, s["is_anomaly"].to_numpy(), events=ev))
        m["rows"] = len(part)
        m["scored_rows"] = int(s["ready"].sum())
        metrics[name] = m
    return metrics, scores


def evaluate_model(model: AnomalyModel, split: Split, events: pd.DataFrame | None = None
                   ) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Score validation and test with causal look-back; per part what was flagged (share,
    flagged periods, alerts per day) and, where the part has labels, point and event metrics.
    """
    parts = {"validation": (split.validation, split.train),
             "test": (split.test, concat([split.train, split.validation]))}
    return _evaluate_parts(model, parts, events)


def _print_table(metrics: dict[str, Any], say: Any = typer.echo) -> None:
    """The labelled metrics of the parts that have labels, then what was flagged in each."""
    names = [n for n in ("validation", "test") if n in metrics]
    labelled = [n for n in names if "f1" in metrics[n]]
    fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    if len(labelled) == 2:
        v, t = metrics["validation"], metrics["test"]
        uv, ut = undefined_metrics(v), undefined_metrics(t)
        say(f"{'Metric':<12}{'Validation':>12}{'Test':>12}{'Difference':>12}")
        say(SEP[:48])
        for key, label in (("f1", "F1-Score"), ("precision", "Precision"), ("recall", "Recall"),
                           ("fpr", "FPR"), ("event_recall", "Event rec."),
                           ("event_precision", "Event prec.")):
            # n/a where a figure is undefined (F1 of a part without anomalies), not 0.000
            a = "n/a" if key in uv else f"{v[key]:.3f}"
            b = "n/a" if key in ut else f"{t[key]:.3f}"
            d = "n/a" if key in uv | ut else f"{abs(v[key] - t[key]):.3f}"
            say(f"{label:<12}{a:>12}{b:>12}{d:>12}")
        d_v, d_t = v["mean_detection_delay_steps"], t["mean_detection_delay_steps"]
        say(f"{'Delay steps':<12}{fmt(d_v):>12}{fmt(d_t):>12}")
    elif labelled:
        (n,) = labelled
        m = metrics[n]
        say(f"{'Metric':<12}{n.capitalize():>12}")
        say(SEP[:24])
        for key, label in (("f1", "F1-Score"), ("precision", "Precision"), ("recall", "Recall"),
                           ("fpr", "FPR"), ("event_recall", "Event rec."),
                           ("event_precision", "Event prec.")):
            say(f"{label:<12}{'n/a' if key in undefined_metrics(m) else f'{m[key]:.3f}':>12}")
        say(f"{'Delay steps':<12}{fmt(m['mean_detection_delay_steps']):>12}")
    if "test" in labelled:
        cm = metrics["test"]["confusion_matrix"]
        say("\nConfusion matrix (test set)")
        say(f"{'':15}{'Predicted':>16}")
        say(f"{'':15}{'Normal':>8}{'Anomaly':>9}")
        say(f"{'Actual Normal':<15}{cm[0][0]:>8}{cm[0][1]:>9}")
        say(f"{'       Anomaly':<15}{cm[1][0]:>8}{cm[1][1]:>9}")
    if names and all("flagged_share" in metrics[n] for n in names):
        if labelled:
            say("")
        say(f"{'Flagged':<16}" + "".join(f"{n.capitalize():>12}" for n in names))
        say(f"{'share of points':<16}" + "".join(
            f"{100 * metrics[n]['flagged_share']:>11.2f}%" for n in names))
        say(f"{'periods':<16}" + "".join(f"{metrics[n]['flagged_periods']:>12}" for n in names))
        say(f"{'alerts per day':<16}" + "".join(
            f"{metrics[n]['alerts_per_day']:>12.2f}" for n in names))


def _threshold_text(model: AnomalyModel) -> str:
    used = dict(getattr(model, "calibration_used_", {}) or {})
    method = used.get("method")
    if method == "best_f1":
        rule = "best-f1 (the best F1 on the labelled validation part)"
    elif method == "target_fpr":
        rule = (f"fpr:{used.get('target_fpr')} (at most {100 * float(used['target_fpr']):g} % "
                "of the validation points above it)")
    elif method == "pot":
        rule = (f"pot:{used.get('risk')} (an extreme-value fit of the score tail: a normal "
                f"point exceeds it with probability {used.get('risk')})")
    elif method == "contamination":
        rule = (f"share:{used.get('contamination')} (the top "
                f"{100 * float(used['contamination']):g} % of validation scores)")
    else:
        rule = json.dumps(used)
    cal = getattr(model, "calibrator_", None)
    raw = getattr(cal, "threshold_", None)
    where = model.training_summary_.get("calibrated_on", "validation") if hasattr(
        model, "training_summary_") else "validation"
    raw_text = f"; raw {model.detector} score {raw:.4g}" if isinstance(raw, float) else ""
    return f"{rule}, set on the {where} part: anomaly_score >= 1.0{raw_text}"


def _narrow(ds: Dataset, metrics: tuple[str, ...]) -> Dataset:
    drop = [m for m in ds.metrics if m not in metrics]
    if not drop:
        return ds
    return Dataset(frame=ds.frame.drop(columns=drop), metrics=metrics, step=ds.step,
                   report=ds.report)


def _check_constant(policy: str) -> None:
    if policy not in CONSTANT_POLICIES:
        raise ConfigError(f"--constant must be one of {', '.join(CONSTANT_POLICIES)}; got "
                          f"{policy!r}")


def _apply_constant(split: Split, policy: str, say: Any) -> Split:
    """The constant-metric policy on the training part (``keep``, ``drop`` or ``error``)."""
    _check_constant(policy)
    if policy == "error":
        split.train.check_not_constant("training part", policy="error")
        return split
    found = split.train.constant_metrics()
    if not found:
        return split
    n = len({m for v in found.values() for m in v})
    if policy == "keep":
        say(f"constant over the training part: {n} metric(s), {constant_summary(found)}; kept "
            "(--constant keep): the model flags any move from the trained value "
            "(--constant drop leaves them out)")
        return split
    train = split.train.drop_constant("training part", warn=False)
    say(f"warning: dropped {n} metric(s) constant over the training part: "
        f"{constant_summary(found)} (--constant drop)")
    kept = train.metrics
    return Split(train=train, validation=_narrow(split.validation, kept),
                 test=_narrow(split.test, kept), fractions=split.fractions, mode=split.mode,
                 split_at=split.split_at)


def _describe_split(split: Split) -> str:
    rows = f"{len(split.train)}/{len(split.validation)}/{len(split.test)} rows"
    if split.mode == "fractions":
        pct = "/".join(f"{100 * f:g}" for f in split.fractions)
        return f"train/validation/test = {rows} (chronological {pct} per entity)"
    if split.mode == "split-at" and split.split_at is not None:
        return (f"train/validation/test = {rows} (test from {split.split_at.isoformat()}; "
                "the last part before it validates)")
    return f"train/validation/test = {rows} (test: the separate file)"


def train_model(ds: Dataset, *, detector: str = "auto", threshold: str = "auto", seed: int = 0,
                fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
                events: pd.DataFrame | None = None, echo: bool = True,
                model_options: dict[str, Any] | None = None, split: Split | None = None,
                constant: str = "keep"
                ) -> tuple[AnomalyModel, Split, dict[str, Any], dict[str, pd.DataFrame]]:
    """Split (unless ``split`` is given), select (when ``auto``), fit, calibrate and evaluate.

    Returns the model, the split, the evaluation metrics (per part: what was flagged, and the
    label-based metrics where the part has labels) and the score frames of validation and test.
    Without labelled anomalies in train + validation, ``auto`` uses the label-free
    :func:`~aws_anomaly.model.default_model` (as ``detector="default"`` does), whose threshold
    is a peaks-over-threshold fit of the score tail unless ``threshold`` names another rule.
    """
    parse_threshold(threshold)  # fail before any work on a bad value
    # Lines printed while a progress bar is drawn go through the reporter, which keeps the bar.
    say = progress_echo if echo else (lambda *_a, **_k: None)
    if split is None:
        split = chronological_split(ds, fractions)
    n_ent = len(split.train.entities)
    say(f"data: {len(split.train) + len(split.validation) + len(split.test)} rows, "
        f"{n_ent} entit{'y' if n_ent == 1 else 'ies'}, {len(split.train.metrics)} metric"
        f"{'' if len(split.train.metrics) == 1 else 's'}; "
        f"{_describe_split(split)}")
    split = _apply_constant(split, constant, say)
    selection: dict[str, Any] | None = None
    labelled_dev = _has_anomalies(split.train) or _has_anomalies(split.validation)
    if detector == "auto" and labelled_dev:
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
    elif detector == "auto":
        detector = "default"
        say(f"detector: default, {DEFAULT_DESCRIPTION} (--detector auto compares detectors by F1 "
            "on labelled validation folds, and the training history has no labelled anomalies)")
        selection = {"method": "default without labels", "chosen": "default"}
    elif detector not in DETECTORS and detector != "default":
        raise ConfigError(f"unknown detector {detector!r}; use auto, default or one of "
                          f"{sorted(DETECTORS)}")
    if detector == "default":
        options = dict(model_options or {})
        if threshold != "auto":
            options["calibration"] = threshold
        per_entity = split.train.frame.groupby("entity").size().min()
        model = default_model(split.train.step, history=split.train.step * int(per_entity),
                              **options)
    else:
        model = AnomalyModel(detector, seeded_params({}, detector, seed), calibration=threshold,
                             **(model_options or {}))
    with stage(f"fitting the {model.detector} model on {len(split.train):,} rows"):
        model.fit(split.train, split.validation)
    say(f"threshold: {_threshold_text(model)}")
    metrics, scores = evaluate_model(model, split, events)
    say("")
    _print_table(metrics, say)
    history = _history_summary(split, metrics)
    _say_history(history, say)
    needs = _what_would_help(split, model, constant)
    for line in needs:
        say(line)
    model.metadata = {"split": split.summary(), "evaluation": metrics, "seed": seed,
                      "training_history": history, "would_help": needs}
    if selection is not None:
        model.metadata["selection"] = selection
    return model, split, metrics, scores


def _history_summary(split: Split, metrics: dict[str, Any]) -> dict[str, Any]:
    """How often the model flags on the training history out of sample: the validation part,
    plus the held-out test part when it comes from the same history (``--data`` split by
    fractions). Rows the detector learned from are left out: their scores say nothing (a
    neighbour method scores every training row 0)."""
    keys = ("rows", "scored_rows", "flagged_points", "flagged_share", "flagged_periods", "days",
            "alerts_per_day")
    out: dict[str, Any] = {n: {k: v for k, v in metrics[n].items() if k in keys}
                           for n in ("validation", "test")}
    parts = ["validation"] + (["test"] if split.mode == "fractions" else [])
    scored = sum(out[n]["scored_rows"] for n in parts)
    flagged = sum(out[n]["flagged_points"] for n in parts)
    periods = sum(out[n]["flagged_periods"] for n in parts)
    days = sum(out[n]["days"] for n in parts)
    out["expected"] = {"from": parts, "scored_rows": scored, "days": round(days, 4),
                       "flagged_share": flagged / scored if scored else 0.0,
                       "flagged_periods": periods,
                       "alerts_per_day": round(periods / days, 3) if days > 0 else 0.0}
    return out


def _say_history(history: dict[str, Any], say: Any) -> None:
    exp = history["expected"]
    where = ("the validation and held-out test parts" if exp["from"] == ["validation", "test"]
             else "the validation part")
    say("")
    say(f"expected on the training history: {100 * exp['flagged_share']:.2f} % of points "
        f"flagged, {exp['alerts_per_day']:.2f} alerts per day per entity ({where}, "
        f"{exp['days']:.1f} entity-days the detector did not learn from; the threshold was "
        "set on the validation part; an alert = a flagged period, flags up to 2 normal points "
        "apart merged)")


def _what_would_help(split: Split, model: AnomalyModel, constant: str) -> list[str]:
    out = []
    dev_labels = _has_anomalies(split.train) or _has_anomalies(split.validation)
    if not dev_labels:
        out.append(
            "to do better: label anomalies in the training history (an is_anomaly column, 1 on "
            "anomalous points): the threshold could then maximise F1 (--threshold best-f1) and "
            "--detector auto could compare detectors on rolling folds; without labels the "
            "threshold only sets how often it flags (--threshold pot:RISK, fpr:RATE or "
            "share:FRACTION)")
    if not split.test.has_labels:
        out.append("no labels in the test part either: the figures above say how often it "
                   "flags, not whether the flags are right")
    if constant == "keep" and split.train.constant_metrics():
        out.append("constant metrics were kept, so any move of theirs is flagged: if such moves "
                   "are expected (a disk mounted later), --constant drop leaves them out")
    return out


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
        t = pd.Timestamp(at)
        t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        return holdout_split(before, after, fractions, mode="split-at", at=t), events
    if train_path is not None:
        raise ConfigError("--train needs the period to evaluate on: add --test PATH (or use "
                          "--data PATH, which is split in time)")
    return chronological_split(hist, fractions), events


def run_train(out: Path, *, data: Path | None, train_path: Path | None,
              test_path: Path | None, split_time: str | None, detector: str, threshold: str,
              seed: int, split: str, constant: str, load: dict[str, Any]) -> None:
    """``aws-anomaly train``: split, select, fit, calibrate, report test once, save."""
    opts = LoadOptions.from_cli(**load)
    fractions = _split_fractions(split)
    parse_threshold(threshold)
    _check_constant(constant)  # every option before the data is read
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
    opts = LoadOptions.from_cli(**load)
    check_output(report, "--report")
    m = AnomalyModel.load(model)
    meta_split = m.metadata.get("split", {}) or {}
    fractions = tuple(meta_split.get("fractions", (0.70, 0.15, 0.15)))
    if data is None and train_path is None and test_path is not None:
        if split_time is not None:
            raise ConfigError("--split-at needs --data PATH to split")
        test, events = load_data(test_path, opts, say=typer.echo)
        metrics, scores = _evaluate_parts(m, {"test": (test, None)}, events)
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
            "threshold": _threshold_text(m)}
    last = metrics.get("test", next(iter(metrics.values())))
    info["flagged (test)"] = (f"{100 * last['flagged_share']:.2f} % of scored points, "
                              f"{last['flagged_periods']} periods, "
                              f"{last['alerts_per_day']:.2f} alerts per day per entity")
    with stage("writing the report"):
        mpath, hpath = write_report(report, metrics=metrics, scores=scores, data=frames,
                                    metric_names=list(m.metrics_), info=info, model=m)
    typer.echo(f"threshold: {_threshold_text(m)}")
    _print_table(metrics)
    typer.echo(f"\nwrote {mpath} and {hpath}")


def run_tune(data: Path, *, detector: str, trials: int, storage: str | None,
             study_name: str | None, seed: int, threshold: str, out: Path | None,
             progress: bool, load: dict[str, Any]) -> None:
    """``aws-anomaly tune``: an Optuna study on rolling folds; the best model saved to ``out``."""
    opts = LoadOptions.from_cli(**load)
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
    opts = LoadOptions.from_cli(**load)
    if out.is_dir():
        out = out / "scores.csv"
    check_output(out, "--out", kind="file")
    ds, _ = load_data(data, opts)
    if ds.report is not None and ds.report.changed:
        for line in ds.report.lines()[1:]:
            typer.echo(f"{data}: {line}")
    m = AnomalyModel.load(model)
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
