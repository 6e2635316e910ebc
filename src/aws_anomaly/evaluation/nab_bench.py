"""The NAB benchmark harness: run detectors under NAB's rules, score them, write a report.

For a folder in NAB's layout (``data/<category>/*.csv``, ``labels/combined_windows.json``,
optionally ``results/<detector>/<category>/*.csv`` and ``config/{thresholds,profiles}.json``)
:func:`run_nab_bench`:

1. runs our streaming detectors (:data:`aws_anomaly.streaming.NAB_DETECTORS`) and the peers
   (:data:`aws_anomaly.evaluation.peers.PEERS`) on every file, records in order, each file from
   scratch, one parameter set for all files; scores must be in ``[0, 1]``;
2. checks each run detector for look-ahead (:func:`check_causality`: a prefix run must give the
   same scores as the start of the full run);
3. writes NAB-format outputs ``results/<detector>/<category>/<detector>_<file>.csv``;
4. scores every detector, and every published one found under ``ROOT/results``, with the same
   scorer (:mod:`aws_anomaly.evaluation.nab`): thresholds optimised on the given files (the fair
   comparison), published thresholds for published detectors, event-level precision / recall /
   F1 at the standard-profile threshold, and leave-files-out cross-validation (thresholds
   optimised on the other folds, scored on the held-out files) and leave-one-category-out
   cross-validation (each category scored at the threshold optimised on the other categories);
5. writes ``scores.json`` and ``scores.md``.

Every record of every file is scored in file order, as NAB does: duplicated timestamps,
irregular steps and clock jumps backwards are the file's and are kept. Any error names the
detector and the file (``category/name.csv``); errors from a streaming detector also name the
record and its timestamp and the previous one.

:func:`run_demo_bench` does the same on the simulated EKS clusters, one "file" per cluster,
running each univariate detector per metric (max over metrics), and the multivariate
:class:`~aws_anomaly.model.AnomalyModel` trained on the first days.
"""

from __future__ import annotations

import fnmatch
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from aws_anomaly.data.generator import generate_demo
from aws_anomaly.errors import AwsAnomalyError, ConfigError, DataError
from aws_anomaly.evaluation.nab import (
    PROFILES,
    NabFile,
    Profile,
    category_of,
    load_corpus,
    load_profiles,
    load_published_scores,
    load_thresholds,
    normalized_score,
    optimize_threshold,
    score_corpus,
    score_file,
)
from aws_anomaly.evaluation.peers import PEERS
from aws_anomaly.streaming import NAB_DETECTORS

try:
    # The multivariate model is optional here: the NAB bench does not need it, and the demo
    # table reports it only when the model stack imports.
    from aws_anomaly.model import AnomalyModel

    MODEL_IMPORT_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover - depends on what is installed / built
    AnomalyModel = None
    MODEL_IMPORT_ERROR = repr(exc)

__all__ = [
    "SCHEMA",
    "DetectorRun",
    "LookAheadError",
    "available_detectors",
    "check_causality",
    "cross_validate",
    "evaluate",
    "event_metrics",
    "leave_category_out",
    "render_markdown",
    "run_demo_bench",
    "run_detectors",
    "run_nab_bench",
    "select_files",
]

SCHEMA = "aws-anomaly/bench-nab/1"
Factory = Callable[[], Any]


class LookAheadError(AwsAnomalyError, RuntimeError):
    """A detector's scores for early records changed when later records were added."""


@dataclass
class DetectorRun:
    """One detector's scores on a corpus.

    ``kind`` is ``ours``, ``peer``, ``published`` or ``model``; ``seconds`` the summed run time.
    """

    name: str
    kind: str
    scores: dict[str, np.ndarray]
    seconds: float | None = None
    notes: list[str] = field(default_factory=list)


def available_detectors() -> dict[str, tuple[str, Factory]]:
    """Detectors the harness can run: ``{name: (kind, factory)}``, ours first, then peers."""
    out: dict[str, tuple[str, Factory]] = {n: ("ours", f) for n, f in NAB_DETECTORS.items()}
    out.update({n: ("peer", f) for n, f in PEERS.items() if n not in out})
    return out


def select_files(
    corpus: Mapping[str, NabFile], files: Sequence[str] | None = None
) -> dict[str, NabFile]:
    """The files whose key (``cat/name.csv``) or name matches any glob in ``files``."""
    if not files:
        return dict(corpus)
    out = {
        k: f
        for k, f in corpus.items()
        if any(fnmatch.fnmatch(k, g) or fnmatch.fnmatch(f.name, g) for g in files)
    }
    if not out:
        raise DataError(f"no file matches {list(files)}; files are e.g. {sorted(corpus)[:3]}")
    return out


def _check_output(name: str, scores: Any, f: NabFile) -> np.ndarray:
    arr = np.asarray(scores, dtype=float)
    if arr.shape != (f.n,):
        raise DataError(
            f"detector {name!r} returned {arr.shape} scores for {f.n} records of {f.key}"
        )
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"detector {name!r} gave score {arr[row]} at record {row} of {f.key}; NAB scores "
            "must be finite and in [0, 1]"
        )
    return arr


def _run_task(task: tuple[str, Factory, str, np.ndarray, np.ndarray, int]) -> tuple:
    """Run one detector on one series from scratch (module level so worker processes can).

    An error the detector raises on purpose comes back as a :class:`DataError` naming the
    detector and the file.
    """
    name, factory, key, ts, values, probationary = task
    started = time.perf_counter()
    try:
        scores = factory().run(ts, values, probationary)
    except AwsAnomalyError as exc:
        raise DataError(f"{key}: detector {name!r} failed: {exc}") from exc
    return name, key, np.asarray(scores, dtype=float), time.perf_counter() - started


class _Progress:
    """Progress on stderr: a tqdm bar on a terminal, else one line per finished task (CI logs).

    Each line reads ``desc [done/total] detector category/name.csv (records, seconds)``.
    """

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.enabled, self.done = total, desc, enabled, 0
        self.started = time.perf_counter()
        stream = sys.stderr
        self.tty = bool(enabled and hasattr(stream, "isatty") and stream.isatty())
        self.bar = tqdm(total=total, desc=desc, unit="file", leave=False) if self.tty else None
        if enabled and not self.tty:
            print(f"{desc}: {total} runs (detector x file)", file=sys.stderr, flush=True)

    def update(self, name: str, key: str, n: int, seconds: float) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"{name} {key}", refresh=False)
            self.bar.update()
        elif self.enabled:
            print(f"{self.desc} [{self.done}/{self.total}] {name} {key} ({n} records, "
                  f"{seconds:.1f} s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.enabled:
            print(f"{self.desc}: {self.done}/{self.total} runs in "
                  f"{time.perf_counter() - self.started:.0f} s", file=sys.stderr, flush=True)


def _execute(tasks: list[tuple], workers: int, progress: bool, desc: str) -> Iterable[tuple]:
    bar = _Progress(len(tasks), desc, progress)
    try:
        if workers <= 1 or len(tasks) <= 1:
            for t in tasks:
                res = _run_task(t)
                bar.update(res[0], t[2], len(t[4]), res[3])
                yield res
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for t, res in zip(tasks, pool.map(_run_task, tasks, chunksize=1), strict=True):
                    bar.update(res[0], t[2], len(t[4]), res[3])
                    yield res
    finally:
        bar.close()


def run_detectors(
    factories: Mapping[str, tuple[str, Factory]],
    corpus: Mapping[str, NabFile],
    *,
    workers: int = 2,
    progress: bool = True,
) -> dict[str, DetectorRun]:
    """Run every detector on every file of ``corpus`` (each file from scratch)."""
    tasks = [
        (name, fac, key, f.timestamps, f.values, f.probationary)
        for name, (_, fac) in factories.items()
        for key, f in corpus.items()
    ]
    runs = {n: DetectorRun(n, kind, {}, 0.0) for n, (kind, _) in factories.items()}
    for name, key, scores, secs in _execute(tasks, workers, progress, "nab bench"):
        runs[name].scores[key] = _check_output(name, scores, corpus[key])
        runs[name].seconds = (runs[name].seconds or 0.0) + secs
    return runs


def check_causality(
    name: str, factory: Factory, f: NabFile, full: np.ndarray | None = None,
    cut: int | None = None,
) -> int:
    """Fail loudly when a detector looks ahead.

    Runs ``factory()`` on the first ``cut`` records (default: halfway through the scored part)
    with the file's probationary length, and compares with the full run's first ``cut`` scores.

    Returns the cut used; raises :class:`LookAheadError` when the scores differ.
    """
    if full is None:
        full = _check_output(name, factory().run(f.timestamps, f.values, f.probationary), f)
    p = f.probationary
    cut = int(cut if cut is not None else p + max(1, (f.n - p) // 2))
    if not p <= cut <= f.n:
        raise ConfigError(f"causality cut {cut} must lie in [{p}, {f.n}] for {f.key}")
    prefix = np.asarray(
        factory().run(f.timestamps[:cut], f.values[:cut], p), dtype=float
    )
    if prefix.shape != (cut,):
        raise LookAheadError(
            f"detector {name!r} returned {prefix.shape} scores for the first {cut} records of "
            f"{f.key}"
        )
    diff = np.flatnonzero(~np.isclose(prefix, full[:cut], rtol=1e-9, atol=1e-12))
    if len(diff):
        i = int(diff[0])
        raise LookAheadError(
            f"detector {name!r} looks ahead: on {f.key}, record {i} scores {full[i]:.6g} when "
            f"the whole file is given but {prefix[i]:.6g} when the input stops at record {cut} "
            f"({len(diff)} records differ); NAB detectors must score each record from the past"
        )
    return cut


def event_metrics(
    scores_by_file: Mapping[str, np.ndarray], corpus: Mapping[str, NabFile], threshold: float
) -> dict[str, float | int]:
    """Event-level precision, recall and F1 at ``threshold``.

    A window is detected when any record in it (after the probationary period) scores
    ``>= threshold``; flagged records outside every window, merged into runs of consecutive
    records, are false events. The probationary period is ignored.

    Examples
    --------
    >>> ts = np.arange(100).astype("datetime64[m]").astype("datetime64[ns]")
    >>> f = NabFile("toy/a.csv", ts, np.zeros(100), windows=((40, 49), (70, 79)))
    >>> s = np.zeros(100)
    >>> s[[20, 21, 30, 45]] = 1.0          # two false events (20-21 merge), one window found
    >>> ev = event_metrics({f.key: s}, {f.key: f}, 0.5)
    >>> ev["tp"], ev["fp"], ev["fn"], round(ev["f1"], 3)
    (1, 2, 1, 0.4)
    """
    tp = fn = fp = 0
    for key, scores in scores_by_file.items():
        f = corpus[key]
        p = f.probationary
        flags = np.asarray(scores) >= threshold
        flags[:p] = False
        for k in f.scorable_windows:
            lo, hi = f.windows[k]
            if flags[max(lo, p) : hi + 1].any():
                tp += 1
            else:
                fn += 1
        outside = flags & (f.window_id < 0)
        # A false event starts at each flagged record whose predecessor is not flagged-outside.
        fp += int((outside & ~np.r_[False, outside[:-1]]).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "threshold": float(threshold),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def _folds(keys: Sequence[str], k: int, seed: int) -> list[list[str]]:
    order = np.random.default_rng(seed).permutation(sorted(keys))
    return [sorted(order[i::k].tolist()) for i in range(k)]


def cross_validate(
    scores_by_file: Mapping[str, np.ndarray],
    corpus: Mapping[str, NabFile],
    folds: int,
    profiles: Mapping[str, Profile] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Leave-files-out scores: each fold's threshold is optimised on the other folds' files.

    Every file is held out once; the held-out raw scores are summed and normalised per category
    and overall, and event metrics counted at each fold's standard-profile threshold.
    """
    profiles = dict(PROFILES if profiles is None else profiles)
    keys = sorted(scores_by_file)
    if not 2 <= folds <= len(keys):
        raise ConfigError(f"folds must be in [2, {len(keys)}] for {len(keys)} files, got {folds}")
    parts = _folds(keys, folds, seed)
    held: dict[str, dict[str, float]] = {p: {} for p in profiles}
    thresholds: dict[str, list[float]] = {p: [] for p in profiles}
    ev = {"tp": 0, "fp": 0, "fn": 0}
    for part in parts:
        train = {k: scores_by_file[k] for k in keys if k not in part}
        for pname, prof in profiles.items():
            thr, _ = optimize_threshold(train, corpus, prof)
            thresholds[pname].append(thr)
            for k in part:
                held[pname][k] = score_file(scores_by_file[k], corpus[k], thr, prof).score
            if pname == "standard":
                e = event_metrics({k: scores_by_file[k] for k in part}, corpus, thr)
                for c in ev:
                    ev[c] += int(e[c])
    out: dict[str, Any] = {"folds": folds, "seed": seed, "fold_files": parts,
                           "thresholds": thresholds, "overall": {}, "categories": {}}
    cats = sorted({category_of(k) for k in keys})
    for pname, prof in profiles.items():
        n_win = sum(corpus[k].n_windows for k in keys)
        out["overall"][pname] = (
            normalized_score(sum(held[pname].values()), n_win, prof) if n_win else None
        )
        out["categories"][pname] = {}
        for cat in cats:
            members = [k for k in keys if category_of(k) == cat]
            cw = sum(corpus[k].n_windows for k in members)
            out["categories"][pname][cat] = (
                normalized_score(sum(held[pname][k] for k in members), cw, prof) if cw else None
            )
    out["events"] = _event_totals(ev)
    return out


def _event_totals(ev: Mapping[str, int]) -> dict[str, float | int]:
    precision = ev["tp"] / (ev["tp"] + ev["fp"]) if ev["tp"] + ev["fp"] else 0.0
    recall = ev["tp"] / (ev["tp"] + ev["fn"]) if ev["tp"] + ev["fn"] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {**ev, "precision": precision, "recall": recall, "f1": f1}


def leave_category_out(
    scores_by_file: Mapping[str, np.ndarray],
    corpus: Mapping[str, NabFile],
    profiles: Mapping[str, Profile] | None = None,
) -> dict[str, Any]:
    """Leave-one-category-out scores: each category is scored at the threshold optimised on
    the files of all the other categories.

    The threshold is the only choice the harness makes from the scores; detector parameters are
    fixed before the run. Each held-out category gets its normalised score (None for a category
    without windows, whose raw score, the cost of its false alarms, is still reported and
    counted); ``overall`` is the sum of every file's raw score at its fold's threshold,
    normalised over all windows as NAB does. Event counts use each fold's threshold of the
    first profile (``standard`` for NAB's).

    Examples
    --------
    >>> ts = np.arange(200).astype("datetime64[m]").astype("datetime64[ns]")
    >>> corpus = {k: NabFile(k, ts, np.zeros(200), windows=w) for k, w in
    ...           (("a/x.csv", ((100, 119),)), ("b/y.csv", ((150, 159),)))}
    >>> s = {k: np.zeros(200) for k in corpus}
    >>> s["a/x.csv"][100] = 0.9; s["b/y.csv"][150] = 0.8; s["b/y.csv"][60] = 0.9
    >>> lo = leave_category_out(s, corpus, {"standard": PROFILES["standard"]})
    >>> lo["thresholds"]["standard"]                 # b's threshold comes from a alone
    {'a': 0.8, 'b': 0.9}
    >>> round(lo["raw"]["standard"]["b"], 2)         # at 0.9 b's window is missed, 1 FP
    -1.11
    """
    profiles = dict(PROFILES if profiles is None else profiles)
    keys = sorted(scores_by_file)
    cats = sorted({category_of(k) for k in keys})
    if len(cats) < 2:
        raise ConfigError(
            f"leave-one-category-out needs files of at least 2 categories, got {cats}"
        )
    first = "standard" if "standard" in profiles else next(iter(profiles))
    held: dict[str, dict[str, float]] = {p: {} for p in profiles}
    thresholds: dict[str, dict[str, float]] = {p: {} for p in profiles}
    events_by_cat: dict[str, dict[str, float | int]] = {}
    for cat in cats:
        test = [k for k in keys if category_of(k) == cat]
        train = {k: scores_by_file[k] for k in keys if category_of(k) != cat}
        for pname, prof in profiles.items():
            thr, _ = optimize_threshold(train, corpus, prof)
            thresholds[pname][cat] = thr
            for k in test:
                held[pname][k] = score_file(scores_by_file[k], corpus[k], thr, prof).score
        events_by_cat[cat] = event_metrics(
            {k: scores_by_file[k] for k in test}, corpus, thresholds[first][cat]
        )
    n_win = sum(corpus[k].n_windows for k in keys)
    out: dict[str, Any] = {"categories_held_out": cats, "thresholds": thresholds, "raw": {},
                           "categories": {}, "overall": {}, "overall_raw": {}}
    for pname, prof in profiles.items():
        out["raw"][pname] = {}
        out["categories"][pname] = {}
        for cat in cats:
            members = [k for k in keys if category_of(k) == cat]
            raw = sum(held[pname][k] for k in members)
            cw = sum(corpus[k].n_windows for k in members)
            out["raw"][pname][cat] = raw
            out["categories"][pname][cat] = normalized_score(raw, cw, prof) if cw else None
        total = sum(held[pname].values())
        out["overall_raw"][pname] = total
        out["overall"][pname] = normalized_score(total, n_win, prof) if n_win else None
    out["events"] = _event_totals(
        {c: sum(int(e[c]) for e in events_by_cat.values()) for c in ("tp", "fp", "fn")}
    )
    out["events_by_category"] = events_by_cat
    return out


def _scores_summary(res: Any) -> dict[str, Any]:
    d = res.to_dict()
    d.pop("files")
    return d


def evaluate(
    runs: Mapping[str, DetectorRun],
    corpus: Mapping[str, NabFile],
    *,
    profiles: Mapping[str, Profile] | None = None,
    published_thresholds: Mapping[str, Mapping[str, float]] | None = None,
    folds: int | None = 5,
    loco: bool = True,
) -> dict[str, Any]:
    """Score every run with the NAB scorer: optimised thresholds, published ones, events,
    leave-files-out CV and (with ``loco`` and files of 2+ categories) leave-one-category-out."""
    profiles = dict(PROFILES if profiles is None else profiles)
    published_thresholds = published_thresholds or {}
    keys = sorted(corpus)
    out: dict[str, Any] = {}
    for name, run in runs.items():
        missing = sorted(set(keys) - set(run.scores))
        if missing:
            raise DataError(f"detector {name!r} has no scores for {missing[:3]}")
        scores = {k: run.scores[k] for k in keys}
        opt = score_corpus(scores, corpus, profiles)
        entry: dict[str, Any] = {
            "kind": run.kind,
            "seconds": run.seconds,
            "notes": run.notes,
            "optimized": _scores_summary(opt),
            "files": {
                p: {k: vars(fs) for k, fs in per.items()} for p, per in opt.files.items()
            },
            "published": None,
        }
        pub = published_thresholds.get(name)
        if run.kind == "published" and pub and set(profiles) <= set(pub):
            entry["published"] = _scores_summary(
                score_corpus(scores, corpus, profiles, thresholds=pub)
            )
        std = opt.thresholds.get("standard", next(iter(opt.thresholds.values())))
        entry["events"] = event_metrics(scores, corpus, std)
        entry["events_by_category"] = {
            cat: event_metrics(
                {k: s for k, s in scores.items() if category_of(k) == cat}, corpus, std
            )
            for cat in sorted({category_of(k) for k in keys})
        }
        n_folds = min(folds or 0, len(keys))
        entry["cv"] = (
            cross_validate(scores, corpus, n_folds, profiles) if n_folds >= 2 else None
        )
        n_cats = len({category_of(k) for k in keys})
        entry["loco"] = (
            leave_category_out(scores, corpus, profiles) if loco and n_cats >= 2 else None
        )
        out[name] = entry
    return out


def _fmt(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report's tables as Markdown: one per category, one overall when there are more, and
    the leave-one-category-out table when it was computed."""
    dets = report["detectors"]
    profs = list(report["profiles"])
    cats = list(report["categories"])
    scopes = [*cats, "overall"] if len(cats) > 1 else cats
    short = {"standard": "std", "reward_low_FP_rate": "lowFP", "reward_low_FN_rate": "lowFN"}
    first = profs[0]
    has_loco = any(e.get("loco") for e in dets.values())
    lines = [f"# NAB benchmark: {report['data']}", ""]
    lines.append(
        f"{report['n_files']} files, {report['n_windows']} windows. NAB scores: 100 = every "
        "window found at its left edge and no false alarm, 0 = nothing detected (the null "
        "detector). *opt*: threshold optimised on all these files (NAB's rule, the same for "
        "every detector; a category's figure is at that threshold); *pub*: the published "
        "corpus-wide threshold; *CV*: leave-files-out "
        f"({report.get('folds') or 'no'} folds)"
        + ("; *LOCO*: leave-one-category-out (each category scored at the threshold optimised "
           "on the other categories)" if has_loco else "")
        + ". Events at the standard optimised threshold; false events are runs of flagged "
        "records outside windows. A category without windows has no normalised score: it "
        "costs its false alarms in every other figure."
    )

    def value(entry: Mapping[str, Any], part: str, prof: str, scope: str) -> Any:
        block = entry.get(part)
        if not block:
            return None
        if scope == "overall":
            return block["overall"].get(prof)
        return block["categories"].get(prof, {}).get(scope)

    for scope in scopes:
        n_files = report["n_files"] if scope == "overall" else report["categories"][scope]["files"]
        n_win = (report["n_windows"] if scope == "overall"
                 else report["categories"][scope]["windows"])
        lines += ["", f"## {scope} ({n_files} files, {n_win} windows)", ""]
        head = ["detector", "kind"] + [f"{short.get(p, p)} opt" for p in profs]
        head += [f"{short.get(p, p)} pub" for p in profs]
        head += [f"{short.get(first, first)} CV"]
        head += [f"{short.get(first, first)} LOCO"] if has_loco else []
        head += ["event P", "event R", "event F1", "false events"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))

        def rank(kv: tuple[str, Any], scope: str = scope) -> tuple[float, str]:
            v = value(kv[1], "optimized", first, scope)
            if v is None:
                v = value(kv[1], "optimized", first, "overall")
            return (-v if v is not None else 1e9, kv[0])

        for name, e in sorted(dets.items(), key=rank):
            ev = e["events"] if scope == "overall" else e["events_by_category"].get(scope)
            cells = [name, e["kind"]]
            cells += [_fmt(value(e, "optimized", p, scope)) for p in profs]
            cells += [_fmt(value(e, "published", p, scope)) for p in profs]
            cells.append(_fmt(value(e, "cv", first, scope)))
            if has_loco:
                cells.append(_fmt(value(e, "loco", first, scope)))
            if ev:
                cells += [_fmt(ev[m], 2) for m in ("precision", "recall", "f1")]
                cells.append(str(ev["fp"]))
            else:
                cells += ["–"] * 4
            lines.append("| " + " | ".join(cells) + " |")
    if has_loco:
        lines += _loco_markdown(dets, profs, short)
    for name, why in (report.get("skipped_published") or {}).items():
        lines += ["", f"Published detector {name} not scored: {why}."]
    for note in report.get("notes") or []:
        lines += ["", f"Note: {note}."]
    if report.get("causality"):
        lines += ["", "Causality guard (prefix run = start of full run): " + ", ".join(
            f"{n} ok" for n in report["causality"])]
    lines += ["", f"Run time: {report['elapsed_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def _loco_markdown(
    dets: Mapping[str, Any], profs: Sequence[str], short: Mapping[str, str]
) -> list[str]:
    """The leave-one-category-out table: held-out categories (first profile), then overall."""
    first = profs[0]
    entries = {n: e for n, e in dets.items() if e.get("loco")}
    cats = next(iter(entries.values()))["loco"]["categories_held_out"]
    lines = ["", "## Leave one category out", "",
             f"Each category scored ({short.get(first, first)}) at the threshold optimised on "
             "the other categories' files; a category without windows shows its raw score (the "
             "cost of its false alarms, 0 = none). *overall*: every file's raw score at its "
             "fold's threshold, summed and normalised over all windows.", ""]
    head = ["detector", "kind", *cats, *(f"overall {short.get(p, p)}" for p in profs),
            "windows found", "false events"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))

    def rank(kv: tuple[str, Any]) -> tuple[float, str]:
        v = kv[1]["loco"]["overall"].get(first)
        return (-v if v is not None else 1e9, kv[0])

    for name, e in sorted(entries.items(), key=rank):
        lo = e["loco"]
        cells = [name, e["kind"]]
        for cat in cats:
            norm = lo["categories"][first].get(cat)
            cells.append(_fmt(norm) if norm is not None
                         else f"raw {_fmt(lo['raw'][first].get(cat), 2)}")
        cells += [_fmt(lo["overall"].get(p)) for p in profs]
        ev = lo["events"]
        cells += [f"{ev['tp']} / {ev['tp'] + ev['fn']}", str(ev["fp"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _write_results(out: Path, run: DetectorRun, corpus: Mapping[str, NabFile]) -> None:
    for key, scores in run.scores.items():
        f = corpus[key]
        folder = out / "results" / run.name / f.category
        folder.mkdir(parents=True, exist_ok=True)
        label = (f.window_id >= 0).astype(int)
        frame = pd.DataFrame({
            "timestamp": pd.DatetimeIndex(f.timestamps).strftime("%Y-%m-%d %H:%M:%S"),
            "value": f.values,
            "anomaly_score": scores,
            "label": label,
        })
        frame.to_csv(folder / f"{run.name}_{f.name}", index=False, float_format="%.10g")


def _published_runs(
    root: Path, corpus: Mapping[str, NabFile], wanted: set[str] | None,
    skipped: dict[str, str] | None = None,
) -> dict[str, DetectorRun]:
    res_dir = root / "results"
    if not res_dir.is_dir():
        return {}
    runs = {}
    skipped = {} if skipped is None else skipped
    for det_dir in sorted(p for p in res_dir.iterdir() if p.is_dir()):
        name = det_dir.name
        if wanted is not None and name not in wanted:
            continue
        scores = load_published_scores(root, name, corpus)
        if not scores:
            continue
        if len(scores) < len(corpus):
            # Scoring a detector on part of the files would make its row incomparable (its
            # threshold would be optimised on other files than everyone else's).
            covered = sorted({category_of(k) for k in scores})
            full = [c for c in covered
                    if all(k in scores for k in corpus if category_of(k) == c)]
            skipped[name] = (
                f"results for {len(scores)} of the {len(corpus)} selected files (categories "
                f"{', '.join(covered)})"
                + (f"; compare it on those with --category {' --category '.join(full)}"
                   if full else "")
            )
            continue
        runs[name] = DetectorRun(name, "published", scores)
    return runs


def _finish(
    report: dict[str, Any], out: Path, runs: Mapping[str, DetectorRun],
    corpus: Mapping[str, NabFile], write_results: bool,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    if write_results:
        for run in runs.values():
            if run.kind != "published":
                _write_results(out, run, corpus)
    (out / "scores.json").write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    (out / "scores.md").write_text(render_markdown(report))
    return report


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _header(corpus: Mapping[str, NabFile], profiles: Mapping[str, Profile]) -> dict[str, Any]:
    cats: dict[str, dict[str, int]] = {}
    for f in corpus.values():
        c = cats.setdefault(f.category, {"files": 0, "windows": 0})
        c["files"] += 1
        c["windows"] += f.n_windows
    return {
        "schema": SCHEMA,
        "n_files": len(corpus),
        "n_windows": sum(f.n_windows for f in corpus.values()),
        "categories": cats,
        "profiles": {n: vars(p) for n, p in profiles.items()},
        "files": {
            k: {"n": f.n, "probationary": f.probationary, "windows": [list(w) for w in f.windows]}
            for k, f in corpus.items()
        },
    }


def run_nab_bench(
    root: Path,
    out: Path,
    *,
    detectors: Sequence[str] | None = None,
    files: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    folds: int | None = 5,
    loco: bool = True,
    workers: int = 2,
    include_published: bool = True,
    check: bool = True,
    progress: bool = True,
    extra: Mapping[str, tuple[str, Factory]] | None = None,
) -> dict[str, Any]:
    """Run the benchmark on a NAB-layout folder and write ``out/scores.{json,md}``.

    Parameters
    ----------
    root
        NAB-layout folder.
    out
        Output folder (created).
    detectors
        Names to run or score (ours, peers, published); all when None.
    files
        Globs on ``category/name.csv`` or ``name.csv``.
    categories
        Category folders to load; all when None.
    folds
        Leave-files-out folds (capped at the number of files); None or < 2 for none.
    loco
        Leave-one-category-out cross-validation (when the files span 2+ categories).
    workers
        Worker processes for the runs.
    include_published
        Also score published detectors found under ``root/results``.
    check
        Run the causality guard on every detector that is run.
    extra
        More ``{name: (kind, factory)}`` detectors to run (tests use it for a cheating one).
    """
    started = time.perf_counter()
    root = Path(root)
    profiles = load_profiles(root)
    corpus = select_files(load_corpus(root, categories), files)
    runnable = {**available_detectors(), **(extra or {})}
    wanted = set(detectors) if detectors else None
    to_run = {n: v for n, v in runnable.items() if wanted is None or n in wanted}
    skipped: dict[str, str] = {}
    published = _published_runs(root, corpus, wanted, skipped) if include_published else {}
    if wanted is not None:
        unknown = sorted(wanted - set(to_run) - set(published) - set(skipped))
        if unknown:
            pub_names = sorted(p.name for p in (root / "results").glob("*") if p.is_dir())
            raise ConfigError(
                f"unknown detector(s) {unknown}; available: {sorted(runnable)} and published "
                f"{pub_names}"
            )
    runs = run_detectors(to_run, corpus, workers=workers, progress=progress)
    causality: dict[str, Any] = {}
    if check and to_run:
        # The file with the most windows (then the first): its prefix cut falls mid-stream.
        probe = max(corpus.values(), key=lambda f: (f.n_windows, -sorted(corpus).index(f.key)))
        for name, (_, fac) in to_run.items():
            cut = check_causality(name, fac, probe, full=runs[name].scores[probe.key])
            causality[name] = {"file": probe.key, "cut": cut, "ok": True}
    all_runs = {**runs, **{n: r for n, r in published.items() if n not in runs}}
    report = {
        **_header(corpus, profiles),
        "data": str(root),
        "folds": min(folds or 0, len(corpus)) if (folds or 0) >= 2 else None,
        "detectors": evaluate(
            all_runs, corpus, profiles=profiles,
            published_thresholds=load_thresholds(root), folds=folds, loco=loco,
        ),
        "causality": causality,
        "skipped_published": skipped,
    }
    report["elapsed_s"] = time.perf_counter() - started
    return _finish(report, Path(out), all_runs, corpus, write_results=True)


# ----------------------------------------------------------------------------- demo clusters
def _demo_corpus(
    ds: Any, events: pd.DataFrame, train_rows: int
) -> tuple[dict[str, NabFile], dict[str, np.ndarray]]:
    """One NabFile per cluster (windows = labelled events) and its (n, m) metric values."""
    corpus: dict[str, NabFile] = {}
    values: dict[str, np.ndarray] = {}
    for entity in ds.entities:
        frame = ds.entity_frame(entity)
        idx = frame.index
        ts = idx.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]")
        windows: list[tuple[int, int]] = []
        ev = events[events["entity"] == entity].sort_values("start")
        for start, end in zip(ev["start"], ev["end"], strict=True):
            lo = int(idx.searchsorted(pd.Timestamp(start), side="left"))
            hi = int(idx.searchsorted(pd.Timestamp(end), side="right")) - 1
            if hi < lo or lo >= len(idx):
                continue
            if windows and lo <= windows[-1][1]:
                windows[-1] = (windows[-1][0], max(hi, windows[-1][1]))
            else:
                windows.append((lo, hi))
        # Like NAB, drop windows that start inside the probationary (training) period.
        windows = [w for w in windows if w[0] >= train_rows]
        key = f"demo/{entity}.csv"
        corpus[key] = NabFile(key, ts, ds.values(entity)[:, 0], tuple(windows), train_rows)
        values[key] = ds.values(entity)
    return corpus, values


def _model_run(ds: Any, corpus: Mapping[str, NabFile], train_end: pd.Timestamp) -> DetectorRun:
    started = time.perf_counter()
    model = AnomalyModel()
    model.fit(ds.slice_time(None, train_end))
    scored = model.score(ds, explain="none")
    scores: dict[str, np.ndarray] = {}
    for key, f in corpus.items():
        entity = key.split("/", 1)[1].removesuffix(".csv")
        s = scored[scored["entity"] == entity]["anomaly_score"].to_numpy(dtype=float)
        if len(s) != f.n:
            raise DataError(f"AnomalyModel scored {len(s)} rows of {entity}, expected {f.n}")
        bad = np.flatnonzero(~np.isfinite(s))
        if len(bad) and bad.max() >= f.probationary:
            raise DataError(
                f"AnomalyModel gave a non-finite score at row {int(bad.max())} of {entity}, "
                "after the training period"
            )
        # Rows still warming up (inside the training period, ignored by the scorer) score 0.
        scores[key] = np.where(np.isfinite(s), s, 0.0)
    run = DetectorRun("aws_model", "model", scores, time.perf_counter() - started)
    run.notes.append("multivariate AnomalyModel (default detector) trained on the first days")
    return run


def run_demo_bench(
    out: Path,
    *,
    clusters: int = 3,
    days: float = 28,
    seed: int = 0,
    train_days: float = 7,
    detectors: Sequence[str] | None = None,
    folds: int | None = None,
    workers: int = 2,
    include_model: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """The event-level table on the simulated EKS clusters (issue point 5).

    Each univariate detector runs per cluster and metric, from scratch, with the first
    ``train_days`` as its probationary period; a cluster's score is the max over its metrics.
    The multivariate :class:`AnomalyModel` is fit on the same first days (all clusters) and
    scores everything. Scoring ignores the training period; windows are the labelled events.
    """
    started = time.perf_counter()
    ds, events = generate_demo(clusters=clusters, days=days, step="5min", seed=seed)
    step_rows = int(pd.Timedelta(days=train_days) / ds.step)
    corpus, values = _demo_corpus(ds, events, step_rows)
    runnable = available_detectors()
    wanted = set(detectors) if detectors else None
    if wanted is not None:
        unknown = sorted(wanted - set(runnable) - {"aws_model"})
        if unknown:
            raise ConfigError(
                f"unknown detector(s) {unknown}; available: {sorted(runnable)} and aws_model"
            )
    to_run = {n: v for n, v in runnable.items() if wanted is None or n in wanted}
    tasks = [
        (name, fac, f"{key}#{j}", f.timestamps, values[key][:, j], f.probationary)
        for name, (_, fac) in to_run.items()
        for key, f in corpus.items()
        for j in range(values[next(iter(values))].shape[1])
    ]
    runs = {n: DetectorRun(n, kind, {}, 0.0) for n, (kind, _) in to_run.items()}
    per_metric: dict[tuple[str, str], list[np.ndarray]] = {}
    for name, task_key, scores, secs in _execute(tasks, workers, progress, "demo bench"):
        key = task_key.split("#", 1)[0]
        per_metric.setdefault((name, key), []).append(_check_output(name, scores, corpus[key]))
        runs[name].seconds = (runs[name].seconds or 0.0) + secs
    for (name, key), parts in per_metric.items():
        runs[name].scores[key] = np.max(np.vstack(parts), axis=0)
    all_runs: dict[str, DetectorRun] = dict(runs)
    notes = []
    if include_model and (wanted is None or "aws_model" in wanted) and AnomalyModel is None:
        notes.append(f"AnomalyModel not available: {MODEL_IMPORT_ERROR}")
    elif include_model and (wanted is None or "aws_model" in wanted):
        train_end = ds.frame["timestamp"].min() + pd.Timedelta(days=train_days)
        all_runs["aws_model"] = _model_run(ds, corpus, train_end)
    profiles = dict(PROFILES)
    report = {
        **_header(corpus, profiles),
        "data": f"demo clusters={clusters} days={days} seed={seed} train_days={train_days}",
        "folds": min(folds or 0, len(corpus)) if (folds or 0) >= 2 else None,
        "detectors": evaluate(all_runs, corpus, profiles=profiles, folds=folds),
        "causality": {},
        "notes": notes,
    }
    report["elapsed_s"] = time.perf_counter() - started
    return _finish(report, Path(out), all_runs, corpus, write_results=False)
