"""merge_events: runs of anomalous points -> events with stable ids, open/closed status; the
AlertPolicy: events -> alerts (fire, resolve, history)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.errors import ConfigError, DataError
from aws_anomaly.events import AlertPolicy, event_id_for, merge_events

T0 = pd.Timestamp("2026-03-01T00:00Z")
STEP = pd.Timedelta("5min")


def scores(flags, entity="eks-a", start=T0, score_hi=1.5, contrib=None, ready=None):
    n = len(flags)
    flags = np.asarray(flags, dtype=bool)
    df = pd.DataFrame({
        "timestamp": pd.date_range(start, periods=n, freq=STEP),
        "entity": entity,
        "anomaly_score": np.where(flags, score_hi, 0.2),
        "is_anomaly": flags,
    })
    if contrib is not None:
        for k, v in contrib.items():
            df[f"contrib_{k}"] = np.where(flags, v, 0.0)
    if ready is not None:
        df["ready"] = ready
    return df


def test_consecutive_points_form_one_event_and_gaps_split():
    s = scores([0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0])
    evs = merge_events(s, max_gap_steps=2)
    assert [(e.start, e.end, e.n_points) for e in evs] == [
        (T0 + STEP, T0 + 2 * STEP, 2), (T0 + 7 * STEP, T0 + 7 * STEP, 1)]
    assert all(e.status == "closed" for e in evs)


def test_short_gap_inside_a_run_does_not_split_it():
    s = scores([1, 0, 1, 0, 0, 1, 0, 0, 0])
    assert len(merge_events(s, max_gap_steps=1)) == 2
    evs = merge_events(s, max_gap_steps=2)
    assert len(evs) == 1 and evs[0].n_points == 3 and evs[0].end == T0 + 5 * STEP


def test_event_at_the_end_is_open_until_enough_quiet_points():
    evs = merge_events(scores([0, 0, 1, 1, 0]), max_gap_steps=2)
    assert evs[0].status == "open"
    evs = merge_events(scores([0, 0, 1, 1, 0, 0, 0]), max_gap_steps=2)
    assert evs[0].status == "closed"


def test_event_id_is_stable_and_depends_on_entity_and_start():
    a = merge_events(scores([0, 1, 1, 0, 0, 0]))[0]
    b = merge_events(scores([0, 1, 1, 0, 0, 0]))[0]
    assert a.event_id == b.event_id == event_id_for("eks-a", T0 + STEP)
    c = merge_events(scores([0, 1, 1, 0, 0, 0], entity="eks-b"))[0]
    assert c.event_id != a.event_id


def test_event_id_depends_on_job_and_model():
    """Issue 10.2: two jobs (or models) watching one entity get different event ids."""
    s = scores([0, 1, 1, 0, 0, 0])
    cpu = merge_events(s, job="cpu", model="cpu")[0]
    mem = merge_events(s, job="mem", model="mem")[0]
    other_model = merge_events(s, job="cpu", model="cpu-v2")[0]
    assert len({cpu.event_id, mem.event_id, other_model.event_id}) == 3
    assert cpu.event_id == event_id_for("eks-a", T0 + STEP, job="cpu", model="cpu")
    assert (cpu.job, mem.job) == ("cpu", "mem")
    # continuing an open event keeps its id
    opened = merge_events(scores([0, 0, 0, 1, 1]), job="cpu", model="cpu")[0]
    more = merge_events(scores([1, 1, 0], start=T0 + 5 * STEP), job="cpu", model="cpu",
                        previous={"eks-a": opened})[0]
    assert more.event_id == opened.event_id and more.n_points == 4


def test_previous_open_event_is_continued_with_the_same_id():
    first = merge_events(scores([0, 0, 1, 1]), step=STEP, max_gap_steps=1)
    assert first[0].status == "open"
    prev = {"eks-a": first[0]}
    nxt = merge_events(scores([1, 1, 0, 0], start=T0 + 4 * STEP, score_hi=3.0), step=STEP,
                       max_gap_steps=1, previous=prev)
    assert len(nxt) == 1
    ev = nxt[0]
    assert ev.event_id == first[0].event_id and ev.start == T0 + 2 * STEP
    assert ev.end == T0 + 5 * STEP and ev.n_points == 4 and ev.peak_score == 3.0
    assert ev.status == "closed"


def test_open_previous_event_closes_when_quiet_points_follow():
    first = merge_events(scores([0, 1]), step=STEP, max_gap_steps=1)
    quiet = merge_events(scores([0, 0, 0], start=T0 + 2 * STEP), step=STEP, max_gap_steps=1,
                         previous={"eks-a": first[0]})
    assert [(e.event_id, e.status) for e in quiet] == [(first[0].event_id, "closed")]


def test_top_metrics_are_score_weighted_and_ranked():
    s = scores([1, 1, 0, 0, 0], contrib={"cpu": 0.8, "mem": 0.2})
    s.loc[1, "anomaly_score"] = 3.0
    s.loc[1, ["contrib_cpu", "contrib_mem"]] = [0.0, 1.0]
    ev = merge_events(s)[0]
    # weights 1.5 and 3.0: cpu = 0.8*1.5/4.5, mem = (0.2*1.5 + 1.0*3)/4.5
    assert [m for m, _ in ev.top_metrics] == ["mem", "cpu"]
    assert ev.top_metrics[0][1] == pytest.approx(3.3 / 4.5, abs=1e-4)
    assert ev.peak_time == T0 + STEP


def test_rows_not_ready_never_count():
    s = scores([1, 1, 0, 0, 0], ready=[False, False, True, True, True])
    assert merge_events(s) == []


def test_threshold_per_entity_overrides_flags():
    s = pd.concat([scores([0, 1, 0, 0, 0]), scores([0, 1, 0, 0, 0], entity="eks-b")])
    evs = merge_events(s, threshold={"eks-a": 2.0})
    assert [e.entity for e in evs] == ["eks-b"]


def test_missing_columns_and_bad_gap_raise_data_error():
    with pytest.raises(DataError, match="anomaly_score"):
        merge_events(pd.DataFrame({"timestamp": [T0], "entity": ["a"], "is_anomaly": [True]}))
    with pytest.raises(DataError, match="max_gap_steps"):
        merge_events(scores([1]), max_gap_steps=-1)


def test_to_dict_is_json_ready():
    ev = merge_events(scores([0, 1, 0, 0, 0], contrib={"cpu": 1.0}))[0]
    d = ev.to_dict()
    assert d["start"] == "2026-03-01T00:05:00Z" and d["top_metrics"] == [["cpu", 1.0]]


# ---------------------------------------------------------------------------- AlertPolicy
def test_policy_fires_at_min_consecutive_and_resolves_when_the_event_closes():
    policy = AlertPolicy(min_consecutive=3, max_gap_steps=2)
    blip = policy.merge(scores([0, 1, 0, 0, 0]), step=STEP)
    assert [policy.fires(e) for e in blip] == [False] and policy.transitions(blip) == []
    # Three anomalous points with one normal point inside: one event, firing while open.
    opened = policy.merge(scores([0, 1, 0, 1, 1, 0]), step=STEP)
    assert [(e.n_points, e.status) for e in opened] == [(3, "open")]
    assert [s for _, s in policy.transitions(opened)] == ["firing"]
    assert policy.alert_states(opened, entities=["eks-b"]) == {"eks-a": True, "eks-b": False}
    # The third normal point closes it: resolved, and no longer active.
    closed = policy.merge(scores([0, 0, 0], start=T0 + 6 * STEP), step=STEP,
                          previous={"eks-a": opened[0]})
    assert [s for _, s in policy.transitions(closed)] == ["firing", "resolved"]
    assert policy.alert_states(closed) == {"eks-a": False}


def test_policy_threshold_recomputes_flags_with_per_entity_overrides():
    s = pd.concat([scores([0, 1, 1, 1, 0]), scores([0, 1, 1, 1, 0], entity="eks-b")])
    policy = AlertPolicy(threshold=1.0, min_consecutive=3)
    got = policy.merge(s, step=STEP, threshold={"eks-a": 2.0})  # eks-b: the policy's 1.0
    assert [e.entity for e in got] == ["eks-b"]
    assert policy.merge(s, step=STEP, threshold=policy.threshold) != []


def test_latest_event_of_an_entity_decides_its_alert_state():
    policy = AlertPolicy(min_consecutive=2, max_gap_steps=0)
    evs = policy.merge(scores([1, 1, 0, 1]), step=STEP)
    assert [(e.n_points, e.status) for e in evs] == [(2, "closed"), (1, "open")]
    assert policy.alert_states(evs) == {"eks-a": False}  # the second run has not fired yet


def test_split_history_keeps_events_before_the_first_tick_out():
    policy = AlertPolicy(min_consecutive=1)
    evs = policy.merge(pd.concat([scores([1, 0, 0, 0, 1, 1]),
                                  scores([1, 0, 0, 0], entity="eks-b")]), step=STEP)
    cut = {"eks-a": T0 + 4 * STEP}  # eks-b has stored progress: nothing of it is history
    live, history = policy.split_history(evs, cut)
    assert [(e.entity, e.start) for e in history] == [("eks-a", T0)]
    assert [(e.entity, e.start) for e in live] == [("eks-a", T0 + 4 * STEP), ("eks-b", T0)]


def test_summarize_counts_what_is_sent():
    policy = AlertPolicy(min_consecutive=2, max_gap_steps=1)
    evs = policy.merge(scores([1, 1, 0, 0, 1, 0, 0, 1, 1, 1]), step=STEP)
    assert policy.summarize(evs, step=STEP) == {
        "firing": 2, "resolved": 1, "open_at_end": 1, "longest_alert_minutes": 15.0}
    assert policy.with_min_consecutive(3).summarize(evs)["firing"] == 1
    assert policy.with_min_consecutive(None) is policy


def test_policy_from_job_uses_the_jobs_alert_section():
    from aws_anomaly.config import JobConfig

    job = JobConfig.model_validate({"name": "j", "alert": {
        "min_consecutive": 4, "threshold": 1.3, "severity": "critical"}})
    assert AlertPolicy.from_job(job) == AlertPolicy(threshold=1.3, min_consecutive=4,
                                                    severity="critical")


@pytest.mark.parametrize(("kwargs", "msg"), [
    ({"min_consecutive": 0}, "alert.min_consecutive must be >= 1, got 0"),
    ({"threshold": 0.0}, "alert.threshold must be > 0"),
    ({"max_gap_steps": -1}, "max_gap_steps must be >= 0"),
    ({"severity": "loud"}, "alert.severity 'loud' is not one of"),
])
def test_bad_policy_is_a_clear_error(kwargs, msg):
    with pytest.raises(ConfigError, match=msg):
        AlertPolicy(**kwargs)
