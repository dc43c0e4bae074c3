"""Helpers of the headwater-s3 tests: moto S3 servers on 127.0.0.1, dummy credentials, boto3 clients."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx

from headwater.testing.processes import PYTHON, free_port, wait_for

__all__ = ["PYTHON", "free_port", "wait_for", "DUMMY_AWS", "MotoProcess", "CuttableProxy"]
REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "plugins" / "s3"
CORE = REPO / "core"

DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
"""Dummy credentials for every test process: botocore finds these first and never probes a metadata address."""


def boto3_client(endpoint: str, **kwargs: Any) -> Any:
    """A plain boto3 S3 client for checking what is in the buckets."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **kwargs)


def keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", ()))


def set_auth(endpoint: str, enabled: bool) -> None:
    """Switch moto's IAM authentication on (every request must carry a known access key) or off."""
    value = "0" if enabled else "inf"
    response = httpx.post(f"{endpoint}/moto-api/reset-auth", content=value.encode(), timeout=10)
    response.raise_for_status()


def reset(endpoint: str) -> None:
    """Empty every bucket of the moto server (``/moto-api/reset``)."""
    httpx.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()


class MotoProcess:
    """moto's S3 server as an OS process (so a test can kill it)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = workdir / f"moto-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoProcess:
        code = "import sys; from moto.server import main; main(sys.argv[1:])"
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [PYTHON, "-c", code, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **DUMMY_AWS},
            )

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            try:
                return httpx.get(f"{self.endpoint}/moto-api/data.json", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, 0.1, "moto's server to answer")
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(15)
        self.process = None


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of an S3 server that can be cut like a dying server.

    ``cut_after`` bytes sent upstream, every connection is reset and the port stops accepting:
    from the client's side the server died mid-request, while the server behind it (and what it
    stored) stays there to be inspected.
    """

    def __init__(self, upstream_port: int, cut_after: int | None = None) -> None:
        import threading

        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.sent = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="cuttable-proxy")
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import threading

        while not self.closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                late = self.closed.is_set()
                if not late:
                    self._sockets += [client, upstream]
            if late:  # accepted while being cut: this connection dies too
                self._reset([client, upstream])
                return
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, upstream: bool) -> None:
        try:
            while not self.closed.is_set():
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
                if upstream:
                    with self._lock:
                        self.sent += len(data)
                        over = self.cut_after is not None and self.sent >= self.cut_after
                    if over:
                        self.cut()
                        return
        except OSError:
            pass
        finally:
            if not self.closed.is_set():  # a peer that ended: pass its end on (after a cut the server only sees RST)
                try:
                    target.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Reset every connection and stop listening (idempotent)."""
        self.closed.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in the other thread
        except OSError:
            pass
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            sockets, self._sockets = self._sockets, []
        self._reset(sockets)

    @staticmethod
    def _reset(sockets: list[socket.socket]) -> None:
        """Reset each connection now: the peer sees RST at once, not when its pump thread next wakes.

        ``close()`` alone does not wake a ``recv()`` blocked in another thread, and the socket
        stays open until that call returns: a client waiting for a response then waited for its
        read timeout instead of seeing the connection die (10 s in about half the runs). A pump
        woken by the cut never half-closes the server's side: a FIN in the middle of a request
        body made moto answer 400 (the flake this proxy had).
        """
        import struct

        for sock in sockets:  # every socket first set to reset on close: none of them may end with a FIN
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RD)  # wakes its pump's recv(), which then lets the close happen
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass
