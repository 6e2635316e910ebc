"""NAB study of the streaming detectors: full-corpus scores, leave-files-out CV, run time.

Usage::

    .venv/bin/python benchmarks/streaming_cv.py [--data ../shared/data/nab] [--folds 5]

Prints three tables and writes ``out/bench/streaming_cv.json``:

1. every registered detector (``aws_anomaly.streaming.NAB_DETECTORS``) and the published
   detectors under ``results/``, with NAB thresholds optimised on all the files (the published
   detectors also with their published thresholds);
2. K-fold leave-files-out CV of the registered detectors: the threshold is chosen on the
   training files only and the held-out files are scored with it (summed over folds, normalised
   over all windows);
3. nested CV of the parameter choice: for each fold, the parameter set (from a small candidate
   grid) AND the threshold are chosen on the training files only, then the held-out files are
   scored. This is the honest estimate of "choose parameters, then meet new files".
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from aws_anomaly.evaluation.nab import (
    PROFILES,
    NabFile,
    load_corpus,
    load_thresholds,
    normalized_score,
    optimize_threshold,
    score_file,
)
from aws_anomaly.streaming import (
    NAB_DETECTORS,
    ContextNoveltyDetector,
    EnsembleDetector,
    LikelihoodDetector,
    StreamingDetector,
)

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = ("numenta", "contextOSE", "ARTime", "knncad", "randomCutForest", "null")
CATEGORY = "realAWSCloudwatch"
#: Alarm level assumed for a detector that does not say (ensembles expose ``rest_level``).
ALARM_LEVEL = 0.5


def candidate_grid() -> dict[str, Callable[[], StreamingDetector]]:
    """The parameter sets the nested CV chooses from: a grid around the chosen detector."""
    grid: dict[str, Callable[[], StreamingDetector]] = {}
    settings = [(lv, order, 150) for lv in (7, 8, 9) for order in (5, 6, 7)] + [(8, 6, 100)]
    for levels, order, rest in settings:
        def build(levels=levels, order=order, rest=rest) -> StreamingDetector:
            return EnsembleDetector(
                members=[
                    LikelihoodDetector(member=ContextNoveltyDetector(
                        n_levels=levels, max_order=order, n_grids=3), avg_windows=(10, 20)),
                    ContextNoveltyDetector(n_levels=levels, max_order=1, n_grids=3),
                ],
                weights=[1.0, 0.6], rest_level=0.45, rest_period=rest, rest_factor=0.0,
                spatial_tolerance=0.05,
            )
        grid[f"levels{levels}_order{order}_rest{rest}"] = build
    return grid


def run_detector(factory: Callable[[], StreamingDetector],
                 corpus: Mapping[str, NabFile]) -> tuple[dict[str, np.ndarray], float]:
    t0 = time.perf_counter()
    scores = {k: factory().run(f.timestamps, f.values, f.probationary) for k, f in corpus.items()}
    return scores, time.perf_counter() - t0


def published_scores(root: Path, det: str, corpus: Mapping[str, NabFile]) -> dict[str, np.ndarray]:
    out = {}
    for key in corpus:
        name = key.split("/", 1)[1]
        path = root / "results" / det / CATEGORY / f"{det}_{name}"
        out[key] = pd.read_csv(path)["anomaly_score"].to_numpy(np.float64)
    return out


def n_windows(corpus: Mapping[str, NabFile], keys) -> int:
    return sum(len(corpus[k].windows) for k in keys)


def raw_at(scores: Mapping[str, np.ndarray], corpus: Mapping[str, NabFile], keys, prof: str,
           threshold: float) -> float:
    return sum(score_file(scores[k], corpus[k], threshold, PROFILES[prof]).score for k in keys)


def full_scores(scores, corpus) -> dict[str, dict[str, float]]:
    out = {}
    for prof in PROFILES:
        th, raw = optimize_threshold(scores, corpus, PROFILES[prof])
        out[prof] = {"score": normalized_score(raw, n_windows(corpus, corpus), PROFILES[prof]),
                     "threshold": th}
    return out


def folds_of(keys: list[str], k: int, seed: int) -> list[list[str]]:
    perm = np.random.default_rng(seed).permutation(len(keys))
    return [[keys[i] for i in perm[f::k]] for f in range(k)]


def cv_threshold(scores, corpus, folds) -> dict[str, float]:
    """Threshold chosen on the training files, applied to the held-out ones."""
    out = {}
    for prof in PROFILES:
        total = 0.0
        for test in folds:
            train = [k for k in corpus if k not in test]
            th, _ = optimize_threshold({k: scores[k] for k in train}, corpus, PROFILES[prof])
            total += raw_at(scores, corpus, test, prof, th)
        out[prof] = normalized_score(total, n_windows(corpus, corpus), PROFILES[prof])
    return out


def cv_nested(all_scores: Mapping[str, Mapping[str, np.ndarray]], corpus, folds):
    """Parameter set and threshold both chosen on the training files of each fold."""
    out: dict[str, dict] = {}
    for prof in PROFILES:
        total, chosen = 0.0, []
        for test in folds:
            train = [k for k in corpus if k not in test]
            best = max(
                all_scores,
                key=lambda name: optimize_threshold(
                    {k: all_scores[name][k] for k in train}, corpus, PROFILES[prof])[1],
            )
            th, _ = optimize_threshold({k: all_scores[best][k] for k in train}, corpus,
                                       PROFILES[prof])
            total += raw_at(all_scores[best], corpus, test, prof, th)
            chosen.append(best)
        out[prof] = {"score": normalized_score(total, n_windows(corpus, corpus), PROFILES[prof]),
                     "chosen": chosen}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "nab")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=3, help="fold shufflings averaged")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "bench" / "streaming_cv.json")
    args = ap.parse_args()
    corpus = load_corpus(args.data, [CATEGORY])
    keys = sorted(corpus)
    n_records = sum(f.n for f in corpus.values())
    report: dict = {"files": len(keys), "records": n_records,
                    "windows": n_windows(corpus, keys), "detectors": {}, "published": {}}
    profs = list(PROFILES)
    head = f"{'detector':28s} " + " ".join(f"{p[:18]:>18s}" for p in profs)

    print(f"\n== {CATEGORY}: thresholds optimised on all {len(keys)} files ==")
    print(head + f" {'run s':>7s}")
    ours: dict[str, dict[str, np.ndarray]] = {}
    for name, factory in NAB_DETECTORS.items():
        scores, secs = run_detector(factory, corpus)
        ours[name] = scores
        fs = full_scores(scores, corpus)
        report["detectors"][name] = {"full": fs, "seconds": secs,
                                     "records_per_s": n_records / secs}
        print(f"{name:28s} " + " ".join(f"{fs[p]['score']:18.1f}" for p in profs)
              + f" {secs:7.1f}")
    published_th = load_thresholds(args.data)
    fold_sets = [folds_of(keys, args.folds, seed) for seed in range(args.seeds)]
    pub_scores: dict[str, dict[str, np.ndarray]] = {}
    for det in PUBLISHED:
        scores = published_scores(args.data, det, corpus)
        pub_scores[det] = scores
        fs = full_scores(scores, corpus)
        pub = {p: normalized_score(raw_at(scores, corpus, keys, p, published_th[det][p]),
                                   n_windows(corpus, keys), PROFILES[p]) for p in profs}
        report["published"][det] = {"full": fs, "published_threshold": pub}
        print(f"{det + ' (published)':28s} "
              + " ".join(f"{fs[p]['score']:8.1f} ({pub[p]:5.1f}) " for p in profs))
    print("published rows: optimised on these files (with the published corpus-wide threshold)")

    print(f"\n== {args.folds}-fold leave-files-out, threshold chosen on training files "
          f"(mean of {args.seeds} shufflings) ==")
    print(head)
    for name, scores in [*ours.items(), *pub_scores.items()]:
        runs = [cv_threshold(scores, corpus, folds) for folds in fold_sets]
        cv = {p: float(np.mean([r[p] for r in runs])) for p in profs}
        where = report["detectors"] if name in ours else report["published"]
        where[name]["cv_threshold"] = cv
        label = name if name in ours else f"{name} (published)"
        print(f"{label:28s} " + " ".join(f"{cv[p]:18.1f}" for p in profs))

    print("\n== threshold = the detector's own alarm level (no threshold tuning at all) ==")
    print(head)
    for name, scores in ours.items():
        level = float(getattr(NAB_DETECTORS[name](), "rest_level", ALARM_LEVEL))
        fixed = {p: normalized_score(raw_at(scores, corpus, keys, p, level),
                                     n_windows(corpus, keys), PROFILES[p]) for p in profs}
        report["detectors"][name]["at_alarm_level"] = {"level": level, **fixed}
        print(f"{name + f' @{level}':28s} " + " ".join(f"{fixed[p]:18.1f}" for p in profs))

    print("\n== nested CV: parameter set AND threshold chosen on training files ==")
    grid = candidate_grid()
    grid_scores = {name: run_detector(f, corpus)[0] for name, f in grid.items()}
    report["grid_full"] = {name: {p: v["score"] for p, v in full_scores(s, corpus).items()}
                           for name, s in grid_scores.items()}
    nested_runs = [cv_nested(grid_scores, corpus, folds) for folds in fold_sets]
    nested = {p: float(np.mean([r[p]["score"] for r in nested_runs])) for p in profs}
    report["nested_cv"] = {"score": nested,
                           "chosen": {p: [c for r in nested_runs for c in r[p]["chosen"]]
                                      for p in profs}}
    print(head)
    print(f"{'grid (' + str(len(grid)) + ' sets)':28s} "
          + " ".join(f"{nested[p]:18.1f}" for p in profs))
    for p in profs:
        names, counts = np.unique(report["nested_cv"]["chosen"][p], return_counts=True)
        print(f"  {p}: chosen " + ", ".join(f"{n} x{c}" for n, c in zip(names, counts,
                                                                          strict=True)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
