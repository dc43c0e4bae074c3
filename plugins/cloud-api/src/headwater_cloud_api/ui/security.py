"""The UI's login and CSRF protection.

* **Login.** When the server has API keys (or runs with ``--auth``), every page needs one: the
  login form checks it with the API's own :func:`check_authorization` and keeps it in an
  ``HttpOnly; SameSite=Strict`` cookie (JavaScript cannot read it, other sites never send it).
  Without a valid cookie a page answers with the login page (fragments and JSON with 401), never data.
* **CSRF.** Every form carries a token that must equal the ``hw_csrf`` cookie (double submit;
  the cookie is ``SameSite=Strict`` too, so a cross-site form has neither). POSTs whose
  ``Sec-Fetch-Site`` says another site are refused as well, and the server's request guard
  (``server/guard.py``) already refuses foreign ``Origin`` and ``Host`` headers.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from headwater_cloud_api.server.auth import check_authorization

__all__ = ["KEY_COOKIE", "CSRF_COOKIE", "authorized", "csrf_token", "check_csrf", "set_login", "clear_login", "CSRFError"]

KEY_COOKIE = "hw_api_key"
CSRF_COOKIE = "hw_csrf"


class CSRFError(Exception):
    """A state-changing request without the page's CSRF token (or from another site)."""


def authorized(db: Any, request: Request, required: bool) -> str | None:
    """None when the request may see data; else why not (no key, or the cookie's key is unknown or revoked)."""
    key = request.cookies.get(KEY_COOKIE)
    return check_authorization(db, f"Bearer {key}" if key else None, required)


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser (the cookie's value, or a new one that the response will set)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = secrets.token_urlsafe(24)
        request.state.new_csrf = token
    return token


def finish(request: Request, response: Response) -> Response:
    """Sets the CSRF cookie when this request created the token."""
    new = getattr(request.state, "new_csrf", None)
    if new and not request.cookies.get(CSRF_COOKIE):
        response.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="strict", path="/", secure=request.url.scheme == "https")
    return response


def check_csrf(request: Request, form: Any) -> None:
    """Raises :class:`CSRFError` unless the form's ``csrf`` equals the cookie and the request comes from this site."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CSRFError(f"Refused a {request.method} from another site (Sec-Fetch-Site: {site}).")
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    sent = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        raise CSRFError("The form's security token is missing or stale: reload the page and submit again.")


def set_login(request: Request, response: Response, key: str) -> None:
    response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="strict", path="/", secure=request.url.scheme == "https",
                        max_age=30 * 24 * 3600)


def clear_login(response: Response) -> None:
    response.delete_cookie(KEY_COOKIE, path="/", httponly=True, samesite="strict")
