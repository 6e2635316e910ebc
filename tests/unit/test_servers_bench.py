"""The real-server bench on a small synthetic layout: metrics, causality, constants, registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import aws_anomaly.cli.bench  # noqa: F401  (registers the bench commands)
from aws_anomaly.cli import main
from aws_anomaly.cli.app import app
from aws_anomaly.data import Dataset
from aws_anomaly.errors import DataError
from aws_anomaly.evaluation.baselines import (
    IForestBaseline,
    KnnBaseline,
    MaxZBaseline,
    PcaBaseline,
    StdScaler,
)
from aws_anomaly.evaluation.servers_bench import (
    DETECTORS,
    SCHEMA,
    DetectorSpec,
    ModelDetector,
    ServerData,
    best_f1,
    discover_servers,
    load_server,
    param_grid,
    register_detector,
    run_servers_bench,
    score_server,
    server_metrics,
)

BASELINES = ("knn", "pca", "iforest", "max_z")
T0 = pd.Timestamp("2020-01-06", tz="UTC")


def _frame(values: np.ndarray, start: pd.Timestamp, step: str, entity: str) -> pd.DataFrame:
    ts = pd.date_range(start, periods=len(values), freq=step, tz="UTC")
    df = pd.DataFrame(values, columns=[f"m{j:02d}" for j in range(values.shape[1])])
    df.insert(0, "entity", entity)
    df.insert(0, "timestamp", ts)
    return df


def make_server(folder: Path, *, seed: int, n_train: int = 1200, n_test: int = 400,
                step: str = "5min", constant: bool = True, spike: float = 6.0) -> np.ndarray:
    """Write one server: 4 correlated metrics (+ one constant in training that moves in test).

    Test anomalies: three segments where m00 jumps by ``spike`` standard deviations. Returns
    the test labels.
    """
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    t = np.arange(n)
    base = np.sin(2 * np.pi * t / 288)[:, None]
    vals = 0.5 + 0.1 * base + 0.02 * rng.normal(size=(n, 4))
    labels = np.zeros(n_test, dtype=np.int64)
    for a, b in ((60, 70), (200, 215), (330, 334)):
        labels[a:b] = 1
        vals[n_train + a:n_train + b, 0] += spike * 0.02 * 5
    if constant:
        col = np.zeros((n, 1))
        col[n_train + 250:n_train + 260] = 0.3  # constant in training, moves in test
        vals = np.hstack([vals, col])
    folder.mkdir(parents=True, exist_ok=True)
    start_test = T0 + n_train * pd.Timedelta(step)
    _frame(vals[:n_train], T0, step, folder.name).to_parquet(folder / "train.parquet")
    test = _frame(vals[n_train:], start_test, step, folder.name)
    test["is_anomaly"] = labels
    test.to_parquet(folder / "test.parquet")
    return labels


@pytest.fixture()
def layout(tmp_path: Path) -> Path:
    root = tmp_path / "servers"
    for i, name in enumerate(("s1", "s2", "s3")):
        make_server(root / "toy" / name, seed=i)
    return root


# ------------------------------------------------------------------------------ metrics
def test_server_metrics_on_a_hand_made_case() -> None:
    # 12 rows at 1 h (half a day). Events: rows 2-4 and 9. Flags: rows 3, 4 (inside event 1),
    # 6 (a false run) and 10-11 (a false run right after event 2).
    y = np.array([0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0])
    flags = np.array([0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1])
    scores = np.array([0, 1, 5, 6, 7, 0, 4, 0, 1, 5.5, 3, 3], dtype=float)
    m = server_metrics(y, scores, flags, pd.Timedelta("1h"))
    # points: tp = 2 (rows 3, 4), fp = 3 (6, 10, 11), fn = 2 (2, 9), tn = 5
    assert m["confusion_matrix"] == [[5, 3], [2, 2]]
    assert m["precision"] == pytest.approx(2 / 5)
    assert m["recall"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    assert m["fpr"] == pytest.approx(3 / 8)
    # events: 2 labelled, 1 hit; 3 flagged runs, 1 overlaps an event
    assert (m["n_events"], m["n_detected_events"]) == (2, 1)
    assert m["event_recall"] == 0.5
    assert m["n_flagged_runs"] == 3 and m["n_false_events"] == 2
    assert m["event_precision"] == pytest.approx(1 / 3)
    assert m["composite_f1"] == pytest.approx(2 * 0.4 * 0.5 / (0.4 + 0.5))
    assert m["flagged_runs_per_day"] == pytest.approx(3 / 0.5)
    assert m["flagged_share"] == pytest.approx(5 / 12)
    # best F1: flag scores >= 5 -> rows 2, 3, 4, 9: all four anomalies, nothing else
    assert m["best_f1"] == 1.0 and m["best_f1_threshold"] == 5.0


def test_best_f1_equals_brute_force_over_thresholds() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.1
    s = np.round(rng.normal(size=300) + 1.5 * y, 1)  # ties on purpose
    want = 0.0
    for t in np.unique(s):
        p = s >= t
        tp = int((p & y).sum())
        if tp:
            prec, rec = tp / p.sum(), tp / y.sum()
            want = max(want, 2 * prec * rec / (prec + rec))
    assert best_f1(y, s)["best_f1"] == pytest.approx(want)


def test_no_anomalies_gives_zeros_not_nan() -> None:
    m = server_metrics(np.zeros(10), np.arange(10.0), np.zeros(10), pd.Timedelta("1min"))
    assert m["best_f1"] == 0.0 and m["event_recall"] == 0.0 and m["composite_f1"] == 0.0


# ----------------------------------------------------------------------------- baselines
def test_std_floor_keeps_constant_metrics_finite_and_loud() -> None:
    X = np.column_stack([np.random.default_rng(0).normal(size=200), np.full(200, 3.0)])
    s = StdScaler().fit(X)
    assert np.isfinite(s.scale_).all() and s.scale_[1] > 0
    z = s.transform(np.array([[0.0, 3.5]]))
    assert np.isfinite(z).all() and abs(z[0, 1]) > 3  # a move off the constant scores high


@pytest.mark.parametrize("cls", [KnnBaseline, PcaBaseline, MaxZBaseline, IForestBaseline])
def test_baselines_finite_on_constant_metrics_and_flag_the_change(cls: type) -> None:
    rng = np.random.default_rng(1)
    train = np.column_stack([rng.normal(size=(600, 3)), np.zeros(600), np.full(600, 7.0)])
    test = np.column_stack([rng.normal(size=(50, 3)), np.zeros(50), np.full(50, 7.0)])
    test[10:15, 3] = 1.0  # a constant-in-training metric moves
    det = cls().fit(train)
    scores, flags = det.score(test)
    assert np.isfinite(scores).all()
    if cls is IForestBaseline:
        # A tree cannot split on a metric that never varied in training: Isolation Forest
        # is blind to it (documented in baselines.py), but must stay finite.
        assert not flags[10:15].any()
    else:
        assert flags[10:15].all()
        assert scores[10:15].min() > np.median(scores)
    # label-free threshold: about 1 % of the held-back 20 % of training rows is flagged
    _, held_flags = det.score(train[480:])
    assert held_flags.mean() <= 0.01 + 1e-12


def test_all_constant_training_does_not_break_pca() -> None:
    det = PcaBaseline().fit(np.ones((100, 3)))
    scores, flags = det.score(np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 1.0]]))
    assert np.isfinite(scores).all() and flags.tolist() == [False, True]


def test_knn_subsamples_deterministically() -> None:
    X = np.random.default_rng(2).normal(size=(3000, 4))
    a = KnnBaseline(k=1, max_fit_rows=500).fit(X)
    b = KnnBaseline(k=1, max_fit_rows=500).fit(X)
    assert a.nn_.n_samples_fit_ == 500
    q = np.random.default_rng(9).normal(size=(20, 4))
    assert np.array_equal(a.score(q)[0], b.score(q)[0])


# ------------------------------------------------------------------------------ causality
def _with_changed_tail(data: ServerData, k: int) -> ServerData:
    f = data.test.frame.copy()
    metrics = list(data.test.metrics)
    f.loc[k:, metrics] = f.loc[k:, metrics].to_numpy() * 3.0 + 1.0
    test = Dataset(frame=f, metrics=data.test.metrics, step=data.test.step)
    return ServerData(data.key, data.dataset, data.server, data.folder, data.train, test,
                      data.labels)


@pytest.mark.parametrize("name", [*BASELINES, "aws_model", "aws_default"])
def test_scores_of_first_rows_do_not_depend_on_later_rows(tmp_path: Path, name: str) -> None:
    make_server(tmp_path / "toy" / "s1", seed=0, constant=False)
    data = load_server("toy/s1", tmp_path / "toy" / "s1")
    spec = DETECTORS[name]
    full = score_server(spec.factory, spec.params, data, check_causality=True, name=name)
    assert full["causal"] is True
    k = 150
    changed = score_server(spec.factory, spec.params, _with_changed_tail(data, k),
                           check_causality=False, name=name)
    assert np.array_equal(full["scores"][:k], changed["scores"][:k])
    assert np.array_equal(full["flags"][:k], changed["flags"][:k])
    assert not np.array_equal(full["scores"][k:], changed["scores"][k:])
    # the first test rows are scored too (the training rows are their look-back)
    assert full["scores"][:5].max() > 0


class _PeekingDetector:
    """Scores each row against the mean of the whole test block: looks ahead."""

    def fit(self, train: Any) -> _PeekingDetector:
        return self

    def score(self, test: Dataset, history: Any = None) -> tuple[np.ndarray, np.ndarray]:
        X = test.frame[list(test.metrics)].to_numpy()
        s = np.abs(X - X.mean(axis=0)).sum(axis=1)
        return s, s > np.quantile(s, 0.99)


def test_look_ahead_is_recorded_as_failure(layout: Path) -> None:
    rep = run_servers_bench(layout, registry={"peek": _PeekingDetector}, workers=1,
                            progress=False)
    runs = rep["detectors"]["peek"]["servers"]
    assert all(r["status"] == "failed" and "look-ahead" in r["error"] for r in runs.values())


# ------------------------------------------------------------------------------- the bench
def test_bench_writes_json_and_markdown_with_consistent_means(layout: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "bench", "servers", "--data", str(layout), "--out", str(out), "--workers", "1",
        "--no-progress", *[a for d in BASELINES for a in ("--detector", d)]])
    assert result.exit_code == 0, result.output
    rep = json.loads((out / "scores.json").read_text())
    assert rep["schema"] == SCHEMA
    assert list(rep["servers"]) == ["toy/s1", "toy/s2", "toy/s3"]
    assert rep["servers"]["toy/s1"]["events"] == 3
    assert rep["servers"]["toy/s1"]["history_contiguous"] is True
    assert list(rep["detectors"]) == list(BASELINES)
    for name, d in rep["detectors"].items():
        rows = list(d["servers"].values())
        assert all(r["status"] == "ok" and r["causal"] is True for r in rows), name
        for key in ("precision", "recall", "f1", "fpr", "best_f1", "event_recall",
                    "event_precision", "composite_f1", "flagged_runs_per_day"):
            assert d["mean"][key] == pytest.approx(np.mean([r[key] for r in rows]))
            assert all(0.0 <= r[key] <= 1.0 for r in rows if key != "flagged_runs_per_day")
        for r in rows:  # the oracle threshold is at least as good as the detector's own
            assert r["best_f1"] >= r["f1"] - 1e-12
    # the spikes are large: every baseline finds the events
    assert rep["detectors"]["max_z"]["mean"]["event_recall"] == 1.0
    assert rep["detectors"]["knn"]["mean"]["best_f1"] > 0.8
    # LOSO for the grid detectors
    assert set(rep["detectors"]["knn"]["loso"]["servers"]) == set(rep["servers"])
    assert "loso" not in rep["detectors"]["max_z"]
    md = (out / "scores.md").read_text()
    assert md in result.output
    assert "## Means over servers" in md and "### toy/s2" in md
    assert "## Leave-one-server-out" in md


class _Column:
    """|z| of one metric column; the column is the tunable choice."""

    def __init__(self, col: int = 1) -> None:
        self.col = col

    def fit(self, train: Dataset) -> _Column:
        x = train.frame[train.metrics[self.col]].to_numpy()
        self.mu, self.sd = x.mean(), x.std()
        return self

    def score(self, test: Dataset, history: Any = None) -> tuple[np.ndarray, np.ndarray]:
        s = np.abs(test.frame[test.metrics[self.col]].to_numpy() - self.mu) / self.sd
        return s, s > 4


def test_loso_picks_the_parameter_that_wins_on_the_other_servers(layout: Path) -> None:
    reg = {"col": DetectorSpec(_Column, {"col": 1}, param_grid(col=(1, 0, 2)))}
    rep = run_servers_bench(layout, registry=reg, workers=1, progress=False)
    d = rep["detectors"]["col"]
    # anomalies live in m00: column 0 wins on the other servers every time
    assert {v["params"] for v in d["loso"]["servers"].values()} == {"col=0"}
    for key, v in d["loso"]["servers"].items():
        assert v["best_f1"] == d["grid_best_f1"]["col=0"][key]
    assert d["loso"]["mean"]["best_f1"] > d["mean"]["best_f1"]  # defaults (col=1) are worse


class _Spy:
    seen: ClassVar[list[tuple[str, ...]]] = []

    def fit(self, train: Dataset) -> _Spy:
        _Spy.seen.append(tuple(train.frame.columns))
        return self

    def score(self, test: Dataset, history: Dataset | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        _Spy.seen.append(tuple(test.frame.columns))
        assert history is not None and len(history) == 1200
        return np.zeros(len(test)), np.zeros(len(test), dtype=bool)


class _Broken:
    def fit(self, train: Any) -> _Broken:
        raise DataError("training data: metric 'm04' is constant")

    def score(self, test: Any, history: Any = None) -> tuple[np.ndarray, np.ndarray]:
        raise AssertionError("not reached")


def test_labels_never_reach_detectors_and_failures_are_recorded(layout: Path) -> None:
    _Spy.seen.clear()
    reg: dict[str, Any] = {"spy": _Spy, "max_z": DETECTORS["max_z"]}
    register_detector("broken", _Broken, registry=reg)
    rep = run_servers_bench(layout, registry=reg, workers=1, progress=False,
                            check_causality=False)
    assert _Spy.seen and all("is_anomaly" not in cols for cols in _Spy.seen)
    broken = rep["detectors"]["broken"]
    assert broken["mean"]["servers"] == 0
    assert broken["failed"]["toy/s1"] == "DataError: training data: metric 'm04' is constant"
    assert rep["detectors"]["max_z"]["mean"]["servers"] == 3  # the bench carried on
    assert "## Failures" in _render(rep)


def _render(rep: dict) -> str:
    from aws_anomaly.evaluation.servers_bench import render_markdown

    return render_markdown(rep)


@pytest.mark.parametrize("name", ["aws_model", "aws_default"])
def test_product_model_runs_or_fails_with_its_message(layout: Path, name: str) -> None:
    # The toy servers hold a metric that is constant in training: the product either scores
    # it (finite scores) or refuses with its own message; the bench must not crash either way.
    rep = run_servers_bench(layout, detectors=[name], servers=["s1"], workers=1,
                            progress=False)
    r = rep["detectors"][name]["servers"]["toy/s1"]
    if r["status"] == "ok":
        assert np.isfinite(r["best_f1"]) and r["causal"] is True
    else:
        assert "constant" in r["error"] and "m04" in r["error"]


def test_model_detector_names_an_unknown_builder(layout: Path) -> None:
    reg = {"x": DetectorSpec(ModelDetector, {"builder": "no_such_builder"})}
    rep = run_servers_bench(layout, registry=reg, servers=["s1"], workers=1, progress=False)
    err = rep["detectors"]["x"]["servers"]["toy/s1"]["error"]
    assert err == "ConfigError: aws_anomaly.model has no model builder 'no_such_builder'"


def test_workers_run_the_same_numbers(layout: Path) -> None:
    one = run_servers_bench(layout, detectors=["pca", "max_z"], workers=1, progress=False)
    two = run_servers_bench(layout, detectors=["pca", "max_z"], workers=2, progress=False)
    for name in ("pca", "max_z"):
        for key in one["servers"]:
            a, b = one["detectors"][name]["servers"][key], two["detectors"][name]["servers"][key]
            assert a["best_f1"] == b["best_f1"] and a["confusion_matrix"] == b["confusion_matrix"]


# -------------------------------------------------------------------------------- errors
def test_layout_errors_name_the_folder_and_file(layout: Path) -> None:
    (layout / "toy" / "s2" / "test.parquet").unlink()
    with pytest.raises(DataError, match=r"s2.*test\.parquet is missing"):
        discover_servers(layout)
    assert [k for k, _ in discover_servers(layout, ["s1"])] == ["toy/s1"]
    with pytest.raises(DataError, match="no server matches"):
        discover_servers(layout, ["nothing*"])


def test_missing_labels_and_metric_mismatch(layout: Path) -> None:
    folder = layout / "toy" / "s1"
    test = pd.read_parquet(folder / "test.parquet")
    test.drop(columns="is_anomaly").to_parquet(folder / "test.parquet")
    with pytest.raises(DataError, match=r"s1/test\.parquet: no 'is_anomaly'"):
        load_server("toy/s1", folder)
    test.drop(columns="m01").to_parquet(folder / "test.parquet")
    with pytest.raises(DataError, match=r"s1/test\.parquet: metric columns"):
        load_server("toy/s1", folder)
    (folder / "train.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"s1/train\.parquet: cannot read parquet"):
        load_server("toy/s1", folder)


def test_cli_prints_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "servers", "--data", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert "nowhere" in err[0]
    code = main(["bench", "servers", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--detector", "nope", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [err[0]] and "unknown detector(s) ['nope']" in err[0]
