"""Seed 003's request shapes and read fields on both databases: bot-less payloads, a top-level callbackUrl,
the id-less /test-callback, the ai-status field names and the latest answered response."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.db import Database
from app.main import create_app
from app.models import AIProcessingTask, AppUser, CallbackStatus, Message, utcnow
from app.queue import StoredAnswer, claim, complete
from app.services import texts
from tests.conftest import ADMIN_TOKEN
from tests.queue_helpers import add_task, make_message

KAKAO_CALLBACK = "https://bot-api.kakao.com/v1/bots/65a1f0c2e4b0d1a2b3c4d5e6/callback/seed-token-0123"
OTHER_KAKAO_CALLBACK = "https://bot-api.kakao.com/v1/bots/65a1f0c2e4b0d1a2b3c4d5e6/callback/other-token-4567"
SEED_CALLBACK = "http://localhost:8000/test-callback"
ACK = {"version": "2.0", "useCallback": True, "data": {"text": "AI가 답변을 생성하고 있어요!"}}
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def seed_body(**top_level: Any) -> dict[str, Any]:
    """Seed 003's request shape: no `bot`, plus any top-level keys."""
    return {"userRequest": {"utterance": "테스트 메시지", "user": {"id": "test-user"}}, **top_level}


@asynccontextmanager
async def _client(settings: Settings, **overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    # No worker runs here, so a request without a callback must not wait long for an answer.
    app = create_app(settings.model_copy(update={"skill_sync_wait_seconds": 0.05, **overrides}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client, app.state.db
    await app.state.db.dispose()


@pytest.fixture
async def seed_client(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    async with _client(settings) as pair:
        yield pair


@pytest.fixture
async def debug_client(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    async with _client(settings, debug=True) as pair:
        yield pair


async def stored_tasks(db: Database) -> list[AIProcessingTask]:
    async with db.sessions() as session:
        return list((await session.execute(select(AIProcessingTask).order_by(AIProcessingTask.created_at))).scalars())


async def count(db: Database, model: type) -> int:
    async with db.sessions() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


def is_sync_reply(reply: dict[str, Any]) -> bool:
    """The no-callback reply: the message was taken, the answer comes with the next message."""
    return "useCallback" not in reply and texts.PREPARING in reply["template"]["outputs"][0]["simpleText"]["text"]


# --- bot-less payloads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bot", [{}, {"bot": None}], ids=["absent", "null"])
async def test_payload_without_bot_is_stored_under_default_bot_id(
    seed_client: tuple[httpx.AsyncClient, Database], bot: dict[str, Any]
) -> None:
    client, db = seed_client
    response = await client.post("/skill", json={**seed_body(callbackUrl=KAKAO_CALLBACK), **bot})

    assert response.json() == ACK
    [task] = await stored_tasks(db)
    async with db.sessions() as session:
        user = (await session.execute(select(AppUser))).scalar_one()
    assert (task.bot_id, user.bot_id, user.kakao_user_id) == ("default", "default", "test-user")


async def test_default_bot_id_is_a_setting(settings: Settings) -> None:
    async with _client(settings, default_bot_id="seed-bot") as (client, db):
        await client.post("/skill", json=seed_body())
        await client.post("/skill", json={**seed_body(), "bot": {"id": "kakao-bot"}})
        assert sorted(task.bot_id for task in await stored_tasks(db)) == ["kakao-bot", "seed-bot"]


# --- top-level callbackUrl ------------------------------------------------------------------------------


async def test_top_level_callback_url_is_used(seed_client: tuple[httpx.AsyncClient, Database]) -> None:
    client, db = seed_client
    assert (await client.post("/skill", json=seed_body(callbackUrl=KAKAO_CALLBACK))).json() == ACK
    [task] = await stored_tasks(db)
    assert (task.callback_url, task.callback_status) == (KAKAO_CALLBACK, CallbackStatus.PENDING)
    assert task.callback_deadline == task.created_at + timedelta(seconds=50)


@pytest.mark.parametrize(
    "nested", [OTHER_KAKAO_CALLBACK, "https://evil.example/v1/bots/b/callback/t"], ids=["trusted", "untrusted"]
)
async def test_nested_callback_url_wins_over_the_top_level_one(
    seed_client: tuple[httpx.AsyncClient, Database], nested: str
) -> None:
    client, db = seed_client
    body = seed_body(callbackUrl=KAKAO_CALLBACK)
    body["userRequest"]["callbackUrl"] = nested

    reply = (await client.post("/skill", json=body)).json()

    [task] = await stored_tasks(db)
    if nested == OTHER_KAKAO_CALLBACK:
        assert reply == ACK and task.callback_url == nested
    else:  # refused like any untrusted URL; the top-level one is not a fallback
        assert is_sync_reply(reply) and task.callback_url is None


@pytest.mark.parametrize(
    "url",
    [
        SEED_CALLBACK,  # allowed only with DEBUG=true
        "http://bot-api.kakao.com/v1/bots/b/callback/t",
        "https://evil.example/v1/bots/b/callback/t",
        "https://bot-api.kakao.com@evil.example/v1/bots/b/callback/t",
        "javascript:alert(1)",
    ],
)
async def test_untrusted_top_level_callback_url_is_ignored(
    seed_client: tuple[httpx.AsyncClient, Database], url: str
) -> None:
    client, db = seed_client
    reply = (await client.post("/skill", json=seed_body(callbackUrl=url))).json()

    assert is_sync_reply(reply)
    [task] = await stored_tasks(db)
    assert (task.callback_url, task.callback_status) == (None, CallbackStatus.NONE)


@pytest.mark.parametrize("where", ["top-level", "nested"])
async def test_debug_allows_the_local_stand_in_only(
    debug_client: tuple[httpx.AsyncClient, Database], where: str
) -> None:
    client, db = debug_client
    for url in (SEED_CALLBACK, "http://evil.example:8000/test-callback", "http://localhost:8000/admin/ai-tasks"):
        body = seed_body(callbackUrl=url) if where == "top-level" else seed_body()
        if where == "nested":
            body["userRequest"]["callbackUrl"] = url
        await client.post("/skill", json=body)
    assert [task.callback_url for task in await stored_tasks(db)] == [SEED_CALLBACK, None, None]


# --- the id-less Kakao stand-in -------------------------------------------------------------------------


async def test_test_callback_without_id_records_every_post(debug_client: tuple[httpx.AsyncClient, Database]) -> None:
    client, _ = debug_client
    first = (await client.post("/test-callback", json={"version": "2.0", "n": 1})).json()
    second = (await client.post("/test-callback", json={"version": "2.0", "n": 2})).json()
    broken = (await client.post("/test-callback", content=b"{", headers={"content-type": "application/json"})).json()

    assert (first["status"], second["status"], broken["status"]) == ("SUCCESS", "SUCCESS", "FAIL")
    listed = (await client.get("/test-callback")).json()
    assert [r["body"]["n"] for r in listed] == [2, 1]
    assert [r["callback_id"] for r in listed] == [second["taskId"], first["taskId"]]
    assert (await client.get(f"/test-callback/{first['taskId']}")).json()["body"] == {"version": "2.0", "n": 1}


async def test_test_callback_without_id_is_absent_without_debug(
    seed_client: tuple[httpx.AsyncClient, Database],
) -> None:
    client, _ = seed_client
    assert (await client.post("/test-callback", json={"version": "2.0"})).status_code == 404
    assert (await client.get("/test-callback")).status_code == 404


# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (seed_body(callbackUrl=5), "callbackUrl"),
        (seed_body(callbackUrl=[SEED_CALLBACK]), "callbackUrl"),
        (seed_body(bot="default"), "bot"),
        (seed_body(bot={"id": 5}), "bot.id"),
        (seed_body(bot={"id": ""}), "bot.id"),
        ({"userRequest": {"utterance": 5, "user": {"id": "test-user"}}}, "userRequest.utterance"),
        ({"callbackUrl": SEED_CALLBACK}, "userRequest"),
    ],
)
async def test_wrong_types_are_422_with_the_field_and_store_nothing(
    debug_client: tuple[httpx.AsyncClient, Database], body: dict[str, Any], field: str
) -> None:
    client, db = debug_client
    response = await client.post("/skill", json=body)

    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{field}:")
    assert (await count(db, Message), await count(db, AIProcessingTask), await count(db, AppUser)) == (0, 0, 0)


# --- ai-status and latest-ai-response -------------------------------------------------------------------


async def _complete_oldest(db: Database, answer: StoredAnswer) -> None:
    async with db.sessions.begin() as session:
        (task,) = await claim(session, worker_id="w1", limit=1, now=utcnow(), lease_seconds=15)
        await complete(session, task, worker_id="w1", answer=answer, now=utcnow())


async def test_ai_status_carries_the_seed_field_names(client: httpx.AsyncClient, db: Database) -> None:
    task_id = await add_task(db, await make_message(db))
    pending = (await client.get(f"/user/ai-status/{task_id}")).json()
    assert (pending["task_id"], pending["status"], pending["ai_response"], pending["tokens_used"]) == (
        str(task_id), "pending", None, 0,
    )
    assert pending["created_at"] and pending["completed_at"] is None

    await _complete_oldest(db, StoredAnswer(text="답변입니다", input_tokens=7, output_tokens=5))

    done = (await client.get(f"/user/ai-status/{task_id}")).json()
    assert (done["status"], done["ai_response"], done["answer"]) == ("completed", "답변입니다", "답변입니다")
    assert (done["tokens_used"], done["input_tokens"], done["output_tokens"]) == (12, 7, 5)
    assert done["completed_at"] is not None


async def test_latest_ai_response_skips_a_newer_unanswered_task(client: httpx.AsyncClient, db: Database) -> None:
    ids = await make_message(db)
    path = f"/user/conversation/{ids[1]}/latest-ai-response"
    older = await add_task(db, ids, now=utcnow() - timedelta(seconds=5))
    assert (await client.get(path, headers=AUTH)).status_code == 404, "nothing answered yet"
    await _complete_oldest(db, StoredAnswer(text="첫 답변", output_tokens=3))
    newer = await add_task(db, ids)

    latest = (await client.get(path, headers=AUTH)).json()
    assert (latest["task_id"], latest["ai_response"], latest["tokens_used"]) == (str(older), "첫 답변", 3)

    await _complete_oldest(db, StoredAnswer(text="둘째 답변"))
    latest = (await client.get(path, headers=AUTH)).json()
    assert (latest["task_id"], latest["ai_response"]) == (str(newer), "둘째 답변")
