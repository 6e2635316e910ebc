"""Forms of the default model's volatility-excess term, measured on the servers and the demo.

The kNN detector's optional excess term (``KNNDetector(excess=..., excess_weight=w)``) adds
``w x V`` to the mean of the two views' distances, ``V`` the mean over the level view's
standardised volatility columns of ``max(0, x)``. At w = 0.25 it lifts the real servers and
costs the 3-metric EKS demo on every seed (docs/model.md). This study measures other forms of
the term, each computed from the same columns, with one parameter set for both benches:

* ``V``: the shipped option (mean positive part); ``V15`` / ``V1h``: one horizon's columns;
* ``Tcol@q``: per column, the excess over its own training ``q`` quantile, ``max(0, x - q_j)``,
  averaged (only volatility rarer than training adds); ``TV@q``: ``max(0, V - q(V_train))``;
* ``C@q``: the fraction of columns above their training ``q`` quantile, less that fraction's
  own training 0.999 quantile (a robust "k of m metrics" count);
* ``P``: the positive part of the signed mean (a calmer metric offsets a more volatile one);
* ``PM``: the median over metrics of each metric's mean positive part (half the metrics must
  be more volatile);
* ``Vz``: ``max(0, (V - mean) / sd)`` with the training rows' mean and deviation of ``V``;
* ``mulV`` / ``mulVz``: multiplicative, ``distance x (1 + w x V)``;
* ``VNN``: ``max(0, V - V(nearest level-view reference row))``: more volatile than the most
  similar training state;
* ``Vcorr``: ``V`` with weight ``w x (1 - r)``, ``r`` the mean cross-metric correlation of
  the training rows' per-metric volatility (a common-mode volatility that training shows often
  is weaker evidence).

``servers`` evaluates them on the dumps of ``benchmarks/servers_members.py`` (the shipped
model's features of the reference, holdout and test rows; threshold: POT at risk 1e-3 on the
holdout's scores of the same mix, the bench's metrics). ``demo`` fits ``default_model`` with
the excess term on each seed's demo (train + validation, scored on the test split) with the
form swapped into the detector in this process only (the library is not changed), and
reports best F1 and F1 at the model's own threshold.

Usage::

    nice .venv/bin/python benchmarks/volatility_forms.py servers --dump out/bench-members2
    nice .venv/bin/python benchmarks/volatility_forms.py demo --seeds 0 7 42 1234

Results: docs/model.md ("Measured 2026-12-02 (H8)").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

#: (form, weight) pairs measured on both benches; weight 0 is the default model without term.
FORMS: tuple[tuple[str, float], ...] = (
    ("V", 0.0), ("V", 0.015), ("V", 0.06), ("V", 0.125), ("V", 0.25),
    ("V15", 0.125), ("V1h", 0.125),
    ("Tcol@0.99", 0.25), ("Tcol@0.99", 0.5), ("Tcol@0.999", 0.5), ("Tcol@0.999", 1.0),
    ("TV@0.99", 0.25), ("TV@0.999", 1.0), ("C@0.99", 0.5),
    ("P", 0.25), ("PM", 0.125), ("Vz", 0.05), ("Vz", 0.1),
    ("mulV", 0.1), ("mulV", 0.25), ("mulVz", 0.1), ("VNN", 0.25), ("VNN", 0.5),
    ("Vcorr", 0.25), ("Vcorr", 0.5),
)


def mean_corr(ref: np.ndarray, owner: np.ndarray) -> float:
    """Mean pairwise correlation, over the training rows, of the metrics' volatility (the mean
    of each metric's volatility columns); metrics constant in training left out."""
    per = np.stack([ref[:, owner == i].mean(axis=1) for i in np.unique(owner)], axis=1)
    per = per[:, per.std(axis=0) > 1e-9]
    m = per.shape[1]
    if m < 2:
        return 0.0
    c = np.corrcoef(per, rowvar=False)
    return float((c.sum() - m) / (m * (m - 1)))


class Form:
    """One form of the term, fit on the training rows' volatility columns ``ref`` (rows,
    columns), ``owner`` the metric of each column and ``horizon`` its horizon's index."""

    def __init__(self, name: str, ref: np.ndarray, owner: np.ndarray,
                 horizon: np.ndarray) -> None:
        self.kind, _, q = name.partition("@")
        self.q = float(q) if q else 0.999
        self.owner, self.horizon = owner, horizon
        self.qj = np.quantile(ref, self.q, axis=0)
        v = np.maximum(ref, 0.0).mean(axis=1)
        self.qv, self.mu, self.sd = float(np.quantile(v, self.q)), v.mean(), max(v.std(), 1e-9)
        self.ref_v = v
        self.qf = float(np.quantile((ref > self.qj).mean(axis=1), 0.999))
        self.shrink = 1.0 - mean_corr(ref, owner) if self.kind == "Vcorr" else 1.0

    def additive(self) -> bool:
        return not self.kind.startswith("mul")

    def __call__(self, x: np.ndarray, nearest: np.ndarray | None = None) -> np.ndarray:
        """The term (before its weight) of rows ``x`` (rows, columns); ``nearest``: each row's
        nearest level-view reference row (``VNN`` only)."""
        pos = np.maximum(x, 0.0)
        k = self.kind
        if k in ("V", "mulV"):
            return pos.mean(axis=1)
        if k == "Vcorr":
            return self.shrink * pos.mean(axis=1)
        if k in ("V15", "V1h"):
            return pos[:, self.horizon == (0 if k == "V15" else 1)].mean(axis=1)
        if k == "Tcol":
            return np.maximum(x - self.qj, 0.0).mean(axis=1)
        if k == "TV":
            return np.maximum(pos.mean(axis=1) - self.qv, 0.0)
        if k == "C":
            return np.maximum((x > self.qj).mean(axis=1) - self.qf, 0.0)
        if k == "P":
            return np.maximum(x.mean(axis=1), 0.0)
        if k == "PM":
            return np.median(np.stack([pos[:, self.owner == i].mean(axis=1)
                                       for i in np.unique(self.owner)], axis=1), axis=1)
        if k in ("Vz", "mulVz"):
            return np.maximum((pos.mean(axis=1) - self.mu) / self.sd, 0.0)
        if k == "VNN":
            assert nearest is not None
            return np.maximum(pos.mean(axis=1) - self.ref_v[nearest], 0.0)
        raise SystemExit(f"error: unknown form {k!r}")


def label(name: str, w: float) -> str:
    return "w = 0 (no term)" if w == 0 else f"{name} w={w:g}"


# --------------------------------------------------------------------------------- servers
def servers(folder: Path) -> None:
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from servers_members import evaluate, load_dumps, summary

    dumps = load_dumps(folder)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    with threadpool_limits(1):
        for key, d in dumps.items():
            lv = d["lv"]
            vol = lv[~d["is_value"][lv]]
            owner = d["column_metric"][vol]
            horizon = np.zeros(len(vol), dtype=np.int64)
            for i in np.unique(owner):
                horizon[owner == i] = np.arange((owner == i).sum())
            ref = d["ref"][:, vol].astype(np.float64)
            hold, test = (d[n][:, vol].astype(np.float64) for n in ("xv", "xt"))
            near = {n: _nearest(d["ref"][:, lv], d[n][:, lv]) for n in ("xv", "xt")}
            base = ((d["vv"][:, 0] + d["vv"][:, 1]) / 2, (d["vt"][:, 0] + d["vt"][:, 1]) / 2)
            forms: dict[str, Form] = {}
            for name, w in FORMS:
                f = forms.setdefault(name, Form(name, ref, owner, horizon))
                th, tt = f(hold, near["xv"]), f(test, near["xt"])
                h, t = ((base[0] + w * th, base[1] + w * tt) if f.additive()
                        else (base[0] * (1 + w * th), base[1] * (1 + w * tt)))
                rows.setdefault(label(name, w), {})[key] = evaluate(d, h, t)
            r = mean_corr(ref, owner)
            print(f"measured {key}: mean cross-metric volatility correlation r = {r:.3f}",
                  flush=True)
    print(f"\n{len(dumps)} servers\n")
    print("| form | best F1 | own F1 | mean FPR | max FPR | servers FPR > 0.02 | event P |")
    print("|---|---|---|---|---|---|---|")
    for name, per in rows.items():
        print(f"| {name} {summary(per)}")


def _nearest(ref: np.ndarray, x: np.ndarray, block: int = 1024) -> np.ndarray:
    """Index of each row of ``x``'s nearest row of ``ref`` (Euclidean)."""
    ref = np.ascontiguousarray(ref, dtype=np.float64)
    sq = np.einsum("ij,ij->i", ref, ref)
    out = np.empty(len(x), dtype=np.int64)
    for s in range(0, len(x), block):
        out[s:s + block] = np.argmin(sq - 2.0 * x[s:s + block].astype(np.float64) @ ref.T,
                                     axis=1)
    return out


# ------------------------------------------------------------------------------------ demo
@contextmanager
def forms_in_detector(current: dict[str, str], per_metric: int) -> Iterator[None]:
    """Within the block, ``KNNDetector`` computes its excess term as the form named
    ``current["form"]`` (read at each fit; the excess columns taken ``per_metric`` to a
    metric, in order), fit on the fit rows' excess columns; the methods are restored after.
    ``current["r"]`` receives the fit rows' mean cross-metric volatility correlation."""
    from aws_anomaly.detectors.knn import KNNDetector

    fit, block = KNNDetector._fit, KNNDetector._block

    def swapped_fit(self: KNNDetector, X: np.ndarray) -> np.ndarray:
        idx = self._check_excess(X.shape[1])
        if idx.size:
            owner = np.arange(idx.size) // per_metric
            self._h8_form = Form(current["form"], X[:, idx], owner,
                                 np.arange(idx.size) % per_metric)
            current["r"] = f"{mean_corr(X[:, idx], owner):.3f}"
        return fit(self, X)

    def swapped_block(self: KNNDetector, xc: np.ndarray, k: int,
                      start: int | None) -> np.ndarray:
        w, self.excess_weight = self.excess_weight, 0.0
        try:
            base = block(self, xc, k, start)
        finally:
            self.excess_weight = w
        form = getattr(self, "_h8_form", None)
        if form is None or not w:
            return base
        nearest = None
        if form.kind == "VNN":
            nearest = np.argmin(self._sq_distances(xc, 0, start), axis=1)
        t = form(xc[:, self.excess_], nearest)
        return base + w * t if form.additive() else base * (1 + w * t)

    KNNDetector._fit, KNNDetector._block = swapped_fit, swapped_block
    try:
        yield
    finally:
        KNNDetector._fit, KNNDetector._block = fit, block


def demo(seeds: list[int]) -> None:
    from servers_members import best_and_own_f1
    from threadpoolctl import threadpool_limits

    from aws_anomaly.data import generate_demo
    from aws_anomaly.evaluation.split import chronological_split, concat
    from aws_anomaly.presets import DEFAULT_WINDOWS, default_model

    current: dict[str, str] = {}
    results: dict[str, list[tuple[float, float]]] = {}
    with threadpool_limits(1), forms_in_detector(current, len(DEFAULT_WINDOWS)):
        for seed in seeds:
            ds, _ = generate_demo(seed=seed)
            sp = chronological_split(ds)
            hist = concat([sp.train, sp.validation])
            y = sp.test.frame["is_anomaly"].to_numpy().astype(bool)
            for name, w in FORMS:
                current["form"] = name
                m = default_model(ds.step, detector_params={"excess_weight": w}).fit(hist)
                s = m.score(sp.test, history=hist, explain="none")
                results.setdefault(label(name, w), []).append(best_and_own_f1(
                    y, s["anomaly_score"].to_numpy(), s["is_anomaly"].to_numpy()))
            print(f"measured seed {seed}: mean cross-metric volatility correlation r = "
                  f"{current.get('r')}", flush=True)
    print(f"\ndemo seeds {', '.join(map(str, seeds))}: best F1 / own F1 per seed, then the mean\n")
    print("| form | " + " | ".join(f"seed {s}" for s in seeds) + " | mean best F1 | mean own F1 |")
    print("|---|" + "---|" * (len(seeds) + 2))
    for name, per in results.items():
        cells = " | ".join(f"{b:.3f} / {o:.3f}" for b, o in per)
        mb, mo = np.mean([b for b, _ in per]), np.mean([o for _, o in per])
        print(f"| {name} | {cells} | {mb:.3f} | {mo:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    s = sub.add_parser("servers", help="on servers_members.py's dumps")
    s.add_argument("--dump", default="out/bench-members2", help="folder of the dumps")
    d = sub.add_parser("demo", help="on the synthetic EKS demo")
    d.add_argument("--seeds", type=int, nargs="+", default=[0, 7, 42, 1234])
    args = parser.parse_args()
    if args.bench == "servers":
        servers(Path(args.dump))
    else:
        demo(args.seeds)


if __name__ == "__main__":
    main()
