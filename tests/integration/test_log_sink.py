"""WARNING+ records reach `logmessage` without blocking the logger, recursing or growing without bound."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger
from sqlalchemy import select

from app.config import Settings
from app.db import Database
from app.logs import DatabaseLogSink, setup_logging
from app.models import LogMessage
from tests.conftest import make_settings
from tests.queue_helpers import eventually


@pytest.fixture(autouse=True)
def masked_logging(settings: Settings) -> Iterator[None]:
    setup_logging(settings.model_copy(update={"openai_api_key": "sk-live-abcdefghijklmnop"}))
    yield
    logger.remove()


async def stored(db: Database) -> list[LogMessage]:
    async with db.sessions() as session:
        return list((await session.execute(select(LogMessage).order_by(LogMessage.id))).scalars())


async def test_warnings_and_errors_are_stored_masked(db: Database) -> None:
    sink = DatabaseLogSink(db.sessions, secrets=["sk-live-abcdefghijklmnop"]).start()
    try:
        logger.info("not kept")
        logger.warning("callback failed for https://bot-api.kakao.com/v1/bots/b/callback/one-time-token")
        try:
            raise ValueError("key sk-live-abcdefghijklmnop rejected")
        except ValueError:
            logger.exception("LLM call failed")
        await asyncio.to_thread(logger.error, "from a thread")

        async def three() -> bool:
            return len(await stored(db)) == 3

        await eventually(three)
    finally:
        await sink.stop()
    rows = await stored(db)
    assert [r.level for r in rows] == ["WARNING", "ERROR", "ERROR"]
    assert rows[0].message.endswith("/callback/***") and "one-time-token" not in rows[0].message
    assert rows[1].message == "LLM call failed\nValueError: key *** rejected"
    assert rows[1].logger is not None and rows[1].logger.startswith("tests.integration.test_log_sink:")
    assert rows[2].message == "from a thread" and sink.dropped == 0


async def test_a_full_queue_drops_records_instead_of_blocking(db: Database) -> None:
    sink = DatabaseLogSink(db.sessions, max_queued=2).start()
    try:
        for i in range(5):  # no await in between: the writer cannot run yet
            logger.warning("burst {}", i)
        assert sink.dropped == 3

        async def two() -> bool:
            return len(await stored(db)) == 2

        await eventually(two)
    finally:
        await sink.stop()
    assert [r.message for r in await stored(db)] == ["burst 0", "burst 1"]


async def test_a_broken_database_is_not_logged_back_into_itself(tmp_path: Path, db: Database) -> None:
    # A database without the logmessage table: every write fails.
    broken = Database(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"))
    sink = DatabaseLogSink(broken.sessions).start()
    try:
        logger.warning("one")
        logger.error("two")

        async def dropped() -> bool:
            return sink.dropped == 2

        await eventually(dropped)
        await asyncio.sleep(0.05)  # room for a feedback loop to show itself
        assert sink.dropped == 2 and sink._queue.empty()
    finally:
        await sink.stop()
        await broken.dispose()


async def test_stop_writes_what_is_queued(db: Database) -> None:
    sink = DatabaseLogSink(db.sessions).start()
    logger.warning("last words")
    await sink.stop()
    logger.warning("after stop")
    assert [r.message for r in await stored(db)] == ["last words"]
