"""One contract, every registered detector (default hyperparameters, fixed seeds)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import skops.io as sio
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils.estimator_checks import check_estimator
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from aws_anomaly.detectors import DETECTORS, TRUSTED_TYPES, BaseDetector
from aws_anomaly.detectors.lstm_ae import torch_available
from aws_anomaly.errors import ConfigError, DataError, NotFittedError

N_FEATURES = 6
#: Detectors whose dependency is an optional extra: skipped with the reason where it is not
#: installed, except in CI, which installs it (`make test`), where its absence fails.
OPTIONAL = {"lstm_ae": ("torch (the 'deep' extra)", torch_available())}


def _param(name: str) -> object:
    what, present = OPTIONAL.get(name, ("", True))
    if present or os.environ.get("CI", "").lower() == "true":
        return name
    return pytest.param(name, marks=pytest.mark.skip(reason=f"{what} is not installed"))


# The unsupervised contract (``fit(X)``) of every detector but the one that learns from
# labels, whose own suite is tests/unit/test_detector_supervised.py.
NAMES = [_param(n) for n in sorted(DETECTORS)
         if not DETECTORS[n].requires_labels]


def _new(name: str, **params: object) -> BaseDetector:
    cls = DETECTORS[name]
    if "random_state" in cls().get_params():
        params.setdefault("random_state", 0)
    return cls(**params)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    # Correlated columns, like real feature groups, so the detectors see structure.
    mix = rng.normal(size=(N_FEATURES, N_FEATURES)) * 0.5 + np.eye(N_FEATURES)
    train = rng.normal(size=(600, N_FEATURES)) @ mix
    held_out = rng.normal(size=(200, N_FEATURES)) @ mix
    spike = held_out[:1] + 8.0 * train.std(axis=0)  # far from the cloud in every column
    return {"train": train, "held_out": held_out, "spike": spike}


@pytest.fixture(scope="module")
def fitted(data: dict[str, np.ndarray]) -> dict[str, BaseDetector]:
    class Lazy(dict):  # type: ignore[type-arg]
        """Fits a detector on first use, so a skipped one never needs its extra."""

        def __missing__(self, name: str) -> BaseDetector:
            self[name] = _new(name).fit(data["train"])
            return self[name]

    return Lazy()


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_sets_learned_attributes(name: str, data) -> None:
    det = _new(name)
    assert det.fit(data["train"]) is det
    assert det.n_features_in_ == N_FEATURES
    assert np.isfinite(det.offset_)
    check_is_fitted(det)  # scikit-learn's own check agrees


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["score_samples", "decision_function", "predict"])
def test_unfitted_use_raises_not_fitted(name: str, method: str, data) -> None:
    det = _new(name)
    with pytest.raises(NotFittedError, match=f"not fitted yet.*before {method}"):
        getattr(det, method)(data["held_out"])
    with pytest.raises(SklearnNotFittedError):  # the same error, seen as scikit-learn's
        getattr(det, method)(data["held_out"])
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(det)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises_data_error_naming_column(name: str, bad: float, data,
                                                          fitted) -> None:
    X = data["held_out"].copy()
    X[[5, 17, 30], 3] = bad
    with pytest.raises(DataError, match=r"column 3 has 3 of 200 rows non-finite"):
        fitted[name].score_samples(X)
    with pytest.raises(DataError, match=r"column 3 has 3 of 200 rows"):
        _new(name).fit(X)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_column_count_raises(name: str, data, fitted) -> None:
    with pytest.raises(DataError, match=f"X has {N_FEATURES - 1} features.*expecting "
                                        f"{N_FEATURES}"):
        fitted[name].predict(data["held_out"][:, :-1])


@pytest.mark.parametrize("name", NAMES)
def test_bad_shape_and_type_raise_data_error(name: str, fitted) -> None:
    det = fitted[name]
    with pytest.raises(DataError, match="must be 2-D"):
        det.score_samples(np.zeros(N_FEATURES))
    with pytest.raises(DataError, match="must be numeric"):
        det.score_samples(np.array([["a"] * N_FEATURES]))
    with pytest.raises(DataError, match="0 sample"):
        det.score_samples(np.zeros((0, N_FEATURES)))


@pytest.mark.parametrize("name", NAMES)
def test_injected_spike_scores_highest_and_is_predicted_anomalous(name: str, data,
                                                                  fitted) -> None:
    det = fitted[name]
    X = np.vstack([data["held_out"], data["spike"]])
    scores = det.score_samples(X)
    assert scores.shape == (X.shape[0],)
    assert int(np.argmax(scores)) == X.shape[0] - 1
    pred = det.predict(X)
    assert set(np.unique(pred)) <= {-1, 1}
    assert pred[-1] == -1
    # Most held-out normal rows stay normal at the default contamination (1%).
    assert np.mean(pred[:-1] == -1) < 0.1


@pytest.mark.parametrize("name", NAMES)
def test_decision_function_and_predict_follow_sklearn_meaning(name: str, data, fitted) -> None:
    det = fitted[name]
    X = data["held_out"]
    scores = det.score_samples(X)
    decision = det.decision_function(X)
    np.testing.assert_allclose(decision, det.offset_ - scores, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(det.predict(X), np.where(decision < 0, -1, 1))


@pytest.mark.parametrize("name", NAMES)
def test_contamination_sets_training_outlier_fraction(name: str, data) -> None:
    if name in ("lof", "knn"):
        # Their offset_ comes from leave-one-out training scores, by design: scored again,
        # a training row meets itself at distance 0.
        pytest.skip(f"{name}'s offset_ comes from leave-one-out training scores, by design")
    det = _new(name, contamination=0.1).fit(data["train"])
    frac = float(np.mean(det.predict(data["train"]) == -1))
    assert 0.08 <= frac <= 0.12


@pytest.mark.parametrize("name", NAMES)
def test_skops_round_trip_gives_identical_scores(name: str, data, fitted, tmp_path) -> None:
    det = fitted[name]
    path = tmp_path / f"{name}.skops"
    sio.dump(det, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert set(untrusted) <= set(TRUSTED_TYPES), set(untrusted) - set(TRUSTED_TYPES)
    loaded = sio.load(path, trusted=TRUSTED_TYPES)
    assert type(loaded) is type(det)
    X = np.vstack([data["held_out"], data["spike"]])
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    np.testing.assert_array_equal(loaded.predict(X), det.predict(X))
    assert loaded.get_params() == det.get_params()


@pytest.mark.parametrize("name", NAMES)
def test_score_prepared_gives_score_samples_numbers(name: str, data, fitted) -> None:
    """The live path's unvalidated call scores exactly as the checked one, a row at a time
    and in a block, and any per-model cache it builds is never saved."""
    det = fitted[name]
    X = np.ascontiguousarray(np.vstack([data["held_out"][:20], data["spike"]]))
    want = det.score_samples(X)
    np.testing.assert_array_equal(det.score_prepared(X), want)
    rows = np.concatenate([det.score_prepared(X[i:i + 1]) for i in range(len(X))])
    np.testing.assert_array_equal(rows, np.concatenate(
        [det.score_samples(X[i:i + 1]) for i in range(len(X))]))
    assert not {"_rbf_cache", "_view_cache"} & set(det.__getstate__())


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_with_fixed_random_state(name: str, data, fitted) -> None:
    again = _new(name).fit(data["train"])
    np.testing.assert_array_equal(again.score_samples(data["held_out"]),
                                  fitted[name].score_samples(data["held_out"]))


@pytest.mark.parametrize("name", NAMES)
def test_clone_get_params_set_params(name: str, fitted) -> None:
    det = fitted[name]
    copy = clone(det)
    assert not hasattr(copy, "offset_")
    assert copy.get_params() == det.get_params()
    copy.set_params(contamination=0.2)
    assert copy.get_params()["contamination"] == 0.2
    assert det.get_params()["contamination"] == 0.01  # the original is untouched


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [0.0, 0.7, -0.1, "auto", True])
def test_bad_contamination_raises_config_error_naming_it(name: str, value: object,
                                                         data) -> None:
    with pytest.raises(ConfigError, match=r"contamination=.*not allowed.*\(0\.0, 0\.5\]"):
        _new(name, contamination=value).fit(data["train"])


@pytest.mark.parametrize("name", NAMES)
def test_float32_and_dataframe_input_score_like_float64(name: str, data, fitted) -> None:
    pd = pytest.importorskip("pandas")
    det = fitted[name]
    X = data["held_out"][:20]
    ref = det.score_samples(X)
    # a DataFrame arrives column-major, so BLAS may sum in another order
    np.testing.assert_allclose(det.score_samples(pd.DataFrame(X)), ref, rtol=1e-12, atol=1e-12)
    # float32 rounds the input, so the scores agree only approximately
    np.testing.assert_allclose(det.score_samples(X.astype(np.float32)), ref, rtol=1e-3,
                               atol=1e-3)


# scikit-learn's common checks, minus the ones that contradict a deliberate choice:
EXPECTED_SKLEARN_FAILURES = {
    # Our score_samples is "higher = more anomalous", so decision = offset_ - score_samples,
    # where scikit-learn's outlier checks expect score_samples - offset_.
    "check_outliers_train": "score_samples sign is flipped on purpose (higher = anomalous)",
    # Non-numeric input raises DataError (a ValueError), not the TypeError the check expects.
    "check_dtype_object": "non-numeric input raises the project's DataError (ValueError)",
}
LOF_EXTRA_FAILURES = {
    # LOF and kNN: offset_ comes from leave-one-out scores of the training rows (honest for
    # new data), while
    # predict on the training rows sees each row as its own neighbour: fit_predict on the
    # training data flags fewer rows than contamination.
    "check_outliers_fit_predict": "offset_ from leave-one-out training LOFs",
}
# Light settings where the defaults only cost time (the checks call fit ~100 times).
LIGHT_PARAMS: dict[str, dict[str, object]] = {
    "iforest": {"n_estimators": 3},
    "ensemble": {"members": ("robust", "lof")},
    "lstm_ae": {"max_epochs": 2, "hidden_size": 4},
}


@pytest.mark.parametrize("name", NAMES)
def test_sklearn_common_checks(name: str) -> None:
    expected = dict(EXPECTED_SKLEARN_FAILURES)
    det = _new(name, **LIGHT_PARAMS.get(name, {}))
    if name in ("lof", "knn") or "lof" in det.get_params().get("members", ()):
        expected.update(LOF_EXTRA_FAILURES)
    # One BLAS/OpenMP thread: the checks make ~100 tiny calls, where thread start-up and
    # spin-waiting on a busy 2-core runner cost more than the work.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        results = check_estimator(det, expected_failed_checks=expected, on_fail=None,
                                  on_skip=None)
    failed = {r["check_name"]: repr(r["exception"])[:300] for r in results
              if r["status"] == "failed"}
    assert failed == {}
    ran = {r["check_name"] for r in results if r["status"] == "passed"}
    # The essentials did run (not skipped).
    assert {"check_estimators_nan_inf", "check_estimators_unfitted", "check_fit_idempotent",
            "check_n_features_in_after_fitting", "check_methods_subset_invariance",
            "check_estimators_overwrite_params", "check_fit2d_predict1d"} <= ran
