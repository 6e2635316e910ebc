"""The drift window's running counts against the recomputation over the window's rows that they
replaced (kept here as the oracle): the same figures after every tick, on random ticks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aws_anomaly.data import Dataset
from aws_anomaly.retrain import (
    PSI_BINS,
    REGISTRY_KEY,
    Drift,
    _DriftWindow,
    input_reference,
    population_stability,
    reference_of,
)

T0 = pd.Timestamp("2026-03-01T00:00Z")
STEP = pd.Timedelta("5min")
METRICS = ["cpu", "mem", "net"]


def oracle_measure(model, recent: pd.DataFrame, metrics) -> Drift:
    """Retrainer._measure as it was: everything recomputed over the window's rows."""
    from scipy.stats import binom

    ref = reference_of(model)
    ready = recent["ready"].to_numpy(dtype=bool)
    n = int(ready.sum())
    k = int(recent["is_anomaly"].to_numpy(dtype=bool)[ready].sum())
    d = Drift(points=n, flagged=k)
    held = ref.get("held_back") or {}
    if n and held.get("points"):
        p0 = (float(held["flagged"]) + 0.5) / (float(held["points"]) + 1.0)
        d.expected_share = p0
        d.alert_rate_ratio = (k / n) / p0
        d.p_value = float(binom.sf(k - 1, n, p0)) if k else 1.0
    inputs = ref.get("inputs") or {}
    sums: dict[str, list[float]] = {}
    for entity, g in recent.groupby("entity", sort=False):
        per = inputs.get(str(entity))
        if not per or len(g) < 2 * PSI_BINS:
            continue
        for m in metrics:
            if m in per:
                x = g[f"value_{m}"].to_numpy(dtype=np.float64)
                sums.setdefault(m, []).append(population_stability(per[m], x))
    d.psi = {m: round(float(np.mean(v)), 6) for m, v in sums.items()}
    return d


def oracle_step(recent, scores, model, window):
    metrics = [m for m in model.metrics_ if f"value_{m}" in scores.columns]
    cols = ["timestamp", "entity", "ready", "is_anomaly", *[f"value_{m}" for m in metrics]]
    recent = scores[cols] if recent is None else pd.concat([recent, scores[cols]],
                                                           ignore_index=True)
    recent = recent[recent["timestamp"] > recent["timestamp"].max() - window]
    recent = recent.reset_index(drop=True)
    return recent, oracle_measure(model, recent, metrics)


def fake_model(rng, entities, held):
    """A stand-in with what the drift check reads: ``metrics_`` and the stamped reference
    (built by the real ``input_reference`` from random training rows, some of them with few
    distinct values so that edges merge)."""
    rows = []
    for e in entities:
        v = rng.normal(size=(60, 3)) * rng.uniform(0.5, 3, 3)
        v[:, 2] = np.round(v[:, 2]) if rng.random() < 0.5 else v[:, 2]
        if rng.random() < 0.2:
            v[:, 1] = 1.0  # constant: left out of the reference
        rows.append(pd.DataFrame({"timestamp": T0 - STEP * np.arange(60, 0, -1), "entity": e,
                                  **{m: v[:, i] for i, m in enumerate(METRICS)}}))
    ds = Dataset.from_frame(pd.concat(rows, ignore_index=True))
    ref = {"inputs": input_reference(ds, METRICS)}
    if held:
        ref["held_back"] = {"points": int(rng.integers(100, 1000)), "flagged": 7}
    order = list(rng.permutation(METRICS))
    return SimpleNamespace(metrics_=order, metadata={REGISTRY_KEY: {"version": "1",
                                                                   "reference": ref}})


def tick(rng, t, names, lookback):
    parts = []
    for e in names:
        n = lookback if lookback else int(rng.integers(1, 3))
        v = rng.normal(size=(n, 3)) * 2 + rng.normal(scale=0.5)
        v[rng.random((n, 3)) < 0.05] = np.nan
        v[rng.random((n, 3)) < 0.02] = np.inf
        parts.append(pd.DataFrame({
            "timestamp": t - STEP * np.arange(n - 1, -1, -1), "entity": e,
            "ready": rng.random(n) < 0.9, "is_anomaly": rng.random(n) < 0.1,
            **{f"value_{m}": v[:, i] for i, m in enumerate(METRICS)}}))
    s = pd.concat(parts, ignore_index=True)
    if rng.random() < 0.1:
        s = s.drop(columns=[f"value_{rng.choice(METRICS)}"])
    return s


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), window_steps=st.integers(24, 60))
def test_running_counts_equal_the_recomputation_every_tick(seed, window_steps):
    rng = np.random.default_rng(seed)
    pool = [f"eks-{i:02d}" for i in range(12)]
    models = [fake_model(rng, pool[:8], held=True), fake_model(rng, pool[4:], held=False)]
    model = models[0]
    window = STEP * window_steps
    recent, win = None, _DriftWindow()
    t = T0
    psi_seen = 0
    for i in range(30):
        t = t + STEP * int(rng.integers(1, 4))
        names = list(rng.choice(pool, size=int(rng.integers(1, len(pool))), replace=False))
        if i in (0, 12):  # a look-back of every entity: enough points for PSI figures
            names = list(rng.permutation(pool))
        s = tick(rng, t, names, lookback=int(rng.integers(20, 40)) if i in (0, 12) else 0)
        if i == 18:
            model = models[1]  # another champion: its reference recounts the stored points
        metrics = [m for m in model.metrics_ if f"value_{m}" in s.columns]
        recent, want = oracle_step(recent, s, model, window)
        win.add(s, metrics)
        win.trim(window)
        got = win.measure(model, metrics)
        assert got.as_dict() == want.as_dict(), f"tick {i}"
        psi_seen += bool(want.psi)
    assert psi_seen  # the walk reached PSI figures (enough points per entity)
