"""A task whose last attempt died with its worker still owes the user an apology through the callback.

Found by the chaos suite (tests/e2e: a message that kills every worker running it, and pool exhaustion
under 1,000 users): the reaper used to fail such a task outright, leaving its callback unspent forever.
"""

import json
from datetime import timedelta

import pytest
import respx

from app.config import Settings
from app.db import Database
from app.models import CallbackStatus, TaskStatus, utcnow
from app.queue import claim, reap_expired
from tests.queue_helpers import (
    FakePipeline,
    add_task,
    eventually,
    load,
    make_message,
    worker_settings,
)
from worker.delivery import FAILURE_APOLOGY
from worker.runtime import Worker


@pytest.fixture
def settings(database_url: str) -> Settings:
    return worker_settings(database_url)


async def _die_holding(db: Database, lease: float = 0.2) -> None:
    async with db.sessions.begin() as session:  # a worker that claims and dies
        await claim(session, worker_id="dead", limit=10, now=utcnow(), lease_seconds=lease)


async def test_reaper_requeues_an_exhausted_task_with_an_open_callback(db: Database) -> None:
    ids = await make_message(db)
    open_callback = await add_task(db, ids, callback=True, max_attempts=1)
    no_callback = await add_task(db, ids, max_attempts=1)
    expired_callback = await add_task(db, ids, callback=True, max_attempts=1, deadline_seconds=1)
    await _die_holding(db)
    async with db.sessions.begin() as session:
        assert await reap_expired(session, now=utcnow() + timedelta(seconds=2)) == 1
    assert (await load(db, open_callback)).status == TaskStatus.PENDING
    assert (await load(db, no_callback)).status == TaskStatus.FAILED
    assert (await load(db, expired_callback)).status == TaskStatus.FAILED


async def test_last_attempt_lost_with_its_worker_gets_the_apology_without_an_llm_call(
    settings: Settings, db: Database, kakao: respx.Route
) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids, callback=True, max_attempts=1)
    await _die_holding(db)
    pipeline = FakePipeline()
    async with Worker(settings, db, pipeline) as worker:
        worker.wakeup.notify()
        await eventually(lambda: _callback_sent(db, task_id), timeout=15)
    row = await load(db, task_id)
    assert (row.status, row.attempts) == (TaskStatus.FAILED, 2)
    assert pipeline.calls == []
    [call] = kakao.calls
    assert json.loads(call.request.content)["template"]["outputs"][0]["simpleText"]["text"] == FAILURE_APOLOGY


async def _callback_sent(db: Database, task_id) -> bool:  # type: ignore[no-untyped-def]
    return (await load(db, task_id)).callback_status == CallbackStatus.SENT
