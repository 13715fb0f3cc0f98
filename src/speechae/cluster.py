"""Scale-out with Dask: a local cluster of worker processes, or any running Dask scheduler.

Every worker computes whole batches (front-end and network) and returns features; it loads the
model once, by name or path from its own cache, and reads the audio itself, so all workers must
see the same paths. The client writes results into the same resumable store as a local run, so a
killed cluster run resumes like a local one, and Dask reruns the tasks of a lost worker elsewhere.

Example:
    >>> with dask_executor("local:2") as executor:  # doctest: +SKIP
    ...     extract_corpus(extractor, items, "out.parquet", executor=executor, network_in_workers=True)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager

from speechae.errors import ParameterError

__all__ = ["dask_executor"]


@contextmanager
def dask_executor(address: str) -> Iterator[Executor]:
    """A ``concurrent.futures.Executor`` on a Dask cluster.

    Args:
        address: ``"local:N"`` starts a ``LocalCluster`` of N single-threaded worker processes on
            this machine; ``"tcp://HOST:PORT"`` (or any address ``dask.distributed.Client``
            takes) connects to a running scheduler, e.g. one started by ``dask-jobqueue``.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ParameterError(
            "Dask is not installed: install the extra with  pip install 'speechae[dask]'"
        ) from None
    cluster, environment = None, dict(os.environ)
    if address.startswith("local:"):
        try:
            workers = int(address.removeprefix("local:"))
        except ValueError:
            raise ParameterError(
                f"--dask {address!r}: expected local:N with N workers, e.g. local:4"
            ) from None
        if workers < 1:
            raise ParameterError(f"--dask {address!r}: need at least one worker")
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    try:
        client = Client(cluster if cluster is not None else address)
    except OSError as error:
        raise ParameterError(f"--dask {address!r}: cannot reach the scheduler ({error})") from None
    try:
        yield client.get_executor()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        # Dask's nannies set OMP_NUM_THREADS=1 and the like in this process's environment for the
        # workers they spawn; later child processes (and their torch threads) must not inherit them.
        os.environ.clear()
        os.environ.update(environment)
