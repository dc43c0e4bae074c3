"""The Docker task library (``from headwater.tasks.docker import ...``), with Prefect 1's classes and arguments.

Every task takes its arguments at init time or at run time (a run-time value wins), plus
``docker_server_url`` (default: ``[docker] base_url`` / ``DOCKER_HOST``, where Prefect's default
was the local Docker socket) and ``extra_docker_kwargs`` passed to the SDK call. A container pipeline::

    with Flow("etl-in-containers") as flow:
        pulled = PullImage(repository="127.0.0.1:5000/etl/job", tag="1")()
        container = CreateContainer(image_name="127.0.0.1:5000/etl/job:1", command="python3 job.py")(upstream_tasks=[pulled])
        started = StartContainer()(container_id=container)
        code = WaitOnContainer()(container_id=container, upstream_tasks=[started])
        logs = GetContainerLogs()(container_id=container, upstream_tasks=[code])
        RemoveContainer()(container_id=container, upstream_tasks=[logs])
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from headwater import signals
from headwater.plugins import Task, get_logger

__all__ = [
    "PullImage",
    "BuildImage",
    "PushImage",
    "TagImage",
    "RemoveImage",
    "ListImages",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "WaitOnContainer",
    "GetContainerLogs",
    "RemoveContainer",
    "ListContainers",
]

_log = get_logger("headwater.tasks.docker")


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


class _DockerTask(Task):
    """Shared: ``docker_server_url``, ``extra_docker_kwargs``, and an API client per run."""

    def __init__(self, docker_server_url: str | None = None, extra_docker_kwargs: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.docker_server_url = docker_server_url
        self.extra_docker_kwargs = extra_docker_kwargs
        super().__init__(**kwargs)

    @contextmanager
    def _api(self, docker_server_url: str | None) -> Iterator[Any]:
        from headwater_docker.client import DockerEngineError, docker_client

        try:
            client = docker_client(_pick(docker_server_url, self.docker_server_url))
        except DockerEngineError as exc:
            raise signals.FAIL(f"{type(self).__name__}: {exc}") from None
        try:
            yield client.api
        finally:
            client.close()

    def _extra(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        return dict(_pick(extra, self.extra_docker_kwargs) or {})

    def _require(self, name: str, value: Any) -> Any:
        if value is None or value == "":
            raise ValueError(f"{type(self).__name__}: a {name} must be given (at init or when calling the task).")
        return value

    def _fail(self, what: str, exc: Exception) -> signals.FAIL:
        message = getattr(exc, "explanation", None) or str(exc)
        return signals.FAIL(f"{type(self).__name__}: {what} failed: {message}")


def _stream_errors(chunks: Any, task: str, what: str, stream_logs: bool) -> list[dict[str, Any]]:
    """Collect a decoded progress stream; FAIL on the first error entry; log lines when ``stream_logs``."""
    out: list[dict[str, Any]] = []
    for chunk in chunks:
        out.append(chunk)
        if "error" in chunk or "errorDetail" in chunk:
            message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
            raise signals.FAIL(f"{task}: {what} failed: {message}")
        if stream_logs:
            text = chunk.get("stream") or " ".join(str(chunk[k]) for k in ("status", "id", "progress") if chunk.get(k))
            if str(text).strip():
                _log.info("%s", str(text).rstrip())
    return out


def _log_tail(api: Any, container_id: str, lines: int = 20) -> str:
    """The last ``lines`` of a finished container's output (the engine may still be flushing it: retried briefly)."""
    import time

    from docker.errors import DockerException

    text = ""
    for _ in range(5):
        try:
            raw = api.logs(container_id, stdout=True, stderr=True)
        except DockerException:
            return ""
        text = (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)).strip()
        if text:
            break
        time.sleep(0.2)
    return "\n".join(text.splitlines()[-lines:])


class PullImage(_DockerTask):
    """Pull ``repository:tag`` (``tag=None`` pulls ``latest``); returns the pulled image's id.

    Args: ``repository``, ``tag``, ``stream_logs`` (log the progress), ``docker_server_url``, ``extra_docker_kwargs``.
    """

    def __init__(self, repository: str | None = None, tag: str | None = None, stream_logs: bool = False,
                 docker_server_url: str | None = None, extra_docker_kwargs: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.repository, self.tag, self.stream_logs = repository, tag, stream_logs
        super().__init__(docker_server_url, extra_docker_kwargs, **kwargs)

    def run(self, repository: str | None = None, tag: str | None = None, docker_server_url: str | None = None,
            extra_docker_kwargs: dict[str, Any] | None = None, stream_logs: bool | None = None) -> str:
        from docker.errors import DockerException

        repository = self._require("repository", _pick(repository, self.repository))
        tag = _pick(tag, self.tag) or "latest"
        with self._api(docker_server_url) as api:
            try:
                _stream_errors(api.pull(repository, tag=tag, stream=True, decode=True, **self._extra(extra_docker_kwargs)),
                               type(self).__name__, f"pulling {repository}:{tag}", bool(_pick(stream_logs, self.stream_logs)))
                return str(api.inspect_image(f"{repository}:{tag}")["Id"])
            except DockerException as exc:
                raise self._fail(f"pulling {repository}:{tag}", exc) from None


class BuildImage(_DockerTask):
    """Build an image from the directory ``path`` (with ``dockerfile`` in it); returns the image id.

    Args: ``path``, ``dockerfile``, ``tag``, ``nocache``, ``rm`` (remove intermediate containers),
    ``forcerm``, ``stream_logs``, ``docker_server_url``, ``extra_docker_kwargs`` (``buildargs``, ``network_mode`` ...).
    """

    def __init__(self, path: str | None = None, dockerfile: str | None = None, tag: str | None = None,
                 nocache: bool = False, rm: bool = True, forcerm: bool = False, stream_logs: bool = False,
                 docker_server_url: str | None = None, extra_docker_kwargs: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.path, self.dockerfile, self.tag = path, dockerfile, tag
        self.nocache, self.rm, self.forcerm, self.stream_logs = nocache, rm, forcerm, stream_logs
        super().__init__(docker_server_url, extra_docker_kwargs, **kwargs)

    def run(self, path: str | None = None, dockerfile: str | None = None, tag: str | None = None,
            nocache: bool | None = None, rm: bool | None = None, forcerm: bool | None = None,
            docker_server_url: str | None = None, extra_docker_kwargs: dict[str, Any] | None = None,
            stream_logs: bool | None = None) -> str:
        from docker.errors import DockerException

        path = self._require("path", _pick(path, self.path))
        tag = _pick(tag, self.tag)
        options: dict[str, Any] = {"nocache": _pick(nocache, self.nocache), "rm": _pick(rm, self.rm),
                                   "forcerm": _pick(forcerm, self.forcerm), "decode": True}
        if _pick(dockerfile, self.dockerfile):
            options["dockerfile"] = _pick(dockerfile, self.dockerfile)
        options.update(self._extra(extra_docker_kwargs))
        with self._api(docker_server_url) as api:
            try:
                chunks = _stream_errors(api.build(path=str(path), tag=tag, **options), type(self).__name__,
                                        f"building {path}", bool(_pick(stream_logs, self.stream_logs)))
            except DockerException as exc:
                raise self._fail(f"building {path}", exc) from None
            if tag:
                return str(api.inspect_image(tag)["Id"])
        for chunk in reversed(chunks):
            aux = chunk.get("aux") or {}
            if aux.get("ID"):
                return str(aux["ID"])
            text = str(chunk.get("stream", "")).strip()
            if text.startswith("Successfully built "):
                return text.split()[-1]
            if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
                return text
        raise signals.FAIL(f"{type(self).__name__}: the build of {path} reported no image id; give a tag.")


class PushImage(_DockerTask):
    """Push ``repository:tag`` to its registry; returns the registry's last status line.

    Args: ``repository``, ``tag``, ``stream_logs``, ``docker_server_url``, ``extra_docker_kwargs``.
    """

    def __init__(self, repository: str | None = None, tag: str | None = None, stream_logs: bool = False,
                 docker_server_url: str | None = None, extra_docker_kwargs: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.repository, self.tag, self.stream_logs = repository, tag, stream_logs
        super().__init__(docker_server_url, extra_docker_kwargs, **kwargs)

    def run(self, repository: str | None = None, tag: str | None = None, docker_server_url: str | None = None,
            extra_docker_kwargs: dict[str, Any] | None = None, stream_logs: bool | None = None) -> str:
        from docker.errors import DockerException

        repository = self._require("repository", _pick(repository, self.repository))
        tag = _pick(tag, self.tag) or "latest"
        with self._api(docker_server_url) as api:
            try:
                chunks = _stream_errors(api.push(repository, tag=tag, stream=True, decode=True, **self._extra(extra_docker_kwargs)),
                                        type(self).__name__, f"pushing {repository}:{tag}",
                                        bool(_pick(stream_logs, self.stream_logs)))
            except DockerException as exc:
                raise self._fail(f"pushing {repository}:{tag}", exc) from None
        statuses = [str(c.get("status")) for c in chunks if c.get("status")]
        return statuses[-1] if statuses else f"pushed {repository}:{tag}"


class TagImage(_DockerTask):
    """Tag the image ``image`` as ``repository:tag``; returns True."""

    def __init__(self, image: str | None = None, repository: str | None = None, tag: str | None = None,
                 force: bool = False, docker_server_url: str | None = None,
                 extra_docker_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.image, self.repository, self.tag, self.force = image, repository, tag, force
        super().__init__(docker_server_url, extra_docker_kwargs, **kwargs)

    def run(self, image: str | None = None, repository: str | None = None, tag: str | None = None,
            force: bool | None = None, docker_server_url: str | None = None,
            extra_docker_kwargs: dict[str, Any] | None = None) -> bool:
        from docker.errors import DockerException

        image = self._require("image", _pick(image, self.image))
        repository = self._require("repository", _pick(repository, self.repository))
        with self._api(docker_server_url) as api:
            try:
                return bool(api.tag(image, repository, tag=_pick(tag, self.tag), force=_pick(force, self.force),
                                    **self._extra(extra_docker_kwargs)))
            except DockerException as exc:
                raise self._fail(f"tagging {image} as {repository}", exc) from None


class RemoveImage(_DockerTask):
    """Remove the image ``image`` (``force`` removes it even when containers use it)."""

    def __init__(self, image: str | None = None, force: bool = False, docker_server_url: str | None = None,
                 extra_docker_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.image, self.force = image, force
        super().__init__(docker_server_url, extra_docker_kwargs, **kwargs)

    def run(self, image: str | None = None, force: bool | None = None, docker_server_url: str | None = None,
            extra_docker_kwargs: dict[str, Any] | None = None) -> None:
        from docker.errors import DockerException

        image = self._require("image", _pick(image, self.image))
        with self._api(docker_server_url) as api:
            try:
                api.remove_image(image, force=_pick(force, self.force), **self._extra(extra_docker_kwargs))
            except DockerException as exc:
                raise self._fail(f"removing image {image}", exc) from None


class ListImages(_DockerTask):
    """The engine's images (the API's list of dicts); ``repository_name`` filters by name, ``all`` adds intermediates."""

    def __init__(self, repository_name: str | None = None, all_layers: bool = False,
                 docker_server_url: str | None = None, extra_docker_kwargs: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.repository_name, self.all_layers = repository_name, all_layers
        super().__init__(docker_server_url, extra_docker_kwargs, **kwargs)

    def run(self, repository_name: str | None = None, all_layers: bool | None = None,
            docker_server_url: str | None = None, extra_docker_kwargs: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._api(docker_server_url) as api:
            return list(api.images(name=_pick(repository_name, self.repository_name),
                                   all=_pick(all_layers, self.all_layers), **self._extra(extra_docker_kwargs)))


class CreateContainer(_DockerTask):
    """Create (not start) a container from ``image_name``; returns its id.

    Args (Prefect 1): ``image_name``, ``container_name``, ``command``, ``detach``, ``entrypoint``,
    ``environment``, ``volumes``, ``host_config`` (``create_host_config`` arguments, e.g.
    ``{"network_mode": "none", "binds": [...]}``), ``labels``, ``docker_server_url``, ``extra_docker_kwargs``.
    """

    def __init__(self, image_name: str | None = None, container_name: str | None = None,
                 command: str | list[str] | None = None, detach: bool = False, entrypoint: str | list[str] | None = None,
                 environment: dict[str, str] | list[str] | None = None, volumes: list[str] | None = None,
                 host_config: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
                 docker_server_url: str | None = None, extra_docker_kwargs: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.image_name, self.container_name, self.command, self.detach = image_name, container_name, command, detach
        self.entrypoint, self.environment, self.volumes = entrypoint, environment, volumes
        self.host_config, self.container_labels = host_config, labels
        super().__init__(docker_server_url, extra_docker_kwargs, **kwargs)

    def run(self, image_name: str | None = None, container_name: str | None = None,
            command: str | list[str] | None = None, detach: bool | None = None,
            entrypoint: str | list[str] | None = None, environment: dict[str, str] | list[str] | None = None,
            volumes: list[str] | None = None, host_config: dict[str, Any] | None = None,
            labels: dict[str, str] | None = None, docker_server_url: str | None = None,
            extra_docker_kwargs: dict[str, Any] | None = None) -> str:
        from docker.errors import DockerException

        image_name = self._require("image_name", _pick(image_name, self.image_name))
        with self._api(docker_server_url) as api:
            try:
                hc = _pick(host_config, self.host_config)
                created = api.create_container(
                    image=image_name, name=_pick(container_name, self.container_name),
                    command=_pick(command, self.command), detach=_pick(detach, self.detach),
                    entrypoint=_pick(entrypoint, self.entrypoint), environment=_pick(environment, self.environment),
                    volumes=_pick(volumes, self.volumes), labels=_pick(labels, self.container_labels),
                    host_config=api.create_host_config(**hc) if hc else None,
                    **self._extra(extra_docker_kwargs),
                )
            except DockerException as exc:
                raise self._fail(f"creating a container from {image_name}", exc) from None
        return str(created["Id"])


class _ContainerTask(_DockerTask):
    def __init__(self, container_id: str | None = None, docker_server_url: str | None = None,
                 extra_docker_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.container_id = container_id
        super().__init__(docker_server_url, extra_docker_kwargs, **kwargs)


class StartContainer(_ContainerTask):
    """Start the created container ``container_id``."""

    def run(self, container_id: str | None = None, docker_server_url: str | None = None,
            extra_docker_kwargs: dict[str, Any] | None = None) -> None:
        from docker.errors import DockerException

        container_id = self._require("container_id", _pick(container_id, self.container_id))
        with self._api(docker_server_url) as api:
            try:
                api.start(container=container_id, **self._extra(extra_docker_kwargs))
            except DockerException as exc:
                raise self._fail(f"starting container {container_id}", exc) from None


class StopContainer(_ContainerTask):
    """Stop the container ``container_id`` (SIGTERM, SIGKILL after ``timeout`` seconds)."""

    def __init__(self, container_id: str | None = None, timeout: int = 10, docker_server_url: str | None = None,
                 extra_docker_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.stop_timeout = timeout
        super().__init__(container_id, docker_server_url, extra_docker_kwargs, **kwargs)

    def run(self, container_id: str | None = None, docker_server_url: str | None = None,
            extra_docker_kwargs: dict[str, Any] | None = None) -> None:
        from docker.errors import DockerException

        container_id = self._require("container_id", _pick(container_id, self.container_id))
        with self._api(docker_server_url) as api:
            try:
                api.stop(container=container_id, timeout=self.stop_timeout, **self._extra(extra_docker_kwargs))
            except DockerException as exc:
                raise self._fail(f"stopping container {container_id}", exc) from None


class WaitOnContainer(_ContainerTask):
    """Wait for ``container_id`` to exit; returns the API's answer (``{"StatusCode": ...}``).

    A non-zero exit status fails the task (with the code and the logs' tail) unless
    ``raise_on_exit_code=False``.
    """

    def __init__(self, container_id: str | None = None, raise_on_exit_code: bool = True,
                 docker_server_url: str | None = None, extra_docker_kwargs: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.raise_on_exit_code = raise_on_exit_code
        super().__init__(container_id, docker_server_url, extra_docker_kwargs, **kwargs)

    def run(self, container_id: str | None = None, docker_server_url: str | None = None,
            extra_docker_kwargs: dict[str, Any] | None = None, raise_on_exit_code: bool | None = None) -> dict[str, Any]:
        from docker.errors import DockerException

        container_id = self._require("container_id", _pick(container_id, self.container_id))
        with self._api(docker_server_url) as api:
            try:
                result = dict(api.wait(container=container_id, **self._extra(extra_docker_kwargs)))
            except DockerException as exc:
                raise self._fail(f"waiting on container {container_id}", exc) from None
            code = int(result.get("StatusCode", 0) or 0)
            if code != 0 and _pick(raise_on_exit_code, self.raise_on_exit_code):
                tail = _log_tail(api, container_id)
                error = (result.get("Error") or {}).get("Message") if isinstance(result.get("Error"), dict) else None
                raise signals.FAIL(f"{type(self).__name__}: container {container_id[:12]} exited with status {code}"
                                   + (f" ({error})" if error else "") + (f"; its last output:\n{tail}" if tail else "."))
        return result


class GetContainerLogs(_ContainerTask):
    """The output (stdout and stderr) of ``container_id`` as text."""

    def run(self, container_id: str | None = None, docker_server_url: str | None = None,
            extra_docker_kwargs: dict[str, Any] | None = None) -> str:
        from docker.errors import DockerException

        container_id = self._require("container_id", _pick(container_id, self.container_id))
        with self._api(docker_server_url) as api:
            try:
                raw = api.logs(container=container_id, **self._extra(extra_docker_kwargs))
            except DockerException as exc:
                raise self._fail(f"reading the logs of container {container_id}", exc) from None
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


class RemoveContainer(_ContainerTask):
    """Remove the container ``container_id`` (``force`` also stops a running one)."""

    def __init__(self, container_id: str | None = None, force: bool = False, docker_server_url: str | None = None,
                 extra_docker_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.force = force
        super().__init__(container_id, docker_server_url, extra_docker_kwargs, **kwargs)

    def run(self, container_id: str | None = None, docker_server_url: str | None = None,
            extra_docker_kwargs: dict[str, Any] | None = None, force: bool | None = None) -> None:
        from docker.errors import DockerException

        container_id = self._require("container_id", _pick(container_id, self.container_id))
        with self._api(docker_server_url) as api:
            try:
                api.remove_container(container=container_id, force=_pick(force, self.force),
                                     **self._extra(extra_docker_kwargs))
            except DockerException as exc:
                raise self._fail(f"removing container {container_id}", exc) from None


class ListContainers(_DockerTask):
    """The engine's containers (the API's list of dicts); ``all_containers`` includes stopped ones."""

    def __init__(self, all_containers: bool = False, filters: dict[str, Any] | None = None,
                 docker_server_url: str | None = None, extra_docker_kwargs: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.all_containers, self.filters = all_containers, filters
        super().__init__(docker_server_url, extra_docker_kwargs, **kwargs)

    def run(self, all_containers: bool | None = None, filters: dict[str, Any] | None = None,
            docker_server_url: str | None = None, extra_docker_kwargs: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._api(docker_server_url) as api:
            return list(api.containers(all=_pick(all_containers, self.all_containers),
                                       filters=_pick(filters, self.filters), **self._extra(extra_docker_kwargs)))
