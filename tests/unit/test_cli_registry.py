"""The CLI's lazy command map matches what the command modules register."""

from __future__ import annotations

import subprocess
import sys

from aws_anomaly.cli import COMMAND_MODULES, load_commands
from aws_anomaly.cli.app import app


def _registered() -> set[str]:
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    return names | {g.name for g in app.registered_groups}


def test_every_registered_command_is_mapped_to_its_module() -> None:
    load_commands(["--help"])
    assert _registered() == set(COMMAND_MODULES)
    for cmd in app.registered_commands:
        name = cmd.name or cmd.callback.__name__
        assert cmd.callback.__module__ == f"aws_anomaly.cli.{COMMAND_MODULES[name]}"


def test_generate_does_not_import_the_model_stack() -> None:
    code = ("import sys; from aws_anomaly.cli import load_commands; "
            "load_commands(['generate', '--out', 'x']); "
            "print('sklearn' in sys.modules, 'fastapi' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
