"""The README's Python code runs as written, so it cannot drift from the API again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks(text: str) -> list[str]:
    """Every fenced ```python block of a Markdown text, verbatim."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.M | re.S)


def test_the_blocks_are_found() -> None:
    blocks = python_blocks("x\n```python\na = 1\n```\n```\nshell\n```\n```python\nb = 2\n```\n")
    assert blocks == ["a = 1\n", "b = 2\n"]


def test_readme_python_blocks_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no ```python block"
    monkeypatch.chdir(tmp_path)  # the snippet writes models/demo where it runs
    for i, code in enumerate(blocks):
        namespace: dict[str, object] = {"__name__": f"readme_block_{i}"}
        exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "anomaly_score" in out
    assert (tmp_path / "models" / "demo" / "manifest.json").is_file()
