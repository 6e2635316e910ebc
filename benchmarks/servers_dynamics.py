"""New kinds of member for the default model's score, measured on the real servers (issue 8, H9).

The default model scores a row by the mean of two nearest-neighbour distances, the *level*
view (L) and the *stationary* view (S) (docs/model.md). Both compare one row of features with
single training rows; neither sees whether the metrics *move together as they used to*. This
study measures members of other kinds, each mixed with the dumped L and S of
``benchmarks/servers_members.py`` (its dumps: no refit of the default), with the same
threshold rule (POT at risk 1e-3 on the calibration holdout's scores of the same mix) and the
bench's metrics:

* ``F``: a **dynamics** member, the multivariate lagged forecast residual. Each metric (not
  constant in training) is standardised by the fit rows' mean and deviation; a ridge
  regression predicts every standardised metric at ``t`` from all metrics at ``t - 1 .. t -
  lags`` (``lags`` = a time horizon turned into rows by the step), fit on the fit rows (the
  first 85 % of ``train.parquet``, as the kNN reference). Each metric's residual is divided by
  its residual spread on held-out rows (the model fit on the first 80 % of the fit rows,
  measured on the last 20 %; then refit on all of them), floored at 0.1 x the median spread,
  clipped at +-10 (as the stationary view), and the metrics are combined by their RMS (``rms``)
  or the mean of the 3 largest absolute residuals (``top3``); optionally the RMS over the last
  ``smooth`` of rows (a causal window; a stream keeps the last rows); ``maha``: the RMS of
  the residuals decorrelated by their held-out correlation (shrunk 0.1 towards the
  identity); ``over q``: only the smoothed ``F``'s excess over its own ``q`` quantile on the
  fit rows. Causal: row ``t`` uses rows ``<= t`` only; a stream's state is the last ``lags``
  rows.
* ``N``: a **nowcast** residual, ``F`` with each metric also explained by the *other*
  metrics at ``t`` (its own value at ``t`` left out): a move that all metrics make together
  leaves little residual, a metric that leaves its relation to the others a large one.
* ``O``: the **One-Class SVM** of ``AnomalyModel()`` (the bench's ``aws_model``: the classic
  stationary features, robust-scaled), fit on the same fit rows; its raw score on the
  holdout and the test rows, shifted by its holdout median and scaled so that its holdout
  median-to-99th-percentile range equals that of the member it joins or replaces (``(L + S) /
  2``, or ``S``), so its weight means the same on every server.

Mixes: ``(L + S + w F) / (2 + w)`` (and ``N``, ``O`` alike), ``(L + F) / 2``, ``(S + F) / 2``,
``(L + O) / 2``, ``(L + S) / 2 + w F[over q]``. Leave-one-server-out: for each held-out server,
the setting (horizon, combination, smoothing, weight) with the best mean best F1 on the other
nine, measured on it; for ``O``, the per-server difference from the default too.

``demo``: the same members on the synthetic EKS demo (seeds 0, 7, 42, 1234: what ``make run``
serves), the default fit on train + validation as ``train`` does (labelled rows left out of
the fit, the POT threshold fit on the holdout's normal points; ``F`` / ``N`` leave the
labelled rows out of their fit too), scored on the test split: best F1 and F1 at the mix's own
threshold. Its first row reproduces ``default_model``'s own score and threshold (checked at
each seed).

Usage::

    nice .venv/bin/python benchmarks/servers_dynamics.py servers --dump out/bench-members2 \\
        --cache out/h9 --per-server        # O: ~5 s-1 min a server (cached), F: seconds
    nice .venv/bin/python benchmarks/servers_dynamics.py demo --seeds 0 7 42 1234 --kinds

Results: docs/model.md ("Measured 2026-12-02 (H9)").
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

# The members study's dumps, threshold rule and summary, shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers_members import (
    choose_leave_one_out,
    evaluate,
    load_dumps,
    print_demo_tables,
    print_tables,
)

Dump = dict[str, np.ndarray]
Pair = tuple[np.ndarray, np.ndarray]
#: Relative ridge penalty: lambda = RIDGE x rows (the inputs are standardised).
RIDGE = 1e-2
#: Largest absolute scaled residual a metric contributes (as the stationary view's clip).
CLIP = 10.0
#: A metric's residual spread is at least this share of the median spread over the metrics.
SPREAD_FLOOR = 0.1
#: Shrinkage of the residuals' correlation towards the identity ("maha").
SHRINK = 0.1


# ------------------------------------------------------------------------- the forecast
def lagged(z: np.ndarray, lags: int) -> np.ndarray:
    """Row ``t`` holds ``z[t-1], .., z[t-lags]`` side by side (rows before the first repeat
    it), so row ``t`` never sees ``z[t]``.

    >>> lagged(np.arange(4.0)[:, None], 2).tolist()
    [[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [2.0, 1.0]]
    """
    n, m = z.shape
    pad = np.vstack([np.repeat(z[:1], lags, axis=0), z])
    return np.hstack([pad[lags - k:lags - k + n] for k in range(1, lags + 1)]).reshape(n, m * lags)


def ridge(X: np.ndarray, Y: np.ndarray, penalty: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients, intercept) of the ridge regression of ``Y`` on ``X``; the intercept is
    not penalised and the penalty is ``penalty`` x the row count."""
    mx, my = X.mean(axis=0), Y.mean(axis=0)
    Xc = X - mx
    gram = Xc.T @ Xc
    gram[np.diag_indices_from(gram)] += penalty * len(X)
    coef = np.linalg.solve(gram, Xc.T @ (Y - my))
    return coef, my - mx @ coef


def ridge_others(X: np.ndarray, Y: np.ndarray, own: Sequence[int],
                 penalty: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ridge` of each column ``j`` of ``Y`` on every column of ``X`` but ``own[j]``
    (its coefficient is 0): a metric explained without its own value at ``t``."""
    mx, my = X.mean(axis=0), Y.mean(axis=0)
    Xc = X - mx
    gram = Xc.T @ Xc
    gram[np.diag_indices_from(gram)] += penalty * len(X)
    rhs = Xc.T @ (Y - my)
    coef = np.zeros((X.shape[1], Y.shape[1]))
    for j, col in enumerate(own):
        idx = np.delete(np.arange(X.shape[1]), col)
        coef[idx, j] = np.linalg.solve(gram[np.ix_(idx, idx)], rhs[idx, j])
    return coef, my - mx @ coef


class Forecast:
    """The lagged forecast of the standardised metrics, fit on the rows ``first:stop`` of each
    segment ``(values, first, stop)`` (one entity's series; ``first`` >= ``lags``: the rows
    before are look-back only), pooled over the segments."""

    def __init__(self, segments: Sequence[tuple[np.ndarray, int, int]], lags: int,
                 penalty: float = RIDGE, skip: Sequence[np.ndarray] | None = None,
                 others: bool = False) -> None:
        # ``others``: each metric is also explained by the *other* metrics at ``t`` (a
        # "nowcast": a move that every metric makes together leaves no residual, a metric
        # that leaves its relation to the others does)
        # ``skip``: per segment, rows (boolean over its series) left out of the fit, as the
        # model leaves labelled anomalies out of its training rows
        keep_rows = [np.ones(b - a, dtype=bool) if skip is None else ~skip[i][a:b]
                     for i, (_, a, b) in enumerate(segments)]
        fit = np.vstack([v[a:b][k] for (v, a, b), k in zip(segments, keep_rows, strict=True)])
        self.mu = fit.mean(axis=0)
        sd = fit.std(axis=0)
        self.keep = sd > 1e-9 * (1.0 + np.abs(self.mu))
        if not self.keep.any():
            raise SystemExit("error: every metric is constant over the fit rows")
        self.sd = sd[self.keep]
        self.mu = self.mu[self.keep]
        self.lags, self.others = lags, others
        m = int(self.keep.sum())

        def fit(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if others:
                return ridge_others(X, Y, [m * lags + j for j in range(m)], penalty)
            return ridge(X, Y, penalty)

        parts = []   # per segment: (inputs, targets, where its held-out rows start)
        for (v, a, b), k in zip(segments, keep_rows, strict=True):
            z = self._z(v[:b])
            X, z = self._inputs(z)[a:b][k], z[a:b][k]
            parts.append((X, z, int(0.8 * len(z))))
        coef, icpt = fit(np.vstack([X[:c] for X, _, c in parts]),
                         np.vstack([z[:c] for _, z, c in parts]))
        held = np.vstack([z[c:] - (X[c:] @ coef + icpt) for X, z, c in parts])
        spread = np.sqrt(np.mean(held ** 2, axis=0))
        self.spread = np.maximum(spread, max(SPREAD_FLOOR * float(np.median(spread)), 1e-6))
        # the held-out residuals' correlation, shrunk towards the identity (its eigenvalues
        # stay >= SHRINK), for the whitened ("maha") combination
        corr = np.nan_to_num(np.atleast_2d(np.corrcoef(held / self.spread, rowvar=False)),
                             nan=0.0)
        np.fill_diagonal(corr, 1.0)
        vals, vecs = np.linalg.eigh((1.0 - SHRINK) * corr + SHRINK * np.eye(len(corr)))
        self.whiten = vecs @ np.diag(np.maximum(vals, SHRINK) ** -0.5) @ vecs.T
        self.coef, self.icpt = fit(np.vstack([X for X, _, _ in parts]),
                                   np.vstack([z for _, z, _ in parts]))

    def _z(self, values: np.ndarray) -> np.ndarray:
        return (values[:, self.keep] - self.mu) / self.sd

    def _inputs(self, z: np.ndarray) -> np.ndarray:
        return np.hstack([lagged(z, self.lags), z]) if self.others else lagged(z, self.lags)

    def residuals(self, values: np.ndarray, whiten: bool = False) -> np.ndarray:
        """(rows, kept metrics) scaled residuals of every row of ``values`` (the series from
        its first row, so every row's look-back is the rows before it), clipped at +-CLIP;
        ``whiten``: decorrelated by the held-out residuals' (shrunk) correlation first."""
        z = self._z(values)
        r = (z - (self._inputs(z) @ self.coef + self.icpt)) / self.spread
        if whiten:
            r = r @ self.whiten
        return np.clip(r, -CLIP, CLIP)


def combine(r: np.ndarray, how: str) -> np.ndarray:
    """One score a row from the per-metric residuals: ``rms`` or ``top<k>`` (mean of the k
    largest absolute ones); ``maha`` is ``rms`` of whitened residuals."""
    if how in ("rms", "maha"):
        return np.sqrt(np.mean(r ** 2, axis=1))
    k = min(int(how.removeprefix("top")), r.shape[1])
    return -np.mean(np.partition(-np.abs(r), k - 1, axis=1)[:, :k], axis=1)


def smooth_rms(x: np.ndarray, rows: int) -> np.ndarray:
    """Causal RMS of ``x`` over the last ``rows`` rows (fewer at the start)."""
    if rows <= 1:
        return x
    c = np.cumsum(np.r_[0.0, x ** 2])
    i = np.arange(len(x))
    lo = np.maximum(0, i - rows + 1)
    return np.sqrt((c[i + 1] - c[lo]) / (i + 1 - lo))


def rows_of(horizon: str, step_s: float) -> int:
    return max(1, round(pd.Timedelta(horizon).total_seconds() / step_s))


def forecast_member(d: Dump, horizon: str, how: str, smooth: str | None,
                    penalty: float = RIDGE, cache: dict | None = None,
                    tail: float | None = None, others: bool = False) -> Pair:
    """(holdout, test) of ``F`` for one server (module docstring); ``tail``: only its excess
    over its own ``tail`` quantile on the fit rows; ``others``: ``N``, the nowcast (each
    metric also explained by the other metrics at ``t``)."""
    step_s = float(d["step_s"])
    lags = rows_of(horizon, step_s)
    n_train, n_hold = int(d["n_train"]), len(d["xv"])
    n_fit = n_train - n_hold
    cache = {} if cache is None else cache
    const = set(d["constant"].tolist())
    vals = d["values"][:, [i for i in range(d["values"].shape[1]) if i not in const]]
    if (horizon, penalty, others) not in cache:
        first = n_fit - len(d["ref"])          # the reference's first row: warm-up before it
        cache[horizon, penalty, others] = Forecast([(vals, max(first, lags), n_fit)], lags,
                                                   penalty, others=others)
    key = (horizon, penalty, others, how == "maha")
    if key not in cache:
        cache[key] = cache[horizon, penalty, others].residuals(vals, whiten=how == "maha")
    r = cache[key]
    f = combine(r, how)
    if smooth:
        f = smooth_rms(f, rows_of(smooth, step_s))
    if tail is not None:
        f = np.maximum(f - np.quantile(f[n_fit - len(d["ref"]):n_fit], tail), 0.0)
    return f[n_fit:n_train], f[n_train:]


# ------------------------------------------------------------------------------ the OCSVM
def ocsvm_scores(key: str, data_root: str, cache: Path, n_hold: int, n_test: int) -> Pair:
    """(holdout, test) raw scores of ``AnomalyModel()`` fit on the fit rows (cached)."""
    path = cache / f"ocsvm__{key.replace('/', '__')}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["hold"], z["test"]
    from threadpoolctl import threadpool_limits

    from aws_anomaly.evaluation.servers_bench import discover_servers, load_server
    from aws_anomaly.fitting import holdout_split
    from aws_anomaly.model import AnomalyModel
    from aws_anomaly.presets import default_model

    folder = dict(discover_servers(data_root, [key]))[key]
    data = load_server(key, folder)
    t0 = time.perf_counter()
    with threadpool_limits(1):
        share = default_model(data.train.step).calibration_holdout
        dflt = default_model(data.train.step)
        parts = holdout_split(dflt, data.train, share)
        assert parts is not None
        fit_part, holdout = parts
        model = AnomalyModel().fit(fit_part, holdout)
        Xv, ready_v, _ = model._features(holdout, fit_part, "holdout")
        Xt, _, _ = model._features(data.test, data.train, "test")
        hold, test = model._raw(Xv[ready_v]), model._raw(Xt)
    if len(hold) != n_hold or len(test) != n_test:
        raise SystemExit(f"error: {key}: OCSVM rows {len(hold)}/{len(test)} != dump "
                         f"{n_hold}/{n_test}")
    np.savez(path, hold=hold, test=test)
    print(f"OCSVM of {key} in {time.perf_counter() - t0:.0f} s", flush=True)
    return hold, test


def matched(member: Pair, to: np.ndarray, top: str = "q99") -> Pair:
    """``member`` shifted by its holdout median and scaled so that its holdout median-to-q99
    range is that of ``to`` (a holdout score), plus ``to``'s holdout median; ``top="pot"``:
    the median-to-POT-threshold range (risk 1e-3), i.e. ``member``'s calibrated score put on
    the scale of ``to``'s."""
    from aws_anomaly.calibration import pot_threshold

    def upper(x: np.ndarray) -> float:
        return pot_threshold(x, 1e-3, 0.98)[0] if top == "pot" else float(np.quantile(x, 0.99))

    h, t = member
    mh, rh = np.median(h), upper(h) - np.median(h)
    mt, rt = np.median(to), upper(to) - np.median(to)
    a = rt / max(rh, 1e-12)
    return mt + a * (h - mh), mt + a * (t - mh)


# ------------------------------------------------------------------------------ measuring
Variant = Callable[[dict[str, Pair]], Pair]


def weighted(terms: Iterable[tuple[str, float]]) -> Variant:
    """The weighted mean of the named members."""
    terms = tuple(terms)
    total = sum(w for _, w in terms)

    def f(m: dict[str, Pair]) -> Pair:
        return tuple(sum(w * m[n][i] for n, w in terms) / total for i in (0, 1))  # type: ignore[return-value]
    return f


F_SETTINGS = [(h, how, s) for h in ("5min", "15min", "30min")
              for how in ("rms", "top3", "maha") for s in (None, "15min", "1h")]
WEIGHTS = (0.25, 0.5, 1.0, 2.0)


#: Tail forms: (horizon, combination, smoothing, quantile), weights TAIL_WEIGHTS.
F_TAILS = [("5min", "rms", "15min", q) for q in (0.99, 0.999)]
TAIL_WEIGHTS = (0.5, 1.0, 2.0, 4.0)


#: Nowcast settings (``N``: each metric from all metrics' lags and the others at ``t``).
N_SETTINGS = [(h, "rms", s) for h in ("5min", "15min") for s in (None, "15min", "1h")]


def f_name(h: str, how: str, s: str | None, tail: float | None = None,
           member: str = "F") -> str:
    return (f"{member}[{h},{how}{',smooth ' + s if s else ''}"
            f"{f',over q{tail:g}' if tail is not None else ''}]")


def build_variants(ocsvm: bool) -> dict[str, Variant]:
    """Every mix measured, by name (the members: ``L``, ``S``, ``O~LS``, ``O~S``, F names)."""
    variants: dict[str, Variant] = {"(L + S) / 2: the default": weighted([("L", 1), ("S", 1)])}
    for h, how, s in F_SETTINGS:
        name = f_name(h, how, s)
        for w in WEIGHTS:
            variants[f"(L + S + {w:g} {name}) / {2 + w:g}"] = weighted([("L", 1), ("S", 1),
                                                                        (name, w)])
    for h, how, s in N_SETTINGS:
        name = f_name(h, how, s, member="N")
        for w in WEIGHTS:
            variants[f"(L + S + {w:g} {name}) / {2 + w:g}"] = weighted([("L", 1), ("S", 1),
                                                                        (name, w)])
    for h, how, s, q in F_TAILS:
        name = f_name(h, how, s, q)
        for w in TAIL_WEIGHTS:
            variants[f"(L + S) / 2 + {w:g} {name}"] = weighted(
                [("L", 0.5), ("S", 0.5), (name, w)])
    for name in ("F[15min,rms] ridge 1e-3", "F[15min,rms] ridge 1e-1"):
        variants[f"(L + S + {name}) / 3"] = weighted([("L", 1), ("S", 1), (name, 1)])
    for h in ("5min", "15min"):
        name = f_name(h, "rms", None)
        variants[f"(L + {name}) / 2"] = weighted([("L", 1), (name, 1)])
        variants[f"(S + {name}) / 2"] = weighted([("S", 1), (name, 1)])
        variants[f"{name} alone"] = weighted([(name, 1)])
    if ocsvm:
        variants["O alone"] = weighted([("O~LS", 1)])
        for w in (0.5, 1.0, 2.0):
            variants[f"(L + S + {w:g} O) / {2 + w:g}, O matched to (L + S) / 2"] = weighted(
                [("L", 1), ("S", 1), ("O~LS", w)])
        for w in (0.5, 1.0):
            variants[f"(L + S + {w:g} O) / {2 + w:g}, O calibrated like (L + S) / 2"] = (
                weighted([("L", 1), ("S", 1), ("O~LS pot", w)]))
        for h, how, s in (("5min", "rms", "15min"), ("5min", "maha", "15min"),
                          ("15min", "maha", "15min")):
            name = f_name(h, how, s)
            for w in (0.25, 0.5):
                variants[f"(L + S + O + {w:g} {name}) / {3 + w:g}"] = weighted(
                    [("L", 1), ("S", 1), ("O~LS", 1), (name, w)])
        variants["(L + O) / 2, O matched to S"] = weighted([("L", 1), ("O~S", 1)])
        variants["(L + S + O + F[15min,rms]) / 4"] = weighted(
            [("L", 1), ("S", 1), ("O~LS", 1), (f_name("15min", "rms", None), 1)])

    return variants


def servers(args: argparse.Namespace) -> None:
    """The servers table (module docstring)."""
    from threadpoolctl import threadpool_limits

    dumps = load_dumps(Path(args.dump))
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    members: dict[str, dict[str, Pair]] = {}
    with threadpool_limits(1):
        for key, d in dumps.items():
            t0 = time.perf_counter()
            m: dict[str, Pair] = {"L": (d["vv"][:, 0], d["vt"][:, 0]),
                                  "S": (d["vv"][:, 1], d["vt"][:, 1])}
            fc: dict = {}
            for h, how, s in F_SETTINGS:
                m[f_name(h, how, s)] = forecast_member(d, h, how, s, cache=fc)
            for h, how, s, q in F_TAILS:
                m[f_name(h, how, s, q)] = forecast_member(d, h, how, s, cache=fc, tail=q)
            for h, how, s in N_SETTINGS:
                m[f_name(h, how, s, member="N")] = forecast_member(d, h, how, s, cache=fc,
                                                                   others=True)
            m["F[15min,rms] ridge 1e-3"] = forecast_member(d, "15min", "rms", None, 1e-3)
            m["F[15min,rms] ridge 1e-1"] = forecast_member(d, "15min", "rms", None, 1e-1)
            base = (m["L"][0] + m["S"][0]) / 2
            if not args.no_ocsvm:
                o = ocsvm_scores(key, args.data, cache, len(d["xv"]), len(d["xt"]))
                m["O~LS"], m["O~S"] = matched(o, base), matched(o, m["S"][0])
                m["O~LS pot"] = matched(o, base, "pot")
            members[key] = m
            f = m[f_name("15min", "rms", None)][0]
            print(f"members of {key} in {time.perf_counter() - t0:.0f} s (holdout medians: "
                  f"L {np.median(m['L'][0]):.2f} S {np.median(m['S'][0]):.2f} "
                  f"F15 {np.median(f):.2f})", flush=True)

    variants = build_variants(ocsvm=not args.no_ocsvm)
    rows = {name: {k: evaluate(d, *v(members[k])) for k, d in dumps.items()}
            for name, v in variants.items()}
    # leave-one-server-out over the F settings of (L + S + w F) / (2 + w): the first grid
    # measured (rms / top3, unsmoothed / 15 min, w 0.5-2), then every setting above
    full = [n for n in rows if n.startswith("(L + S + ") and "F[" in n and "ridge" not in n
            and "O" not in n.split("F[")[0]]
    small = [n for n in full if "maha" not in n and "1h" not in n and "+ 0.25 F" not in n]
    grids = {"(L + S + w F) / (2 + w), small grid": small,
             "(L + S + w F) / (2 + w), full grid": full}
    grids["(L + S + w N) / (2 + w)"] = [n for n in rows if n.startswith("(L + S + ")
                                        and "N[" in n]
    if not args.no_ocsvm:
        grids["(L + S + w O) / (2 + w)"] = [n for n in rows if "O matched to (L + S) / 2" in n]
        grids["(L + S + w O calibrated) / (2 + w)"] = [n for n in rows
                                                        if "O calibrated like" in n]
    print(f"\n{len(dumps)} servers: {', '.join(dumps)}\n")
    base = rows["(L + S) / 2: the default"]
    choose_leave_one_out(rows, list(dumps), grids)
    # how far each O row's gain is from the servers' spread: the paired difference in best F1
    for name in [*grids.get("(L + S + w O) / (2 + w)", []),
                 *grids.get("(L + S + w O calibrated) / (2 + w)", [])]:
        diff = np.array([rows[name][k]["best_f1"] - base[k]["best_f1"] for k in dumps])
        print(f"best F1 of {name} less the default's, per server: mean {diff.mean():+.4f}, "
              f"standard error {diff.std(ddof=1) / np.sqrt(len(diff)):.4f}, "
              f"{int((diff > 0).sum())} of {len(diff)} servers up")
    print()
    print_tables(rows, list(dumps), args.per_server)



# ------------------------------------------------------------------------------------ demo
#: The mixes measured on the demo: the default and the servers' best rows of each kind.
DEMO_VARIANTS = (
    "(L + S) / 2: the default",
    "(L + S + 0.25 F[5min,rms,smooth 15min]) / 2.25",
    "(L + S + 0.5 F[5min,rms,smooth 15min]) / 2.5",
    "(L + S + 1 F[5min,rms,smooth 15min]) / 3",
    "(L + S + 0.5 F[15min,rms,smooth 15min]) / 2.5",
    "(L + S + 0.25 F[5min,rms,smooth 1h]) / 2.25",
    "(L + S) / 2 + 1 F[5min,rms,smooth 15min,over q0.99]",
    "(L + S) / 2 + 2 F[5min,rms,smooth 15min,over q0.99]",
    "(L + S) / 2 + 2 F[5min,rms,smooth 15min,over q0.999]",
    "(L + S) / 2 + 4 F[5min,rms,smooth 15min,over q0.999]",
    "(L + S + 0.25 N[5min,rms,smooth 15min]) / 2.25",
    "(L + S + 0.5 N[5min,rms,smooth 15min]) / 2.5",
    "(L + S + 1 N[5min,rms,smooth 15min]) / 3",
    "(L + S + 2 N[5min,rms,smooth 15min]) / 4",
    "(L + S + 0.25 N[5min,rms,smooth 1h]) / 2.25",
    "(L + S + 1 N[15min,rms,smooth 1h]) / 3",
    "(L + S + 0.5 O) / 2.5, O matched to (L + S) / 2",
    "(L + S + 1 O) / 3, O matched to (L + S) / 2",
    "(L + S + 2 O) / 4, O matched to (L + S) / 2",
    "(L + S + 0.5 O) / 2.5, O calibrated like (L + S) / 2",
    "(L + S + 1 O) / 3, O calibrated like (L + S) / 2",
    "(L + S + O + 0.5 F[5min,rms,smooth 15min]) / 3.5",
)


def demo_members(seed: int, days: float = 28) -> tuple[dict[str, Pair], Dump, np.ndarray]:
    """One demo seed: the default model fit on train + validation without labels as
    ``train`` does; its L and S of the calibration holdout (the last 15 % of each entity,
    against a reference fit on the rest) and of the test split; F and O fit on the same fit
    rows (as the model, F leaves the labelled rows out of its fit, and the POT threshold is
    fit on the holdout's normal points). Returns (members, the calibration inputs of
    ``calibrated``, the test labels)."""
    from servers_thresholds import _view_scores

    from aws_anomaly.data import generate_demo
    from aws_anomaly.evaluation.split import chronological_split, concat
    from aws_anomaly.fitting import holdout_split
    from aws_anomaly.model import AnomalyModel
    from aws_anomaly.presets import default_model

    ds, _ = generate_demo(seed=seed, days=days)
    sp = chronological_split(ds)
    hist = concat([sp.train, sp.validation])
    model = default_model(ds.step).fit(hist)
    parts = holdout_split(model, hist)
    assert parts is not None
    fit_part, holdout = parts
    Xv, ready_v, _ = model._features(holdout, fit_part, "holdout")
    Xt, ready_t, _ = model._features(sp.test, hist, "test")
    Xv = Xv[ready_v]
    zt = model.constant_guard.breaks(Xt).max(axis=1) if model.constant_ else np.zeros(len(Xt))
    vv, vt = _view_scores(model, Xv), _view_scores(model, Xt)
    m: dict[str, Pair] = {"L": (vv[:, 0], vt[:, 0]), "S": (vv[:, 1], vt[:, 1])}
    # the holdout's labels: with labels, the model's POT fit takes the normal points only
    cal = {"zt": zt, "readyt": ready_t, "rawv": model._raw(Xv), "rawt": model._raw(Xt),
           "yv": holdout.frame["is_anomaly"].to_numpy()[ready_v].astype(bool),
           "thr": np.float64(model.calibrator_.threshold_),
           "risk": np.float64(model.calibration_used_["risk"])}
    # F: one forecast pooled over the entities, each entity's series its own look-back
    series = {e: (np.vstack([hist.values(e), sp.test.values(e)]), len(fit_part.values(e)),
                  len(hist.values(e))) for e in hist.entities}
    labelled = [np.r_[hist.labels(e), np.zeros(len(sp.test.values(e)))].astype(bool)
                for e in hist.entities]
    first = model.spec.min_history
    step_s = ds.step.total_seconds()
    for member, h, s in (("F", "5min", "15min"), ("F", "15min", "15min"), ("F", "5min", "1h"),
                         ("N", "5min", "15min"), ("N", "5min", "1h"), ("N", "15min", "1h")):
        lags = rows_of(h, step_s)
        fc = Forecast([(v, max(first, lags), n_fit) for v, n_fit, _ in series.values()], lags,
                      skip=labelled, others=member == "N")
        fs = [smooth_rms(combine(fc.residuals(v), "rms"), rows_of(s, step_s))
              for v, _, _ in series.values()]
        fit_rows = np.concatenate([f[first:n_fit][~skip[first:n_fit]] for f, (_, n_fit, _), skip
                                   in zip(fs, series.values(), labelled, strict=True)])
        for q in (None, 0.99, 0.999) if member == "F" else (None,):
            low = 0.0 if q is None else float(np.quantile(fit_rows, q))
            part = [np.maximum(f - low, 0.0) if q is not None else f for f in fs]
            m[f_name(h, "rms", s, q, member)] = (
                np.concatenate([f[n_fit:n_hist] for f, (_, n_fit, n_hist)
                                in zip(part, series.values(), strict=True)]),
                np.concatenate([f[n_hist:] for f, (_, _, n_hist)
                                in zip(part, series.values(), strict=True)]))
    ocsvm = AnomalyModel().fit(fit_part, holdout)
    Ov, ready_o, _ = ocsvm._features(holdout, fit_part, "holdout")
    Ot, _, _ = ocsvm._features(sp.test, hist, "test")
    o = (ocsvm._raw(Ov[ready_o]), ocsvm._raw(Ot))
    m["O~LS"] = matched(o, (m["L"][0] + m["S"][0]) / 2)
    m["O~LS pot"] = matched(o, (m["L"][0] + m["S"][0]) / 2, "pot")
    y = sp.test.frame["is_anomaly"].to_numpy().astype(bool)
    cal["kinds"] = sp.test.frame["anomaly_type"].to_numpy().astype(str)
    for name, (a, b) in m.items():
        if len(a) != len(Xv) or len(b) != len(Xt):
            raise SystemExit(f"error: seed {seed}: member {name} has {len(a)}/{len(b)} rows, "
                             f"the model {len(Xv)}/{len(Xt)}")
    return m, cal, y


def demo_f1(cal: Dump, hold: np.ndarray, test: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(best F1 over thresholds, F1 at the POT threshold of ``hold``) of the calibrated
    ``test`` scores, as ``default_model`` flags them."""
    from servers_thresholds import calibrated
    from sklearn.metrics import precision_recall_curve

    from aws_anomaly.calibration import pot_threshold

    normal = hold[~cal["yv"]]
    thr = pot_threshold(normal, float(cal["risk"]), 0.98)[0]
    score = calibrated(cal, test, thr, float(np.median(normal)))
    p, r, _ = precision_recall_curve(y, score)
    best = float(np.nanmax(2 * p * r / np.maximum(p + r, 1e-12)))
    flag = score >= 1.0
    tp = float((y & flag).sum())
    return best, 0.0 if tp == 0 else 2 * tp / (flag.sum() + y.sum())


#: The mixes whose recall per anomaly kind ``demo --kinds`` prints.
KIND_VARIANTS = (
    "(L + S) / 2: the default",
    "(L + S + 0.5 F[5min,rms,smooth 15min]) / 2.5",
    "(L + S + 0.5 N[5min,rms,smooth 15min]) / 2.5",
    "(L + S + 1 O) / 3, O matched to (L + S) / 2",
)


def kind_recall(test: np.ndarray, y: np.ndarray, kinds: np.ndarray,
                fpr: float = 0.01) -> dict[str, float]:
    """Per anomaly kind, the share of its test points at or above the score that flags
    ``fpr`` of the normal test points (a threshold-free view of what a mix ranks high)."""
    thr = float(np.quantile(test[~y], 1.0 - fpr))
    return {k: float(np.mean(test[kinds == k] >= thr)) for k in sorted(set(kinds[y]))}


def demo(args: argparse.Namespace) -> None:
    """The demo table: best F1 / own F1 of each mix per seed and their means."""
    from threadpoolctl import threadpool_limits

    from aws_anomaly.calibration import pot_threshold

    variants = build_variants(ocsvm=True)
    results: dict[str, list[tuple[float, float]]] = {}
    kinds: dict[str, dict[str, list[float]]] = {}
    with threadpool_limits(1):
        for seed in args.seeds:
            t0 = time.perf_counter()
            m, cal, y = demo_members(seed)
            # the default's mix is the model's own raw score
            hold, test = variants[DEMO_VARIANTS[0]](m)
            np.testing.assert_allclose(test, cal["rawt"], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(pot_threshold(hold[~cal["yv"]], float(cal["risk"]),
                                                     0.98)[0], cal["thr"], rtol=1e-9)
            for name in DEMO_VARIANTS:
                results.setdefault(name, []).append(demo_f1(cal, *variants[name](m), y))
            for name in KIND_VARIANTS if args.kinds else ():
                for k, r in kind_recall(variants[name](m)[1], y, cal["kinds"]).items():
                    kinds.setdefault(k, {}).setdefault(name, []).append(r)
            print(f"measured seed {seed} in {time.perf_counter() - t0:.0f} s", flush=True)
    print_demo_tables("", args.seeds, results, kinds, KIND_VARIANTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    s = sub.add_parser("servers", help="on servers_members.py's dumps")
    s.add_argument("--data", default="../shared/data/servers")
    s.add_argument("--dump", default="out/bench-members2",
                   help="folder of servers_members.py's dumps")
    s.add_argument("--cache", default="out/h9", help="where the OCSVM scores are kept")
    s.add_argument("--no-ocsvm", action="store_true", help="measure F only")
    s.add_argument("--per-server", action="store_true", help="best F1 / F1 / FPR per server")
    d = sub.add_parser("demo", help="on the synthetic EKS demo")
    d.add_argument("--seeds", type=int, nargs="+", default=[0, 7, 42, 1234])
    d.add_argument("--kinds", action="store_true",
                   help="recall per anomaly kind at 1 %% of the normal points flagged")
    args = parser.parse_args()
    (servers if args.bench == "servers" else demo)(args)


if __name__ == "__main__":
    main()
