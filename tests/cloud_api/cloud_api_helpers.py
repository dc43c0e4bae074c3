"""Helpers for the cloud-api tests: writing small flow files."""

from __future__ import annotations

from pathlib import Path

FLOW_FILE = '''
from headwater import Flow, Parameter, task
from headwater.run_configs import LocalRun

@task
def add(x, y):
    return x + y

with Flow("{name}", run_config=LocalRun(labels=["staging"])) as flow:
    x = Parameter("x", default=1)
    add(x, {y})
'''


def write_flow_file(path: Path, name: str = "etl", y: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FLOW_FILE.format(name=name, y=y))
    return path
