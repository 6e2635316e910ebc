"""Prometheus HTTP API source (also Amazon Managed Prometheus, signed with SigV4).

Each configured metric is a PromQL expression; its range-query result has one series per
entity, named by the label ``entity_label``. History is read with ``/api/v1/query_range`` in
chunks below Prometheus' limit of 11,000 points per series, on the step grid (multiples of
``step`` since the epoch), so repeated live fetches line up with earlier ones.

Failures are :class:`~aws_anomaly.errors.SourceError` naming the URL and the query: a bad
query (Prometheus' own error text), an unknown host, a refused login (401/403). Connection
errors, timeouts, 429 and 5xx answers are retried with exponential backoff and jitter; other
4xx answers are not, since asking again cannot change them.

Raw counters: a counter's running total only grows, so every new value is one the model has
never seen and everything scores as anomalous. The source warns (logged, once per metric) when
a query reads a counter-named series (``*_total``, ``*_count``, ``*_sum``, ``*_bucket``)
without a range selector (:func:`counter_hint`, when the source is made), and when a fetched
series only ever increases, resets aside (:func:`looks_like_counter`); both say to wrap it in
``rate()``.
"""

from __future__ import annotations

import base64
import logging
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.session
import httpx
import numpy as np
import pandas as pd
from botocore import auth as boto_auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

from aws_anomaly.config import (
    BasicAuth,
    BearerAuth,
    PrometheusSourceConfig,
    SigV4Auth,
    format_duration,
)
from aws_anomaly.data import Dataset
from aws_anomaly.errors import SourceError
from aws_anomaly.sources.base import BaseSource, TimeLike, align_range, build_dataset, to_utc

__all__ = ["HeaderAuth", "PrometheusSource", "SigV4HttpxAuth", "counter_hint",
           "looks_like_counter"]

log = logging.getLogger(__name__)

_RETRY_STATUS = {429, 500, 502, 503, 504}
# A metric name with a counter's suffix, its label matchers, and the range selector if any.
_COUNTER_SELECTOR = re.compile(
    r"(?<![\w:\"'])([a-zA-Z_:][\w:]*_(?:total|count|sum|bucket))\b(?!\s*\()"
    r"(\s*\{[^}]*\})?(\s*\[)?")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
#: Points a series needs before it is judged to look like a counter.
COUNTER_MIN_POINTS = 20


def counter_hint(query: str) -> str | None:
    """Why ``query`` reads a raw counter, or None: a counter-named series (``*_total``,
    ``*_count``, ``*_sum``, ``*_bucket``) selected without a range, so not inside ``rate()``,
    ``irate()`` or ``increase()``.

    >>> counter_hint("sum by (cluster) (rate(http_requests_total[5m]))") is None
    True
    >>> print(counter_hint('sum(up_total{job="a"})'))
    it reads the counter up_total as is: wrap it in rate(), e.g. sum(rate(up_total{job="a"}[5m]))
    """
    text = _GROUPING.sub(lambda m: " " * len(m.group(0)), query)  # label lists, not series
    for m in _COUNTER_SELECTOR.finditer(text):
        if m.group(3):  # a range selector: rate(x_total[5m]), increase(...), ...
            continue
        name, labels = m.group(1), (m.group(2) or "").strip()
        selector = query[m.start(1):m.start(1) + len(name)] + labels
        example = query[:m.start(1)] + f"rate({selector}[5m])" + query[m.end(2) if m.group(2)
                                                                          else m.end(1):]
        return f"it reads the counter {name} as is: wrap it in rate(), e.g. {example}"
    return None


def looks_like_counter(values: np.ndarray) -> tuple[bool, int]:
    """Whether a series behaves as a counter's running total, and how many resets it had.

    At least :data:`COUNTER_MIN_POINTS` finite points that rise on at least half of the steps
    and never fall, except at resets (a drop to below half the value before, at most one step
    in a hundred).

    >>> looks_like_counter(np.r_[np.arange(30.0), np.arange(10.0)])
    (True, 1)
    >>> looks_like_counter(np.sin(np.arange(40.0)))
    (False, 0)
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < COUNTER_MIN_POINTS:
        return False, 0
    d = np.diff(v)
    falls = np.flatnonzero(d < 0)
    resets = len(falls)
    if resets > max(1, len(d) // 100) or np.any(v[falls + 1] >= 0.5 * v[falls]):
        return False, 0
    return bool(np.count_nonzero(d > 0) >= 0.5 * len(d)), resets



class SigV4HttpxAuth(httpx.Auth):
    """Signs each request with AWS SigV4 (botocore's signer), for Amazon Managed Prometheus.

    Credentials come from the standard AWS chain (environment, shared config and profile, SSO,
    container and instance roles) through :mod:`botocore.session`; with ``role_arn`` the role is
    assumed with STS and refreshed before it expires.
    """

    requires_request_body = True

    def __init__(self, region: str, service: str = "aps", *, profile: str | None = None,
                 role_arn: str | None = None) -> None:
        self.region = region
        self.service = service
        session = botocore.session.Session(profile=profile)
        try:
            creds = session.get_credentials()
        except Exception as exc:  # botocore raises many kinds for a broken profile
            raise SourceError(f"sigv4 auth: cannot load AWS credentials (profile "
                              f"{profile!r}): {exc}") from None
        if creds is None:
            raise SourceError("sigv4 auth: no AWS credentials found; set AWS_ACCESS_KEY_ID / "
                              "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an IAM role")
        if role_arn is not None:
            fetcher = AssumeRoleCredentialFetcher(
                client_creator=session.create_client, source_credentials=creds,
                role_arn=role_arn, extra_args={"RoleSessionName": "aws-anomaly"})
            creds = DeferredRefreshableCredentials(method="assume-role",
                                                   refresh_using=fetcher.fetch_credentials)
        self._credentials = creds

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # Sign exactly what is sent: method, URL, body and the headers that identify it.
        headers = {"Host": request.headers["Host"]}
        if "Content-Type" in request.headers:
            headers["Content-Type"] = request.headers["Content-Type"]
        aws = AWSRequest(method=request.method, url=str(request.url), data=request.content,
                         headers=headers)
        boto_auth.SigV4Auth(self._credentials.get_frozen_credentials(), self.service,
                         self.region).add_auth(aws)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in aws.headers:
                request.headers[name] = aws.headers[name]
        yield request


class HeaderAuth(httpx.Auth):
    """Sets ``Authorization`` from a callable on every request, so a token or password read
    from a file or the environment is re-read (rotated secrets work without a restart)."""

    def __init__(self, header: Callable[[], str]) -> None:
        self._header = header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header()
        yield request


def _basic_header(auth: BasicAuth) -> str:
    user, password = auth.resolve()
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _unknown_host(exc: BaseException) -> bool:
    return (_caused_by(exc, socket.gaierror) or "Name or service not known" in str(exc)
            or "nodename nor servname" in str(exc))


def _bad_certificate(exc: BaseException) -> bool:
    return _caused_by(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc)


class PrometheusSource(BaseSource):
    """Reads the configured PromQL queries from a Prometheus-compatible HTTP API.

    Parameters
    ----------
    cfg
        The source section of a job.
    metrics
        Which of ``cfg.queries`` to read (default: all, in order).
    transport
        An httpx transport, for tests (``httpx.MockTransport``).
    sleep
        Called with the backoff delay between retries (tests pass a recorder).

    Examples
    --------
    >>> from aws_anomaly.config import PrometheusSourceConfig
    >>> cfg = PrometheusSourceConfig(url="http://127.0.0.1:9090",
    ...                              queries={"cpu": "sum by (cluster) (rate(cpu[5m]))"})
    >>> src = PrometheusSource(cfg)
    >>> src.name, src.metrics, str(src.step)
    ('prometheus http://127.0.0.1:9090', ('cpu',), '0 days 00:05:00')
    >>> src.close()
    """

    def __init__(self, cfg: PrometheusSourceConfig, *, metrics: Sequence[str] | None = None,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.cfg = cfg
        self.url = cfg.url
        self.name = f"prometheus {cfg.url}"
        chosen = tuple(metrics) if metrics is not None else tuple(cfg.queries)
        unknown = [m for m in chosen if m not in cfg.queries]
        if unknown:
            raise SourceError(f"{self.name}: no query for metric(s) {unknown}; queries are "
                              f"configured for {list(cfg.queries)}", url=self.url)
        self.metrics = chosen
        self._counter_warned: set[str] = set()
        for m in chosen:
            hint = counter_hint(cfg.queries[m])
            if hint is not None:
                self._counter_warned.add(m)
                log.warning("%s: query %r for metric %r: %s", self.name, cfg.queries[m], m, hint)
        self.step = pd.Timedelta(cfg.step)
        if self.step < pd.Timedelta(milliseconds=1):
            raise SourceError(f"{self.name}: step {cfg.step} is below Prometheus' 1 ms "
                              "resolution", url=self.url)
        self._sleep = sleep
        self.requests_sent = 0  # counted for tests and the service's health page
        self._count_lock = threading.Lock()
        self._client = httpx.Client(
            base_url=cfg.url, timeout=cfg.timeout_s, auth=self._auth(),
            headers={"Accept": "application/json", **cfg.headers},
            verify=self._ssl_context(), transport=transport,
            follow_redirects=False)

    # ------------------------------------------------------------------ connection set-up
    def _auth(self) -> httpx.Auth | None:
        auth = self.cfg.auth
        if isinstance(auth, BearerAuth):
            auth.resolve()  # fail now, at start-up, when the secret is missing
            return HeaderAuth(lambda: f"Bearer {auth.resolve()}")
        if isinstance(auth, BasicAuth):
            _basic_header(auth)
            return HeaderAuth(lambda: _basic_header(auth))
        if isinstance(auth, SigV4Auth):
            return SigV4HttpxAuth(auth.region, auth.service, profile=auth.profile,
                                  role_arn=auth.role_arn)
        return None

    def _ssl_context(self) -> ssl.SSLContext | bool:
        """Verification and client certificate as one SSL context (httpx' ``verify``)."""
        tls = self.cfg.tls
        for f in (tls.ca_file, tls.cert_file, tls.key_file):
            if f is not None and not f.is_file():
                raise SourceError(f"{self.name}: TLS file {f} does not exist (tls.ca_file, "
                                  "cert_file, key_file)", url=self.url)
        if tls.ca_file is None and tls.cert_file is None:
            return not tls.insecure_skip_verify
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if tls.cert_file is not None:
            try:
                ctx.load_cert_chain(str(tls.cert_file),
                                    str(tls.key_file) if tls.key_file else None)
            except (ssl.SSLError, OSError) as exc:
                raise SourceError(f"{self.name}: cannot load the client certificate "
                                  f"{tls.cert_file} / key {tls.key_file}: {exc}",
                                  url=self.url) from None
        return ctx

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ HTTP
    def _request(self, path: str, form: dict[str, str], *, query: str) -> Any:
        """POST a form to the API and return ``data``; retries as the module docstring says."""
        url = f"{self.url}{path}"
        attempts = self.cfg.max_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            with self._count_lock:
                self.requests_sent += 1
            try:
                resp = self._client.post(path, data=form)
            except httpx.TimeoutException:
                problem = f"timed out after {self.cfg.timeout_s:g} s"
            except httpx.TransportError as exc:
                # Neither a wrong host name nor an untrusted certificate heals by retrying.
                if _unknown_host(exc):
                    raise SourceError(f"{self.name}: cannot resolve the host of {url} "
                                      f"(query {query!r}): {exc}", url=url, query=query) from None
                if _bad_certificate(exc):
                    raise SourceError(f"{self.name}: the TLS certificate of {url} is not "
                                      f"trusted ({exc}); set tls.ca_file to the CA that signed "
                                      "it", url=url, query=query) from None
                problem = f"connection failed: {exc}"
            else:
                if resp.status_code < 300:
                    return self._decode(resp, url, query)
                problem = self._http_problem(resp, url, query)
                if resp.status_code not in _RETRY_STATUS:
                    raise SourceError(f"{self.name}: {problem}", url=url, query=query,
                                      status=resp.status_code)
            if last:
                raise SourceError(f"{self.name}: {problem}; gave up after {attempts} "
                                  f"attempt(s) (query {query!r})", url=url, query=query)
            delay = self.cfg.backoff_s * 2**attempt * random.uniform(0.5, 1.5)
            log.warning("%s: %s; retry %d/%d in %.2f s", self.name, problem, attempt + 1,
                        attempts - 1, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    @staticmethod
    def _prom_error(resp: httpx.Response) -> str | None:
        try:
            body = resp.json()
        except ValueError:
            return None
        if isinstance(body, dict) and body.get("error"):
            return f"{body.get('errorType', 'error')}: {body['error']}"
        return None

    def _http_problem(self, resp: httpx.Response, url: str, query: str) -> str:
        code = resp.status_code
        if code in (401, 403):
            return (f"{url} refused the request with HTTP {code} "
                    f"({'unauthorized' if code == 401 else 'forbidden'}); check the source's "
                    f"auth settings (now {self.cfg.auth.type!r})")
        detail = self._prom_error(resp) or resp.text[:300].strip() or resp.reason_phrase
        if code in (400, 422):
            return f"Prometheus rejected query {query!r} with HTTP {code}: {detail}"
        return f"HTTP {code} from {url} for query {query!r}: {detail}"

    def _decode(self, resp: httpx.Response, url: str, query: str) -> Any:
        try:
            body = resp.json()
        except ValueError:
            raise SourceError(f"{self.name}: {url} did not answer JSON (is it a Prometheus API "
                              f"URL?): {resp.text[:200]!r}", url=url, query=query) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            err = body.get("error") if isinstance(body, dict) else None
            raise SourceError(f"{self.name}: query {query!r} failed: {err or body!r}",
                              url=url, query=query)
        return body.get("data")

    # ------------------------------------------------------------------ queries
    def _chunks(self, first: pd.Timestamp, last: pd.Timestamp
                ) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        span = (self.cfg.max_points_per_request - 1) * self.step
        out = []
        s = first
        while s <= last:
            e = min(s + span, last)
            out.append((s, e))
            s = e + self.step
        return out

    def query_range(self, metric: str, first: pd.Timestamp, last: pd.Timestamp
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """One metric's series between grid points ``first`` and ``last`` (both included):
        ``{entity: (timestamps in ns, values)}``, NaN where Prometheus returned NaN."""
        query = self.cfg.queries[metric]
        label = self.cfg.entity_label
        got: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for s, e in self._chunks(first, last):
            form = {"query": query, "start": f"{s.value / 1e9:.3f}",
                    "end": f"{e.value / 1e9:.3f}", "step": format_duration(self.step)}
            data = self._request("/api/v1/query_range", form, query=query)
            if not isinstance(data, dict) or data.get("resultType") != "matrix":
                raise SourceError(f"{self.name}: query {query!r} for metric {metric!r} did not "
                                  f"return a range vector (got {data and data.get('resultType')})",
                                  url=self.url, query=query)
            seen: set[str] = set()
            for item in data.get("result", []):
                labels = item.get("metric", {})
                entity = labels.get(label)
                if entity is None:
                    raise SourceError(
                        f"{self.name}: query {query!r} for metric {metric!r} returned a series "
                        f"without the entity label {label!r} (labels {labels}); aggregate by "
                        f"it, e.g. sum by ({label}) (...), or set entity_label",
                        url=self.url, query=query)
                if entity in seen:
                    raise SourceError(
                        f"{self.name}: query {query!r} for metric {metric!r} returned several "
                        f"series for {label}={entity!r}; aggregate so each {label} has one "
                        f"series, e.g. avg by ({label}) (...)", url=self.url, query=query)
                seen.add(entity)
                got.setdefault(entity, []).append(_parse_values(item.get("values", [])))
        return {ent: (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
                for ent, parts in got.items()}

    def query_instant(self, query: str, at: TimeLike | None = None) -> dict[str, float]:
        """Evaluate ``query`` at one time (default now): ``{entity: value}``."""
        form = {"query": query}
        if at is not None:
            form["time"] = f"{to_utc(at).value / 1e9:.3f}"
        data = self._request("/api/v1/query", form, query=query)
        out: dict[str, float] = {}
        label = self.cfg.entity_label
        for item in (data or {}).get("result", []):
            entity = item.get("metric", {}).get(label)
            if entity is None:
                raise SourceError(f"{self.name}: query {query!r} returned a series without the "
                                  f"entity label {label!r}", url=self.url, query=query)
            out[entity] = float(item["value"][1])
        return out

    def _warn_counters(self, series: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
                       ) -> None:
        """Log once per metric when a fetched series behaves as a raw counter."""
        for metric, by_entity in series.items():
            if metric in self._counter_warned:
                continue
            for entity, (_, vals) in by_entity.items():
                counter, resets = looks_like_counter(vals)
                if counter:
                    self._counter_warned.add(metric)
                    log.warning("%s", _counter_message(self.name, metric,
                                                       self.cfg.queries[metric], entity,
                                                       int(np.isfinite(vals).sum()), resets))
                    break

    def fetch(self, start: TimeLike, end: TimeLike, *,
              entities: Sequence[str] | None = None) -> Dataset:
        """Every configured metric for ``start <= t < end`` on the step grid."""
        rng = align_range(start, end, self.step)
        if rng is None:
            raise SourceError(f"{self.name}: no {self.step} grid point in [{to_utc(start)}, "
                              f"{to_utc(end)})", url=self.url)
        first, last = rng
        if self.cfg.concurrency == 1 or len(self.metrics) == 1:
            series = {m: self.query_range(m, first, last) for m in self.metrics}
        else:
            # Prometheus evaluates queries concurrently; httpx.Client is thread-safe.
            with ThreadPoolExecutor(min(self.cfg.concurrency, len(self.metrics)),
                                    thread_name_prefix="prom-fetch") as pool:
                futures = {m: pool.submit(self.query_range, m, first, last)
                           for m in self.metrics}
                series = {m: f.result() for m, f in futures.items()}
        self._warn_counters(series)
        return build_dataset(series, metrics=self.metrics, step=self.step, source=self.name,
                             gap_policy=self.cfg.gap_policy, max_gap_steps=self.cfg.max_gap_steps,
                             entities=entities, span=f"[{first}, {last}]")


def _counter_message(source: str, metric: str, query: str, entity: str, n: int,
                     resets: int) -> str:
    reset_text = f" (with {resets} reset{'s' if resets != 1 else ''})" if resets else ""
    return (f"{source}: metric {metric!r} (query {query!r}) looks like a raw counter: for "
            f"entity {entity!r} it only increases over {n} points{reset_text}, so every new "
            f"value is one the model has never seen; wrap the counter in rate(), e.g. "
            f"sum by (...) (rate(NAME_total[5m])) (a gauge that only grows can ignore this)")


def _parse_values(values: list[list[Any]]) -> tuple[np.ndarray, np.ndarray]:
    if not values:
        return np.empty(0, dtype=np.int64), np.empty(0)
    ts = np.fromiter((v[0] for v in values), dtype=np.float64, count=len(values))
    # float() reads Prometheus' "NaN", "+Inf" and "-Inf" spellings.
    vals = np.fromiter((float(v[1]) for v in values), dtype=np.float64, count=len(values))
    # Timestamps are seconds with millisecond precision; round to whole ms to avoid float noise.
    return np.round(ts * 1000).astype(np.int64) * 1_000_000, vals
