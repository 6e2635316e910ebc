"""Model selection uses validation folds only; Optuna studies resume from their storage."""

from __future__ import annotations

import pytest

from aws_anomaly.data import Dataset
from aws_anomaly.data.generator import generate_demo
from aws_anomaly.errors import ConfigError
from aws_anomaly.evaluation.split import chronological_split
from aws_anomaly.features import FeatureSpec
from aws_anomaly.tuning import select_detector, tune

SPEC = FeatureSpec(windows=(6, 24), lags=(1,), include_quantiles=False, include_seasonal=False,
                   cross_windows=(24,))


@pytest.fixture(scope="module")
def development() -> Dataset:
    ds, _ = generate_demo(clusters=2, days=5, seed=21)
    return chronological_split(ds).development


def test_select_detector_records_table_and_reason(development: Dataset) -> None:
    chosen, table, reason = select_detector(development, ("robust", "iforest"), spec=SPEC,
                                            n_folds=2)
    assert chosen in ("robust", "iforest")
    assert [r["candidate"] for r in table] == ["robust", "iforest"]
    best = max(table, key=lambda r: r["objective"])
    assert best["candidate"] == chosen
    for r in table:
        assert len(r["folds_f1"]) == 2
        assert r["objective"] == pytest.approx(r["mean_f1"] - 0.5 * r["std_f1"], abs=2e-4)
    assert "test split was not used" in reason


def test_select_detector_needs_labels(development: Dataset) -> None:
    unlabelled = Dataset(frame=development.frame.drop(columns=["is_anomaly", "anomaly_type"]),
                         metrics=development.metrics, step=development.step)
    with pytest.raises(ConfigError, match="needs labelled"):
        select_detector(unlabelled, ("robust",), spec=SPEC)


def test_study_resumes_from_storage(development: Dataset, tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = tune(development, "ocsvm", 1, storage=storage, study_name="s", spec=SPEC,
                 n_folds=2, progress=False)
    assert first.n_trials == 1
    params_before = [t.params for t in first.study.trials]
    second = tune(development, "ocsvm", 2, storage=storage, study_name="s", spec=SPEC,
                  n_folds=2, progress=False)
    assert second.n_trials == 2
    # the first trial is the stored one, not re-run
    assert [t.params for t in second.study.trials[:1]] == params_before
    assert set(second.detector_params) >= {"nu", "gamma", "random_state"}
    assert second.best_value == max(t.value for t in second.study.trials)
    # asking for no more than what is stored runs nothing
    third = tune(development, "ocsvm", 2, storage=storage, study_name="s", spec=SPEC,
                 n_folds=2, progress=False)
    assert len(third.study.trials) == 2
    with pytest.raises(ConfigError, match="trials"):
        tune(development, "ocsvm", 0, spec=SPEC)
