"""docs/architecture.md draws the import layers that `lint-imports` checks (pyproject.toml):
the two must say the same, or the drawing stops being the contract."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pyproject_layers() -> list[str]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (layers,) = [c["layers"] for c in cfg["tool"]["importlinter"]["contracts"]
                 if c["type"] == "layers"]
    return [" | ".join(m.strip().removeprefix("aws_anomaly.") for m in layer.split("|"))
            for layer in layers]


def _documented_layers() -> list[str]:
    text = " ".join((ROOT / "docs/architecture.md").read_text().split())
    found = re.search(r"the layers, from the top, (.*?) \(peers joined by", text)
    assert found, "docs/architecture.md no longer lists the layers 'from the top, ...'"
    return [" | ".join(p.strip() for p in item.split("|"))
            for item in re.findall(r"`([^`]+)`", found.group(1))]


def test_the_documented_layers_are_the_checked_ones() -> None:
    documented, checked = _documented_layers(), _pyproject_layers()
    assert len(checked) > 10
    assert documented == checked, (
        "docs/architecture.md and pyproject.toml [tool.importlinter] list different layers:\n"
        f"  docs:      {documented}\n  pyproject: {checked}")


def test_every_job_module_of_the_live_path_is_drawn() -> None:
    text = (ROOT / "docs/architecture.md").read_text()
    for module in ("runner.py", "jobmodel.py", "jobhealth.py", "live.py", "retrain.py",
                   "workflows.py", "backtest.py"):
        assert (ROOT / "src/aws_anomaly" / module).is_file(), module
        assert f"`{module}`" in text, f"docs/architecture.md does not name {module}"
