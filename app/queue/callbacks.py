"""The single-use callback and the answers it may carry: callback moves, answers taken for delivery."""

import uuid
from datetime import datetime

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AIProcessingTask, CallbackStatus, TaskStatus, utcnow
from app.queue.connection import Conn
from app.queue.sql import ANSWER_OWED

_task = AIProcessingTask.__table__
# The owed condition is one SQL text for both paths; `now` binds with the column's own type.
_ANSWER_OWED = text(ANSWER_OWED.format(now=":now")).bindparams(bindparam("now", type_=_task.c.callback_deadline.type))


async def move_callback(
    session: Conn,
    task_id: uuid.UUID,
    *,
    from_: CallbackStatus,
    to: CallbackStatus,
    error: str | None = None,
    delivered_at: datetime | None = None,
) -> bool:
    """Conditional callback state change; False when another actor moved it first."""
    values: dict[str, object] = {"callback_status": to}
    if error is not None:
        values["callback_error"] = error
    if delivered_at is not None:
        values["answer_delivered_at"] = delivered_at
    result = await session.execute(
        update(_task).where(_task.c.id == task_id, _task.c.callback_status == from_).values(**values)
    )
    return result.rowcount == 1


async def take_answer(session: AsyncSession, task_id: uuid.UUID, *, now: datetime) -> str | None:
    """Claim one task's answer for delivery (e.g. in the synchronous reply) if it is ready and not delivered."""
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


async def take_pending_answers(session: AsyncSession, user_id: int, *, now: datetime | None = None) -> list[str]:
    """Answers still owed to the user, oldest first, marked delivered in the caller's transaction.

    An answer whose callback may still go out (pending/sending before its deadline) is left alone.
    """
    now = now or utcnow()
    owed = (
        select(_task.c.id)
        .where(_task.c.user_id == user_id, _ANSWER_OWED.bindparams(now=now))
        .with_for_update(skip_locked=True)
        .cte("owed")
    )
    rows = (
        await session.execute(
            update(_task)
            .where(_task.c.id.in_(select(owed.c.id)), _task.c.answer_delivered_at.is_(None))
            .values(answer_delivered_at=now)
            .returning(_task.c.ai_response, _task.c.created_at)
        )
    ).all()
    return [row.ai_response for row in sorted(rows, key=lambda r: r.created_at) if row.ai_response]


