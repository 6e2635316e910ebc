"""The LSTM autoencoder detector: optional PyTorch, training bounds, bundles, determinism,
causality and the live path, in the default pipeline on demo data."""

from __future__ import annotations

import importlib.abc
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.cli import main
from aws_anomaly.data import Dataset
from aws_anomaly.data.generator import generate_demo, write_demo
from aws_anomaly.detectors import LSTMAutoencoderDetector, make_detector
from aws_anomaly.detectors.lstm_ae import torch_available
from aws_anomaly.errors import ConfigError
from aws_anomaly.evaluation import servers_bench
from aws_anomaly.model import AnomalyModel, default_model

needs_torch = pytest.mark.skipif(
    not torch_available() and os.environ.get("CI", "").lower() != "true",
    reason="torch (the 'deep' extra) is not installed; CI installs it and runs these")


class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"No module named {name!r}")


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import torch`` fails, as where the extra is not installed."""
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoTorch(), *sys.meta_path])


def test_importing_the_package_does_not_import_torch() -> None:
    code = ("import sys, aws_anomaly.model, aws_anomaly.evaluation.servers_bench; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_without_torch_fit_names_the_extra_in_one_line(no_torch: None) -> None:
    X = np.random.default_rng(0).normal(size=(100, 4))
    with pytest.raises(ConfigError, match=r"needs PyTorch.*pip install 'aws-anomaly\[deep\]'") \
            as err:
        make_detector("lstm_ae").fit(X)
    assert "\n" not in str(err.value)


def test_without_torch_the_cli_prints_one_error_line(no_torch: None, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    write_demo(tmp_path / "data", clusters=1, days=2, seed=1)
    rc = main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "model"),
               "--detector", "lstm_ae"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("error: the lstm_ae detector needs PyTorch")
    assert "aws-anomaly[deep]" in err[-1] and not any("Traceback" in e for e in err)


@pytest.mark.parametrize(("params", "message"), [
    ({"hidden_size": 0}, r"hidden_size=0 is not allowed; use an int >= 1"),
    ({"validation_fraction": 0.5}, r"validation_fraction=0.5 is not allowed"),
    ({"groups": [[0, 1], [7]]}, r"group 1 must be a non-empty list of column indices in "
                                r"\[0, 4\), got \[7\]"),
    ({"groups": "abc"}, r"groups must be None or a non-empty list"),
])
def test_bad_parameters_are_named(params: dict, message: str) -> None:
    X = np.random.default_rng(0).normal(size=(100, 4))
    with pytest.raises(ConfigError, match=message):
        make_detector("lstm_ae", **params).fit(X)


@needs_torch
def test_layout_groups_padding_and_leftover_columns() -> None:
    X = np.random.default_rng(0).normal(size=(60, 7))
    det = LSTMAutoencoderDetector(groups=[[0, 1, 2], [3]], max_epochs=1, random_state=0).fit(X)
    # one step per group, padded to the widest; columns 4..6 in no group: one more step
    assert det.layout_.tolist() == [[0, 1, 2], [3, -1, -1], [4, 5, 6]]
    plain = LSTMAutoencoderDetector(max_steps=3, max_epochs=1, random_state=0).fit(X)
    assert plain.layout_.tolist() == [[0, 1, 2], [3, 4, 5], [6, -1, -1]]
    # explanations are per column and add up to the score, padding excluded
    np.testing.assert_allclose(det.explain_samples(X[:5]).sum(axis=1), det.score_samples(X[:5]),
                               rtol=1e-12)
    weights = np.eye(7)[:, :2]  # columns 0 and 1 as two "metrics"
    np.testing.assert_array_equal(det.explain_samples(X[:5], weights),
                                  det.explain_samples(X[:5])[:, :2])


@needs_torch
def test_early_stopping_keeps_the_best_epoch_on_the_held_out_tail() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(3000)
    X = np.column_stack([np.sin(t / 20 + k) for k in range(4)]) + rng.normal(0, 0.05, (3000, 4))
    det = LSTMAutoencoderDetector(max_epochs=60, patience=2, learning_rate=0.02,
                                  max_train_rows=1000, random_state=0).fit(X)
    assert det.n_epochs_ < 60  # stopped early
    assert len(det.validation_loss_) == det.n_epochs_ == len(det.train_loss_)
    assert det.best_epoch_ == int(np.argmin(det.validation_loss_)) + 1
    assert det.validation_loss_[det.best_epoch_ - 1] < 0.5 * det.validation_loss_[0]
    assert det.n_epochs_ - det.best_epoch_ <= 2
    # the held-out tail: fewer than 50 rows have none, max_epochs on all of them
    small = LSTMAutoencoderDetector(max_epochs=3, random_state=0).fit(X[:40])
    assert small.n_epochs_ == small.best_epoch_ == 3 and small.validation_loss_ == []
    n_weights = sum(w.size for w in det.weights_.values())
    assert 1000 < n_weights < 10000  # small: a few thousand parameters


@needs_torch
def test_torch_settings_are_restored() -> None:
    import torch

    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    X = np.random.default_rng(0).normal(size=(80, 3))
    det = LSTMAutoencoderDetector(max_epochs=1, random_state=0, n_threads=1).fit(X)
    det.score_samples(X)
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before


# ------------------------------------------------------------------ in the default pipeline
@pytest.fixture(scope="module")
def demo() -> tuple[Dataset, Dataset]:
    ds, _ = generate_demo(clusters=2, days=4, seed=3)
    cut = ds.frame["timestamp"].min() + pd.Timedelta(days=3)
    return ds.slice_time(None, cut), ds.slice_time(cut, None)


def _lstm_model(step: pd.Timedelta) -> AnomalyModel:
    return default_model(step, detector="lstm_ae", detector_params={"max_epochs": 8})


@pytest.fixture(scope="module")
def fitted(demo: tuple[Dataset, Dataset]) -> AnomalyModel:
    if not torch_available() and os.environ.get("CI", "").lower() != "true":
        pytest.skip("torch (the 'deep' extra) is not installed")
    train, _ = demo
    return _lstm_model(train.step).fit(train)


@needs_torch
def test_default_pipeline_reads_one_step_per_metric(fitted: AnomalyModel) -> None:
    det = fitted.detector_
    assert isinstance(det, LSTMAutoencoderDetector)
    assert det.get_params()["max_epochs"] == 8
    assert det.layout_.shape[0] == len(fitted.metrics_) == 3
    assert "views" not in det.get_params()  # the kNN views are not passed on


@needs_torch
def test_bundle_round_trip_gives_the_same_scores_and_holds_no_torch_object(
        fitted: AnomalyModel, demo: tuple[Dataset, Dataset], tmp_path: Path) -> None:
    train, test = demo
    path = fitted.save(tmp_path / "m")
    skops = (Path(path) / "detector.skops").read_bytes()
    assert b"torch" not in skops  # weights as plain arrays, the module rebuilt on load
    schema = json.loads(__import__("zipfile").ZipFile(Path(path) / "detector.skops")
                        .read("schema.json"))
    assert "hidden_size" in json.dumps(schema)
    loaded = AnomalyModel.load(path)
    a = fitted.score(test, history=train)
    b = loaded.score(test, history=train)
    np.testing.assert_array_equal(a["anomaly_score"], b["anomaly_score"])
    np.testing.assert_array_equal(a["is_anomaly"], b["is_anomaly"])


@needs_torch
def test_two_fits_give_the_same_scores(fitted: AnomalyModel,
                                       demo: tuple[Dataset, Dataset]) -> None:
    train, test = demo
    again = _lstm_model(train.step).fit(train)
    np.testing.assert_array_equal(again.score(test, history=train)["anomaly_score"],
                                  fitted.score(test, history=train)["anomaly_score"])


@needs_torch
def test_a_points_score_does_not_change_when_later_rows_change(
        fitted: AnomalyModel, demo: tuple[Dataset, Dataset]) -> None:
    train, test = demo
    frame = test.frame.copy()
    ts = frame["timestamp"]
    cut = ts.min() + (ts.max() - ts.min()) / 2
    later = ts > cut
    metric = test.metrics[0]
    frame.loc[later, metric] = frame.loc[later, metric] * 3.0 + 0.5  # rewrite the future
    changed = Dataset.from_frame(frame)
    a = fitted.score(test, history=train)
    b = fitted.score(changed, history=train)
    early = ~later.to_numpy()
    np.testing.assert_allclose(b["anomaly_score"][early], a["anomaly_score"][early], rtol=1e-12,
                               atol=0)
    assert not np.allclose(b["anomaly_score"][~early], a["anomaly_score"][~early])
    # scored alone (no later rows at all), the first half gives the same numbers too
    first = fitted.score(test.slice_time(None, cut), history=train)
    both = first.merge(a, on=["entity", "timestamp"], suffixes=("", "_full"))
    assert len(both) == len(first) == int(early.sum())
    np.testing.assert_allclose(both["anomaly_score"], both["anomaly_score_full"], rtol=1e-9,
                               atol=1e-12)


@needs_torch
def test_the_live_path_gives_the_batch_scores(fitted: AnomalyModel,
                                              demo: tuple[Dataset, Dataset]) -> None:
    train, test = demo
    entity = test.entities[0]
    batch = fitted.score(test.select([entity]), history=train)
    scorer = fitted.stream(entity, history=train)
    ef = test.entity_frame(entity)
    for i, (t, row) in enumerate(ef[list(fitted.metrics_)].iloc[:30].iterrows()):
        point = scorer.update(t, row.to_numpy(dtype=np.float64))
        assert point.anomaly_score == pytest.approx(batch["anomaly_score"].iloc[i], rel=1e-9,
                                                    abs=1e-12)


# ------------------------------------------------------------------ the servers bench entry
def test_the_bench_runs_aws_lstm_only_when_named() -> None:
    assert "aws_lstm" in servers_bench.DETECTORS
    assert "aws_lstm" not in servers_bench._resolve(servers_bench.DETECTORS, None)
    assert list(servers_bench._resolve(servers_bench.DETECTORS, ["aws_lstm"])) == ["aws_lstm"]


@needs_torch
def test_aws_lstm_on_a_small_server_slice(tmp_path: Path) -> None:
    ds, _ = generate_demo(clusters=1, days=5, seed=2, events_per_day=2)
    frame = ds.frame.drop(columns=["anomaly_type"])
    cut = frame["timestamp"].min() + pd.Timedelta(days=4)
    folder = tmp_path / "demo" / "c1"
    folder.mkdir(parents=True)
    frame[frame["timestamp"] < cut].drop(columns=["is_anomaly"]).to_parquet(
        folder / "train.parquet")
    frame[frame["timestamp"] >= cut].to_parquet(folder / "test.parquet")
    rep = servers_bench.run_servers_bench(tmp_path, tmp_path / "out", detectors=["aws_lstm"],
                                          workers=1, progress=False)
    run = rep["detectors"]["aws_lstm"]["servers"]["demo/c1"]
    assert run["status"] == "ok", run.get("error")
    assert run["causal"] is True  # the first half scored alone gives the same scores
    # it finds the injected anomalies (the default's kNN: best F1 0.53, FPR 0.011 here)
    assert run["best_f1"] > 0.5 and run["event_recall"] > 0.5 and run["fpr"] < 0.05
