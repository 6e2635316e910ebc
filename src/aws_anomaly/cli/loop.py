"""Commands of the detection loop: ``run``, ``exporter``, ``backtest`` and ``rules``."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aws_anomaly.cli.app import app, check_output
from aws_anomaly.errors import AwsAnomalyError

# The runner, store, sources, exporter and notifiers are imported by the functions that use
# them: `aws-anomaly --help` imports this module to list its commands.
if TYPE_CHECKING:

    from aws_anomaly.config import JobConfig
    from aws_anomaly.runner import JobRunner, TickResult
    from aws_anomaly.service.exporter import Exporter
    from aws_anomaly.service.notifiers import NotifierSink
    from aws_anomaly.sources.base import Source
    from aws_anomaly.store import Store

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The job's YAML file.")]
StateOpt = Annotated[Path, typer.Option(
    help="Folder for the job's state (SQLite store) and, unless the job names one, its model.")]


def _runner(job: JobConfig, source: Source, state_dir: Path, store: Store,
            exporter: Exporter, *, notify: bool = True) -> tuple[JobRunner, list[NotifierSink]]:
    """The job's runner and its notifier sinks (their delivery threads are not started).

    Every failed delivery counts as a ``notify`` error of the job, as in ``serve``."""
    from aws_anomaly.runner import JobRunner
    from aws_anomaly.service.notifiers import build_notifier_sinks

    holder: list[JobRunner] = []

    def on_error(_notifier: str, exc: Exception) -> None:
        if holder:
            holder[0].record_error("notify", exc)

    def on_outcome(notifier: str, outcome: str, n: int) -> None:
        exporter.record_notification(job.name, notifier, outcome, n)

    notifiers = (build_notifier_sinks(job, store, on_error=on_error, on_outcome=on_outcome)
                 if notify else [])
    model_path = job.model.path or state_dir / "models" / job.name
    runner = JobRunner(job, source, None, [exporter, *notifiers], store, model_path=model_path,
                       metrics=exporter)
    holder.append(runner)
    return runner, notifiers


def _publish_model(exporter: Exporter, runner: JobRunner) -> bool:
    """Load or train the job's model and export its info; False (logged) when that failed:
    the loop goes on and tries again on the next tick."""
    try:
        model = runner.ensure_model()
    except AwsAnomalyError as exc:
        typer.echo(f"job {runner.name}: no model yet ({exc}); retrying on every tick",
                   err=True)
        return False
    summary = getattr(model, "training_summary_", {}) or {}
    from aws_anomaly import __version__

    exporter.set_model(runner.model_name, detector=model.detector, version=__version__,
                       trained_at=str(summary.get("trained_at", "")))
    return True


def _tick_line(r: TickResult) -> str:
    if not r.ok:
        return f"{r.now:%Y-%m-%dT%H:%MZ} tick failed at {r.stage}: {r.error}"
    span = (f" {r.scored_from:%m-%d %H:%M}..{r.scored_to:%m-%d %H:%M}"
            if r.scored_from is not None else "")
    more = "" if r.caught_up else " (catching up)"
    return (f"{r.now:%Y-%m-%dT%H:%MZ} scored {r.points} points of {r.entities} entities{span}: "
            f"{r.anomalies} anomalous, {len(r.events)} events{more} "
            f"[fetch {r.fetch_s * 1000:.0f} ms, score {r.score_s * 1000:.0f} ms]")


def _setup_logging() -> None:
    import logging
    import sys

    from aws_anomaly.service.redact import install_logging

    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_logging(logging.INFO)  # redacted lines; no per-request httpx lines


def _loop(config: Path, once: bool, state_dir: Path, metrics_host: str, metrics_port: int,
          max_ticks: int | None) -> int:
    from aws_anomaly.config import load_job
    from aws_anomaly.service.exporter import Exporter
    from aws_anomaly.sources import make_source
    from aws_anomaly.store import Store

    _setup_logging()
    job = load_job(config)
    source = make_source(job.source, metrics=job.metrics)
    store = Store(f"sqlite:///{state_dir / 'aws_anomaly.db'}")
    exporter = Exporter()
    exporter.register_job(job.name)
    runner, notifiers = _runner(job, source, state_dir, store, exporter)
    typer.echo(f"job {job.name}: {job.source.type} source, metrics {list(job.metrics or [])}, "
               f"every {job.interval}")
    published = _publish_model(exporter, runner)
    server = None
    if not once:
        server = exporter.serve(metrics_port, metrics_host)
        typer.echo(f"metrics on http://{metrics_host}:{server.server_port}/metrics")
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if not once:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    for sink in notifiers:
        sink.start()  # delivery runs in its own threads, never in the tick
    interval = job.interval.total_seconds()
    ticks = 0
    try:
        while True:
            started = time.monotonic()
            result = runner.tick()
            ticks += 1
            typer.echo(_tick_line(result))
            if not published and runner.model is not None:
                published = _publish_model(exporter, runner)
            if once:
                for sink in notifiers:
                    sink.dispatcher.flush()  # one delivery attempt; the rest stays queued
                return 0 if result.ok else 1
            if max_ticks is not None and ticks >= max_ticks:
                return 0
            # A tick that is still catching up after an outage goes again at once.
            wait = 0.0 if (result.ok and not result.caught_up) else max(
                0.0, interval - (time.monotonic() - started))
            if stop.wait(wait):
                typer.echo("stopping: the running tick finished")
                return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sink in notifiers:
            sink.stop()  # undelivered alerts stay in the store for the next run
        if server is not None:
            server.shutdown()
        source.close()


@app.command()
def run(
    config: ConfigOpt,
    once: Annotated[bool, typer.Option(
        help="Run one tick and exit: status 0 if it succeeded, 1 if the tick failed (e.g. the "
        "source could not be read); bad input (config, options) is status 2, as everywhere.")]
    = False,
    state_dir: StateOpt = Path("aws-anomaly-data"),
    metrics_host: Annotated[str, typer.Option(help="Bind address of /metrics.")] = "127.0.0.1",
    metrics_port: Annotated[int, typer.Option(help="Port of /metrics (0: any free).")] = 9108,
    max_ticks: Annotated[int | None, typer.Option(help="Stop after this many ticks.")] = None,
) -> None:
    """Run one job: fetch the latest window, score it, update /metrics, send notifications.

    Trains the job's model from the configured history first when no bundle exists. Ticks on
    the job's interval until SIGTERM/SIGINT, which lets the running tick finish.
    """
    raise typer.Exit(_loop(config, once, state_dir, metrics_host, metrics_port, max_ticks))


@app.command()
def exporter(
    config: ConfigOpt,
    state_dir: StateOpt = Path("aws-anomaly-data"),
    host: Annotated[str, typer.Option(help="Bind address of /metrics.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of /metrics.")] = 9108,
) -> None:
    """Serve a job's scores on /metrics (the `run` loop with its exporter; no API)."""
    raise typer.Exit(_loop(config, False, state_dir, host, port, None))


@app.command()
def backtest(
    config: ConfigOpt,
    start: Annotated[str, typer.Option(help="Start of the replay (ISO 8601, UTC).")],
    end: Annotated[str, typer.Option(help="End of the replay (ISO 8601, UTC).")],
    state_dir: StateOpt = Path("aws-anomaly-data"),
    out: Annotated[Path | None, typer.Option(help="Also write the result as JSON here.")]
    = None,
) -> None:
    """How noisy would this job be? Replays history and counts alerts per day per entity."""
    from aws_anomaly.backtest import backtest_job
    from aws_anomaly.config import load_job
    from aws_anomaly.sources import make_source
    from aws_anomaly.sources.base import to_utc

    if out is not None:
        check_output(out, "--out", kind="file")
    job = load_job(config)
    source = make_source(job.source, metrics=job.metrics)
    t0, t1 = to_utc(start, where="--start"), to_utc(end, where="--end")
    model_path = job.model.path or state_dir / "models" / job.name
    result = backtest_job(job, source, t0, t1,
                          model_path=model_path if (model_path / "manifest.json").exists()
                          else None)
    typer.echo(f"job {job.name}: {result['days']} days from {start} to {end}; an alert fires "
               f"after {result['min_consecutive']} anomalous points and resolves after "
               f"{result['max_gap_steps'] + 1} normal ones (notifiers and Prometheus rules alike)")
    typer.echo(f"{'entity':<32} {'firing':>7} {'resolved':>9} {'per day':>8} {'events':>7} "
               f"{'anomalous':>10} {'longest':>9}")
    for r in result["entities"]:
        typer.echo(f"{r['entity']:<32} {r['firing']:>7} {r['resolved']:>9} "
                   f"{r['alerts_per_day']:>8.2f} {r['events']:>7} {r['anomalous_share']:>10.2%} "
                   f"{r['longest_alert_minutes']:>7.0f} m")
    typer.echo(f"total: {result['firing']} alerts fired, {result['resolved']} resolved, "
               f"{result['alerts_per_day_per_entity']:.2f} per day per entity")
    for n in result["notifiers"]:
        typer.echo(f"notifier {n['notifier']} (min_consecutive {n['min_consecutive']}): "
                   f"{n['firing']} fired, {n['resolved']} resolved")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        typer.echo(f"wrote {out}")


@app.command()
def rules(
    out: Annotated[Path, typer.Option("--out", help="Where to write the rules YAML.")],
    evaluation_interval: Annotated[str, typer.Option(
        help="Prometheus's rule evaluation interval.")] = "1m",
    job_interval: Annotated[str, typer.Option(help="How often the aws-anomaly jobs tick.")] = "1m",
    stale_intervals: Annotated[int, typer.Option(
        help="Job intervals without success before the stale alert fires.")] = 3,
    dashboard_url: Annotated[str, typer.Option(
        help="Dashboard base URL linked from annotations.")] = "http://127.0.0.1:8080",
) -> None:
    """Write Prometheus alerting rules for the aws_anomaly_* metrics (check with promtool).

    The anomaly alert follows aws_anomaly_alert_active, the service's own alert decision
    (each job's alert.min_consecutive and severity), with the labels its Alertmanager
    notifier sends: use the rules or the notifier (or both: Alertmanager sees one alert).
    """
    from aws_anomaly.alert_rules import RuleOptions, render_rules

    check_output(out, "--out", kind="file")
    opts = RuleOptions(evaluation_interval=evaluation_interval, job_interval=job_interval,
                       stale_intervals=stale_intervals, dashboard_url=dashboard_url)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_rules(opts))
    typer.echo(f"wrote 3 alerting rules to {out} (check: promtool check rules {out})")
