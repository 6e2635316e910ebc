"""CloudWatch source: ``GetMetricData`` over one query per (metric, entity).

Each configured query names a namespace, a metric, fixed dimensions and the dimension whose
value is the entity (``ClusterName`` for Container Insights). The entities are listed in the
config or discovered with ``ListMetrics``. Queries go out in batches of 500 (the API's limit per
call), and every page of each batch is read through ``NextToken``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import boto3
import numpy as np
import pandas as pd
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from aws_anomaly.config import CloudWatchQuery, CloudWatchSourceConfig
from aws_anomaly.data import Dataset
from aws_anomaly.errors import SourceError
from aws_anomaly.sources.base import BaseSource, TimeLike, align_range, build_dataset, to_utc

__all__ = ["MAX_QUERIES_PER_CALL", "CloudWatchSource"]

log = logging.getLogger(__name__)

MAX_QUERIES_PER_CALL = 500


class CloudWatchSource(BaseSource):
    """Reads the configured CloudWatch metrics, one series per entity-dimension value.

    Parameters
    ----------
    cfg
        The source section of a job.
    metrics
        Which of the configured metrics to read (default: all).
    client
        A ready boto3 CloudWatch client (tests); by default one is made from ``cfg`` with the
        standard AWS credential chain.
    """

    def __init__(self, cfg: CloudWatchSourceConfig, *, metrics: Sequence[str] | None = None,
                 client: Any = None, client_factory: Callable[..., Any] | None = None) -> None:
        self.cfg = cfg
        self.name = f"cloudwatch {cfg.region}"
        by_metric = {q.metric: q for q in cfg.queries}
        chosen = tuple(metrics) if metrics is not None else tuple(by_metric)
        unknown = [m for m in chosen if m not in by_metric]
        if unknown:
            raise SourceError(f"{self.name}: no query for metric(s) {unknown}; configured: "
                              f"{list(by_metric)}")
        self.metrics = chosen
        self._queries = [by_metric[m] for m in chosen]
        self.step = pd.Timedelta(cfg.period)
        self.calls = 0  # GetMetricData calls made, for tests and health output
        if client is None:
            try:
                session = boto3.session.Session(profile_name=cfg.profile,
                                                region_name=cfg.region)
                client = (client_factory or session.client)(
                    "cloudwatch", region_name=cfg.region, endpoint_url=cfg.endpoint_url,
                    config=Config(retries={"max_attempts": cfg.max_retries + 1,
                                           "mode": "standard"},
                                  connect_timeout=10, read_timeout=30))
            except BotoCoreError as exc:
                raise SourceError(f"{self.name}: cannot create a CloudWatch client: "
                                  f"{exc}") from None
        self._client = client

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close is not None:
            close()

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self._client, op)(**kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise SourceError(f"{self.name}: {op} failed: {err.get('Code')}: "
                              f"{err.get('Message')}",
                              status=exc.response.get("ResponseMetadata", {})
                              .get("HTTPStatusCode")) from None
        except BotoCoreError as exc:
            raise SourceError(f"{self.name}: {op} failed: {exc}") from None

    def discover(self, query: CloudWatchQuery) -> list[str]:
        """Entity-dimension values that have ``query``'s metric with exactly its dimensions."""
        want = {*query.dimensions, query.entity_dimension}
        dims = [{"Name": query.entity_dimension}] + [
            {"Name": k, "Value": v} for k, v in query.dimensions.items()]
        found: set[str] = set()
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Namespace": query.namespace, "MetricName": query.metric_name,
                                  "Dimensions": dims}
            if token:
                kw["NextToken"] = token
            page = self._call("list_metrics", **kw)
            for metric in page.get("Metrics", []):
                d = {x["Name"]: x["Value"] for x in metric.get("Dimensions", [])}
                # A CloudWatch metric is identified by its exact dimension set.
                if set(d) == want:
                    found.add(d[query.entity_dimension])
            token = page.get("NextToken")
            if not token:
                return sorted(found)

    def _entities(self, entities: Sequence[str] | None) -> dict[str, list[str]]:
        if entities is not None:
            return {q.metric: list(entities) for q in self._queries}
        if self.cfg.entities is not None:
            return {q.metric: list(self.cfg.entities) for q in self._queries}
        return {q.metric: self.discover(q) for q in self._queries}

    def fetch(self, start: TimeLike, end: TimeLike, *,
              entities: Sequence[str] | None = None) -> Dataset:
        """Every configured metric for ``start <= t < end`` on the period grid."""
        rng = align_range(start, end, self.step)
        if rng is None:
            raise SourceError(f"{self.name}: no {self.step} grid point in [{to_utc(start)}, "
                              f"{to_utc(end)})")
        first, last = rng
        plan: list[tuple[str, str, dict[str, Any]]] = []
        per_metric = self._entities(entities)
        for q in self._queries:
            for ent in per_metric[q.metric]:
                named = {**q.dimensions, q.entity_dimension: ent}
                # Sorted by name: one canonical form (CloudWatch ignores the order; some
                # emulators compare dimension lists as given).
                dims = [{"Name": k, "Value": named[k]} for k in sorted(named)]
                plan.append((q.metric, ent, {
                    "Metric": {"Namespace": q.namespace, "MetricName": q.metric_name,
                               "Dimensions": dims},
                    "Period": int(self.step.total_seconds()), "Stat": q.stat}))
        if not plan:
            raise SourceError(f"{self.name}: no entities found for metrics {list(self.metrics)}"
                              "; list them under `entities` or check namespace and dimensions")
        points: dict[str, dict[str, tuple[list[Any], list[float]]]] = {}
        for b in range(0, len(plan), MAX_QUERIES_PER_CALL):
            batch = plan[b:b + MAX_QUERIES_PER_CALL]
            queries = [{"Id": f"q{b + i}", "MetricStat": stat, "ReturnData": True}
                       for i, (_, _, stat) in enumerate(batch)]
            token: str | None = None
            while True:
                kw: dict[str, Any] = {
                    "MetricDataQueries": queries, "StartTime": first.to_pydatetime(),
                    "EndTime": (last + self.step).to_pydatetime(),
                    "ScanBy": "TimestampAscending"}
                if token:
                    kw["NextToken"] = token
                self.calls += 1
                page = self._call("get_metric_data", **kw)
                for res in page.get("MetricDataResults", []):
                    metric, ent, _ = plan[int(res["Id"][1:])]
                    if res.get("StatusCode") not in (None, "Complete", "PartialData"):
                        raise SourceError(f"{self.name}: metric {metric!r} for entity {ent!r}: "
                                          f"status {res['StatusCode']}: {res.get('Messages')}")
                    ts, vals = points.setdefault(metric, {}).setdefault(ent, ([], []))
                    ts.extend(res.get("Timestamps", []))
                    vals.extend(res.get("Values", []))
                for msg in page.get("Messages", []):
                    log.warning("%s: %s: %s", self.name, msg.get("Code"), msg.get("Value"))
                token = page.get("NextToken")
                if not token:
                    break
        series = {m: {e: _to_arrays(ts, vals, first, last) for e, (ts, vals) in per.items()}
                  for m, per in points.items()}
        return build_dataset(series, metrics=self.metrics, step=self.step, source=self.name,
                             gap_policy=self.cfg.gap_policy, max_gap_steps=self.cfg.max_gap_steps,
                             entities=entities, span=f"[{first}, {last}]")


def _to_arrays(ts: list[Any], vals: list[float], first: pd.Timestamp, last: pd.Timestamp
               ) -> tuple[np.ndarray, np.ndarray]:
    if not ts:
        return np.empty(0, dtype=np.int64), np.empty(0)
    all_ns = pd.DatetimeIndex(pd.to_datetime(pd.Series(ts), utc=True)).as_unit("ns").asi8
    order = np.argsort(all_ns, kind="stable")
    ns = all_ns[order]
    v = np.asarray(vals, dtype=np.float64)[order]
    keep = (ns >= first.value) & (ns <= last.value)
    return ns[keep], v[keep]
