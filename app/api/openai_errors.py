"""The chat API's routes answer errors in OpenAI's shape, so OpenAI clients raise their own exception classes.

`{"error": {"message", "type", "param", "code"}}` with the status OpenAI uses: a body that fails validation is a
400 (not FastAPI's 422). The rest of the app keeps `{detail, code}` (app/api/errors.py).
"""

from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from loguru import logger
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from app.errors import AppError
from app.services.chat.errors import InvalidRequest, error_body


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """The body of every chat API error, as OpenAI's API sends it."""

    error: OpenAIError


def openai_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a chat API route returns."""
    return {code: {"model": OpenAIErrorBody, "description": HTTPStatus(code).phrase} for code in codes}


# Every chat API route: a bad request, a missing or revoked key, the rate limit or budget, the model server down.
OPENAI_ERRORS = openai_responses(400, 401, 429, 502, 503)


class OpenAIRoute(APIRoute):
    """A route whose errors, its dependencies' and its body validation's included, come in OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except AppError as exc:
                return openai_error(request, exc)
            except RequestValidationError as exc:
                return openai_error(request, _invalid(exc))
            except HTTPException as exc:
                return openai_error(request, AppError(str(exc.detail), status=exc.status_code, code="invalid_request"))

        return route


def openai_error(request: Request, exc: AppError) -> JSONResponse:
    if exc.status >= 500:
        logger.warning("{} {}: {} {}: {}", request.method, request.url.path, exc.status, exc.code, exc)
    status = 400 if exc.status == 422 else exc.status  # OpenAI has no 422: an unacceptable value is a bad request
    return JSONResponse(error_body(exc), status_code=status, headers=exc.headers)


def _invalid(exc: RequestValidationError) -> InvalidRequest:
    """The first invalid field, named as OpenAI names parameters (`messages[0].role`)."""
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [part for part in first.get("loc", ()) if part != "body"]
    param = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or None
    if first.get("type") == "json_invalid":
        return InvalidRequest("The body is not valid JSON.")
    message = f"Invalid value for '{param}': {first.get('msg')}" if param else str(first.get("msg"))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return InvalidRequest(message, param=param)
