"""``GitHub`` storage: a flow file in a GitHub (or GitHub Enterprise) repository, read through the REST API.

At run time the ref resolves to a commit (``GET /repos/{repo}/commits/{ref}``), that commit's
tarball (``GET /repos/{repo}/tarball/{sha}``) is unpacked into the per-commit cache, and the flow
file runs with the repository (or ``project_dir``) on ``sys.path``. Registration reads the
file through the contents API (``GET /repos/{repo}/contents/{path}?ref={sha}``).
"""

from __future__ import annotations

import base64
import io
import re
import tarfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs

from headwater_github.config import section
from headwater_github.errors import (
    CorruptDownloadError,
    RateLimitError,
    RefNotFoundError,
    RepoAuthError,
    RepoNetworkError,
    RepoNotFoundError,
    RepoStorageError,
)
from headwater_github.project import RepoStorage, repo_path

__all__ = ["GitHub", "DEFAULT_TOKEN_SECRET", "DEFAULT_BASE_URL"]

DEFAULT_BASE_URL = "https://api.github.com"
DEFAULT_TOKEN_SECRET = "GITHUB_ACCESS_TOKEN"
"""The secret used when ``access_token_secret`` is not given and it exists (like Prefect 1)."""

_CLIENTS: dict[tuple[str, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SHA = re.compile(r"^[0-9a-f]{40}$")


def _check_repo(instance: Any, attribute: Any, value: str) -> None:
    if not isinstance(value, str) or not _REPO.match(value):
        raise ValueError(f"GitHub storage needs repo='owner/name' (like 'org/etl'), got {value!r}.")


def _strip_slash(value: str) -> str:
    return value.rstrip("/")


@attrs.define
class GitHub(RepoStorage):
    """A flow file ``path`` in GitHub repository ``repo`` at ``ref`` (branch, tag or commit; None: the default branch).

    ``access_token_secret`` names a :class:`headwater.Secret` holding a token (default: the
    secret ``GITHUB_ACCESS_TOKEN`` when it exists); ``base_url`` points at GitHub Enterprise
    (``https://github.example.com/api/v3``). ``project_dir`` puts a subtree on ``sys.path``
    instead of the repository root. ``pin=True`` resolves ``ref`` at registration and every
    run uses that ``commit``.
    """

    repo: str = attrs.field(default="", validator=_check_repo)
    path: str = attrs.field(default="", converter=repo_path)
    ref: str | None = None
    access_token_secret: str | None = None
    base_url: str = attrs.field(default=DEFAULT_BASE_URL, converter=_strip_slash)
    project_dir: str | None = attrs.field(default=None, converter=repo_path)
    pin: bool = False
    commit: str | None = None

    @path.validator
    def _check_path(self, attribute: Any, value: str | None) -> None:
        if not value:
            raise ValueError("GitHub storage needs the flow file's path in the repository, e.g. path='flows/etl.py'.")

    # --- RepoStorage -----------------------------------------------------------------------------

    def flow_file(self) -> str:
        return self.path

    def project_subdir(self) -> str | None:
        return self.project_dir

    def repo_label(self) -> str:
        return self.repo if self.base_url == DEFAULT_BASE_URL else f"{self.repo} at {self.base_url}"

    def ref_label(self) -> str:
        if self.ref is None:
            return "the default branch"
        return f"commit {self.ref[:12]}" if _SHA.match(self.ref) else f"ref {self.ref}"

    def ref_name(self) -> str:
        return self.ref or "HEAD"

    def cache_identity(self) -> str:
        return f"github:{self.base_url}/{self.repo}"

    def pinned_commit(self) -> str | None:
        if self.commit:
            return self.commit
        return self.ref if self.ref and _SHA.match(self.ref) else None

    def pin_commit(self, sha: str) -> None:
        self.commit = sha

    def wants_pin(self) -> bool:
        return self.pin or section().pin

    # --- the REST API ----------------------------------------------------------------------------

    def _token(self) -> str | None:
        from headwater.plugins import Secret

        name = self.access_token_secret or DEFAULT_TOKEN_SECRET
        secret = Secret(name)
        if self.access_token_secret is None and not secret.exists():
            return None
        try:
            value = secret.get()
        except LookupError as exc:
            raise RepoAuthError(
                f"GitHub storage for {self.repo_label()}: the token secret {name!r} is not set. {exc}"
            ) from None
        return str(value).strip() or None

    def _client(self) -> Any:
        """A shared HTTP client per API and token (connections and TLS set-up are reused across requests)."""
        import hashlib

        token = self._token()
        key = (self.base_url, hashlib.sha256((token or "").encode()).hexdigest())
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
            if client is None or client.is_closed:
                client = _CLIENTS[key] = self._new_client(token)
            return client

    def _new_client(self, token: str | None) -> Any:
        import httpx

        headers = {
            "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "headwater-github",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        plain = self.base_url.startswith("http://")  # no TLS: skip loading the CA bundle
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=section().timeout, follow_redirects=True,
                            verify=not plain)

    def _fail(self, response: Any, what: str) -> RepoStorageError:
        """The error for a non-2xx answer (never showing the token)."""
        status = response.status_code
        try:
            message = str(response.json().get("message", ""))[:300]
        except Exception:
            message = response.text[:300] if response.headers.get("content-type", "").startswith("text") else ""
        detail = f" ({message})" if message else ""
        remaining = response.headers.get("x-ratelimit-remaining")
        if status in (403, 429) and (remaining == "0" or response.headers.get("retry-after")):
            reset = response.headers.get("x-ratelimit-reset")
            when, reset_at = "later", None
            if reset and reset.isdigit():
                reset_at = float(reset)
                when = f"at {datetime.fromtimestamp(reset_at, UTC):%Y-%m-%d %H:%M:%S} UTC"
            elif response.headers.get("retry-after"):
                when = f"in {response.headers['retry-after']} s"
            return RateLimitError(
                f"GitHub API rate limit exceeded while {what} of {self.repo_label()}{detail}; it resets {when}. "
                "Use a token (access_token_secret) for a higher limit, or wait.", reset_at,
            )
        if status == 401:
            return RepoAuthError(
                f"GitHub rejected the token while {what} of {self.repo_label()} (401{detail}): the secret "
                f"{self.access_token_secret or DEFAULT_TOKEN_SECRET!r} holds a wrong or expired token. Set a valid one."
            )
        if status == 403:
            return RepoAuthError(
                f"GitHub refused access while {what} of {self.repo_label()} (403{detail}): the token lacks access to the "
                "repository (it needs 'contents: read'). Grant it, or use another token."
            )
        if status >= 500:
            error = RepoNetworkError(f"GitHub answered {status} while {what} of {self.repo_label()}{detail}; try again later.")
            return error
        return RepoStorageError(f"GitHub answered {status} while {what} of {self.repo_label()}{detail}.")

    def _get(self, url: str, what: str, **kwargs: Any) -> Any:
        import httpx

        try:
            return self._client().get(url, **kwargs)
        except httpx.HTTPError as exc:
            raise RepoNetworkError(
                f"Cannot reach GitHub at {self.base_url} while {what} of {self.repo}: {type(exc).__name__}: {exc}. "
                "Check the network and base_url."
            ) from None

    def _not_found(self, what: str) -> RepoStorageError:
        """404/422: tell a missing repository from a missing ref."""
        response = self._get(f"/repos/{self.repo}", "looking up the repository")
        if response.status_code == 404:
            token = "" if self._token() else " No token is configured: private repositories answer 404 without one."
            return RepoNotFoundError(
                f"Repository {self.repo} does not exist at {self.base_url} (or the token cannot see it).{token} "
                "Fix repo=, base_url= or access_token_secret=."
            )
        if response.status_code >= 300:
            return self._fail(response, "looking up the repository")
        return RefNotFoundError(
            f"{self.ref_label().capitalize()} does not exist in {self.repo_label()} ({what}): push it, or fix ref=."
        )

    def resolve_commit(self) -> str:
        ref = self.ref
        if ref is None:
            response = self._get(f"/repos/{self.repo}", "looking up the default branch")
            if response.status_code == 404:
                raise self._not_found("looking up the default branch")
            if response.status_code != 200:
                raise self._fail(response, "looking up the default branch")
            ref = str(response.json()["default_branch"])
        response = self._get(f"/repos/{self.repo}/commits/{quote(ref, safe='')}", "resolving the ref")
        if response.status_code in (404, 422):
            raise self._not_found("resolving it to a commit")
        if response.status_code != 200:
            raise self._fail(response, f"resolving {self.ref_label()}")
        sha = str(response.json().get("sha", ""))
        if not _SHA.match(sha):
            raise RepoStorageError(f"GitHub answered an invalid commit {sha!r} for {self.ref_label()} of {self.repo_label()}.")
        return sha

    def read_file(self, sha: str, path: str) -> bytes | None:
        response = self._get(f"/repos/{self.repo}/contents/{quote(path)}", f"reading {path}", params={"ref": sha})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, f"reading {path}")
        data = response.json()
        if isinstance(data, list) or data.get("type") != "file":
            return None
        if data.get("encoding") == "base64" and data.get("content") is not None:
            return base64.b64decode(data["content"])
        raw = self._get(f"/repos/{self.repo}/contents/{quote(path)}", f"reading {path}", params={"ref": sha},
                        headers={"Accept": "application/vnd.github.raw+json"})  # files over 1 MB
        if raw.status_code != 200:
            raise self._fail(raw, f"reading {path}")
        return bytes(raw.content)

    def download(self, sha: str, dest: Path) -> None:
        """Unpack the commit's tarball into ``dest`` (its top-level ``owner-repo-sha/`` directory stripped)."""
        import httpx

        what = f"downloading commit {sha[:12]}"
        try:
            with self._client().stream("GET", f"/repos/{self.repo}/tarball/{sha}") as response:
                if response.status_code != 200:
                    response.read()
                    raise self._fail(response, what)
                data = b"".join(response.iter_bytes())
        except httpx.HTTPError as exc:
            raise CorruptDownloadError(
                f"The tarball of commit {sha[:12]} of {self.repo_label()} was cut short ({type(exc).__name__}: {exc}); "
                "it is downloaded again."
            ) from None
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
                members = archive.getmembers()
                if not members:
                    raise tarfile.ReadError("empty archive")
                prefix = members[0].name.split("/", 1)[0]
                for member in members:
                    parts = member.name.split("/", 1)
                    if parts[0] != prefix:
                        raise tarfile.ReadError(f"unexpected top-level entry {member.name!r}")
                    if len(parts) == 1 or not parts[1]:
                        continue
                    member.name = parts[1]
                    if member.issym() or member.islnk() or member.isfile() or member.isdir():
                        archive.extract(member, dest, filter="data")
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise CorruptDownloadError(
                f"The tarball of commit {sha[:12]} of {self.repo_label()} is not a valid archive ({exc}); "
                "it is downloaded again. If this persists, check base_url and any proxy in between."
            ) from None
