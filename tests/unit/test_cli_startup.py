"""`aws-anomaly --help` (and every command's --help, and --version) imports nothing heavy.

The help path imports every command module to list the commands, so a heavy import at the top
of any of them (pandas, scikit-learn, FastAPI...) makes `--help` take seconds. This checks what
is imported, not how long it takes (a timed test would fail on a loaded machine): one
subprocess runs the CLI for every help invocation in turn and reports, after each, the heavy
top-level packages that appeared.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aws_anomaly.cli import COMMAND_MODULES

#: Packages that --help must not import (each costs 0.1-2 s or tens of MB to import).
#: pydantic is not listed: Typer itself (>= 0.2x) converts option values through it as soon
#: as a subcommand is named, --help included.
HEAVY = ("numpy", "pandas", "scipy", "sklearn", "pyod", "river", "torch", "numba", "fastapi",
         "starlette", "uvicorn", "sqlalchemy", "optuna", "boto3", "botocore",
         "prometheus_client", "pyarrow", "httpx", "skops", "matplotlib", "yaml", "tqdm")
#: The only modules of the package --help may import, with the command modules
#: (aws_anomaly.cli.*) but not aws_anomaly.cli.workflow, which does the work.
LIGHT_OWN = ("aws_anomaly", "aws_anomaly.cli", "aws_anomaly.errors", "aws_anomaly.durations",
             "aws_anomaly.progress")

_PROBE = """
import contextlib, io, json, sys
from aws_anomaly.cli import main
heavy = set(json.loads(sys.argv[1]))
report = []
for argv in json.loads(sys.argv[2]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    found = sorted(heavy & {m.split('.')[0] for m in sys.modules})
    light = set(json.loads(sys.argv[3]))
    found += sorted(m for m in sys.modules if m.startswith("aws_anomaly") and m not in light
                    and not (m.startswith("aws_anomaly.cli.") and m != "aws_anomaly.cli.workflow"))
    report.append({"argv": argv, "code": code, "heavy": found, "out": out.getvalue()[:20000]})
print(json.dumps(report))
"""


def _help_invocations() -> list[list[str]]:
    runs = [["--help"], ["--version"]]
    runs += [[name, "--help"] for name in sorted(COMMAND_MODULES) if name != "bench"]
    runs += [["bench", "--help"]] + [["bench", sub, "--help"] for sub in ("nab", "demo",
                                                                          "servers")]
    return runs


def test_help_and_version_import_nothing_heavy() -> None:
    runs = _help_invocations()
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(HEAVY), json.dumps(runs),
                           json.dumps(LIGHT_OWN)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [r["argv"] for r in report] == runs
    for r in report:
        assert r["code"] == 0, r
        # The first invocation that pulls a heavy package in is the one named here.
        assert r["heavy"] == [], f"aws-anomaly {' '.join(r['argv'])} imported {r['heavy']}"
    by_argv = {" ".join(r["argv"]): r["out"] for r in report}
    assert "aws-anomaly" in by_argv["--version"]
    for name in ("train", "tune", "score", "evaluate", "demo", "serve", "run", "bench"):
        assert name in by_argv["--help"]
    assert "--progress" in by_argv["train --help"]
    assert "--data" in by_argv["train --help"]


def test_the_commands_call_the_library_and_old_imports_still_work() -> None:
    """train/evaluate/load helpers live in aws_anomaly.workflows; the CLI calls those (no copy),
    and aws_anomaly.cli.core.<name>, where they used to be, still reaches them."""
    from aws_anomaly import workflows
    from aws_anomaly.cli import core, workflow

    for name in ("evaluate_model", "train_model", "load_data", "LoadOptions",
                 "DEFAULT_DESCRIPTION"):
        assert getattr(workflow, name) is getattr(workflows, name), name
        assert getattr(core, name) is getattr(workflows, name), name
    try:
        core.no_such_helper  # noqa: B018
    except AttributeError as exc:
        assert "no_such_helper" in str(exc)
    else:
        raise AssertionError("a missing attribute must raise AttributeError")


def test_notebooks_service_and_benchmarks_import_the_library_not_the_cli() -> None:
    root = Path(__file__).resolve().parents[2]
    files = [*root.glob("notebooks/*.ipynb"), *(root / "src/aws_anomaly/service").rglob("*.py"),
             *root.glob("benchmarks/*.py")]
    assert len(files) > 10
    bad = [str(f.relative_to(root)) for f in files if "aws_anomaly.cli" in f.read_text()]
    assert bad == [], f"import the library (aws_anomaly.workflows, .backtest), not the CLI: {bad}"


def test_token_env_hint_matches_the_config_prefix() -> None:
    """serve's --help names the token variable without importing the config module."""
    from aws_anomaly.cli.serve import TOKEN_ENV_HINT
    from aws_anomaly.config import ENV_PREFIX

    assert f"{ENV_PREFIX}SERVICE__TOKEN" == TOKEN_ENV_HINT
