"""The parts split out of ``model.py`` stay reachable where callers found them."""

from __future__ import annotations

import pytest

import aws_anomaly.model as model_module
from aws_anomaly import presets


def test_default_model_moved_to_presets_and_still_resolves_from_model() -> None:
    assert model_module.default_model is presets.default_model
    assert model_module.DEFAULT_WINDOWS is presets.DEFAULT_WINDOWS
    from aws_anomaly.model import default_model

    assert default_model("5min").detector == "knn"


def test_unknown_model_attribute_still_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = model_module.no_such_name  # type: ignore[attr-defined]
