"""Fixtures for the web UI tests: one real server process with real data (registered flows, an agent, runs) and Chromium.

The data is made the way a user makes it: ``headwater project create`` and ``headwater register``
through the CLI, an ``headwater agent start`` process that runs the flows, runs created through the
Client. The browser is Debian's ``/usr/bin/chromium`` driven by Playwright (never ``playwright install``;
``scripts/system-deps.d/ui.sh`` installs Chromium with apt). Screenshots go to ``build/ui-screenshots``
(``HEADWATER_UI_SCREENSHOTS`` overrides); with ``HEADWATER_UI_DOCS_SCREENSHOTS=1`` they are also copied to
``docs/images/ui`` for docs/ui.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.client import Client
from ui_helpers import FLOWS, SCREENSHOTS, AgentProcess, Demo, ServerProcess, cli, wait_finished

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """A server with project ``demo`` (flows etl, mapper, sleepy, gpu-job), an agent labelled ``ui`` and finished runs."""
    work = tmp_path_factory.mktemp("ui")
    home = work / "home"
    home.mkdir()
    env = {"HEADWATER_HOME": str(home), "HEADWATER__CLOUD__API_KEY": ""}  # for the server, CLI and agent processes only
    server = ServerProcess(f"sqlite:///{work / 'api.db'}", work, env=env).start()
    env["HEADWATER__CLOUD__API"] = server.api
    agent: AgentProcess | None = None
    try:
        repo = work / "repo"
        (repo / "flows").mkdir(parents=True)
        (repo / "flows" / "demo.py").write_text(FLOWS)
        cli("project", "create", "demo", cwd=repo, env=env)
        out = cli("register", "--project", "demo", "--path", "flows/", cwd=repo, env=env).stdout
        assert "4 registered" in out, out
        agent = AgentProcess(server.api, work / "agent", ("ui",), name="ui-agent", env=env)
        client = Client(api=server.api, api_key="")
        d = Demo(server, agent, client, work)
        d.env = env
        for f in client.graphql('{ flows(project: "demo") { id name } }')["flows"]:
            d.flows[f["name"]] = f["id"]
        d.runs["etl"] = d.create_run("etl", x=3, name="first")
        d.runs["mapper"] = d.create_run("mapper")
        assert wait_finished(client, d.runs["etl"]) == "Success", agent.output()
        assert wait_finished(client, d.runs["mapper"]) == "Failed", agent.output()
        yield d
        client.close()
    finally:
        if agent is not None:
            agent.stop()
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright (one per session)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/system-deps.d/ui.sh` (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page, light color scheme, a laptop-sized window."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, color_scheme="light")
    context.set_default_timeout(15000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


