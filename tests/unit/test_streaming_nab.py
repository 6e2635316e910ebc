"""Our streaming detectors on NAB files: real ones (causal, far better than doing nothing) and a
synthetic NAB-layout folder whose file has duplicated timestamps, an irregular step and a clock
jump backwards (every record is scored in file order; errors name file, record and times)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.errors import DataError
from aws_anomaly.evaluation.nab import PROFILES, load_corpus, score_file
from aws_anomaly.evaluation.nab_bench import run_nab_bench
from aws_anomaly.streaming import BEST_DETECTOR, NAB_DETECTORS, StreamingDetector

# Three files with different anomaly kinds: a spike then a level shift (rds e47b3b), a level
# shift (ec2 cpu ac20cd), bursts of spikes among spikes (ec2 network 5abac7).
FILES = (
    "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv",
    "realAWSCloudwatch/ec2_network_in_5abac7.csv",
)


@pytest.fixture(scope="module")
def corpus(nab_root: Path):
    full = load_corpus(nab_root, ["realAWSCloudwatch"])
    return {k: full[k] for k in FILES}


@pytest.fixture(scope="module")
def scores(corpus):
    return {k: NAB_DETECTORS[BEST_DETECTOR]().run(f.timestamps, f.values, f.probationary)
            for k, f in corpus.items()}


@pytest.mark.nab
def test_best_detector_beats_null_by_a_margin(corpus, scores) -> None:
    prof = PROFILES["standard"]
    n_windows = sum(len(f.windows) for f in corpus.values())
    null_raw = -prof.fn * n_windows  # the `null` detector never fires
    # At the alarm level the detector itself uses (not a threshold tuned on these files).
    raw = sum(score_file(scores[k], corpus[k], 0.45, prof).score for k in FILES)
    hit = sum(score_file(scores[k], corpus[k], 0.45, prof).tp > 0 for k in FILES)
    assert hit == len(FILES)
    # normalised > 50 on these files: most windows caught, few false alarms
    assert 100 * (raw - null_raw) / (n_windows * prof.tp - null_raw) > 50


@pytest.mark.nab
def test_scores_are_causal_on_real_data(corpus, scores) -> None:
    key = FILES[0]
    f = corpus[key]
    cut = f.windows[0][0] + 50  # inside the first anomaly window
    part = NAB_DETECTORS[BEST_DETECTOR]().run(f.timestamps[:cut], f.values[:cut], f.probationary)
    np.testing.assert_array_equal(part, scores[key][:cut])
    assert np.all((scores[key] >= 0) & (scores[key] <= 1))


# ------------------------------------------------------------------ messy timestamps, synthetic
N = 1400
JUMP = 1000     # record JUMP is stamped one hour before record JUMP - 1
SPIKE = 1150    # a spike after the jump, inside the window


def _messy_stamps() -> np.ndarray:
    """5-minute steps with 3 duplicated timestamps, one 17-minute step, one jump back of 1 h."""
    steps = np.full(N, 300, dtype=np.int64)
    steps[0] = 0
    steps[[400, 401, 650]] = 0        # duplicates (like NAB's DST repeats)
    steps[500] = 17 * 60              # an irregular step
    steps[JUMP] = -3600               # the clock jumps back one hour
    t0 = np.datetime64("2021-03-01T00:00:00", "s").astype(np.int64)
    return (t0 + np.cumsum(steps)).astype("datetime64[s]").astype("datetime64[ns]")


def _messy_values() -> np.ndarray:
    rng = np.random.default_rng(7)
    i = np.arange(N)
    x = 50 + 10 * np.sin(2 * np.pi * i / 288) + rng.normal(0, 1, N)
    x[SPIKE : SPIKE + 3] += 80
    return x


def _fmt(t: np.datetime64) -> str:
    return str(t.astype("datetime64[s]")).replace("T", " ")


def _write_messy_folder(root: Path) -> str:
    ts, x = _messy_stamps(), _messy_values()
    stamps = [_fmt(t) for t in ts]
    (root / "data" / "synthMessy").mkdir(parents=True)
    (root / "labels").mkdir()
    lines = ["timestamp,value", *(f"{s},{v:.4f}" for s, v in zip(stamps, x, strict=True))]
    (root / "data" / "synthMessy" / "jumpy.csv").write_text("\n".join(lines) + "\n")
    windows = {"synthMessy/jumpy.csv": [[f"{stamps[SPIKE - 30]}.000000",
                                         f"{stamps[SPIKE + 30]}.000000"]]}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows, indent=4))
    return "synthMessy/jumpy.csv"


def test_messy_stamps_are_what_the_test_claims() -> None:
    d = np.diff(_messy_stamps().astype(np.int64)) // 10**9
    assert (d == 0).sum() == 3 and (d == 17 * 60).sum() == 1
    assert np.flatnonzero(d < 0).tolist() == [JUMP - 1] and d[JUMP - 1] == -3600


@pytest.mark.parametrize("name", sorted(NAB_DETECTORS))
def test_detectors_score_every_record_in_file_order(name: str) -> None:
    ts, x = _messy_stamps(), _messy_values()
    full = NAB_DETECTORS[name]().run(ts, x, 210)
    assert full.shape == (N,) and np.all((full >= 0) & (full <= 1))
    # Causal across the jump: a run stopping after it gives the same first scores.
    cut = JUMP + 60
    np.testing.assert_array_equal(NAB_DETECTORS[name]().run(ts[:cut], x[:cut], 210), full[:cut])
    # Before the jump, run equals live update record by record (duplicates included).
    det = NAB_DETECTORS[name]().reset(210)
    live = [det.update(t, v) for t, v in zip(ts[:JUMP], x[:JUMP], strict=True)]
    np.testing.assert_allclose(live, full[:JUMP], rtol=0, atol=1e-12)
    # Live update refuses the jump back (a live stream must not replay); the message says
    # which record and both times.
    with pytest.raises(DataError, match=rf"record {JUMP} goes backwards .*"
                       rf"{_fmt(ts[JUMP])}.*{_fmt(ts[JUMP - 1])}"):
        det.update(ts[JUMP], x[JUMP])


def test_bench_scores_a_messy_file_in_file_order(tmp_path: Path) -> None:
    key = _write_messy_folder(tmp_path / "nab")
    run_nab_bench(tmp_path / "nab", tmp_path / "out", detectors=sorted(NAB_DETECTORS),
                  folds=None, workers=1, progress=False)
    ts, x = _messy_stamps(), _messy_values()
    report = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert report["files"][key]["n"] == N
    for name in NAB_DETECTORS:
        out = pd.read_csv(tmp_path / "out" / "results" / name / "synthMessy" /
                          f"{name}_jumpy.csv")
        # One row per record, in the file's order (the jump back is kept, not sorted away).
        assert len(out) == N
        assert (pd.to_datetime(out["timestamp"]).to_numpy() == ts).all()
        assert np.allclose(out["value"], x, atol=1e-4)
        expected = NAB_DETECTORS[name]().run(ts, np.round(x, 4), report["files"][key]
                                             ["probationary"])
        np.testing.assert_allclose(out["anomaly_score"], expected, atol=1e-9)
        # The spike after the jump is found.
        fs = report["detectors"][name]["files"]["standard"][key]
        assert fs["tp"] > 0, name


class _Strict(StreamingDetector):
    """Refuses a timestamp earlier than the previous one (as a detector may on purpose)."""

    def _reset(self) -> None:
        self.prev_: int | None = None

    def _step(self, t_ns: int, x: float) -> float:
        if self.prev_ is not None and t_ns < self.prev_:
            raise DataError("this detector needs non-decreasing timestamps")
        self.prev_ = t_ns
        return 0.0


def test_a_detector_error_names_file_record_and_both_times(tmp_path: Path) -> None:
    key = _write_messy_folder(tmp_path / "nab")
    ts = _messy_stamps()
    with pytest.raises(DataError) as err:
        run_nab_bench(tmp_path / "nab", tmp_path / "out", detectors=["strict"], folds=None,
                      workers=1, progress=False, extra={"strict": ("ours", _Strict)})
    msg = str(err.value)
    assert msg.startswith(f"{key}: detector 'strict' failed: record {JUMP} ")
    assert f"timestamp {_fmt(ts[JUMP])}" in msg and f"previous record {_fmt(ts[JUMP - 1])}" in msg
    assert "non-decreasing" in msg and "\n" not in msg
