"""Python distributions from this machine, laid out as a ``site`` directory to ``COPY`` into an image.

Images get headwater, its plugins and their dependencies from the host, never from an index:
installed distributions are copied file by file from their ``RECORD``; editable ones (a source
checkout, like headwater's own during development) are built into wheels on the fly with
``pip wheel --no-index --no-build-isolation`` and cached by a fingerprint of their source tree.
The base image's ``python3`` must be the host's Python version (both 3.11 on Debian bookworm);
the storage's in-image check verifies it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

__all__ = [
    "SiteError",
    "distribution_closure",
    "site_fingerprint",
    "assemble_site",
    "distributions_for_modules",
    "BASE_DISTRIBUTIONS",
]

BASE_DISTRIBUTIONS = ("headwater", "headwater-docker", "headwater-cloud-api")
"""Always in an image when installed here: the core, this plugin (the storage loads flows inside), and the
API client the agent's ``headwater execute flow-run`` command needs."""

_IGNORED_DIRS = {"build", "dist", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".git", ".venv"}


class SiteError(RuntimeError):
    """A distribution needed in the image is missing here or cannot be copied or built."""


def _editable_source(dist: metadata.Distribution) -> Path | None:
    raw = dist.read_text("direct_url.json")
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    if not (info.get("dir_info") or {}).get("editable"):
        return None
    url = str(info.get("url", ""))
    return Path(url[len("file://"):]) if url.startswith("file://") else None


def _requirements(dist: metadata.Distribution, extras: Iterable[str] = ()) -> list[Requirement]:
    env = default_environment()
    found: list[Requirement] = []
    for line in dist.requires or ():
        req = Requirement(line)
        if req.marker is None:
            found.append(req)
            continue
        for extra in ("", *extras):
            if req.marker.evaluate({**env, "extra": extra}):  # type: ignore[dict-item]
                found.append(req)
                break
    return found


def distribution_closure(names: Iterable[str]) -> list[metadata.Distribution]:
    """The distributions ``names`` need, with their dependencies (installed ones; sorted by name).

    Raises :class:`SiteError` naming the distribution (and who needs it) when one is not installed.
    """
    todo: list[tuple[str, tuple[str, ...], str]] = []
    for name in names:
        req = Requirement(name)
        todo.append((req.name, tuple(req.extras), "the image"))
    seen: dict[str, metadata.Distribution] = {}
    while todo:
        name, extras, needed_by = todo.pop()
        key = canonicalize_name(name)
        if key in seen and not extras:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SiteError(
                f"{name} (needed by {needed_by}) is not installed in {sys.prefix}; install it here "
                f"(`pip install {name}`) so it can be copied into the image, or remove what needs it."
            ) from None
        seen[key] = dist
        for req in _requirements(dist, extras):
            todo.append((req.name, tuple(req.extras), dist.metadata["Name"]))
    return [seen[k] for k in sorted(seen)]


def _tree_fingerprint(root: Path) -> str:
    """A fingerprint of a source tree: every file's path and content (build and cache directories skipped)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS and not d.endswith(".egg-info"))
        for filename in sorted(filenames):
            if filename.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath) / filename
            try:
                data = path.read_bytes()
            except OSError:
                continue
            digest.update(f"{path.relative_to(root)}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()[:16]


def site_fingerprint(names: Iterable[str]) -> dict[str, str]:
    """``{distribution: version}`` of everything the image gets; editable ones add their source fingerprint."""
    out: dict[str, str] = {}
    for dist in distribution_closure(names):
        version = dist.version
        source = _editable_source(dist)
        if source is not None:
            version += "+src." + _tree_fingerprint(source)
        out[canonicalize_name(dist.metadata["Name"])] = version
    return out


def _wheel_cache() -> Path:
    from headwater.plugins import headwater_home

    from headwater_docker.config import docker_settings

    configured = docker_settings().wheel_cache
    return Path(configured).expanduser() if configured else headwater_home() / "docker" / "wheels"


def _editable_wheel(dist: metadata.Distribution, source: Path) -> Path:
    """A wheel of an editable distribution, built once per version of its source tree."""
    name = canonicalize_name(dist.metadata["Name"])
    cache = _wheel_cache() / f"{name}-{dist.version}-{_tree_fingerprint(source)}"
    wheels = sorted(cache.glob("*.whl")) if cache.is_dir() else []
    if wheels:
        return wheels[0]
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"hw-wheel-{name}-", dir=cache.parent) as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(*_IGNORED_DIRS, "*.egg-info", "*.pyc"))
        out = Path(tmp) / "out"
        done = subprocess.run(  # noqa: S603 - our own pip on our own source tree
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
             "--disable-pip-version-check", "--wheel-dir", str(out), str(copy)],
            capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            raise SiteError(
                f"Building a wheel of {name} from its source checkout {source} failed (exit {done.returncode}); "
                f"is setuptools installed in {sys.prefix}?\n{done.stdout}{done.stderr}"
            )
        try:
            os.replace(out, cache)
        except OSError:  # another build put it there first
            pass
    return sorted(cache.glob("*.whl"))[0]


def _unpack_wheel(wheel: Path, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(dest)
    for data in dest.glob("*.data"):
        for part in ("purelib", "platlib"):
            if (data / part).is_dir():
                shutil.copytree(data / part, dest, dirs_exist_ok=True)
        shutil.rmtree(data)


def _copy_installed(dist: metadata.Distribution, dest: Path) -> None:
    files = dist.files
    if files is None:
        raise SiteError(
            f"{dist.metadata['Name']} {dist.version} has no RECORD of its files, so it cannot be copied into the image; "
            "reinstall it with pip."
        )
    for entry in files:
        rel = Path(str(entry))
        if rel.parts and (rel.parts[0] == ".." or "__pycache__" in rel.parts or rel.suffix in (".pyc", ".pyo")):
            continue
        if rel.name == "direct_url.json" or rel.name.endswith(".pth") and rel.name.startswith("__editable__"):
            continue
        src = Path(str(entry.locate()))
        if not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def assemble_site(names: Iterable[str], dest: Path) -> dict[str, str]:
    """Lay out ``names`` and their dependencies under ``dest``; returns :func:`site_fingerprint`-style versions."""
    dest.mkdir(parents=True, exist_ok=True)
    versions: dict[str, str] = {}
    for dist in distribution_closure(names):
        name = canonicalize_name(dist.metadata["Name"])
        source = _editable_source(dist)
        if source is not None:
            _unpack_wheel(_editable_wheel(dist, source), dest)
            versions[name] = dist.version + "+src." + _tree_fingerprint(source)
        else:
            _copy_installed(dist, dest)
            versions[name] = dist.version
    return versions


def distributions_for_modules(modules: Iterable[str]) -> list[str]:
    """The installed distributions that provide the top-level packages of ``modules`` (stdlib and project modules: none)."""
    mapping: dict[str, list[str]] = metadata.packages_distributions()
    found: set[str] = set()
    for module in modules:
        top = module.split(".", 1)[0]
        if not top or top in sys.stdlib_module_names or top == "__main__":
            continue
        for name in mapping.get(top, ()):
            found.add(name)
    return sorted(found)


def describe(versions: dict[str, Any]) -> str:
    """``name==version`` list for messages."""
    return ", ".join(f"{k}=={v}" for k, v in sorted(versions.items()))
