"""Put a parsed document into both stores (Chroma chunks, then its SQL row) and take it out again."""

import hashlib
import uuid
from dataclasses import dataclass

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import KnowledgeDocument, utcnow
from app.services.knowledge import documents
from app.services.knowledge.base import Chunk, KnowledgeBase
from app.services.knowledge.chunking import chunk_markdown, chunk_text
from app.services.knowledge.errors import DocumentConflict, InvalidDocument
from app.services.knowledge.schemas import DocType, ParsedDocument


@dataclass
class IngestResult:
    document: KnowledgeDocument
    replaced: bool


async def ingest(session: AsyncSession, kb: KnowledgeBase, parsed: ParsedDocument) -> IngestResult:
    """Store the document's chunks under a new version, record it, then drop the older version's chunks.

    Chroma is written outside any SQL transaction so a large upload never holds the database's
    write lock; a failure removes the new chunks and leaves the previous version in place.
    """
    existing = await documents.by_source(session, parsed.bot_id, parsed.source)
    if existing is not None:
        session.expunge(existing)  # keep its values readable after the rollback
    await session.rollback()  # end the read; nothing below may wait on it
    now = utcnow()
    document = KnowledgeDocument(
        id=existing.id if existing else uuid.uuid4(),
        bot_id=parsed.bot_id,
        source=parsed.source,
        title=parsed.title,
        type=parsed.type,
        category=parsed.category,
        version=existing.version + 1 if existing else 1,
        char_count=parsed.char_count,
        content_hash=content_hash(parsed),
        created_at=existing.created_at if existing else now,
        updated_at=now,
    )
    chunks = build_chunks(parsed, document, size=kb.settings.rag_chunk_size, overlap=kb.settings.rag_chunk_overlap)
    if not chunks:
        raise InvalidDocument("no readable content in the document")
    document.chunk_count = len(chunks)
    new_version = {"$and": [{"doc_id": str(document.id)}, {"version": document.version}]}
    try:
        await kb.add(parsed.bot_id, chunks)
        saved = await documents.save(session, document, previous_version=existing.version if existing else None)
    except BaseException:
        # Cancellation included: a half-written version must not stay searchable.
        await _forget(kb, parsed.bot_id, new_version)
        raise
    if not saved:
        await _forget(kb, parsed.bot_id, new_version)
        raise DocumentConflict("the same document is being uploaded concurrently; try again shortly")
    older = {"$and": [{"doc_id": str(document.id)}, {"version": {"$ne": document.version}}]}
    try:
        await kb.delete(parsed.bot_id, older)
    except Exception:  # noqa: BLE001 - best effort: the new version is already live
        # The next upload of this source removes the leftovers.
        logger.exception("Could not remove old chunks of knowledge document {}", document.id)
    logger.info(
        "Knowledge document {} {}: bot={} source={!r} chunks={}",
        document.id,
        "replaced" if existing else "added",
        parsed.bot_id,
        parsed.source,
        len(chunks),
    )
    return IngestResult(document, replaced=existing is not None)


async def delete_document(session: AsyncSession, kb: KnowledgeBase, doc_id: uuid.UUID) -> bool:
    """Remove the chunks, then the row (so a failure can simply be retried); False if unknown."""
    document = await documents.get(session, doc_id)
    if document is None:
        return False
    session.expunge(document)
    await session.rollback()
    await kb.delete(document.bot_id, {"doc_id": str(doc_id)})
    await documents.remove(session, doc_id)
    logger.info("Knowledge document {} deleted: bot={} source={!r}", doc_id, document.bot_id, document.source)
    return True


async def _forget(kb: KnowledgeBase, bot_id: str, where: dict[str, object]) -> None:
    try:
        await kb.delete(bot_id, where)
    except Exception:  # noqa: BLE001 - best effort: the original error is what the caller must see
        logger.exception("Could not remove the chunks of a failed knowledge upload (bot={})", bot_id)


def build_chunks(parsed: ParsedDocument, document: KnowledgeDocument, *, size: int, overlap: int) -> list[Chunk]:
    """FAQ: one chunk per question/answer pair; other types: paragraph and sentence chunks."""
    base: dict[str, str | int] = {
        "doc_id": str(document.id),
        "version": document.version,
        "title": document.title,
        "source": document.source,
        "type": str(document.type),
        "created_at": document.updated_at.isoformat(),
    }
    if document.category:
        base["category"] = document.category
    pieces: list[tuple[str, dict[str, str | int], str | None]] = []
    for pair in parsed.faqs:
        extra: dict[str, str | int] = {"answer": pair.answer}
        if pair.category:
            extra["category"] = pair.category
        # The question twice: users' words match the question far more than the answer.
        index_text = f"{pair.question}\n{pair.question}\n{pair.answer}"
        pieces.append((f"질문: {pair.question}\n답변: {pair.answer}", extra, index_text))
    split = chunk_markdown if parsed.type is DocType.MARKDOWN else chunk_text
    for section in parsed.sections:
        page = {"page": section.page} if section.page else {}
        pieces.extend((text, dict(page), None) for text in split(section.text, size=size, overlap=overlap))
    return [
        Chunk(f"{document.id}:{document.version}:{i}", text, {**base, **extra, "chunk_index": i}, index_text)
        for i, (text, extra, index_text) in enumerate(pieces)
    ]


def content_hash(parsed: ParsedDocument) -> str:
    digest = hashlib.sha256()
    for section in parsed.sections:
        digest.update(section.text.encode())
        digest.update(b"\x00")
    for pair in parsed.faqs:
        digest.update(f"{pair.question}\x00{pair.answer}\x00{pair.category or ''}\x00".encode())
    return digest.hexdigest()
