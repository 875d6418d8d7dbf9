"""What every console route shares: the session check (with CSRF), templates, and rendering with safe headers."""

import hmac
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app.config import Settings
from app.console.session import CSRF_FIELD, CSRF_HEADER, ConsoleSession, read
from app.errors import AppError, Forbidden, Unauthorized

HERE = Path(__file__).parent
SEOUL = ZoneInfo("Asia/Seoul")
templates = Jinja2Templates(directory=HERE / "templates")


def _kst(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A stored UTC time as the operator reads it, in Korean time."""
    return value.astimezone(SEOUL).strftime(fmt) if value else "—"


templates.env.filters["kst"] = _kst
templates.env.filters["kst_time"] = lambda value: _kst(value, "%H:%M")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Everything the console loads comes from this server; nothing may frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

# (path, label) of the navigation, in order.
NAV = [
    ("/console", "대시보드"),
    ("/console/tasks", "작업"),
    ("/console/conversations", "대화"),
    ("/console/prompts", "프롬프트"),
    ("/console/knowledge", "지식베이스"),
    ("/console/usage", "사용량"),
    ("/console/api-keys", "API 키"),
    ("/console/simulator", "시뮬레이터"),
    ("/console/chat", "채팅"),
]


class LoginRequired(Unauthorized):
    """No valid console session: pages redirect to the login form, data calls get a 401."""


class ConsoleDisabled(AppError):
    """ADMIN_TOKEN is empty: the console only explains how to set it."""

    status = 503
    code = "admin_disabled"


async def require_console(request: Request) -> ConsoleSession:
    """The logged-in session; for a state-changing request also a same-origin request with the session's CSRF token."""
    settings: Settings = request.app.state.settings
    if not settings.admin_token:
        raise ConsoleDisabled("ADMIN_TOKEN is not configured")
    session = read(request, settings)
    if session is None:
        raise LoginRequired("console session missing or expired")
    if request.method not in SAFE_METHODS:
        await check_csrf(request, session.csrf)
    return session


async def check_csrf(request: Request, expected: str | None) -> None:
    """Refuse a cross-origin request, and (with a session) one without the session's CSRF token."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden("cross-origin request refused", code="csrf_failed")
    if expected is None:
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        given = (await request.form(max_files=1, max_fields=20)).get(CSRF_FIELD)  # type: ignore[assignment]
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden("CSRF token missing or wrong", code="csrf_failed")


ConsoleDep = Annotated[ConsoleSession, Depends(require_console)]


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """A console page: the template with the navigation and CSRF token, and the console's security headers."""
    session = read(request, request.app.state.settings) if request.app.state.settings.admin_token else None
    values = {"nav": NAV, "path": request.url.path, "csrf": session.csrf if session else "", **(context or {})}
    response = templates.TemplateResponse(request, template, values, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


async def login_required(request: Request, exc: Exception) -> Response:
    """Pages send the browser to the login form; data calls (fetch) get the usual 401 body."""
    assert isinstance(exc, LoginRequired)
    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        target = "/console/login"
        if request.url.path != "/console":
            target += "?" + urlencode({"next": request.url.path}, safe="/")
        return RedirectResponse(target, status_code=303)
    return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=exc.status)


async def console_disabled(request: Request, exc: Exception) -> Response:
    return render(request, "disabled.html", status_code=503)
