"""Values that cross the knowledge base's edges: passages, answers, filters, parsed documents."""

from enum import StrEnum

from pydantic import BaseModel, Field


class DocType(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    PDF = "pdf"
    FAQ = "faq"


class Passage(BaseModel):
    """One retrieved chunk with its hybrid score and where it came from."""

    text: str
    score: float
    # Whether the score reaches `RAG_SCORE_THRESHOLD`: only then does the offline answer quote it.
    confident: bool = True
    source: str
    title: str
    doc_id: str
    chunk_id: str
    type: DocType
    category: str | None = None
    page: int | None = None
    # FAQ chunks only: the answer alone, which the offline answerer quotes.
    answer: str | None = None


class OfflineAnswer(BaseModel):
    """An answer built without an LLM; `found` is False when no passage is confident enough to quote.

    `suggestions` are the nearest FAQ questions a declining answer lists (Kakao shows them as quick replies).
    """

    text: str
    found: bool
    sources: list[Passage] = []
    suggestions: list[str] = []


class SearchFilter(BaseModel):
    """Metadata conditions; each given list matches any of its values, and all given fields must match."""

    type: list[DocType] | None = None
    category: list[str] | None = None
    source: list[str] | None = None
    doc_id: list[str] | None = None

    def where(self) -> dict[str, object] | None:
        """The same conditions as a Chroma `where` clause."""
        clauses: list[dict[str, object]] = [{key: {"$in": values}} for key, values in self._conditions().items()]
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def _conditions(self) -> dict[str, list[str]]:
        return {key: [str(v) for v in values] for key, values in self.model_dump().items() if values}


class Section(BaseModel):
    """A stretch of a document's text (a PDF page, or the whole text) to be chunked."""

    text: str
    page: int | None = None


class FaqPair(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    category: str | None = None


class ParsedDocument(BaseModel):
    """A document read from a file or a request, before chunking."""

    bot_id: str
    title: str
    source: str
    type: DocType
    category: str | None = None
    sections: list[Section] = []
    faqs: list[FaqPair] = []

    @property
    def char_count(self) -> int:
        return sum(len(s.text) for s in self.sections) + sum(len(f.question) + len(f.answer) for f in self.faqs)
