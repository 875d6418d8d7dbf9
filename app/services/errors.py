"""Errors a task's work can raise; the worker's retry policy reads only these classes."""


class AnswerError(Exception):
    """Building an answer failed."""


class RetryableError(AnswerError):
    """A passing failure (429, 5xx, timeout, connection): try again, after `retry_after` if given."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(AnswerError):
    """A failure that will repeat (400, 401, 403, 404, content filter): do not retry."""
