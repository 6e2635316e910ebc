"""Load a script of ``benchmarks/`` as a module, for the tests of what it measures."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark(script: str, name: str) -> Iterator[ModuleType]:
    """Yield ``benchmarks/<script>`` imported as module ``name`` (registered in
    ``sys.modules`` while in use, as dataclasses need); for a module-scoped fixture."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)
