"""The Prometheus source against loopback HTTP servers: auth refusals, retries, SigV4.

A small fake Prometheus answers ``/api/v1/query_range`` with a deterministic matrix; wrappers
put a bearer check, scripted failures or a SigV4 verifier (botocore recomputes the signature
from the received request) in front of it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
import pytest
from botocore.auth import SigV4Auth as BotoSigV4
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from aws_anomaly.config import PrometheusSourceConfig
from aws_anomaly.errors import SourceError
from aws_anomaly.sources.prometheus import PrometheusSource

pytestmark = pytest.mark.integration

START = pd.Timestamp("2026-03-01T00:00Z")
END = pd.Timestamp("2026-03-01T02:00Z")
QUERIES = {"cpu": "sum by (cluster) (cpu)", "mem": "sum by (cluster) (mem)"}


def value(metric: str, cluster: str, t: float) -> float:
    return (t / 300) % 7 + (1 if metric == "mem" else 0) + (10 if cluster == "b" else 0)


def matrix(form: dict[str, str]) -> dict[str, object]:
    start, end = float(form["start"]), float(form["end"])
    step = pd.Timedelta(form["step"]).total_seconds()
    metric = "mem" if "mem" in form["query"] else "cpu"
    times = np.arange(start, end + step / 2, step)
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"cluster": c},
         "values": [[t, repr(float(value(metric, c, t)))] for t in times]}
        for c in ("a", "b")]}}


Check = Callable[[BaseHTTPRequestHandler, bytes], "tuple[int, dict[str, object]] | None"]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # refused TLS handshakes are expected in these tests


class FakePrometheus:
    """Counts requests; ``check`` may answer instead of the fake (status, JSON body)."""

    def __init__(self, check: Check | None = None) -> None:
        self.requests = 0
        self.check = check
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests += 1
                answer = outer.check(self, body) if outer.check else None
                if answer is None:
                    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                    answer = (200, matrix(form))
                status, payload = answer
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def use_tls(self, context: ssl.SSLContext) -> None:
        """Serve HTTPS: handshakes run in the handler threads, so a refused client certificate
        does not stop the accept loop."""
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.url = self.url.replace("http://", "https://")

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        # A short poll interval: shutdown() waits up to one interval.
        t = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                             daemon=True)
        t.start()
        try:
            yield self.url
        finally:
            self.server.shutdown()
            self.server.server_close()
            t.join(5)


def source(url: str, sleeps: list[float] | None = None, **kw: object) -> PrometheusSource:
    # One request at a time so request counts and backoff sequences are deterministic.
    kw.setdefault("concurrency", 1)
    cfg = PrometheusSourceConfig(url=url, queries=QUERIES, step="5m", timeout_s=5,
                                 backoff_s=0.2, **kw)
    return PrometheusSource(cfg, sleep=(sleeps.append if sleeps is not None else lambda s: None))


def test_fake_server_round_trip() -> None:
    fake = FakePrometheus()
    with fake.running() as url, source(url) as src:
        ds = src.fetch(START, END)
    assert ds.entities == ("a", "b")
    assert len(ds.frame) == 2 * 24
    t = ds.frame["timestamp"].iloc[3].timestamp()
    assert ds.frame["mem"].iloc[3] == value("mem", "a", t)
    assert fake.requests == 2  # one per metric


def test_metrics_are_fetched_concurrently() -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def slow(h: BaseHTTPRequestHandler, body: bytes) -> None:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return None

    fake = FakePrometheus(slow)
    with fake.running() as url:
        with source(url, concurrency=4) as src:
            parallel = src.fetch(START, END)
        assert state["max"] == 2  # both metrics in flight at once
        with source(url) as src:
            serial = src.fetch(START, END)
    pd.testing.assert_frame_equal(parallel.frame, serial.frame)


def test_bearer_401_is_a_clear_error_and_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    def need_token(h: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict] | None:
        if h.headers.get("Authorization") != "Bearer right":
            return 401, {"status": "error", "error": "unauthorized"}
        return None

    fake = FakePrometheus(need_token)
    monkeypatch.setenv("PROM_TOKEN", "wrong")
    sleeps: list[float] = []
    with fake.running() as url:
        with (source(url, sleeps, max_retries=3,
                     auth={"type": "bearer", "token_env": "PROM_TOKEN"}) as src,
              pytest.raises(SourceError) as info):
            src.fetch(START, END)
        assert info.value.status == 401
        assert url in str(info.value) and "HTTP 401" in str(info.value)
        assert "auth settings (now 'bearer')" in str(info.value)
        assert fake.requests == 1 and sleeps == []  # 4xx: no retry

        monkeypatch.setenv("PROM_TOKEN", "right")
        with source(url, auth={"type": "bearer", "token_env": "PROM_TOKEN"}) as src:
            assert len(src.fetch(START, END).frame) == 48


def test_rotated_token_file_is_picked_up(tmp_path: Path) -> None:
    def need_token(h: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict] | None:
        if h.headers.get("Authorization") != "Bearer v2":
            return 401, {"status": "error", "error": "unauthorized"}
        return None

    token = tmp_path / "token"
    token.write_text("v1\n")
    with (FakePrometheus(need_token).running() as url,
          source(url, auth={"type": "bearer", "token_file": str(token)}) as src):
        with pytest.raises(SourceError, match="HTTP 401"):
            src.fetch(START, END)
        token.write_text("v2\n")  # rotated by the secret store; no restart
        assert len(src.fetch(START, END).frame) == 48


def test_5xx_is_retried_with_backoff_then_succeeds() -> None:
    script = [503, 500]

    def flaky(h: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict] | None:
        if script:
            return script.pop(0), {"status": "error", "error": "overloaded"}
        return None

    fake = FakePrometheus(flaky)
    sleeps: list[float] = []
    with fake.running() as url, source(url, sleeps, max_retries=3) as src:
        ds = src.fetch(START, END)
    assert len(ds.frame) == 48
    assert fake.requests == 4  # 2 failures + 1 success for cpu, 1 for mem
    assert len(sleeps) == 2
    # exponential backoff with +-50% jitter: 0.2 * 2**k * [0.5, 1.5]
    assert 0.1 <= sleeps[0] <= 0.3 and 0.2 <= sleeps[1] <= 0.6


def test_5xx_gives_up_after_max_retries() -> None:
    fake = FakePrometheus(lambda h, b: (502, {"status": "error", "error": "bad gateway"}))
    sleeps: list[float] = []
    with (fake.running() as url, source(url, sleeps, max_retries=2) as src,
          pytest.raises(SourceError, match=r"HTTP 502 .* gave up after 3 attempt")):
        src.fetch(START, END)
    assert fake.requests == 3 and len(sleeps) == 2


def test_connection_refused_is_retried_then_names_the_url() -> None:
    fake = FakePrometheus()
    url = fake.url
    fake.server.server_close()  # nothing listens there now
    sleeps: list[float] = []
    with (source(url, sleeps, max_retries=1) as src,
          pytest.raises(SourceError, match=r"connection failed.*gave up after 2") as info):
        src.fetch(START, END)
    assert info.value.url == f"{url}/api/v1/query_range"
    assert len(sleeps) == 1


def test_unknown_host_names_the_url_without_retrying() -> None:
    sleeps: list[float] = []
    url = "http://no-such-host.invalid:9090"
    with (source(url, sleeps, max_retries=3) as src,
          pytest.raises(SourceError, match=r"cannot resolve the host of "
                        r"http://no-such-host\.invalid:9090/api/v1/query_range")):
        src.fetch(START, END)
    assert sleeps == []


def test_series_without_entity_label_names_the_query() -> None:
    def no_label(h: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict]:
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"job": "x"}, "values": [[START.timestamp(), "1"]]}]}}

    with (FakePrometheus(no_label).running() as url, source(url) as src,
          pytest.raises(SourceError, match=r"query 'sum by \(cluster\) \(cpu\)' for metric "
                        r"'cpu' returned a series without the entity label 'cluster'")):
        src.fetch(START, END)


# ---------------------------------------------------------------------------------- SigV4
AKID, SECRET, REGION = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "eu-west-1"


def sigv4_verifier(secrets: dict[str, str], seen: list[str]) -> Check:
    """Recompute the signature with botocore and compare, as AMP does."""

    def check(h: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict] | None:
        auth = h.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return 403, {"message": "missing SigV4 Authorization"}
        fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
        akid, date, region, service, term = fields["Credential"].split("/")
        seen.append(f"{region}/{service}")
        if (region, service, term) != (REGION, "aps", "aws4_request") or akid not in secrets:
            return 403, {"message": f"bad credential scope {fields['Credential']}"}
        amz_date = h.headers["X-Amz-Date"]
        if not amz_date.startswith(date):
            return 403, {"message": "date mismatch"}
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        if abs((dt.datetime.now(dt.UTC) - when).total_seconds()) > 300:
            return 403, {"message": "signature expired"}
        signed = fields["SignedHeaders"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return 403, {"message": f"host and x-amz-date must be signed, got {signed}"}
        req = AWSRequest(method=h.command, url=f"http://{h.headers['Host']}{h.path}", data=body,
                         headers={name: h.headers[name] for name in signed})
        req.context["timestamp"] = amz_date
        token = h.headers.get("X-Amz-Security-Token")
        signer = BotoSigV4(Credentials(akid, secrets[akid], token), service, region)
        expected = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)),
                                    req)
        if not hmac.compare_digest(expected, fields["Signature"]):
            return 403, {"message": "The request signature we calculated does not match"}
        return None

    return check


@pytest.fixture()
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> pytest.MonkeyPatch:
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    return monkeypatch


@pytest.mark.parametrize("session_token", [None, "FQoGZXIvYXdzEJr//token"])
def test_sigv4_signature_verifies(aws_env: pytest.MonkeyPatch, session_token: str | None) -> None:
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    if session_token:
        aws_env.setenv("AWS_SESSION_TOKEN", session_token)
    seen: list[str] = []
    fake = FakePrometheus(sigv4_verifier({AKID: SECRET}, seen))
    with (fake.running() as url,
          source(url + "/workspaces/ws-1", auth={"type": "sigv4", "region": REGION}) as src):
        ds = src.fetch(START, END)
    assert len(ds.frame) == 48
    assert seen == [f"{REGION}/aps"] * 2


def test_sigv4_wrong_secret_is_refused(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    fake = FakePrometheus(sigv4_verifier({AKID: SECRET}, []))
    sleeps: list[float] = []
    with (fake.running() as url,
          source(url, sleeps, auth={"type": "sigv4", "region": REGION}) as src,
          pytest.raises(SourceError, match=r"HTTP 403 \(forbidden\).*now 'sigv4'") as info):
        src.fetch(START, END)
    assert info.value.status == 403 and fake.requests == 1 and sleeps == []


def test_sigv4_without_credentials_is_a_clear_error(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(SourceError, match="no AWS credentials found"):
        source("http://127.0.0.1:1", auth={"type": "sigv4", "region": REGION})


# ---------------------------------------------------------------------------------- TLS
def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=aws-anomaly test CA", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (d / f"{name}.ext").write_text(ext.replace("\\n", "\n") + "\n")
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                "-extfile", f"{name}.ext", cwd=d)
    return d


def mtls_server(pki: Path) -> FakePrometheus:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    ctx.load_verify_locations(pki / "ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED  # clients must show a certificate from the CA
    fake = FakePrometheus()
    fake.use_tls(ctx)
    return fake


def test_tls_with_ca_and_client_certificate(pki: Path) -> None:
    fake = mtls_server(pki)
    tls = {"ca_file": str(pki / "ca.pem"), "cert_file": str(pki / "client.pem"),
           "key_file": str(pki / "client.key")}
    with fake.running() as url, source(url, tls=tls) as src:
        assert url.startswith("https://")
        assert len(src.fetch(START, END).frame) == 48


def test_tls_untrusted_server_certificate_is_not_retried(pki: Path) -> None:
    fake = mtls_server(pki)
    sleeps: list[float] = []
    with (fake.running() as url, source(url, sleeps, max_retries=3) as src,
          pytest.raises(SourceError, match=r"TLS certificate of https://127\.0\.0\.1:\d+/api/v1/"
                                           r"query_range is not trusted .*set tls.ca_file")):
        src.fetch(START, END)
    assert sleeps == []


def test_tls_without_client_certificate_is_refused(pki: Path) -> None:
    fake = mtls_server(pki)
    with (fake.running() as url,
          source(url, max_retries=0, tls={"ca_file": str(pki / "ca.pem")}) as src,
          pytest.raises(SourceError, match="connection failed")):
        src.fetch(START, END)
    assert fake.requests == 0  # refused during the handshake, before any request
