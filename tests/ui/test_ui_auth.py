"""Login when API keys are on (a real browser against a real server), the cookie's flags, and CSRF-safe mutations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from headwater.client import Client
from ui_helpers import ServerProcess, cli, screenshot


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A server whose database has an API key (so every request needs one) and a project made with that key."""
    work = tmp_path_factory.mktemp("ui-auth")
    url = f"sqlite:///{work / 'api.db'}"
    key = cli("server", "api-key", "create", "browser", "--database-url", url, cwd=work).stdout.strip().splitlines()[0]
    assert key.startswith("hw_"), key
    server = ServerProcess(url, work).start()
    try:
        with Client(api=server.api, api_key=key) as client:
            client.project(name="secret-project").create()
        yield server, key
    finally:
        server.stop()


def test_login_is_required_and_the_key_lives_in_an_httponly_strict_cookie(keyed: tuple[ServerProcess, str], browser: Any,
                                                                          shots: Path) -> None:
    from playwright.sync_api import expect

    server, key = keyed
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{server.url}/ui/projects")
        expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui%2Fprojects"))
        expect(page.locator("h1")).to_have_text("Log in to headwater")
        assert "secret-project" not in page.content()
        screenshot(page, shots, "login", full_page=False)
        page.fill("#api_key", "hw_not-a-real-key")
        page.click("button[type=submit]")
        expect(page.locator(".alert")).to_contain_text("not valid")
        assert "secret-project" not in page.content()
        page.fill("#api_key", key)
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/ui/projects$"))
        expect(page.locator("tr[data-project=secret-project]")).to_be_visible()
        [cookie] = [c for c in context.cookies() if c["name"] == "hw_api_key"]
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["value"] == key
        assert page.evaluate("document.cookie").find(key) == -1  # JavaScript cannot read it
        page.click("button:has-text('Log out')")
        expect(page).to_have_url(re.compile(r"/ui/login"))
        page.goto(f"{server.url}/ui/")
        expect(page).to_have_url(re.compile(r"/ui/login"))
    finally:
        context.close()


def test_fragments_and_json_without_a_key_get_401_not_data(keyed: tuple[ServerProcess, str]) -> None:
    server, _ = keyed
    r = httpx.get(f"{server.url}/ui/projects", headers={"X-Fragment": "main"})
    assert r.status_code == 401 and "secret-project" not in r.text
    r = httpx.get(f"{server.url}/ui/projects", cookies={"hw_api_key": "hw_wrong"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def _session(server: ServerProcess, key: str) -> tuple[httpx.Client, str]:
    c = httpx.Client(base_url=server.url, cookies={"hw_api_key": key}, follow_redirects=False)
    page = c.get("/ui/kv")
    assert page.status_code == 200
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    return c, token.group(1)


def test_mutations_need_the_page_token_and_the_same_site(keyed: tuple[ServerProcess, str]) -> None:
    server, key = keyed
    c, token = _session(server, key)
    try:
        assert c.cookies.get("hw_csrf") == token
        no_token = c.post("/ui/kv", data={"key": "a", "value": "1"})
        assert no_token.status_code == 403 and "security token" in no_token.text
        wrong = c.post("/ui/kv", data={"key": "a", "value": "1", "csrf": "forged"})
        assert wrong.status_code == 403
        cross_site = c.post("/ui/kv", data={"key": "a", "value": "1", "csrf": token}, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross_site.status_code == 403
        foreign_origin = c.post("/ui/kv", data={"key": "a", "value": "1", "csrf": token}, headers={"Origin": "https://evil.example"})
        assert foreign_origin.status_code == 403  # the server's request guard
        ok = c.post("/ui/kv", data={"key": "a", "value": "1", "csrf": token}, headers={"Origin": server.url})
        assert ok.status_code == 303
    finally:
        c.close()
    with Client(api=server.api, api_key=key) as client:
        assert client.graphql('{ key_value(key: "a") { value } }')["key_value"]["value"] == 1
    anonymous = httpx.post(f"{server.url}/ui/kv", data={"key": "b", "value": "2", "csrf": token}, cookies={"hw_csrf": token},
                           follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/ui/login")  # a token alone is no login


def test_login_next_only_follows_this_ui(keyed: tuple[ServerProcess, str]) -> None:
    server, key = keyed
    with httpx.Client(base_url=server.url, follow_redirects=False) as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/login").text).group(1)  # type: ignore[union-attr]
        r = c.post("/ui/login", data={"csrf": token, "api_key": key, "next": "//evil.example/x"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/"
        set_cookie = r.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie.replace("Strict", "strict")
