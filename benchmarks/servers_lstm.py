"""The LSTM autoencoder against the default's kNN on the real servers, alone and averaged.

Runs the servers bench (:func:`aws_anomaly.evaluation.servers_bench.run_servers_bench`, the
same fit / causal scoring / metrics as ``aws-anomaly bench servers``) on three detectors:

* ``aws_default``: ``default_model(step)`` (kNN over the level and stationary views);
* ``aws_lstm``: ``default_model(step, detector="lstm_ae")`` (the same features and POT
  threshold, the LSTM autoencoder's reconstruction error as the raw score);
* ``aws_knn_lstm``: the mean of the two models' calibrated scores (each 1.0 at its own
  threshold), flagged at >= 1.0.

The two models are fit once per server and shared with the mean (one process, ``workers=1``),
so the mean's fit and score seconds here are only its own extra work: its real cost is the sum
of both members'. Needs the 'deep' extra (PyTorch). Usage::

    nice .venv/bin/python benchmarks/servers_lstm.py ../shared/data/servers out/bench-lstm

Results: docs/benchmarks.md and docs/model.md ("How it was chosen").
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from aws_anomaly.data import Dataset
from aws_anomaly.evaluation.servers_bench import (
    DetectorSpec,
    ModelDetector,
    render_markdown,
    run_servers_bench,
)

#: Fitted models by (id of the training dataset, parameters): one fit per server and model.
_FITTED: dict[tuple[int, str], ModelDetector] = {}


def _fitted(train: Dataset, params: Mapping[str, Any]) -> ModelDetector:
    key = (id(train), json.dumps(params, sort_keys=True))
    if key not in _FITTED:
        if any(k[0] != id(train) for k in _FITTED):
            _FITTED.clear()  # the tasks run server by server: the last server's models go
        _FITTED[key] = ModelDetector(**params).fit(train)
    return _FITTED[key]


class SharedModel:
    """A :class:`ModelDetector` whose fit is shared with :class:`MeanScore` (same server)."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def fit(self, train: Dataset) -> SharedModel:
        self.model_ = _fitted(train, self.params)
        return self

    def score(self, test: Dataset, history: Dataset | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        return self.model_.score(test, history)


class MeanScore:
    """The mean of the members' calibrated scores, flagged at >= 1.0."""

    def __init__(self, members: tuple[Mapping[str, Any], ...] = ()) -> None:
        self.members = members

    def fit(self, train: Dataset) -> MeanScore:
        self.models_ = [_fitted(train, dict(m)) for m in self.members]
        return self

    def score(self, test: Dataset, history: Dataset | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        scores = np.mean([m.score(test, history)[0] for m in self.models_], axis=0)
        return scores, scores >= 1.0


KNN = {"builder": "default_model", "validation_share": None}
LSTM = {**KNN, "detector": "lstm_ae"}
REGISTRY = {
    "aws_default": DetectorSpec(SharedModel, KNN, (), "product", "default_model(step)"),
    "aws_lstm": DetectorSpec(SharedModel, LSTM, (), "product",
                             "default_model(step, detector='lstm_ae')"),
    "aws_knn_lstm": DetectorSpec(MeanScore, {"members": (KNN, LSTM)}, (), "product",
                                 "mean of the calibrated scores of aws_default and aws_lstm"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", help="<dataset>/<server>/{train,test}.parquet folder")
    parser.add_argument("out", help="output folder (scores.json, scores.md)")
    parser.add_argument("--servers", action="append", help="glob on dataset/server")
    args = parser.parse_args()
    report = run_servers_bench(args.data, args.out, servers=args.servers, registry=REGISTRY,
                               workers=1, progress=False)
    print(render_markdown(report))


if __name__ == "__main__":
    main()
