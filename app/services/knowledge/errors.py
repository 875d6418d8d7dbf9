"""Knowledge base errors; messages are Korean because the admin sees them as they are."""


class KnowledgeError(Exception):
    """A knowledge base operation failed."""


class InvalidDocument(KnowledgeError):
    """The upload is empty, unreadable or has no usable content."""


class UnsupportedType(KnowledgeError):
    """The file type is not one the knowledge base reads."""


class DocumentTooLarge(KnowledgeError):
    """The upload exceeds `KNOWLEDGE_MAX_UPLOAD_BYTES`."""


class DocumentConflict(KnowledgeError):
    """Another upload of the same source finished first."""
