"""Test kit: run ``aws-anomaly serve`` as a real subprocess on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx


def start_serve(cfg: Path, port: int, log: Path, *, env: Mapping[str, str],
                log_level: str = "warning", append: bool = True) -> subprocess.Popen:
    """Start ``python -m aws_anomaly serve --config cfg --port port``, output to ``log``
    (appended, so restarts of one test share a log); ``env`` is added to this process's."""
    return subprocess.Popen(
        [sys.executable, "-m", "aws_anomaly", "serve", "--config", str(cfg), "--port",
         str(port), "--log-level", log_level],
        stdout=log.open("ab" if append else "wb"), stderr=subprocess.STDOUT,
        env={**os.environ, **env})


@contextmanager
def serving_until_anomalies(config: str, tmp: Path, log: Path, token: str, *,
                            timeout_s: float = 120) -> Iterator[str]:
    """Serve the YAML text ``config`` (``{data}`` is filled with a folder under ``tmp``) on a
    free loopback port with ``token``; yield its base URL once it is ready and has stored an
    anomaly; stop it with SIGTERM (SIGKILL after 30 s) afterwards. Output goes to ``log``."""
    from .amkit import free_port

    cfg = tmp / "service.yaml"
    cfg.write_text(config.format(data=tmp / "data"))
    port = free_port()
    out = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "aws_anomaly", "serve", "--config", str(cfg),
                             "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "AWS_ANOMALY__SERVICE__TOKEN": token})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"service exited ({proc.returncode}); see {log}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200 and httpx.get(
                        f"{base}/v1/anomalies", timeout=2).json()["items"]:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("service not ready with anomalies in time")
            time.sleep(0.25)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()
