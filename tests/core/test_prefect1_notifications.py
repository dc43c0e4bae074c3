"""Prefect 1's notifications through their import paths: Slack against a local webhook, email against aiosmtpd."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from headwater import Flow, task

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller", reason="pip install -r requirements/prefect1.txt")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402


def _secret(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"HEADWATER__CONTEXT__SECRETS__{name}", json.dumps(value))


# --- a local Slack webhook ------------------------------------------------------------------------------------


class Webhook:
    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append((self.path, json.loads(body)))
                ok = self.path != "/broken"
                self.send_response(200 if ok else 500)
                self.end_headers()
                self.wfile.write(b"ok" if ok else b"invalid_payload")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture()
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


def test_slack_notifier_posts_only_the_chosen_states(webhook: Webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.engine.state import Failed, Success
    from headwater.utilities.notifications import slack_notifier

    _secret(monkeypatch, "SLACK_WEBHOOK_URL", webhook.url + "/default")
    _secret(monkeypatch, "TEAM_HOOK", webhook.url + "/team")

    @task(state_handlers=[slack_notifier(only_states=[Failed])])
    def breaks() -> None:
        raise ValueError("bad row")

    @task(state_handlers=[slack_notifier(only_states=[Failed])])
    def works() -> int:
        return 1

    @task(state_handlers=[slack_notifier(ignore_states=[Success], webhook_secret="TEAM_HOOK")])
    def team() -> int:
        return 2

    with Flow("slack", state_handlers=[slack_notifier(only_states=[Failed])]) as flow:
        breaks()
        works()
        team()
    state = flow.run()
    assert state.is_failed()
    paths = [p for p, _ in webhook.posts]
    assert paths.count("/default") == 2  # the failed task and the failed flow run
    assert paths.count("/team") == 1  # team's Running (not Success)
    by_title = {body["attachments"][0]["text"]: body["attachments"][0] for _, body in webhook.posts}
    failed = by_title["breaks is now in a Failed state"]
    assert failed["title"] == "Failed" and failed["color"] == Failed.color
    assert any(f["title"] == "Exception" and "bad row" in f["value"] for f in failed["fields"])
    assert "slack is now in a Failed state" in by_title
    assert "team is now in a Running state" in by_title


def test_slack_notifier_and_slack_task_report_webhook_errors(webhook: Webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.tasks.notifications import NotificationError, SlackTask
    from headwater.utilities.notifications import slack_notifier

    _secret(monkeypatch, "SLACK_WEBHOOK_URL", webhook.url + "/broken")

    @task(state_handlers=[slack_notifier])
    def anything() -> int:
        return 1

    with Flow("slack-broken") as flow:
        a = anything()
    state = flow.run()
    assert state.result[a].is_failed() and "HTTP 500" in (state.result[a].message or "")

    _secret(monkeypatch, "GOOD_HOOK", webhook.url + "/good")
    with Flow("slack-task") as flow:
        sent = SlackTask(message="deploy finished", webhook_secret="GOOD_HOOK")()
        refused = SlackTask()(message="to a broken hook")
    state = flow.run()
    assert state.result[sent].is_successful()
    assert ("/good", {"text": "deploy finished"}) in webhook.posts
    assert state.result[refused].is_failed() and isinstance(state.result[refused].result, NotificationError)
    with pytest.raises(ValueError, match="needs a message"):
        SlackTask().run()


# --- a local SMTP server ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"bot@example.com" and auth_data.password == b"pw"
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture()
def smtp(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Three local servers: implicit TLS (SSL), STARTTLS and plain; all require the login bot@example.com/pw."""
    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the clients' default context trusts this certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(str(cert), str(key))
    inbox = Inbox()
    common = {"hostname": "127.0.0.1", "authenticator": _authenticator, "auth_require_tls": False}
    controllers = {
        "SSL": aiosmtpd_controller.Controller(inbox, port=_free_port(), ssl_context=server_tls, **common),
        "STARTTLS": aiosmtpd_controller.Controller(inbox, port=_free_port(), tls_context=server_tls,
                                                   require_starttls=True, **common),
        "INSECURE": aiosmtpd_controller.Controller(inbox, port=_free_port(), **common),
    }
    started = []
    try:
        for c in controllers.values():
            c.start()
            started.append(c)
        _secret(monkeypatch, "EMAIL_USERNAME", "bot@example.com")
        _secret(monkeypatch, "EMAIL_PASSWORD", "pw")
        yield {"inbox": inbox, **{kind: c.port for kind, c in controllers.items()}}
    finally:
        for c in started:
            c.stop()


@pytest.mark.parametrize("smtp_type", ["SSL", "STARTTLS", "INSECURE"])
def test_email_task_sends_over_each_smtp_type(smtp: dict[str, Any], smtp_type: str, tmp_path: Path) -> None:
    from headwater.tasks.notifications import EmailTask

    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")
    email = EmailTask(subject="Nightly load", msg="<b>3 tables</b> loaded", msg_plain="3 tables loaded",
                      email_to="ops@example.com, lead@example.com", email_from="etl@example.com",
                      email_to_cc="cc@example.com", email_to_bcc="audit@example.com",
                      smtp_server="127.0.0.1", smtp_port=smtp[smtp_type], smtp_type=smtp_type,
                      attachments=[str(report)])
    with Flow("email") as flow:
        sent = email()
    state = flow.run()
    assert state.result[sent].is_successful(), state.result[sent].message
    [(sender, recipients, message)] = smtp["inbox"].messages
    assert sender == "etl@example.com"
    assert sorted(recipients) == ["audit@example.com", "cc@example.com", "lead@example.com", "ops@example.com"]
    assert message["Subject"] == "Nightly load" and message["Cc"] == "cc@example.com" and message["Bcc"] is None
    parts = {p.get_content_type(): p for p in message.walk() if not p.is_multipart()}
    assert parts["text/plain"].get_payload(decode=True) == b"3 tables loaded"
    assert b"<b>3 tables</b>" in parts["text/html"].get_payload(decode=True)
    assert parts["application/octet-stream"].get_filename() == "report.csv"
    assert parts["application/octet-stream"].get_payload(decode=True) == b"a,b\n1,2\n"


def test_email_task_errors(smtp: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import smtplib

    from headwater.tasks.notifications import EmailTask, NotificationError

    with pytest.raises(ValueError, match="email_to"):
        EmailTask().run()
    with pytest.raises(ValueError, match="smtp_type"):
        EmailTask(email_to="a@example.com", smtp_server="127.0.0.1", smtp_port=smtp["INSECURE"], smtp_type="TLS1").run()
    with pytest.raises(NotificationError, match="could not connect"):
        EmailTask(email_to="a@example.com", smtp_server="127.0.0.1", smtp_port=_free_port(), smtp_type="INSECURE").run()
    _secret(monkeypatch, "EMAIL_PASSWORD", "wrong")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        EmailTask(email_to="a@example.com", smtp_server="127.0.0.1", smtp_port=smtp["SSL"]).run()
    assert smtp["inbox"].messages == []


def test_gmail_notifier_emails_the_account(smtp: dict[str, Any]) -> None:
    from headwater.engine.state import Failed
    from headwater.utilities.notifications import gmail_notifier

    notify = gmail_notifier(only_states=[Failed], smtp_server="127.0.0.1", smtp_port=smtp["SSL"])

    @task(state_handlers=[notify])
    def breaks() -> None:
        raise RuntimeError("disk full")

    @task(state_handlers=[notify])
    def works() -> int:
        return 1

    with Flow("gmail") as flow:
        breaks()
        works()
    flow.run()
    [(sender, recipients, message)] = smtp["inbox"].messages
    assert recipients == ["bot@example.com"]
    assert message["Subject"] == "headwater state change notification for breaks"
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_payload(decode=True)
    assert b"breaks is now in a Failed state" in html and b"disk full" in html
