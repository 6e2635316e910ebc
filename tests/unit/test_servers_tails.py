"""benchmarks/servers_tails.py: the empirical-tail member is what docs/model.md says it is.

Its figures (docs/model.md, "Measured 2026-12-02 (H10): an empirical-tail member") mean
something only if the per-column tail score is ECOD's: -log of a tail probability of the
training rows' empirical CDF with the (n + 1) convention (bounded: a value beyond every
training row scores log(n + 1) however far it is), monotone in each tail, fit on the
reference rows only and applied row by row (no holdout or test row shapes another's score).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.unit.benchkit import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("servers_tails.py", "servers_tails")


def test_the_tail_probabilities_are_the_empirical_cdf_with_the_n_plus_1_convention(bench):
    tails = bench.EmpiricalTails(np.array([[1.0], [2.0], [3.0], [4.0]]))
    left, right = tails.tails(np.array([[2.5], [2.0], [0.0], [4.0]]))
    # 2.5: two training rows at or below, two at or above
    assert left[0, 0] == pytest.approx(-math.log(3 / 5))
    assert right[0, 0] == pytest.approx(-math.log(3 / 5))
    # 2.0 counts itself on both sides
    assert left[1, 0] == pytest.approx(-math.log(3 / 5))
    assert right[1, 0] == pytest.approx(-math.log(4 / 5))
    # below every row: the left tail's bound log(n + 1); the right tail is 0
    assert left[2, 0] == pytest.approx(math.log(5))
    assert right[2, 0] == pytest.approx(0.0)
    # at the maximum: left 0, right one row
    assert left[3, 0] == pytest.approx(0.0)
    assert right[3, 0] == pytest.approx(-math.log(2 / 5))


def test_the_score_is_bounded_and_saturates_beyond_the_training_range(bench):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(999, 3))
    tails = bench.EmpiricalTails(train)
    far = np.array([[5.0, 5.0, 5.0], [50.0, 1e6, 1e300], [-7.0, -1e9, -np.inf]])
    two = tails.column_scores(far, "two")
    np.testing.assert_allclose(two, math.log(1000))        # bounded and saturated
    x = rng.normal(scale=10.0, size=(500, 3))
    left, right = tails.tails(x)
    assert left.min() >= 0.0 and right.min() >= 0.0
    assert left.max() <= math.log(1000) + 1e-12 and right.max() <= math.log(1000) + 1e-12


def test_the_score_is_monotone_in_each_tail(bench):
    rng = np.random.default_rng(1)
    tails = bench.EmpiricalTails(rng.normal(size=(2000, 1)))
    grid = np.linspace(-5, 5, 401)[:, None]
    left, right = tails.tails(grid)
    assert np.all(np.diff(right[:, 0]) >= 0)               # further right, rarer on the right
    assert np.all(np.diff(left[:, 0]) <= 0)                # further left, rarer on the left
    two = tails.column_scores(grid, "two")[:, 0]
    mid = int(np.argmin(two))
    assert np.all(np.diff(two[mid:]) >= 0) and np.all(np.diff(two[:mid + 1]) <= 0)
    assert abs(grid[mid, 0]) < 0.2                         # lowest near the training median
    assert two[mid] == pytest.approx(math.log(2), abs=0.05)


def test_a_constant_column_scores_zero_and_the_skewness_picks_the_tail(bench):
    rng = np.random.default_rng(2)
    expo = rng.exponential(size=3000)
    train = np.column_stack([np.zeros(3000), expo, -expo])
    tails = bench.EmpiricalTails(train)
    assert tails.left_skewed.tolist() == [False, False, True]
    x = np.array([[0.0, 6.0, -6.0], [0.0, 0.5, -0.5]])
    assert tails.column_scores(x, "two")[:, 0].tolist() == [0.0, 0.0]
    left, right = tails.tails(x)
    skew = tails.column_scores(x, "skew")
    np.testing.assert_array_equal(skew[:, 1], right[:, 1])   # right-skewed: the right tail
    np.testing.assert_array_equal(skew[:, 2], left[:, 2])    # left-skewed: the left tail


def test_the_aggregates(bench):
    scores = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]])
    assert bench.aggregate(scores, "mean")[0] == pytest.approx(5.5)
    # top: the mean of the ceil(sqrt(10)) = 4 largest
    assert bench.aggregate(scores, "top")[0] == pytest.approx((10 + 9 + 8 + 7) / 4)
    # metric: each metric's mean over its columns (3, 6.5, 8.5, 10 for metrics 0-3),
    # then the mean of the ceil(sqrt(4)) = 2 largest
    metric = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 3])
    assert bench.aggregate(scores, "metric", metric)[0] == pytest.approx((10 + 8.5) / 2)
    with pytest.raises(ValueError, match="needs the metric of every column"):
        bench.aggregate(scores, "metric")
    rng = np.random.default_rng(3)
    train, x = rng.normal(size=(300, 5)), rng.normal(scale=3, size=(40, 5))
    tails = bench.EmpiricalTails(train)
    left, right = tails.tails(x)
    skew = np.where(tails.left_skewed, left, right)
    want = np.max([left.mean(1), right.mean(1), skew.mean(1)], axis=0)
    np.testing.assert_allclose(bench.view_tail(tails, x, "ecod", "mean"), want)
    with pytest.raises(ValueError, match="must have 5 columns"):
        tails.tails(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="unknown aggregate 'max'"):
        bench.aggregate(scores, "max")


def _dump(rng: np.random.Generator) -> dict:
    """A toy dump: 2 metrics, each with 1 level and 2 stationary columns; metric 1 is
    constant (its columns blinded to 0, left out of the member)."""
    n_ref, n_hold, n_test = 400, 60, 80

    def rows(n: int) -> np.ndarray:
        x = rng.normal(size=(n, 6))
        x[:, [1, 4, 5]] = 0.0
        return x
    return {"ref": rows(n_ref), "xv": rows(n_hold), "xt": rows(n_test),
            "lv": np.array([0, 1]), "sv": np.array([2, 3, 4, 5]),
            "column_metric": np.array([0, 1, 0, 0, 1, 1]), "constant": np.array([1]),
            "vv": rng.random((n_hold, 2)), "vt": rng.random((n_test, 2)),
            "eref": np.repeat([0, 1], n_ref // 2), "ev": np.repeat([0, 1], n_hold // 2),
            "et": np.repeat([0, 1], n_test // 2)}


def test_the_member_is_fit_on_the_reference_rows_only_and_scores_row_by_row(bench):
    rng = np.random.default_rng(4)
    d = _dump(rng)
    np.testing.assert_array_equal(bench.view_columns(d, "sv"), [2, 3])
    m = bench.tail_members(d)
    # changing test rows changes those rows only, and never the holdout
    d2 = {**d, "xt": d["xt"].copy()}
    d2["xt"][50:, 0] += 100.0
    m2 = bench.tail_members(d2)
    for name in ("T_L[two,mean]", "T_S[ecod,top]", "T[skew,mean]"):
        np.testing.assert_array_equal(m2[name][0], m[name][0])
        np.testing.assert_array_equal(m2[name][1][:50], m[name][1][:50])
    assert np.all(m2["T_L[two,mean]"][1][50:] >= m["T_L[two,mean]"][1][50:])
    # a moved column of a constant metric is not part of the member
    d3 = {**d, "xt": d["xt"].copy()}
    d3["xt"][:, 1] = 9.0
    np.testing.assert_array_equal(bench.tail_members(d3)["T_L[two,mean]"][1],
                                  m["T_L[two,mean]"][1])
    # the holdout is not fit on: moving it moves nothing of the test's member
    d4 = {**d, "xv": d["xv"] * 3.0}
    np.testing.assert_array_equal(bench.tail_members(d4)["T[ecod,top]"][1], m["T[ecod,top]"][1])
    # the reference is: scaling it changes the test's member
    d5 = {**d, "ref": d["ref"] * 3.0}
    assert not np.array_equal(bench.tail_members(d5)["T[two,mean]"][1], m["T[two,mean]"][1])
    # T is the mean of the two views' members
    np.testing.assert_allclose(m["T[two,top]"][1],
                               (m["T_L[two,top]"][1] + m["T_S[two,top]"][1]) / 2)


def test_per_entity_tails_use_each_entitys_reference_rows(bench):
    rng = np.random.default_rng(5)
    d = _dump(rng)
    d["ref"][:200, 0] *= 0.1           # entity 0 is quiet on the level column, entity 1 not
    d["ref"][200:, 0] *= 3.0
    d["xt"][:40, 0] *= 0.1
    d["xt"][40:, 0] *= 3.0
    d["xt"][5, 0] = 0.6                # 6 of entity 0's own deviations: ordinary for the pool
    one = [("two", "mean")]
    pooled = bench.tail_members(d, settings=one)["T_L[two,mean]"][1]
    own = bench.tail_members(d, settings=one, per_entity=True)["T_L[two,mean]"][1]
    assert own[5] == pytest.approx(math.log(201))   # beyond every row of its own history
    assert pooled[5] < 0.5 * own[5]
    # the entity-0 rows score against entity 0's reference rows alone
    alone = {**d, "ref": d["ref"][:200], "xv": d["xv"][:30], "xt": d["xt"][:40]}
    np.testing.assert_allclose(own[:40], bench.tail_members(
        alone, settings=one)["T_L[two,mean]"][1])


def test_the_mixes_and_the_tail_excess(bench):
    rng = np.random.default_rng(6)
    d = _dump(rng)
    m = bench.members_of(d)
    variants = bench.build_variants()
    _, test = variants[bench.DEFAULT](m)
    np.testing.assert_allclose(test, (d["vt"][:, 0] + d["vt"][:, 1]) / 2)
    _, t = variants["(L + S + 0.5 T[ecod,top]) / 2.5"](m)
    np.testing.assert_allclose(t, (d["vt"][:, 0] + d["vt"][:, 1]
                                   + 0.5 * m["T[ecod,top]"][1]) / 2.5)
    # the excess counts over the reference rows' own quantile: 0 on most reference rows
    fit = m["T[two,mean]@fit"][0]
    assert len(fit) == len(d["ref"])
    low = np.quantile(fit, 0.99)
    np.testing.assert_allclose(m["T+[two,mean,q0.99]"][1],
                               np.maximum(m["T[two,mean]"][1] - low, 0.0))
    _, t = variants["(L + S) / 2 + 2 T+[two,mean,q0.99]"](m)
    np.testing.assert_allclose(t, (d["vt"][:, 0] + d["vt"][:, 1]) / 2
                               + 2 * m["T+[two,mean,q0.99]"][1])


def test_the_demo_calibrates_each_entity_as_the_model_does(bench):
    from aws_anomaly.calibration import pot_threshold
    from aws_anomaly.model import ENTITY_MIN_EXCEEDANCES

    rng = np.random.default_rng(7)
    risk = 5e-3
    big = int(ENTITY_MIN_EXCEEDANCES / risk)            # rows x risk = the minimum: its own
    ev = np.r_[np.zeros(big, dtype=np.int64), np.ones(100, dtype=np.int64)]
    hold = np.r_[rng.gamma(2.0, 1.0, big), 5.0 + rng.gamma(2.0, 1.0, 100)]
    et = np.repeat([0, 1], 50)
    test = np.r_[rng.gamma(2.0, 1.0, 50), 5.0 + rng.gamma(2.0, 1.0, 50)]
    y = np.zeros(100, dtype=bool)
    y[[3, 60]] = True
    d = {"risk": np.float64(risk), "yv": np.zeros(len(hold), dtype=bool), "ev": ev, "et": et,
         "eref": np.array([0, 1]), "zt": np.zeros(100), "readyt": np.ones(100, dtype=bool),
         "y": y}
    thr, center = bench.entity_thresholds(d, hold)
    assert thr[0] == pytest.approx(pot_threshold(hold[:big], risk, 0.98)[0])
    assert center[0] == pytest.approx(np.median(hold[:big]))
    assert np.isnan(thr[1])                             # 100 rows x 5e-3 < 4: the pooled one
    # one entity: the pooled threshold, the same figures as the pooled harness
    one = {**d, "ev": np.zeros(len(hold), dtype=np.int64), "et": np.zeros(100, dtype=np.int64),
           "eref": np.array([0])}
    assert np.isnan(bench.entity_thresholds(one, hold)[0]).all()
    from servers_dynamics import demo_f1
    assert bench.demo_f1_entity(one, hold, test) == pytest.approx(demo_f1(one, hold, test, y))
