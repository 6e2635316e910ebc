"""Dataset.subset / Dataset.concat / Dataset.checked: the validated ways to take part of a
dataset, put parts together, or wrap a frame built in the contract's shape. Every result keeps
the invariants (Dataset.check) and every bad request is one DataError naming the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_anomaly.data import Dataset
from aws_anomaly.errors import DataError

METRICS = ("cpu", "mem", "pods")


def make(lengths: dict[str, int], step: str = "5min", labels: bool = True,
         seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    parts = []
    for i, (e, n) in enumerate(lengths.items()):
        ts = pd.date_range("2026-01-01", periods=n, freq=step, tz="UTC") + pd.Timedelta(
            step) * i  # entities start at different times
        part = pd.DataFrame({"timestamp": ts, "entity": e})
        for m in METRICS:
            part[m] = rng.normal(size=n)
        if labels:
            part["is_anomaly"] = (rng.random(n) < 0.1).astype(int)
        parts.append(part)
    return Dataset.from_frame(pd.concat(parts, ignore_index=True), step=step)


@st.composite
def datasets_and_runs(draw: st.DrawFn) -> tuple[Dataset, np.ndarray]:
    """A dataset and a row mask keeping one run of consecutive rows (maybe none) per entity."""
    n_ent = draw(st.integers(1, 4))
    lengths = {f"e{i}": draw(st.integers(1, 12)) for i in range(n_ent)}
    step = draw(st.sampled_from(["30s", "5min", "1h"]))
    ds = make(lengths, step=step, labels=draw(st.booleans()), seed=draw(st.integers(0, 99)))
    mask = np.zeros(len(ds), dtype=bool)
    offset = 0
    for n in lengths.values():
        a = draw(st.integers(0, n))
        b = draw(st.integers(a, n))
        mask[offset + a:offset + b] = True
        offset += n
    return ds, mask


def same_dtypes(a: Dataset, b: Dataset) -> bool:
    return all(a.frame[c].dtype == b.frame[c].dtype for c in a.frame.columns)


@given(datasets_and_runs())
@settings(max_examples=40, deadline=None)
def test_a_run_per_entity_keeps_the_invariants_rows_and_dtypes(case: tuple) -> None:
    ds, mask = case
    for rows in (mask, np.flatnonzero(mask)):
        part = ds.subset(rows)
        part.check("property")  # raises when an invariant is broken
        assert same_dtypes(part, ds) and part.metrics == ds.metrics and part.step == ds.step
        expected = ds.frame.loc[mask].reset_index(drop=True)
        pd.testing.assert_frame_equal(part.frame, expected)


@given(datasets_and_runs(), st.data())
@settings(max_examples=40, deadline=None)
def test_a_gap_inside_an_entity_is_refused_naming_it(case: tuple, data: st.DataObject) -> None:
    ds, _ = case
    ent = ds.frame["entity"].to_numpy()
    long = [e for e in ds.entities if (ent == e).sum() >= 3]
    if not long:
        return
    e = data.draw(st.sampled_from(long))
    rows = np.flatnonzero(ent == e)
    hole = data.draw(st.integers(1, len(rows) - 2))
    mask = ent == e
    mask[rows[hole]] = False
    with pytest.raises(DataError, match=rf"^cut: the rows keep .* of entity '{e}' but not the 1 "
                                        r"row\(s\) between; a dataset has no gaps"):
        ds.subset(mask, where="cut")


@given(datasets_and_runs(), st.data())
@settings(max_examples=40, deadline=None)
def test_filters_combine_and_match_plain_pandas(case: tuple, data: st.DataObject) -> None:
    ds, mask = case
    f = ds.frame
    entities = data.draw(st.lists(st.sampled_from(ds.entities), min_size=1, unique=True))
    t0, t1 = f["timestamp"].min(), f["timestamp"].max()
    start = data.draw(st.sampled_from([None, t0, t0 + (t1 - t0) / 3]))
    end = data.draw(st.sampled_from([None, t1, t0 + (t1 - t0) * 2 / 3]))
    metrics = data.draw(st.permutations(METRICS).flatmap(
        lambda p: st.integers(1, 3).map(lambda k: list(p[:k]))))
    labels = data.draw(st.booleans())
    part = ds.subset(mask, entities=entities, start=start, end=end, metrics=metrics,
                     labels=labels)
    part.check("property")
    keep = mask & f["entity"].isin(entities).to_numpy()
    if start is not None:
        keep &= (f["timestamp"] >= start).to_numpy()
    if end is not None:
        keep &= (f["timestamp"] < end).to_numpy()
    cols = ["timestamp", "entity", *metrics] + (
        [c for c in ("is_anomaly", "anomaly_type") if c in f.columns] if labels else [])
    pd.testing.assert_frame_equal(part.frame, f.loc[keep, cols].reset_index(drop=True))
    assert part.metrics == tuple(metrics) and part.has_labels == (labels and ds.has_labels)


def test_a_slice_is_taken_without_copying_the_checks() -> None:
    ds = make({"a": 6, "b": 6})
    part = ds.subset(slice(4, 8))
    assert part.frame["entity"].tolist() == ["a", "a", "b", "b"]
    part.check()
    assert len(ds.subset(slice(8, 3))) == 0  # an empty slice is an empty dataset
    assert ds.subset().frame.equals(ds.frame) and ds.subset().report is ds.report


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((np.ones(5, dtype=bool),), {}, r"^x: the row mask has 5 values for 12 rows$"),
    (([3, 2],), {}, r"^x: row positions must increase without repeats .*: 2 comes after 3$"),
    (([1, 1],), {}, r"row positions must increase without repeats"),
    (([0, 12],), {}, r"^x: row position 12 is outside the 12 rows$"),
    (([-1],), {}, r"^x: row position -1 is outside the 12 rows$"),
    (([0.5],), {}, r"^x: rows must be a boolean mask, row positions or a slice, got float64"),
    ((np.ones((2, 6), dtype=bool),), {}, r"^x: rows must be one-dimensional"),
    ((slice(0, 6, 2),), {}, r"^x: a slice of rows with a step of 2 leaves gaps"),
    ((), {"entities": ["a", "zz"]}, r"^x: unknown entities \['zz'\]; entities are \['a', 'b'\]$"),
    ((), {"metrics": ["cpu", "disk"]},
     r"^x: unknown metric\(s\) \['disk'\]; the dataset has \['cpu', 'mem', 'pods'\]$"),
    ((), {"metrics": []}, r"^x: no metrics; keep at least one of"),
    ((), {"metrics": ["cpu", "cpu"]}, r"^x: metric\(s\) \['cpu'\] named more than once$"),
    ((), {"start": "soon"}, r"^x: start: cannot read 'soon' as a time"),
    ((), {"end": True}, r"^x: end: True is not a time"),
])
def test_bad_slices_are_one_clear_error(args: tuple, kwargs: dict, message: str) -> None:
    ds = make({"a": 6, "b": 6})
    with pytest.raises(DataError, match=message):
        ds.subset(*args, where="x", **kwargs)


def test_concat_puts_a_chronological_split_back_and_refuses_overlap_or_gap() -> None:
    ds = make({"a": 10, "b": 10})
    head, tail = ds.split_tail(0.3)
    back = Dataset.concat([tail, head])
    pd.testing.assert_frame_equal(back.frame, ds.frame)
    with pytest.raises(DataError, match=r"^concat: entity 'a' jumps from .* \(row 7\): it "
                                        r"repeats; a dataset's rows are one step \(5min\) apart"):
        Dataset.concat([head, head.subset(entities="a").subset(slice(6, 7))])
    gap = tail.subset(ds_rows_after(tail, "a", 1))
    with pytest.raises(DataError, match=r"entity 'a' jumps from .*: it skips 1 step\(s\)"):
        Dataset.concat([head, gap])
    with pytest.raises(DataError, match=r"^concat: cannot concatenate datasets with metrics "
                                        r"\['cpu', 'mem', 'pods'\] / step 5min and \['cpu'\]"):
        Dataset.concat([head, tail.subset(metrics=["cpu"])])
    with pytest.raises(DataError, match=r"some parts have labels"):
        Dataset.concat([head, tail.subset(labels=False)])
    with pytest.raises(DataError, match=r"^concat: nothing to concatenate$"):
        Dataset.concat([])


def ds_rows_after(ds: Dataset, entity: str, skip: int) -> np.ndarray:
    """A mask without the first ``skip`` rows of ``entity`` (still consecutive)."""
    ent = ds.frame["entity"].to_numpy()
    mask = np.ones(len(ds), dtype=bool)
    mask[np.flatnonzero(ent == entity)[:skip]] = False
    return mask


def test_checked_refuses_a_frame_outside_the_contract() -> None:
    ds = make({"a": 4, "b": 4})
    f, step = ds.frame, ds.step

    def refuse(frame: pd.DataFrame, message: str, metrics: tuple = METRICS) -> None:
        with pytest.raises(DataError, match=message):
            Dataset.checked(frame, metrics=metrics, step=step, where="demo")

    assert Dataset.checked(f, metrics=METRICS, step=step).frame is f
    nan = f.copy()
    nan.loc[5, "mem"] = np.nan
    refuse(nan, r"^demo: metric 'mem' of entity 'b' at 2026-01-01T00:10:00Z is nan; a "
                r"dataset's values are finite$")
    refuse(f.drop(columns="pods"), r"^demo: missing column\(s\) \['pods'\]")
    refuse(f.assign(timestamp=f["timestamp"].dt.tz_localize(None)),
           r"^demo: column 'timestamp' is datetime64\[ns\], not datetime64\[ns, UTC\]$")
    refuse(f.assign(cpu=f["cpu"].astype(np.float32)), r"metric column 'cpu' is float32")
    refuse(f.iloc[[4, 5, 6, 7, 0, 1, 2, 3]].reset_index(drop=True),
           r"^demo: entities are not in name order: 'a' at row 4 comes after 'b'$")
    refuse(f.iloc[[0, 1, 4, 5, 2, 3, 6, 7]].reset_index(drop=True),
           r"^demo: rows are not grouped by entity: entity 'a' appears again at row 4$")
    refuse(f.iloc[[0, 2, 3, 4, 5, 6, 7]].reset_index(drop=True),
           r"^demo: entity 'a' jumps from 2026-01-01T00:00:00Z to 2026-01-01T00:10:00Z \(row 1\)"
           r": it skips 1 step\(s\)")
    refuse(f.iloc[[1, 0, 2, 3, 4, 5, 6, 7]].reset_index(drop=True), r"\(row 1\): it goes back")
    off = f.copy()
    off.loc[2, "timestamp"] += pd.Timedelta("1min")
    refuse(off, r"\(row 2\): it is off the 5min grid")
    refuse(f.assign(is_anomaly=f["is_anomaly"] * 2),
           r"^demo: column 'is_anomaly' must be int8 0/1")
    refuse(f, r"^demo: metric\(s\) \['cpu'\] named more than once$", ("cpu", "cpu"))
    refuse(f, r"^demo: \['entity'\] cannot be metrics", ("entity",))


def test_the_former_raw_constructions_now_keep_the_contract() -> None:
    """The slicing methods, the demo generator and the anomaly injector go through subset /
    checked; splits are put back together by concat. (scale.tasks.entity_parts, also a subset
    now, is run by tests/integration/test_scale_dask.py.)"""
    from aws_anomaly.data.anomalies import inject_anomalies
    from aws_anomaly.data.generator import generate_demo
    from aws_anomaly.evaluation.split import chronological_split, concat

    ds, _ = generate_demo(clusters=2, days=2, seed=1)
    injected, events = inject_anomalies(ds.subset(labels=False), n_events=1, seed=0)
    injected.check()
    assert len(events) == 2
    split = chronological_split(ds, (0.6, 0.2, 0.2))
    for part in (split.train, split.validation, split.test):
        part.check()
    pd.testing.assert_frame_equal(concat([split.train, split.validation, split.test]).frame,
                                  ds.frame)
    for e in ds.entities:
        assert ds.select(e).check().entities == (e,)
    head, tail = ds.split_tail(0.25)
    assert len(head) + len(tail) == len(ds) and head.check() and tail.check()
    flat = ds.subset(metrics=list(ds.metrics[:2]))
    flat.frame[ds.metrics[1]] = 0.5  # a constant metric: drop_constant takes it out
    assert flat.drop_constant(warn=False).check().metrics == ds.metrics[:1]


# Files that still call the raw constructor (issue 12, item 3: none since 2026-12-02, when
# model.py's reordering of a dataset's metrics became ``subset(metrics=...)``). No file may
# join it.
RAW_CONSTRUCTOR_LEFT: set[str] = set()


def test_nothing_new_calls_the_raw_constructor() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "src" / "aws_anomaly"
    found: dict[str, list[int]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "data/dataset.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and (
                    (isinstance(node.func, ast.Name) and node.func.id == "Dataset")
                    or (isinstance(node.func, ast.Attribute) and node.func.attr == "Dataset")):
                found.setdefault(rel, []).append(node.lineno)
    new = {f: lines for f, lines in found.items() if f not in RAW_CONSTRUCTOR_LEFT}
    assert not new, (f"Dataset(...) called directly in {new}; use Dataset.from_frame, "
                     "ds.subset, Dataset.concat or Dataset.checked (docs/architecture.md)")
