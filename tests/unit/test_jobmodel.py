"""JobModel and the live parts work on their own, without a JobRunner: the split of the job
runner (issue 12, item 3) into model management, health and live series state."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.errors import AwsAnomalyError, SourceError
from aws_anomaly.jobhealth import JobHealth
from aws_anomaly.jobmodel import JobModel
from aws_anomaly.live import RecentPoints
from aws_anomaly.retrain import version_of
from aws_anomaly.sources.demo import DemoSource
from aws_anomaly.store import Store
from tests.unit.jobkit import STEP, T0, Clock, job_config


class FailingSource(DemoSource):
    """The demo source, unreachable while ``down`` is set."""

    down = False

    def fetch(self, start, end, *, entities=None):
        if self.down:
            raise SourceError("demo: connection refused", url="http://demo")
        return super().fetch(start, end, entities=entities)


def test_a_job_model_trains_registers_and_swaps_without_a_runner(tmp_path):
    job = job_config(model={"history": "2d"})
    src = FailingSource(job.source, start=T0, wall_clock=Clock())
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    lock = threading.RLock()
    health = JobHealth(job.name)
    jm = JobModel(job, src, None, store, health=health, lock=lock,
                  model_path=tmp_path / "model")
    swaps: list[tuple[object, bool]] = []

    def live_ready(model) -> bool:
        # the kNN's live-path tables, built before the model scores its first live point
        return ("f32", 0) in model.detector_.__dict__.get("_view_cache", {})

    def on_swap(model) -> None:
        # the swap happens under the job's tick lock, so a tick sees one model or the other;
        # the live tables were built before it (outside the lock)
        swaps.append((model, lock._is_owned(), live_ready(model)))

    jm.on_swap.append(on_swap)
    first = jm.ensure_model()
    assert jm.model is first and version_of(first) == "1" and jm.progress.state == "ready"
    assert swaps == [(first, True, True)]
    assert jm.ensure_model() is first  # loaded once, not trained again
    # A fresh JobModel on the same path loads the champion, its live tables built; the
    # registry agrees.
    again = JobModel(job, src, None, store, model_path=tmp_path / "model")
    assert version_of(again.ensure_model()) == "1" and live_ready(again.model)
    assert [m.version for m in store.list_models(name="demo")] == ["1"]

    # The source goes down during a retrain: one-line error, counted under fetch, the
    # champion stays, the job is not left "training".
    src.down = True
    with pytest.raises(AwsAnomalyError, match="connection refused"):
        jm.retrain(reason="test")
    assert jm.model is first and jm.progress.state == "failed"
    assert health.errors["fetch"] == 1 and health.source_ok is False
    assert "connection refused" in (health.source_error or "")
    src.down = False
    second = jm.retrain(reason="test")
    assert jm.model is second is not first and version_of(second) == "2"
    assert health.source_ok is True and swaps[-1] == (second, True, True)
    assert store.active_model("demo").version == "2"


def _scores(entity: str, start: int, n: int) -> pd.DataFrame:
    ts = pd.date_range(T0 + start * STEP, periods=n, freq=STEP, tz="UTC")
    return pd.DataFrame({
        "timestamp": ts, "entity": entity, "anomaly_score": np.arange(start, start + n) / 10,
        "is_anomaly": False, "ready": True, "threshold": 1.0,
        "value_cpu": np.arange(start, start + n, dtype=float), "contrib_cpu": 1.0,
        "expected_cpu": 0.0, "lower_cpu": -1.0, "upper_cpu": 1.0, "dev_cpu": 0.0,
        "not_kept": "x"})


def test_recent_points_keep_the_last_n_per_entity_and_replace_a_rescored_tail():
    shown = RecentPoints(5)
    assert not shown and shown.recent("a") is None
    shown.add(pd.concat([_scores("a", 0, 4), _scores("b", 0, 2)], ignore_index=True))
    shown.add(_scores("a", 2, 4))  # points 2..5 again, scored anew: they replace 2..3
    got = shown.recent("a")
    assert got["value_cpu"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]  # the last 5 of 0..5
    assert got["timestamp"].dt.tz is not None and "not_kept" not in got.columns
    assert shown.entities() == ["a", "b"]
    hist = shown.history_for("a", T0 + 4 * STEP, ["cpu"])
    assert hist.columns.tolist() == ["timestamp", "entity", "cpu"]
    assert hist["cpu"].tolist() == [1.0, 2.0, 3.0]
    assert shown.history_for("b", T0, ["cpu"]) is None  # nothing before the first point
    shown.clear()
    assert not shown and shown.entities() == []


@pytest.mark.parametrize("per_entity", [True, False])
def test_the_job_threshold_per_entity_setting_reaches_the_model(tmp_path, per_entity):
    job = job_config(model={"history": "2d",
                            "threshold": {"method": "pot", "per_entity": per_entity}})
    src = DemoSource(job.source, start=T0, wall_clock=Clock())
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    jm = JobModel(job, src, None, store, model_path=tmp_path / "model")
    model = jm.new_model(STEP)
    assert model.entity_thresholds is per_entity
    assert model.calibration == {"method": "pot"}
