"""The single-use callback and the answers it may carry: callback moves, orphaned sends, answers taken for delivery."""

import uuid
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AIProcessingTask, CallbackKind, CallbackStatus, TaskStatus, utcnow
from app.queue.connection import Conn
from app.queue.schemas import OrphanedCallback
from app.queue.sql import ANSWER_OWED
from app.queue.tasks import too_late

_task = AIProcessingTask.__table__
_ORPHAN_COLUMNS = [_task.c[name] for name in OrphanedCallback.model_fields]
# The owed condition is one SQL text for both paths; `now` binds with the column's own type.
_ANSWER_OWED = text(ANSWER_OWED.format(now=":now")).bindparams(bindparam("now", type_=_task.c.callback_deadline.type))


async def move_callback(
    session: Conn,
    task_id: uuid.UUID,
    *,
    from_: CallbackStatus,
    to: CallbackStatus,
    sender: str | None = None,
    error: str | None = None,
    delivered_at: datetime | None = None,
    lease_until: datetime | None = None,
    kind: CallbackKind | None = None,
) -> bool:
    """Conditional callback state change; False when another actor moved it first.

    Into `sending`: `sender` holds the POST until `lease_until`, carrying `kind`. Out of `sending`: only its
    sender may move it (a worker whose send was taken over after its lease ran out moves nothing).
    """
    values: dict[str, object] = {"callback_status": to, "callback_lease_expires_at": lease_until}
    if sender is not None:
        values["callback_sender"] = sender
    if kind is not None:
        values["callback_kind"] = kind
    if error is not None:
        values["callback_error"] = error
    if delivered_at is not None:
        values["answer_delivered_at"] = delivered_at
    held = _task.c.callback_status == from_
    if from_ == CallbackStatus.SENDING:
        held &= _task.c.callback_sender.is_not_distinct_from(sender)
    result = await session.execute(update(_task).where(_task.c.id == task_id, held).values(**values))
    return result.rowcount == 1


async def take_orphaned_callbacks(
    session: Conn, *, worker_id: str, now: datetime, lease_seconds: float, skip: list[uuid.UUID]
) -> list[OrphanedCallback]:
    """Take over the callbacks left `sending` by dead senders (lease expired) whose deadline is still ahead.

    Their POST's outcome was lost with the sender: it is sent once more (Kakao refuses a repeat of one that
    arrived). `skip`: tasks this process is still working on, whose POST must never be doubled.
    """
    rows = (
        await session.execute(
            update(_task)
            .where(
                _task.c.callback_status == CallbackStatus.SENDING,
                _task.c.callback_lease_expires_at < now,
                _task.c.callback_deadline > now,
                _task.c.id.not_in(skip),
            )
            .values(callback_sender=worker_id, callback_lease_expires_at=now + timedelta(seconds=lease_seconds))
            .returning(*_ORPHAN_COLUMNS)
        )
    ).mappings().all()
    return [OrphanedCallback.model_validate(dict(row)) for row in rows]


async def take_overdue_callbacks(
    session: Conn, *, worker_id: str, now: datetime, cutoff: datetime, lease_seconds: float
) -> list[OrphanedCallback]:
    """Take the open callbacks of unclaimed tasks that cannot make their window, for an apology (no model call).

    One conditional UPDATE (pending -> sending, held by `worker_id`): a worker storing an answer or another
    sweep can never spend the same callback. The task stays pending for a later answer, kept for the user.
    A read comes first: on SQLite even an UPDATE that matches nothing takes the write lock, twice a second.
    """
    overdue = (_task.c.status == TaskStatus.PENDING) & too_late(now, cutoff)
    if (await session.execute(select(_task.c.id).where(overdue).limit(1))).first() is None:
        return []
    rows = (
        await session.execute(
            update(_task)
            .where(overdue)
            .values(
                callback_status=CallbackStatus.SENDING,
                callback_sender=worker_id,
                callback_lease_expires_at=now + timedelta(seconds=lease_seconds),
                callback_kind=CallbackKind.APOLOGY,
            )
            .returning(*_ORPHAN_COLUMNS)
        )
    ).mappings().all()
    return [OrphanedCallback.model_validate(dict(row)) for row in rows]


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


