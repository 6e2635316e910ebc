"""The Helm chart's default job queries, run by the real Prometheus source on a real
Prometheus holding kube-state-metrics series: once as a Prometheus that watches one cluster
(no `cluster` label, the common case) and once as one that holds several clusters (each series
labelled). Both must give one entity per cluster and the ratios the series imply."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.config import PrometheusSourceConfig
from aws_anomaly.errors import SourceError
from aws_anomaly.sources.prometheus import PrometheusSource
from tests.integration.promkit import backfill, running_prometheus
from tests.unit.test_deploy_helm import render, settings_of

pytestmark = pytest.mark.integration

STEP = pd.Timedelta("5min")
#: Per cluster: the pods' CPU / memory requests, the nodes' allocatable CPU / memory / pods.
CLUSTERS = {
    "alpha": {"cpu": [0.5, 1.5], "mem": [1e9, 3e9], "alloc": [(4, 8e9, 110), (4, 8e9, 110)]},
    "beta": {"cpu": [2.0, 1.0, 3.0], "mem": [2e9, 2e9, 4e9], "alloc": [(8, 16e9, 58)]},
}


def _expected(c: dict) -> dict[str, float]:
    cpu = sum(a[0] for a in c["alloc"])
    mem = sum(a[1] for a in c["alloc"])
    pods = sum(a[2] for a in c["alloc"])
    return {"cluster_cpu_request_ratio": sum(c["cpu"]) / cpu,
            "cluster_mem_request_ratio": sum(c["mem"]) / mem,
            "cluster_pod_ratio": len(c["cpu"]) / pods}


def _openmetrics(path: Path, clusters: dict[str, dict], stamps: list[int], *,
                 labelled: bool) -> Path:
    """kube-state-metrics series as OpenMetrics text; ``labelled`` adds cluster="<name>"."""
    families: dict[str, list[str]] = {"kube_pod_container_resource_requests": [],
                                      "kube_node_status_allocatable": [], "kube_pod_info": []}
    for name, c in clusters.items():
        cl = f'cluster="{name}",' if labelled else ""
        for i, (cpu, mem) in enumerate(zip(c["cpu"], c["mem"], strict=True)):
            pod = f'namespace="default",pod="{name}-p{i}"'
            families["kube_pod_container_resource_requests"] += [
                f'{{{cl}{pod},container="app",resource="cpu",unit="core"}} {cpu}',
                f'{{{cl}{pod},container="app",resource="memory",unit="byte"}} {mem}']
            families["kube_pod_info"].append(f'{{{cl}{pod},node="n0"}} 1')
        for j, (cpu, mem, pods) in enumerate(c["alloc"]):
            node = f'node="{name}-n{j}"'
            families["kube_node_status_allocatable"] += [
                f'{{{cl}{node},resource="cpu",unit="core"}} {cpu}',
                f'{{{cl}{node},resource="memory",unit="byte"}} {mem}',
                f'{{{cl}{node},resource="pods",unit="integer"}} {pods}']
    with path.open("w") as out:
        for fam, series in families.items():
            out.write(f"# TYPE {fam} gauge\n")
            for s in series:
                out.writelines(f"{fam}{s} {t}\n" for t in stamps)
        out.write("# EOF\n")
    return path


@pytest.fixture(scope="module")
def window() -> tuple[pd.Timestamp, pd.Timestamp, list[int]]:
    end = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)
    start = end - pd.Timedelta(hours=2)
    stamps = [int(t.timestamp()) for t in pd.date_range(start, end, freq="1min")]
    return start, end, stamps


@pytest.fixture(scope="module")
def single_cluster_prom(tmp_path_factory: pytest.TempPathFactory, window) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("single")
    om = _openmetrics(tmp / "ksm.om", {"alpha": CLUSTERS["alpha"]}, window[2], labelled=False)
    with running_prometheus(backfill(om, tmp / "tsdb")) as url:
        yield url


@pytest.fixture(scope="module")
def multi_cluster_prom(tmp_path_factory: pytest.TempPathFactory, window) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("multi")
    om = _openmetrics(tmp / "ksm.om", CLUSTERS, window[2], labelled=True)
    with running_prometheus(backfill(om, tmp / "tsdb")) as url:
        yield url


def _chart_source(url: str, tmp_path: Path, **prometheus: str) -> PrometheusSourceConfig:
    docs = render({"prometheus": {"url": url, **prometheus}})
    src = settings_of(docs, tmp_path).jobs[0].source
    assert isinstance(src, PrometheusSourceConfig)
    return src.model_copy(update={"step": STEP})


def _check(source: PrometheusSource, start: pd.Timestamp, end: pd.Timestamp,
           clusters: dict[str, dict[str, float]]) -> None:
    data = source.fetch(start, end)
    assert list(data.entities) == sorted(clusters)
    for name, want in clusters.items():
        frame = data.entity_frame(name)
        assert len(frame) == (end - start) // STEP
        for metric, value in want.items():
            np.testing.assert_allclose(frame[metric].to_numpy(), value, rtol=1e-9)


def test_single_cluster_without_cluster_label(single_cluster_prom: str, window,
                                              tmp_path: Path) -> None:
    start, end, _ = window
    cfg = _chart_source(single_cluster_prom, tmp_path, clusterName="prod-eu-1")
    _check(PrometheusSource(cfg), start, end, {"prod-eu-1": _expected(CLUSTERS["alpha"])})
    # The plain `sum by (cluster)` queries the chart had before give a series without the
    # label here, which the source refuses.
    plain = cfg.model_copy(update={"queries": {
        "cluster_pod_ratio": "sum by (cluster) (kube_pod_info) / "
                             'sum by (cluster) (kube_node_status_allocatable{resource="pods"})'}})
    with pytest.raises(SourceError, match="without the entity label 'cluster'"):
        PrometheusSource(plain).fetch(start, end)


def test_several_clusters_keep_their_own_label(multi_cluster_prom: str, window,
                                               tmp_path: Path) -> None:
    start, end, _ = window
    cfg = _chart_source(multi_cluster_prom, tmp_path)
    _check(PrometheusSource(cfg), start, end,
           {name: _expected(c) for name, c in CLUSTERS.items()})
