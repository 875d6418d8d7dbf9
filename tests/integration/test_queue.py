"""The queue SQL on both backends: claim, leases, retries, release, reaping, pending answers."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db import Database
from app.models import CallbackStatus, Message, TaskStatus, utcnow
from app.queue import (
    LeaseLost,
    StoredAnswer,
    claim,
    complete,
    fail,
    move_callback,
    prune,
    reap_expired,
    release,
    renew_leases,
    retry_failed,
    schedule_retry,
    stats,
    take_pending_answers,
)
from tests.queue_helpers import add_task, load, make_message


async def _claim(db: Database, worker: str = "w1", limit: int = 10, lease: float = 15.0, now=None):  # type: ignore[no-untyped-def]
    async with db.sessions.begin() as session:
        return await claim(session, worker_id=worker, limit=limit, now=now or utcnow(), lease_seconds=lease)


async def test_claim_leases_oldest_runnable_tasks_and_counts_the_attempt(db: Database) -> None:
    ids = await make_message(db)
    now = utcnow()
    first = await add_task(db, ids, now=now - timedelta(seconds=2))
    second = await add_task(db, ids, now=now - timedelta(seconds=1))
    later = await add_task(db, ids, now=now + timedelta(seconds=60))  # not runnable yet

    claimed = await _claim(db, limit=5, now=now)

    assert [t.id for t in claimed] == [first, second]
    assert all(t.attempts == 1 and t.started_at == now for t in claimed)
    row = await load(db, first)
    assert row.status == TaskStatus.PROCESSING and row.locked_by == "w1"
    assert row.lease_expires_at == now + timedelta(seconds=15)
    assert (await load(db, later)).status == TaskStatus.PENDING
    assert await _claim(db, now=now) == []


async def test_claim_respects_limit(db: Database) -> None:
    ids = await make_message(db)
    for _ in range(5):
        await add_task(db, ids)
    assert len(await _claim(db, limit=2)) == 2
    assert len(await _claim(db, limit=10)) == 3


async def test_complete_stores_answer_message_and_prompt_log(db: Database) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids)
    (task,) = await _claim(db)
    answer = StoredAnswer(text="답변입니다", input_tokens=12, output_tokens=5, rendered_prompt="prompt", model="m")
    async with db.sessions.begin() as session:
        message_id = await complete(session, task, worker_id="w1", answer=answer, now=utcnow())
    row = await load(db, task_id)
    assert row.status == TaskStatus.COMPLETED
    assert (row.ai_response, row.input_tokens, row.output_tokens) == ("답변입니다", 12, 5)
    assert row.response_message_id == message_id and row.locked_by is None and row.answer_delivered_at is None


async def test_complete_after_lost_lease_writes_nothing(db: Database) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids)
    (task,) = await _claim(db, worker="w1", lease=1)
    later = utcnow() + timedelta(seconds=2)
    async with db.sessions.begin() as session:
        assert await reap_expired(session, now=later) == 1
    (again,) = await _claim(db, worker="w2", now=later)
    assert again.attempts == 2
    with pytest.raises(LeaseLost):
        async with db.sessions.begin() as session:
            await complete(session, task, worker_id="w1", answer=StoredAnswer(text="late"), now=utcnow())
    row = await load(db, task_id)
    assert row.status == TaskStatus.PROCESSING and row.locked_by == "w2" and row.ai_response is None
    async with db.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Message))).scalar_one() == 1  # rolled back


async def test_renew_extends_only_own_running_tasks(db: Database) -> None:
    ids = await make_message(db)
    await add_task(db, ids)
    (task,) = await _claim(db, lease=5)
    later = utcnow() + timedelta(seconds=3)
    async with db.sessions.begin() as session:
        assert await renew_leases(session, [task.id], worker_id="other", now=later, lease_seconds=5) == 0
        assert await renew_leases(session, [task.id], worker_id="w1", now=later, lease_seconds=5) == 1
    assert (await load(db, task.id)).lease_expires_at == later + timedelta(seconds=5)


async def test_retry_fail_release(db: Database) -> None:
    ids = await make_message(db)
    t1, t2, t3 = [await add_task(db, ids) for _ in range(3)]
    await _claim(db)
    now = utcnow()
    async with db.sessions.begin() as session:
        assert await schedule_retry(session, t1, worker_id="w1", run_after=now + timedelta(seconds=30), error="E")
        assert await fail(session, t2, worker_id="w1", error="bad request", now=now)
        assert await release(session, [t3], worker_id="w1", now=now) == 1
        assert not await fail(session, t1, worker_id="w1", error="x", now=now)  # no longer ours
    r1, r2, r3 = [await load(db, t) for t in (t1, t2, t3)]
    assert (r1.status, r1.attempts, r1.last_error, r1.locked_by) == (TaskStatus.PENDING, 1, "E", None)
    assert r1.run_after == now + timedelta(seconds=30)
    assert (r2.status, r2.last_error, r2.completed_at) == (TaskStatus.FAILED, "bad request", now)
    assert (r3.status, r3.attempts, r3.lease_expires_at) == (TaskStatus.PENDING, 0, None)  # attempt not used up


async def test_reaper_requeues_expired_leases_and_fails_exhausted_ones(db: Database) -> None:
    ids = await make_message(db)
    fresh = await add_task(db, ids)
    spent = await add_task(db, ids, max_attempts=1)
    await _claim(db, lease=1)
    async with db.sessions.begin() as session:
        assert await reap_expired(session, now=utcnow()) == 0  # leases still valid
        assert await reap_expired(session, now=utcnow() + timedelta(seconds=2)) == 1
    assert (await load(db, fresh)).status == TaskStatus.PENDING
    failed = await load(db, spent)
    assert failed.status == TaskStatus.FAILED and "lease expired" in failed.last_error


async def test_admin_retry_only_from_failed(db: Database) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids)
    async with db.sessions.begin() as session:
        assert not await retry_failed(session, task_id, now=utcnow())
    await _claim(db)
    async with db.sessions.begin() as session:
        await fail(session, task_id, worker_id="w1", error="x", now=utcnow())
        assert await retry_failed(session, task_id, now=utcnow())
    row = await load(db, task_id)
    assert (row.status, row.attempts, row.completed_at) == (TaskStatus.PENDING, 0, None)


async def test_prune_deletes_only_old_finished_tasks(db: Database) -> None:
    ids = await make_message(db)
    old = await add_task(db, ids, now=utcnow() - timedelta(days=40))
    waiting = await add_task(db, ids, now=utcnow() - timedelta(days=40), max_attempts=1)
    await _claim(db, limit=1)
    async with db.sessions.begin() as session:
        await fail(session, old, worker_id="w1", error="x", now=utcnow())
        assert await prune(session, before=utcnow() - timedelta(days=30)) == 1
    assert await load(db, old) is None
    assert await load(db, waiting) is not None


async def test_stats_count_by_status_and_oldest_wait(db: Database) -> None:
    ids = await make_message(db)
    now = utcnow()
    await add_task(db, ids, now=now - timedelta(seconds=30))
    await add_task(db, ids, now=now)
    async with db.sessions() as session:
        result = await stats(session, now=now)
    assert result.by_status[TaskStatus.PENDING] == 2 and result.by_status[TaskStatus.COMPLETED] == 0
    assert result.oldest_pending_seconds == 30


async def _complete(db: Database, task) -> None:  # type: ignore[no-untyped-def]
    async with db.sessions.begin() as session:
        await complete(session, task, worker_id="w1", answer=StoredAnswer(text=f"answer {task.id}"), now=utcnow())


async def test_pending_answers_skip_callbacks_still_in_flight(db: Database) -> None:
    ids = await make_message(db)
    user_id = ids[0]
    now = utcnow()
    apologised = await add_task(db, ids, now=now - timedelta(seconds=3), callback=True)
    no_callback = await add_task(db, ids, now=now - timedelta(seconds=2))
    in_flight = await add_task(db, ids, now=now - timedelta(seconds=1), callback=True)
    for task in await _claim(db):
        await _complete(db, task)
    async with db.sessions.begin() as session:
        await move_callback(session, apologised, from_=CallbackStatus.PENDING, to=CallbackStatus.SENT)

    async with db.sessions.begin() as session:
        answers = await take_pending_answers(session, user_id, now=utcnow())
    assert answers == [f"answer {apologised}", f"answer {no_callback}"]  # oldest first; in_flight left alone
    async with db.sessions.begin() as session:
        assert await take_pending_answers(session, user_id, now=utcnow()) == []
        # Once its deadline passed, an unsent callback no longer holds the answer back.
        later = utcnow() + timedelta(seconds=60)
        assert await take_pending_answers(session, user_id, now=later) == [f"answer {in_flight}"]


async def test_pending_answers_taken_once_under_concurrency(db: Database) -> None:
    ids = await make_message(db)
    await add_task(db, ids)
    (task,) = await _claim(db)
    await _complete(db, task)

    async def take() -> list[str]:
        async with db.sessions.begin() as session:
            return await take_pending_answers(session, ids[0])

    results = await asyncio.gather(take(), take(), take())
    assert sorted(len(r) for r in results) == [0, 0, 1]


async def test_callback_moves_are_single_use(db: Database) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids, callback=True)

    async def grab() -> bool:
        async with db.sessions.begin() as session:
            return await move_callback(session, task_id, from_=CallbackStatus.PENDING, to=CallbackStatus.SENDING)

    assert sorted(await asyncio.gather(*(grab() for _ in range(5)))) == [False] * 4 + [True]
