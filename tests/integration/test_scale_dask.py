"""aws_anomaly.scale against a real ``distributed.LocalCluster`` on loopback.

One cluster (two worker processes, one thread each) serves the whole module. Data is small
(4 clusters x 5 days) so the module stays within its time budget; the cluster's start-up is
most of it.
"""

from __future__ import annotations

import pickle
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

distributed = pytest.importorskip("distributed")

from aws_anomaly.config import DemoSourceConfig  # noqa: E402
from aws_anomaly.data.generator import generate_demo  # noqa: E402
from aws_anomaly.errors import ConfigError, DataError, ModelFileError, NotFittedError  # noqa: E402
from aws_anomaly.evaluation.split import Split, chronological_split  # noqa: E402
from aws_anomaly.model import AnomalyModel  # noqa: E402
from aws_anomaly.models_io import load_model  # noqa: E402
from aws_anomaly.scale import (  # noqa: E402
    SchedulerError,
    TaskError,
    bundle_folder,
    local_cluster,
    score_dataset,
    score_source,
    train_per_entity,
)
from aws_anomaly.scale.tasks import naming  # noqa: E402
from aws_anomaly.sources import make_source  # noqa: E402
from aws_anomaly.streaming.series import SeriesModel  # noqa: E402

pytestmark = pytest.mark.integration

FLOAT_COLUMNS = ("anomaly_score", "contrib_cluster_cpu_request_ratio",
                 "contrib_cluster_mem_request_ratio", "contrib_cluster_pod_ratio")


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    # dashboard_address=None would still open Dask's HTTP server on port 8787: ask for a free
    # loopback port instead.
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0")
    c = distributed.Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def split() -> Split:
    ds, _ = generate_demo(clusters=4, days=5, seed=3)
    return chronological_split(ds, (0.6, 0.2, 0.2))


@pytest.fixture(scope="module")
def robust(split: Split) -> AnomalyModel:
    return AnomalyModel(detector="robust").fit(split.train, split.validation)


def test_distributed_scores_equal_in_process_exactly(client, split, robust) -> None:
    """Several entities, each partition with its own look-back: identical to model.score."""
    expected = robust.score(split.test, history=split.development)
    assert expected["ready"].all()  # the history made every test row scoreable
    for per_task in (1, 3):  # one entity per task, and uneven groups
        got = score_dataset(robust, split.test, history=split.development, client=client,
                            entities_per_task=per_task)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got["entity"].unique().tolist() == list(split.test.entities)
    assert int(got["is_anomaly"].sum()) > 0  # flagged rows, so contributions were compared


def test_scores_from_a_bundle_path_and_a_scheduler_address(client, split, tmp_path) -> None:
    """Workers load the bundle themselves (checksums verified); the client is an address."""
    model = AnomalyModel(detector="lof").fit(split.train, split.validation)
    path = model.save(tmp_path / "lof")
    expected = AnomalyModel.load(path).score(split.test, history=split.development)
    got = score_dataset(path, split.test, history=split.development,
                        client=client.scheduler.address)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_a_streaming_series_bundle_scores_on_the_cluster_as_in_process(client, split,
                                                                      tmp_path) -> None:
    """Any bundle kind: workers load a streaming detector's JSON bundle (checksums verified,
    through models_io.load_model) or receive the fitted object; the scores, flags, shares and
    band equal one in-process ``score``."""
    two = list(split.train.entities[:2])
    test, val = split.test.select(two), split.validation.select(two)
    model = SeriesModel("context", learn="6h").fit(split.train.select(two))
    path = model.save(tmp_path / "context")
    expected = load_model(path).score(test, history=val)
    assert expected["ready"].all() and expected["expected_cluster_pod_ratio"].notna().all()
    got = score_dataset(path, test, history=val, client=client, entities_per_task=1)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    got = score_dataset(model, test, history=val, client=client)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    with pytest.raises(NotFittedError, match="SeriesModel is not fitted"):
        score_dataset(SeriesModel("context"), split.test, client=client)


def test_blas_detector_equal_to_rounding(client, split) -> None:
    """The One-Class SVM scores through BLAS products, whose last bits depend on the thread
    count (Dask workers run BLAS single-threaded) and on how many rows go in one product: the
    floats agree to rounding, the flags and explanations exactly."""
    model = AnomalyModel(detector="ocsvm", detector_params={"max_support_vectors": 100}).fit(
        split.train, split.validation)
    expected = model.score(split.test, history=split.development)
    got = score_dataset(model, split.test, history=split.development, client=client)
    for col in ("timestamp", "entity", "is_anomaly", "top_metric", "ready"):
        pd.testing.assert_series_equal(got[col], expected[col], check_exact=True)
    for col in FLOAT_COLUMNS:
        np.testing.assert_allclose(got[col], expected[col], rtol=1e-12, atol=1e-12)


def test_train_per_entity_writes_loadable_bundles(client, split, tmp_path) -> None:
    paths = train_per_entity(split.train, split.validation, client=client,
                             out_dir=tmp_path / "models", model_params={"detector": "robust"})
    assert list(paths) == list(split.train.entities)
    expected = []
    for entity, path in paths.items():
        assert path == tmp_path / "models" / bundle_folder(entity)
        model = AnomalyModel.load(path)
        assert model.manifest_["entity"] == entity
        # Each bundle is the model one would fit on that entity alone.
        alone = AnomalyModel(detector="robust").fit(split.train.select(entity),
                                                    split.validation.select(entity))
        np.testing.assert_array_equal(model.scaler_.center_, alone.scaler_.center_)
        assert model.calibrator_.to_dict() == alone.calibrator_.to_dict()
        expected.append(model.score(split.test.select(entity),
                                    history=split.development.select(entity)))
    # Scoring with one model per entity: each entity goes through its own bundle.
    got = score_dataset(paths, split.test, history=split.development, client=client)
    pd.testing.assert_frame_equal(got, pd.concat(expected, ignore_index=True), check_exact=True)


def test_fetch_and_score_from_a_source_config(client, robust) -> None:
    cfg = DemoSourceConfig(clusters=4, days=5, future_days=1, seed=5)
    now = pd.Timestamp("2026-03-10T00:00Z")
    start, end = now - pd.Timedelta(hours=12), now
    entities = ["eks-prod-us-east-1", "eks-prod-eu-west-1", "eks-prod-us-west-2"]
    got = score_source(cfg, robust, start, end, entities=entities, client=client,
                       source_kwargs={"start": now}, entities_per_task=2)
    # In process: one source, one fetch of the same window, the same look-back.
    src = make_source(cfg, metrics=list(robust.metrics_), start=now)
    back = robust.spec.min_history * robust.step_
    ds = src.fetch(start - back, end, entities=entities)
    expected = robust.score(ds.slice_time(start, None), history=ds.slice_time(None, start))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got["ready"].all()
    assert got["timestamp"].min() == start and len(got) == 3 * 144


def test_unreachable_scheduler_fails_fast_naming_the_address(split, robust) -> None:
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    t0 = time.monotonic()
    with pytest.raises(SchedulerError, match=f"cannot reach the Dask scheduler at {address}"):
        score_dataset(robust, split.test, client=address, timeout=1.0)
    # The 1 s timeout is honoured (distributed's default would wait 30 s).
    assert time.monotonic() - t0 < 15
    with pytest.raises(ConfigError, match="unknown protocol"):
        score_dataset(robust, split.test, client="http://127.0.0.1:8786")
    with pytest.raises(ConfigError, match=r"distributed\.Client or a scheduler address"):
        score_dataset(robust, split.test, client=8786)  # type: ignore[arg-type]


def test_worker_failure_names_the_entity(client, split, robust) -> None:
    """One entity lacks the look-back its feature windows need: the error names it."""
    short = "eks-prod-eu-west-1"
    others = [e for e in split.test.entities if e != short]
    history = split.development.select(others)
    with pytest.raises(DataError, match=f"entity '{short}' has 288 points") as info:
        score_dataset(robust, split.test, history=history, client=client,
                      entities_per_task=2)
    assert "needs at least 289" in str(info.value)
    # In one process the same error class is raised for the same entity.
    with pytest.raises(DataError, match=short):
        robust.score(split.test, history=history)


def test_altered_bundle_is_refused_on_the_worker(client, split, robust, tmp_path) -> None:
    good = Path(robust.save(tmp_path / "good"))
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    arr = bad / "scaler_center.npy"
    raw = bytearray(arr.read_bytes())
    raw[-1] ^= 0xFF  # one flipped byte of a number: the sha256 no longer matches
    arr.write_bytes(bytes(raw))
    target = "eks-prod-us-west-2"
    models = {e: (bad if e == target else good) for e in split.test.entities}
    with pytest.raises(ModelFileError,
                       match=f"entity '{target}': model bundle .*bad: scaler_center.npy was "
                             "modified") as info:
        score_dataset(models, split.test, history=split.development, client=client)
    assert "refusing to load it" in str(info.value)
    with pytest.raises(ConfigError,
                       match=r"no model bundle for entities \['eks-prod-ap-southeast-1'"):
        score_dataset({target: good}, split.test, client=client)


def test_unexpected_worker_errors_become_task_errors_naming_the_entity() -> None:
    """A failure that is not one of the project's errors is wrapped, and the entity survives
    the trip from worker to client (exceptions travel pickled)."""
    with pytest.raises(TaskError) as info, naming("eks-a", "scoring"):
        raise ZeroDivisionError("boom")
    err = pickle.loads(pickle.dumps(info.value))
    assert isinstance(err, TaskError) and err.entity == "eks-a"
    assert str(err) == "entity 'eks-a': scoring failed: ZeroDivisionError: boom"
    # Project errors keep their class; the entity is added once.
    with pytest.raises(DataError, match=r"^entity 'eks-b': bad rows$"), naming("eks-b", "x"):
        raise DataError("bad rows")


def test_bad_arguments_are_refused_before_any_task(client, split, robust, tmp_path) -> None:
    with pytest.raises(ConfigError, match="explain must be"):
        score_dataset(robust, split.test, client=client, explain="some")
    with pytest.raises(DataError, match="data must be a Dataset"):
        score_dataset(robust, split.test.frame, client=client)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="entities_per_task must be a positive integer"):
        score_dataset(robust, split.test, client=client, entities_per_task=0)
    with pytest.raises(ConfigError, match="bad model_params"):
        train_per_entity(split.train, client=client, out_dir=tmp_path, model_params={"x": 1})
    only_two = split.validation.select(list(split.validation.entities[:2]))
    with pytest.raises(DataError, match="validation data has no rows for entities"):
        train_per_entity(split.train, only_two, client=client, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="give the entities"):
        score_source(DemoSourceConfig(clusters=1, days=1), robust, 0, 1, entities=[],
                     client=client)
    unfitted = AnomalyModel(detector="robust")
    with pytest.raises(NotFittedError, match="not fitted"):
        score_dataset(unfitted, split.test, client=client)


def test_local_cluster_listens_on_loopback_only(split, robust) -> None:
    """The single-machine helper (threads here, to keep the test short)."""
    with local_cluster(1, processes=False) as c:
        addresses = [c.scheduler.address, *c.scheduler_info()["workers"]]
        assert all(a.startswith("tcp://127.0.0.1:") for a in addresses), addresses
        # Every socket this process listens on (both clusters' schedulers, this worker, their
        # HTTP endpoints) is on loopback.
        listening = [conn.laddr for conn in psutil.Process().net_connections()
                     if conn.status == psutil.CONN_LISTEN]
        assert len(listening) >= 4
        assert all(a.ip == "127.0.0.1" for a in listening), listening
        got = score_dataset(robust, split.test, history=split.development, client=c)
        pd.testing.assert_frame_equal(
            got, robust.score(split.test, history=split.development), check_exact=True)
    assert c.status == "closed"
    with pytest.raises(ConfigError, match="n_workers must be a positive integer"), \
            local_cluster(0):
        pass
