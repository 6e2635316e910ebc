"""Real exports: duplicates, clocks going back, irregular steps, constant metrics.

Each fixture is written as the file a user would have (CSV text, an editor's line numbers), and
each policy is checked for what it does and for what the load report says it did. The last test
loads every real file of the shared corpus (marked ``nab``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.config import FileSourceConfig
from aws_anomaly.data.dataset import Dataset, LoadReport, stream_admit
from aws_anomaly.data.io import read_dataset
from aws_anomaly.errors import ConfigError, DataError, SourceError
from aws_anomaly.sources.files import FileSource


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def line_of(path: Path, text: str, nth: int = 0) -> int:
    """1-based line number of the ``nth`` line of ``path`` starting with ``text``."""
    hits = [i + 1 for i, line in enumerate(_lines(path)) if line.startswith(text)]
    return hits[nth]


# ---------------------------------------------------------------- CloudWatch export, DST repeat
def cloudwatch_dst(tmp_path: Path) -> Path:
    """A CloudWatch export in local time over the spring DST change, like NAB's
    ``ec2_network_in_5abac7``: 5-minute samples at :x1/:x6, the clock jumps from 01:56 to 03:00
    and the exporter wrote the first sample after the jump four times."""
    times = pd.date_range("2014-03-09 00:01", "2014-03-09 01:56", freq="5min")
    rows = [f"{t:%Y-%m-%d %H:%M:%S},{40 + i % 7 * 9.6:.1f}" for i, t in enumerate(times)]
    rows += ["2014-03-09 03:00:00,42.0", "2014-03-09 03:00:00,103.2",
             "2014-03-09 03:00:00,60.0", "2014-03-09 03:00:00,111.6"]
    after = pd.date_range("2014-03-09 03:01", periods=30, freq="5min")
    rows += [f"{t:%Y-%m-%d %H:%M:%S},{50 + i % 5 * 8.4:.1f}" for i, t in enumerate(after)]
    p = tmp_path / "ec2_network_in.csv"
    p.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return p


def test_duplicates_are_merged_by_policy_and_counted(tmp_path: Path) -> None:
    p = cloudwatch_dst(tmp_path)
    first, second = line_of(p, "2014-03-09 03:00:00"), line_of(p, "2014-03-09 03:00:00", 1)
    with pytest.raises(DataError, match=rf"ec2_network_in\.csv: entity 'default': duplicate "
                       rf"timestamp 2014-03-09T03:00:00Z \(line {first} and line {second}\).*"
                       r"--duplicates first\|last\|mean"):
        read_dataset(p, duplicates="error", resample="mean")
    at = pd.Timestamp("2014-03-09 02:56", tz="UTC")  # 03:00 lands on the :x1/:x6 grid's 02:56
    for how, expected in (("first", 42.0), ("last", 111.6),
                          ("mean", (42.0 + 103.2 + 60.0 + 111.6) / 4)):
        ds = read_dataset(p, duplicates=how, resample="mean")  # type: ignore[arg-type]
        assert ds.entity_frame("default").loc[at, "value"] == pytest.approx(expected), how
        rep = ds.report
        assert rep is not None and rep.duplicate_rows == 3 and rep.duplicates == how
        assert any("3 rows shared a timestamp" in line and f"--duplicates {how}" in line
                   for line in rep.lines())


def test_irregular_step_names_the_line_and_resample_moves_only_the_stray_row(
        tmp_path: Path) -> None:
    p = cloudwatch_dst(tmp_path)
    line = line_of(p, "2014-03-09 03:00:00")
    with pytest.raises(DataError) as err:
        read_dataset(p, resample="error")
    msg = str(err.value)
    assert f"irregular time step: 2014-03-09T03:00:00Z (line {line}) is not on the 5min grid" \
        in msg
    for option in ("--resample mean|last", "--step"):
        assert option in msg
    # 1 row of this short file's 55 is off the grid: more than auto (the default) resamples
    with pytest.raises(DataError, match=r"\(1 of 55 rows are off it; --resample auto only "
                       r"resamples when at most 1% .*--resample mean\|last"):
        read_dataset(p)
    ds = read_dataset(p, resample="last")
    ts = ds.frame["timestamp"]
    assert (ts.diff().dropna() == pd.Timedelta("5min")).all()
    # the :x1/:x6 phase of the file is kept: only the 03:00 row moved (to 02:56)
    assert (ts.dt.minute % 5 == 1).all()
    rep = ds.report
    assert rep is not None and rep.moved == 1 and rep.merged == 0
    # 01:56 -> 02:56 leaves 11 grid points without a sample; they are filled and counted
    assert rep.filled_points == 11 and rep.rows_out == len(ds) == 24 + 12 + 30
    assert ds.step == pd.Timedelta("5min") and rep.step_inferred


def test_jittered_scrapes_are_resampled_with_counts(tmp_path: Path) -> None:
    """A node exporter scraped every 30 s whose samples arrive a few seconds late or early."""
    rng = np.random.default_rng(3)
    base = pd.date_range("2026-02-01T10:00:00Z", periods=120, freq="30s")
    jitter = rng.choice([0, 0, 0, 0, 2, -3], size=len(base))
    times = base + pd.to_timedelta(jitter, unit="s")
    load = 0.5 + 0.1 * np.sin(np.arange(len(base)) / 10)
    p = tmp_path / "node.csv"
    pd.DataFrame({"timestamp": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "instance": "web-1",
                  "node_load1": load.round(4)}).to_csv(p, index=False)
    with pytest.raises(DataError, match=r"entity 'web-1': irregular time step: .* \(line \d+\)"):
        read_dataset(p, entity_label="instance", resample="error")
    # a third of the rows are late or early, each by a few seconds: auto (the default) moves
    # each to its own grid point; every sample is kept where it belongs
    off = int((jitter != 0).sum())
    ds = read_dataset(p, entity_label="instance")
    assert ds.step == pd.Timedelta("30s") and ds.entities == ("web-1",)
    rep = ds.report
    assert rep is not None and rep.snapped == off and rep.moved == rep.merged == 0
    assert rep.filled_points == 0 and len(ds) == len(base)
    assert (ds.frame["timestamp"].to_numpy() == base.to_numpy()).all()
    np.testing.assert_array_equal(ds.frame["node_load1"].to_numpy(), load.round(4))
    # mean buckets [t, t + 30 s): the early samples fall into the step before theirs
    ds = read_dataset(p, entity_label="instance", resample="mean")
    assert ds.report is not None and ds.report.moved == off
    assert (ds.frame["timestamp"].dt.second % 30 == 0).all()
    # the stated step wins over the inferred one
    coarse = read_dataset(p, entity_label="instance", resample="mean", step="1min")
    assert coarse.step == pd.Timedelta("1min") and not coarse.report.step_inferred
    assert len(coarse) == 60 and coarse.report.merged >= 60


# ---------------------------------------------------------------- a clock that goes back
def concatenated_exports(tmp_path: Path) -> Path:
    """Two exports of the same host pasted one after the other: 10:00-10:50, then 10:30-11:20
    (the second overlaps the first by three samples)."""
    a = pd.date_range("2026-03-01T10:00Z", "2026-03-01T10:50Z", freq="10min")
    b = pd.date_range("2026-03-01T10:30Z", "2026-03-01T11:20Z", freq="10min")
    rows = [f"{t:%Y-%m-%dT%H:%M:%SZ},db-1,{10 + i},{0.5}" for i, t in enumerate(a)]
    rows += [f"{t:%Y-%m-%dT%H:%M:%SZ},db-1,{20 + i},{0.5}" for i, t in enumerate(b)]
    p = tmp_path / "db.csv"
    p.write_text("timestamp,entity,connections,disk2_util\n" + "\n".join(rows) + "\n")
    return p


def test_time_going_back_is_an_error_naming_file_lines_and_both_times(tmp_path: Path) -> None:
    p = concatenated_exports(tmp_path)
    back, before = line_of(p, "2026-03-01T10:30:00Z", 1), line_of(p, "2026-03-01T10:50:00Z")
    assert back == before + 1 == 8
    with pytest.raises(DataError) as err:
        read_dataset(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}: entity 'db-1': timestamps are not increasing: "
                          f"2026-03-01T10:30:00Z (line {back}) comes after 2026-03-01T10:50:00Z "
                          f"(line {before})")
    assert "--timestamps sort|clamp|drop" in msg


@pytest.mark.parametrize(("policy", "behind", "dups", "conn"), [
    # sort: the overlap 10:30, 10:40, 10:50 appears twice; the first export's rows come first
    ("sort", 2, 3, [10, 11, 12, 13, 14, 15, 23, 24, 25]),
    # clamp: 10:30 and 10:40 of the second export take 10:50, merged into the first's 10:50
    ("clamp", 2, 3, [10, 11, 12, 13, 14, 15, 23, 24, 25]),
    # drop: the late 10:30 and 10:40 go; the second 10:50 is a duplicate of the first
    ("drop", 2, 1, [10, 11, 12, 13, 14, 15, 23, 24, 25]),
])
def test_time_order_policies(tmp_path: Path, policy: str, behind: int, dups: int,
                             conn: list[int]) -> None:
    p = concatenated_exports(tmp_path)
    ds = read_dataset(p, timestamps=policy)  # type: ignore[arg-type]
    assert ds.frame["connections"].tolist() == conn
    assert ds.frame["timestamp"].is_monotonic_increasing and len(ds) == 9
    rep = ds.report
    assert rep is not None and (rep.behind, rep.duplicate_rows) == (behind, dups)
    assert any(f"--timestamps {policy}" in line for line in rep.lines())
    # "last" takes the second export's value of an overlapping time
    last = read_dataset(p, timestamps="sort", duplicates="last")
    assert last.frame["connections"].tolist()[3:6] == [20, 21, 22]


def test_a_late_entity_row_is_found_among_interleaved_entities(tmp_path: Path) -> None:
    """Entities interleave freely; the order that matters is each entity's own."""
    p = tmp_path / "fleet.csv"
    p.write_text("timestamp,entity,cpu\n"
                 "2026-03-01T10:00:00Z,a,0.1\n2026-03-01T10:00:00Z,b,0.2\n"
                 "2026-03-01T10:05:00Z,a,0.1\n2026-03-01T10:05:00Z,b,0.3\n"
                 "2026-03-01T10:10:00Z,a,0.2\n2026-03-01T10:00:00Z,b,0.2\n"
                 "2026-03-01T10:15:00Z,a,0.2\n2026-03-01T10:10:00Z,b,0.4\n")
    with pytest.raises(DataError, match=r"entity 'b': timestamps are not increasing: "
                       r"2026-03-01T10:00:00Z \(line 7\) comes after 2026-03-01T10:05:00Z "
                       r"\(line 5\)"):
        read_dataset(p)
    ds = read_dataset(p, timestamps="drop")
    assert ds.select("b").frame["cpu"].tolist() == [0.2, 0.3, 0.4]
    assert len(ds.select("a")) == 4 and ds.report.behind == 1


# ---------------------------------------------------------------- line numbers
def test_line_numbers_count_the_header_and_blank_lines(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text("timestamp,cpu\n"
                 "2026-01-01T00:00:00Z,0.1\n"
                 "\n"
                 "2026-01-01T00:05:00Z,0.2\n"
                 "2026-01-01T00:1O:00Z,0.3\n")  # a letter O for a zero
    with pytest.raises(DataError, match=r"cannot parse timestamp '2026-01-01T00:1O:00Z' in "
                       r"line 5"):
        read_dataset(p)
    gz = tmp_path / "m.csv.gz"
    import gzip

    gz.write_bytes(gzip.compress(p.read_bytes()))
    with pytest.raises(DataError, match=r"in line 5"):
        read_dataset(gz)
    pq = tmp_path / "m.parquet"
    pd.DataFrame({"timestamp": pd.to_datetime(["2026-01-01T00:00Z", "2026-01-01T00:10Z",
                                               "2026-01-01T00:05Z"]),
                  "cpu": [0.1, 0.2, 0.3]}).to_parquet(pq)
    # Parquet rows count from 1 (no header line)
    with pytest.raises(DataError, match=r"00:05:00Z \(row 3\) comes after .*00:10:00Z \(row 2\)"):
        read_dataset(pq)


def test_long_export_rows_in_any_order_are_sorted_and_reported(tmp_path: Path) -> None:
    """A Prometheus long export listed by time then series, with one scrape exported twice."""
    t = pd.date_range("2026-01-01T00:00Z", periods=4, freq="1min")
    rows = []
    for k, ts in enumerate(t):
        for cluster in ("b", "a"):
            rows.append(f'{int(ts.timestamp())},up,"{{cluster=""{cluster}""}}",{k % 2}')
    rows.insert(3, rows[0])  # cluster b's first scrape again, out of order
    p = tmp_path / "export.csv"
    p.write_text("timestamp,metric,labels,value\n" + "\n".join(rows) + "\n")
    ds = read_dataset(p)
    assert ds.entities == ("a", "b") and len(ds) == 8
    assert ds.report is not None and ds.report.behind == 1 and ds.report.duplicate_rows == 1
    assert ds.report.rows_in == 9
    with pytest.raises(DataError, match=r"metric 'up' of entity 'b': timestamps are not "
                       r"increasing: 2026-01-01T00:00:00Z \(line 5\) comes after "
                       r"2026-01-01T00:01:00Z \(line 4\)"):
        read_dataset(p, timestamps="error")


# ---------------------------------------------------------------- constant metrics
def smd_like(n: int = 200) -> pd.DataFrame:
    """A server's metrics min-max scaled by the publisher, two of them flat over the period:
    an unused disk (0.0) and a link that never changes speed (1.0)."""
    rng = np.random.default_rng(7)
    ts = pd.date_range("2020-01-06", periods=n, freq="1min", tz="UTC")
    df = pd.DataFrame({"timestamp": ts, "entity": "machine-1-6"})
    for j in range(6):
        df[f"m{j:02d}"] = rng.random(n).round(6)
    df["m03"] = 0.0
    df["m05"] = 1.0
    return df


def test_constant_metrics_are_listed_kept_by_default_or_dropped_with_a_warning() -> None:
    ds = Dataset.from_frame(smd_like())
    assert ds.constant_metrics() == {"machine-1-6": ["m03", "m05"]}
    assert ds.check_not_constant("training data") == {"machine-1-6": ["m03", "m05"]}
    with pytest.raises(DataError, match=r"training data: metric 'm03' of entity 'machine-1-6' "
                       r"is constant \(0\.0\) over all 200 points \(1 more"):
        ds.check_not_constant("training data", policy="error")
    with pytest.raises(ConfigError, match=r"policy must be 'keep' or 'error'.*drop_constant"):
        ds.check_not_constant(policy="drop")  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match=r"dropped 2 constant metric\(s\): m03, m05 "
                      r"\(entity machine-1-6\)"):
        dropped = ds.drop_constant("training data")
    assert dropped.metrics == ("m00", "m01", "m02", "m04")
    assert list(dropped.frame.columns) == ["timestamp", "entity", "m00", "m01", "m02", "m04"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Dataset.from_frame(smd_like()[["timestamp", "m00"]]).drop_constant().metrics == (
            "m00",)


def test_a_metric_constant_for_one_entity_only_is_named_for_it() -> None:
    a = smd_like()
    b = smd_like().assign(entity="machine-2-1", m03=np.linspace(0, 1, 200))
    ds = Dataset.from_frame(pd.concat([a, b], ignore_index=True))
    assert ds.constant_metrics() == {"machine-1-6": ["m03", "m05"], "machine-2-1": ["m05"]}
    assert ds.drop_constant(warn=False).metrics == ("m00", "m01", "m02", "m04")
    with pytest.raises(DataError, match="every metric is constant"):
        Dataset.from_frame(smd_like()[["timestamp", "m03", "m05"]]).drop_constant(warn=False)


# ---------------------------------------------------------------- live points
def test_stream_admit_applies_the_policies_to_one_point_at_a_time() -> None:
    t = pd.Timestamp("2026-01-01T00:05Z")
    assert stream_admit(None, t) and stream_admit(t, t + pd.Timedelta("5min"))
    assert stream_admit(t, t) is False  # a repeated scrape: the scored one stands
    with pytest.raises(DataError, match=r"duplicate timestamp 2026-01-01T00:05:00Z.*"
                       r"--duplicates first"):
        stream_admit(t, t, duplicates="error", where="entity 'a'")
    late = t - pd.Timedelta("10min")
    with pytest.raises(DataError, match=r"entity 'a': timestamps are not increasing: "
                       r"2026-01-01T00:55:00Z comes after 2026-01-01T01:05:00Z"):
        stream_admit(t + pd.Timedelta("1h"), late + pd.Timedelta("1h"), where="entity 'a'")
    for policy in ("sort", "clamp", "drop"):
        assert stream_admit(t, late, timestamps=policy) is False  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timestamps must be one of"):
        stream_admit(t, late, timestamps="ignore")  # type: ignore[arg-type]


def test_file_source_applies_the_configured_policies(tmp_path: Path, caplog) -> None:
    p = concatenated_exports(tmp_path)
    with pytest.raises(SourceError, match=r"timestamps are not increasing.*--timestamps"):
        FileSource(FileSourceConfig(path=p))
    with caplog.at_level("WARNING", logger="aws_anomaly.sources.files"):
        src = FileSource(FileSourceConfig(path=p, timestamps="drop", duplicates="last"))
    assert "time order: 2 rows earlier than a row before them; dropped" in caplog.text
    ds = src.fetch("2026-03-01T10:00Z", "2026-03-01T12:00Z")
    assert ds.frame["connections"].tolist()[5] == 22  # the second export's 10:50 (last)


def test_report_lines_and_dict() -> None:
    rep = LoadReport(source="x.csv", rows_in=12, rows_out=10, timestamps="sort", behind=2,
                     duplicate_rows=1, step=pd.Timedelta("1h"), step_inferred=False,
                     resample="mean", moved=3, merged=1, filled_points=4, filled_values=2)
    text = "\n".join(rep.lines())
    for needle in ("step 1h (given)", "2 rows earlier than a row before them; sorted into "
                   "time order (--timestamps sort)", "1 row shared a timestamp",
                   "3 rows off the 1h grid moved", "1 row merged with another row",
                   "4 missing grid point(s) and 2 missing value(s) filled (ffill"):
        assert needle in text, needle
    assert rep.changed and rep.to_dict()["step"] == "1h"
    assert not LoadReport(step=pd.Timedelta("5min")).changed
    auto = replace(rep, resample="auto", moved=2, merged=0)
    (line,) = [x for x in auto.lines() if x.startswith("resample:")]
    assert line == ("resample: auto chose mean of each step (2 rows moved): 2 rows off the 1h "
                    "grid moved to their grid point (--resample auto: at most 1% of an "
                    "entity's rows off the grid)")
    assert auto.to_dict()["resample"] == "auto" and LoadReport().resample == "auto"


# ---------------------------------------------------------------- the shared corpus
# Files of the corpus with a daylight-saving repeat: a few rows off the 5-minute grid, which
# the default resample policy (auto) averages into their grid point, saying so in the report.
DST_REPEAT = {"ec2_disk_write_bytes_1ef3de.csv", "ec2_network_in_5abac7.csv"}


@pytest.mark.nab
def test_every_real_file_loads_with_default_options(nab_root: Path) -> None:
    root = nab_root.parent
    files = sorted(root.glob("servers/*/*/train.parquet")) + sorted(
        root.glob("servers/*/*/test.parquet")) + sorted(root.glob("nab/data/*/*.csv"))
    assert len(files) == 2 * 10 + 44, len(files)
    for path in files:
        if path.name in DST_REPEAT:
            # refused only when asked to refuse; the error names the option that loads it
            with pytest.raises(DataError) as err:
                read_dataset(path, resample="error")
            assert re.search(r"--resample [a-z|]*mean", str(err.value)), str(err.value)
        ds = read_dataset(path)
        raw = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        rep = ds.report
        assert rep is not None and rep.rows_in == len(raw), path
        if path.suffix == ".parquet":  # the servers: regular, complete, unchanged
            assert len(ds) == len(raw) and not rep.changed, (path, rep.lines())
            assert ds.has_labels == (path.name == "test.parquet")
        else:
            assert ds.metrics == ("value",) and len(ds) >= raw["timestamp"].nunique() - 1
        if path.name in DST_REPEAT:
            assert rep.duplicate_rows == 11 and rep.moved == 1, (path, rep.lines())
            assert rep.resample == "auto" and any(
                "auto chose mean of each step (1 row moved)" in x for x in rep.lines())
        else:
            assert rep.moved == 0 and rep.merged == 0, (path, rep.lines())
