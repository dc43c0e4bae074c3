"""``headwater auth login|logout|status``: keep this machine's API key in ``~/.headwater/config.toml``.

``auth login --key K`` (Prefect 1's ``prefect auth login --key``) checks the key against the API,
then stores it as ``[cloud] api_key`` in the configuration file of ``HEADWATER_HOME``; the
file is written atomically and is readable by its owner only (mode 0600), since it now holds a
secret. The rest of the file (other tables, comments) is kept as it is. ``HEADWATER__CLOUD__API_KEY``
still overrides the file, and ``auth status`` says which one is in use.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import click

__all__ = ["auth", "set_cloud_value", "remove_cloud_value", "config_file"]

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ENV_KEY = "HEADWATER__CLOUD__API_KEY"


def config_file() -> Path:
    """``$HEADWATER_HOME/config.toml`` (``~/.headwater/config.toml``)."""
    from headwater.plugins import headwater_home

    return Path(headwater_home()) / "config.toml"


def _toml_string(value: str) -> str:
    if any(ord(c) < 32 and c != "\t" for c in value) or "\x7f" in value:
        raise click.BadParameter("the value has control characters; an API key is printable text.")
    return json.dumps(value, ensure_ascii=False)


def _read(path: Path) -> tuple[list[str], dict[str, Any]]:
    if not path.exists():
        return [], {}
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise click.ClickException(f"{path} is not valid TOML ({exc}); fix or remove it, then log in again.") from None
    return text.splitlines(), data


def _cloud_block(lines: list[str]) -> tuple[int, int] | None:
    """``(header index, end index)`` of the ``[cloud]`` table, or None."""
    start = None
    for i, line in enumerate(lines):
        match = _HEADER.match(line)
        if not match:
            continue
        if start is not None:
            return start, i
        if match.group(1) == "cloud":
            start = i
    return (start, len(lines)) if start is not None else None


def _key_line(lines: list[str], start: int, end: int, key: str) -> int | None:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    return next((i for i in range(start + 1, end) if pattern.match(lines[i])), None)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600 from the first byte (the file holds a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _not_a_table_error(path: Path) -> click.ClickException:
    return click.ClickException(
        f"{path} sets `cloud` without a [cloud] table (dotted keys or an inline table); edit it by hand: "
        "put the cloud settings under a [cloud] header, then run this again."
    )


def set_cloud_value(path: Path, key: str, value: str) -> None:
    """Set ``[cloud] key = "value"`` in the TOML file at ``path``, keeping everything else; mode 0600."""
    lines, data = _read(path)
    block = _cloud_block(lines)
    entry = f"{key} = {_toml_string(value)}"
    if block is None:
        if "cloud" in data:
            raise _not_a_table_error(path)
        if lines and lines[-1].strip():
            lines.append("")
        lines += ["[cloud]", entry]
    else:
        start, end = block
        index = _key_line(lines, start, end, key)
        if index is None:
            lines.insert(start + 1, entry)
        else:
            lines[index] = entry
    text = "\n".join(lines) + "\n"
    check = tomllib.loads(text)
    if check.get("cloud", {}).get(key) != value:  # pragma: no cover - a guard against an unusual file layout
        raise _not_a_table_error(path)
    _write_private(path, text)


def remove_cloud_value(path: Path, key: str) -> bool:
    """Remove ``[cloud] key`` from the file at ``path``; True if it was there."""
    lines, data = _read(path)
    if key not in data.get("cloud", {}):
        return False
    block = _cloud_block(lines)
    if block is None:
        raise _not_a_table_error(path)
    index = _key_line(lines, *block, key)
    if index is None:
        raise _not_a_table_error(path)
    del lines[index]
    text = "\n".join(lines) + ("\n" if lines else "")
    if key in tomllib.loads(text).get("cloud", {}):  # pragma: no cover - a multi-line value: refuse to guess
        raise _not_a_table_error(path)
    _write_private(path, text)
    return True


def _masked(key: str) -> str:
    return f"{key[:3]}...{key[-4:]}" if len(key) > 10 else "***"


def _check_key(api: str, key: str) -> None:
    """A read request with ``key``; a ClickException saying why when the API refuses it or cannot be reached."""
    from headwater import Client
    from headwater_cloud_api.client.transport import APIClientError

    try:
        with Client(api=api, api_key=key) as client:
            client.graphql("{ projects(limit: 1) { name } }")
    except APIClientError as exc:
        raise click.ClickException(
            f"The API at {api} did not accept the key: {exc}. Nothing was stored. Check the key (`headwater server "
            "api-key create NAME` makes one), or pass --no-check to store it anyway."
        ) from None


@click.group()
def auth() -> None:
    """Log this machine in to the orchestration API (store an API key), log out, show the status."""


@auth.command()
@click.option("--key", "-k", required=True, help="The API key (`headwater server api-key create NAME` prints one).")
@click.option("--api", default=None, help="Also store this API address as [cloud] api (default: keep the configured one).")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Check the key against the API before storing it.")
def login(key: str, api: str | None, check: bool) -> None:
    """Store KEY as [cloud] api_key in config.toml (mode 0600), after checking it against the API."""
    from headwater.plugins import get_config

    key = key.strip()
    if not key:
        raise click.BadParameter("the key is empty.", param_hint="--key")
    address = api or get_config().cloud.api
    if check:
        _check_key(address, key)
    path = config_file()
    if api:
        set_cloud_value(path, "api", api)
    set_cloud_value(path, "api_key", key)
    click.echo(f"Logged in to {address}: the key {_masked(key)} is stored in {path} (readable by you only).")
    if os.environ.get(_ENV_KEY):
        click.echo(f"Note: {_ENV_KEY} is set in this environment and overrides the stored key.", err=True)


@auth.command()
def logout() -> None:
    """Remove [cloud] api_key from config.toml."""
    path = config_file()
    if remove_cloud_value(path, "api_key"):
        click.echo(f"Logged out: the API key was removed from {path}.")
    else:
        click.echo(f"No API key is stored in {path}; nothing to do.")
    if os.environ.get(_ENV_KEY):
        click.echo(f"Note: {_ENV_KEY} is still set in this environment; unset it too.", err=True)


@auth.command()
@click.option("--check/--no-check", default=False, help="Also send a request with the key to see whether the API accepts it.")
def status(check: bool) -> None:
    """Which API this machine talks to, whether a key is set and where it comes from."""
    from headwater.plugins import get_config

    config = get_config(reload=True)
    cloud = config.cloud
    key = cloud.api_key
    click.echo(f"API: {cloud.api} ({config.source('cloud.api').describe()})")
    if not key:
        click.echo("API key: not set (log in with `headwater auth login --key KEY`).")
    else:
        click.echo(f"API key: {_masked(str(key))} ({config.source('cloud.api_key').describe()})")
    path = config_file()
    if path.exists():
        mode = path.stat().st_mode & 0o777
        note = "" if mode & 0o077 == 0 else " -- readable by others: chmod 600 it"
        click.echo(f"Config file: {path} (mode {mode:o}{note})")
    if check:
        if not key:
            raise click.ClickException("No API key to check.")
        _check_key(cloud.api, str(key))
        click.echo("The API accepts the key.")
    sys.stdout.flush()
