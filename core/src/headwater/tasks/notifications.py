"""Notification tasks (Prefect 1's ``prefect.tasks.notifications``): ``SlackTask``, ``EmailTask``, ``PushbulletTask``.

Credentials are Secrets resolved at run time: the Slack webhook URL is the secret
``SLACK_WEBHOOK_URL`` (or ``webhook_secret=``), the SMTP account ``EMAIL_USERNAME`` and
``EMAIL_PASSWORD``, the Pushbullet access token ``PUSHBULLET_TOKEN``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

from headwater.core.task import Task
from headwater.utilities.notifications import NotificationError, post_json, smtp_connection
from headwater.utilities.tasks import defaults_from_attrs

__all__ = ["SlackTask", "EmailTask", "PushbulletTask", "NotificationError"]


class SlackTask(Task):
    """Posts ``message`` to a Slack incoming webhook (the URL is the secret ``webhook_secret``)."""

    def __init__(self, message: str | None = None, webhook_secret: str | None = None, **kwargs: Any) -> None:
        self.message = message
        self.webhook_secret = webhook_secret
        super().__init__(**kwargs)

    @defaults_from_attrs("message", "webhook_secret")
    def run(self, message: str | None = None, webhook_secret: str | None = None) -> None:
        """Send ``message``; a :class:`NotificationError` if Slack refuses it or cannot be reached."""
        if message is None:
            raise ValueError(f"Task {self.name!r}: SlackTask needs a message (SlackTask(message=...) or run(message=...)).")
        from headwater.secrets import Secret

        url = str(Secret(webhook_secret or "SLACK_WEBHOOK_URL").get())
        post_json(url, {"text": message}, f"Task {self.name!r}: the Slack message")


class EmailTask(Task):
    """Sends an email over SMTP (Prefect 1's arguments): ``SSL`` (port 465), ``STARTTLS`` (587) or ``INSECURE``.

    ``msg`` is the HTML body, ``msg_plain`` an optional plain-text one; ``email_to``,
    ``email_to_cc`` and ``email_to_bcc`` are comma-separated addresses; ``attachments`` are
    file paths. The login is the secrets ``EMAIL_USERNAME``/``EMAIL_PASSWORD`` (no login when
    the password is empty).
    """

    def __init__(
        self,
        subject: str | None = None,
        msg: str | None = None,
        email_to: str | None = None,
        email_from: str = "notifications@headwater",
        smtp_server: str = "smtp.gmail.com",
        smtp_port: int = 465,
        smtp_type: str = "SSL",
        msg_plain: str | None = None,
        email_to_cc: str | None = None,
        email_to_bcc: str | None = None,
        attachments: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.subject = subject
        self.msg = msg
        self.email_to = email_to
        self.email_from = email_from
        self.smtp_server = smtp_server
        self.smtp_port = smtp_port
        self.smtp_type = smtp_type
        self.msg_plain = msg_plain
        self.email_to_cc = email_to_cc
        self.email_to_bcc = email_to_bcc
        self.attachments = list(attachments) if attachments is not None else None
        super().__init__(**kwargs)

    @defaults_from_attrs("subject", "msg", "email_to", "email_from", "smtp_server", "smtp_port", "smtp_type",
                         "msg_plain", "email_to_cc", "email_to_bcc", "attachments")
    def run(
        self,
        subject: str | None = None,
        msg: str | None = None,
        email_to: str | None = None,
        email_from: str | None = None,
        smtp_server: str | None = None,
        smtp_port: int | None = None,
        smtp_type: str | None = None,
        msg_plain: str | None = None,
        email_to_cc: str | None = None,
        email_to_bcc: str | None = None,
        attachments: Iterable[str] | None = None,
    ) -> None:
        """Send the email; a :class:`NotificationError` when the server cannot be reached."""
        if not email_to:
            raise ValueError(f"Task {self.name!r}: EmailTask needs email_to (comma-separated addresses).")
        from headwater.secrets import Secret

        username = str(Secret("EMAIL_USERNAME").get())
        password = str(Secret("EMAIL_PASSWORD").get())
        message = MIMEMultipart()
        message["Subject"] = subject or ""
        message["From"] = email_from or username
        message["To"] = email_to
        recipients = _addresses(email_to)
        if email_to_cc:
            message["Cc"] = email_to_cc
            recipients += _addresses(email_to_cc)
        if email_to_bcc:
            recipients += _addresses(email_to_bcc)  # never in a header
        if msg_plain:
            message.attach(MIMEText(msg_plain, "plain"))
        if msg:
            message.attach(MIMEText(msg, "html"))
        for path in attachments or ():
            with open(path, "rb") as fh:
                part = MIMEApplication(fh.read(), Name=os.path.basename(path))
            part["Content-Disposition"] = f'attachment; filename="{os.path.basename(path)}"'
            message.attach(part)
        with smtp_connection(str(smtp_server), int(smtp_port or 0), str(smtp_type),
                             f"Task {self.name!r}: the email") as server:
            if password:
                server.login(username, password)
            server.sendmail(message["From"], recipients, message.as_string())


def _addresses(value: str) -> list[str]:
    return [a.strip() for a in value.split(",") if a.strip()]


PUSHBULLET_API = "https://api.pushbullet.com/v2"


class PushbulletTask(Task):
    """Pushes ``msg`` as a note to your Pushbullet devices (Prefect 1's ``PushbulletTask``).

    The note's title is ``title`` ("Flow Notification", as in Prefect 1). The access token is the
    ``run(access_token=...)`` argument, else the secret ``PUSHBULLET_TOKEN``. The request goes
    straight to Pushbullet's HTTP API (``POST <api_base>/pushes``), so the ``pushbullet.py``
    library is not needed; ``api_base`` (default ``https://api.pushbullet.com/v2``, or
    ``$HEADWATER_PUSHBULLET_API``) points it elsewhere, e.g. at a proxy. Returns the push
    Pushbullet created (a dict with its ``iden``).
    """

    def __init__(self, msg: str | None = None, title: str = "Flow Notification", api_base: str | None = None,
                 **kwargs: Any) -> None:
        self.msg = msg
        self.title = title
        self.api_base = api_base
        super().__init__(**kwargs)

    @defaults_from_attrs("msg")
    def run(self, msg: str | None = None, access_token: str | None = None) -> dict[str, Any]:
        """Send the note; a :class:`NotificationError` if Pushbullet refuses it or cannot be reached."""
        if msg is None:
            raise ValueError(f"Task {self.name!r}: PushbulletTask needs a message (PushbulletTask(msg=...) or run(msg=...)).")
        if access_token is None:
            from headwater.secrets import Secret

            access_token = str(Secret("PUSHBULLET_TOKEN").get())
        base = (self.api_base or os.environ.get("HEADWATER_PUSHBULLET_API") or PUSHBULLET_API).rstrip("/")
        body = json.dumps({"type": "note", "title": self.title, "body": msg}).encode("utf-8")
        request = urllib.request.Request(f"{base}/pushes", data=body, method="POST", headers={
            "Content-Type": "application/json", "Access-Token": access_token})
        what = f"Task {self.name!r}: the Pushbullet note"
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the configured API
                answer = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:200]
            hint = " (the access token was refused: check the PUSHBULLET_TOKEN secret)" if exc.code in (401, 403) else ""
            raise NotificationError(f"{what} failed: Pushbullet answered HTTP {exc.code} {detail!r}{hint}.") from None
        except (urllib.error.URLError, OSError) as exc:
            raise NotificationError(f"{what} failed: could not reach {base} ({exc}).") from None
        try:
            push = json.loads(answer or b"{}")
        except ValueError:
            push = {}
        return push if isinstance(push, dict) else {}
