"""Install plugin distributions into a throw-away directory and run headwater against them.

Installing test plugins into the shared environment is fragile; instead build them into a
directory and put it on ``PYTHONPATH`` of a subprocess, where ``importlib.metadata`` sees
their entry points exactly as if they were installed::

    sites = install_distributions({"mine": Path("plugins/mine")}, tmp_path)
    done = run_headwater(["plugins", "--json"], sites["mine"])

Building is offline (``--no-index``) and without build isolation, so the build backend the
distributions name (setuptools) must be installed in this environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["install_distributions", "plugin_env", "run_headwater", "run_python", "BuildError"]

_IGNORE = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "*.pyc")


class BuildError(RuntimeError):
    """pip could not build a distribution (the message holds pip's output)."""


def install_distributions(sources: Mapping[str, Path | str], root: Path | str) -> dict[str, Path]:
    """Build each source tree once (one ``pip wheel`` call) and unpack it into ``root/<key>``.

    Returns ``{key: site_dir}``; put a site dir on ``PYTHONPATH`` to "install" that
    distribution. Sources are copied first, so the build leaves no ``build/`` or
    ``*.egg-info`` in them. Pure-Python distributions only (no scripts, no data files).
    """
    root = Path(root)
    copies = root / "_src"
    wheels = root / "_wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    order: list[tuple[str, Path]] = []
    for key, source in sources.items():
        copy = copies / key
        shutil.copytree(source, copy, ignore=_IGNORE, dirs_exist_ok=True)
        order.append((key, copy))
    command = [
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
        "--disable-pip-version-check", "--wheel-dir", str(wheels), *(str(path) for _, path in order),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(
            f"pip wheel failed for {', '.join(sources)} (exit {done.returncode}). Is the build backend "
            f"(setuptools>=70.1) installed in {sys.prefix}?\n{done.stdout}\n{done.stderr}"
        )
    sites: dict[str, Path] = {}
    for key, copy in order:
        wheel = _wheel_for(copy, wheels)
        site = root / key
        site.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
        sites[key] = site
    return sites


def _wheel_for(source: Path, wheels: Path) -> Path:
    import re
    import tomllib

    name = tomllib.loads((source / "pyproject.toml").read_text())["project"]["name"]
    normalized = re.sub(r"[-_.]+", "_", name).lower()
    found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(normalized + "-")]
    if len(found) != 1:
        raise BuildError(f"Expected one wheel for {name!r} in {wheels}, found {[w.name for w in found]}.")
    return found[0]


def plugin_env(sites: Iterable[Path | str] | Path | str = (), **overrides: str | None) -> dict[str, str]:
    """This process's environment with ``sites`` first on ``PYTHONPATH``; ``NAME=None`` removes a variable."""
    if isinstance(sites, (str, Path)):
        sites = [sites]
    env = dict(os.environ)
    for name in ("HEADWATER_PLUGINS", "HEADWATER_BLOCKED_PLUGINS", "HEADWATER_DISABLE_PLUGIN_AUTOLOAD"):
        env.pop(name, None)
    paths = [str(s) for s in sites]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_python(
    code: str, sites: Iterable[Path | str] | Path | str = (), *, cwd: Path | str | None = None, **env: str | None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` with ``sites`` on ``PYTHONPATH`` (and ``env`` changes); output captured."""
    return subprocess.run(
        [sys.executable, "-c", code], env=plugin_env(sites, **env), cwd=cwd, capture_output=True, text=True,
        check=False, timeout=300,
    )


def run_headwater(
    args: list[str], sites: Iterable[Path | str] | Path | str = (), *, cwd: Path | str | None = None, **env: str | None
) -> subprocess.CompletedProcess[str]:
    """Run the ``headwater`` command line in a subprocess with ``sites`` on ``PYTHONPATH``."""
    code = "import sys; from headwater.cli.main import main; main(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=plugin_env(sites, **env), cwd=cwd, capture_output=True, text=True,
        check=False, timeout=300,
    )
