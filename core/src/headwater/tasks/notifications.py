"""Notification tasks (Prefect 1's ``prefect.tasks.notifications``): ``SlackTask`` and ``EmailTask``.

Credentials are Secrets resolved at run time: the Slack webhook URL is the secret
``SLACK_WEBHOOK_URL`` (or ``webhook_secret=``), the SMTP account ``EMAIL_USERNAME`` and
``EMAIL_PASSWORD``. ``PushbulletTask`` is not provided.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

from headwater.core.task import Task
from headwater.utilities.notifications import NotificationError, post_json, smtp_connection
from headwater.utilities.tasks import defaults_from_attrs

__all__ = ["SlackTask", "EmailTask", "NotificationError"]


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
