"""headwater-github: ``GitHub`` (REST API) and ``Git`` (any git remote) storage.

Both run a flow from its repository at a resolved, logged commit, with the whole project
(the repository tree, or ``project_dir``) on ``sys.path`` and the flow file's directory as
the working directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["GitHub", "Git", "RepoStorageError", "__version__"]
__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from headwater_github.errors import RepoStorageError
    from headwater_github.git import Git
    from headwater_github.github import GitHub

_LAZY = {"GitHub": "headwater_github.github", "Git": "headwater_github.git", "RepoStorageError": "headwater_github.errors"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater_github' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
