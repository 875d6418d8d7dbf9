"""The claim loop: fill free slots with claimed tasks whenever woken, and hand back what is left on shutdown."""

import asyncio
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine

from app import metrics
from app.models import utcnow
from app.queue import ClaimedTask, Wakeup, release
from worker.estimate import AnswerTimeEstimate
from worker.runner import FollowUp, TaskRunner
from worker.store import QueueStore

_CLAIM_ERROR_PAUSE = 1.0


class WorkerPool:
    """Up to `concurrency` tasks at once, claimed in batches sized to the free slots."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        store: QueueStore,
        runner: TaskRunner,
        wakeup: Wakeup,
        worker_id: str,
        concurrency: int,
        poll_seconds: float,
        lease_seconds: float,
        apology_margin_seconds: float,
        estimate: AnswerTimeEstimate,
    ) -> None:
        self._engine = engine
        self._store = store
        self._runner = runner
        self._wakeup = wakeup
        self._worker_id = worker_id
        self._concurrency = concurrency
        self._poll_seconds = poll_seconds
        self._lease_seconds = lease_seconds
        self._apology_margin_seconds = apology_margin_seconds
        self._estimate = estimate
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        # Callback deliveries (of finished attempts, or taken over from dead senders) and their task ids: they
        # wait on Kakao, not on a slot, and their send leases are renewed with the task leases.
        self._deliveries: dict[asyncio.Task[object], uuid.UUID] = {}
        self._stopping = asyncio.Event()
        self._queue_may_have_more = False

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def renew_leases(self) -> None:
        """Extend the leases of running tasks and pending deliveries only, so a crashed one's lease runs out."""
        await self._store.renew_leases(
            self._busy_ids(), worker_id=self._worker_id, now=utcnow(), lease_seconds=self._lease_seconds
        )

    async def resend_orphaned(self) -> None:
        """Take over the callbacks whose sender died mid-send and POST each once more (see `TaskRunner.resend`)."""
        if self._stopping.is_set():
            return
        orphans = await self._store.take_orphaned_callbacks(
            worker_id=self._worker_id, now=utcnow(), lease_seconds=self._lease_seconds, skip=self._busy_ids()
        )
        for orphan in orphans:
            logger.warning("Task {}: its {} callback's sender died mid-send; sending it once more",
                           orphan.id, orphan.callback_kind)
            self._deliver(orphan.id, self._runner.resend(orphan))

    async def apologise_overdue(self) -> None:
        """Spend the callbacks of queued tasks that cannot be answered inside their window on an apology, even
        while every slot is busy; the tasks stay queued behind those that can still make it."""
        if self._stopping.is_set():
            return
        now = utcnow()
        overdue = await self._store.take_overdue_callbacks(
            worker_id=self._worker_id, now=now, cutoff=self._cutoff(now), lease_seconds=self._lease_seconds
        )
        if overdue:
            logger.warning("{} queued task(s) cannot be answered inside their callback window (answers take ~{:.1f}s):"
                           " apologising now, their answers will wait for the users' next messages",
                           len(overdue), self._estimate.seconds)
        for callback in overdue:
            self._deliver(callback.id, self._runner.overdue_apology(callback))

    def _cutoff(self, now: datetime) -> datetime:
        return self._estimate.cutoff(now, self._apology_margin_seconds)

    def _busy_ids(self) -> list[uuid.UUID]:
        return [*self._running, *self._deliveries.values()]

    async def run(self) -> None:
        """Claim and start tasks until `stop_claiming` is called."""
        while not self._stopping.is_set():
            free = self._concurrency - len(self._running)
            if free > 0:
                try:
                    claimed = await self._claim(free)
                except Exception as exc:  # noqa: BLE001 - the database may be restarting: keep the loop alive
                    logger.warning("Claim failed: {}: {}", type(exc).__name__, exc)
                    await self._idle(_CLAIM_ERROR_PAUSE)
                    continue
                for task in claimed:
                    self._start(task)
                self._queue_may_have_more = len(claimed) == free
                if self._queue_may_have_more:
                    continue
            await self._idle(self._poll_seconds)

    def stop_claiming(self) -> None:
        self._stopping.set()
        self._wakeup.notify()

    async def drain(self, grace: float) -> None:
        """Wait up to `grace` seconds for in-flight work, then cancel the rest and release it unspent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self._running:
            logger.info("Waiting up to {:.0f}s for {} in-flight task(s)", grace, len(self._running))
            await asyncio.wait(list(self._running.values()), timeout=grace)
        unfinished = dict(self._running)
        await _cancel(unfinished.values())
        if unfinished:
            try:
                async with self._engine.begin() as conn:
                    released = await release(conn, list(unfinished), worker_id=self._worker_id, now=utcnow())
                logger.info("Released {} unfinished task(s) back to the queue", released)
            except Exception as exc:  # noqa: BLE001 - their leases run out and the reaper brings them back
                logger.warning("Could not release {} task(s): {}", len(unfinished), type(exc).__name__)
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=max(deadline - loop.time(), 0.0))
        # An interrupted delivery stays `sending`: once its lease runs out another worker sends it again.
        await _cancel(set(self._deliveries))

    async def _claim(self, limit: int) -> list[ClaimedTask]:
        now = utcnow()
        return await self._store.claim(
            worker_id=self._worker_id, limit=limit, now=now, lease_seconds=self._lease_seconds,
            cutoff=self._cutoff(now),
        )

    def _start(self, task: ClaimedTask) -> None:
        job = asyncio.create_task(self._work(task), name=f"task-{task.id}")
        self._running[task.id] = job
        metrics.TASKS_IN_FLIGHT.inc()
        job.add_done_callback(lambda done: self._finished(task.id, done))

    async def _work(self, task: ClaimedTask) -> None:
        follow_up = await self._runner.run(task)
        if follow_up is not None:
            self._deliver(task.id, follow_up)

    def _deliver(self, task_id: uuid.UUID, follow_up: FollowUp) -> None:
        delivery = asyncio.create_task(follow_up(), name=f"deliver-{task_id}")
        self._deliveries[delivery] = task_id
        delivery.add_done_callback(self._delivered)

    def _delivered(self, delivery: asyncio.Task[object]) -> None:
        self._deliveries.pop(delivery, None)
        if not delivery.cancelled() and delivery.exception() is not None:
            exc = delivery.exception()
            logger.opt(exception=exc).error("Callback delivery crashed: {}", type(exc).__name__)

    def _finished(self, task_id: uuid.UUID, job: asyncio.Task[None]) -> None:
        self._running.pop(task_id, None)
        metrics.TASKS_IN_FLIGHT.dec()
        if not job.cancelled() and job.exception() is not None:
            exc = job.exception()
            logger.opt(exception=exc).error("Task {} crashed: {}", task_id, type(exc).__name__)
        if self._queue_may_have_more:
            self._wakeup.notify()  # a slot opened while work is waiting

    async def _idle(self, timeout: float) -> None:
        await self._wakeup.wait(timeout)


async def _cancel(jobs: Iterable[asyncio.Task[Any]]) -> None:
    jobs = list(jobs)
    for job in jobs:
        job.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)
