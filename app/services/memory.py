"""What the answer to one message may remember: the user, the conversation so far and the user's summary.

Every query is bound to the task's own user and conversation, and to messages older than the one being
answered, so nothing of another user, another conversation or a later message can enter a prompt.
"""

from dataclasses import dataclass, replace

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AppUser, KnowledgeDocument, Message, Role, UserSummary
from app.queue import ClaimedTask
from app.services.errors import PermanentError
from app.services.llm import ChatMessage
from app.services.tokens import MESSAGE_OVERHEAD, count_tokens
from app.services.users import UserRef

# Read at most this many earlier messages; the token budget usually keeps far fewer.
HISTORY_MAX_MESSAGES = 100

_msg = Message.__table__
_user = AppUser.__table__
_summary = UserSummary.__table__
_document = KnowledgeDocument.__table__


@dataclass(frozen=True, slots=True)
class Turn:
    """The message being answered and what is remembered around it."""

    user: UserRef
    utterance: str
    history: list[ChatMessage]  # earlier messages of the conversation, oldest first, not yet trimmed
    summary: str | None
    has_documents: bool | None = None  # whether the bot has knowledge documents; None = not read yet

    def with_name(self, name: str) -> "Turn":
        return replace(self, user=UserRef(id=self.user.id, name=name, name_mode=False))


async def load_turn(session: AsyncSession, task: ClaimedTask) -> Turn:
    """The task's user, utterance, earlier messages of its conversation, the user's summary and whether the bot
    has knowledge documents: two statements, as this runs once per answer."""
    row = (
        await session.execute(
            select(
                _user.c.id,
                _user.c.name,
                _user.c.name_mode,
                _msg.c.text,
                _summary.c.summary,
                exists().where(_document.c.bot_id == task.bot_id).label("has_documents"),
            )
            .join(_msg, _msg.c.user_id == _user.c.id)
            .outerjoin(_summary, _summary.c.user_id == _user.c.id)
            .where(
                _msg.c.id == task.message_id,
                _msg.c.user_id == task.user_id,
                _msg.c.conversation_id == task.conversation_id,
            )
        )
    ).one_or_none()
    if row is None:
        raise PermanentError(f"message {task.message_id} of the task no longer exists")
    return Turn(
        user=UserRef(id=row.id, name=row.name, name_mode=row.name_mode),
        utterance=row.text,
        history=await earlier_messages(
            session, conversation_id=task.conversation_id, user_id=task.user_id, before_id=task.message_id
        ),
        summary=row.summary,
        has_documents=bool(row.has_documents),
    )


async def earlier_messages(
    session: AsyncSession, *, conversation_id: int, user_id: int, before_id: int, limit: int = HISTORY_MAX_MESSAGES
) -> list[ChatMessage]:
    """The conversation's user and assistant messages stored before message `before_id`, oldest first."""
    rows = (
        await session.execute(
            select(_msg.c.role, _msg.c.text)
            .where(
                _msg.c.conversation_id == conversation_id,
                _msg.c.user_id == user_id,
                _msg.c.id < before_id,
                _msg.c.role.in_([Role.USER, Role.ASSISTANT]),
            )
            .order_by(_msg.c.id.desc())
            .limit(limit)
        )
    ).all()
    return [ChatMessage(role=row.role, content=row.text) for row in reversed(rows)]


def trim_history(messages: list[ChatMessage], budget: int) -> list[ChatMessage]:
    """The newest messages whose tokens fit `budget`; the oldest go first and nothing is skipped over."""
    kept: list[ChatMessage] = []
    used = 0
    for message in reversed(messages):
        used += MESSAGE_OVERHEAD + count_tokens(message.content)
        if used > budget:
            break
        kept.append(message)
    kept.reverse()
    return kept
