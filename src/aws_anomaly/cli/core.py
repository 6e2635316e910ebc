"""Core commands: ``train``, ``evaluate``, ``tune``, ``score`` and ``demo``.

This module declares the commands and their options only; what they do is in
:mod:`aws_anomaly.cli.workflow`, imported when a command runs, so that ``aws-anomaly --help``
(which imports every command module) does not import numpy, pandas or scikit-learn. The
helpers the commands call (``load_data``, ``train_model``, ``evaluate_model``, ``LoadOptions``,
``DEFAULT_DESCRIPTION``) are the library's (:mod:`aws_anomaly.workflows`: import them from
there); ``aws_anomaly.cli.core.<name>`` still reaches them for code written before they moved.

Every command that learns splits the data chronologically per entity (details in the
workflow module); every command that reads data takes the loading options of
:func:`aws_anomaly.data.io.read_dataset`. Long steps report progress on stderr
(``--progress`` / ``--no-progress``; by default only on a terminal).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aws_anomaly.cli.app import ProgressOpt, app, progress_to_stderr

if TYPE_CHECKING:
    from aws_anomaly.workflows import (
        DEFAULT_DESCRIPTION,
        LoadOptions,
        evaluate_model,
        load_data,
        train_model,
    )

__all__ = ["DEFAULT_DESCRIPTION", "LoadOptions", "evaluate_model", "load_data", "train_model"]


def __getattr__(name: str) -> Any:
    """The library's helpers (:mod:`aws_anomaly.workflows`), imported on first use (PEP 562)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from aws_anomaly import workflows

    try:
        return getattr(workflows, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


DataOpt = Annotated[Path | None, typer.Option(
    "--data", help="CSV/Parquet file, or a folder holding metrics.csv (and optionally "
    "events.csv).")]
ModelOpt = Annotated[Path, typer.Option("--model", help="Model bundle folder.")]
TrainOpt = Annotated[Path | None, typer.Option(
    "--train", help="The training period as its own file (instead of --data); pair it with "
    "--test.")]
TestOpt = Annotated[Path | None, typer.Option(
    "--test", help="The period to evaluate on, as its own file (scored with the training "
    "file as look-back).")]
SplitAtOpt = Annotated[str | None, typer.Option(
    "--split-at", help="Train on the data before this time (ISO 8601, UTC), evaluate on the "
    "rest.")]
LayoutOpt = Annotated[str, typer.Option(help="auto, wide or long (Prometheus export).")]
EntityLabelOpt = Annotated[str, typer.Option(
    help="Long layout: the label naming the entity ('none': one entity); wide layout: a "
    "column to use as the entity when there is no 'entity' column.")]
StepOpt = Annotated[str | None, typer.Option(
    help="Grid step (30s, 5min, 1h, 1m30s...); default: the most common difference between "
    "rows.")]
GapOpt = Annotated[str, typer.Option(
    "--gap-policy", help="Fill missing points and NaN: ffill, interpolate or error.")]
MaxGapOpt = Annotated[str, typer.Option(
    "--max-gap-steps", help="Longest gap (in steps) the gap policy fills, or 'none'.")]
ResampleOpt = Annotated[str, typer.Option(
    help="Rows off the step grid: auto (a row within 10% of a step of a grid point moves "
    "to it; then the mean of each step when at most 1% of an entity's rows are further off, "
    "else error), error, or aggregate each step by mean or last.")]
TimestampsOpt = Annotated[str | None, typer.Option(
    help="Rows earlier than the row before them: error, sort, clamp or drop "
    "[default: error; sort for the long layout].")]
DuplicatesOpt = Annotated[str, typer.Option(
    help="Rows of one entity with the same time: first, last, mean or error.")]


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the model bundle to.")],
    data: DataOpt = None,
    train_path: TrainOpt = None,
    test_path: TestOpt = None,
    split_time: SplitAtOpt = None,
    detector: Annotated[str, typer.Option(
        help="default (the label-free model), knn, ocsvm, iforest, lof, robust, ensemble, "
        "supervised (learns from the labelled anomalies), or auto (chosen on labelled "
        "validation folds; default without labels).")] = "auto",
    threshold: Annotated[str, typer.Option(
        help="best-f1, fpr:<rate>, share:<fraction>, pot[:<risk>] or auto (best-f1 with "
        "labels; pot for the default model, fpr:0.01 for others, without).")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    split: Annotated[str, typer.Option(
        help="Train,validation,test fractions (with --test or --split-at only the first two "
        "count: they cut the training period).")] = "0.70,0.15,0.15",
    constant: Annotated[str, typer.Option(
        help="Metrics constant over the training part: keep, drop or error.")] = "keep",
    layout: LayoutOpt = "auto",
    entity_label: EntityLabelOpt = "cluster",
    step: StepOpt = None,
    gap_policy: GapOpt = "ffill",
    max_gap_steps: MaxGapOpt = "36",
    resample: ResampleOpt = "auto",
    timestamps: TimestampsOpt = None,
    duplicates: DuplicatesOpt = "first",
    progress: ProgressOpt = None,
) -> None:
    """Split chronologically, fit, calibrate on validation, report test once, save the model.

    Labels are optional: without them the threshold targets a 1 % false-positive rate and the
    command says how often the model flags and alerts on the training history.
    """
    from aws_anomaly.cli.workflow import run_train

    with progress_to_stderr(progress):
        run_train(out, data=data, train_path=train_path, test_path=test_path,
                  split_time=split_time, detector=detector, threshold=threshold, seed=seed,
                  split=split, constant=constant,
                  load=dict(layout=layout, entity_label=entity_label, step=step,
                            gap_policy=gap_policy, max_gap_steps=max_gap_steps,
                            resample=resample, timestamps=timestamps, duplicates=duplicates))


@app.command()
def evaluate(
    model: ModelOpt,
    report: Annotated[Path, typer.Option("--report", help="Folder for metrics.json and "
                                         "report.html.")],
    data: DataOpt = None,
    train_path: TrainOpt = None,
    test_path: TestOpt = None,
    split_time: SplitAtOpt = None,
    layout: LayoutOpt = "auto",
    entity_label: EntityLabelOpt = "cluster",
    step: StepOpt = None,
    gap_policy: GapOpt = "ffill",
    max_gap_steps: MaxGapOpt = "36",
    resample: ResampleOpt = "auto",
    timestamps: TimestampsOpt = None,
    duplicates: DuplicatesOpt = "first",
    progress: ProgressOpt = None,
) -> None:
    """Score validation and test (split as in training, or as given) and write a report.

    Labels are optional: without them the report shows the series, the scores, the threshold,
    the flagged periods and alerts per day. ``--test PATH`` alone scores just that file.
    """
    from aws_anomaly.cli.workflow import run_evaluate

    with progress_to_stderr(progress):
        run_evaluate(model, report, data=data, train_path=train_path, test_path=test_path,
                     split_time=split_time,
                     load=dict(layout=layout, entity_label=entity_label, step=step,
                               gap_policy=gap_policy, max_gap_steps=max_gap_steps,
                               resample=resample, timestamps=timestamps, duplicates=duplicates))


@app.command("tune")
def tune_cmd(
    data: Annotated[Path, typer.Option("--data", help="CSV/Parquet file, or a folder holding "
                                       "metrics.csv (and optionally events.csv).")],
    detector: Annotated[str, typer.Option(help="Detector to tune.")] = "ocsvm",
    trials: Annotated[int, typer.Option(help="Finished trials the study should hold (a "
                                        "resumed study runs only the rest).")] = 40,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL, e.g. "
                                                "sqlite:///study.db (resumable).")] = None,
    study_name: Annotated[str | None, typer.Option(help="Study name in the storage.")] = None,
    seed: Annotated[int, typer.Option(help="Sampler seed.")] = 0,
    threshold: Annotated[str, typer.Option(help="Threshold rule (see train).")] = "auto",
    out: Annotated[Path | None, typer.Option("--out", help="Save the best model here.")] = None,
    progress: ProgressOpt = None,
    layout: LayoutOpt = "auto",
    entity_label: EntityLabelOpt = "cluster",
    step: StepOpt = None,
    gap_policy: GapOpt = "ffill",
    max_gap_steps: MaxGapOpt = "36",
    resample: ResampleOpt = "auto",
    timestamps: TimestampsOpt = None,
    duplicates: DuplicatesOpt = "first",
) -> None:
    """Optuna TPE search on rolling validation folds (never the test split)."""
    from aws_anomaly.cli.workflow import run_tune

    with progress_to_stderr(progress) as shown:
        run_tune(data, detector=detector, trials=trials, storage=storage,
                 study_name=study_name, seed=seed, threshold=threshold, out=out, progress=shown,
                 load=dict(layout=layout, entity_label=entity_label, step=step,
                           gap_policy=gap_policy, max_gap_steps=max_gap_steps,
                           resample=resample, timestamps=timestamps, duplicates=duplicates))


@app.command()
def score(
    data: Annotated[Path, typer.Option("--data", help="CSV/Parquet file, or a folder holding "
                                       "metrics.csv.")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option(
        "--out", help="CSV file to write (an existing folder: scores.csv in it).")],
    contributions: Annotated[bool, typer.Option(help="Also write contrib_<metric> columns.")]
    = False,
    layout: LayoutOpt = "auto",
    entity_label: EntityLabelOpt = "cluster",
    step: StepOpt = None,
    gap_policy: GapOpt = "ffill",
    max_gap_steps: MaxGapOpt = "36",
    resample: ResampleOpt = "auto",
    timestamps: TimestampsOpt = None,
    duplicates: DuplicatesOpt = "first",
    progress: ProgressOpt = None,
) -> None:
    """Score every row: timestamp, entity, anomaly_score, is_anomaly, top_metric."""
    from aws_anomaly.cli.workflow import run_score

    with progress_to_stderr(progress):
        run_score(data, model, out, contributions=contributions,
                  load=dict(layout=layout, entity_label=entity_label, step=step,
                            gap_policy=gap_policy, max_gap_steps=max_gap_steps,
                            resample=resample, timestamps=timestamps, duplicates=duplicates))


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for data, model and report.")] =
    Path("out/demo"),
    seed: Annotated[int, typer.Option(help="Seed of the demo data.")] = 0,
    progress: ProgressOpt = None,
) -> None:
    """Generate demo data, train with auto selection, evaluate and write the report."""
    from aws_anomaly.cli.workflow import run_demo

    with progress_to_stderr(progress):
        run_demo(out, seed=seed)
