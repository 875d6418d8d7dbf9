"""`eventlog` rows for notable things that happen to a user or to the system."""

import json
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import EventLog, utcnow

_event = EventLog.__table__

CONVERSATION_STARTED = "conversation_started"  # also written by the intake statement (app.queue.sql)
NAME_SET = "name_set"
NAME_CHANGED = "name_changed"
LLM_FAILED = "llm_failed"
SUMMARY_UPDATED = "summary_updated"
SUMMARY_FAILED = "summary_failed"
TASK_RETRIED = "task_retried_by_admin"


async def record_event(
    session: AsyncSession,
    event_type: str,
    *,
    user_id: int | None = None,
    bot_id: str | None = None,
    detail: dict[str, Any] | str | None = None,
    now: datetime | None = None,
) -> None:
    """Add one event in the caller's transaction; a dict `detail` is stored as JSON, a string as it is."""
    await session.execute(
        insert(_event).values(
            user_id=user_id,
            bot_id=bot_id,
            event_type=event_type,
            detail=json.dumps(detail, ensure_ascii=False) if isinstance(detail, dict) else detail,
            created_at=now or utcnow(),
        )
    )
