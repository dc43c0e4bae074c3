"""What GitHub and Git storage share: content-addressed locations, the registration check, loading a
flow from a cached commit tree with its whole project, and announcing the commit a run uses."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import attrs

from headwater.plugins import Storage, code_hash, flow_from_script, get_logger, slugify
from headwater_github.cache import CommitCache, repo_key
from headwater_github.config import section
from headwater_github.errors import FlowNotInFileError, PathNotFoundError, RepoStorageError
from headwater_github.plugin import SOURCE_ATTRIBUTE

__all__ = ["RepoStorage", "announce", "repo_path", "with_retries"]

_log = get_logger("storage.repo")
T = TypeVar("T")


def repo_path(value: str | None) -> str | None:
    """A path inside the repository: POSIX, relative, normalized (``./flows//x.py`` -> ``flows/x.py``)."""
    if value is None:
        return None
    text = str(value).replace("\\", "/").strip()
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".", "/")]
    if not parts or ".." in parts or text.startswith("/"):
        raise ValueError(
            f"{value!r} is not a path inside the repository: give it relative to the repository root, "
            "like 'flows/etl.py'."
        )
    return "/".join(parts)


def with_retries(call: Callable[[], T], what: str, attempts: int | None = None, backoff: float | None = None) -> T:
    """``call()``, again after a retryable :class:`RepoStorageError` (network, 5xx, cut-short download) with backoff."""
    settings = section()
    attempts = max(1, attempts if attempts is not None else settings.retries)
    delay = settings.backoff if backoff is None else backoff
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except RepoStorageError as exc:
            if not exc.retryable or attempt == attempts:
                raise
            _log.warning("%s failed (attempt %d of %d): %s; retrying in %.1f s.", what, attempt, attempts, exc, delay)
            time.sleep(delay)
            delay = min(10.0, delay * 2)
    raise AssertionError("unreachable")  # pragma: no cover


def _is_installed(file: str) -> bool:
    """A module of the Python installation (stdlib, site-packages), never shadowed by a project's own."""
    import sysconfig

    if not file:
        return True  # built-in or namespace package without a file
    prefixes = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(file.startswith(p + os.sep) for p in prefixes)


def _literal_in(name: str, text: str) -> bool:
    return any(f"{q}{name}{q}" in text for q in ('"', "'"))


def announce(flow: Any, source: dict[str, Any], context: dict[str, Any]) -> None:
    """Log the commit the run uses (before any task runs) and keep it in the run's context."""
    context["git_commit"] = source["commit"]
    context["repo_storage"] = dict(source)
    get_logger("storage").info(
        "Flow %r runs commit %s of %s (%s, %s).",
        flow.name, source["commit"], source["repo"], source["ref"], source["path"],
    )


@attrs.define
class RepoStorage(Storage):
    """Base of :class:`~headwater_github.GitHub` and :class:`~headwater_github.Git` (not registered itself)."""

    last_commit: str | None = attrs.field(default=None, init=False, repr=False, eq=False)
    """The commit the last :meth:`get_flow` or :meth:`build` used (not serialized)."""
    _build_commit: str | None = attrs.field(default=None, init=False, repr=False, eq=False)

    # --- what a subclass provides --------------------------------------------------------------

    def flow_file(self) -> str:
        """The flow file's path inside the repository."""
        raise NotImplementedError

    def repo_label(self) -> str:
        """The repository as shown in messages (never with credentials)."""
        raise NotImplementedError

    def ref_label(self) -> str:
        """The ref as shown in messages: ``branch main``, ``tag v1``, ``commit 1a2b3c``, ``the default branch``."""
        raise NotImplementedError

    def cache_identity(self) -> str:
        """What identifies the repository in the cache (host and repository, no credentials)."""
        raise NotImplementedError

    def pinned_commit(self) -> str | None:
        """The commit to use without asking the server (``commit=``, or pinned at registration)."""
        raise NotImplementedError

    def pin_commit(self, sha: str) -> None:
        """Remember ``sha`` as the commit every run uses (``pin=True``)."""
        raise NotImplementedError

    def wants_pin(self) -> bool:
        raise NotImplementedError

    def resolve_commit(self) -> str:
        """The commit SHA the ref names now (asks the server)."""
        raise NotImplementedError

    def read_file(self, sha: str, path: str) -> bytes | None:
        """The file ``path`` at commit ``sha`` (None: not there)."""
        raise NotImplementedError

    def download(self, sha: str, dest: Path) -> None:
        """Write the tree of commit ``sha`` into the empty directory ``dest``."""
        raise NotImplementedError

    def project_subdir(self) -> str | None:
        """The ``project_dir`` subtree put on ``sys.path`` instead of the repository root (None: the root)."""
        return None

    # --- locations -----------------------------------------------------------------------------

    def local_source(self, flow: Any) -> bytes | None:
        """The flow file as in the author's checkout (the file the flow was loaded from), if it can be found."""
        wanted = self.flow_file()
        loaded = getattr(flow, "_source_path", None)
        candidates = []
        if loaded and Path(loaded).resolve().as_posix().endswith("/" + wanted):
            candidates.append(Path(loaded))
        candidates.append(Path(wanted))
        for candidate in candidates:
            try:
                return candidate.read_bytes()
            except OSError:
                continue
        return None

    def location_for(self, flow: Any) -> str:
        """``<flow-slug>/<hash>``: the hash covers the flow, its tasks' code, the helper modules it imports and the flow file."""
        digest = hashlib.sha256()
        digest.update(f"{self.flow_file()}\0{self.project_subdir() or ''}\0".encode())
        digest.update(code_hash(flow).encode())
        source = self.local_source(flow)
        if source is not None:
            digest.update(b"\0" + source)
        return f"{slugify(flow.name)}/{digest.hexdigest()[:16]}"

    # --- build: the registration check ------------------------------------------------------------

    def build(self) -> RepoStorage:
        """Check every added flow is on the ref (file there, flow in it); with ``pin`` fix the commit."""
        self._build_commit = None
        super().build()
        return self

    def _commit_for_build(self) -> str:
        if self._build_commit is None:
            sha = self.pinned_commit() or with_retries(self.resolve_commit, f"resolving {self.ref_label()} of {self.repo_label()}")
            self._build_commit = sha
            self.last_commit = sha
            if self.wants_pin() and not self.pinned_commit():
                self.pin_commit(sha)
        return self._build_commit

    def _write(self, flow: Any, location: str) -> None:
        """The flow's code is pushed, not written: check the flow file is on the ref and defines the flow."""
        sha = self._commit_for_build()
        path = self.flow_file()
        remote = with_retries(lambda: self.read_file(sha, path), f"reading {path} from {self.repo_label()}")
        if remote is None:
            raise PathNotFoundError(
                f"{path} is not on {self.ref_label()} of {self.repo_label()} (commit {sha[:12]}): push it first "
                f"(git add {path} && git commit && git push), or fix the storage's path."
            )
        local = self.local_source(flow)
        self._warn_unpushed_helpers(flow, sha)
        _log.info("Flow %r: %s is on %s of %s (commit %s).", flow.name, path, self.ref_label(), self.repo_label(), sha)
        if local is not None and local == remote:
            return
        text = remote.decode(errors="replace")
        if not _literal_in(flow.name, text):
            raise FlowNotInFileError(
                f"Flow {flow.name!r} is not in {path} on {self.ref_label()} of {self.repo_label()} (commit {sha[:12]})"
                + (": the file there differs from your checkout; push your changes first." if local is not None
                   else "; push the flow file that defines it first, or fix the storage's path.")
            )
        if local is not None:
            _log.warning(
                "%s on %s of %s (commit %s) differs from your checkout: agents will run the pushed version. "
                "Push your changes to run them.", path, self.ref_label(), self.repo_label(), sha[:12],
            )

    def local_root(self, flow: Any) -> Path | None:
        """The author's checkout: the directory the flow file's repository path is relative to."""
        loaded = getattr(flow, "_source_path", None)
        candidate = Path(loaded) if loaded else Path(self.flow_file())
        try:
            resolved = candidate.resolve()
        except OSError:
            return None
        depth = len(PurePosixPath(self.flow_file()).parts)
        if not resolved.is_file() or not resolved.as_posix().endswith("/" + self.flow_file()):
            return None
        return resolved.parents[depth - 1]

    def _warn_unpushed_helpers(self, flow: Any, sha: str) -> None:
        """Warn about imported project modules whose checkout version is not the one on the ref (agents run the pushed one)."""
        root = self.local_root(flow)
        if root is None:
            return
        prefix = str(root) + os.sep
        script = str(root / self.flow_file())
        files = sorted({
            str(Path(file).resolve()) for module in list(sys.modules.values())
            if (file := getattr(module, "__file__", None)) and str(Path(file).resolve()).startswith(prefix)
            and file.endswith(".py") and str(Path(file).resolve()) != script
        })[:50]
        differing = []
        for file in files:
            rel = Path(file).relative_to(root).as_posix()
            try:
                remote = self.read_file(sha, rel)
                local = Path(file).read_bytes()
            except (RepoStorageError, OSError):
                continue
            if remote != local:
                differing.append(rel + ("" if remote is not None else " (not pushed)"))
        if differing:
            _log.warning(
                "Flow %r imports modules that differ from %s of %s (commit %s): %s. Agents run the pushed versions: "
                "push your changes.", flow.name, self.ref_label(), self.repo_label(), sha[:12], ", ".join(differing),
            )

    # --- loading -------------------------------------------------------------------------------

    def cache(self) -> CommitCache:
        settings = section()
        from headwater.plugins import headwater_home

        root = Path(settings.cache_dir).expanduser() if settings.cache_dir else headwater_home() / "cache" / "repos"
        return CommitCache(root, int(settings.cache_max_mb * 1024 * 1024))

    def tree(self, sha: str) -> Path:
        """The cached tree of commit ``sha`` (downloaded once, shared by concurrent runs)."""
        cache = self.cache()
        key = repo_key(self.cache_identity())

        def fill(dest: Path) -> None:
            def attempt() -> None:
                for child in list(dest.iterdir()):  # a retry starts from an empty directory
                    import shutil

                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
                self.download(sha, dest)

            with_retries(attempt, f"downloading commit {sha[:12]} of {self.repo_label()}")

        return cache.tree(key, sha, fill)

    def get_flow(self, location: str) -> Any:
        """Resolve the ref, fetch that commit's tree (cached), and run the flow file with its project importable."""
        self._require(location)
        name = self._name_at(location)
        sha = self.pinned_commit() or with_retries(self.resolve_commit, f"resolving {self.ref_label()} of {self.repo_label()}")
        tree = self.tree(sha)
        path = self.flow_file()
        script = tree / path
        if not script.is_file():
            raise PathNotFoundError(
                f"{path} is not in commit {sha[:12]} ({self.ref_label()}) of {self.repo_label()}: it was moved or deleted "
                "after registration. Push it back, or register the flow again with the new path."
            )
        subdir = self.project_subdir()
        root = tree / subdir if subdir else tree
        if subdir and not script.resolve().is_relative_to(root.resolve()):
            raise ValueError(f"The flow file {path} is not inside project_dir {subdir!r} of {self.repo_label()}.")
        self._activate(tree, root, script.parent)
        text = script.read_text(encoding="utf-8")
        flow = flow_from_script(text, name, f"{self.name} storage {self.repo_label()}@{sha[:12]}:{path}", str(script))
        self.last_commit = sha
        setattr(flow, SOURCE_ATTRIBUTE, {
            "storage": self.name, "repo": self.repo_label(), "ref": self.ref_label(), "commit": sha, "path": path,
        })
        _log.info("Loaded flow %r from %s at commit %s (%s, %s).", name, self.repo_label(), sha, self.ref_label(), path)
        return flow

    def ref_name(self) -> str:
        """The ref as the user gave it (a branch, tag or commit), for run details; :meth:`ref_label` is the prose form."""
        return self.ref_label()

    def run_details(self) -> dict[str, str]:
        """The repository, ref, commit SHA and flow file of the last :meth:`get_flow` (recorded on the flow run)."""
        if self.last_commit is None:
            return {}
        details = {"storage": self.name, "repo": self.repo_label(), "ref": self.ref_name(), "commit": self.last_commit,
                   "path": self.flow_file()}
        subdir = self.project_subdir()
        if subdir:
            details["project_dir"] = subdir
        return details

    def _activate(self, tree: Path, root: Path, workdir: Path) -> None:
        """Make ``root`` (and the flow file's directory) importable and ``workdir`` the working directory.

        Modules imported from another cached commit are forgotten first, so a process that loads a
        newer commit of the same repository imports the newer helpers.
        """
        cache_root = str(self.cache().root.resolve()) + os.sep
        here = str(tree.resolve()) + os.sep
        tops = {p.stem if p.suffix == ".py" else p.name for d in (workdir, root) for p in d.iterdir()
                if p.suffix == ".py" or (p.is_dir() and p.name.isidentifier())}
        for mod_name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            shadowed = mod_name.split(".", 1)[0] in tops and not file.startswith(here)  # same name, other code
            if (file.startswith(cache_root) and not file.startswith(here)) or (shadowed and not _is_installed(file)):
                del sys.modules[mod_name]
        sys.path[:] = [p for p in sys.path if not (p.startswith(cache_root) and not (p + os.sep).startswith(here))]
        for entry in (str(workdir.resolve()), str(root.resolve())):
            if entry in sys.path:
                sys.path.remove(entry)
            sys.path.insert(0, entry)
        import importlib

        importlib.invalidate_caches()
        os.chdir(workdir)
