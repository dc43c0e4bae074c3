"""Registration: flows in, flow ids out — build each storage once, serialize metadata, send it with its hash.

Unchanged flows are found with one request for the whole batch (``flow_hashes``); only changed
flows are sent (``create_flow``, one request each). Code changes count as changes: storage
locations are content-addressed, and the location is part of the metadata.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "Registration", "RegistrationResult", "ProjectNotFoundError", "load_flows", "LOCAL_RUN_CONFIGS", "source_files",
    "snapshot", "watch_sources", "discover_flow_files", "IGNORE_FILE", "duplicate_flow_names",
]

IGNORE_FILE = ".headwaterignore"
"""A file of gitignore-style patterns in a registered folder (or any folder below it): matching files are not imported."""

LOCAL_RUN_CONFIGS = frozenset({"LocalRun", "UniversalRun", "LocalEnvironment", "SubprocessEnvironment"})
"""Run configs whose flow runs start on the agent's machine (so Local storage can work there)."""


class ProjectNotFoundError(LookupError):
    """Registration into a project that does not exist."""


@attrs.define
class RegistrationResult:
    """What happened to one flow: ``status`` is ``registered``, ``skipped`` (metadata unchanged) or ``error``.

    ``action`` says the same for scripts: ``new`` (version 1 of a new flow), ``bump`` (a new
    version of a flow that exists), ``skip`` or ``error``. After a dry run (``dry_run`` True)
    they say what *would* happen, ``version`` is the version it would get and nothing was
    written: no storage was built and no request changed the API.
    """

    name: str
    status: str
    source: str = ""
    id: str | None = None
    version: int | None = None
    error: str | None = None
    warnings: list[str] = attrs.field(factory=list)
    action: str = "error"
    previous_version: int | None = None
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``headwater register --json``)."""
        return attrs.asdict(self)


def _ignore_spec(root: Path, extra: Sequence[str]) -> Any:
    """The gitignore-style patterns for ``root``: every ``.headwaterignore`` below it (relative to its folder) and ``extra``."""
    import pathspec

    lines: list[str] = list(extra)
    for ignore_file in sorted(root.rglob(IGNORE_FILE)):
        prefix = ignore_file.parent.relative_to(root).as_posix()
        for raw in ignore_file.read_text(encoding="utf-8", errors="replace").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            body = line[1:] if negate else line
            if prefix != ".":  # a nested ignore file's patterns are relative to its own folder
                body = f"{prefix}/{body.lstrip('/')}" if "/" in body.rstrip("/") else f"{prefix}/**/{body}"
            lines.append(("!" if negate else "") + body)
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _mentions_flow(path: Path) -> bool:
    try:
        return "Flow" in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def discover_flow_files(paths: Sequence[str | Path], ignore: Sequence[str] = (), pattern: str | None = None) -> list[Path]:
    """The files registration imports, by the documented rule.

    A file given by name is always imported. In a folder, a ``*.py`` file below it is imported when
    it is not hidden or a dunder path, not matched by a ``.headwaterignore`` (gitignore syntax; one
    in any folder, relative to that folder) or an ``ignore`` pattern, and it **mentions ``Flow``**
    in its text — or its path (relative to the folder) matches ``pattern`` (a glob such as
    ``flows/*.py``), which then replaces the "mentions Flow" test. Helper scripts are never run.
    """
    import fnmatch

    files: list[Path] = []
    for path in paths:
        p = Path(path)
        if not p.is_dir():
            files.append(p)
            continue
        spec = _ignore_spec(p, ignore)
        for f in sorted(p.rglob("*.py")):
            rel = f.relative_to(p)
            if any(part.startswith((".", "__")) for part in rel.parts) or spec.match_file(rel.as_posix()):
                continue
            if pattern is not None:
                if fnmatch.fnmatch(rel.as_posix(), pattern) or fnmatch.fnmatch(f.name, pattern):
                    files.append(f)
            elif _mentions_flow(f):
                files.append(f)
    return files


def duplicate_flow_names(path: Path) -> list[tuple[str, list[int]]]:
    """``[(name, [line, ...])]`` for flow names a file defines more than once (``Flow("etl")`` twice): one would be lost."""
    import ast

    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return []
    seen: dict[str, list[int]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if called != "Flow":
            continue
        name_arg = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
        if isinstance(name_arg, ast.Constant) and isinstance(name_arg.value, str):
            seen.setdefault(name_arg.value, []).append(node.lineno)
    return [(name, lines) for name, lines in seen.items() if len(lines) > 1]


def load_flows(paths: Sequence[str | Path] = (), modules: Sequence[str] = (), names: Sequence[str] = (),
               ignore: Sequence[str] = (), pattern: str | None = None) -> tuple[list[tuple[str, Any]], list[RegistrationResult]]:
    """Load every flow from files (a folder: see :func:`discover_flow_files`) and modules: ``([(source, flow)], [errors])``.

    A file defining two flows with the same name is an error (one of them would be dropped).
    """
    from headwater.plugins import load_flows_from_file, load_flows_from_module

    found: list[tuple[str, Any]] = []
    errors: list[RegistrationResult] = []
    files = discover_flow_files(paths, ignore, pattern)
    for f in files:
        for name, lines in duplicate_flow_names(f):
            errors.append(RegistrationResult(
                name=name, status="error", source=str(f),
                error=f"{f} defines flow {name!r} {len(lines)} times (lines {', '.join(map(str, lines))}); flow names must be "
                      "unique per file, or only the last one would be registered. Rename one of them."))
    duplicated = {str(e.source) for e in errors}
    sources: list[tuple[str, Any]] = [(str(f), lambda f=f: load_flows_from_file(f)) for f in files if str(f) not in duplicated]
    sources += [(m, lambda m=m: load_flows_from_module(m)) for m in modules]
    for source, loader in sources:
        try:
            with _capture_reads() as captured:  # values the file reads at import (KV store, secrets): see prepare()
                flows = loader()
        except Exception as exc:
            errors.append(RegistrationResult(name=source, status="error", source=source, error=str(exc).split("\n\n")[0]))
            continue
        for flow in flows.values():
            if captured:
                flow._headwater_import_reads = list(captured)
            if not names or flow.name in names:
                found.append((source, flow))
    return found, errors


def _secret_strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        if len(value) >= 4:
            out.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _secret_strings(item, out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _secret_strings(item, out)


@contextlib.contextmanager
def _capture_reads() -> Iterator[list[tuple[str, str]]]:
    """Record ``(what, value)`` for every key-value store read and secret resolved while a flow file is imported."""
    from headwater.plugins import Secret
    from headwater_cloud_api.client.resources import KeyValueResource

    captured: list[tuple[str, str]] = []
    kv_get, secret_get = KeyValueResource.get, Secret.get

    def kv(self: Any, key: str) -> Any:
        value = kv_get(self, key)
        found: list[str] = []
        _secret_strings(value, found)
        captured.extend((f"key-value store key {key!r}", v) for v in found)
        return value

    def secret(self: Any) -> Any:
        value = secret_get(self)
        found: list[str] = []
        _secret_strings(value, found)
        captured.extend((f"secret {self.name!r}", v) for v in found)
        return value

    KeyValueResource.get = kv  # type: ignore[method-assign]
    Secret.get = secret  # type: ignore[method-assign]
    try:
        yield captured
    finally:
        KeyValueResource.get = kv_get  # type: ignore[method-assign]
        Secret.get = secret_get  # type: ignore[method-assign]


def _split_labels_error(flow: Any) -> str | None:
    """The run config's labels look like one string split into letters (``labels="staging"``): an error, with the fix."""
    labels = list(getattr(flow.run_config, "labels", None) or []) if flow.run_config is not None else []
    if len(labels) >= 3 and all(isinstance(label, str) and len(label) == 1 for label in labels):
        return (f"Flow {flow.name!r}: its run config's labels {labels!r} look like a string split into letters; "
                "pass a list of labels: labels=['staging'], not labels='staging'.")
    return None


def _captured_warning(flow: Any) -> str | None:
    """A warning when a pickled flow carries values its file read from the key-value store or secrets at import."""
    reads = getattr(flow, "_headwater_import_reads", None)
    storage = flow.storage
    if not reads or storage is None or getattr(storage, "stored_as_script", True):
        return None
    from headwater.plugins import dumps_flow

    try:
        data = dumps_flow(flow)
    except Exception:
        return None
    frozen = sorted({what for what, value in reads if value.encode() in data})
    if not frozen:
        return None
    return (f"Flow {flow.name!r} is pickled with values its file read at import time from the {', '.join(frozen)}: they are "
            f"frozen into the stored flow (anyone who can read the storage can read them, and they never update). Read them "
            f"inside a task, or use script storage ({type(storage).__name__}(stored_as_script=True)), which runs the file again "
            "at run time.")


def source_files(paths: Sequence[str | Path] = (), modules: Sequence[str] = (), ignore: Sequence[str] = ()) -> list[Path]:
    """The files registration watches: ``*.py`` under each path not ignored (or the file itself) and each module's file."""
    import importlib.util

    files: list[Path] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            spec = _ignore_spec(p, ignore)
            files.extend(sorted(f for f in p.rglob("*.py") if not any(part.startswith((".", "__")) for part in f.relative_to(p).parts)
                                and not spec.match_file(f.relative_to(p).as_posix())))
        elif p.exists():
            files.append(p)
    for module in modules:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin and spec.origin not in ("built-in", "frozen"):
            files.append(Path(spec.origin))
    return files


def snapshot(paths: Sequence[str | Path] = (), modules: Sequence[str] = ()) -> dict[str, tuple[int, int]]:
    """``{file: (mtime_ns, size)}`` of the source files; two snapshots differ when a file changed, appeared or went."""
    out: dict[str, tuple[int, int]] = {}
    for f in source_files(paths, modules):
        try:
            st = f.stat()
        except OSError:
            continue
        out[str(f.resolve())] = (st.st_mtime_ns, st.st_size)
    return out


def _forget_modules(changed: Iterable[str], modules: Sequence[str]) -> None:
    """Drop changed modules from ``sys.modules`` so the next load imports the new code."""
    changed = set(changed)
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name in modules or (file and str(Path(file).resolve()) in changed):
            sys.modules.pop(name, None)


def watch_sources(register_once: Callable[[], Any], paths: Sequence[str | Path] = (), modules: Sequence[str] = (), *,
                  interval: float = 1.0, max_checks: int | None = None, stop: Callable[[], bool] | None = None,
                  sleep: Callable[[float], None] | None = None) -> int:
    """Poll the source files' mtimes every ``interval`` s; call ``register_once()`` after each change.

    Returns how many times it re-registered; ends after ``max_checks`` polls, when ``stop()`` is
    true, or on KeyboardInterrupt. Unchanged flows cost nothing: registration skips them in one
    request. Changed modules (and ``modules``) are re-imported.
    """
    sleep = sleep or _sleep
    before = snapshot(paths, modules)
    checks = registrations = 0
    try:
        while (max_checks is None or checks < max_checks) and not (stop is not None and stop()):
            sleep(interval)
            checks += 1
            now = snapshot(paths, modules)
            if now != before:
                changed = {f for f in set(now) | set(before) if now.get(f) != before.get(f)}
                _forget_modules(changed, modules)
                before = now
                register_once()
                registrations += 1
    except KeyboardInterrupt:
        pass
    return registrations


_sleep = time.sleep  # watch_sources' default (tests replace it to change files between checks)


def _storage_warning(flow: Any) -> str | None:
    storage_type = type(flow.storage).__name__
    run_config = flow.run_config
    run_type = type(run_config).__name__ if run_config is not None else None
    if storage_type == "Local" and run_type is not None and run_type not in LOCAL_RUN_CONFIGS:
        return (
            f"Flow {flow.name!r} uses Local storage (files on this machine only) with run config {run_type}: an agent "
            "running it elsewhere (a container, a cluster) cannot load it. Use a shared storage (S3, git, a Docker image)."
        )
    return None


class Registration:
    """``client.register(flow, project_name=...)`` and the batch behind ``headwater register``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def prepare(self, flow: Any, labels: Iterable[str] = (), build: bool = True) -> tuple[dict[str, Any], str, list[str]]:
        """Give the flow storage, add it, build; returns ``(metadata, hash, warnings)``.

        ``build=False`` (a dry run) only computes the storage location (content-addressed, no
        I/O) and the metadata: nothing is written.

        The default storage of a flow loaded from a file is ``Local(stored_as_script=True)``: the
        file's source is stored and run again at run time (Prefect 1's script semantics), so values
        the file computes at import (a secret, ``datetime.now()``) are not frozen into the stored
        flow. A flow object without a file gets ``Local()`` (pickled); pickling is otherwise opt-in.
        """
        from headwater.plugins import canonical_json

        split = _split_labels_error(flow)
        if split:
            raise ValueError(split)
        if flow.storage is None:
            from headwater.storage import Local

            flow.storage = Local(stored_as_script=True) if getattr(flow, "_source_path", None) else Local()
        if flow.name not in flow.storage.flows:
            flow.storage.add_flow(flow)
        if build:
            flow.storage.build()
        serialized = flow.serialize()
        # == flow.serialized_hash(), without serializing the flow a second time
        digest = hashlib.sha256(canonical_json(serialized).encode()).hexdigest()
        extra = sorted(set(labels))
        if extra:
            digest = hashlib.sha256(f"{digest}:labels={','.join(extra)}".encode()).hexdigest()
        warnings = [w for w in (_storage_warning(flow), _captured_warning(flow)) if w]
        return serialized, digest, warnings

    def register(self, flow: Any, project_name: str, labels: Iterable[str] = (), force: bool = False,
                 schedule: bool = True) -> str:
        """Register one flow; returns its flow id (the existing one when unchanged). Errors raise."""
        [result] = self.register_many([("<flow object>", flow)], project_name, labels=labels, force=force, schedule=schedule)
        if result.status == "error":
            raise RuntimeError(f"Registering flow {result.name!r} failed: {result.error}")
        assert result.id is not None
        return result.id

    def register_many(self, flows: Sequence[tuple[str, Any]], project_name: str, labels: Iterable[str] = (),
                      force: bool = False, schedule: bool = True, dry_run: bool = False) -> list[RegistrationResult]:
        """Register ``[(source, flow)]``: one request finds the unchanged ones, one request per changed flow.

        ``dry_run=True`` says what would be registered, bumped or skipped without writing anything:
        storage is not built, and only read requests reach the API (the hash check, and the
        latest version of each changed flow).
        """
        from headwater_cloud_api.client.transport import APIClientError

        labels = sorted(set(labels))
        prepared: list[tuple[RegistrationResult, dict[str, Any], str]] = []
        results: list[RegistrationResult] = []
        for source, flow in flows:
            result = RegistrationResult(name=flow.name, status="error", source=source, dry_run=dry_run)
            results.append(result)
            try:
                serialized, digest, warnings = self.prepare(flow, labels, build=not dry_run)
            except Exception as exc:
                result.error = f"building storage or metadata failed: {type(exc).__name__}: {exc}"
                continue
            result.warnings = warnings
            prepared.append((result, serialized, digest))
        if not prepared:
            return results
        try:
            checks = self.client.graphql(
                "query($p: String!, $f: [FlowHashInput!]!) { flow_hashes(project: $p, flows: $f) { unchanged id version } }",
                {"p": project_name, "f": [{"name": r.name, "hash": h} for r, _, h in prepared]},
            )["flow_hashes"]
        except APIClientError as exc:
            if exc.code == "NOT_FOUND":
                raise ProjectNotFoundError(
                    f"Project {project_name!r} does not exist. Create it with `headwater project create {project_name}`."
                ) from exc
            raise
        for (result, serialized, digest), check in zip(prepared, checks, strict=True):
            if check["unchanged"] and not force:
                result.status, result.id, result.version = "skipped", check["id"], check["version"]
                result.action = "skip"
                continue
            if dry_run:
                try:
                    self._plan(result, project_name)
                except APIClientError as exc:
                    result.error = str(exc)
                continue
            try:
                data = self.client.graphql(
                    "mutation($i: CreateFlowInput!) { create_flow(input: $i) { id version created } }",
                    {"i": {"serialized": serialized, "hash": digest, "project_name": project_name, "labels": labels,
                           "force": force, "schedule_active": None if schedule else False}},
                )["create_flow"]
            except APIClientError as exc:
                result.error = str(exc)
                continue
            result.id, result.version = data["id"], data["version"]
            result.status = "registered" if data["created"] else "skipped"
            if not data["created"]:
                result.action = "skip"
            else:
                result.action = "new" if data["version"] == 1 else "bump"
                result.previous_version = data["version"] - 1 if data["version"] > 1 else None
        return results

    def _plan(self, result: RegistrationResult, project_name: str) -> None:
        """A dry run's answer for a changed flow: version 1 of a new flow, or the next version (read-only request)."""
        latest = self.client.graphql(
            "query($p: String!, $n: String!) { flows(project: $p, name: $n, include_archived: true, "
            "order_by: \"-version\", limit: 1) { id version } }",
            {"p": project_name, "n": result.name},
        )["flows"]
        result.status = "registered"
        if latest:
            result.action, result.previous_version = "bump", latest[0]["version"]
            result.id, result.version = latest[0]["id"], latest[0]["version"] + 1
        else:
            result.action, result.version = "new", 1
