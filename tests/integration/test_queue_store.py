"""The worker's per-task calls (raw asyncpg on PostgreSQL, SQLAlchemy on SQLite) behave like app.queue."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db import Database
from app.models import CallbackKind, CallbackStatus, Message, PromptLog, TaskStatus, utcnow
from app.queue import LeaseLost, StoredAnswer, reap_expired
from tests.queue_helpers import CALLBACK_URL, add_task, load, make_message
from worker.store import QueueStore


async def test_claim_oldest_runnable_first_and_count_the_attempt(db: Database) -> None:
    store = QueueStore(db)
    ids = await make_message(db)
    now = utcnow()
    first = await add_task(db, ids, now=now - timedelta(seconds=2))
    second = await add_task(db, ids, now=now - timedelta(seconds=1))
    await add_task(db, ids, now=now + timedelta(seconds=30))

    claimed = await store.claim(worker_id="w", limit=1, now=now, lease_seconds=10)
    claimed += await store.claim(worker_id="w", limit=5, now=now, lease_seconds=10)

    assert [t.id for t in claimed] == [first, second]
    assert claimed[0].attempts == 1 and claimed[0].started_at == now and claimed[0].created_at.tzinfo is not None
    row = await load(db, first)
    assert (row.status, row.locked_by, row.lease_expires_at) == ("processing", "w", now + timedelta(seconds=10))


async def test_complete_writes_message_prompt_log_and_takes_the_callback(db: Database) -> None:
    store = QueueStore(db)
    ids = await make_message(db)
    task_id = await add_task(db, ids, callback=True)
    (task,) = await store.claim(worker_id="w", limit=1, now=utcnow(), lease_seconds=10)
    answer = StoredAnswer(
        text="안녕하세요", input_tokens=10, output_tokens=3, model="m", latency_ms=42,
        rendered_prompt=json.dumps([{"role": "user"}]), template_name="default", template_version=1,
        finish_reason="stop", sources="[]",
    )
    now = utcnow()
    lease = now + timedelta(seconds=15)

    message_id = await store.complete(task, worker_id="w", answer=answer, now=now, send_lease_until=lease)

    row = await load(db, task_id)
    assert (row.status, row.ai_response, row.response_message_id) == (TaskStatus.COMPLETED, "안녕하세요", message_id)
    assert (row.input_tokens, row.output_tokens, row.completed_at, row.locked_by) == (10, 3, now, None)
    assert (row.callback_status, row.callback_sender, row.callback_lease_expires_at, row.callback_kind) == (
        CallbackStatus.SENDING, "w", lease, "answer")
    async with db.sessions() as session:
        message = await session.get(Message, message_id)
        log = await session.get(PromptLog, message_id)
    assert (message.role, message.text, message.conversation_id) == ("assistant", "안녕하세요", ids[1])
    assert (log.task_id, log.model, log.latency_ms, log.template_name) == (task_id, "m", 42, "default")


async def test_complete_without_prompt_or_callback(db: Database) -> None:
    store = QueueStore(db)
    ids = await make_message(db)
    task_id = await add_task(db, ids, callback=True)
    (task,) = await store.claim(worker_id="w", limit=1, now=utcnow(), lease_seconds=10)
    await store.complete(task, worker_id="w", answer=StoredAnswer(text="a"), now=utcnow())
    row = await load(db, task_id)
    assert (row.callback_status, row.callback_sender, row.callback_lease_expires_at) == ("pending", None, None)
    async with db.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(PromptLog))).scalar_one() == 0


async def test_complete_after_the_lease_was_lost_writes_nothing(db: Database) -> None:
    store = QueueStore(db)
    ids = await make_message(db)
    task_id = await add_task(db, ids)
    (task,) = await store.claim(worker_id="w", limit=1, now=utcnow(), lease_seconds=1)
    async with db.engine.begin() as conn:
        await reap_expired(conn, now=utcnow() + timedelta(seconds=2))
    with pytest.raises(LeaseLost):
        await store.complete(task, worker_id="w", answer=StoredAnswer(text="late"), now=utcnow(),
                             send_lease_until=utcnow() + timedelta(seconds=15))
    assert (await load(db, task_id)).status == TaskStatus.PENDING
    async with db.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Message))).scalar_one() == 1


async def test_move_callback_is_conditional_and_only_the_sender_moves_it_out_of_sending(db: Database) -> None:
    store = QueueStore(db)
    ids = await make_message(db)
    task_id = await add_task(db, ids, callback=True)
    delivered = utcnow()
    lease = delivered + timedelta(seconds=15)
    assert await store.move_callback(task_id, from_=CallbackStatus.PENDING, to=CallbackStatus.SENDING, sender="w",
                                     lease_until=lease, kind=CallbackKind.APOLOGY)
    assert not await store.move_callback(task_id, from_=CallbackStatus.PENDING, to=CallbackStatus.SENDING, sender="x")
    row = await load(db, task_id)
    assert (row.callback_sender, row.callback_lease_expires_at, row.callback_kind) == ("w", lease, "apology")
    assert not await store.move_callback(task_id, from_=CallbackStatus.SENDING, to=CallbackStatus.SENT, sender="x")
    assert await store.move_callback(
        task_id, from_=CallbackStatus.SENDING, to=CallbackStatus.SENT, sender="w", error="note", delivered_at=delivered
    )
    row = await load(db, task_id)
    assert (row.callback_status, row.callback_error, row.answer_delivered_at) == ("sent", "note", delivered)
    assert (row.callback_sender, row.callback_lease_expires_at, row.callback_kind) == ("w", None, "apology")


async def test_renew_leases_only_of_own_running_tasks_and_sends(db: Database) -> None:
    store = QueueStore(db)
    ids = await make_message(db)
    await add_task(db, ids)
    sending = await add_task(db, ids, callback=True)
    claimed_at = utcnow()
    first_lease = claimed_at + timedelta(seconds=5)
    await store.move_callback(sending, from_=CallbackStatus.PENDING, to=CallbackStatus.SENDING, sender="w",
                              lease_until=first_lease, kind=CallbackKind.ANSWER)
    (task,) = await store.claim(worker_id="w", limit=1, now=claimed_at, lease_seconds=5)
    later = claimed_at + timedelta(seconds=3)
    await store.renew_leases([task.id, sending], worker_id="other", now=later, lease_seconds=5)
    assert (await load(db, task.id)).lease_expires_at == first_lease
    assert (await load(db, sending)).callback_lease_expires_at == first_lease
    await store.renew_leases([task.id, sending], worker_id="w", now=later, lease_seconds=5)
    assert (await load(db, task.id)).lease_expires_at == later + timedelta(seconds=5)
    row = await load(db, sending)
    assert (row.callback_lease_expires_at, row.lease_expires_at) == (later + timedelta(seconds=5), None)


async def test_take_orphaned_callbacks_only_of_dead_senders_and_once(db: Database) -> None:
    store = QueueStore(db)
    ids = await make_message(db)
    live, orphan, mine = [await add_task(db, ids, callback=True) for _ in range(3)]
    late = await add_task(db, ids, callback=True, deadline_seconds=0.5)
    now = utcnow()
    for task_id, lease in ((live, now + timedelta(seconds=5)), (orphan, now), (mine, now), (late, now)):
        await store.move_callback(task_id, from_=CallbackStatus.PENDING, to=CallbackStatus.SENDING, sender="a",
                                  lease_until=lease, kind=CallbackKind.ANSWER)
    later = now + timedelta(seconds=1)

    (taken,) = await store.take_orphaned_callbacks(worker_id="b", now=later, lease_seconds=5, skip=[mine])
    assert await store.take_orphaned_callbacks(worker_id="c", now=later, lease_seconds=5, skip=[mine]) == []

    assert (taken.id, taken.status, taken.callback_kind, taken.callback_url) == (orphan, "pending", "answer",
                                                                                  CALLBACK_URL)
    row = await load(db, orphan)
    assert (row.callback_status, row.callback_sender, row.callback_lease_expires_at) == (
        "sending", "b", later + timedelta(seconds=5))
