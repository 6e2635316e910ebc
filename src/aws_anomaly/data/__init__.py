"""Data layer: the Dataset contract, file I/O, the demo generator and anomaly injectors."""

from aws_anomaly.data.anomalies import ANOMALY_KINDS, inject_anomalies
from aws_anomaly.data.dataset import DEFAULT_ENTITY, LABEL_COLUMNS, Dataset
from aws_anomaly.data.generator import DEFAULT_METRICS, generate_demo, write_demo
from aws_anomaly.data.io import read_dataset, write_dataset

__all__ = [
    "ANOMALY_KINDS",
    "DEFAULT_ENTITY",
    "DEFAULT_METRICS",
    "LABEL_COLUMNS",
    "Dataset",
    "generate_demo",
    "inject_anomalies",
    "read_dataset",
    "write_dataset",
    "write_demo",
]
