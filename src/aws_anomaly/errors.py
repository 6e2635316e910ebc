"""The project's exception hierarchy.

Every error raised on purpose by aws-anomaly derives from :class:`AwsAnomalyError`, and each
subclass also derives from the built-in exception it refines, so callers can catch either
(``except DataError`` or ``except ValueError``). Messages say what is wrong, where, and what is
allowed; the CLI and the HTTP service print them as they are, never a traceback.
"""

from __future__ import annotations

__all__ = [
    "AwsAnomalyError",
    "ConfigError",
    "DataError",
    "ModelFileError",
    "NotFittedError",
    "NotifierError",
    "SourceError",
    "StoreError",
    "plain",
    "show",
]


class AwsAnomalyError(Exception):
    """Root of all errors raised on purpose by aws-anomaly."""


class DataError(AwsAnomalyError, ValueError):
    """Input data is malformed: missing columns, bad timestamps, NaN, too short, constant..."""


class ConfigError(AwsAnomalyError, ValueError):
    """A configuration file, option or environment variable is invalid."""


class ModelFileError(AwsAnomalyError, OSError):
    """A model bundle is missing, altered, or was written by an incompatible version."""


class NotFittedError(AwsAnomalyError, AttributeError):
    """An estimator or model was used before ``fit``.

    The detectors raise a subclass that is also scikit-learn's ``NotFittedError``
    (``aws_anomaly.detectors.base.DetectorNotFittedError``), so ``check_is_fitted`` users and
    code catching this class both work; this layer does not import scikit-learn.
    """


class SourceError(AwsAnomalyError, ConnectionError):
    """A metrics source (Prometheus, CloudWatch, file) could not be read."""

    def __init__(self, message: str, *, url: str | None = None, query: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.query = query
        self.status = status


class NotifierError(AwsAnomalyError, ConnectionError):
    """A notification could not be delivered.

    ``permanent`` is True when retrying cannot help (the receiver rejected the request, 4xx).
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class StoreError(AwsAnomalyError, RuntimeError):
    """The anomaly store could not be read or written."""


def plain(value: object) -> object:
    """``value`` with numpy scalars and arrays turned into Python numbers and lists (inside
    lists, tuples and dicts too), so messages never read ``np.float64(0.4)``.

    >>> import numpy as np
    >>> plain(np.float64(0.4)), plain([np.int64(3), (np.float32(0.5),)]), plain(np.arange(2))
    (0.4, [3, (0.5,)], [0, 1])
    """
    if type(value).__module__ == "numpy":
        tolist = getattr(value, "tolist", None)  # scalars and arrays; this layer has no numpy
        if callable(tolist):
            return tolist()
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    return value


def show(value: object) -> str:
    """``repr`` for messages, numbers as written (``0.4``, not ``np.float64(0.4)``).

    >>> import numpy as np
    >>> f"got {show(np.float64(0.4))}, {show('a')}, {show([np.int64(1), 2.5])}"
    "got 0.4, 'a', [1, 2.5]"
    """
    return repr(plain(value))
