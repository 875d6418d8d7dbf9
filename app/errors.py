"""One error root: an error that can reach an API client is an `AppError` carrying its HTTP status and a stable code.

One handler (app/api/errors.py) turns any of them into `{"detail": message, "code": code}` with the status, so
services raise the error that says what went wrong and routers map nothing by hand. Messages are English (API
clients and logs read them); what a Kakao user reads is Korean and lives in app/services/texts.py.

    AppError                      500 internal_error
    ├── InvalidInput              422 invalid_input
    │   ├── MalformedBody         400 malformed_body        (not JSON, not UTF-8, cut off)
    │   ├── TemplateError         422 invalid_template      (app/services/prompts.py)
    │   └── InvalidDocument       422 invalid_document      (knowledge)
    ├── Unauthorized              401 unauthorized
    │   └── InvalidApiKey         401 invalid_api_key       (app/services/chat/errors.py, as all chat API errors)
    ├── Forbidden                 403 forbidden             (code csrf_failed: the console's CSRF check)
    ├── NotFound                  404 not_found
    │   └── ModelNotFound         404 model_not_found
    ├── Conflict                  409 conflict
    │   └── DocumentConflict      409 document_conflict     (knowledge)
    ├── PayloadTooLarge           413 payload_too_large
    │   └── DocumentTooLarge      413 document_too_large    (knowledge)
    ├── UnsupportedMediaType      415 unsupported_media_type
    │   └── UnsupportedType       415 unsupported_type      (knowledge)
    ├── InvalidRequest            400 invalid_request       (chat API: a request it does not serve)
    ├── RateLimited               429 rate_limit_exceeded   (chat API, with Retry-After)
    ├── BudgetExceeded            429 insufficient_quota    (chat API: the key's monthly tokens are spent)
    ├── ServiceUnavailable        503 service_unavailable   (code admin_disabled without ADMIN_TOKEN)
    └── UpstreamError             502 upstream_error        (a server we depend on: LLM, embeddings)
        └── AnswerError           502 answer_failed         (app/services/errors.py; the worker's retry policy)
            ├── RetryableError    503 upstream_unavailable  (Retry-After when the upstream gave one)
            └── PermanentError    502 upstream_failed

The chat API's routes (/v1, /api/chat, /api/models) answer these same errors in OpenAI's shape
`{"error": {"message", "type", "param", "code"}}` instead (app/api/openai_errors.py).

The knowledge errors also derive from `KnowledgeError` (app/services/knowledge/errors.py), so the knowledge CLI
catches them as one family. Left outside the root on purpose, because no client ever sees them: `LeaseLost`
(app/queue) and `SummaryConflict` (app/services/summaries.py) are a worker's control flow, and `InvalidName`
(app/services/names.py) is a Kakao user's typo answered in Korean in a Kakao reply, never an HTTP error.
"""

from collections.abc import Mapping


class AppError(Exception):
    """Base of our errors; `status` and `code` are per class and can be overridden per instance."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(AppError):
    """The request is well-formed but its content is not acceptable."""

    status = 422
    code = "invalid_input"


class MalformedBody(InvalidInput):
    """The body cannot be read at all: not JSON, not UTF-8, or cut off."""

    status = 400
    code = "malformed_body"


class Unauthorized(AppError):
    """Credentials are missing or wrong."""

    status = 401
    code = "unauthorized"


class Forbidden(AppError):
    """Authenticated, or not needing to be, but not allowed (a cross-site request, a missing CSRF token)."""

    status = 403
    code = "forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    """The request clashes with the current state (another writer won, or the state does not allow it)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"


class ServiceUnavailable(AppError):
    """This server cannot serve the request now (a feature switched off, a dependency down)."""

    status = 503
    code = "service_unavailable"


class UpstreamError(AppError):
    """A server we depend on (the LLM, the embedding API) failed."""

    status = 502
    code = "upstream_error"
