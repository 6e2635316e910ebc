"""`aws-anomaly bench nab` on a small slice of the real NAB folder: the shortest file of every
category (so every category, windowless ones included, is in the run). Layout, schema, scores
at published thresholds, leave-one-category-out, progress, causality guard, errors."""

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
    NabFile,
    category_of,
    load_corpus,
    load_published_scores,
    load_thresholds,
    normalized_score,
    optimize_threshold,
    score_file,
)
from aws_anomaly.evaluation.nab_bench import SCHEMA, LookAheadError, run_nab_bench
from aws_anomaly.streaming import NAB_DETECTORS

pytestmark = [pytest.mark.nab, pytest.mark.integration]

PEERS_RUN = ("pyod_ecod", "river_hst")
# Published with outputs for every category (NAB's README: ARTime, numenta, contextOSE,
# randomCutForest, null), and one published for realAWSCloudwatch only.
PUBLISHED = ("numenta", "contextOSE", "null")
PARTIAL = "skyline"


@pytest.fixture(scope="module")
def full_corpus(nab_root: Path) -> dict[str, NabFile]:
    return load_corpus(nab_root)


@pytest.fixture(scope="module")
def slice_keys(full_corpus) -> list[str]:
    """The shortest file of each category (ties: the first by name)."""
    best: dict[str, NabFile] = {}
    for key in sorted(full_corpus):
        f = full_corpus[key]
        if f.category not in best or f.n < best[f.category].n:
            best[f.category] = f
    return sorted(f.key for f in best.values())


@pytest.fixture(scope="module")
def bench(nab_root: Path, slice_keys, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bench-nab")
    args = ["bench", "nab", "--data", str(nab_root), "--out", str(out), "--leave-out", "2",
            "--workers", "1", "--progress"]
    for k in slice_keys:
        args += ["--files", k]
    for d in (*NAB_DETECTORS, *PEERS_RUN, *PUBLISHED, PARTIAL):
        args += ["--detector", d]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| detector | kind |" in result.stdout
    return out, json.loads((out / "scores.json").read_text()), result.stderr


def test_slice_spans_every_category(full_corpus, slice_keys) -> None:
    cats = {f.category for f in full_corpus.values()}
    assert {category_of(k) for k in slice_keys} == cats and len(slice_keys) == len(cats)
    # The slice holds windows, and (in NAB's folder) a category without any.
    assert sum(full_corpus[k].n_windows for k in slice_keys) > 0


def test_progress_names_every_run(bench, slice_keys) -> None:
    _, _, stderr = bench
    runs = [(d, k) for d in (*NAB_DETECTORS, *PEERS_RUN) for k in slice_keys]
    lines = [ln for ln in stderr.splitlines() if ln.startswith("nab bench [")]
    assert len(lines) == len(runs)
    for i, (ln, (det, key)) in enumerate(zip(lines, runs, strict=True), start=1):
        assert ln.startswith(f"nab bench [{i}/{len(runs)}] {det} {key} (")
    assert f"nab bench: {len(runs)}/{len(runs)} runs in " in stderr


def test_output_layout(bench, full_corpus, slice_keys) -> None:
    out, _, _ = bench
    for det in (*NAB_DETECTORS, *PEERS_RUN):
        for key in slice_keys:
            f = full_corpus[key]
            df = pd.read_csv(out / "results" / det / f.category / f"{det}_{f.name}")
            assert list(df.columns) == ["timestamp", "value", "anomaly_score", "label"]
            # Every record, in file order.
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
    assert "## Leave one category out" in md


def test_scores_json_schema(bench, full_corpus, slice_keys) -> None:
    _, rep, _ = bench
    assert rep["schema"] == SCHEMA
    assert rep["n_files"] == len(slice_keys)
    assert set(rep["files"]) == set(slice_keys)
    cats = sorted({category_of(k) for k in slice_keys})
    assert sorted(rep["categories"]) == cats
    for cat in cats:
        members = [k for k in slice_keys if category_of(k) == cat]
        assert rep["categories"][cat] == {
            "files": len(members), "windows": sum(full_corpus[k].n_windows for k in members)}
    n_win = sum(full_corpus[k].n_windows for k in slice_keys)
    assert rep["n_windows"] == n_win
    assert set(rep["profiles"]) == set(PROFILES)
    dets = rep["detectors"]
    assert set(dets) == {*NAB_DETECTORS, *PEERS_RUN, *PUBLISHED}
    # A published detector without outputs for every selected file is left out, with the way
    # to compare it on the categories it covers.
    assert "--category realAWSCloudwatch" in rep["skipped_published"][PARTIAL]
    for name, e in dets.items():
        kind = ("ours" if name in NAB_DETECTORS else "peer" if name in PEERS_RUN
                else "published")
        assert e["kind"] == kind
        for prof in PROFILES:
            assert set(e["files"][prof]) == set(rep["files"])
            for cat in cats:
                cw = rep["categories"][cat]["windows"]
                assert (e["optimized"]["categories"][prof][cat] is None) == (cw == 0)
        ev = e["events"]
        assert ev["tp"] + ev["fn"] == n_win
        assert 0 <= ev["f1"] <= 1
        assert ev["threshold"] == e["optimized"]["thresholds"]["standard"]
        assert e["cv"]["folds"] == 2 and len(e["cv"]["fold_files"]) == 2
        assert e["loco"]["categories_held_out"] == cats
        assert (e["published"] is not None) == (kind == "published")
    assert set(rep["causality"]) == {*NAB_DETECTORS, *PEERS_RUN}
    assert all(c["ok"] for c in rep["causality"].values())
    # NAB's null detector scores 0 whatever the threshold.
    assert dets["null"]["optimized"]["overall"]["standard"] == pytest.approx(0.0)
    assert dets["null"]["loco"]["overall"]["standard"] == pytest.approx(0.0)


def test_published_thresholds_match_scorer_and_published_tables(
    bench, nab_root: Path, full_corpus, slice_keys
) -> None:
    """At the published thresholds the report equals the per-file published scores, summed and
    normalised over each category's windows in the slice, and over all of them."""
    _, rep, _ = bench
    thresholds = load_thresholds(nab_root)
    cats = sorted({category_of(k) for k in slice_keys})
    sub = {k: full_corpus[k] for k in slice_keys}
    for det in PUBLISHED:
        scores = load_published_scores(nab_root, det, sub)
        assert set(scores) == set(slice_keys)
        for prof_name, prof in PROFILES.items():
            table = pd.read_csv(nab_root / "results" / det / f"{det}_{prof_name}_scores.csv")
            per_file = table.set_index("File").loc[slice_keys, "Score"]
            for k in slice_keys:
                got = score_file(scores[k], sub[k], thresholds[det][prof_name], prof).score
                assert got == pytest.approx(per_file[k], abs=1e-6), (det, k)
            block = rep["detectors"][det]["published"]
            for cat in cats:
                members = [k for k in slice_keys if category_of(k) == cat]
                cw = sum(sub[k].n_windows for k in members)
                want = normalized_score(per_file[members].sum(), cw, prof) if cw else None
                assert block["categories"][prof_name][cat] == pytest.approx(want, abs=1e-6)
            n_win = sum(f.n_windows for f in sub.values())
            assert block["overall"][prof_name] == pytest.approx(
                normalized_score(per_file.sum(), n_win, prof), abs=1e-6)
            # The optimised threshold is never worse on the files it was optimised on.
            assert rep["detectors"][det]["optimized"]["raw"][prof_name] >= per_file.sum() - 1e-9


def test_leave_one_category_out_on_published_outputs(
    bench, nab_root: Path, full_corpus, slice_keys
) -> None:
    """Each held-out category is scored at the threshold optimised on the others' files."""
    _, rep, _ = bench
    sub = {k: full_corpus[k] for k in slice_keys}
    n_win = sum(f.n_windows for f in sub.values())
    for det in ("numenta", "contextOSE"):
        scores = load_published_scores(nab_root, det, sub)
        lo = rep["detectors"][det]["loco"]
        for prof_name, prof in PROFILES.items():
            total = 0.0
            for cat in lo["categories_held_out"]:
                train = {k: s for k, s in scores.items() if category_of(k) != cat}
                thr = optimize_threshold(train, sub, prof)[0]
                assert lo["thresholds"][prof_name][cat] == thr
                raw = sum(score_file(s, sub[k], thr, prof).score
                          for k, s in scores.items() if category_of(k) == cat)
                assert lo["raw"][prof_name][cat] == pytest.approx(raw, abs=1e-9)
                total += raw
            assert lo["overall"][prof_name] == pytest.approx(
                normalized_score(total, n_win, prof), abs=1e-9)
            # Held-out thresholds can only do worse than the one optimised on everything.
            assert lo["overall_raw"][prof_name] <= rep["detectors"][det]["optimized"]["raw"][
                prof_name] + 1e-9


class PeekingDetector:
    """Scales every record by the whole file's total: a look-ahead the guard must catch."""

    def run(self, timestamps: np.ndarray, values: np.ndarray, probationary: int) -> np.ndarray:
        return np.abs(values) / np.abs(values).sum()


def test_look_ahead_detector_is_rejected(nab_root: Path, tmp_path: Path, slice_keys) -> None:
    with pytest.raises(LookAheadError, match="'peeker' looks ahead"):
        run_nab_bench(nab_root, tmp_path, detectors=["peeker"], files=[slice_keys[0]],
                      workers=1, progress=False, extra={"peeker": ("ours", PeekingDetector)})
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
