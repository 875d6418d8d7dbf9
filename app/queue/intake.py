"""PostgreSQL fast path of /skill: store the message and enqueue its task in one statement.

One round trip on a raw asyncpg connection keeps the reply path lean. It handles only the common
case (no name mode, no answer owed); otherwise it writes nothing and the caller takes the general
path (`app.services.skill`), whose rules `app.queue.sql.INTAKE_SQL` mirrors.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app.models import CallbackStatus
from app.queue.sql import INTAKE_SQL


@dataclass(frozen=True, slots=True)
class Intake:
    """One utterance as the fast path received it."""

    bot_id: str
    kakao_user_id: str
    utterance: str
    now: datetime
    session_timeout_minutes: int
    block_name: str | None
    max_attempts: int
    callback_url: str | None
    callback_not_before: datetime | None
    callback_deadline: datetime | None
    user_is_friend: bool | None = None


async def store_and_enqueue(pool: asyncpg.Pool, intake: Intake) -> uuid.UUID | None:
    """The new task's id, or None when the general path must handle this message (nothing written)."""
    task_id = uuid.uuid4()
    row = await pool.fetchrow(
        INTAKE_SQL,
        intake.bot_id,
        intake.kakao_user_id,
        intake.now,
        intake.session_timeout_minutes,
        intake.utterance,
        task_id,
        intake.block_name,
        intake.max_attempts,
        intake.callback_url,
        intake.callback_not_before,
        intake.callback_deadline,
        CallbackStatus.PENDING.value if intake.callback_url else CallbackStatus.NONE.value,
        intake.user_is_friend,
    )
    return task_id if row else None
