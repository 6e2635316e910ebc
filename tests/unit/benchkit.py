"""Load a script of ``benchmarks/`` as a module, for the tests of what it measures, and
write the toy servers those tests run it on."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

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


Column = Callable[[np.ndarray], np.ndarray]


def toy_server(root: Path, rng: np.random.Generator, n_train: int, n_test: int,
               edit: Callable[[pd.DataFrame, np.ndarray], None], **extra: Column) -> Path:
    """Write a 5-minute server ``toy/srv-1`` under ``root`` in the servers bench's layout and
    return its folder: metrics ``m00`` and ``m01`` follow a daily cycle with noise from
    ``rng``, then each of ``extra`` (name -> function of the daily cycle, called in order);
    ``edit(frame, labels)`` injects the test period's anomalies and labels them. The first
    ``n_train`` rows are ``train.parquet``, the rest ``test.parquet`` with ``is_anomaly``."""
    n = n_train + n_test
    daily = np.sin(2 * np.pi * np.arange(n) / 288)
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-05", periods=n, freq="5min",
                                                     tz="UTC"),
                          "entity": "srv",
                          "m00": 0.5 + 0.2 * daily + rng.normal(0, 0.02, n),
                          "m01": 0.3 + 0.1 * daily + rng.normal(0, 0.02, n),
                          **{name: make(daily) for name, make in extra.items()}})
    y = np.zeros(n, dtype=np.int8)
    edit(frame, y)
    folder = root / "toy" / "srv-1"
    folder.mkdir(parents=True)
    frame.iloc[:n_train].to_parquet(folder / "train.parquet")
    frame.iloc[n_train:].assign(is_anomaly=y[n_train:]).to_parquet(folder / "test.parquet")
    return folder


def default_with_holdout() -> tuple[object, object, object]:
    """(``default_model`` fit on a small demo, its fit part, its calibration holdout): the
    split the model itself made (``fitting.holdout_split``), for the studies that inject
    anomalies into one part and check the other is untouched."""
    from aws_anomaly.data import generate_demo
    from aws_anomaly.fitting import holdout_split
    from aws_anomaly.presets import default_model

    ds, _ = generate_demo(clusters=2, days=5, seed=3, events_per_day=0.5)
    model = default_model(ds.step).fit(ds)
    fit_part, holdout = holdout_split(model, ds)
    return model, fit_part, holdout
