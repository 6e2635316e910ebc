"""The NAB scorer reproduces NAB's published per-file and per-category results."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.errors import DataError
from aws_anomaly.evaluation.nab import (
    PROFILES,
    NabFile,
    load_corpus,
    load_profiles,
    load_published_scores,
    load_thresholds,
    normalized_score,
    optimize_threshold,
    score_corpus,
    score_file,
    threshold_curve,
)

pytestmark = pytest.mark.nab

CATEGORY = "realAWSCloudwatch"
# SCORING.md's detector names -> results/ folder names.
_TABLE_NAMES = {"numenta (HTM)": "numenta"}


@pytest.fixture(scope="module")
def corpus(nab_root: Path) -> dict[str, NabFile]:
    return load_corpus(nab_root)


@pytest.fixture(scope="module")
def published(nab_root: Path, corpus) -> dict[str, dict[str, np.ndarray]]:
    return {d: load_published_scores(nab_root, d, corpus) for d in _published_detectors(nab_root)}


def _published_detectors(root: Path) -> list[str]:
    return sorted(
        p.name for p in (root / "results").iterdir() if p.is_dir() and p.name != "random"
    )


def _scoring_md_table(root: Path) -> dict[str, tuple[float, float, float]]:
    text = (root / "SCORING.md").read_text()
    rows = {}
    for m in re.finditer(r"^\| ([^|]+?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", text, re.M):
        name = _TABLE_NAMES.get(m.group(1), m.group(1))
        rows[name] = (float(m.group(2)), float(m.group(3)), float(m.group(4)))
    return rows


def test_corpus_layout(corpus: dict[str, NabFile]) -> None:
    assert len(corpus) == 17
    assert sum(f.n_windows for f in corpus.values()) == 30
    f = corpus[f"{CATEGORY}/ec2_cpu_utilization_24ae8d.csv"]
    assert (f.n, f.probationary) == (4032, 604)
    assert [hi - lo + 1 for lo, hi in f.windows] == [201, 201]
    iio = corpus[f"{CATEGORY}/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv"]
    assert iio.probationary == 186
    assert corpus[f"{CATEGORY}/ec2_cpu_utilization_c6585a.csv"].windows == ()


def test_reproduces_every_published_file_score(nab_root: Path, corpus, published) -> None:
    """All 612 published rows (12 detectors x 17 files x 3 profiles): score and counts."""
    thresholds = load_thresholds(nab_root)
    profiles = load_profiles(nab_root)
    checked = 0
    started = time.perf_counter()
    for det, scores in published.items():
        assert len(scores) == 17, det
        for prof_name, prof in profiles.items():
            table = pd.read_csv(nab_root / "results" / det / f"{det}_{prof_name}_scores.csv")
            for row in table.itertuples(index=False):
                fs = score_file(scores[row.File], corpus[row.File], thresholds[det][prof_name],
                                prof)
                where = f"{det} {prof_name} {row.File}"
                assert fs.score == pytest.approx(row.Score, abs=1e-6), where
                assert (fs.tp, fs.tn, fs.fp, fs.fn) == (row.TP, row.TN, row.FP, row.FN), where
                # Total_Count is, depending on the NAB version that wrote the table, the number
                # of records with or without the probationary period.
                counted = fs.tp + fs.tn + fs.fp + fs.fn
                assert row.Total_Count in (counted, counted + corpus[row.File].probationary)
                checked += 1
    assert checked == 612
    # Vectorised: the whole check takes well under a few seconds.
    assert time.perf_counter() - started < 30


def test_reproduces_scoring_md_category_table(nab_root: Path, corpus, published) -> None:
    thresholds = load_thresholds(nab_root)
    table = _scoring_md_table(nab_root)
    assert set(published) - {"null"} <= set(table)
    for det, scores in published.items():
        if det == "null":
            continue
        res = score_corpus(scores, corpus, thresholds=thresholds[det])
        got = tuple(res.categories[p][CATEGORY] for p in PROFILES)
        assert got == pytest.approx(table[det], abs=0.1), det
        # One category: the overall score is the category score.
        assert res.overall["standard"] == pytest.approx(got[0])


def test_null_detector_scores_zero(nab_root: Path, corpus, published) -> None:
    res = score_corpus(published["null"], corpus, thresholds=load_thresholds(nab_root)["null"])
    assert res.overall == pytest.approx({p: 0.0 for p in PROFILES})


def _brute_force_best(scores_by_file, corpus, profile):
    """NAB's sweep written naively: score at every distinct value, keep the first best."""
    values = np.unique(np.concatenate(list(scores_by_file.values())))[::-1]
    best = (1.1, sum(score_file(s, corpus[k], 1.1, profile).score
                     for k, s in scores_by_file.items()))
    for v in values:
        total = sum(score_file(s, corpus[k], v, profile).score for k, s in scores_by_file.items())
        if total > best[1] + 1e-12:
            best = (float(v), total)
    return best


def test_optimizer_matches_brute_force_sweep(nab_root: Path, corpus) -> None:
    keys = sorted(corpus)[:4]
    sub = {k: corpus[k] for k in keys}
    rng = np.random.default_rng(0)
    published = load_published_scores(nab_root, "skyline", sub)
    coarse = {k: np.round(rng.random(corpus[k].n) ** 4, 2) for k in keys}
    for scores in (published, coarse):
        for prof in PROFILES.values():
            thr, total = optimize_threshold(scores, sub, prof)
            b_thr, b_total = _brute_force_best(scores, sub, prof)
            assert total == pytest.approx(b_total, abs=1e-9)
            assert thr == b_thr
            # The curve agrees with direct scoring at every threshold it lists.
            ths, tots = threshold_curve(scores, sub, prof)
            for t, tot in list(zip(ths, tots, strict=True))[:: max(1, len(ths) // 15)]:
                direct = sum(score_file(s, sub[k], t, prof).score for k, s in scores.items())
                assert tot == pytest.approx(direct, abs=1e-9)


def test_optimizer_is_fast_on_full_corpus(nab_root: Path, corpus, published) -> None:
    scores = published["numenta"]
    started = time.perf_counter()
    _, total = optimize_threshold(scores, corpus, PROFILES["standard"])
    assert time.perf_counter() - started < 5
    # Optimising on these 17 files can only beat the corpus-wide published threshold here.
    published = score_corpus(scores, corpus, thresholds=load_thresholds(nab_root)["numenta"])
    assert total >= published.raw["standard"] - 1e-9
    assert score_corpus(scores, corpus).raw["standard"] == pytest.approx(total)


def _toy(n: int = 100, windows=((40, 49),)) -> NabFile:
    ts = (np.datetime64("2020-01-01") + np.arange(n) * np.timedelta64(5, "m")).astype(
        "datetime64[ns]")
    return NabFile("toy/a.csv", ts, np.zeros(n), windows=windows)


def test_window_credit_rules() -> None:
    f = _toy()
    prof = PROFILES["standard"]
    s = np.zeros(100)
    s[[45, 41]] = 1.0  # earliest detection counts, later one neither earns nor costs
    only_41 = np.zeros(100)
    only_41[41] = 1.0
    assert score_file(s, f, 0.5, prof).score == score_file(only_41, f, 0.5, prof).score
    assert score_file(s, f, 0.5, prof).tp == 2
    # Right edge earns little, detections in the probationary period count nothing.
    right = np.zeros(100)
    right[49] = 1.0
    right[3] = 1.0
    # sigma(-1/10) / sigma(-1) = 0.248
    assert score_file(right, f, 0.5, prof).score == pytest.approx(0.24824, abs=1e-5)
    # Missing the window costs A_FN; a late FP far after the window costs ~A_FP.
    late = np.zeros(100)
    late[99] = 1.0
    fs = score_file(late, f, 0.5, PROFILES["reward_low_FN_rate"])
    assert fs.score == pytest.approx(-2.0 - 0.11 * 0.99, abs=2e-3)
    # Right after the window a FP is almost free.
    after = np.zeros(100)
    after[50] = 1.0
    # sigma(1/9) = -0.271, times A_FP
    assert score_file(after, f, 0.5, prof).score + 1.0 == pytest.approx(-0.11 * 0.2708, abs=1e-4)
    assert normalized_score(-1.0, 1, prof) == 0.0


def test_bad_input_raises(tmp_path: Path) -> None:
    f = _toy()
    with pytest.raises(DataError, match="need exactly one per record"):
        score_file(np.zeros(5), f, 0.5, PROFILES["standard"])
    bad = np.zeros(100)
    bad[60] = np.nan
    with pytest.raises(DataError, match="row 60"):
        score_file(bad, f, 0.5, PROFILES["standard"])
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    (tmp_path / "data" / "cat" / "a.csv").write_text(
        "timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:05:00,2\n")
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps({}))
    with pytest.raises(DataError, match=r"no entry for 'cat/a\.csv'"):
        load_corpus(tmp_path)
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(
        {"cat/a.csv": [["2020-01-01 00:00:00.000000", "2020-01-01 00:07:00.000000"]]}))
    with pytest.raises(DataError, match=r"window end .* matches no record"):
        load_corpus(tmp_path)
    with pytest.raises(DataError, match="no category folder"):
        load_corpus(tmp_path, categories=["nope"])
