"""`aws-anomaly generate`: files, summary, clear errors.

Runs the command through Typer's test runner with only the data commands loaded (the full CLI
imports every command module, seconds of imports that test other things).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

import aws_anomaly.cli.data  # noqa: F401  (registers `generate`)
from aws_anomaly.cli.app import app
from aws_anomaly.errors import ConfigError

runner = CliRunner()


def test_generate_writes_files_and_prints_summary(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["generate", "--out", str(out), "--clusters", "2", "--days", "3",
                                 "--step", "10m", "--seed", "4"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"wrote {out / 'metrics.csv'} and {out / 'events.csv'}" in text
    assert "rows: 864 (2 entities x 432 steps of 10m" in text
    assert "anomalous share:" in text and "events: 6" in text
    assert "events per type:" in text
    metrics = pd.read_csv(out / "metrics.csv")
    events = pd.read_csv(out / "events.csv")
    assert set(metrics["entity"]) == {"eks-prod-eu-west-1", "eks-prod-us-east-1"}
    assert len(events) == 6 and len(metrics) < 864  # the file keeps its scrape gaps
    counts = events["type"].value_counts()
    listed = text.split("events per type: ")[1].strip()
    assert listed.count(",") == len(counts) - 1
    for kind, n in counts.items():
        assert f"{kind} {n}" in listed


def test_generate_bad_step_is_a_clear_config_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path / "x"), "--step", "5x"])
    assert isinstance(result.exception, ConfigError)  # the CLI prints it as one line, exit 2
    assert str(result.exception) == ("--step '5x' is not a duration; use a number and a unit "
                                     "(ms, s, m, h, d, w) or several, e.g. 30s, 5m, 1h30m, "
                                     "2d12h")
    assert not (tmp_path / "x").exists()


def test_generate_too_short_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path / "x"), "--days", "0.1"])
    assert isinstance(result.exception, ConfigError)
    assert "needs at least 48" in str(result.exception)


def test_generate_rejects_zero_clusters(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path / "x"), "--clusters", "0"])
    assert result.exit_code == 2 and "clusters" in result.output
