"""A worker process's runtime: pool, wake-ups and periodic jobs started and stopped together."""

import asyncio
import os
import socket
import uuid
from types import TracebackType
from typing import Self

import httpx
from loguru import logger

from app.config import Settings
from app.db import Database, pg_dsn
from app.pg_listener import PgListener
from app.queue import NOTIFY_CHANNEL, Wakeup
from app.services.pipeline import AnswerPipeline
from app.services.simulator import SimulatorSink
from app.services.usage import UsageService
from worker.delivery import CALLBACK_CONNECTIONS, CALLBACK_KEEPALIVE_SECONDS, Delivery
from worker.estimate import AnswerTimeEstimate
from worker.jobs import WorkerJobs
from worker.pool import WorkerPool
from worker.retry import RetryPolicy
from worker.runner import TaskRunner
from worker.store import QueueStore
from worker.usage import TaskUsage


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def worker_database(settings: Settings) -> Database:
    """The worker's database handle, standalone or embedded.

    WORKER_CONCURRENCY tasks share DB_POOL_SIZE connections, so a task often waits for one; it must wait
    its turn (each task is bounded by its answer timeout) rather than fail after DB_POOL_TIMEOUT and be
    retried, which under load turned answers into apologies (tests/e2e, 1,000 users).
    """
    return Database(settings, pool_timeout=settings.task_answer_timeout_seconds)


class Worker:
    """Claims and answers tasks until stopped; use `async with` or `start()` / `stop()`."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        pipeline: AnswerPipeline,
        *,
        wakeup: Wakeup | None = None,
        http: httpx.AsyncClient | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id or new_worker_id()
        self.wakeup = wakeup or Wakeup()
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=CALLBACK_CONNECTIONS,
                max_keepalive_connections=CALLBACK_CONNECTIONS,
                keepalive_expiry=CALLBACK_KEEPALIVE_SECONDS,
            ),
        )
        self.listener = (
            None
            if db.is_sqlite
            else PgListener(pg_dsn(settings.database_url), NOTIFY_CHANNEL, self.wakeup.notify)
        )
        store = QueueStore(db)
        estimate = AnswerTimeEstimate(ceiling=settings.task_answer_timeout_seconds)
        usage = TaskUsage(UsageService(settings, db, self._http))
        runner = TaskRunner(
            engine=db.engine,
            store=store,
            pipeline=pipeline,
            delivery=Delivery(settings, store, self._http, worker_id=self.worker_id, sink=SimulatorSink(db.sessions)),
            worker_id=self.worker_id,
            wakeup=self.wakeup,
            policy=RetryPolicy.from_settings(settings),
            answer_timeout=settings.task_answer_timeout_seconds,
            lease_seconds=settings.task_lease_seconds,
            estimate=estimate,
            usage=usage,
        )
        self.pool = WorkerPool(
            engine=db.engine,
            store=store,
            runner=runner,
            wakeup=self.wakeup,
            worker_id=self.worker_id,
            concurrency=settings.worker_concurrency,
            poll_seconds=settings.worker_poll_seconds,
            lease_seconds=settings.task_lease_seconds,
            apology_margin_seconds=settings.apology_margin_seconds,
            estimate=estimate,
        )
        self.jobs = WorkerJobs(
            settings=settings,
            db=db,
            pool=self.pool,
            wakeup=self.wakeup,
            worker_id=self.worker_id,
            listener=self.listener,
            llm=pipeline.llm,
            usage=usage,
        )
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.listener is not None:
            self.listener.start()
        self.jobs.start()
        self._loop_task = asyncio.create_task(self.pool.run(), name="worker-pool")
        logger.info(
            "Worker {} started: concurrency={} wake-up={}",
            self.worker_id,
            self.settings.worker_concurrency,
            "listen/notify" if self.listener else "in-process",
        )

    async def stop(self) -> None:
        """Graceful: stop claiming, let in-flight tasks finish within the grace period, release the rest."""
        logger.info("Worker {} stopping", self.worker_id)
        self.pool.stop_claiming()
        if self._loop_task is not None:
            await asyncio.gather(self._loop_task, return_exceptions=True)
        try:
            # Leases keep being renewed while in-flight tasks finish.
            await self.pool.drain(self.settings.worker_shutdown_grace_seconds)
        finally:
            self.jobs.shutdown()
            if self.listener is not None:
                await self.listener.stop()
            try:
                await self.jobs.forget()
            except Exception as exc:  # noqa: BLE001 - the row simply ages out of /admin/health
                logger.warning("Could not remove the heartbeat row: {}", type(exc).__name__)
            if self._own_http:
                await self._http.aclose()
        logger.info("Worker {} stopped", self.worker_id)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
