"""What the job tests share (test_runner, test_live, test_retrain, test_scheduler_retrain): a
demo job, its wall clock, a sink that records what it got, and a source with a hole."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from aws_anomaly.config import JobConfig
from aws_anomaly.data import Dataset
from aws_anomaly.sources.demo import DemoSource

T0 = pd.Timestamp("2026-03-01T00:00Z")
STEP = pd.Timedelta("5min")
WALL_PER_STEP = 5.0  # demo speedup 60: one 5-minute step every 5 wall seconds
WALL_PER_DAY = 86400 / 60


def job_config(*, days: int = 4, future_days: int = 1, history: str = "3d",
               **over: Any) -> JobConfig:
    """A job ``demo`` on a two-cluster demo source of ``days`` days before ``T0`` (and
    ``future_days`` after it), a ``history`` of training data, 2 h look-back, 5 min ticks;
    ``over`` replaces top-level keys."""
    cfg: dict[str, Any] = {
        "name": "demo",
        "source": {"type": "demo", "clusters": 2, "days": days, "speedup": 60,
                   "future_days": future_days},
        "model": {"history": history}, "lookback": "2h", "interval": "5m"}
    cfg.update(over)
    return JobConfig.model_validate(cfg)


class Clock:
    """The demo source's wall clock, moved by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def steps(self, k: int) -> None:
        """Move on ``k`` grid steps of data time."""
        self.t += k * WALL_PER_STEP


class Recorder:
    """A score and event sink that keeps what it got."""

    def __init__(self) -> None:
        self.scores: list[pd.DataFrame] = []
        self.events: list = []

    def on_scores(self, job: str, scores: pd.DataFrame, *, model: str) -> None:
        self.scores.append(scores)

    def on_events(self, job: str, events, *, model: str) -> None:
        self.events.extend(events)

    def timestamps(self, entity: str) -> list[pd.Timestamp]:
        """Every scored timestamp of ``entity``, in the order the ticks gave them."""
        out = []
        for s in self.scores:
            out += list(s.loc[s["entity"] == entity, "timestamp"])
        return out

    def frame(self) -> pd.DataFrame:
        """All the scores, sorted by entity and timestamp."""
        return (pd.concat(self.scores).sort_values(["entity", "timestamp"])
                .reset_index(drop=True))


def make_runner(tmp_path: Path, model: Any, job: JobConfig, *, store_path: Path | None = None,
                clock: Clock | None = None, src_cls: type | None = None, **kw: Any
                ) -> tuple[Any, Any, Clock, Any, Recorder]:
    """A ``JobRunner`` of ``job`` with ``model`` on its demo source (``src_cls``, default
    ``DemoSource``) moved by ``clock``, a SQLite store (``store_path``, default under
    ``tmp_path``) and a :class:`Recorder`; ``kw`` go to the runner. Returns ``(runner,
    source, clock, store, recorder)``."""
    from aws_anomaly.runner import JobRunner
    from aws_anomaly.sources.demo import DemoSource
    from aws_anomaly.store import Store

    clock = clock or Clock()
    src = (src_cls or DemoSource)(job.source, start=T0, wall_clock=clock)
    st = Store(f"sqlite:///{store_path or tmp_path / 'store.db'}")
    rec = Recorder()
    runner = JobRunner(job, src, model, [rec], st, **kw)
    return runner, src, clock, st, rec


#: Tick sizes (in steps) of the live == batch tests: one step, several, a day and more.
TICK_SIZES = (1, 3, 1, 17, 2, 60, 1, 5, 144, 7, 1, 190)


def tick_through(runner: Any, clock: Clock, sizes: tuple[int, ...] = TICK_SIZES
                 ) -> pd.Timestamp:
    """Move ``clock`` by each of ``sizes`` steps, ticking ``runner`` after each (every tick
    must succeed); returns the time of the last step."""
    for k in sizes:
        clock.steps(k)
        res = runner.tick()
        assert res.ok, res.error
    return T0 + STEP * sum(sizes)


@contextmanager
def score_continuation(tmp_path: Path, model: Any, source_cfg: Any,
                       **model_cfg: Any) -> Iterator[SimpleNamespace]:
    """A service (no scheduler) whose job ``demo`` scores with ``model`` (``model_cfg`` added
    to the job's ``model`` section); two ticks, then ``POST /v1/score`` of an entity's next
    point as the job will fetch it, and of that point spiked, which must come back anomalous.

    Yields ``client``, ``runner``, ``clock``, ``entity``, ``nxt`` (the point's time),
    ``before`` (the entity's live scorer state before the requests) and ``response`` (the
    first request's)."""
    from fastapi.testclient import TestClient

    from aws_anomaly.config import Settings
    from aws_anomaly.service.app import create_app
    from aws_anomaly.sources.demo import DemoSource

    clock = Clock()
    s = Settings.model_validate({
        "service": {"data_dir": str(tmp_path / "data")},
        "jobs": [{"name": "demo", "lookback": "2h", "interval": "5m",
                  "model": {"history": "5d", **model_cfg},
                  "source": source_cfg.model_dump()}]})
    src = DemoSource(s.jobs[0].source, start=T0, wall_clock=clock)
    app = create_app(s, sources={"demo": src}, models={"demo": model}, token="t" * 16,
                     scheduler=False)
    runner = app.state.aws_anomaly.runners["demo"]
    with TestClient(app) as client:
        assert runner.tick().ok
        clock.steps(30)
        assert runner.tick().ok
        entity = runner.live.entities()[0]
        nxt = T0 + 31 * STEP
        ahead = Clock()
        later = DemoSource(s.jobs[0].source, start=T0, wall_clock=ahead)
        ahead.steps(100)
        ef = later.fetch(nxt, nxt + STEP, entities=[entity]).entity_frame(entity)
        body = {"entity": entity, "timestamps": [nxt.isoformat()],
                "metrics": {m: ef[m].tolist()[:1] for m in model.metrics_}}
        before = runner.live._scorers[entity].get_state()
        r = client.post("/v1/score", json=body)
        assert r.status_code == 200, r.text
        spiked = {**body, "metrics": {m: [v[0] * 4 + 1] for m, v in body["metrics"].items()}}
        assert client.post("/v1/score", json=spiked).json()["points"][0]["is_anomaly"]
        yield SimpleNamespace(client=client, runner=runner, clock=clock, entity=entity,
                              nxt=nxt, before=before, response=r)


class HoleSource(DemoSource):
    """The demo source missing one entity's points between two times (a scrape outage): what
    a real source returns, validated and gap-filled by ``Dataset.from_frame`` (up to its fill
    limit; a longer hole stays missing)."""

    hole: tuple[pd.Timestamp, pd.Timestamp] | None = None
    entity = ""

    def fetch(self, start: Any, end: Any, entities: Any = None) -> Dataset:
        ds = super().fetch(start, end, entities=entities)
        if self.hole is None:
            return ds
        f = ds.frame
        drop = ((f["entity"] == self.entity) & (f["timestamp"] >= self.hole[0])
                & (f["timestamp"] <= self.hole[1]))
        return Dataset.from_frame(f.loc[~drop], metrics=ds.metrics, step=ds.step)
