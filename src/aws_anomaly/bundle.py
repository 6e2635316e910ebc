"""Model bundles: a folder with a checksummed JSON manifest, a skops detector and .npy arrays.

Layout::

    MODEL_DIR/
      manifest.json     format version, library versions, model description, sha256 of each file
      manifest.sha256   sha256 of manifest.json itself (``sha256sum`` format)
      detector.skops    the fitted detector (skops.io, loaded with an explicit trusted-type list)
      <name>.npy        plain numeric arrays (loaded with allow_pickle=False)

Nothing here unpickles: ``skops.io.load`` only builds the types named in the trusted list the
caller passes, and ``numpy.load`` runs with ``allow_pickle=False``. Loading refuses a bundle, with
:class:`~aws_anomaly.errors.ModelFileError` naming the problem, when the manifest or a listed file
is missing, a file's sha256 differs from the manifest, the folder holds a file the manifest does
not list, the format version is not one this code reads, the bundle was written by an older
major scikit-learn than the installed one, or the skops file holds types outside the trusted
list, the manifest's own checksum is missing or wrong, or any entry of the folder is a symbolic
link (a bundle is read only from its own folder: files are opened with ``O_NOFOLLOW``, read
once, checked, and loaded from the bytes that were checked). :func:`check_array` validates a
loaded array (kind, shape, finiteness, range) for ``model.py``.

Writing is crash-safe: every file is fsynced, then the folder, before the manifest is written
(so a manifest never describes files that are not on disk), then the manifest, its checksum and
the folder again; the folder is renamed into place and its parent fsynced.

This module knows nothing of :class:`~aws_anomaly.model.AnomalyModel`; ``modelsave.py`` decides
what goes into the manifest and the arrays.

A model with nothing to keep but JSON (the streaming series models of
:mod:`aws_anomaly.streaming.series`) is written with ``detector=None``: the manifest (with its
``kind``) is the whole model, under the same two checksums; :func:`read_json_bundle` reads it
with every check above (no skops file may be there, no arrays).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import stat
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from aws_anomaly import __version__
from aws_anomaly.errors import ModelFileError

__all__ = [
    "DETECTOR_FILE",
    "FORMAT_VERSION",
    "MANIFEST",
    "MANIFEST_SUM",
    "BundleContents",
    "check_array",
    "check_model_fields",
    "library_versions",
    "read_bundle",
    "read_json_bundle",
    "step_seconds",
    "write_bundle",
]

#: 1.1: the manifest's own checksum (``manifest.sha256``) is required.
FORMAT_VERSION = "1.1"
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.sha256"
DETECTOR_FILE = "detector.skops"


@dataclass(frozen=True)
class BundleContents:
    """What :func:`read_bundle` returns: the manifest, the detector and the arrays."""

    manifest: dict[str, Any]
    detector: Any
    arrays: dict[str, np.ndarray]


def library_versions() -> dict[str, str]:
    """Versions that decide whether a bundle can be read back."""
    import sklearn
    import skops

    return {"aws_anomaly": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "scikit_learn": sklearn.__version__,
            "skops": skops.__version__}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_path(path: Path, *, directory: bool = False) -> None:
    """Flush a file's (or a folder's entries') data to disk."""
    fd = os.open(path, (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if directory
                 else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_plain(root: Path, name: str) -> bytes:
    """The bytes of ``root/name``, refusing a symbolic link or anything but a regular file."""
    path = root / name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ModelFileError(f"model bundle {root} is incomplete: {name} is missing") from None
    except OSError as exc:
        raise ModelFileError(f"model bundle {root}: cannot read {name}: {exc.strerror}") \
            from None
    if stat.S_ISLNK(st.st_mode):
        raise ModelFileError(f"model bundle {root}: {name} is a symbolic link; a bundle is "
                             "read only from its own folder, refusing it")
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(f"model bundle {root}: {name} is not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ModelFileError(f"model bundle {root}: cannot open {name}: {exc.strerror}") \
            from None
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def check_array(root: str | os.PathLike[str], name: str, arr: np.ndarray, *,
                kind: str = "f", shape: tuple[int, ...] | None = None, finite: bool = True,
                low: float | None = None, high: float | None = None,
                low_open: bool = False) -> np.ndarray:
    """Validate an array read from a bundle; returns it or raises ModelFileError naming it.

    ``kind``: allowed numpy kinds (``"f"`` float, ``"iu"`` integer); ``low``/``high``:
    inclusive bounds (``low_open``: ``low`` itself excluded).

    >>> check_array("m", "columns", np.array([0, 2]), kind="iu", low=0, high=2).tolist()
    [0, 2]
    >>> try:
    ...     check_array("m", "columns", np.array([-1, 2]), kind="iu", low=0, high=2)
    ... except ModelFileError as exc:
    ...     print(exc)
    model bundle m: array 'columns' has a value below 0 (-1 at index 0)
    """
    where = f"model bundle {root}: array {name!r}"
    a = np.asarray(arr)
    if a.dtype.kind not in kind:
        raise ModelFileError(f"{where} has dtype {a.dtype}; expected "
                             f"{'a float' if kind == 'f' else 'an integer'} array")
    if shape is not None and a.shape != shape:
        raise ModelFileError(f"{where} has shape {a.shape}; expected {shape}")
    if a.dtype.kind == "f" and finite and not np.isfinite(a).all():
        i = int(np.flatnonzero(~np.isfinite(a.ravel()))[0])
        raise ModelFileError(f"{where} holds a non-finite value ({a.ravel()[i]} at index {i})")
    flat = a.ravel()
    if low is not None and flat.size:
        bad = np.flatnonzero(flat <= low) if low_open else np.flatnonzero(flat < low)
        if bad.size:
            i = int(bad[0])
            op = "at or below" if low_open else "below"
            raise ModelFileError(f"{where} has a value {op} {low:g} ({flat[i]} at index {i})")
    if high is not None and flat.size:
        bad = np.flatnonzero(flat > high)
        if bad.size:
            i = int(bad[0])
            raise ModelFileError(f"{where} has a value above {high:g} ({flat[i]} at index {i})")
    return a


def step_seconds(root: str | os.PathLike[str], value: Any) -> float:
    """The manifest's ``step_seconds`` as a positive finite number of seconds (at most a
    year), else ModelFileError naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelFileError(f"model bundle {root}: step_seconds must be a number, got "
                             f"{value!r}")
    v = float(value)
    if not (np.isfinite(v) and 0 < v <= 366 * 86400):
        raise ModelFileError(f"model bundle {root}: step_seconds must be a positive number of "
                             f"seconds (at most a year), got {value!r}")
    return v


#: Views a spec column may appear in (see ``check_model_fields``).
MAX_VIEWS = 2


def check_model_fields(root: str | os.PathLike[str], *, metrics: Sequence[str],
                       step_seconds: float, feature_names: Sequence[str],
                       spec_feature_names: Sequence[str],
                       groups: Mapping[str, Sequence[int]],
                       arrays: Mapping[str, np.ndarray]) -> None:
    """Refuse a model whose fields or arrays cannot describe a working model (each check names
    the field or array): a positive step, distinct metrics, column indices inside the spec's
    features that pick exactly the feature names, finite scaler arrays with positive scales,
    feature groups inside the columns."""
    where = f"model bundle {root}"
    if not (np.isfinite(step_seconds) and step_seconds > 0):
        raise ModelFileError(f"{where}: step_seconds must be a positive number, got "
                             f"{step_seconds}")
    if (not metrics or len(set(metrics)) != len(metrics)
            or not all(isinstance(m, str) and m for m in metrics)):
        raise ModelFileError(f"{where}: metrics must be distinct non-empty names, got "
                             f"{list(metrics)}")
    k, n_all = len(feature_names), len(spec_feature_names)
    # A spec column may sit in more than one view of the detector (``feature_set="hybrid"``),
    # so names may repeat, but never more often than there are views (two).
    counts = Counter(feature_names)
    if k == 0 or k > MAX_VIEWS * n_all or max(counts.values()) > MAX_VIEWS:
        raise ModelFileError(f"{where}: feature_names must hold 1 to {MAX_VIEWS * n_all} names "
                             f"of spec_feature_names, each at most {MAX_VIEWS} times, got {k}")
    cols = check_array(root, "columns", arrays["columns"], kind="iu", shape=(k,), low=0,
                       high=n_all - 1).tolist()
    if any(spec_feature_names[c] != f for c, f in zip(cols, feature_names, strict=True)):
        raise ModelFileError(f"{where}: array 'columns' does not pick the manifest's "
                             "feature_names out of spec_feature_names")
    check_array(root, "scaler_center", arrays["scaler_center"], shape=(k,))
    check_array(root, "scaler_scale", arrays["scaler_scale"], shape=(k,), low=0,
                low_open=True)
    check_array(root, "train_median", arrays["train_median"], shape=(k,))
    check_array(root, "log_floor", arrays["log_floor"], shape=(k,), low=0)
    for group, members in groups.items():
        if any(not 0 <= int(c) < k for c in members):
            raise ModelFileError(f"{where}: feature_groups[{group!r}] has a column outside "
                                 f"0..{k - 1}")


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError as exc:
        raise ModelFileError(f"cannot read version number {version!r} in the manifest") from exc


def write_bundle(path: str | os.PathLike[str], description: dict[str, Any], detector: Any,
                 arrays: dict[str, np.ndarray] | None = None) -> Path:
    """Write a bundle folder; returns its path (``detector=None``: a JSON-only bundle, no
    skops file; read it with :func:`read_json_bundle`).

    The folder is built in a temporary sibling and renamed into place, so a reader never sees
    a half-written bundle. An existing bundle at ``path`` is replaced; any other existing
    non-empty folder is refused.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ModelFileError(f"{target} exists and is not a folder; choose another model path")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST).exists():
        raise ModelFileError(
            f"{target} is a non-empty folder without {MANIFEST}; refusing to overwrite it — "
            "choose an empty or new folder"
        )
    arrays = arrays or {}
    for name in arrays:
        if not name.isidentifier():
            raise ModelFileError(f"array name {name!r} is not a plain identifier")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if detector is not None:
            import skops.io as sio

            sio.dump(detector, tmp / DETECTOR_FILE)
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
        files = sorted(p.name for p in tmp.iterdir())
        # The data is on disk before any manifest describes it.
        for name in files:
            _fsync_path(tmp / name)
        _fsync_path(tmp, directory=True)
        manifest = {
            "format_version": FORMAT_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": library_versions(),
            **description,
            "arrays": sorted(arrays),
            "files": {name: _sha256(tmp / name) for name in files},
        }
        text = (json.dumps(manifest, indent=2, sort_keys=False, allow_nan=False)
                + "\n").encode()
        (tmp / MANIFEST).write_bytes(text)
        (tmp / MANIFEST_SUM).write_text(f"{hashlib.sha256(text).hexdigest()}  {MANIFEST}\n")
        for name in (MANIFEST, MANIFEST_SUM):
            _fsync_path(tmp / name)
        _fsync_path(tmp, directory=True)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                _rmtree(old)
            target.rename(old)
            tmp.rename(target)
            _rmtree(old)
        else:
            tmp.rename(target)
        _fsync_path(target.parent, directory=True)
    except BaseException:
        if tmp.exists():
            _rmtree(tmp)
        raise
    return target


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``manifest.json`` of a bundle and its checksum (no file checks)."""
    root = Path(path)
    if not root.is_dir():
        raise ModelFileError(f"model bundle {root} does not exist or is not a folder")
    mpath = root / MANIFEST
    if not mpath.is_file() and not mpath.is_symlink():
        raise ModelFileError(f"model bundle {root} has no {MANIFEST}; it is not a model bundle "
                             "(train one with `aws-anomaly train`)")
    raw = _read_plain(root, MANIFEST)
    try:
        manifest = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{mpath} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or "format_version" not in manifest \
            or not isinstance(manifest.get("files"), dict):
        raise ModelFileError(f"{mpath} lacks 'format_version' or 'files'; not a model manifest")
    got = str(manifest["format_version"])
    if _major(got) != _major(FORMAT_VERSION):
        raise ModelFileError(
            f"model bundle {root} has format version {got}; this aws-anomaly "
            f"({__version__}) reads format {FORMAT_VERSION.split('.')[0]}.x — retrain the model "
            "or use a matching aws-anomaly version"
        )
    if not (root / MANIFEST_SUM).exists() and not (root / MANIFEST_SUM).is_symlink():
        raise ModelFileError(f"model bundle {root} has no {MANIFEST_SUM} (the manifest's own "
                             f"checksum, format {FORMAT_VERSION}); retrain the model")
    want = _read_plain(root, MANIFEST_SUM).decode(errors="replace").split()
    got = hashlib.sha256(raw).hexdigest()
    if not want or want[0] != got:
        raise ModelFileError(f"model bundle {root}: {MANIFEST} was modified (sha256 "
                             f"{got[:12]}… differs from {MANIFEST_SUM}); refusing to load it")
    return manifest


def _verified_files(root: Path, manifest: Mapping[str, Any]) -> dict[str, bytes]:
    """The bytes of every file the manifest lists, each checked against its sha256; refuses
    symbolic links and files the manifest does not list."""
    files: dict[str, str] = manifest["files"]
    links = sorted(p.name for p in root.iterdir() if p.is_symlink())
    if links:
        raise ModelFileError(f"model bundle {root} holds symbolic link(s) {links}; a bundle is "
                             "read only from its own folder, refusing it")
    data: dict[str, bytes] = {}
    for name, digest in files.items():
        if (not isinstance(name, str) or "/" in name or "\\" in name or name.startswith(".")
                or name in (MANIFEST, MANIFEST_SUM)):
            raise ModelFileError(f"model bundle {root}: manifest lists a bad file name {name!r}")
        raw = _read_plain(root, name)
        actual = hashlib.sha256(raw).hexdigest()
        if actual != digest:
            raise ModelFileError(
                f"model bundle {root}: {name} was modified (sha256 {actual[:12]}… differs from "
                f"{str(digest)[:12]}… in the manifest); refusing to load it"
            )
        data[name] = raw
    extra = sorted(p.name for p in root.iterdir()
                   if p.name not in (MANIFEST, MANIFEST_SUM) and p.name not in files)
    if extra:
        raise ModelFileError(
            f"model bundle {root} holds file(s) not listed in the manifest: {extra}; refusing to "
            "load a bundle that was changed after it was written"
        )
    return data


def read_json_bundle(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """The manifest of a JSON-only bundle (written with ``detector=None``) of ``kind``, after
    the checks of :func:`read_bundle`: the manifest's own checksum, no file it does not list
    (a JSON-only bundle lists none), no symbolic link.

    Raises
    ------
    ModelFileError
        Any check failing, or a bundle of another kind (naming both).
    """
    root = Path(path)
    manifest = read_manifest(root)
    got = manifest.get("kind", "anomaly_model")
    if got != kind:
        raise ModelFileError(f"model bundle {root} holds a {got!r} model, not a {kind!r} one")
    if manifest["files"] or manifest.get("arrays"):
        raise ModelFileError(f"model bundle {root}: a {kind!r} bundle holds no files or arrays, "
                             f"its manifest lists {sorted(manifest['files'])}")
    _verified_files(root, manifest)
    return manifest


def read_bundle(path: str | os.PathLike[str], trusted: Sequence[str]) -> BundleContents:
    """Verify and load a bundle written by :func:`write_bundle`.

    Parameters
    ----------
    trusted
        Fully-qualified type names the skops file may contain; anything else is refused.
    """
    import sklearn
    import skops.io as sio

    root = Path(path)
    manifest = read_manifest(root)
    files: dict[str, str] = manifest["files"]
    if "kind" in manifest:
        raise ModelFileError(f"model bundle {root} holds a {manifest['kind']!r} model; load it "
                             "with aws_anomaly.models_io.load_model")
    if DETECTOR_FILE not in files:
        raise ModelFileError(f"model bundle {root}: the manifest lists no {DETECTOR_FILE}")
    data = _verified_files(root, manifest)
    recorded = str(manifest.get("versions", {}).get("scikit_learn", ""))
    if not recorded:
        raise ModelFileError(f"model bundle {root}: manifest does not record the scikit-learn "
                             "version it was written with")
    if _major(sklearn.__version__) > _major(recorded):
        raise ModelFileError(
            f"model bundle {root} was written with scikit-learn {recorded}; the installed "
            f"scikit-learn {sklearn.__version__} is a newer major version whose models may "
            f"differ — retrain the model or install scikit-learn {_major(recorded)}.x"
        )
    det_bytes = data[DETECTOR_FILE]
    try:
        untrusted = sio.get_untrusted_types(data=det_bytes)
    except Exception as exc:  # skops raises assorted errors on a corrupt archive
        raise ModelFileError(f"model bundle {root}: cannot read {DETECTOR_FILE}: {exc}") from exc
    bad = sorted(set(untrusted) - set(trusted))
    if bad:
        raise ModelFileError(
            f"model bundle {root}: {DETECTOR_FILE} contains types that are not trusted: {bad}; "
            "refusing to load it (only aws-anomaly detectors and the scikit-learn/numpy types "
            "they use are allowed)"
        )
    try:
        detector = sio.loads(det_bytes, trusted=list(trusted))
    except Exception as exc:
        raise ModelFileError(f"model bundle {root}: cannot load {DETECTOR_FILE}: {exc}") from exc
    arrays: dict[str, np.ndarray] = {}
    names = manifest.get("arrays", [])
    if not isinstance(names, list):
        raise ModelFileError(f"model bundle {root}: manifest 'arrays' is not a list")
    for name in names:
        fname = f"{name}.npy"
        if not isinstance(name, str) or not name.isidentifier() or fname not in files:
            raise ModelFileError(f"model bundle {root}: array {name!r} has no listed file")
        try:
            arr = np.load(io.BytesIO(data[fname]), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ModelFileError(f"model bundle {root}: {fname} is not a plain array: {exc}") \
                from exc
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
            raise ModelFileError(f"model bundle {root}: {fname} is not a numeric array "
                                 f"(dtype {getattr(arr, 'dtype', type(arr).__name__)})")
        arrays[name] = arr
    return BundleContents(manifest=manifest, detector=detector, arrays=arrays)
