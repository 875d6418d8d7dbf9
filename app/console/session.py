"""Console sessions: a signed, expiring, HttpOnly cookie carrying a per-session CSRF token; and flash messages,
what a POST hands to the page it redirects to (Post/Redirect/Get), in a short-lived cookie of their own.

Keys are derived from ADMIN_TOKEN, so changing the token ends every session. The session is stateless: logout
removes the cookie from the browser; a copied cookie stays valid until it expires (CONSOLE_SESSION_TTL_SECONDS).
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.config import Settings

COOKIE = "console_session"
COOKIE_PATH = "/console"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
FLASH_COOKIE = "console_flash"
# Long enough for the browser to follow the redirect; a flash nobody picked up is dead after that.
FLASH_TTL_SECONDS = 60


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A logged-in console user; `csrf` must come back with every state-changing request."""

    csrf: str


def _serializer(settings: Settings, purpose: str = "console-session") -> URLSafeTimedSerializer:
    assert settings.admin_token
    key = hmac.new(settings.admin_token.encode(), purpose.encode(), hashlib.sha256).hexdigest()
    return URLSafeTimedSerializer(key, salt=purpose)


def token_matches(settings: Settings, given: str) -> bool:
    """Whether `given` is the admin token (constant time, any characters)."""
    return bool(settings.admin_token) and hmac.compare_digest(given.encode(), settings.admin_token.encode())  # type: ignore[union-attr]


def start(request: Request, response: Response, settings: Settings) -> None:
    """Set a new session cookie on `response`."""
    value = _serializer(settings).dumps({"csrf": secrets.token_urlsafe(32)})
    response.set_cookie(
        COOKIE,
        value,
        max_age=settings.console_session_ttl_seconds,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def read(request: Request, settings: Settings) -> ConsoleSession | None:
    """The request's session, or None when there is none, it was tampered with, or it expired."""
    value = request.cookies.get(COOKIE)
    if not value or not settings.admin_token:
        return None
    try:
        data = _serializer(settings).loads(value, max_age=settings.console_session_ttl_seconds)
    except BadSignature:
        return None
    csrf = data.get("csrf") if isinstance(data, dict) else None
    return ConsoleSession(csrf=csrf) if isinstance(csrf, str) else None


def end(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def set_flash(
    request: Request, response: Response, settings: Settings, session: ConsoleSession, path: str, data: dict[str, Any]
) -> None:
    """Hand `data` to the next page under `path` in this session: signed, HttpOnly, read once within a minute."""
    value = _serializer(settings, "console-flash").dumps({"csrf": session.csrf, "data": data})
    response.set_cookie(
        FLASH_COOKIE,
        value,
        max_age=FLASH_TTL_SECONDS,
        path=path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def read_flash(request: Request, settings: Settings, session: ConsoleSession) -> dict[str, Any] | None:
    """The flash set in this session within the last minute, if any (the page showing it then calls `end_flash`)."""
    value = request.cookies.get(FLASH_COOKIE)
    if not value:
        return None
    try:
        flash = _serializer(settings, "console-flash").loads(value, max_age=FLASH_TTL_SECONDS)
    except BadSignature:
        return None
    if not isinstance(flash, dict) or flash.get("csrf") != session.csrf or not isinstance(flash.get("data"), dict):
        return None
    return flash["data"]


def end_flash(request: Request, response: Response, path: str) -> None:
    """Remove the flash from the browser, so it is shown once."""
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path=path, httponly=True, samesite="strict")
