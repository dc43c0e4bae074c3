"""``Docker`` storage: flows built into a Docker image (Prefect 1 ``Docker`` storage's arguments).

``build()``:

1. pickles every added flow into ``/opt/headwater/flows/<slug>-<code hash>.flow``;
2. computes a content-addressed tag from the flows' locations, the files, the dependencies,
   the Dockerfile settings and the versions of everything installed into the image; when an
   image with that tag already exists (locally, or in the registry when one is given),
   nothing is built or pushed;
3. writes a build context: a Dockerfile, headwater and the plugins it needs (copied from this
   machine's own distributions, editable ones as wheels built on the fly), the
   ``python_dependencies`` (``pip install --target`` on this machine, from ``wheelhouse``
   with ``--no-index`` when given), the project directory, ``files`` and the flows;
4. builds with the layer cache on and intermediate containers removed, streaming the output;
5. runs :mod:`headwater_docker.check` in the new image (loads every flow, compares Python and
   headwater versions, imports the needed modules) and fails with the failing import;
6. pushes to ``registry_url`` when one is given.

Each failure raises :class:`DockerBuildError` naming the step and the fix. In the flow-run
container ``get_flow`` reads the flow file; elsewhere it copies it out of the image.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

from headwater.plugins import FlowNotInStorageError, Storage, code_hash, dumps_flow, get_logger, loads_flow, slugify

__all__ = ["Docker", "DockerBuildError", "HEADWATER_DIRECTORY", "CONTENT_LABEL"]

HEADWATER_DIRECTORY = "/opt/headwater"
"""Where everything headwater puts into an image lives (flows, site, project, dependencies)."""

CONTENT_LABEL = "io.headwater.content-hash"
"""Image label holding the content hash the tag was computed from."""

_log = get_logger("headwater.docker")

_REF = re.compile(r"^[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$")
_IGNORED = ("__pycache__", "*.pyc", ".git", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache", "*.egg-info",
            "build", "dist", "node_modules", ".tox")


class DockerBuildError(RuntimeError):
    """A step of ``Docker.build()`` failed: the message names the step, the cause and the fix."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"Docker storage: {step} failed: {message}")
        self.step = step


def _str_dict(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    return {str(k): str(v) for k, v in dict(value).items()}


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _split_registry(ref: str) -> tuple[str | None, str]:
    """``("host:port", "path/name")`` for a reference whose first part is a registry host."""
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, ref


def _validate_registry_url(url: str) -> str:
    url = url.strip()
    if "://" in url:
        raise DockerBuildError(
            "checking registry_url",
            f"registry_url {url!r} must be a registry host and optional path, without a scheme "
            f"(e.g. {url.split('://', 1)[1]!r}).",
        )
    url = url.rstrip("/")
    host, path = _split_registry(url + "/x")
    if host is None:
        raise DockerBuildError(
            "checking registry_url",
            f"registry_url {url!r} does not start with a registry host (a name with a dot or a port, or localhost), "
            "e.g. '127.0.0.1:5000/etl' or 'registry.example.com/team'.",
        )
    path = path[:-2] if path.endswith("/x") else ""
    if path and not _REF.match(path):
        raise DockerBuildError(
            "checking registry_url",
            f"the path {path!r} of registry_url {url!r} is not a valid repository path (lowercase letters, digits, "
            "'.', '_', '-' and '/').",
        )
    return url


@attrs.define
class Docker(Storage):
    """Keep flows in a Docker image built from ``base_image`` and pushed to ``registry_url``.

    Args (Prefect 1's names):
        registry_url: registry host and path to push to (``127.0.0.1:5000/etl``); None: keep the image local.
        base_image: the image to build from (default ``localbase``: it must have Python
            ``major.minor`` of this machine; headwater itself is added from here).
        dockerfile: a Dockerfile to start from instead of ``FROM base_image`` (its directory is the context).
        python_dependencies: requirements installed into the image (``pip install --target`` run here).
        wheelhouse: a directory of wheels: dependencies come from it only (``--no-index --find-links``).
        image_name: the image's name (default: the first flow's name, slugified).
        image_tag: the tag (default: the content hash; set it only to force a name: a fixed tag is moved
            by a build with other content, so flow versions registered before run the new image).
        env_vars: environment variables of the image.
        files: ``{host path: image path}`` copied into the image.
        extra_dockerfile_commands: Dockerfile lines added after everything else.
        project_dir: a directory copied into the image and put on ``PYTHONPATH`` so helper modules
            import (default: the directory of the first flow's file; ``""`` for none).
        base_url: the engine (default: ``[docker] base_url`` / ``DOCKER_HOST``).
        ignore_healthchecks: skip the in-image check (not recommended).
        build_kwargs: extra arguments for the engine's build call (``network_mode``, ``buildargs`` ...).
        stream_build_output: print the build's output with a progress display (default True).
        distributions: extra installed distributions to copy into the image from this machine.
    """

    registry_url: str | None = None
    base_image: str | None = None
    dockerfile: str | None = None
    python_dependencies: list[str] = attrs.field(factory=list, converter=_str_list)
    wheelhouse: str | None = None
    image_name: str | None = None
    image_tag: str | None = None
    env_vars: dict[str, str] = attrs.field(factory=dict, converter=_str_dict)
    files: dict[str, str] = attrs.field(factory=dict, converter=_str_dict)
    extra_dockerfile_commands: list[str] = attrs.field(factory=list, converter=_str_list)
    project_dir: str | None = None
    base_url: str | None = None
    ignore_healthchecks: bool = False
    build_kwargs: dict[str, Any] = attrs.field(factory=dict)
    stream_build_output: bool = True
    distributions: list[str] = attrs.field(factory=list, converter=_str_list)
    _payloads: dict[str, bytes] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    _needed: dict[str, list[str]] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    _project: str | None = attrs.field(default=None, init=False, repr=False, eq=False)
    output: Callable[[str], None] | None = attrs.field(default=None, init=False, repr=False, eq=False)
    """Where build progress lines go (default: stderr); set it to capture them."""

    def __attrs_post_init__(self) -> None:
        for host_path in self.files:
            if not Path(host_path).is_absolute():
                raise ValueError(
                    f"Docker storage: files key {host_path!r} must be an absolute path on this machine "
                    "(Prefect's rule too); use os.path.abspath()."
                )
        for image_path in self.files.values():
            if not PurePosixPath(image_path).is_absolute():
                raise ValueError(f"Docker storage: files value {image_path!r} must be an absolute path in the image.")

    # --- names ------------------------------------------------------------------------------

    @property
    def repository(self) -> str:
        """``registry_url/image_name`` (or ``image_name`` without a registry)."""
        name = self.image_name or (slugify(next(iter(self.flows))).lower() if self.flows else "headwater-flows")
        name = re.sub(r"[^a-z0-9._/-]+", "-", name.lower()).strip("-._/") or "headwater-flows"
        if self.registry_url:
            return f"{_validate_registry_url(self.registry_url)}/{name}"
        return name

    @property
    def image(self) -> str | None:
        """The full image reference ``repository:tag`` once built (what DockerRun runs)."""
        return f"{self.repository}:{self.image_tag}" if self.image_tag else None

    def location_for(self, flow: Any) -> str:
        return f"{HEADWATER_DIRECTORY}/flows/{slugify(flow.name)}-{code_hash(flow)}.flow"

    # --- building -------------------------------------------------------------------------------

    def _write(self, flow: Any, location: str) -> None:
        """Pickle ``flow`` for the image and note what it needs (the image itself is built in :meth:`build`)."""
        self._payloads[location] = dumps_flow(flow)
        from headwater_docker.site import distributions_for_modules

        modules = {type(t).__module__ for t in flow._tasks}
        modules |= {getattr(getattr(t, "__wrapped__", None), "__module__", "") or "" for t in flow._tasks}
        for attr in ("result", "executor"):
            value = getattr(flow, attr, None)
            if value is not None:
                modules.add(type(value).__module__)
        modules.discard("")
        self._needed[location] = sorted(m for m in modules if distributions_for_modules([m]))
        if self._project is None and self.project_dir is None:
            from headwater.plugins import script_path

            try:
                path = script_path(flow, None)
            except Exception:  # noqa: BLE001 - interactive flows have no file
                path = None
            if path is not None and Path(path).is_file() and not _in_installed_package(Path(path)):
                self._project = str(Path(path).resolve().parent)

    def build(self) -> Docker:
        """Build (and push) the image holding every added flow; nothing happens when it already exists."""
        if self._built and not self._pending:
            return self
        if not self.flows:
            raise DockerBuildError("collecting flows", "no flows were added; call add_flow(flow) (or flow.register()) first.")
        for name, flow in list(self._pending.items()):
            self._write(flow, self.flows[name])
        missing = [loc for loc in self.flows.values() if loc not in self._payloads]
        if missing:
            raise DockerBuildError(
                "collecting flows",
                f"this storage object holds no code for {missing} (it was restored from metadata); add the flows "
                "again to a new Docker storage to rebuild the image.",
            )
        self._build_image()
        self._pending.clear()
        self._built = True
        return self

    def _say(self, line: str) -> None:
        if not self.stream_build_output:
            _log.debug("%s", line)
            return
        (self.output or _stderr)(line)

    def _site_names(self) -> list[str]:
        import importlib.metadata as metadata

        from headwater_docker.site import BASE_DISTRIBUTIONS, distributions_for_modules

        names = set(self.distributions)
        for name in BASE_DISTRIBUTIONS:
            try:
                metadata.distribution(name)
            except metadata.PackageNotFoundError:
                if name != "headwater-cloud-api":
                    raise
                continue
            names.add(name)
        for modules in self._needed.values():
            names.update(distributions_for_modules(modules))
        return sorted(names)

    def _project_dir(self) -> Path | None:
        chosen = self.project_dir if self.project_dir is not None else self._project
        if not chosen:
            return None
        path = Path(chosen).expanduser().resolve()
        if not path.is_dir():
            raise DockerBuildError("copying the project directory", f"project_dir {chosen!r} is not a directory here.")
        return path

    def content_hash(self, site_versions: dict[str, str]) -> str:
        """The hash the tag is made of: flows (locations and pickled bytes), files, dependencies, Dockerfile
        settings, installed versions. New bytes give a new tag, so an image a registered flow version runs is
        never rebuilt with other content (unless ``image_tag`` fixes the tag: then the tag is the user's to move)."""
        digest = hashlib.sha256()
        spec = {
            "flows": sorted(self.flows.items()),
            # the pickles' own bytes: the same code with other values captured at import (a datetime.now(),
            # a KV value) is another image, never a rebuild of the tag a registered version runs (issue 10 #12)
            "payloads": sorted((loc, hashlib.sha256(data).hexdigest()) for loc, data in self._payloads.items()
                               if loc in self.flows.values()),
            "base_image": self.base_image or "localbase",
            "dockerfile": Path(self.dockerfile).read_text() if self.dockerfile else None,
            "python_dependencies": self.python_dependencies,
            "wheelhouse": sorted(os.listdir(self.wheelhouse)) if self.wheelhouse and os.path.isdir(self.wheelhouse) else None,
            "env_vars": sorted(self.env_vars.items()),
            "files": sorted(self.files.items()),
            "extra": self.extra_dockerfile_commands,
            "site": sorted(site_versions.items()),
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        }
        digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
        for host_path in sorted(self.files):
            _hash_path(digest, Path(host_path))
        project = self._project_dir()
        if project is not None:
            digest.update(str(project).encode())
            _hash_path(digest, project)
        return digest.hexdigest()[:16]

    def _client(self) -> Any:
        from headwater_docker.client import DockerEngineError, docker_client

        try:
            return docker_client(self.base_url, timeout=600)
        except DockerEngineError as exc:
            raise DockerBuildError("connecting to the Docker engine", str(exc)) from None

    def _build_image(self) -> None:
        from headwater_docker.site import SiteError, site_fingerprint

        started = time.monotonic()
        names = self._site_names()
        try:
            versions = site_fingerprint(names)
        except SiteError as exc:
            raise DockerBuildError("collecting headwater and plugin distributions", str(exc)) from None
        content = self.content_hash(versions)
        user_tag = self.image_tag if self.image_tag and not self.image_tag.startswith("hw-") else None
        tag = user_tag or f"hw-{content}"
        repository = self.repository
        ref = f"{repository}:{tag}"
        if self._up_to_date(ref, content, repository, tag):
            self._say(f"Docker storage: image {ref} is up to date (content {content}); nothing to build or push.")
            self.image_tag = tag
            return
        client = self._client()
        try:
            existing = _local_image(client, ref)
            if existing is not None and existing.labels.get(CONTENT_LABEL) == content:
                if not self.registry_url or _registry_has(repository, tag, self.credentials):
                    self._say(f"Docker storage: image {ref} is up to date (content {content}); nothing to build or push.")
                    self.image_tag = tag
                    return
                self._say(f"Docker storage: image {ref} is built but not in the registry; pushing it.")
                self._push(client, repository, tag)
                self.image_tag = tag
                return
            if existing is None and self.registry_url and user_tag is None and _registry_has(repository, tag, self.credentials):
                self._say(f"Docker storage: image {ref} is already in the registry (content {content}); nothing to build.")
                self.image_tag = tag
                return
            runtime = None if self.dockerfile else self._runtime_image(client, names)
            with tempfile.TemporaryDirectory(prefix="headwater-docker-build-") as tmp:
                context = Path(tmp)
                self._write_context(context, names, content, runtime)
                self._run_build(client, context, ref)
            if not self.ignore_healthchecks:
                self._check(client, ref)
            if self.registry_url:
                self._push(client, repository, tag)
        finally:
            client.close()
        self.image_tag = tag
        self._say(f"Docker storage: built {ref} in {time.monotonic() - started:.1f} s.")

    def _up_to_date(self, ref: str, content: str, repository: str, tag: str) -> bool:
        """The fast path of re-registration: the engine has ``ref`` with this content (and the registry has it).

        One plain HTTP request to the engine (no docker SDK import) and one to the registry.
        """
        from headwater_docker.client import DockerEngineError, engine_get_json

        try:
            info = engine_get_json(f"/images/{ref}/json", self.base_url)
        except (DockerEngineError, ValueError):
            return False
        labels = ((info or {}).get("Config") or {}).get("Labels") or {}
        if labels.get(CONTENT_LABEL) != content:
            return False
        return not self.registry_url or _registry_has(repository, tag, self.credentials)

    # --- the build context ----------------------------------------------------------------------------

    def _runtime_image(self, client: Any, names: list[str]) -> str:
        """``base_image`` plus the released distributions headwater needs, built once per set of versions.

        The flow image is built ``FROM`` it, so a build only sends headwater's own code, the project and
        the flows to the engine; the runtime image's layers are shared by every flow image.
        """
        from headwater_docker.site import SiteError, installed_site, link_tree, split_closure

        base = self.base_image or "localbase"
        base_image = _local_image(client, base)
        if base_image is None:
            raise DockerBuildError(
                f"finding the base image {base!r}",
                f"the engine has no image {base!r}. Build or pull it first (offline: scripts/podman-base-image.sh "
                f"builds 'localbase'), or set base_image to an image the engine has.",
            )
        try:
            installed, _ = split_closure(names)
        except SiteError as exc:
            raise DockerBuildError("collecting headwater and plugin distributions", str(exc)) from None
        key = hashlib.sha256(json.dumps([base_image.id, sorted(f"{d.metadata['Name']}=={d.version}" for d in installed)]).encode())
        ref = f"headwater-runtime:{key.hexdigest()[:16]}"
        if _local_image(client, ref) is not None:
            return ref
        self._say(f"Docker storage: building the runtime image {ref} ({len(installed)} distributions from this machine)...")
        try:
            site = installed_site(installed)
        except SiteError as exc:
            raise DockerBuildError("collecting headwater and plugin distributions", str(exc)) from None
        with tempfile.TemporaryDirectory(prefix="headwater-docker-runtime-") as tmp:
            context = Path(tmp)
            link_tree(site, context / "deps-site")
            (context / "Dockerfile").write_text(
                f"FROM {base}\nCOPY deps-site {HEADWATER_DIRECTORY}/deps-site\n"
                f"ENV PYTHONPATH={HEADWATER_DIRECTORY}/deps-site\nLABEL io.headwater.runtime-for={json.dumps(base)}\n"
            )
            self._run_build(client, context, ref)
        return ref

    def _write_context(self, context: Path, names: list[str], content: str, runtime: str | None) -> None:
        from headwater_docker.site import SiteError, editable_site, installed_site, link_tree, split_closure

        root = HEADWATER_DIRECTORY
        try:
            installed, editable = split_closure(names)
            editable_site(editable, context / "site")
            if runtime is None:
                link_tree(installed_site(installed), context / "deps-site")
        except SiteError as exc:
            raise DockerBuildError("collecting headwater and plugin distributions", str(exc)) from None
        lines: list[str] = []
        if runtime is not None:
            lines.append(f"FROM {runtime}")
        elif self.dockerfile:
            dockerfile = Path(self.dockerfile)
            if not dockerfile.is_file():
                raise DockerBuildError("reading the dockerfile", f"dockerfile {self.dockerfile!r} does not exist here.")
            lines.append(dockerfile.read_text().rstrip())
            shutil.copytree(dockerfile.parent, context / "user", ignore=shutil.ignore_patterns(*_IGNORED),
                            dirs_exist_ok=True)
        else:
            lines.append(f"FROM {self.base_image or 'localbase'}")
        pythonpath = [f"{root}/site", f"{root}/deps-site"]
        if runtime is None:
            lines.append(f"COPY deps-site {root}/deps-site")
        lines.append(f"COPY site {root}/site")
        if self.python_dependencies:
            self._install_dependencies(context / "deps")
            lines.append(f"COPY deps {root}/deps")
            pythonpath.insert(1, f"{root}/deps")
        project = self._project_dir()
        if project is not None:
            shutil.copytree(project, context / "project", ignore=shutil.ignore_patterns(*_IGNORED))
            lines.append(f"COPY project {root}/project")
            lines.append(f"WORKDIR {root}/project")
            pythonpath.insert(0, f"{root}/project")
        for index, (host_path, image_path) in enumerate(sorted(self.files.items())):
            src = Path(host_path)
            if not src.exists():
                raise DockerBuildError("copying files", f"files entry {host_path!r} does not exist on this machine.")
            target = context / "files" / str(index)
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
            lines.append(f"COPY files/{index} {image_path}")
        env = {"PYTHONPATH": ":".join(pythonpath), "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
               "HEADWATER__DOCKER__IMAGE": "1", **self.env_vars}
        lines.append("ENV " + " ".join(f"{k}={json.dumps(v)}" for k, v in env.items()))
        flows_dir = context / "flows"
        flows_dir.mkdir()
        for location, payload in sorted(self._payloads.items()):
            (flows_dir / PurePosixPath(location).name).write_bytes(payload)
        lines.append(f"COPY flows {root}/flows")
        lines.extend(self.extra_dockerfile_commands)
        lines.append(f"LABEL {CONTENT_LABEL}={content} io.headwater.flows={json.dumps(','.join(sorted(self.flows)))}")
        (context / "Dockerfile").write_text("\n".join(lines) + "\n")

    def _install_dependencies(self, target: Path) -> None:
        """``pip install --target`` on this machine (cached by requirements and wheelhouse contents)."""
        from headwater_docker.site import cache_root, link_tree

        key = hashlib.sha256(json.dumps([
            self.python_dependencies, self.wheelhouse,
            sorted(os.listdir(self.wheelhouse)) if self.wheelhouse and os.path.isdir(self.wheelhouse) else None,
            sys.version,
        ]).encode()).hexdigest()[:16]
        cached = cache_root() / "pydeps" / key
        if not cached.is_dir():
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cached.parent))
            try:
                self._pip_install(tmp)
                try:
                    os.replace(tmp, cached)
                except OSError:
                    shutil.rmtree(tmp, ignore_errors=True)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        link_tree(cached, target)

    def _pip_install(self, target: Path) -> None:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts",
                   "--target", str(target)]
        if self.wheelhouse:
            if not Path(self.wheelhouse).is_dir():
                raise DockerBuildError("installing python_dependencies", f"wheelhouse {self.wheelhouse!r} is not a directory.")
            command += ["--no-index", "--find-links", str(self.wheelhouse)]
        command += self.python_dependencies
        self._say(f"Docker storage: installing {', '.join(self.python_dependencies)}"
                  + (f" from {self.wheelhouse}" if self.wheelhouse else "") + "...")
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            hint = (" Put the wheels into the wheelhouse (`pip download -d WHEELHOUSE ...` where an index is reachable)."
                    if self.wheelhouse else " Give a wheelhouse= directory when no package index is reachable.")
            raise DockerBuildError(
                "installing python_dependencies",
                f"pip could not install {self.python_dependencies} (exit {done.returncode}):\n"
                f"{(done.stderr or done.stdout).strip()[-2000:]}\n{hint}",
            )

    def _run_build(self, client: Any, context: Path, ref: str) -> None:
        from docker.errors import APIError, DockerException

        base = (context / "Dockerfile").read_text().split("\n", 1)[0].removeprefix("FROM ").strip()
        self._say(f"Docker storage: building {ref} from {base}...")
        kwargs: dict[str, Any] = {"rm": True, "forcerm": True, "pull": False, "decode": True, "network_mode": "none"}
        kwargs.update(self.build_kwargs)
        step = "starting the build"
        last: list[str] = []
        total = sum(1 for line in (context / "Dockerfile").read_text().splitlines() if line.strip())
        count = 0
        try:
            for chunk in client.api.build(path=str(context), tag=ref, **kwargs):
                if "error" in chunk or "errorDetail" in chunk:
                    message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
                    raise DockerBuildError(f"the image build at {step!r}", _build_hint(str(message), self.base_image, last))
                text = str(chunk.get("stream", "")).rstrip()
                if not text:
                    continue
                for line in text.splitlines():
                    if re.match(r"^(Step \d+/\d+|STEP \d+/\d+)", line):
                        count += 1
                        step = line.split(":", 1)[-1].strip()
                        self._say(f"[{min(count, total)}/{total}] {step}")
                    else:
                        last = (last + [line])[-20:]
                        if line.startswith(("-->", "Successfully", "COMMIT")) or not line.strip():
                            continue
                        self._say(f"    {line}")
        except APIError as exc:
            raise DockerBuildError(f"the image build at {step!r}", _build_hint(exc.explanation or str(exc), self.base_image, last)) from None
        except DockerException as exc:
            raise DockerBuildError("the image build", f"{exc}") from None
        if _local_image(client, ref) is None:
            raise DockerBuildError("the image build", f"the engine reported no error but has no image {ref}:\n" + "\n".join(last))

    def _check(self, client: Any, ref: str) -> None:
        from docker.errors import ContainerError, DockerException

        from headwater import __version__ as headwater_version

        modules = sorted({m for ms in self._needed.values() for m in ms})
        spec = {
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "headwater": headwater_version,
            "flows": self.flows,
            "modules": modules,
            "plugins": sorted(self._site_names_plugins()),
        }
        self._say(f"Docker storage: checking {ref}: loading {len(self.flows)} flow(s), versions, {len(modules)} module(s)...")
        try:
            out = client.containers.run(ref, ["python3", "-m", "headwater_docker.check", json.dumps(spec)],
                                        network_mode="none", remove=True, stdout=True, stderr=True)
            text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
        except ContainerError as exc:
            raw = exc.stderr or b""
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            logs = text or str(exc)
            problems = [line.split(":", 1)[1].strip() for line in logs.splitlines() if line.startswith("HEADWATER-CHECK-FAILED")]
            detail = "\n".join(f"  - {p}" for p in problems) or logs.strip()[-2000:]
            raise DockerBuildError(
                f"the check inside the new image {ref}",
                f"\n{detail}\nFix the image (base_image with Python {spec['python']}, python_dependencies, files) "
                "and register again; registration was aborted.",
            ) from None
        except DockerException as exc:
            raise DockerBuildError(f"the check inside the new image {ref}", str(exc)) from None
        if "HEADWATER-CHECK-OK" not in text:
            raise DockerBuildError(f"the check inside the new image {ref}", f"it printed no result:\n{text[-2000:]}")

    def _site_names_plugins(self) -> list[str]:
        """Distributions in the image that are headwater plugins (entry points in the ``headwater`` group)."""
        import importlib.metadata as metadata

        plugins = []
        for name in self._site_names():
            try:
                dist = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                continue
            if any(ep.group == "headwater" for ep in dist.entry_points):
                plugins.append(dist.metadata["Name"])
        return plugins

    def credentials(self, repository: str | None = None) -> Any:
        """The registry credentials for ``repository`` (default: this storage's), or None (see :mod:`headwater_docker.auth`)."""
        from headwater_docker.auth import RegistryAuthError, credentials_for, registry_of

        try:
            return credentials_for(registry_of(repository or self.repository),
                                   registry_of(self.registry_url + "/x") if self.registry_url else None)
        except RegistryAuthError as exc:
            raise DockerBuildError("reading the registry credentials", str(exc)) from None

    def _push(self, client: Any, repository: str, tag: str) -> None:
        from docker.errors import APIError, DockerException

        ref = f"{repository}:{tag}"
        credentials = self.credentials(repository)
        self._say(f"Docker storage: pushing {ref}" + (f" as {credentials.username!r}" if credentials else "") + "...")
        layers: set[str] = set()
        kwargs: dict[str, Any] = {"auth_config": credentials.auth_config()} if credentials else {}
        try:
            for chunk in client.api.push(repository, tag=tag, stream=True, decode=True, **kwargs):
                if "error" in chunk or "errorDetail" in chunk:
                    message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
                    raise DockerBuildError(f"pushing {ref}", _push_hint(str(message), repository, credentials))
                if chunk.get("id") and chunk.get("status") in ("Pushed", "Layer already exists"):
                    layers.add(str(chunk["id"]))
                    self._say(f"    {chunk['status']}: {chunk['id']}")
        except APIError as exc:
            raise DockerBuildError(f"pushing {ref}", _push_hint(exc.explanation or str(exc), repository, credentials)) from None
        except DockerException as exc:
            raise DockerBuildError(f"pushing {ref}", _push_hint(str(exc), repository, credentials)) from None

    # --- loading ------------------------------------------------------------------------------------

    def get_flow(self, location: str) -> Any:
        """Load the flow: from its file inside the image, from this object after ``build()``, else out of the image."""
        self._require(location)
        path = Path(location)
        if path.is_file():
            return loads_flow(path.read_bytes(), location)
        payload = self._payloads.get(location)
        if payload is not None and self._built:
            return loads_flow(payload, location)
        if not self.image_tag:
            raise FlowNotInStorageError(
                f"Docker storage: the flow at {location!r} is not built into an image yet; call build() (registration does)."
            )
        return loads_flow(self._read_from_image(location), location)

    def _read_from_image(self, location: str) -> bytes:
        """Copy the flow file out of the image (pulling it when missing) without running anything."""
        from docker.errors import DockerException, NotFound

        client = self._client()
        ref = self.image or ""
        try:
            if _local_image(client, ref) is None:
                repository, _, tag = ref.rpartition(":")
                from headwater_docker.environment import _pull

                credentials = self.credentials(ref)
                failure = _pull(client, repository, tag, credentials.auth_config() if credentials else None)
                if failure:
                    raise FlowNotInStorageError(f"Docker storage: cannot pull image {ref} to read {location!r}: {failure}")
            container = client.containers.create(ref, command=["true"], network_mode="none")
            try:
                stream, _ = container.get_archive(location)
                data = b"".join(stream)
            finally:
                container.remove(force=True)
        except NotFound as exc:
            raise FlowNotInStorageError(f"Docker storage: image {ref} has no flow file {location!r}: {exc}") from None
        except DockerException as exc:
            raise FlowNotInStorageError(f"Docker storage: cannot read {location!r} from image {ref}: {exc}") from None
        finally:
            client.close()
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            member = archive.getmembers()[0]
            fh = archive.extractfile(member)
            if fh is None:
                raise FlowNotInStorageError(f"Docker storage: {location!r} in image {ref} is not a file.")
            return fh.read()


def _in_installed_package(file: Path) -> bool:
    """True when ``file`` belongs to an installed distribution's package (not a project directory)."""
    from headwater_docker.site import distributions_for_modules

    top = file.resolve().parent
    if not (top / "__init__.py").exists():
        return any(part in ("site-packages", "dist-packages") for part in file.parts)
    while (top.parent / "__init__.py").exists():
        top = top.parent
    return bool(distributions_for_modules([top.name])) or "site-packages" in file.parts


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _hash_path(digest: Any, path: Path) -> None:
    if path.is_file():
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return
    if not path.exists():
        digest.update(b"missing:" + str(path).encode())
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in {"__pycache__", ".git", ".venv", "build", "dist"}
                             and not d.endswith(".egg-info") and not d.startswith("."))
        for filename in sorted(filenames):
            if filename.endswith(".pyc"):
                continue
            file = Path(dirpath) / filename
            try:
                digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes())
            except OSError:
                continue


def _local_image(client: Any, ref: str) -> Any:
    from docker.errors import ImageNotFound, NotFound

    try:
        return client.images.get(ref)
    except (ImageNotFound, NotFound):
        return None


def _registry_has(repository: str, tag: str, credentials: Callable[[], Any] | None = None) -> bool:
    """True when the registry answers that it has ``repository:tag`` (HTTPS, then HTTP for loopback).

    A registry that asks for credentials gets them from ``credentials()`` (Basic or a Bearer token).
    """
    import urllib.error

    from headwater_docker.auth import registry_request

    host, path = _split_registry(repository)
    if host is None:
        return False
    schemes = ["https", "http"] if not host.startswith(("127.", "localhost")) else ["http", "https"]
    accept = ", ".join([
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ])
    for scheme in schemes:
        try:
            status = registry_request(f"{scheme}://{host}/v2/{path}/manifests/{tag}", credentials or (lambda: None),
                                      headers={"Accept": accept})
        except (urllib.error.URLError, OSError, ValueError):
            continue
        return status == 200
    return False


def _build_hint(message: str, base_image: str | None, last: list[str]) -> str:
    low = message.lower()
    tail = ("\nLast output:\n" + "\n".join(last[-10:])) if last else ""
    if base_image and (base_image in message or "pull" in low or "manifest unknown" in low or "not found" in low
                       and "from" in low or "image not known" in low or "initializing source" in low):
        return (f"{message}\nThe base image {base_image!r} is not available to the engine: build or pull it first "
                f"(offline: scripts/podman-base-image.sh builds 'localbase'), or set base_image to an image it has.{tail}")
    return f"{message}\nFix the Dockerfile step above (extra_dockerfile_commands, dockerfile, files) and build again.{tail}"


def _push_hint(message: str, repository: str, credentials: Any = None) -> str:
    host, _ = _split_registry(repository)
    low = message.lower()
    if "http response to https" in low or "x509" in low or "tls" in low:
        fix = (f"the registry {host} speaks plain HTTP: mark it insecure for the engine (Docker: insecure-registries in "
               f"daemon.json; podman: `insecure = true` for {host} in /etc/containers/registries.conf.d/).")
    elif "connection refused" in low or "no such host" in low or "dial tcp" in low or "timeout" in low:
        fix = f"nothing answers at {host}: start the registry or correct registry_url."
    elif "unauthorized" in low or "denied" in low or "authentication" in low or "401" in low:
        fix = auth_fix(host, credentials, "push to")
    else:
        fix = f"check that {host} is a Docker registry you may push to, and registry_url."
    return f"{message}\nFix: {fix}"


def auth_fix(host: str | None, credentials: Any, action: str) -> str:
    """What to do when ``host`` refused (or asked for) credentials, naming the ones that were used."""
    if credentials is None:
        return (f"the registry {host} needs credentials and none were found: log in with `docker login {host}` "
                "(the engine client's ~/.docker/config.json) or set [docker] registry_username and "
                "registry_password_secret (the name of a secret holding the password).")
    return (f"the registry {host} refused {credentials.source}: check the username and password (for a secret: its "
            f"value where this runs), and that the user may {action} this repository.")
