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


def test_the_documented_file_source_example_loads_a_messy_export(tmp_path: Path,
                                                                 caplog) -> None:
    """docs/configuration.md's file-source block, on the export it describes: a node exporter
    scraped every minute with jitter, a repeated scrape and a late row."""
    import re

    import yaml

    doc = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", doc.read_text(), flags=re.S)
                if "type: file" in b]
    cfg = yaml.safe_load(block)["source"]
    export = tmp_path / "exports" / "node-metrics.csv"
    export.parent.mkdir()
    t = pd.date_range("2026-03-01T00:00Z", periods=30, freq="1min")
    times = list(t + pd.to_timedelta([0, 2, 0, 0, 1] * 6, unit="s"))
    load = [0.1 * (i % 7) for i in range(30)]
    times.insert(10, times[9])  # the same scrape exported twice
    load.insert(10, 9.9)
    times.insert(20, times[5])  # a late row from an earlier minute
    load.insert(20, 5.5)
    pd.DataFrame({"timestamp": [x.strftime("%Y-%m-%dT%H:%M:%SZ") for x in times],
                  "instance": "web-1", "node_load1": load}).to_csv(export, index=False)
    cfg["path"] = str(export)
    with caplog.at_level("WARNING", logger="aws_anomaly.sources.files"):
        src = FileSource(FileSourceConfig(**cfg))
    assert src.step == pd.Timedelta("1min") and src.metrics == ("node_load1",)
    ds = src.fetch(t[0], t[-1] + pd.Timedelta("1min"))
    assert ds.entities == ("web-1",) and len(ds) == 30
    assert ds.values("web-1")[9, 0] == 9.9  # duplicates: last
    assert 5.5 not in ds.values("web-1")[:, 0]  # timestamps: drop
    # what the policies changed is logged once per read
    for needle in ("1 row earlier than a row before it; dropped (--timestamps drop)",
                   "1 row shared a timestamp", "kept the last (--duplicates last)",
                   "12 rows off the 1min grid moved"):
        assert needle in caplog.text, needle


def test_a_few_rows_off_the_grid_load_by_default_and_are_logged(tmp_path: Path,
                                                                caplog) -> None:
    """A daylight-saving repeat leaves a row off the grid: auto (the default) averages it into
    its grid point when at most 1 % of the rows are off; ``resample: error`` refuses it."""
    t = pd.date_range(T0, periods=150, freq="5min")
    times = [*t[:70], t[69] + pd.Timedelta("2min"), *t[70:]]
    path = tmp_path / "m.csv"
    pd.DataFrame({"timestamp": times, "cpu": range(151)}).to_csv(path, index=False)
    assert FileSourceConfig(path=path).resample == "auto"
    with caplog.at_level("WARNING", logger="aws_anomaly.sources.files"):
        src = FileSource(FileSourceConfig(path=path))
    ds = src.fetch(T0, t[-1] + pd.Timedelta("5min"))
    assert len(ds) == 150 and ds.values("default")[69, 0] == 69.5  # mean of 69 and 70
    assert "auto chose mean of each step (1 row moved)" in caplog.text
    with pytest.raises(SourceError, match=r"irregular time step.*--resample mean\|last"):
        FileSource(FileSourceConfig(path=path, resample="error"))
