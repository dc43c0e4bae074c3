"""Parameters: named inputs of a flow run, given to ``flow.run(parameters={...})`` or by a schedule."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from headwater.core.task import Task
from headwater.utilities.context import context

__all__ = ["Parameter", "DateTimeParameter", "JSONParameter", "NO_DEFAULT"]


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

    def __call__(self, *args: Any, **kwargs: Any) -> Task:
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


class DateTimeParameter(Parameter):
    """A parameter whose value is a datetime: ISO-8601 strings (from the CLI, the API, a schedule) are parsed.

    As Prefect 1's: ``None`` stays None (for ``required=False``); a datetime (stdlib or pendulum) is kept;
    a string or date without an offset is read as UTC (``pendulum.parse``'s default).
    """

    def __init__(self, name: str, default: Any = NO_DEFAULT, required: bool | None = None, tags: Any = None) -> None:
        super().__init__(name, default=default, required=required, tags=tags)

    def run(self) -> Any:
        value = super().run()
        if value is None or isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
            except ValueError:
                raise ValueError(
                    f"Parameter {self.name!r} needs an ISO-8601 datetime such as '2024-01-31T09:30:00+00:00', "
                    f"got {value!r}."
                ) from None
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)  # as pendulum.parse: UTC
        raise TypeError(f"Parameter {self.name!r} needs a datetime or an ISO-8601 string, got {value!r}.")

    def __repr__(self) -> str:
        return f"<DateTimeParameter: {self.name}>"


class JSONParameter(Parameter):
    """A parameter given as JSON text and received decoded (a string value is ``json.loads``-ed)."""

    def run(self) -> Any:
        value = super().run()
        if isinstance(value, (str, bytes, bytearray)):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError(f"Parameter {self.name!r} needs a JSON document, got {value!r}: {exc}.") from None
        return value

    def __repr__(self) -> str:
        return f"<JSONParameter: {self.name}>"
