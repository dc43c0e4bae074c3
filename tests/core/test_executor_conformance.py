"""The core's executors pass the executor conformance kit that executor plugins (headwater-dask) use."""

from __future__ import annotations

from typing import Any

import pytest

from headwater.executors import LocalExecutor, ProcessExecutor, ThreadExecutor
from headwater.testing.conformance import ExecutorConformance


class TestLocalExecutor(ExecutorConformance):
    @pytest.fixture
    def executor(self) -> Any:
        return LocalExecutor()


class TestThreadExecutor(ExecutorConformance):
    @pytest.fixture
    def executor(self) -> Any:
        return ThreadExecutor(max_workers=4)


class TestProcessExecutor(ExecutorConformance):
    @pytest.fixture
    def executor(self) -> Any:
        return ProcessExecutor(max_workers=2)
