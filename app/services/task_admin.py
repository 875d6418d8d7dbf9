"""Admin actions on queue tasks: a failed task retried, with its event recorded."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app import queue
from app.errors import Conflict, NotFound
from app.models import AIProcessingTask, utcnow
from app.services import events


async def retry_failed_task(session: AsyncSession, task_id: uuid.UUID) -> AIProcessingTask:
    """Put a failed task back in the queue with a fresh attempt budget; the task as it is now."""
    async with session.begin():
        task = await queue.get_task(session, task_id)
        if task is None:
            raise NotFound("task not found")
        if not await queue.retry_failed(session, task_id, now=utcnow()):
            raise Conflict(f"only failed tasks can be retried (status is {task.status})", code="task_not_failed")
        await events.record_event(
            session, events.TASK_RETRIED, user_id=task.user_id, bot_id=task.bot_id, detail=str(task_id)
        )
    async with session.begin():
        return await queue.get_task(session, task_id)  # type: ignore[return-value]
