"""benchmarks/servers_streaming_members.py measures the shipped models and combines them as said.

Its figures (docs/benchmarks.md, "The streaming detectors as members (issue 8 item 3, H6)")
mean something only if each member's cached scores are the model's own (``default_model`` and
``SeriesModel("context")`` fit on the training rows, the test scored with the training rows as
look-back), and the rules are the combinations they are named after.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.evaluation.servers_bench import load_server
from aws_anomaly.presets import default_model
from aws_anomaly.streaming.series import SeriesModel
from tests.unit.benchkit import load_benchmark, toy_server

KEY = "toy/srv-1"


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("servers_streaming_members.py", "servers_streaming_members")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One 5-minute server: 4 days of training, 1 day of test with a 30-minute jump on one
    metric of three and a metric constant throughout."""
    rng = np.random.default_rng(5)
    n_train, n_test = 4 * 288, 288

    def jump(frame: pd.DataFrame, y: np.ndarray) -> None:
        frame.loc[n_train + 100:n_train + 105, "m01"] += 0.5
        y[n_train + 100:n_train + 106] = 1

    top = tmp_path_factory.mktemp("servers")
    toy_server(top, rng, n_train, n_test, jump, m02=np.zeros_like)
    return top


@pytest.fixture(scope="module")
def run(bench, root, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    rows = bench.run_servers(root, cache, say=lambda _: None)
    return cache, rows


def _member(bench, cache: Path, member: str):
    return bench.cached(cache / f"toy__srv-1__{member}.npz", member,
                        lambda: pytest.fail("the member should come from the cache"))


def test_members_are_the_shipped_models_own_scores(bench, root, run):
    cache, _ = run
    data = load_server(KEY, root / "toy" / "srv-1")
    d = _member(bench, cache, "default")
    model = default_model(data.train.step).fit(data.train)
    out = model.score(data.test, history=data.train, explain="none")
    np.testing.assert_allclose(d.test, out["anomaly_score"], rtol=1e-12)
    np.testing.assert_array_equal(d.flags, out["is_anomaly"])
    # the holdout is the default's own calibration holdout, scored out of fit
    _, tail = data.train.split_tail(model.calibration_holdout)
    assert len(d.hold) == len(tail)
    c = _member(bench, cache, "context")
    sm = SeriesModel("context").fit(data.train)
    out = sm.score(data.test, history=data.train, explain="none")
    # one pass over look-back + test gives score(test, history=train)'s numbers
    np.testing.assert_allclose(c.test, out["anomaly_score"], rtol=1e-12)
    np.testing.assert_array_equal(c.flags, out["is_anomaly"])
    whole = sm.score(data.train, explain="none")["anomaly_score"].to_numpy()
    np.testing.assert_allclose(c.hold, whole[-len(tail):], rtol=1e-12)
    # the jump is found by the streaming member, on the labelled rows only
    assert c.flags[100:106].any() and not c.flags[:100].any()


def test_rules_are_the_combinations_they_name(bench, run):
    cache, rows = run
    d, c = _member(bench, cache, "default"), _member(bench, cache, "context")
    rules = bench.combinations(d, c)
    either, both = d.test >= 1.0, c.test >= 1.0
    np.testing.assert_array_equal(rules["max (either flags)"][1], either | both)
    np.testing.assert_array_equal(rules["min (both flag)"][1], either & both)
    np.testing.assert_allclose(rules["mean"][0], (d.test + c.test) / 2)
    # a non-negative second member only adds flags to the default's
    assert (rules["default + 0.25 x context (sensitivity)"][1] >= either).all()
    assert bench.tail_rank(d.hold, np.array([np.inf]))[0] == pytest.approx(
        np.log(len(d.hold) + 1))
    # a re-fitted threshold is a monotone map of the same score: the ranking (best F1) holds
    for name in ("max", "mean"):
        refit = rules[f"{name}, POT re-fit on the holdout"][0]
        base = rules["max (either flags)" if name == "max" else "mean"][0]
        order = np.argsort(base, kind="stable")
        assert np.all(np.diff(refit[order]) >= -1e-12)
        assert (rows[f"{name}, POT re-fit on the holdout"][KEY]["best_f1"]
                == pytest.approx(rows["max (either flags)" if name == "max" else "mean"]
                                 [KEY]["best_f1"]))
    table = bench.servers_tables(rows, per_server=True)
    assert table.count("\n| default alone |") == 2 and "srv-1" in table


def test_bad_folder_is_one_clear_error(bench, tmp_path):
    from aws_anomaly.errors import DataError

    with pytest.raises(DataError, match="no server folders"):
        bench.run_servers(tmp_path, tmp_path / "cache", say=lambda _: None)


def test_the_max_aggregation_is_the_context_members_ranking(bench, root, run):
    cache, rows = run
    agg = bench.run_aggregations(root, cache)
    raw, n_train, learn = bench.context_raw(KEY, root / "toy" / "srv-1", cache)
    assert learn == 750 and raw.shape == (5 * 288, 3) and n_train == 4 * 288
    # the calibrated score is a monotone map of the raw max: the same best F1
    assert agg["max (shipped)"][KEY] == pytest.approx(rows["context alone"][KEY]["best_f1"])
    r = raw[n_train:]
    # three metrics: the top 3 are all of them
    np.testing.assert_allclose(bench.AGGREGATIONS["mean of the top 3"](r), r.mean(axis=1),
                               rtol=1e-12)
