"""Running the server: ``serve(...)`` (blocking, for ``headwater server start``) and ``ServerThread`` (in-process, for tests and docs)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from headwater_cloud_api.server.app import create_app

__all__ = ["serve", "ServerThread", "GRACEFUL_SHUTDOWN"]

GRACEFUL_SHUTDOWN = 5
"""Seconds a stopping server waits for requests still running (they stop at their next field meanwhile)."""


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app the moment a shutdown starts (SIGTERM, SIGINT, ``should_exit``)."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        _stopping(self.config.app)
        super().handle_exit(sig, frame)


def _stopping(app: Any) -> None:
    stopping = getattr(getattr(app, "state", None), "stopping", None)
    if stopping is not None:
        stopping.set()


def serve(host: str = "127.0.0.1", port: int = 4200, log_level: str = "info", **app_options: Any) -> None:
    """Serve the API with uvicorn until interrupted (SIGTERM stops it within :data:`GRACEFUL_SHUTDOWN` s)."""
    app_options.setdefault("bind_host", host)
    config = uvicorn.Config(create_app(**app_options), host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN)
    _Server(config).run()


class ServerThread:
    """The server in a background thread on ``host`` and a free port: ``with ServerThread(database_url=...) as srv: srv.api``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **app_options: Any) -> None:
        app_options.setdefault("bind_host", host)
        self.app = create_app(**app_options)
        self.config = uvicorn.Config(self.app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                                     timeout_graceful_shutdown=GRACEFUL_SHUTDOWN)
        self.server = _Server(self.config)
        self._thread = threading.Thread(target=self.server.run, name="headwater-server", daemon=True)
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api(self) -> str:
        """The GraphQL endpoint, e.g. ``http://127.0.0.1:54321/graphql``."""
        return f"{self.url}/graphql"

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("The headwater server thread exited during startup; see the log above.")
            if time.monotonic() > deadline:
                raise TimeoutError(f"The headwater server did not start within {timeout} s.")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        _stopping(self.app)
        self.server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
