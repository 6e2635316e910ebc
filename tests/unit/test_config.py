"""The typed configuration: YAML + env overrides, unknown keys, durations, secrets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aws_anomaly.config import (
    DEMO_METRICS,
    BearerAuth,
    JobConfig,
    PrometheusSourceConfig,
    Settings,
    format_duration,
    load_job,
    load_settings,
    parse_duration,
)
from aws_anomaly.errors import ConfigError

JOB_YAML = """
name: eks-prod
source:
  type: prometheus
  url: https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/
  queries:
    cluster_cpu_request_ratio: sum by (cluster) (kube_pod_container_resource_requests)
    cluster_pod_ratio: sum by (cluster) (kube_pod_info) / sum by (cluster) (kube_node_pods)
  step: 1m
  auth: {type: sigv4, region: eu-west-1}
  tls: {ca_file: ca.pem}
entities: [prod-a, prod-b]
model: {detector: iforest, history: 14d}
interval: 30s
lookback: 12h
notifiers:
  - {type: alertmanager, url: "http://127.0.0.1:9093", labels: {team: platform}}
  - {type: slack, url_env: SLACK_URL, min_consecutive: 5}
alert: {min_consecutive: 2, severity: critical}
"""


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_need_no_file_and_run_the_demo_job() -> None:
    s = load_settings(None, environ={})
    assert s == Settings()
    assert s.service.host == "127.0.0.1"
    assert s.service.resolved_token(environ={}) is None
    (job,) = s.jobs
    assert job.source.type == "demo"
    assert job.metrics == DEMO_METRICS
    assert s.model_path(job) == s.service.data_dir / "models" / "demo"
    assert s.service.store_url() == f"sqlite:///{s.service.data_dir / 'aws_anomaly.db'}"


def test_job_file_is_parsed_into_typed_sections(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, JOB_YAML), environ={})
    assert isinstance(job.source, PrometheusSourceConfig)
    assert job.source.url.endswith("/ws-1")  # trailing slash dropped
    assert job.source.step == timedelta(minutes=1)
    assert job.source.auth.type == "sigv4" and job.source.auth.service == "aps"
    # relative paths are relative to the config file's folder
    assert job.source.tls.ca_file == tmp_path / "ca.pem"
    assert job.metrics == ("cluster_cpu_request_ratio", "cluster_pod_ratio")
    assert job.entities == ("prod-a", "prod-b")
    assert job.interval == timedelta(seconds=30) and job.lookback == timedelta(hours=12)
    assert [n.type for n in job.notifiers] == ["alertmanager", "slack"]
    assert job.notifiers[1].resolved_url(environ={"SLACK_URL": "https://hooks/x"}) == \
        "https://hooks/x"
    assert job.alert.severity == "critical"


def test_models_are_frozen() -> None:
    job = JobConfig(name="x")
    with pytest.raises(ValueError, match="frozen"):
        job.interval = timedelta(seconds=1)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ("intervall: 1m\n", "intervall"),
        ("source: {type: demo, clusterz: 3}\n", "source.clusterz"),
        ("alert: {min_consecutive: 2, sevrity: info}\n", "alert.sevrity"),
    ],
)
def test_unknown_key_names_the_key_the_file_and_what_is_allowed(
        tmp_path: Path, patch: str, key: str) -> None:
    p = write(tmp_path, "name: j\n" + patch)
    with pytest.raises(ConfigError) as info:
        load_job(p, environ={})
    msg = str(info.value)
    assert f"unknown key '{key}'" in msg
    assert str(p) in msg
    assert "allowed keys:" in msg


def test_unknown_key_inside_a_tagged_union_lists_that_variants_keys(tmp_path: Path) -> None:
    p = write(tmp_path, JOB_YAML.replace("auth: {type: sigv4, region: eu-west-1}",
                                         "auth: {type: bearer, token_env: T, tokn: x}"))
    with pytest.raises(ConfigError, match=r"unknown key 'source.auth.tokn'; allowed keys: "
                                          r"token, token_env, token_file, type"):
        load_job(p, environ={})


def test_settings_file_with_env_overrides(tmp_path: Path) -> None:
    p = write(tmp_path, "service: {port: 8081, data_dir: state}\njobs:\n  - name: a\n")
    env = {
        "AWS_ANOMALY__SERVICE__PORT": "9100",
        "AWS_ANOMALY__SERVICE__TOKEN": "0123",  # stays a string, never a number
        "AWS_ANOMALY__JOBS__0__INTERVAL": "2m",
        "AWS_ANOMALY__JOBS__0__ENTITIES": '["c1", "c2"]',
        "UNRELATED": "x",
    }
    s = load_settings(p, environ=env)
    assert s.service.port == 9100
    assert s.service.resolved_token() == "0123"
    assert "0123" not in repr(s)  # secrets are masked
    assert s.service.data_dir == tmp_path / "state"
    assert s.jobs[0].interval == timedelta(minutes=2)
    assert s.jobs[0].entities == ("c1", "c2")


def test_env_override_of_the_default_job_keeps_it(tmp_path: Path) -> None:
    s = load_settings(None, environ={"AWS_ANOMALY__JOBS__0__SOURCE__SPEEDUP": "600"})
    assert s.jobs[0].name == "demo" and s.jobs[0].source.speedup == 600.0


def test_job_env_prefix(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, JOB_YAML),
                   environ={"AWS_ANOMALY__JOB__SOURCE__URL": "http://127.0.0.1:9999"})
    assert job.source.url == "http://127.0.0.1:9999"


def test_bad_env_override_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"AWS_ANOMALY__SERVICE__PORT__X: service.port is a "
                                          r"value"):
        load_settings(write(tmp_path, "service: {port: 1}\n"),
                      environ={"AWS_ANOMALY__SERVICE__PORT__X": "1"})
    with pytest.raises(ConfigError, match=r"'service.port': Input should be a valid integer"):
        load_settings(None, environ={"AWS_ANOMALY__SERVICE__PORT": "eighty"})


def test_non_loopback_service_requires_a_token() -> None:
    with pytest.raises(ConfigError, match=r"'service': host '0.0.0.0' is not loopback"):
        load_settings(None, environ={"AWS_ANOMALY__SERVICE__HOST": "0.0.0.0"})
    s = load_settings(None, environ={"AWS_ANOMALY__SERVICE__HOST": "0.0.0.0",
                                     "AWS_ANOMALY__SERVICE__TOKEN_ENV": "API_TOKEN"})
    assert s.service.resolved_token(environ={"API_TOKEN": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigError, match="API_TOKEN is not set"):
        s.service.resolved_token(environ={})


def test_secret_from_file(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("abc\n")
    auth = BearerAuth(token_file=tmp_path / "tok")
    assert auth.resolve() == "abc"
    (tmp_path / "tok").write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        auth.resolve()
    with pytest.raises(ConfigError, match="cannot read secret file"):
        BearerAuth(token_file=tmp_path / "missing").resolve()


def test_secret_sources_are_exclusive_and_required() -> None:
    with pytest.raises(ValueError, match="give only one of token, token_env, token_file"):
        BearerAuth(token="a", token_env="B")
    with pytest.raises(ValueError, match="one of token, token_env, token_file is required"):
        BearerAuth()


def test_job_metrics_must_exist_in_the_source(tmp_path: Path) -> None:
    p = write(tmp_path, JOB_YAML.replace("entities:", "metrics: [cluster_mem_request_ratio]\n"
                                                      "entities:"))
    with pytest.raises(ConfigError, match=r"metrics \['cluster_mem_request_ratio'\] are not "
                                          r"provided by the prometheus source"):
        load_job(p, environ={})


def test_duplicate_job_names_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"job names repeat: \['a'\]"):
        load_settings(write(tmp_path, "jobs: [{name: a}, {name: a}]\n"), environ={})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: [unclosed\n", "invalid YAML at line"),
        ("- a\n- b\n", "expected a mapping at the top level, got list"),
        ("name: Bad Name\n", "must be 1-63 characters"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_job(write(tmp_path, text), environ={})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file /nonexistent/job\.yaml"):
        load_job("/nonexistent/job.yaml", environ={})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("14d", 14 * 86400), ("1w", 604800),
     ("1h30m", 5400), ("500ms", 0.5), (" 2m ", 120), (45, 45), (0.25, 0.25)],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "5m3", "-5m", "0s", "1.5.2h", "five"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match=r"duration"):
        parse_duration(text)


def test_duration_error_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'source.step': '5 min' is not a duration"):
        load_job(write(tmp_path, "name: a\nsource: {type: demo, step: 5 min}\n"), environ={})


def test_format_duration_round_trips() -> None:
    for text in ["30s", "5m", "1h30m", "14d", "1s500ms"]:
        assert format_duration(parse_duration(text)) == text


def test_dump_round_trips_through_validation() -> None:
    s = load_settings(None, environ={})
    again = Settings.model_validate(s.model_dump(mode="json"))
    assert again == s


def test_cloudwatch_period_rules() -> None:
    from aws_anomaly.config import CloudWatchSourceConfig

    q = {"metric": "cpu", "namespace": "ContainerInsights", "metric_name": "node_cpu_utilization",
         "entity_dimension": "ClusterName"}
    assert CloudWatchSourceConfig(region="us-east-1", queries=[q], period="5m").period == \
        timedelta(minutes=5)
    with pytest.raises(ValueError, match="multiple of 60 s"):
        CloudWatchSourceConfig(region="us-east-1", queries=[q], period="90s")


def test_json_env_value_replaces_a_mixed_case_map(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, JOB_YAML), environ={
        "AWS_ANOMALY__JOB__SOURCE__QUERIES": '{"Pods": "sum by (cluster) (kube_pod_info)"}',
        "AWS_ANOMALY__JOB__METRICS": '["Pods"]'})
    assert job.source.queries == {"Pods": "sum by (cluster) (kube_pod_info)"}
    assert job.metrics == ("Pods",)
