"""What `make run` / `aws-anomaly serve` and `run` write by default stays out of git."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from aws_anomaly.config import ServiceConfig

REPO = Path(__file__).resolve().parents[2]


def test_default_data_dirs_are_ignored_by_git() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    from aws_anomaly.cli.loop import run

    state_default = run.__defaults__  # the Typer option defaults, state_dir among them
    assert state_default is not None and Path("aws-anomaly-data") in state_default
    for folder in (ServiceConfig().data_dir, Path("aws-anomaly-data")):
        probe = Path(folder) / "models" / "demo" / "manifest.json"
        proc = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=REPO,
                              capture_output=True, timeout=30, check=False)
        assert proc.returncode == 0, f"{probe} is not ignored by .gitignore"
