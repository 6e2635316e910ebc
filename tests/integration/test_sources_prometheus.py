"""The Prometheus source against a real Prometheus holding backfilled demo data.

Three demo clusters over three days end at the current five minutes (so ``latest`` sees them),
written as raw scrapes with the generator's scrape gaps plus a 30-minute outage, and a fourth
cluster that appears half-way (label churn). Read back through PromQL, the Dataset must equal
what was written, gap-filled as ``Dataset.from_frame`` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.config import PrometheusSourceConfig
from aws_anomaly.data import Dataset
from aws_anomaly.data.generator import DEFAULT_METRICS, generate_demo, generate_frame
from aws_anomaly.errors import SourceError
from aws_anomaly.sources import make_source
from aws_anomaly.sources.prometheus import PrometheusSource
from tests.integration.promkit import backfill, running_prometheus, write_openmetrics

pytestmark = pytest.mark.integration

STEP = pd.Timedelta("5min")
DAYS = 3
QUERIES = {m: f"max by (cluster) ({m})" for m in DEFAULT_METRICS}
NEW = "eks-late-arrival"


@dataclass(frozen=True)
class Prom:
    url: str
    expected: Dataset  # what the source must return for the whole range
    start: pd.Timestamp
    end: pd.Timestamp  # exclusive
    outage: tuple[str, pd.Timestamp, pd.Timestamp]


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prom]:
    tmp: Path = tmp_path_factory.mktemp("prom")
    end = pd.Timestamp.now(tz="UTC").floor(STEP)
    start = end - pd.Timedelta(days=DAYS)
    raw, _ = generate_frame(clusters=3, days=DAYS, seed=7, start=start.isoformat())
    demo, _ = generate_demo(clusters=3, days=DAYS, seed=7, start=start.isoformat())
    assert len(raw) < len(demo), "the generator is expected to leave scrape gaps"
    # A 30-minute outage (6 missing scrapes) in one cluster.
    victim = demo.entities[0]
    o0 = start + pd.Timedelta(hours=30)
    o1 = o0 + 6 * STEP
    drop = (raw["entity"] == victim) & (raw["timestamp"] >= o0) & (raw["timestamp"] < o1)
    raw = raw.loc[~drop]
    # Label churn: a cluster whose series start half-way through.
    late = raw[raw["entity"] == demo.entities[1]].copy()
    late = late[late["timestamp"] >= start + pd.Timedelta(days=DAYS / 2)]
    late["entity"] = NEW
    for m in DEFAULT_METRICS:
        late[m] = late[m] * 0.5
    raw = pd.concat([raw, late], ignore_index=True)
    cols = ["timestamp", "entity", *DEFAULT_METRICS]
    expected = Dataset.from_frame(raw[cols], metrics=list(DEFAULT_METRICS), step=STEP)
    # Sanity: apart from the outage the expected data is the generator's own dataset.
    mine = expected.select(list(demo.entities)).frame
    gen = demo.frame[cols]
    keep = ~((gen["entity"] == victim) & (gen["timestamp"] >= o0) & (gen["timestamp"] < o1))
    pd.testing.assert_frame_equal(
        mine.loc[keep.to_numpy()].reset_index(drop=True), gen.loc[keep].reset_index(drop=True))
    write_openmetrics(raw, tmp / "demo.om")
    backfill(tmp / "demo.om", tmp / "tsdb")
    with running_prometheus(tmp / "tsdb") as url:
        yield Prom(url, expected, start, end, (victim, o0, o1))


def src(prom: Prom, **kw: object) -> PrometheusSource:
    cfg = PrometheusSourceConfig(url=prom.url, queries=QUERIES, step="5m", **kw)
    source = make_source(cfg)
    assert isinstance(source, PrometheusSource)
    return source


def values_equal(got: Dataset, want: Dataset) -> None:
    assert got.metrics == want.metrics and got.step == want.step
    assert got.entities == want.entities
    g, w = got.frame, want.frame[["timestamp", "entity", *want.metrics]]
    pd.testing.assert_series_equal(g["timestamp"], w["timestamp"], check_dtype=False)
    assert (g["entity"].to_numpy() == w["entity"].to_numpy()).all()
    np.testing.assert_allclose(g[list(want.metrics)].to_numpy(),
                               w[list(want.metrics)].to_numpy(), rtol=0, atol=1e-9)


def test_round_trip_equals_generated_data(prom: Prom) -> None:
    with src(prom) as s:
        got = s.fetch(prom.start, prom.end)
        assert s.requests_sent == 3  # 864 points per series: one request per metric
    values_equal(got, prom.expected)
    # the outage is filled with the last value before it, as the Dataset gap policy says
    victim, o0, o1 = prom.outage
    ent = got.entity_frame(victim)
    before = ent.loc[o0 - STEP, list(DEFAULT_METRICS)].to_numpy(dtype=float)
    gap = ent.loc[(ent.index >= o0) & (ent.index < o1), list(DEFAULT_METRICS)].to_numpy()
    assert len(gap) == 6 and (gap == before).all()


def test_chunked_fetch_gives_the_same_dataset(prom: Prom) -> None:
    with src(prom, max_points_per_request=100) as s:
        got = s.fetch(prom.start, prom.end)
        assert s.requests_sent == 3 * 9  # ceil(864 / 100) chunks per metric
    values_equal(got, prom.expected)


def test_range_is_half_open_and_snapped_to_the_grid(prom: Prom) -> None:
    a = prom.start + pd.Timedelta(hours=6, minutes=1)
    b = prom.start + pd.Timedelta(hours=12)
    with src(prom) as s:
        got = s.fetch(a, b)
    ts = got.frame["timestamp"]
    assert ts.min() == prom.start + pd.Timedelta(hours=6, minutes=5)
    assert ts.max() == b - STEP  # end excluded
    values_equal(got, prom.expected.slice_time(a, b))


def test_label_churn_series_appear_without_restart(prom: Prom) -> None:
    half = prom.start + pd.Timedelta(days=DAYS / 2)
    with src(prom) as s:
        early = s.fetch(prom.start, half - pd.Timedelta(hours=1))
        late = s.fetch(half - pd.Timedelta(hours=1), prom.end)
        assert NEW not in early.entities
        assert NEW in late.entities
        assert late.entity_frame(NEW).index.min() == half
        only = s.fetch(half, prom.end, entities=[NEW, "no-such-cluster"])
    assert only.entities == (NEW,)


def test_latest_window_ends_now(prom: Prom) -> None:
    before = pd.Timestamp.now(tz="UTC").floor(STEP)
    with src(prom) as s:
        got = s.latest(pd.Timedelta("1h"))
    after = pd.Timestamp.now(tz="UTC").floor(STEP)
    last = got.frame["timestamp"].max()
    assert before <= last <= after
    assert set(got.entities) == set(prom.expected.entities)
    assert got.frame.groupby("entity").size().eq(12).all()  # (now - 1h, now] on a 5m grid
    # The newest sample is 5 minutes old; within Prometheus' 5-minute lookback the grid point
    # at `now` repeats it, the same value the gap policy would hold.
    newest = prom.expected.frame["timestamp"].max()
    exp = prom.expected.frame.set_index(["entity", "timestamp"])[list(DEFAULT_METRICS)]
    for ent, g in got.frame.groupby("entity"):
        row = g.set_index("timestamp").loc[newest, list(DEFAULT_METRICS)].to_numpy(float)
        np.testing.assert_allclose(row, exp.loc[(ent, newest)].to_numpy(float), atol=1e-9)


def test_instant_query(prom: Prom) -> None:
    at = prom.start + pd.Timedelta(hours=7)
    with src(prom) as s:
        got = s.query_instant(QUERIES["cluster_pod_ratio"], at)
    want = prom.expected.frame.loc[prom.expected.frame["timestamp"] == at]
    assert got == pytest.approx(dict(zip(want["entity"], want["cluster_pod_ratio"],
                                         strict=True)), abs=1e-12)


def test_bad_promql_names_the_query(prom: Prom) -> None:
    bad = {"cluster_pod_ratio": "sum by (cluster) (cluster_pod_ratio"}
    cfg = PrometheusSourceConfig(url=prom.url, queries=bad, max_retries=3)
    with PrometheusSource(cfg) as s, pytest.raises(SourceError) as info:
        s.fetch(prom.start, prom.end)
    msg = str(info.value)
    assert "rejected query 'sum by (cluster) (cluster_pod_ratio'" in msg
    assert "HTTP 400" in msg and "parse error" in msg  # Prometheus' own text
    assert info.value.status == 400 and s.requests_sent == 1


def test_query_without_the_entity_label_names_the_query(prom: Prom) -> None:
    cfg = PrometheusSourceConfig(url=prom.url, queries={"x": "sum(cluster_pod_ratio)"})
    with (PrometheusSource(cfg) as s,
          pytest.raises(SourceError, match=r"query 'sum\(cluster_pod_ratio\)' for metric 'x' "
                        r"returned a series without the entity label 'cluster'")):
        s.fetch(prom.start, prom.end)


def test_query_with_several_series_per_entity_is_refused(prom: Prom) -> None:
    both = "cluster_pod_ratio or label_replace(cluster_cpu_request_ratio, 'k', 'v', '', '')"
    cfg = PrometheusSourceConfig(url=prom.url, queries={"x": both})
    with (PrometheusSource(cfg) as s,
          pytest.raises(SourceError, match="returned several series for cluster=")):
        s.fetch(prom.start, prom.start + pd.Timedelta(hours=1))


def test_a_range_with_no_data_is_a_source_error(prom: Prom) -> None:
    with (src(prom) as s,
          pytest.raises(SourceError, match=r"no entity has data for all metrics")):
        s.fetch(prom.start - pd.Timedelta(days=30), prom.start - pd.Timedelta(days=29))


def test_a_series_that_only_increases_gets_the_rate_hint(
        prom: Prom, caplog: pytest.LogCaptureFixture) -> None:
    # timestamp() of a sample only ever grows, as a counter's running total does; the query
    # has no counter-named series, so only the data can tell.
    queries = {"pods": QUERIES["cluster_pod_ratio"],
               "stamp": "timestamp(max by (cluster) (cluster_pod_ratio))"}
    cfg = PrometheusSourceConfig(url=prom.url, queries=queries, step="5m")
    with caplog.at_level("WARNING", logger="aws_anomaly.sources.prometheus"), \
            PrometheusSource(cfg) as s:
        assert not caplog.records  # nothing to say about the queries' text
        s.fetch(prom.start, prom.start + pd.Timedelta(hours=6))
        s.fetch(prom.start, prom.start + pd.Timedelta(hours=6))
    hints = [r.getMessage() for r in caplog.records]
    assert len(hints) == 1, hints  # once per metric, and not for the gauge
    assert hints[0].startswith(f"prometheus {prom.url}: metric 'stamp' (query 'timestamp(max "
                               "by (cluster) (cluster_pod_ratio))') looks like a raw counter: "
                               "for entity ")
    assert re.search(r"it only increases over (6[0-9]|7[0-2]) points, so every new value",
                     hints[0])
    assert "wrap the counter in rate()" in hints[0]
