"""benchmarks/servers_injected.py: the member trained on injected anomalies is what
docs/model.md says it is.

Its figures (docs/model.md, "Measured 2026-12-02 (H14): a member trained on injected
anomalies") mean something only if the injection changes a copy of the fit part alone (never
the real rows the member is scored on, nor the model's reference), the member learns to rank
injected-like rows above normal ones, and the mixes put it on the default's scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.unit.benchkit import default_with_holdout, load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("servers_injected.py", "servers_injected")


@pytest.fixture(scope="module")
def fitted():
    return default_with_holdout()


def test_the_injected_copy_never_touches_the_real_rows_the_member_is_scored_on(bench, fitted):
    model, fit_part, holdout = fitted
    before_fit, before_hold = fit_part.frame.copy(), holdout.frame.copy()
    reference = np.array(model.detector_.reference_, copy=True)
    Xv, ready_v, _ = model._features(holdout, fit_part, "holdout")
    inj = bench.injected_fit_rows(model, fit_part, seed=0, per_day=2)
    # the real fit part, holdout and reference are unchanged, and so are the holdout's
    # features (the rows G is scored on)
    pd.testing.assert_frame_equal(fit_part.frame, before_fit)
    pd.testing.assert_frame_equal(holdout.frame, before_hold)
    np.testing.assert_array_equal(model.detector_.reference_, reference)
    Xv2, ready_v2, _ = model._features(holdout, fit_part, "holdout")
    np.testing.assert_array_equal(ready_v2, ready_v)
    np.testing.assert_allclose(Xv2[ready_v2], Xv[ready_v])
    # class 1 is the injected ready rows only: each entity got 2 events a day, every kind
    # is named, and their features moved away from the clean rows' at the same places
    days = (fit_part.frame.groupby("entity")["timestamp"].agg(lambda t: t.max() - t.min())
            / pd.Timedelta("1D")).min()
    assert int(inj["events"]) == round(2 * days) * len(fit_part.entities)
    assert len(inj["xi"]) == len(inj["ki"]) > 0 and (inj["ki"] != "").all()
    again = bench.injected_fit_rows(model, fit_part, seed=0, per_day=2)
    np.testing.assert_array_equal(again["xi"], inj["xi"])          # reproducible by seed
    _, new, _ = bench.inject_holdout(fit_part, 0, 2)
    X, ready, _ = model._features(fit_part, None, "fit part")
    clean = model.constant_guard.blind(X[ready & new])
    assert clean.shape == inj["xi"].shape
    assert np.abs(inj["xi"] - clean).max(axis=1).mean() > 0.5


def test_the_member_ranks_an_injected_like_anomaly_above_normal_rows(bench):
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(600, 4))
    shifted = rng.normal(size=(120, 4))
    shifted[:, 2] += 4.0                                      # level shifts on one metric
    clf = bench.fit_member(ref, shifted, seed=0, max_iter=50)
    normal = bench.member_scores(clf, rng.normal(size=(200, 4)))
    anomaly = rng.normal(size=(20, 4))
    anomaly[:, 2] += 4.0
    high = bench.member_scores(clf, anomaly)
    # every fresh shifted row above the fresh normal rows' median, most above their q95
    assert (high > np.median(normal)).all()
    assert (high > np.quantile(normal, 0.95)).mean() >= 0.9
    p = bench.member_scores(clf, anomaly, form="prob")
    assert ((p >= 0) & (p <= 1)).all() and p.mean() > 0.8
    with pytest.raises(SystemExit, match="only 3 injected ready rows"):
        bench.fit_member(ref, shifted[:3])


def test_the_mixes_put_g_on_the_defaults_scale(bench):
    rng = np.random.default_rng(1)
    vv, vt = rng.gamma(2.0, size=(400, 2)), rng.gamma(2.0, size=(300, 2))
    d = {"vv": vv, "vt": vt}
    g = (100 + 50 * rng.normal(size=400), 100 + 50 * rng.normal(size=300))
    out = bench.mixes(d, g)
    base_h = vv.mean(axis=1)
    np.testing.assert_allclose(out["(L + S) / 2: the default"][0], base_h)
    assert out["G alone"][0] is g[0]
    # G' has the default's holdout median and median-to-q99 range, so the mix does too
    gm = 3 * out["(L + S + 1 G') / 3"][0] - vv.sum(axis=1)
    assert np.median(gm) == pytest.approx(np.median(base_h))
    assert np.quantile(gm, 0.99) - np.median(gm) == pytest.approx(
        np.quantile(base_h, 0.99) - np.median(base_h))
    # the drift check: about 1 % of rows from the holdout's own law lie above its q99,
    # all of them once the test moved past it
    normal = np.ones(300, bool)
    assert bench.above_q99(base_h, vt.mean(axis=1), normal) < 0.05
    assert bench.above_q99(base_h, vt.mean(axis=1) + 100, normal) == 1.0
    assert set(out) == {"(L + S) / 2: the default", "G alone", "(L + S + 0.25 G') / 2.25",
                        "(L + S + 0.5 G') / 2.5", "(L + S + 1 G') / 3"}


def test_bad_options_get_a_one_line_error(bench, capsys):
    for argv, message in ((["demo", "--per-day", "0"], "--per-day must be positive"),
                          (["servers", "--min-leaf", "0"], "--min-leaf at least 1")):
        with pytest.raises(SystemExit) as exc:
            bench.main(argv)
        assert exc.value.code == 2
        assert message in capsys.readouterr().err
