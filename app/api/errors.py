"""The error handlers: every error response is `{"detail": ..., "code": ...}` (ErrorDetail in deps.py)."""

from http import HTTPStatus

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from app.errors import AppError, InvalidInput

# SQLSTATE class 22, "data exception": a NUL character PostgreSQL text cannot hold, a number out of range, ...
_DATA_EXCEPTION = "22"
VALIDATION_CODE = InvalidInput.code
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def app_error(request: Request, exc: Exception) -> JSONResponse:
    """Any AppError: its message, code and status (and headers such as Retry-After)."""
    assert isinstance(exc, AppError)
    if exc.status >= 500:
        logger.warning("{} {}: {} {}: {}", request.method, request.url.path, exc.status, exc.code, exc)
    return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=exc.status, headers=exc.headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own 422: its list of invalid fields kept as it is, with the code of every invalid input."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": jsonable_encoder(exc.errors()), "code": VALIDATION_CODE}, status_code=422)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method, unreadable body), with a code named after the status."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        # Starlette names only the first route of the path; GET and POST of one path are often two routes.
        headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
    code = HTTPStatus(exc.status_code).name.lower()
    return JSONResponse({"detail": exc.detail, "code": code}, status_code=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> set[str]:
    # Asked of the routes per method: FastAPI nests included routers, so the routes' own lists are not at hand.
    return {
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in request.app.router.routes
        )
    }


async def invalid_value(request: Request, exc: Exception) -> JSONResponse:
    """A value the database refused as data is the client's error (422); every other database error stays a 500."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    if not (isinstance(exc, DBAPIError) and sqlstate.startswith(_DATA_EXCEPTION)):
        raise exc
    logger.warning("{} {}: the database refused a value (SQLSTATE {})", request.method, request.url.path, sqlstate)
    message = "the database refused a value (a NUL character or a number out of range)"
    return JSONResponse({"detail": message, "code": "invalid_value"}, status_code=422)
