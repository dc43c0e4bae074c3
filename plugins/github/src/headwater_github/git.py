"""``Git`` storage: a flow file in any git repository (``https://``, ``ssh://``, ``git://``, ``file://``), via the git CLI.

Why the git CLI and not dulwich: it is the git users already run by hand, so ssh keys, agents,
``known_hosts``, ``~/.ssh/config``, proxies and credential helpers all work unchanged; it speaks
protocol v2 and shallow-fetches one commit quickly in C; and its behaviour on every transport is
the reference one. The cost is a ``git`` binary on the agent's machine (``apt-get install git``),
which the errors say.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import attrs

from headwater_github.config import section
from headwater_github.errors import (
    RefNotFoundError,
    RepoAuthError,
    RepoNetworkError,
    RepoNotFoundError,
    RepoStorageError,
)
from headwater_github.project import RepoStorage, repo_path

__all__ = ["Git"]

_SHA = re.compile(r"^[0-9a-f]{40}$")
_SCP = re.compile(r"^[\w.-]+@[\w.-]+:(?!//)")
_AUTH_HINTS = ("authentication failed", "could not read username", "could not read password", "permission denied",
               "403", "401", "terminal prompts disabled", "invalid username or password")
_MISSING_HINTS = ("not found", "no such repository", "does not appear to be a git repository", "does not exist", "no such file or directory",
                  "access denied or repository not exported")


def _scrub(text: str, secrets: list[str]) -> str:
    from headwater.plugins import mask_url

    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return re.sub(r"[a-z][a-z0-9+.-]*://[^\s'\"]+", lambda m: mask_url(m.group(0)), text)


@attrs.define
class Git(RepoStorage):
    """A flow file ``flow_path`` in git repository ``repo`` (Prefect 1's arguments).

    ``repo`` is a URL (``https://git.example.org/org/etl.git``, ``ssh://``, ``git://``,
    ``file://``, ``git@host:org/etl.git``) or ``org/etl`` on ``repo_host`` (https, or ssh with
    ``use_ssh=True``). One of ``branch_name``, ``tag`` or ``commit`` (default: the remote's
    default branch; a ``commit`` given with a branch or tag wins: that is what pinning stores).
    ``git_token_secret_name`` names a :class:`headwater.Secret` with a token
    for https (sent as an HTTP header, never in the URL); ``git_token_username`` goes with it
    (``format_access_token=False``: the secret is ``user:token`` already). ``clone_depth``
    limits history fetched (None: full). ``project_dir`` / ``pin`` as for GitHub storage.
    """

    repo: str = attrs.field(default="")
    flow_path: str = attrs.field(default="", converter=repo_path)
    repo_host: str = "github.com"
    flow_name: str | None = None
    git_token_secret_name: str | None = None
    git_token_username: str | None = None
    branch_name: str | None = None
    tag: str | None = None
    commit: str | None = None
    clone_depth: int | None = 1
    use_ssh: bool = False
    format_access_token: bool = True
    project_dir: str | None = attrs.field(default=None, converter=repo_path)
    pin: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.repo:
            raise ValueError("Git storage needs repo= (a URL like 'https://git.example.org/org/etl.git', or 'org/etl').")
        if not self.flow_path:
            raise ValueError("Git storage needs the flow file's path in the repository, e.g. flow_path='flows/etl.py'.")
        if self.branch_name is not None and self.tag is not None:  # a commit may come with either: it wins (pinned)
            raise ValueError(
                f"Git storage for {self.repo_label()}: give branch_name or tag, not both "
                f"(got branch_name={self.branch_name!r}, tag={self.tag!r}); commit= pins an exact commit."
            )
        if self.clone_depth is not None and self.clone_depth < 1:
            raise ValueError(f"clone_depth must be a positive number of commits or None (full history), got {self.clone_depth}.")

    # --- URLs and credentials ----------------------------------------------------------------

    def url(self) -> str:
        """The remote URL git is given (without credentials)."""
        if "://" in self.repo or _SCP.match(self.repo):
            return self.repo
        name = self.repo if self.repo.endswith(".git") else f"{self.repo}.git"
        return f"git@{self.repo_host}:{name}" if self.use_ssh else f"https://{self.repo_host}/{name}"

    def _token(self) -> str | None:
        if not self.git_token_secret_name:
            return None
        from headwater.plugins import Secret

        try:
            value = Secret(self.git_token_secret_name).get()
        except LookupError as exc:
            raise RepoAuthError(
                f"Git storage for {self.repo_label()}: the token secret {self.git_token_secret_name!r} is not set. {exc}"
            ) from None
        return str(value).strip() or None

    def _git_env(self) -> tuple[dict[str, str], list[str]]:
        """The environment for git (auth header through GIT_CONFIG_*, never argv or the URL) and the strings to scrub."""
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "LC_ALL": "C"}
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        token = self._token()
        secrets: list[str] = []
        url = self.url()
        if token and url.startswith(("http://", "https://")):
            if self.format_access_token:
                userinfo = f"{self.git_token_username}:{token}" if self.git_token_username else f"x-access-token:{token}"
            else:
                userinfo = token if ":" in token else f"{token}:"
            header = base64.b64encode(userinfo.encode()).decode()
            count = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
            env["GIT_CONFIG_COUNT"] = str(count + 1)
            env[f"GIT_CONFIG_KEY_{count}"] = "http.extraHeader"
            env[f"GIT_CONFIG_VALUE_{count}"] = f"Authorization: Basic {header}"
            secrets = [token, header, userinfo]
        return env, secrets

    def _git(self, *args: str, cwd: Path | None = None, what: str) -> str:
        env, secrets = self._git_env()
        if shutil.which("git") is None:
            raise RepoStorageError(
                f"Git storage for {self.repo_label()} needs the git command line, which is not installed here: "
                "install it (apt-get install git) on the machine that runs the agent and its flows."
            )
        try:
            done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=max(section().timeout, 5) * 4, check=False)
        except subprocess.TimeoutExpired:
            raise RepoNetworkError(f"git timed out while {what} of {self.repo_label()}.") from None
        if done.returncode == 0:
            return done.stdout
        stderr = _scrub(done.stderr.strip(), secrets)[-1500:]
        lowered = stderr.lower()
        hint = f"git failed while {what} of {self.repo_label()}: {stderr}"
        if any(h in lowered for h in _AUTH_HINTS):
            raise RepoAuthError(
                f"{hint}\nFix: the credentials are missing or wrong: set git_token_secret_name (https) or an ssh key "
                "with access (ssh)."
            )
        if any(h in lowered for h in _MISSING_HINTS) and "could not resolve host" not in lowered:
            raise RepoNotFoundError(f"{hint}\nFix: check repo= (the repository does not exist or is not readable).")
        raise RepoNetworkError(f"{hint}\nFix: check the network and the URL.")

    # --- RepoStorage -------------------------------------------------------------------------

    def flow_file(self) -> str:
        return self.flow_path

    def project_subdir(self) -> str | None:
        return self.project_dir

    def repo_label(self) -> str:
        from headwater.plugins import mask_url

        url = self.url()
        return mask_url(url) if "://" in url else url

    def ref_name(self) -> str:
        return self.branch_name or self.tag or self.commit or "HEAD"

    def ref_label(self) -> str:
        if self.branch_name:
            return f"branch {self.branch_name}"
        if self.tag:
            return f"tag {self.tag}"
        if self.commit:
            return f"commit {self.commit[:12]}"
        return "the default branch"

    def cache_identity(self) -> str:
        return f"git:{self.repo_label()}"

    def pinned_commit(self) -> str | None:
        return self.commit if self.commit and _SHA.match(self.commit) else None

    def pin_commit(self, sha: str) -> None:
        self.commit = sha

    def wants_pin(self) -> bool:
        return self.pin or section().pin

    def _refspec(self) -> str:
        if self.branch_name:
            return f"refs/heads/{self.branch_name}"
        if self.tag:
            return f"refs/tags/{self.tag}"
        return "HEAD"

    def resolve_commit(self) -> str:
        if self.commit and not _SHA.match(self.commit):  # an abbreviated commit: fetch and expand it
            return self._expand_commit(self.commit)
        refspec = self._refspec()
        patterns = [refspec, f"{refspec}^{{}}"] if self.tag else [refspec]
        out = self._git("ls-remote", "--", self.url(), *patterns, what=f"resolving {self.ref_label()}")
        refs: dict[str, str] = {}
        for line in out.splitlines():
            sha_text, _, name = line.partition("\t")
            if name:
                refs[name.strip()] = sha_text.strip()
        sha = refs.get(f"{refspec}^{{}}") or refs.get(refspec)
        if not sha:
            raise RefNotFoundError(
                f"{self.ref_label().capitalize()} does not exist in {self.repo_label()}: push it, or fix "
                f"{'branch_name' if self.branch_name else 'tag' if self.tag else 'repo'}=."
            )
        return sha

    def _expand_commit(self, short: str) -> str:
        scratch = self.cache().root / ".scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        import tempfile

        work = Path(tempfile.mkdtemp(dir=scratch))
        try:
            self._git("init", "-q", str(work), what="preparing a fetch")
            self._git("fetch", "-q", "--no-tags", self.url(), "+refs/heads/*:refs/remotes/origin/*", cwd=work,
                      what=f"fetching to find {self.ref_label()}")
            try:
                return self._git("rev-parse", "--verify", "-q", f"{short}^{{commit}}", cwd=work, what="expanding the commit").strip()
            except RepoStorageError:
                raise RefNotFoundError(f"Commit {short} is not in {self.repo_label()}: push it, or fix commit=.") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def read_file(self, sha: str, path: str) -> bytes | None:
        """The file at ``sha``, from the commit's cached tree (registration fetches the commit once, shallow)."""
        file = self.tree(sha) / path
        return file.read_bytes() if file.is_file() else None

    def download(self, sha: str, dest: Path) -> None:
        """Shallow-fetch commit ``sha`` (by its id, else through its ref) and check its tree out into ``dest``."""
        what = f"fetching commit {sha[:12]}"
        self._git("init", "-q", str(dest), what="preparing a fetch")
        depth = [f"--depth={self.clone_depth}"] if self.clone_depth else []
        try:
            self._git("fetch", "-q", "--no-tags", *depth, self.url(), sha, cwd=dest, what=what)
        except RepoAuthError:
            raise
        except RepoStorageError:  # a server that serves no commit by id: fetch its ref and find the commit there
            refspec = self._refspec()
            self._git("fetch", "-q", "--no-tags", *([] if self.pinned_commit() else depth), self.url(), refspec,
                      cwd=dest, what=what)
        try:
            self._git("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", sha, cwd=dest, what=f"checking out {sha[:12]}")
        except RepoStorageError:
            raise RefNotFoundError(
                f"Commit {sha[:12]} is not on {self.ref_label()} of {self.repo_label()} (or the server cannot serve it): "
                "push it, or fix commit=/branch_name=/tag=."
            ) from None
        shutil.rmtree(dest / ".git")



