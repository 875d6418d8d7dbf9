"""The admin console at /console: server-rendered pages (Jinja2), assets served from this package."""

from collections.abc import Awaitable, Callable
from typing import cast

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from app.console import api_keys, auth, chat, conversations, dashboard, knowledge, prompts, simulator, tasks, usage
from app.console.deps import (
    HERE,
    ConsoleDisabled,
    LoginRequired,
    console_disabled,
    login_required,
    render,
)
from app.errors import AppError

ROUTERS = (auth, dashboard, tasks, conversations, prompts, knowledge, usage, api_keys, simulator, chat)


def install(app: FastAPI) -> None:
    """Mount the console's pages and assets; a console page's errors are shown as a page, not as JSON."""
    for module in ROUTERS:
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(ConsoleDisabled, console_disabled)
    json_handler = cast(Callable[[Request, Exception], Awaitable[Response]], app.exception_handlers[AppError])

    async def app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        if request.url.path.startswith("/console") and wants_page:
            return render(request, "error.html", {"status": exc.status, "message": exc.message}, status_code=exc.status)
        return await json_handler(request, exc)

    app.add_exception_handler(AppError, app_error)
