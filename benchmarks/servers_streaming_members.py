"""The streaming detector ``context`` as a member of the default, on the real servers and the demo.

Issue 8 item 3 asks for a label-free default whose members each earn their place on the
benches, the streaming likelihood detectors among the candidates. This script measures, on
every server of a folder laid out as the servers bench reads it (``<dataset>/<server>/{train,
test}.parquet``) and, with ``--demo``, on the test split of a generated demo:

* ``default``: ``default_model(step)`` (kNN on two feature views, POT threshold on the last
  15 % of the training rows, held out of the detector), its calibrated ``anomaly_score``;
* ``context``: ``SeriesModel("context")`` (one NAB ``aws_context`` detector per metric, the
  row's raw score the largest, the calibrator a POT tail of the training scores with the
  detector's alarm level as floor), its calibrated ``anomaly_score``;
* label-free combinations of the two calibrated scores (both are 1.0 at their own threshold):
  ``max`` (a point either flags), ``mean``, ``min`` (a point both flag), and ``max`` / ``mean``
  with a fresh POT threshold (risk 1e-3, the default's until 2026-12-02) fitted on the combined
  scores of the holdout rows (the default's calibration holdout; on the demo the validation
  split); the max and the sum of each member's tail rank among its own holdout scores (``-log``
  of the exceedance share, distribution-free), POT re-fit the same way; and ``default + 0.25 x
  context`` (a sensitivity row: a light weight on the streaming member).

Each model is fit once on the training rows **without labels** and scores the test rows
causally with the training rows as look-back; its scores are cached in ``--cache`` (one
``.npz`` per server and member), so a rerun only recomputes the combinations. Metrics are the
servers bench's (:func:`aws_anomaly.evaluation.servers_bench.server_metrics`; the best F1 over
every threshold of each combined score too); on the demo, F1 / FPR / event recall and precision
at the own flag are :func:`aws_anomaly.evaluation.metrics.evaluate_flags` with the generator's
events, as ``benchmarks/demo_types.py`` measures them.

Usage (docs/benchmarks.md, "The streaming detectors as members (issue 8 item 3, H6)")::

    .venv/bin/aws-anomaly generate --seed 1234 --out out/h6n/d1234
    nice .venv/bin/python benchmarks/servers_streaming_members.py \\
        --data ../shared/data/servers --cache out/h6n --demo out/h6n/d1234 --per-server
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aws_anomaly.calibration import Calibrator
from aws_anomaly.data import Dataset
from aws_anomaly.durations import parse_timedelta
from aws_anomaly.evaluation.metrics import evaluate_flags
from aws_anomaly.evaluation.servers_bench import (
    best_f1,
    discover_servers,
    load_server,
    server_metrics,
)
from aws_anomaly.model import DEFAULT_RISK
from aws_anomaly.presets import default_model
from aws_anomaly.streaming.series import (
    DEFAULT_LEARN,
    MIN_LEARN_POINTS,
    SeriesDetector,
    SeriesModel,
)

#: Issue 8's ceiling on the false-positive rate at the own threshold, per server.
MAX_FPR = 0.02
MEMBERS = ("default", "context")


@dataclass(frozen=True)
class Case:
    """One fit-and-score problem: what each model is fit on, the holdout rows (scored with
    ``hold_history`` as look-back) the combinations are re-thresholded on, and the test rows
    (scored with ``test_history``). No part carries labels."""

    train: Dataset
    validation: Dataset | None
    hold: Dataset
    hold_history: Dataset
    test: Dataset
    test_history: Dataset
    history_span: pd.Timedelta | None = None


@dataclass(frozen=True)
class Scores:
    """One member's calibrated scores: holdout, test, its own test flags, and seconds."""

    hold: np.ndarray
    test: np.ndarray
    flags: np.ndarray
    fit_s: float
    score_s: float


def _rows(frame: pd.DataFrame, part: Dataset) -> np.ndarray:
    """Positions in ``frame`` (a score frame) of ``part``'s rows, in ``part``'s order."""
    keys = pd.MultiIndex.from_frame(frame[["entity", "timestamp"]])
    pos = keys.get_indexer(pd.MultiIndex.from_frame(part.frame[["entity", "timestamp"]]))
    if (pos < 0).any():
        raise SystemExit("error: a row of the part is missing from the score frame")
    return pos


def score_default(case: Case) -> Scores:
    """``default_model(step)`` fit on the case's training rows (its own POT holdout)."""
    t0 = time.perf_counter()
    model = default_model(case.train.step, history=case.history_span)
    model.fit(case.train, case.validation)
    t1 = time.perf_counter()
    hold = model.score(case.hold, history=case.hold_history, explain="none")
    test = model.score(case.test, history=case.test_history, explain="none")
    return Scores(hold["anomaly_score"].to_numpy(np.float64),
                  test["anomaly_score"].to_numpy(np.float64),
                  test["is_anomaly"].to_numpy(bool), t1 - t0, time.perf_counter() - t1)


def score_context(case: Case) -> Scores:
    """``SeriesModel("context")`` fit on the case's training rows; one scoring pass over the
    look-back and the test rows (the holdout rows are read from the same pass)."""
    t0 = time.perf_counter()
    model = SeriesModel("context").fit(case.train, case.validation)
    t1 = time.perf_counter()
    look_back = case.test_history.subset(labels=False, where="look-back")
    out = model.score(Dataset.concat([look_back, case.test]), explain="none")
    hold, test = out.iloc[_rows(out, case.hold)], out.iloc[_rows(out, case.test)]
    return Scores(hold["anomaly_score"].to_numpy(np.float64),
                  test["anomaly_score"].to_numpy(np.float64),
                  test["is_anomaly"].to_numpy(bool), t1 - t0, time.perf_counter() - t1)


SCORERS: dict[str, Callable[[Case], Scores]] = {"default": score_default,
                                                "context": score_context}


def cached(path: Path, member: str, case: Callable[[], Case]) -> Scores:
    """The member's scores from ``path`` when there, else computed (threads limited to 1)
    and saved there."""
    if path.exists():
        with np.load(path) as z:
            return Scores(z["hold"], z["test"], z["flags"], float(z["fit_s"]),
                          float(z["score_s"]))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        s = SCORERS[member](case())
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, hold=s.hold, test=s.test, flags=s.flags, fit_s=s.fit_s, score_s=s.score_s)
    return s


# ----------------------------------------------------------------------------- combining
def _refit(hold: np.ndarray, test: np.ndarray) -> np.ndarray:
    """``test`` calibrated by a POT tail (risk :data:`DEFAULT_RISK`) of the ``hold`` scores."""
    return Calibrator(method="pot", risk=DEFAULT_RISK).fit(hold).transform(test)


def tail_rank(hold: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``-log`` of each score's exceedance probability among the ``hold`` scores (with one
    added to both counts): a member's scores on a common, distribution-free scale (every
    score above the largest holdout score ties at the top).

    >>> tail_rank(np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.5, 9.0])).round(3).tolist()
    [0.0, 0.693, 1.386]
    """
    h = np.sort(hold)
    above = len(h) - np.searchsorted(h, x, side="left")
    return np.log((len(h) + 1) / (above + 1))


def combinations(d: Scores, c: Scores) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every rule's (test score, test flags) from the default's and context's scores."""
    mx, mn = np.maximum(d.test, c.test), (d.test + c.test) / 2
    out = {
        "default alone": (d.test, d.flags),
        "context alone": (c.test, c.flags),
        "max (either flags)": (mx, mx >= 1.0),
        "mean": (mn, mn >= 1.0),
        "min (both flag)": (np.minimum(d.test, c.test), np.minimum(d.test, c.test) >= 1.0),
    }
    for name, hold, test in (("max", np.maximum(d.hold, c.hold), mx),
                             ("mean", (d.hold + c.hold) / 2, mn)):
        s = _refit(hold, test)
        out[f"{name}, POT re-fit on the holdout"] = (s, s >= 1.0)
    # each member's tail rank among its own holdout scores (in-sample on the holdout itself)
    rd, rc = tail_rank(d.hold, d.test), tail_rank(c.hold, c.test)
    hd, hc = tail_rank(d.hold, d.hold), tail_rank(c.hold, c.hold)
    for name, hold, test in (("max", np.maximum(hd, hc), np.maximum(rd, rc)),
                             ("sum", hd + hc, rd + rc)):
        s = _refit(hold, test)
        out[f"{name} of holdout tail ranks, POT re-fit"] = (s, s >= 1.0)
    w = d.test + 0.25 * c.test
    out["default + 0.25 x context (sensitivity)"] = (w, w >= 1.0)
    return out


# ------------------------------------------------------------------------------- servers
def server_case(key: str, folder: Path) -> Case:
    """The servers bench's problem for one server (the holdout: the default's own)."""
    data = load_server(key, folder)
    share = default_model(data.train.step).calibration_holdout or 0.15
    head, tail = data.train.split_tail(share)
    return Case(data.train, None, tail, head, data.test, data.train)


def run_servers(root: str | Path, cache: Path, patterns: list[str] | None = None,
                say: Callable[[str], Any] = print) -> dict[str, dict[str, dict[str, float]]]:
    """rule -> server -> the bench's metrics (plus each member's seconds under ``default
    alone`` / ``context alone``)."""
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for key, folder in discover_servers(root, patterns):
        case = functools.cache(functools.partial(server_case, key, folder))
        scores = {}
        for member in MEMBERS:
            t0 = time.perf_counter()
            scores[member] = cached(cache / f"{key.replace('/', '__')}__{member}.npz", member,
                                    case)
            say(f"{key} {member}: fit {scores[member].fit_s:.0f} s, score "
                f"{scores[member].score_s:.0f} s ({time.perf_counter() - t0:.0f} s now)")
        data = load_server(key, folder)
        for rule, (s, flags) in combinations(scores["default"], scores["context"]).items():
            m = server_metrics(data.labels, s, flags, data.train.step)
            rows.setdefault(rule, {})[key] = m
    return rows


def summary_line(rule: str, per: dict[str, dict[str, float]]) -> str:
    def col(k: str) -> np.ndarray:
        return np.array([m[k] for m in per.values()], dtype=np.float64)
    fpr = col("fpr")
    return (f"| {rule} | {col('best_f1').mean():.3f} | {col('precision').mean():.3f} | "
            f"{col('recall').mean():.3f} | {col('f1').mean():.3f} | {fpr.mean():.4f} | "
            f"{fpr.max():.3f} | {int((fpr > MAX_FPR).sum())} | {col('event_recall').mean():.3f} "
            f"| {col('event_precision').mean():.3f} | {col('flagged_runs_per_day').mean():.1f} |")


def servers_tables(rows: dict[str, dict[str, dict[str, float]]], per_server: bool) -> str:
    """Markdown: the means over servers per rule, and (``per_server``) best F1 / F1 / FPR."""
    lines = ["| rule | best F1 | P | R | F1 | mean FPR | max FPR | servers FPR > 0.02 | "
             "event R | event P | runs/day |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [summary_line(rule, per) for rule, per in rows.items()]
    if per_server:
        keys = list(next(iter(rows.values())))
        lines += ["", "Per server: best F1 / F1 / FPR at the own flag", "",
                  "| rule | " + " | ".join(k.split("/")[-1] for k in keys) + " |",
                  "|---|" + "---|" * len(keys)]
        lines += [f"| {rule} | " + " | ".join(
            f"{per[k]['best_f1']:.3f}/{per[k]['f1']:.3f}/{per[k]['fpr']:.3f}" for k in keys)
            + " |" for rule, per in rows.items()]
    return "\n".join(lines)


# ------------------------------------------------------------- context: metrics combined
#: How the per-metric raw scores of ``context`` become one row score (the shipped: ``max``).
AGGREGATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "max (shipped)": lambda r: r.max(axis=1),
    "mean of the top 3": lambda r: -np.mean(np.partition(-r, min(2, r.shape[1] - 1),
                                                         axis=1)[:, :3], axis=1),
    "mean": lambda r: r.mean(axis=1),
}


def context_raw(key: str, folder: Path, cache: Path) -> tuple[np.ndarray, int, int]:
    """(raw ``(rows, metrics)`` scores of ``SeriesModel("context")``'s detectors over
    the training rows then the test rows, first test row, learning points): one pass,
    cached."""
    path = cache / f"{key.replace('/', '__')}__context_raw.npz"
    if not path.exists():
        from threadpoolctl import threadpool_limits

        data = load_server(key, folder)
        # SeriesModel's learning period and detectors (SeriesModel.fit), without its calibrator
        learn = max(MIN_LEARN_POINTS, math.ceil(parse_timedelta(DEFAULT_LEARN)
                                                / data.train.step))
        both = Dataset.concat([data.train, data.test])
        with threadpool_limits(1):
            raw = SeriesDetector("context", probationary=learn).score_series(
                pd.DatetimeIndex(both.frame["timestamp"]).asi8, both.values(both.entities[0]))
        np.savez(path, raw=raw, n_train=len(data.train), learn=learn)
    with np.load(path) as z:
        return z["raw"], int(z["n_train"]), int(z["learn"])


def run_aggregations(root: str | Path, cache: Path, patterns: list[str] | None = None
                     ) -> dict[str, dict[str, float]]:
    """aggregation -> server -> best F1 on the test rows (the ranking's ceiling)."""
    out: dict[str, dict[str, float]] = {}
    for key, folder in discover_servers(root, patterns):
        raw, n_train, _ = context_raw(key, folder, cache)
        y = load_server(key, folder).labels
        for name, agg in AGGREGATIONS.items():
            out.setdefault(name, {})[key] = best_f1(y, agg(raw[n_train:]))["best_f1"]
    return out


# ---------------------------------------------------------------------------------- demo
def run_demo(folder: Path, cache: Path, say: Callable[[str], Any] = print, *,
             labels: bool = False) -> dict[str, dict[str, float]]:
    """rule -> metrics on the test split (70/15/15 per entity, chronological) of a generated
    demo: both models fit on the training part and calibrated on the validation part, labels
    dropped before fitting (``labels``: kept, as ``benchmarks/demo_types.py`` fits: the
    default then leaves labelled rows out of its reference and its POT tail)."""
    from aws_anomaly.evaluation.split import chronological_split
    from aws_anomaly.workflows import load_data

    ds, events = load_data(folder)
    split = chronological_split(ds, (0.70, 0.15, 0.15))
    train = split.train.subset(labels=labels, where="demo train")
    val = split.validation.subset(labels=labels, where="demo validation")
    test = split.test.subset(labels=False, where="demo test")
    per = int(split.train.frame.groupby("entity").size().min())
    case = Case(train, val, val, train, test, Dataset.concat([train, val]),
                history_span=split.train.step * per)
    scores = {}
    for member in MEMBERS:
        tag = "labelled" if labels else "unlabelled"
        scores[member] = cached(cache / f"demo__{folder.name}__{tag}__{member}.npz", member,
                                lambda: case)
        say(f"demo {member}: fit {scores[member].fit_s:.0f} s, score "
            f"{scores[member].score_s:.0f} s")
    frame = split.test.frame.reset_index(drop=True)
    ev = None if events is None else events[events["entity"].isin(frame["entity"].unique())]
    y = frame["is_anomaly"].to_numpy().astype(bool)
    out = {}
    for rule, (s, flags) in combinations(scores["default"], scores["context"]).items():
        m = evaluate_flags(frame, flags, events=ev)
        out[rule] = {**{k: float(m[k]) for k in ("precision", "recall", "f1", "fpr",
                                                  "event_recall", "event_precision")},
                     "best_f1": best_f1(y, s)["best_f1"]}
    return out


def demo_table(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| rule | best F1 | P | R | F1 | FPR | event R | event P |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {rule} | {m['best_f1']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | "
              f"{m['f1']:.3f} | {m['fpr']:.4f} | {m['event_recall']:.2f} | "
              f"{m['event_precision']:.2f} |" for rule, m in rows.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="servers folder (<dataset>/<server>/train|test.parquet)")
    parser.add_argument("--servers", action="append", help="glob on dataset/server")
    parser.add_argument("--demo", type=Path, help="folder written by aws-anomaly generate")
    parser.add_argument("--cache", type=Path, default=Path("out/h6n"),
                        help="folder of the cached member scores")
    parser.add_argument("--demo-labels", action="store_true",
                        help="fit the demo's models with the train/validation labels")
    parser.add_argument("--per-server", action="store_true")
    parser.add_argument("--aggregations", action="store_true",
                        help="also the best F1 of context's per-metric scores combined by "
                             "other rules than the max (one more detector pass per server)")
    args = parser.parse_args(argv)
    if not args.data and not args.demo:
        parser.error("give --data, --demo or both")
    t0 = time.perf_counter()
    if args.data:
        rows = run_servers(args.data, args.cache, args.servers)
        print(f"\n{len(next(iter(rows.values())))} servers\n")
        print(servers_tables(rows, args.per_server))
    if args.data and args.aggregations:
        agg = run_aggregations(args.data, args.cache, args.servers)
        keys = list(next(iter(agg.values())))
        print("\ncontext's per-metric raw scores combined: best F1 (mean; per server)\n")
        print("| rule | mean | " + " | ".join(k.split("/")[-1] for k in keys) + " |")
        print("|---|---|" + "---|" * len(keys))
        for name, per in agg.items():
            print(f"| {name} | {np.mean(list(per.values())):.3f} | "
                  + " | ".join(f"{per[k]:.3f}" for k in keys) + " |")
    if args.demo:
        print(f"\ndemo {args.demo} (test split)\n")
        print(demo_table(run_demo(args.demo, args.cache, labels=args.demo_labels)))
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
