"""benchmarks/demo_ceiling.py: the demo row's ceiling and the designs are measured right.

Its figures (docs/model.md, "Measured 2026-12-02 (H15)") mean something only if the ceiling
arithmetic flags exactly one kind's points, the drift count follows the injector's ramp, the
features appended for the trees are causal, the event weights give every event the same
weight, and the study's supervised path gives the numbers ``AnomalyModel`` gives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data.anomalies import drift
from aws_anomaly.data.generator import generate_demo
from aws_anomaly.evaluation.split import chronological_split, concat
from aws_anomaly.features.band import BandSpec, fit_band
from aws_anomaly.model import AnomalyModel
from aws_anomaly.tuning import seeded_params
from tests.unit.benchkit import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("demo_ceiling.py", "demo_ceiling")


def _frame(labels: list[int], kinds: list[str], entity: str = "a") -> pd.DataFrame:
    return pd.DataFrame({"entity": entity, "timestamp": pd.date_range(
        "2026-01-01", periods=len(labels), freq="5min", tz="UTC"), "is_anomaly": labels,
        "anomaly_type": kinds})


def test_the_ceiling_flags_one_kind_at_a_time_and_leaves_the_other_flags(bench):
    f = pd.concat([_frame([0, 1, 1, 1, 0, 1, 0, 0], ["", "drift", "drift", "drift", "", "dip",
                                                     "", ""]),
                   _frame([1, 1, 0, 0, 0, 0, 1, 0], ["level_shift", "level_shift", "", "", "",
                                                     "", "dip", ""], "b")],
                  ignore_index=True)
    # flags: one drift point, one false positive, the first level-shift point
    flags = np.zeros(16, bool)
    flags[[3, 7, 8]] = True
    rows = {r["kind"]: r for r in bench.kind_ceiling(f, flags)}
    assert rows[""]["points"] == 7 and rows[""]["events"] == 4
    assert rows[""]["f1"] == pytest.approx(2 * (2 / 3) * (2 / 7) / (2 / 3 + 2 / 7))
    assert rows[""]["event_recall"] == pytest.approx(0.5)
    # drift found in full: tp 4 (3 drift + 1 level shift), fp 1, fn 3
    assert rows["drift"]["points"] == 3 and rows["drift"]["events"] == 1
    assert rows["drift"]["recall"] == pytest.approx(1 / 3)
    assert rows["drift"]["f1"] == pytest.approx(2 * 0.8 * (4 / 7) / (0.8 + 4 / 7))
    assert rows["drift"]["event_recall"] == pytest.approx(0.5)  # it was already found
    # the dips (two events on two entities) found: event recall 4 / 4
    assert rows["dip"]["events"] == 2 and rows["dip"]["event_recall"] == pytest.approx(1.0)
    assert rows["dip"]["share"] == pytest.approx(2 / 7)
    assert sum(r["points"] for k, r in rows.items() if k) == rows[""]["points"]


@pytest.mark.parametrize(("magnitude", "length", "noise"), [(0.09, 36, 0.01), (-0.2, 72, 0.02),
                                                             (0.05, 24, 0.006)])
def test_the_drift_count_is_the_injectors_ramp(bench, magnitude, length, noise):
    x = np.zeros((length + 2, 1))
    drift(x, slice(1, length + 1), [0], magnitude)
    delta = np.abs(x[1:length + 1, 0])
    for k in (1.0, 2.0):
        assert bench.ramp_within_noise(magnitude, length, noise, k) == int(
            np.sum(delta < k * noise - 1e-12))
    # a drift is at least 8 noise sigmas at its end: its first 1/8 are within one sigma
    assert bench.ramp_within_noise(8 * noise, length, noise, 1.0) == len(
        [j for j in range(1, length + 1) if j / length < 1 / 8 - 1e-12])


def _daily(seed: int, n: int) -> np.ndarray:
    """Two 5-minute metrics: a daily cycle with noise, and a noisy level."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.column_stack([0.5 + 0.1 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 0.01, n),
                            0.3 + rng.normal(0, 0.02, n)])


def _assert_causal(features, values, cuts, tol, at, column):
    """``features`` of every prefix are the full run's first rows (to ``tol``), and a shift of
    0.2 in ``column`` from row ``at`` leaves the rows before it exactly as they were. Returns
    the full run's features and the shifted run's."""
    full = features(values)
    assert np.isfinite(full).all()
    for cut in cuts:
        np.testing.assert_allclose(features(values[:cut]), full[:cut], rtol=tol, atol=tol)
    later = values.copy()
    later[at:, column] += 0.2
    moved = features(later)
    np.testing.assert_array_equal(moved[:at], full[:at])
    return full, moved


@pytest.mark.parametrize("kind", ["ewm", "cusum", "both"])
def test_the_appended_features_are_causal(bench, kind):
    n = 3 * 288 + 40
    full, moved = _assert_causal(lambda v: bench.extra_features(v, kind), _daily(3, n),
                                 (1, 2, 288, 289, 300, 600, n - 1), 1e-12, 701, 0)
    assert full.shape == (n, {"ewm": 4, "cusum": 4, "both": 8}[kind])
    assert np.abs(moved[701:] - full[701:]).max() > 1.0  # and it moves the rows after it


def test_the_band_columns_are_causal_given_a_band_fit_on_earlier_rows(bench):
    n = 4 * 288
    values = _daily(4, n)
    band = fit_band([values[:2 * 288]], BandSpec.for_step("5min"))
    full, moved = _assert_causal(lambda v: bench.band_features(v, band), values,
                                 (40, 300, 2 * 288 + 7, n - 1), 1e-9, 1000, 1)
    assert full.shape == (n, 10)
    # a shift of 10 noise sigmas at row 1000 is seen at once by the deviation column
    assert moved[1000, 1] > 5.0


def test_a_lasting_shift_grows_the_cusum_and_the_ewm(bench):
    rng = np.random.default_rng(0)
    n = 4 * 288
    values = (0.5 + rng.normal(0, 0.01, n))[:, None]
    values[3 * 288:3 * 288 + 48, 0] += 0.05  # 4 h, 5 noise sigmas
    f = bench.extra_features(values, "both")  # ewm 6 h, ewm 12 h, cusum up, cusum down
    before, during = slice(3 * 288 - 48, 3 * 288), slice(3 * 288 + 24, 3 * 288 + 48)
    assert f[during, 0].mean() > 3 * np.abs(f[before, 0]).max()
    assert f[during, 2].min() > 5 * max(f[before, 2].max(), 1.0)
    assert f[during, 3].max() == 0.0


def test_event_weights_weigh_every_event_the_same(bench):
    pos = np.array([10, 11, 12, 13, 40, 41, 7, 8])
    ent = np.array(["a"] * 6 + ["b"] * 2)
    w = bench.event_weights(pos, ent)
    assert w.sum() == pytest.approx(len(pos))
    # three events: [10..13] and [40, 41] of a, [7, 8] of b
    assert w[:4].sum() == pytest.approx(w[4:6].sum()) == pytest.approx(w[6:].sum())
    assert len(set(np.round(w[:4], 12))) == 1


def test_choose_takes_the_best_objective_and_skips_failed_candidates(bench):
    table = [{"candidate": "ocsvm", "objective": 0.45, "error": None},
             {"candidate": "lof", "objective": 0.9, "error": "too few rows"},
             {"candidate": "supervised", "objective": 0.99, "error": None}]
    folds = [{"f1": v} for v in (0.5, 0.5, 0.5)] + [{"f1": 0.0}]
    assert bench.choose(folds, table) == ("supervised", pytest.approx(0.5))
    folds = [{"f1": v} for v in (0.2, 0.6, 0.6)] + [{"f1": 1.0}]  # 0.467 - 0.5 x 0.189
    assert bench.choose(folds, table) == ("ocsvm", 0.45)


def test_the_study_path_gives_the_models_own_supervised_scores(bench):
    """The shipped design through the study's rows = AnomalyModel('supervised') fit and
    scored as train does: the same flags on the test part."""
    ds, _ = generate_demo(clusters=2, days=6, seed=5)
    split = chronological_split(ds, (0.6, 0.2, 0.2))
    part = bench.Part("test", split.train, split.validation, split.test,
                      concat([split.train, split.validation]), None)
    rows = bench.supervised_rows(ds, part)
    mine = bench.fit_supervised(rows)
    model = AnomalyModel("supervised", seeded_params({}, "supervised", 0), calibration="auto")
    model.fit(split.train, split.validation)
    theirs = model.score(split.test, history=part.history, explain="none")
    np.testing.assert_allclose(mine.cal_e, theirs["anomaly_score"].to_numpy(), rtol=1e-9,
                               atol=1e-9)
    np.testing.assert_array_equal(mine.flags, theirs["is_anomaly"].to_numpy())
    # the appended columns reach the trees: with them the scores change
    extra = bench.extra_matrix(ds, "ewm")
    assert extra.shape == (len(ds), 6)
    assert not np.allclose(bench.fit_supervised(rows, extra=extra).cal_e, mine.cal_e)


def test_default_feature_rows_are_the_label_free_defaults_columns(bench):
    """``features="default"`` builds the supervised rows on ``default_model``'s features:
    the same columns and views as the default fit on the same rows, and the same scaled
    evaluation rows it scores."""
    from aws_anomaly.presets import default_model

    ds, _ = generate_demo(clusters=2, days=6, seed=5)
    split = chronological_split(ds, (0.6, 0.2, 0.2))
    part = bench.Part("test", split.train, split.validation, split.test,
                      concat([split.train, split.validation]), None)
    rows = bench.supervised_rows(ds, part, features="default")
    per = int(split.train.frame.groupby("entity").size().min())
    default = default_model(ds.step, history=ds.step * per).fit(split.train, split.validation)
    assert rows.model.feature_set == "hybrid" and rows.model.views_ is not None
    np.testing.assert_array_equal(rows.model.columns_, default.columns_)
    assert [list(v) for v in rows.model.views_] == [list(v) for v in default.views_]
    want, ready, _ = default._features(split.test, part.history, "evaluation data")
    np.testing.assert_array_equal(rows.ready_e, ready)
    np.testing.assert_allclose(rows.Xe[ready], want[ready], rtol=1e-12, atol=1e-12)
    shipped = bench.supervised_rows(ds, part)
    assert shipped.Xe.shape[1] != rows.Xe.shape[1]
