"""Parameters: named inputs of a flow run, given to ``flow.run(parameters={...})`` or by a schedule."""

from __future__ import annotations

from typing import Any

from headwater.core.task import Task
from headwater.utilities.context import context

__all__ = ["Parameter", "NO_DEFAULT"]


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()


class Parameter(Task):
    """A flow input. Required when it has no ``default`` (unless ``required=False``, which defaults it to None)."""

    def __init__(self, name: str, default: Any = NO_DEFAULT, required: bool | None = None, tags: Any = None) -> None:
        if required is None:
            required = default is NO_DEFAULT
        self.default = None if default is NO_DEFAULT else default
        self.required = required
        super().__init__(name=name, slug=name, tags=tags, checkpoint=False)

    def copy(self, **task_args: Any) -> Task:
        raise TypeError(
            f"Parameter {self.name!r} cannot be copied: a flow has one parameter of a name. "
            "Pass it to tasks instead of calling it."
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Task:  # type: ignore[override]
        from headwater.core.flow import Flow

        flow = kwargs.pop("flow", None) or Flow._active()
        if args or kwargs or flow is None:
            raise TypeError(f"Parameter {self.name!r} takes no arguments; use it directly as a task input.")
        flow.add_task(self)
        return self

    def run(self) -> Any:
        parameters = context.get("parameters") or {}
        if self.name in parameters:
            return parameters[self.name]
        if self.required:
            raise ValueError(f"Parameter {self.name!r} is required but no value was given.")
        return self.default

    def __repr__(self) -> str:
        return f"<Parameter: {self.name}>"
