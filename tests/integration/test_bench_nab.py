"""`aws-anomaly bench nab` on two real NAB files: layout, schema, scores, causality guard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import aws_anomaly.cli.bench  # noqa: F401  (registers the bench commands)
from aws_anomaly.cli import main
from aws_anomaly.cli.app import app
from aws_anomaly.evaluation.nab import (
    PROFILES,
    load_corpus,
    load_published_scores,
    load_thresholds,
    normalized_score,
    score_file,
)
from aws_anomaly.evaluation.nab_bench import SCHEMA, LookAheadError, run_nab_bench
from aws_anomaly.streaming import NAB_DETECTORS

pytestmark = [pytest.mark.nab, pytest.mark.integration]

CAT = "realAWSCloudwatch"
FILES = ("iio_us-east-1_i-a2eb1cd9_NetworkIn.csv", "rds_cpu_utilization_cc0c53.csv")
PEERS_RUN = ("pyod_ecod", "river_hst")
PUBLISHED = ("numenta", "contextOSE", "null")


@pytest.fixture(scope="module")
def bench(nab_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bench-nab")
    args = ["bench", "nab", "--data", str(nab_root), "--out", str(out), "--leave-out", "2",
            "--workers", "1", "--no-progress"]
    for f in FILES:
        args += ["--files", f]
    for d in (*NAB_DETECTORS, *PEERS_RUN, *PUBLISHED):
        args += ["--detector", d]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| detector | kind |" in result.output
    return out, json.loads((out / "scores.json").read_text())


def test_output_layout(bench, nab_root: Path) -> None:
    out, _ = bench
    corpus = load_corpus(nab_root, [CAT])
    for det in (*NAB_DETECTORS, *PEERS_RUN):
        for name in FILES:
            path = out / "results" / det / CAT / f"{det}_{name}"
            df = pd.read_csv(path)
            f = corpus[f"{CAT}/{name}"]
            assert list(df.columns) == ["timestamp", "value", "anomaly_score", "label"]
            assert len(df) == f.n
            assert (pd.to_datetime(df["timestamp"]).to_numpy() == f.timestamps).all()
            assert np.allclose(df["value"], f.values)
            assert df["anomaly_score"].between(0, 1).all()
            assert (df["label"].to_numpy() == (f.window_id >= 0)).all()
    # Published detectors are scored, not rewritten.
    assert not (out / "results" / "numenta").exists()
    md = (out / "scores.md").read_text()
    for det in (*NAB_DETECTORS, *PEERS_RUN, *PUBLISHED):
        assert f"| {det} |" in md


def test_scores_json_schema(bench) -> None:
    _, rep = bench
    assert rep["schema"] == SCHEMA
    assert rep["n_files"] == 2
    assert set(rep["files"]) == {f"{CAT}/{n}" for n in FILES}
    assert rep["categories"][CAT]["files"] == 2
    assert rep["n_windows"] == rep["categories"][CAT]["windows"] == 4
    assert set(rep["profiles"]) == set(PROFILES)
    dets = rep["detectors"]
    assert set(dets) == {*NAB_DETECTORS, *PEERS_RUN, *PUBLISHED}
    for name, e in dets.items():
        kind = ("ours" if name in NAB_DETECTORS else "peer" if name in PEERS_RUN
                else "published")
        assert e["kind"] == kind
        for prof in PROFILES:
            assert e["optimized"]["categories"][prof][CAT] == pytest.approx(
                e["optimized"]["overall"][prof])
            assert set(e["files"][prof]) == set(rep["files"])
        ev = e["events"]
        assert ev["tp"] + ev["fn"] == 4
        assert 0 <= ev["f1"] <= 1
        assert ev["threshold"] == e["optimized"]["thresholds"]["standard"]
        assert e["cv"]["folds"] == 2 and len(e["cv"]["fold_files"]) == 2
        assert (e["published"] is not None) == (kind == "published")
    assert set(rep["causality"]) == {*NAB_DETECTORS, *PEERS_RUN}
    assert all(c["ok"] for c in rep["causality"].values())
    # NAB's null detector scores 0 whatever the threshold.
    assert dets["null"]["optimized"]["overall"]["standard"] == pytest.approx(0.0)


def test_published_thresholds_match_scorer_and_published_tables(bench, nab_root: Path) -> None:
    """At the published thresholds the report equals the per-file published scores, summed and
    normalised over the two files' windows (SCORING.md's formula on this category subset)."""
    _, rep = bench
    corpus = load_corpus(nab_root, [CAT])
    keys = [f"{CAT}/{n}" for n in FILES]
    n_win = sum(corpus[k].n_windows for k in keys)
    thresholds = load_thresholds(nab_root)
    for det in PUBLISHED:
        scores = load_published_scores(nab_root, det, {k: corpus[k] for k in keys})
        for prof_name, prof in PROFILES.items():
            table = pd.read_csv(nab_root / "results" / det / f"{det}_{prof_name}_scores.csv")
            published_raw = table.set_index("File").loc[keys, "Score"].sum()
            raw = sum(score_file(scores[k], corpus[k], thresholds[det][prof_name], prof).score
                      for k in keys)
            assert raw == pytest.approx(published_raw, abs=1e-6)
            got = rep["detectors"][det]["published"]["categories"][prof_name][CAT]
            assert got == pytest.approx(normalized_score(published_raw, n_win, prof), abs=1e-6)
            # The optimised threshold is never worse on the files it was optimised on.
            assert rep["detectors"][det]["optimized"]["raw"][prof_name] >= raw - 1e-9


class PeekingDetector:
    """Scales every record by the whole file's total: a look-ahead the guard must catch."""

    def run(self, timestamps: np.ndarray, values: np.ndarray, probationary: int) -> np.ndarray:
        return np.abs(values) / np.abs(values).sum()


def test_look_ahead_detector_is_rejected(nab_root: Path, tmp_path: Path) -> None:
    with pytest.raises(LookAheadError, match="'peeker' looks ahead"):
        run_nab_bench(nab_root, tmp_path, detectors=["peeker"], files=[FILES[0]], workers=1,
                      progress=False, extra={"peeker": ("ours", PeekingDetector)})
    assert not (tmp_path / "scores.json").exists()


def test_unknown_detector_is_a_clear_error(
    nab_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["bench", "nab", "--data", str(nab_root), "--out", str(tmp_path),
               "--detector", "nope", "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown detector(s) ['nope']; available:")
    assert "\n" not in err
