"""The ensemble accepts members that train on a subsample of the rows (LOF)."""

from __future__ import annotations

import numpy as np

from aws_anomaly.detectors import make_detector


def test_ensemble_with_a_subsampling_member_fits_and_ranks_a_spike_highest() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 5))
    det = make_detector("ensemble", members=("lof", "robust"),
                        member_params={"lof": {"max_samples": 500}}, random_state=0).fit(X)
    held_out = rng.normal(size=(200, 5))
    held_out[17] += 8.0
    scores = det.score_samples(held_out)
    assert scores.shape == (200,) and np.isfinite(scores).all()
    assert int(np.argmax(scores)) == 17
    assert det.predict(held_out)[17] == -1
    # the ensemble's offset comes from a score for every training row
    assert np.isfinite(det.offset_)
