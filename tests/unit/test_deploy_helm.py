"""The Helm chart, rendered by Helm's own template engine (helm-python-sdk binds the Helm Go
SDK; nothing is downloaded, no cluster is contacted) for several value sets, each manifest
validated against the Kubernetes JSON schema of its kind (kubernetes-validate ships them), and
the pieces checked to fit together: the settings file is a valid aws-anomaly configuration, the
pod's service account, token Secret and ConfigMap exist or are the user's, the Prometheus
Operator finds the ServiceMonitor, alert links point at the external URL."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest
import yaml

from aws_anomaly.alert_rules import RuleOptions
from aws_anomaly.config import PrometheusSourceConfig, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "aws-anomaly"
RELEASE, NAMESPACE = "anomaly", "monitoring"
#: Kubernetes version whose schemas the manifests must satisfy (EKS's supported range).
KUBE_VERSION = "1.30.0"


def _need(module: str) -> ModuleType:
    """Import a test tool from the `test` extra; missing one fails in CI, skips elsewhere."""
    try:
        return __import__(module)
    except ImportError:
        msg = f"{module} is not installed (pip install -e '.[test]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The chart's manifests for ``values`` (over values.yaml), as Helm installs them."""
    helm = _need("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith(".tpl") or path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__template__"] = path
                docs.append(doc)
    return docs


def kinds(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    got = kinds(docs).get(kind, [])
    assert len(got) == 1, f"expected one {kind}, got {len(got)}"
    return got[0]


def settings_of(docs: list[dict[str, Any]], tmp_path: Path) -> Settings:
    """The settings.yaml the chart writes, loaded by the service's own loader."""
    path = tmp_path / "settings.yaml"
    (settings,) = [d for d in kinds(docs)["ConfigMap"] if "settings.yaml" in d["data"]]
    path.write_text(settings["data"]["settings.yaml"])
    return load_settings(path, environ={})


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment")["spec"]["template"]["spec"]


VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "single-cluster": {"prometheus": {"clusterName": "prod-eu-1"}},
    "existing-service-account": {"serviceAccount": {"create": False, "name": "amp-reader"}},
    "existing-secret": {"token": {"existingSecret": "anomaly-api", "existingSecretKey": "api"}},
    "service-monitor": {"serviceMonitor": {"enabled": True,
                                           "labels": {"release": "prom-stack"}}},
    "amp-irsa": {
        "prometheus": {"url": "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1",
                       "sigv4": {"enabled": True, "region": "eu-west-1"}},
        "serviceAccount": {"annotations": {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/aws-anomaly"}},
    },
    "rules-and-external-url": {"externalUrl": "https://anomaly.example.com/",
                               "prometheusRule": {"enabled": True}, "alertmanager":
                               {"enabled": False}, "persistence": {"enabled": False}},
    "grafana-dashboard": {"grafanaDashboard": {"enabled": True}},
}


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_manifest_is_valid_kubernetes_and_settings_load(name: str, tmp_path: Path) -> None:
    kv = _need("kubernetes_validate")
    docs = render(VALUE_SETS[name])
    for doc in docs:
        manifest = {k: v for k, v in doc.items() if k != "__template__"}
        if manifest["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # Prometheus Operator kinds: checked field by field below
        try:
            kv.validate(manifest, KUBE_VERSION, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{name}: {doc['__template__']} ({doc['kind']}) is not valid "
                        f"Kubernetes {KUBE_VERSION}: {exc.message}")
    settings = settings_of(docs, tmp_path)
    assert settings.service.host == "0.0.0.0"
    assert settings.service.token_file == Path("/etc/aws-anomaly/token/token")
    # Everything the pod refers to is in the release or named by the user.
    spec = pod_spec(docs)
    by_kind = kinds(docs)
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["settings"]["configMap"]["name"] in [
        c["metadata"]["name"] for c in by_kind["ConfigMap"] if "settings.yaml" in c["data"]]
    if VALUE_SETS[name].get("persistence", {}).get("enabled", True):
        claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
        assert claim == one(docs, "PersistentVolumeClaim")["metadata"]["name"]
    secret_name = volumes["token"]["secret"]["secretName"]
    if secret_name != VALUE_SETS[name].get("token", {}).get("existingSecret"):
        assert secret_name in [s["metadata"]["name"] for s in by_kind["Secret"]]
    sa = spec["serviceAccountName"]
    if VALUE_SETS[name].get("serviceAccount", {}).get("create", True):
        assert sa in [s["metadata"]["name"] for s in by_kind["ServiceAccount"]]


def test_defaults_notify_alertmanager_directly_with_in_cluster_links(tmp_path: Path) -> None:
    docs = render()
    assert "PrometheusRule" not in kinds(docs), "the rule path must be opt-in"
    job = settings_of(docs, tmp_path).jobs[0]
    (am,) = job.notifiers
    assert am.type == "alertmanager"
    assert am.url == "http://alertmanager-operated.monitoring:9093"
    assert am.dashboard_url == f"http://{RELEASE}.{NAMESPACE}.svc:8080"
    assert "127.0.0.1" not in one(docs, "ConfigMap")["data"]["settings.yaml"]


def test_external_url_is_used_for_alert_and_rule_links(tmp_path: Path) -> None:
    docs = render({"externalUrl": "https://anomaly.example.com/", "prometheusRule":
                   {"enabled": True}, "notifiers": [{"type": "webhook",
                                                     "url": "https://hooks.example.com/a"}]})
    job = settings_of(docs, tmp_path).jobs[0]
    assert [n.type for n in job.notifiers] == ["alertmanager", "webhook"]
    assert {n.dashboard_url for n in job.notifiers} == {"https://anomaly.example.com"}
    rule = one(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # The chart's rules (tests/unit/test_deploy.py keeps them equal to `aws-anomaly rules`),
    # with the external URL in place of the default address.
    shipped = (CHART / "files" / "aws-anomaly-rules.yml").read_text()
    assert rule["spec"] == yaml.safe_load(shipped.replace(RuleOptions().dashboard_url,
                                                          "https://anomaly.example.com"))
    links = [r["annotations"]["dashboard"] for g in rule["spec"]["groups"]
             for r in g["rules"] if "dashboard" in r.get("annotations", {})]
    assert links and all(u.startswith("https://anomaly.example.com/") for u in links)
    assert "127.0.0.1" not in yaml.safe_dump(rule)


def test_rules_replace_only_the_default_dashboard_address() -> None:
    # The chart's template swaps this exact text; if the generator's default changes, so must
    # the template (deploy/helm/aws-anomaly/templates/prometheusrule.yaml).
    text = (CHART / "files" / "aws-anomaly-rules.yml").read_text()
    assert RuleOptions().dashboard_url in text
    assert (CHART / "templates" / "prometheusrule.yaml").read_text().count(
        f'replace "{RuleOptions().dashboard_url}"') == 1


def test_default_queries_name_series_without_the_cluster_label(tmp_path: Path) -> None:
    docs = render({"prometheus": {"clusterName": "prod-eu-1"}})
    src = settings_of(docs, tmp_path).jobs[0].source
    assert isinstance(src, PrometheusSourceConfig)
    assert src.entity_label == "cluster"
    assert set(src.queries) == {"cluster_cpu_request_ratio", "cluster_mem_request_ratio",
                                "cluster_pod_ratio"}
    for q in src.queries.values():
        # every selector is wrapped so a missing label becomes the cluster name
        assert q.count("sum by (cluster)") == 2
        assert q.count('label_replace(') == 2
        assert q.count('"cluster", "prod-eu-1", "cluster", ""') == 2
    # tests/integration/test_deploy_queries.py runs them on a real Prometheus


def test_existing_service_account_is_used_and_not_created() -> None:
    docs = render({"serviceAccount": {"create": False, "name": "amp-reader"}})
    assert "ServiceAccount" not in kinds(docs)
    assert pod_spec(docs)["serviceAccountName"] == "amp-reader"
    # without a name the namespace's default account, which always exists
    docs = render({"serviceAccount": {"create": False}})
    assert pod_spec(docs)["serviceAccountName"] == "default"
    docs = render({"serviceAccount": {"name": "anomaly-sa"}})
    assert one(docs, "ServiceAccount")["metadata"]["name"] == "anomaly-sa"
    assert pod_spec(docs)["serviceAccountName"] == "anomaly-sa"


def test_irsa_annotation_and_sigv4_for_amazon_managed_prometheus(tmp_path: Path) -> None:
    values = VALUE_SETS["amp-irsa"]
    docs = render(values)
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == values["serviceAccount"]["annotations"]
    src = settings_of(docs, tmp_path).jobs[0].source
    assert src.auth.type == "sigv4"
    assert (src.auth.region, src.auth.service) == ("eu-west-1", "aps")


def test_existing_secret_is_mounted_and_no_token_secret_is_created() -> None:
    docs = render({"token": {"existingSecret": "anomaly-api", "existingSecretKey": "api"}})
    assert "Secret" not in kinds(docs)
    token = {v["name"]: v for v in pod_spec(docs)["volumes"]}["token"]["secret"]
    assert token == {"secretName": "anomaly-api", "items": [{"key": "api", "path": "token"}]}


def test_chart_token_given_or_generated() -> None:
    docs = render({"token": {"value": "a-token-of-24-characters"}})
    secret = one(docs, "Secret")
    assert base64.b64decode(secret["data"]["token"]).decode() == "a-token-of-24-characters"
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/token" in annotations  # a rotated value restarts the pod
    # With no value and no earlier Secret (lookup finds none offline): a random token, long
    # enough for the service's minimum.
    generated = base64.b64decode(one(render(), "Secret")["data"]["token"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{40}", generated)
    helm = _need("helm_python")
    with (helm.Chart.load(str(CHART)) as chart,
          pytest.raises(helm.HelmRenderError, match="16 characters")):
        chart.render({"token": {"value": "short"}}, name=RELEASE, namespace=NAMESPACE)


class _SecretsApi(BaseHTTPRequestHandler):
    """Answers what Helm's `lookup "v1" "Secret"` asks a Kubernetes API server: the v1
    resource list (discovery), then GET of one Secret (``secrets`` holds them by namespace/name;
    any other path is the API's 404 Status)."""

    secrets: ClassVar[dict[str, dict[str, str]]] = {}
    seen: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self.seen.append(path)
        code, body = 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "reason": "NotFound", "code": 404, "message": f"{path} not found"}
        match = re.fullmatch(r"/api/v1/namespaces/([^/]+)/secrets/([^/]+)", path)
        if path == "/api/v1":
            code, body = 200, {"kind": "APIResourceList", "apiVersion": "v1",
                               "groupVersion": "v1", "resources": [
                                   {"name": "secrets", "singularName": "secret",
                                    "namespaced": True, "kind": "Secret",
                                    "verbs": ["get", "list"]}]}
        elif match and f"{match[1]}/{match[2]}" in self.secrets:
            code, body = 200, {"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
                               "metadata": {"name": match[2], "namespace": match[1]},
                               "data": self.secrets[f"{match[1]}/{match[2]}"]}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _upgrade_token(url: str) -> str:
    """The token the chart's Secret holds when `helm upgrade` renders against ``url``."""
    helm = _need("helm_python")
    with (helm.Config(kube_apiserver=url, namespace=NAMESPACE, storage_driver="memory") as cfg,
          helm.Chart.load(str(CHART)) as chart):
        out = cfg.render(chart, {}, name=RELEASE, namespace=NAMESPACE, is_upgrade=True)
    doc = yaml.safe_load(out["aws-anomaly/templates/secret.yaml"])
    return base64.b64decode(doc["data"]["token"]).decode()


def test_upgrade_keeps_the_token_of_the_existing_secret() -> None:
    # Helm renders with `lookup` against a local HTTP server that answers as the API server
    # does; the Secret an earlier install made is read back and its token kept.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SecretsApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        kept = "token-made-at-install-0123456789"
        _SecretsApi.secrets[f"{NAMESPACE}/{RELEASE}-token"] = {
            "token": base64.b64encode(kept.encode()).decode()}
        assert _upgrade_token(url) == kept
        assert f"/api/v1/namespaces/{NAMESPACE}/secrets/{RELEASE}-token" in _SecretsApi.seen
        # no Secret yet (first install): a new random token
        _SecretsApi.secrets.clear()
        first, second = _upgrade_token(url), _upgrade_token(url)
        assert re.fullmatch(r"[A-Za-z0-9]{40}", first) and first != second
    finally:
        server.shutdown()
        server.server_close()
        _SecretsApi.secrets.clear()


def test_service_monitor_carries_the_operator_release_label() -> None:
    docs = render({"serviceMonitor": {"enabled": True, "labels": {"release": "prom-stack"}}})
    sm = one(docs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prom-stack"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    svc = one(docs, "Service")
    # the monitor selects the Service and scrapes its named port
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] in [p["name"] for p in svc["spec"]["ports"]]
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    # default: the label kube-prometheus-stack installed as `kube-prometheus-stack` selects
    sm = one(render({"serviceMonitor": {"enabled": True}}), "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_grafana_dashboard_config_map_is_the_dashboard() -> None:
    maps = {d["metadata"]["name"]: d for d in render({"grafanaDashboard": {"enabled": True}})
            if d["kind"] == "ConfigMap"}
    dash = maps[f"{RELEASE}-dashboard"]
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = ROOT / "deploy" / "grafana" / "aws-anomaly-dashboard.json"
    assert json.loads(dash["data"]["aws-anomaly.json"]) == json.loads(shipped.read_text())
    # the chart's copy is the dashboard itself (Helm reads files inside the chart only)
    assert (CHART / "files" / "aws-anomaly-dashboard.json").read_text() == shipped.read_text()
    assert f"{RELEASE}-dashboard" not in {d["metadata"]["name"] for d in render()}


def test_image_defaults_to_the_package_version() -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == version
    image = pod_spec(render())["containers"][0]["image"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert image == f"{values['image']['repository']}:{version}"


def test_helm_lint_strict_is_clean() -> None:
    helm = _need("helm_python")
    for values in VALUE_SETS.values():
        report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not problems, problems


def test_bad_values_fail_with_a_message_naming_the_value() -> None:
    helm = _need("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        with pytest.raises(helm.HelmRenderError, match=r"prometheus\.sigv4\.region is required"):
            chart.render({"prometheus": {"sigv4": {"enabled": True}}}, name=RELEASE)
        with pytest.raises(helm.HelmRenderError, match="no job"):
            chart.render({"job": {"enabled": False}}, name=RELEASE)
