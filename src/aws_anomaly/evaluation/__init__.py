"""Evaluation: chronological splits (``split``), point and event metrics (``metrics``), HTML and
JSON reports (``report``) and NAB scoring (``nab``).

Import the submodules directly, e.g. ``from aws_anomaly.evaluation.split import
chronological_split``; this package file stays free of imports so each part loads on its own.
"""
