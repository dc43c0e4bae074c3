"""Python distributions from this machine, laid out as ``site`` directories to ``COPY`` into an image.

Images get headwater, its plugins and their dependencies from the host, never from an index:

* released (installed) distributions are copied file by file from their ``RECORD`` into a
  directory cached per set of versions (:func:`installed_site`), which the storage turns into a
  shared *runtime image* once;
* editable ones (a source checkout, like headwater's own during development) are copied as if
  installed: their packages from the checkout plus their ``.dist-info`` (entry points included),
  and versioned with a fingerprint of that source (:func:`site_fingerprint`), so an image tag
  changes exactly when the code that goes in changes.

The base image's ``python3`` must be the host's Python minor version (compiled extensions are
copied as they are); the storage's in-image check verifies it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import os
import shutil
import sys
import tempfile
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
    "split_closure",
    "installed_site",
    "editable_site",
    "link_tree",
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


def _top_levels(dist: metadata.Distribution) -> list[str]:
    """The top-level import names a distribution provides (``top_level.txt``, else from its files)."""
    text = dist.read_text("top_level.txt")
    if text:
        return sorted({line.strip() for line in text.splitlines() if line.strip()})
    tops: set[str] = set()
    for entry in dist.files or ():
        parts = Path(str(entry)).parts
        if parts and not parts[0].endswith((".dist-info", ".data")) and parts[0] != ".." and not parts[0].startswith("__"):
            tops.add(parts[0].removesuffix(".py"))
    return sorted(tops)


def _package_paths(dist: metadata.Distribution) -> list[Path]:
    """Where an editable distribution's top-level packages (or modules) live on this machine."""
    import importlib.util

    paths: list[Path] = []
    for top in _top_levels(dist):
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            raise SiteError(f"{dist.metadata['Name']} is installed (editable) but its package {top!r} is not importable.")
        if spec.submodule_search_locations:
            paths.extend(Path(p) for p in spec.submodule_search_locations)
        elif spec.origin:
            paths.append(Path(spec.origin))
    return paths


def _tree_fingerprint(paths: Iterable[Path]) -> str:
    """A fingerprint of files and trees: every file's relative path and content (caches skipped)."""
    digest = hashlib.sha256()
    for root in paths:
        if root.is_file():
            digest.update(root.name.encode() + b"\0" + root.read_bytes())
            continue
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
                digest.update(f"{root.name}/{path.relative_to(root)}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()[:16]


_FINGERPRINTS: dict[str, str] = {}


def _editable_version(dist: metadata.Distribution) -> str:
    """``version+src.<fingerprint>``, computed once per process (the code this process runs)."""
    name = canonicalize_name(dist.metadata["Name"])
    if name not in _FINGERPRINTS:
        _FINGERPRINTS[name] = f"{dist.version}+src.{_tree_fingerprint(_package_paths(dist))}"
    return _FINGERPRINTS[name]


def split_closure(names: Iterable[str]) -> tuple[list[metadata.Distribution], list[metadata.Distribution]]:
    """``(installed, editable)``: the closure of ``names`` split into released distributions and source checkouts."""
    installed: list[metadata.Distribution] = []
    editable: list[metadata.Distribution] = []
    for dist in distribution_closure(names):
        (editable if _editable_source(dist) is not None else installed).append(dist)
    return installed, editable


def site_fingerprint(names: Iterable[str]) -> dict[str, str]:
    """``{distribution: version}`` of everything the image gets; editable ones add their source fingerprint."""
    out: dict[str, str] = {}
    for dist in distribution_closure(names):
        name = canonicalize_name(dist.metadata["Name"])
        out[name] = _editable_version(dist) if _editable_source(dist) is not None else dist.version
    return out


def cache_root() -> Path:
    """Where assembled sites are cached (``[docker] wheel_cache``, default ``<headwater home>/docker/cache``)."""
    from headwater.plugins import headwater_home
    from headwater_docker.config import docker_settings

    configured = docker_settings().wheel_cache
    return Path(configured).expanduser() if configured else headwater_home() / "docker" / "cache"


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


def _copy_editable(dist: metadata.Distribution, dest: Path) -> None:
    """An editable distribution as if installed: its packages from the source checkout plus its metadata."""
    for path in _package_paths(dist):
        if path.is_file():
            shutil.copy2(path, dest / path.name)
        else:
            shutil.copytree(path, dest / path.name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(*_IGNORED_DIRS, "*.pyc", "*.egg-info"))
    info = getattr(dist, "_path", None)
    if info is None or not Path(info).is_dir():
        raise SiteError(f"the metadata directory of {dist.metadata['Name']} cannot be found.")
    target = dest / Path(info).name
    target.mkdir(parents=True, exist_ok=True)
    for item in Path(info).iterdir():
        if item.is_file() and item.name not in ("RECORD", "direct_url.json", "INSTALLER", "REQUESTED"):
            shutil.copy2(item, target / item.name)


def installed_site(dists: list[metadata.Distribution]) -> Path:
    """A cached directory holding the released distributions ``dists`` (assembled once per set of versions)."""
    key = hashlib.sha256(
        "\n".join(f"{canonicalize_name(d.metadata['Name'])}=={d.version}" for d in dists).encode()
        + sys.version.encode()
    ).hexdigest()[:16]
    site = cache_root() / "sites" / key
    if site.is_dir():
        return site
    site.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=site.parent))
    try:
        for dist in dists:
            _copy_installed(dist, tmp)
        try:
            os.replace(tmp, site)
        except OSError:  # another build put it there first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return site


def editable_site(dists: list[metadata.Distribution], dest: Path) -> None:
    """Copy the editable distributions ``dists`` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for dist in dists:
        _copy_editable(dist, dest)


def link_tree(src: Path, dest: Path) -> None:
    """``dest`` as a copy of ``src`` made of hard links where possible (fast, no data copied)."""

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dest, copy_function=link, dirs_exist_ok=True)


_PACKAGES: dict[tuple[str, ...], dict[str, list[str]]] = {}


def _packages_distributions() -> dict[str, list[str]]:
    """``importlib.metadata.packages_distributions()``, computed once per ``sys.path`` (it scans every entry)."""
    key = tuple(sys.path)
    if key not in _PACKAGES:
        _PACKAGES.clear()
        _PACKAGES[key] = dict(metadata.packages_distributions())
    return _PACKAGES[key]


def distributions_for_modules(modules: Iterable[str]) -> list[str]:
    """The installed distributions that provide the top-level packages of ``modules`` (stdlib and project modules: none)."""
    mapping = _packages_distributions()
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
