"""benchmarks/speed.py: the batch reference is the same computation as AnomalyModel.score.

The batch aim (``AnomalyModel.score`` >= 4x a pandas + scikit-learn reference in the same run,
docs/performance.md) means something only if the reference computes what the model computes:
every feature column, the persistence EWMAs, the scaling, the detector, the calibration, the
band and the explanations of flagged rows. These tests pin that its numbers are the model's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data.generator import generate_demo
from aws_anomaly.evaluation.split import chronological_split
from aws_anomaly.features import build_features
from aws_anomaly.features.persist import with_persist
from aws_anomaly.model import AnomalyModel
from tests.unit.benchkit import load_benchmark


@pytest.fixture(scope="module")
def speed():
    yield from load_benchmark("speed.py", "speed_bench")


@pytest.fixture(scope="module")
def fitted():
    ds, _ = generate_demo(clusters=2, days=8, seed=0)
    split = chronological_split(ds)
    model = AnomalyModel("ocsvm", {"random_state": 0}).fit(split.train, split.validation)
    return model, ds


def test_pandas_features_equal_the_builders(speed, fitted) -> None:
    model, ds = fitted
    ef = ds.entity_frame(ds.entities[0])[list(model.metrics_)]
    ours = with_persist(build_features(ef.to_numpy(), pd.DatetimeIndex(ef.index),
                                       list(model.metrics_), model.spec).values,
                        model.persist_terms())
    feats = speed._ref_entity_features(ef, model.spec)
    names = model.all_feature_names_
    assert len(names) == ours.shape[1] == len(feats) + len(model.persist_terms())
    for j, name in enumerate(names[: len(feats)]):
        np.testing.assert_allclose(feats[name].to_numpy(), ours[:, j], rtol=0, atol=1e-9,
                                   err_msg=name)


def test_reference_scores_equal_anomaly_model_score(speed, fitted) -> None:
    model, ds = fitted
    ref = speed.reference_score(model, ds.frame)
    ours = model.score(ds)
    assert len(ref) == len(ours) == len(ds)
    assert ours["is_anomaly"].sum() >= 5  # explanations are compared on real flagged rows
    assert np.isfinite(ref["expected_" + model.metrics_[0]]).sum() > len(ds) // 2
    check = speed.reference_matches(model, ds, ref)
    assert check["match"], check
    assert check["score"] <= 1e-9 and check["contributions"] <= 1e-9 and check["band"] <= 1e-9
    np.testing.assert_array_equal(ref["is_anomaly"].to_numpy(), ours["is_anomaly"].to_numpy())


def test_the_check_sees_a_difference(speed, fitted) -> None:
    model, ds = fitted
    ref = speed.reference_score(model, ds.frame)
    ref.loc[len(ref) - 1, "anomaly_score"] += 1e-6
    check = speed.reference_matches(model, ds, ref)
    assert not check["match"] and check["score"] == pytest.approx(1e-6, rel=1e-3)


def test_reference_refuses_what_it_does_not_implement(speed, fitted) -> None:
    _, ds = fitted
    split = chronological_split(ds)
    robust = AnomalyModel("robust").fit(split.train, split.validation)
    with pytest.raises(ValueError, match="OCSVM"):
        speed.reference_score(robust, ds.frame)


def test_single_point_parts_split_the_update_and_count_the_flagged_points(speed, fitted) -> None:
    # the single-point breakdown (docs/performance.md) times copies of the primed scorer, so
    # the scorer it is given does not move, and it counts the points the update flags
    model, ds = fitted
    entity = ds.entities[0]
    ef = ds.entity_frame(entity)
    vals = ef[list(ds.metrics)].to_numpy(dtype=np.float64)
    start = model.spec.history_rows + 1
    scorer = model.stream(entity, history=ds.select([entity]).subset(
        end=ef.index[start]))
    before = scorer.get_state()
    got = speed._parts(scorer, ef.index, vals, start, 300, replays=2)
    after = scorer.get_state()
    assert before[0] == after[0]
    replay = scorer.copy()
    flags = [replay.update(ef.index[start + i], vals[start + i]).is_anomaly for i in range(300)]
    assert 0 < got["flagged_points"] == sum(flags) and got["points"] == 300
    assert all(got[k] > 0 for k in ("update_p50_us", "advance_p50_us", "transform_row_p50_us",
                                     "score_row_p50_us"))
