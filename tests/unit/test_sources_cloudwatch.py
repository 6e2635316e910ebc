"""The CloudWatch source with moto (in-process AWS) and botocore's Stubber for paging."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import numpy as np
import pandas as pd
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from aws_anomaly.config import CloudWatchSourceConfig
from aws_anomaly.errors import SourceError
from aws_anomaly.sources import make_source
from aws_anomaly.sources.cloudwatch import MAX_QUERIES_PER_CALL, CloudWatchSource

REGION = "eu-west-1"
NS = "ContainerInsights"
T0 = pd.Timestamp.now(tz="UTC").floor("1h") - pd.Timedelta(hours=3)
STEP = pd.Timedelta("5min")


def cfg(**kw: object) -> CloudWatchSourceConfig:
    base: dict[str, object] = {
        "region": REGION, "period": "5m",
        "queries": [
            {"metric": "cpu", "namespace": NS, "metric_name": "node_cpu_utilization",
             "entity_dimension": "ClusterName"},
            {"metric": "pods", "namespace": NS, "metric_name": "pod_number_of_running_pods",
             "dimensions": {"Namespace": "default"}, "entity_dimension": "ClusterName",
             "stat": "Maximum"},
        ]}
    base.update(kw)
    return CloudWatchSourceConfig.model_validate(base)


def value(metric: str, cluster: str, i: int) -> float:
    return float(i % 5 + (100 if metric == "pods" else 0) + int(cluster.split("-")[1]))


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def put(clusters: list[str], points: int, *, skip: set[tuple[str, int]] = frozenset()) -> None:
    cw = boto3.client("cloudwatch", region_name=REGION)
    data = []
    for c in clusters:
        for i in range(points):
            if (c, i) in skip:
                continue
            t = (T0 + i * STEP).to_pydatetime()
            data.append({"MetricName": "node_cpu_utilization", "Timestamp": t,
                         "Dimensions": [{"Name": "ClusterName", "Value": c}],
                         "Value": value("cpu", c, i)})
            data.append({"MetricName": "pod_number_of_running_pods", "Timestamp": t,
                         "Dimensions": [{"Name": "ClusterName", "Value": c},
                                        {"Name": "Namespace", "Value": "default"}],
                         "Value": value("pods", c, i)})
    for b in range(0, len(data), 1000):
        cw.put_metric_data(Namespace=NS, MetricData=data[b:b + 1000])
    # A metric with a different dimension set must not be taken for a cluster.
    cw.put_metric_data(Namespace=NS, MetricData=[{
        "MetricName": "node_cpu_utilization", "Timestamp": T0.to_pydatetime(), "Value": 1.0,
        "Dimensions": [{"Name": "ClusterName", "Value": "c-99"},
                       {"Name": "NodeName", "Value": "n1"}]}])


def test_put_then_fetch_round_trip(aws: None) -> None:
    clusters = ["c-1", "c-2", "c-3"]
    put(clusters, 12, skip={("c-2", 5)})
    src = make_source(cfg())
    assert isinstance(src, CloudWatchSource)
    ds = src.fetch(T0, T0 + 12 * STEP)
    assert ds.entities == tuple(clusters)  # discovered with ListMetrics; c-99 left out
    assert ds.metrics == ("cpu", "pods")
    for c in clusters:
        f = ds.entity_frame(c)
        assert list(f.index) == list(pd.date_range(T0, periods=12, freq=STEP))
        want_cpu = [value("cpu", c, i) for i in range(12)]
        if c == "c-2":
            want_cpu[5] = want_cpu[4]  # the missing point is held (gap policy ffill)
        np.testing.assert_array_equal(f["cpu"].to_numpy(), want_cpu)
        np.testing.assert_array_equal(f["pods"].to_numpy(), [value("pods", c, i) if
                                                              (c, i) != ("c-2", 5) else
                                                              value("pods", c, 4)
                                                              for i in range(12)])
    assert src.calls == 1
    src.close()


def test_queries_are_batched_500_per_call(aws: None) -> None:
    clusters = [f"c-{i}" for i in range(260)]  # 2 metrics x 260 = 520 queries
    # Data for three of them is enough (moto's GetMetricData is quadratic in stored points);
    # the others answer empty series and are simply absent.
    put(["c-0", "c-150", "c-259"], 2)
    src = CloudWatchSource(cfg(entities=clusters))
    seen: list[int] = []
    src._client.meta.events.register(
        "before-parameter-build.monitoring.GetMetricData",
        lambda params, **_: seen.append(len(params["MetricDataQueries"])))
    ds = src.fetch(T0, T0 + 2 * STEP)
    assert seen == [MAX_QUERIES_PER_CALL, 20]
    assert ds.entities == ("c-0", "c-150", "c-259") and len(ds) == 6
    assert ds.entity_frame("c-259")["pods"].tolist() == [value("pods", "c-259", i)
                                                          for i in range(2)]


def test_entities_argument_and_unknown_entity(aws: None) -> None:
    put(["c-1", "c-2"], 4)
    src = CloudWatchSource(cfg())
    assert src.fetch(T0, T0 + 4 * STEP, entities=["c-2"]).entities == ("c-2",)
    with pytest.raises(SourceError, match=r"no entity has data .*entities asked: \['c-7'\]"):
        src.fetch(T0, T0 + 4 * STEP, entities=["c-7"])


def test_nothing_to_discover(aws: None) -> None:
    with pytest.raises(SourceError, match="no entities found for metrics"):
        CloudWatchSource(cfg()).fetch(T0, T0 + STEP)


def test_pagination_follows_next_token() -> None:
    client = boto3.client("cloudwatch", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="y")
    src = CloudWatchSource(cfg(entities=["c-1"]), client=client)
    t = [T0 + i * STEP for i in range(4)]
    stub = Stubber(client)
    first = {"MetricDataResults": [
        {"Id": "q0", "Timestamps": [t[0].to_pydatetime(), t[1].to_pydatetime()],
         "Values": [1.0, 2.0], "StatusCode": "PartialData"},
        {"Id": "q1", "Timestamps": [t[1].to_pydatetime(), t[0].to_pydatetime()],
         "Values": [11.0, 10.0], "StatusCode": "PartialData"}], "NextToken": "page-2"}
    second = {"MetricDataResults": [
        {"Id": "q0", "Timestamps": [t[3].to_pydatetime(), t[2].to_pydatetime()],
         "Values": [4.0, 3.0], "StatusCode": "Complete"},
        {"Id": "q1", "Timestamps": [t[2].to_pydatetime(), t[3].to_pydatetime()],
         "Values": [12.0, 13.0], "StatusCode": "Complete"}]}
    stub.add_response("get_metric_data", first, {
        "MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY, "ScanBy": ANY})
    stub.add_response("get_metric_data", second, {
        "MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY, "ScanBy": ANY,
        "NextToken": "page-2"})
    with stub:
        ds = src.fetch(T0, T0 + 4 * STEP)
    stub.assert_no_pending_responses()
    assert src.calls == 2
    f = ds.entity_frame("c-1")
    assert f["cpu"].tolist() == [1.0, 2.0, 3.0, 4.0]  # sorted by time across pages
    assert f["pods"].tolist() == [10.0, 11.0, 12.0, 13.0]


def test_api_error_is_a_source_error() -> None:
    client = boto3.client("cloudwatch", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="y")
    src = CloudWatchSource(cfg(entities=["c-1"]), client=client)
    stub = Stubber(client)
    stub.add_client_error("get_metric_data", service_error_code="AccessDenied",
                          service_message="not authorized to cloudwatch:GetMetricData",
                          http_status_code=403)
    with stub, pytest.raises(SourceError, match=r"get_metric_data failed: AccessDenied: not "
                                                r"authorized") as info:
        src.fetch(T0, T0 + 4 * STEP)
    assert info.value.status == 403


def test_unknown_metric_is_refused() -> None:
    with pytest.raises(SourceError, match=r"no query for metric\(s\) \['mem'\]"):
        CloudWatchSource(cfg(), metrics=["mem"], client=object())
