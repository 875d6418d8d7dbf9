"""Login with the admin token and logout."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.console import session
from app.console.deps import ConsoleDep, ConsoleDisabled, check_csrf, render

router = APIRouter(prefix="/console", include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a console path: a login must never send the browser to another site."""
    if target and target.startswith("/console") and "//" not in target and "\\" not in target:
        return target
    return "/console"


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    settings = request.app.state.settings
    if not settings.admin_token:
        raise ConsoleDisabled("ADMIN_TOKEN is not configured")
    if session.read(request, settings) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", {"next": _safe_next(next)})


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request, token: Annotated[str, Form(max_length=1000)], next: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    settings = request.app.state.settings
    if not settings.admin_token:
        raise ConsoleDisabled("ADMIN_TOKEN is not configured")
    await check_csrf(request, None)
    if not session.token_matches(settings, token):
        context = {"next": _safe_next(next), "error": "관리자 토큰이 올바르지 않습니다."}
        return render(request, "login.html", context, status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    session.start(request, response, settings)
    return response


@router.post("/logout")
async def logout(_: ConsoleDep) -> Response:
    response = RedirectResponse("/console/login", status_code=303)
    session.end(response)
    return response
