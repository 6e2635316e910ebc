"""Model bundles: every way a bundle can be wrong is refused with a clear ModelFileError."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from aws_anomaly.bundle import DETECTOR_FILE, MANIFEST, MANIFEST_SUM, read_bundle
from aws_anomaly.data.generator import generate_demo
from aws_anomaly.detectors import TRUSTED_TYPES
from aws_anomaly.errors import ModelFileError
from aws_anomaly.evaluation.split import chronological_split
from aws_anomaly.features import FeatureSpec
from aws_anomaly.model import AnomalyModel

SPEC = FeatureSpec(windows=(6, 24), lags=(1,), include_quantiles=False, include_seasonal=False,
                   cross_windows=(24,))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds, _ = generate_demo(clusters=1, days=3, seed=5)
    split = chronological_split(ds)
    model = AnomalyModel("ocsvm", {"random_state": 0}, spec=SPEC).fit(split.train,
                                                                      split.validation)
    model.metadata = {"evaluation": {"test": {"f1": 0.5}}}
    return Path(model.save(tmp_path_factory.mktemp("b") / "model"))


@pytest.fixture()
def bundle(saved: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(saved, dst)
    return dst


def _manifest(p: Path) -> dict:
    return json.loads((p / MANIFEST).read_text())


def _write_manifest(p: Path, m: dict, *, sign: bool = True) -> None:
    """Rewrite the manifest; ``sign`` also rewrites its checksum (as someone who knows the
    format would), so the deeper checks are what refuses the bundle."""
    text = json.dumps(m).encode()
    (p / MANIFEST).write_bytes(text)
    if sign:
        (p / MANIFEST_SUM).write_text(f"{hashlib.sha256(text).hexdigest()}  {MANIFEST}\n")


def _replace_array(p: Path, name: str, arr: np.ndarray) -> None:
    np.save(p / f"{name}.npy", arr, allow_pickle=False)
    m = _manifest(p)
    m["files"][f"{name}.npy"] = hashlib.sha256((p / f"{name}.npy").read_bytes()).hexdigest()
    _write_manifest(p, m)


def test_manifest_records_what_is_needed(bundle: Path) -> None:
    m = _manifest(bundle)
    for key in ("format_version", "created_at", "versions", "metrics", "feature_names",
                "feature_spec", "model", "calibrator", "scaler_params", "training_summary",
                "evaluation", "files"):
        assert key in m, key
    assert {"aws_anomaly", "python", "numpy", "scikit_learn", "skops"} <= set(m["versions"])
    assert m["model"]["detector"] == "ocsvm"
    listed = set(m["files"])
    on_disk = {p.name for p in bundle.iterdir()} - {MANIFEST, MANIFEST_SUM}
    assert listed == on_disk and DETECTOR_FILE in listed
    for name, digest in m["files"].items():
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == digest
    loaded = AnomalyModel.load(bundle)
    assert loaded.metadata["evaluation"]["test"]["f1"] == 0.5


def test_missing_folder_and_manifest(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        AnomalyModel.load(tmp_path / "nope")
    (bundle / MANIFEST).unlink()
    with pytest.raises(ModelFileError, match=f"no {MANIFEST}"):
        AnomalyModel.load(bundle)


def test_missing_listed_file(bundle: Path) -> None:
    (bundle / "scaler_center.npy").unlink()
    with pytest.raises(ModelFileError, match=r"scaler_center\.npy is missing"):
        AnomalyModel.load(bundle)


def test_checksum_mismatch_names_the_file(bundle: Path) -> None:
    arr = np.load(bundle / "scaler_scale.npy")
    np.save(bundle / "scaler_scale.npy", arr * 2)
    with pytest.raises(ModelFileError, match=r"scaler_scale\.npy was modified"):
        AnomalyModel.load(bundle)


def test_unlisted_file_is_refused(bundle: Path) -> None:
    (bundle / "extra.py").write_text("print('hi')\n")
    with pytest.raises(ModelFileError, match=r"not listed in the manifest: \['extra.py'\]"):
        AnomalyModel.load(bundle)


def test_incompatible_format_version(bundle: Path) -> None:
    m = _manifest(bundle)
    m["format_version"] = "2.0"
    _write_manifest(bundle, m)
    with pytest.raises(ModelFileError, match=r"format version 2\.0"):
        AnomalyModel.load(bundle)


def test_newer_major_sklearn_than_recorded(bundle: Path) -> None:
    import sklearn

    m = _manifest(bundle)
    m["versions"]["scikit_learn"] = "0.24.2"
    _write_manifest(bundle, m)
    with pytest.raises(ModelFileError, match=r"0\.24\.2") as info:
        AnomalyModel.load(bundle)
    assert sklearn.__version__ in str(info.value)


def _replace_detector(bundle: Path, obj: object) -> None:
    import skops.io as sio

    det = bundle / DETECTOR_FILE
    sio.dump(obj, det)
    m = _manifest(bundle)
    m["files"][DETECTOR_FILE] = hashlib.sha256(det.read_bytes()).hexdigest()
    _write_manifest(bundle, m)


def test_untrusted_types_in_skops_file(bundle: Path) -> None:
    from collections import Counter

    _replace_detector(bundle, {"detector": Counter("abc")})
    with pytest.raises(ModelFileError, match=r"not trusted: \['collections.Counter'\]"):
        AnomalyModel.load(bundle)
    with pytest.raises(ModelFileError, match="not trusted"):
        read_bundle(bundle, trusted=TRUSTED_TYPES)


def test_detector_of_a_foreign_type_is_refused(bundle: Path) -> None:
    # scikit-learn estimators are loadable by skops, but only aws-anomaly detectors belong here
    from sklearn.linear_model import LogisticRegression

    x = np.arange(20, dtype=float).reshape(10, 2)
    _replace_detector(bundle, LogisticRegression().fit(x, np.arange(10) % 2))
    with pytest.raises(ModelFileError, match="LogisticRegression"):
        AnomalyModel.load(bundle)


def test_corrupt_manifest(bundle: Path) -> None:
    (bundle / MANIFEST).write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        AnomalyModel.load(bundle)


def test_save_refuses_to_overwrite_a_foreign_folder(saved: Path, tmp_path: Path) -> None:
    other = tmp_path / "docs"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    model = AnomalyModel.load(saved)
    with pytest.raises(ModelFileError, match="refusing to overwrite"):
        model.save(other)
    assert (other / "notes.txt").read_text() == "keep me"
    # an existing bundle is replaced atomically
    model.save(saved)
    assert AnomalyModel.load(saved).detector == "ocsvm"


# ------------------------------------------------------------------ issue 10.8 and 10.5
def test_manifest_is_covered_by_its_checksum(bundle: Path) -> None:
    m = _manifest(bundle)
    m["model"]["calibration"] = {"method": "target_fpr", "target_fpr": 0.5}
    _write_manifest(bundle, m, sign=False)
    with pytest.raises(ModelFileError, match=r"manifest\.json was modified"):
        AnomalyModel.load(bundle)
    (bundle / MANIFEST_SUM).unlink()
    with pytest.raises(ModelFileError, match=r"no manifest\.sha256"):
        AnomalyModel.load(bundle)


def test_negative_column_index_is_refused(bundle: Path) -> None:
    cols = np.load(bundle / "columns.npy")
    cols[0] = -1
    _replace_array(bundle, "columns", cols)
    with pytest.raises(ModelFileError, match=r"array 'columns' has a value below 0"):
        AnomalyModel.load(bundle)


def test_columns_must_pick_the_feature_names(bundle: Path) -> None:
    cols = np.load(bundle / "columns.npy")
    cols[0] = cols[1]
    _replace_array(bundle, "columns", cols)
    with pytest.raises(ModelFileError, match="does not pick the manifest's feature_names"):
        AnomalyModel.load(bundle)


@pytest.mark.parametrize("step", [0, -300, float("nan")])
def test_step_must_be_positive(bundle: Path, step: float) -> None:
    m = _manifest(bundle)
    m["step_seconds"] = step
    _write_manifest(bundle, m)
    with pytest.raises(ModelFileError, match="step_seconds"):
        AnomalyModel.load(bundle)


@pytest.mark.parametrize(("name", "value", "needle"), [
    ("scaler_scale", 0.0, "at or below 0"),
    ("scaler_scale", np.inf, "non-finite"),
    ("scaler_center", np.nan, "non-finite"),
    ("train_median", np.inf, "non-finite"),
    ("log_floor", -1.0, "below 0"),
])
def test_every_loaded_array_is_validated(bundle: Path, name: str, value: float,
                                         needle: str) -> None:
    arr = np.load(bundle / f"{name}.npy")
    arr[0] = value
    _replace_array(bundle, name, arr)
    with pytest.raises(ModelFileError, match=f"array '{name}'.*{needle}"):
        AnomalyModel.load(bundle)


def test_array_of_the_wrong_kind_is_refused(bundle: Path) -> None:
    cols = np.load(bundle / "columns.npy")
    _replace_array(bundle, "columns", cols.astype(np.float64))
    with pytest.raises(ModelFileError, match="array 'columns' has dtype float64"):
        AnomalyModel.load(bundle)


def test_symlinks_out_of_the_bundle_are_refused(bundle: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.npy"
    shutil.copy(bundle / "scaler_scale.npy", outside)  # same bytes: the checksum matches
    (bundle / "scaler_scale.npy").unlink()
    (bundle / "scaler_scale.npy").symlink_to(outside)
    with pytest.raises(ModelFileError, match="symbolic link"):
        AnomalyModel.load(bundle)


def test_symlinked_manifest_is_refused(bundle: Path, tmp_path: Path) -> None:
    outside = tmp_path / "manifest.json"
    shutil.copy(bundle / MANIFEST, outside)
    (bundle / MANIFEST).unlink()
    (bundle / MANIFEST).symlink_to(outside)
    with pytest.raises(ModelFileError, match="symbolic link"):
        AnomalyModel.load(bundle)


def test_files_and_folder_are_fsynced_before_the_manifest(saved: Path, tmp_path: Path,
                                                          monkeypatch) -> None:
    """Issue 10.5: a crash after the manifest is written never leaves a manifest describing
    files that are not on disk."""
    import os

    import aws_anomaly.bundle as bundle_mod

    order: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:  # records, then does the real fsync
        order.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    real_write = Path.write_bytes

    def recording_write(self: Path, data: bytes) -> int:
        if self.name == MANIFEST:
            order.append(f"write {MANIFEST}")
        return real_write(self, data)

    monkeypatch.setattr(bundle_mod.os, "fsync", recording_fsync)
    monkeypatch.setattr(Path, "write_bytes", recording_write)
    target = tmp_path / "fresh"
    AnomalyModel.load(saved).save(target)
    cut = order.index(f"write {MANIFEST}")
    before = [Path(p) for p in order[:cut]]
    data_files = {n for n in json.loads((target / MANIFEST).read_text())["files"]}
    assert data_files <= {p.name for p in before}
    tmp_dir = before[0].parent
    assert tmp_dir in before  # the folder itself, after its files
    after = [Path(p) for p in order[cut + 1:]]
    assert {MANIFEST, MANIFEST_SUM} <= {p.name for p in after}
    assert tmp_path in after  # the parent after the rename
