"""Training at scale: the row cap, the shared work of detector selection, event masks.

benchmarks/train_scale.py measures the 500,000-row run; these tests pin what the speed-ups
must not change (the numbers) and what the cap does change (the rows learned from).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data.generator import generate_demo
from aws_anomaly.errors import ConfigError, DataError
from aws_anomaly.evaluation.metrics import events_to_mask
from aws_anomaly.evaluation.split import chronological_split, rolling_origin_folds
from aws_anomaly.features import FeatureSpec
from aws_anomaly.fitting import ready_rows
from aws_anomaly.model import MAX_FIT_ROWS, AnomalyModel
from aws_anomaly.tuning import cross_validate, seeded_params, select_detector

SPEC = FeatureSpec(windows=(6, 24), lags=(1,), include_quantiles=False, include_seasonal=False,
                   include_cross=False, include_calendar=False)


@pytest.fixture(scope="module")
def split():
    ds, _ = generate_demo(clusters=2, days=6, seed=11)
    return chronological_split(ds)


def _reference_mask(frame: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """The definition: row i carries the last event (in table order) covering it."""
    ids = np.full(len(frame), -1)
    ts = pd.to_datetime(frame["timestamp"], utc=True)
    for k, ev in events.reset_index(drop=True).iterrows():
        hit = ((frame["entity"].astype(str) == str(ev["entity"]))
               & (ts >= pd.Timestamp(ev["start"])) & (ts <= pd.Timestamp(ev["end"])))
        ids[hit.to_numpy()] = k
    return ids


def test_events_to_mask_matches_its_definition_on_a_shuffled_frame() -> None:
    rng = np.random.default_rng(3)
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    n = 1500
    frame = pd.DataFrame({
        "timestamp": t0 + pd.to_timedelta(rng.integers(0, 900, n) * 5, "min"),
        "entity": rng.choice(["a", "b", "c"], n)}).sample(frac=1, random_state=1)
    starts = t0 + pd.to_timedelta(rng.integers(0, 900, 40) * 5, "min")
    events = pd.DataFrame({"entity": rng.choice(["a", "b", "c", "not-in-frame"], 40),
                           "start": starts,
                           "end": starts + pd.to_timedelta(rng.integers(0, 60, 40) * 5, "min"),
                           "anomaly_type": "spike"})
    events.loc[3, "start"] = pd.NaT  # never matches, as before
    ids, types = events_to_mask(frame, events)
    expected = _reference_mask(frame, events.drop(index=3).reindex(events.index))
    expected[expected == 3] = -1
    assert (ids == expected).all()
    assert (ids >= 0).sum() > 100  # overlapping events included: the later one wins
    assert list(types[:2]) == ["spike", "spike"]
    bad = events.copy()
    bad.loc[5, "end"] = bad.loc[5, "start"] - pd.Timedelta("5min")
    with pytest.raises(DataError, match=r"events row 5: end .* is before start"):
        events_to_mask(frame, bad)


def test_ready_rows_follow_build_features(split) -> None:
    frame = split.train.frame
    ready = ready_rows(frame["entity"].to_numpy(), SPEC.min_history)
    m = AnomalyModel("robust", spec=SPEC).fit(split.train, split.validation)
    assert int((~ready).sum()) == m.training_summary_["warmup_rows"]
    per_entity = [int((~ready[(frame["entity"] == e).to_numpy()]).sum())
                  for e in split.train.entities]
    assert per_entity == [SPEC.min_history - 1] * len(split.train.entities)


def test_row_cap_subsamples_the_rows_learned_from(split) -> None:
    full = AnomalyModel("robust", spec=SPEC, max_fit_rows=None).fit(split.train,
                                                                    split.validation)
    usable = full.training_summary_["train_rows_used"]
    assert full.training_summary_["train_rows_usable"] == usable > 600
    capped = AnomalyModel("robust", spec=SPEC, max_fit_rows=500).fit(split.train,
                                                                     split.validation)
    summary = capped.training_summary_
    assert summary["train_rows_used"] == 500 and summary["train_rows_usable"] == usable
    assert summary["max_fit_rows"] == 500
    # A subsample: the scaler moved (a little), so the scores differ, deterministically.
    assert not np.array_equal(capped.scaler_.center_, full.scaler_.center_)
    again = AnomalyModel("robust", spec=SPEC, max_fit_rows=500).fit(split.train,
                                                                    split.validation)
    s1 = capped.score(split.test, history=split.train)["anomaly_score"].to_numpy()
    s2 = again.score(split.test, history=split.train)["anomaly_score"].to_numpy()
    assert np.array_equal(s1, s2)
    # Below the cap (the default is far above these rows) nothing changes at all.
    default = AnomalyModel("robust", spec=SPEC).fit(split.train, split.validation)
    assert default.max_fit_rows == MAX_FIT_ROWS
    s_full = full.score(split.test, history=split.train)["anomaly_score"].to_numpy()
    s_default = default.score(split.test, history=split.train)["anomaly_score"].to_numpy()
    assert np.array_equal(s_full, s_default)


def test_row_cap_is_validated_and_saved(split, tmp_path) -> None:
    for bad in (0, 9, 2.5, True, "all"):
        with pytest.raises(ConfigError, match="max_fit_rows must be None or an integer >= 10"):
            AnomalyModel("robust", max_fit_rows=bad)
    m = AnomalyModel("robust", spec=SPEC, max_fit_rows=700).fit(split.train, split.validation)
    loaded = AnomalyModel.load(m.save(tmp_path / "m"))
    assert loaded.max_fit_rows == 700
    assert loaded.training_summary_["max_fit_rows"] == 700


def test_selection_shares_each_folds_work_with_the_same_numbers(split) -> None:
    """Fitting every candidate of a fold on one set of features gives, candidate by
    candidate, the F1 each gets when cross-validated on its own."""
    dev = split.development
    names = ("robust", "iforest")
    _, table, _ = select_detector(dev, names, spec=SPEC, n_folds=2, seed=4)
    folds = rolling_origin_folds(dev, n_folds=2)
    for row in table:
        name = row["candidate"]
        params = seeded_params({}, name, 4)
        alone = cross_validate(lambda n=name, p=params: AnomalyModel(n, p, spec=SPEC),
                               folds, name=name)
        assert row["error"] is None
        assert row["folds_f1"] == [round(v, 4) for v in alone.f1], name


def test_selection_records_a_candidate_that_fails_and_goes_on(split) -> None:
    dev = split.development
    # An OCSVM nu outside (0, 1] fails in every fold (its parameter check).
    from aws_anomaly import tuning

    original = tuning.seeded_params

    def broken(params, detector, seed):
        out = original(params, detector, seed)
        return {**out, "nu": 5.0} if detector == "ocsvm" else out

    tuning.seeded_params = broken
    try:
        chosen, table, _ = select_detector(dev, ("ocsvm", "robust"), spec=SPEC, n_folds=2)
    finally:
        tuning.seeded_params = original
    rows = {r["candidate"]: r for r in table}
    assert chosen == "robust"
    assert rows["ocsvm"]["error"] and "nu" in rows["ocsvm"]["error"]
    assert rows["robust"]["error"] is None and len(rows["robust"]["folds_f1"]) == 2


def test_knn_nearest_neighbour_fast_path_gives_the_same_bits() -> None:
    """k = 1 (the default model) skips three passes over each (rows x reference) block; the
    scores and leave-one-out training scores must equal the general path's, bit for bit."""
    from aws_anomaly.detectors.knn import KNNDetector

    rng = np.random.default_rng(8)
    X = rng.normal(size=(900, 7)) * rng.uniform(0.1, 10, size=7)
    views = [[0, 1, 2], [2, 3, 4, 5, 6]]
    det = KNNDetector(n_neighbors=1, views=views, max_train_rows=400, random_state=1).fit(X)
    Q = np.r_[rng.normal(size=(300, 7)), X[:5]]  # X[:5] may sit in the reference set

    def general(rows: np.ndarray, start: int | None) -> np.ndarray:
        total = np.zeros(len(rows))
        for view, cols in enumerate(det.views_):
            d2 = det._sq_distances(rows, view, start)
            total += np.sqrt(np.partition(d2, 0, axis=1)[:, :1]).mean(axis=1) / np.sqrt(len(cols))
        return total / len(det.views_)

    assert np.array_equal(det.score_samples(Q), general(Q, None))
    ref = det.reference_
    loo = np.concatenate([general(ref[s:s + 256], s) for s in range(0, len(ref), 256)])
    assert np.array_equal(det.training_scores_, loo)
