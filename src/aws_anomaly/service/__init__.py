"""The long-running service: FastAPI app, scheduler, exporter, notifiers and dashboard.

Only this package imports FastAPI and prometheus_client. Build the app with
:func:`aws_anomaly.service.app.create_app`; run it with ``aws-anomaly serve``.
"""
