"""Connecting to a Dask cluster: a ``distributed.Client``, a scheduler address, or a local one.

Every function of :mod:`aws_anomaly.scale` takes ``client=`` as either a connected
:class:`distributed.Client` (used as it is, left open) or a scheduler address such as
``"tcp://10.0.0.5:8786"`` (connected for the call with a short timeout and closed afterwards).
:func:`local_cluster` starts a :class:`distributed.LocalCluster` bound to 127.0.0.1 for
single-machine use.

Failures that are about the cluster rather than the data raise the two errors defined here, both
under :class:`~aws_anomaly.errors.AwsAnomalyError` so the CLI prints them as one line:

* :class:`SchedulerError` (also a :class:`ConnectionError`): the scheduler cannot be reached, or
  has no worker, within the timeout. The message names the address.
* :class:`TaskError` (also a :class:`RuntimeError`): a task failed for a reason that is not one
  of the project's errors (a worker died, a bug); the message names the entity. Project errors
  raised inside a task (``DataError``, ``ModelFileError``, ``SourceError``...) keep their class,
  with the entity added to the message.

Examples
--------
>>> connect_timeout(None)
5.0
>>> _check_address("tcp://127.0.0.1:8786")
'tcp://127.0.0.1:8786'
>>> _check_address("http://127.0.0.1:8786")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
aws_anomaly.errors.ConfigError: scheduler address 'http://127.0.0.1:8786': unknown protocol...
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import dask
from distributed import Client, LocalCluster

from aws_anomaly.errors import AwsAnomalyError, ConfigError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "ClientLike",
    "SchedulerError",
    "TaskError",
    "connect_timeout",
    "local_cluster",
    "using_client",
]

#: Seconds to wait for a scheduler (and for its first worker) before giving up.
DEFAULT_CONNECT_TIMEOUT = 5.0
_PROTOCOLS = ("tcp://", "tls://", "ucx://", "ws://", "wss://", "inproc://")

ClientLike = Client | str


class SchedulerError(AwsAnomalyError, ConnectionError):
    """The Dask scheduler cannot be reached, or has no worker to run tasks.

    ``address`` is the scheduler address that was tried.
    """

    def __init__(self, message: str, *, address: str | None = None) -> None:
        super().__init__(message)
        self.address = address

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), str(self), {"address": self.address}))


class TaskError(AwsAnomalyError, RuntimeError):
    """A task on a Dask worker failed for a reason that is not one of the project's errors.

    ``entity`` names the entity (or entities) the task worked on.
    """

    def __init__(self, message: str, *, entity: str | None = None) -> None:
        super().__init__(message)
        self.entity = entity

    # Exceptions travel from workers to the client by pickle, which rebuilds them from
    # ``args`` only: keep the keyword attribute.
    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), str(self), {"entity": self.entity}))


def _rebuild(cls: type[Exception], message: str, attrs: dict[str, Any]) -> Exception:
    return cls(message, **attrs)


def connect_timeout(timeout: float | None) -> float:
    """The connection timeout in seconds: ``timeout``, else ``$AWS_ANOMALY_DASK_TIMEOUT``,
    else :data:`DEFAULT_CONNECT_TIMEOUT`."""
    if timeout is None:
        raw = os.environ.get("AWS_ANOMALY_DASK_TIMEOUT")
        if raw is None:
            return DEFAULT_CONNECT_TIMEOUT
        try:
            timeout = float(raw)
        except ValueError:
            raise ConfigError(f"AWS_ANOMALY_DASK_TIMEOUT={raw!r} is not a number of "
                              "seconds") from None
    if not timeout > 0:
        raise ConfigError(f"connection timeout must be a positive number of seconds, got "
                          f"{timeout!r}")
    return float(timeout)


def _check_address(address: str) -> str:
    addr = address.strip()
    if "://" not in addr:
        # distributed takes "host:port" as tcp.
        addr = f"tcp://{addr}"
    if not addr.startswith(_PROTOCOLS):
        raise ConfigError(f"scheduler address {address!r}: unknown protocol; use one of "
                          f"{', '.join(p + 'host:port' for p in _PROTOCOLS[:2])} (e.g. "
                          "tcp://127.0.0.1:8786)")
    return addr


@contextlib.contextmanager
def using_client(client: ClientLike, *, timeout: float | None = None,
                 need_workers: bool = True) -> Iterator[Client]:
    """Yield a connected client for ``client``; close it afterwards only if opened here.

    Parameters
    ----------
    client
        A :class:`distributed.Client` (used as is) or a scheduler address (``tcp://host:port``).
    timeout
        Seconds to wait for the scheduler and, with ``need_workers``, for one worker
        (see :func:`connect_timeout`).
    need_workers
        Wait until the cluster has at least one worker.

    Raises
    ------
    SchedulerError
        When the scheduler does not answer, or no worker joins, within ``timeout``.
    ConfigError
        When ``client`` is neither a Client nor an address.
    """
    wait = connect_timeout(timeout)
    if isinstance(client, Client):
        if client.status not in ("running", "connecting", "newly-created"):
            raise SchedulerError(f"the Dask client for {client.scheduler.address} is "
                                 f"{client.status}; connect again",
                                 address=client.scheduler.address)
        if need_workers:
            _wait_for_workers(client, client.scheduler.address, wait)
        yield client
        return
    if not isinstance(client, str):
        raise ConfigError(f"client must be a distributed.Client or a scheduler address such as "
                          f"'tcp://127.0.0.1:8786', got {type(client).__name__}")
    address = _check_address(client)
    try:
        owned = Client(address, timeout=wait, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(
            f"cannot reach the Dask scheduler at {address} within {wait:g} s "
            f"({type(exc).__name__}: {exc}); check the address and that the scheduler is "
            "running", address=address) from None
    try:
        if need_workers:
            _wait_for_workers(owned, address, wait)
        yield owned
    finally:
        owned.close()


def _wait_for_workers(client: Client, address: str, wait: float) -> None:
    try:
        client.wait_for_workers(1, timeout=wait)
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(f"the Dask scheduler at {address} has no worker after {wait:g} s "
                             f"({type(exc).__name__}); start workers with `dask worker "
                             f"{address}`", address=address) from None


@contextlib.contextmanager
def local_cluster(n_workers: int | None = None, *, threads_per_worker: int = 1,
                  processes: bool = True, memory_limit: str | float | None = "auto",
                  eager_trim: bool = False) -> Iterator[Client]:
    """Start a :class:`distributed.LocalCluster` on 127.0.0.1 and yield a client for it.

    The scheduler, its HTTP endpoints (health, metrics) and the workers listen on loopback only,
    on free ports; everything is shut down when the block ends.

    Parameters
    ----------
    n_workers
        Worker processes (default: one per CPU core).
    threads_per_worker
        Threads per worker. Scoring is numpy-heavy but holds the GIL in places, so processes
        scale better than threads.
    processes
        Workers in separate processes (True) or threads of this process (False).
    memory_limit
        Per-worker memory limit as ``distributed`` takes it (``"auto"``, ``"4GiB"``, bytes).
    eager_trim
        Keep ``distributed``'s default ``MALLOC_TRIM_THRESHOLD_=65536`` for the workers, which
        hands freed memory back to the OS at once. Scoring allocates and frees large feature
        arrays per entity, and with that setting every allocation faults its pages in again:
        about 1.8x slower here (see docs/scale.md). By default the workers keep glibc's own
        (adaptive) threshold; the BLAS thread settings (one thread per worker) are kept.
    """
    if n_workers is None:
        n_workers = os.cpu_count() or 1
    if not (isinstance(n_workers, int) and n_workers >= 1):
        raise ConfigError(f"n_workers must be a positive integer, got {n_workers!r}")
    if not (isinstance(threads_per_worker, int) and threads_per_worker >= 1):
        raise ConfigError(f"threads_per_worker must be a positive integer, got "
                          f"{threads_per_worker!r}")
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    if not eager_trim:
        environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), \
            LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                         processes=processes, host="127.0.0.1",
                         # Threads alone would default to the in-process transport, which
                         # takes no host; TCP keeps one code path and a reachable address.
                         protocol="tcp://",
                         # None would still serve Dask's HTTP endpoints on :8787.
                         dashboard_address="127.0.0.1:0",
                         memory_limit=memory_limit) as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client
