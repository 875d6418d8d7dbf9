"""What the chat API stores per answer: the caller's end user, their conversation, both messages and the prompt log."""

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import PromptLog, Role
from app.services.chat.callers import Caller, stored_user_id
from app.services.conversations import add_message, current_conversation
from app.services.pipeline import Answer
from app.services.users import touch_user

_promptlog = PromptLog.__table__


async def store_exchange(
    session: AsyncSession,
    *,
    caller: Caller,
    end_user: str | None,
    question: str,
    answer: Answer,
    now: datetime,
    session_timeout_minutes: int,
) -> tuple[int, int]:
    """Store the question, the answer and its prompt log in the end user's current conversation.

    Returns the user's id and the answer's message id (what its usage row refers to)."""
    user = await touch_user(
        session, bot_id=caller.bot_id, kakao_user_id=stored_user_id(caller, end_user), now=now
    )
    conversation_id = await current_conversation(
        session, user_id=user.id, bot_id=caller.bot_id, now=now, timeout_minutes=session_timeout_minutes
    )
    await add_message(session, conversation_id=conversation_id, user_id=user.id, role=Role.USER, text=question, now=now)
    message_id = await add_message(
        session, conversation_id=conversation_id, user_id=user.id, role=Role.ASSISTANT, text=answer.text, now=now
    )
    await session.execute(
        insert(_promptlog).values(msg_id=message_id, created_at=now, **answer.promptlog_values())
    )
    return user.id, message_id
