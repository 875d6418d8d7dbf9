"""Knowledge base errors: one family for the CLI, each also the HTTP error it is (see app/errors.py)."""

from app.errors import AppError, Conflict, InvalidInput, PayloadTooLarge, UnsupportedMediaType


class KnowledgeError(AppError):
    """A knowledge base operation failed."""


class InvalidDocument(KnowledgeError, InvalidInput):
    """The upload is empty, unreadable or has no usable content."""

    code = "invalid_document"


class UnsupportedType(KnowledgeError, UnsupportedMediaType):
    """The file type is not one the knowledge base reads."""

    code = "unsupported_type"


class DocumentTooLarge(KnowledgeError, PayloadTooLarge):
    """The upload exceeds `KNOWLEDGE_MAX_UPLOAD_BYTES`."""

    code = "document_too_large"


class DocumentConflict(KnowledgeError, Conflict):
    """Another upload of the same source finished first."""

    code = "document_conflict"
