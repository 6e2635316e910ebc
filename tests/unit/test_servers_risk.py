"""benchmarks/servers_risk.py: the per-day budget study reproduces the model's own threshold
at the budget the shipped default uses, and the old per-point rule at ``None``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.evaluation.servers_bench import load_server, server_metrics
from aws_anomaly.presets import default_model
from aws_anomaly.threshold import pot_risk
from tests.unit.benchkit import load_benchmark, toy_server


@pytest.fixture(scope="module")
def risk_bench():
    yield from load_benchmark("servers_risk.py", "servers_risk")


@pytest.fixture(scope="module")
def thresholds_bench():
    yield from load_benchmark("servers_thresholds.py", "servers_thresholds")


def test_budget_of_the_default_is_the_models_own_flags(risk_bench, thresholds_bench,
                                                       tmp_path) -> None:
    rng = np.random.default_rng(5)
    n_train, n_test = 4 * 288, 288

    def anomalies(frame: pd.DataFrame, y: np.ndarray) -> None:
        frame.loc[n_train + 100:n_train + 130, "m01"] += 0.3
        y[n_train + 100:n_train + 131] = 1

    folder = toy_server(tmp_path / "servers", rng, n_train, n_test, anomalies)
    (tmp_path / "dump").mkdir()
    thresholds_bench.dump_server("toy/srv-1", folder, tmp_path / "dump")
    dumps = risk_bench.load_dumps(tmp_path / "dump")
    step = pd.Timedelta("5min")
    assert risk_bench.risk_of(None, step) == 1e-3
    assert risk_bench.risk_of(1.44, step) == pytest.approx(pot_risk(step))
    data = load_server("toy/srv-1", folder)
    model = default_model(data.train.step).fit(data.train)
    out = model.score(data.test, history=data.train, explain="none")
    want = server_metrics(data.labels, out["anomaly_score"], out["is_anomaly"], step)
    got = risk_bench.evaluate(dumps, 1.44)["toy/srv-1"]
    assert got["f1"] == pytest.approx(want["f1"]) and got["fpr"] == pytest.approx(want["fpr"])
    # a smaller budget never flags more
    assert risk_bench.evaluate(dumps, 0.25)["toy/srv-1"]["fpr"] <= got["fpr"]


def test_needs_a_dump_or_demo_seeds(risk_bench) -> None:
    with pytest.raises(SystemExit):
        risk_bench.main([])


def test_prints_the_table_and_the_leave_one_out_choice(risk_bench, thresholds_bench, tmp_path,
                                                       capsys) -> None:
    rng = np.random.default_rng(6)

    def anomalies(frame: pd.DataFrame, y: np.ndarray) -> None:
        frame.loc[4 * 288 + 50:4 * 288 + 60, "m00"] += 0.5
        y[4 * 288 + 50:4 * 288 + 61] = 1

    folder = toy_server(tmp_path / "servers", rng, 4 * 288, 288, anomalies)
    dump = tmp_path / "dump"
    dump.mkdir()
    first = thresholds_bench.dump_server("toy/srv-1", folder, dump)
    (dump / "toy__srv-2.npz").write_bytes(first.read_bytes())  # a second server to leave out
    risk_bench.main(["--dump", str(dump)])
    text = capsys.readouterr().out
    assert "| 1.44 a day |" in text and "| 1e-3 a point (until 2026-12-02) |" in text
    assert "leave-one-server-out" in text and "('srv-2', " in text
