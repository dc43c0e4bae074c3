"""Issue 10 #10: a web page cannot write to (or read from) a local keyless server: content type, Host, Origin, no CORS."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from headwater_cloud_api.server.guard import allowed_host_set, is_json_content_type
from headwater_cloud_api.server.run import ServerThread

MUTATION = 'mutation { create_project(name: "pwned") { id } }'


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    with ServerThread(database_url=f"sqlite:///{tmp_path_factory.mktemp('web') / 'api.db'}", scheduler=False, reaper=False,
                      allowed_hosts=["headwater.internal"], allowed_origins=["https://ui.example.com"]) as s:
        yield s


def _projects(srv: ServerThread) -> list[str]:
    body = httpx.post(srv.api, json={"query": "{ projects { name } }"}).json()
    return [p["name"] for p in body["data"]["projects"]]


@pytest.mark.parametrize("headers,content", [
    ({"content-type": "text/plain"}, b'{"query": "' + MUTATION.replace('"', '\\"').encode() + b'"}'),
    ({"content-type": "application/x-www-form-urlencoded"}, b"query=" + MUTATION.encode()),
    ({"content-type": "multipart/form-data; boundary=x"}, b"--x\r\n\r\n--x--"),
    ({}, b'{"query": "{ hello }"}'),
])
def test_non_json_posts_are_refused_and_write_nothing(srv: ServerThread, headers: dict[str, str], content: bytes) -> None:
    response = httpx.post(srv.api, content=content, headers=headers)
    assert response.status_code == 415
    assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert "pwned" not in _projects(srv)


def test_json_with_charset_is_accepted(srv: ServerThread) -> None:
    response = httpx.post(srv.api, content=b'{"query": "{ hello }"}', headers={"content-type": "application/json; charset=utf-8"})
    assert response.status_code == 200 and response.json()["data"] == {"hello": "headwater"}


@pytest.mark.parametrize("path", ["/graphql", "/health"])
def test_foreign_host_header_is_refused(srv: ServerThread, path: str) -> None:
    """DNS rebinding: the page's own name arrives in Host; the server does not answer it."""
    if path == "/health":
        response = httpx.get(srv.url + path, headers={"host": "evil.example:4200"})
    else:
        response = httpx.post(srv.url + path, json={"query": "{ hello }"}, headers={"host": "evil.example"})
    assert response.status_code == 403
    assert "evil.example" in response.json()["errors"][0]["message"]
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]:4200", "headwater.internal:8080"])
def test_loopback_and_configured_hosts_are_accepted(srv: ServerThread, host: str) -> None:
    response = httpx.post(srv.api, json={"query": "{ hello }"}, headers={"host": host})
    assert response.status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example", "file://"])
def test_cross_origin_requests_are_refused(srv: ServerThread, origin: str) -> None:
    response = httpx.post(srv.api, json={"query": MUTATION}, headers={"origin": origin})
    assert response.status_code == 403 and response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "pwned" not in _projects(srv)


@pytest.mark.parametrize("origin", ["http://127.0.0.1:4200", "http://localhost:9999", "https://ui.example.com"])
def test_same_site_and_configured_origins_are_accepted(srv: ServerThread, origin: str) -> None:
    response = httpx.post(srv.api, json={"query": "{ hello }"}, headers={"origin": origin})
    assert response.status_code == 200


def test_no_permissive_cors_headers(srv: ServerThread) -> None:
    preflight = httpx.request("OPTIONS", srv.api, headers={
        "origin": "http://127.0.0.1:1", "access-control-request-method": "POST", "access-control-request-headers": "content-type"})
    assert preflight.status_code >= 400
    normal = httpx.post(srv.api, json={"query": "{ hello }"}, headers={"origin": "http://localhost:1"})
    for response in (preflight, normal, httpx.get(srv.url + "/health")):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_a_server_bound_to_a_public_address_accepts_that_address() -> None:
    assert "10.1.2.3" in allowed_host_set("10.1.2.3")
    assert allowed_host_set("0.0.0.0") == allowed_host_set(None)
    assert "*" in allowed_host_set(None, ["*"])
    assert is_json_content_type("Application/JSON ; charset=utf-8") and not is_json_content_type("application/jsonx")


def test_cli_server_honours_allowed_host_option(tmp_path: Path) -> None:
    """`headwater server start --allowed-host` reaches the app (the option is parsed and passed through)."""
    from click.testing import CliRunner

    from headwater_cloud_api.cli import server as server_cli

    seen: dict[str, object] = {}

    def fake_serve(**options: object) -> None:
        seen.update(options)

    import headwater_cloud_api.server.run as run_module

    original = run_module.serve
    run_module.serve = fake_serve  # type: ignore[assignment]
    try:
        result = CliRunner().invoke(server_cli.server, ["start", "--database-url", f"sqlite:///{tmp_path / 'x.db'}",
                                                        "--allowed-host", "a.example", "--allowed-origin", "https://b.example"])
    finally:
        run_module.serve = original  # type: ignore[assignment]
    assert result.exit_code == 0, result.output
    assert seen["allowed_hosts"] == ["a.example"] and seen["allowed_origins"] == ["https://b.example"]
