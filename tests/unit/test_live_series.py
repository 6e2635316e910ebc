"""A job running a NAB streaming detector (``model.detector: context``): SeriesModel end to end.

The config accepts the streaming detectors' names; the job trains a SeriesModel, keeps it as
a checksummed JSON bundle (registered versions, loaded back on restart, rolled back); the live
state keeps one SeriesStream per entity whose scores are one ``SeriesModel.score`` pass over
the whole series, checkpoints its JSON state under a checksum and resumes it exactly; a
``/v1/score`` continuation is the score the job gives that point next.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.config import JobConfig
from aws_anomaly.config.model import MATRIX_DETECTORS, SERIES_DETECTORS
from aws_anomaly.data import Dataset
from aws_anomaly.detectors import DETECTORS
from aws_anomaly.errors import ConfigError, ModelFileError
from aws_anomaly.live import LiveState
from aws_anomaly.model import AnomalyModel
from aws_anomaly.models_io import load_model, warm_rows
from aws_anomaly.runner import JobRunner
from aws_anomaly.service.routes.anomalies import explain, per_metric_model
from aws_anomaly.sources.demo import DemoSource
from aws_anomaly.streaming import series
from aws_anomaly.streaming.series import SeriesModel, SeriesStream
from tests.unit import jobkit
from tests.unit.jobkit import STEP, T0, Clock

LOOKBACK = pd.Timedelta("2h")


def job_config(**over) -> JobConfig:
    return jobkit.job_config(days=6, future_days=3, history="5d", **over)


@pytest.fixture(scope="module")
def source_cfg():
    return job_config().source


@pytest.fixture(scope="module")
def model(source_cfg) -> SeriesModel:
    src = DemoSource(source_cfg, start=T0, wall_clock=lambda: 0.0)
    return SeriesModel("context").fit(src.fetch(T0 - pd.Timedelta(days=5), T0))


def make(tmp_path: Path, model: SeriesModel | None, *, job: JobConfig | None = None, **kw):
    return jobkit.make_runner(tmp_path, model, job or job_config(), **kw)


def one_pass(model: SeriesModel, src: DemoSource, end: pd.Timestamp) -> pd.DataFrame:
    """Batch scores of the whole series the job saw (from its first fetch), in one call."""
    start = T0 - LOOKBACK - STEP * warm_rows(model)
    out = model.score(src.fetch(start, end + pd.Timedelta(1, "ns")))
    return out[out["timestamp"] >= T0 - LOOKBACK].sort_values(["entity", "timestamp"]) \
        .reset_index(drop=True)


def assert_same_scores(live: pd.DataFrame, batch: pd.DataFrame, metrics) -> None:
    assert len(live) == len(batch)
    assert (live["timestamp"].to_numpy() == batch["timestamp"].to_numpy()).all()
    assert (live["entity"].to_numpy() == batch["entity"].to_numpy()).all()
    np.testing.assert_allclose(live["anomaly_score"], batch["anomaly_score"], rtol=1e-12,
                               atol=1e-12)
    assert (live["is_anomaly"].to_numpy() == batch["is_anomaly"].to_numpy()).all()
    assert (live["ready"].to_numpy() == batch["ready"].to_numpy()).all()
    assert (live["top_metric"].astype(str).to_numpy()
            == batch["top_metric"].astype(str).to_numpy()).all()
    for m in metrics:
        np.testing.assert_allclose(live[f"contrib_{m}"], batch[f"contrib_{m}"], rtol=1e-12,
                                   atol=1e-12)
        for k in ("expected", "lower", "upper"):  # the band: the same numbers, defined
            np.testing.assert_array_equal(live[f"{k}_{m}"], batch[f"{k}_{m}"])
            assert np.isfinite(live[f"{k}_{m}"]).all()


# ------------------------------------------------------------------ config
def test_the_config_accepts_the_streaming_detectors_and_names_the_valid_ones() -> None:
    for name in series.SERIES_DETECTORS:
        job = job_config(model={"detector": name, "history": "5d"})
        assert job.model.detector == name and job.model.streaming
    assert not job_config().model.streaming
    # the config's lists (it sits below the registries' layers) are the registries'
    assert set(SERIES_DETECTORS) == set(series.SERIES_DETECTORS)
    # (a job trains on unlabelled live history: no detector that needs labels)
    assert set(MATRIX_DETECTORS) == {n for n, cls in DETECTORS.items()
                                     if not cls.requires_labels}
    with pytest.raises(ValueError, match=r"unknown detector 'contxt'; valid: default, "
                                         r"ensemble, .*, context, context_forecast, forecast"):
        job_config(model={"detector": "contxt"})
    with pytest.raises(ValueError, match="streaming detector 'context' takes none"):
        job_config(model={"detector": "context", "detector_params": {"k": 3}})


def test_the_loader_names_the_bad_detector_with_its_place(tmp_path) -> None:
    from aws_anomaly.config import load_settings

    cfg = tmp_path / "c.yaml"
    cfg.write_text("jobs:\n  - name: j\n    source: {type: demo}\n"
                   "    model: {detector: htm}\n")
    with pytest.raises(ConfigError, match=r"'jobs.0.model.detector': unknown detector 'htm'; "
                                          r"valid: default"):
        load_settings(cfg)


# ------------------------------------------------------------------ bundles
def test_a_series_bundle_round_trips_and_refuses_tampering(tmp_path, model, source_cfg):
    path = tmp_path / "m"
    model.metadata = {"note": "x"}
    model.save(path)
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "manifest.sha256"]
    got = load_model(path)
    assert isinstance(got, SeriesModel) and got.manifest_["kind"] == "series"
    src = DemoSource(source_cfg, start=T0, wall_clock=lambda: 0.0)
    ds = src.fetch(T0 - pd.Timedelta(days=4), T0)
    pd.testing.assert_frame_equal(got.score(ds), model.score(ds))
    assert got.metadata == {"note": "x"}
    # AnomalyModel.load says what it is instead of failing on a missing detector file
    with pytest.raises(ModelFileError, match=r"holds a 'series' model; load it with "
                                             r"aws_anomaly\.models_io\.load_model"):
        AnomalyModel.load(path)
    # a changed manifest (a bigger threshold, say) is refused
    man = path / "manifest.json"
    text = man.read_text()
    man.write_text(text.replace('"detector": "context"', '"detector": "forecast"'))
    with pytest.raises(ModelFileError, match=r"manifest\.json was modified"):
        load_model(path)
    man.write_text(text)
    assert isinstance(load_model(path), SeriesModel)
    # `aws-anomaly score` scores with it (any bundle kind)
    from aws_anomaly.cli import main

    csv = tmp_path / "metrics.csv"
    ds.frame.drop(columns=["is_anomaly", "anomaly_type"], errors="ignore").to_csv(csv,
                                                                                 index=False)
    assert main(["score", "--data", str(csv), "--model", str(path), "--out",
                 str(tmp_path / "s.csv")]) == 0
    got_csv = pd.read_csv(tmp_path / "s.csv")
    want = model.score(ds)
    assert len(got_csv) == len(want)
    np.testing.assert_allclose(got_csv["anomaly_score"], want["anomaly_score"], rtol=1e-5)
    # `aws-anomaly evaluate` scores the labelled parts with it and writes the report
    labelled = tmp_path / "labelled.csv"
    ds.frame.to_csv(labelled, index=False)
    assert main(["evaluate", "--data", str(labelled), "--model", str(path), "--report",
                 str(tmp_path / "r")]) == 0
    figures = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert figures["test"]["rows"] > 0 and "f1" in figures["test"]
    assert (tmp_path / "r" / "report.html").stat().st_size > 0
    # a file slipped into the folder is refused
    (path / "detector.skops").write_bytes(b"not mine")
    with pytest.raises(ModelFileError, match="not listed in the manifest"):
        load_model(path)


# ------------------------------------------------------------------ live == batch
def test_tick_by_tick_equals_one_pass_batch_whatever_the_tick_sizes(tmp_path, model):
    runner, src, clock, _, rec = make(tmp_path, model)
    assert runner.tick().ok
    end = jobkit.tick_through(runner, clock)
    live, batch = rec.frame(), one_pass(model, src, end)
    assert live["timestamp"].max() == end
    assert_same_scores(live, batch, model.metrics_)
    assert live["ready"].all() and live["is_anomaly"].any()
    assert runner.live.counts["rebuilt"] == 2
    assert runner.live.counts["continued"] == 2 * len(jobkit.TICK_SIZES)
    assert all(isinstance(runner.live._scorers[e], SeriesStream) for e in runner.live.entities())
    assert_explanations_agree(live, runner, model.metrics_)


def assert_explanations_agree(live: pd.DataFrame, runner: JobRunner, metrics) -> None:
    """The explanation of every flagged point and event says what the numbers say: each
    metric's deviation is (value - expected) in band half-widths; its kind is a behaviour
    outside the band when it is outside, and, inside, an unusual pattern of its own values
    (a per-metric detector never saw the metrics together); each event's sentence names the
    deviation it stores, on the right side, or "inside its expected band"."""
    flagged = live[live["is_anomaly"]]
    assert len(flagged)
    outside_kinds = {"spike", "level shift", "drift", "flatline"}
    for m in metrics:
        x, y = flagged[f"value_{m}"].to_numpy(), flagged[f"expected_{m}"].to_numpy()
        lo, hi = flagged[f"lower_{m}"].to_numpy(), flagged[f"upper_{m}"].to_numpy()
        dev = flagged[f"dev_{m}"].to_numpy()
        half = np.where(x >= y, hi - y, y - lo)
        np.testing.assert_allclose(dev, np.clip((x - y) / half, -1e6, 1e6), atol=1e-3)
        kind = flagged[f"kind_{m}"].to_numpy()
        assert set(kind[np.abs(dev) > 1]) <= outside_kinds
        assert set(kind[np.abs(dev) <= 1]) <= {"unusual pattern", "flatline"}
    assert set(flagged["top_metric"]) <= set(metrics)
    events = runner.store.list_events(job=runner.name, limit=1000).items
    assert events
    state = SimpleNamespace(runners={runner.name: runner})
    assert per_metric_model(state, runner.name)  # type: ignore[arg-type]
    for ev in events:
        text = explain(ev, per_metric=True)
        assert "other metrics" not in text
        for metric, share in ev.top_metrics[:2]:
            if share <= 0:
                continue
            dev = ev.deviations.get(metric)
            assert dev is not None, (metric, ev.deviations)
            if abs(dev) <= 1:
                assert f"{metric} ({share:.0%} of the anomaly, inside its expected band: an " \
                       "unusual pattern of its recent values)" in text
            else:
                side = "above" if dev > 0 else "below"
                assert f"{metric} ({share:.0%} of the anomaly, {abs(dev):.1f}x the expected " \
                       f"band {side})" in text, (text, dev)


def test_bad_or_foreign_checkpoints_are_not_resumed(tmp_path, model, source_cfg):
    runner, *_ = make(tmp_path, model, checkpoint_every=0)
    assert runner.tick().ok
    rows = runner.live.checkpoint_rows(everything=True)
    assert len(rows) == 2
    live = LiveState("demo")
    live.use(model, "1")
    # a changed state (its checksum no longer matches), a state of another entity, and a
    # feature scorer's checkpoint given to a series model: all rebuilt, none resumed
    changed = rows[0].state | {"stream": json.loads(json.dumps(rows[0].state["stream"]))}
    changed["stream"]["series"]["detectors"][0]["n_seen_"] = 3
    bad = [type(rows[0])(**{**rows[0].__dict__, "state": changed}),
           type(rows[1])(**{**rows[1].__dict__, "entity": rows[0].entity})]
    src = DemoSource(source_cfg, start=T0, wall_clock=lambda: 0.0)
    am = AnomalyModel(detector="robust", calibration={"method": "target_fpr",
                                                      "target_fpr": 0.02})
    am.fit(src.fetch(T0 - pd.Timedelta(days=2), T0))
    other = LiveState("demo")
    other.use(am, "1")
    assert live.restore(bad) == 0 and other.restore(rows) == 0
    assert live.restore(rows) == 2 and live.counts["resumed"] == 2


# ------------------------------------------------------------------ the job end to end
def test_a_context_job_trains_scores_restarts_from_its_checkpoint_and_rolls_back(tmp_path):
    job = job_config(model={"detector": "context", "history": "5d"})
    db = tmp_path / "store.db"
    mpath = tmp_path / "models" / "demo"
    runner, _, clock, st, rec = make(tmp_path, None, job=job, store_path=db,
                                       model_path=mpath, checkpoint_every=0)
    assert runner.tick().ok
    model = runner.model
    assert isinstance(model, SeriesModel) and model.detector == "context"
    assert sorted(p.name for p in mpath.iterdir()) == ["manifest.json", "manifest.sha256"]
    assert [m.version for m in st.list_models(name="demo")] == ["1"]
    for k in (60, 40):
        clock.steps(k)
        assert runner.tick().ok
    scores = rec.frame()
    assert len(scores) and scores["ready"].all()
    assert st.job_state("demo") == {e: T0 + 100 * STEP for e in scores["entity"].unique()}
    assert runner.save_checkpoints() == 2
    rows = st.load_checkpoints("demo", "1")
    assert {r.entity for r in rows} == set(runner.live.entities())
    assert all(r.state["kind"] == "series" and r.last_ns == (T0 + 100 * STEP).value
               and r.checksum for r in rows)

    # the same job continued without a restart: the reference
    ref_runner, _, ref_clock, _, ref_rec = make(tmp_path / "ref", model, job=job)
    assert ref_runner.tick().ok
    for k in (60, 40, 30, 20):
        ref_clock.steps(k)
        assert ref_runner.tick().ok
    reference = ref_rec.frame()

    # restart: the bundle is loaded (checksummed), the streams resumed from the checkpoint
    again, _, clock2, _, rec2 = make(tmp_path, None, job=job, store_path=db, model_path=mpath)
    clock2.steps(100)
    for k in (30, 20):
        clock2.steps(k)
        res = again.tick()
        assert res.ok, res.error
    assert isinstance(again.model, SeriesModel) and again.model is not model
    assert again.live.counts["resumed"] == 2 and again.live.counts["rebuilt"] == 0
    cont = rec2.frame()
    tail = reference[reference["timestamp"] > T0 + 100 * STEP].reset_index(drop=True)
    assert_same_scores(cont, tail, model.metrics_)
    # the demo's incidents became events, stored with the job's model
    assert reference["is_anomaly"].any()
    assert st.count_events(job="demo") >= 1

    # a retrain registers version 2 (a new series bundle); rollback brings version 1 back
    again.retrain(reason="test")
    assert isinstance(again.model, SeriesModel)
    assert sorted(m.version for m in st.list_models(name="demo")) == ["1", "2"]
    rec_v = again.rollback("1")
    assert rec_v.version == "1" and isinstance(again.model, SeriesModel)
    assert load_model(mpath).to_dict()["calibrator"] == model.to_dict()["calibrator"]
    clock2.steps(5)
    assert again.tick().ok


def test_score_continuation_is_the_next_live_score_and_leaves_the_state(tmp_path, model,
                                                                       source_cfg):
    with jobkit.score_continuation(tmp_path, model, source_cfg, detector="context") as c:
        runner, entity, before, r, nxt = c.runner, c.entity, c.before, c.response, c.nxt
        client = c.client
        after = runner.live._scorers[entity].get_state()
        assert before[0] == after[0] and before[1].keys() == after[1].keys()
        assert all(np.array_equal(before[1][k], after[1][k], equal_nan=True) for k in before[1])
        c.clock.steps(1)
        assert runner.tick().points == 2
        row = runner.recent(entity).iloc[-1]
        assert row["timestamp"] == nxt
        p = r.json()["points"][0]
        assert p["anomaly_score"] == pytest.approx(row["anomaly_score"], rel=1e-12, abs=1e-12)
        # the answer's band is the one the job draws for that point, and its deviation
        for m in model.metrics_:
            band = p["expected"][m]
            assert band is not None and band["lower"] < band["expected"] < band["upper"]
            assert [band["expected"], band["lower"], band["upper"]] == [
                row[f"expected_{m}"], row[f"lower_{m}"], row[f"upper_{m}"]]
            assert p["explanation"]["deviations"][m] == pytest.approx(row[f"dev_{m}"],
                                                                      abs=1e-3)
        # the status page describes the job's model (its inputs are the metrics)
        st = client.get("/v1/status", headers={"Authorization": "Bearer " + "t" * 16})
        assert st.status_code == 200, st.text
        info = st.json()["jobs"][0]["model_info"]
        assert info["detector"] == "context" and info["features"] == len(model.metrics_)
        # the dashboard's reads work with a series model
        auth = {"Authorization": "Bearer " + "t" * 16}
        for url in ("/readyz", "/metrics", "/v1/entities", f"/v1/entities/{entity}/series",
                    "/v1/anomalies", "/v1/models", "/v1/precision"):
            got = client.get(url, headers=auth)
            assert got.status_code == 200, (url, got.text)
        # the band: drawn from /series, exported on /metrics
        series_ = client.get(f"/v1/entities/{entity}/series", headers=auth).json()
        for m in model.metrics_:
            y, lo, hi = (np.array(series_[k][m], dtype=float) for k in ("expected", "lower",
                                                                         "upper"))
            assert np.isfinite(y).all() and (lo < y).all() and (y < hi).all()
            assert series_["deviations"][m] and len(y) == len(series_["timestamps"])
        text = client.get("/metrics", headers=auth).text
        for name in ("aws_anomaly_expected_value", "aws_anomaly_expected_lower",
                     "aws_anomaly_expected_upper"):
            assert f'{name}{{' in text and f'entity="{entity}"' in text


# ------------------------------------------------------------------ gaps
def test_a_short_gap_is_filled_a_longer_one_crossed_one_past_the_look_back_restarts(
        tmp_path, model, source_cfg):
    """A short gap (<= max_gap_steps) is filled as batch fills it: the live scores are those
    of one pass over the filled series; a longer gap within the look-back is crossed (the
    stream continues, ready, with its band); past the look-back the entity's stream starts
    afresh after the gap, learning again, while the other entity goes on."""
    job = job_config()
    clock = Clock()
    src = jobkit.HoleSource(job.source, start=T0, wall_clock=clock)
    runner, _, _, _, rec = make(tmp_path, model, clock=clock, job=job)
    runner.source = src
    assert runner.tick().ok
    clock.steps(2)
    assert runner.tick().ok
    entity, other = runner.live.entities()
    src.entity = entity
    look = model.min_history
    # short: 3 missing steps, filled by the stream with the last values
    src.hole = (T0 + 3 * STEP, T0 + 5 * STEP)
    clock.steps(4)
    assert runner.tick().ok
    assert runner.live.counts == {"rebuilt": 2, "resumed": 0, "continued": 4}
    live = rec.frame()
    ahead = Clock()
    ref = DemoSource(job.source, start=T0, wall_clock=ahead)
    ahead.steps(100)
    whole = ref.fetch(T0 - LOOKBACK - STEP * warm_rows(model), T0 + 7 * STEP)
    f = whole.frame
    holed = Dataset.from_frame(f.loc[~((f["entity"] == entity)
                                       & f["timestamp"].between(*src.hole))],
                               metrics=whole.metrics, step=whole.step)
    batch = model.score(holed)
    batch = batch.merge(live[["timestamp", "entity"]], on=["timestamp", "entity"]) \
        .sort_values(["entity", "timestamp"]).reset_index(drop=True)
    live = live.sort_values(["entity", "timestamp"]).reset_index(drop=True)
    assert not (live["entity"].eq(entity) & live["timestamp"].between(*src.hole)).any()
    assert_same_scores(live, batch, model.metrics_)
    # longer than the fill limit, within the look-back: crossed, the stream continues
    src.hole = (T0 + 7 * STEP, T0 + 56 * STEP)
    clock.steps(52)
    rec.scores.clear()
    assert runner.tick().ok
    assert runner.live.counts["rebuilt"] == 2 and runner.live.counts["continued"] == 6
    got = rec.frame()
    after = got[got["entity"] == entity]
    assert after["timestamp"].min() == T0 + 57 * STEP and after["ready"].all()
    assert np.isfinite(after[[f"expected_{m}" for m in model.metrics_]].to_numpy()).all()
    # longer than the look-back: the entity's stream restarts after the gap
    src.hole = (T0 + 59 * STEP, T0 + (59 + look) * STEP)
    clock.steps(look + 6)
    rec.scores.clear()
    assert runner.tick().ok
    assert runner.live.counts["rebuilt"] == 3
    got = rec.frame()
    after = got[got["entity"] == entity]
    assert after["timestamp"].min() == T0 + (60 + look) * STEP
    assert not after["ready"].any()  # learning again after the gap
    assert runner.live._scorers[entity].n_seen == len(after)
    assert got[got["entity"] == other]["ready"].all()
