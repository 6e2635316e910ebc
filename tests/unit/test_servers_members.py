"""benchmarks/servers_members.py: the member study measures what it says it measures.

Its figures (docs/model.md, "Measured 2026-12-01 night (H3)") compare candidate members with
the shipped model through a dump of the model's features; they mean something only if the
dump's shipped mix is the model's own score and threshold, and the members are what their
docstrings say (nearest distances, causal windows, per-metric columns).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.evaluation.servers_bench import load_server
from aws_anomaly.presets import default_model
from aws_anomaly.threshold import pot_risk
from tests.unit.benchkit import load_benchmark, toy_server


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("servers_members.py", "servers_members")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Path:
    """One 5-minute server: 4 days of training, 1 day of test with a spike on one metric of
    three and a metric constant in training."""
    rng = np.random.default_rng(5)
    n_train, n_test = 4 * 288, 288

    def spike(frame: pd.DataFrame, y: np.ndarray) -> None:
        frame.loc[n_train + 100:n_train + 105, "m01"] += 0.5
        y[n_train + 100:n_train + 106] = 1

    return toy_server(tmp_path_factory.mktemp("servers"), rng, n_train, n_test, spike,
                      m02=lambda daily: 0.4 - 0.1 * daily + rng.normal(0, 0.02, len(daily)),
                      m03=np.zeros_like)


@pytest.fixture(scope="module")
def dumped(bench, server, tmp_path_factory):
    out = tmp_path_factory.mktemp("dump")
    bench.dump_server("toy/srv-1", server, out)
    return bench.load_dumps(out)["toy/srv-1"]


def test_the_shipped_mix_is_the_models_own_score(bench, server, dumped):
    data = load_server("toy/srv-1", server)
    model = default_model(data.train.step).fit(data.train)
    out = model.score(data.test, history=data.train, explain="none")
    d = dumped
    members = {"L": (d["vv"][:, 0], d["vt"][:, 0]), "S": (d["vv"][:, 1], d["vt"][:, 1]),
               "X": bench.excess_term(d), "V": bench.volatility_excess(d)}
    holdout, test = bench.VARIANTS["shipped: (L + S) / 2 + excess"](members)
    np.testing.assert_allclose(holdout, d["rawv"], rtol=1e-12)
    np.testing.assert_allclose(test, d["rawt"], rtol=1e-12)
    assert bench.pot_threshold(holdout, pot_risk(data.train.step), 0.98)[0] == pytest.approx(
        float(d["thr"]), rel=1e-12)
    got = bench.evaluate(d, holdout, test)
    flags = out["is_anomaly"].to_numpy()
    assert got["f1"] == pytest.approx(bench.server_metrics(d["y"], out["anomaly_score"],
                                                           flags, data.train.step)["f1"])
    # the model's excess term is its fitted weight (0 here: the default turns it on from
    # WIDE_MIN_METRICS metrics, docs/model.md) x the volatility excess the study computes, and
    # the 0.25 variant adds the rest of 0.25 V
    w = float(model.detector_.excess_weight)
    assert (members["V"][1] > 0).any()
    np.testing.assert_allclose(members["X"][1], w * members["V"][1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bench.VARIANTS["(L + S) / 2 + 0.25 V"](members)[1],
                               test + (0.25 - w) * members["V"][1], rtol=1e-5, atol=1e-6)
    # the dump's features give the model's own distances (float32 storage: 1e-5)
    np.testing.assert_allclose(bench.nearest(d["ref"][:, d["lv"]], d["xt"][:, d["lv"]]),
                               d["vt"][:, 0], rtol=1e-4, atol=1e-5)


def test_members_are_what_they_say(bench, dumped):
    d = dumped
    rng = np.random.default_rng(0)
    ref, x = rng.normal(size=(50, 3)), rng.normal(size=(7, 3))
    brute = np.sqrt(((x[:, None, :] - ref[None]) ** 2).sum(-1)).min(1) / np.sqrt(3)
    np.testing.assert_allclose(bench.nearest(ref, x), brute, rtol=1e-9)
    # out-of-fold: rows closer than the gap are never neighbours
    gap = 5
    d2 = np.sqrt(((ref[:, None, :] - ref[None]) ** 2).sum(-1))
    d2[np.abs(np.arange(50)[:, None] - np.arange(50)[None]) < gap] = np.inf
    np.testing.assert_allclose(bench.nearest(ref, ref, exclude=gap), d2.min(1) / np.sqrt(3),
                               rtol=1e-9)

    # per metric: one column of distances per metric not constant in training (m03 is)
    cols = bench.metric_columns(d, "lv")
    assert len(cols) == 3 and all(len(c) == 3 for c in cols)
    pv, pt = bench.per_metric(d, "lv")
    assert pv.shape == (len(d["xv"]), 3) and pt.shape == (len(d["xt"]), 3)
    np.testing.assert_allclose(pt[:, 1], bench.nearest(d["ref"][:, cols[1]], d["xt"][:, cols[1]]))
    # the spike on m01 is m01's own novelty, far above the others'
    spike = np.flatnonzero(d["y"])
    assert pt[spike, 1].min() > 3 * pt[spike][:, [0, 2]].max()
    np.testing.assert_allclose(bench.top_k(pt, 1), pt.max(1))
    np.testing.assert_allclose(bench.top_k(pt, 3), pt.mean(1))

    # windows are causal piecewise means
    v = rng.normal(size=(40, 2))
    w = bench.windows(v, 6, 3)
    np.testing.assert_allclose(w[20], np.r_[v[15:17].mean(0), v[17:19].mean(0),
                                            v[19:21].mean(0)])
    v2 = v.copy()
    v2[30:] += 100.0
    np.testing.assert_array_equal(bench.windows(v2, 6, 3)[:30], w[:30])
    wv, wt = bench.window_member(d, "15min")
    assert wv.shape == (len(d["xv"]),) and wt.shape == (len(d["xt"]),)
    assert wt[spike].min() > np.quantile(wv, 0.99)

    # self-level: a score that never moves is left as it is
    flat = np.full(600, 2.0)
    a, b = bench.self_level(flat[:300], flat[300:], 5.0, "1D", 0.25, 300.0, "diff")
    np.testing.assert_allclose(np.r_[a, b], flat)


def test_no_dumps_is_a_one_line_error(bench, tmp_path):
    with pytest.raises(SystemExit, match=r"^error: .*no dumped servers"):
        bench.load_dumps(tmp_path)
