"""AnomalyModel.score / predict on a DataFrame: one row per input row, in the input's order;
the regular grid the frame was loaded onto on request (rows="grid")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data import Dataset
from aws_anomaly.data.generator import generate_demo, generate_frame
from aws_anomaly.errors import ConfigError
from aws_anomaly.features import FeatureSpec
from aws_anomaly.model import AnomalyModel

METRICS = ["cluster_cpu_request_ratio", "cluster_mem_request_ratio", "cluster_pod_ratio"]


@pytest.fixture(scope="module")
def model() -> AnomalyModel:
    ds, _ = generate_demo(clusters=2, days=3, seed=4)
    spec = FeatureSpec(windows=(6, 24), lags=(1,), include_seasonal=False, cross_windows=(24,))
    return AnomalyModel("robust", spec=spec, calibration={"method": "target_fpr"}).fit(ds)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """Two clusters as scraped: scrape gaps (missing rows), entities interleaved in time."""
    frame, _ = generate_frame(clusters=2, days=2, seed=5)
    frame = frame.drop(columns=["is_anomaly", "anomaly_type"])
    return frame.sort_values(["timestamp", "entity"], kind="stable").reset_index(drop=True)


def test_one_row_per_input_row_in_the_inputs_order(model: AnomalyModel,
                                                   raw: pd.DataFrame) -> None:
    framed = raw.set_index(pd.RangeIndex(1000, 1000 + len(raw)))  # an index of its own
    scores = model.score(framed)
    grid = model.score(framed, rows="grid")
    assert len(grid) > len(raw)  # the scrape gaps were filled on the grid
    assert len(scores) == len(raw) and scores.index.equals(framed.index)
    assert (scores["timestamp"].to_numpy() == pd.to_datetime(raw["timestamp"], utc=True)
            .to_numpy()).all()
    assert (scores["entity"].to_numpy() == raw["entity"].to_numpy()).all()
    # each row carries the score of its own grid point
    keyed = grid.set_index(["entity", "timestamp"])
    want = keyed.loc[list(zip(scores["entity"], scores["timestamp"], strict=True))]
    np.testing.assert_array_equal(scores["anomaly_score"].to_numpy(),
                                  want["anomaly_score"].to_numpy())
    assert list(scores.columns) == list(grid.columns)
    # predict: one label per input row, the same flags
    labels = model.predict(framed)
    assert labels.shape == (len(raw),)
    np.testing.assert_array_equal(labels == -1, scores["is_anomaly"].to_numpy())
    assert model.predict(framed, rows="grid").shape == (len(grid),)


def test_rows_moved_or_merged_onto_the_grid_share_its_score(model: AnomalyModel,
                                                            raw: pd.DataFrame) -> None:
    one = raw[raw["entity"] == raw["entity"].iloc[0]].reset_index(drop=True)
    late = one.copy()
    t = pd.to_datetime(late["timestamp"], utc=True)
    late.loc[100, "timestamp"] = t[100] + pd.Timedelta("2min")  # a late scrape, off the grid
    dup = pd.concat([late.iloc[:201], late.iloc[[200]], late.iloc[201:]], ignore_index=True)
    scores = model.score(dup)
    grid = model.score(dup, rows="grid")
    assert len(scores) == len(dup)
    assert scores["timestamp"].iloc[100] == t[100] + pd.Timedelta("2min")  # its own time
    on_grid = grid.set_index("timestamp")["anomaly_score"]
    assert scores["anomaly_score"].iloc[100] == on_grid[t[100]]
    assert scores["anomaly_score"].iloc[200] == scores["anomaly_score"].iloc[201]


def test_rows_dropped_by_loading_come_back_unscored(model: AnomalyModel,
                                                    raw: pd.DataFrame) -> None:
    one = raw[raw["entity"] == raw["entity"].iloc[0]].reset_index(drop=True)
    one.loc[:2, "cluster_pod_ratio"] = np.nan  # no value yet: loading trims these rows
    scores = model.score(one)
    assert len(scores) == len(one)
    assert scores["anomaly_score"].iloc[:3].isna().all()
    assert not scores["is_anomaly"].iloc[:3].any() and not scores["ready"].iloc[:3].any()
    assert (scores["top_metric"].iloc[:3] == "").all()
    assert scores["anomaly_score"].iloc[3:].notna().all()
    assert (model.predict(one)[:3] == 1).all()


def test_a_dataset_and_an_on_grid_frame_are_unchanged(model: AnomalyModel) -> None:
    ds, _ = generate_demo(clusters=2, days=2, seed=6)
    a = model.score(ds)
    pd.testing.assert_frame_equal(a, model.score(ds, rows="grid"))
    frame = ds.frame.drop(columns=["is_anomaly", "anomaly_type"])
    pd.testing.assert_frame_equal(a, model.score(frame))
    assert Dataset.from_frame(frame).frame.shape[0] == len(a)
    with pytest.raises(ConfigError, match=r"rows must be 'input' or 'grid', got 'all'"):
        model.score(frame, rows="all")
