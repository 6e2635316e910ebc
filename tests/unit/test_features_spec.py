"""FeatureSpec: defaults, validation, serialisation, column layout and history checks."""

from __future__ import annotations

import json

import pytest

from aws_anomaly.errors import ConfigError, DataError
from aws_anomaly.features import FeatureSpec, check_history, feature_names
from aws_anomaly.features.spec import FeaturePlan

METRICS = ["cluster_cpu_request_ratio", "cluster_mem_request_ratio", "cluster_pod_ratio"]


def test_default_spec_builds_at_least_100_named_features() -> None:
    names = feature_names(METRICS, FeatureSpec())
    assert len(names) >= 100
    assert len(set(names)) == len(names)
    for expected in ("cluster_cpu_request_ratio__mean_12", "cluster_pod_ratio__std_288",
                     "cluster_mem_request_ratio__z_36", "cluster_cpu_request_ratio__median_12",
                     "cluster_cpu_request_ratio__p90_12", "cluster_pod_ratio__robust_z_12",
                     "cluster_cpu_request_ratio__diff_1", "cluster_cpu_request_ratio__roc_12",
                     "cluster_pod_ratio__season_diff_288",
                     "cluster_cpu_request_ratio__per__cluster_pod_ratio",
                     "cluster_cpu_request_ratio__corr_36__cluster_pod_ratio",
                     "time__hour_sin", "time__week_cos"):
        assert expected in names


def test_min_history_follows_windows_and_lags() -> None:
    assert FeatureSpec().min_history == 289  # one day of 5-minute steps plus the current row
    assert FeatureSpec(include_weekly=True).min_history == 7 * 288 + 1
    small = FeatureSpec(windows=(3, 6), lags=(1, 10), include_seasonal=False,
                        include_quantiles=False, include_cross=False)
    assert small.min_history == 11
    assert FeatureSpec(windows=(3,), lags=(), include_seasonal=False, include_quantiles=False,
                       include_cross=False).min_history == 3


def test_spec_round_trips_through_json() -> None:
    spec = FeatureSpec(windows=(6, 24), lags=(2,), include_weekly=True, scale_floor=1e-5)
    again = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert hash(again) == hash(spec)


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['window'\]"):
        FeatureSpec.from_dict({"window": [12]})
    with pytest.raises(ConfigError, match="mapping"):
        FeatureSpec.from_dict([("windows", [12])])  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"windows": (12, 6)}, "strictly increasing"),
    ({"windows": (6, 6)}, "strictly increasing"),
    ({"windows": (1, 6)}, ">= 2"),
    ({"windows": ()}, "must not be empty"),
    ({"windows": (6.0,)}, "integers"),
    ({"windows": "12"}, "list of integers"),
    ({"lags": (0,)}, ">= 1"),
    ({"lags": (True,)}, "integers"),
    ({"include_cross": "yes"}, "true or false"),
    ({"seasonal_period": 1}, "seasonal_period"),
    ({"include_weekly": True, "include_seasonal": False}, "include_weekly"),
    ({"scale_floor": 0.0}, "scale_floor"),
    ({"ratio_floor": float("nan")}, "ratio_floor"),
    ({"windows": (2_000_000,)}, "1000000"),
    ({"cross_windows": (2_000_000,)}, "1000000"),
    ({"quantile_windows": (5000,)}, "quantile_windows must be <= 2016"),
])
def test_invalid_parameters_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FeatureSpec(**kwargs)


def test_knobs_switch_families_off() -> None:
    bare = FeatureSpec(windows=(4,), lags=(), include_quantiles=False, include_seasonal=False,
                       include_cross=False, include_calendar=False)
    names = feature_names(["a", "b"], bare)
    assert names == ("a__value", "a__mean_4", "a__std_4", "a__min_4", "a__max_4", "a__z_4",
                     "b__value", "b__mean_4", "b__std_4", "b__min_4", "b__max_4", "b__z_4")


def test_groups_cover_every_column_and_list_cross_features_under_both_metrics() -> None:
    plan = FeaturePlan.build(METRICS, FeatureSpec())
    covered = set()
    for cols in plan.groups.values():
        covered.update(cols)
    assert covered == set(range(plan.n_features))
    ratio = plan.names.index("cluster_cpu_request_ratio__per__cluster_pod_ratio")
    assert ratio in plan.groups["cluster_cpu_request_ratio"]
    assert ratio in plan.groups["cluster_pod_ratio"]
    assert ratio not in plan.groups["cluster_mem_request_ratio"]
    assert [plan.names[i] for i in plan.groups["time"]] == [
        "time__hour_sin", "time__hour_cos", "time__week_sin", "time__week_cos"]
    assert all(plan.names[i].startswith("cluster_pod_ratio__") or "__cluster_pod_ratio" in
               plan.names[i] for i in plan.groups["cluster_pod_ratio"])


@pytest.mark.parametrize(("metrics", "message"), [
    ([], "non-empty"),
    ("cpu", "non-empty list"),
    (["cpu", "cpu"], "unique"),
    (["time"], "reserved"),
    (["cpu", ""], "non-empty strings"),
])
def test_bad_metric_names_raise_data_error(metrics: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        feature_names(metrics, FeatureSpec())  # type: ignore[arg-type]


def test_check_history_names_the_entity_and_the_need() -> None:
    check_history(289, FeatureSpec(), "entity 'x'")
    with pytest.raises(DataError, match=r"entity 'x' has 50 points; the feature spec needs at "
                                        r"least 289 \(longest window 288 rows"):
        check_history(50, FeatureSpec(), "entity 'x'")
    with pytest.raises(DataError, match="needs at least 2017"):
        check_history(2016, FeatureSpec(include_weekly=True), "entity 'y'")
