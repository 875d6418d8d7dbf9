"""Small builders for queue tests: a user, a conversation and a message to hang tasks on."""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import insert

from app.config import Settings
from app.db import Database
from app.models import AppUser, Conversation, Message, Role, utcnow
from app.queue import enqueue, get_task
from tests.conftest import make_settings

CALLBACK_URL = "https://bot-api.kakao.com/v1/bots/bot-1/callback/secret-token-123"
KAKAO_SUCCESS = {"taskId": "t-1", "status": "SUCCESS", "message": "ok", "timestamp": 0}


def worker_settings(database_url: str) -> Settings:
    """A worker tuned for tests: quick polls, short leases and retries, a short apology margin."""
    return make_settings(
        database_url,
        worker_poll_seconds=0.2,
        task_lease_seconds=1.5,
        worker_shutdown_grace_seconds=0.3,
        task_retry_base_seconds=0.05,
        task_retry_max_seconds=0.1,
        callback_timeout_seconds=1.0,
        apology_margin_seconds=0.5,
    )


async def make_message(db: Database, *, kakao_user_id: str = "user-1") -> tuple[int, int, int]:
    """(user_id, conversation_id, message_id) of a fresh user message."""
    async with db.sessions.begin() as session:
        user_id = (
            await session.execute(
                insert(AppUser.__table__).values(bot_id="bot-1", kakao_user_id=kakao_user_id, name_mode=False,
                                                  created_at=utcnow(), last_seen_at=utcnow()).returning(AppUser.id)
            )
        ).scalar_one()
        conversation_id = (
            await session.execute(
                insert(Conversation.__table__).values(user_id=user_id, started_at=utcnow(), last_message_at=utcnow())
                .returning(Conversation.id)
            )
        ).scalar_one()
        message_id = (
            await session.execute(
                insert(Message.__table__).values(conversation_id=conversation_id, user_id=user_id, role=Role.USER,
                                                 text="안녕하세요", created_at=utcnow()).returning(Message.id)
            )
        ).scalar_one()
    return user_id, conversation_id, message_id


async def add_task(
    db: Database,
    ids: tuple[int, int, int],
    *,
    now: datetime | None = None,
    callback: bool = False,
    deadline_seconds: float = 50.0,
    not_before_seconds: float = 0.0,
    max_attempts: int = 3,
) -> uuid.UUID:
    """Enqueue one task the way the skill endpoint does (callback timings relative to `now`)."""
    now = now or utcnow()
    user_id, conversation_id, message_id = ids
    async with db.sessions.begin() as session:
        return await enqueue(
            session,
            bot_id="bot-1",
            user_id=user_id,
            conversation_id=conversation_id,
            message_id=message_id,
            now=now,
            max_attempts=max_attempts,
            callback_url=CALLBACK_URL if callback else None,
            callback_not_before=now + timedelta(seconds=not_before_seconds) if callback else None,
            callback_deadline=now + timedelta(seconds=deadline_seconds) if callback else None,
        )


async def load(db: Database, task_id: uuid.UUID):  # type: ignore[no-untyped-def]
    async with db.sessions() as session:
        return await get_task(session, task_id)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Wait until `check()` is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


class FakePipeline:
    """Answers instantly unless a scripted step says otherwise (an exception to raise or a coroutine to await)."""

    llm = None

    def __init__(self, *script: object) -> None:
        self.script = list(script)
        self.calls: list[tuple[uuid.UUID, float]] = []
        self.finished: list[float] = []

    async def answer(self, task, *, timeout: float):  # type: ignore[no-untyped-def]
        from app.services.pipeline import Answer

        self.calls.append((task.id, time.monotonic()))
        try:
            step = self.script.pop(0) if self.script else None
            if isinstance(step, BaseException):
                raise step
            if callable(step):
                await step()
            return Answer(text=f"answer {task.id}", input_tokens=3, output_tokens=4)
        finally:
            self.finished.append(time.monotonic())
