"""Helpers for the UI tests: the server and agents as real OS processes on 127.0.0.1, flow files, waiting, PNG checks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from headwater.testing.processes import PYTHON, AgentProcess, ServerProcess, free_port, wait_for

__all__ = ["PYTHON", "AgentProcess", "ServerProcess", "free_port", "wait_for"]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("HEADWATER_UI_SCREENSHOTS") or REPO / "build" / "ui-screenshots")

FLOWS = '''
import time
from headwater import Flow, Parameter, task
from headwater.run_configs import LocalRun


@task(log_stdout=True)
def extract(x, name, flag, items):
    print(f"extracting x={x!r} name={name!r} flag={flag!r} items={items!r}")
    return [x] * len(items)


@task(log_stdout=True)
def transform(values):
    print(f"transforming {len(values)} values")
    return sum(values)


@task(log_stdout=True)
def load(total):
    print(f"loaded total={total}")
    return total


with Flow("etl", run_config=LocalRun(labels=["ui"])) as etl:
    x = Parameter("x", default=1)
    name = Parameter("name", default="world")
    flag = Parameter("flag", default=False)
    items = Parameter("items", default=[1, 2, 3])
    load(transform(extract(x, name, flag, items)))


@task
def numbers(n):
    return list(range(n))


@task(log_stdout=True)
def square(i):
    if i == 7:
        raise ValueError(f"item {i} is unlucky")
    print(f"square of {i}")
    return i * i


@task
def total(values):
    return sum(values)


with Flow("mapper", run_config=LocalRun(labels=["ui"])) as mapper:
    n = Parameter("n", default=40)
    total(square.map(numbers(n)))


@task(log_stdout=True)
def nap(seconds):
    print(f"napping {seconds} s")
    time.sleep(seconds)
    return seconds


with Flow("sleepy", run_config=LocalRun(labels=["ui"])) as sleepy:
    nap(Parameter("seconds", default=60))


with Flow("gpu-job", run_config=LocalRun(labels=["ui", "gpu"])) as gpu:
    nap(Parameter("seconds", default=1))
'''


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([PYTHON, "-m", "headwater.cli", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=120)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


_COUNT_COLORS = """async (src) => {
  const img = new Image();
  img.src = src;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.width; canvas.height = img.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, img.width, img.height).data;
  const colors = new Set();
  for (let y = 0; y < img.height; y += 4) {
    for (let x = 0; x < img.width; x += 4) {
      const i = (y * img.width + x) * 4;
      colors.add((data[i] >> 3) * 1024 + (data[i + 1] >> 3) * 32 + (data[i + 2] >> 3));
    }
  }
  return [img.width, img.height, colors.size];
}"""


def png_stats(page: Any, path: Path) -> tuple[int, int, int]:
    """``(width, height, distinct colors)`` of a PNG, decoded by the browser (a blank page has one or two colors)."""
    import base64

    data = base64.b64encode(path.read_bytes()).decode()
    page.goto("about:blank")
    width, height, colors = page.evaluate(_COUNT_COLORS, f"data:image/png;base64,{data}")
    return int(width), int(height), int(colors)


FINISHED = {"Success", "Failed", "Cancelled", "TimedOut", "TriggerFailed", "Skipped", "Cached", "Mapped"}


def run_state(client: Any, run_id: str) -> str:
    return str(client.flow_run(id=run_id).query("state { type }")["state"]["type"])


def wait_finished(client: Any, run_id: str, timeout: float = 90) -> str:
    return str(wait_for(lambda: (s := run_state(client, run_id)) in FINISHED and s, timeout, 0.2, f"run {run_id} to finish"))



def screenshot(page: Any, shots: Path, name: str, full_page: bool = True) -> Path:
    """Save a screenshot of the page (an artifact; also docs/images/ui when HEADWATER_UI_DOCS_SCREENSHOTS=1)."""
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("HEADWATER_UI_DOCS_SCREENSHOTS") == "1":
        docs = REPO / "docs" / "images" / "ui"
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, docs / path.name)
    return path


class Demo:
    """The session's server, agent, client and the ids of what the fixtures created."""

    def __init__(self, server: ServerProcess, agent: AgentProcess, client: Any, workdir: Path) -> None:
        self.server = server
        self.agent = agent
        self.client = client
        self.workdir = workdir
        self.flows: dict[str, str] = {}
        self.runs: dict[str, str] = {}
        self.env: dict[str, str] = {}
        """Environment of the session's processes (HEADWATER_HOME, HEADWATER__CLOUD__API): pass it to `cli`."""

    @property
    def url(self) -> str:
        return self.server.url

    def ui(self, path: str = "/") -> str:
        return f"{self.server.url}/ui{path}"

    def create_run(self, flow: str, **parameters: Any) -> str:
        return str(self.client.flow(name=flow, project="demo").create_run(parameters=parameters or None).id)
