"""File I/O: wide and long (Prometheus export) layouts, round trips, errors naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data import Dataset, read_dataset, write_dataset
from aws_anomaly.data.io import parse_labels, read_events
from aws_anomaly.errors import ConfigError, DataError

TS = pd.date_range("2026-01-01", periods=6, freq="5min", tz="UTC")
UNIX = ((TS - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1s")).to_numpy()


def wide_ds(labels: bool = True) -> Dataset:
    rng = np.random.default_rng(0)
    parts = []
    for e in ("007", "NA", "eks-prod-eu-west-1"):
        df = pd.DataFrame({"timestamp": TS, "entity": e, "cpu": rng.random(6),
                           "mem": rng.random(6) * 1e-7})
        if labels:
            df["is_anomaly"] = [0, 1, 1, 0, 0, 0]
            df["anomaly_type"] = ["", "spike", "spike", "", "", ""]
        parts.append(df)
    return Dataset.from_frame(pd.concat(parts, ignore_index=True))


def long_frame(labels_col: str = "prom") -> pd.DataFrame:
    rows = []
    for cluster in ("a", "b"):
        for metric, base in (("cpu", 0.1), ("mem", 0.5)):
            for i, t in enumerate(UNIX):
                row = {"timestamp": int(t), "metric": metric, "value": base + i / 100}
                if labels_col == "prom":
                    row["labels"] = f'{{cluster="{cluster}",job="ksm"}}'
                elif labels_col == "json":
                    row["labels"] = json.dumps({"cluster": cluster, "job": "ksm"})
                else:
                    row["cluster"] = cluster
                    row["job"] = "ksm"
                rows.append(row)
    # Prometheus exports are not in (entity, time) order.
    return pd.DataFrame(rows).sample(frac=1, random_state=1).reset_index(drop=True)


# ---------------------------------------------------------------- wide
@pytest.mark.parametrize("name", ["d.csv", "d.csv.gz", "d.parquet"])
def test_wide_round_trip_is_exact(tmp_path: Path, name: str) -> None:
    ds = wide_ds()
    path = write_dataset(ds, tmp_path / "sub" / name)
    back = read_dataset(path)
    pd.testing.assert_frame_equal(back.frame, ds.frame)
    assert back.metrics == ds.metrics and back.step == ds.step


def test_csv_timestamps_are_iso_utc(tmp_path: Path) -> None:
    path = write_dataset(wide_ds(labels=False), tmp_path / "d.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "timestamp,entity,cpu,mem"
    assert lines[1].startswith("2026-01-01T00:00:00Z,007,")


def test_wide_read_passes_options(tmp_path: Path) -> None:
    df = pd.DataFrame({"timestamp": TS.strftime("%Y-%m-%dT%H:%M:%SZ"), "cpu": np.arange(6.0)})
    df = df.drop(index=[2, 3])
    df.to_csv(tmp_path / "g.csv", index=False)
    with pytest.raises(DataError, match=r"g\.csv: entity 'default': metric 'cpu' has 2 missing"):
        read_dataset(tmp_path / "g.csv", gap_policy="error")
    ds = read_dataset(tmp_path / "g.csv", gap_policy="interpolate", metrics=["cpu"])
    assert ds.frame["cpu"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_wide_entity_from_the_entity_label_column(tmp_path: Path) -> None:
    df = pd.DataFrame({"timestamp": list(TS) * 2, "cluster": ["007"] * 6 + ["b"] * 6,
                       "cpu": np.arange(12.0)})
    df.to_csv(tmp_path / "w.csv", index=False)
    ds = read_dataset(tmp_path / "w.csv")
    assert ds.entities == ("007", "b") and ds.values("b")[0, 0] == 6.0


# ---------------------------------------------------------------- long
@pytest.mark.parametrize("form", ["prom", "json", "columns"])
def test_long_layout_label_forms(tmp_path: Path, form: str) -> None:
    long_frame(form).to_csv(tmp_path / "long.csv", index=False)
    ds = read_dataset(tmp_path / "long.csv")
    assert ds.entities == ("a", "b") and ds.metrics == ("cpu", "mem")
    assert ds.values("b")[:, 1].tolist() == pytest.approx([0.5 + i / 100 for i in range(6)])
    assert ds.step == pd.Timedelta("5min")


def test_long_layout_dunder_name_iso_times_and_metric_filter(tmp_path: Path) -> None:
    df = long_frame("columns").rename(columns={"metric": "__name__"})
    df["timestamp"] = pd.to_datetime(df["timestamp"], unit="s", utc=True).dt.strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    df.to_parquet(tmp_path / "long.parquet")
    ds = read_dataset(tmp_path / "long.parquet", metrics=["mem"])
    assert ds.metrics == ("mem",)
    with pytest.raises(DataError, match=r"metric\(s\) \['disk'\] not in the file"):
        read_dataset(tmp_path / "long.parquet", metrics=["disk"])


def test_long_entity_label_missing_from_some_series(tmp_path: Path) -> None:
    df = long_frame("prom")
    df.loc[df["labels"].str.contains('"b"') & (df["metric"] == "mem"), "labels"] = '{job="ksm"}'
    df.to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(DataError, match=r"l\.csv: series mem\{job=\"ksm\"\} has no entity label "
                                        r"'cluster'"):
        read_dataset(tmp_path / "l.csv")


def test_long_entity_label_missing_everywhere_lists_labels(tmp_path: Path) -> None:
    long_frame("prom").to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(DataError, match=r"no series has the entity label 'namespace'; labels "
                                        r"present: \['cluster', 'job'\]"):
        read_dataset(tmp_path / "l.csv", entity_label="namespace")


def test_long_without_entity_label_is_one_entity(tmp_path: Path) -> None:
    df = long_frame("prom")
    df = df[df["labels"].str.contains('"a"')].drop(columns="labels")
    df.to_csv(tmp_path / "l.csv", index=False)
    assert read_dataset(tmp_path / "l.csv", entity_label=None).entities == ("default",)


def test_long_repeated_sample_follows_the_duplicates_policy(tmp_path: Path) -> None:
    df = long_frame("prom")
    first = df.iloc[[0]].copy()
    first["value"] = first["value"] + 10.0  # the repeat, last in the file, differs
    df = pd.concat([df, first], ignore_index=True)
    df.to_csv(tmp_path / "l.csv", index=False)
    row0 = df.iloc[0]
    entity = "a" if '"a"' in row0["labels"] else "b"
    at = pd.Timestamp(int(row0["timestamp"]), unit="s", tz="UTC")
    # header = line 1, so 0-based data row k is on line k + 2
    with pytest.raises(DataError, match=rf"metric '{row0['metric']}' of entity '{entity}': "
                       rf"duplicate timestamp .*\(line 2 and line {len(df) + 1}\).*"
                       r"--duplicates first\|last\|mean"):
        read_dataset(tmp_path / "l.csv", duplicates="error")
    for how, expected in (("first", row0["value"]), ("last", row0["value"] + 10.0),
                          ("mean", row0["value"] + 5.0)):
        ds = read_dataset(tmp_path / "l.csv", duplicates=how)
        got = ds.entity_frame(entity).loc[at, row0["metric"]]
        assert got == pytest.approx(expected), how
        assert ds.report is not None and ds.report.duplicate_rows == 1


def test_long_series_differing_in_other_labels_rejected(tmp_path: Path) -> None:
    df = long_frame("columns")
    df.loc[(df["cluster"] == "a") & (df["metric"] == "cpu") & (df["timestamp"] == UNIX[0]),
           "job"] = "other"
    df.to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(DataError, match=r"metric 'cpu' of entity 'a' comes from several series"):
        read_dataset(tmp_path / "l.csv")


def test_long_non_numeric_value_and_prometheus_specials(tmp_path: Path) -> None:
    df = long_frame("prom")
    df["value"] = df["value"].astype(object)
    df.loc[3, "value"] = "NaN"  # Prometheus' own NaN: a gap, filled by the gap policy
    df.to_csv(tmp_path / "ok.csv", index=False)
    assert np.isfinite(read_dataset(tmp_path / "ok.csv").frame[["cpu", "mem"]]).all().all()
    df.loc[3, "value"] = "12 cores"
    df.to_csv(tmp_path / "bad.csv", index=False)
    # data row 3 (0-based) is line 5 in an editor: the header is line 1
    with pytest.raises(DataError, match=r"bad\.csv: 'value' in line 5 is not a number: "
                       "'12 cores'"):
        read_dataset(tmp_path / "bad.csv")


def test_layout_option_checked(tmp_path: Path) -> None:
    write_dataset(wide_ds(), tmp_path / "w.csv")
    with pytest.raises(ConfigError, match="layout must be one of"):
        read_dataset(tmp_path / "w.csv", layout="tall")
    with pytest.raises(DataError, match="layout='long' needs columns"):
        read_dataset(tmp_path / "w.csv", layout="long")


# ---------------------------------------------------------------- labels text
def test_parse_labels_escapes_and_errors() -> None:
    assert parse_labels(r'{a="x\"y",b="c\\d",n="1\n2",}') == {"a": 'x"y', "b": "c\\d",
                                                               "n": "1\n2"}
    assert parse_labels('{a="b,c={}"}') == {"a": "b,c={}"}
    with pytest.raises(DataError, match="cannot parse labels"):
        parse_labels('{a=x}')
    with pytest.raises(DataError, match="label 'a' repeats"):
        parse_labels('{a="1",a="2"}')
    with pytest.raises(DataError, match="not valid JSON"):
        parse_labels('{"a": }')


# ---------------------------------------------------------------- files
def test_missing_file_and_unknown_extension_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        read_dataset(tmp_path / "nope.csv")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"data\.xlsx: unknown file type; use one of \.csv"):
        read_dataset(tmp_path / "data.xlsx")
    with pytest.raises(DataError, match=r"out\.json: unknown file type"):
        write_dataset(wide_ds(), tmp_path / "out.json")


def test_corrupt_and_empty_files_name_the_path(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"x\.parquet: cannot read the file"):
        read_dataset(tmp_path / "x.parquet")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match=r"e\.csv: cannot read the file"):
        read_dataset(tmp_path / "e.csv")


def test_validation_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("timestamp,cpu\n2026-01-01T00:00:00Z,0.1\n"
                                    "2026-01-01T00:05:00Z,inf\n")
    with pytest.raises(DataError, match=r"m\.csv: metric 'cpu' has 1 infinite value"):
        read_dataset(tmp_path / "m.csv")


def test_read_events_types(tmp_path: Path) -> None:
    (tmp_path / "ev.csv").write_text(
        "entity,start,end,type,metrics,magnitude\n"
        "NA,2026-01-01T00:05:00Z,2026-01-01T00:10:00Z,flatline,cpu;mem,\n")
    ev = read_events(tmp_path / "ev.csv")
    assert ev["entity"].tolist() == ["NA"] and ev["metrics"].tolist() == ["cpu;mem"]
    assert str(ev["start"].dtype) == "datetime64[ns, UTC]" and np.isnan(ev["magnitude"][0])
    (tmp_path / "bad.csv").write_text("entity,start,type\na,2026-01-01,spike\n")
    with pytest.raises(DataError, match=r"bad\.csv: missing event column\(s\) \['end'\]"):
        read_events(tmp_path / "bad.csv")
