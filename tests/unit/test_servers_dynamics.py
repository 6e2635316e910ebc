"""benchmarks/servers_dynamics.py: the dynamics and One-Class SVM members are what docs/model.md
says they are.

Its figures (docs/model.md, "Measured 2026-12-02 (H9)") mix a lagged-forecast residual (F)
and the One-Class SVM's score (O) with the default model's two views; they mean something
only if F is causal and sees a broken relation between metrics, the scaling is what the
docstrings say, and the demo harness scores the default exactly as the model flags it.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.benchkit import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("servers_dynamics.py", "servers_dynamics")


def _coupled(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two metrics: ``a`` an AR(1), ``b`` follows ``a`` one step later."""
    a = np.zeros(n)
    for t in range(1, n):
        a[t] = 0.9 * a[t - 1] + rng.normal(0, 1.0)
    b = np.r_[0.0, 2.0 * a[:-1]] + rng.normal(0, 0.3, n)
    return np.stack([a, b], axis=1)


def test_the_forecast_learns_the_dynamics_and_its_residual_is_unit_scaled(bench) -> None:
    rng = np.random.default_rng(0)
    values = _coupled(6000, rng)
    fc = bench.Forecast([(values, 5, 4000)], lags=2, penalty=1e-4)
    # b's one-step-ahead forecast: 2 x a one step earlier (in standardised units)
    coef_b_on_a1 = fc.coef[0, 1] * fc.sd[1] / fc.sd[0]
    assert coef_b_on_a1 == pytest.approx(2.0 * 1.0, rel=0.05)
    r = fc.residuals(values)[4000:]
    assert np.sqrt(np.mean(r ** 2, axis=0)) == pytest.approx([1.0, 1.0], rel=0.1)


def test_a_broken_relation_scores_high_where_each_metric_stays_in_range(bench) -> None:
    rng = np.random.default_rng(1)
    values = _coupled(6000, rng)
    broken = values.copy()
    broken[5000:5100, 1] = -broken[5000:5100, 1]   # b now moves against a, within b's range
    assert np.abs(broken[5000:5100, 1]).max() <= np.abs(values[:4000, 1]).max()
    fc = bench.Forecast([(values, 5, 4000)], lags=2)
    f_ok = bench.combine(fc.residuals(values), "rms")
    f_broken = bench.combine(fc.residuals(broken), "rms")
    assert np.median(f_broken[5010:5100]) > 3.0 * np.median(f_ok[5010:5100])
    np.testing.assert_array_equal(f_broken[:5000], f_ok[:5000])


def _dump(values: np.ndarray, n_fit: int, n_train: int, warm: int) -> dict:
    return {"values": values, "n_train": np.int64(n_train), "xv": np.zeros((n_train - n_fit, 1)),
            "ref": np.zeros((n_fit - warm, 1)), "constant": np.asarray([], dtype=np.int64),
            "step_s": np.float64(60.0)}


def test_the_member_is_causal_and_fit_on_the_fit_rows_only(bench) -> None:
    rng = np.random.default_rng(2)
    values = _coupled(3000, rng)
    d = _dump(values, 1700, 2000, 100)
    hold, test = bench.forecast_member(d, "5min", "rms", "15min")
    assert (len(hold), len(test)) == (300, 1000)
    later = values.copy()
    later[2500:] += 50.0                           # a test row changes nothing before it
    d2 = _dump(later, 1700, 2000, 100)
    hold2, test2 = bench.forecast_member(d2, "5min", "rms", "15min")
    np.testing.assert_array_equal(hold2, hold)
    np.testing.assert_array_equal(test2[:500], test[:500])
    assert test2[500] > test[500]
    # the holdout and the test are not fit on: moving them does not move the forecast
    moved = values.copy()
    moved[1700:] *= 3.0
    cache: dict = {}
    bench.forecast_member(_dump(moved, 1700, 2000, 100), "5min", "rms", None, cache=cache)
    ref: dict = {}
    bench.forecast_member(d, "5min", "rms", None, cache=ref)
    key = ("5min", bench.RIDGE, False)
    np.testing.assert_array_equal(cache[key].coef, ref[key].coef)
    # only the excess over the fit rows' quantile: 0 on most fit-like rows
    hold_t, _ = bench.forecast_member(d, "5min", "rms", "15min", tail=0.99)
    assert np.mean(hold_t == 0.0) > 0.9


def test_smoothing_and_scaling(bench) -> None:
    x = np.array([3.0, 4.0, 0.0, 0.0])
    np.testing.assert_allclose(bench.smooth_rms(x, 2), [3.0, 5.0 / np.sqrt(2), 2.0 * np.sqrt(2),
                                                         0.0])
    assert bench.rows_of("15min", 60.0) == 15 and bench.rows_of("15min", 300.0) == 3
    assert bench.rows_of("5min", 600.0) == 1
    rng = np.random.default_rng(3)
    o = (rng.exponential(size=500) * 7.0 + 2.0, rng.exponential(size=50))
    to = rng.normal(1.0, 0.2, size=500)
    h, _ = bench.matched(o, to)
    assert np.median(h) == pytest.approx(np.median(to))
    assert np.quantile(h, 0.99) - np.median(h) == pytest.approx(
        np.quantile(to, 0.99) - np.median(to))
    r = np.array([[3.0, -4.0, 0.0, 1.0]])
    assert bench.combine(r, "top2")[0] == pytest.approx(3.5)
    assert bench.combine(r, "rms")[0] == pytest.approx(np.sqrt(26.0 / 4))


def test_the_demo_harness_scores_the_default_as_the_model_flags_it(bench) -> None:
    from aws_anomaly.data import generate_demo
    from aws_anomaly.evaluation.split import chronological_split, concat
    from aws_anomaly.presets import default_model

    m, cal, y = bench.demo_members(7, days=8)
    variants = bench.build_variants(ocsvm=True)
    hold, test = variants["(L + S) / 2: the default"](m)
    np.testing.assert_allclose(test, cal["rawt"], rtol=1e-9, atol=1e-12)
    ds, _ = generate_demo(seed=7, days=8)
    sp = chronological_split(ds)
    hist = concat([sp.train, sp.validation])
    out = default_model(ds.step).fit(hist).score(sp.test, history=hist, explain="none")
    flags = out["is_anomaly"].to_numpy()
    tp = float((flags & y).sum())
    own = 0.0 if tp == 0 else 2 * tp / (flags.sum() + y.sum())
    assert bench.demo_f1(cal, hold, test, y)[1] == pytest.approx(own)
    # every member the demo table mixes is there, one score a row
    for name in bench.DEMO_VARIANTS:
        h, t = variants[name](m)
        assert (len(h), len(t)) == (len(hold), len(test)), name
        assert np.isfinite(h).all() and np.isfinite(t).all(), name


def test_the_nowcast_leaves_a_common_move_and_sees_one_metric_leave_it(bench) -> None:
    rng = np.random.default_rng(4)
    n = 6000
    common = np.zeros(n)                                    # every metric moves with it
    for t in range(1, n):
        common[t] = 0.9 * common[t - 1] + rng.normal(0, 1.0)
    values = common[:, None] * np.array([1.0, 0.5, 2.0]) + rng.normal(0, 0.2, (n, 3))
    jump = values.copy()
    jump[5000:, :] += np.array([1.0, 0.5, 2.0]) * 8.0      # all three jump together
    alone = values.copy()
    alone[5000:, 2] += 16.0                                 # only the third one jumps
    for others, common_ok in ((True, True), (False, False)):
        fc = bench.Forecast([(values, 5, 4000)], lags=1, others=others)
        at = slice(5000, 5001)
        r_jump = bench.combine(fc.residuals(jump)[at], "rms")[0]
        r_alone = bench.combine(fc.residuals(alone)[at], "rms")[0]
        assert r_alone > 3.0, others
        # the lagged forecast flags both; the nowcast only the metric that left the others
        assert bool(r_jump < 0.25 * r_alone) is common_ok, (others, r_jump, r_alone)
    fc = bench.Forecast([(values, 5, 4000)], lags=1, others=True)
    own = [fc.lags * 3 + j for j in range(3)]
    assert all(fc.coef[c, j] == 0.0 for j, c in enumerate(own))


def test_kind_recall_is_the_share_above_the_normal_quantile(bench) -> None:
    test = np.r_[np.arange(100.0), 200.0, 200.0, 50.0, 0.0]
    y = np.r_[np.zeros(100, dtype=bool), True, True, True, True]
    kinds = np.array([""] * 100 + ["spike", "spike", "flatline", "flatline"])
    got = bench.kind_recall(test, y, kinds, fpr=0.01)
    assert got == {"flatline": 0.0, "spike": 1.0}
