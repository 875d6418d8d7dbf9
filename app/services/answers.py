"""Answers owed to a user: late ones (callback failed or expired) and ones awaited in the request."""

import asyncio
import time
import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kakao import SkillResponse, text_reply
from app.models import AIProcessingTask, TaskStatus, utcnow
from app.services import texts

_task = AIProcessingTask.__table__


async def take_answer(session: AsyncSession, task_id: uuid.UUID, *, now: datetime) -> str | None:
    """Claim one task's answer for delivery if it is ready and not delivered yet."""
    return (
        await session.execute(
            update(_task)
            .where(
                _task.c.id == task_id,
                _task.c.status == TaskStatus.COMPLETED,
                _task.c.answer_delivered_at.is_(None),
            )
            .values(answer_delivered_at=now)
            .returning(_task.c.ai_response)
        )
    ).scalar_one_or_none()


async def open_task_count(session: AsyncSession, user_id: int) -> int:
    """Tasks of the user still pending or running."""
    return (
        await session.execute(
            select(func.count())
            .select_from(_task)
            .where(_task.c.user_id == user_id, _task.c.status.in_([TaskStatus.PENDING, TaskStatus.PROCESSING]))
        )
    ).scalar_one()


async def wait_for_answer(
    sessions: async_sessionmaker[AsyncSession], task_id: uuid.UUID, *, timeout: float
) -> str | None:
    """Poll for the task's answer until `timeout`; the answer is marked delivered when taken."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        async with sessions() as session, session.begin():
            answer = await take_answer(session, task_id, now=utcnow())
        if answer is not None:
            return answer
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 0.25)


def late_answer_reply(answers: list[str], follow_up: str | None = None) -> SkillResponse:
    """One reply carrying late answers (labelled) and, optionally, a note about the new message."""
    parts = [texts.LATE_ANSWER_PREFIX + answer for answer in answers]
    if follow_up:
        parts.append(follow_up)
    quick = [texts.CHECK_ANSWER] if follow_up == texts.PREPARING else None
    return text_reply("\n\n".join(parts), quick_replies=quick)
