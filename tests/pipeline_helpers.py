"""Builders for answer-pipeline tests: users, conversations, messages, claimed tasks, LLM replies."""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert

from app.db import Database
from app.models import AppUser, Conversation, Message, Role, UserSummary, utcnow
from app.queue import ClaimedTask, claim, enqueue
from app.services.knowledge import KnowledgeBase
from app.services.knowledge.ingest import ingest
from app.services.knowledge.schemas import DocType, FaqPair, ParsedDocument

BOT = "bot-1"
LLM_BASE_URL = "http://llm.test/v1"
LLM_URL = f"{LLM_BASE_URL}/chat/completions"
FAQS = [
    FaqPair(question="배송비는 얼마인가요?", answer="기본 배송비는 3,000원이고, 5만 원 이상 구매하시면 무료예요."),
    FaqPair(question="반품은 어떻게 하나요?", answer="마이페이지 > 주문 내역에서 반품 신청을 누르시면 돼요."),
    FaqPair(question="영업시간이 어떻게 되나요?", answer="평일 오전 9시부터 오후 6시까지 상담해 드려요."),
]


async def add_user(
    db: Database, kakao_user_id: str, *, name: str | None = None, summary: str | None = None, bot_id: str = BOT
) -> int:
    async with db.sessions.begin() as session:
        user_id = (
            await session.execute(
                insert(AppUser.__table__)
                .values(bot_id=bot_id, kakao_user_id=kakao_user_id, name=name, name_mode=False,
                        created_at=utcnow(), last_seen_at=utcnow())
                .returning(AppUser.id)
            )
        ).scalar_one()
        if summary is not None:
            await session.execute(
                insert(UserSummary.__table__).values(user_id=user_id, summary=summary, conversations=1,
                                                     updated_at=utcnow())
            )
    return user_id


async def add_conversation(db: Database, user_id: int, *, last_message_at: datetime | None = None) -> int:
    last = last_message_at or utcnow()
    async with db.sessions.begin() as session:
        return (
            await session.execute(
                insert(Conversation.__table__)
                .values(user_id=user_id, started_at=last - timedelta(minutes=5), last_message_at=last)
                .returning(Conversation.id)
            )
        ).scalar_one()


async def say(db: Database, conversation_id: int, user_id: int, role: Role, text: str) -> int:
    """Store one message; ids grow in the order messages are stored."""
    async with db.sessions.begin() as session:
        return (
            await session.execute(
                insert(Message.__table__)
                .values(conversation_id=conversation_id, user_id=user_id, role=role, text=text, created_at=utcnow())
                .returning(Message.id)
            )
        ).scalar_one()


async def claimed_task(
    db: Database, user_id: int, conversation_id: int, message_id: int, *, bot_id: str = BOT,
    block_name: str | None = None,
) -> ClaimedTask:
    """Enqueue the message's task and claim it as worker `w`."""
    now = utcnow()
    async with db.sessions.begin() as session:
        task_id = await enqueue(session, bot_id=bot_id, user_id=user_id, conversation_id=conversation_id,
                                message_id=message_id, now=now, max_attempts=3, block_name=block_name)
    async with db.sessions.begin() as session:
        (task,) = await claim(session, worker_id="w", limit=1, now=now, lease_seconds=60)
    assert task.id == task_id
    return task


async def add_faqs(db: Database, kb: KnowledgeBase, *, bot_id: str = BOT) -> None:
    parsed = ParsedDocument(bot_id=bot_id, title="자주 묻는 질문", source="faq.json", type=DocType.FAQ, faqs=FAQS)
    async with db.sessions() as session:
        await ingest(session, kb, parsed)


def completion(text: str, *, prompt_tokens: int = 120, completion_tokens: int = 30, finish: str = "stop",
               model: str = "gpt-4o-2024-08-06") -> dict[str, Any]:
    """A Chat Completions response body."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
