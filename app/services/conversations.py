"""Conversations (sessions of one user) and their messages."""

from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Conversation, Message, Role
from app.services import events

_conv = Conversation.__table__
_msg = Message.__table__


async def current_conversation(
    session: AsyncSession, *, user_id: int, bot_id: str, now: datetime, timeout_minutes: int
) -> int:
    """Continue the user's conversation, or start a new one after `timeout_minutes` of silence."""
    latest = (
        select(_conv.c.id)
        .where(_conv.c.user_id == user_id)
        .order_by(_conv.c.last_message_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    continued = await session.execute(
        update(_conv)
        .where(_conv.c.id == latest, _conv.c.last_message_at > now - timedelta(minutes=timeout_minutes))
        .values(last_message_at=now)
        .returning(_conv.c.id)
    )
    conv_id = continued.scalar_one_or_none()
    if conv_id is not None:
        return conv_id
    conv_id = (
        await session.execute(
            insert(_conv).values(user_id=user_id, started_at=now, last_message_at=now).returning(_conv.c.id)
        )
    ).scalar_one()
    await events.record_event(
        session, events.CONVERSATION_STARTED, user_id=user_id, bot_id=bot_id, detail=str(conv_id), now=now
    )
    return conv_id


async def add_message(
    session: AsyncSession, *, conversation_id: int, user_id: int, role: Role, text: str, now: datetime
) -> int:
    return (
        await session.execute(
            insert(_msg)
            .values(conversation_id=conversation_id, user_id=user_id, role=role, text=text, created_at=now)
            .returning(_msg.c.id)
        )
    ).scalar_one()


async def recent_conversations(
    session: AsyncSession, user_id: int, *, limit: int = 10
) -> list[tuple[Conversation, list[Message]]]:
    """The user's newest conversations, newest first, each with its messages in order."""
    conversations = list(
        await session.scalars(
            select(Conversation)
            .where(Conversation.user_id == user_id)
            .order_by(Conversation.last_message_at.desc())
            .limit(limit)
        )
    )
    if not conversations:
        return []
    messages = await session.scalars(
        select(Message).where(Message.conversation_id.in_([c.id for c in conversations])).order_by(Message.id)
    )
    by_conversation: dict[int, list[Message]] = {c.id: [] for c in conversations}  # type: ignore[misc]
    for message in messages:
        by_conversation[message.conversation_id].append(message)
    return [(c, by_conversation[c.id]) for c in conversations]  # type: ignore[index]
