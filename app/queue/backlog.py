"""The backlog's expected wait, for /skill: queued open callbacks divided by recent throughput, cached ~1 s.

One cheap statement (the status/created_at index, tasks of the last callback window only) per process per
second at most, never one per request.
"""

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from loguru import logger
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models import AIProcessingTask, CallbackStatus, TaskStatus, utcnow
from app.queue.connection import Conn

_task = AIProcessingTask.__table__
# Throughput is measured over this many recent seconds.
THROUGHPUT_SECONDS = 10.0
CACHE_SECONDS = 1.0
# The gauge must never slow /skill down: a slow read counts as "no estimate".
_READ_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Backlog:
    """Tasks waiting with an open callback, and tasks finished in the last `THROUGHPUT_SECONDS` (over `span`
    seconds: from the first of them, so a burst's first seconds are not diluted over the whole period)."""

    waiting: int
    finished_recently: int
    span: float = THROUGHPUT_SECONDS

    @property
    def expected_wait(self) -> float | None:
        """Seconds a new task waits before it is claimed; None while nothing finished recently (no rate yet)."""
        if not self.waiting:
            return 0.0
        if not self.finished_recently:
            return None
        return self.waiting / (self.finished_recently / max(self.span, 1.0))


async def read_backlog(conn: Conn, *, now: datetime, window_seconds: float) -> Backlog:
    """Only tasks created inside the last callback window count: older ones have no open callback left."""
    finished = _task.c.status.in_([TaskStatus.COMPLETED, TaskStatus.FAILED]) & (
        _task.c.completed_at >= now - timedelta(seconds=THROUGHPUT_SECONDS)
    )
    waiting = (_task.c.status == TaskStatus.PENDING) & (_task.c.callback_status == CallbackStatus.PENDING)
    row = (
        await conn.execute(
            select(
                func.count().filter(waiting), func.count().filter(finished), func.min(_task.c.completed_at).filter(finished)
            ).where(
                _task.c.status.in_([TaskStatus.PENDING, TaskStatus.COMPLETED, TaskStatus.FAILED]),
                _task.c.created_at >= now - timedelta(seconds=window_seconds),
            )
        )
    ).one()
    first = _aware(row[2])
    span = (now - first).total_seconds() if first is not None else THROUGHPUT_SECONDS
    return Backlog(waiting=row[0], finished_recently=row[1], span=span)


def _aware(value: datetime | str | None) -> datetime | None:
    """SQLite hands an aggregate over a datetime column back as naive UTC (or its text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class BacklogGauge:
    """Whether the backlog already waits longer than a callback window; one read per `CACHE_SECONDS`."""

    def __init__(self, engine: AsyncEngine, *, window_seconds: float, answerable_within: float) -> None:
        self._engine = engine
        self._window_seconds = window_seconds
        self._answerable_within = answerable_within
        self._lock = asyncio.Lock()
        self._read_at = float("-inf")
        self._backlog: Backlog | None = None

    async def overloaded(self) -> bool:
        """True when a new task would wait longer than its callback window allows (deadline minus margin)."""
        backlog = await self._current()
        wait = backlog.expected_wait if backlog else None
        return wait is not None and wait > self._answerable_within

    async def _current(self) -> Backlog | None:
        # One read at a time, by the request that found the value stale; the others take the last value
        # rather than wait for it.
        if time.monotonic() - self._read_at < CACHE_SECONDS or self._lock.locked():
            return self._backlog
        async with self._lock:
            self._backlog = await self._read()
            self._read_at = time.monotonic()
        return self._backlog

    async def _read(self) -> Backlog | None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_SECONDS), self._engine.connect() as conn:
                return await read_backlog(conn, now=utcnow(), window_seconds=self._window_seconds)
        except Exception as exc:  # noqa: BLE001 - without an estimate /skill promises the callback as before
            logger.warning("Backlog estimate unavailable: {}: {}", type(exc).__name__, exc)
            return None
