"""Rolling user summaries: a periodic job folds each ended conversation into the user's `usersummary`.

A conversation has ended when nothing was said in it for `SESSION_TIMEOUT_MINUTES`. Each one is claimed
with `FOR NO KEY UPDATE SKIP LOCKED` for the length of its LLM call, so two workers never summarise the
same conversation (and messages can still be added to it meanwhile). The new summary is written with a
compare-and-set on the user's summary count, so two conversations of one user summarised at once never
overwrite each other. A failure is logged and the conversation is tried again on a later run; answers
never wait for any of this.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from loguru import logger
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import AppUser, Conversation, Message, Role, UserSummary, utcnow
from app.services import events, usage
from app.services.errors import PermanentError
from app.services.excerpt import bounded
from app.services.llm import ChatMessage, LLMClient
from app.services.memory import trim_history

# Conversations summarised per run, and failures after which a run stops (the next run tries again).
BATCH = 20
MAX_FAILURES_PER_RUN = 3
# The newest part of a long conversation that is summarised, and the time one summary may take.
TRANSCRIPT_TOKEN_BUDGET = 6000
TRANSCRIPT_MAX_MESSAGES = 400
LLM_TIMEOUT_SECONDS = 60.0
NOTHING = "(없음)"
_SPEAKERS = {Role.USER: "고객", Role.ASSISTANT: "상담 챗봇"}

INSTRUCTIONS = """당신은 고객 상담 기록을 정리하는 도우미입니다.
'이전 요약'과 '새 대화'를 합쳐, 다음 상담에서 참고할 고객 정보를 한국어 평문으로 요약하세요.
- 고객의 이름, 관심사와 선호, 문의한 내용과 해결 여부, 다음에 확인할 일을 남기세요.
- 인사, 잡담, 챗봇의 일반 안내는 빼고, 이전 요약에서 여전히 유효한 내용은 유지하세요.
- 주민등록번호, 카드번호, 계좌번호, 비밀번호, 전화번호, 주소 같은 민감한 정보는 적지 마세요.
- 마크다운 없이 {max_chars}자 이내로 쓰세요."""

_conv = Conversation.__table__
_msg = Message.__table__
_user = AppUser.__table__
_summary = UserSummary.__table__


class SummaryConflict(Exception):
    """Another worker changed the user's summary meanwhile; this conversation is folded in on a later run."""


@dataclass
class SummaryRun:
    summarized: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


class Summarizer:
    """Folds ended conversations into rolling summaries with the given LLM client."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], llm: LLMClient) -> None:
        self.settings = settings
        self.sessions = sessions
        self.llm = llm
        self.tz = ZoneInfo(settings.usage_timezone)

    async def run(self, *, now: datetime | None = None, limit: int = BATCH) -> SummaryRun:
        """Summarise up to `limit` ended conversations, oldest first."""
        now = now or utcnow()
        cutoff = now - timedelta(minutes=self.settings.session_timeout_minutes)
        done = SummaryRun()
        while len(done.summarized) + len(done.failed) < limit and len(done.failed) < MAX_FAILURES_PER_RUN:
            conv_id: int | None = None
            try:
                async with self.sessions.begin() as session:
                    claimed = await claim_ended(session, cutoff=cutoff, skip=done.failed)
                    if claimed is None:
                        break
                    conv_id = claimed.id
                    await self._fold(session, claimed, now=now)
                done.summarized.append(conv_id)
            except PermanentError as exc:
                assert conv_id is not None
                done.failed.append(conv_id)
                await self._give_up(claimed, exc, now=now)
            except Exception as exc:  # retryable, conflict, database: the next run tries again
                if conv_id is None:
                    raise
                done.failed.append(conv_id)
                logger.warning("Summary of conversation {} failed, will retry: {}: {}", conv_id, type(exc).__name__, exc)
        if done.summarized:
            logger.info("Summarised {} ended conversation(s)", len(done.summarized))
        return done

    async def _fold(self, session: AsyncSession, claimed: Row, *, now: datetime) -> None:
        transcript = await conversation_messages(session, claimed.id)
        if not any(m.role == Role.USER for m in transcript):
            await mark_summarized(session, claimed.id, now=now)
            return
        previous = (
            await session.execute(
                select(_summary.c.summary, _summary.c.conversations).where(_summary.c.user_id == claimed.user_id)
            )
        ).one_or_none()
        with usage.collect() as calls:
            summary = await self.summarize(previous.summary if previous else None, transcript)
        # In the summary's transaction: a conflict below rolls the record back with the summary (a rare loss).
        await usage.record_calls(session, calls, now=now, day=usage.local_day(now, self.tz), bot_id=claimed.bot_id,
                                 user_id=claimed.user_id)
        if not await mark_summarized(session, claimed.id, now=now):
            raise SummaryConflict(f"conversation {claimed.id} was summarised meanwhile")
        seen = previous.conversations if previous else None
        if not await store_summary(session, claimed.user_id, summary, seen=seen, now=now):
            raise SummaryConflict(f"summary of user {claimed.user_id} changed meanwhile")
        await events.record_event(
            session,
            events.SUMMARY_UPDATED,
            user_id=claimed.user_id,
            bot_id=claimed.bot_id,
            detail={"conversation_id": claimed.id, "chars": len(summary)},
            now=now,
        )

    async def summarize(self, previous: str | None, transcript: list[ChatMessage]) -> str:
        """The previous summary and the conversation folded into one summary of bounded length."""
        max_chars = self.settings.summary_max_chars
        kept = trim_history(transcript, TRANSCRIPT_TOKEN_BUDGET)
        conversation = "\n".join(f"{_SPEAKERS[Role(m.role)]}: {m.content}" for m in kept)
        request = f"이전 요약:\n{(previous or '').strip() or NOTHING}\n\n새 대화:\n{conversation}"
        result = await self.llm.complete(
            [
                ChatMessage(role="system", content=INSTRUCTIONS.format(max_chars=max_chars)),
                ChatMessage(role="user", content=request),
            ],
            timeout=LLM_TIMEOUT_SECONDS,
            max_tokens=max_chars,
            kind=usage.Kind.SUMMARY,
        )
        return bounded(result.text, max_chars)

    async def _give_up(self, claimed: Row, exc: PermanentError, *, now: datetime) -> None:
        """A permanent failure (content filter, 4xx) is not retried: the summary stays as it was."""
        logger.warning("Summary of conversation {} failed for good: {}", claimed.id, exc)
        try:
            async with self.sessions.begin() as session:
                await mark_summarized(session, claimed.id, now=now)
                await events.record_event(
                    session,
                    events.SUMMARY_FAILED,
                    user_id=claimed.user_id,
                    bot_id=claimed.bot_id,
                    detail={"conversation_id": claimed.id, "error": str(exc)[:300]},
                    now=now,
                )
        except Exception as db_exc:  # noqa: BLE001 - left unmarked, it is tried again later
            logger.warning("Could not record the failed summary of conversation {}: {}", claimed.id,
                           type(db_exc).__name__)


# --- SQL ----------------------------------------------------------------------------------------------------


async def claim_ended(session: AsyncSession, *, cutoff: datetime, skip: list[int]) -> Row | None:
    """Lock the oldest ended, unsummarised conversation no other worker holds (id, user_id, bot_id)."""
    stmt = (
        select(_conv.c.id, _conv.c.user_id, _user.c.bot_id)
        .join(_user, _user.c.id == _conv.c.user_id)
        .where(_conv.c.summarized_at.is_(None), _conv.c.last_message_at < cutoff)
        .order_by(_conv.c.last_message_at)
        .limit(1)
        # NO KEY UPDATE: messages (which reference the row) may still be inserted meanwhile.
        .with_for_update(of=_conv, skip_locked=True, key_share=True)
    )
    if skip:
        stmt = stmt.where(_conv.c.id.not_in(skip))
    return (await session.execute(stmt)).one_or_none()


async def conversation_messages(session: AsyncSession, conversation_id: int) -> list[ChatMessage]:
    """The conversation's newest user and assistant messages, oldest first."""
    rows = (
        await session.execute(
            select(_msg.c.role, _msg.c.text)
            .where(_msg.c.conversation_id == conversation_id, _msg.c.role.in_([Role.USER, Role.ASSISTANT]))
            .order_by(_msg.c.id.desc())
            .limit(TRANSCRIPT_MAX_MESSAGES)
        )
    ).all()
    return [ChatMessage(role=row.role, content=row.text) for row in reversed(rows)]


async def store_summary(session: AsyncSession, user_id: int, summary: str, *, seen: int | None, now: datetime) -> bool:
    """Write the summary if it is still the version read (`seen` conversations; None: no row yet)."""
    if seen is None:
        dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
        stmt = (
            dialect.insert(_summary)
            .values(user_id=user_id, summary=summary, conversations=1, updated_at=now)
            .on_conflict_do_nothing(index_elements=[_summary.c.user_id])
            .returning(_summary.c.user_id)
        )
    else:
        stmt = (
            update(_summary)
            .where(_summary.c.user_id == user_id, _summary.c.conversations == seen)
            .values(summary=summary, conversations=seen + 1, updated_at=now)
            .returning(_summary.c.user_id)
        )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def mark_summarized(session: AsyncSession, conversation_id: int, *, now: datetime) -> bool:
    """Record the conversation as summarised; False if it already was."""
    result = await session.execute(
        update(_conv).where(_conv.c.id == conversation_id, _conv.c.summarized_at.is_(None)).values(summarized_at=now)
    )
    return result.rowcount == 1
