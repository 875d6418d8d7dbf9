"""SQL for `knowledgedocument`: the list of documents, their versions, and removal."""

import uuid

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import KnowledgeDocument


async def get(session: AsyncSession, doc_id: uuid.UUID) -> KnowledgeDocument | None:
    return await session.get(KnowledgeDocument, doc_id)


async def has_documents(session: AsyncSession, bot_id: str) -> bool:
    """Whether the bot has any document; a bot without one needs no retrieval (and loads nothing)."""
    found = await session.scalar(select(KnowledgeDocument.id).where(KnowledgeDocument.bot_id == bot_id).limit(1))
    return found is not None


async def by_source(session: AsyncSession, bot_id: str, source: str) -> KnowledgeDocument | None:
    return await session.scalar(
        select(KnowledgeDocument).where(KnowledgeDocument.bot_id == bot_id, KnowledgeDocument.source == source)
    )


async def search(
    session: AsyncSession,
    *,
    bot_id: str | None = None,
    category: str | None = None,
    doc_type: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[KnowledgeDocument], int]:
    """Documents matching every given filter, newest first, and how many match in all."""
    conditions = [
        column == value
        for column, value in (
            (KnowledgeDocument.bot_id, bot_id),
            (KnowledgeDocument.category, category),
            (KnowledgeDocument.type, doc_type),
        )
        if value is not None
    ]
    total = await session.scalar(select(func.count()).select_from(KnowledgeDocument).where(*conditions))
    rows = await session.scalars(
        select(KnowledgeDocument)
        .where(*conditions)
        .order_by(KnowledgeDocument.updated_at.desc(), KnowledgeDocument.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total or 0


async def save(session: AsyncSession, document: KnowledgeDocument, *, previous_version: int | None) -> bool:
    """Insert a new document, or move an existing one from `previous_version` to its new version.

    False when another upload of the same source got there first; commits on success.
    """
    try:
        if previous_version is None:
            session.add(document)
            await session.flush()
        else:
            values = document.model_dump(exclude={"id", "bot_id", "source", "created_at"})
            result = await session.execute(
                update(KnowledgeDocument)
                .where(KnowledgeDocument.id == document.id, KnowledgeDocument.version == previous_version)
                .values(**values)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                return False
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return False
    return True


async def remove(session: AsyncSession, doc_id: uuid.UUID) -> None:
    await session.execute(delete(KnowledgeDocument).where(KnowledgeDocument.id == doc_id))
    await session.commit()
