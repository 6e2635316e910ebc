"""The detector that learns from labelled anomalies (detectors/supervised.py): its own part of
the detector contract (it needs ``y``), and the model handing it the labelled rows that every
other detector is kept from."""

from __future__ import annotations

import numpy as np
import pytest
import skops.io as sio

from aws_anomaly.data.generator import generate_demo
from aws_anomaly.detectors import TRUSTED_TYPES, SupervisedDetector
from aws_anomaly.detectors.supervised import MIN_ANOMALOUS_ROWS
from aws_anomaly.errors import ConfigError, DataError
from aws_anomaly.evaluation.metrics import evaluate_flags
from aws_anomaly.evaluation.split import chronological_split
from aws_anomaly.model import AnomalyModel


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    # normal rows, and anomalies that stay inside every column's range (a broken relation
    # between two columns): what a distance to normal rows ranks low and labels can teach
    rng = np.random.default_rng(7)
    n = 1200
    a = rng.normal(size=n)
    X = np.c_[a, a + 0.1 * rng.normal(size=n), rng.normal(size=(n, 2))]
    y = np.zeros(n, dtype=bool)
    y[::12] = True
    X[y, 1] = -X[y, 0] + 0.1 * rng.normal(size=int(y.sum()))
    return {"X": X[:800], "y": y[:800], "Xt": X[800:], "yt": y[800:]}


@pytest.fixture(scope="module")
def fitted(data) -> SupervisedDetector:
    return SupervisedDetector(max_iter=60, random_state=0).fit(data["X"], data["y"])


def test_it_ranks_the_labelled_kind_of_anomaly_on_new_rows(data, fitted) -> None:
    s = fitted.score_samples(data["Xt"])
    yt = data["yt"]
    # every new anomalous row but a few outscores the normal rows' 95th percentile
    assert np.mean(s[yt] > np.quantile(s[~yt], 0.95)) > 0.85
    # offset_ is the normal training rows' 99th percentile (contamination 1 %)
    normal = fitted.score_samples(data["X"][~data["y"]])
    assert np.mean(normal > fitted.offset_) == pytest.approx(0.01, abs=0.005)
    np.testing.assert_array_equal(fitted.predict(data["Xt"]),
                                  np.where(fitted.offset_ - s < 0, -1, 1))


def test_without_enough_labels_it_says_what_it_needs(data) -> None:
    with pytest.raises(DataError, match=r"needs labels \(y: 1 = anomalous\)"):
        SupervisedDetector().fit(data["X"])
    few = np.zeros(len(data["X"]), dtype=bool)
    few[:MIN_ANOMALOUS_ROWS - 1] = True
    with pytest.raises(DataError, match=f"{MIN_ANOMALOUS_ROWS - 1} of 800 training rows are "
                                        "labelled anomalous; it needs at least"):
        SupervisedDetector().fit(data["X"], few)
    with pytest.raises(DataError, match=r"one label per row of X, 0 .* or 1"):
        SupervisedDetector().fit(data["X"], data["y"][:-1])
    with pytest.raises(DataError, match="one label per row of X"):
        SupervisedDetector().fit(data["X"], np.full(len(data["X"]), 2))
    with pytest.raises(ConfigError, match="learning_rate"):
        SupervisedDetector(learning_rate=0.0).fit(data["X"], data["y"])
    X = data["X"].copy()
    X[3, 2] = np.nan
    with pytest.raises(DataError, match="column 2 has 1 of 800 rows non-finite"):
        SupervisedDetector().fit(X, data["y"])


def test_skops_round_trip_live_rows_and_determinism(data, fitted, tmp_path) -> None:
    path = tmp_path / "sup.skops"
    sio.dump(fitted, path)
    assert set(sio.get_untrusted_types(file=path)) <= set(TRUSTED_TYPES)
    loaded = sio.load(path, trusted=TRUSTED_TYPES)
    X = data["Xt"][:30]
    np.testing.assert_array_equal(loaded.score_samples(X), fitted.score_samples(X))
    # the live path's unvalidated call, a row at a time, gives the same numbers
    rows = np.concatenate([fitted.score_prepared(X[i:i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(rows, fitted.score_samples(X), rtol=0, atol=1e-12)
    again = SupervisedDetector(max_iter=60, random_state=0).fit(data["X"], data["y"])
    np.testing.assert_array_equal(again.score_samples(X), fitted.score_samples(X))


@pytest.fixture(scope="module")
def demo():
    ds, _ = generate_demo(clusters=2, days=14, seed=3)
    return chronological_split(ds)


def test_the_model_trains_it_on_the_labelled_rows_the_others_never_see(demo, tmp_path) -> None:
    split = demo
    sup = AnomalyModel("supervised", {"max_iter": 60}).fit(split.train, split.validation)
    ocsvm = AnomalyModel("ocsvm").fit(split.train, split.validation)
    summary = sup.training_summary_
    # the same normal rows as any detector, plus the labelled anomalous ones (ready rows)
    assert summary["train_rows_used"] == ocsvm.training_summary_["train_rows_used"]
    n_anom = summary["train_rows_excluded_labelled"]
    assert n_anom > MIN_ANOMALOUS_ROWS
    trees = sup.detector_.estimator_
    assert trees.classes_.tolist() == [False, True]
    assert trees.n_features_in_ == len(sup.columns_)
    # its offset_ comes from the normal rows only: about 1 % of them score above it
    scores = sup.score(split.test, history=split.train)
    got = evaluate_flags(split.test.frame, scores["is_anomaly"].to_numpy())
    assert got["fpr"] <= 0.05  # the validation threshold holds on the test part
    # a bundle, checksummed and typed as any other, scores the same
    sup.save(tmp_path / "sup")
    back = AnomalyModel.load(tmp_path / "sup")
    np.testing.assert_array_equal(back.score(split.test, history=split.train)["anomaly_score"],
                                  scores["anomaly_score"])


def test_the_model_refuses_it_without_labelled_anomalies(demo) -> None:
    split = demo
    plain = split.train.subset(labels=False)
    with pytest.raises(DataError, match=r"0 of .* training rows are labelled anomalous"):
        AnomalyModel("supervised").fit(plain)
    with pytest.raises(ConfigError, match="needs exclude_labelled=True"):
        AnomalyModel("supervised", exclude_labelled=False).fit(split.train)


def test_a_row_cap_subsamples_each_class(data, monkeypatch) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    seen = []
    real_fit = HistGradientBoostingClassifier.fit

    def spy(self, X, y, *a, **k):  # type: ignore[no-untyped-def]
        seen.append((len(X), int(np.sum(y))))
        return real_fit(self, X, y, *a, **k)

    monkeypatch.setattr(HistGradientBoostingClassifier, "fit", spy)
    n_anom = int(data["y"].sum())  # 67 of 800
    for cap in (300, 300, 40, None):
        SupervisedDetector(max_iter=20, max_rows_per_class=cap, random_state=0).fit(
            data["X"], data["y"])
    # each class at most `cap` rows: 300 normal + every anomalous row; 40 + 40; all 800
    assert seen == [(300 + n_anom, n_anom), (300 + n_anom, n_anom), (80, 40), (800, n_anom)]
    a = SupervisedDetector(max_iter=20, max_rows_per_class=300, random_state=0)
    b = SupervisedDetector(max_iter=20, max_rows_per_class=300, random_state=0)
    np.testing.assert_array_equal(a.fit(data["X"], data["y"]).score_samples(data["Xt"]),
                                  b.fit(data["X"], data["y"]).score_samples(data["Xt"]))
    with pytest.raises(ConfigError, match="max_rows_per_class"):
        SupervisedDetector(max_rows_per_class=5).fit(data["X"], data["y"])


def test_train_without_labels_says_what_supervised_needs(demo) -> None:
    from aws_anomaly.data import Dataset
    from aws_anomaly.workflows import train_model

    split = demo
    plain = Dataset.concat([split.train, split.validation, split.test]).subset(labels=False)
    with pytest.raises(DataError, match=r"--detector supervised learns from labelled "
                                        r"anomalies, and the training part \([\d,]+ rows\) "
                                        r"holds none; label incidents"):
        train_model(plain, detector="supervised", echo=False)


def test_only_a_detector_that_learns_from_labels_costs_the_labelled_rows(demo) -> None:
    # the labelled rows' features are built for a detector that needs them (or a selection
    # holding one), not for every fit on labelled data
    split = demo
    assert AnomalyModel("ocsvm")._fit_inputs(split.train, split.validation).Xa is None
    sup = AnomalyModel("supervised")._fit_inputs(split.train, split.validation)
    shared = AnomalyModel("ocsvm")._fit_inputs(split.train, split.validation,
                                               labelled_rows=True)
    assert sup.Xa is not None and len(sup.Xa) > MIN_ANOMALOUS_ROWS
    np.testing.assert_array_equal(shared.Xa, sup.Xa)
