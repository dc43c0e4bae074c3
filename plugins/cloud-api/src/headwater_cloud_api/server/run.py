"""Running the server: ``serve(...)`` (blocking, for ``headwater server start``) and ``ServerThread`` (in-process, for tests and docs)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from headwater_cloud_api.server.app import create_app

__all__ = ["serve", "ServerThread"]


def serve(host: str = "127.0.0.1", port: int = 4200, log_level: str = "info", **app_options: Any) -> None:
    """Serve the API with uvicorn until interrupted."""
    app_options.setdefault("bind_host", host)
    uvicorn.run(create_app(**app_options), host=host, port=port, log_level=log_level, access_log=False)


class ServerThread:
    """The server in a background thread on ``host`` and a free port: ``with ServerThread(database_url=...) as srv: srv.api``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **app_options: Any) -> None:
        app_options.setdefault("bind_host", host)
        self.app = create_app(**app_options)
        self.config = uvicorn.Config(self.app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(self.config)
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
        self.server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
