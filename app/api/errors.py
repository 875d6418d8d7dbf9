"""Database errors that a client's input caused are the client's error (4xx), not the server's (5xx)."""

from fastapi import Request
from fastapi.responses import JSONResponse
from loguru import logger
from sqlalchemy.exc import DBAPIError

# SQLSTATE class 22, "data exception": a NUL character PostgreSQL text cannot hold, a number out of range, ...
_DATA_EXCEPTION = "22"


async def invalid_value(request: Request, exc: Exception) -> JSONResponse:
    """A value the database refused as data becomes a 422; every other database error stays a 500."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    if not (isinstance(exc, DBAPIError) and sqlstate.startswith(_DATA_EXCEPTION)):
        raise exc
    logger.warning("{} {}: the database refused a value (SQLSTATE {})", request.method, request.url.path, sqlstate)
    # Shaped like FastAPI's own validation errors, which is what clients of a 422 expect.
    message = "저장할 수 없는 값이 들어 있어요 (NUL 문자나 범위를 벗어난 숫자 등)."
    return JSONResponse({"detail": [{"loc": ["request"], "msg": message, "type": "value_error"}]}, status_code=422)
