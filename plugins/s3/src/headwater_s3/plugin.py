"""The module the ``headwater`` entry point names: hook implementations only.

Import-light on purpose: headwater imports it whenever it starts, so classes are registered as
lazy ``"module:Class"`` strings and boto3 / s3fs are imported only when S3 is used.
"""

from __future__ import annotations

from typing import Any

from headwater.plugins import hookimpl

HEADWATER_PLUGIN_API = 1
"""The plugin API this plugin was written for."""

RESULT = "headwater_s3.results:S3Result"


@hookimpl
def register_storage(register: Any) -> None:
    """``S3``: the ``"type"`` tag of serialized S3 storage."""
    register("headwater_s3.storage:S3", "S3")


@hookimpl
def register_results(register: Any) -> None:
    """``S3Result``: also what ``from headwater.results import S3Result`` resolves."""
    register(RESULT, "S3Result")


@hookimpl
def register_task_types(register: Any) -> None:
    """Flow-spec task types running the task library: ``s3_download``, ``s3_upload``, ``s3_list``."""
    for name in ("s3_download", "s3_upload", "s3_list"):
        register(f"headwater_s3.tasks:{name}_task", name)


@hookimpl
def register_config_sections(register: Any) -> None:
    """The ``[s3]`` section (endpoint_url, region_name, credentials_secret, retries, multipart sizes)."""
    from headwater_s3.config import S3Section

    register(S3Section, "s3")
