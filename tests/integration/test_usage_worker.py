"""Budgets through the worker on both backends: OpenAI and Kakao mocked with respx, the pipeline and queue real."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from sqlalchemy import func, insert, select, update

from app.config import Settings
from app.db import Database
from app.main import create_app
from app.models import (
    AIProcessingTask,
    EventLog,
    Message,
    Role,
    TaskStatus,
    UsageCounter,
    UsageRecord,
    UsageRolledDay,
    utcnow,
)
from app.queue import claim, enqueue
from app.services.pipeline import build_pipeline
from app.services.usage import ModelCall, UsageService, local_day, month_key
from app.services.usage.periods import month_span
from tests.conftest import ADMIN_TOKEN
from tests.pipeline_helpers import LLM_BASE_URL, LLM_URL, add_conversation, add_user, completion
from tests.queue_helpers import CALLBACK_URL, KAKAO_SUCCESS, FakePipeline, eventually, worker_settings
from worker.runtime import Worker
from worker.usage import TaskUsage

ANSWER_TOKENS = (120, 30)  # what the mocked provider reports for every answer


@pytest.fixture
def settings(database_url: str, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return worker_settings(database_url).model_copy(update={
        "openai_api_key": "sk-test", "openai_base_url": LLM_BASE_URL, "chroma_path": str(tmp_path / "chroma"),
        "embedding_backend": "local", "worker_concurrency": 50,
    })


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.post(LLM_URL).respond(200, json=completion("안내해 드릴게요.", prompt_tokens=ANSWER_TOKENS[0],
                                                          completion_tokens=ANSWER_TOKENS[1]))
        router.post(CALLBACK_URL).respond(200, json=KAKAO_SUCCESS)
        yield router


async def enqueue_messages(db: Database, user_id: int, count: int) -> list[uuid.UUID]:
    """`count` messages of one user, each with its task and an open callback, in one go."""
    conversation_id = await add_conversation(db, user_id)
    now = utcnow()
    ids = []
    async with db.sessions.begin() as session:
        for i in range(count):
            message_id = (await session.execute(insert(Message.__table__).values(
                conversation_id=conversation_id, user_id=user_id, role=Role.USER, text=f"질문 {i}", created_at=now,
            ).returning(Message.id))).scalar_one()
            ids.append(await enqueue(
                session, bot_id="bot-1", user_id=user_id, conversation_id=conversation_id, message_id=message_id,
                now=now, max_attempts=3, callback_url=CALLBACK_URL, callback_not_before=now,
                callback_deadline=now + timedelta(seconds=50), user_is_friend=True,
            ))
    return ids


async def history(settings: Settings, db: Database, user_id: int, total_tokens: int) -> None:
    """Earlier answers (yesterday's): the estimate a worker starts from is their average."""
    usage = UsageService(settings, db)
    holders = usage.kakao_holders(bot_id="bot-1", user_id=user_id, is_friend=True)
    reservation = await usage.reserve(holders, tokens=0, now=utcnow(), bot_id="bot-1")
    await usage.settle(reservation, [ModelCall("answer", "gpt-4o", total_tokens, 0)], now=utcnow(),
                       bot_id="bot-1", user_id=user_id)


def posted(mock: respx.MockRouter) -> list[str]:
    bodies = [json.loads(call.request.content) for call in mock.calls if call.request.url == CALLBACK_URL]
    return [body["template"]["outputs"][0]["simpleText"]["text"] for body in bodies]


def llm_calls(mock: respx.MockRouter) -> int:
    return sum(1 for call in mock.calls if str(call.request.url) == LLM_URL)


async def finished(db: Database, ids: list[uuid.UUID]) -> bool:
    async with db.sessions() as session:
        done = (await session.execute(select(func.count()).where(
            AIProcessingTask.id.in_(ids), AIProcessingTask.callback_status == "sent"
        ))).scalar()
    return done == len(ids)


async def test_totals_equal_the_providers_reported_usage(
    settings: Settings, db: Database, mock: respx.MockRouter
) -> None:
    user_id = await add_user(db, "counted")
    ids = await enqueue_messages(db, user_id, 3)
    pipeline = build_pipeline(settings, db)
    async with Worker(settings, db, pipeline) as worker:
        worker.wakeup.notify()
        await eventually(lambda: finished(db, ids))
    await pipeline.aclose()

    async with db.sessions() as session:
        rows = (await session.execute(select(UsageRecord))).scalars().all()
        tasks = (await session.execute(select(AIProcessingTask))).scalars().all()
    assert sorted((r.kind, r.input_tokens, r.output_tokens, r.task_id) for r in rows) == sorted(
        ("answer", *ANSWER_TOKENS, t.id) for t in tasks
    )
    assert all(t.reserved_tokens == 0 and t.status == TaskStatus.COMPLETED for t in tasks)

    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        stats = (await client.get("/admin/usage/statistics", params={"period": "month"},
                                  headers={"authorization": f"Bearer {ADMIN_TOKEN}"})).json()
    await app.state.db.dispose()
    assert (stats["requests"], stats["input_tokens"], stats["output_tokens"]) == (3, 360, 90)
    assert stats["total_tokens"] == 450 and stats["by_model"][0]["model"] == "gpt-4o-2024-08-06"
    assert abs(stats["cost_usd"] - (360 * 2.5 + 90 * 10) / 1e6) < 1e-9
    assert stats["top_users"] == [{"user_id": user_id, "kakao_user_id": "counted", "bot_id": "bot-1",
                                   "total_tokens": 450, "cost_usd": stats["cost_usd"]}]
    assert stats["by_day"] == [{"date": local_day(utcnow(), UsageService(settings, db).tz).isoformat(),
                                "requests": 3, "total_tokens": 450, "cost_usd": stats["cost_usd"]}]


async def test_twenty_five_messages_at_once_keep_the_budget(
    settings: Settings, db: Database, mock: respx.MockRouter
) -> None:
    answer = sum(ANSWER_TOKENS)
    settings = settings.model_copy(update={"user_monthly_token_limit": 6 * answer})
    user_id = await add_user(db, "eager")
    await history(settings, db, user_id, answer)  # one earlier answer: 150 of 900 used, the estimate is 150
    ids = await enqueue_messages(db, user_id, 25)
    pipeline = build_pipeline(settings, db)
    async with Worker(settings, db, pipeline) as worker:
        worker.wakeup.notify()
        await eventually(lambda: finished(db, ids), timeout=20)
    await pipeline.aclose()

    texts = posted(mock)
    refusals = [t for t in texts if t.startswith("이번 달 이용 한도를 모두 사용하셨어요.")]
    assert len(texts) == 25
    assert llm_calls(mock) == 25 - len(refusals) == 5  # room for exactly five more: none refused early
    async with db.sessions() as session:
        used = (await session.execute(select(func.sum(UsageRecord.total_tokens)))).scalar()
        held = (await session.execute(select(func.sum(AIProcessingTask.reserved_tokens)))).scalar()
    assert used == 6 * answer and held == 0  # the limit exactly, nothing left reserved


async def test_the_answer_that_crosses_80_percent_ends_with_a_notice(
    settings: Settings, db: Database, mock: respx.MockRouter
) -> None:
    settings = settings.model_copy(update={"user_monthly_token_limit": 1000})
    user_id = await add_user(db, "noticed")
    await history(settings, db, user_id, 700)
    ids = await enqueue_messages(db, user_id, 1)
    pipeline = build_pipeline(settings, db)
    async with Worker(settings, db, pipeline) as worker:
        worker.wakeup.notify()
        await eventually(lambda: finished(db, ids))
    await pipeline.aclose()
    assert posted(mock) == ["안내해 드릴게요.\n\n※ 이번 달 이용 한도의 80%를 사용하셨어요."]


async def test_a_reservation_left_by_a_dead_worker_is_given_back(settings: Settings, db: Database) -> None:
    user_id = await add_user(db, "stranded")
    (task_id,) = await enqueue_messages(db, user_id, 1)
    usage = TaskUsage(UsageService(settings, db))
    async with db.sessions() as session:
        task = (await claim(session, worker_id="w", limit=1, now=utcnow(), lease_seconds=5))[0]
        await session.commit()
    reservation = await usage.admit(task)
    assert reservation.admitted and reservation.tokens == usage.estimate.tokens
    async with db.sessions.begin() as session:  # the reaper fails it after its worker died mid-answer
        await session.execute(update(AIProcessingTask).where(AIProcessingTask.id == task_id).values(status="failed"))
    assert await usage.release_stranded() == 1
    assert await usage.release_stranded() == 0
    async with db.sessions() as session:
        held = (await session.execute(select(func.sum(UsageCounter.reserved_tokens)))).scalar()
        marked = (await session.execute(select(AIProcessingTask.reserved_tokens))).scalar()
    assert (held, marked) == (0, 0)


async def test_the_monthly_report_job_keeps_last_months_totals(settings: Settings, db: Database) -> None:
    usage = UsageService(settings, db)
    month = month_key(utcnow() - timedelta(days=2), usage.tz)  # the job runs on the 1st: the month just ended
    first_day = month_span(month).start
    noon = datetime.combine(first_day, datetime.min.time(), tzinfo=usage.tz).replace(hour=12).astimezone(UTC)
    user_id = await add_user(db, "reported")
    holders = usage.kakao_holders(bot_id="bot-1", user_id=user_id, is_friend=True)
    reservation = await usage.reserve(holders, tokens=10, now=noon, bot_id="bot-1")
    await usage.settle(reservation, [ModelCall("answer", "gpt-4o", 1000, 200)], now=noon, bot_id="bot-1",
                       user_id=user_id)
    async with httpx.AsyncClient() as http:
        await Worker(settings, db, FakePipeline(), http=http).jobs.report_usage()
    async with db.sessions() as session:
        detail = (await session.execute(select(EventLog.detail).where(EventLog.event_type == "usage_report"))).scalar()
        rolled = (await session.execute(select(func.count()).select_from(UsageRolledDay))).scalar()
    report = json.loads(detail or "{}")
    assert (report["month"], report["requests"], report["total_tokens"], report["lines"]) == (month, 1, 1200, 1)
    assert report["cost_usd"] == pytest.approx((1000 * 2.5 + 200 * 10) / 1e6)
    assert rolled >= 1  # the rollup ran first
