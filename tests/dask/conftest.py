"""One loopback-only Dask LocalCluster for the whole test session, and the test tasks pickled by value."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import cloudpickle
import pytest

import dask_helpers

cloudpickle.register_pickle_by_value(dask_helpers)  # workers need not import the tests' helper module


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Any]:
    """``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` on 127.0.0.1, closed at session end."""
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    )
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def dask_address(dask_cluster: Any) -> str:
    address = dask_cluster.scheduler_address
    assert address.startswith("tcp://127.0.0.1:"), address
    return str(address)


@pytest.fixture(scope="session")
def dask_client(dask_cluster: Any) -> Iterator[Any]:
    """A client of the session cluster for the tests' own inspection (worker pids, who has what)."""
    from distributed import Client

    client = Client(dask_cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
