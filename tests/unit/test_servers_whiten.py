"""benchmarks/servers_whiten.py: the whitened members are what docs/model.md says they are.

Its figures (docs/model.md, "Measured 2026-12-02 (H11): nearest neighbours in a whitened
space") mean something only if the whitened 1-NN distance is the Mahalanobis distance to the
nearest reference row (for a full-rank covariance, no shrinkage, no truncation), the
Mahalanobis member is the distance to the reference mean, the PCA form keeps the stated share
of the variance, the eigenvalue floor holds, and every whitening is fit on the reference rows
only and scores row by row.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.unit.benchkit import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("servers_whiten.py", "servers_whiten")


def correlated(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` rows of 4 strongly correlated columns (full rank)."""
    base = rng.normal(size=(n, 4))
    mix = np.array([[1.0, 0.9, 0.8, 0.0], [0.0, 0.4, 0.1, 0.5],
                    [0.0, 0.0, 0.3, 0.2], [0.0, 0.0, 0.0, 0.7]])
    return base @ mix + 3.0


def test_the_whitened_nearest_distance_is_the_mahalanobis_distance_to_the_nearest_row(bench):
    rng = np.random.default_rng(0)
    ref, x = correlated(rng, 300), correlated(rng, 25) + rng.normal(size=(25, 4))
    inv = np.linalg.inv(np.cov(ref, rowvar=False))
    diff = x[:, None, :] - ref[None, :, :]
    maha = np.sqrt(np.einsum("abi,ij,abj->ab", diff, inv, diff)).min(axis=1) / 2.0
    to_mean = x - ref.mean(axis=0)
    centre = np.sqrt(np.einsum("ai,ij,aj->a", to_mean, inv, to_mean)) / 2.0
    for method, param in (("pca", 1.0), ("shrink", 0.0)):
        (nn,), (mean,) = bench.whitened_nearest(ref, [x], method, param)
        np.testing.assert_allclose(nn, maha, rtol=1e-4)      # float32 search
        np.testing.assert_allclose(mean, centre, rtol=1e-9)
    # the Euclidean distance on the same columns is not it: the whitening matters here
    euclid = np.sqrt(((x[:, None, :] - ref[None]) ** 2).sum(axis=2)).min(axis=1) / 2.0
    assert np.max(np.abs(euclid - maha) / maha) > 0.2


def test_whitened_reference_rows_have_the_identity_covariance_of_the_shrunk_form(bench):
    rng = np.random.default_rng(1)
    ref = correlated(rng, 500)
    cov = np.cov(ref, rowvar=False)
    w = bench.Whitener(ref, "pca", 1.0)
    np.testing.assert_allclose(np.cov(w.transform(ref), rowvar=False), np.eye(4), atol=1e-9)
    a = 0.3
    shrunk = (1 - a) * cov + a * np.diag(np.diag(cov))
    ws = bench.Whitener(ref, "shrink", a)
    np.testing.assert_allclose(ws.W.T @ shrunk @ ws.W, np.eye(4), atol=1e-9)
    # shrinkage towards the variances: the strong correlations count less than in full form
    assert not np.allclose(ws.W.T @ cov @ ws.W, np.eye(4), atol=1e-2)
    lw = bench.Whitener(ref, "lw")
    assert 0.0 <= lw.shrinkage <= 1.0 and lw.dim == 4


def test_pca_keeps_the_stated_share_of_the_variance_and_floors_the_eigenvalues(bench):
    rng = np.random.default_rng(2)
    # independent columns with variances 100, 10, 1, 0.001 (shares .9091, .0909, .0091, ...)
    ref = rng.normal(size=(20000, 4)) * np.sqrt([100.0, 10.0, 1.0, 0.001])
    assert bench.Whitener(ref, "pca", 0.9).dim == 1
    assert bench.Whitener(ref, "pca", 0.99).dim == 2
    assert bench.Whitener(ref, "pca", 0.999).dim == 3
    full = bench.Whitener(ref, "pca", 1.0)
    assert full.dim == 4
    # 0.001 is below 1e-3 x 100: floored at 0.1, so that direction is scaled by 1/sqrt(0.1)
    scale = np.sort(np.linalg.norm(full.W, axis=0))
    assert scale[-1] == pytest.approx(1 / math.sqrt(0.1), rel=0.05)
    # a column constant in the reference rows does not blow up: floored too
    flat = np.c_[ref[:, :2], np.zeros(len(ref))]
    w = bench.Whitener(flat, "shrink", 0.1)
    assert np.all(np.isfinite(w.W)) and np.abs(w.W).max() <= 1 / math.sqrt(1e-3 * 90) + 1e-9


def test_per_metric_whitening_is_block_diagonal_and_whitens_each_metric_apart(bench):
    rng = np.random.default_rng(6)
    a, b = correlated(rng, 400), correlated(rng, 400)
    ref = np.c_[a, b + 0.8 * a]                       # metric 1 also follows metric 0
    groups = np.array([0] * 4 + [1] * 4)
    w = bench.Whitener(ref, "pca", 1.0, groups=groups)
    assert w.dim == 8
    assert np.all(w.W[:4, 4:] == 0) and np.all(w.W[4:, :4] == 0)
    np.testing.assert_allclose(w.W[:4, :4] @ w.W[:4, :4].T,
                               np.linalg.inv(np.cov(ref[:, :4], rowvar=False)), rtol=1e-8)
    z = np.cov(w.transform(ref), rowvar=False)
    np.testing.assert_allclose(z[:4, :4], np.eye(4), atol=1e-9)
    np.testing.assert_allclose(z[4:, 4:], np.eye(4), atol=1e-9)
    assert np.abs(z[:4, 4:]).max() > 0.3               # across metrics: left as it was
    with pytest.raises(ValueError, match="one label a column"):
        bench.Whitener(ref, groups=groups[:5])


def test_the_whitening_is_fit_on_the_reference_rows_only_and_scores_row_by_row(bench):
    rng = np.random.default_rng(3)
    ref = correlated(rng, 200)
    hold, test = correlated(rng, 30), correlated(rng, 40)
    moved = test.copy()
    moved[7] += 25.0                                  # one test row far away
    other_hold = hold + 50.0                          # a different holdout altogether
    for method in ("pca", "shrink", "lw"):
        param = {"pca": 0.99, "shrink": 0.1, "lw": 0.0}[method]
        (_, t1), (_, mt1) = bench.whitened_nearest(ref, [hold, test], method, param)
        (_, t2), (_, mt2) = bench.whitened_nearest(ref, [other_hold, moved], method, param)
        keep = np.arange(len(test)) != 7
        np.testing.assert_allclose(t1[keep], t2[keep], rtol=1e-6)
        np.testing.assert_allclose(mt1[keep], mt2[keep], rtol=1e-9)
        assert t2[7] > 5 * t1[7] and mt2[7] > 5 * mt1[7]
        # a reference row is its own nearest neighbour
        (self_nn,), _ = bench.whitened_nearest(ref, [ref[:5]], method, param)
        np.testing.assert_allclose(self_nn, 0.0, atol=2e-3)


def toy_dump(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A dump as servers_members.py writes one: 2 metrics, level columns 0-1, stationary
    columns 2-5, metric 2 (column 6) constant in training."""
    def rows(n: int) -> np.ndarray:
        x = np.c_[correlated(rng, n)[:, :2], correlated(rng, n), np.zeros(n)]
        return x
    ref, xv, xt = rows(150), rows(20), rows(30)
    return {"ref": ref, "xv": xv, "xt": xt, "vv": rng.random((20, 2)),
            "vt": rng.random((30, 2)), "lv": np.array([0, 1]), "sv": np.array([2, 3, 4, 5, 6]),
            "column_metric": np.array([0, 1, 0, 0, 1, 1, 2]), "constant": np.array([2])}


def test_members_leave_constant_metrics_out_and_mixes_are_what_their_names_say(bench):
    d = toy_dump(np.random.default_rng(4))
    m = bench.members_of(d, ["pca0.99", "shrink0.1"])
    (nv, nt), _ = bench.whitened_nearest(d["ref"][:, 2:6], [d["xv"][:, 2:6], d["xt"][:, 2:6]],
                                         "shrink", 0.1)
    np.testing.assert_allclose(m["S_w[shrink0.1]"][1], nt)
    np.testing.assert_allclose(m["M[pca0.99]"][0],
                               (m["M_L[pca0.99]"][0] + m["M_S[pca0.99]"][0]) / 2)
    v = bench.build_variants(["shrink0.1"])
    hold, test = v["(L + S + 0.5 S_w[shrink0.1]) / 2.5"](m)
    np.testing.assert_allclose(hold, (d["vv"][:, 0] + d["vv"][:, 1] + 0.5 * nv) / 2.5)
    np.testing.assert_allclose(test, (d["vt"][:, 0] + d["vt"][:, 1] + 0.5 * nt) / 2.5)
    np.testing.assert_allclose(v[bench.DEFAULT](m)[0], d["vv"].mean(axis=1))
    np.testing.assert_allclose(v["(L + S_w[shrink0.1]) / 2"](m)[0], (d["vv"][:, 0] + nv) / 2)
    # every family picks at least one setting and never the default
    for pick in bench.FAMILIES.values():
        grid = [n for n in v if pick(n)]
        assert grid and bench.DEFAULT not in grid


def test_bad_settings_are_refused_with_a_clear_error(bench):
    ref = np.random.default_rng(5).normal(size=(10, 3))
    with pytest.raises(ValueError, match="unknown method 'ica'"):
        bench.Whitener(ref, "ica")
    with pytest.raises(ValueError, match="shrinkage must be in"):
        bench.Whitener(ref, "shrink", 1.5)
    with pytest.raises(ValueError, match="variance share"):
        bench.Whitener(ref, "pca", 0.0)
    with pytest.raises(ValueError, match="shape"):
        bench.Whitener(ref[:1])
