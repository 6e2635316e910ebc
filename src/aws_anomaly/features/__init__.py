"""Causal features of metric series: one spec, one implementation, batch and streaming.

* :class:`FeatureSpec` — which features (windows, lags, quantiles, seasonal, cross-metric and
  calendar terms); frozen and JSON-serialisable, saved with every model. The definitions of all
  feature families are in :mod:`aws_anomaly.features.spec`.
* :func:`build_features` — a whole series at once -> :class:`FeatureMatrix`;
  :func:`iter_features` — the same rows in chunks, for scoring long series in bounded memory.
* :class:`StreamingFeatureBuilder` — one row at a time, the same numbers.
* :func:`feature_names`, :func:`check_history` — layout and length checks without data.

Design
------
*Causal*: row ``t`` of every feature uses rows ``<= t`` only; before ``spec.min_history`` rows
(289 by default: the 288-row window and the one-day seasonal lag) windows are expanding, lags
compare with the first row, and every value is finite.

*One implementation*: each feature is a finish function (:mod:`.kernels`) of a few primitives:
rolling sums of centred values, squares and cross products, rolling min / max, sorted windows,
lagged values and the timestamp. Both builders feed the same finish functions; only the way the
primitives are obtained differs (vectorised over a chunk of rows in batch, incremental in
streaming).

*Batch = streaming*: rolling sums use an aligned-block decomposition (window = suffix of the
previous block + prefix of the current block, blocks of ``w`` rows from row 0). Both builders
perform the very same floating-point additions in the same order, so the sums — and everything
derived from them — are bit-identical, and the rounding error is bounded by the window length,
not by the series length. Min / max and order statistics are exact. Only ``sin``/``cos`` of the
calendar terms may differ in the last bit. The streaming state can be rebuilt from the raw
history alone (:meth:`StreamingFeatureBuilder.warm`, ``get_state`` / ``from_state``).

*Rows are steps*: windows and lags count rows; regularising the time grid (gaps) is the
``Dataset`` layer's job. The aligned blocks start at the first row given, so a batch over a
different start row agrees with streaming to rounding (~1e-12), not to the bit.
"""

from aws_anomaly.features.batch import FeatureMatrix, build_features, iter_features
from aws_anomaly.features.spec import FeatureSpec, check_history, feature_names
from aws_anomaly.features.streaming import StreamingFeatureBuilder

__all__ = [
    "FeatureMatrix",
    "FeatureSpec",
    "StreamingFeatureBuilder",
    "build_features",
    "check_history",
    "feature_names",
    "iter_features",
]
