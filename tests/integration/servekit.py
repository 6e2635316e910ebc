"""Test kit: run ``aws-anomaly serve`` as a real subprocess on a loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def start_serve(cfg: Path, port: int, log: Path, *, env: Mapping[str, str],
                log_level: str = "warning", append: bool = True) -> subprocess.Popen:
    """Start ``python -m aws_anomaly serve --config cfg --port port``, output to ``log``
    (appended, so restarts of one test share a log); ``env`` is added to this process's."""
    return subprocess.Popen(
        [sys.executable, "-m", "aws_anomaly", "serve", "--config", str(cfg), "--port",
         str(port), "--log-level", log_level],
        stdout=log.open("ab" if append else "wb"), stderr=subprocess.STDOUT,
        env={**os.environ, **env})
