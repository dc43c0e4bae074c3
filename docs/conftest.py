"""Run the documentation's examples as tests (sybil).

Every ``docs/**/*.md`` page is collected by pytest. What runs:

* ```` ```python ```` blocks, in page order, sharing one namespace per page. A block is plain
  code, a doctest session (``>>> print(x)`` followed by the expected output), or code followed
  by a doctest session; expected output is compared with ``ELLIPSIS`` and
  ``NORMALIZE_WHITESPACE``.
* ```` ```console ```` blocks: each ``$ command`` line is run with the shell (the venv's
  ``bin`` first on ``PATH``) and its standard output must match the lines that follow it
  (``...`` matches anything). A non-zero exit status fails the example. Standard error (where
  headwater logs) is shown on failure but not compared.
* ``<!-- write-file: NAME -->`` directly before a fenced block (any language) writes the
  block to ``NAME`` in the page's working directory instead of running it, so a later
  console block can run it (``python NAME``) and later Python blocks can import it.
* ``<!-- skip: next -->`` skips the next example; ``<!-- skip: next if(condition, "reason") -->``
  skips it when ``condition`` is true; ``<!-- clear-namespace -->`` starts a fresh namespace.

```` ```bash ```` blocks (installation, ``make`` targets) are shown but never run.

Each page runs in its own temporary working directory, with ``HEADWATER_HOME`` pointing into
it and no ``HEADWATER__*`` variable inherited, on ``sys.path`` (modules imported from it are forgotten afterwards), and the in-process
task cache emptied, so examples may write files and configuration freely and pages cannot
affect each other.
"""

from __future__ import annotations

import doctest
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sybil import Document, Example, Region, Sybil
from sybil.evaluators.doctest import OutputChecker
from sybil.parsers.markdown import ClearNamespaceParser, CodeBlockParser, PythonCodeBlockParser, SkipParser
from sybil.region import Lexeme

__all__ = ["MixedPythonParser", "ConsoleParser", "WriteFileParser", "pytest_collect_file"]

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
CONSOLE_TIMEOUT = 120.0
_PROMPT = re.compile(r"^>>>( |$)", re.MULTILINE)
_WRITE_FILE = re.compile(
    r"^<!--\s*write-file:\s*(?P<name>\S+?)\s*-->[ \t]*\n"
    r"(?P<fence>`{3,}|~{3,})[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def _written_blocks(document: Document) -> list[tuple[int, int]]:
    """Spans of ``<!-- write-file -->`` directives with their blocks (not run as examples)."""
    return [(m.start(), m.end()) for m in _WRITE_FILE.finditer(document.text)]


def _inside(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(start <= position < end for start, end in spans)


class MixedPythonParser(PythonCodeBlockParser):
    """Python blocks that are code, a doctest session, or code followed by a doctest session.

    Sybil's own parser treats a block as a doctest only when it *starts* with ``>>>``; pages
    often set something up first and then show output, so the block is split at its first
    ``>>>`` line: the code before it is executed, the session after it is checked.
    """

    def __init__(self) -> None:
        super().__init__(doctest_optionflags=OPTIONFLAGS)

    def __call__(self, document: Document) -> Iterable[Region]:
        written = _written_blocks(document)
        for region in self.codeblock_parser(document):
            if _inside(region.start, written):
                continue
            source: Lexeme = region.parsed
            prompt = _PROMPT.search(source)
            if prompt is None:
                yield region
                continue
            cut = prompt.start()
            if cut:
                code = Lexeme(source[:cut], offset=source.offset, line_offset=source.line_offset)
                yield Region(region.start, region.start + source.offset + cut, code, region.evaluator)
            base = region.start + source.offset + cut
            for doctest_region in self.doctest_parser(source[cut:], document.path):
                doctest_region.start += base
                doctest_region.end += base
                yield doctest_region


class ConsoleEvaluator:
    """Runs the ``$ command`` lines of a console block and compares their standard output."""

    def __init__(self) -> None:
        self.checker = OutputChecker()

    def __call__(self, example: Example) -> str | None:
        failures = []
        for command, want in _console_steps(example.parsed):
            env = dict(os.environ)
            env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
            try:
                done = subprocess.run(
                    command, shell=True, cwd=os.getcwd(), env=env, capture_output=True, text=True,
                    timeout=CONSOLE_TIMEOUT,
                )
            except subprocess.TimeoutExpired:
                return f"$ {command}\ndid not finish within {CONSOLE_TIMEOUT:g} seconds."
            if done.returncode != 0:
                return (
                    f"$ {command}\nexited with status {done.returncode}.\n"
                    f"--- stdout ---\n{done.stdout}--- stderr ---\n{done.stderr}"
                )
            got = done.stdout
            if want.strip() == "...":
                continue
            if not self.checker.check_output(want, got, OPTIONFLAGS):
                failures.append(
                    f"$ {command}\nExpected:\n{_indent(want)}Got:\n{_indent(got)}--- stderr ---\n{done.stderr}"
                )
        return "\n".join(failures) or None


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in (text.splitlines() or ["<nothing>"]))


def _console_steps(source: str) -> list[tuple[str, str]]:
    """``[(command, expected_output)]`` from a console block; ``\\`` continues a command line."""
    steps: list[tuple[str, list[str]]] = []
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            steps.append((command, []))
        elif steps:
            steps[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"console block must start with a '$ ' command line, got {line!r}")
        i += 1
    return [(command, "".join(f"{line}\n" for line in output)) for command, output in steps]


class ConsoleParser(CodeBlockParser):
    """```` ```console ```` blocks: ``$ command`` lines and their expected standard output."""

    def __init__(self) -> None:
        super().__init__(language="console", evaluator=ConsoleEvaluator())

    def __call__(self, document: Document) -> Iterable[Region]:
        written = _written_blocks(document)
        for region in super().__call__(document):
            if not _inside(region.start, written):
                yield region


def _write_file(example: Example) -> None:
    name, body = example.parsed
    path = Path(name)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"write-file: {name!r} must be a relative path inside the page's working directory.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    importlib.invalidate_caches()  # so a module written now can be imported at once


class WriteFileParser:
    """``<!-- write-file: NAME -->`` followed by a fenced block: write the block to ``NAME``."""

    def __call__(self, document: Document) -> Iterable[Region]:
        for match in _WRITE_FILE.finditer(document.text):
            yield Region(match.start(), match.end(), (match.group("name"), match.group("body")), _write_file)


# --- one temporary working directory and HEADWATER_HOME per page --------------------------

_saved: list[tuple[str, dict[str, str], str, set[str]]] = []


def _setup_page(namespace: dict[str, Any]) -> None:
    from headwater.engine.cache import task_cache

    workdir = os.path.realpath(tempfile.mkdtemp(prefix="headwater-docs-"))
    home = Path(workdir, ".headwater")
    home.mkdir()
    _saved.append((os.getcwd(), dict(os.environ), workdir, set(sys.modules)))
    os.chdir(workdir)
    for name in [k for k in os.environ if k.startswith("HEADWATER__")]:
        del os.environ[name]  # a page's configuration is what the page writes, not what a test session set
    os.environ["HEADWATER_HOME"] = str(home)
    sys.path.insert(0, workdir)
    task_cache.clear()
    # Examples read like scripts: `if __name__ == "__main__":` runs, and functions defined on
    # a page are pickled by value when an executor sends them to another process.
    namespace["__name__"] = "__main__"


def _teardown_page(namespace: dict[str, Any]) -> None:
    from headwater.engine.cache import task_cache

    cwd, environ, workdir, modules = _saved.pop()
    os.chdir(cwd)
    # Pages may set HEADWATER__* variables in their examples: restore the whole environment.
    os.environ.clear()
    os.environ.update(environ)
    if workdir in sys.path:
        sys.path.remove(workdir)
    sys.path_importer_cache.pop(workdir, None)
    for name in set(sys.modules) - modules:
        if (getattr(sys.modules[name], "__file__", None) or "").startswith(workdir + os.sep):
            del sys.modules[name]
    task_cache.clear()
    shutil.rmtree(workdir, ignore_errors=True)


pytest_collect_file = Sybil(
    parsers=[MixedPythonParser(), ConsoleParser(), WriteFileParser(), SkipParser(), ClearNamespaceParser()],
    patterns=["*.md"],
    setup=_setup_page,
    teardown=_teardown_page,
).pytest()
