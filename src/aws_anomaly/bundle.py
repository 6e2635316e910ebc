"""Model bundles: a folder with a checksummed JSON manifest, a skops detector and .npy arrays.

Layout::

    MODEL_DIR/
      manifest.json     format version, library versions, model description, sha256 of each file
      detector.skops    the fitted detector (skops.io, loaded with an explicit trusted-type list)
      <name>.npy        plain numeric arrays (loaded with allow_pickle=False)

Nothing here unpickles: ``skops.io.load`` only builds the types named in the trusted list the
caller passes, and ``numpy.load`` runs with ``allow_pickle=False``. Loading refuses a bundle, with
:class:`~aws_anomaly.errors.ModelFileError` naming the problem, when the manifest or a listed file
is missing, a file's sha256 differs from the manifest, the folder holds a file the manifest does
not list, the format version is not one this code reads, the bundle was written by an older
major scikit-learn than the installed one, or the skops file holds types outside the trusted
list.

This module knows nothing of :class:`~aws_anomaly.model.AnomalyModel`; ``model.py`` decides what
goes into the manifest and the arrays.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Sequence
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
    "BundleContents",
    "library_versions",
    "read_bundle",
    "write_bundle",
]

FORMAT_VERSION = "1.0"
MANIFEST = "manifest.json"
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


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError as exc:
        raise ModelFileError(f"cannot read version number {version!r} in the manifest") from exc


def write_bundle(path: str | os.PathLike[str], description: dict[str, Any], detector: Any,
                 arrays: dict[str, np.ndarray] | None = None) -> Path:
    """Write a bundle folder; returns its path.

    The folder is built in a temporary sibling and renamed into place, so a reader never sees
    a half-written bundle. An existing bundle at ``path`` is replaced; any other existing
    non-empty folder is refused.
    """
    import skops.io as sio

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
        sio.dump(detector, tmp / DETECTOR_FILE)
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
        files = sorted(p.name for p in tmp.iterdir())
        manifest = {
            "format_version": FORMAT_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": library_versions(),
            **description,
            "arrays": sorted(arrays),
            "files": {name: _sha256(tmp / name) for name in files},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False,
                                               allow_nan=False) + "\n")
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                _rmtree(old)
            target.rename(old)
            tmp.rename(target)
            _rmtree(old)
        else:
            tmp.rename(target)
    except BaseException:
        if tmp.exists():
            _rmtree(tmp)
        raise
    return target


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``manifest.json`` of a bundle (no file checks)."""
    root = Path(path)
    if not root.is_dir():
        raise ModelFileError(f"model bundle {root} does not exist or is not a folder")
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise ModelFileError(f"model bundle {root} has no {MANIFEST}; it is not a model bundle "
                             "(train one with `aws-anomaly train`)")
    try:
        manifest = json.loads(mpath.read_text())
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
    if DETECTOR_FILE not in files:
        raise ModelFileError(f"model bundle {root}: the manifest lists no {DETECTOR_FILE}")
    for name, digest in files.items():
        if "/" in name or "\\" in name or name.startswith("."):
            raise ModelFileError(f"model bundle {root}: manifest lists a bad file name {name!r}")
        fpath = root / name
        if not fpath.is_file():
            raise ModelFileError(f"model bundle {root} is incomplete: {name} is missing")
        actual = _sha256(fpath)
        if actual != digest:
            raise ModelFileError(
                f"model bundle {root}: {name} was modified (sha256 {actual[:12]}… differs from "
                f"{str(digest)[:12]}… in the manifest); refusing to load it"
            )
    extra = sorted(p.name for p in root.iterdir() if p.name != MANIFEST and p.name not in files)
    if extra:
        raise ModelFileError(
            f"model bundle {root} holds file(s) not listed in the manifest: {extra}; refusing to "
            "load a bundle that was changed after it was written"
        )
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
    det_path = root / DETECTOR_FILE
    try:
        untrusted = sio.get_untrusted_types(file=det_path)
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
        detector = sio.load(det_path, trusted=list(trusted))
    except Exception as exc:
        raise ModelFileError(f"model bundle {root}: cannot load {DETECTOR_FILE}: {exc}") from exc
    arrays: dict[str, np.ndarray] = {}
    for name in manifest.get("arrays", []):
        fname = f"{name}.npy"
        if fname not in files:
            raise ModelFileError(f"model bundle {root}: array {name!r} has no listed file")
        try:
            arrays[name] = np.load(root / fname, allow_pickle=False)
        except ValueError as exc:
            raise ModelFileError(f"model bundle {root}: {fname} is not a plain array: {exc}") \
                from exc
    return BundleContents(manifest=manifest, detector=detector, arrays=arrays)
