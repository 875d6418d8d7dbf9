"""Recent queue activity for the console dashboard: the last day's tasks and this month's tokens."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AIProcessingTask

_task = AIProcessingTask.__table__
# A dashboard over a busy day stays cheap: beyond this many tasks the newest ones stand for the day.
MAX_ROWS = 50_000


@dataclass(frozen=True, slots=True)
class TaskTimes:
    """The timestamps and outcome of one task, what latency and outcome charts need."""

    status: str
    callback_status: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    answer_delivered_at: datetime | None


async def tasks_since(session: AsyncSession, since: datetime) -> list[TaskTimes]:
    """Tasks created since `since`, newest first (at most MAX_ROWS)."""
    rows = await session.execute(
        select(
            _task.c.status,
            _task.c.callback_status,
            _task.c.created_at,
            _task.c.started_at,
            _task.c.completed_at,
            _task.c.answer_delivered_at,
        )
        .where(_task.c.created_at >= since)
        .order_by(_task.c.created_at.desc())
        .limit(MAX_ROWS)
    )
    return [TaskTimes(*row) for row in rows.all()]


async def tokens_since(session: AsyncSession, since: datetime) -> tuple[int, int]:
    """Input and output tokens of the tasks answered since `since`."""
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(_task.c.input_tokens), 0), func.coalesce(func.sum(_task.c.output_tokens), 0)
            ).where(_task.c.completed_at >= since)
        )
    ).one()
    return int(row[0]), int(row[1])
