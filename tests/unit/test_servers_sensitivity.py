"""benchmarks/servers_sensitivity.py: each variant is the shipped default with one change, and
the table's leave-one-server-out row picks by the other servers' best F1.

The sensitivity table in docs/benchmarks.md means something only if "clip=5" is
``default_model(step)`` with ``clip=5`` and nothing else changed, and the first variant is the
shipped model itself.
"""

from __future__ import annotations

import pandas as pd
import pytest

from aws_anomaly.presets import default_model
from tests.unit.benchkit import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("servers_sensitivity.py", "servers_sensitivity")


def _settings(model) -> dict:
    return {"detector_params": model.detector_params, "clip": model.clip,
            "calibration_holdout": model.calibration_holdout, "scaler": model.scaler,
            "log_std": model.log_std, "spec": model.spec, "calibration": model.calibration}


def test_each_variant_is_the_shipped_default_with_one_change(bench):
    step = pd.Timedelta("1min")
    shipped = _settings(default_model(step))
    specs = bench.registry()
    assert list(specs) == list(bench.VARIANTS) and next(iter(specs)) == "shipped"
    for name, overrides in bench.VARIANTS.items():
        spec = specs[name]
        det = spec.factory(**spec.params)
        got = _settings(det._build(step))
        changed = {k for k in got if got[k] != shipped[k]}
        assert changed == set(overrides), (name, changed)
        for key, value in overrides.items():
            # detector_params are laid over the default's own (its tail term)
            want = {**shipped[key], **value} if key == "detector_params" else value
            assert got[key] == want
        assert det.validation_share is None  # fit on every training row, as shipped


def test_the_table_picks_leave_one_server_out_by_the_other_servers(bench):
    def run(best, f1, fpr):
        return {"status": "ok", "best_f1": best, "f1": f1, "fpr": fpr, "event_precision": 0.5}
    # "clip=5" wins on s1 and s2, "shipped" on s3: held out, s3 gets clip=5 (better on the
    # other two) and s1 / s2 get the variant that wins on the remaining pair
    servers = {"shipped": {"a/s1": run(0.5, 0.4, 0.01), "a/s2": run(0.5, 0.4, 0.01),
                           "a/s3": run(0.9, 0.8, 0.03)},
               "clip=5": {"a/s1": run(0.6, 0.5, 0.01), "a/s2": run(0.6, 0.5, 0.01),
                          "a/s3": run(0.2, 0.1, 0.01)}}
    report = {"detectors": {n: {"servers": servers.get(n, servers["shipped"])}
                            for n in bench.VARIANTS}}
    text = bench.table(report)
    assert "| shipped | 0.633 | 0.533 | 0.0167 | 0.030 | 1 | 0.500 |" in text
    assert "s3 clip=5" in text and "s1 shipped" in text and "s2 shipped" in text
    # s1, s2 with shipped (0.5 each), s3 with clip=5 (0.2): mean best F1 0.4
    assert "| chosen leave-one-server-out | 0.400 |" in text
