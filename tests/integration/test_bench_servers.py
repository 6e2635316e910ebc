"""`aws-anomaly bench servers` on one real ASD server: layout, schema, metrics, causality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import aws_anomaly.cli.bench  # noqa: F401  (registers the bench commands)
from aws_anomaly.cli.app import app
from aws_anomaly.evaluation.servers_bench import (
    DETECTORS,
    SCHEMA,
    load_server,
    score_server,
    server_metrics,
)

pytestmark = [pytest.mark.nab, pytest.mark.integration]

SERVER = "asd/omi-1"  # 19 metrics, none constant in training: every detector should run


@pytest.fixture(scope="module")
def bench(servers_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("bench-servers")
    result = CliRunner().invoke(app, [
        "bench", "servers", "--data", str(servers_root), "--out", str(out),
        "--servers", SERVER, "--workers", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (out / "scores.md").read_text() in result.output
    return result.output, json.loads((out / "scores.json").read_text())


def test_server_matches_the_inventory(bench, servers_root: Path) -> None:
    _, rep = bench
    assert rep["schema"] == SCHEMA
    assert list(rep["servers"]) == [SERVER]
    inv = next(e for e in json.loads((servers_root / "inventory.json").read_text())
               if f"{e['dataset']}/{e['entity']}" == SERVER)
    info = rep["servers"][SERVER]
    assert (info["metrics"], info["train_rows"], info["test_rows"], info["events"]) == (
        inv["metrics"], inv["train_rows"], inv["test_rows"], inv["events"])
    assert info["anomalous_share"] == pytest.approx(inv["anomalous_share"], abs=5e-5)
    assert info["step"] == "5min" and info["history_contiguous"] is True


def test_every_detector_ran_causally_with_sane_metrics(bench) -> None:
    output, rep = bench
    assert list(rep["detectors"]) == [n for n, s in DETECTORS.items() if not s.named_only]
    share = rep["servers"][SERVER]["anomalous_share"]
    flag_all_f1 = 2 * share / (1 + share)
    for name, d in rep["detectors"].items():
        r = d["servers"][SERVER]
        assert r["status"] == "ok", (name, r.get("error"))
        assert r["causal"] is True
        for key in ("precision", "recall", "f1", "fpr", "best_f1", "event_recall",
                    "event_precision", "composite_f1"):
            assert 0.0 <= r[key] <= 1.0, (name, key)
        assert r["best_f1"] >= r["f1"] - 1e-12
        assert r["n_events"] == rep["servers"][SERVER]["events"]
        assert r["fpr"] < 0.1  # label-free thresholds aimed at ~1 % of normal rows
        assert f"| {name} |" in output
    # at least one detector must beat flagging every point
    assert max(d["servers"][SERVER]["best_f1"] for d in rep["detectors"].values()) > flag_all_f1
    assert set(rep["detectors"]["knn"]["loso"]["servers"]) == {SERVER}


def test_cli_numbers_equal_the_library_path(bench, servers_root: Path) -> None:
    _, rep = bench
    data = load_server(SERVER, servers_root / SERVER)
    spec = DETECTORS["pca"]
    run = score_server(spec.factory, spec.params, data, check_causality=False)
    m = server_metrics(data.labels, run["scores"], run["flags"], data.train.step)
    got = rep["detectors"]["pca"]["servers"][SERVER]
    for key in ("precision", "recall", "best_f1", "event_recall", "event_precision"):
        assert got[key] == pytest.approx(m[key])
    assert np.isfinite(run["scores"]).all()
