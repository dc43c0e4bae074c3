"""The Docker task library in flows, on the real engine: a container pipeline, and build/tag/push/remove."""

from __future__ import annotations

from pathlib import Path

import pytest

from docker_helpers import Built, Engine
from headwater import Flow, Parameter


def _results(flow: Flow, state: object) -> dict[str, object]:
    return {t.name: s.result for t, s in state.result.items()}  # type: ignore[attr-defined]


def test_container_pipeline_pull_create_start_wait_logs_remove(built: Built, engine: Engine) -> None:
    from headwater.tasks.docker import (
        CreateContainer,
        GetContainerLogs,
        PullImage,
        RemoveContainer,
        StartContainer,
        WaitOnContainer,
    )

    repository, _, tag = built.storage.image.rpartition(":")
    with Flow("container-pipeline") as flow:
        script = Parameter("script", default="print('etl step done')")
        pulled = PullImage(repository=repository, tag=tag)()
        container = CreateContainer(image_name=built.storage.image, host_config={"network_mode": "none"},
                                    labels={"io.headwater.test": "docker"})(
            command=script, upstream_tasks=[pulled])
        started = StartContainer()(container_id=container)
        status = WaitOnContainer()(container_id=container, upstream_tasks=[started])
        logs = GetContainerLogs()(container_id=container, upstream_tasks=[status])
        RemoveContainer()(container_id=container, upstream_tasks=[logs])
    state = flow.run(parameters={"script": ["python3", "-c", "print('etl step done')"]})
    assert state.is_successful(), state
    results = _results(flow, state)
    waited = results["WaitOnContainer"]
    assert isinstance(waited, dict) and waited["StatusCode"] == 0
    assert results["GetContainerLogs"] == "etl step done\n"
    cid = results["CreateContainer"]
    assert isinstance(cid, str) and len(cid) == 64
    assert results["PullImage"] == engine.client().images.get(built.storage.image).id
    assert not engine.client().containers.list(all=True, filters={"id": cid})  # removed


def test_wait_on_container_fails_the_task_on_a_non_zero_exit(built: Built, engine: Engine) -> None:
    from headwater.tasks.docker import CreateContainer, StartContainer, WaitOnContainer

    with Flow("failing-container") as flow:
        container = CreateContainer(image_name=built.storage.image, host_config={"network_mode": "none"},
                                    command=["python3", "-c", "import sys; print('bad input'); sys.exit(4)"],
                                    labels={"io.headwater.test": "docker"})()
        started = StartContainer()(container_id=container)
        WaitOnContainer()(container_id=container, upstream_tasks=[started])
    state = flow.run()
    assert state.is_failed()
    wait_state = next(s for t, s in state.result.items() if t.name == "WaitOnContainer")
    assert "exited with status 4" in str(wait_state.message) and "bad input" in str(wait_state.message)
    cid = next(s.result for t, s in state.result.items() if t.name == "CreateContainer")
    engine.client().containers.get(cid).remove(force=True)


def test_build_tag_push_and_remove_image(engine: Engine, tmp_path: Path) -> None:
    from headwater.tasks.docker import BuildImage, PushImage, RemoveImage, TagImage

    (tmp_path / "Dockerfile").write_text("FROM localbase\nRUN echo built > /built.txt\n")
    target = f"{engine.registry}/tasks/built"
    with Flow("image-pipeline") as flow:
        image_id = BuildImage(path=str(tmp_path), tag="tasks-built:1", extra_docker_kwargs={"network_mode": "none"})()
        tagged = TagImage(repository=target, tag="1")(image=image_id)
        pushed = PushImage(repository=target, tag="1")(upstream_tasks=[tagged])
        RemoveImage(force=True)(image=f"{target}:1", upstream_tasks=[pushed])
    state = flow.run()
    assert state.is_successful(), state
    results = _results(flow, state)
    client = engine.client()
    assert results["BuildImage"] == client.images.get("tasks-built:1").id
    import urllib.request

    import docker

    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(f"{target}:1")
    with urllib.request.urlopen(f"http://{engine.registry}/v2/tasks/built/tags/list") as response:  # noqa: S310
        assert '"1"' in response.read().decode()
    client.images.remove("tasks-built:1", force=True)


def test_missing_arguments_and_engine_errors_name_the_task(engine: Engine) -> None:
    from headwater.tasks.docker import PullImage, StartContainer

    with pytest.raises(ValueError, match="PullImage: a repository must be given"):
        PullImage().run()
    from headwater import signals

    with pytest.raises(signals.FAIL, match="StartContainer: starting container no-such-container failed"):
        StartContainer(container_id="no-such-container").run()
