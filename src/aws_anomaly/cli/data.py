"""Data commands: ``generate`` (the EKS demo data set with labelled anomalies)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aws_anomaly.cli.app import app
from aws_anomaly.durations import parse_timedelta


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for metrics.csv and events.csv.")],
    clusters: Annotated[int, typer.Option(min=1, help="Number of EKS clusters.")] = 3,
    days: Annotated[float, typer.Option(min=0.0, help="Days of data per cluster.")] = 28.0,
    step: Annotated[str, typer.Option(help="Scrape interval: 30s, 5m, 1m30s, 1h...")] = "5m",
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 0,
    events_per_day: Annotated[float, typer.Option(
        min=0.0, help="Anomalies per cluster per day (0: clean data).")] = 1.0,
) -> None:
    """Write a realistic demo of EKS request ratios with labelled anomalies.

    OUT/metrics.csv holds timestamp, entity, the three ratios and the labels (is_anomaly,
    anomaly_type), with a few scrape gaps; OUT/events.csv holds one row per anomaly.
    """
    td = parse_timedelta(step, where="--step")  # a clear error before anything is simulated
    from aws_anomaly.data.generator import summary, write_demo

    metrics_path, events_path, ds, events = write_demo(
        out, clusters=clusters, days=days, step=td, seed=seed, events_per_day=events_per_day)
    s = summary(ds, events)
    typer.echo(f"wrote {metrics_path} and {events_path}")
    with metrics_path.open() as fh:
        file_rows = sum(1 for _ in fh) - 1
    typer.echo(f"rows: {s['rows']} ({s['entities']} entities x {s['rows'] // s['entities']} "
               f"steps of {step}, {s['start']} .. {s['end']}); {s['rows'] - file_rows} rows "
               "are missing from the file as scrape gaps")
    typer.echo(f"entities: {', '.join(ds.entities[:5])}"
               + (f" and {len(ds.entities) - 5} more" if len(ds.entities) > 5 else ""))
    typer.echo(f"anomalous share: {s['anomalous_share']:.1%} of points; events: {s['events']}")
    per_type = s["events_per_type"]
    if isinstance(per_type, dict) and per_type:
        typer.echo("events per type: " + ", ".join(f"{k} {v}" for k, v in per_type.items()))
