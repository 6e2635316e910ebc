"""The chosen streaming detector on real NAB files: causal, and far better than doing nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aws_anomaly.evaluation.nab import PROFILES, load_corpus, score_file
from aws_anomaly.streaming import BEST_DETECTOR, NAB_DETECTORS

pytestmark = pytest.mark.nab

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


def test_scores_are_causal_on_real_data(corpus, scores) -> None:
    key = FILES[0]
    f = corpus[key]
    cut = f.windows[0][0] + 50  # inside the first anomaly window
    part = NAB_DETECTORS[BEST_DETECTOR]().run(f.timestamps[:cut], f.values[:cut], f.probationary)
    np.testing.assert_array_equal(part, scores[key][:cut])
    assert np.all((scores[key] >= 0) & (scores[key] <= 1))
