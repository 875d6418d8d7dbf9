"""What the chat API stores per answer: the key's end user, their conversation, both messages and the prompt log."""

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import PromptLog, Role
from app.services.chat.keys import KeyRef
from app.services.conversations import add_message, current_conversation
from app.services.pipeline import Answer
from app.services.users import touch_user

_promptlog = PromptLog.__table__


def api_user_id(key_id: int, end_user: str | None) -> str:
    """The `appuser.kakao_user_id` of a chat API caller: one user per key and end user (`user` of the request)."""
    return f"api:{key_id}:{end_user or ''}"


async def store_exchange(
    session: AsyncSession,
    *,
    key: KeyRef,
    end_user: str | None,
    question: str,
    answer: Answer,
    now: datetime,
    session_timeout_minutes: int,
) -> tuple[int, int]:
    """Store the question, the answer and its prompt log in the end user's current conversation.

    Returns the user's id and the answer's message id (what its usage row refers to)."""
    user = await touch_user(session, bot_id=key.bot_id, kakao_user_id=api_user_id(key.id, end_user), now=now)
    conversation_id = await current_conversation(
        session, user_id=user.id, bot_id=key.bot_id, now=now, timeout_minutes=session_timeout_minutes
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
