"""``blas_one_thread``: BLAS on one thread inside, the caller's thread counts after (the live
path uses it on every point, so it must restore whatever limit the caller set)."""

from __future__ import annotations

import numpy as np
from threadpoolctl import ThreadpoolController, threadpool_limits

from aws_anomaly.detectors.base import blas_one_thread


def _blas_threads() -> list[int]:
    return [lib.num_threads for lib in ThreadpoolController().lib_controllers
            if lib.user_api == "blas"]


def test_one_thread_inside_and_the_callers_counts_after() -> None:
    np.ones((2, 2)) @ np.ones((2, 2))  # BLAS loaded
    assert _blas_threads()
    with threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        with blas_one_thread():
            assert set(_blas_threads()) == {1}
            with blas_one_thread():  # nested: still one, and the outer one restores
                assert set(_blas_threads()) == {1}
            assert set(_blas_threads()) == {1}
        assert _blas_threads() == before
    with threadpool_limits(1, user_api="blas"):
        with blas_one_thread():
            pass
        assert set(_blas_threads()) == {1}  # a caller's own limit is kept


def test_restored_when_the_body_raises() -> None:
    with threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        try:
            with blas_one_thread():
                raise ValueError("boom")
        except ValueError:
            pass
        assert _blas_threads() == before


def test_a_blas_library_loaded_after_the_first_use_is_limited_too(monkeypatch) -> None:
    """The libraries are looked for again after an import: one that an import brings later
    (scipy's or torch's own BLAS) is limited as well."""
    from aws_anomaly.detectors import base

    with blas_one_thread():  # the libraries of now are found
        pass
    seen = base._blas_libraries()
    monkeypatch.setitem(__import__("sys").modules, "a_module_imported_later", object())
    again = base._blas_libraries()  # an import happened: looked for again
    assert again is not seen and [lib.filepath for lib in again] == [
        lib.filepath for lib in seen]
    assert base._blas_libraries() is again  # no import since: the same look


def test_one_thread_in_a_worker_thread_too() -> None:
    """The service scores in request and scheduler threads: the limit must hold there, not
    only in the first thread that used it (threadpoolctl's own OpenBLAS setter does nothing
    outside that thread)."""
    import threading

    np.ones((2, 2)) @ np.ones((2, 2))
    with threadpool_limits(2, user_api="blas"):
        with blas_one_thread():  # the main thread uses it first
            pass
        seen: dict[str, list[int]] = {}

        def worker() -> None:
            seen["before"] = _blas_threads()
            with blas_one_thread():
                seen["inside"] = _blas_threads()
            seen["after"] = _blas_threads()

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert set(seen["before"]) == {2}
        assert set(seen["inside"]) == {1}
        assert seen["after"] == seen["before"]
