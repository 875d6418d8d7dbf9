"""Errors a task's work can raise; the worker's retry policy reads only these classes.

Building an answer depends on an upstream (the LLM, the embedding API), so the family sits under `UpstreamError`:
the API answers a passing failure with 503 and a lasting one with 502 (see app/errors.py)."""

import math

from app.errors import UpstreamError


class AnswerError(UpstreamError):
    """Building an answer failed."""

    code = "answer_failed"


class RetryableError(AnswerError):
    """A passing failure (429, 5xx, timeout, connection): try again, after `retry_after` if given."""

    status = 503
    code = "upstream_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after is not None else None
        super().__init__(message, headers=headers)
        self.retry_after = retry_after


class PermanentError(AnswerError):
    """A failure that will repeat (400, 401, 403, 404, content filter): do not retry."""

    code = "upstream_failed"
