"""Prefect 1's ``prefect.engine.results``: where task results are checkpointed.

``LocalResult(dir=..., location=...)`` is a :class:`headwater.results.Result` on the local disk;
``PrefectResult`` keeps a small JSON value in the location string itself (nothing is written
anywhere); ``ConstantResult`` always holds one value; ``SecretResult`` reads a Secret.
``GCSResult`` and ``AzureResult`` are results on fsspec's gcsfs and adlfs (``pip install gcsfs`` /
``pip install adlfs``; the first read or write says so when it is missing). ``S3Result`` comes
from headwater-s3 (an ``ImportError`` says which distribution to install when it is missing).
"""

from __future__ import annotations

import json
import os
from typing import Any

import attrs

from headwater.results.cloud import AzureResult, GCSResult
from headwater.results.result import Result
from headwater.results.serializers import JSONSerializer, Serializer

__all__ = [
    "Result",
    "LocalResult",
    "PrefectResult",
    "ConstantResult",
    "SecretResult",
    "S3Result",  # noqa: F822 - resolved by __getattr__ from the plugin that provides it
    "GCSResult",
    "AzureResult",
]

_DEFAULT_NAME = os.path.join("{flow_name}", "{flow_run_id}", "{task_full_name}")


def LocalResult(  # noqa: N802 - Prefect 1's class name; a factory so the result serializes as a plain Result
    dir: str | os.PathLike[str] | None = None,  # noqa: A002 - Prefect 1's argument name
    validate_dir: bool = True,
    location: str | None = None,
    serializer: Serializer | None = None,
) -> Result:
    """A :class:`Result` in directory ``dir`` (default: ``$HEADWATER_HOME/results``).

    ``location`` is a template relative to ``dir`` (``"{task_name}-{today}.pkl"``), or absolute.
    ``validate_dir`` creates the directory now and fails early when it cannot be written.
    """
    if dir is None:
        from headwater.results.result import default_results_dir

        base = default_results_dir()
    else:
        base = os.path.abspath(os.path.expanduser(os.fspath(dir)))
    if validate_dir:
        try:
            os.makedirs(base, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"LocalResult: the directory {base!r} cannot be created ({exc}); pass a writable dir=.") from exc
        if not os.access(base, os.W_OK):
            raise ValueError(f"LocalResult: the directory {base!r} is not writable; pass a writable dir=.")
    if location is None:
        ext = getattr(serializer, "extension", "") if serializer is not None else ".pkl"
        template = os.path.join(base, _DEFAULT_NAME + (ext or ""))
    else:
        template = os.path.join(base, os.path.expanduser(location))
    return Result(location=template, serializer=serializer)


@attrs.define(slots=False)
class PrefectResult(Result):
    """Keeps the value itself, JSON-encoded, as the result's location: nothing is written to storage.

    For small JSON values (counts, ids, short lists): the location travels with the task's state.
    """

    serializer: Serializer = attrs.field(factory=JSONSerializer)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        _register(PrefectResult)

    def format(self, **kwargs: Any) -> str:
        return self.location or ""

    def write(self, value: Any, **kwargs: Any) -> Result:
        text = self.serializer.serialize(value).decode("utf-8")
        new = attrs.evolve(self, location=text)
        new.value = value
        return new

    def read(self, location: str) -> Result:
        new = attrs.evolve(self, location=location)
        new.value = self.serializer.deserialize(location.encode("utf-8"))
        return new

    def exists(self, location: str | None = None, **kwargs: Any) -> bool:
        """A PrefectResult exists as soon as it has a value (its location is the value)."""
        try:
            json.loads(location if location is not None else (self.location or ""))
        except ValueError:
            return False
        return True


@attrs.define(slots=False)
class ConstantResult(Result):
    """Always holds ``value`` (a constant input); writing changes nothing, reading returns it."""

    constant: Any = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        self.value = self.constant
        _register(ConstantResult)

    def format(self, **kwargs: Any) -> str:
        return self.location or "constant"

    def write(self, value: Any, **kwargs: Any) -> Result:
        raise ValueError("ConstantResult cannot be written: it always holds its constant value. Use another Result.")

    def read(self, location: str) -> Result:
        return self

    def exists(self, location: str | None = None, **kwargs: Any) -> bool:
        return True


@attrs.define(slots=False)
class SecretResult(Result):
    """Reads the Secret named by the location (``read("API_KEY")``); secrets cannot be written."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        _register(SecretResult)

    def format(self, **kwargs: Any) -> str:
        return self.location or ""

    def write(self, value: Any, **kwargs: Any) -> Result:
        raise ValueError("SecretResult is read-only: store secrets with the secrets backend, not as task results.")

    def read(self, location: str) -> Result:
        from headwater.secrets import Secret

        new = attrs.evolve(self, location=location)
        new.value = Secret(location).get()
        return new

    def exists(self, location: str | None = None, **kwargs: Any) -> bool:
        from headwater.secrets import Secret

        try:
            Secret(location or self.location or "").get()
        except Exception:
            return False
        return True


def _register(cls: type) -> None:
    """Give ``cls`` its Prefect-1 type tag, so flows using it register and round-trip."""
    from headwater.schedules.clocks import ensure_registered

    ensure_registered("result", cls)


for _cls in (PrefectResult, ConstantResult, SecretResult):
    _register(_cls)


def __getattr__(name: str) -> Any:
    """``S3Result``: from headwater-s3, or an ImportError naming the distribution."""
    if name == "S3Result":
        import headwater.results

        try:
            return getattr(headwater.results, name)
        except AttributeError:  # no plugin registers it, and none is known to
            raise ImportError(
                f"{name} is not provided by any installed headwater plugin: pip install headwater-s3 (or "
                "pip install s3fs and use Result(location='s3://bucket/path/{task_name}.pkl')).",
                name=__name__,
            ) from None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
