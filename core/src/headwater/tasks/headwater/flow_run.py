"""Flow of flows (Prefect 1's ``prefect.tasks.prefect.flow_run``): tasks that create, wait for and read other flow runs.

::

    from headwater import Flow, Parameter, task
    from headwater.tasks.headwater import create_flow_run, get_task_run_result, wait_for_flow_run

    with Flow("parent") as parent:
        child_id = create_flow_run(flow_name="child", project_name="etl", parameters={"size": 10})
        child = wait_for_flow_run(child_id, stream_logs=True, raise_final_state=True)
        data = get_task_run_result(child_id, "make_data", upstream_tasks=[child])

The child run is created through the orchestration API and run by an agent, like any run. Run
under the API (by an agent), a child run records its parent: ``parent_flow_run_id`` and the
parent's task run (slug and map index) on its flow run, so the API, ``headwater flow-run show`` and
the UI link parent and children; and its idempotency key defaults to the parent task run's
identity, so a retried or restarted parent task gets the child it already created instead of a
second one (Prefect 1 used the task run id the same way).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from headwater.backend._api import api_client, current_task_run
from headwater.backend.flow_run import FlowRunView, FlowView, watch_flow_run
from headwater.core.task import Task, task
from headwater.signals import HeadwaterSignal, signal_from_state
from headwater.utilities.context import context
from headwater.utilities.tasks import defaults_from_attrs

__all__ = ["create_flow_run", "wait_for_flow_run", "get_task_run_result", "StartFlowRun", "default_idempotency_key"]

_log = logging.getLogger("headwater.flow_of_flows")


def _logger() -> logging.Logger:
    found = context.get("logger")
    return found if isinstance(found, logging.Logger) else _log


def default_idempotency_key() -> str | None:
    """The current task run's identity under the API (``<flow run id>/<task slug>/<map index>``), else None.

    A child created with it is created once per parent task run: retries and restarts of that task
    run get the same child back.
    """
    where = current_task_run()
    if where is None or where[1] is None:
        return None
    flow_run_id, slug, index = where
    return f"flow-of-flows:{flow_run_id}/{slug}/{index}"


def _create(client: Any, flow_id: str, parameters: dict[str, Any] | None, context_: dict[str, Any] | None,
            labels: Iterable[str] | None, run_name: str | None, run_config: Any, scheduled_start_time: datetime | None,
            idempotency_key: str | None) -> str:
    where = current_task_run()
    parent: dict[str, Any] = {}
    if where is not None:
        parent = {"parent_flow_run_id": where[0], "parent_task_slug": where[1], "parent_map_index": where[2]}
    run = client.flow(id=flow_id).create_run(
        parameters=parameters, labels=labels, run_name=run_name, scheduled_start_time=scheduled_start_time,
        idempotency_key=idempotency_key, context=context_, run_config=run_config, **parent,
    )
    return str(run.id)


def _final_signal(state: Any) -> type[HeadwaterSignal]:
    """The signal that ends this task in the child's final state; FAIL for one no signal leads to (Cancelled)."""
    from headwater.signals import FAIL

    try:
        return signal_from_state(state)
    except ValueError:
        return FAIL


def _run_url(client: Any, flow_run_id: str) -> str:
    api = str(getattr(client, "api", "") or "")
    base = api[: -len("/graphql")] if api.endswith("/graphql") else api.rstrip("/")
    return f"{base}/ui/flow-runs/{flow_run_id}" if base else flow_run_id


@task
def create_flow_run(
    flow_id: str | None = None,
    flow_name: str | None = None,
    project_name: str = "",
    parameters: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    labels: Iterable[str] | None = None,
    run_name: str | None = None,
    run_config: Any = None,
    scheduled_start_time: datetime | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Create a flow run of a registered flow (by ``flow_id``, or ``flow_name`` [+ ``project_name``]); returns its id.

    ``labels`` and ``run_config`` replace the flow's for this run; ``run_name`` defaults to
    ``<this run's name>-<flow name>`` when this run has a name; ``idempotency_key`` defaults to this
    task run's identity under the API (see the module docstring).
    """
    if flow_id and flow_name:
        raise ValueError("Received both `flow_id` and `flow_name`. Only one flow identifier can be passed.")
    if not flow_id and not flow_name:
        raise ValueError("Both `flow_id` and `flow_name` are null. You must pass a flow identifier.")
    logger = _logger()
    client = api_client("create_flow_run")
    logger.debug("Looking up flow metadata...")
    flow = FlowView.from_id(flow_id, client=client) if flow_id else FlowView.from_flow_name(str(flow_name), project_name, client=client)
    if not run_name:
        from headwater.utilities.context import context as ctx

        current = ctx.get("flow_run_name")
        if current:
            run_name = f"{current}-{flow.name}"
    shown = run_name or "<generated-name>"
    logger.info("Creating flow run %r for flow %r...", shown, flow.name)
    key = idempotency_key if idempotency_key is not None else default_idempotency_key()
    flow_run_id = _create(client, flow.flow_id, parameters, context, labels, run_name, run_config, scheduled_start_time, key)
    logger.info("Created flow run %r: %s", shown, _run_url(client, flow_run_id))
    return flow_run_id


@task
def wait_for_flow_run(
    flow_run_id: str,
    stream_states: bool = True,
    stream_logs: bool = False,
    raise_final_state: bool = False,
    max_duration: timedelta = timedelta(hours=12),
) -> FlowRunView:
    """Wait for a flow run to finish, logging its state changes (and its logs with ``stream_logs``); returns its view.

    With ``raise_final_state`` this task ends in the child's final state (a Failed child fails it)
    through the matching signal, its result being the view.
    """
    flow_run = FlowRunView.from_flow_run_id(flow_run_id, client=api_client("wait_for_flow_run"))
    logger = _logger()
    for log in watch_flow_run(flow_run_id, stream_states=stream_states, stream_logs=stream_logs, max_duration=max_duration,
                              client=flow_run._client):
        logger.log(log.level, "Flow %r: %s", flow_run.name or flow_run.flow_name, log.message)
    flow_run = flow_run.get_latest()
    if raise_final_state:
        raise _final_signal(flow_run.state)(f"{flow_run_id} finished in state {flow_run.state}", result=flow_run)
    return flow_run


@task
def get_task_run_result(flow_run_id: str, task_slug: str, map_index: int = -1, poll_time: int = 5) -> Any:
    """Wait for flow run ``flow_run_id`` to finish, then load the result of its task run ``task_slug`` [``map_index``].

    The value is read from the location the child's state recorded, with the task's Result, so
    it must be checkpointed somewhere this process can read: ``result=`` on the task or its flow,
    or the default result a run the API executes writes to (``[flows] checkpointing``, on there).
    With the default ``map_index=-1`` on a mapped task, every child's result is loaded (a list).
    """
    from headwater.utilities.context import context as ctx

    if not task_slug:
        raise ValueError("Required argument `task_slug` is empty.")
    task_dsp = repr(task_slug) if map_index == -1 else f"'{task_slug}[{map_index}]'"
    if ctx.get("flow_run_id") == flow_run_id:
        raise ValueError("Given `flow_run_id` is the same as the currently running flow. The `get_task_run_result` task "
                         "cannot be used to retrieve results from the flow run it belongs to.")
    logger = _logger()
    flow_run = FlowRunView.from_flow_run_id(flow_run_id, client=api_client("get_task_run_result"))
    while not flow_run.state.is_finished():
        logger.debug("Waiting for flow run %s to finish before retrieving the result of task run %s...", flow_run_id, task_dsp)
        time.sleep(poll_time)
        flow_run = flow_run.get_latest()
    logger.debug("Retrieving task run metadata...")
    task_run = flow_run.get_task_run(task_slug=task_slug, map_index=map_index)
    logger.debug("Loading the result of task run %s...", task_dsp)
    return task_run.get_result()


class StartFlowRun(Task):
    """Legacy (Prefect 1): create a flow run of ``flow_name`` in ``project_name``; with ``wait=True`` end in its final state.

    Returns the new run's id; publishes a link artifact to it on this task run. With ``wait`` the
    task polls every ``poll_interval`` (at least 3 seconds) and raises the signal of the child's
    final state (``SUCCESS`` with the id, ``FAIL`` ...). Use :func:`create_flow_run` and
    :func:`wait_for_flow_run` in new flows.
    """

    def __init__(
        self,
        flow_name: str | None = None,
        project_name: str | None = None,
        parameters: dict[str, Any] | None = None,
        run_config: Any = None,
        wait: bool = False,
        new_flow_context: dict[str, Any] | None = None,
        run_name: str | None = None,
        scheduled_start_time: datetime | None = None,
        poll_interval: timedelta = timedelta(seconds=10),
        create_link_artifact: bool = True,
        **kwargs: Any,
    ) -> None:
        self.flow_name = flow_name
        self.project_name = project_name
        if parameters is not None:
            for value in parameters.values():
                if isinstance(value, Task):
                    raise TypeError(
                        "An instance of `Task` was passed to the `StartFlowRun` constructor via the `parameters` kwarg. "
                        "Pass such parameters when calling the task instead:\n\n"
                        "  start_flow_run = StartFlowRun(...)  # static (non-Task) args go here\n"
                        "  res = start_flow_run(parameters=...)  # dynamic (Task) args go here"
                    )
        self.parameters = parameters
        self.run_config = run_config
        self.new_flow_context = new_flow_context
        self.run_name = run_name
        self.wait = wait
        self.scheduled_start_time = scheduled_start_time
        if poll_interval.total_seconds() < 3:
            raise ValueError("`poll_interval` needs to be at least 3 seconds to avoid spamming the API "
                             f"(poll_interval == {poll_interval.total_seconds()} seconds).")
        self.poll_interval = poll_interval
        self.create_link_artifact = create_link_artifact
        if flow_name:
            kwargs.setdefault("name", f"Flow {flow_name}")
        super().__init__(**kwargs)

    @defaults_from_attrs("flow_name", "project_name", "parameters", "run_config", "new_flow_context", "run_name",
                         "scheduled_start_time")
    def run(
        self,
        flow_name: str | None = None,
        project_name: str | None = None,
        parameters: dict[str, Any] | None = None,
        run_config: Any = None,
        new_flow_context: dict[str, Any] | None = None,
        run_name: str | None = None,
        idempotency_key: str | None = None,
        scheduled_start_time: datetime | None = None,
    ) -> str:
        """Create the flow run; returns its id (or, with ``wait``, raises the signal of its final state)."""
        if flow_name is None:
            raise ValueError("Must provide a flow name.")
        if project_name is None:
            raise ValueError("Must provide a project name.")
        client = api_client("StartFlowRun")
        try:
            flow = FlowView.from_flow_name(flow_name, project_name, client=client)
        except ValueError:
            raise ValueError(f"Flow {flow_name!r} not found in project {project_name!r}.") from None
        key = idempotency_key if idempotency_key is not None else default_idempotency_key()
        flow_run_id = _create(client, flow.flow_id, parameters, new_flow_context, None, run_name, run_config,
                              scheduled_start_time, key)
        self.logger.debug("Flow Run %s created.", flow_run_id)
        url = _run_url(client, flow_run_id)
        if self.create_link_artifact:
            from headwater.backend.artifacts import create_link_artifact

            create_link_artifact(url, client=client)
        self.logger.info("Flow Run: %s", url)
        if not self.wait:
            return flow_run_id
        run = client.flow_run(id=flow_run_id)
        while True:
            time.sleep(self.poll_interval.total_seconds())
            state = run.state
            if state.is_finished():
                raise _final_signal(state)(f"{flow_run_id} finished in state {state}", result=flow_run_id)
