"""The store: one suite run against SQLite and a real PostgreSQL started by the tests."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from aws_anomaly.errors import DataError, StoreError
from aws_anomaly.events import AnomalyEvent, event_id_for
from aws_anomaly.store import ModelRecord, OutboxItem, Store

T0 = pd.Timestamp("2026-03-01T00:00Z")
STEP = pd.Timedelta("5min")


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL on 127.0.0.1 (initdb in a temp dir, as a non-root user)."""
    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
        pytest.skip("PostgreSQL is not installed")
    root = Path(tempfile.mkdtemp(prefix="aws-anomaly-pg-"))
    data = root / "data"
    port = _free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: run it as 'nobody' in a folder it owns.
        shutil.chown(root, user="nobody")
        os.chmod(root, 0o700)
        prefix = ["runuser", "-u", "nobody", "--"]
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--no-sync"], check=True,
                   capture_output=True)
    proc = subprocess.Popen(
        [*prefix, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}",
         "-c", "fsync=off"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pass
                Store(url).close()
                break
            except (OSError, StoreError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("PostgreSQL did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        st = Store(f"sqlite:///{tmp_path / 'sub' / 'store.db'}")
    else:
        url = request.getfixturevalue("postgres_url")
        st = Store(url)
        # A fresh schema state for each test on the shared server.
        from aws_anomaly.store.schema import metadata

        metadata.drop_all(st.engine)
        st.close()
        st = Store(url)
    yield st
    st.close()


def event(entity: str = "eks-a", start_step: int = 0, n: int = 2, peak: float = 1.5,
          status: str = "closed", job: str = "demo") -> AnomalyEvent:
    start = T0 + start_step * STEP
    return AnomalyEvent(
        event_id=event_id_for(entity, start, job=job, model="demo"), entity=entity, start=start,
        end=start + (n - 1) * STEP, peak_score=peak, peak_time=start, n_points=n,
        top_metrics=(("cpu", 0.7), ("mem", 0.3)), status=status, weight=peak * n,
        deviations={"cpu": 4.2}, job=job, model="demo")


def test_upsert_is_idempotent_and_updates(store: Store):
    ev = event(status="open")
    store.upsert_events([ev, ev])
    store.upsert_events([ev])
    assert store.count_events() == 1
    grown = AnomalyEvent(**{**ev.__dict__, "end": ev.end + STEP, "n_points": 3,
                            "status": "closed", "peak_score": 2.5})
    store.upsert_events([grown])
    got = store.get_event(ev.event_id)
    assert got is not None and got.status == "closed" and got.n_points == 3
    assert got.peak_score == 2.5 and got.end == ev.end + STEP
    assert got.top_metrics == (("cpu", 0.7), ("mem", 0.3)) and got.deviations == {"cpu": 4.2}
    assert got.start == ev.start and got.start.tz is not None
    assert store.count_events() == 1


def test_list_filters_and_cursor_pagination(store: Store):
    evs = [event("eks-a", i * 10) for i in range(7)] + [event("eks-b", 3, status="open")]
    store.upsert_events(evs)
    seen, cursor = [], None
    while True:
        page = store.list_events(limit=3, cursor=cursor)
        seen += [e.event_id for e in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 8 and len(set(seen)) == 8
    starts = [store.get_event(i).start for i in seen]
    assert starts == sorted(starts, reverse=True)
    assert [e.entity for e in store.list_events(status="open").items] == ["eks-b"]
    assert len(store.list_events(entity="eks-a").items) == 7
    win = store.list_events(start=T0 + 20 * STEP, end=T0 + 41 * STEP)
    assert sorted(e.start for e in win.items) == [T0 + k * STEP for k in (20, 30, 40)]
    with pytest.raises(DataError, match="cursor"):
        store.list_events(cursor="not-a-cursor!")
    with pytest.raises(DataError, match="limit"):
        store.list_events(limit=0)


def test_commit_tick_writes_events_and_state_together(store: Store):
    store.commit_tick("demo", [event()], {"eks-a": T0 + 9 * STEP, "eks-b": T0})
    assert store.job_state("demo") == {"eks-a": T0 + 9 * STEP, "eks-b": T0}
    store.commit_tick("demo", [], {"eks-a": T0 + 10 * STEP})
    assert store.job_state("demo")["eks-a"] == T0 + 10 * STEP
    assert store.job_state("other") == {}
    assert list(store.open_events("demo")) == []
    store.upsert_events([event("eks-c", status="open")])
    assert list(store.open_events("demo")) == ["eks-c"]


def test_feedback_and_measured_precision(store: Store):
    a, b, c = event("eks-a", 0), event("eks-a", 10), event("eks-b", 0)
    store.upsert_events([a, b, c])
    store.add_feedback(a.event_id, "true_positive", "disk filled")
    store.add_feedback(b.event_id, "true_positive")
    store.add_feedback(b.event_id, "false_positive", "changed my mind")
    store.add_feedback(c.event_id, "false_positive")
    fb = store.feedback_for(b.event_id)
    assert [f.label for f in fb] == ["true_positive", "false_positive"]
    p = store.precision()
    assert (p.true_positives, p.false_positives, p.precision) == (1, 2, pytest.approx(1 / 3))
    assert store.precision(entity="eks-a").precision == 0.5
    assert store.precision(job="none").precision is None
    with pytest.raises(DataError, match="unknown anomaly event"):
        store.add_feedback("0" * 16, "true_positive")
    with pytest.raises(DataError, match="label must be one of"):
        store.add_feedback(a.event_id, "maybe")


def test_model_registry_keeps_one_active_version(store: Store):
    for v in ("1", "2"):
        store.register_model(ModelRecord(name="demo", version=v, job="demo", path=f"/m/{v}",
                                         detector="ocsvm", trained_at=T0 + int(v) * STEP,
                                         info={"metrics": ["cpu"]}))
    models = store.list_models(name="demo")
    assert [(m.version, m.active) for m in models] == [("2", True), ("1", False)]
    assert store.active_model("demo").path == "/m/2" and models[0].info == {"metrics": ["cpu"]}


def test_entity_thresholds_are_replaced_per_job(store: Store):
    store.replace_entity_thresholds("demo", {"eks-a": (1.4, "2 false positives")})
    store.replace_entity_thresholds("other", {"eks-a": (2.0, "x")})
    assert store.entity_thresholds("demo") == {"eks-a": 1.4}
    store.replace_entity_thresholds("demo", {})
    assert store.entity_thresholds("demo") == {} and store.entity_thresholds("other") == {
        "eks-a": 2.0}


def test_integrity_check_finds_logical_problems(store: Store):
    store.upsert_events([event()])
    assert store.check_integrity() == []
    bad = event("eks-z")
    store.upsert_events([AnomalyEvent(**{**bad.__dict__, "end": bad.start - STEP})])
    problems = store.check_integrity()
    assert any("ends before it starts" in p for p in problems)


def test_entity_summary_counts_open_events(store: Store):
    store.upsert_events([event("eks-a", 0), event("eks-a", 10, status="open"), event("eks-b")])
    s = store.entity_summary("demo")
    assert s["eks-a"]["events"] == 2 and s["eks-a"]["open_events"] == 1
    assert s["eks-b"]["open_events"] == 0 and s["eks-a"]["last_event_start"] == T0 + 10 * STEP


def test_sqlite_uses_wal_and_full_sync(tmp_path: Path):
    st = Store(f"sqlite:///{tmp_path / 's.db'}")
    with st.engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_unreachable_store_raises_store_error():
    with pytest.raises(StoreError, match="cannot initialise store") as info:
        Store(f"postgresql+psycopg://nobody:secret@127.0.0.1:{_free_port()}/x")
    assert "secret" not in str(info.value)
    with pytest.raises(StoreError, match="not supported"):
        Store("mysql+pymysql://localhost/x")


# ------------------------------------------------------------------ two jobs, one entity
def test_two_jobs_on_one_entity_keep_their_own_events(store: Store):
    """Issue 10.2: the same incident found by two jobs is two events; neither overwrites."""
    a, b = event(job="cpu", status="open"), event(job="mem", status="open")
    assert a.event_id != b.event_id
    store.commit_tick("cpu", [a], {"eks-a": T0})
    store.commit_tick("mem", [b], {"eks-a": T0})
    store.upsert_events([a])  # a replay of job cpu's tick changes nothing of job mem
    assert store.count_events(job="cpu") == 1 and store.count_events(job="mem") == 1
    assert list(store.open_events("cpu")) == ["eks-a"] == list(store.open_events("mem"))
    assert store.get_event(b.event_id).job == "mem"
    # The same (job, model, entity, start) is one incident whatever id a caller gives it.
    again = AnomalyEvent(**{**a.__dict__, "event_id": "f" * 16, "n_points": 5})
    store.upsert_events([again])
    assert store.count_events(job="cpu") == 1 and store.get_event(a.event_id).n_points == 5


def test_store_of_schema_1_gets_the_identity_index(tmp_path: Path):
    from sqlalchemy import create_engine, inspect

    from aws_anomaly.store.schema import events_identity, metadata

    url = f"sqlite:///{tmp_path / 'old.db'}"
    eng = create_engine(url)
    metadata.create_all(eng)
    with eng.begin() as conn:
        events_identity.drop(conn)  # what a version-1 store looked like
    assert "ux_events_identity" not in {i["name"] for i in inspect(eng).get_indexes(
        "anomaly_events")}
    eng.dispose()
    st = Store(url)
    assert "ux_events_identity" in {i["name"] for i in inspect(st.engine).get_indexes(
        "anomaly_events")}
    st.commit_tick("cpu", [event(job="cpu")], {})
    st.commit_tick("mem", [event(job="mem")], {})
    assert st.count_events() == 2
    st.close()


# ------------------------------------------------------------------ the notification outbox
def item(status: str = "firing", event_id: str = "e1", repeat: float | None = None,
         score: float = 1.5) -> OutboxItem:
    return OutboxItem(job="demo", notifier="webhook-0", event_id=event_id, status=status,
                      payload={"event_id": event_id, "score": score}, repeat_after_s=repeat)


def test_outbox_rows_commit_with_the_tick_or_not_at_all(store: Store):
    store.commit_tick("demo", [event()], {"eks-a": T0}, [item()])
    [row] = store.outbox(state="pending")
    assert (row.job, row.notifier, row.event_id, row.status, row.attempts) == (
        "demo", "webhook-0", "e1", "firing", 0)
    # A transaction failing half-way (a bad outbox row) writes neither events nor state.
    with pytest.raises(DataError, match="status must be"):
        store.commit_tick("demo", [event("eks-b")], {"eks-a": T0 + STEP},
                          [item(event_id="e2"), item("maybe", event_id="e3")])
    assert store.job_state("demo") == {"eks-a": T0}
    assert store.count_events() == 1 and [r.event_id for r in store.outbox()] == ["e1"]


def test_outbox_dedupes_refreshes_and_repeats(store: Store):
    now = 1_000_000.0
    assert store.enqueue_alerts([item(score=1.5)], now=now) == 1
    assert store.enqueue_alerts([item(score=2.5)], now=now + 1) == 1  # refreshed, not doubled
    [row] = store.due_alerts("demo", "webhook-0", now=now + 1)
    assert row.payload["score"] == 2.5
    store.mark_alerts([row.id], "sent", now=now + 2)
    assert store.enqueue_alerts([item()], now=now + 3) == 0  # delivered once: no repeat
    assert store.enqueue_alerts([item(repeat=60)], now=now + 30) == 0
    assert store.enqueue_alerts([item(repeat=60)], now=now + 62) == 1  # repeat_interval
    assert [r.seq for r in store.outbox(state="pending")] == [1]
    assert store.enqueue_alerts([item("resolved")], now=now + 63) == 1
    assert store.enqueue_alerts([item("resolved")], now=now + 64) == 1  # pending: refreshed
    ids = [r.id for r in store.due_alerts("demo", "webhook-0", now=now + 64)]
    store.mark_alerts(ids, "sent", now=now + 65)
    assert store.enqueue_alerts([item("resolved", repeat=1)], now=now + 999) == 0
    assert store.outbox_counts(job="demo") == {"pending": 0, "sent": 3, "dropped": 0}


def test_outbox_retries_and_expiry(store: Store):
    now = 2_000_000.0
    store.enqueue_alerts([item(event_id="old")], now=now)
    store.enqueue_alerts([item(event_id="new")], now=now + 100)
    ids = [r.id for r in store.due_alerts("demo", "webhook-0", now=now + 100)]
    store.mark_alerts(ids, "pending", now=now + 100, retry_at=now + 130, error="answered 500")
    assert store.due_alerts("demo", "webhook-0", now=now + 129) == []
    assert store.next_alert_due("demo", "webhook-0") == pytest.approx(now + 130)
    due = store.due_alerts("demo", "webhook-0", now=now + 130)
    assert [(r.event_id, r.attempts, r.last_error) for r in due] == [
        ("old", 1, "answered 500"), ("new", 1, "answered 500")]
    gone = store.expire_alerts("demo", "webhook-0", older_than=now + 50, now=now + 150)
    assert [r.event_id for r in gone] == ["old"]
    assert [r.event_id for r in store.outbox(state="pending")] == ["new"]
    [dropped] = store.outbox(state="dropped")
    assert "expired" in dropped.last_error and dropped.done == pytest.approx(now + 150)
    with pytest.raises(DataError, match="state must be one of"):
        store.mark_alerts([1], "lost", now=now)
    with pytest.raises(DataError, match="status must be"):
        store.enqueue_alerts([item("maybe")])


# ------------------------------------------------------------------ registry history (issue 12.4)
def version(v: str, *, at: int = 0, **kw) -> ModelRecord:
    return ModelRecord(name="demo", version=v, job="demo", path=f"/m/demo@v{v}",
                       detector="knn", trained_at=T0 + at * STEP,
                       info={"rows": 100 * int(v)}, **kw)


def test_registry_numbers_versions_and_keeps_their_history(store: Store):
    assert store.next_model_version("demo") == "1"
    for v in range(1, 12):
        store.register_model(version(str(v), at=v))
    assert store.next_model_version("demo") == "12"
    models = store.list_models(name="demo")
    # numeric order (10 and 11 after 9, not between 1 and 2), one champion, the rest retired
    assert [m.version for m in models] == [str(v) for v in range(11, 0, -1)]
    assert [m.status for m in models] == ["champion"] + ["retired"] * 10
    assert [m.active for m in models] == [True] + [False] * 10
    assert models[-1].info == {"rows": 100}


def test_challenger_is_recorded_rejected_or_promoted_with_its_decision(store: Store):
    store.register_model(version("1"))
    store.register_model(version("2", status="challenger", decision={"trigger": "schedule"}),
                         activate=False)
    assert store.active_model("demo").version == "1"
    assert store.get_model("demo", "2").status == "challenger"
    store.set_model_status("demo", "2", "rejected",
                           decision={"promoted": False, "reasons": ["alert rate 9 > 1"]})
    got = store.get_model("demo", "2")
    assert got.status == "rejected" and not got.active
    assert got.decision == {"promoted": False, "reasons": ["alert rate 9 > 1"]}
    store.register_model(version("3", status="challenger"), activate=False)
    old = store.promote_model("demo", "3", decision={"promoted": True})
    assert old is not None and old.version == "1"
    assert [(m.version, m.status) for m in store.list_models(name="demo")] == [
        ("3", "champion"), ("2", "rejected"), ("1", "retired")]
    # rollback: the retired version becomes champion again, in one transaction
    store.promote_model("demo", "1")
    assert [(m.version, m.status, m.active) for m in store.list_models(name="demo")] == [
        ("3", "retired", False), ("2", "rejected", False), ("1", "champion", True)]
    assert store.check_integrity() == []
    with pytest.raises(DataError, match="has no version '9'"):
        store.promote_model("demo", "9")
    with pytest.raises(DataError, match="use promote_model"):
        store.set_model_status("demo", "2", "champion")
    with pytest.raises(DataError, match="status must be one of"):
        store.register_model(version("4", status="best"), activate=False)


def test_store_of_schema_2_gets_the_registry_columns(tmp_path: Path):
    """A store written before the registry kept history: the active version becomes the
    champion, the others retired; new versions register as usual."""
    from sqlalchemy import create_engine, inspect, text

    url = f"sqlite:///{tmp_path / 'v2.db'}"
    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(text(
            "CREATE TABLE models (name VARCHAR(128) NOT NULL, version VARCHAR(64) NOT NULL, "
            "job VARCHAR(64) NOT NULL, path TEXT NOT NULL, detector VARCHAR(64) NOT NULL, "
            "trained_at_us BIGINT NOT NULL, active BOOLEAN NOT NULL, info JSON NOT NULL, "
            "PRIMARY KEY (name, version))"))
        conn.execute(text("INSERT INTO models VALUES ('demo', '1', 'demo', '/m', 'ocsvm', 0, "
                          "1, '{}'), ('demo', 'old', 'demo', '/o', 'ocsvm', 0, 0, '{}')"))
    eng.dispose()
    st = Store(url)
    cols = {c["name"] for c in inspect(st.engine).get_columns("models")}
    assert {"status", "decision"} <= cols
    assert {m.version: m.status for m in st.list_models()} == {"1": "champion",
                                                               "old": "retired"}
    assert st.next_model_version("demo") == "2"
    st.register_model(version("2"))
    assert st.active_model("demo").version == "2" and st.check_integrity() == []
    st.close()
    assert Store(url).get_model("demo", "1").status == "retired"  # reopening changes nothing
