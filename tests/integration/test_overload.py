"""Overload (issue 16): a queued task that cannot be answered inside its callback window gets the apology in
time with no model call, its answer is kept for the next message, and /skill stops promising callbacks the
backlog cannot keep. SQLite and PostgreSQL (raw and SQLAlchemy paths)."""

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from sqlalchemy import select, update

from app.config import Settings
from app.db import Database
from app.models import AIProcessingTask, CallbackStatus, TaskStatus, utcnow
from app.queue import backlog
from app.services import texts
from tests.integration.test_skill import payload, texts_of, use_settings
from tests.queue_helpers import CALLBACK_URL, FakePipeline, add_task, eventually, load, make_message, worker_settings
from worker.delivery import DELAY_APOLOGY
from worker.runtime import Worker
from worker.store import QueueStore


@pytest.fixture
def settings(database_url: str) -> Settings:
    # One slot, so a second task must wait; a short no-callback wait keeps the next-message replies quick.
    return worker_settings(database_url).model_copy(update={"worker_concurrency": 1, "skill_sync_wait_seconds": 0.05})


def posted(kakao: respx.Route) -> list[str]:
    return [json.loads(c.request.content)["template"]["outputs"][0]["simpleText"]["text"] for c in kakao.calls]


async def test_claim_leaves_too_late_callbacks_to_the_sweep_and_takes_makeable_ones_first(db: Database) -> None:
    store = QueueStore(db)
    ids = await make_message(db)
    now = utcnow()
    expired = await add_task(db, ids, callback=True, now=now - timedelta(seconds=60))  # window long closed
    no_callback = await add_task(db, ids, now=now - timedelta(seconds=3))
    too_late = await add_task(db, ids, callback=True, deadline_seconds=2, now=now - timedelta(seconds=1))
    makeable = await add_task(db, ids, callback=True, now=now)
    cutoff = now + timedelta(seconds=2)  # margin + expected answer time

    assert [t.id for t in await store.claim(worker_id="w", limit=1, now=now, lease_seconds=10, cutoff=cutoff)] == [
        makeable
    ]
    rest = await store.claim(worker_id="w", limit=10, now=now, lease_seconds=10, cutoff=cutoff)
    assert [t.id for t in rest] == [expired, no_callback]  # oldest first; the too-late one is not started

    [taken] = await store.take_overdue_callbacks(worker_id="w", now=now, cutoff=cutoff, lease_seconds=5)
    assert taken.id == too_late
    row = await load(db, too_late)
    assert (row.status, row.callback_status, row.callback_kind, row.callback_sender) == (
        TaskStatus.PENDING, CallbackStatus.SENDING, "apology", "w"
    )
    assert await store.take_overdue_callbacks(worker_id="x", now=now, cutoff=cutoff, lease_seconds=5) == []
    # Its callback spent, the task is still answered later (its answer is kept for the next message).
    [later] = await store.claim(worker_id="w", limit=10, now=now, lease_seconds=10, cutoff=cutoff)
    assert (later.id, later.callback_status) == (too_late, CallbackStatus.SENDING)


async def test_the_sweep_never_takes_the_callback_of_a_claimed_task(db: Database) -> None:
    store = QueueStore(db)
    ids = await make_message(db)
    now = utcnow()
    task_id = await add_task(db, ids, callback=True, deadline_seconds=2, now=now)
    [claimed] = await store.claim(worker_id="w", limit=1, now=now, lease_seconds=10)
    assert claimed.id == task_id
    later = now + timedelta(seconds=1)
    assert await store.take_overdue_callbacks(
        worker_id="x", now=later, cutoff=later + timedelta(seconds=2), lease_seconds=5
    ) == []
    assert (await load(db, task_id)).callback_status == CallbackStatus.PENDING


async def test_queued_task_past_hope_gets_the_apology_without_a_model_call_and_its_answer_on_the_next_message(
    settings: Settings, db: Database, app: FastAPI, client: httpx.AsyncClient, kakao: respx.Route
) -> None:
    ids = await make_message(db, kakao_user_id="someone-else")
    busy = await add_task(db, ids, callback=True)  # holds the only slot until released
    release = asyncio.Event()
    pipeline = FakePipeline(release.wait)
    short = settings.model_copy(update={"callback_deadline_seconds": 3.0})
    use_settings(app, settings)
    async with Worker(settings, db, pipeline) as worker:
        worker.wakeup.notify()
        await eventually(lambda: _in_flight(db, busy))
        use_settings(app, short)  # this message's callback window is 3 s
        reply = (await client.post("/skill", json=payload("늦을 질문", callback=CALLBACK_URL))).json()
        assert reply["useCallback"] is True
        late = await _newest_task(db)
        await eventually(lambda: _callback_is(db, late, CallbackStatus.SENT), timeout=10)
        assert [task_id for task_id, _ in pipeline.calls] == [busy]  # no model call spent on it
        assert posted(kakao) == [DELAY_APOLOGY]
        release.set()
        await eventually(lambda: _status_is(db, late, TaskStatus.COMPLETED), timeout=10)
    row = await load(db, late)
    assert row.answer_delivered_at is None and row.ai_response == f"answer {late}"
    reply = (await client.post("/skill", json=payload("다음 질문"))).json()
    assert texts_of(reply)[0].startswith(texts.LATE_ANSWER_PREFIX + f"answer {late}\n")


async def test_task_that_can_make_its_window_is_answered_through_the_callback(
    settings: Settings, db: Database, kakao: respx.Route
) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids, callback=True, deadline_seconds=5)
    pipeline = FakePipeline()
    async with Worker(settings, db, pipeline) as worker:
        worker.wakeup.notify()
        await eventually(lambda: _callback_is(db, task_id, CallbackStatus.SENT), timeout=10)
    assert posted(kakao) == [f"answer {task_id}"]
    assert (await load(db, task_id)).answer_delivered_at is not None


async def test_skill_reply_says_so_when_the_backlog_outlasts_the_callback_window(
    db: Database, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backlog, "CACHE_SECONDS", 0.0)
    reply = (await client.post("/skill", json=payload("한가할 때", user="u-1", callback=CALLBACK_URL))).json()
    assert reply["useCallback"] is True
    ids = await make_message(db)
    for _ in range(30):  # 31 waiting, 2 finished over the last 9 s: about 140 s of backlog > 45 s
        await add_task(db, ids, callback=True)
    finished = [await add_task(db, ids) for _ in range(2)]
    async with db.sessions.begin() as session:
        await session.execute(
            update(AIProcessingTask).where(AIProcessingTask.id.in_(finished))
            .values(status=TaskStatus.COMPLETED, completed_at=utcnow() - timedelta(seconds=9), ai_response="a")
        )
    reply = (await client.post("/skill", json=payload("바쁠 때", user="u-2", callback=CALLBACK_URL))).json()
    assert "useCallback" not in reply
    assert texts_of(reply) == [texts.OVERLOADED]
    assert [q["label"] for q in reply["template"]["quickReplies"]] == [texts.CHECK_ANSWER]
    task = await load(db, await _newest_task(db))
    assert (task.callback_url, task.callback_status, task.status) == (None, CallbackStatus.NONE, TaskStatus.PENDING)


async def _newest_task(db: Database) -> Any:
    async with db.sessions() as session:
        return (
            await session.execute(select(AIProcessingTask.id).order_by(AIProcessingTask.created_at.desc()).limit(1))
        ).scalar_one()


async def _in_flight(db: Database, task_id: Any) -> bool:
    return (await load(db, task_id)).status == TaskStatus.PROCESSING


async def _status_is(db: Database, task_id: Any, status: TaskStatus) -> bool:
    return (await load(db, task_id)).status == status


async def _callback_is(db: Database, task_id: Any, status: CallbackStatus) -> bool:
    return (await load(db, task_id)).callback_status == status


async def test_backlog_rate_counts_from_the_first_recent_finish(db: Database) -> None:
    ids = await make_message(db)
    now = utcnow()
    for _ in range(4):
        await add_task(db, ids, callback=True)
    done = [await add_task(db, ids) for _ in range(4)]
    async with db.sessions.begin() as session:
        await session.execute(
            update(AIProcessingTask).where(AIProcessingTask.id.in_(done))
            .values(status=TaskStatus.COMPLETED, completed_at=now - timedelta(seconds=2), ai_response="a")
        )
    async with db.engine.connect() as conn:
        state = await backlog.read_backlog(conn, now=now, window_seconds=50)
    assert (state.waiting, state.finished_recently, round(state.span, 3)) == (4, 4, 2.0)
    assert state.expected_wait == 2.0
