"""PostgreSQL fast path of /skill: store the message and enqueue its task in one statement.

One round trip on a raw asyncpg connection keeps the reply path lean. It handles only the common
case (no name mode, no answer owed); otherwise it writes nothing and the caller takes the general
path (`app.services.skill`), whose rules this statement mirrors.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app.models import CallbackStatus
from app.queue import NOTIFY_CHANNEL

INTAKE_SQL = f"""
WITH u AS (
    INSERT INTO appuser AS a (bot_id, kakao_user_id, name_mode, created_at, last_seen_at)
    VALUES ($1, $2, false, $3, $3)
    ON CONFLICT (bot_id, kakao_user_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at
    RETURNING a.id, a.name_mode
),
go AS (
    SELECT u.id AS user_id FROM u
    WHERE NOT u.name_mode
      AND NOT EXISTS (
          SELECT 1 FROM aiprocessingtask t
          WHERE t.user_id = u.id AND t.status = 'completed' AND t.answer_delivered_at IS NULL
            AND (t.callback_status NOT IN ('pending', 'sending') OR t.callback_deadline < $3)
      )
),
continued AS (
    UPDATE conversation c SET last_message_at = $3
    FROM go
    WHERE c.id = (
              SELECT id FROM conversation WHERE user_id = go.user_id ORDER BY last_message_at DESC LIMIT 1
          )
      AND c.last_message_at > $3 - make_interval(mins => $4)
    RETURNING c.id
),
started AS (
    INSERT INTO conversation (user_id, started_at, last_message_at)
    SELECT go.user_id, $3, $3 FROM go WHERE NOT EXISTS (SELECT 1 FROM continued)
    RETURNING id, user_id
),
started_event AS (
    INSERT INTO eventlog (user_id, bot_id, event_type, detail, created_at)
    SELECT user_id, $1, 'conversation_started', id::text, $3 FROM started
),
msg AS (
    INSERT INTO message (conversation_id, user_id, role, text, created_at)
    SELECT conv.id, go.user_id, 'user', $5, $3
    FROM (SELECT id FROM continued UNION ALL SELECT id FROM started) AS conv, go
    RETURNING id, conversation_id, user_id
),
task AS (
    INSERT INTO aiprocessingtask (
        id, bot_id, user_id, conversation_id, message_id, block_name, status, attempts, max_attempts,
        run_after, callback_url, callback_not_before, callback_deadline, callback_status,
        input_tokens, output_tokens, created_at
    )
    SELECT $6, $1, msg.user_id, msg.conversation_id, msg.id, $7, 'pending', 0, $8,
           $3, $9, $10, $11, $12, 0, 0, $3
    FROM msg
    RETURNING id
)
SELECT task.id, pg_notify('{NOTIFY_CHANNEL}', '') FROM task
"""


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
    )
    return task_id if row else None
