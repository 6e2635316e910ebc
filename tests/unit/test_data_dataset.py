"""Dataset.from_frame validation: each bad input gets a DataError naming the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.data import Dataset
from aws_anomaly.errors import ConfigError, DataError

EPOCH = pd.Timestamp(0, tz="UTC")


def frame(n: int = 6, entity: str | None = "a", step: str = "5min", **cols: list) -> pd.DataFrame:
    df = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=n, freq=step, tz="UTC")})
    if entity is not None:
        df["entity"] = entity
    df["cpu"] = np.linspace(0.1, 0.6, n)
    df["mem"] = np.linspace(0.5, 0.2, n)
    for k, v in cols.items():
        df[k] = v
    return df


# ---------------------------------------------------------------- the contract of a valid frame
def test_valid_frame_dtypes_and_order() -> None:
    df = pd.concat([frame(entity="b"), frame(entity="a")], ignore_index=True)
    ds = Dataset.from_frame(df)
    f = ds.frame
    assert list(f.columns) == ["timestamp", "entity", "cpu", "mem"]
    assert str(f["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert f["cpu"].dtype == np.float64
    assert ds.entities == ("a", "b")
    assert ds.step == pd.Timedelta("5min")
    assert ds.values("b")[:, 0].tolist() == df.loc[:5, "cpu"].tolist()


def test_pandas3_string_and_microsecond_input_becomes_contract_dtypes() -> None:
    df = frame()
    df["timestamp"] = df["timestamp"].dt.as_unit("us").dt.tz_localize(None)  # naive = UTC
    df["entity"] = df["entity"].astype("string")
    ds = Dataset.from_frame(df)
    assert str(ds.frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert ds.frame["timestamp"].iloc[0] == pd.Timestamp("2026-01-01", tz="UTC")


def test_iso_text_and_unix_seconds_timestamps() -> None:
    df = frame()
    iso = df.assign(timestamp=df["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    unix = df.assign(timestamp=(df["timestamp"] - EPOCH) // pd.Timedelta("1s"))
    assert Dataset.from_frame(iso).frame.equals(Dataset.from_frame(df).frame)
    assert Dataset.from_frame(unix).frame.equals(Dataset.from_frame(df).frame)


def test_milliseconds_are_not_taken_for_seconds() -> None:
    df = frame()
    df["timestamp"] = (df["timestamp"] - EPOCH) // pd.Timedelta("1ms")
    with pytest.raises(DataError, match=r"not plausible unix seconds.*milliseconds"):
        Dataset.from_frame(df)


# ---------------------------------------------------------------- one test per bad input
def test_missing_timestamp_column() -> None:
    with pytest.raises(DataError, match=r"missing column 'timestamp'"):
        Dataset.from_frame(frame().drop(columns="timestamp"), source="f.csv")


def test_missing_metric_column_is_named() -> None:
    with pytest.raises(DataError, match=r"f\.csv: missing metric column\(s\) \['disk'\]"):
        Dataset.from_frame(frame(), metrics=["cpu", "disk"], source="f.csv")


def test_unknown_non_numeric_column_is_named() -> None:
    with pytest.raises(DataError, match=r"column\(s\) \['note'\] are not numeric"):
        Dataset.from_frame(frame(note=["x"] * 6))


def test_non_numeric_value_in_metric_names_row() -> None:
    df = frame()
    df["cpu"] = df["cpu"].astype(object)
    df.loc[3, "cpu"] = "oops"
    with pytest.raises(DataError, match=r"metric 'cpu' has a non-numeric value 'oops' in row 3"):
        Dataset.from_frame(df, metrics=["cpu", "mem"])


def test_unparsable_timestamp_names_value_and_row() -> None:
    df = frame()
    df["timestamp"] = df["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    df.loc[2, "timestamp"] = "yesterday-ish"
    with pytest.raises(DataError, match=r"cannot parse timestamp 'yesterday-ish' in row 2"):
        Dataset.from_frame(df)


def test_missing_timestamp_nat() -> None:
    df = frame()
    df.loc[4, "timestamp"] = pd.NaT
    with pytest.raises(DataError, match=r"timestamp in row 4 is missing"):
        Dataset.from_frame(df)


def test_non_monotonic_timestamps_rejected() -> None:
    df = frame()
    df = df.iloc[[0, 1, 3, 2, 4, 5]].reset_index(drop=True)
    with pytest.raises(DataError, match=r"entity 'a': timestamps are not increasing.*row 3"):
        Dataset.from_frame(df)


def test_duplicate_timestamps_follow_the_policy() -> None:
    df = frame()
    df.loc[3, "timestamp"] = df.loc[2, "timestamp"]
    with pytest.raises(DataError, match=r"entity 'a': duplicate timestamp 2026-01-01T00:10:00Z "
                       r"\(row 2 and row 3\).*--duplicates first\|last\|mean"):
        Dataset.from_frame(df, duplicates="error")
    cpu = df["cpu"].tolist()
    for how, expected in (("first", cpu[2]), ("last", cpu[3]), ("mean", (cpu[2] + cpu[3]) / 2)):
        ds = Dataset.from_frame(df, duplicates=how)  # type: ignore[arg-type]
        # 00:15 is left without a row and filled by the gap policy
        assert len(ds) == 6 and ds.frame["cpu"].iloc[2] == pytest.approx(expected)
        assert ds.report is not None and ds.report.duplicate_rows == 1
        assert ds.report.filled_points == 1
    assert Dataset.from_frame(df).report.duplicates == "first"  # the default


def test_irregular_step_errors_with_resample_error() -> None:
    df = frame(n=7)
    df.loc[3, "timestamp"] += pd.Timedelta("2min")
    with pytest.raises(DataError, match=r"irregular time step: 2026-01-01T00:17:00Z \(row 3\).*"
                       r"--resample mean\|last.*--step"):
        Dataset.from_frame(df, resample="error")


def off_grid(n: int, k: int) -> pd.DataFrame:
    """``n`` rows on a 5-minute grid with ``k`` of them (spread out) 2 minutes late."""
    df = frame(n=n)
    rows = np.linspace(10, n - 10, k).astype(int)
    df.loc[rows, "timestamp"] += pd.Timedelta("2min")
    return df


def test_auto_resamples_a_few_off_grid_rows_with_the_mean_and_says_so() -> None:
    df = off_grid(200, 2)  # 1 %: the most auto takes
    ds = Dataset.from_frame(df)  # the default is auto
    mean = Dataset.from_frame(df, resample="mean")
    pd.testing.assert_frame_equal(ds.frame, mean.frame)
    rep = ds.report
    assert rep is not None and rep.resample == "auto"
    assert rep.moved == 2 and rep.merged == 0 and rep.rows_out == len(ds) == 200
    (line,) = [x for x in rep.lines() if x.startswith("resample:")]
    assert "auto chose mean of each step (2 rows moved)" in line, line
    assert "2 rows off the 5min grid moved" in line and "--resample auto" in line, line
    assert ds.frame["timestamp"].diff().dropna().eq(pd.Timedelta("5min")).all()


def test_auto_refuses_more_than_one_percent_off_grid_and_names_the_option() -> None:
    for df, k, n in ((off_grid(200, 3), 3, 200), (frame(n=7), 1, 7)):
        if n == 7:
            df.loc[3, "timestamp"] += pd.Timedelta("2min")
        with pytest.raises(DataError) as err:
            Dataset.from_frame(df)
        msg = str(err.value)
        assert f"({k} of {n} rows are off it; --resample auto only resamples when at most 1% " \
            "of an entity's rows are off the grid, counting as on it a row within 10% of a " \
            "step of a grid point)" in msg, msg
        assert "entity 'a': irregular time step:" in msg
        for option in ("--resample mean|last", "`resample` in a job's file source", "--step"):
            assert option in msg, option
    # the options the message names accept it
    assert Dataset.from_frame(off_grid(200, 3), resample="mean").report.moved == 3


def test_auto_counts_rows_off_the_grid_most_rows_share() -> None:
    """The first row is the stray one: auto judges against the grid of most rows."""
    df = frame(n=150)
    df.loc[0, "timestamp"] += pd.Timedelta("1min")
    ds = Dataset.from_frame(df)
    assert ds.report is not None and ds.report.moved == 1 and len(ds) == 150
    assert ds.frame["timestamp"].iloc[0] == pd.Timestamp("2026-01-01", tz="UTC")
    df.loc[[1, 2], "timestamp"] += pd.Timedelta("1min")
    with pytest.raises(DataError, match=r"2026-01-01T00:01:00Z \(row 0\) is not on the 5min "
                       r"grid most rows are on \(through 2026-01-01T00:00:00Z\) \(3 of 150 "
                       r"rows are off it; --resample auto"):
        Dataset.from_frame(df)


def test_auto_moves_jittered_rows_to_their_nearest_grid_point() -> None:
    """Scrape jitter (each row a few seconds early or late) is not an irregular step: auto
    puts every row on its own grid point, so nothing merges and no step is left empty (an
    early row bucketed into the step before would leave its own step to the gap filler)."""
    df = frame(n=288, step="30s")
    rng = np.random.default_rng(0)
    jitter = rng.integers(-3, 4, size=len(df))  # whole seconds, within a tenth of 30 s
    df["timestamp"] += pd.to_timedelta(jitter, unit="s")
    ds = Dataset.from_frame(df)
    rep = ds.report
    assert rep is not None and ds.step == pd.Timedelta("30s")
    assert rep.snapped == int((jitter != 0).sum()) and rep.moved == rep.merged == 0
    assert rep.filled_points == 0 and rep.rows_out == len(ds) == len(df)
    want = frame(n=288, step="30s")
    assert (ds.frame["timestamp"].to_numpy() == want["timestamp"].to_numpy()).all()
    np.testing.assert_array_equal(ds.frame["cpu"].to_numpy(), want["cpu"].to_numpy())
    (line,) = [x for x in rep.lines() if x.startswith("jitter:")]
    assert f"{rep.snapped} rows within 10% of a step of a 30s grid point moved to it" in line
    # the explicit policies keep their meaning: error refuses, mean buckets [t, t + step)
    with pytest.raises(DataError, match="irregular time step"):
        Dataset.from_frame(df, resample="error")
    bucketed = Dataset.from_frame(df, resample="mean").report
    assert bucketed.snapped == 0 and bucketed.merged > 0  # early rows fell into the step before


def test_millisecond_jitter_gives_the_step_to_the_second_and_a_whole_second_grid() -> None:
    """No two differences are equal when times carry milliseconds: the step is the median
    difference to the second, the grid keeps whole seconds, and every row is kept."""
    df = frame(n=400, step="15s")
    rng = np.random.default_rng(1)
    df["timestamp"] += pd.to_timedelta(rng.normal(0.0, 300.0, len(df)).round(), unit="ms")
    ds = Dataset.from_frame(df)
    rep = ds.report
    assert rep is not None and rep.step_inferred and rep.step_jitter
    assert ds.step == pd.Timedelta("15s") and len(ds) == 400 and rep.merged == 0
    assert (ds.frame["timestamp"].dt.microsecond == 0).all()
    assert ds.frame["timestamp"].iloc[0] == pd.Timestamp("2026-01-01", tz="UTC")
    assert rep.lines()[0].startswith("step 15s (the median difference between rows, to the "
                                     "second: their times jitter;")


def test_rows_far_from_the_grid_are_not_jitter() -> None:
    """Times spread over the whole step are irregular, not jittered: auto still refuses."""
    df = frame(n=200)
    rng = np.random.default_rng(2)
    df["timestamp"] += pd.to_timedelta(rng.integers(0, 300, len(df)), unit="s")
    with pytest.raises(DataError, match=r"--resample auto only resamples when at most 1% .*"
                       r"within 10% of a step of a grid point"):
        Dataset.from_frame(df, step="5min")


@pytest.mark.parametrize(("how", "expected"), [("mean", 0.25), ("last", 0.3)])
def test_resample_fixes_irregular_steps(how: str, expected: float) -> None:
    ts = pd.to_datetime(["2026-01-01T00:00Z", "2026-01-01T00:05Z", "2026-01-01T00:07Z",
                         "2026-01-01T00:10Z", "2026-01-01T00:15Z"])
    df = pd.DataFrame({"timestamp": ts, "cpu": [0.1, 0.2, 0.3, 0.4, 0.5]})
    ds = Dataset.from_frame(df, step="5min", resample=how)
    assert ds.frame["timestamp"].diff().dropna().eq(pd.Timedelta("5min")).all()
    assert ds.frame["cpu"].tolist() == pytest.approx([0.1, expected, 0.4, 0.5])


def test_resample_keeps_labels_any_anomalous_and_last_type() -> None:
    ts = pd.to_datetime(["2026-01-01T00:00Z", "2026-01-01T00:05Z", "2026-01-01T00:06Z",
                         "2026-01-01T00:08Z", "2026-01-01T00:10Z"])
    df = pd.DataFrame({"timestamp": ts, "cpu": [0.1, 0.2, 0.3, 0.4, 0.5],
                       "is_anomaly": [0, 1, 0, 1, 0],
                       "anomaly_type": ["", "spike", "", "dip", ""]})
    ds = Dataset.from_frame(df, step="5min", resample="last")
    assert ds.frame["is_anomaly"].tolist() == [0, 1, 0]
    assert ds.frame["anomaly_type"].tolist() == ["", "dip", ""]


def test_resample_buckets_are_epoch_aligned_for_all_entities() -> None:
    a = pd.DataFrame({"timestamp": pd.to_datetime(["2026-01-01T00:01Z", "2026-01-01T00:04Z",
                                                   "2026-01-01T00:12Z"]), "entity": "a",
                      "cpu": [1.0, 2.0, 3.0]})
    ds = Dataset.from_frame(a, step="5min", resample="mean")
    assert ds.frame["timestamp"].dt.strftime("%H:%M").tolist() == ["00:00", "00:05", "00:10"]
    assert ds.frame["cpu"].tolist() == [1.5, 1.5, 3.0]  # 00:05 empty: held by ffill


def test_nan_is_filled_by_ffill_and_interpolate() -> None:
    df = frame()
    df.loc[[2, 3], "cpu"] = np.nan
    ff = Dataset.from_frame(df)
    it = Dataset.from_frame(df, gap_policy="interpolate")
    assert ff.frame["cpu"].tolist()[1:5] == [0.2, 0.2, 0.2, 0.5]
    assert it.frame["cpu"].tolist()[1:5] == pytest.approx([0.2, 0.3, 0.4, 0.5])


def test_missing_rows_are_filled_on_the_grid() -> None:
    df = frame(n=8).drop(index=[3, 4]).reset_index(drop=True)
    ds = Dataset.from_frame(df)
    assert len(ds) == 8
    assert ds.frame["cpu"].iloc[3] == ds.frame["cpu"].iloc[2]


def test_nan_with_error_policy_errors() -> None:
    df = frame()
    df.loc[2, "mem"] = np.nan
    with pytest.raises(DataError, match=r"metric 'mem' has 1 missing value.*2026-01-01T00:10:00Z"):
        Dataset.from_frame(df, gap_policy="error")


def test_long_gap_errors() -> None:
    df = frame(n=50)
    df.loc[10:49 - 2, "cpu"] = np.nan
    with pytest.raises(DataError, match=r"metric 'cpu' has a gap of 38 steps.*max_gap_steps=36"):
        Dataset.from_frame(df)
    assert len(Dataset.from_frame(df, max_gap_steps=40)) == 50


def test_interpolate_holds_a_trailing_gap() -> None:
    df = frame()
    df.loc[[4, 5], "cpu"] = np.nan
    ds = Dataset.from_frame(df, gap_policy="interpolate")
    assert np.isfinite(ds.frame["cpu"]).all()
    assert ds.frame["cpu"].iloc[-1] == ds.frame["cpu"].iloc[3]


def test_leading_nan_rows_trimmed_within_limit() -> None:
    df = frame()
    df.loc[[0, 1], "cpu"] = np.nan
    ds = Dataset.from_frame(df)
    assert len(ds) == 4 and ds.frame["timestamp"].iloc[0] == df["timestamp"].iloc[2]
    with pytest.raises(DataError, match=r"no values for the first 2 steps"):
        Dataset.from_frame(df, max_gap_steps=1)


def test_all_nan_metric_is_named() -> None:
    df = frame()
    df["mem"] = np.nan
    with pytest.raises(DataError, match=r"entity 'a': metric 'mem' has no values at all"):
        Dataset.from_frame(df)


def test_infinite_value_rejected() -> None:
    df = frame()
    df.loc[4, "cpu"] = np.inf
    with pytest.raises(DataError, match=r"metric 'cpu' has 1 infinite value.*row 4"):
        Dataset.from_frame(df)


def test_constant_series_detected() -> None:
    df = frame()
    df["mem"] = 0.5
    ds = Dataset.from_frame(df)
    assert ds.check_not_constant() == {"a": ["mem"]}  # kept by default: no refusal
    with pytest.raises(DataError, match=r"metric 'mem' of entity 'a' is constant"):
        ds.check_not_constant(policy="error")
    assert Dataset.from_frame(frame()).check_not_constant(policy="error") == {}


def test_blank_and_missing_entity_rejected() -> None:
    df = frame()
    df.loc[2, "entity"] = "  "
    with pytest.raises(DataError, match=r"'entity' is blank in row 2"):
        Dataset.from_frame(df)
    df.loc[2, "entity"] = None
    with pytest.raises(DataError, match=r"'entity' is empty in row 2"):
        Dataset.from_frame(df)


def test_entity_names_kept_verbatim() -> None:
    df = pd.concat([frame(entity="007"), frame(entity="eks-prod/eu west")], ignore_index=True)
    assert Dataset.from_frame(df).entities == ("007", "eks-prod/eu west")


def test_duplicate_column_names_rejected() -> None:
    df = frame()
    df.columns = ["timestamp", "entity", "cpu", "cpu"]
    with pytest.raises(DataError, match=r"column name\(s\) \['cpu'\] appear more than once"):
        Dataset.from_frame(df)


def test_reserved_name_as_metric_rejected() -> None:
    with pytest.raises(DataError, match=r"cannot be metrics"):
        Dataset.from_frame(frame(is_anomaly=[0] * 6), metrics=["cpu", "is_anomaly"])


def test_bad_options_raise_config_error() -> None:
    with pytest.raises(ConfigError, match=r"gap_policy must be one of"):
        Dataset.from_frame(frame(), gap_policy="drop")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"resample must be one of"):
        Dataset.from_frame(frame(), resample="median")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"max_gap_steps must be an integer"):
        Dataset.from_frame(frame(), max_gap_steps=-1)
    with pytest.raises(ConfigError, match=r"step 'soon' is not a duration"):
        Dataset.from_frame(frame(), step="soon")


def test_step_inferred_across_entities_when_one_has_a_single_row() -> None:
    df = pd.concat([frame(n=1, entity="a"), frame(n=4, entity="b")], ignore_index=True)
    ds = Dataset.from_frame(df)
    assert ds.step == pd.Timedelta("5min") and len(ds.select("a")) == 1
    with pytest.raises(DataError, match=r"single row; cannot infer the time step"):
        Dataset.from_frame(frame(n=1))


# ---------------------------------------------------------------- labels
def test_labels_validated_and_normalised() -> None:
    ds = Dataset.from_frame(frame(is_anomaly=[0, 1, 1, 0, 0, 0]))
    assert ds.frame["anomaly_type"].tolist()[:3] == ["", "unknown", "unknown"]
    assert ds.frame["is_anomaly"].dtype == np.int8
    with pytest.raises(DataError, match=r"'is_anomaly' must be 0 or 1.*row 2 has 2"):
        Dataset.from_frame(frame(is_anomaly=[0, 1, 2, 0, 0, 0]))
    with pytest.raises(DataError, match=r"row 0 has is_anomaly=0 but anomaly_type 'spike'"):
        Dataset.from_frame(frame(is_anomaly=[0] * 6, anomaly_type=["spike"] + [""] * 5))


def test_anomaly_type_alone_implies_labels() -> None:
    ds = Dataset.from_frame(frame(anomaly_type=["", "dip", "", "", "", ""]))
    assert ds.has_labels and ds.frame["is_anomaly"].tolist() == [0, 1, 0, 0, 0, 0]


def test_filled_rows_inside_an_anomaly_keep_its_label() -> None:
    df = frame(n=10, is_anomaly=[0, 0, 1, 1, 1, 1, 0, 0, 0, 0],
               anomaly_type=["", "", "s", "s", "s", "s", "", "", "", ""])
    ds = Dataset.from_frame(df.drop(index=[3, 4, 7]).reset_index(drop=True))
    assert ds.frame["is_anomaly"].tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    assert ds.frame["anomaly_type"].tolist()[2:6] == ["s"] * 4


# ---------------------------------------------------------------- accessors
def test_slice_time_accepts_naive_strings_and_select_a_name() -> None:
    df = pd.concat([frame(entity="a"), frame(entity="b")], ignore_index=True)
    ds = Dataset.from_frame(df)
    part = ds.slice_time("2026-01-01 00:05", "2026-01-01T00:15Z")
    assert len(part.select("a")) == 2 and part.entities == ("a", "b")
    assert ds.select("b").entities == ("b",)
    with pytest.raises(DataError, match=r"unknown entities \['c'\]"):
        ds.select(["c"])
    with pytest.raises(DataError, match=r"slice_time: start: cannot read 'not a time' as a time"):
        ds.slice_time("not a time")


def test_interleaved_entities_are_grouped_shuffled_time_rejected() -> None:
    a, b = frame(entity="a"), frame(entity="b")
    inter = pd.concat([a, b]).sort_values("timestamp", kind="stable").reset_index(drop=True)
    assert Dataset.from_frame(inter).frame.equals(
        Dataset.from_frame(pd.concat([a, b], ignore_index=True)).frame)
    shuffled = a.sample(frac=1, random_state=3).reset_index(drop=True)
    with pytest.raises(DataError, match=r"timestamps are not increasing"):
        Dataset.from_frame(shuffled)
