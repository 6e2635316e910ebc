"""benchmarks/servers_thresholds.py: the dumped scores must give the model's own numbers.

The threshold study (docs/benchmarks.md) evaluates rules on dumped raw scores instead of
refitting the model for each one; its figures mean something only if the dump, mapped with
the shipped threshold, is exactly what ``default_model(step).score`` returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.evaluation.servers_bench import load_server, server_metrics
from aws_anomaly.presets import default_model
from aws_anomaly.threshold import pot_risk
from tests.unit.benchkit import load_benchmark, toy_server


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("servers_thresholds.py", "servers_thresholds")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Path:
    """One server, 5-minute steps: 4 days of training, 1 day of test with a spike, a level
    shift and a metric constant in training that moves."""
    rng = np.random.default_rng(3)
    n_train, n_test = 4 * 288, 288

    def anomalies(frame: pd.DataFrame, y: np.ndarray) -> None:
        for start, stop, col, delta in ((n_train + 60, n_train + 63, "m00", 0.6),
                                        (n_train + 150, n_train + 190, "m01", 0.25),
                                        (n_train + 240, n_train + 244, "m02", 0.1)):
            frame.loc[start:stop - 1, col] += delta
            y[start:stop] = 1

    return toy_server(tmp_path_factory.mktemp("servers"), rng, n_train, n_test, anomalies,
                      m02=np.zeros_like)


def test_dump_with_the_shipped_threshold_is_the_models_own_score(bench, server, tmp_path):
    data = load_server("toy/srv-1", server)
    model = default_model(data.train.step).fit(data.train)
    out = model.score(data.test, history=data.train, explain="none")
    expected = out["anomaly_score"].to_numpy()
    assert out["is_anomaly"].any() and not out["is_anomaly"].all()

    path = bench.dump_server("toy/srv-1", server, tmp_path)
    dumps = bench.load_dumps(tmp_path)
    assert list(dumps) == ["toy/srv-1"] and path.exists()
    d = dumps["toy/srv-1"]
    assert float(d["thr"]) == model.calibrator_.threshold_
    # the holdout scores are the ones the shipped POT threshold was fit on
    risk = model.calibration_used_["risk"]
    assert risk == pot_risk(model.step_)
    assert bench.pot_threshold(d["rawv"], risk, 0.98)[0] == pytest.approx(float(d["thr"]),
                                                                           rel=1e-12)
    got = bench.shipped(d)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(got >= 1.0, out["is_anomaly"].to_numpy())
    # a reference refit on every training row holds the 85 % one: no test row is farther
    ready = d["readyt"]
    assert (d["rawt_refit"][ready] <= d["rawt"][ready] + 1e-12).all()
    assert (d["rawt_refit"][ready] < d["rawt"][ready]).any()
    # the moved training constant flags its points whatever the detector says
    assert (got[240:244] >= 1.0).all() and (d["zt"][240:244] >= 1.0).all()

    # re-baselining the level view: nothing is admitted within a delay longer than the test,
    # and admitted rows can only bring the level distance down
    np.testing.assert_allclose(bench.rebaseline_level("30D", 1.0, 0.8)(d),
                               bench.scale(0.8)(d), rtol=1e-12, atol=1e-12)
    rebased = bench.rebaseline_level("2h", 1.0, 1.0)(d)
    assert (rebased <= got + 1e-12).all() and (rebased < got - 1e-6).any()

    per = bench.measure(dumps, bench.shipped)["toy/srv-1"]
    ref = server_metrics(data.labels, expected, out["is_anomaly"].to_numpy(), data.train.step)
    assert per["f1"] == ref["f1"] and per["fpr"] == ref["fpr"]
    # a lower flag level never flags fewer points
    lower = bench.scale(0.5)(d) >= 1.0
    assert lower.sum() >= (got >= 1.0).sum() and (lower | ~(got >= 1.0)).all()


def test_no_dumps_is_a_one_line_error(bench, tmp_path):
    with pytest.raises(SystemExit, match=r"^error: .*no dumped servers"):
        bench.load_dumps(tmp_path)


def test_hysteresis_holds_a_flag_while_the_score_stays_up(bench):
    s = np.array([0.2, 0.95, 1.3, 0.9, 0.75, 0.6, 0.8, 1.1, 0.5, 0.8])
    d = {"rawt": s, "thr": np.float64(1.0), "center": np.float64(0.0),
         "zt": np.zeros(len(s)), "readyt": np.ones(len(s), dtype=bool)}
    out = bench.hysteresis(0.7)(d)
    # flagged at >= 1, held at >= 0.7 after a flag, released below it, never before one
    assert (out >= 1.0).tolist() == [False, False, True, True, True, False, False, True,
                                     False, False]
    np.testing.assert_array_equal(out[out < 1.0], bench.shipped(d)[out < 1.0])
