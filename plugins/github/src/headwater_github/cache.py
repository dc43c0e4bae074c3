"""Per-commit cache of repository trees, shared by concurrent processes, with size-bounded eviction.

Layout under the cache root (default ``$HEADWATER_HOME/cache/repos``)::

    <repo-key>/<sha>/          the tree of that commit (complete once <sha>.json exists)
    <repo-key>/<sha>.json      marker: size in bytes, written last; its mtime is the last use
    <repo-key>/<sha>.lock      flock: exclusive while downloading, shared while a process uses the tree

A process that loads a flow from a tree keeps a shared lock on it until it exits, so eviction
(which needs an exclusive lock, without waiting) never deletes code a running flow imports.
Twenty runs of one flow starting at once download once: the first holds the exclusive lock,
the others wait for it and then find the marker.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["CommitCache", "repo_key", "release_held"]

_held: dict[str, IO[Any]] = {}
"""Lock files this process holds shared (path -> open file), kept until the process exits."""


def repo_key(identity: str) -> str:
    """A directory name for a repository: a readable slug plus a hash of its (credential-free) identity."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", identity.split("://", 1)[-1]).strip("-.")[-48:] or "repo"
    return f"{slug}-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"


def release_held() -> None:
    """Drop every shared lock this process holds (tests, and long-lived processes that are done with their flows)."""
    for handle in _held.values():
        try:
            handle.close()
        except OSError:
            pass
    _held.clear()


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _exclusive_unless_ready(handle: Any, marker: Path, target: Path) -> bool:
    """Take the exclusive lock, or stop waiting once another downloader finished (True: we hold it).

    A finished downloader keeps a shared lock while its process uses the tree, so waiting for the
    exclusive lock alone would never end for another thread of that process.
    """
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if marker.exists() and target.is_dir():
                return False
            time.sleep(0.02)


class CommitCache:
    """Trees of commits on disk; :meth:`tree` returns one, downloading it (once) with ``fill`` when missing."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def tree(self, key: str, sha: str, fill: Callable[[Path], None]) -> Path:
        """The directory holding commit ``sha`` of repository ``key``; ``fill(tmpdir)`` writes a missing tree."""
        base = self.root / key
        base.mkdir(parents=True, exist_ok=True)
        target, marker, lock_path = base / sha, base / f"{sha}.json", base / f"{sha}.lock"
        held = _held.get(str(lock_path))
        if held is not None and marker.exists():
            os.utime(marker)
            return target
        handle = open(lock_path, "a+")  # noqa: SIM115 - kept open: the lock lives as long as the process uses the tree
        try:
            fcntl.flock(handle, fcntl.LOCK_SH)
            if not (marker.exists() and target.is_dir()):
                fcntl.flock(handle, fcntl.LOCK_UN)
                exclusive = _exclusive_unless_ready(handle, marker, target)  # one downloader; the others wait
                if exclusive and not (marker.exists() and target.is_dir()):
                    self._fill(base, sha, fill)
                    fcntl.flock(handle, fcntl.LOCK_SH)
                    self.evict(keep={(key, sha)})
                else:
                    fcntl.flock(handle, fcntl.LOCK_SH)
            os.utime(marker)
        except BaseException:
            handle.close()
            raise
        old = _held.pop(str(lock_path), None)
        if old is not None:
            old.close()
        _held[str(lock_path)] = handle
        return target

    def _fill(self, base: Path, sha: str, fill: Callable[[Path], None]) -> None:
        target, marker = base / sha, base / f"{sha}.json"
        marker.unlink(missing_ok=True)
        if target.exists():  # a download that died half way
            shutil.rmtree(target, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{sha[:12]}-", dir=base))
        try:
            fill(tmp)
            size = _tree_size(tmp)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        data = json.dumps({"sha": sha, "size": size, "created": time.time()}).encode()
        fd, tmp_marker = tempfile.mkstemp(prefix=".marker-", dir=base)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp_marker, marker)  # written last: a tree counts only once it is complete

    def entries(self) -> list[tuple[float, int, str, str]]:
        """``[(last_used, size, key, sha)]`` of every complete tree, least recently used first."""
        found = []
        if not self.root.is_dir():
            return []
        for base in self.root.iterdir():
            if not base.is_dir():
                continue
            for marker in base.glob("*.json"):
                try:
                    size = int(json.loads(marker.read_text()).get("size", 0))
                    used = marker.stat().st_mtime
                except (OSError, ValueError):
                    continue
                found.append((used, size, base.name, marker.stem))
        return sorted(found)

    def size(self) -> int:
        """Bytes held by complete trees."""
        return sum(size for _, size, _, _ in self.entries())

    def evict(self, keep: set[tuple[str, str]] = frozenset()) -> list[tuple[str, str]]:  # type: ignore[assignment]
        """Delete least recently used trees until the cache fits ``max_bytes``; trees in use are skipped."""
        entries = self.entries()
        total = sum(size for _, size, _, _ in entries)
        evicted: list[tuple[str, str]] = []
        for _, size, key, sha in entries:
            if total <= self.max_bytes:
                break
            if (key, sha) in keep:
                continue
            base = self.root / key
            lock_path = base / f"{sha}.lock"
            if str(lock_path) in _held:
                continue
            with open(lock_path, "a+") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a running flow uses it
                (base / f"{sha}.json").unlink(missing_ok=True)
                shutil.rmtree(base / sha, ignore_errors=True)  # the lock file stays: waiters may hold it open
            total -= size
            evicted.append((key, sha))
        return evicted
