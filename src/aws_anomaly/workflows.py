"""Train, evaluate and load data as the CLI's core commands do, for notebooks and the service.

The library side of ``aws-anomaly train``, ``evaluate``, ``tune``, ``score`` and ``demo``: the
commands (:mod:`aws_anomaly.cli`) parse options, call these functions, print and set the exit
status; a notebook calls the same functions and gets the same model, split and figures.

Every function that learns splits the data chronologically per entity: the detector and scaler
learn from the training part, the threshold from the validation part, model selection
(``detector="auto"``, :func:`aws_anomaly.tuning.tune`) looks at rolling folds of train +
validation only, and the test part is scored once, for the report. The test part is the last
15 % of each entity by default, everything from a time on
(:func:`aws_anomaly.evaluation.split.split_at`), or another file
(:func:`aws_anomaly.evaluation.split.holdout_split`).

Labels are optional. Without them :func:`train_model` picks the label-free default detector,
calibrates the threshold without labels and says how often the model would flag and alert on
the training history. Its narrative (``echo=True``) names the CLI options that change each
choice, as the commands print it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aws_anomaly.data import Dataset
from aws_anomaly.data.dataset import CONSTANT_POLICIES, constant_summary, format_step
from aws_anomaly.data.io import read_dataset
from aws_anomaly.detectors import DETECTORS
from aws_anomaly.errors import ConfigError, DataError
from aws_anomaly.evaluation.metrics import evaluate_flags, undefined_metrics
from aws_anomaly.evaluation.report import flag_summary
from aws_anomaly.evaluation.split import Split, chronological_split, concat
from aws_anomaly.fitting import varying_metrics
from aws_anomaly.model import AnomalyModel
from aws_anomaly.presets import default_model
from aws_anomaly.progress import echo as progress_echo
from aws_anomaly.progress import stage
from aws_anomaly.threshold import parse_threshold
from aws_anomaly.tuning import AUTO_CANDIDATES, params_table, seeded_params, select_detector

__all__ = ["DEFAULT_DESCRIPTION", "LoadOptions", "apply_constant_policy",
           "check_constant_policy", "describe_split", "evaluate_model", "evaluate_parts",
           "has_anomalies", "history_summary", "load_data", "metrics_table", "threshold_text",
           "train_model", "what_would_help"]

SEP = "-" * 58

#: ``--detector default``, and ``auto`` when the training history has no labelled anomalies
#: (detector selection compares F1 on labelled folds, so it cannot run): the label-free
#: :func:`aws_anomaly.model.default_model`.
DEFAULT_DESCRIPTION = ("the label-free default model: kNN distance in two views of each metric "
                       "(its level and volatility; its deviations from rolling and daily "
                       "baselines), peaks-over-threshold threshold")


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

    def read(self, path: Path) -> Dataset:
        """Read one data file with these options."""
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



def has_anomalies(ds: Dataset) -> bool:
    """Whether ``ds`` has labels and at least one anomalous point."""
    return ds.has_labels and bool(ds.frame["is_anomaly"].to_numpy().any())


def evaluate_parts(model: AnomalyModel, parts: dict[str, tuple[Dataset, Dataset | None]],
                    events: pd.DataFrame | None = None
                    ) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Score each part (``name -> (part, look-back or None)``); per part what was flagged and,
    where it has labels, point and event metrics; returns ``(metrics, scores)`` by name."""
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
    return evaluate_parts(model, parts, events)



def metrics_table(metrics: dict[str, Any]) -> list[str]:
    """The lines of a table of the labelled metrics of the parts that have labels, then what
    was flagged in each (the output of :func:`evaluate_model`)."""
    out: list[str] = []
    say = out.append
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
    return out


def threshold_text(model: AnomalyModel) -> str:
    """The model's threshold rule in words, and where it was set."""
    used = dict(getattr(model, "calibration_used_", {}) or {})
    method = used.get("method")
    if method == "best_f1":
        rule = "best-f1 (the best F1 on the labelled validation part)"
    elif method == "target_fpr":
        rule = (f"fpr:{used.get('target_fpr')} (at most {100 * float(used['target_fpr']):g} % "
                "of the validation points above it)")
    elif method == "pot":
        rule = (f"pot:{used.get('risk')} (an extreme-value fit of the score tail: a normal "
                f"point exceeds it with probability {used.get('risk')}")
        step = getattr(model, "step_", None)
        if step is not None and used.get("risk") is not None:
            per_day = float(used["risk"]) * (pd.Timedelta("1D") / pd.Timedelta(step))
            rule += (f", about {per_day:.3g} points a day per entity at the "
                     f"{format_step(pd.Timedelta(step))} step")
        rule += ")"
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
    own = getattr(model, "entity_calibrators_", None) or {}
    if own:
        n = len(model.training_summary_.get("entities", [])) if hasattr(
            model, "training_summary_") else 0
        raw_text += ("; each entity holds its own threshold at this rule (the raw score above "
                     "is the pooled one)" if len(own) >= n else
                     f"; {len(own)} of {n} entities hold their own threshold at this rule (the "
                     f"others the pooled one)")
    return f"{rule}, set on the {where} part: anomaly_score >= 1.0{raw_text}"


def wide_terms_text(model: AnomalyModel) -> str | None:
    """Whether the fitted kNN model's terms for many metrics (tail, volatility excess) are on
    and why, in words; None for a model whose parameters do not mention them."""
    det = getattr(model, "detector_", None)
    tail = getattr(det, "tail_weight", None)
    if tail is None:
        return None
    excess = float(getattr(det, "excess_weight", 0.0))
    need = model.detector_params.get("wide_min_metrics")
    if not (tail or excess) and need is None:
        return None
    seen = varying_metrics(model)
    if tail or excess:
        why = f"{seen} metrics, from {need}" if need is not None else f"{seen} metrics"
        return (f"on ({why}): tail {tail:g} (each view's most extreme columns against the "
                f"training rows' empirical distribution), volatility excess {excess:g} (the "
                "metrics more volatile than usual, together), which a distance over many "
                "columns dilutes")
    return (f"off ({seen} metrics not constant over training, under {need}: with few metrics "
            "the distance is not diluted and the terms only add noise)")


def _narrow(ds: Dataset, metrics: tuple[str, ...]) -> Dataset:
    drop = [m for m in ds.metrics if m not in metrics]
    if not drop:
        return ds
    return ds.subset(metrics=list(metrics), where="constant metrics left out")


def check_constant_policy(policy: str) -> None:
    """``ConfigError`` unless ``policy`` is one of ``CONSTANT_POLICIES``."""
    if policy not in CONSTANT_POLICIES:
        raise ConfigError(f"--constant must be one of {', '.join(CONSTANT_POLICIES)}; got "
                          f"{policy!r}")


def apply_constant_policy(split: Split, policy: str, say: Any) -> Split:
    """The constant-metric policy on the training part (``keep``, ``drop`` or ``error``)."""
    check_constant_policy(policy)
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


def describe_split(split: Split) -> str:
    """The split's rows per part and how it was cut, in words."""
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
        f"{describe_split(split)}")
    split = apply_constant_policy(split, constant, say)
    selection: dict[str, Any] | None = None
    labelled_dev = has_anomalies(split.train) or has_anomalies(split.validation)
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
    elif detector in DETECTORS and DETECTORS[detector].requires_labels \
            and not has_anomalies(split.train):
        raise DataError(f"--detector {detector} learns from labelled anomalies, and the "
                        f"training part ({len(split.train):,} rows) holds none; label incidents "
                        "in an is_anomaly column, or use --detector default (label-free) or "
                        "auto")
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
    wide = wide_terms_text(model)
    if wide:
        say(f"terms for many metrics: {wide}")
    say(f"threshold: {threshold_text(model)}")
    metrics, scores = evaluate_model(model, split, events)
    say("")
    for line in metrics_table(metrics):
        say(line)
    history = history_summary(split, metrics)
    _say_history(history, say)
    needs = what_would_help(split, model, constant)
    for line in needs:
        say(line)
    model.metadata = {"split": split.summary(), "evaluation": metrics, "seed": seed,
                      "training_history": history, "would_help": needs}
    if selection is not None:
        model.metadata["selection"] = selection
    return model, split, metrics, scores


def history_summary(split: Split, metrics: dict[str, Any]) -> dict[str, Any]:
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


def what_would_help(split: Split, model: AnomalyModel, constant: str) -> list[str]:
    """Advice lines: what data or options would make the model or its figures better."""
    out = []
    dev_labels = has_anomalies(split.train) or has_anomalies(split.validation)
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


