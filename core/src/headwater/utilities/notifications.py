"""Notification state handlers (Prefect 1's ``prefect.utilities.notifications``).

``@task(state_handlers=[slack_notifier(only_states=[Failed])])`` posts to Slack when the task
fails; ``gmail_notifier`` sends an email. Both take ``ignore_states``/``only_states`` (state
classes) and are *curried*: called with options only, they return the handler.

Credentials are Secrets, resolved when a notification is sent: the webhook URL is the secret
``SLACK_WEBHOOK_URL`` (or ``webhook_secret=``), the email account ``EMAIL_USERNAME`` and
``EMAIL_PASSWORD``.
"""

from __future__ import annotations

import functools
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from html import escape
from typing import Any

from headwater.states import Failed, State

__all__ = ["slack_notifier", "gmail_notifier", "slack_message_formatter", "email_message_formatter",
           "NotificationError"]


class NotificationError(ValueError):
    """A notification could not be sent (names the object, the service and the cause)."""


def _wanted(state: State, ignore_states: Iterable[type] | None, only_states: Iterable[type] | None) -> bool:
    ignore = tuple(ignore_states or ())
    only = tuple(only_states or ())
    if ignore and isinstance(state, ignore):
        return False
    return not only or isinstance(state, only)


def _text(tracked_obj: Any, state: State) -> str:
    return f"{getattr(tracked_obj, 'name', tracked_obj)} is now in a {type(state).__name__} state"


def slack_message_formatter(tracked_obj: Any, state: State, backend_info: bool = True) -> dict[str, Any]:
    """The Slack message (Prefect 1's attachment layout): title, text, the state's message and exception."""
    fields: list[dict[str, Any]] = []
    if state.message:
        fields.append({"title": "Message", "value": str(state.message), "short": False})
    if isinstance(state, Failed) and isinstance(state.result, BaseException):
        fields.append({"title": "Exception", "value": repr(state.result), "short": False})
    attachment: dict[str, Any] = {
        "fallback": "State change notification",
        "color": state.color,
        "author_name": "headwater",
        "title": type(state).__name__,
        "text": _text(tracked_obj, state),
        "fields": fields,
        "footer": "headwater notification",
    }
    if backend_info:
        from headwater.utilities.context import context

        run_id = context.get("flow_run_id")
        if run_id:
            attachment["fields"].append({"title": "Flow run", "value": str(run_id), "short": True})
    return {"attachments": [attachment]}


def email_message_formatter(tracked_obj: Any, state: State, email_to: str) -> str:
    """The notification email (HTML, with a plain-text subject line) as a MIME string."""
    subject = f"headwater state change notification for {getattr(tracked_obj, 'name', tracked_obj)}"
    body = f"<html><body><h3>{escape(_text(tracked_obj, state))}</h3>"
    if state.message:
        body += f"<p><b>Message:</b> {escape(str(state.message))}</p>"
    if isinstance(state, Failed) and isinstance(state.result, BaseException):
        body += f"<p><b>Exception:</b> {escape(repr(state.result))}</p>"
    body += "</body></html>"
    message = MIMEMultipart("alternative")
    message["Subject"] = subject
    message["From"] = "notifications@headwater"
    message["To"] = email_to
    message.attach(MIMEText(_text(tracked_obj, state), "plain"))
    message.attach(MIMEText(body, "html"))
    return message.as_string()


def post_json(url: str, payload: Any, what: str, timeout: float = 30.0) -> None:
    """POST ``payload`` as JSON to ``url``; a :class:`NotificationError` on an HTTP or network error."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's webhook
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:200]
        raise NotificationError(f"{what} failed: the webhook answered HTTP {exc.code} {detail!r}.") from None
    except (urllib.error.URLError, OSError) as exc:
        raise NotificationError(f"{what} failed: could not reach the webhook ({exc}).") from None


def slack_notifier(
    tracked_obj: Any = None,
    old_state: State | None = None,
    new_state: State | None = None,
    ignore_states: Iterable[type] | None = None,
    only_states: Iterable[type] | None = None,
    webhook_secret: str | None = None,
    backend_info: bool = True,
    proxies: dict[str, str] | None = None,
) -> Any:
    """A state handler posting state changes to a Slack webhook (the secret ``SLACK_WEBHOOK_URL``).

    ``slack_notifier(only_states=[Failed])`` returns the handler with those options.
    ``proxies`` is accepted for Prefect 1 compatibility; set ``HTTPS_PROXY`` instead.
    """
    if tracked_obj is None or new_state is None:
        return functools.partial(slack_notifier, ignore_states=ignore_states, only_states=only_states,
                                 webhook_secret=webhook_secret, backend_info=backend_info, proxies=proxies)
    if not _wanted(new_state, ignore_states, only_states):
        return new_state
    from headwater.secrets import Secret

    url = str(Secret(webhook_secret or "SLACK_WEBHOOK_URL").get())
    post_json(url, slack_message_formatter(tracked_obj, new_state, backend_info),
              f"Slack notification for {tracked_obj!r}")
    return new_state


def gmail_notifier(
    tracked_obj: Any = None,
    old_state: State | None = None,
    new_state: State | None = None,
    ignore_states: Iterable[type] | None = None,
    only_states: Iterable[type] | None = None,
    smtp_server: str = "smtp.gmail.com",
    smtp_port: int = 465,
    smtp_type: str = "SSL",
) -> Any:
    """A state handler emailing state changes from the account in ``EMAIL_USERNAME``/``EMAIL_PASSWORD`` to itself.

    Gmail over SSL by default, as in Prefect 1; ``smtp_server``/``smtp_port``/``smtp_type``
    (``SSL``, ``STARTTLS`` or ``INSECURE``) point it at another server.
    """
    if tracked_obj is None or new_state is None:
        return functools.partial(gmail_notifier, ignore_states=ignore_states, only_states=only_states,
                                 smtp_server=smtp_server, smtp_port=smtp_port, smtp_type=smtp_type)
    if not _wanted(new_state, ignore_states, only_states):
        return new_state
    from headwater.secrets import Secret

    username = str(Secret("EMAIL_USERNAME").get())
    password = str(Secret("EMAIL_PASSWORD").get())
    message = email_message_formatter(tracked_obj, new_state, username)
    with smtp_connection(smtp_server, smtp_port, smtp_type, f"Email notification for {tracked_obj!r}") as server:
        if password:
            server.login(username, password)
        server.sendmail("notifications@headwater", [username], message)
    return new_state


def smtp_connection(server: str, port: int, smtp_type: str, what: str) -> smtplib.SMTP:
    """An SMTP connection: ``SSL`` (implicit TLS), ``STARTTLS`` (upgraded) or ``INSECURE`` (plain; tests, relays)."""
    kind = str(smtp_type).upper()
    try:
        if kind == "SSL":
            return smtplib.SMTP_SSL(server, port, context=ssl.create_default_context(), timeout=60)
        if kind == "STARTTLS":
            connection = smtplib.SMTP(server, port, timeout=60)
            connection.starttls(context=ssl.create_default_context())
            return connection
        if kind == "INSECURE":
            return smtplib.SMTP(server, port, timeout=60)
    except (OSError, smtplib.SMTPException) as exc:
        raise NotificationError(f"{what} failed: could not connect to {server}:{port} with {kind} ({exc}).") from None
    raise ValueError(f"smtp_type must be 'SSL', 'STARTTLS' or 'INSECURE', got {smtp_type!r}.")
