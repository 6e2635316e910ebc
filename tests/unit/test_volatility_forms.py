"""benchmarks/volatility_forms.py: the forms are what docs/model.md says they are.

Its figures (docs/model.md, "Measured 2026-12-02 (H8)") compare forms of the kNN detector's
volatility-excess term; they mean something only if form ``V`` is the detector's own term,
the tail forms add nothing inside the training range, and the demo's swap of the form into
the detector scores what the form says and leaves the library as it was.
"""

from __future__ import annotations

import numpy as np
import pytest

from aws_anomaly.detectors.knn import KNNDetector
from tests.unit.benchkit import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("volatility_forms.py", "volatility_forms")


def _data(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(300, 6)), rng.normal(size=(40, 6))


def _forms(bench, name: str, ref: np.ndarray):
    owner = np.arange(ref.shape[1]) // 2
    return bench.Form(name, ref, owner, np.arange(ref.shape[1]) % 2)


def test_form_v_is_the_detectors_own_excess_term(bench) -> None:
    X, x = _data()
    cols = [1, 3, 5]
    plain = KNNDetector(n_jobs=1).fit(X).score_samples(x)
    with_term = KNNDetector(excess=cols, excess_weight=0.25, n_jobs=1).fit(X).score_samples(x)
    form = bench.Form("V", X[:, cols], np.arange(3), np.zeros(3, dtype=np.int64))
    np.testing.assert_allclose(with_term - plain, 0.25 * form(x[:, cols]), rtol=1e-10)


def test_tail_forms_add_nothing_inside_the_training_range(bench) -> None:
    X, _ = _data()
    for name in ("Tcol@1.0", "TV@1.0"):
        assert np.all(_forms(bench, name, X)(X) == 0.0), name
    above = X.max(axis=0) + 1.0
    assert _forms(bench, "Tcol@1.0", X)(above[None, :])[0] == pytest.approx(1.0)
    # k of m: the fraction of columns above their q0.99, less that fraction's training
    # q0.999 (1/6 or more on 300 rows of 6 noisy columns): one column far out adds nothing
    one = np.zeros((1, 6))
    one[0, 2] = 100.0
    count = _forms(bench, "C@0.99", X)
    assert count.qf >= 1 / 6
    assert count(one)[0] == 0.0
    assert count(np.full((1, 6), 100.0))[0] == pytest.approx(1.0 - count.qf)


def test_the_median_form_needs_half_the_metrics(bench) -> None:
    X, _ = _data()
    one_metric = np.zeros((1, 6))
    one_metric[0, :2] = 5.0            # metric 0 of 3 (2 columns a metric)
    two_metrics = np.zeros((1, 6))
    two_metrics[0, :4] = 5.0
    pm = _forms(bench, "PM", X)
    assert pm(one_metric)[0] == 0.0
    assert pm(two_metrics)[0] == pytest.approx(5.0)


def test_correlation_shrinks_a_common_mode_weight(bench) -> None:
    rng = np.random.default_rng(0)
    common = rng.normal(size=(500, 1))
    together = common + 0.1 * rng.normal(size=(500, 6))
    apart = rng.normal(size=(500, 6))
    owner = np.arange(6) // 2
    assert bench.mean_corr(together, owner) > 0.9
    assert abs(bench.mean_corr(apart, owner)) < 0.1
    assert _forms(bench, "Vcorr", together).shrink < 0.1


def test_the_swap_scores_the_form_and_restores_the_detector(bench) -> None:
    X, x = _data()
    cols = [1, 3, 5]
    fit, block = KNNDetector._fit, KNNDetector._block
    plain = KNNDetector(n_jobs=1).fit(X).score_samples(x)
    library = KNNDetector(excess=cols, excess_weight=0.25, n_jobs=1).fit(X).score_samples(x)
    current = {"form": "V"}
    with bench.forms_in_detector(current, per_metric=1):
        swapped_v = KNNDetector(excess=cols, excess_weight=0.25, n_jobs=1).fit(X)
        current["form"] = "Tcol@0.99"
        swapped_t = KNNDetector(excess=cols, excess_weight=0.5, n_jobs=1).fit(X)
        v, t = swapped_v.score_samples(x), swapped_t.score_samples(x)
    np.testing.assert_allclose(v, library, rtol=1e-10)
    tcol = bench.Form("Tcol@0.99", X[:, cols], np.arange(3), np.zeros(3, dtype=np.int64))
    np.testing.assert_allclose(t, plain + 0.5 * tcol(x[:, cols]), rtol=1e-10)
    assert "r" in current
    assert (KNNDetector._fit, KNNDetector._block) == (fit, block)
