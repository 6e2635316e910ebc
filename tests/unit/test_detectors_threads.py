"""map_chunks: BLAS is held to one thread inside the chunk pool, and restored afterwards."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info

from aws_anomaly.detectors.base import map_chunks


def _blas_threads() -> set[int]:
    return {int(lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_pool_limits_blas_to_one_thread_and_restores_it() -> None:
    before = _blas_threads()
    seen: list[set[int]] = []

    def fn(chunk: np.ndarray) -> np.ndarray:
        seen.append(_blas_threads())
        return chunk.sum(axis=1)

    X = np.arange(20.0).reshape(10, 2)
    out = map_chunks(fn, X, n_jobs=2, chunk_rows=3)  # 4 chunks on 2 threads
    np.testing.assert_array_equal(out, X.sum(axis=1))
    assert len(seen) == 4
    assert all(s <= {1} for s in seen)  # every BLAS library at 1 thread (or none loaded)
    assert _blas_threads() == before


def test_single_chunk_runs_in_caller_without_limits() -> None:
    calls: list[int] = []

    def fn(chunk: np.ndarray) -> np.ndarray:
        calls.append(chunk.shape[0])
        return chunk[:, 0] * 2.0

    X = np.ones((5, 3))
    out = map_chunks(fn, X, n_jobs=-1, chunk_rows=8)
    assert calls == [5]
    assert out.dtype == np.float64 and out.shape == (5,)
    np.testing.assert_array_equal(out, np.full(5, 2.0))
