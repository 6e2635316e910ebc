"""aws-anomaly: anomaly detection for AWS and Kubernetes (EKS) cluster metrics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aws-anomaly")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
