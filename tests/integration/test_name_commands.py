"""Name commands are answered by /skill at once, in the dispatch table, and every change is logged."""

import json

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from app.models import AIProcessingTask, AppUser, EventLog
from app.services import texts
from tests.integration.test_skill import payload, texts_of


async def say(client: httpx.AsyncClient, utterance: str) -> list[str]:
    return texts_of((await client.post("/skill", json=payload(utterance))).json())


async def user_row(app: FastAPI) -> AppUser:
    async with app.state.db.sessions() as session:
        return (await session.execute(select(AppUser))).scalar_one()


async def name_events(app: FastAPI) -> list[dict[str, str]]:
    async with app.state.db.sessions() as session:
        rows = (
            await session.execute(
                select(EventLog.event_type, EventLog.detail)
                .where(EventLog.event_type.like("name_%"))
                .order_by(EventLog.id)
            )
        ).all()
    return [{"type": r.event_type, **json.loads(r.detail)} for r in rows]


async def test_set_name_directly_then_change_it_in_name_mode(app: FastAPI, client: httpx.AsyncClient) -> None:
    assert await say(client, "/이름 홍길동") == [texts.NAME_SET.format(name="홍길동")]
    assert (await user_row(app)).name == "홍길동"
    assert await say(client, "이름 바꿔") == [texts.NAME_ASK]
    assert (await user_row(app)).name_mode is True
    assert await say(client, "Yeonwoo") == [texts.NAME_SET.format(name="Yeonwoo")]
    user = await user_row(app)
    assert (user.name, user.name_mode) == ("Yeonwoo", False)
    assert await name_events(app) == [
        {"type": "name_set", "old": None, "new": "홍길동", "source": "command"},
        {"type": "name_changed", "old": "홍길동", "new": "Yeonwoo", "source": "name_mode"},
    ]
    async with app.state.db.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(AIProcessingTask))).scalar_one() == 0


async def test_invalid_name_is_explained_and_mode_kept(app: FastAPI, client: httpx.AsyncClient) -> None:
    assert await say(client, "/이름") == [texts.NAME_ASK]
    [reply] = await say(client, "홍 길동!")
    assert "띄어쓰기" in reply
    assert (await user_row(app)).name_mode is True
    [too_long] = await say(client, "가" * 21)
    assert "20자" in too_long
    assert await say(client, "취소") == [texts.NAME_CANCELLED]
    user = await user_row(app)
    assert (user.name, user.name_mode) == (None, False)
    assert await name_events(app) == []


async def test_cancel_outside_name_mode_and_name_reaches_welcome(app: FastAPI, client: httpx.AsyncClient) -> None:
    assert await say(client, "취소") == [texts.NOTHING_TO_CANCEL]
    await say(client, "다른 이름")
    await say(client, "민수")
    welcome = texts_of((await client.post("/welcome", json=payload())).json())
    assert welcome == [texts.WELCOME_NAMED.format(name="민수")]
