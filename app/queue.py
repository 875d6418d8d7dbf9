"""The `aiprocessingtask` queue: every SQL statement the queue runs lives here.

Functions take the caller's session or connection and never commit: the caller owns the transaction
(one-statement calls may run on an `autocommit` connection). Time is always passed in from Python
(`now`), one clock for every backend.
"""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy import case, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.models import (
    AIProcessingTask,
    CallbackStatus,
    Message,
    PromptLog,
    Role,
    TaskStatus,
    WorkerHeartbeat,
    utcnow,
)

NOTIFY_CHANNEL = "aiprocessingtask"
FINISHED = (TaskStatus.COMPLETED, TaskStatus.FAILED)
# A callback in these states may still deliver the answer itself.
_CALLBACK_IN_FLIGHT = (CallbackStatus.PENDING, CallbackStatus.SENDING)

_task = AIProcessingTask.__table__
_message = Message.__table__
_promptlog = PromptLog.__table__
_heartbeat = WorkerHeartbeat.__table__

Conn = AsyncSession | AsyncConnection


class LeaseLost(Exception):
    """The task is no longer ours (its lease expired and it was reclaimed); roll back and let go."""


class Wakeup:
    """In-process wake-up for a worker sharing the API's process (embedded mode)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a notification or the timeout; True when notified."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True


class ClaimedTask(BaseModel):
    """A task a worker holds the lease on: what the pipeline and the delivery read."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    bot_id: str
    user_id: int
    conversation_id: int
    message_id: int
    block_name: str | None
    attempts: int
    max_attempts: int
    callback_url: str | None
    callback_not_before: datetime | None
    callback_deadline: datetime | None
    callback_status: str
    created_at: datetime
    started_at: datetime


class StoredAnswer(BaseModel):
    """What `complete` writes: the answer text, its usage and (optionally) its prompt log."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None
    latency_ms: int | None = None
    rendered_prompt: str | None = None
    template_name: str | None = None
    template_version: int | None = None
    finish_reason: str | None = None
    sources: str | None = None


class QueueStats(BaseModel):
    """Queue depth by status and the age of the oldest runnable task."""

    by_status: dict[str, int]
    oldest_pending_seconds: float | None


_CLAIMED_COLUMNS = [_task.c[name] for name in ClaimedTask.model_fields]


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection without a transaction, for one-statement calls (saves BEGIN and COMMIT)."""
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


def _dialect(conn: Conn) -> str:
    return conn.bind.dialect.name if isinstance(conn, AsyncSession) else conn.dialect.name


async def _notify(conn: Conn) -> None:
    if _dialect(conn) == "postgresql":
        # NOTIFY inside the transaction is delivered only if it commits.
        await conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


# --- enqueue and claim --------------------------------------------------------------------------


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
            created_at=now,
        )
    )
    await _notify(session)
    return task_id


async def claim(
    session: Conn, *, worker_id: str, limit: int, now: datetime, lease_seconds: float
) -> list[ClaimedTask]:
    """Lease up to `limit` runnable tasks, oldest first; the attempt is counted here."""
    ready = (
        select(_task.c.id)
        .where(_task.c.status == TaskStatus.PENDING, _task.c.run_after <= now)
        .order_by(_task.c.created_at)
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
    """Extend the leases of the tasks this worker is still running."""
    if not task_ids:
        return 0
    result = await session.execute(
        update(_task)
        .where(_task.c.id.in_(task_ids), _task.c.locked_by == worker_id, _task.c.status == TaskStatus.PROCESSING)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
    )
    return result.rowcount


# --- finishing a claimed task -------------------------------------------------------------------


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
    take_callback: bool = False,
) -> int:
    """Store the assistant message and mark the task completed; returns the message id.

    `take_callback` also moves a pending callback to `sending` (this worker will POST it).
    Raises LeaseLost when the task is no longer ours: the caller must roll back.
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
    if take_callback:
        values["callback_status"] = case(
            (_task.c.callback_status == CallbackStatus.PENDING, CallbackStatus.SENDING),
            else_=_task.c.callback_status,
        )
    held = await conn.execute(update(_task).where(_held(task.id, worker_id)).values(**values))
    if held.rowcount != 1:
        raise LeaseLost(str(task.id))
    if answer.rendered_prompt is not None:
        await conn.execute(
            insert(_promptlog).values(
                msg_id=message_id,
                task_id=task.id,
                template_name=answer.template_name,
                template_version=answer.template_version,
                rendered_prompt=answer.rendered_prompt,
                model=answer.model,
                input_tokens=answer.input_tokens,
                output_tokens=answer.output_tokens,
                latency_ms=answer.latency_ms,
                finish_reason=answer.finish_reason,
                sources=answer.sources,
                created_at=now,
            )
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
    await _notify(session)
    return result.rowcount


# --- maintenance ---------------------------------------------------------------------------------


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
        await _notify(session)
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
        await _notify(session)
    return result.rowcount == 1


# --- the single-use callback ---------------------------------------------------------------------


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
        .where(
            _task.c.user_id == user_id,
            _task.c.status == TaskStatus.COMPLETED,
            _task.c.answer_delivered_at.is_(None),
            _task.c.callback_status.not_in(_CALLBACK_IN_FLIGHT) | (_task.c.callback_deadline < now),
        )
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


# --- reads for the APIs --------------------------------------------------------------------------


async def get_task(session: AsyncSession, task_id: uuid.UUID) -> AIProcessingTask | None:
    """One task, fresh from the database."""
    stmt = select(AIProcessingTask).where(AIProcessingTask.id == task_id).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_tasks(
    session: AsyncSession, *, status: TaskStatus | None, limit: int, offset: int
) -> list[AIProcessingTask]:
    """Tasks newest first, optionally of one status."""
    stmt = select(AIProcessingTask).order_by(AIProcessingTask.created_at.desc()).limit(limit).offset(offset)
    if status is not None:
        stmt = stmt.where(AIProcessingTask.status == status)
    return list((await session.execute(stmt)).scalars())


async def latest_task_of_conversation(session: AsyncSession, conversation_id: int) -> AIProcessingTask | None:
    """The conversation's most recent task."""
    stmt = (
        select(AIProcessingTask)
        .where(AIProcessingTask.conversation_id == conversation_id)
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


# --- worker heartbeats ---------------------------------------------------------------------------


async def beat(
    session: Conn,
    *,
    worker_id: str,
    hostname: str,
    pid: int,
    started_at: datetime,
    now: datetime,
    in_flight: int,
    listen_connected: bool,
) -> None:
    """Insert or refresh this worker's heartbeat row."""
    upsert = pg_insert if _dialect(session) == "postgresql" else sqlite_insert
    live = {"last_seen_at": now, "in_flight": in_flight, "listen_connected": listen_connected}
    stmt = upsert(_heartbeat).values(worker_id=worker_id, hostname=hostname, pid=pid, started_at=started_at, **live)
    await session.execute(stmt.on_conflict_do_update(index_elements=[_heartbeat.c.worker_id], set_=live))


async def forget_worker(session: Conn, worker_id: str) -> None:
    await session.execute(delete(_heartbeat).where(_heartbeat.c.worker_id == worker_id))


async def prune_workers(session: Conn, *, before: datetime) -> int:
    """Delete heartbeat rows of workers silent since `before`."""
    result = await session.execute(delete(_heartbeat).where(_heartbeat.c.last_seen_at < before))
    return result.rowcount


async def list_workers(session: AsyncSession) -> list[WorkerHeartbeat]:
    stmt = select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_seen_at.desc())
    return list((await session.execute(stmt)).scalars())
