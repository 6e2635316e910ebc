"""Commands of the detection loop: ``rules`` (and ``run``, ``backtest``, ``exporter``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aws_anomaly.alert_rules import RuleOptions, render_rules
from aws_anomaly.cli.app import app


@app.command()
def rules(
    out: Annotated[Path, typer.Option("--out", help="Where to write the rules YAML.")],
    evaluation_interval: Annotated[str, typer.Option(
        help="Prometheus's rule evaluation interval.")] = "1m",
    job_interval: Annotated[str, typer.Option(help="How often the aws-anomaly jobs tick.")] = "1m",
    consecutive: Annotated[int, typer.Option(
        help="Anomalous evaluations in a row before the anomaly alert fires.")] = 3,
    severity: Annotated[str, typer.Option(help="Severity label of the anomaly alert.")] = "warning",
    stale_intervals: Annotated[int, typer.Option(
        help="Job intervals without success before the stale alert fires.")] = 3,
    dashboard_url: Annotated[str, typer.Option(
        help="Dashboard base URL linked from annotations.")] = "http://127.0.0.1:8080",
) -> None:
    """Write Prometheus alerting rules for the aws_anomaly_* metrics (check with promtool)."""
    opts = RuleOptions(evaluation_interval=evaluation_interval, job_interval=job_interval,
                       consecutive=consecutive, severity=severity,
                       stale_intervals=stale_intervals, dashboard_url=dashboard_url)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_rules(opts))
    typer.echo(f"wrote 3 alerting rules to {out} (check: promtool check rules {out})")
