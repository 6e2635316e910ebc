"""Data layer: the Dataset contract, file I/O, the demo generator and anomaly injectors."""

from aws_anomaly.data.dataset import DEFAULT_ENTITY, LABEL_COLUMNS, Dataset

__all__ = ["DEFAULT_ENTITY", "LABEL_COLUMNS", "Dataset"]
