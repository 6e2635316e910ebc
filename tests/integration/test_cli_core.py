"""End to end through the CLI: generate -> train -> evaluate -> score, and clear errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    # charts drawn by the inlined uPlot from the inlined data; nothing fetched
    assert "id='report-data'" in page and "<script src" not in page
    assert "best F1 on the labelled validation part" in page  # the threshold, from the model


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


def test_score_into_a_folder_and_version(trained: Path, workdir: Path, capsys) -> None:
    folder = workdir / "scores-here"
    folder.mkdir()
    assert main(["score", "--data", str(workdir / "data"), "--model", str(trained),
                 "--out", str(folder)]) == 0
    assert len(pd.read_csv(folder / "scores.csv")) == 2 * 7 * 288
    blocker = workdir / "a-file"
    blocker.write_text("x")
    capsys.readouterr()
    assert main(["score", "--data", str(workdir / "data"), "--model", str(trained),
                 "--out", str(blocker / "scores.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err
    from aws_anomaly import __version__
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"aws-anomaly {__version__}"


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


# ---------------------------------------------------------------- real-data workflows
def server_like(days: float, start: str, seed: int, *, anomaly: slice | None = None,
                labels: bool = False) -> pd.DataFrame:
    """One server laid out as the real servers corpus: 5-minute rows, metrics m00..m04 scaled
    to [0, 1], m03 an unused disk (0.0 all along), a daily load cycle; optionally a labelled
    CPU/memory surge."""
    n = int(days * 288)
    rng = np.random.default_rng(seed)
    t = pd.date_range(start, periods=n, freq="5min", tz="UTC")
    day = np.sin(2 * np.pi * np.arange(n) / 288)
    df = pd.DataFrame({"timestamp": t, "entity": "omi-x",
                       "m00": 0.5 + 0.2 * day + rng.normal(0, 0.03, n),
                       "m01": 0.4 + 0.15 * day + rng.normal(0, 0.03, n),
                       "m02": 0.3 + rng.normal(0, 0.05, n), "m03": 0.0,
                       "m04": 0.6 + 0.1 * day + rng.normal(0, 0.02, n)})
    lab = np.zeros(n, dtype=np.int8)
    if anomaly is not None:
        df.loc[df.index[anomaly], ["m00", "m01"]] += 0.6
        lab[anomaly] = 1
    if labels:
        df["is_anomaly"] = lab
    cols = ["m00", "m01", "m02", "m03", "m04"]
    df[cols] = df[cols].round(6)
    return df


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("servers")
    server_like(6, "2020-01-06", 1).to_parquet(root / "train.parquet", index=False)
    server_like(2, "2020-01-12", 2, anomaly=slice(300, 330), labels=True).to_parquet(
        root / "test.parquet", index=False)
    server_like(8, "2020-01-06", 3).to_csv(root / "history.csv", index=False)  # no anomaly
    return root


def test_train_without_labels_picks_a_default_and_says_what_it_expects(
        servers: Path, capsys) -> None:
    out_dir = servers / "m_unlabelled"
    rc = main(["train", "--data", str(servers / "history.csv"), "--out", str(out_dir)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "detector: default, the label-free default model" in out
    # 4 metrics that move (m03 is constant): the terms for many metrics are off, and why
    assert "terms for many metrics: off (4 metrics not constant over training, under 10" in out
    # the risk is stated in time: 1.44 normal points a day, 5e-3 at this 5-minute step
    assert "threshold: pot:0.005 (an extreme-value fit of the score tail" in out
    assert "about 1.44 points a day per entity at the 5min step" in out
    assert re.search(r"raw \w+ score [0-9.]+", out)
    m = re.search(r"expected on the training history: ([0-9.]+) % of points flagged, "
                  r"([0-9.]+) alerts per day per entity \(the validation and held-out test "
                  r"parts", out)
    assert m is not None, out
    assert 0.0 <= float(m.group(1)) < 10.0
    assert "to do better: label anomalies in the training history" in out
    assert "best-f1" in out
    assert "constant over the training part: 1 metric(s), m03 (entity omi-x); kept" in out
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["model"]["detector"] == "knn"  # what default_model is made of
    assert manifest["selection"] == {"method": "default without labels", "chosen": "default"}
    hist = manifest["training_history"]
    exp = hist["expected"]
    assert exp["from"] == ["validation", "test"]
    assert exp["flagged_share"] == pytest.approx(float(m.group(1)) / 100, abs=1e-4)
    both = [hist[p] for p in ("validation", "test")]
    assert exp["scored_rows"] == sum(p["scored_rows"] for p in both)
    assert exp["flagged_periods"] == sum(p["flagged_periods"] for p in both)
    assert "m03" in manifest["metrics"]  # kept


def test_evaluate_without_labels_still_writes_the_report(servers: Path, capsys) -> None:
    model_dir = servers / "m_unlabelled"
    if not (model_dir / "manifest.json").exists():
        assert main(["train", "--data", str(servers / "history.csv"), "--out",
                     str(model_dir)]) == 0
    report = servers / "report_unlabelled"
    rc = main(["evaluate", "--data", str(servers / "history.csv"), "--model", str(model_dir),
               "--report", str(report)])
    out = capsys.readouterr().out
    assert rc == 0, out
    metrics = json.loads((report / "metrics.json").read_text())
    for part in ("validation", "test"):
        m = metrics[part]
        assert "f1" not in m
        for key in ("flagged_share", "flagged_periods", "alerts_per_day", "periods",
                    "scored_rows"):
            assert key in m, (part, key)
        assert len(m["periods"]) == min(m["flagged_periods"], 50)
    page = (report / "report.html").read_text()
    for needle in ("no labels: what the model flagged", "Flagged periods", "alerts per day",
                   "threshold", "Anomaly score (threshold 1.0)", "flagged (no labels)"):
        assert needle in page, needle
    assert "false alarm" not in page  # nothing is called a false alarm without labels
    assert "share of points" in out and "alerts per day" in out


def test_train_on_one_file_evaluate_on_the_next(servers: Path, capsys) -> None:
    out_dir = servers / "m_split_files"
    rc = main(["train", "--train", str(servers / "train.parquet"), "--test",
               str(servers / "test.parquet"), "--out", str(out_dir)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "(test: the separate file)" in out
    assert "Confusion matrix (test set)" in out and "F1-Score" in out
    assert "Validation" in out.split("Flagged")[1]  # flagged table covers both parts
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["split"]["mode"] == "separate"
    assert manifest["split"]["test"]["rows"] == 2 * 288
    assert manifest["split"]["test"]["anomalous_rows"] == 30
    test_f1 = manifest["evaluation"]["test"]["f1"]
    assert "f1" not in manifest["evaluation"]["validation"]  # the training file is unlabelled
    report = servers / "report_split_files"
    rc = main(["evaluate", "--train", str(servers / "train.parquet"), "--test",
               str(servers / "test.parquet"), "--model", str(out_dir), "--report", str(report)])
    assert rc == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["test"]["f1"] == pytest.approx(test_f1)
    assert metrics["test"]["n_events"] == 1
    # the test file alone: scored without look-back, the first rows warm up
    rc = main(["evaluate", "--test", str(servers / "test.parquet"), "--model", str(out_dir),
               "--report", str(servers / "report_test_only")])
    assert rc == 0
    alone = json.loads((servers / "report_test_only" / "metrics.json").read_text())
    assert set(alone) == {"test"} and alone["test"]["scored_rows"] < 2 * 288


def test_split_at_trains_before_and_evaluates_after(servers: Path, capsys) -> None:
    labelled = pd.concat([pd.read_parquet(servers / "train.parquet").assign(is_anomaly=0),
                          pd.read_parquet(servers / "test.parquet")])
    path = servers / "labelled.csv"
    labelled.to_csv(path, index=False)
    out_dir = servers / "m_split_at"
    rc = main(["train", "--data", str(path), "--split-at", "2020-01-12T00:00:00Z", "--out",
               str(out_dir), "--detector", "robust"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "test from 2020-01-12T00:00:00+00:00" in out
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["split"]["mode"] == "split-at"
    assert manifest["split"]["test"]["start"].startswith("2020-01-12T00:00:00")
    assert manifest["split"]["test"]["rows"] == 2 * 288
    # evaluate re-uses the stored split time
    report = servers / "report_split_at"
    assert main(["evaluate", "--data", str(path), "--model", str(out_dir), "--report",
                 str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["test"]["rows"] == 2 * 288
    assert metrics["test"]["f1"] == pytest.approx(manifest["evaluation"]["test"]["f1"])
    rc = main(["train", "--data", str(path), "--split-at", "2030-01-01", "--out",
               str(servers / "m_bad")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: --split-at 2030-01-01T00:00:00+00:00: entity "
                                      "'omi-x' has no rows after it")


def test_constant_policy_on_the_cli(servers: Path, capsys) -> None:
    out_dir = servers / "m_drop"
    rc = main(["train", "--train", str(servers / "train.parquet"), "--test",
               str(servers / "test.parquet"), "--out", str(out_dir), "--detector", "robust",
               "--constant", "drop"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert ("warning: dropped 1 metric(s) constant over the training part: m03 (entity "
            "omi-x) (--constant drop)") in out
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["metrics"] == ["m00", "m01", "m02", "m04"]
    rc = main(["train", "--train", str(servers / "train.parquet"), "--test",
               str(servers / "test.parquet"), "--out", str(servers / "m_err"),
               "--constant", "error"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "metric 'm03' of entity 'omi-x' is constant (0.0)" in err


def _messy_export(root: Path) -> Path:
    """Two exports of one host pasted together (the second starts an hour back), with a
    repeated scrape: what `cat a.csv b.csv` leaves behind."""
    df = server_like(3, "2020-01-06", 5)
    second = df.iloc[-12 - 288:].copy()
    second["m00"] += 0.001
    messy = pd.concat([df.iloc[:-288], second.iloc[:12], df.iloc[-288:]])
    messy = pd.concat([messy.iloc[:100], messy.iloc[[99]], messy.iloc[100:]])
    path = root / "messy.csv"
    messy.to_csv(path, index=False)
    return path


def test_loading_options_on_the_cli_match_the_error_messages(servers: Path, capsys) -> None:
    path = _messy_export(servers)
    rc = main(["train", "--data", str(path), "--out", str(servers / "m_messy"),
               "--detector", "robust"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    # header = line 1; the second export's first row follows the first export's last
    back_line = 1 + 3 * 288 - 288 + 1 + 1
    assert "timestamps are not increasing: " in err and f"(line {back_line})" in err, err
    flags = re.findall(r"--[a-z-]+", err)
    assert "--timestamps" in flags
    rc = main(["train", "--data", str(path), "--out", str(servers / "m_messy"),
               "--detector", "robust", "--timestamps", "drop", "--duplicates", "last"])
    out = capsys.readouterr().out
    assert rc == 0, out
    # 11 rows of the second export are earlier than the first's last row; its 12th row and
    # the repeated scrape share a time with an earlier row
    assert "time order: 11 rows earlier than a row before them; dropped (--timestamps drop)" \
        in out
    assert "duplicates: 2 rows shared a timestamp" in out and "kept the last" in out
    rc = main(["train", "--data", str(path), "--out", str(servers / "m_messy"),
               "--timestamps", "banana"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == ("error: --timestamps must be one of error, sort, clamp, drop; "
                               "got 'banana'")
    rc = main(["train", "--data", str(path), "--out", str(servers / "m_messy"),
               "--max-gap-steps", "-3"])
    assert rc == 2 and "--max-gap-steps must be an integer >= 0 or 'none'" in \
        capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "evaluate", "score", "tune"])
def test_every_option_named_in_data_errors_exists(command: str, capsys) -> None:
    from typer.main import get_command

    from aws_anomaly.cli.app import app

    main(["--help"])  # registers every command module
    capsys.readouterr()
    cmd = get_command(app).commands[command]  # type: ignore[attr-defined]
    opts = {o for p in cmd.params for o in p.opts}
    # every flag the data layer's messages can name (see aws_anomaly.data.dataset._hint)
    for flag in ("--resample", "--max-gap-steps", "--step", "--timestamps", "--duplicates",
                 "--gap-policy", "--entity-label", "--layout"):
        assert flag in opts, (command, flag)
    if command == "train":
        assert {"--train", "--test", "--split-at", "--constant"} <= opts
