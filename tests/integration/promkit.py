"""Backfill and run a real Prometheus for tests.

Three steps, each usable on its own::

    from tests.integration.promkit import backfill, running_prometheus, write_openmetrics

    write_openmetrics(dataset, tmp / "data.om")          # OpenMetrics text, one gauge per metric
    backfill(tmp / "data.om", tmp / "tsdb")              # promtool create-blocks-from
    with running_prometheus(tmp / "tsdb") as url:        # prometheus on 127.0.0.1:<free port>
        httpx.get(f"{url}/api/v1/query", params={"query": "up"})

:func:`require_prometheus` skips a test when the binaries are missing (and fails under CI=true,
where they must be installed). Prometheus keeps backfilled blocks because the retention is set
to 100 years: keep data timestamps in the past (blocks in the future are rejected by queries'
usual time ranges, not by this kit).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from aws_anomaly.data import Dataset

__all__ = [
    "backfill",
    "free_port",
    "require_prometheus",
    "running_prometheus",
    "write_openmetrics",
]

DEFAULT_CONFIG = """\
global:
  scrape_interval: 15s
  evaluation_interval: 15s
"""


def require_prometheus() -> tuple[str, str]:
    """Paths of ``prometheus`` and ``promtool``; skips the test when missing (fails in CI)."""
    import pytest

    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    if prom and tool:
        return prom, tool
    msg = "prometheus and promtool are not installed (apt-get install prometheus)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def write_openmetrics(dataset: Dataset | pd.DataFrame, path: str | Path,
                      metric_prefix: str = "", *, entity_label: str = "cluster",
                      metrics: Sequence[str] | None = None) -> Path:
    """Write ``dataset`` as OpenMetrics text: a gauge family per metric (named
    ``metric_prefix + metric``), one series per entity labelled ``entity_label``, timestamps in
    Unix seconds, ``# EOF`` at the end. Values are written with ``repr`` so they read back
    exactly; NaN values are left out (a scrape gap). Returns the path.

    ``dataset`` may also be a raw wide frame (``timestamp``, ``entity``, metric columns) with
    missing rows, such as :func:`aws_anomaly.data.generator.generate_frame` returns; then
    ``metrics`` defaults to its numeric columns.
    """
    path = Path(path)
    if isinstance(dataset, Dataset):
        frame, default_metrics = dataset.frame, list(dataset.metrics)
    else:
        frame = dataset.sort_values(["entity", "timestamp"], kind="stable")
        default_metrics = [c for c in frame.columns if c not in ("timestamp", "entity",
                                                                 "is_anomaly")
                           and pd.api.types.is_numeric_dtype(frame[c])]
    ts = pd.DatetimeIndex(frame["timestamp"]).as_unit("ns").asi8
    # Whole seconds print as integers; others keep millisecond precision (Prometheus' own).
    stamps = [str(t // 10**9) if t % 10**9 == 0 else f"{t / 1e9:.3f}" for t in ts]
    ents = frame["entity"].to_numpy()
    with path.open("w", encoding="utf-8") as out:
        for m in metrics or default_metrics:
            name = f"{metric_prefix}{m}"
            out.write(f"# TYPE {name} gauge\n")
            vals = frame[m].to_numpy(dtype=np.float64)
            lines = []
            for ent, t, v in zip(ents, stamps, vals.tolist(), strict=True):
                if math.isnan(v):
                    continue
                lines.append(f'{name}{{{entity_label}="{_escape(str(ent))}"}} {v!r} {t}\n')
            out.writelines(lines)
        out.write("# EOF\n")
    return path


def backfill(openmetrics_path: str | Path, tsdb_dir: str | Path, *,
             max_block_duration: str = "744h") -> Path:
    """Create TSDB blocks in ``tsdb_dir`` from an OpenMetrics file with promtool.

    ``max_block_duration`` (promtool's default is 2h) is raised to 31 days: one block per month
    instead of one per two hours makes backfilling a 28-day history, and querying it, many
    times faster.
    """
    _, tool = require_prometheus()
    tsdb = Path(tsdb_dir)
    tsdb.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [tool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
         f"--max-block-duration={max_block_duration}", str(openmetrics_path), str(tsdb)],
        capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"promtool backfill of {openmetrics_path} failed "
                           f"({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return tsdb


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_prometheus(tsdb_dir: str | Path, config_yaml_text: str | None = None,
                       rule_files: Sequence[str | Path] = (), port: int | None = None, *,
                       extra_args: Sequence[str] = (), ready_timeout_s: float = 60.0
                       ) -> Iterator[str]:
    """Run Prometheus on ``tsdb_dir`` and yield its base URL (``http://127.0.0.1:PORT``).

    ``config_yaml_text`` replaces the minimal default config (no scrape jobs); ``rule_files``
    are added to it. Waits for ``/-/ready``; on exit terminates the process and waits for it.
    """
    prom, _ = require_prometheus()
    work = Path(tempfile.mkdtemp(prefix="promkit-"))
    text = config_yaml_text if config_yaml_text is not None else DEFAULT_CONFIG
    if rule_files:
        text += "rule_files:\n" + "".join(f"  - {Path(r).resolve()}\n" for r in rule_files)
    cfg = work / "prometheus.yml"
    cfg.write_text(text)
    log_path = work / "prometheus.log"
    attempts = 1 if port is not None else 3
    proc: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(attempts):
            p = port if port is not None else free_port()
            url = f"http://127.0.0.1:{p}"
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    [prom, f"--config.file={cfg}", f"--storage.tsdb.path={Path(tsdb_dir)}",
                     f"--web.listen-address=127.0.0.1:{p}",
                     "--storage.tsdb.retention.time=100y", *extra_args],
                    stdout=log, stderr=subprocess.STDOUT, cwd=work)
            if _wait_ready(proc, url, ready_timeout_s):
                break
            proc.kill()
            proc.wait()
            tail = log_path.read_text(errors="replace")[-3000:]
            if "address already in use" not in tail or attempt == attempts - 1:
                raise RuntimeError(f"prometheus did not become ready at {url}:\n{tail}")
        yield url
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False
