"""JobRunner: incremental scoring, catch-up after outages, events, sinks, feedback retrain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.model import AnomalyModel
from aws_anomaly.runner import JobRunner
from aws_anomaly.sources.demo import DemoSource
from aws_anomaly.store import Store
from tests.unit.jobkit import STEP, T0, Clock, Recorder, job_config


class Broken:
    def on_scores(self, job: str, scores: pd.DataFrame, *, model: str) -> None:
        raise ConnectionError("sink down")


@pytest.fixture(scope="module")
def model() -> AnomalyModel:
    job = job_config()
    src = DemoSource(job.source, start=T0, wall_clock=lambda: 0.0)
    hist = src.fetch(T0 - pd.Timedelta(days=3), T0)
    return AnomalyModel(detector="ocsvm", calibration={"method": "target_fpr",
                                                       "target_fpr": 0.02}).fit(hist)


def make(tmp_path: Path, fitted: AnomalyModel | None, sinks=(), **job_over):
    clock = Clock()
    job = job_config(**job_over)
    src = DemoSource(job.source, start=T0, wall_clock=clock)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    runner = JobRunner(job, src, fitted, list(sinks), store, model_path=tmp_path / "model")
    return runner, src, clock, store


def test_ticks_score_each_point_exactly_once(tmp_path, model):
    rec = Recorder()
    runner, _, clock, store = make(tmp_path, model, [rec])
    first = runner.tick()
    assert first.ok, first.error
    # lookback 2h: the 25 grid points in [now - 2h, now] of each of the 2 entities
    assert first.points == 50 and first.scored_to == T0
    assert store.job_state("demo") == {e: T0 for e in runner.entities()}
    clock.steps(3)
    second = runner.tick()
    assert second.points == 6 and second.scored_from == T0 + STEP
    idle = runner.tick()  # nothing new yet: fine, not an error
    assert idle.ok and idle.points == 0, idle.error
    for e in runner.entities():
        ts = rec.timestamps(e)
        assert len(ts) == len(set(ts)) == 28
        assert pd.DatetimeIndex(ts).equals(pd.date_range(T0 - pd.Timedelta("2h"), periods=28,
                                                         freq=STEP))


def test_outage_is_caught_up_without_holes(tmp_path, model):
    rec = Recorder()
    runner, src, clock, _ = make(tmp_path, model, [rec])
    assert runner.tick().ok
    src.failing = True
    for _ in range(4):
        clock.steps(2)
        res = runner.tick()
        assert not res.ok and res.stage == "fetch"
    assert runner.errors["fetch"] == 4 and runner.source_ok is False
    assert "failing" in runner.source_error
    src.failing = False
    clock.steps(1)
    res = runner.tick()
    assert res.ok and res.points == 2 * 9 and res.scored_to == T0 + 9 * STEP
    for e in runner.entities():
        ts = pd.DatetimeIndex(rec.timestamps(e))
        assert ts.is_monotonic_increasing and (np.diff(ts.asi8) == STEP.value).all()


def test_long_outage_catches_up_in_chunks(tmp_path, model):
    runner, _, clock, store = make(tmp_path, model)
    assert runner.tick().ok
    runner.max_steps_per_tick = 10
    clock.steps(25)
    results = [runner.tick() for _ in range(3)]
    assert [r.points // 2 for r in results] == [10, 10, 5]
    assert [r.caught_up for r in results] == [False, False, True]
    assert set(store.job_state("demo").values()) == {T0 + 25 * STEP}


def test_rescoring_the_same_range_never_duplicates_events(tmp_path, model):
    runner, _, clock, store = make(tmp_path, model, lookback="1d")
    clock.steps(12)
    assert runner.tick().ok
    n = store.count_events()
    assert n > 0, "the demo day should hold at least one anomaly"
    ids = {e.event_id for e in store.list_events(limit=1000).items}
    # Forget the progress and score the same day again: same events, same ids.
    store.set_job_state("demo", {e: T0 - pd.Timedelta(days=1) - STEP for e in runner.entities()})
    assert runner.tick().ok
    assert store.count_events() == n
    assert {e.event_id for e in store.list_events(limit=1000).items} == ids
    assert store.check_integrity() == []


def test_events_reach_sinks_with_explanations(tmp_path, model):
    rec = Recorder()
    runner, _, _, store = make(tmp_path, model, [rec], lookback="1d")
    res = runner.tick()
    assert res.events and rec.events
    ev = max(rec.events, key=lambda e: e.peak_score)
    assert ev.peak_score >= 1.0 and ev.job == "demo"
    assert sum(c for _, c in ev.top_metrics) == pytest.approx(1.0, abs=0.01)
    assert set(ev.deviations) == set(model.metrics_)
    stored = store.get_event(ev.event_id)
    assert stored is not None and stored.peak_score == pytest.approx(ev.peak_score)
    # deviations are in units of the expected band at the peak, the same numbers the scores
    # carry; anomalous rows say what kind of behaviour each metric shows
    s = pd.concat(rec.scores)
    peak = s[(s["entity"] == ev.entity) & (s["timestamp"] == ev.peak_time)].iloc[-1]
    for m in model.metrics_:
        x, y = peak[f"value_{m}"], peak[f"expected_{m}"]
        half = peak[f"upper_{m}"] - y if x >= y else y - peak[f"lower_{m}"]
        assert ev.deviations[m] == pytest.approx((x - y) / half, abs=1e-3)
    flagged = s[s["is_anomaly"]]
    kinds = {"spike", "level shift", "drift", "flatline", "unusual combination"}
    assert set(flagged[[f"kind_{m}" for m in model.metrics_]].to_numpy().ravel()) <= kinds
    assert (s.loc[~s["is_anomaly"], [f"kind_{m}" for m in model.metrics_]] == "").all().all()


def test_failing_sink_is_counted_and_does_not_block(tmp_path, model):
    runner, _, clock, store = make(tmp_path, model, [Broken()])
    assert runner.tick().ok
    assert runner.errors["notify"] == 1
    clock.steps(1)
    assert runner.tick().ok and store.job_state("demo")[runner.entities()[0]] == T0 + STEP


def test_two_jobs_on_one_entity_keep_all_their_events(tmp_path, model):
    """Issue 10.2: two jobs scoring the same clusters into one store: each keeps every event
    it found (before the fix they shared ids and overwrote each other's ``job``)."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    runners = []
    for name in ("cpu-watch", "mem-watch"):
        job = job_config(name=name, lookback="1d")
        src = DemoSource(job.source, start=T0, wall_clock=lambda: 0.0)
        runners.append(JobRunner(job, src, model, [], store))
    found = {}
    for r in runners:
        res = r.tick()
        assert res.ok, res.error
        found[r.name] = {(e.entity, e.start) for e in res.events}
    assert found["cpu-watch"] and found["cpu-watch"] == found["mem-watch"]  # same incidents
    for r in runners:
        assert store.count_events(job=r.name) == len(found[r.name])
        assert {(e.entity, e.start) for e in store.list_events(job=r.name, limit=1000).items} \
            == found[r.name]
    assert store.count_events() == 2 * len(found["cpu-watch"])
    assert store.check_integrity() == []


def test_disk_error_saving_the_bundle_ends_training_and_is_counted(tmp_path):
    """Issue 10.5: an OSError while saving the bundle (here: its folder's parent is a file)
    leaves the job 'failed', not 'training' forever, and counts a train error; a retrain
    after the disk is fixed works."""
    from aws_anomaly.errors import AwsAnomalyError

    (tmp_path / "disk").write_text("not a folder")
    runner, *_ = make(tmp_path, None, model={"history": "2d"})
    runner.jobmodel.model_path = tmp_path / "disk" / "model"
    with pytest.raises(AwsAnomalyError, match=r"NotADirectoryError|FileExistsError"):
        runner.retrain()
    assert runner.progress.state == "failed" and runner.progress.finished is not None
    assert runner.errors["train"] == 1 and "disk" in runner.last_error["train"]
    res = runner.tick()  # the tick tries again and fails the same way, counted
    assert not res.ok and res.stage == "train" and runner.errors["train"] == 2
    assert runner.progress.state == "failed"
    runner.jobmodel.model_path = tmp_path / "model"
    runner.retrain()
    assert runner.progress.state == "ready" and (tmp_path / "model" / "manifest.json").exists()


def test_trains_a_model_when_none_exists_and_reloads_it(tmp_path):
    runner, _, _, store = make(tmp_path, None, model={"history": "2d"})
    res = runner.tick()
    assert res.ok and runner.model is not None and runner.progress.state == "ready"
    assert (tmp_path / "model" / "manifest.json").exists()
    [rec] = store.list_models(name="demo")
    # the label-free default model, trained on the history that ends where the first tick's
    # look-back starts (it never learns the points it scores)
    assert rec.active and rec.detector == "knn" and rec.info["metrics"] == list(
        runner.model.metrics_)
    lookback = pd.Timedelta(runner.job.lookback)
    assert pd.Timestamp(rec.info["data_end"]) == T0 - lookback
    assert pd.Timestamp(rec.info["data_start"]) >= T0 - lookback - pd.Timedelta("2D")
    again, *_ = make(tmp_path, None, model={"history": "2d"})
    again.ensure_model()
    assert again.model.feature_names_ == runner.model.feature_names_


def test_false_positive_feedback_raises_that_entitys_threshold(tmp_path, model):
    runner, _, _, store = make(tmp_path, model, lookback="1d", model={"history": "3d"})
    assert runner.tick().ok
    events = store.list_events(limit=1000).items
    target = max(events, key=lambda e: e.peak_score)
    store.add_feedback(target.event_id, "false_positive", "deploy, expected")
    runner.retrain()
    thr = runner.thresholds()
    assert set(thr) == {target.entity}
    assert thr[target.entity] > 1.0
    other = [e for e in runner.entities() if e != target.entity]
    assert all(runner.threshold_for(e) == 1.0 for e in other)
    # The new model no longer flags the refuted pattern for that entity.
    rescored = runner.model.score(runner.source.fetch(target.start - 300 * STEP,
                                                      target.end + STEP))
    window = rescored[(rescored["entity"] == target.entity)
                      & (rescored["timestamp"] >= target.start)
                      & (rescored["timestamp"] <= target.end)]
    assert (window["anomaly_score"] < thr[target.entity]).all()
    assert store.entity_thresholds("demo") == thr


def test_true_positive_feedback_caps_the_raise(tmp_path, model):
    runner, _, _, store = make(tmp_path, model, lookback="1d", model={"history": "3d"})
    assert runner.tick().ok
    evs = sorted(store.list_events(limit=1000).items, key=lambda e: e.peak_score)
    by_entity: dict[str, list] = {}
    for e in evs:
        by_entity.setdefault(e.entity, []).append(e)
    entity, mine = next((k, v) for k, v in by_entity.items() if len(v) >= 2)
    low, high = mine[0], mine[-1]
    store.add_feedback(high.event_id, "false_positive")
    store.add_feedback(low.event_id, "true_positive")
    runner.retrain()
    # never above the confirmed anomaly's (new) peak: what people confirmed keeps alerting
    rescored = runner.model.score(runner.source.fetch(low.start - 300 * STEP, low.end + STEP))
    w = rescored[(rescored["entity"] == entity) & (rescored["timestamp"] >= low.start)
                 & (rescored["timestamp"] <= low.end)]
    assert runner.threshold_for(entity) <= max(float(w["anomaly_score"].max()), 1.0) + 1e-9


def test_a_job_can_train_the_label_free_default_model(tmp_path):
    runner, _, _, store = make(tmp_path, None,
                               model={"history": "2d", "detector": "default",
                                      "threshold": {"method": "auto", "risk": 0.002}})
    res = runner.tick()
    assert res.ok, res.error
    [rec] = store.list_models(name="demo")
    assert rec.detector == "knn"
    assert runner.model.feature_set == "hybrid"
    assert runner.model.calibration_used_ == {"method": "pot", "risk": 0.002}


def test_a_bundle_from_before_versions_becomes_version_1_and_is_kept(tmp_path, model):
    """Issue 12.4: a bundle written before the registry kept history (no version stamped)
    is registered as the next version, kept at its versioned path, and stays the champion."""
    from aws_anomaly.retrain import version_of, version_path

    model.save(tmp_path / "model")
    runner, _, _, store = make(tmp_path, None)
    loaded = runner.ensure_model()
    [rec] = store.list_models(name="demo")
    assert (rec.version, rec.status) == ("1", "champion") and version_of(loaded) == "1"
    assert rec.path == str(version_path(tmp_path / "model", "1"))
    assert version_of(AnomalyModel.load(tmp_path / "model")) == "1"
    again, *_ = make(tmp_path, None)
    again.ensure_model()
    assert [m.version for m in store.list_models(name="demo")] == ["1"]
