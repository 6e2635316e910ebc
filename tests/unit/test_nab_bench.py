"""Harness pieces: event metrics, leave-files-out and leave-one-category-out CV, causality guard,
peers, progress, demo table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyod.models.ecod import ECOD

from aws_anomaly.errors import ConfigError, DataError
from aws_anomaly.evaluation.nab import (
    PROFILES,
    NabFile,
    normalized_score,
    optimize_threshold,
    score_file,
)
from aws_anomaly.evaluation.nab_bench import (
    AnomalyModel,
    LookAheadError,
    check_causality,
    cross_validate,
    event_metrics,
    leave_category_out,
    run_demo_bench,
    run_detectors,
    run_nab_bench,
    select_files,
)
from aws_anomaly.evaluation.peers import (
    HalfSpaceTreesPeer,
    PyodPeer,
    ecod_scores,
    embed,
    tail_score,
)


def _file(key: str, n: int = 200, windows=((100, 119),), seed: int = 0) -> NabFile:
    ts = (np.datetime64("2020-01-01") + np.arange(n) * np.timedelta64(5, "m")).astype(
        "datetime64[ns]")
    values = np.random.default_rng(seed).normal(size=n)
    return NabFile(key, ts, values, windows=windows)


def test_event_metrics_counts_windows_and_merged_false_runs() -> None:
    f = _file("c/a.csv", windows=((100, 119), (150, 159)))
    s = np.zeros(200)
    s[[5, 6]] = 1.0          # probationary (first 30 records): ignored
    s[[60, 61, 62]] = 1.0    # one false event (a run)
    s[80] = 1.0              # a second false event
    s[105] = 1.0             # first window detected
    s[[119, 120]] = 1.0      # 119 in window, 120 just after: a third false event
    ev = event_metrics({"c/a.csv": s}, {"c/a.csv": f}, 0.5)
    assert (ev["tp"], ev["fp"], ev["fn"]) == (1, 3, 1)
    assert ev["precision"] == pytest.approx(0.25)
    assert ev["recall"] == pytest.approx(0.5)
    assert ev["f1"] == pytest.approx(2 * 0.25 * 0.5 / 0.75)


def test_cross_validation_holds_each_file_out_once() -> None:
    corpus = {f"c/{i}.csv": _file(f"c/{i}.csv", seed=i) for i in range(4)}
    rng = np.random.default_rng(1)
    scores = {k: np.round(rng.random(200), 2) for k in corpus}
    cv = cross_validate(scores, corpus, folds=2)
    held = [k for part in cv["fold_files"] for k in part]
    assert sorted(held) == sorted(corpus)
    prof = PROFILES["standard"]
    raw = 0.0
    for part, thr in zip(cv["fold_files"], cv["thresholds"]["standard"], strict=True):
        train = {k: s for k, s in scores.items() if k not in part}
        # The fold's threshold comes from the other files only.
        assert thr == optimize_threshold(train, corpus, prof)[0]
        raw += sum(score_file(scores[k], corpus[k], thr, prof).score for k in part)
    assert cv["overall"]["standard"] == pytest.approx(100 * (raw + 4) / 8)
    with pytest.raises(ConfigError, match="folds must be in"):
        cross_validate(scores, corpus, folds=5)


def test_leave_one_category_out_thresholds_come_from_the_other_categories() -> None:
    # Three categories; "q" has no window at all (every detection there costs).
    corpus = {
        **{f"a/{i}.csv": _file(f"a/{i}.csv", seed=i) for i in range(2)},
        **{f"b/{i}.csv": _file(f"b/{i}.csv", seed=10 + i, windows=((60, 79), (150, 169)))
           for i in range(2)},
        "q/0.csv": _file("q/0.csv", seed=20, windows=()),
    }
    rng = np.random.default_rng(4)
    scores = {k: np.round(rng.random(200) ** 3, 2) for k in corpus}
    for k, f in corpus.items():
        for lo, _ in f.windows:
            scores[k][lo + 2] = 0.9 + 0.05 * (k[0] == "a")  # a's hits score higher than b's
    lo = leave_category_out(scores, corpus)
    assert lo["categories_held_out"] == ["a", "b", "q"]
    total = {p: 0.0 for p in PROFILES}
    for cat in ("a", "b", "q"):
        test = [k for k in corpus if k.startswith(cat + "/")]
        train = {k: s for k, s in scores.items() if not k.startswith(cat + "/")}
        for pname, prof in PROFILES.items():
            thr = optimize_threshold(train, corpus, prof)[0]
            assert lo["thresholds"][pname][cat] == thr
            raw = sum(score_file(scores[k], corpus[k], thr, prof).score for k in test)
            assert lo["raw"][pname][cat] == pytest.approx(raw)
            n_win = sum(corpus[k].n_windows for k in test)
            want = normalized_score(raw, n_win, prof) if n_win else None
            assert lo["categories"][pname][cat] == pytest.approx(want)
            total[pname] += raw
    # The held-out category never sees its own scores: a's threshold (from b and q) differs
    # from the one optimised on a itself.
    own = optimize_threshold({k: scores[k] for k in corpus if k[0] == "a"}, corpus,
                             PROFILES["standard"])[0]
    assert lo["thresholds"]["standard"]["a"] != own
    n_all = sum(f.n_windows for f in corpus.values())
    for pname, prof in PROFILES.items():
        assert lo["overall_raw"][pname] == pytest.approx(total[pname])
        assert lo["overall"][pname] == pytest.approx(normalized_score(total[pname], n_all, prof))
    assert lo["categories"]["standard"]["q"] is None and lo["raw"]["standard"]["q"] <= 0
    ev = lo["events"]
    assert ev["tp"] + ev["fn"] == n_all
    assert ev["fp"] == sum(e["fp"] for e in lo["events_by_category"].values())
    with pytest.raises(ConfigError, match="at least 2 categories"):
        leave_category_out({k: s for k, s in scores.items() if k[0] == "a"}, corpus)


class _Causal:
    def run(self, timestamps, values, probationary):
        return np.clip(np.abs(values - np.cumsum(values) / np.arange(1, len(values) + 1)) / 5,
                       0, 1)


class _Peeker:
    def run(self, timestamps, values, probationary):
        return np.clip(np.abs(values - values.mean()) / 5, 0, 1)


def test_causality_guard() -> None:
    f = _file("c/a.csv")
    assert check_causality("ok", _Causal, f) == f.probationary + (f.n - f.probationary) // 2
    with pytest.raises(LookAheadError, match="'bad' looks ahead"):
        check_causality("bad", _Peeker, f)


def test_peers_are_causal_and_in_range() -> None:
    f = _file("c/a.csv", n=500)
    for det in (PyodPeer("ecod", refit_every=150), PyodPeer("iforest", refit_every=250),
                HalfSpaceTreesPeer(window_size=100)):
        full = det.run(f.timestamps, f.values, f.probationary)
        assert ((full >= 0) & (full <= 1)).all()
        # Cuts inside and at the edge of a refit segment.
        for cut in (300, 325):
            check_causality(type(det).__name__, lambda det=det: det, f, full=full, cut=cut)


def test_ecod_scores_equal_pyod_one_row_at_a_time() -> None:
    rng = np.random.default_rng(0)
    train = rng.gamma(2.0, size=(300, 3))
    rows = rng.gamma(2.0, size=(10, 3)) * 1.5
    model = ECOD().fit(train)
    expected = [model.decision_function(rows[i : i + 1])[0] for i in range(10)]
    assert ecod_scores(train, rows) == pytest.approx(expected, rel=1e-9)


def test_embedding_and_tail_score() -> None:
    v = np.array([1.0, 3.0, 2.0, 10.0])
    e = embed(v, probationary=3, lags=2)
    # Row t depends on values up to t only.
    assert np.array_equal(embed(v[:3], probationary=3, lags=2), e[:3])
    s = tail_score(np.array([-1.0, 1.0, 2.0, 3.0, 100.0]), np.array([0.0, 1.0, 2.0]))
    assert np.all(np.diff(s) >= 0) and s[0] == 0 and 0.5 < s[-1] <= 1


def test_select_files() -> None:
    corpus = {"a/x_1.csv": _file("a/x_1.csv"), "b/y.csv": _file("b/y.csv")}
    assert list(select_files(corpus, ["x_*"])) == ["a/x_1.csv"]
    assert list(select_files(corpus, ["b/*"])) == ["b/y.csv"]
    with pytest.raises(DataError, match="no file matches"):
        select_files(corpus, ["zzz"])


def test_bad_detector_output_is_rejected(tmp_path: Path) -> None:
    class Loud:
        def run(self, timestamps, values, probationary):
            return values * 10

    f = _file("c/a.csv")
    with pytest.raises(DataError, match=r"in \[0, 1\]"):
        run_detectors({"loud": ("ours", Loud)}, {f.key: f}, workers=1, progress=False)


def test_demo_bench_event_table(tmp_path: Path) -> None:
    detectors = ["aws_context", "pyod_ecod"]
    if AnomalyModel is not None:
        detectors.append("aws_model")
    rep = run_demo_bench(tmp_path, clusters=2, days=4, train_days=1.5, detectors=detectors,
                         workers=1, progress=False)
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert set(saved["detectors"]) == set(detectors)
    assert saved["n_files"] == 2 and all(k.startswith("demo/") for k in saved["files"])
    assert all(f["probationary"] == 432 for f in saved["files"].values())
    for e in rep["detectors"].values():
        ev = e["events"]
        assert ev["tp"] + ev["fn"] == rep["n_windows"] > 0
        assert 0 <= ev["f1"] <= 1
    assert "| aws_context |" in (tmp_path / "scores.md").read_text()


def _write_nab_layout(root: Path) -> None:
    """Two categories the harness has never seen; one holds no anomaly at all."""
    rng = np.random.default_rng(3)
    ts = np.datetime64("2021-05-01T00:00") + np.arange(600) * np.timedelta64(5, "m")
    stamps = [str(t).replace("T", " ") + ":00" for t in ts.astype("datetime64[m]")]
    windows = {}
    for cat, name, spike in (("synthSpikes", "a.csv", 450), ("synthSpikes", "b.csv", None),
                             ("synthQuiet", "q.csv", None)):
        v = 10 + rng.normal(size=600)
        if spike is not None:
            v[spike : spike + 5] += 40
        (root / "data" / cat).mkdir(parents=True, exist_ok=True)
        lines = ["timestamp,value", *(f"{s},{x:.4f}" for s, x in zip(stamps, v, strict=True))]
        (root / "data" / cat / name).write_text("\n".join(lines) + "\n")
        windows[f"{cat}/{name}"] = (
            [[f"{stamps[spike - 20]}.000000", f"{stamps[spike + 20]}.000000"]] if spike else [])
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows, indent=4))


def test_bench_on_unseen_categories(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "nab"
    _write_nab_layout(root)
    rep = run_nab_bench(root, tmp_path / "out", detectors=["aws_context"], folds=3, workers=1,
                        progress=True)
    # Progress (stderr is not a terminal here): one line per detector x file, then a summary.
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "nab bench: 3 runs (detector x file)"
    assert [ln.split(" (")[0] for ln in err[1:4]] == [
        "nab bench [1/3] aws_context synthQuiet/q.csv", "nab bench [2/3] aws_context "
        "synthSpikes/a.csv", "nab bench [3/3] aws_context synthSpikes/b.csv"]
    assert err[4].startswith("nab bench: 3/3 runs in ")
    saved = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert saved["categories"] == {"synthQuiet": {"files": 1, "windows": 0},
                                   "synthSpikes": {"files": 2, "windows": 1}}
    e = saved["detectors"]["aws_context"]
    # A category without windows has no normalised score; optimising never does worse than
    # detecting nothing (0); the spike is the top-scoring record of its file.
    assert e["optimized"]["categories"]["standard"]["synthQuiet"] is None
    assert e["optimized"]["overall"]["standard"] >= 0
    # Leave one category out: the quiet category is scored at the spikes' threshold and the
    # spikes at the quiet one's (with no window there, "detect nothing": 1.1).
    lo = e["loco"]
    assert lo["thresholds"]["standard"]["synthSpikes"] == 1.1
    assert lo["categories"]["standard"]["synthSpikes"] == 0.0
    assert lo["categories"]["standard"]["synthQuiet"] is None
    assert lo["raw"]["standard"]["synthSpikes"] == -1.0  # its one window missed
    # Overall: both categories' raw scores, normalised over the one window (null -1, best 1).
    raw = lo["raw"]["standard"]["synthQuiet"] + lo["raw"]["standard"]["synthSpikes"]
    assert lo["overall"]["standard"] == pytest.approx(100 * (raw + 1) / 2)
    md = (tmp_path / "out" / "scores.md").read_text()
    assert "## Leave one category out" in md and "| std LOCO |" in md
    assert f"| aws_context | ours | raw {lo['raw']['standard']['synthQuiet']:.2f} | 0.0 |" in md
    out_a = pd.read_csv(tmp_path / "out" / "results" / "aws_context" / "synthSpikes" /
                        "aws_context_a.csv")
    assert int(out_a["anomaly_score"].iloc[90:].idxmax()) == 450
    assert out_a["label"].sum() == 41
    assert rep["causality"]["aws_context"]["file"] == "synthSpikes/a.csv"
    for key in ("synthSpikes/a.csv", "synthSpikes/b.csv", "synthQuiet/q.csv"):
        cat, name = key.split("/")
        assert (tmp_path / "out" / "results" / "aws_context" / cat / f"aws_context_{name}").exists()
