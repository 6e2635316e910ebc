"""The Numenta Anomaly Benchmark (NAB v1.1) scorer, vectorised.

A re-implementation of NAB's ``Sweeper`` (window-based scoring with a scaled sigmoid, one
threshold per detector and profile for the whole corpus), written with NumPy so that scoring a
detector at a threshold, or sweeping every distinct score value to find the best threshold,
takes milliseconds per file. The rules are those of NAB's ``nab/sweeper.py`` as described in the
data folder's ``SCORING.md``:

* the first ``P = min(floor(0.15 N), 750)`` records of a file are probationary and ignored;
* a record is a detection when its score is ``>= threshold``;
* inside a window (inclusive ``[l, r]``, width ``w = r - l + 1``) the earliest detection earns
  ``A_TP * sigma(-(r - i + 1) / w) / sigma(-1)``; later ones in the same window count nothing;
  a window without detection costs ``A_FN``;
* a detection outside every window costs ``A_FP`` before the first window, and
  ``A_FP * sigma((i - r) / (w - 1))`` after a window ``[l, r]`` (almost nothing right after it);
* ``sigma(y) = 2 / (1 + exp(5 y)) - 1``, or ``-1`` when ``y > 3``.

Scores of published detectors are aligned to data rows by position, as NAB does.

Examples
--------
>>> import numpy as np
>>> ts = np.arange(100).astype("datetime64[m]").astype("datetime64[ns]")
>>> f = NabFile("toy/a.csv", ts, np.zeros(100), windows=((40, 49),))
>>> f.probationary
15
>>> scores = np.zeros(100)
>>> scores[40] = 1.0                      # detection at the window's left edge
>>> round(score_file(scores, f, 0.5, PROFILES["standard"]).score, 6)
1.0
>>> scores[20] = 1.0                      # plus a false positive before the window
>>> fs = score_file(scores, f, 0.5, PROFILES["standard"])
>>> round(fs.score, 6), fs.tp, fs.fp, fs.fn, fs.tn
(0.89, 1, 1, 9, 74)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from aws_anomaly.errors import ConfigError, DataError, show

__all__ = [
    "PROFILES",
    "PROFILE_NAMES",
    "CorpusScore",
    "FileScore",
    "NabFile",
    "Profile",
    "category_of",
    "load_corpus",
    "load_profiles",
    "load_published_scores",
    "load_thresholds",
    "normalized_score",
    "optimize_threshold",
    "probationary_length",
    "read_nab_csv",
    "scaled_sigmoid",
    "score_corpus",
    "score_file",
    "threshold_curve",
]

PROBATIONARY_PERCENT = 0.15
# NAB caps the probationary period at 15 % of 5000 records.
PROBATIONARY_CAP = 750
# NAB's "threshold above every score": a sweep starts here, with nothing detected.
NO_DETECTION_THRESHOLD = 1.1


@dataclass(frozen=True)
class Profile:
    """A NAB cost matrix: the weight of a true positive, a false positive and a false negative."""

    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}
PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)


def load_profiles(root: Path | None = None) -> dict[str, Profile]:
    """The cost profiles: ``root/config/profiles.json`` when present, else the built-in three."""
    if root is None:
        return dict(PROFILES)
    path = Path(root) / "config" / "profiles.json"
    if not path.exists():
        return dict(PROFILES)
    try:
        raw = json.loads(path.read_text())
        return {
            name: Profile(
                tp=float(entry["CostMatrix"]["tpWeight"]),
                fp=float(entry["CostMatrix"]["fpWeight"]),
                fn=float(entry["CostMatrix"]["fnWeight"]),
            )
            for name, entry in raw.items()
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: cannot read the cost profiles ({exc!r}); expected "
            '{"<profile>": {"CostMatrix": {"tpWeight": .., "fpWeight": .., "fnWeight": ..}}}'
        ) from exc


def load_thresholds(root: Path) -> dict[str, dict[str, float]]:
    """Published thresholds ``{detector: {profile: threshold}}`` from ``config/thresholds.json``.

    Returns an empty dict when the file does not exist.
    """
    path = Path(root) / "config" / "thresholds.json"
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {
            det: {prof: float(v["threshold"]) for prof, v in per.items()}
            for det, per in raw.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"{path}: cannot read thresholds ({exc!r}); expected "
            '{"<detector>": {"<profile>": {"threshold": <float>}}}'
        ) from exc


def probationary_length(n: int) -> int:
    """NAB's probationary period: ``min(floor(0.15 n), 750)`` records.

    >>> probationary_length(4032), probationary_length(1243), probationary_length(6000)
    (604, 186, 750)
    """
    return int(min(math.floor(PROBATIONARY_PERCENT * n), PROBATIONARY_CAP))


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid ``2 / (1 + exp(5 y)) - 1``, and ``-1`` where ``y > 3``.

    >>> [round(float(v), 6) for v in scaled_sigmoid(np.array([-1.0, 0.0, 3.5]))]
    [0.986614, 0.0, -1.0]
    """
    y = np.asarray(y, dtype=float)
    with np.errstate(over="ignore"):
        val = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y > 3.0, -1.0, val)


_MAX_TP = float(scaled_sigmoid(-1.0))


def category_of(key: str) -> str:
    """The category of a corpus key: ``"realAWSCloudwatch/x.csv"`` -> ``"realAWSCloudwatch"``."""
    return key.split("/", 1)[0]


@dataclass(frozen=True, eq=False)
class NabFile:
    """One labelled NAB series.

    Parameters
    ----------
    key
        ``"<category>/<name>.csv"``, as in NAB's label files.
    timestamps
        ``datetime64[ns]`` per record, in file order. Recorded files may hold duplicates,
        irregular steps and clock jumps backwards; NAB keeps them and scores rows by position,
        and so does this scorer.
    values
        float64 per record.
    windows
        Anomaly windows as inclusive ``(start_idx, end_idx)`` row pairs, in time order.
    probation
        Probationary length to use instead of NAB's ``min(floor(0.15 N), 750)`` (for corpora
        that are not NAB's, e.g. a training period on the demo clusters).
    """

    key: str
    timestamps: np.ndarray
    values: np.ndarray
    windows: tuple[tuple[int, int], ...] = field(default_factory=tuple)
    probation: int | None = None

    @property
    def n(self) -> int:
        """Number of records."""
        return len(self.values)

    @property
    def probationary(self) -> int:
        """Length of the probationary period (records the scorer ignores)."""
        return probationary_length(self.n) if self.probation is None else int(self.probation)

    @property
    def category(self) -> str:
        """The category folder this file belongs to."""
        return category_of(self.key)

    @property
    def name(self) -> str:
        """File name without the category, e.g. ``ec2_cpu_utilization_24ae8d.csv``."""
        return self.key.split("/", 1)[-1]

    @cached_property
    def window_id(self) -> np.ndarray:
        """Per record: index of the window holding it, or -1."""
        wid = np.full(self.n, -1, dtype=np.int64)
        for k, (lo, hi) in enumerate(self.windows):
            wid[lo : hi + 1] = k
        return wid

    @cached_property
    def scorable_windows(self) -> tuple[int, ...]:
        """Windows with at least one record after the probationary period (the ones NAB counts)."""
        p = self.probationary
        return tuple(k for k, (_, hi) in enumerate(self.windows) if hi >= p)

    @property
    def n_windows(self) -> int:
        """Number of windows the scorer counts."""
        return len(self.scorable_windows)

    @cached_property
    def _unweighted(self) -> tuple[np.ndarray, np.ndarray]:
        """Per record: (in-window credit before weighting, outside-window cost before weighting).

        The first is ``sigma(y) / sigma(-1)`` inside windows (0 elsewhere), the second
        ``sigma(y)`` (or -1) outside windows (0 inside).
        """
        idx = np.arange(self.n, dtype=float)
        tp_part = np.zeros(self.n)
        fp_part = np.full(self.n, -1.0)
        prev_right: int | None = None
        prev_width = 0
        cursor = 0
        for lo, hi in self.windows:
            width = hi - lo + 1
            if prev_right is not None and cursor < lo:
                fp_part[cursor:lo] = self._after_window(idx[cursor:lo], prev_right, prev_width)
            y = -(hi - idx[lo : hi + 1] + 1.0) / width
            tp_part[lo : hi + 1] = scaled_sigmoid(y) / _MAX_TP
            fp_part[lo : hi + 1] = 0.0
            prev_right, prev_width, cursor = hi, width, hi + 1
        if prev_right is not None and cursor < self.n:
            fp_part[cursor:] = self._after_window(idx[cursor:], prev_right, prev_width)
        return tp_part, fp_part

    @staticmethod
    def _after_window(idx: np.ndarray, right: int, width: int) -> np.ndarray:
        if width <= 1:
            # NAB divides by (width - 1); a one-record window gives no grace period.
            return np.full(len(idx), -1.0)
        return scaled_sigmoid(np.abs(idx - right) / (width - 1.0))

    def sweep_scores(self, profile: Profile) -> np.ndarray:
        """NAB's per-record contribution if that record were a detection (``S(t)`` columns)."""
        tp_part, fp_part = self._unweighted
        return np.where(self.window_id >= 0, tp_part * profile.tp, fp_part * profile.fp)


def _parse_times(raw: pd.Series, where: str) -> np.ndarray:
    parsed = pd.to_datetime(raw, format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}: cannot parse timestamp {raw.iloc[row]!r} in row {row}; "
            "expected 'YYYY-MM-DD HH:MM:SS'"
        )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.to_numpy(dtype="datetime64[ns]")


def read_nab_csv(path: Path, columns: Sequence[str] = ("timestamp", "value")) -> pd.DataFrame:
    """Read a NAB CSV, check the columns, parse ``timestamp`` and make the rest float64."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; found {list(df.columns)}, "
            f"expected at least {list(columns)}"
        )
    out = {"timestamp": _parse_times(df["timestamp"], str(path))}
    for col in columns:
        if col == "timestamp":
            continue
        vals = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(vals)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: column {col!r} row {row} is not a finite number: "
                f"{show(df[col].iloc[row])}"
            )
        out[col] = vals
    return pd.DataFrame(out)


def _window_rows(
    key: str, timestamps: np.ndarray, windows: list, where: Path
) -> tuple[tuple[int, int], ...]:
    """Map ``[start, end]`` timestamp pairs to inclusive row indices, as NAB's sweeper does.

    NAB enters a window at the first record whose timestamp equals the window start and leaves
    it at the first record equal to the window end (``list.index``), so duplicates resolve to
    their first occurrence.
    """
    rows: list[tuple[int, int]] = []
    for pair in windows:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise DataError(f"{where}: window {pair!r} of {key!r} is not a [start, end] pair")
        ends = _parse_times(pd.Series([str(pair[0]), str(pair[1])]), f"{where} ({key})")
        idx = []
        for ts, side in zip(ends, ("start", "end"), strict=True):
            hits = np.flatnonzero(timestamps == ts)
            if len(hits) == 0:
                raise DataError(
                    f"{where}: window {side} {pair[0 if side == 'start' else 1]!r} of {key!r} "
                    "matches no record of the data file; window edges must be record timestamps"
                )
            idx.append(int(hits[0]))
        lo, hi = idx
        if hi < lo:
            raise DataError(f"{where}: window {pair!r} of {key!r} ends before it starts")
        if rows and lo <= rows[-1][1]:
            raise DataError(
                f"{where}: windows of {key!r} overlap or are out of order at {pair!r}; "
                "NAB windows are disjoint and sorted"
            )
        rows.append((lo, hi))
    return tuple(rows)


def load_corpus(root: Path, categories: Sequence[str] | None = None) -> dict[str, NabFile]:
    """Load ``root/data/<category>/*.csv`` with their windows from ``labels/combined_windows.json``.

    Parameters
    ----------
    root
        A folder in NAB's layout.
    categories
        Category folder names to load; all under ``root/data`` when None.

    Returns
    -------
    dict
        ``{"<category>/<file>.csv": NabFile}``, sorted by key.

    Raises
    ------
    DataError
        When the folder layout is wrong, a file has no entry in the windows file, or a window
        edge matches no record.
    """
    root = Path(root)
    data_dir = root / "data"
    labels_path = root / "labels" / "combined_windows.json"
    if not data_dir.is_dir():
        raise DataError(f"{root}: no data/ folder; expected NAB's layout data/<category>/*.csv")
    if not labels_path.exists():
        raise DataError(f"{root}: no labels/combined_windows.json")
    try:
        all_windows = json.loads(labels_path.read_text())
    except ValueError as exc:
        raise DataError(f"{labels_path}: not valid JSON ({exc})") from exc
    if not isinstance(all_windows, dict):
        raise DataError(f"{labels_path}: expected an object {{file: [[start, end], ...]}}")
    available = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
    if categories is None:
        cats = available
    else:
        cats = list(categories)
        unknown = [c for c in cats if c not in available]
        if unknown:
            raise DataError(f"{data_dir}: no category folder(s) {unknown}; found {available}")
    corpus: dict[str, NabFile] = {}
    for cat in cats:
        for path in sorted((data_dir / cat).glob("*.csv")):
            key = f"{cat}/{path.name}"
            if key not in all_windows:
                raise DataError(
                    f"{labels_path}: no entry for {key!r}; every data file needs one "
                    "(an empty list when it has no anomaly)"
                )
            df = read_nab_csv(path)
            ts = df["timestamp"].to_numpy(dtype="datetime64[ns]")
            windows = _window_rows(key, ts, all_windows[key], labels_path)
            corpus[key] = NabFile(key, ts, df["value"].to_numpy(dtype=float), windows)
    if not corpus:
        raise DataError(f"{data_dir}: no CSV files in categories {cats}")
    return corpus


@dataclass(frozen=True)
class FileScore:
    """One file's raw NAB score and record counts (after the probationary period)."""

    score: float
    tp: int
    tn: int
    fp: int
    fn: int


def _check_scores(scores: np.ndarray, f: NabFile) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (f.n,):
        raise DataError(
            f"{f.key}: got {scores.shape} scores for {f.n} records; need exactly one per record"
        )
    if not np.isfinite(scores).all():
        row = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise DataError(f"{f.key}: score at row {row} is {scores[row]}; scores must be finite")
    return scores


def score_file(scores: np.ndarray, f: NabFile, threshold: float, profile: Profile) -> FileScore:
    """Score one file at ``threshold`` under ``profile``, exactly as NAB's sweeper does."""
    scores = _check_scores(scores, f)
    p = f.probationary
    detected = scores >= threshold
    detected[:p] = False
    wid = f.window_id
    in_win = wid >= 0
    scorable = np.zeros(f.n, dtype=bool)
    scorable[p:] = True
    tp = int((detected & in_win).sum())
    fp = int((detected & ~in_win).sum())
    fn = int((scorable & in_win).sum()) - tp
    tn = int((scorable & ~in_win).sum()) - fp
    sweep = f.sweep_scores(profile)
    total = float(sweep[detected & ~in_win].sum())
    for k in f.scorable_windows:
        lo, hi = f.windows[k]
        hits = np.flatnonzero(detected[max(lo, p) : hi + 1])
        total += float(sweep[max(lo, p) + hits[0]]) if len(hits) else -profile.fn
    return FileScore(score=total, tp=tp, tn=tn, fp=fp, fn=fn)


def threshold_curve(
    scores_by_file: Mapping[str, np.ndarray], corpus: Mapping[str, NabFile], profile: Profile
) -> tuple[np.ndarray, np.ndarray]:
    """The corpus raw score at every distinct score value used as threshold.

    Returns ``(thresholds, totals)``: thresholds in decreasing order, starting with the
    no-detection threshold (1.1, or just above the largest score), and the summed raw score of
    the files when detecting every record with score ``>= threshold``.
    """
    all_s: list[np.ndarray] = []
    all_d: list[np.ndarray] = []
    base = 0.0
    for key, raw in scores_by_file.items():
        f = _corpus_file(corpus, key)
        scores = _check_scores(raw, f)
        p = f.probationary
        sweep = f.sweep_scores(profile)
        wid = f.window_id
        out = np.flatnonzero(wid[p:] < 0) + p
        all_s.append(scores[out])
        all_d.append(sweep[out])
        for k in f.scorable_windows:
            lo, hi = f.windows[k]
            lo = max(lo, p)
            base -= profile.fn
            s = scores[lo : hi + 1]
            credit = sweep[lo : hi + 1]
            # The window's value at threshold t is the best credit among records >= t (the
            # earliest detection earns most), so it changes by the running-max increments.
            order = np.argsort(-s, kind="stable")
            best = np.maximum.accumulate(np.concatenate(([-profile.fn], credit[order])))
            all_s.append(s[order])
            all_d.append(np.diff(best))
    s_all = np.concatenate(all_s) if all_s else np.empty(0)
    d_all = np.concatenate(all_d) if all_d else np.empty(0)
    order = np.argsort(-s_all, kind="stable")
    s_sorted = s_all[order]
    cum = np.cumsum(d_all[order])
    # The total at threshold t includes every record with score >= t: take the last position
    # of each run of equal scores.
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True]) if len(s_sorted) else []
    top = NO_DETECTION_THRESHOLD
    if len(s_sorted) and s_sorted[0] >= top:
        top = float(np.nextafter(s_sorted[0], np.inf))
    thresholds = np.concatenate(([top], s_sorted[last]))
    totals = base + np.concatenate(([0.0], cum[last]))
    return thresholds, totals


def optimize_threshold(
    scores_by_file: Mapping[str, np.ndarray], corpus: Mapping[str, NabFile], profile: Profile
) -> tuple[float, float]:
    """NAB's threshold: the distinct score value maximising the summed raw score.

    Ties go to the highest threshold, as in NAB (a stable sort of its high-to-low sweep).

    Returns
    -------
    tuple
        ``(threshold, raw_total)``.
    """
    thresholds, totals = threshold_curve(scores_by_file, corpus, profile)
    best = int(np.argmax(totals))
    return float(thresholds[best]), float(totals[best])


def normalized_score(raw_total: float, n_windows: int, profile: Profile) -> float:
    """NAB's normalised score ``100 (S - S_null) / (S_perfect - S_null)``.

    ``S_perfect = A_TP n`` (every window hit at its left edge), ``S_null = -A_FN n`` (nothing
    detected), for ``n`` windows.

    >>> normalized_score(-30.0, 30, PROFILES["standard"])
    0.0
    >>> normalized_score(30.0, 30, PROFILES["standard"])
    100.0
    """
    if n_windows <= 0:
        raise DataError("normalized_score: the files hold no anomaly window; nothing to normalise")
    s_null = -profile.fn * n_windows
    s_perfect = profile.tp * n_windows
    return 100.0 * (raw_total - s_null) / (s_perfect - s_null)


def _corpus_file(corpus: Mapping[str, NabFile], key: str) -> NabFile:
    try:
        return corpus[key]
    except KeyError:
        raise DataError(f"scores given for {key!r}, which is not in the corpus") from None


@dataclass
class CorpusScore:
    """A detector's NAB scores on a corpus for several profiles.

    ``files[profile][key]`` is the :class:`FileScore`; ``categories[profile][cat]`` and
    ``overall[profile]`` are normalised scores (0 = no detection, 100 = perfect; None where the
    files hold no window);
    ``raw[profile]`` the summed raw score and ``thresholds[profile]`` the threshold used.
    """

    thresholds: dict[str, float]
    raw: dict[str, float]
    overall: dict[str, float | None]
    categories: dict[str, dict[str, float | None]]
    files: dict[str, dict[str, FileScore]]

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {
            "thresholds": self.thresholds,
            "raw": self.raw,
            "overall": self.overall,
            "categories": self.categories,
            "files": {
                prof: {k: vars(fs) for k, fs in per.items()} for prof, per in self.files.items()
            },
        }


def score_corpus(
    scores_by_file: Mapping[str, np.ndarray],
    corpus: Mapping[str, NabFile],
    profiles: Mapping[str, Profile] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> CorpusScore:
    """Score a detector on the files in ``scores_by_file`` under every profile.

    Parameters
    ----------
    scores_by_file
        ``{key: scores}`` for the files to score (a subset of ``corpus`` is fine: normalisation
        uses the windows of the scored files only).
    corpus
        The loaded files (:func:`load_corpus`).
    profiles
        Cost profiles; NAB's three by default.
    thresholds
        ``{profile: threshold}``; a profile missing here gets its threshold optimised on the
        scored files (NAB's rule).
    """
    profiles = dict(PROFILES if profiles is None else profiles)
    thresholds = dict(thresholds or {})
    keys = sorted(scores_by_file)
    files = [_corpus_file(corpus, k) for k in keys]
    out = CorpusScore({}, {}, {}, {}, {})
    for name, prof in profiles.items():
        if name in thresholds:
            thr = float(thresholds[name])
        else:
            thr, _ = optimize_threshold(scores_by_file, corpus, prof)
        per_file = {f.key: score_file(scores_by_file[f.key], f, thr, prof) for f in files}
        raw_total = sum(fs.score for fs in per_file.values())
        n_win = sum(f.n_windows for f in files)
        cats: dict[str, float | None] = {}
        for cat in sorted({f.category for f in files}):
            members = [f for f in files if f.category == cat]
            cat_win = sum(f.n_windows for f in members)
            cat_raw = sum(per_file[f.key].score for f in members)
            # A category without any window has no normalised score (nothing to find).
            cats[cat] = normalized_score(cat_raw, cat_win, prof) if cat_win else None
        out.thresholds[name] = thr
        out.raw[name] = raw_total
        out.overall[name] = normalized_score(raw_total, n_win, prof) if n_win else None
        out.categories[name] = cats
        out.files[name] = per_file
    return out


def load_published_scores(
    root: Path, detector: str, corpus: Mapping[str, NabFile]
) -> dict[str, np.ndarray]:
    """A published detector's ``anomaly_score`` per corpus file, aligned by row position.

    Reads ``root/results/<detector>/<category>/<detector>_<file>.csv``. NAB pairs scores with
    data rows by position; rows must carry the same timestamps, except that rows sharing one
    timestamp may come in another order (``randomCutForest`` lists a DST duplicate so).
    Files without a result are left out.
    """
    out: dict[str, np.ndarray] = {}
    for key, f in corpus.items():
        path = Path(root) / "results" / detector / f.category / f"{detector}_{f.name}"
        if not path.exists():
            continue
        df = read_nab_csv(path, columns=("timestamp", "anomaly_score"))
        ts = df["timestamp"].to_numpy(dtype="datetime64[ns]")
        if len(ts) != f.n or not np.array_equal(ts, f.timestamps):
            bad = f.n if len(ts) != f.n else int(np.flatnonzero(ts != f.timestamps)[0])
            raise DataError(
                f"{path}: {len(ts)} rows, first differing from the {f.n} records of {key} at "
                f"row {bad}; a result file must list the data file's timestamps in order"
            )
        out[key] = df["anomaly_score"].to_numpy(dtype=float)
    return out
