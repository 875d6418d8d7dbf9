"""The `aiprocessingtask` queue: every SQL statement the queue runs lives here."""

import asyncio
import uuid
from datetime import datetime

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AIProcessingTask, CallbackStatus, TaskStatus

NOTIFY_CHANNEL = "aiprocessingtask"

_task = AIProcessingTask.__table__


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
    if session.bind.dialect.name == "postgresql":
        # NOTIFY inside the transaction is delivered only if it commits.
        await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    return task_id
