"""AnomalyModel: fit/score contract, warm-up rows, explanations, streaming = batch, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data import Dataset
from aws_anomaly.data.generator import generate_demo
from aws_anomaly.errors import ConfigError, DataError, NotFittedError
from aws_anomaly.evaluation.split import chronological_split, concat
from aws_anomaly.features import FeatureSpec
from aws_anomaly.model import AUTO_MAX_FPR, AnomalyModel, parse_threshold

SPEC = FeatureSpec(windows=(6, 24), lags=(1, 3), quantile_windows=(6,), include_seasonal=False,
                   cross_windows=(24,))


@pytest.fixture(scope="module")
def data() -> Dataset:
    ds, _ = generate_demo(clusters=2, days=4, seed=11)
    return ds


@pytest.fixture(scope="module")
def fitted(data: Dataset) -> tuple[AnomalyModel, object]:
    split = chronological_split(data)
    model = AnomalyModel("robust", spec=SPEC).fit(split.train, split.validation)
    return model, split


def test_score_columns_warmup_and_flags(fitted, data: Dataset) -> None:
    model, _ = fitted
    s = model.score(data)
    metrics = list(data.metrics)
    assert list(s.columns) == ["timestamp", "entity", "anomaly_score", "is_anomaly", "top_metric",
                               *[f"contrib_{m}" for m in metrics], "ready",
                               *[f"{k}_{m}" for m in metrics
                                 for k in ("expected", "lower", "upper")]]
    assert len(s) == len(data)
    assert (s["timestamp"].to_numpy() == data.frame["timestamp"].to_numpy()).all()
    # the first min_history - 1 rows of every entity are warming up: score 0, never flagged
    for _, g in s.groupby("entity"):
        warm = g.iloc[: SPEC.min_history - 1]
        assert not warm["ready"].any() and (warm["anomaly_score"] == 0).all()
        assert not warm["is_anomaly"].any() and (warm["top_metric"] == "").all()
        assert g.iloc[SPEC.min_history - 1:]["ready"].all()
    # flag exactly where the calibrated score reaches 1.0
    assert (s["is_anomaly"] == (s["anomaly_score"] >= 1.0)).all()
    flagged = s[s["is_anomaly"]]
    assert len(flagged) > 0
    contrib = flagged[[f"contrib_{m}" for m in metrics]].to_numpy()
    np.testing.assert_allclose(contrib.sum(axis=1), 1.0)
    assert (contrib >= 0).all()
    assert (flagged["top_metric"].to_numpy() == np.array(metrics)[contrib.argmax(axis=1)]).all()
    # predict keeps scikit-learn's meaning
    pred = model.predict(data)
    assert set(np.unique(pred)) <= {-1, 1}
    assert ((pred == -1) == s["is_anomaly"].to_numpy()).all()


def test_occlusion_names_the_metric_that_spiked(fitted, data: Dataset) -> None:
    model, split = fitted
    frame = split.test.frame.copy()
    metric = "cluster_pod_ratio"
    entity = split.test.entities[0]
    rows = np.flatnonzero(frame["entity"].to_numpy() == entity)
    i = rows[len(rows) // 2]
    frame.loc[i, metric] = frame.loc[i, metric] + 0.6
    test = Dataset(frame=frame, metrics=split.test.metrics, step=split.test.step)
    s = model.score(test, history=concat([split.train, split.validation]))
    assert s.loc[i, "is_anomaly"]
    assert s.loc[i, "top_metric"] == metric
    assert s.loc[i, f"contrib_{metric}"] > 0.5


def test_history_lookback_equals_scoring_the_whole_series(fitted, data: Dataset) -> None:
    model, split = fitted
    full = model.score(data)
    part = model.score(split.test, history=concat([split.train, split.validation]))
    keyed = full.set_index(["entity", "timestamp"]).loc[
        list(zip(part["entity"], part["timestamp"], strict=True))]
    assert part["ready"].all()
    np.testing.assert_allclose(part["anomaly_score"].to_numpy(),
                               keyed["anomaly_score"].to_numpy(), rtol=1e-9, atol=1e-9)


def test_stream_gives_the_batch_numbers(fitted, data: Dataset) -> None:
    model, _ = fitted
    entity = data.entities[0]
    ef = data.entity_frame(entity)
    batch = model.score(data.select([entity]))
    n = 400
    scorer = model.stream(entity)
    points = [scorer.update(ts, row) for ts, row in
              zip(ef.index[:n], ef[list(data.metrics)].to_numpy()[:n], strict=True)]
    np.testing.assert_allclose([p.anomaly_score for p in points],
                               batch["anomaly_score"].to_numpy()[:n], rtol=1e-7, atol=1e-7)
    assert [p.is_anomaly for p in points] == batch["is_anomaly"].tolist()[:n]
    assert [p.ready for p in points] == batch["ready"].tolist()[:n]
    assert [p.top_metric for p in points] == batch["top_metric"].tolist()[:n]
    # a primed stream continues where the history stops
    primed = model.stream(entity, history=data.select([entity]).slice_time(end=ef.index[n]))
    p = primed.update(ef.index[n], ef[list(data.metrics)].to_numpy()[n])
    assert p.anomaly_score == pytest.approx(batch["anomaly_score"].iloc[n], abs=1e-7)
    with pytest.raises(DataError, match="not after"):
        primed.update(ef.index[n], ef[list(data.metrics)].to_numpy()[n])
    with pytest.raises(DataError, match="off the"):
        primed.update(ef.index[n] + pd.Timedelta("7min"), ef[list(data.metrics)].to_numpy()[n])


def test_too_few_points_and_missing_metric(fitted, data: Dataset) -> None:
    model, _ = fitted
    short = data.frame[data.frame["entity"] == data.entities[0]].iloc[:10]
    with pytest.raises(DataError, match="needs at least"):
        model.score(short.drop(columns=["is_anomaly", "anomaly_type"]))
    with pytest.raises(DataError, match="cluster_pod_ratio"):
        model.score(data.frame.drop(columns=["cluster_pod_ratio"]))


def test_a_dataset_with_the_metrics_in_another_order_or_more_of_them_scores_the_same(
        fitted, data: Dataset) -> None:
    model, _ = fitted
    metrics = list(data.metrics)
    other = Dataset.from_frame(
        data.frame.assign(disk_ratio=0.3)[["timestamp", "entity", "disk_ratio",
                                           *metrics[::-1]]],
        metrics=["disk_ratio", *metrics[::-1]], step=data.step)
    pd.testing.assert_frame_equal(model.score(other), model.score(data))


def test_save_load_roundtrip_and_wide_frame_api(fitted, data: Dataset, tmp_path) -> None:
    model, _ = fitted
    path = model.save(tmp_path / "m")
    loaded = AnomalyModel.load(path)
    wide = data.frame.drop(columns=["is_anomaly", "anomaly_type"])
    pd.testing.assert_frame_equal(model.score(data), loaded.score(wide))
    np.testing.assert_array_equal(model.predict(data), loaded.predict(wide))


def test_threshold_parsing_and_unlabelled_calibration(data: Dataset) -> None:
    assert parse_threshold("best-f1") == {"method": "best_f1"}
    with pytest.raises(ConfigError, match=r"fpr:0\.01"):
        parse_threshold("p99")
    with pytest.raises(ConfigError, match=r"\(0, 0\.5\)"):
        parse_threshold("fpr:2")
    unlabelled = Dataset(frame=data.frame.drop(columns=["is_anomaly", "anomaly_type"]),
                         metrics=data.metrics, step=data.step)
    split = chronological_split(unlabelled)
    with pytest.raises(ConfigError, match="best-f1 needs labelled"):
        AnomalyModel("robust", spec=SPEC, calibration="best-f1").fit(split.train,
                                                                     split.validation)
    m = AnomalyModel("robust", spec=SPEC, calibration="share:0.05").fit(split.train,
                                                                        split.validation)
    s = m.score(split.validation, history=split.train)
    assert s["is_anomaly"].mean() == pytest.approx(0.05, abs=0.02)


def test_unfitted_and_bad_options() -> None:
    with pytest.raises(NotFittedError):
        AnomalyModel("robust").score(pd.DataFrame())
    with pytest.raises(ConfigError, match="unknown detector"):
        AnomalyModel("svm")
    with pytest.raises(ConfigError, match="feature_set"):
        AnomalyModel("robust", feature_set="some")


SEASONAL = FeatureSpec(windows=(6, 24), lags=(1,), include_quantiles=False, seasonal_period=24,
                       cross_windows=(24,))


@pytest.fixture(scope="module")
def persisted(data: Dataset) -> tuple[AnomalyModel, object]:
    split = chronological_split(data)
    model = AnomalyModel("robust", spec=SEASONAL, persist=(3, 6), persist_baseline=48)
    return model.fit(split.train, split.validation), split


def test_persistence_columns_are_ewm_of_the_seasonal_difference(persisted, data: Dataset) -> None:
    model, _ = persisted
    metric = data.metrics[0]
    names = model.all_feature_names_
    src, col = f"{metric}__season_diff_24", f"{metric}__season_diff_24__ewm_3_less_48"
    assert col in model.feature_names_ and f"{metric}__season_diff_24__ewm_6_less_48" in names
    # explanations count the new columns towards their metric
    assert model.feature_names_.index(col) in model.groups_[metric]
    entity = data.entities[0]
    X, _, _ = model._features(data.select([entity]), None, "t", prepared=False)
    x = pd.Series(X[:, names.index(src)])
    expected = (x.ewm(alpha=2 / 4, adjust=False).mean()
                - x.ewm(alpha=2 / 49, adjust=False).mean())
    np.testing.assert_allclose(X[:, names.index(col)], expected.to_numpy(), atol=1e-12)


def test_persistence_features_stream_like_batch_across_gaps_and_reload(persisted, data: Dataset,
                                                                       tmp_path) -> None:
    model, _ = persisted
    entity = data.entities[1]
    ef = data.entity_frame(entity)
    # a live feed that skips two points: the stream holds the last value, as the batch does
    keep = np.ones(len(ef), dtype=bool)
    keep[[150, 151]] = False
    values = ef[list(data.metrics)].to_numpy()
    held = values.copy()
    held[[150, 151]] = values[149]
    frame = pd.DataFrame({"timestamp": ef.index, "entity": entity,
                          **{m: held[:, j] for j, m in enumerate(data.metrics)}})
    batch = model.score(Dataset.from_frame(frame, metrics=list(data.metrics)))
    loaded = AnomalyModel.load(model.save(tmp_path / "m"))
    scorer = loaded.stream(entity)
    points = [scorer.update(ts, v) for ts, v, k in
              zip(ef.index[:300], values[:300], keep[:300], strict=True) if k]
    np.testing.assert_allclose([p.anomaly_score for p in points],
                               batch["anomaly_score"].to_numpy()[:300][keep[:300]],
                               rtol=1e-7, atol=1e-7)
    assert loaded.persist == (3, 6) and loaded.persist_baseline == 48


def test_persistence_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="persist spans"):
        AnomalyModel("robust", persist=(1,))
    with pytest.raises(ConfigError, match="persist must be a list"):
        AnomalyModel("robust", persist="12")
    with pytest.raises(ConfigError, match="longer than every persist span"):
        AnomalyModel("robust", persist=(6, 36), persist_baseline=36)
    with pytest.raises(ConfigError, match="persist_weight"):
        AnomalyModel("robust", persist_weight=0)
    assert AnomalyModel("robust", persist=(), persist_baseline=None).persist == ()


def test_auto_threshold_caps_the_validation_fpr(data: Dataset) -> None:
    split = chronological_split(data)
    model = AnomalyModel("robust", spec=SPEC).fit(split.train, split.validation)
    used = model.calibration_used_
    s = model.score(split.validation, history=split.train, explain="none")
    normal = (split.validation.frame["is_anomaly"].to_numpy() == 0) & s["ready"].to_numpy()
    fpr = float(s["is_anomaly"].to_numpy()[normal].mean())
    assert used["method"] in ("best_f1", "target_fpr")
    assert fpr <= AUTO_MAX_FPR + 1e-9 if used["method"] == "best_f1" else used == {
        "method": "target_fpr", "target_fpr": AUTO_MAX_FPR}
    # best-f1 asked for by name is not capped
    plain = AnomalyModel("robust", spec=SPEC, calibration="best-f1").fit(split.train,
                                                                       split.validation)
    assert plain.calibration_used_ == {"method": "best_f1"}
