"""A registry that logs in with Bearer tokens (Docker Hub's and GHCR's scheme), end to end.

The registry is Debian's docker-registry with ``auth: token``: it trusts the certificate of a
token service started by the tests (``docker_helpers.TokenServer``), which checks Basic
credentials and signs real JWTs. podman pushes through the same service; headwater's own
registry check (the manifest HEAD before a build) must follow the Bearer challenge to find the
pushed image, and ask for exactly the ``pull`` scope of its repository.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from docker_helpers import REGISTRY_PASSWORD, REGISTRY_USER, Engine, TokenServer, with_section_credentials
from headwater.storage import Docker
from headwater.testing.flows import sample_flow
from headwater_docker.auth import RegistryCredentials, registry_request


def _credentials(password: str = REGISTRY_PASSWORD) -> RegistryCredentials:
    return RegistryCredentials("token-registry", REGISTRY_USER, password, "the test's credentials")


def _storage(registry: str, lines: list[str] | None = None) -> Docker:
    storage = Docker(registry_url=f"{registry}/private", base_image="localbase", image_name="token-flows",
                     project_dir="")
    if lines is not None:
        storage.output = lines.append
    storage.add_flow(sample_flow("token-flow"))
    return storage


@pytest.fixture(scope="module")
def pushed(token_registry: tuple[str, TokenServer], engine: Engine) -> Iterator[Docker]:
    """One image pushed by the engine through the token service, with [docker] credentials."""
    registry, _ = token_registry
    mp = pytest.MonkeyPatch()
    try:
        with_section_credentials(mp)
        storage = _storage(registry)
        storage.stream_build_output = False
        storage.build()
    finally:
        mp.undo()
    yield storage


def test_the_registry_really_wants_a_bearer_token(token_registry: tuple[str, TokenServer]) -> None:
    registry, tokens = token_registry
    base = f"http://{registry}/v2/"
    assert registry_request(base, lambda: None) == 401  # no credentials: the token service refuses
    assert registry_request(base, lambda: _credentials("wrong")) == 401
    assert registry_request(base, _credentials) == 200
    answered = [(user, service, status) for user, service, _, status in tokens.requests[-3:]]
    assert answered == [(None, TokenServer.SERVICE, 401), (REGISTRY_USER, TokenServer.SERVICE, 401),
                        (REGISTRY_USER, TokenServer.SERVICE, 200)]


def test_a_token_for_another_repository_does_not_open_this_one(token_registry: tuple[str, TokenServer]) -> None:
    """The registry checks the token's grants, so the check above proves the scope was asked for and granted."""
    import urllib.error
    import urllib.request

    registry, tokens = token_registry
    token = tokens.token(REGISTRY_USER, [{"type": "repository", "name": "private/other", "actions": ["pull"]}])
    request = urllib.request.Request(f"http://{registry}/v2/private/token-flows/tags/list",
                                     headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - the test registry
    assert refused.value.code == 401


def test_the_build_check_finds_the_pushed_image_through_the_token_service(
        pushed: Docker, token_registry: tuple[str, TokenServer], monkeypatch: pytest.MonkeyPatch) -> None:
    registry, tokens = token_registry
    assert pushed.image is not None and pushed.image.startswith(f"{registry}/private/token-flows:")
    with_section_credentials(monkeypatch)
    before = len(tokens.requests)
    lines: list[str] = []
    again = _storage(registry, lines)
    again.build()  # the manifest HEAD follows the Bearer challenge: nothing to build or push
    assert again.image == pushed.image
    assert len(lines) == 1 and "is up to date" in lines[0], lines
    ours = tokens.requests[before:]
    assert (REGISTRY_USER, TokenServer.SERVICE, ["repository:private/token-flows:pull"], 200) in ours, ours
    assert all(REGISTRY_PASSWORD not in line for line in lines)


def test_without_credentials_the_check_says_the_image_is_not_there(
        pushed: Docker, token_registry: tuple[str, TokenServer]) -> None:
    """No credentials: the token service refuses, the check answers 'not there' (a build would then push and fail clearly)."""
    from headwater_docker.storage import _registry_has

    registry, _ = token_registry
    tag = pushed.image_tag
    assert _registry_has(f"{registry}/private/token-flows", tag, _credentials)
    assert not _registry_has(f"{registry}/private/token-flows", tag, lambda: None)
    assert not _registry_has(f"{registry}/private/token-flows", "no-such-tag", _credentials)
