"""Prefect 1's ``prefect.tasks.core.resource_manager``: :mod:`headwater.core.resource_manager`'s names."""

from headwater.core.resource_manager import (
    ResourceCleanupTask,
    ResourceContext,
    ResourceManager,
    ResourceSetupTask,
    resource_cleanup_trigger,
    resource_manager,
)

__all__ = [
    "ResourceManager",
    "ResourceContext",
    "ResourceSetupTask",
    "ResourceCleanupTask",
    "resource_cleanup_trigger",
    "resource_manager",
]
