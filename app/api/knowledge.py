"""Admin API for the knowledge base: upload, list and delete documents; search; ask a question."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, UploadFile, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile as StarletteUploadFile

from app.api.deps import (
    ADMIN_ERRORS,
    JsonInt,
    KnowledgeDep,
    Offset,
    PipelineDep,
    SessionDep,
    error_responses,
    require_admin,
)
from app.config import Settings
from app.errors import MalformedBody, NotFound
from app.models import KnowledgeDocument, utcnow
from app.services.knowledge import Passage, SearchFilter, documents
from app.services.knowledge.errors import DocumentTooLarge, InvalidDocument, UnsupportedType
from app.services.knowledge.ingest import delete_document, ingest
from app.services.knowledge.parsing import parse_file
from app.services.knowledge.schemas import DocType, FaqPair, ParsedDocument, Section
from app.services import usage
from app.services.pipeline import OFFLINE_MODEL, free_question

router = APIRouter(
    prefix="/api/knowledge", tags=["admin: knowledge"], dependencies=[Depends(require_admin)], responses=ADMIN_ERRORS
)

BotId = Annotated[str, Field(min_length=1, max_length=100)]
# Multipart framing and form fields around the file.
_FORM_OVERHEAD = 64_000


class TextDocument(BaseModel):
    """A document sent as JSON: text (plain or Markdown) or FAQ pairs."""

    model_config = ConfigDict(extra="forbid", strict=True)

    bot_id: BotId
    title: str = Field(min_length=1, max_length=255)
    source: str | None = Field(default=None, max_length=255, description="Identity for re-uploads; the title if absent")
    type: Literal[DocType.TEXT, DocType.MARKDOWN, DocType.FAQ] = DocType.TEXT
    category: str | None = Field(default=None, max_length=100)
    text: str | None = None
    faqs: list[FaqPair] | None = None


class DocumentOut(BaseModel):
    id: uuid.UUID
    bot_id: str
    title: str
    source: str
    type: str
    category: str | None
    version: int
    chunk_count: int
    char_count: int
    created_at: datetime
    updated_at: datetime
    replaced: bool = False


class DocumentList(BaseModel):
    items: list[DocumentOut]
    total: int


class SearchRequest(BaseModel):
    # Strict: `false` is not a threshold, nor "5" a k, as the schema says.
    model_config = ConfigDict(extra="forbid", strict=True)

    bot_id: BotId
    query: str = Field(min_length=1, max_length=2000)
    k: JsonInt = Field(default=5, ge=1, le=50)
    threshold: float | None = Field(default=None, ge=0, le=1)
    filter: SearchFilter | None = None


class SearchResult(BaseModel):
    passages: list[Passage]


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    bot_id: BotId
    question: str = Field(min_length=1, max_length=2000)


class QueryAnswer(BaseModel):
    """The bot's answer to a free question, as a Kakao user without history would get it."""

    answer: str
    mode: Literal["llm", "offline"]
    found: bool
    sources: list[Passage]


# The body is read by hand (size cap first), so its schema is declared here; main.py adds its models to the
# OpenAPI components.
_TEXT_DOCUMENT_SCHEMA = TextDocument.model_json_schema(ref_template="#/components/schemas/{model}")
UPLOAD_SCHEMA_DEFS: dict[str, Any] = _TEXT_DOCUMENT_SCHEMA.pop("$defs", {})
_UPLOAD_DOC = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "bot_id"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        # Fields are stripped of surrounding spaces before their lengths are checked.
                        "bot_id": {"type": "string", "pattern": r"^\s*\S.{0,99}$"},
                        "title": {"type": "string", "maxLength": 255},
                        "category": {"type": "string", "maxLength": 100},
                    },
                }
            },
            "application/json": {"schema": _TEXT_DOCUMENT_SCHEMA},
        }
    }
}


@router.post(
    "/documents",
    response_model=DocumentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Upload a file (txt, md, pdf, FAQ csv/json) or JSON text; the same source replaces the old one",
    openapi_extra=_UPLOAD_DOC,
    responses=error_responses(400, 409, 413, 415, 422, 502, 503),
)
async def upload_document(request: Request, session: SessionDep, kb: KnowledgeDep) -> DocumentOut:
    settings: Settings = request.app.state.settings
    parsed = await _read_upload(request, settings.knowledge_max_upload_bytes)
    with usage.collect() as calls:  # the chunks' embeddings
        result = await ingest(session, kb, parsed)
    await usage.record_outside_budgets(settings, request.app.state.db.engine, calls, bot_id=parsed.bot_id, now=utcnow())
    return _out(result.document, replaced=result.replaced)


@router.get("/documents", response_model=DocumentList)
async def list_documents(
    session: SessionDep,
    bot_id: Annotated[str | None, Query(max_length=100)] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    doc_type: Annotated[DocType | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> DocumentList:
    rows, total = await documents.search(
        session, bot_id=bot_id, category=category, doc_type=doc_type, limit=limit, offset=offset
    )
    return DocumentList(items=[_out(row) for row in rows], total=total)


@router.delete("/documents/{doc_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404))
async def remove_document(doc_id: uuid.UUID, session: SessionDep, kb: KnowledgeDep) -> Response:
    if not await delete_document(session, kb, doc_id):
        raise NotFound(f"no document {doc_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/search", response_model=SearchResult, responses=error_responses(400))
async def search(body: SearchRequest, request: Request, kb: KnowledgeDep) -> SearchResult:
    with usage.collect() as calls:
        passages = await kb.retrieve(
            body.bot_id, body.query, k=body.k, threshold=body.threshold, search_filter=body.filter
        )
    await _record(request, calls, body.bot_id)
    return SearchResult(passages=passages)


@router.post("/query", response_model=QueryAnswer, responses=error_responses(400, 502, 503))
async def query(body: QueryRequest, request: Request, pipeline: PipelineDep) -> QueryAnswer:
    timeout = request.app.state.settings.task_answer_timeout_seconds
    with usage.collect() as calls:
        answer = await pipeline.answer_question(free_question(body.bot_id, body.question), timeout=timeout)
    await _record(request, calls, body.bot_id)
    mode = "offline" if answer.model == OFFLINE_MODEL else "llm"
    return QueryAnswer(answer=answer.text, mode=mode, found=answer.found, sources=answer.passages)


async def _record(request: Request, calls: list[usage.ModelCall], bot_id: str) -> None:
    state = request.app.state
    await usage.record_outside_budgets(state.settings, state.db.engine, calls, bot_id=bot_id, now=utcnow())


async def _read_upload(request: Request, limit: int) -> ParsedDocument:
    """Parse a multipart file or a JSON document, refusing bodies over `limit` before reading them."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + _FORM_OVERHEAD:
        raise DocumentTooLarge(_too_large(limit))
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            bot_id = str(form.get("bot_id") or "").strip()
            if not isinstance(upload, StarletteUploadFile) or not upload.filename:
                raise InvalidDocument("put the file in the 'file' field")
            if not bot_id or len(bot_id) > 100:
                raise InvalidDocument("the 'bot_id' field (1 to 100 characters) is required")
            data = await _read_limited(upload, limit)
            return parse_file(
                data,
                upload.filename,
                bot_id=bot_id,
                title=_field(form.get("title"), 255),
                category=_field(form.get("category"), 100),
            )
    if content_type.startswith("application/json"):
        body = await request.body()
        if len(body) > limit:
            raise DocumentTooLarge(_too_large(limit))
        try:
            doc = TextDocument.model_validate_json(body)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if any(e["type"] == "json_invalid" for e in errors):
                # As FastAPI answers a body it cannot parse (the raw bytes are no JSON to echo back).
                raise MalformedBody("body is not valid JSON") from None
            # Shaped like FastAPI's own body validation errors, as if FastAPI had read the body.
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
        return _from_json(doc)
    raise UnsupportedType("send multipart/form-data (a file) or application/json (text)")


async def _read_limited(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise DocumentTooLarge(_too_large(limit))
    return data


def _from_json(doc: TextDocument) -> ParsedDocument:
    parsed = ParsedDocument(
        bot_id=doc.bot_id, title=doc.title, source=doc.source or doc.title, type=doc.type, category=doc.category
    )
    if doc.type is DocType.FAQ:
        if not doc.faqs:
            raise InvalidDocument("a FAQ document needs a 'faqs' list of question and answer pairs")
        parsed.faqs = doc.faqs
    else:
        if not doc.text or not doc.text.strip():
            raise InvalidDocument("'text' is empty")
        parsed.sections = [Section(text=doc.text)]
    return parsed


def _field(value: object, max_length: int) -> str | None:
    text = str(value).strip() if isinstance(value, str) else ""
    if len(text) > max_length:
        raise InvalidDocument(f"form fields hold at most {max_length} characters")
    return text or None


def _too_large(limit: int) -> str:
    return f"the upload is too large; the limit is {limit / 1_000_000:.1f} MB"


def _out(document: KnowledgeDocument, *, replaced: bool = False) -> DocumentOut:
    return DocumentOut.model_validate({**document.model_dump(), "replaced": replaced})
