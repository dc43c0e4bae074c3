"""GraphQL mutations; each runs in one write transaction (an error writes nothing)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from headwater_cloud_api.server.errors import BadInput
from headwater_cloud_api.server.schema.fast_inputs import fast_inputs
from headwater_cloud_api.server.schema.types import (
    AgentType,
    ArtifactType,
    CreateFlowResult,
    FlowRunType,
    KeyValueType,
    ProjectType,
    WriteResultType,
    db,
)
from headwater_cloud_api.server.services import flows as flow_service
from headwater_cloud_api.server.services import kv as kv_service
from headwater_cloud_api.server.services import projects as project_service
from headwater_cloud_api.server.services import runs as run_service
from headwater_cloud_api.server.validation import check_json_value

__all__ = ["Mutation", "FlowRef", "CreateFlowInput", "CreateFlowRunInput", "StateInput", "FlowRunStateInput", "TaskRunStateInput", "LogInput", "SetStatesResult", "RunBatchResult"]


@strawberry.input(description="A flow by id, or by name + project (its latest unarchived version).")
class FlowRef:
    id: str | None = None
    name: str | None = None
    project: str | None = None


@strawberry.input
class CreateFlowInput:
    serialized: JSON
    project_name: str | None = None
    project_id: str | None = None
    hash: str | None = None
    labels: list[str] = strawberry.field(default_factory=list)
    schedule_active: bool | None = None
    force: bool = False


@strawberry.input
class CreateFlowRunInput:
    flow_id: str | None = None
    flow_name: str | None = None
    project_name: str | None = None
    parameters: JSON | None = None
    context: JSON | None = None
    labels: list[str] | None = None
    run_name: str | None = None
    scheduled_start_time: datetime | None = None
    idempotency_key: str | None = None
    parent_flow_run_id: str | None = strawberry.field(default=None, description="Flow of flows: the flow run creating this one.")
    parent_task_slug: str | None = strawberry.field(default=None, description="With parent_flow_run_id: the creating task run's slug.")
    parent_map_index: int | None = None
    run_config: JSON | None = strawberry.field(default=None, description="A serialized run config replacing the flow's for this run.")


@strawberry.input
class StateInput:
    type: str
    message: str | None = None
    serialized: JSON | None = None


@strawberry.input
class FlowRunStateInput:
    flow_run_id: str
    state: StateInput
    version: int | None = None
    attempt: int | None = strawberry.field(default=None, description="The writer's attempt (fencing token): writes from a superseded attempt are refused.")
    write_id: str | None = strawberry.field(default=None, description="A client id for this write: a retried write is not applied twice.")


@strawberry.input
class TaskRunStateInput:
    flow_run_id: str
    state: StateInput
    task_slug: str | None = None
    map_index: int = -1
    task_run_id: str | None = None
    version: int | None = None
    attempt: int | None = None
    write_id: str | None = None


@strawberry.input
class LogInput:
    flow_run_id: str
    message: str
    level: str = "INFO"
    name: str | None = None
    task_run_id: str | None = None
    timestamp: datetime | None = None
    attempt: int | None = strawberry.field(default=None, description="The writer's attempt (fencing token): logs from a superseded attempt are refused.")


fast_inputs(StateInput, FlowRunStateInput, TaskRunStateInput, LogInput)  # batches of these are hot paths


def _flow(session: object, ref: FlowRef) -> object:
    """The flow version ``ref`` names; by name, the newest version even if archived (so archive-then-delete works)."""
    if ref.id is None and ref.name is not None and ref.project is not None:
        return flow_service.latest_flow(session, ref.name, ref.project, include_archived=True)  # type: ignore[arg-type]
    return flow_service.get_flow(session, id=ref.id, name=ref.name, project=ref.project)  # type: ignore[arg-type]


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise BadInput(f"'{name}' must include a time zone (e.g. 2024-01-01T00:00:00+00:00).")
    return value


def _serialized(value: object) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise BadInput("A state's 'serialized' must be a JSON object.")
    return check_json_value(value, "state.serialized")  # type: ignore[no-any-return]


@strawberry.type
class SetStatesResult:
    """The results of ``set_states``: select ``written`` and ``stale`` for a cheap answer, or every item's result."""

    _flows: strawberry.Private[list[run_service.WriteResult]]
    _tasks: strawberry.Private[list[run_service.WriteResult]]

    @strawberry.field(description="How many writes were accepted (the others are in 'stale').")
    def written(self) -> int:
        return sum(r.status == "SUCCESS" for r in (*self._flows, *self._tasks))

    @strawberry.field(description="The writes that were not written (a newer state exists): the runs' current version and state.")
    def stale(self) -> list[WriteResultType]:
        return [_result(r) for r in (*self._flows, *self._tasks) if r.status != "SUCCESS"]

    @strawberry.field(description="One result per flow-run write, in input order.")
    def flow_runs(self) -> list[WriteResultType]:
        return [_result(r) for r in self._flows]

    @strawberry.field(description="One result per task-run write, in input order (ids of new task runs included).")
    def task_runs(self) -> list[WriteResultType]:
        return [_result(r) for r in self._tasks]


@strawberry.type
class RunBatchResult:
    """The answer to ``write_run_batch``: how many state writes and log records were written, and the STALE writes."""

    written: int
    logs: int
    stale: list[WriteResultType]


def _flow_write(i: FlowRunStateInput) -> run_service.StateWrite:
    return run_service.StateWrite(i.flow_run_id, i.state.type, i.state.message, i.version, _serialized(i.state.serialized),
                                  i.attempt, i.write_id)


def _task_write(i: TaskRunStateInput) -> run_service.TaskStateWrite:
    return run_service.TaskStateWrite(
        i.flow_run_id, i.state.type, i.task_slug, i.map_index, i.task_run_id, i.state.message, i.version,
        _serialized(i.state.serialized), i.attempt, i.write_id,
    )


def _result(r: run_service.WriteResult) -> WriteResultType:
    return WriteResultType(id=r.id, status=r.status, version=r.version, state=r.state)


@strawberry.type
class Mutation:
    @strawberry.mutation
    def create_project(self, info: Info, name: str, description: str | None = None) -> ProjectType:
        with db(info).write() as s:
            return ProjectType.of(project_service.create_project(s, name, description))

    @strawberry.mutation
    def delete_project(self, info: Info, id: str | None = None, name: str | None = None) -> bool:
        with db(info).write() as s:
            return project_service.delete_project(s, id=id, name=name)

    @strawberry.mutation(description="Register a flow version; unchanged metadata (same hash) returns the existing flow with created=false.")
    def create_flow(self, info: Info, input: CreateFlowInput) -> CreateFlowResult:
        with db(info).write() as s:
            row, created = flow_service.create_flow(
                s, serialized=check_json_value(input.serialized, "input.serialized"), project_id=input.project_id, project_name=input.project_name, hash=input.hash,
                labels=input.labels, schedule_active=input.schedule_active, force=input.force,
            )
            return CreateFlowResult(id=row.id, version=row.version, created=created)

    @strawberry.mutation
    def archive_flow(self, info: Info, flow: FlowRef) -> bool:
        with db(info).write() as s:
            flow_service.archive_flow(s, _flow(s, flow))  # type: ignore[arg-type]
            return True

    @strawberry.mutation(description="Delete a flow: with all_versions (default) its whole version group and every run.")
    def delete_flow(self, info: Info, flow: FlowRef, all_versions: bool = True) -> bool:
        with db(info).write() as s:
            return flow_service.delete_flow(s, _flow(s, flow), all_versions)  # type: ignore[arg-type]

    @strawberry.mutation
    def set_schedule_active(self, info: Info, flow: FlowRef, active: bool) -> bool:
        with db(info).write() as s:
            return flow_service.set_schedule_active(s, _flow(s, flow), active)  # type: ignore[arg-type]

    @strawberry.mutation(description="Move a flow (all its versions) to another project; returns the project id.")
    def update_flow_project(self, info: Info, flow: FlowRef, project_name: str) -> str:
        with db(info).write() as s:
            return flow_service.move_flow(s, _flow(s, flow), project_name).id  # type: ignore[arg-type]

    @strawberry.mutation
    def create_flow_run(self, info: Info, input: CreateFlowRunInput) -> FlowRunType:
        with db(info).write() as s:
            row = run_service.create_flow_run(
                s, flow_id=input.flow_id, flow_name=input.flow_name, project_name=input.project_name,
                parameters=check_json_value(input.parameters, "input.parameters"),
                context=check_json_value(input.context, "input.context"), labels=input.labels, run_name=input.run_name,
                scheduled_start_time=_aware(input.scheduled_start_time, "scheduled_start_time"),
                idempotency_key=input.idempotency_key, parent_flow_run_id=input.parent_flow_run_id,
                parent_task_slug=input.parent_task_slug, parent_map_index=input.parent_map_index,
                run_config=check_json_value(input.run_config, "input.run_config"),
            )
            return FlowRunType.of(row)

    # --- run records: artifacts and run details (flow of flows: see create_flow_run's parent_*) ---------------------

    @strawberry.mutation(description="Create a task run artifact (kind 'link' or 'markdown') on a flow run; returns it.")
    def create_artifact(self, info: Info, flow_run_id: str, kind: str, text: str, task_slug: str | None = None,
                        map_index: int | None = None, attempt: int | None = None) -> ArtifactType:
        from headwater_cloud_api.server.services import artifacts as artifact_service

        with db(info).write() as s:
            return ArtifactType.of(artifact_service.create_artifact(s, flow_run_id, kind, text, task_slug, map_index,
                                                                    attempt))

    @strawberry.mutation(description="Replace the link or markdown of an artifact.")
    def update_artifact(self, info: Info, id: str, text: str, attempt: int | None = None) -> ArtifactType:
        from headwater_cloud_api.server.services import artifacts as artifact_service

        with db(info).write() as s:
            return ArtifactType.of(artifact_service.update_artifact(s, id, text, attempt))

    @strawberry.mutation
    def delete_artifact(self, info: Info, id: str, attempt: int | None = None) -> bool:
        from headwater_cloud_api.server.services import artifacts as artifact_service

        with db(info).write() as s:
            return artifact_service.delete_artifact(s, id, attempt)

    @strawberry.mutation(description="Record what the flow-run process resolved loading the flow (e.g. repo, ref, commit); "
                                     "a write from a superseded attempt is refused.")
    def set_flow_run_details(self, info: Info, flow_run_id: str, details: JSON, attempt: int | None = None) -> JSON:
        from headwater_cloud_api.server.services import artifacts as artifact_service

        with db(info).write() as s:
            return artifact_service.set_run_details(s, flow_run_id, details, attempt)

    @strawberry.mutation(description="Batched, version-checked flow-run state writes (STALE results were not written).")
    def set_flow_run_states(self, info: Info, states: list[FlowRunStateInput]) -> list[WriteResultType]:
        writes = [_flow_write(i) for i in states]
        with db(info).write() as s:
            return [WriteResultType(id=r.id, status=r.status, version=r.version, state=r.state) for r in run_service.set_flow_run_states(s, writes)]

    @strawberry.mutation(description="Batched, version-checked task-run state writes; a task run is created on its first write.")
    def set_task_run_states(self, info: Info, states: list[TaskRunStateInput]) -> list[WriteResultType]:
        writes = [_task_write(i) for i in states]
        with db(info).write() as s:
            return [WriteResultType(id=r.id, status=r.status, version=r.version, state=r.state) for r in run_service.set_task_run_states(s, writes)]

    @strawberry.mutation(
        description="Flow-run and task-run state writes in one transaction (flow runs first); STALE results were not written, "
        "an unknown id or state writes nothing."
    )
    def set_states(self, info: Info, flow_runs: list[FlowRunStateInput] | None = None,
                   task_runs: list[TaskRunStateInput] | None = None) -> SetStatesResult:
        flow_writes = [_flow_write(i) for i in flow_runs or ()]
        task_writes = [_task_write(i) for i in task_runs or ()]
        with db(info).write() as s:
            flows, tasks = run_service.set_states(s, flow_writes, task_writes)
        return SetStatesResult(_flows=flows, _tasks=tasks)

    # --- restart and resume (Prefect 1's restart from failed, Paused/Resume) -------------------------------

    @strawberry.mutation(description="Restart a finished flow run: it becomes Scheduled again as a new attempt (the state machine's "
                                     "only way out of a finished state). With from_failed (the default) the task runs that "
                                     "succeeded are kept and only the others (and what is downstream of them) run again; "
                                     "from_failed: false runs the whole flow again.")
    def restart_flow_run(self, info: Info, id: str, from_failed: bool = True) -> WriteResultType:
        with db(info).write() as s:
            return _result(run_service.restart_flow_run(s, id, from_failed=from_failed))

    @strawberry.mutation(description="Resume paused task runs of a flow run (all of them, or task_run_ids): each becomes Resume "
                                     "and a Paused flow run is scheduled again; its next attempt runs them (their trigger "
                                     "bypassed) and what follows, keeping the finished task runs.")
    def resume_flow_run(self, info: Info, id: str, task_run_ids: list[str] | None = None) -> WriteResultType:
        with db(info).write() as s:
            result, _ = run_service.resume_flow_run(s, id, task_run_ids)
            return _result(result)

    @strawberry.mutation(description="Resume one paused task run (see resume_flow_run); returns its flow run's write result.")
    def resume_task_run(self, info: Info, id: str) -> WriteResultType:
        from headwater_cloud_api.server.db.models import TaskRun
        from headwater_cloud_api.server.errors import NotFound

        with db(info).write() as s:
            row = s.get(TaskRun, id)
            if row is None:
                raise NotFound(f"Task run {id!r} does not exist; list a run's task runs with `headwater flow-run inspect ID`.")
            result, _ = run_service.resume_flow_run(s, row.flow_run_id, [id])
            return _result(result)

    # --- end of restart and resume ---------------------------------------------------------------------------

    @strawberry.mutation(description="Cancel a run: Scheduled -> Cancelled at once, running -> Cancelling, finished runs unchanged.")
    def cancel_flow_run(self, info: Info, id: str) -> WriteResultType:
        with db(info).write() as s:
            r = run_service.cancel_flow_run(s, id)
            return WriteResultType(id=r.id, status=r.status, version=r.version, state=r.state)

    @strawberry.mutation(description="Write many log records; returns how many were written (a superseded attempt's are refused).")
    def write_logs(self, info: Info, logs: list[LogInput]) -> int:
        records = [
            {"flow_run_id": lg.flow_run_id, "task_run_id": lg.task_run_id, "level": lg.level, "name": lg.name,
             "message": lg.message, "timestamp": _aware(lg.timestamp, "timestamp"), "attempt": lg.attempt}
            for lg in logs
        ]
        with db(info).write() as s:
            return run_service.write_logs(s, records)

    # --- the flow-run process's write path (issue 19): one JSON variable, checked in one pass -----------------------

    @strawberry.mutation(description=(
        "A flow-run process's batch in one transaction: `batch` is one JSON object {flow_run_id, attempt, states: "
        "[{task_slug, map_index, type, message, write_id, version?, task_run_id?, serialized?}], logs: [{level, name, "
        "message, timestamp, task_run_id?}]}. The same rules as set_task_run_states and write_logs (fencing by attempt, "
        "write_id, versions, the state machine), checked in one pass instead of per-field coercion. Answers counts and "
        "the STALE writes only."))
    def write_run_batch(self, info: Info, batch: JSON) -> RunBatchResult:
        from headwater_cloud_api.server.errors import MAX_BATCH
        from headwater_cloud_api.server.validation import check_run_batch

        checked = check_run_batch(batch, MAX_BATCH)
        with db(info).write() as s:
            results, logs = run_service.write_run_batch(s, checked)
        stale = [_result(r) for r in results if r.status != "SUCCESS"]
        return RunBatchResult(written=len(results) - len(stale), stale=stale, logs=logs)

    @strawberry.mutation
    def register_agent(self, info: Info, name: str, labels: list[str], type: str | None = None,
                       accepts_unlabeled: bool = True) -> AgentType:
        with db(info).write() as s:
            return AgentType.of(run_service.register_agent(s, name, labels, type, accepts_unlabeled))

    @strawberry.mutation(description="An agent or flow-run process is alive; returns the flow run's current state (Cancelling means stop).")
    def heartbeat(self, info: Info, agent_id: str | None = None, flow_run_id: str | None = None) -> str | None:
        if agent_id is None and flow_run_id is None:
            raise BadInput("heartbeat needs 'agent_id' or 'flow_run_id'.")
        with db(info).write() as s:
            return run_service.heartbeat(s, agent_id=agent_id, flow_run_id=flow_run_id)

    @strawberry.mutation
    def set_key_value(self, info: Info, key: str, value: JSON | None = strawberry.UNSET) -> KeyValueType:
        if value is strawberry.UNSET:
            raise BadInput("set_key_value needs 'value' (any JSON value; null stores null).")
        with db(info).write() as s:
            row = kv_service.set_key_value(s, key, check_json_value(value, "value"))
            return KeyValueType(key=row.key, value=row.value, updated=row.updated)

    @strawberry.mutation
    def delete_key(self, info: Info, key: str) -> bool:
        with db(info).write() as s:
            return kv_service.delete_key(s, key)
