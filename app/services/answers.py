"""Answers owed to a user: awaited in the request, or late ones shown with the next reply."""

import asyncio
import time
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kakao import SkillResponse, text_reply
from app.models import utcnow
from app.queue import take_answer
from app.services import texts


async def wait_for_answer(
    sessions: async_sessionmaker[AsyncSession], task_id: uuid.UUID, *, timeout: float
) -> str | None:
    """Poll for the task's answer until `timeout`; the answer is marked delivered when taken."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        async with sessions() as session, session.begin():
            answer = await take_answer(session, task_id, now=utcnow())
        if answer is not None:
            return answer
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 0.25)


def late_answer_reply(answers: list[str], follow_up: str | None = None) -> SkillResponse:
    """One reply carrying late answers (labelled) and, optionally, a note about the new message."""
    parts = [texts.LATE_ANSWER_PREFIX + answer for answer in answers]
    if follow_up:
        parts.append(follow_up)
    quick = [texts.CHECK_ANSWER] if follow_up == texts.PREPARING else None
    return text_reply("\n\n".join(parts), quick_replies=quick)
