"""GraphiQL at ``GET /graphql``: the vendored build (no CDN) runs queries, shows the schema docs and the history in
Chromium, keeps the query in a shareable address, sends the Headers tab's API key; its assets are served gzipped."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from headwater_cloud_api.server.run import ServerThread
from headwater_cloud_api.ui import routes
from ui_helpers import png_stats, screenshot

pytestmark = pytest.mark.timeout(180)

STATIC = Path(routes.__file__).parent / "static"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    db = tmp_path_factory.mktemp("graphiql") / "api.db"
    with ServerThread(database_url=f"sqlite:///{db}", scheduler=False, reaper=False) as srv:
        yield srv


def test_the_page_loads_graphiql_from_the_wheel_and_its_assets_are_gzipped(server: ServerThread) -> None:
    page = httpx.get(server.api, headers={"Accept": "text/html"})
    assert page.status_code == 200 and "GraphQL explorer" in page.text
    assert "unpkg" not in page.text and "jsdelivr" not in page.text and "cdn" not in page.text.lower()
    for name in routes.GRAPHIQL_ASSETS.values():
        assert f"/ui/static/vendor/{name}" in page.text
        packed = (STATIC / f"{name}.gz").read_bytes()
        sent = httpx.get(f"{server.url}/ui/static/vendor/{name}", headers={"Accept-Encoding": "gzip"})
        assert sent.status_code == 200 and sent.headers["content-encoding"] == "gzip"
        assert sent.content == gzip.decompress(packed)  # httpx unpacks: the bytes are the package's own file
        assert "immutable" in sent.headers["cache-control"]
        plain = httpx.get(f"{server.url}/ui/static/vendor/{name}", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == sent.content
    assert httpx.get(f"{server.url}/ui/static/vendor/app.py").status_code == 404  # only the listed assets


def test_vendored_files_match_the_readme(server: ServerThread) -> None:
    readme = (STATIC / "README.md").read_text()
    for name in routes.GRAPHIQL_ASSETS.values():
        digest = hashlib.sha256(gzip.decompress((STATIC / f"{name}.gz").read_bytes())).hexdigest()
        assert f"`{name}.gz`" in readme and digest in readme, name
    assert "MIT" in readme and "GraphQL Contributors" in readme and "Facebook, Inc." in readme


def test_without_the_vendored_files_the_small_explorer_is_served(server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(routes.GRAPHIQL_ASSETS, "js", "graphiql-0.0.0.min.js")
    page = httpx.get(server.api, headers={"Accept": "text/html"})
    assert page.status_code == 200 and 'id="gq-docs"' in page.text and "graphiql-boot.js" not in page.text


def test_graphiql_runs_a_query_shows_docs_and_history(server: ServerThread, page: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}/graphql?query=" + quote("{ hello projects { name } }"))
    expect(page.locator(".graphiql-container")).to_be_visible()
    page.click(".graphiql-execute-button")
    expect(page.locator(".graphiql-response")).to_contain_text('"hello": "headwater"')
    page.get_by_label("Show Documentation Explorer").click()
    docs = page.locator(".graphiql-doc-explorer")
    expect(docs).to_contain_text("Query")
    docs.locator("a", has_text="Query").first.click()
    expect(docs).to_contain_text("log_page")  # the schema came from introspection through the depth/cost limits
    page.get_by_label("Show History").click()
    expect(page.locator(".graphiql-history")).to_contain_text("projects")
    assert "query=" in page.url and "hello" in page.url  # the edited query is in the address: a shareable link
    path = screenshot(page, shots, "graphql", full_page=False)
    assert png_stats(page, path)[2] > 20
    assert errors == []


def test_graphiql_sends_the_api_key_from_its_headers_tab(tmp_path: Path, page: Any) -> None:
    from playwright.sync_api import expect

    from headwater_cloud_api.server.auth import create_api_key

    with ServerThread(database_url=f"sqlite:///{tmp_path / 'a.db'}", scheduler=False, reaper=False, auth=True) as srv:
        with srv.app.state.db.write() as s:
            _, key = create_api_key(s, "explorer")
        page.goto(f"{srv.url}/graphql?query=" + quote("{ hello }"))
        expect(page.locator(".graphiql-container")).to_be_visible()
        page.click(".graphiql-execute-button")
        expect(page.locator(".graphiql-response")).to_contain_text("requires an API key")
        page.get_by_text("Headers", exact=True).click()
        editor = page.locator(".graphiql-editor-tool .graphiql-editor").last
        editor.click()
        page.keyboard.type(f'{{"Authorization": "Bearer {key}"')
        page.click(".graphiql-execute-button")
        expect(page.locator(".graphiql-response")).to_contain_text('"hello": "headwater"')
        assert key not in page.url  # headers never go into the address
