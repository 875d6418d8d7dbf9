"""Periodic jobs of a worker process (APScheduler): leases, reaper, pruning (tasks, expired cached answers),
heartbeat row, summaries, usage rollup and the monthly usage report."""

import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger

from app import queue
from app.config import Settings
from app.db import Database
from app.models import utcnow
from app.pg_listener import PgListener
from app.services import events
from app.services.llm import LLMClient
from app.services.response_cache import store as response_cache_store
from app.services.summaries import Summarizer
from app.services.usage import admin as usage_admin
from app.services.usage import periods, rollup
from worker.pool import WorkerPool
from worker.usage import TaskUsage

PRUNE_EVERY_SECONDS = 3600
# The daily usage rollup looks for finished days this often (a finished day is rolled once).
ROLLUP_EVERY_SECONDS = 300
# The overdue sweep: a queued task is apologised to at most this long after it stops being answerable in time.
OVERDUE_EVERY_SECONDS = 0.5
# Heartbeat rows of workers gone this long are deleted.
FORGET_WORKERS_AFTER = timedelta(days=1)
USAGE_REPORT = "usage_report"


class WorkerJobs:
    """Schedules the periodic work; each job logs its own failure and tries again next time."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        pool: WorkerPool,
        wakeup: queue.Wakeup,
        worker_id: str,
        listener: PgListener | None,
        llm: LLMClient | None,
        usage: TaskUsage,
    ) -> None:
        self._settings = settings
        self._db = db
        self._engine = db.engine
        self._pool = pool
        self._wakeup = wakeup
        self._worker_id = worker_id
        self._listener = listener
        self._llm = llm
        self._usage = usage
        self._started_at = utcnow()
        self._scheduler = AsyncIOScheduler(timezone="UTC")

    def start(self) -> None:
        # Leases are renewed three times per lease; the reaper (a cheap partial-index scan) runs at least
        # every poll interval, so a dead worker's task is back in the queue soon after its lease ends.
        every = self._settings.task_lease_seconds / 3
        now = utcnow()
        self._every(self.renew_leases, every, first=now + timedelta(seconds=every))
        self._every(self.reap, min(every, self._settings.worker_poll_seconds), first=now)
        self._every(self.heartbeat, every, first=now)
        self._every(self.apologise_overdue, OVERDUE_EVERY_SECONDS, first=now + timedelta(seconds=OVERDUE_EVERY_SECONDS))
        self._every(self.prune, PRUNE_EVERY_SECONDS, first=now + timedelta(seconds=60))
        self._every(self.roll_up_usage, ROLLUP_EVERY_SECONDS, first=now + timedelta(seconds=30))
        # Last month's report, a few minutes after its budgets reset (local midnight on the 1st).
        self._scheduler.add_job(
            _guarded(self.report_usage), "cron", day=1, hour=0, minute=10, timezone=self._settings.usage_timezone,
            max_instances=1, coalesce=True, misfire_grace_time=3600, id="report_usage",
        )
        if self._llm is not None:  # offline mode keeps no summaries (docs/pipeline.md)
            summary_every = self._settings.summary_interval_seconds
            self._every(self.summarize, summary_every, first=now + timedelta(seconds=summary_every))
        self._scheduler.start()

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=False)

    def _every(self, job: Callable[[], Awaitable[None]], seconds: float, *, first: object) -> None:
        self._scheduler.add_job(
            _guarded(job), "interval", seconds=seconds, next_run_time=first,
            max_instances=1, coalesce=True, misfire_grace_time=None, id=job.__name__,
        )

    async def renew_leases(self) -> None:
        await self._pool.renew_leases()

    async def reap(self) -> None:
        """Callback POSTs and tasks of dead workers (leases run out) go back to work, the POSTs first: their
        deadline is the nearer one."""
        await self._pool.resend_orphaned()
        async with self._engine.begin() as conn:
            requeued = await queue.reap_expired(conn, now=utcnow())
        if requeued:
            logger.warning("Reclaimed {} task(s) whose worker stopped renewing its lease", requeued)
            self._wakeup.notify()

    async def apologise_overdue(self) -> None:
        await self._pool.apologise_overdue()

    async def heartbeat(self) -> None:
        async with queue.autocommit(self._engine) as conn:
            await queue.beat(
                conn,
                worker_id=self._worker_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                started_at=self._started_at,
                now=utcnow(),
                in_flight=self._pool.in_flight,
                listen_connected=bool(self._listener and self._listener.connected),
            )

    async def prune(self) -> None:
        now = utcnow()
        async with self._engine.begin() as session:
            tasks = await queue.prune(session, before=now - timedelta(days=self._settings.task_retention_days))
            await queue.prune_workers(session, before=now - FORGET_WORKERS_AFTER)
            answers = await response_cache_store.prune(session, now=now)
        if tasks:
            logger.info("Pruned {} finished task(s) older than {} days", tasks, self._settings.task_retention_days)
        if answers:
            logger.info("Pruned {} expired cached answer(s)", answers)

    async def summarize(self) -> None:
        """Fold ended conversations into their users' rolling summaries."""
        if self._llm is not None:
            await Summarizer(self._settings, self._db.sessions, self._llm).run()

    async def roll_up_usage(self) -> None:
        """Sum finished days' usage rows into `usagedaily`; give back reservations of tasks the reaper failed."""
        stranded = await self._usage.release_stranded()
        if stranded:
            logger.info("Released the budget reservations of {} task(s) failed with a lost worker", stranded)
        days = await rollup.roll_up(self._engine, now=utcnow(), tz=ZoneInfo(self._settings.usage_timezone))
        if days:
            logger.info("Usage rolled up for {} day(s), up to {}", len(days), days[-1])

    async def report_usage(self) -> None:
        """Last month's usage report, kept in `eventlog` (`usage_report`) and logged."""
        await self.roll_up_usage()
        tz = ZoneInfo(self._settings.usage_timezone)
        month = periods.month_key(utcnow() - timedelta(days=2), tz)  # runs on the 1st: the month just ended
        async with self._db.sessions.begin() as session:
            report = await usage_admin.monthly_report(session, month, periods.month_span(month))
            detail = report.model_dump(mode="json", exclude={"rows"}) | {"lines": len(report.rows)}
            await events.record_event(session, USAGE_REPORT, detail=detail)
        logger.info("Usage report {}: {} requests, {} tokens, ${:.4f}", month, report.requests, report.total_tokens,
                    report.cost_usd)

    async def forget(self) -> None:
        """Remove this worker's heartbeat row on a clean stop."""
        async with queue.autocommit(self._engine) as conn:
            await queue.forget_worker(conn, self._worker_id)


def _guarded(job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await job()
        except Exception as exc:  # noqa: BLE001 - a database hiccup must not kill the schedule
            logger.warning("Job {} failed: {}: {}", job.__name__, type(exc).__name__, exc)

    run.__name__ = run.__qualname__ = job.__name__  # the name APScheduler logs
    return run
