"""The demo flow: a few tasks, a flaky one that recovers by retrying, and a mapped step.

Run it with `make demo` (or `headwater run examples/demo.py`).
"""

import random
import time
from datetime import timedelta

import headwater
from headwater import Flow, Parameter, task


@task
def extract(n: int) -> list[int]:
    """Pretend to fetch ``n`` records."""
    headwater.context.get("logger").info("extracting %d records", n)
    return list(range(1, n + 1))


@task(max_retries=2, retry_delay=timedelta(seconds=0.5))
def check_source() -> str:
    """A flaky dependency: fails on its first attempt, succeeds on the retry."""
    if headwater.context.get("task_run_count") == 1:
        raise ConnectionError("source not ready yet")
    return "source ok"


@task
def transform(record: int) -> int:
    """The mapped step: one run per record."""
    time.sleep(random.uniform(0.02, 0.08))
    return record * record


@task
def load(values: list[int], status: str) -> int:
    """Reduce the mapped results."""
    total = sum(values)
    headwater.context.get("logger").info("loaded %d values (%s), total %d", len(values), status, total)
    return total


with Flow("demo") as flow:
    n = Parameter("n", default=20)
    records = extract(n)
    status = check_source()
    squares = transform.map(records)
    load(squares, status)


if __name__ == "__main__":
    flow.run()
