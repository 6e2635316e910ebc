"""Nearest neighbours in a whitened (Mahalanobis) space for the default model's score (issue 8,
H11).

The default model scores a row by the mean of two nearest-neighbour distances, the *level*
view (L) and the *stationary* view (S) (docs/model.md), each Euclidean on the model's scaled
columns, divided by the square root of the view's column count. The stationary view holds
~16 strongly correlated columns per metric (z-scores of one metric over several windows,
differences, ...), so a few high-variance correlated directions dominate the distance, and a
move along a direction rare in training (a *correlation break*) scores little. This study
measures the same 1-NN distance after **whitening** each view with the covariance ``C`` of
the reference (training) rows, fit on those rows only (constant metrics' columns left out):

* ``pca<q>``: the eigenvectors of ``C`` that hold a share ``q`` of its variance (0.99,
  0.999), each divided by its standard deviation;
* ``shrink<a>``: every direction of ``(1 - a) C + a diag(C)`` (a structural shrinkage towards
  the columns' own variances), each divided by its standard deviation;
* ``lw``: every direction of the Ledoit-Wolf covariance (shrunk towards a multiple of the
  identity by the data-driven amount of Ledoit & Wolf, 2004).

Every form floors the eigenvalues at ``EIGEN_FLOOR`` x the largest, so numerical-noise
directions do not explode. Measured second (``--methods``): ``pca0.9`` / ``pca0.95`` (fewer
directions), ``floor0.01`` / ``floor0.1`` (every direction, the floor at 1 % / 10 % of the
largest eigenvalue: a partial whitening, like a ridge ``C + e I``), and ``block`` /
``block_shrink0.5``: each metric's columns whitened apart (a block-diagonal map: the
correlations among one metric's columns are removed, those between metrics kept; the floor
a share of the whole view's largest eigenvalue).

The whitened distance is the Euclidean 1-NN distance of ``(x - mean) W`` to the reference rows'
whitened rows, divided by the square root of the kept dimension (as the model does). For a
full-rank ``C`` without shrinkage or truncation it is the Mahalanobis distance ``sqrt((x - r)'
C^-1 (x - r))`` to the nearest reference row ``r`` in that metric (/ sqrt(dim)). ``S_w[..]`` /
``L_w[..]`` are the whitened stationary / level views; ``M_S[..]`` / ``M_L[..]`` the plain
Mahalanobis distance to the reference mean (no neighbours; a classic baseline), ``M = (M_L +
M_S) / 2``.

Mixes, each thresholded by the shipped rule (POT at ``threshold.pot_risk(step)`` on the
calibration holdout's scores *of the same mix*): a view replaced, ``(L + S_w) / 2``,
``(L_w + S) / 2``, ``(L_w + S_w) / 2``; a whitened view added, ``(L + S + w S_w) / (2 + w)``
and ``(L + S + w L_w) / (2 + w)``; the Mahalanobis member added, ``(L + S + w M) / (2 + w)``
(and ``M_S``); ``S_w`` alone.

``servers``: on the dumps of ``benchmarks/servers_members.py`` (the model's scaled features
of the reference rows, the first 85 % of ``train.parquet``, of the holdout, the last 15 %,
and of the test rows, with L and S), the bench's metrics, and leave-one-server-out over each
family of settings (for each held-out server, the setting with the best mean best F1 on the
other nine, measured on it).

``demo``: the same members on the synthetic EKS demo (seeds 0, 7, 42, 1234: what ``make run``
serves; ``benchmarks/servers_tails.py``'s demo arrays: ``default_model`` fit on train +
validation as ``train`` does, the whitening fit on its reference rows, pooled over the
entities as the model's reference is), best F1 and F1 at the mix's own thresholds, each
entity calibrated by its own POT threshold as the default does (``entity_thresholds``).

Usage::

    nice .venv/bin/python benchmarks/servers_whiten.py servers --dump out/bench-members2 \\
        --per-server
    nice .venv/bin/python benchmarks/servers_whiten.py demo --seeds 0 7 42 1234 --cache out/h10 \\
        --all
    # the second forms: the same two commands with
    #   --methods pca0.9 pca0.95 floor0.01 floor0.1 block block_shrink0.5

Results: docs/model.md ("Measured 2026-12-02 (H11): nearest neighbours in a whitened space").
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# The members study's dumps, 1-NN, threshold rule and tables; H10's demo harness; shared.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers_members import evaluate, load_dumps, nearest, report_mixes
from servers_tails import Dump, Pair, Variant, study_parser, view_columns, weighted

#: Eigenvalues below this share of the largest are raised to it.
EIGEN_FLOOR = 1e-3
#: The whitening forms measured: name -> (method, parameter, eigenvalue floor, per metric).
METHODS: dict[str, tuple[str, float, float, bool]] = {
    "pca0.99": ("pca", 0.99, EIGEN_FLOOR, False),
    "pca0.999": ("pca", 0.999, EIGEN_FLOOR, False),
    "shrink0.1": ("shrink", 0.1, EIGEN_FLOOR, False),
    "shrink0.5": ("shrink", 0.5, EIGEN_FLOOR, False),
    "lw": ("lw", 0.0, EIGEN_FLOOR, False),
    # measured second (after the rows above): fewer directions, a higher floor (a partial
    # whitening, as a ridge C + e I), and each metric's columns whitened apart
    "pca0.9": ("pca", 0.9, EIGEN_FLOOR, False),
    "pca0.95": ("pca", 0.95, EIGEN_FLOOR, False),
    "floor0.01": ("pca", 1.0, 0.01, False),
    "floor0.1": ("pca", 1.0, 0.1, False),
    "block": ("pca", 1.0, EIGEN_FLOOR, True),
    "block_shrink0.5": ("shrink", 0.5, EIGEN_FLOOR, True),
}
#: The forms of the first run (the default of ``--methods``).
FIRST = ("pca0.99", "pca0.999", "shrink0.1", "shrink0.5", "lw")


# ------------------------------------------------------------------------------ whitening
class Whitener:
    """A linear map ``x -> (x - mean) @ W`` fit on the reference rows ``ref`` only, after
    which the rows' (shrunk, truncated) covariance is the identity.

    ``method``: ``pca`` (the leading eigenvectors holding a share ``param`` of the variance;
    ``param`` 1.0 keeps every one), ``shrink`` (``(1 - param) C + param diag(C)``, every
    direction) or ``lw`` (Ledoit-Wolf, every direction). Eigenvalues are floored at ``floor``
    x the largest. ``groups`` (one label a column): each group's columns whitened apart
    (a block-diagonal map; correlations between groups are left as they are), the floor
    ``floor`` x the largest eigenvalue of the whole covariance."""

    def __init__(self, ref: np.ndarray, method: str = "pca", param: float = 1.0,
                 floor: float = EIGEN_FLOOR, groups: np.ndarray | None = None,
                 _floor_value: float | None = None) -> None:
        ref = np.asarray(ref, dtype=np.float64)
        if ref.ndim != 2 or len(ref) < 2 or ref.shape[1] == 0:
            raise ValueError(f"Whitener: ref must be a 2-D array of at least 2 rows and 1 "
                             f"column, got shape {ref.shape}")
        self.mean = ref.mean(axis=0)
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (ref.shape[1],):
                raise ValueError(f"Whitener: groups must hold one label a column "
                                 f"({ref.shape[1]}), got shape {groups.shape}")
            # the floor is a share of the largest variance of the whole view, so a group
            # (nearly) constant in the reference rows is not blown up by its own scale
            top = float(np.linalg.eigvalsh(np.cov(ref, rowvar=False))[-1])
            parts = [(groups == g, Whitener(ref[:, groups == g], method, param,
                                            _floor_value=floor * top))
                     for g in np.unique(groups)]
            self.dim = sum(w.dim for _, w in parts)
            self.W = np.zeros((ref.shape[1], self.dim))
            at = 0
            for cols, w in parts:
                self.W[cols, at:at + w.dim] = w.W
                at += w.dim
            self.shrinkage = float(np.mean([w.shrinkage for _, w in parts]))
            return
        centred = ref - self.mean
        if method == "lw":
            from sklearn.covariance import ledoit_wolf

            cov, self.shrinkage = ledoit_wolf(centred, assume_centered=True)
        elif method in ("pca", "shrink"):
            cov = centred.T @ centred / (len(ref) - 1)
            self.shrinkage = param if method == "shrink" else 0.0
            if method == "shrink":
                if not 0.0 <= param <= 1.0:
                    raise ValueError(f"Whitener: shrinkage must be in [0, 1], got {param}")
                cov = (1.0 - param) * cov + param * np.diag(np.diag(cov))
        else:
            raise ValueError(f"Whitener: unknown method {method!r}; choose pca, shrink or lw")
        lam, vec = np.linalg.eigh(cov)
        lam, vec = lam[::-1], vec[:, ::-1]
        top = max(float(lam[0]), 1e-300)
        k = len(lam)
        if method == "pca":
            if not 0.0 < param <= 1.0:
                raise ValueError(f"Whitener: variance share must be in (0, 1], got {param}")
            share = np.cumsum(np.maximum(lam, 0.0)) / max(float(np.maximum(lam, 0).sum()),
                                                          1e-300)
            k = len(lam) if param >= 1.0 else int(np.searchsorted(share, param) + 1)
        lam = np.maximum(lam[:k], floor * top if _floor_value is None else _floor_value)
        #: (columns, kept dimension): ``(x - mean) @ W`` is whitened
        self.W = vec[:, :k] / np.sqrt(lam)
        self.dim = k

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.W


def whitened_nearest(ref: np.ndarray, xs: Sequence[np.ndarray], method: str, param: float,
                     floor: float = EIGEN_FLOOR, groups: np.ndarray | None = None,
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per array of ``xs``: (the 1-NN distance to the whitened ``ref`` rows / sqrt(dim), the
    Mahalanobis distance to ``ref``'s mean / sqrt(dim)), the whitening fit on ``ref`` only
    (:class:`Whitener`)."""
    w = Whitener(ref, method, param, floor, groups)
    r = w.transform(ref).astype(np.float32)
    nn, mean = [], []
    for x in xs:
        z = w.transform(x)
        nn.append(nearest(r, z.astype(np.float32)))
        mean.append(np.sqrt(np.einsum("ij,ij->i", z, z)) / math.sqrt(w.dim))
    return nn, mean


def members_of(d: Dump, methods: Sequence[str] = FIRST) -> dict[str, Pair]:
    """L, S and, per whitening form, ``L_w``, ``S_w``, ``M_L``, ``M_S``, ``M`` (holdout,
    test), every form fit on ``d["ref"]`` alone."""
    m: dict[str, Pair] = {"L": (d["vv"][:, 0], d["vt"][:, 0]),
                          "S": (d["vv"][:, 1], d["vt"][:, 1])}
    for view, tag in (("lv", "L"), ("sv", "S")):
        cols = view_columns(d, view)
        ref = d["ref"][:, cols]
        for name in methods:
            method, param, floor, per_metric = METHODS[name]
            (nv, nt), (mv, mt) = whitened_nearest(
                ref, [d["xv"][:, cols], d["xt"][:, cols]], method, param, floor,
                d["column_metric"][cols] if per_metric else None)
            m[f"{tag}_w[{name}]"] = (nv, nt)
            m[f"M_{tag}[{name}]"] = (mv, mt)
    for name in methods:
        a, b = m[f"M_L[{name}]"], m[f"M_S[{name}]"]
        m[f"M[{name}]"] = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    return m


# ------------------------------------------------------------------------------ the mixes
DEFAULT = "(L + S) / 2: the default"
WEIGHTS = (0.25, 0.5, 1.0)


def build_variants(methods: Sequence[str] = FIRST) -> dict[str, Variant]:
    """Every mix measured, by name; families for leave-one-server-out by name pattern."""
    v: dict[str, Variant] = {DEFAULT: weighted([("L", 1), ("S", 1)])}
    for s in methods:
        v[f"(L + S_w[{s}]) / 2"] = weighted([("L", 1), (f"S_w[{s}]", 1)])
        v[f"(L_w[{s}] + S) / 2"] = weighted([(f"L_w[{s}]", 1), ("S", 1)])
        v[f"(L_w[{s}] + S_w[{s}]) / 2"] = weighted([(f"L_w[{s}]", 1), (f"S_w[{s}]", 1)])
        v[f"S_w[{s}] alone"] = weighted([(f"S_w[{s}]", 1)])
        for w in WEIGHTS:
            for part in ("S_w", "L_w", "M", "M_S"):
                v[f"(L + S + {w:g} {part}[{s}]) / {2 + w:g}"] = weighted(
                    [("L", 1), ("S", 1), (f"{part}[{s}]", w)])
    return v


#: Leave-one-server-out families: name -> predicate on the variant's name.
FAMILIES: dict[str, Callable[[str], bool]] = {
    "(L + S_w) / 2": lambda n: n.startswith("(L + S_w["),
    "(L_w + S) / 2": lambda n: n.startswith("(L_w[") and n.endswith("+ S) / 2"),
    "(L_w + S_w) / 2": lambda n: n.startswith("(L_w[") and "S_w[" in n,
    "(L + S + w S_w) / (2 + w)": lambda n: n.startswith("(L + S + ") and " S_w[" in n,
    "(L + S + w L_w) / (2 + w)": lambda n: n.startswith("(L + S + ") and " L_w[" in n,
    "(L + S + w M or M_S) / (2 + w)": (
        lambda n: n.startswith("(L + S + ") and (" M[" in n or " M_S[" in n)),
    "every mix with a whitened member": lambda n: n != DEFAULT,
}


# ---------------------------------------------------------------------------- the servers
def servers(args: argparse.Namespace) -> None:
    """The servers table (module docstring)."""
    from threadpoolctl import threadpool_limits

    dumps = load_dumps(Path(args.dump))
    methods = args.methods or list(FIRST)
    members: dict[str, dict[str, Pair]] = {}
    with threadpool_limits(1):
        for key, d in dumps.items():
            t0 = time.perf_counter()
            members[key] = m = members_of(d, methods)
            dims = []
            for view in ("lv", "sv"):
                cols = view_columns(d, view)
                dims.append(f"{view} {len(cols)} columns")
            first = methods[0]
            print(f"members of {key} in {time.perf_counter() - t0:.1f} s ({', '.join(dims)}; "
                  f"holdout median / q99: S {np.median(m['S'][0]):.2f} / "
                  f"{np.quantile(m['S'][0], 0.99):.2f}, S_w[{first}] "
                  f"{np.median(m[f'S_w[{first}]'][0]):.2f} / "
                  f"{np.quantile(m[f'S_w[{first}]'][0], 0.99):.2f}; test q99 S "
                  f"{np.quantile(m['S'][1], 0.99):.2f}, S_w "
                  f"{np.quantile(m[f'S_w[{first}]'][1], 0.99):.2f})", flush=True)
    variants = build_variants(methods)
    rows = {name: {k: evaluate(d, *v(members[k])) for k, d in dumps.items()}
            for name, v in variants.items()}
    report_mixes(rows, list(dumps), list(variants), FAMILIES, DEFAULT, args.per_server)


# -------------------------------------------------------------------------------- the demo
def demo(args: argparse.Namespace) -> None:
    """The demo table: best F1 / own F1 of each mix per seed and their means, each entity
    calibrated by its own POT threshold as the default does."""
    from servers_tails import demo_f1_entity, run_demo

    methods = args.methods or list(FIRST)
    run_demo(args, build_variants(methods), lambda d: members_of(d, methods), demo_f1_entity,
             ", thresholds per entity")


def main() -> None:
    parser, s, d = study_parser(__doc__ or "", "out/h10")
    for p in (s, d):
        p.add_argument("--methods", nargs="+", choices=list(METHODS),
                       help=f"whitening forms to measure (default: {' '.join(FIRST)})")
    args = parser.parse_args()
    (servers if args.bench == "servers" else demo)(args)


if __name__ == "__main__":
    main()
