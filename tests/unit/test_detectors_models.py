"""What each detector promises beyond the common contract."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import spearmanr
from sklearn.svm import OneClassSVM

from aws_anomaly.detectors import (
    DETECTORS,
    TRUSTED_TYPES,
    EnsembleDetector,
    IsolationForestDetector,
    LOFDetector,
    OneClassSVMDetector,
    RobustZDetector,
    check_feature_matrix,
    make_detector,
)
from aws_anomaly.detectors.base import NonFiniteInputError
from aws_anomaly.detectors.ocsvm import rbf_expansion
from aws_anomaly.errors import ConfigError, DataError


def _mixture(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Rows from a 3-mode mixture on a low-rank subspace plus noise, like feature matrices."""
    basis = np.random.default_rng(7).normal(size=(4, k))
    modes = np.random.default_rng(8).normal(size=(3, 4)) * 2.0
    z = modes[rng.integers(0, 3, n)] + rng.normal(size=(n, 4))
    return z @ basis * 0.5 + rng.normal(size=(n, k))


# -- One-Class SVM ------------------------------------------------------------------------------

def test_ocsvm_scores_equal_libsvm_decision_function_to_1e8() -> None:
    rng = np.random.default_rng(0)
    train, test = _mixture(rng, 3000, 110), _mixture(rng, 3000, 110) * 1.5
    det = OneClassSVMDetector(random_state=0).fit(train)
    expected = det.estimator_.decision_function(test)  # libsvm, row by row
    # score = -(kernel expansion) and libsvm's decision = expansion - rho = expansion + intercept
    np.testing.assert_allclose(-det.score_samples(test) + det.intercept_, expected,
                               rtol=0, atol=1e-8)
    np.testing.assert_allclose(-det.score_samples(test), det.estimator_.score_samples(test),
                               rtol=0, atol=1e-8)


def test_ocsvm_support_vectors_are_bounded() -> None:
    rng = np.random.default_rng(1)
    X = _mixture(rng, 1500, 30)
    for bound in (5, 40):
        det = OneClassSVMDetector(max_support_vectors=bound, random_state=0).fit(X)
        assert 1 <= det.n_support_vectors_ <= bound
        assert det.support_vectors_.shape == (det.n_support_vectors_, 30)
        assert det.dual_coef_.shape == (det.n_support_vectors_,)


def test_ocsvm_without_bound_is_plain_libsvm_on_the_rows() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 5))
    det = OneClassSVMDetector(max_support_vectors=None, nu=0.2, random_state=0).fit(X)
    ref = OneClassSVM(gamma="scale", nu=0.2, tol=1e-4).fit(X)
    assert det.gamma_ == pytest.approx(ref._gamma, rel=1e-12)
    np.testing.assert_allclose(-det.score_samples(X), ref.score_samples(X), atol=1e-8)


def test_ocsvm_centroid_model_ranks_like_full_data_model() -> None:
    rng = np.random.default_rng(3)
    train, test = _mixture(rng, 2000, 40), _mixture(rng, 1000, 40)
    test[:20] += rng.normal(size=(20, 40)) * 2.0
    small = OneClassSVMDetector(random_state=0).fit(train)
    full = OneClassSVMDetector(max_support_vectors=None, random_state=0).fit(train)
    assert full.n_support_vectors_ > 4 * small.n_support_vectors_
    rho = spearmanr(small.score_samples(test), full.score_samples(test)).statistic
    assert rho > 0.9
    # and the injected rows rank high in both
    assert np.mean(np.argsort(-small.score_samples(test))[:40] < 20) > 0.4


def test_ocsvm_gamma_scale_comes_from_training_rows_not_centroids() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(800, 8)) * 3.0
    det = OneClassSVMDetector(random_state=0).fit(X)
    assert det.gamma_ == pytest.approx(1.0 / (8 * X.var()), rel=1e-12)
    plain = {"max_support_vectors": None, "max_samples": 200}  # no k-means: quicker
    assert OneClassSVMDetector(gamma="auto", **plain).fit(X).gamma_ == pytest.approx(1 / 8)
    assert OneClassSVMDetector(gamma=0.25, **plain).fit(X).gamma_ == 0.25


@pytest.mark.parametrize(("param", "value"), [
    ("gamma", "wide"), ("gamma", -1.0), ("nu", 0.0), ("nu", 1.5),
    ("max_support_vectors", 0), ("max_support_vectors", 2.5), ("n_jobs", 0),
    ("random_state", "seed"),
])
def test_ocsvm_bad_parameters_name_parameter_value_and_allowed(param: str, value: object
                                                              ) -> None:
    with pytest.raises(ConfigError, match=rf"{param}={value!r} is not allowed; use"):
        OneClassSVMDetector(**{param: value}).fit(np.zeros((10, 2)))


def test_rbf_expansion_is_the_same_in_chunks_and_threads() -> None:
    rng = np.random.default_rng(5)
    X, sv, coef = rng.normal(size=(1000, 7)), rng.normal(size=(9, 7)), rng.random(9)
    direct = (coef * np.exp(-0.3 * ((X[:, None, :] - sv[None]) ** 2).sum(-1))).sum(1)
    one = rbf_expansion(X, sv, coef, 0.3)
    threaded = rbf_expansion(X, sv, coef, 0.3, n_jobs=2, chunk_rows=64)
    np.testing.assert_allclose(one, direct, rtol=1e-12)
    np.testing.assert_allclose(threaded, direct, rtol=1e-12)
    # one row a call (the live path's 1-d arithmetic), and its non-finite check
    rows = np.array([rbf_expansion(X[i:i + 1], sv, coef, 0.3)[0] for i in range(50)])
    np.testing.assert_allclose(rows, direct[:50], rtol=1e-12)
    with pytest.raises(NonFiniteInputError):
        rbf_expansion(np.full((1, 7), np.nan), sv, coef, 0.3, check_finite=True)


def test_ocsvm_single_row_scores_match_batch() -> None:
    rng = np.random.default_rng(6)
    det = OneClassSVMDetector(random_state=0).fit(rng.normal(size=(500, 4)))
    X = rng.normal(size=(5, 4))
    batch = det.score_samples(X)
    rows = np.array([det.score_samples(X[i:i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(rows, batch, rtol=1e-12)


# -- Isolation Forest, LOF ----------------------------------------------------------------------

def test_iforest_flips_sklearn_sign_once() -> None:
    X = np.random.default_rng(0).normal(size=(300, 3))
    det = IsolationForestDetector(n_estimators=20, random_state=0).fit(X)
    np.testing.assert_array_equal(det.score_samples(X), -det.estimator_.score_samples(X))


def test_lof_keeps_a_bounded_training_sample() -> None:
    X = np.random.default_rng(0).normal(size=(3000, 4))
    det = LOFDetector(max_samples=500, random_state=0).fit(X)
    assert det.estimator_.n_samples_fit_ == 500
    np.testing.assert_array_equal(det.score_samples(X[:10]), -det.estimator_.score_samples(X[:10]))
    tiny = LOFDetector(n_neighbors=20).fit(X[:5])  # neighbours capped at n - 1
    assert tiny.estimator_.n_neighbors_ == 4
    with pytest.raises(DataError, match="1 sample; LOF needs at least 2"):
        LOFDetector().fit(X[:1])


# -- Robust z -----------------------------------------------------------------------------------

def test_robust_scales_fall_back_from_mad_to_std_to_floor() -> None:
    rng = np.random.default_rng(0)
    X = np.column_stack([
        rng.normal(size=1000) * 2.0,                   # ordinary: 1.4826 * MAD ~ 2
        (rng.random(1000) < 0.1).astype(float),        # mostly 0: MAD = 0 -> std
        np.full(1000, 5.0),                            # constant: std = 0 -> min_scale
    ])
    det = RobustZDetector(min_scale=1e-3).fit(X)
    assert det.scale_[0] == pytest.approx(2.0, rel=0.1)
    assert det.scale_[1] == pytest.approx(X[:, 1].std())
    assert det.scale_[2] == 1e-3
    # a change in the constant column is huge but finite
    assert np.isfinite(det.score_samples(np.array([[0.0, 0.0, 6.0]]))).all()


def test_robust_score_is_mean_of_top_fraction_of_abs_z() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 20))
    det = RobustZDetector(top_fraction=0.1).fit(X)  # ceil(0.1 * 20) = 2 columns
    assert det.n_top_ == 2
    Y = rng.normal(size=(30, 20)) * 3
    z = np.abs((Y - det.center_) / det.scale_)
    expected = np.sort(z, axis=1)[:, -2:].mean(axis=1)
    np.testing.assert_allclose(det.score_samples(Y), expected, rtol=1e-12)
    assert RobustZDetector(top_fraction=0.01).fit(X).n_top_ == 1
    assert RobustZDetector(top_fraction=1.0).fit(X).n_top_ == 20


# -- Ensemble -----------------------------------------------------------------------------------

def test_ensemble_averages_robustly_standardised_member_scores() -> None:
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(400, 5)), rng.normal(size=(50, 5)) * 2
    det = EnsembleDetector(members=("robust", "lof"), random_state=0).fit(X)
    parts = [(m.score_samples(Y) - c) / s
             for m, c, s in zip(det.detectors_, det.centers_, det.scales_, strict=True)]
    np.testing.assert_allclose(det.score_samples(Y), np.mean(parts, axis=0), rtol=1e-12)
    assert [type(m) for m in det.detectors_] == [RobustZDetector, LOFDetector]


@pytest.mark.parametrize(("params", "match"), [
    ({"members": ()}, "members=()"),
    ({"members": ("robust", "svm")}, "members=.*distinct names from"),
    ({"members": ("robust", "robust")}, "distinct names"),
    ({"members": ("robust",), "member_params": {"lof": {}}}, "member_params=.*keyed by"),
    ({"members": ("robust",), "member_params": {"robust": {"depth": 3}}}, "unknown parameter"),
])
def test_ensemble_bad_parameters(params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        EnsembleDetector(**params).fit(np.zeros((20, 2)))


# -- Registry, trusted types, validation helper --------------------------------------------------

def test_registry_and_make_detector() -> None:
    assert set(DETECTORS) == {"ocsvm", "iforest", "knn", "lof", "robust", "ensemble",
                              "lstm_ae", "supervised"}
    det = make_detector("ocsvm", nu=0.1, max_support_vectors=10)
    assert isinstance(det, OneClassSVMDetector)
    assert det.get_params()["nu"] == 0.1
    with pytest.raises(ConfigError, match="unknown detector 'svm'; allowed: 'ensemble', "
                                          "'iforest', 'knn', 'lof', 'lstm_ae', 'ocsvm', "
                                          "'robust', 'supervised'"):
        make_detector("svm")
    with pytest.raises(ConfigError, match=r"has no parameter.*depth; allowed: .*n_estimators"):
        make_detector("iforest", depth=3)


def test_trusted_types_name_every_detector_class() -> None:
    for cls in DETECTORS.values():
        assert f"{cls.__module__}.{cls.__qualname__}" in TRUSTED_TYPES
    assert all(t.split(".")[0] in {"aws_anomaly", "sklearn", "numpy", "builtins"}
               for t in TRUSTED_TYPES)


def test_check_feature_matrix_edge_cases() -> None:
    big = np.full((3, 2), 1e308)  # the column sums overflow, yet every value is finite
    assert check_feature_matrix(big, where="t") is big
    with pytest.raises(DataError, match="sparse"):
        check_feature_matrix(sp.csr_matrix(np.eye(2)), where="t")
    with pytest.raises(DataError, match="Complex data not supported"):
        check_feature_matrix(np.ones((2, 2), dtype=complex), where="t")
    with pytest.raises(DataError, match=r"t: X holds NaN/inf in 2 column\(s\): column 0"):
        check_feature_matrix(np.array([[np.nan, np.inf], [1.0, 2.0]]), where="t")


def test_ocsvm_finds_nan_in_a_late_chunk_without_a_separate_pass() -> None:
    rng = np.random.default_rng(9)
    det = OneClassSVMDetector(random_state=0, n_jobs=2).fit(rng.normal(size=(300, 3)))
    X = rng.normal(size=(40_000, 3))  # three chunks, scored on two threads
    X[39_000, 2] = np.nan
    with pytest.raises(DataError, match=r"OneClassSVMDetector.predict: .*column 2 has 1 of "
                                        r"40000 rows non-finite \(first at row 39000\)"):
        det.predict(X)
    huge = np.full((2, 3), 1e200)  # norms overflow, values are finite: scored, not rejected
    assert np.isfinite(det.score_samples(huge)).all()


# -- kNN distance ----------------------------------------------------------------------------------

def test_knn_matches_brute_force_and_is_out_of_fit() -> None:
    from aws_anomaly.detectors import KNNDetector

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4))
    Q = rng.normal(size=(50, 4)) * 2
    det = KNNDetector(n_neighbors=3).fit(X)
    full = np.sqrt(((Q[:, None, :] - X[None, :, :]) ** 2).sum(axis=2))
    expect = np.sort(full, axis=1)[:, :3].mean(axis=1)
    np.testing.assert_allclose(det.score_samples(Q), expect, rtol=1e-9, atol=1e-9)
    # Leave-one-out training scores: never the trivial self-distance 0 for distinct rows.
    self_d = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(self_d, np.inf)
    np.testing.assert_allclose(det.training_scores_, np.sort(self_d, axis=1)[:, :3].mean(axis=1),
                               rtol=1e-9, atol=1e-9)
    assert det.training_scores_.min() > 0


def test_knn_caps_reference_rows_reproducibly() -> None:
    from aws_anomaly.detectors import KNNDetector

    X = np.random.default_rng(0).normal(size=(500, 3))
    a = KNNDetector(max_train_rows=100, random_state=7).fit(X)
    b = KNNDetector(max_train_rows=100, random_state=7).fit(X)
    assert a.reference_.shape == (100, 3)
    np.testing.assert_array_equal(a.reference_, b.reference_)
    with pytest.raises(ConfigError, match="n_neighbors"):
        KNNDetector(n_neighbors=0).fit(X)


def test_knn_offset_is_out_of_fit_when_the_reference_is_subsampled() -> None:
    from aws_anomaly.detectors import KNNDetector

    X = np.random.default_rng(1).normal(size=(400, 2))
    det = KNNDetector(max_train_rows=100, random_state=3, contamination=0.1)
    train_scores = det._fit_and_score(X)
    # No training row scores the trivial 0 of meeting itself.
    assert train_scores.min() > 0
    assert det.offset_ == pytest.approx(np.quantile(train_scores, 0.9))


def test_knn_views_are_rms_distances_averaged_and_saved_without_their_cache() -> None:
    import skops.io as sio

    from aws_anomaly.detectors import TRUSTED_TYPES, KNNDetector

    rng = np.random.default_rng(4)
    X, Q = rng.normal(size=(200, 5)), rng.normal(size=(30, 5)) * 3
    views = [[0, 1], [1, 2, 3, 4]]  # column 1 sits in both views
    det = KNNDetector(views=views).fit(X)
    expect = np.zeros(len(Q))
    for v in views:
        d = np.sqrt(((Q[:, None, v] - X[None, :, v]) ** 2).sum(axis=2)).min(axis=1)
        expect += d / np.sqrt(len(v)) / len(views)
    np.testing.assert_allclose(det.score_samples(Q), expect, rtol=1e-9, atol=1e-9)
    blob = sio.dumps(det)
    assert b"_view_cache" not in blob
    back = sio.loads(blob, trusted=TRUSTED_TYPES)
    np.testing.assert_array_equal(back.score_samples(Q), det.score_samples(Q))
    with pytest.raises(ConfigError, match="view 1"):
        KNNDetector(views=[[0], [9]]).fit(X)
