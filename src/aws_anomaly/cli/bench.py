"""Commands: ``bench nab`` (NAB benchmark) and ``bench demo`` (event table on the demo clusters)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aws_anomaly.cli.app import ProgressOpt, app, check_output, show_progress

bench_app = typer.Typer(
    help="Detection-quality benchmarks on labelled data.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")


@bench_app.command("nab")
def nab(
    data: Annotated[Path, typer.Option(help="A folder in NAB's layout (data/, labels/, ...).")],
    out: Annotated[Path, typer.Option(help="Output folder for results/, scores.json, scores.md.")],
    detector: Annotated[
        list[str] | None,
        typer.Option(help="Detector to run or score (repeatable); default all."),
    ] = None,
    files: Annotated[
        list[str] | None, typer.Option(help="Glob on category/name.csv or name.csv (repeatable).")
    ] = None,
    category: Annotated[
        list[str] | None, typer.Option(help="Category folder under data/ (repeatable).")
    ] = None,
    leave_out: Annotated[
        int, typer.Option(help="Leave-files-out folds for cross-validation (0: none).")
    ] = 5,
    leave_category_out: Annotated[
        bool,
        typer.Option(help="Leave-one-category-out cross-validation (files of 2+ categories)."),
    ] = True,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    published: Annotated[
        bool, typer.Option(help="Also score published detectors under DATA/results.")
    ] = True,
    check_causality: Annotated[
        bool, typer.Option(help="Reject detectors whose prefix run differs (look-ahead).")
    ] = True,
    progress: ProgressOpt = None,
) -> None:
    """Run our detectors and the peers under NAB's rules, score them with the NAB scorer.

    Every record of every file is scored in file order (duplicated timestamps, irregular steps
    and clock jumps backwards included), as NAB does.
    """
    check_output(out, "--out")
    from aws_anomaly.evaluation.nab_bench import render_markdown, run_nab_bench

    report = run_nab_bench(
        data, out, detectors=detector, files=files, categories=category, folds=leave_out,
        loco=leave_category_out, workers=workers, include_published=published,
        check=check_causality, progress=show_progress(progress),
    )
    typer.echo(render_markdown(report))
    typer.echo(f"wrote {out / 'scores.json'} and {out / 'scores.md'}")


@bench_app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="Output folder for scores.json and scores.md.")],
    clusters: Annotated[int, typer.Option(help="Simulated clusters.")] = 3,
    days: Annotated[float, typer.Option(help="Days of 5-minute data.")] = 28,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    train_days: Annotated[
        float, typer.Option(help="Leading days used for learning (ignored by the scorer).")
    ] = 7,
    detector: Annotated[
        list[str] | None, typer.Option(help="Detector (repeatable; 'aws_model' = AnomalyModel).")
    ] = None,
    leave_out: Annotated[
        int, typer.Option(help="Leave-clusters-out folds for the thresholds (0: none).")
    ] = 0,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    progress: ProgressOpt = None,
) -> None:
    """Event-level table on the demo clusters: univariate detectors per metric, and the model."""
    check_output(out, "--out")
    from aws_anomaly.evaluation.nab_bench import render_markdown, run_demo_bench

    report = run_demo_bench(
        out, clusters=clusters, days=days, seed=seed, train_days=train_days, detectors=detector,
        folds=leave_out, workers=workers, progress=show_progress(progress),
    )
    typer.echo(render_markdown(report))
    typer.echo(f"wrote {out / 'scores.json'} and {out / 'scores.md'}")


@bench_app.command("servers")
def servers(
    data: Annotated[
        Path, typer.Option(help="A folder of <dataset>/<server>/{train,test}.parquet.")
    ],
    out: Annotated[Path, typer.Option(help="Output folder for scores.json and scores.md.")],
    servers: Annotated[
        list[str] | None,
        typer.Option("--servers", help="Glob on dataset/server or server (repeatable)."),
    ] = None,
    detector: Annotated[
        list[str] | None, typer.Option(help="Detector to run (repeatable); default all.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    check_causality: Annotated[
        bool, typer.Option(help="Fail a detector whose prefix run differs (look-ahead).")
    ] = True,
    progress: ProgressOpt = None,
) -> None:
    """Fit on each server's train.parquet (no labels), score test.parquet causally, compare."""
    check_output(out, "--out")
    from aws_anomaly.evaluation import servers_bench

    report = servers_bench.run_servers_bench(
        data, out, servers=servers, detectors=detector, workers=workers,
        progress=show_progress(progress), check_causality=check_causality,
    )
    typer.echo(servers_bench.render_markdown(report))
    typer.echo(f"wrote {out / 'scores.json'} and {out / 'scores.md'}")
