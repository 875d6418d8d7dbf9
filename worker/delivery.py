"""Spend a task's single-use Kakao callback URL: one POST that may have reached Kakao per sender; another worker
repeats it only when its sender died without recording the outcome."""

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
from loguru import logger

from app import metrics
from app.config import Settings
from app.kakao import (
    CallbackOutcome,
    CallbackResult,
    SkillResponse,
    redact_callback_url,
    send_callback,
)
from app.models import CallbackKind, CallbackStatus, utcnow
from app.queue import ClaimedTask, OrphanedCallback
from app.services.callback_policy import callback_problem
from app.services.simulator import SimulatorSink, sink_id
from worker.store import QueueStore

DELAY_APOLOGY = "답변을 준비하는 데 시간이 조금 더 걸리고 있어요. 잠시 후 아래 '답변 확인'을 눌러 주세요."
FAILURE_APOLOGY = "죄송해요, 지금은 답변을 드리기 어려워요. 잠시 후 다시 질문해 주세요."

# Only a POST that provably never left this host may be repeated; these pauses sit between such tries.
_NOT_SENT_PAUSES = (0.2, 0.5, 1.0, 2.0)
# Between tries to record a callback step while the database is unreachable (about 30 s in all).
_RECORD_PAUSES = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
# POSTs at once per process. Each takes milliseconds, so a few connections serve any load; more queued
# requests only slow httpcore's pool down (it scans every waiting request and connection on each change).
CALLBACK_CONNECTIONS = 32
# Idle connections are dropped well before a server's keep-alive timeout (5 s is common): a POST sent on a
# connection the server is closing fails as "may have reached Kakao", and the single-use URL is lost.
CALLBACK_KEEPALIVE_SECONDS = 2.0


class Delivery:
    """POSTs final responses to callback URLs, recording each step in `callback_status`.

    While a POST is in flight its sender holds a send lease (renewed with the task leases); a POST whose sender
    died is sent once more by another worker (`repeat_of`).
    """

    def __init__(
        self,
        settings: Settings,
        store: QueueStore,
        http: httpx.AsyncClient,
        *,
        worker_id: str,
        sink: SimulatorSink | None = None,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._store = store
        self._http = http
        self._worker_id = worker_id
        self._posting = asyncio.Semaphore(CALLBACK_CONNECTIONS)

    async def send(
        self,
        task: ClaimedTask | OrphanedCallback,
        response: SkillResponse | dict[str, Any],
        *,
        kind: CallbackKind,
        taken: bool = False,
        repeat_of: CallbackKind | None = None,
    ) -> CallbackStatus | None:
        """Deliver `response` once; the final callback status, or None when the URL was not ours to use.

        `taken`: the caller already holds the callback in `sending` (with the stored answer, or taken over).
        `repeat_of`: this POST repeats one of that kind whose outcome was lost with its worker; Kakao refusing
        the token then means the first one arrived.
        """
        url = task.callback_url
        if url is None or task.callback_status == CallbackStatus.NONE:
            return None
        state = CallbackStatus.SENDING if taken else CallbackStatus.PENDING
        reason = callback_problem(url, self._settings)
        if reason:
            logger.warning("Task {}: callback URL refused ({}): {}", task.id, reason, redact_callback_url(url))
            return await self._settle(task, kind, state, CallbackStatus.FAILED, f"refused: {reason}")
        await _sleep_until(task.callback_not_before)
        for pause in (*_NOT_SENT_PAUSES, None):
            remaining = (task.callback_deadline - utcnow()).total_seconds() if task.callback_deadline else 30.0
            if remaining <= 0:
                return await self._settle(task, kind, state, CallbackStatus.EXPIRED, "deadline passed")
            if state is CallbackStatus.PENDING and not await self._move(
                task, state, CallbackStatus.SENDING, kind=kind,
                lease_until=utcnow() + timedelta(seconds=self._settings.task_lease_seconds),
            ):
                return None  # already spent (or being spent) by someone else
            state = CallbackStatus.SENDING
            try:
                result = await self._post(task, url, response, kind)
            except ValueError as exc:  # an unsendable body or URL: nothing left this host
                logger.error("Task {}: callback not sendable: {}", task.id, exc)
                return await self._settle(task, kind, CallbackStatus.SENDING, CallbackStatus.FAILED, str(exc))
            detail = f"{result.outcome}: HTTP {result.http_status} {result.kakao_status or ''} {result.message or ''}"
            if result.outcome is CallbackOutcome.SENT:
                delivered = utcnow()
                await self._settle(
                    task, kind, CallbackStatus.SENDING, CallbackStatus.SENT, None,
                    delivered_at=delivered if kind is CallbackKind.ANSWER else None,
                )
                if kind is CallbackKind.ANSWER:
                    metrics.END_TO_END_LATENCY.observe((delivered - task.created_at).total_seconds())
                return CallbackStatus.SENT
            if repeat_of is not None and result.token_refused:
                # Single use: the lost POST arrived and was shown; this repeat was refused, nothing shown twice.
                logger.info("Task {}: repeated {} callback refused as already used: the first one arrived",
                            task.id, repeat_of)
                return await self._settle(
                    task, repeat_of, CallbackStatus.SENDING, CallbackStatus.SENT, f"repeat refused: {detail.strip()}",
                    delivered_at=utcnow() if repeat_of is CallbackKind.ANSWER else None,
                )
            if not result.retryable or pause is None:
                logger.warning("Task {}: {} callback failed: {}", task.id, kind, detail.strip())
                return await self._settle(task, kind, CallbackStatus.SENDING, CallbackStatus.FAILED, detail.strip())
            metrics.CALLBACKS.labels(kind, result.outcome).inc()
            if repeat_of is None:
                await self._move(task, CallbackStatus.SENDING, CallbackStatus.PENDING, error=detail.strip())
                state = CallbackStatus.PENDING
            # A repeat keeps `sending`: whether the lost POST arrived is still unknown, so it must not be
            # taken as a fresh, unspent callback.
            await asyncio.sleep(pause)
        return None  # unreachable: the last pause is None

    async def _post(
        self,
        task: ClaimedTask | OrphanedCallback,
        url: str,
        response: SkillResponse | dict[str, Any],
        kind: CallbackKind,
    ) -> CallbackResult:
        if (sink := sink_id(url, self._settings)) is not None:
            # The console simulator's URL: recorded in-process instead of POSTed (app/services/simulator.py).
            if self._sink is None:
                raise ValueError("simulator callback without a simulator sink")
            return await self._sink.deliver(sink=sink, task_id=task.id, kind=kind, body=response)
        async with self._posting:
            remaining = (task.callback_deadline - utcnow()).total_seconds() if task.callback_deadline else 30.0
            if remaining <= 0:
                return CallbackResult(CallbackOutcome.NOT_SENT, message="deadline passed before sending")
            timeout = min(self._settings.callback_timeout_seconds, remaining)
            return await send_callback(self._http, url, response, timeout=timeout)

    async def _settle(
        self,
        task: ClaimedTask | OrphanedCallback,
        kind: CallbackKind,
        from_: CallbackStatus,
        to: CallbackStatus,
        error: str | None,
        *,
        delivered_at: datetime | None = None,
    ) -> CallbackStatus | None:
        moved = await self._move(task, from_, to, error=error, delivered_at=delivered_at)
        metrics.CALLBACKS.labels(kind, to).inc()
        return to if moved else None

    async def _move(
        self,
        task: ClaimedTask | OrphanedCallback,
        from_: CallbackStatus,
        to: CallbackStatus,
        *,
        error: str | None = None,
        delivered_at: datetime | None = None,
        lease_until: datetime | None = None,
        kind: CallbackKind | None = None,
    ) -> bool:
        """The conditional state change, outliving a short database outage: a POST that reached Kakao but was
        never recorded as `sent` would leave the answer owed, and the user would get it a second time."""
        for pause in (*_RECORD_PAUSES, None):
            try:
                return await self._store.move_callback(
                    task.id, from_=from_, to=to, sender=self._worker_id, error=error, delivered_at=delivered_at,
                    lease_until=lease_until, kind=kind,
                )
            except Exception as exc:  # a database error: the step must still be recorded
                if pause is None:
                    raise
                logger.warning("Task {}: could not record callback {} -> {} ({}), retrying in {:.1f}s",
                               task.id, from_, to, type(exc).__name__, pause)
                await asyncio.sleep(pause)
        return False  # unreachable: the last pause is None


async def _sleep_until(moment: datetime | None) -> None:
    """Kakao rejects a callback that races the immediate reply, so wait for `callback_not_before`."""
    if moment is not None:
        delay = (moment - utcnow()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
