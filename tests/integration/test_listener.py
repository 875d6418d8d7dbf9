"""LISTEN/NOTIFY wake-ups survive the database dropping the connection (PostgreSQL only)."""

import asyncio

import asyncpg
import pytest

from app.config import Settings
from app.db import Database, pg_dsn
from app.models import TaskStatus
from app.pg_listener import APPLICATION_NAME, PgListener
from app.queue import NOTIFY_CHANNEL
from tests.queue_helpers import FakePipeline, add_task, eventually, load, make_message
from worker.runtime import Worker


@pytest.fixture
def pg(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL only")
    return database_url


async def _terminate_listener(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            APPLICATION_NAME,
        )
    finally:
        await conn.close()


async def test_listener_reconnects_after_pg_terminate_backend(pg: str) -> None:
    dsn = pg_dsn(pg)
    woken = asyncio.Event()
    listener = PgListener(dsn, NOTIFY_CHANNEL, woken.set, check_seconds=30)
    listener.start()
    try:
        await eventually(_is(lambda: listener.connected))
        assert await _terminate_listener(dsn) == 1
        await eventually(_is(lambda: listener.connects == 2 and listener.connected), timeout=10)
        woken.clear()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")
        finally:
            await conn.close()
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        await listener.stop()
    assert not listener.connected


async def test_worker_is_woken_by_notify_after_a_forced_disconnect(pg: str, settings: Settings, db: Database) -> None:
    ids = await make_message(db)
    slow_poll = settings.model_copy(update={"worker_poll_seconds": 60})  # only NOTIFY can wake it in time
    async with Worker(slow_poll, db, FakePipeline()) as worker:
        assert worker.listener is not None
        await eventually(_is(lambda: worker.listener.connected))
        assert await _terminate_listener(pg_dsn(pg)) == 1
        await eventually(_is(lambda: worker.listener.connects == 2 and worker.listener.connected), timeout=10)
        await asyncio.sleep(0.05)  # let the reconnect's catch-up claim find the queue empty
        task_id = await add_task(db, ids)
        await eventually(lambda: _completed(db, task_id), timeout=5)


async def _completed(db: Database, task_id) -> bool:  # type: ignore[no-untyped-def]
    return (await load(db, task_id)).status == TaskStatus.COMPLETED


def _is(condition):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return bool(condition())

    return check
