"""Shared test fixtures: output folder, NAB data location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """Where the shared labelled data lives: $AWS_ANOMALY_DATA, default ../shared/data."""
    return Path(os.environ.get("AWS_ANOMALY_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def nab_root() -> Path:
    """The NAB folder; in CI (CI=true) its absence is a failure, elsewhere a skip."""
    root = data_root() / "nab"
    if not (root / "labels" / "combined_windows.json").exists():
        msg = f"NAB data not found at {root}; set AWS_ANOMALY_DATA"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def servers_root() -> Path:
    """The real-server folder (<dataset>/<server>/{train,test}.parquet); CI: failure if absent."""
    root = data_root() / "servers"
    if not (root / "inventory.json").exists():
        msg = f"servers data not found at {root}; set AWS_ANOMALY_DATA"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture()
def test_output(request: pytest.FixtureRequest) -> Path:
    """A per-test folder under test-output/ that is kept after the run (screenshots, reports)."""
    out = REPO / "test-output" / request.node.name.replace("/", "_")[:80]
    out.mkdir(parents=True, exist_ok=True)
    return out
