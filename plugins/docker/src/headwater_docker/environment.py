"""``DockerRun``: run each flow run in a container (Prefect 1 ``DockerRun``'s arguments).

Any agent (``headwater agent start --label docker``) runs it: the agent restores the run
config from the ``environment`` registry by its ``"type"`` tag and calls :meth:`DockerRun.execute`.

The container:

* runs the image of ``DockerRun.image`` or else the flow's ``Docker`` storage image, pulled
  when the engine does not have it (``pull="missing"``; ``"always"``, ``"never"``);
* runs the agent's command (``python -m headwater.cli execute flow-run --id ID``, with the
  container's ``python3`` instead of the agent's interpreter), or
  ``python3 -m headwater.environments.run_from_env`` outside an agent;
* gets only the variables it needs: ``env``, the run context's ``env`` (the API address and key,
  the address rewritten for containers, see ``[docker] api_url_for_containers``) and the
  ``HEADWATER__RUN__*`` variables describing the run;
* carries labels naming the run (``io.headwater.flow-run-id`` ...), ``host_config`` (the Docker
  SDK's ``create_host_config`` arguments: ``network_mode``, ``binds``, ``mem_limit`` ...) and ``ports``;
* has its stdout and stderr followed into the run context's ``stdout`` (the agent's per-run log
  file, whose tail the agent reports when a run fails before it started) or this process's stdout,
  and, in an agent, into the flow run's logs in the API: every line that is not one of headwater's
  own log records (the runner in the container sends those itself), batched by
  :class:`headwater_docker.logs.LogForwarder`, so prints, child processes' output and a crash
  before headwater started (an ImportError in the image, a segfault, an OOM kill) are in the run's logs;
* is removed once finished and its status read, unless ``keep_container`` (or ``[docker] keep_containers``).

``kill`` stops the container (SIGTERM, SIGKILL after the grace period); ``status`` reads the
engine's state, so a container killed from outside is seen as ``failed`` and the agent leaves
the run to the server's reaper.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from headwater.plugins import RUN_FROM_ENV_MODULE, Environment, RunHandle, env_converter, env_runner_variables

__all__ = ["DockerRun", "DockerRunError", "RUN_LABEL", "container_api_url"]

RUN_LABEL = "io.headwater.flow-run-id"
"""Label holding the flow run's id on its container (``docker ps --filter label=io.headwater.flow-run-id``)."""

_RUNNING = {"created", "running", "paused", "restarting", "configured", "initialized", "stopping"}
_FINAL = ("success", "failed", "cancelled")
_API_VARIABLES = ("HEADWATER__CLOUD__API",)


class DockerRunError(RuntimeError):
    """The engine refused to pull, create or start the flow run's container (the message holds its answer)."""


def container_api_url(url: str, network_mode: str | None, configured: str | None, container_host: str) -> str:
    """The API URL as the container must use it.

    ``[docker] api_url_for_containers`` wins; with the host's network (``network_mode="host"``)
    the agent's URL works as it is; otherwise a loopback host is replaced by ``container_host``.
    """
    if configured:
        return configured
    if network_mode == "host":
        return url
    parts = urlsplit(url)
    if parts.hostname in ("127.0.0.1", "localhost", "0.0.0.0", "::1"):  # noqa: S104 - comparing, not binding
        netloc = container_host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


def _ports(value: Any) -> list[int] | None:
    if value is None:
        return None
    return [int(v) for v in value]


@attrs.define
class _Follower:
    """The per-handle objects of a container started by this process (not serialized)."""

    client: Any
    thread: threading.Thread | None = None
    sink: IO[bytes] | None = None
    close_sink: bool = False
    path: Path | None = None
    finalized: bool = False
    starting: threading.Thread | None = None
    error: str | None = None
    forwarder: Any = None
    """A :class:`headwater_docker.logs.LogForwarder` when the run has an API (inside an agent)."""
    noted_exit: bool = False
    sink_lock: threading.Lock = attrs.field(factory=threading.Lock)


@attrs.define
class DockerRun(Environment):
    """Run flow runs in Docker containers.

    Args (Prefect 1's names first):
        image: the image (default: the flow's Docker storage image).
        env: environment variables of the container.
        labels: agent labels (``--label docker``) that may run it.
        ports: container ports to expose.
        host_config: ``create_host_config`` arguments, e.g. ``{"network_mode": "host", "mem_limit": "1g"}``.
        keep_container: keep the finished container (default: ``[docker] keep_containers``, False).
        pull: ``missing`` (pull when the engine lacks the image), ``always`` or ``never``.
        python: the interpreter inside the image that runs headwater (``python3``).
        base_url: the engine (default: ``[docker] base_url`` / ``DOCKER_HOST``).
        container_labels: extra labels of the container.
    """

    image: str | None = None
    env: dict[str, str] = attrs.field(factory=dict, converter=env_converter)
    ports: list[int] | None = attrs.field(default=None, converter=_ports)
    host_config: dict[str, Any] | None = None
    keep_container: bool | None = None
    pull: str = attrs.field(default="missing", validator=attrs.validators.in_(("missing", "always", "never")))
    python: str = "python3"
    base_url: str | None = None
    container_labels: dict[str, str] = attrs.field(factory=dict, converter=env_converter)

    # --- helpers ------------------------------------------------------------------------------

    def _client(self) -> Any:
        from headwater_docker.client import docker_client

        return docker_client(self.base_url)

    def image_for(self, storage: Any) -> str:
        """``image`` or the storage's built image; an error naming both when there is none."""
        image = self.image or getattr(storage, "image", None)
        if not image:
            raise DockerRunError(
                f"DockerRun has no image to run: set DockerRun(image=...) or store the flow in Docker storage "
                f"(this flow's storage is {type(storage).__name__}, which has no image)."
            )
        return str(image)

    def _keep(self) -> bool:
        if self.keep_container is not None:
            return self.keep_container
        from headwater_docker.config import docker_settings

        return docker_settings().keep_containers

    def setup(self, storage: Any) -> None:
        """Nothing to prepare ahead: the image is pulled per run, so each run reports its own pull error."""

    def credentials_for(self, image: str, storage: Any = None) -> Any:
        """The registry credentials for pulling ``image`` (``[docker]``'s for the storage's registry, else ``docker login``'s)."""
        from headwater_docker.auth import RegistryAuthError, credentials_for, registry_of

        registry_url = getattr(storage, "registry_url", None)
        try:
            return credentials_for(registry_of(image), registry_of(f"{registry_url}/x") if registry_url else None)
        except RegistryAuthError as exc:
            raise DockerRunError(f"Cannot pull image {image}: {exc}") from None

    def ensure_image(self, client: Any, image: str, credentials: Any = None) -> None:
        """Pull ``image`` according to ``pull``; :class:`DockerRunError` with the engine's message when that fails."""
        from docker.errors import APIError, DockerException, ImageNotFound, NotFound

        if self.pull != "always":
            try:
                client.images.get(image)
                return
            except (ImageNotFound, NotFound):
                if self.pull == "never":
                    raise DockerRunError(f"Image {image} is not on the Docker engine and DockerRun(pull='never') forbids "
                                         "pulling it; build or pull it first.") from None
        repository, tag = _split_tag(image)
        try:
            message = _pull(client, repository, tag, credentials.auth_config() if credentials else None)
            if message is None:
                return
        except (APIError, DockerException) as exc:
            message = getattr(exc, "explanation", None) or str(exc)
        if message:
            low = message.lower()
            if "unauthorized" in low or "authentication required" in low or "denied" in low or "401" in low:
                from headwater_docker.auth import registry_of
                from headwater_docker.storage import auth_fix

                raise DockerRunError(f"Could not pull image {image}: {message}. Fix: "
                                     + auth_fix(registry_of(image), credentials, "pull from")) from None
            raise DockerRunError(
                f"Could not pull image {image}: {message}. Check the image name and tag, that the registry is reachable "
                "from the engine (and marked insecure if it is plain HTTP), and that you are logged in to it."
            ) from None

    def container_command(self, command: Any) -> list[str]:
        """The container's command: the agent's (its interpreter swapped for ``python``) or run_from_env."""
        if command is None:
            return [self.python, "-m", RUN_FROM_ENV_MODULE]
        if isinstance(command, (str, bytes)):
            raise TypeError(f"run context 'command' must be a list of arguments, got {command!r}.")
        argv = [str(part) for part in command]
        if argv and (argv[0] == sys.executable or Path(argv[0]).name.startswith("python")):
            argv[0] = self.python
        return argv

    def container_env(self, storage: Any, flow_location: str, run_context: Mapping[str, Any]) -> dict[str, str]:
        """The container's variables: ``env``, the run context's ``env`` (API URL rewritten), the run variables."""
        from headwater_docker.config import docker_settings

        settings = docker_settings()
        context = dict(run_context.get("context") or {})
        if run_context.get("flow_run_id") is not None:
            context.setdefault("flow_run_id", run_context["flow_run_id"])
        extra = env_converter(run_context.get("env"))
        network_mode = (self.host_config or {}).get("network_mode")
        for key in _API_VARIABLES:
            if key in extra:
                extra[key] = container_api_url(extra[key], network_mode, settings.api_url_for_containers,
                                               settings.container_host)
        return {
            "PYTHONUNBUFFERED": "1",
            **self.env,
            **extra,
            **env_runner_variables(storage, flow_location, run_context.get("parameters"), context),
        }

    # --- the interface ------------------------------------------------------------------------

    def execute(self, storage: Any, flow_location: str, **run_context: Any) -> RunHandle:
        """Create and start the container and return at once.

        When the engine must pull the image first, the pull, create and start happen in a
        background thread (a pull can take minutes; the agent keeps heartbeating meanwhile):
        the handle is ``running`` until then, and a failure makes it ``failed`` with the
        engine's message written to the run context's ``stdout`` (the agent reports its tail).
        """
        client = self._client()
        try:
            image = self.image_for(storage)
            command = self.container_command(run_context.get("command"))
            env = self.container_env(storage, flow_location, run_context)
            labels = {"io.headwater.managed": "true", "io.headwater.flow-location": flow_location, **self.container_labels}
            if run_context.get("flow_run_id") is not None:
                labels[RUN_LABEL] = str(run_context["flow_run_id"])
            needs_pull = self.pull == "always" or not _has_image(client, image)
            credentials = self.credentials_for(image, storage) if needs_pull else None
        except BaseException:
            client.close()
            raise
        follower = _Follower(client=client)
        self._open_sink(follower, run_context)
        follower.forwarder = _forwarder(run_context)
        handle = RunHandle(environment="DockerRun", process=follower)
        spec = (image, command, env, labels, credentials)
        if not needs_pull:
            try:
                self._start(follower, handle, *spec)
            except BaseException:
                self._close_sink(follower)
                if follower.forwarder is not None:
                    follower.forwarder.close()
                client.close()
                raise
            return handle

        def start_in_background() -> None:
            try:
                self._start(follower, handle, *spec)
            except Exception as exc:  # noqa: BLE001 - reported through status() and the output
                follower.error = str(exc)
                self._note(follower, f"[headwater] {exc}")
                self._close_sink(follower)
                if follower.forwarder is not None:
                    follower.forwarder.close()

        follower.starting = threading.Thread(target=start_in_background, name="docker-start", daemon=True)
        follower.starting.start()
        return handle

    def _start(self, follower: _Follower, handle: RunHandle, image: str, command: list[str], env: dict[str, str],
               labels: dict[str, str], credentials: Any = None) -> None:
        """Pull (per ``pull``), create and start the container; fills ``handle.id`` and ``handle.pid``."""
        from docker.errors import APIError, DockerException

        client = follower.client
        self.ensure_image(client, image, credentials)
        if handle.status == "cancelled":  # killed while pulling
            return
        try:
            host_config = client.api.create_host_config(**(self.host_config or {}))
        except (TypeError, DockerException) as exc:
            raise DockerRunError(f"DockerRun host_config {self.host_config!r} is not valid: {exc}.") from None
        try:
            created = client.api.create_container(
                image, command=command, environment=env, labels=labels, host_config=host_config,
                ports=self.ports, detach=True, stdin_open=False, tty=False,
            )
        except (APIError, DockerException) as exc:
            raise DockerRunError(f"Could not create a container from {image}: "
                                 f"{getattr(exc, 'explanation', None) or exc}.") from None
        cid = str(created["Id"])
        try:
            client.api.start(cid)
        except (APIError, DockerException) as exc:
            message = getattr(exc, "explanation", None) or str(exc)
            try:
                client.api.remove_container(cid, force=True)
            except DockerException:
                pass
            raise DockerRunError(f"The container of {image} did not start: {message}.") from None
        handle.id = cid
        if handle.status == "cancelled":  # killed while it was being created: stop it at once
            try:
                client.api.remove_container(cid, force=True)
            except DockerException:
                pass
            return
        try:
            handle.pid = int(client.api.inspect_container(cid)["State"].get("Pid") or 0) or None
        except (DockerException, KeyError, TypeError, ValueError):
            pass
        self._follow(follower, cid, handle)

    def _open_sink(self, follower: _Follower, run_context: Mapping[str, Any]) -> None:
        import subprocess

        target = run_context.get("stdout")
        if target == subprocess.DEVNULL:
            return
        if isinstance(target, (str, os.PathLike)):
            path = Path(target).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            follower.sink, follower.close_sink, follower.path = open(path, "ab"), True, path  # noqa: SIM115 - closed by the thread
        elif target is not None and hasattr(target, "write"):
            follower.sink = getattr(target, "buffer", target)
        else:
            follower.sink = sys.stdout.buffer

    def _close_sink(self, follower: _Follower) -> None:
        if follower.close_sink and follower.sink is not None:
            try:
                follower.sink.close()
            except OSError:
                pass

    def _note(self, follower: _Follower, line: str) -> None:
        """Append one line to the run's output (the agent's log file: its tail is reported on failure)."""
        try:
            if follower.path is not None:
                with open(follower.path, "ab") as fh:
                    fh.write((line + "\n").encode())
            elif follower.sink is not None:
                follower.sink.write((line + "\n").encode())
                follower.sink.flush()
        except (OSError, ValueError):
            pass

    def _follow(self, follower: _Follower, cid: str, handle: RunHandle) -> None:
        """Copy the container's stdout and stderr into the run's output and, in an agent, the run's API logs.

        A daemon thread with its own engine connection follows the container's log (both streams
        in their order, with timestamps): every frame goes to the sink as it came (without the
        engine's timestamp); the lines that are not headwater's own log records go to the API
        through the run's :class:`~headwater_docker.logs.LogForwarder` (stdout as INFO, stderr
        as WARNING), which batches them in its own thread. When the log ends, the engine's reason
        for a non-zero exit (OOM kill, a start error) is noted too, then the forwarder is flushed.
        """
        if follower.sink is None and follower.forwarder is None:
            return

        def copy() -> None:
            from headwater_docker.client import docker_client
            from headwater_docker.logs import OutputFilter

            filters = {"stdout": OutputFilter(), "stderr": OutputFilter()}
            levels = {"stdout": "INFO", "stderr": "WARNING"}
            forwarder = follower.forwarder
            api = None
            try:
                api = docker_client(self.base_url, timeout=3600).api  # its own connection: not thread-shared
                for stream, frame in _log_frames(api, cid):
                    self._to_sink(follower, _without_timestamp(frame))
                    if forwarder is not None:
                        for stamp, line in filters[stream].feed(frame):
                            forwarder.put(stamp, line, levels[stream], stream)
                if forwarder is not None:
                    crashed = _exit_code(api, cid) != 0
                    for stream, output in filters.items():
                        for stamp, line in output.close(crashed=crashed):
                            forwarder.put(stamp, line, levels[stream], stream)
                self._note_exit(follower, api, cid, handle)
            except Exception as exc:  # noqa: BLE001 - the container may be gone; the run's status says what happened
                self._to_sink(follower, f"[headwater] stopped following container {cid[:12]}: {exc}\n".encode())
            finally:
                if api is not None:
                    api.close()
                if forwarder is not None:
                    forwarder.close()
                if follower.close_sink and follower.sink is not None:
                    with follower.sink_lock:
                        try:
                            follower.sink.close()
                        except OSError:
                            pass

        follower.thread = threading.Thread(target=copy, name=f"docker-logs-{cid[:12]}", daemon=True)
        follower.thread.start()

    def _to_sink(self, follower: _Follower, data: bytes) -> None:
        if follower.sink is None or not data:
            return
        with follower.sink_lock:
            try:
                follower.sink.write(data)
                follower.sink.flush()
            except (OSError, ValueError):
                pass

    def _note_exit(self, follower: _Follower, api: Any, cid: str, handle: RunHandle) -> None:
        """The engine's reason for a failed exit (OOM kill, SIGKILL, a runtime error) in the output and the API logs."""
        try:
            state = api.inspect_container(cid).get("State") or {}
        except Exception:  # noqa: BLE001 - gone already: status() reports what it can
            return
        error, code = state.get("Error"), state.get("ExitCode")
        limit = (self.host_config or {}).get("mem_limit")
        if state.get("OOMKilled"):
            reason = "killed: out of memory (OOMKilled); raise its memory limit (host_config mem_limit" + (
                f", now {limit})" if limit else ")")
        elif error:
            reason = str(error)
        elif code == 137 and handle.status != "cancelled":  # SIGKILL, and not by us (podman does not always say OOM)
            reason = ("killed with SIGKILL: out of memory" + (f" (its memory limit is {limit})" if limit else "")
                      + ", or killed from outside (docker kill, the host's OOM killer)")
        else:
            return
        follower.noted_exit = True
        line = f"[headwater] container {cid[:12]} exited with status {code}: {reason}"
        self._to_sink(follower, (line + "\n").encode())
        if follower.forwarder is not None:
            from datetime import UTC, datetime

            follower.forwarder.put(datetime.now(UTC).isoformat(), line, "ERROR", "engine")

    def _follower(self, handle: RunHandle) -> _Follower:
        follower = handle.process
        if not isinstance(follower, _Follower):  # a handle made in another process
            follower = _Follower(client=self._client())
            handle.process = follower
        return follower

    def status(self, handle: RunHandle) -> str:
        """``running`` while the container runs; then ``success`` / ``failed`` by exit code (``cancelled`` if we stopped it)."""
        if handle.status in _FINAL and handle.exit_code is not None:
            return handle.status
        from docker.errors import DockerException, NotFound

        follower = self._follower(handle)
        if follower.starting is not None and follower.starting.is_alive():
            return "cancelled" if handle.status == "cancelled" else "running"
        if handle.id is None:  # the start failed (pull, create) or the run was killed before its container existed
            if handle.status != "cancelled":
                handle.status = "failed"
            handle.exit_code = 125 if follower.error else -1
            return handle.status
        try:
            info = follower.client.api.inspect_container(handle.id)
        except NotFound:  # removed behind our back
            if handle.status != "cancelled":
                handle.status = "failed"
            handle.exit_code = handle.exit_code if handle.exit_code is not None else -1
            self._finalize(handle, follower, None)
            return handle.status
        except DockerException:
            return handle.status if handle.status in _FINAL else "running"
        state = info.get("State") or {}
        if state.get("Running") or str(state.get("Status", "")).lower() in _RUNNING:
            return "cancelled" if handle.status == "cancelled" else "running"
        handle.exit_code = int(state.get("ExitCode") or 0)
        if handle.status != "cancelled":
            handle.status = "success" if handle.exit_code == 0 else "failed"
        self._finalize(handle, follower, state)
        return handle.status

    def _finalize(self, handle: RunHandle, follower: _Follower, state: Mapping[str, Any] | None) -> None:
        """Once per handle: wait for the output copy, note the engine's error, remove the container."""
        if follower.finalized:
            return
        follower.finalized = True
        if follower.thread is not None:
            follower.thread.join(timeout=20)  # its output and API lines first: the agent reports the tail next
        error = (state or {}).get("Error")
        if state is not None and not follower.noted_exit and (error or state.get("OOMKilled")):
            self._note(follower, f"[headwater] container {str(handle.id)[:12]} exited with status {handle.exit_code}: "
                       + str(error or "killed: out of memory (OOMKilled)"))
        if state is not None and not self._keep():
            from docker.errors import DockerException

            try:
                follower.client.api.remove_container(handle.id, force=True)
            except DockerException:
                pass

    def kill(self, handle: RunHandle, grace_period: float = 10.0) -> None:
        """Stop the container: SIGTERM, SIGKILL after ``grace_period`` s; marks a running run ``cancelled``."""
        if self.status(handle) != "running":
            return
        from docker.errors import DockerException, NotFound

        handle.status = "cancelled"
        follower = self._follower(handle)
        if follower.starting is not None:
            follower.starting.join(timeout=max(1.0, grace_period))  # still pulling after that: it will not start
        if handle.id is None:
            handle.exit_code = -1
            return
        try:
            follower.client.api.stop(handle.id, timeout=max(0, math.ceil(grace_period)))
        except NotFound:
            pass
        except DockerException:
            try:
                follower.client.api.kill(handle.id)
            except DockerException:
                pass
        deadline = time.monotonic() + max(5.0, grace_period) + 10
        while self.status(handle) == "cancelled" and handle.exit_code is None and time.monotonic() < deadline:
            time.sleep(0.1)


def _forwarder(run_context: Mapping[str, Any]) -> Any:
    """A LogForwarder to the run's API logs when the run context names the run and the API (an agent's run)."""
    flow_run_id = run_context.get("flow_run_id")
    env = env_converter(run_context.get("env"))
    api = env.get("HEADWATER__CLOUD__API")
    if not flow_run_id or not api:
        return None
    from headwater_docker.logs import LogForwarder

    api_key = env.get("HEADWATER__CLOUD__API_KEY") or ""
    attempt = env.get("HEADWATER_FLOW_RUN_ATTEMPT", "")

    def client() -> Any:
        from headwater import Client

        return Client(api=api, api_key=api_key)

    return LogForwarder(client, str(flow_run_id), int(attempt) if attempt.isdigit() else None)


def _log_frames(api: Any, cid: str) -> Iterator[tuple[str, bytes]]:
    """``("stdout" | "stderr", frame)`` of the container's log, followed, with timestamps, in the engine's order.

    The SDK's ``logs(stream=True)`` drops which stream a frame came from; this reads the same
    multiplexed response (8-byte frame headers) the way the SDK does and keeps it.
    """
    import struct

    try:
        response = api._get(api._url("/containers/{0}/logs", cid), stream=True,
                            params={"stdout": 1, "stderr": 1, "timestamps": 1, "follow": 1, "tail": "all"})
        api._raise_for_status(response)
        api._disable_socket_timeout(api._get_raw_response_socket(response))
    except AttributeError:  # another SDK: the public call, every frame counted as stdout
        for frame in api.logs(cid, stream=True, follow=True, stdout=True, stderr=True, timestamps=True):
            yield "stdout", frame
        return
    try:
        while True:
            header = response.raw.read(8)
            if len(header) < 8:
                return
            stream, length = struct.unpack(">BxxxL", header)
            if not length:
                continue
            data = response.raw.read(length)
            if not data:
                return
            yield ("stderr" if stream == 2 else "stdout"), data
    finally:
        response.close()


def _without_timestamp(frame: bytes) -> bytes:
    """A log frame without the engine's leading RFC 3339 timestamp (``logs(timestamps=True)``)."""
    head, sep, rest = frame.partition(b" ")
    return rest if sep and head[:4].isdigit() and b"T" in head else frame


def _exit_code(api: Any, cid: str) -> int | None:
    """The container's exit code once it stopped (None when the engine cannot tell within a few seconds)."""
    try:
        return int(api.wait(cid, timeout=5).get("StatusCode"))
    except Exception:  # noqa: BLE001 - gone, or still running: unknown
        return None


def _pull(client: Any, repository: str, tag: str | None, auth_config: dict[str, str] | None) -> str | None:
    """Pull ``repository:tag``; the engine's error message (its stream's error, not the SDK's "No such image"), or None."""
    from docker.errors import ImageNotFound, NotFound

    error = None
    for chunk in client.api.pull(repository, tag=tag, stream=True, decode=True, auth_config=auth_config):
        if isinstance(chunk, dict) and (chunk.get("error") or chunk.get("errorDetail")):
            error = str((chunk.get("errorDetail") or {}).get("message") or chunk.get("error"))
    if error:
        return error
    reference = f"{repository}@{tag}" if tag and tag.startswith("sha256:") else f"{repository}:{tag or 'latest'}"
    try:
        client.images.get(reference)
    except (ImageNotFound, NotFound):
        return f"the engine reported no error but has no image {reference} after the pull"
    return None


def _has_image(client: Any, image: str) -> bool:
    from docker.errors import ImageNotFound, NotFound

    try:
        client.images.get(image)
    except (ImageNotFound, NotFound):
        return False
    return True


def _split_tag(image: str) -> tuple[str, str | None]:
    """``("repo", "tag")`` for ``repo:tag`` (a port in the registry host is not a tag)."""
    if "@" in image:
        repository, _, digest = image.partition("@")
        return repository, digest
    head, sep, tail = image.rpartition(":")
    if sep and "/" not in tail:
        return head, tail
    return image, "latest"

