"""headwater-dask's executors pass the executor conformance kit the core's executors pass."""

from __future__ import annotations

from typing import Any

import pytest

from headwater.plugins import ExecutorConformance


class TestDaskExecutorOnACluster(ExecutorConformance):
    """The session's LocalCluster (two worker processes), reached by address."""

    @pytest.fixture
    def executor(self, dask_address: str) -> Any:
        from headwater_dask import DaskExecutor

        return DaskExecutor(address=dask_address)


class TestLocalDaskExecutorThreads(ExecutorConformance):
    @pytest.fixture
    def executor(self) -> Any:
        from headwater_dask import LocalDaskExecutor

        return LocalDaskExecutor(scheduler="threads", num_workers=4)


class TestLocalDaskExecutorSynchronous(ExecutorConformance):
    @pytest.fixture
    def executor(self) -> Any:
        from headwater_dask import LocalDaskExecutor

        return LocalDaskExecutor(scheduler="synchronous")
