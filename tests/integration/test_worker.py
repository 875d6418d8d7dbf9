"""The worker end to end on both backends, with Kakao's callback endpoint mocked by respx."""

import asyncio
import json
import time
import uuid
from collections import Counter
from datetime import timedelta

import httpx
import pytest
import respx
from sqlalchemy import func, select

from app.config import Settings
from app.db import Database
from app.models import (
    AIProcessingTask,
    CallbackStatus,
    TaskStatus,
    WorkerHeartbeat,
    utcnow,
)
from app.queue import claim, take_pending_answers
from app.services.errors import PermanentError, RetryableError
from tests.queue_helpers import (
    CALLBACK_URL,
    KAKAO_SUCCESS,
    FakePipeline,
    add_task,
    eventually,
    load,
    make_message,
    worker_settings,
)
from worker.delivery import DELAY_APOLOGY, FAILURE_APOLOGY
from worker.runtime import Worker
from worker.store import QueueStore


@pytest.fixture
def settings(database_url: str) -> Settings:
    return worker_settings(database_url)


def posted_texts(route: respx.Route) -> list[str]:
    bodies = [json.loads(call.request.content) for call in route.calls]
    assert all("useCallback" not in body for body in bodies)
    return [" ".join(o["simpleText"]["text"] for o in body["template"]["outputs"]) for body in bodies]


def status_is(db: Database, task_id, *statuses: str):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return (await load(db, task_id)).status in statuses

    return check


async def test_answer_is_stored_then_delivered_through_the_callback(
    settings: Settings, db: Database, kakao: respx.Route
) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids, callback=True, not_before_seconds=0.3)
    enqueued = time.monotonic()
    async with Worker(settings, db, FakePipeline()) as worker:
        worker.wakeup.notify()
        await eventually(lambda: _callback_is(db, task_id, CallbackStatus.SENT))
    row = await load(db, task_id)
    assert (row.status, row.attempts, row.ai_response) == (TaskStatus.COMPLETED, 1, f"answer {task_id}")
    assert row.answer_delivered_at is not None and row.response_message_id is not None
    assert posted_texts(kakao) == [f"answer {task_id}"]
    assert time.monotonic() - enqueued >= 0.29  # not before arrival + callback_not_before


async def _callback_is(db: Database, task_id, status: str) -> bool:  # type: ignore[no-untyped-def]
    return (await load(db, task_id)).callback_status == status


async def test_without_callback_the_answer_waits_for_the_reply(
    settings: Settings, db: Database, kakao: respx.Route
) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids)
    async with Worker(settings, db, FakePipeline()):
        await eventually(status_is(db, task_id, TaskStatus.COMPLETED))
    row = await load(db, task_id)
    assert row.answer_delivered_at is None and row.callback_status == CallbackStatus.NONE
    assert not kakao.called


async def test_two_pools_never_claim_the_same_task(settings: Settings, db: Database) -> None:
    ids = await make_message(db)
    task_ids = [await add_task(db, ids) for _ in range(120)]
    other_db = Database(settings)
    pipeline = FakePipeline(*[lambda: asyncio.sleep(0.001)] * 120)
    small = settings.model_copy(update={"worker_concurrency": 7})
    try:
        async with Worker(small, db, pipeline) as one, Worker(small, other_db, pipeline) as two:
            one.wakeup.notify()
            two.wakeup.notify()
            await eventually(lambda: _all_completed(db, task_ids), timeout=30)
    finally:
        await other_db.dispose()
    answered = Counter(task_id for task_id, _ in pipeline.calls)
    assert set(answered) == set(task_ids) and set(answered.values()) == {1}


async def _all_completed(db: Database, task_ids) -> bool:  # type: ignore[no-untyped-def]
    async with db.sessions() as session:
        done = await session.execute(
            select(func.count()).where(AIProcessingTask.status == TaskStatus.COMPLETED)
        )
        return done.scalar_one() == len(task_ids)


async def test_abandoned_claim_is_reclaimed_and_answered(settings: Settings, db: Database, kakao: respx.Route) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids, callback=True)
    async with db.sessions.begin() as session:  # a worker that claims and dies
        await claim(session, worker_id="dead", limit=1, now=utcnow(), lease_seconds=0.5)
    async with Worker(settings, db, FakePipeline()):
        await eventually(lambda: _callback_is(db, task_id, CallbackStatus.SENT))
    row = await load(db, task_id)
    assert (row.status, row.attempts) == (TaskStatus.COMPLETED, 2)
    assert kakao.call_count == 1


async def test_retry_after_is_honoured(settings: Settings, db: Database, kakao: respx.Route) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids, callback=True)
    pipeline = FakePipeline(RetryableError("429", retry_after=0.4))
    async with Worker(settings, db, pipeline) as worker:
        worker.wakeup.notify()
        await eventually(lambda: _callback_is(db, task_id, CallbackStatus.SENT))
    assert len(pipeline.calls) == 2
    assert pipeline.calls[1][1] - pipeline.finished[0] >= 0.39
    row = await load(db, task_id)
    assert (row.status, row.attempts, row.last_error) == (TaskStatus.COMPLETED, 2, "RetryableError: 429")
    assert posted_texts(kakao) == [f"answer {task_id}"]


async def test_backoff_until_max_attempts_then_fail_with_an_apology(
    settings: Settings, db: Database, kakao: respx.Route
) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids, callback=True)
    pipeline = FakePipeline(*[RetryableError("503")] * 3)
    async with Worker(settings, db, pipeline) as worker:
        worker.wakeup.notify()
        await eventually(status_is(db, task_id, TaskStatus.FAILED))
        await eventually(lambda: _callback_is(db, task_id, CallbackStatus.SENT))
    row = await load(db, task_id)
    assert row.attempts == 3 and len(pipeline.calls) == 3
    assert posted_texts(kakao) == [FAILURE_APOLOGY]


async def test_permanent_error_is_not_retried(settings: Settings, db: Database, kakao: respx.Route) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids)
    pipeline = FakePipeline(PermanentError("401 invalid api key"))
    async with Worker(settings, db, pipeline) as worker:
        worker.wakeup.notify()
        await eventually(status_is(db, task_id, TaskStatus.FAILED))
    assert len(pipeline.calls) == 1
    assert (await load(db, task_id)).last_error == "PermanentError: 401 invalid api key"


async def test_no_retry_is_scheduled_past_the_deadline_on_the_callback(
    settings: Settings, db: Database, kakao: respx.Route
) -> None:
    """A retry that would start after the apology point spends the callback on the apology first."""
    ids = await make_message(db)
    task_id = await add_task(db, ids, callback=True, deadline_seconds=1.5)
    pipeline = FakePipeline(RetryableError("429", retry_after=1.2))
    async with Worker(settings, db, pipeline) as worker:
        worker.wakeup.notify()
        await eventually(lambda: _callback_is(db, task_id, CallbackStatus.SENT))
        await eventually(status_is(db, task_id, TaskStatus.PENDING))  # apology sent, the retry still to come
        await eventually(status_is(db, task_id, TaskStatus.COMPLETED))
    assert posted_texts(kakao) == [DELAY_APOLOGY]
    async with db.sessions.begin() as session:
        assert await take_pending_answers(session, ids[0]) == [f"answer {task_id}"]


async def test_slow_answer_gets_an_apology_and_is_kept_for_the_next_message(
    settings: Settings, db: Database, kakao: respx.Route
) -> None:
    ids = await make_message(db)
    # Makeable when claimed (margin 0.5 s + the 1 s expected answer), so the apology comes from the running attempt.
    task_id = await add_task(db, ids, callback=True, deadline_seconds=2.5)
    release = asyncio.Event()
    async with Worker(settings, db, FakePipeline(release.wait)) as worker:
        worker.wakeup.notify()
        await eventually(lambda: _callback_is(db, task_id, CallbackStatus.SENT))
        assert (await load(db, task_id)).status == TaskStatus.PROCESSING
        release.set()
        await eventually(status_is(db, task_id, TaskStatus.COMPLETED))
    assert posted_texts(kakao) == [DELAY_APOLOGY]
    body = json.loads(kakao.calls[0].request.content)
    assert [q["label"] for q in body["template"]["quickReplies"]] == ["답변 확인"]
    assert (await load(db, task_id)).answer_delivered_at is None
    async with db.sessions.begin() as session:
        assert await take_pending_answers(session, ids[0]) == [f"answer {task_id}"]


async def test_callback_that_never_left_is_retried_but_a_rejected_one_is_not(
    settings: Settings, db: Database
) -> None:
    ids = await make_message(db)
    refused_then_ok = await add_task(db, ids, callback=True)
    with respx.mock() as mock:
        route = mock.post(CALLBACK_URL)
        route.side_effect = [httpx.ConnectError("refused"), httpx.Response(200, json=KAKAO_SUCCESS)]
        async with Worker(settings, db, FakePipeline()) as worker:
            worker.wakeup.notify()
            await eventually(lambda: _callback_is(db, refused_then_ok, CallbackStatus.SENT))
        assert route.call_count == 2

    rejected = await add_task(db, ids, callback=True)
    with respx.mock() as mock:
        fail = {"taskId": "t", "status": "FAIL", "message": "Invalid callback token. Check your callback token."}
        route = mock.post(CALLBACK_URL).respond(400, json=fail)
        async with Worker(settings, db, FakePipeline()) as worker:
            worker.wakeup.notify()
            await eventually(lambda: _callback_is(db, rejected, CallbackStatus.FAILED))
        assert route.call_count == 1
    row = await load(db, rejected)
    assert row.status == TaskStatus.COMPLETED and row.answer_delivered_at is None
    assert "Invalid callback token" in row.callback_error


async def test_concurrent_senders_post_once(settings: Settings, db: Database) -> None:
    from app.kakao import text_reply
    from worker.delivery import CallbackKind, Delivery

    ids = await make_message(db)
    await add_task(db, ids, callback=True)
    async with db.sessions.begin() as session:
        (task,) = await claim(session, worker_id="w", limit=1, now=utcnow(), lease_seconds=5)

    async def slow_kakao(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.1)
        return httpx.Response(200, json=KAKAO_SUCCESS)

    with respx.mock() as mock:
        route = mock.post(CALLBACK_URL).mock(side_effect=slow_kakao)
        async with httpx.AsyncClient() as http:
            delivery = Delivery(settings, QueueStore(db), http, worker_id="w")
            results = await asyncio.gather(
                *(delivery.send(task, text_reply("hi"), kind=CallbackKind.ANSWER) for _ in range(4))
            )
    assert route.call_count == 1
    assert sorted(results, key=str) == [None, None, None, CallbackStatus.SENT]


async def test_refused_callback_url_is_never_contacted(settings: Settings, db: Database, kakao: respx.Route) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids, callback=True)
    strict = settings.model_copy(update={"kakao_callback_allowed_hosts": ["other.example"]})
    async with Worker(strict, db, FakePipeline()):
        await eventually(lambda: _callback_is(db, task_id, CallbackStatus.FAILED))
    assert not kakao.called
    assert (await load(db, task_id)).callback_error == "refused: host not allowed"


async def test_graceful_shutdown_finishes_quick_work_and_releases_the_rest(settings: Settings, db: Database) -> None:
    ids = await make_message(db)
    quick = await add_task(db, ids, now=utcnow() - timedelta(seconds=1))
    stuck = await add_task(db, ids)
    release = asyncio.Event()
    started: list[uuid.UUID] = []

    class ByTask(FakePipeline):
        """The quick task waits for `release`, the stuck one forever, whichever of them starts first."""

        async def answer(self, task, *, timeout: float):  # type: ignore[no-untyped-def]
            started.append(task.id)
            await (release.wait() if task.id == quick else asyncio.Event().wait())
            return await super().answer(task, timeout=timeout)

    # A grace far longer than the quick answer needs, so a loaded machine cannot turn "finished" into "released".
    worker = Worker(settings.model_copy(update={"worker_shutdown_grace_seconds": 3}), db, ByTask())
    await worker.start()
    worker.wakeup.notify()
    await eventually(lambda: _async_len(started, 2))
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0)  # the shutdown has begun when the quick answer is let through
    release.set()
    await stopping
    assert (await load(db, quick)).status == TaskStatus.COMPLETED
    row = await load(db, stuck)
    assert (row.status, row.attempts, row.locked_by, row.lease_expires_at) == (TaskStatus.PENDING, 0, None, None)


async def _async_len(items: list, n: int) -> bool:  # type: ignore[type-arg]
    return len(items) >= n


async def test_heartbeat_row_lives_while_the_worker_runs(settings: Settings, db: Database) -> None:
    async def rows() -> list[WorkerHeartbeat]:
        async with db.sessions() as session:
            return list((await session.execute(select(WorkerHeartbeat))).scalars())

    async with Worker(settings, db, FakePipeline()) as worker:
        async def listed() -> bool:
            found = await rows()
            return bool(found) and (db.is_sqlite or found[0].listen_connected)

        await eventually(listed)
        assert (await rows())[0].worker_id == worker.worker_id
    assert await rows() == []


async def test_shutdown_lets_a_waiting_callback_go_out_within_the_grace_period(
    settings: Settings, db: Database, kakao: respx.Route
) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids, callback=True, not_before_seconds=0.5)
    patient = settings.model_copy(update={"worker_shutdown_grace_seconds": 3})
    worker = Worker(patient, db, FakePipeline())
    await worker.start()
    worker.wakeup.notify()
    await eventually(status_is(db, task_id, TaskStatus.COMPLETED))
    assert not kakao.called  # answer stored, delivery waiting for callback_not_before, slot already free
    assert worker.pool.in_flight == 0
    await worker.stop()
    assert kakao.call_count == 1
    assert (await load(db, task_id)).callback_status == CallbackStatus.SENT
