"""POST /skill and /welcome against real databases; Kakao itself is never contacted."""

import dataclasses
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from sqlalchemy import func, select, update

from app.api.deps import get_skill_service
from app.config import Settings
from app.db import Database
from app.models import AIProcessingTask, AppUser, CallbackStatus, Message, TaskStatus, utcnow
from app.services import texts
from app.services.skill import SkillService
from tests.conftest import FIXTURES, make_settings

CALLBACK = "https://bot-api.kakao.com/v1/bots/65a1f0c2e4b0d1a2b3c4d5e6/callback/fake-token-123"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def payload(utterance: str = "환불 규정 알려줘", *, user: str = "user-1", callback: str | None = None) -> dict[str, Any]:
    body = fixture("skill_request_basic.json")
    body["userRequest"]["utterance"] = utterance
    body["userRequest"]["user"]["id"] = user
    if callback:
        body["userRequest"]["callbackUrl"] = callback
    return body


async def count(db: Database, model: type) -> int:
    async with db.sessions() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def tasks(db: Database) -> list[AIProcessingTask]:
    async with db.sessions() as session:
        return list((await session.execute(select(AIProcessingTask).order_by(AIProcessingTask.created_at))).scalars())


async def complete(db: Database, task_id: uuid.UUID, answer: str, callback: CallbackStatus | None = None) -> None:
    """Stand in for the worker: mark a task answered (and its callback's fate, if it had one)."""
    values: dict[str, Any] = {"status": TaskStatus.COMPLETED, "ai_response": answer, "completed_at": utcnow()}
    if callback:
        values["callback_status"] = callback
    async with db.sessions() as session, session.begin():
        await session.execute(update(AIProcessingTask).where(AIProcessingTask.id == task_id).values(**values))


def texts_of(reply: dict[str, Any]) -> list[str]:
    return [o["simpleText"]["text"] for o in reply["template"]["outputs"]]


def use_settings(app: FastAPI, settings: Settings) -> None:
    """The skill routes of `app` run with other settings (the service is a dependency, overridden)."""
    service = SkillService(settings, app.state.db, app.state.wakeup)

    async def override() -> SkillService:
        return service

    app.dependency_overrides[get_skill_service] = override


@pytest.fixture
def fast_app(settings, app: FastAPI) -> FastAPI:  # type: ignore[no-untyped-def]
    """The app with a short no-callback wait so tests of the 'still working' path stay quick."""
    use_settings(app, settings.model_copy(update={"skill_sync_wait_seconds": 0.05}))
    return app


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("skill_request_*.json")))
async def test_every_fixture_request_is_accepted(fast_app: FastAPI, client: httpx.AsyncClient, name: str) -> None:
    with respx.mock(assert_all_called=False) as kakao:
        response = await client.post("/skill", json=fixture(name))
    assert response.status_code == 200
    reply = response.json()
    assert reply["version"] == "2.0"
    assert not kakao.calls
    if name == "skill_request_callback.json":
        assert reply == {"version": "2.0", "useCallback": True, "data": {"text": "AI가 답변을 생성하고 있어요!"}}
    else:
        assert 1 <= len(reply["template"]["outputs"]) <= 3


async def test_callback_request_stores_message_and_task_together(client: httpx.AsyncClient, app: FastAPI) -> None:
    db = app.state.db
    before = utcnow()
    response = await client.post("/skill", json=fixture("skill_request_callback.json"))
    ack = fixture("callback_ack_response.json")
    body = response.json()
    assert body.keys() == ack.keys() and body["data"].keys() == ack["data"].keys()
    assert body["useCallback"] is True and body["data"]["text"] == "AI가 답변을 생성하고 있어요!"
    [task] = await tasks(db)
    assert task.status == TaskStatus.PENDING and task.attempts == 0
    assert task.callback_url == fixture("skill_request_callback.json")["userRequest"]["callbackUrl"]
    assert task.callback_status == CallbackStatus.PENDING
    assert task.callback_not_before == task.created_at + timedelta(seconds=1)
    assert task.callback_deadline == task.created_at + timedelta(seconds=50)
    assert before <= task.created_at <= utcnow()
    async with db.sessions() as session:
        message = await session.get(Message, task.message_id)
    assert message is not None and message.role == "user"
    assert message.text == fixture("skill_request_callback.json")["userRequest"]["utterance"]
    assert message.conversation_id == task.conversation_id


async def test_failed_enqueue_leaves_nothing_behind(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task insert fails after user, conversation and message were written: all of it rolls back."""
    from app.queue import intake

    async def broken_enqueue(*args: object, **kwargs: object) -> None:
        raise RuntimeError("queue insert failed")

    async def broken_fast_path(pool: object, data: intake.Intake) -> object:
        # A block name longer than its column makes the last insert of the statement fail.
        return await intake.store_and_enqueue(pool, dataclasses.replace(data, block_name="x" * 300))  # type: ignore[arg-type]

    monkeypatch.setattr("app.services.skill.enqueue", broken_enqueue)
    monkeypatch.setattr("app.services.skill.store_and_enqueue", broken_fast_path)
    response = await client.post("/skill", json=payload(callback=CALLBACK))
    assert response.status_code == 200
    assert texts_of(response.json()) == [texts.CANNOT_STORE]
    assert await count(app.state.db, Message) == 0
    assert await count(app.state.db, AIProcessingTask) == 0
    assert await count(app.state.db, AppUser) == 0


async def test_unreachable_database_still_gets_a_kakao_reply() -> None:
    settings = make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", db_pool_timeout=1)
    from app.main import create_app

    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/skill", json=payload())
    assert response.status_code == 200
    assert texts_of(response.json()) == [texts.CANNOT_STORE]


async def test_secret_header_is_enforced(app: FastAPI, settings, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    use_settings(app, settings.model_copy(update={"kakao_skill_secret": "s3cret", "skill_sync_wait_seconds": 0.05}))
    refused = await client.post("/skill", json=payload())
    assert (refused.status_code, refused.json()) == (401, {"detail": "missing or wrong X-Skill-Secret", "code": "unauthorized"})
    assert (await client.post("/skill", json=payload(), headers={"X-Skill-Secret": "s3cre"})).status_code == 401
    assert (await client.post("/welcome", json=payload())).status_code == 401
    ok = await client.post("/skill", json=payload(), headers={"X-Skill-Secret": "s3cret"})
    assert ok.status_code == 200
    assert await count(app.state.db, Message) == 1


HOSTILE_CALLBACKS = [
    "http://bot-api.kakao.com/v1/bots/b/callback/t",
    "https://evil.example.com/v1/bots/b/callback/t",
    "https://bot-api.kakao.com.evil.com/v1/bots/b/callback/t",
    "https://bot-api.kakao.com@evil.com/v1/bots/b/callback/t",
    "https://user:pass@bot-api.kakao.com/v1/bots/b/callback/t",
    "https://bot-api.kakao.com:8443/v1/bots/b/callback/t",
    "https://bot-api.kakao.com/admin/callback/t",
    "https://127.0.0.1/v1/bots/b/callback/t",
    "https://169.254.169.254/v1/bots/b/callback/t",
    "https://[::1]/v1/bots/b/callback/t",
    "ftp://bot-api.kakao.com/v1/bots/b/callback/t",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("url", HOSTILE_CALLBACKS)
async def test_untrusted_callback_is_never_contacted(fast_app: FastAPI, client: httpx.AsyncClient, url: str) -> None:
    with respx.mock(assert_all_called=False) as outside:
        response = await client.post("/skill", json=payload(callback=url))
    assert not outside.calls
    reply = response.json()
    assert "useCallback" not in reply
    assert texts_of(reply) == [texts.PREPARING]
    [task] = await tasks(fast_app.state.db)
    assert task.callback_url is None and task.callback_status == CallbackStatus.NONE


async def test_no_callback_answer_ready_within_wait(client: httpx.AsyncClient, app: FastAPI) -> None:
    db = app.state.db

    async def answer_soon() -> None:
        for _ in range(200):
            pending = await tasks(db)
            if pending:
                await complete(db, pending[0].id, "환불은 7일 이내에 가능합니다.")
                return
            await app.state.wakeup.wait(0.01)

    import asyncio

    worker = asyncio.create_task(answer_soon())
    response = await client.post("/skill", json=payload())
    await worker
    assert texts_of(response.json()) == ["환불은 7일 이내에 가능합니다."]
    [task] = await tasks(db)
    assert task.answer_delivered_at is not None


async def test_no_callback_past_wait_then_check_answer(fast_app: FastAPI, client: httpx.AsyncClient) -> None:
    db = fast_app.state.db
    first = (await client.post("/skill", json=payload())).json()
    assert texts_of(first) == [texts.PREPARING]
    assert first["template"]["quickReplies"] == [
        {"label": "답변 확인", "action": "message", "messageText": "답변 확인"}
    ]
    still = (await client.post("/skill", json=payload(texts.CHECK_ANSWER))).json()
    assert texts_of(still) == [texts.STILL_WORKING]
    [task] = await tasks(db)
    await complete(db, task.id, "영업시간은 9시부터 6시까지예요.")
    late = (await client.post("/skill", json=payload(texts.CHECK_ANSWER))).json()
    assert texts_of(late) == [texts.LATE_ANSWER_PREFIX + "영업시간은 9시부터 6시까지예요."]
    again = (await client.post("/skill", json=payload(texts.CHECK_ANSWER))).json()
    assert texts_of(again) == [texts.NOTHING_PENDING]
    assert await count(db, Message) == 1, "commands are not stored as messages"
    assert await count(db, AIProcessingTask) == 1


async def test_late_answer_comes_first_on_next_message(fast_app: FastAPI, client: httpx.AsyncClient) -> None:
    db = fast_app.state.db
    await client.post("/skill", json=payload("첫 질문", callback=CALLBACK))
    [first] = await tasks(db)
    await complete(db, first.id, "첫 답변", CallbackStatus.FAILED)  # its callback was never delivered
    other_user = (await client.post("/skill", json=payload("다른 사람 질문", user="user-2"))).json()
    assert texts.LATE_ANSWER_PREFIX not in "".join(texts_of(other_user))
    reply = (await client.post("/skill", json=payload("두 번째 질문", callback=CALLBACK))).json()
    assert "useCallback" not in reply
    joined = "\n".join(texts_of(reply))
    assert joined.startswith(texts.LATE_ANSWER_PREFIX + "첫 답변")
    assert texts.PREPARING in joined
    rows = await tasks(db)
    assert len(rows) == 3
    assert rows[2].callback_url is None, "the callback was not acknowledged, so it is not used"


BAD_BODIES: list[tuple[str, bytes, int]] = [
    ("not json", b"hello", 400),
    ("invalid utf-8", b'{"a": "\xff\xfe"}', 400),
    ("array", b"[1, 2]", 400),
    ("empty object", b"{}", 422),
    ("no user id", json.dumps({"bot": {"id": "b"}, "userRequest": {"utterance": "x", "user": {}}}).encode(), 422),
    ("no utterance", json.dumps({"bot": {"id": "b"}, "userRequest": {"user": {"id": "u"}}}).encode(), 422),
    ("wrong type", json.dumps({"bot": {"id": "b"}, "userRequest": {"utterance": 5, "user": {"id": "u"}}}).encode(), 422),
    ("user id over 70", json.dumps({"bot": {"id": "b"}, "userRequest": {"utterance": "x", "user": {"id": "u" * 71}}}).encode(), 422),
    ("1 MB", b'{"pad": "' + b"x" * 1_000_000 + b'"}', 413),
]


@pytest.mark.parametrize(("case", "body", "status"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_bad_input_is_refused_and_stores_nothing(
    app: FastAPI, client: httpx.AsyncClient, case: str, body: bytes, status: int
) -> None:
    response = await client.post("/skill", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    codes = {400: "malformed_body", 413: "payload_too_large", 422: "invalid_payload"}
    assert response.json()["detail"] and response.json()["code"] == codes[status]
    assert await count(app.state.db, AppUser) == 0
    assert await count(app.state.db, Message) == 0


async def test_too_long_utterance_gets_a_kakao_reply(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.post("/skill", json=payload("가" * 2001, callback=CALLBACK))
    assert response.status_code == 200
    assert texts_of(response.json()) == [texts.TOO_LONG.format(limit=2000)]
    assert await count(app.state.db, Message) == 0


async def test_welcome_uses_the_name_when_known(app: FastAPI, client: httpx.AsyncClient) -> None:
    assert texts_of((await client.post("/welcome", json=payload())).json()) == [texts.WELCOME]
    async with app.state.db.sessions() as session, session.begin():
        session.add(AppUser(bot_id="65a1f0c2e4b0d1a2b3c4d5e6", kakao_user_id="user-1", name="민수"))
    assert texts_of((await client.post("/welcome", json=payload())).json()) == [
        texts.WELCOME_NAMED.format(name="민수")
    ]


async def test_conversation_continues_until_the_session_timeout(fast_app: FastAPI, client: httpx.AsyncClient) -> None:
    from app.models import Conversation, EventLog

    db = fast_app.state.db
    for text in ("첫 번째", "두 번째"):
        await client.post("/skill", json=payload(text, callback=CALLBACK))
    first, second = await tasks(db)
    assert first.conversation_id == second.conversation_id
    async with db.sessions() as session, session.begin():
        await session.execute(
            update(Conversation).values(last_message_at=utcnow() - timedelta(minutes=31))
        )
    await client.post("/skill", json=payload("세 번째", callback=CALLBACK))
    third = (await tasks(db))[2]
    assert third.conversation_id != first.conversation_id
    async with db.sessions() as session:
        started = (
            await session.execute(select(EventLog.detail).where(EventLog.event_type == "conversation_started"))
        ).scalars().all()
    assert sorted(started) == sorted([str(first.conversation_id), str(third.conversation_id)])
    other = (await client.post("/skill", json=payload("남의 대화", user="user-2", callback=CALLBACK)))
    assert other.status_code == 200
    assert (await tasks(db))[3].conversation_id not in {first.conversation_id, third.conversation_id}


async def test_locked_database_gets_an_apology_within_the_budget(app: FastAPI, settings, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    """Another transaction holds the tables: the reply is a valid apology, bounded by the store timeout."""
    import asyncio
    import time

    from sqlalchemy import text

    use_settings(app, settings.model_copy(update={"skill_store_timeout_seconds": 0.5}))
    blocker = Database(settings)
    async with blocker.engine.connect() as conn:
        if blocker.is_sqlite:
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            await conn.execute(text("BEGIN"))
            await conn.execute(text("LOCK TABLE appuser IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        response = await client.post("/skill", json=payload(callback=CALLBACK))
        elapsed = time.monotonic() - started
        await conn.rollback()
    await blocker.dispose()
    assert response.status_code == 200
    assert texts_of(response.json()) == [texts.CANNOT_STORE]
    assert elapsed < 4.5, "Kakao waits 5 s at most"
    await asyncio.sleep(0)
    assert await count(app.state.db, Message) == 0
