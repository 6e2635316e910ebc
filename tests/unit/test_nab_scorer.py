"""The NAB scorer reproduces NAB's published per-file and per-category results.

The checks hold for any folder in NAB's layout: they are made per category, published rows are
checked wherever a detector's outputs exist (a detector may have outputs for only some files),
and files without windows are scored like the others.
"""

from __future__ import annotations

import json
import math
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
    category_of,
    load_corpus,
    load_profiles,
    load_published_scores,
    load_thresholds,
    normalized_score,
    optimize_threshold,
    probationary_length,
    read_nab_csv,
    score_corpus,
    score_file,
    threshold_curve,
)

pytestmark = pytest.mark.nab

# Table names in SCORING.md / README.md -> results/ folder names ("numenta (HTM)" -> "numenta").
_STALE = {"random"}  # README: random's published tables come from an earlier run


@pytest.fixture(scope="module")
def corpus(nab_root: Path) -> dict[str, NabFile]:
    return load_corpus(nab_root)


@pytest.fixture(scope="module")
def published(nab_root: Path, corpus) -> dict[str, dict[str, np.ndarray]]:
    return {d: load_published_scores(nab_root, d, corpus) for d in _published_detectors(nab_root)}


def _published_detectors(root: Path) -> list[str]:
    res = root / "results"
    if not res.is_dir():
        return []
    return sorted(p.name for p in res.iterdir() if p.is_dir() and p.name not in _STALE)


def _folder_name(table_name: str) -> str:
    """``"numenta (HTM)"`` -> ``"numenta"``: the results/ folder is the first word."""
    return table_name.split(" (", 1)[0].strip()


def _by_category(corpus) -> dict[str, list[NabFile]]:
    out: dict[str, list[NabFile]] = {}
    for f in corpus.values():
        out.setdefault(f.category, []).append(f)
    return out


def _scoring_md_table(root: Path) -> tuple[str, dict[str, tuple[float, float, float]]]:
    """SCORING.md's reference table: its category and ``{detector: (std, lowFP, lowFN)}``."""
    text = (root / "SCORING.md").read_text()
    head = re.search(r"^## Published reference values \((\w+),", text, re.M)
    assert head, "SCORING.md has no 'Published reference values (<category>, ...)' section"
    rows = {}
    for m in re.finditer(r"^\| ([^|]+?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", text, re.M):
        rows[_folder_name(m.group(1))] = (float(m.group(2)), float(m.group(3)),
                                          float(m.group(4)))
    return head.group(1), rows


def _readme_corpus_table(root: Path):
    """README.md's table of scores at thresholds optimised over N files, if it has one.

    Returns ``(n_files, categories, {detector: ((std, lowFP, lowFN), {category: std})})``.
    """
    text = (root / "README.md").read_text() if (root / "README.md").exists() else ""
    head = re.search(r"^\| detector \| (\d+) files \|(.*)\|$", text, re.M)
    if head is None:
        return None
    cats = [c.strip() for c in head.group(2).split("|")]
    rows = {}
    body = text[head.end():].lstrip("\n").split("\n")[1:]  # skip the |---| line
    for line in body:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        overall = tuple(float(v) for v in cells[1].split("/"))
        rows[_folder_name(cells[0])] = (overall, dict(zip(cats, map(float, cells[2:]),
                                                          strict=True)))
    return int(head.group(1)), cats, rows


def test_corpus_layout(nab_root: Path, corpus: dict[str, NabFile]) -> None:
    """Every data file is loaded with its windows, per category, by NAB's rules."""
    windows = json.loads((nab_root / "labels" / "combined_windows.json").read_text())
    on_disk = {f"{p.parent.name}/{p.name}" for p in (nab_root / "data").glob("*/*.csv")}
    assert set(corpus) == on_disk == set(windows)
    labels_path = nab_root / "labels" / "combined_labels.json"
    labels = json.loads(labels_path.read_text()) if labels_path.exists() else None
    for cat, files in _by_category(corpus).items():
        assert files, cat
        for f in files:
            assert f.category == cat and f.n > 0
            assert f.probationary == probationary_length(f.n) == min(math.floor(0.15 * f.n), 750)
            # Every window of the label file maps to rows; windows are sorted and disjoint.
            assert len(f.windows) == len(windows[f.key]), f.key
            for (lo, hi), (start, end) in zip(f.windows, windows[f.key], strict=True):
                assert f.timestamps[lo] == np.datetime64(pd.Timestamp(start)), f.key
                assert f.timestamps[hi] == np.datetime64(pd.Timestamp(end)), f.key
            edges = [e for w in f.windows for e in w]
            assert edges == sorted(edges) and all(hi < lo for (_, hi), (lo, _) in
                                                  zip(f.windows, f.windows[1:], strict=False))
            if labels is None:
                continue
            rows = [int(np.flatnonzero(f.timestamps == np.datetime64(pd.Timestamp(t)))[0])
                    for t in labels[f.key]]
            # Windows come from labels: none without labels, never more windows than labels.
            assert len(f.windows) <= len(rows), f.key
            if not rows:
                assert f.windows == (), f.key
            width = math.floor(0.10 * f.n / len(rows)) if rows else 0
            for lo, hi in f.windows:
                inside = [r for r in rows if lo <= r <= hi]
                if len(inside) == 1:
                    # NAB's rule: a window of ~10 % of the file / labels, centred on its label.
                    assert abs((hi - lo + 1) - width) <= 1, (f.key, lo, hi)
                    assert abs((inside[0] - lo) - (hi - inside[0])) <= 1, (f.key, lo, hi)
    # The category counts the README states, when it has such a table.
    readme = nab_root / "README.md"
    stated = dict(re.findall(r"^\| `(\w+)` \| (\d+) \|", readme.read_text(), re.M)) if (
        readme.exists()) else {}
    if stated:
        assert {c: len(fs) for c, fs in _by_category(corpus).items()} == {
            c: int(n) for c, n in stated.items()}
    # Known facts about NAB's realAWSCloudwatch files, when they are here.
    aws = "realAWSCloudwatch"
    if f"{aws}/ec2_cpu_utilization_24ae8d.csv" in corpus:
        f = corpus[f"{aws}/ec2_cpu_utilization_24ae8d.csv"]
        assert (f.n, f.probationary) == (4032, 604)
        assert [hi - lo + 1 for lo, hi in f.windows] == [201, 201]
        assert corpus[f"{aws}/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv"].probationary == 186
        assert corpus[f"{aws}/ec2_cpu_utilization_c6585a.csv"].windows == ()
        assert sum(f.n_windows for f in _by_category(corpus)[aws]) == 30


def test_published_labels_match_windows(nab_root: Path, corpus, published) -> None:
    """Each published output's ``label`` column is our window membership, row by row."""
    checked = 0
    for det, scores in published.items():
        for key in scores:
            f = corpus[key]
            path = nab_root / "results" / det / f.category / f"{det}_{f.name}"
            label = read_nab_csv(path, ("timestamp", "label"))["label"].to_numpy()
            assert np.array_equal(label, (f.window_id >= 0).astype(float)), path
            checked += 1
    assert checked == sum(len(s) for s in published.values())
    if published:
        assert checked > 0


def test_reproduces_every_published_file_score(nab_root: Path, corpus, published) -> None:
    """Every published row whose outputs exist: score to 1e-6 and TP/TN/FP/FN exactly.

    With the 17 realAWSCloudwatch files of every detector plus the 27 other files of the five
    detectors published for them, that is 12 x 17 x 3 + 5 x 27 x 3 = 1017 rows.
    """
    thresholds = load_thresholds(nab_root)
    profiles = load_profiles(nab_root)
    checked = 0
    started = time.perf_counter()
    for det, scores in published.items():
        for prof_name, prof in profiles.items():
            table = pd.read_csv(nab_root / "results" / det / f"{det}_{prof_name}_scores.csv")
            table = table[table["File"].isin(corpus)]
            # Every output is covered by the table: nothing published goes unchecked.
            assert set(scores) <= set(table["File"]), (det, prof_name)
            for row in table.itertuples(index=False):
                if row.File not in scores:
                    continue  # a table row without outputs here (outputs may be a subset)
                fs = score_file(scores[row.File], corpus[row.File], thresholds[det][prof_name],
                                prof)
                where = f"{det} {prof_name} {row.File}"
                assert fs.score == pytest.approx(row.Score, abs=1e-6), where
                assert (fs.tp, fs.tn, fs.fp, fs.fn) == (row.TP, row.TN, row.FP, row.FN), where
                if not corpus[row.File].windows:
                    assert fs.tp == fs.fn == 0 and fs.score == pytest.approx(
                        -prof.fp * fs.fp, abs=1e-9), where
                # Total_Count is, depending on the NAB version that wrote the table, the number
                # of records with or without the probationary period.
                counted = fs.tp + fs.tn + fs.fp + fs.fn
                assert row.Total_Count in (counted, counted + corpus[row.File].probationary)
                checked += 1
    assert checked == len(profiles) * sum(len(s) for s in published.values())
    if published:
        assert checked > 0
    if {"numenta", "skyline"} <= set(published) and len(corpus) == 44:
        assert checked == 1017  # the folder this suite was written against
    # Vectorised: the whole check takes a few seconds.
    assert time.perf_counter() - started < 60


def test_reproduces_scoring_md_category_table(nab_root: Path, corpus, published) -> None:
    """SCORING.md's per-category figures at the published thresholds, normalised over the
    category's own files, whatever else the folder holds."""
    if not (nab_root / "SCORING.md").exists():
        pytest.skip("no SCORING.md in this NAB folder")
    cat, table = _scoring_md_table(nab_root)
    thresholds = load_thresholds(nab_root)
    members = {k for k, f in corpus.items() if f.category == cat}
    compared = 0
    for det, scores in published.items():
        if det == "null" or not members & set(scores):
            continue
        assert members <= set(scores), f"{det} has outputs for part of {cat} only"
        res = score_corpus(scores, corpus, thresholds=thresholds[det])
        got = tuple(res.categories[p][cat] for p in PROFILES)
        assert got == pytest.approx(table[det], abs=0.1), det
        # A category's score depends on its own files only.
        alone = score_corpus({k: scores[k] for k in members}, corpus, thresholds=thresholds[det])
        assert tuple(alone.overall[p] for p in PROFILES) == pytest.approx(got, abs=1e-9)
        compared += 1
    assert compared == len([d for d in published if d != "null" and members & set(published[d])])
    assert compared > 0


def test_reproduces_readme_corpus_table(nab_root: Path, corpus, published) -> None:
    """README's table: thresholds optimised over all N files, per detector and profile; the
    overall and per-category (standard) normalised scores at those thresholds."""
    parsed = _readme_corpus_table(nab_root)
    if parsed is None:
        pytest.skip("README.md has no '| detector | N files | ...' table")
    n_files, cats, table = parsed
    assert table and set(cats) <= {f.category for f in corpus.values()}
    for det, (overall, per_cat) in table.items():
        scores = published[det]
        assert len(scores) == n_files == len(corpus), det
        res = score_corpus(scores, corpus)
        assert tuple(res.overall[p] for p in PROFILES) == pytest.approx(overall, abs=0.1), det
        for cat, want in per_cat.items():
            assert res.categories["standard"][cat] == pytest.approx(want, abs=0.1), (det, cat)
        # Categories without windows have no normalised score, but their false alarms count.
        for cat, files in _by_category(corpus).items():
            if not any(f.n_windows for f in files):
                assert res.categories["standard"][cat] is None
                raw = sum(res.files["standard"][f.key].score for f in files)
                assert raw == pytest.approx(-PROFILES["standard"].fp * sum(
                    res.files["standard"][f.key].fp for f in files))


def test_null_detector_scores_zero(nab_root: Path, corpus, published) -> None:
    res = score_corpus(published["null"], corpus, thresholds=load_thresholds(nab_root)["null"])
    assert res.overall == pytest.approx({p: 0.0 for p in PROFILES})
    assert res.raw == pytest.approx(
        {p: -prof.fn * sum(corpus[k].n_windows for k in published["null"])
         for p, prof in PROFILES.items()})


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


def _sweep_files(corpus, published) -> tuple[str, list[str]]:
    """A published detector and the first file of each category it has outputs for: the one
    covering most categories, then with fewest distinct scores (the brute force is slow)."""
    def firsts(scores):
        out: dict[str, str] = {}
        for k in sorted(scores):
            out.setdefault(category_of(k), k)
        return list(out.values())

    candidates = [d for d, s in published.items()
                  if len(np.unique(np.concatenate(list(s.values())))) > 1] if published else []
    assert candidates, "no published detector with outputs to sweep"
    det = min(candidates, key=lambda d: (
        -len(firsts(published[d])),
        len(np.unique(np.concatenate([published[d][k] for k in firsts(published[d])])))))
    return det, firsts(published[det])


def test_optimizer_matches_brute_force_sweep(corpus, published) -> None:
    det, keys = _sweep_files(corpus, published)
    sub = {k: corpus[k] for k in keys}
    rng = np.random.default_rng(0)
    pub = {k: published[det][k] for k in keys}
    coarse = {k: np.round(rng.random(corpus[k].n) ** 4, 2) for k in keys}
    for scores in (pub, coarse):
        for prof in PROFILES.values():
            thr, total = optimize_threshold(scores, sub, prof)
            b_thr, b_total = _brute_force_best(scores, sub, prof)
            assert total == pytest.approx(b_total, abs=1e-9), det
            assert thr == b_thr, det
            # The curve agrees with direct scoring at every threshold it lists.
            ths, tots = threshold_curve(scores, sub, prof)
            for t, tot in list(zip(ths, tots, strict=True))[:: max(1, len(ths) // 15)]:
                direct = sum(score_file(s, sub[k], t, prof).score for k, s in scores.items())
                assert tot == pytest.approx(direct, abs=1e-9)


def test_optimizer_on_files_without_windows() -> None:
    """With no window anywhere, every detection costs: the optimum detects nothing."""
    f = _toy(windows=())
    s = np.linspace(0, 1, 100)
    thr, total = optimize_threshold({f.key: s}, {f.key: f}, PROFILES["standard"])
    assert (thr, total) == (1.1, 0.0)
    fs = score_file(s, f, 0.9, PROFILES["standard"])
    assert (fs.tp, fs.fn) == (0, 0) and fs.fp == 10
    assert fs.score == pytest.approx(-0.11 * 10)
    res = score_corpus({f.key: s}, {f.key: f})
    assert res.overall["standard"] is None and res.categories["standard"] == {"toy": None}


def test_optimizer_is_fast_on_full_corpus(nab_root: Path, corpus, published) -> None:
    scores = published["numenta"]
    started = time.perf_counter()
    _, total = optimize_threshold(scores, corpus, PROFILES["standard"])
    assert time.perf_counter() - started < 5
    # Optimising on the scored files can only beat any other threshold on them.
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
