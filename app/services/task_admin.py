"""Admin actions on queue tasks: a failed task retried (its event recorded), a task's full detail."""

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import queue
from app.errors import Conflict, NotFound
from app.models import AIProcessingTask, AppUser, Message, PromptLog, utcnow
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


@dataclass(frozen=True, slots=True)
class TaskDetail:
    """A task with what the admin needs to judge it: the question, the prompt log and the user."""

    task: AIProcessingTask
    question: str | None
    prompt_log: PromptLog | None
    user: AppUser | None


async def task_detail(session: AsyncSession, task_id: uuid.UUID) -> TaskDetail:
    """One task and its question, prompt log and user; NotFound when there is no such task."""
    task = await queue.get_task(session, task_id)
    if task is None:
        raise NotFound("task not found")
    question = await session.get(Message, task.message_id)
    prompt_log = await session.scalar(select(PromptLog).where(PromptLog.task_id == task_id).limit(1))
    user = await session.get(AppUser, task.user_id)
    return TaskDetail(task, question.text if question else None, prompt_log, user)
