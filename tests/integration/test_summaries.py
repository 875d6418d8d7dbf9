"""Rolling summaries on both databases: which conversations, claimed once, bounded, retried, in later prompts."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import respx
from sqlalchemy import func, select

from app.config import Settings
from app.db import Database
from app.models import Conversation, EventLog, Role, UsageRecord, UserSummary, utcnow
from app.services.excerpt import bounded
from app.services.llm import LLMClient
from app.services.summaries import Summarizer
from tests.pipeline_helpers import (
    LLM_BASE_URL,
    LLM_URL,
    add_conversation,
    add_user,
    completion,
    say,
)
from tests.queue_helpers import FakePipeline, eventually
from worker.runtime import Worker

ENDED = timedelta(hours=2)


@pytest.fixture
def llm_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"openai_api_key": "sk-test-key-0000", "openai_base_url": LLM_BASE_URL})


@pytest.fixture
async def summarizer(llm_settings: Settings, db: Database) -> AsyncIterator[Summarizer]:
    llm = LLMClient(llm_settings)
    yield Summarizer(llm_settings, db.sessions, llm)
    await llm.aclose()


async def ended_conversation(db: Database, user_id: int, *texts: str, ago: timedelta = ENDED) -> int:
    conv = await add_conversation(db, user_id, last_message_at=utcnow() - ago)
    for i, text in enumerate(texts):
        await say(db, conv, user_id, Role.USER if i % 2 == 0 else Role.ASSISTANT, text)
    return conv


async def summarized_at(db: Database, conv: int):  # type: ignore[no-untyped-def]
    async with db.sessions() as session:
        return await session.scalar(select(Conversation.summarized_at).where(Conversation.id == conv))


async def summary_of(db: Database, user_id: int) -> UserSummary | None:
    async with db.sessions() as session:
        return await session.get(UserSummary, user_id)


def request_text(call: respx.models.Call) -> str:
    return json.loads(call.request.content)["messages"][1]["content"]


async def test_ended_conversations_are_folded_into_the_rolling_summary(
    db: Database, summarizer: Summarizer
) -> None:
    user = await add_user(db, "u-1")
    first = await ended_conversation(db, user, "반품하고 싶어요", "주문 내역에서 신청하세요", ago=timedelta(hours=3))
    second = await ended_conversation(db, user, "배송비는요?", "3,000원이에요")
    active = await ended_conversation(db, user, "지금 대화 중", ago=timedelta(minutes=1))
    with respx.mock:
        route = respx.post(LLM_URL).mock(
            side_effect=[httpx.Response(200, json=completion("반품 문의함.")),
                         httpx.Response(200, json=completion("반품 문의함. 배송비 문의함."))]
        )
        run = await summarizer.run()
        again = await summarizer.run()
    assert (run.summarized, run.failed, again.summarized) == ([first, second], [], [])
    assert route.call_count == 2
    assert request_text(route.calls[0]) == "이전 요약:\n(없음)\n\n새 대화:\n고객: 반품하고 싶어요\n상담 챗봇: 주문 내역에서 신청하세요"
    assert request_text(route.calls[1]).startswith("이전 요약:\n반품 문의함.\n\n새 대화:\n고객: 배송비는요?")
    summary = await summary_of(db, user)
    assert summary is not None and (summary.summary, summary.conversations) == ("반품 문의함. 배송비 문의함.", 2)
    assert await summarized_at(db, first) and await summarized_at(db, second)
    assert await summarized_at(db, active) is None
    async with db.sessions() as session:
        events = (await session.execute(select(EventLog).where(EventLog.event_type == "summary_updated"))).scalars()
        assert [json.loads(e.detail or "")["conversation_id"] for e in events] == [first, second]
        # Each summary's model call is a usage row of kind summary, with the provider's token counts.
        usage = (await session.execute(select(UsageRecord.kind, UsageRecord.user_id, UsageRecord.input_tokens,
                                              UsageRecord.output_tokens))).all()
    assert [tuple(u) for u in usage] == [("summary", user, 120, 30)] * 2


async def test_the_summary_is_bounded(llm_settings: Settings, db: Database) -> None:
    settings = llm_settings.model_copy(update={"summary_max_chars": 100})
    user = await add_user(db, "u-1")
    await ended_conversation(db, user, "질문", "답변")
    long_text = "고객은 배송 문의를 했어요. " * 40
    llm = LLMClient(settings)
    try:
        with respx.mock:
            route = respx.post(LLM_URL).respond(200, json=completion(long_text))
            await Summarizer(settings, db.sessions, llm).run()
    finally:
        await llm.aclose()
    summary = await summary_of(db, user)
    assert summary is not None and 50 < len(summary.summary) <= 100 and summary.summary.endswith(".")
    body = json.loads(route.calls[0].request.content)
    assert body["max_tokens"] == 100 and "100자 이내" in body["messages"][0]["content"]
    assert bounded("짧은 요약", 100) == "짧은 요약"


async def test_a_failed_summary_is_retried_on_a_later_run(db: Database, summarizer: Summarizer) -> None:
    user = await add_user(db, "u-1", summary="이전 요약")
    conv = await ended_conversation(db, user, "질문", "답변")
    with respx.mock:
        respx.post(LLM_URL).respond(503, json={"error": {"message": "overloaded"}})
        failed = await summarizer.run()
    assert (failed.summarized, failed.failed) == ([], [conv])
    assert await summarized_at(db, conv) is None
    assert (await summary_of(db, user)).summary == "이전 요약"  # type: ignore[union-attr]
    with respx.mock:
        respx.post(LLM_URL).respond(200, json=completion("새 요약"))
        retried = await summarizer.run()
    assert retried.summarized == [conv]
    assert (await summary_of(db, user)).summary == "새 요약"  # type: ignore[union-attr]


async def test_a_run_stops_after_repeated_failures(db: Database, summarizer: Summarizer) -> None:
    user = await add_user(db, "u-1")
    for _ in range(5):
        await ended_conversation(db, user, "질문")
    with respx.mock:
        route = respx.post(LLM_URL).mock(side_effect=httpx.ConnectError)
        run = await summarizer.run()
    assert len(run.failed) == 3 and route.call_count == 3


async def test_a_permanent_failure_is_not_retried(db: Database, summarizer: Summarizer) -> None:
    user = await add_user(db, "u-1")
    conv = await ended_conversation(db, user, "질문", "답변")
    with respx.mock:
        respx.post(LLM_URL).respond(400, json={"error": {"message": "bad request"}})
        run = await summarizer.run()
        assert run.failed == [conv]
        assert (await summarizer.run()).failed == []
    assert await summarized_at(db, conv) is not None and await summary_of(db, user) is None
    async with db.sessions() as session:
        event = (await session.execute(select(EventLog).where(EventLog.event_type == "summary_failed"))).scalar_one()
    assert json.loads(event.detail or "")["conversation_id"] == conv


async def test_a_conversation_without_user_messages_needs_no_llm(db: Database, summarizer: Summarizer) -> None:
    user = await add_user(db, "u-1")
    conv = await ended_conversation(db, user)
    with respx.mock:
        run = await summarizer.run()
    assert run.summarized == [conv] and await summary_of(db, user) is None


async def test_two_workers_summarise_each_conversation_once(llm_settings: Settings, db: Database) -> None:
    convs = []
    for i in range(6):
        convs.append(await ended_conversation(db, await add_user(db, f"u-{i}"), f"질문 {i}", "답변"))
    both_started = asyncio.Event()
    calls: list[str] = []

    async def reply(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content)["messages"][1]["content"])
        if len(calls) >= 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), timeout=5)  # the two runs overlap
        return httpx.Response(200, json=completion("요약"))

    other = Database(llm_settings)
    llm_one, llm_two = LLMClient(llm_settings), LLMClient(llm_settings)
    try:
        with respx.mock:
            respx.post(LLM_URL).mock(side_effect=reply)
            one, two = await asyncio.gather(
                Summarizer(llm_settings, db.sessions, llm_one).run(),
                Summarizer(llm_settings, other.sessions, llm_two).run(),
            )
    finally:
        await asyncio.gather(llm_one.aclose(), llm_two.aclose(), other.dispose())
    assert sorted(one.summarized + two.summarized) == convs
    async with db.sessions() as session:
        counts = (await session.execute(select(UserSummary.conversations))).scalars().all()
        unsummarized = await session.scalar(
            select(func.count()).select_from(Conversation).where(Conversation.summarized_at.is_(None))
        )
    assert sorted(counts) == [1] * 6 and unsummarized == 0
    if db.is_postgres:  # SKIP LOCKED: no conversation is even sent to the LLM twice
        assert len(calls) == 6 and len(set(calls)) == 6


async def test_the_worker_runs_the_summary_job_only_with_an_llm(llm_settings: Settings, db: Database) -> None:
    """Summaries use the pipeline's own LLM client (one per process); an offline pipeline has none."""
    user = await add_user(db, "u-1")
    conv = await ended_conversation(db, user, "질문", "답변")
    quick = llm_settings.model_copy(update={"summary_interval_seconds": 0.1})
    online = FakePipeline()
    online.llm = LLMClient(quick)  # type: ignore[assignment]
    with respx.mock:
        route = respx.post(LLM_URL).respond(200, json=completion("요약"))
        async with Worker(quick, db, FakePipeline()) as offline:
            assert offline.jobs._scheduler.get_job("summarize") is None
        async with Worker(quick, db, online):
            async def summarised() -> bool:
                return await summarized_at(db, conv) is not None

            await eventually(summarised, timeout=10)
    await online.llm.aclose()
    assert route.call_count == 1
    assert (await summary_of(db, user)).summary == "요약"  # type: ignore[union-attr]
