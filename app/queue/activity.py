"""Recent queue activity for the console dashboard: the last day's counts, hourly answers, recent latencies.

Counting happens in the database; only the newest LATENCY_SAMPLE tasks are read row by row (for percentiles),
so the dashboard costs the same on a quiet day and a busy one.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AIProcessingTask, TaskStatus

_task = AIProcessingTask.__table__
LATENCY_SAMPLE = 2000


@dataclass(frozen=True, slots=True)
class TaskTimes:
    """When one task arrived, was picked up, finished and was delivered."""

    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    answer_delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Activity:
    """Tasks created since a moment: by status and callback status; answers per UTC hour ("YYYY-MM-DD HH")."""

    by_status: dict[str, int]
    callbacks: dict[str, int]
    answered_by_hour: dict[str, int]
    recent: list[TaskTimes]


def _utc_hour(session: AsyncSession):  # type: ignore[no-untyped-def]
    column = _task.c.completed_at
    if session.bind.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return func.substr(column, 1, 13)  # SQLite stores naive UTC text: "YYYY-MM-DD HH:MM:SS.ffffff"


async def activity_since(session: AsyncSession, since: datetime) -> Activity:
    """What happened to the tasks created since `since`."""
    recent_rows = _task.c.created_at >= since
    by_status = await session.execute(select(_task.c.status, func.count()).where(recent_rows).group_by(_task.c.status))
    callbacks = await session.execute(
        select(_task.c.callback_status, func.count()).where(recent_rows).group_by(_task.c.callback_status)
    )
    hour = _utc_hour(session).label("hour")
    hourly = await session.execute(
        select(hour, func.count())
        .where(recent_rows, _task.c.status == TaskStatus.COMPLETED, _task.c.completed_at.is_not(None))
        .group_by(hour)
    )
    times = await session.execute(
        select(_task.c.created_at, _task.c.started_at, _task.c.completed_at, _task.c.answer_delivered_at)
        .where(recent_rows)
        .order_by(_task.c.created_at.desc())
        .limit(LATENCY_SAMPLE)
    )
    return Activity(
        by_status={status: n for status, n in by_status.all()},
        callbacks={status: n for status, n in callbacks.all()},
        answered_by_hour={hour: n for hour, n in hourly.all()},
        recent=[TaskTimes(*row) for row in times.all()],
    )
