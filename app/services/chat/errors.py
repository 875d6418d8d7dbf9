"""Errors of the chat API. Its routes answer every error in OpenAI's shape (app/api/openai_errors.py)."""

from app.errors import AppError, NotFound, Unauthorized


class InvalidApiKey(Unauthorized):
    """No key, an unknown key, or a revoked one."""

    code = "invalid_api_key"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class ModelNotFound(NotFound):
    code = "model_not_found"


class InvalidRequest(AppError):
    """The request is readable but asks for something this API does not do; `param` names the field."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class RateLimited(AppError):
    """Too many requests on one key this minute."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class BudgetExceeded(AppError):
    """The key's monthly tokens are spent; waiting a minute does not help, so clients are told not to retry."""

    status = 429
    code = "insufficient_quota"

    def __init__(self, message: str) -> None:
        # The OpenAI SDKs honour x-should-retry before their own retry rules.
        super().__init__(message, headers={"x-should-retry": "false"})


def error_body(exc: AppError) -> dict[str, dict[str, str | None]]:
    """OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`."""
    return {
        "error": {
            "message": exc.message,
            "type": error_type(exc),
            "param": getattr(exc, "param", None),
            "code": exc.code,
        }
    }


def error_type(exc: AppError) -> str:
    """OpenAI's error types: what the client did wrong, the quota, or our (or our upstream's) failure."""
    if isinstance(exc, BudgetExceeded):
        return "insufficient_quota"
    if exc.status == 429:
        return "requests"
    if exc.status == 401:
        return "authentication_error"
    if exc.status >= 500:
        return "server_error"
    return "invalid_request_error"
