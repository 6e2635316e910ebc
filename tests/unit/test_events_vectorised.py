"""merge_events' one-pass (numpy over all entities) path against the per-entity implementation
it replaced, kept here as the oracle: the same events, field for field, on random inputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aws_anomaly.events import AnomalyEvent, _build, _combine, merge_events

T0 = pd.Timestamp("2026-03-01T00:00Z")
STEP = pd.Timedelta("5min")


def _infer_step(ts: pd.DatetimeIndex) -> pd.Timedelta | None:
    if len(ts) < 2:
        return None
    d = np.diff(ts.as_unit("ns").asi8)
    d = d[d > 0]
    if len(d) == 0:
        return None
    vals, counts = np.unique(d, return_counts=True)
    return pd.Timedelta(int(vals[np.argmax(counts)]), unit="ns")


def oracle(scores: pd.DataFrame, *, max_gap_steps: int = 2, step=None, previous=None,
           threshold=None, job: str = "", model: str = "") -> list[AnomalyEvent]:
    """merge_events as it was: a pandas group per entity and a Python loop over its points."""
    previous = dict(previous or {})
    fixed_step = pd.Timedelta(step) if step is not None else None
    contrib_cols = [c for c in scores.columns if c.startswith("contrib_")]
    dev_cols = [c for c in scores.columns if c.startswith("dev_")]
    out: list[AnomalyEvent] = []
    for entity, g in scores.groupby("entity", sort=True):
        entity = str(entity)
        g = g.sort_values("timestamp")
        ts = pd.DatetimeIndex(g["timestamp"])
        ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
        score = g["anomaly_score"].to_numpy(dtype=np.float64)
        if threshold is None:
            flag = g["is_anomaly"].to_numpy(dtype=bool).copy()
        else:
            thr = (threshold.get(entity, 1.0) if isinstance(threshold, Mapping)
                   else float(threshold))
            flag = score >= thr
        if "ready" in g.columns:
            flag &= g["ready"].to_numpy(dtype=bool)
        flag &= np.isfinite(score)
        ent_step = fixed_step or _infer_step(ts)
        gap = (ent_step * (max_gap_steps + 1)) if ent_step is not None else pd.Timedelta(0)
        last_ts = ts[-1]
        contrib = g[contrib_cols].to_numpy(dtype=np.float64) if contrib_cols else None
        devs = g[dev_cols].to_numpy(dtype=np.float64) if dev_cols else None
        runs: list[list[int]] = []
        for i in np.flatnonzero(flag):
            if runs and ts[i] - ts[runs[-1][-1]] <= gap:
                runs[-1].append(int(i))
            else:
                runs.append([int(i)])
        prev = previous.pop(entity, None)
        for k, run in enumerate(runs):
            ev = _build(entity, ts, score, contrib, contrib_cols, devs, dev_cols, run, job, model)
            if k == 0 and prev is not None and prev.status == "open" and (
                    ev.start - prev.end <= gap):
                ev = _combine(prev, ev)
                prev = None
            closed = last_ts - ev.end >= gap and ent_step is not None
            out.append(replace(ev, status="closed" if closed else "open"))
        if (prev is not None and prev.status == "open" and ent_step is not None
                and last_ts - prev.end >= gap):
            out.append(replace(prev, status="closed"))
    return sorted(out, key=lambda e: (e.entity, e.start))


@st.composite
def frames(draw):
    """Scores of 1-4 entities in shuffled row order: points on a 5-minute grid with holes (or on
    a per-entity odd grid), scores around the threshold with NaN, optional ``ready``,
    ``contrib_*`` and ``dev_*`` columns."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_ent = draw(st.integers(1, 4))
    with_ready = draw(st.booleans())
    n_contrib = draw(st.integers(0, 2))
    n_dev = draw(st.integers(0, 2))
    parts = []
    for j in range(n_ent):
        n = int(rng.integers(0, 30))
        unit = STEP if rng.random() < 0.7 else pd.Timedelta(minutes=int(rng.integers(1, 11)))
        pos = np.sort(rng.choice(np.arange(60), size=n, replace=False)) if n else np.arange(0)
        score = rng.choice([0.1, 0.5, 0.99, 1.0, 1.2, 2.0, 3.5], size=n) * rng.uniform(0.9, 1.1)
        score[rng.random(n) < 0.05] = np.nan
        df = pd.DataFrame({
            "timestamp": T0 + unit * pos, "entity": f"eks-{'bca'[j % 3]}{j}",
            "anomaly_score": score, "is_anomaly": rng.random(n) < 0.4})
        if with_ready:
            df["ready"] = rng.random(n) < 0.85
        for c in range(n_contrib):
            df[f"contrib_m{c}"] = rng.random(n)
        for c in range(n_dev):
            v = rng.normal(size=n) * 4
            v[rng.random(n) < 0.2] = np.nan
            df[f"dev_m{c}"] = v
        parts.append(df)
    s = pd.concat(parts, ignore_index=True)
    return s.iloc[rng.permutation(len(s))].reset_index(drop=True)


def _same(a: list[AnomalyEvent], b: list[AnomalyEvent]) -> None:
    assert [e.to_dict() for e in a] == [e.to_dict() for e in b]
    assert a == b  # weight, the Timestamps' own equality and everything else


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=frames(), gap=st.integers(0, 3), step=st.sampled_from([None, STEP, "10min"]),
       thr=st.sampled_from(["none", "one", "map"]), cut=st.floats(0.2, 0.8))
def test_one_pass_equals_the_per_entity_oracle(s, gap, step, thr, cut):
    threshold = {"none": None, "one": 1.0,
                 "map": {"eks-b0": 1.2, "eks-a2": 0.5}}[thr]
    kw = {"max_gap_steps": gap, "step": step, "threshold": threshold, "job": "j", "model": "m"}
    _same(merge_events(s, **kw), oracle(s, **kw))
    # continuing: the earlier part's open events passed as `previous` to the later part
    t_cut = T0 + (s["timestamp"].max() - T0) * cut if len(s) else T0
    early, late = s[s["timestamp"] <= t_cut], s[s["timestamp"] > t_cut]
    prev = {e.entity: e for e in oracle(early, **kw) if e.status == "open"}
    _same(merge_events(late, previous=prev, **kw), oracle(late, previous=prev, **kw))


def test_naive_timestamps_and_an_empty_frame_match_the_oracle():
    s = pd.DataFrame({"timestamp": pd.date_range("2026-03-01", periods=6, freq="5min"),
                      "entity": ["b", "a"] * 3, "anomaly_score": [2.0, 1.5, 0.1, 1.1, 3.0, 0.2],
                      "is_anomaly": [True, True, False, True, True, False]})
    evs = merge_events(s, max_gap_steps=0)
    assert evs and all(e.start.tz is not None for e in evs)
    _same(evs, oracle(s, max_gap_steps=0))
    _same(merge_events(s.iloc[:0]), [])
