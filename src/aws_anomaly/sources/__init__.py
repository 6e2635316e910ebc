"""Metrics sources: Prometheus (and AMP with SigV4), CloudWatch, files and the demo replay.

Each returns the core :class:`~aws_anomaly.data.Dataset`; :func:`make_source` builds the one a
job's ``source`` section describes.
"""

from aws_anomaly.sources.base import BaseSource, Source, align_range, build_dataset, to_utc
from aws_anomaly.sources.factory import make_source

__all__ = ["BaseSource", "Source", "align_range", "build_dataset", "make_source", "to_utc"]
