"""The web UI in a real browser (Debian's Chromium through Playwright) against a real server, agent and runs.

Each page: its key elements show the right data, links lead to the next page; a run page follows
state changes without a reload; Cancel reaches the agent; the Run form starts a run with typed
parameters; restart-from-failed reruns; the queue explains itself; KV edits; the GraphQL explorer;
screenshots of every page in light and dark mode, checked not to be blank.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ui_helpers import Demo, png_stats, run_state, screenshot, wait_finished, wait_for

pytestmark = pytest.mark.timeout(300)


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def test_dashboard_shows_runs_agents_and_failures(demo: Demo, page: Any, shots: Path) -> None:
    expect = _expect()
    page.goto(demo.ui("/"))
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator("#agents")).to_contain_text("ui-agent")
    expect(page.locator("#agents .alive")).to_have_count(1)
    expect(page.locator("#failing")).to_contain_text("mapper")
    expect(page.locator("#runs-by-state")).to_contain_text("Success")
    expect(page.locator("#runs-by-state")).to_contain_text("Failed")
    expect(page.locator("#recent tbody tr").first).to_be_visible()
    assert int(page.locator("[data-stat=runs] .num").inner_text()) >= 2
    screenshot(page, shots, "dashboard")
    page.locator("#runs-by-state a .badge", has_text="Failed").click()
    expect(page).to_have_url(re.compile(r"/ui/flow-runs\?state=Failed"))
    expect(page.locator(f"#runs-table tr[data-run='{demo.runs['mapper']}']")).to_be_visible()
    expect(page.locator("#runs-table .badge", has_text="Success")).to_have_count(0)
    screenshot(page, shots, "runs")
    page.go_back()
    page.locator("#failing a", has_text="mapper").click()
    expect(page).to_have_url(re.compile(r"/ui/flows/" + demo.flows["mapper"]))


def test_flows_list_search_and_strip_links_to_runs(demo: Demo, page: Any, shots: Path) -> None:
    expect = _expect()
    page.goto(demo.ui("/flows"))
    rows = page.locator("#flows-table tbody tr")
    expect(rows).to_have_count(4)
    etl = page.locator("tr[data-flow=etl]")
    expect(etl).to_contain_text("demo")
    expect(etl.locator(".strip a.state-Success")).to_have_count(1)
    screenshot(page, shots, "flows")
    page.fill("input[name=q]", "map")
    page.click("button:has-text('Search')")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("mapper")
    page.goto(demo.ui("/flows?q=nothing-like-this"))
    expect(page.locator(".empty")).to_contain_text("No flows match")
    page.goto(demo.ui("/flows"))
    page.locator("tr[data-flow=etl] .strip a").first.click()
    expect(page).to_have_url(re.compile(r"/ui/flow-runs/" + demo.runs["etl"]))
    expect(page.locator("#run-state")).to_contain_text("Success")


def test_flow_page_run_form_starts_a_run_with_typed_parameters(demo: Demo, page: Any, shots: Path) -> None:
    expect = _expect()
    page.goto(demo.ui(f"/flows/{demo.flows['etl']}"))
    expect(page.locator("h1")).to_contain_text("etl")
    expect(page.locator("#runs tbody tr").first).to_be_visible()
    expect(page.locator(".hw-dag .hw-node")).to_have_count(7)  # 4 parameters + extract, transform, load
    expect(page.locator("label[for='p-x'] .type")).to_have_text("integer")
    expect(page.locator("label[for='p-flag'] .type")).to_have_text("true / false")
    expect(page.locator("label[for='p-items'] .type")).to_have_text("JSON")
    screenshot(page, shots, "flow")
    page.fill("#p-x", "7")
    page.fill("#p-name", "typed")
    page.check("#p-flag")
    page.fill("#p-items", "[10, 20]")
    page.fill("#run_name", "from-the-form")
    page.click("#run-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/ui/flow-runs/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[1]
    params = demo.client.flow_run(id=run_id).query("parameters name")
    assert params["name"] == "from-the-form"
    assert params["parameters"] == {"x": 7, "name": "typed", "flag": True, "items": [10, 20]}
    assert isinstance(params["parameters"]["x"], int)
    expect(page.locator("#run-state")).to_contain_text("Success", timeout=60000)  # live: no reload
    expect(page.locator("#logs .logs")).to_contain_text("extracting x=7 name='typed' flag=True items=[10, 20]", timeout=20000)


def test_run_form_rejects_a_badly_typed_value(demo: Demo, page: Any) -> None:
    expect = _expect()
    page.goto(demo.ui(f"/flows/{demo.flows['etl']}"))
    page.fill("#p-items", "[1, 2")
    page.click("#run-form button[type=submit]")
    expect(page.locator("#run-error")).to_contain_text("Parameter 'items' must be JSON")
    expect(page.locator("#p-items")).to_have_value("[1, 2")


def test_flow_run_page_dag_gantt_tasks_and_logs(demo: Demo, page: Any, shots: Path) -> None:
    expect = _expect()
    page.goto(demo.ui(f"/flow-runs/{demo.runs['mapper']}"))
    expect(page.locator("#run-state")).to_contain_text("Failed")
    square = page.locator(".hw-node.hw-mapped[data-slug^=square]")
    expect(square).to_have_count(1)  # 40 children, one box
    expect(square).to_contain_text("× 40")
    expect(page.locator("#gantt .row.mapped")).to_contain_text("× 40")
    expect(page.locator("#gantt .row.mapped .hist i").first).to_be_attached()  # aggregated: a histogram, not 40 bars
    row = page.locator("#task-table tr[data-task^=square]")
    expect(row).to_contain_text("39 Success")
    expect(row).to_contain_text("1 Failed")
    expect(page.locator("#run-parameters")).to_contain_text('"n": 40')
    expect(page.locator("#state-history li")).to_have_count(4)  # Scheduled, Submitted, Running, Failed
    logs = page.locator("#logs .logs")
    expect(logs).to_contain_text("square of 3")
    expect(logs).to_contain_text("item 7 is unlucky")
    screenshot(page, shots, "flow-run")
    page.select_option("#logs select[name=level]", "ERROR")
    expect(logs).not_to_contain_text("square of 3")
    expect(logs.locator(".log.level-ERROR").first).to_be_visible()
    page.select_option("#logs select[name=level]", "")
    page.fill("#logs input[name=q]", "square of 12")
    expect(logs.locator(".log")).to_have_count(1)
    expect(logs).to_contain_text("square of 12")
    page.fill("#logs input[name=q]", "")
    row.locator("a").first.click()
    expect(page).to_have_url(re.compile(r"/tasks/square"))
    expect(page.locator("#children tbody tr")).to_have_count(41)  # the parent and 40 children
    screenshot(page, shots, "task-group")
    page.locator("#children a", has_text=re.compile(r"^7$")).click()
    expect(page.locator("h1")).to_contain_text("Failed")
    expect(page.locator("#task-history")).to_contain_text("item 7 is unlucky")
    screenshot(page, shots, "task-run")


def test_state_change_appears_without_reload_and_cancel_reaches_the_agent(demo: Demo, page: Any, shots: Path) -> None:
    expect = _expect()
    run_id = demo.create_run("sleepy", seconds=120)
    page.goto(demo.ui(f"/flow-runs/{run_id}"))
    page.evaluate("window.__noReload = 'still here'")
    expect(page.locator("#run-state")).to_contain_text("Running", timeout=60000)  # Scheduled -> Submitted -> Running, live
    expect(page.locator("#logs .logs")).to_contain_text("napping 120 s", timeout=20000)
    expect(page.locator(".hw-node.state-Running")).to_have_count(1)
    assert page.evaluate("window.__noReload") == "still here"
    screenshot(page, shots, "flow-run-running")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel-run")
    expect(page.locator("#run-state")).to_contain_text("Cancel", timeout=10000)
    assert wait_finished(demo.client, run_id, 60) == "Cancelled"
    expect(page.locator("#run-state")).to_contain_text("Cancelled", timeout=10000)
    history = [s["type"] for s in demo.client.flow_run(id=run_id).query("states { type }")["states"]]
    assert history[-2:] == ["Cancelling", "Cancelled"], history  # the runner the agent deployed saw the request and stopped
    task = demo.client.flow_run(id=run_id).query("task_runs { task_slug state { type } }")["task_runs"]
    assert [t["state"]["type"] for t in task if t["task_slug"].startswith("nap")] != ["Success"], task


def test_restart_from_failed_reruns_the_flow(demo: Demo, page: Any) -> None:
    expect = _expect()
    run_id = demo.create_run("mapper", n=10)
    assert wait_finished(demo.client, run_id) == "Failed"
    page.goto(demo.ui(f"/flow-runs/{run_id}"))
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#restart-run")
    states = lambda: [s["type"] for s in demo.client.flow_run(id=run_id).query("states { type }")["states"]]  # noqa: E731
    wait_for(lambda: states().count("Running") == 2 and run_state(demo.client, run_id) == "Failed", 90, 0.3,
             "the restarted run to run again")
    history = states()
    assert history[history.index("Failed") + 1] == "Scheduled"
    expect(page.locator("#state-history li")).to_have_count(len(history), timeout=10000)


def test_agents_page_explains_a_waiting_run(demo: Demo, page: Any, shots: Path) -> None:
    expect = _expect()
    run_id = demo.create_run("gpu-job")
    page.goto(demo.ui("/agents"))
    expect(page.locator("tr[data-agent=ui-agent]")).to_contain_text("healthy")
    waiting = page.locator(f"[data-waiting='{run_id}']")
    expect(waiting).to_contain_text("gpu")
    expect(waiting).to_contain_text("ui-agent: lacks label(s) gpu")
    screenshot(page, shots, "agents")
    waiting.locator("a").first.click()
    expect(page.locator("#explain")).to_contain_text("lacks label(s) gpu")
    demo.client.flow_run(id=run_id).cancel()


def test_projects_page_and_creating_one(demo: Demo, page: Any, shots: Path) -> None:
    expect = _expect()
    page.goto(demo.ui("/projects"))
    expect(page.locator("tr[data-project=demo]")).to_contain_text("4")
    page.fill("#pname", "analytics")
    page.fill("#pdesc", "made in the browser")
    page.click("button:has-text('Create project')")
    expect(page.locator("tr[data-project=analytics]")).to_contain_text("made in the browser")
    screenshot(page, shots, "projects")
    page.locator("tr[data-project=demo] a").click()
    expect(page.locator("#flows-table tbody tr")).to_have_count(4)


def test_kv_store_set_edit_delete(demo: Demo, page: Any, shots: Path) -> None:
    expect = _expect()
    page.goto(demo.ui("/kv"))
    page.fill("#kkey", "threshold")
    page.fill("#kval", '{"max": 5, "tags": ["a"]}')
    page.click("#kv-form button[type=submit]")
    expect(page.locator("tr[data-key=threshold]")).to_contain_text('"max": 5')
    assert demo.client.graphql('{ key_value(key: "threshold") { value } }')["key_value"]["value"] == {"max": 5, "tags": ["a"]}
    page.locator("tr[data-key=threshold] button:has-text('Edit')").click()
    expect(page.locator("#kkey")).to_have_value("threshold")
    page.fill("#kval", "plain words")
    page.click("#kv-form button[type=submit]")
    expect(page.locator("tr[data-key=threshold]")).to_contain_text('"plain words"')
    page.fill("#kkey", "other")
    page.fill("#kval", "1")
    page.click("#kv-form button[type=submit]")
    screenshot(page, shots, "kv")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr[data-key=threshold] button:has-text('Delete')").click()
    expect(page.locator("tr[data-key=threshold]")).to_have_count(0)
    assert "threshold" not in demo.client.graphql("{ keys }")["keys"]


def test_graphql_explorer_runs_queries_and_shows_the_schema(demo: Demo, page: Any, shots: Path) -> None:
    expect = _expect()
    from urllib.parse import quote

    page.goto(f"{demo.url}/graphql?query=" + quote('{ flows(project: "demo") { name } }'))  # GraphiQL (test_ui_graphiql.py)
    page.click(".graphiql-execute-button")
    expect(page.locator(".graphiql-response")).to_contain_text('"name": "sleepy"')
    page.get_by_label("Show Documentation Explorer").click()
    page.locator(".graphiql-doc-explorer a", has_text="Query").first.click()
    expect(page.locator(".graphiql-doc-explorer")).to_contain_text("log_page")
    screenshot(page, shots, "graphql", full_page=False)


def test_dark_mode_pages(demo: Demo, browser: Any, shots: Path) -> None:
    expect = _expect()
    context = browser.new_context(viewport={"width": 1360, "height": 900}, color_scheme="dark")
    try:
        pg = context.new_page()
        pg.goto(demo.ui(f"/flow-runs/{demo.runs['mapper']}"))
        expect(pg.locator(".hw-dag")).to_be_visible()
        expect(pg.locator("#logs .logs .log").first).to_be_visible()
        background = pg.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(18, 22, 27)", background
        screenshot(pg, shots, "flow-run-dark")
        pg.goto(demo.ui("/"))
        expect(pg.locator("#agents")).to_contain_text("ui-agent")
        screenshot(pg, shots, "dashboard-dark")
        pg.click("[data-theme-toggle]")  # auto -> light, remembered
        assert pg.evaluate("document.documentElement.dataset.theme") == "light"
        assert pg.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(246, 247, 249)"
    finally:
        context.close()


def test_screenshots_are_not_blank(demo: Demo, page: Any, shots: Path) -> None:
    names = ["dashboard", "runs", "flows", "flow", "flow-run", "flow-run-running", "task-group", "task-run", "agents", "projects", "kv",
             "graphql", "flow-run-dark", "dashboard-dark"]
    missing = [n for n in names if not (shots / f"{n}.png").exists()]
    if missing:
        pytest.skip(f"run the whole module to make every screenshot (missing: {', '.join(missing)})")
    for name in names:
        width, height, colors = png_stats(page, shots / f"{name}.png")
        assert width >= 1000 and height >= 600, (name, width, height)
        assert colors > 40, f"{name}.png looks blank ({colors} colors)"
