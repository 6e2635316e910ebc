"""Peer detectors from PyOD and river, adapted to NAB's causal streaming protocol.

NAB's rules: records arrive in order, no look-ahead, each file starts from scratch, one
parameter set for every file; a detector may learn in the probationary period and, causally,
after it. The adapters here follow them:

* **PyOD ECOD / IForest** (:class:`PyodPeer`): each record is embedded as the window of its last
  ``lags`` values (scaled by the probationary period's range) plus its first difference. The
  model is fit on the probationary rows, scores every later row, and is refit every
  ``refit_every`` rows on rows seen so far (the last ``max_train`` of them) only, so the score of
  row ``t`` comes from a model fit on rows ``< t``.
* **river Half-Space Trees** (:class:`HalfSpaceTreesPeer`): ``score_one`` then ``learn_one``
  record by record on the same embedding, clipped to ``[0, 1]`` with the probationary range.

Raw detector scores are mapped to ``[0, 1]`` causally by :func:`tail_score`: against the
reference scores of the model's own training rows (PyOD) or of every earlier record (HST), the
empirical CDF fills ``[0, 0.5]`` and scores beyond every reference reach toward 1 with their
distance past the largest reference. A single threshold then means the same for every file.

Every adapter has ``run(timestamps, values, probationary) -> scores``, the contract of
:class:`aws_anomaly.streaming.base.StreamingDetector.run`.

Examples
--------
>>> import numpy as np
>>> x = np.sin(np.arange(600) / 10.0)
>>> x[500] = 5.0
>>> ts = np.arange(600).astype("datetime64[m]").astype("datetime64[ns]")
>>> s = PyodPeer("iforest").run(ts, x, probationary=90)
>>> int(np.argmax(s)), bool(s[500] > 0.5), bool((s >= 0).all() and (s <= 1).all())
(500, True, True)
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from functools import partial

import numpy as np

from aws_anomaly.errors import ConfigError, DataError

try:  # PyOD and river are the optional "peers" extra.
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest

    HAVE_PYOD = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_PYOD = False
try:
    from river.anomaly import HalfSpaceTrees

    HAVE_RIVER = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_RIVER = False

__all__ = [
    "PEERS",
    "HalfSpaceTreesPeer",
    "PyodPeer",
    "ecod_scores",
    "embed",
    "missing_peers",
    "tail_score",
]


def _check_input(timestamps: np.ndarray, values: np.ndarray, probationary: int) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) != len(timestamps):
        raise DataError(
            f"need one value per timestamp, got {values.shape} values for {len(timestamps)}"
        )
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DataError(f"value at record {row} is {values[row]}; values must be finite")
    if not 1 <= int(probationary) <= len(values):
        raise DataError(
            f"probationary must be in [1, {len(values)}] for {len(values)} records, "
            f"got {probationary}"
        )
    return values


def embed(values: np.ndarray, probationary: int, lags: int) -> np.ndarray:
    """Causal features per record: the last ``lags`` values and the first difference.

    Values are scaled with the min/max of the probationary period (known before any scored
    record); rows before ``lags`` repeat the first value. Row ``t`` uses ``values[:t + 1]`` only.

    >>> embed(np.array([0.0, 1.0, 2.0, 4.0]), probationary=3, lags=2).round(2).tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 1.0, 0.5], [1.0, 2.0, 1.0]]
    """
    head = values[:probationary]
    lo, hi = float(head.min()), float(head.max())
    scale = hi - lo if hi > lo else max(abs(hi), 1.0)
    z = (values - lo) / scale
    padded = np.concatenate((np.full(lags - 1, z[0]), z))
    cols = [padded[k : k + len(z)] for k in range(lags)]
    diff = np.diff(z, prepend=z[0])
    return np.column_stack([*cols, diff])


def tail_score(raw: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Map raw scores to ``[0, 1]`` against reference scores (higher raw = more anomalous).

    Within the reference range the empirical CDF is scaled to ``[0, 0.5]``; beyond the largest
    reference, ``1 - 0.5 exp(-d)`` where ``d`` is the excess over the maximum in units of the
    reference's (max - median) spread.

    >>> tail_score(np.array([0.0, 2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0, 4.0])).round(3)
    array([0.   , 0.25 , 0.5  , 0.868])
    """
    ref = np.sort(np.asarray(reference, dtype=float))
    raw = np.asarray(raw, dtype=float)
    if len(ref) == 0:
        return np.full(len(raw), 0.5)
    ecdf = np.searchsorted(ref, raw, side="right") / len(ref)
    top = ref[-1]
    spread = top - float(np.median(ref))
    if spread <= 0:
        spread = max(abs(top), 1e-12)
    excess = np.maximum(raw - top, 0.0) / spread
    return np.where(raw > top, 1.0 - 0.5 * np.exp(-excess), 0.5 * ecdf)


def _tail_one(raw: float, seen: list[float]) -> float:
    """:func:`tail_score` of one value against a sorted list (what HST needs per record)."""
    if not seen:
        return 0.0
    top = seen[-1]
    if raw <= top:
        return 0.5 * bisect.bisect_right(seen, raw) / len(seen)
    spread = top - seen[len(seen) // 2]
    if spread <= 0:
        spread = max(abs(top), 1e-12)
    return float(1.0 - 0.5 * np.exp(-(raw - top) / spread))


def ecod_scores(train: np.ndarray, X: np.ndarray) -> np.ndarray:
    """ECOD outlier scores of each row of ``X`` on its own, against training rows ``train``.

    PyOD's ``ECOD.decision_function`` builds its empirical CDFs over the training rows *and the
    whole batch being scored*, so a batch's scores depend on each other (later records leak
    into earlier ones' scores). Scoring rows one at a time is causal but costs ~15 ms a row;
    this computes the same one-row-at-a-time result vectorised: tail probabilities
    ``(#train <= x + 1) / (n + 1)`` per column, the skewness-chosen tail from the
    training data, summed negative logs (Li et al. 2022, as in ``pyod.models.ecod``).
    """
    train = np.asarray(train, dtype=float)
    n = len(train)
    srt = np.sort(train, axis=0)
    left = np.empty(X.shape)
    right = np.empty(X.shape)
    for j in range(X.shape[1]):
        left[:, j] = np.searchsorted(srt[:, j], X[:, j], side="right")
        right[:, j] = n - np.searchsorted(srt[:, j], X[:, j], side="left")
    u_l = -np.log((left + 1.0) / (n + 1.0))
    u_r = -np.log((right + 1.0) / (n + 1.0))
    skewness = np.sign(_skew(train))
    u_skew = u_l * -1 * np.sign(skewness - 1) + u_r * np.sign(skewness + 1)
    return np.maximum(np.maximum(u_l, u_r), u_skew).sum(axis=1)


def _skew(X: np.ndarray) -> np.ndarray:
    centred = X - X.mean(axis=0)
    m2 = (centred**2).mean(axis=0)
    m3 = (centred**3).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(m2 > 0, m3 / np.where(m2 > 0, m2, 1.0) ** 1.5, 0.0)


_PYOD_MODELS: dict[str, Callable[[], object]] = {}
if HAVE_PYOD:
    _PYOD_MODELS = {
        "ecod": lambda: ECOD(),
        "iforest": lambda: IForest(n_estimators=100, random_state=0),
    }


class PyodPeer:
    """A PyOD detector run causally over one series (see the module docstring).

    Parameters
    ----------
    model
        ``"ecod"`` or ``"iforest"``.
    lags
        Number of past values in each record's embedding.
    refit_every
        Refit on the data seen so far every this many records after the probationary period.
    max_train
        Refit on at most this many of the most recent records.
    """

    def __init__(
        self, model: str = "ecod", *, lags: int = 3, refit_every: int = 500, max_train: int = 3000
    ) -> None:
        if model not in _PYOD_MODELS:
            raise ConfigError(
                f"PyOD peer model {model!r} is not available; choose one of "
                f"{sorted(_PYOD_MODELS) or 'none (install pyod)'}"
            )
        self.model = model
        self.lags = lags
        self.refit_every = refit_every
        self.max_train = max_train

    def run(self, timestamps: np.ndarray, values: np.ndarray, probationary: int) -> np.ndarray:
        """Scores in ``[0, 1]`` for every record; the probationary period's are 0."""
        values = _check_input(timestamps, values, probationary)
        feats = embed(values, probationary, self.lags)
        n = len(values)
        out = np.zeros(n)
        start = int(probationary)
        while start < n:
            lo = max(0, start - self.max_train)
            det = _PYOD_MODELS[self.model]()
            det.fit(feats[lo:start])
            stop = min(n, start + self.refit_every)
            if self.model == "ecod":
                raw = ecod_scores(feats[lo:start], feats[start:stop])
            else:
                # IForest scores each row on its own: a batch call is causal.
                raw = det.decision_function(feats[start:stop])
            out[start:stop] = tail_score(raw, det.decision_scores_)
            start = stop
        return out


class HalfSpaceTreesPeer:
    """river's Half-Space Trees, ``score_one`` then ``learn_one`` record by record.

    Features are the :func:`embed` columns clipped to ``[0, 1]`` (HST's expected range; the
    difference column is shifted by 0.5). Raw scores are mapped with :func:`tail_score` against
    all earlier raw scores after the trees' first window.
    """

    def __init__(
        self, *, lags: int = 4, n_trees: int = 10, height: int = 10, window_size: int = 250,
        seed: int = 0,
    ) -> None:
        if not HAVE_RIVER:
            raise ConfigError("river is not installed; install the 'peers' extra for HST")
        self.lags = lags
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed

    def run(self, timestamps: np.ndarray, values: np.ndarray, probationary: int) -> np.ndarray:
        """Scores in ``[0, 1]`` for every record; records before the first full window get 0."""
        values = _check_input(timestamps, values, probationary)
        feats = embed(values, probationary, self.lags)
        feats[:, -1] += 0.5
        feats = np.clip(feats, 0.0, 1.0)
        hst = HalfSpaceTrees(
            n_trees=self.n_trees, height=self.height, window_size=self.window_size, seed=self.seed
        )
        names = [f"f{k}" for k in range(feats.shape[1])]
        out = np.zeros(len(values))
        seen: list[float] = []
        for t, row in enumerate(feats):
            x = dict(zip(names, row.tolist(), strict=True))
            raw = hst.score_one(x)
            hst.learn_one(x)
            if t >= self.window_size:
                # Compare with the past only; insertion keeps it sorted for the CDF.
                out[t] = _tail_one(raw, seen)
                bisect.insort(seen, raw)
        return out


PEERS: dict[str, Callable[[], object]] = {}
if HAVE_PYOD:
    # partial, not lambda: the harness sends factories to worker processes.
    PEERS["pyod_ecod"] = partial(PyodPeer, "ecod")
    PEERS["pyod_iforest"] = partial(PyodPeer, "iforest")
if HAVE_RIVER:
    PEERS["river_hst"] = HalfSpaceTreesPeer


def missing_peers() -> list[str]:
    """Names of peers that cannot run here because their library is not installed."""
    missing = []
    if not HAVE_PYOD:
        missing += ["pyod_ecod", "pyod_iforest"]
    if not HAVE_RIVER:
        missing.append("river_hst")
    return missing
