"""The live path: one persistent stream scorer per entity (aws_anomaly.live) in JobRunner.

Live scores equal one pass of the batch model over the whole series, whatever the tick sizes;
checkpoints resume exactly; a model swap and a gap the scorer cannot fill rebuild it; the
/v1/score continuation of a live entity is the score the job gives that point next, and the
request does not change the live state.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from aws_anomaly.config import JobConfig, Settings
from aws_anomaly.errors import DataError
from aws_anomaly.live import LiveState, decode_state, encode_state
from aws_anomaly.model import AnomalyModel, StreamScorer
from aws_anomaly.service.app import create_app
from aws_anomaly.sources.demo import DemoSource
from aws_anomaly.store import StreamCheckpoint
from tests.unit import jobkit
from tests.unit.jobkit import STEP, T0, TICK_SIZES, make_runner, tick_through
from tests.unit.test_store import postgres_url, store  # noqa: F401  (fixtures)

LOOKBACK = pd.Timedelta("2h")
COLS = ["anomaly_score", "is_anomaly", "ready"]


def job_config(**over) -> JobConfig:
    return jobkit.job_config(days=6, future_days=3, history="5d", **over)


@pytest.fixture(scope="module")
def source_cfg():
    return job_config().source


@pytest.fixture(scope="module")
def model(source_cfg) -> AnomalyModel:
    """The product's features with the long-memory terms: persistence EWMAs and a daily band
    whose seasonal term looks back up to four days."""
    src = DemoSource(source_cfg, start=T0, wall_clock=lambda: 0.0)
    m = AnomalyModel(detector="ocsvm", detector_params={"random_state": 0},
                     calibration={"method": "target_fpr", "target_fpr": 0.02})
    m.fit(src.fetch(T0 - pd.Timedelta(days=5), T0))
    assert m.band_ is not None and any(m.band_.period) and m.persist
    return m


def make(tmp_path: Path, model: AnomalyModel, **kw):
    return make_runner(tmp_path, model, job_config(), **kw)


def one_pass(model: AnomalyModel, src: DemoSource, end: pd.Timestamp) -> pd.DataFrame:
    """Batch scores of the whole series the job saw: from its first fetch (``lookback`` plus
    the feature look-back before the first tick's clock) to ``end``, in one call."""
    start = T0 - LOOKBACK - STEP * (model.spec.min_history + 1)
    ds = src.fetch(start, end + pd.Timedelta(1, "ns"))
    out = model.score(ds)
    return out[out["timestamp"] >= T0 - LOOKBACK].sort_values(["entity", "timestamp"]) \
        .reset_index(drop=True)


def assert_same_scores(live: pd.DataFrame, batch: pd.DataFrame, metrics) -> None:
    assert len(live) == len(batch)
    assert (live["timestamp"].to_numpy() == batch["timestamp"].to_numpy()).all()
    assert (live["entity"].to_numpy() == batch["entity"].to_numpy()).all()
    np.testing.assert_allclose(live["anomaly_score"], batch["anomaly_score"], rtol=1e-9,
                               atol=1e-9)
    assert (live["is_anomaly"].to_numpy() == batch["is_anomaly"].to_numpy()).all()
    for m in metrics:
        for k in ("expected", "lower", "upper", "contrib"):
            np.testing.assert_allclose(live[f"{k}_{m}"], batch[f"{k}_{m}"], rtol=1e-9,
                                       atol=1e-9, equal_nan=True)


# ------------------------------------------------------------------ batch = tick by tick
def test_tick_by_tick_equals_one_pass_batch_whatever_the_tick_sizes(tmp_path, model):
    runner, src, clock, _, rec = make(tmp_path, model)
    assert runner.tick().ok
    # A day and a half in ticks of varying size: the band's seasons (up to 4 days back) and
    # the persistence EWMAs remember longer than any tick's look-back.
    end = tick_through(runner, clock)
    live, batch = rec.frame(), one_pass(model, src, end)
    assert live["timestamp"].max() == end
    assert_same_scores(live, batch, model.metrics_)
    assert live["ready"].all() and live["is_anomaly"].any()
    # one rebuild per entity (the first tick), continued ever after
    assert runner.live.counts["rebuilt"] == 2
    assert runner.live.counts["continued"] == 2 * len(TICK_SIZES)


def test_a_tick_fetches_only_the_new_points_once_scorers_are_live(tmp_path, model):
    runner, src, clock, _, _ = make(tmp_path, model)
    seen: list[tuple[pd.Timestamp, int]] = []
    fetch = src.fetch

    def spy(start, end, entities=None):
        ds = fetch(start, end, entities=entities)
        seen.append((pd.Timestamp(start), len(ds)))
        return ds

    src.fetch = spy  # type: ignore[method-assign]
    assert runner.tick().ok
    clock.steps(1)
    assert runner.tick().points == 2
    idle = runner.tick()  # no new step: the source is still asked for its latest one
    assert idle.ok and idle.points == 0
    # first tick: lookback + feature look-back; next: only the points after the live state's
    warm = model.spec.min_history + 1
    assert seen[0] == (T0 - LOOKBACK - STEP * warm, 2 * (warm + 25))
    assert seen[1][0] > T0 and seen[1][1] == 2
    assert seen[2][1] == 2 and runner.live.counts["continued"] == 2


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_resume_gives_the_scores_of_an_uninterrupted_run(tmp_path, model):
    whole, _, clock, _, rec = make(tmp_path / "a", model)
    assert whole.tick().ok
    for k in (100, 50, 30, 1, 20):
        clock.steps(k)
        assert whole.tick().ok
    uninterrupted = rec.frame()

    # The same run stopped after three ticks (checkpoint at shutdown) and restarted.
    db = tmp_path / "b.db"
    first, _, clock_b, store_b, _ = make(tmp_path, model, store_path=db, checkpoint_every=0)
    assert first.tick().ok
    for k in (100, 50):
        clock_b.steps(k)
        assert first.tick().ok
    assert first.save_checkpoints() == 2
    rows = store_b.load_checkpoints("demo", "1")
    assert {r.entity for r in rows} == set(first.live.entities())
    assert all(r.last_ns == (T0 + 150 * STEP).value for r in rows)
    second, _, clock_b2, _, rec_b = make(tmp_path, model, store_path=db)
    clock_b2.steps(150)  # a new source: its clock starts where the stopped one was
    for k in (30, 1, 20):
        clock_b2.steps(k)
        assert second.tick().ok
    assert second.live.counts["resumed"] == 2 and second.live.counts["rebuilt"] == 0
    resumed = rec_b.frame()
    tail = uninterrupted[uninterrupted["timestamp"] > T0 + 150 * STEP].reset_index(drop=True)
    assert_same_scores(resumed, tail, model.metrics_)

    # Without the checkpoint the scorers are rebuilt from the short look-back: the band's
    # seasons and the EWMAs start over, and the scores differ (what checkpoints are for).
    store_b.delete_checkpoints("demo")
    store_b.set_job_state("demo", {e: T0 + 150 * STEP for e in second.live.entities()})
    third, _, clock_c, _, rec_c = make(tmp_path, model, store_path=db)
    clock_c.steps(150)
    for k in (30, 1, 20):
        clock_c.steps(k)
        assert third.tick().ok
    assert third.live.counts["rebuilt"] == 2 and third.live.counts["resumed"] == 0
    rebuilt = rec_c.frame()
    assert len(rebuilt) == len(tail)
    assert np.abs(rebuilt["anomaly_score"] - tail["anomaly_score"]).max() > 1e-3


def test_an_older_checkpoint_is_replayed_up_to_the_last_scored_point(tmp_path, model):
    """A crash after ticks that were committed but not checkpointed: the scorer resumes from
    the checkpoint and is fed the already-scored points (not scored again)."""
    whole, _, clock, _, rec = make(tmp_path / "a", model)
    assert whole.tick().ok
    for k in (40, 40):
        clock.steps(k)
        assert whole.tick().ok
    db = tmp_path / "b.db"
    crashed, _, clock_b, store_b, _ = make(tmp_path, model, store_path=db, checkpoint_every=1)
    assert crashed.tick().ok  # checkpointed after this tick
    crashed.checkpoint_every = 0
    clock_b.steps(40)
    assert crashed.tick().ok  # committed, not checkpointed; then the process dies
    assert all(r.last_ns == T0.value for r in store_b.load_checkpoints("demo", "1"))
    restarted, _, clock_r, _, rec_b = make(tmp_path, model, store_path=db)
    clock_r.steps(80)
    res = restarted.tick()
    assert res.ok and restarted.live.counts["resumed"] == 2
    live = rec_b.frame()
    live = live[live["timestamp"] > T0 + 40 * STEP].reset_index(drop=True)  # not display
    want = rec.frame()
    want = want[want["timestamp"] > T0 + 40 * STEP].reset_index(drop=True)
    assert len(live) == 2 * 40
    assert_same_scores(live, want, model.metrics_)


def test_bad_or_foreign_checkpoints_are_not_resumed(tmp_path, model):
    runner, *_ = make(tmp_path, model)
    assert runner.tick().ok
    rows = runner.live.checkpoint_rows(everything=True)
    good, other = rows
    tampered = StreamCheckpoint(good.job, good.entity, good.model_version, good.last_ns,
                                {**good.state, "last_ns": good.last_ns + 1}, good.arrays,
                                good.checksum)
    live = LiveState("demo")
    live.use(model, "1")
    assert live.restore([tampered, other]) == 1
    assert live.entities() == [other.entity]
    live.use(model.__class__(), "2")  # another model: nothing of version 1 applies
    assert live.restore([other]) == 0
    with pytest.raises(DataError, match="checksum"):
        decode_state(good.state, good.arrays[:-1], good.checksum)
    # object arrays (pickle) are refused even with a matching checksum
    blob, digest = encode_state({}, {"x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(DataError, match="unreadable"):
        decode_state({}, blob, digest)


def test_checkpoints_round_trip_through_the_store(store, model):  # noqa: F811
    """SQLite and PostgreSQL: rows upsert per (job, entity); other versions are dropped."""
    sc = model.stream("eks-a")
    src = DemoSource(job_config().source, start=T0, wall_clock=lambda: 0.0)
    ef = src.fetch(T0 - pd.Timedelta("1D"), T0).entity_frame(src.fetch(
        T0 - STEP, T0).entities[0])
    sc.prime(ef.index, ef[list(model.metrics_)].to_numpy())
    state, arrays = sc.get_state()
    blob, digest = encode_state(state, arrays)
    row = StreamCheckpoint("demo", "eks-a", "3", sc.last_ns, state, blob, digest)
    store.save_checkpoints([row])
    store.save_checkpoints([row])  # idempotent
    got = store.load_checkpoints("demo", "3")
    assert len(got) == 1 and got[0].last_ns == sc.last_ns and got[0].checksum == digest
    back = StreamScorer.from_state(model, got[0].state,
                                   decode_state(got[0].state, got[0].arrays, got[0].checksum))
    t = pd.Timestamp(sc.last_ns, tz="UTC") + STEP
    v = ef[list(model.metrics_)].to_numpy()[-1] * 1.5
    assert back.update(t, v) == sc.update(t, v)
    assert store.load_checkpoints("demo", "4") == []
    store.save_checkpoints([StreamCheckpoint("demo", "eks-b", "4", 1, state, blob, digest)])
    assert store.load_checkpoints("demo", "3") == []  # the job moved to version 4
    store.delete_checkpoints("demo")
    assert store.load_checkpoints("demo", "4") == []


# ------------------------------------------------------------------ rebuilds
def test_a_model_swap_rebuilds_every_scorer(tmp_path, model, source_cfg):
    runner, src, clock, _, rec = make(tmp_path, model)
    assert runner.tick().ok
    clock.steps(3)
    assert runner.tick().ok
    other = AnomalyModel(detector="robust", calibration={"method": "target_fpr",
                                                         "target_fpr": 0.05})
    other.fit(src.fetch(T0 - pd.Timedelta(days=5), T0))
    entity = runner.live.entities()[0]
    with runner.lock:
        runner.jobmodel.swap_model(other, {})
    # no request continues the old model's state
    assert runner.live.snapshot(entity, T0 + 4 * STEP, other) is None
    clock.steps(2)
    rec.scores.clear()
    res = runner.tick()
    assert res.ok and runner.live.model is other
    assert runner.live.counts["rebuilt"] == 2  # counts restart with the new model's state
    assert all(runner.live._scorers[e].model is other for e in runner.live.entities())
    # rebuilt as batch scoring with the tick's look-back does it
    new = rec.frame()
    new = new[new["timestamp"] > T0 + 3 * STEP].reset_index(drop=True)
    warm = other.spec.min_history + 1
    ds = src.fetch(T0 + 3 * STEP - STEP * (warm + runner.display_points),
                   T0 + 5 * STEP + pd.Timedelta(1, "ns"))
    batch = other.score(ds)
    batch = batch[batch["timestamp"] > T0 + 3 * STEP].sort_values(
        ["entity", "timestamp"]).reset_index(drop=True)
    assert_same_scores(new, batch, other.metrics_)


def test_a_gap_longer_than_the_fill_limit_rebuilds_that_entity(tmp_path, model):
    runner, src, clock, _, rec = make(tmp_path, model, src_cls=jobkit.HoleSource)
    assert runner.tick().ok
    clock.steps(2)
    assert runner.tick().ok
    entity, other = runner.live.entities()
    src.entity = entity
    limit = StreamScorer.max_gap_steps
    # a short gap is filled (held values), a long one is not
    src.hole = (T0 + 3 * STEP, T0 + 4 * STEP)
    clock.steps(3)
    assert runner.tick().ok
    assert runner.live.counts["rebuilt"] == 2
    src.hole = (T0 + 6 * STEP, T0 + (6 + limit) * STEP)
    clock.steps(limit + 3)
    rec.scores.clear()
    assert runner.tick().ok
    assert runner.live.counts["rebuilt"] == 3
    got = rec.frame()
    after = got[got["entity"] == entity]
    assert after["timestamp"].min() == T0 + (7 + limit) * STEP
    assert not after["ready"].any()  # warming up again after the gap
    assert runner.live._scorers[entity].n_seen == len(after)
    assert got[got["entity"] == other]["ready"].all()


# ------------------------------------------------------------------ scorer state
def test_scorer_state_and_copy_are_exact_and_independent(model, source_cfg):
    src = DemoSource(source_cfg, start=T0, wall_clock=lambda: 0.0)
    ds = src.fetch(T0 - pd.Timedelta(days=5), T0)
    e = ds.entities[0]
    vals = ds.values(e)
    idx = pd.DatetimeIndex(ds.entity_frame(e).index)
    a = model.stream(e)
    a.prime(idx[:1000], vals[:1000])
    state, arrays = a.get_state()
    b = StreamScorer.from_state(model, state, arrays)
    c = a.copy()
    for i in range(1000, 1300):  # past blocks of every window: the copies' views are their own
        pa, pb, pc = (s.update(idx[i], vals[i]) for s in (a, b, c))
        assert pa == pb == pc
    d = c.copy()
    d.update(idx[1300], vals[1300] * 3)
    assert c.last_ns == idx[1299].value and c.update(idx[1300], vals[1300]) == \
        a.update(idx[1300], vals[1300])
    with pytest.raises(DataError, match="feature spec"):
        StreamScorer.from_state(model, {**state, "features": {**state["features"],
                                                               "metrics": ["x", "y", "z"]}},
                                arrays)
    with pytest.raises(DataError, match="version"):
        StreamScorer.from_state(model, {**state, "version": 99}, arrays)


# ------------------------------------------------------------------ /v1/score
def test_score_continuation_is_the_next_live_score_and_leaves_the_state(tmp_path, model,
                                                                       source_cfg):
    with jobkit.score_continuation(tmp_path, model, source_cfg) as c:
        runner, entity, before, r, nxt = c.runner, c.entity, c.before, c.response, c.nxt
        after = runner.live._scorers[entity].get_state()
        assert before[0] == after[0]
        assert before[1].keys() == after[1].keys()
        assert all(np.array_equal(before[1][k], after[1][k], equal_nan=True)
                   for k in before[1])
        # the job's next tick gives that point the same score and band
        c.clock.steps(1)
        assert runner.tick().points == 2
        row = runner.recent(entity).iloc[-1]
        assert row["timestamp"] == nxt
        p = r.json()["points"][0]
        assert p["anomaly_score"] == pytest.approx(row["anomaly_score"], rel=1e-9, abs=1e-12)
        for m in model.metrics_:
            assert p["expected"][m]["expected"] == pytest.approx(row[f"expected_{m}"],
                                                                rel=1e-12)


def test_the_service_writes_checkpoints_when_it_stops(tmp_path, model, source_cfg):
    s = Settings.model_validate({
        "service": {"data_dir": str(tmp_path / "data")},
        "jobs": [{"name": "demo", "lookback": "2h", "interval": "5m",
                  "model": {"history": "5d"}, "source": source_cfg.model_dump()}]})
    src = DemoSource(s.jobs[0].source, start=T0, wall_clock=lambda: 0.0)
    app = create_app(s, sources={"demo": src}, models={"demo": model}, token="t" * 16,
                     scheduler=True, interval_s=3600.0)
    state = app.state.aws_anomaly
    runner = state.runners["demo"]
    with TestClient(app):
        for _ in range(600):  # the scheduler's first tick
            if runner.ticks:
                break
            time.sleep(0.05)
        assert runner.ticks and runner.last_result.ok
        assert state.store.load_checkpoints("demo", "1") == []  # none before the shutdown
    rows = state.store.load_checkpoints("demo", "1")
    assert {r.entity for r in rows} == set(runner.live.entities()) and len(rows) == 2
    assert all(r.last_ns == T0.value for r in rows)
