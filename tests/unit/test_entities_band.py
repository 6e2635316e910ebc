"""The expected band travels from the model through the runner's display points to
``/v1/entities/{entity}/series`` (the dashboard draws it), with null where it has no history,
and the vendored chart library is served by the app (nothing fetched elsewhere)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from aws_anomaly.config import Settings
from aws_anomaly.model import AnomalyModel
from aws_anomaly.service.app import create_app
from aws_anomaly.sources.demo import DemoSource

T0 = pd.Timestamp("2026-03-01T00:00Z")
STATIC = Path(__file__).parents[2] / "src" / "aws_anomaly" / "service" / "static"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    s = Settings.model_validate({
        "service": {"data_dir": str(tmp_path_factory.mktemp("band"))},
        "jobs": [{"name": "demo", "lookback": "1d", "interval": "5m", "model": {"history": "3d"},
                  "source": {"type": "demo", "clusters": 2, "days": 4, "speedup": 60,
                             "future_days": 1}}]})
    src = DemoSource(s.jobs[0].source, start=T0, wall_clock=lambda: 0.0)
    model = AnomalyModel(calibration={"method": "target_fpr", "target_fpr": 0.02}).fit(
        src.fetch(T0 - pd.Timedelta(days=3), T0))
    app = create_app(s, sources={"demo": src}, models={"demo": model}, scheduler=False)
    state = app.state.aws_anomaly
    with TestClient(app) as client:
        assert state.runners["demo"].tick().ok
        yield client, state, model, src


def test_series_carries_the_models_band_per_point(env) -> None:
    client, state, model, _ = env
    runner = state.runners["demo"]
    entity = runner.entities()[0]
    rec = runner.recent(entity)
    body = client.get(f"/v1/entities/{entity}/series", params={"points": 5000}).json()
    metrics = body["metrics"]
    assert metrics == list(model.metrics_)
    n = len(body["timestamps"])
    assert n == len(rec) > 100
    assert [pd.Timestamp(t) for t in body["timestamps"]] == list(rec["timestamp"])
    for m in metrics:
        for part in ("expected", "lower", "upper"):
            got = body[part][m]
            # The runner keeps the model's band columns for display; NaN (no history) -> null.
            exp = rec[f"{part}_{m}"].to_numpy()
            assert len(got) == n
            for g, e in zip(got, exp, strict=True):
                assert (g is None) == (not math.isfinite(e))
                if g is not None:
                    assert g == e
        lo = np.array([v if v is not None else np.nan for v in body["lower"][m]])
        hi = np.array([v if v is not None else np.nan for v in body["upper"][m]])
        ok = np.isfinite(lo) & np.isfinite(hi)
        assert ok.sum() > n // 2  # two days of look-back: the band is there for most points
        assert (lo[ok] <= hi[ok]).all()


def test_vendored_uplot_is_package_data_and_served(env) -> None:
    client = env[0]
    page = client.get("/").text
    for path in ("/static/vendor/uPlot.iife.min.js", "/static/vendor/uPlot.min.css",
                 "/static/charts.js", "/static/dashboard.js"):
        assert f'"{path}"' in page
        r = client.get(path)
        assert r.status_code == 200, path
    js = client.get("/static/vendor/uPlot.iife.min.js").text
    assert js == (STATIC / "vendor" / "uPlot.iife.min.js").read_text()
    assert "(v1.6.32)" in js and "var uPlot=" in js
    assert "MIT License" in (STATIC / "vendor" / "uPlot.LICENSE").read_text()
    assert "1.6.32" in (STATIC / "vendor" / "README.md").read_text()
    # package data: the wheel's glob takes the vendor folder too
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["aws_anomaly"]
    assert "service/static/**/*" in globs
