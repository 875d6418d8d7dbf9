"""A worker's task waits its turn for a pooled connection instead of failing after DB_POOL_TIMEOUT.

Found by the chaos suite: with WORKER_CONCURRENCY=200 tasks on DB_POOL_SIZE=10+10 connections, tasks hit
the API's 5 s pool timeout under load and were retried, then failed with an apology instead of an answer.
Every worker (standalone or embedded) now gets its engine from `worker_database`, with the answer timeout
as pool timeout.
"""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.db import Database
from tests.conftest import make_settings
from worker.runtime import worker_database


@pytest.fixture
def tiny_pool(database_url: str):  # type: ignore[no-untyped-def]
    if not database_url.startswith("postgresql"):
        pytest.skip("the SQLite engine has no connection limit to wait on")
    return make_settings(database_url, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.2)


async def _second_checkout_while_first_is_held(db: Database) -> int:
    """The second checkout's query result, got while the pool's only connection was held past DB_POOL_TIMEOUT."""
    async with db.engine.connect() as first:
        await first.execute(text("SELECT 1"))

        async def second() -> int:
            async with db.engine.connect() as conn:
                return (await conn.execute(text("SELECT 2"))).scalar_one()

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.5)  # hold the only connection past DB_POOL_TIMEOUT (0.2 s)
    return await waiting


async def test_the_api_pool_timeout_applies_by_default(tiny_pool) -> None:  # type: ignore[no-untyped-def]
    db = Database(tiny_pool)
    try:
        with pytest.raises(PoolTimeout):
            await _second_checkout_while_first_is_held(db)
    finally:
        await db.dispose()


async def test_the_worker_database_waits_for_the_connection(tiny_pool) -> None:  # type: ignore[no-untyped-def]
    db = worker_database(tiny_pool.model_copy(update={"task_answer_timeout_seconds": 5}))
    try:
        assert await _second_checkout_while_first_is_held(db) == 2
    finally:
        await db.dispose()
