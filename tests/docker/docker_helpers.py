"""Shared by the docker tests (a uniquely named module: every test folder has a ``conftest``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "Engine", "Built", "REGISTRY_USER", "REGISTRY_PASSWORD", "SECRET_NAME", "with_section_credentials",
           "TokenServer"]

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root."""

REGISTRY_USER = "hw-pusher"
REGISTRY_PASSWORD = "correct-horse-42"
"""The one account of the session's password-protected registry (conftest's ``auth_registry``)."""

SECRET_NAME = "REGISTRY_PASSWORD"
"""The headwater secret that holds the registry password in ``[docker]`` credentials."""


def with_section_credentials(monkeypatch: Any, password: str = REGISTRY_PASSWORD) -> None:
    """``[docker] registry_username`` and ``registry_password_secret``, with the secret's value, set through the environment."""
    monkeypatch.setenv("HEADWATER__DOCKER__REGISTRY_USERNAME", REGISTRY_USER)
    monkeypatch.setenv("HEADWATER__DOCKER__REGISTRY_PASSWORD_SECRET", SECRET_NAME)
    monkeypatch.setenv(f"HEADWATER__CONTEXT__SECRETS__{SECRET_NAME}", password)


class Engine:
    """The session's engine and registry: ``base_url``, ``registry`` (``127.0.0.1:PORT``), ``client()``."""

    def __init__(self, base_url: str, registry: str, workdir: Path, service_pid: int | None = None) -> None:
        self.base_url = base_url
        self.registry = registry
        self.workdir = workdir
        self.service_pid = service_pid
        """The ``podman system service`` process (its working directory is ``workdir``)."""

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.base_url)


@dataclasses.dataclass
class Built:
    """The session's built storage, its flow, the build's output lines and the project directory."""

    storage: Any
    flow: Any
    lines: list[str]
    project: Path


class TokenServer:
    """A registry token service on 127.0.0.1, as Docker Hub's and GHCR's work (the Docker "token" auth spec).

    ``GET /token?service=...&scope=repository:NAME:ACTIONS`` with Basic credentials answers a JWT
    signed (RS256) by a key whose self-signed certificate the real registry trusts
    (``rootcertbundle``), granting the asked actions. It refuses what a real one refuses: no or
    wrong credentials (401), another service or a malformed scope (400). ``requests`` records
    each one it answered: ``(user, service, scopes, status)``.
    """

    SERVICE = "headwater-test-registry"
    ISSUER = "headwater-test-token-issuer"

    def __init__(self, directory: Path, user: str, password: str) -> None:
        import datetime
        import threading
        from http.server import ThreadingHTTPServer

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.user, self.password = user, password
        self.requests: list[tuple[str | None, str | None, list[str], int]] = []
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self._key.public_key())
                      .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                      .not_valid_after(now + datetime.timedelta(days=1))
                      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                                   key_encipherment=False, data_encipherment=False, key_agreement=False,
                                                   crl_sign=False, encipher_only=False, decipher_only=False),
                                     critical=True)
                      .sign(self._key, hashes.SHA256()))
        self.certificate = directory / "token-signer.pem"
        self.certificate.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.realm = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-server", daemon=True)
        self._thread.start()

    def token(self, user: str, access: list[dict[str, Any]]) -> str:
        """A JWT as the registry expects: ``x5c`` header, issuer, audience, validity and the granted access."""
        import base64
        import json
        import time
        import uuid

        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        der = self._cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {"iss": self.ISSUER, "sub": user, "aud": self.SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64(signature)}"

    def _handler(self) -> Any:
        import base64
        import json
        import re
        import urllib.parse
        from http.server import BaseHTTPRequestHandler

        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

            def _answer(self, status: int, body: dict[str, Any], user: str | None, service: str | None,
                        scopes: list[str]) -> None:
                server.requests.append((user, service, scopes, status))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                service = (query.get("service") or [None])[0]
                scopes = query.get("scope", [])
                user = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if (user, password) != (server.user, server.password):
                        return self._answer(401, {"details": "wrong user name or password"}, user, service, scopes)
                if url.path != "/token":
                    return self._answer(404, {"details": f"no {url.path}"}, user, service, scopes)
                if user is None:
                    return self._answer(401, {"details": "credentials required"}, user, service, scopes)
                if service != server.SERVICE:
                    return self._answer(400, {"details": f"unknown service {service!r}"}, user, service, scopes)
                access = []
                for scope in scopes:
                    match = re.fullmatch(r"repository:([a-z0-9._/-]+):([a-z,*]+)", scope)
                    if match is None:
                        return self._answer(400, {"details": f"malformed scope {scope!r}"}, user, service, scopes)
                    actions = [a for a in match.group(2).split(",") if a in ("pull", "push")]
                    access.append({"type": "repository", "name": match.group(1), "actions": actions})
                token = server.token(user, access)
                return self._answer(200, {"token": token, "access_token": token, "expires_in": 300}, user, service,
                                    scopes)

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
