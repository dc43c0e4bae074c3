"""Helpers for the tests that install wheels into a fresh virtual environment.

The venv is created without pip (``ensurepip`` costs seconds per venv) and this environment's pip
installs into it (``pip --python``); ``--no-compile`` skips byte-compiling every installed module
(seconds more for big distributions such as ``kubernetes``; Python compiles what it imports). What
ends up in the venv's site-packages is otherwise the same: the distributions, their entry points and
console scripts, resolved against the given wheels and constraints.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

__all__ = ["fresh_venv", "pip_install"]


def fresh_venv(env_dir: Path) -> Path:
    """A new, empty venv at ``env_dir`` (no pip in it); returns its python."""
    venv.EnvBuilder(with_pip=False, clear=True).create(env_dir)
    return env_dir / "bin" / "python"


def pip_install(python: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``pip install --quiet --no-compile ARGS`` into the venv of ``python``, run by this environment's pip."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-compile",
         "--disable-pip-version-check", *args],
        capture_output=True, text=True, check=False, timeout=timeout,
    )
