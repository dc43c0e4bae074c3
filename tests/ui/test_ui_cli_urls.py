"""The CLI prints the UI's addresses: `headwater server start`, `headwater run --watch`, `headwater flow-run show ID --open`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx

from ui_helpers import Demo, cli


def test_server_start_prints_the_ui_url(demo: Demo) -> None:
    assert f"headwater UI on http://127.0.0.1:{demo.server.port}/ui/" in demo.server.log.read_text()
    assert httpx.get(demo.ui("/")).status_code == 200


def test_run_watch_prints_the_run_page(demo: Demo) -> None:
    out = cli("run", "--name", "etl", "--project", "demo", "--watch", cwd=demo.workdir, env=demo.env).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("Watch it in the browser: "))
    url = line.split(": ", 1)[1]
    assert url.startswith(demo.ui("/flow-runs/"))
    page = httpx.get(url)
    assert page.status_code == 200 and "Success" in page.text


def test_flow_run_show_open_opens_the_page(demo: Demo, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "fake-browser"
    browser.write_text(f"#!/bin/sh\necho \"$1\" > {opened}\n")
    browser.chmod(browser.stat().st_mode | stat.S_IEXEC)
    run_id = demo.runs["etl"]
    out = cli("flow-run", "show", run_id, "--open", cwd=demo.workdir, env={**demo.env, "BROWSER": str(browser), "DISPLAY": ""}).stdout
    assert f"is Success: {demo.ui('/flow-runs/' + run_id)}" in out
    assert opened.read_text().strip() == demo.ui(f"/flow-runs/{run_id}")
    assert "HEADWATER__CLOUD__API" not in os.environ or os.environ["HEADWATER__CLOUD__API"] != demo.server.api  # not leaked
