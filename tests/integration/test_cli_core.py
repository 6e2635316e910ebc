"""End to end through the CLI: generate -> train -> evaluate -> score, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from aws_anomaly.cli import main
from aws_anomaly.data.generator import write_demo

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    write_demo(root / "data", clusters=2, days=7, seed=3)
    return root


@pytest.fixture(scope="module")
def trained(workdir: Path) -> Path:
    rc = main(["train", "--data", str(workdir / "data"), "--out", str(workdir / "model"),
               "--detector", "robust", "--threshold", "best-f1", "--seed", "1"])
    assert rc == 0
    return workdir / "model"


def test_train_prints_table_and_saves_bundle(trained: Path, workdir: Path, capsys) -> None:
    manifest = json.loads((trained / "manifest.json").read_text())
    assert manifest["model"]["detector"] == "robust"
    assert set(manifest["evaluation"]) == {"validation", "test"}
    assert manifest["split"]["fractions"] == [0.7, 0.15, 0.15]
    rc = main(["train", "--data", str(workdir / "data"), "--out", str(workdir / "m2"),
               "--detector", "robust"])
    out = capsys.readouterr().out
    assert rc == 0
    for text in ("F1-Score", "Precision", "Recall", "FPR", "Validation", "Test", "Difference",
                 "Confusion matrix (test set)", "Actual Normal"):
        assert text in out


def test_evaluate_writes_metrics_and_report(trained: Path, workdir: Path) -> None:
    report = workdir / "report"
    rc = main(["evaluate", "--data", str(workdir / "data"), "--model", str(trained),
               "--report", str(report)])
    assert rc == 0
    metrics = json.loads((report / "metrics.json").read_text())
    for split in ("validation", "test"):
        m = metrics[split]
        for key in ("f1", "precision", "recall", "fpr", "event_recall", "event_precision",
                    "mean_detection_delay_steps", "confusion_matrix", "per_type_recall"):
            assert key in m
        assert 0.0 <= m["f1"] <= 1.0 and m["n_events"] > 0
    # the same numbers train recorded for the test split
    manifest = json.loads((trained / "manifest.json").read_text())
    assert metrics["test"]["f1"] == pytest.approx(manifest["evaluation"]["test"]["f1"])
    page = (report / "report.html").read_text()
    assert "<svg" in page and "<script src" not in page


def test_score_in_process_and_subprocess(trained: Path, workdir: Path) -> None:
    out = workdir / "scores.csv"
    assert main(["score", "--data", str(workdir / "data" / "metrics.csv"), "--model",
                 str(trained), "--out", str(out)]) == 0
    s = pd.read_csv(out)
    assert list(s.columns) == ["timestamp", "entity", "anomaly_score", "is_anomaly",
                               "top_metric"]
    assert len(s) == 2 * 7 * 288
    assert s["is_anomaly"].isin([0, 1]).all() and s["is_anomaly"].sum() > 0
    assert (s.loc[s["is_anomaly"] == 1, "top_metric"].notna()).all()

    exe = Path(sys.executable).parent / "aws-anomaly"
    if not exe.exists():
        exe = REPO / ".venv" / "bin" / "aws-anomaly"
    out2 = workdir / "scores2.csv"
    proc = subprocess.run([str(exe), "score", "--data", str(workdir / "data"), "--model",
                           str(trained), "--out", str(out2)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "scored 4032 rows" in proc.stdout
    pd.testing.assert_frame_equal(pd.read_csv(out2), s)


def test_errors_are_one_line_exit_2(trained: Path, workdir: Path, capsys) -> None:
    manifest = trained.parent / "tampered"
    import shutil

    shutil.copytree(trained, manifest)
    (manifest / "scaler_scale.npy").write_bytes(b"\x93NUMPY garbage")
    rc = main(["score", "--data", str(workdir / "data"), "--model", str(manifest), "--out",
               str(workdir / "x.csv")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: ") and "scaler_scale.npy was modified" in err
    assert len(err.splitlines()) == 1
    rc = main(["train", "--data", str(workdir / "data"), "--out", str(workdir / "m3"),
               "--threshold", "p99"])
    assert rc == 2 and "unknown threshold 'p99'" in capsys.readouterr().err
    rc = main(["train", "--data", str(workdir / "missing.csv"), "--out", str(workdir / "m3")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
