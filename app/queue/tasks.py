"""A task's life in SQLAlchemy Core: enqueue, claim, lease, complete, retry, fail, release, reap, prune.

Functions take the caller's session or connection and never commit: the caller owns the transaction
(one-statement calls may run on an `autocommit` connection). Time is always passed in from Python
(`now`), one clock for every backend.
"""

import uuid
from datetime import datetime, timedelta

from sqlalchemy import case, delete, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    AIProcessingTask,
    CallbackKind,
    CallbackStatus,
    Message,
    PromptLog,
    Role,
    TaskStatus,
)
from app.queue.connection import Conn, notify
from app.queue.schemas import ClaimedTask, LeaseLost, StoredAnswer

FINISHED = (TaskStatus.COMPLETED, TaskStatus.FAILED)

_task = AIProcessingTask.__table__
_message = Message.__table__
_promptlog = PromptLog.__table__
_CLAIMED_COLUMNS = [_task.c[name] for name in ClaimedTask.model_fields]


async def enqueue(
    session: AsyncSession,
    *,
    bot_id: str,
    user_id: int,
    conversation_id: int,
    message_id: int,
    now: datetime,
    max_attempts: int,
    block_name: str | None = None,
    callback_url: str | None = None,
    callback_not_before: datetime | None = None,
    callback_deadline: datetime | None = None,
    user_is_friend: bool | None = None,
) -> uuid.UUID:
    """Insert a pending task in the caller's transaction; PostgreSQL workers are notified on commit."""
    task_id = uuid.uuid4()
    await session.execute(
        insert(_task).values(
            id=task_id,
            bot_id=bot_id,
            user_id=user_id,
            conversation_id=conversation_id,
            message_id=message_id,
            block_name=block_name,
            status=TaskStatus.PENDING,
            attempts=0,
            max_attempts=max_attempts,
            run_after=now,
            callback_url=callback_url,
            callback_not_before=callback_not_before,
            callback_deadline=callback_deadline,
            callback_status=CallbackStatus.PENDING if callback_url else CallbackStatus.NONE,
            input_tokens=0,
            output_tokens=0,
            reserved_tokens=0,
            user_is_friend=user_is_friend,
            created_at=now,
        )
    )
    await notify(session)
    return task_id


def too_late(now: datetime, cutoff: datetime):  # type: ignore[no-untyped-def]
    """WHERE clause: an open callback whose deadline falls before `cutoff` (now + apology margin + expected
    answer time) can no longer carry the answer; the overdue sweep spends it on an apology instead."""
    return (
        (_task.c.callback_status == CallbackStatus.PENDING)
        & (_task.c.callback_deadline >= now)
        & (_task.c.callback_deadline < cutoff)
    )


async def claim(
    session: Conn,
    *,
    worker_id: str,
    limit: int,
    now: datetime,
    lease_seconds: float,
    cutoff: datetime | None = None,
) -> list[ClaimedTask]:
    """Lease up to `limit` runnable tasks; the attempt is counted here.

    Open callbacks that can still make their window come first, then the rest (no callback, spent, expired),
    oldest first within each. With `cutoff`, a task whose open callback is too late for it is left to the
    overdue sweep (`take_overdue_callbacks`), so no model call starts for a window that cannot be made.
    """
    runnable = [_task.c.status == TaskStatus.PENDING, _task.c.run_after <= now]
    if cutoff is not None:
        runnable.append(~too_late(now, cutoff))
    makeable = (_task.c.callback_status == CallbackStatus.PENDING) & (_task.c.callback_deadline >= (cutoff or now))
    ready = (
        select(_task.c.id)
        .where(*runnable)
        .order_by(case((makeable, 0), else_=1), _task.c.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL only; SQLite has one writer anyway
        .cte("ready")
    )
    stmt = (
        update(_task)
        .where(_task.c.id.in_(select(ready.c.id)))
        .values(
            status=TaskStatus.PROCESSING,
            attempts=_task.c.attempts + 1,
            locked_by=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            started_at=now,
        )
        .returning(*_CLAIMED_COLUMNS)
    )
    rows = (await session.execute(stmt)).mappings().all()
    tasks = [ClaimedTask.model_validate(dict(row)) for row in rows]
    return sorted(tasks, key=lambda t: t.created_at)


async def renew_leases(
    session: Conn, task_ids: list[uuid.UUID], *, worker_id: str, now: datetime, lease_seconds: float
) -> int:
    """Extend the leases of the tasks this worker is still running and of the callbacks it is still POSTing."""
    if not task_ids:
        return 0
    until = literal(now + timedelta(seconds=lease_seconds), _task.c.lease_expires_at.type)
    runs = (_task.c.locked_by == worker_id) & (_task.c.status == TaskStatus.PROCESSING)
    sends = (_task.c.callback_sender == worker_id) & (_task.c.callback_status == CallbackStatus.SENDING)
    result = await session.execute(
        update(_task)
        .where(_task.c.id.in_(task_ids), runs | sends)
        .values(
            lease_expires_at=case((runs, until), else_=_task.c.lease_expires_at),
            callback_lease_expires_at=case((sends, until), else_=_task.c.callback_lease_expires_at),
        )
    )
    return result.rowcount


def _held(task_id: uuid.UUID, worker_id: str):  # type: ignore[no-untyped-def]
    """WHERE clause: the task is still ours (a lost lease means someone else owns it now)."""
    return (_task.c.id == task_id) & (_task.c.locked_by == worker_id) & (_task.c.status == TaskStatus.PROCESSING)


async def complete(
    conn: Conn,
    task: ClaimedTask,
    *,
    worker_id: str,
    answer: StoredAnswer,
    now: datetime,
    send_lease_until: datetime | None = None,
) -> int:
    """Store the assistant message and mark the task completed; returns the message id.

    `send_lease_until` also moves a pending callback to `sending`: this worker will POST the answer, holding
    the send until then (renewed while it runs). Raises LeaseLost when the task is no longer ours: the caller
    must roll back.
    """
    message_id = (
        await conn.execute(
            insert(_message)
            .values(
                conversation_id=task.conversation_id,
                user_id=task.user_id,
                role=Role.ASSISTANT,
                text=answer.text,
                created_at=now,
            )
            .returning(_message.c.id)
        )
    ).scalar_one()
    values: dict[str, object] = {
        "status": TaskStatus.COMPLETED,
        "ai_response": answer.text,
        "response_message_id": message_id,
        "input_tokens": answer.input_tokens,
        "output_tokens": answer.output_tokens,
        "completed_at": now,
        "locked_by": None,
        "lease_expires_at": None,
    }
    if send_lease_until is not None:
        takes = _task.c.callback_status == CallbackStatus.PENDING
        for column, taken in (
            ("callback_status", CallbackStatus.SENDING),
            ("callback_sender", worker_id),
            ("callback_lease_expires_at", send_lease_until),
            ("callback_kind", CallbackKind.ANSWER),
        ):
            values[column] = case((takes, literal(taken, _task.c[column].type)), else_=_task.c[column])
    held = await conn.execute(update(_task).where(_held(task.id, worker_id)).values(**values))
    if held.rowcount != 1:
        raise LeaseLost(str(task.id))
    if answer.rendered_prompt is not None:
        await conn.execute(
            insert(_promptlog).values(msg_id=message_id, task_id=task.id, created_at=now, **answer.promptlog_values())
        )
    return message_id


async def schedule_retry(
    session: Conn, task_id: uuid.UUID, *, worker_id: str, run_after: datetime, error: str
) -> bool:
    """Put a task we hold back to pending, runnable from `run_after`."""
    result = await session.execute(
        update(_task)
        .where(_held(task_id, worker_id))
        .values(status=TaskStatus.PENDING, run_after=run_after, last_error=error, locked_by=None, lease_expires_at=None)
    )
    return result.rowcount == 1


async def fail(session: Conn, task_id: uuid.UUID, *, worker_id: str, error: str, now: datetime) -> bool:
    """Mark a task we hold as failed for good."""
    result = await session.execute(
        update(_task)
        .where(_held(task_id, worker_id))
        .values(status=TaskStatus.FAILED, last_error=error, completed_at=now, locked_by=None, lease_expires_at=None)
    )
    return result.rowcount == 1


async def release(session: Conn, task_ids: list[uuid.UUID], *, worker_id: str, now: datetime) -> int:
    """Give unfinished tasks back on shutdown without using up their attempt."""
    if not task_ids:
        return 0
    result = await session.execute(
        update(_task)
        .where(
            _task.c.id.in_(task_ids),
            _task.c.locked_by == worker_id,
            _task.c.status == TaskStatus.PROCESSING,
        )
        .values(
            status=TaskStatus.PENDING,
            attempts=_task.c.attempts - 1,
            run_after=now,
            locked_by=None,
            lease_expires_at=None,
        )
    )
    await notify(session)
    return result.rowcount


async def reap_expired(session: Conn, *, now: datetime) -> int:
    """Return tasks of dead workers (lease expired) to pending, or fail them after their last attempt.

    An exhausted task whose callback is still open goes back once more, so that a worker sends the user
    the apology (the runner gives up at once on an attempt past the last).
    """
    expired = (_task.c.status == TaskStatus.PROCESSING) & (_task.c.lease_expires_at < now)
    callback_open = (_task.c.callback_status == CallbackStatus.PENDING) & (_task.c.callback_deadline > now)
    common = {"locked_by": None, "lease_expires_at": None, "last_error": "lease expired: worker lost"}
    await session.execute(
        update(_task)
        .where(expired, _task.c.attempts >= _task.c.max_attempts, ~callback_open)
        .values(status=TaskStatus.FAILED, completed_at=now, **common)
    )
    result = await session.execute(
        update(_task).where(expired).values(status=TaskStatus.PENDING, run_after=now, **common)
    )
    if result.rowcount:
        await notify(session)
    return result.rowcount


async def prune(session: Conn, *, before: datetime) -> int:
    """Delete finished tasks created before `before` (their messages stay)."""
    result = await session.execute(
        delete(_task).where(_task.c.status.in_(FINISHED), _task.c.created_at < before)
    )
    return result.rowcount


async def retry_failed(session: AsyncSession, task_id: uuid.UUID, *, now: datetime) -> bool:
    """Admin retry: a failed task back to pending with a fresh attempt budget."""
    result = await session.execute(
        update(_task)
        .where(_task.c.id == task_id, _task.c.status == TaskStatus.FAILED)
        .values(status=TaskStatus.PENDING, attempts=0, run_after=now, completed_at=None, started_at=None)
    )
    if result.rowcount:
        await notify(session)
    return result.rowcount == 1


