"""Reads of the queue for the admin and user APIs."""

import uuid
from collections import Counter
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AIProcessingTask, AppUser, TaskStatus
from app.queue.schemas import ClaimedTask, QueueStats

_task = AIProcessingTask.__table__


async def get_task(session: AsyncSession, task_id: uuid.UUID) -> AIProcessingTask | None:
    """One task, fresh from the database."""
    stmt = select(AIProcessingTask).where(AIProcessingTask.id == task_id).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_tasks(
    session: AsyncSession,
    *,
    status: TaskStatus | None,
    limit: int,
    offset: int,
    bot_id: str | None = None,
    kakao_user_id: str | None = None,
) -> list[AIProcessingTask]:
    """Tasks newest first, optionally of one status, one bot and one Kakao user."""
    stmt = select(AIProcessingTask).order_by(AIProcessingTask.created_at.desc()).limit(limit).offset(offset)
    if status is not None:
        stmt = stmt.where(AIProcessingTask.status == status)
    if bot_id is not None:
        stmt = stmt.where(AIProcessingTask.bot_id == bot_id)
    if kakao_user_id is not None:
        users = select(AppUser.id).where(AppUser.kakao_user_id == kakao_user_id)
        stmt = stmt.where(AIProcessingTask.user_id.in_(users))
    return list((await session.execute(stmt)).scalars())


async def latest_answered_task(session: AsyncSession, conversation_id: int) -> AIProcessingTask | None:
    """The conversation's most recent completed (answered) task; newer unanswered ones are skipped."""
    stmt = (
        select(AIProcessingTask)
        .where(AIProcessingTask.conversation_id == conversation_id, AIProcessingTask.status == TaskStatus.COMPLETED)
        .order_by(AIProcessingTask.created_at.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def stats(session: AsyncSession, *, now: datetime) -> QueueStats:
    """Task counts by status and how long the oldest runnable task has waited."""
    counts = Counter({status.value: 0 for status in TaskStatus})
    for status, count in (await session.execute(select(_task.c.status, func.count()).group_by(_task.c.status))).all():
        counts[status] = count
    oldest = (
        await session.execute(
            select(func.min(_task.c.run_after)).where(_task.c.status == TaskStatus.PENDING, _task.c.run_after <= now)
        )
    ).scalar_one()
    age = max((now - oldest).total_seconds(), 0.0) if oldest else None
    return QueueStats(by_status=dict(counts), oldest_pending_seconds=age)




async def failed_holding_tokens(session: AsyncSession, *, limit: int = 500) -> list[ClaimedTask]:
    """Failed tasks still marked as holding a budget reservation (failed by the reaper, whose runner died)."""
    stmt = (
        select(*(_task.c[name] for name in ClaimedTask.model_fields))
        .where(_task.c.status == TaskStatus.FAILED, _task.c.reserved_tokens > 0)
        .limit(limit)
    )
    return [ClaimedTask.model_validate(dict(row)) for row in (await session.execute(stmt)).mappings()]
