"""지식베이스: upload a file or text, list and delete documents, search with the passages' scores."""

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from app.api.deps import KnowledgeDep, SessionDep
from app.console.deps import ConsoleDep, render
from app.errors import AppError, NotFound
from app.services.knowledge import documents
from app.services.knowledge.errors import DocumentTooLarge, InvalidDocument
from app.services.knowledge.ingest import delete_document, ingest
from app.services.knowledge.parsing import parse_file
from app.services.knowledge.schemas import DocType, ParsedDocument, Section

router = APIRouter(prefix="/console/knowledge", include_in_schema=False)
BotField = Annotated[str, Form(min_length=1, max_length=100)]
Filter = Annotated[str, Query(max_length=100)]
Question = Annotated[str, Query(max_length=2000)]
# Multipart framing and the form fields around the file.
FORM_OVERHEAD = 64_000
NOTICES = {"uploaded": "문서를 올렸어요.", "deleted": "문서를 삭제했어요."}


async def _page(
    request: Request, session: SessionDep, kb: KnowledgeDep, *, bot: str = "", q: str = "", status_code: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    rows, total = await documents.search(session, bot_id=bot.strip() or None, limit=200)
    passages = await kb.retrieve(bot.strip(), q.strip(), k=5) if q.strip() and bot.strip() else None
    return render(request, "knowledge.html", {
        "documents": rows, "total": total, "bot": bot, "q": q, "passages": passages, "error": error,
        "notice": NOTICES.get(request.query_params.get("done", "")),
        "default_bot": request.app.state.settings.default_bot_id,
    }, status_code=status_code)


@router.get("", response_class=HTMLResponse)
async def knowledge(
    request: Request, session: SessionDep, kb: KnowledgeDep, _: ConsoleDep, bot: Filter = "", q: Question = ""
) -> HTMLResponse:
    return await _page(request, session, kb, bot=bot, q=q)


async def upload_size_guard(request: Request) -> None:
    """Refuse an upload whose declared size is over the limit before its body is read (and spooled)."""
    limit = request.app.state.settings.knowledge_max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        raise DocumentTooLarge(_too_large(limit))


# The form is read here, after the size guard and the session check, not by FastAPI before them.
@router.post("/upload", response_class=HTMLResponse, dependencies=[Depends(upload_size_guard)])
async def upload(request: Request, _: ConsoleDep, session: SessionDep, kb: KnowledgeDep) -> Response:
    limit = request.app.state.settings.knowledge_max_upload_bytes
    async with request.form(max_files=1, max_fields=10) as form:
        bot_id = str(form.get("bot_id") or "").strip()
        try:
            file = form.get("file")
            if not isinstance(file, UploadFile) or not file.filename:
                raise InvalidDocument("choose a file to upload")
            if not 1 <= len(bot_id) <= 100:
                raise InvalidDocument("the bot id (1 to 100 characters) is required")
            data = await file.read(limit + 1)
            if len(data) > limit:
                raise DocumentTooLarge(_too_large(limit))
            parsed = parse_file(
                data, file.filename, bot_id=bot_id, title=_field(form.get("title"), 255),
                category=_field(form.get("category"), 100),
            )
            return await _ingested(session, kb, parsed)
        except AppError as exc:
            return await _refused(request, session, kb, bot_id[:100], exc)


@router.post("/text", response_class=HTMLResponse)
async def add_text(
    request: Request,
    session: SessionDep,
    kb: KnowledgeDep,
    _: ConsoleDep,
    bot_id: BotField,
    title: Annotated[str, Form(min_length=1, max_length=255)],
    text: Annotated[str, Form(max_length=1_000_000)],
) -> Response:
    try:
        if not text.strip():
            raise InvalidDocument("'text' is empty")
        parsed = ParsedDocument(
            bot_id=bot_id.strip(), title=title.strip(), source=title.strip(), type=DocType.TEXT,
            sections=[Section(text=text)],
        )
        return await _ingested(session, kb, parsed)
    except AppError as exc:
        return await _refused(request, session, kb, bot_id, exc)


@router.post("/{doc_id}/delete")
async def delete(doc_id: uuid.UUID, session: SessionDep, kb: KnowledgeDep, _: ConsoleDep) -> Response:
    if not await delete_document(session, kb, doc_id):
        raise NotFound(f"no document {doc_id}")
    return RedirectResponse("/console/knowledge?done=deleted", status_code=303)


async def _ingested(session: SessionDep, kb: KnowledgeDep, parsed: ParsedDocument) -> Response:
    result = await ingest(session, kb, parsed)
    query = urlencode({"bot": result.document.bot_id, "done": "uploaded"})
    return RedirectResponse(f"/console/knowledge?{query}", status_code=303)


async def _refused(
    request: Request, session: SessionDep, kb: KnowledgeDep, bot_id: str, exc: AppError
) -> HTMLResponse:
    await session.rollback()
    return await _page(
        request, session, kb, bot=bot_id, status_code=exc.status, error=f"문서를 올리지 못했어요: {exc.message}"
    )


def _field(value: object, max_length: int) -> str | None:
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > max_length:
        raise InvalidDocument(f"form fields hold at most {max_length} characters")
    return text or None


def _too_large(limit: int) -> str:
    return f"the upload is too large; the limit is {limit / 1_000_000:.1f} MB"
