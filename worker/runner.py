"""One claimed task from start to finish: answer, store, deliver; or retry, apologise, fail."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine

from app import metrics
from app.kakao import text_reply
from app.models import CallbackKind, CallbackStatus, TaskStatus, utcnow
from app.queue import ClaimedTask, LeaseLost, OrphanedCallback, Wakeup, autocommit, fail, schedule_retry
from app.services import usage
from app.services.errors import PermanentError, RetryableError
from app.services.pipeline import Answer, AnswerPipeline
from app.services.texts import CHECK_ANSWER
from app.services.usage import Reservation
from worker.delivery import DELAY_APOLOGY, FAILURE_APOLOGY, Delivery
from worker.estimate import AnswerTimeEstimate
from worker.retry import RetryPolicy, plan_retry
from worker.store import QueueStore
from worker.usage import TaskUsage

_MAX_ERROR_CHARS = 500

# A delivery left to do once the attempt itself is over.
FollowUp = Callable[[], Awaitable[object]]


class TaskRunner:
    """Runs claimed tasks for one worker; the pool decides when, this decides what."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        store: QueueStore,
        pipeline: AnswerPipeline,
        delivery: Delivery,
        worker_id: str,
        wakeup: Wakeup,
        policy: RetryPolicy,
        answer_timeout: float,
        lease_seconds: float,
        estimate: AnswerTimeEstimate,
        usage: TaskUsage,
    ) -> None:
        self._engine = engine
        self._queue = store
        self._pipeline = pipeline
        self._delivery = delivery
        self._worker_id = worker_id
        self._wakeup = wakeup
        self._policy = policy
        self._answer_timeout = answer_timeout
        self._lease_seconds = lease_seconds
        self._estimate = estimate
        self._usage = usage

    async def run(self, task: ClaimedTask) -> FollowUp | None:
        """Work one attempt; returns the callback delivery still to make, which needs no worker slot.

        An apology goes out through the callback while the attempt runs if the answer is late.
        """
        if task.attempts == 1:
            metrics.PICKUP_LATENCY.observe(max((task.started_at - task.created_at).total_seconds(), 0.0))
        callback_open = task.callback_url is not None and task.callback_status == CallbackStatus.PENDING
        if task.attempts > task.max_attempts:
            # The reaper brought it back after its last attempt died with a worker: only the apology is left.
            lost = RuntimeError("the last attempt was lost with its worker")
            return await self._give_up(task, lost, callback_open, self._usage.held(task))
        try:
            reservation = await self._usage.admit(task)
        except Exception as exc:  # noqa: BLE001 - a database hiccup: the task is tried again like any failure
            return await self._retry(task, exc, callback_open, None)
        if not reservation.admitted:
            return await self._refuse(task, reservation, callback_open)
        with usage.collect() as calls:  # the task started below shares the list: the attempt's model calls
            work = asyncio.create_task(self._answer(task))
        try:
            if callback_open and task.callback_deadline is not None:
                apology_at = task.callback_deadline - timedelta(seconds=self._policy.apology_margin_seconds)
                done, _ = await asyncio.wait({work}, timeout=max((apology_at - utcnow()).total_seconds(), 0.0))
                if not done:
                    callback_open = False
                    logger.info("Task {}: answer not ready near the callback deadline, apologising", task.id)
                    await self._apology(task, DELAY_APOLOGY, [CHECK_ANSWER])()
            try:
                answer = await work
            except PermanentError as exc:
                await self._usage.settle(task, reservation, calls, retrying=True)
                return await self._give_up(task, exc, callback_open, reservation)
            except Exception as exc:  # noqa: BLE001 - retryable, timeout or unexpected: all get the bounded retry
                await self._usage.settle(task, reservation, calls, retrying=True)
                return await self._retry(task, exc, callback_open, reservation)
            settled = await self._usage.settle(task, reservation, calls)
            if settled.notice:
                answer = answer.model_copy(update={"text": f"{answer.text}\n\n{settled.notice}"})
            if await self._store(task, answer, take_callback=callback_open) and callback_open:
                body = text_reply(answer.text, quick_replies=answer.quick_replies)
                return partial(self._delivery.send, task, body, kind=CallbackKind.ANSWER, taken=True)
            return None
        finally:
            if not work.done():
                work.cancel()

    async def _refuse(self, task: ClaimedTask, reservation: Reservation, callback_open: bool) -> FollowUp | None:
        """A spent budget: the polite refusal is the task's answer (no model call), delivered like any answer."""
        assert reservation.refused is not None
        logger.info("Task {}: refused, the {} budget of this month is spent", task.id, reservation.refused.scope)
        text = self._usage.refusal(task, reservation)
        if await self._store(task, Answer(text=text), take_callback=callback_open) and callback_open:
            return partial(self._delivery.send, task, text_reply(text), kind=CallbackKind.ANSWER, taken=True)
        return None

    async def _answer(self, task: ClaimedTask) -> Answer:
        started = time.monotonic()
        try:
            # The pipeline honours its timeout; the outer one guards against one that does not.
            async with asyncio.timeout(self._answer_timeout + 1.0):
                answer = await self._pipeline.answer(task, timeout=self._answer_timeout)
            self._estimate.observe(time.monotonic() - started)
            return answer
        except PermanentError:
            metrics.ANSWER_ERRORS.labels("permanent").inc()
            raise
        except RetryableError:
            metrics.ANSWER_ERRORS.labels("retryable").inc()
            raise
        except TimeoutError:
            metrics.ANSWER_ERRORS.labels("timeout").inc()
            raise
        except Exception:
            metrics.ANSWER_ERRORS.labels("unexpected").inc()
            logger.exception("Task {}: unexpected error in the answer pipeline", task.id)
            raise
        finally:
            metrics.ANSWER_LATENCY.observe(time.monotonic() - started)

    async def _store(self, task: ClaimedTask, answer: Answer, *, take_callback: bool) -> bool:
        """Store the answer before any delivery, so a failed callback never costs a second LLM call."""
        now = utcnow()
        send_lease = now + timedelta(seconds=self._lease_seconds) if take_callback else None
        try:
            await self._queue.complete(task, worker_id=self._worker_id, answer=answer, now=now,
                                       send_lease_until=send_lease)
        except LeaseLost:
            logger.warning("Task {}: lease lost before the answer was stored; another worker owns it", task.id)
            return False
        metrics.TASKS_FINISHED.labels(TaskStatus.COMPLETED).inc()
        logger.info("Task {} completed (attempt {})", task.id, task.attempts)
        return True

    async def _retry(
        self, task: ClaimedTask, exc: Exception, callback_open: bool, reservation: Reservation | None
    ) -> FollowUp | None:
        now = utcnow()
        plan = plan_retry(
            attempts=task.attempts,
            max_attempts=task.max_attempts,
            created_at=task.created_at,
            callback_deadline=task.callback_deadline if callback_open else None,
            now=now,
            retry_after=exc.retry_after if isinstance(exc, RetryableError) else None,
            policy=self._policy,
        )
        if plan.run_after is None:
            return await self._give_up(task, exc, callback_open, reservation)
        async with autocommit(self._engine) as conn:
            scheduled = await schedule_retry(
                conn, task.id, worker_id=self._worker_id, run_after=plan.run_after, error=_describe(exc)
            )
        if scheduled:
            metrics.TASK_RETRIES.inc()
            delay = (plan.run_after - now).total_seconds()
            logger.info("Task {}: attempt {} failed ({}), retry in {:.1f}s", task.id, task.attempts, _describe(exc), delay)
            asyncio.get_running_loop().call_later(delay, self._wakeup.notify)
        # The retry could not answer before the deadline: the callback carries an apology instead.
        return self._apology(task, DELAY_APOLOGY, [CHECK_ANSWER]) if scheduled and plan.apologize else None

    async def _give_up(
        self, task: ClaimedTask, exc: Exception, callback_open: bool, reservation: Reservation | None
    ) -> FollowUp | None:
        async with autocommit(self._engine) as conn:
            failed = await fail(conn, task.id, worker_id=self._worker_id, error=_describe(exc), now=utcnow())
        if not failed:
            return None
        if reservation is not None:
            await self._usage.settle(task, reservation, [], answered=False)  # nothing more is spent on it: release
        metrics.TASKS_FINISHED.labels(TaskStatus.FAILED).inc()
        logger.warning("Task {} failed after attempt {}: {}", task.id, task.attempts, _describe(exc))
        return self._apology(task, FAILURE_APOLOGY) if callback_open else None

    def resend(self, orphan: OrphanedCallback) -> FollowUp:
        """The POST of a callback whose sender died mid-send, once more, with the best final response there is now.

        A refusal of the repeat proves only what the lost POST carried (an apology proves nothing about the answer).
        """
        lost = CallbackKind(orphan.callback_kind or CallbackKind.APOLOGY)  # unknown: claim the least
        if orphan.status == TaskStatus.COMPLETED and orphan.ai_response is not None:
            body, kind = text_reply(orphan.ai_response), CallbackKind.ANSWER
        elif orphan.status == TaskStatus.FAILED:
            body, kind = text_reply(FAILURE_APOLOGY), CallbackKind.APOLOGY
        else:  # still being answered: the answer will wait for the user's next message
            body, kind = text_reply(DELAY_APOLOGY, quick_replies=[CHECK_ANSWER]), CallbackKind.APOLOGY
        return partial(self._delivery.send, orphan, body, kind=kind, taken=True, repeat_of=lost)

    def overdue_apology(self, overdue: OrphanedCallback) -> FollowUp:
        """The apology for a callback taken from a task that could not be answered inside its window."""
        body = text_reply(DELAY_APOLOGY, quick_replies=[CHECK_ANSWER])
        return partial(self._delivery.send, overdue, body, kind=CallbackKind.APOLOGY, taken=True)

    def _apology(self, task: ClaimedTask, text: str, quick_replies: list[str] | None = None) -> FollowUp:
        return partial(self._delivery.send, task, text_reply(text, quick_replies=quick_replies), kind=CallbackKind.APOLOGY)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
