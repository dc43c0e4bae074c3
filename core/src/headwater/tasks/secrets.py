"""``SecretTask``: a task whose result is a secret's value, for the tasks downstream of it.

Its result is never checkpointed (``checkpoint`` is always False) and the task holds only the
secret's name, so neither a Result, nor the flow's serialized metadata, nor a pickled copy of
the task carries the value.
"""

from __future__ import annotations

from typing import Any

from headwater.core.task import Task
from headwater.secrets import Secret

__all__ = ["SecretTask"]


class SecretTask(Task):
    """Resolve the secret ``name`` at run time with :class:`headwater.secrets.Secret` (env, config file, plugins).

    ``SecretTask("GITHUB_TOKEN")`` inside a flow; the task is named after the secret. ``run``
    also takes ``name`` so the secret can be chosen by an upstream task or a Parameter.
    """

    #: Serializers and result handlers may check this: the result of this task is a secret value.
    secret_result = True

    def __init__(self, name: str, **task_kwargs: Any) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"SecretTask needs the secret's name as a non-empty string, got {name!r}.")
        if task_kwargs.get("checkpoint"):
            raise ValueError(
                f"SecretTask {name!r}: checkpoint=True would write the secret's value to a Result; "
                "secret tasks are never checkpointed. Drop the checkpoint argument."
            )
        task_kwargs.pop("checkpoint", None)
        self.secret_name = name
        super().__init__(name=name, **task_kwargs)

    @property
    def checkpoint(self) -> bool:
        """Always False: a secret's value is never written to a Result."""
        return False

    @checkpoint.setter
    def checkpoint(self, value: bool | None) -> None:
        if value:
            raise ValueError(
                f"SecretTask {self.secret_name!r}: checkpoint=True would write the secret's value to a Result; "
                "secret tasks are never checkpointed."
            )

    def run(self, name: str | None = None) -> Any:
        """The value of the secret ``name`` (default: the one given to the constructor)."""
        return Secret(name or self.secret_name).get()

    def __repr__(self) -> str:
        return f"<SecretTask: {self.secret_name}>"
