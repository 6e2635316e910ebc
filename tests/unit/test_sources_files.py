"""The file source: slices of a CSV/Parquet file, re-read when the file changes."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from aws_anomaly.config import FileSourceConfig
from aws_anomaly.errors import SourceError
from aws_anomaly.sources import make_source
from aws_anomaly.sources.files import FileSource

T0 = pd.Timestamp("2026-03-01T00:00Z")


def write(path: Path, n: int = 12, scale: float = 1.0) -> Path:
    t = pd.date_range(T0, periods=n, freq="5min")
    frames = [pd.DataFrame({"timestamp": t, "entity": e, "cpu": [scale * i for i in range(n)],
                            "mem": [scale * (i + 100) for i in range(n)]}) for e in ("a", "b")]
    pd.concat(frames).to_csv(path, index=False)
    return path


def test_fetch_slices_and_selects(tmp_path: Path) -> None:
    src = make_source(FileSourceConfig(path=write(tmp_path / "m.csv")), metrics=["cpu"])
    assert isinstance(src, FileSource)
    assert src.metrics == ("cpu",) and src.step == pd.Timedelta("5min")
    ds = src.fetch(T0 + pd.Timedelta("10min"), T0 + pd.Timedelta("30min"), entities=["b"])
    assert ds.entities == ("b",)
    assert ds.values("b")[:, 0].tolist() == [2.0, 3.0, 4.0, 5.0]
    latest = src.latest(pd.Timedelta("15min"))
    assert latest.frame["timestamp"].max() == T0 + pd.Timedelta("55min")
    assert latest.frame.groupby("entity").size().eq(3).all()


def test_rewritten_file_is_read_again(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv")
    src = FileSource(FileSourceConfig(path=path))
    assert src.fetch(T0, T0 + pd.Timedelta("5min")).values("a").tolist() == [[0.0, 100.0]]
    write(path, scale=2.0)
    os.utime(path, (1e9, 1e9))  # a different mtime even on coarse clocks
    assert src.fetch(T0 + pd.Timedelta("5min"), T0 + pd.Timedelta("10min")).values(
        "a").tolist() == [[2.0, 202.0]]


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"file .*missing\.csv: cannot read"):
        FileSource(FileSourceConfig(path=tmp_path / "missing.csv"))
    src = FileSource(FileSourceConfig(path=write(tmp_path / "m.csv")))
    with pytest.raises(SourceError, match=r"no rows in .* the file covers"):
        src.fetch(T0 - pd.Timedelta(days=2), T0 - pd.Timedelta(days=1))
    with pytest.raises(SourceError, match=r"none of the entities \['zz'\] is in the file"):
        src.fetch(T0, T0 + pd.Timedelta(hours=1), entities=["zz"])
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,cpu\n2026-03-01T00:00Z,abc\n2026-03-01T00:05Z,1\n")
    with pytest.raises(SourceError, match=r"bad\.csv"):
        FileSource(FileSourceConfig(path=bad))
