"""Helpers of the headwater-github tests: real git repositories, a GitHub-REST server serving them,
``git daemon`` and smart HTTP (``git http-backend``) on 127.0.0.1, and server/agent processes."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from headwater.testing import processes
from headwater.testing.processes import PYTHON, free_port, stop_process, wait_for

__all__ = ["PYTHON", "free_port", "stop_process", "wait_for", "git", "Repo", "FakeGitHub", "GitDaemon", "SmartHTTP",
           "ServerProcess", "AgentProcess"]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.org", "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.org", "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
}


def git(*args: str, cwd: Path | str | None = None) -> str:
    """Run the git CLI (failing the test with its output when it fails)."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_ENV}, check=False)
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout.strip()


class Repo:
    """A bare ``origin`` repository and a working clone that commits and pushes to it (branch ``main``)."""

    def __init__(self, root: Path, name: str = "etl") -> None:
        self.name = name
        self.origin = root / f"{name}.git"
        self.work = root / f"{name}-work"
        git("init", "-q", "--bare", "-b", "main", str(self.origin))
        git("init", "-q", "-b", "main", str(self.work))
        git("remote", "add", "origin", str(self.origin), cwd=self.work)

    def write(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            target = self.work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def commit(self, files: dict[str, str] | None = None, message: str = "change", branch: str = "main",
               delete: tuple[str, ...] = ()) -> str:
        """Write ``files``, commit them on ``branch`` and push; returns the new commit's SHA."""
        git("fetch", "-q", "origin", cwd=self.work)  # others (a checkout) may have pushed meanwhile
        if subprocess.run(["git", "rev-parse", "-q", "--verify", f"origin/{branch}"], cwd=self.work,
                          capture_output=True).returncode == 0:
            git("merge", "-q", "--ff-only", f"origin/{branch}", cwd=self.work)
        if files:
            self.write(files)
        for rel in delete:
            git("rm", "-q", rel, cwd=self.work)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.work)
        git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def checkout(self, branch: str) -> None:
        git("checkout", "-q", "-B", branch, cwd=self.work)

    def tag(self, name: str) -> str:
        git("tag", "-a", name, "-m", name, cwd=self.work)
        git("push", "-q", "origin", f"refs/tags/{name}", cwd=self.work)
        return git("rev-parse", f"{name}^{{commit}}", cwd=self.work)

    def clone(self, dest: Path) -> Path:
        git("clone", "-q", str(self.origin), str(dest))
        return dest


# --- a GitHub REST API server serving real repositories --------------------------------------------


class FakeGitHub:
    """The GitHub REST endpoints headwater uses, answered from real bare repositories on 127.0.0.1.

    ``repos`` maps ``owner/name`` to a bare repository. With ``token`` set every API request must
    carry ``Authorization: Bearer <token>`` (or ``token <token>``), else 401. ``fail(...)``
    queues error answers (401, 403 with rate-limit headers, 404, 500) for matching paths;
    ``corrupt_tarballs`` serves cut-short or garbage archives. ``requests`` records every request.
    """

    prefix = "/api/v3"

    def __init__(self, repos: dict[str, Path], token: str | None = None) -> None:
        self.repos = dict(repos)
        self.token = token
        self.requests: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.corrupt_tarballs: list[str] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def __enter__(self) -> FakeGitHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, status: int, match: str = "", times: int = 1, headers: dict[str, str] | None = None,
             message: str = "") -> None:
        self.failures.append({"status": status, "match": match, "times": times, "headers": headers or {},
                              "message": message or {401: "Bad credentials", 404: "Not Found"}.get(status, "error")})

    def rate_limit(self, reset: int, match: str = "", times: int = 1) -> None:
        self.fail(403, match, times, {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0",
                                      "X-RateLimit-Reset": str(reset)}, "API rate limit exceeded for 127.0.0.1.")

    def count(self, part: str) -> int:
        with self._lock:
            return sum(part in r["path"] for r in self.requests)

    # --- serving -------------------------------------------------------------------------

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes | dict[str, Any] | list[Any],
              headers: dict[str, str] | None = None, content_type: str = "application/json; charset=utf-8",
              truncate: bool = False) -> None:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        if truncate:
            h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data[: len(data) // 3] if truncate else data)
        if truncate:
            h.wfile.flush()
            h.close_connection = True

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        with self._lock:
            self.requests.append({"path": path, "query": query, "headers": dict(h.headers)})
        if path.startswith("/_codeload/"):  # the redirect target of tarball requests (codeload.github.com)
            return self._codeload(h, path)
        if not path.startswith(self.prefix + "/repos/"):
            self.problems.append(f"unexpected path {path}")
            return self._send(h, 404, {"message": "Not Found"})
        if "vnd.github" not in h.headers.get("Accept", ""):
            self.problems.append(f"no GitHub Accept header on {path}")
        with self._lock:
            for failure in self.failures:
                if failure["times"] > 0 and failure["match"] in path:
                    failure["times"] -= 1
                    return self._send(h, failure["status"], {"message": failure["message"]}, failure["headers"])
        if self.token is not None:
            auth = h.headers.get("Authorization", "")
            if auth not in (f"Bearer {self.token}", f"token {self.token}"):
                return self._send(h, 401, {"message": "Bad credentials"})
        rest = path[len(self.prefix + "/repos/"):].split("/", 3)
        repo_name = "/".join(rest[:2])
        bare = self.repos.get(repo_name)
        if bare is None or len(rest) < 2:
            return self._send(h, 404, {"message": "Not Found"})
        if len(rest) == 2:
            head = git("symbolic-ref", "--short", "HEAD", cwd=bare)
            return self._send(h, 200, {"full_name": repo_name, "default_branch": head, "private": self.token is not None})
        kind, arg = rest[2], rest[3] if len(rest) > 3 else ""
        if kind == "commits":
            sha = self._rev(bare, arg)
            if sha is None:
                return self._send(h, 422, {"message": f"No commit found for SHA: {arg}"})
            return self._send(h, 200, {"sha": sha, "commit": {"message": git("log", "-1", "--format=%s", sha, cwd=bare)}})
        if kind == "contents":
            ref = (query.get("ref") or ["HEAD"])[0]
            if "ref" not in query:
                self.problems.append(f"contents request without ref: {path}")
            sha = self._rev(bare, ref)
            if sha is None:
                return self._send(h, 404, {"message": f"No commit found for the ref {ref}"})
            kind_of = subprocess.run(["git", "cat-file", "-t", f"{sha}:{arg}"], cwd=bare, capture_output=True, text=True)
            if kind_of.returncode != 0:
                return self._send(h, 404, {"message": "Not Found"})
            if kind_of.stdout.strip() == "tree":
                names = git("ls-tree", "--name-only", f"{sha}:{arg}", cwd=bare).splitlines()
                return self._send(h, 200, [{"name": n, "path": f"{arg}/{n}", "type": "file"} for n in names])
            blob = subprocess.run(["git", "cat-file", "blob", f"{sha}:{arg}"], cwd=bare, capture_output=True).stdout
            if "raw" in h.headers.get("Accept", ""):
                return self._send(h, 200, blob, content_type="application/vnd.github.raw")
            if len(blob) > 1024 * 1024:  # like GitHub: files over 1 MB only through the raw media type
                return self._send(h, 200, {"type": "file", "name": arg.rsplit("/", 1)[-1], "path": arg, "size": len(blob),
                                           "encoding": "none", "content": ""})
            return self._send(h, 200, {"type": "file", "name": arg.rsplit("/", 1)[-1], "path": arg, "size": len(blob),
                                       "encoding": "base64", "content": base64.encodebytes(blob).decode()})
        if kind == "tarball":
            sha = self._rev(bare, arg or "HEAD")
            if sha is None:
                return self._send(h, 404, {"message": "Not Found"})
            location = f"http://127.0.0.1:{self.port}/_codeload/{repo_name}/legacy.tar.gz/{sha}"
            return self._send(h, 302, b"", {"Location": location}, content_type="text/html")
        self.problems.append(f"unexpected endpoint {path}")
        return self._send(h, 404, {"message": "Not Found"})

    def _rev(self, bare: Path, ref: str) -> str | None:
        done = subprocess.run(["git", "rev-parse", "--verify", "-q", f"{ref}^{{commit}}"], cwd=bare, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    def _codeload(self, h: BaseHTTPRequestHandler, path: str) -> None:
        _, _, owner, name, _, sha = path.split("/", 5)
        bare = self.repos.get(f"{owner}/{name}")
        if bare is None:
            return self._send(h, 404, b"Not Found", content_type="text/plain")
        archive = subprocess.run(["git", "archive", "--format=tar.gz", f"--prefix={owner}-{name}-{sha[:7]}/", sha],
                                 cwd=bare, capture_output=True).stdout
        with self._lock:
            mode = self.corrupt_tarballs.pop(0) if self.corrupt_tarballs else None
        if mode == "garbage":
            return self._send(h, 200, os.urandom(2048), content_type="application/x-gzip")
        return self._send(h, 200, archive, content_type="application/x-gzip", truncate=mode == "truncate")


# --- git servers -----------------------------------------------------------------------------------


class GitDaemon:
    """``git daemon`` serving every repository under ``base`` over git:// on 127.0.0.1."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> GitDaemon:
        self.process = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={self.port}", f"--base-path={self.base}",
             "--export-all", "--informative-errors", str(self.base)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(up, 15, 0.05, "git daemon")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class SmartHTTP:
    """Git's smart HTTP protocol (``git http-backend`` as CGI behind a WSGI server) on 127.0.0.1.

    With ``token``, requests need ``Authorization: Basic base64(<user>:<token>)``.
    """

    def __init__(self, base: Path, token: str | None = None) -> None:
        self.base = base
        self.token = token
        self.auth_seen: list[str] = []
        self.server = make_server("127.0.0.1", 0, self._app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> SmartHTTP:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        self.auth_seen.append(auth)
        if self.token is not None:
            ok = False
            if auth.startswith("Basic "):
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                ok = self.token in (user, password)
            if not ok:
                start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Length", "0")])
                return iter([b""])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": str(self.base), "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": environ.get("PATH_INFO", ""), "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "REQUEST_METHOD": environ["REQUEST_METHOD"], "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1", "GIT_PROTOCOL": environ.get("HTTP_GIT_PROTOCOL", ""),
            "HTTP_CONTENT_ENCODING": environ.get("HTTP_CONTENT_ENCODING", ""),
        }
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status, headers = "200 OK", []
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = value.strip()
            elif key:
                headers.append((key, value.strip()))
        headers.append(("Content-Length", str(len(payload))))
        start_response(status, headers)
        return iter([payload])


# --- server and agent processes --------------------------------------------------------------------


class ServerProcess(processes.ServerProcess):
    """``headwater server start`` on SQLite in ``workdir``, started at once, with exactly ``env`` as its environment."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        super().__init__(f"sqlite:///{workdir / 'api.db'}", workdir, env=env, inherit_env=False, log_name="server.log")
        self.start()


class AgentProcess(processes.AgentProcess):
    """``headwater agent start --name staging --label ...`` with exactly ``env`` (which names the API)."""

    def __init__(self, workdir: Path, env: dict[str, str], labels: tuple[str, ...]) -> None:
        super().__init__(env["HEADWATER__CLOUD__API"], workdir, labels, "staging", cancel_grace_period=None, env=env,
                         inherit_env=False, log_name="agent.log")
