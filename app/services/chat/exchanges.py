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
        insert(_promptlog).values(
            msg_id=message_id,
            template_name=answer.template_name,
            template_version=answer.template_version,
            rendered_prompt=answer.rendered_prompt or "",
            model=answer.model,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            latency_ms=answer.latency_ms,
            finish_reason=answer.finish_reason,
            sources=answer.sources,
            cache_key=answer.cache_key,
            cache_hit=answer.cache_hit,
            created_at=now,
        )
    )
    return user.id, message_id
