"""The worker's per-task queue calls: one raw asyncpg round trip each on PostgreSQL, `app.queue` elsewhere.

Claim, store-the-answer and callback moves run for every task, so on PostgreSQL they skip SQLAlchemy's
per-statement overhead with the named statements of `app.queue.sql`.
"""

import uuid
from datetime import datetime, timedelta

from app import queue
from app.db import Database
from app.models import CallbackKind, CallbackStatus
from app.queue import ClaimedTask, LeaseLost, OrphanedCallback, StoredAnswer
from app.queue.sql import (
    CLAIM_SQL,
    COMPLETE_SQL,
    MOVE_CALLBACK_SQL,
    RENEW_SQL,
    TAKE_ORPHANED_SQL,
    TAKE_OVERDUE_SQL,
)


class QueueStore:
    """Claim, lease renewal, complete and callback moves for one process's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self, *, worker_id: str, limit: int, now: datetime, lease_seconds: float, cutoff: datetime | None = None
    ) -> list[ClaimedTask]:
        """Lease runnable tasks (see `app.queue.claim`, also for `cutoff`)."""
        if not self._db.is_postgres:
            async with queue.autocommit(self._db.engine) as conn:
                return await queue.claim(
                    conn, worker_id=worker_id, limit=limit, now=now, lease_seconds=lease_seconds, cutoff=cutoff
                )
        pool = await self._db.raw_pool()
        rows = await pool.fetch(CLAIM_SQL, now, limit, worker_id, now + timedelta(seconds=lease_seconds), cutoff)
        return sorted((ClaimedTask.model_validate(dict(row)) for row in rows), key=lambda t: t.created_at)

    async def renew_leases(
        self, task_ids: list[uuid.UUID], *, worker_id: str, now: datetime, lease_seconds: float
    ) -> None:
        """Extend task and send leases (see `app.queue.renew_leases`); on its own pool, so a busy SQLAlchemy pool
        cannot delay it."""
        if not task_ids:
            return
        if not self._db.is_postgres:
            async with queue.autocommit(self._db.engine) as conn:
                await queue.renew_leases(conn, task_ids, worker_id=worker_id, now=now, lease_seconds=lease_seconds)
            return
        pool = await self._db.raw_pool()
        await pool.execute(RENEW_SQL, task_ids, worker_id, now + timedelta(seconds=lease_seconds))

    async def complete(
        self,
        task: ClaimedTask,
        *,
        worker_id: str,
        answer: StoredAnswer,
        now: datetime,
        send_lease_until: datetime | None = None,
    ) -> int:
        """Store the answer (see `app.queue.complete`); raises LeaseLost when the task is no longer ours."""
        if not self._db.is_postgres:
            async with self._db.engine.begin() as conn:
                return await queue.complete(
                    conn, task, worker_id=worker_id, answer=answer, now=now, send_lease_until=send_lease_until
                )
        pool = await self._db.raw_pool()
        message_id = await pool.fetchval(
            COMPLETE_SQL, task.id, worker_id, answer.text, now, answer.input_tokens, answer.output_tokens,
            answer.template_name, answer.template_version, answer.rendered_prompt, answer.model,
            answer.latency_ms, answer.finish_reason, answer.sources, send_lease_until, answer.cache_key,
            answer.cache_hit,
        )
        if message_id is None:
            raise LeaseLost(str(task.id))
        return message_id

    async def move_callback(
        self,
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
        """Conditional callback state change (see `app.queue.move_callback`)."""
        if not self._db.is_postgres:
            async with queue.autocommit(self._db.engine) as conn:
                return await queue.move_callback(
                    conn, task_id, from_=from_, to=to, sender=sender, error=error, delivered_at=delivered_at,
                    lease_until=lease_until, kind=kind,
                )
        pool = await self._db.raw_pool()
        status = await pool.execute(
            MOVE_CALLBACK_SQL, task_id, from_, to, error, delivered_at, sender, lease_until, kind
        )
        return status == "UPDATE 1"

    async def take_orphaned_callbacks(
        self, *, worker_id: str, now: datetime, lease_seconds: float, skip: list[uuid.UUID]
    ) -> list[OrphanedCallback]:
        """Take over the sends of dead senders (see `app.queue.take_orphaned_callbacks`); on the raw pool, so a
        SQLAlchemy pool busy with a burst of reclaimed tasks cannot hold the repeats back towards the deadline."""
        if not self._db.is_postgres:
            async with queue.autocommit(self._db.engine) as conn:
                return await queue.take_orphaned_callbacks(
                    conn, worker_id=worker_id, now=now, lease_seconds=lease_seconds, skip=skip
                )
        pool = await self._db.raw_pool()
        rows = await pool.fetch(TAKE_ORPHANED_SQL, worker_id, now, now + timedelta(seconds=lease_seconds), skip)
        return [OrphanedCallback.model_validate(dict(row)) for row in rows]

    async def take_overdue_callbacks(
        self, *, worker_id: str, now: datetime, cutoff: datetime, lease_seconds: float
    ) -> list[OrphanedCallback]:
        """Take the callbacks of unclaimed tasks that cannot make their window (see
        `app.queue.take_overdue_callbacks`); on the raw pool, so tasks filling the SQLAlchemy pool under overload
        cannot hold the apologies back."""
        if not self._db.is_postgres:
            async with queue.autocommit(self._db.engine) as conn:
                return await queue.take_overdue_callbacks(
                    conn, worker_id=worker_id, now=now, cutoff=cutoff, lease_seconds=lease_seconds
                )
        pool = await self._db.raw_pool()
        rows = await pool.fetch(TAKE_OVERDUE_SQL, worker_id, now, now + timedelta(seconds=lease_seconds), cutoff)
        return [OrphanedCallback.model_validate(dict(row)) for row in rows]
