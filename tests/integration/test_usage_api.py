"""The usage admin API on both backends: prices, overrides, per-user usage, alerts, reports, the rollup."""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.db import Database
from app.models import UsageDaily, UsageRolledDay, utcnow
from app.services.usage import ModelCall, UsageService, local_day
from app.services.usage.rollup import roll_up
from tests.conftest import ADMIN_TOKEN
from tests.pipeline_helpers import add_user

AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def usage(settings: Settings, db: Database) -> UsageService:
    return UsageService(settings.model_copy(update={"user_monthly_token_limit": 10_000}), db)


async def spend(usage: UsageService, user_id: int, calls: list[ModelCall], *, now: datetime | None = None,
                bot_id: str = "bot-1") -> None:
    now = now or utcnow()
    holders = usage.kakao_holders(bot_id=bot_id, user_id=user_id, is_friend=True)
    reservation = await usage.reserve(holders, tokens=100, now=now, bot_id=bot_id)
    await usage.settle(reservation, calls, now=now, bot_id=bot_id, user_id=user_id)


async def test_admin_token_required(client: httpx.AsyncClient) -> None:
    for path in ("/admin/usage/statistics", "/admin/usage/prices", "/admin/usage/limits", "/admin/usage/alerts"):
        response = await client.get(path)
        assert response.status_code == 401 and response.json()["code"] == "unauthorized"


async def test_prices_are_seeded_and_editable(client: httpx.AsyncClient) -> None:
    prices = (await client.get("/admin/usage/prices", headers=AUTH)).json()["items"]
    assert {p["model"]: (p["input_usd_per_million"], p["output_usd_per_million"]) for p in prices} == {
        "gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6), "text-embedding-3-small": (0.02, 0.0),
        "whisper-1": (100.0, 0.0), "tts-1": (15.0, 0.0),
    }
    body = {"items": [{"model": "gpt-4o", "input_usd_per_million": 2.0, "output_usd_per_million": 8.0},
                      {"model": "my-model", "input_usd_per_million": 1, "output_usd_per_million": 2}]}
    items = (await client.put("/admin/usage/prices", json=body, headers=AUTH)).json()["items"]
    assert {p["model"]: p["input_usd_per_million"] for p in items}["gpt-4o"] == 2.0
    assert "my-model" in {p["model"] for p in items}
    for bad in ({"items": []}, {"items": [{"model": "x", "input_usd_per_million": -1, "output_usd_per_million": 0}]},
                {"items": [{"model": "a b", "input_usd_per_million": 1, "output_usd_per_million": 0}]}, {}):
        response = await client.put("/admin/usage/prices", json=bad, headers=AUTH)
        assert response.status_code == 422 and response.json()["code"] == "invalid_input", bad


async def test_a_new_price_applies_to_later_calls_only(
    client: httpx.AsyncClient, usage: UsageService, db: Database
) -> None:
    user_id = await add_user(db, "priced")
    await spend(usage, user_id, [ModelCall("answer", "gpt-4o", 1_000_000, 0)])
    body = {"items": [{"model": "gpt-4o", "input_usd_per_million": 5, "output_usd_per_million": 10}]}
    assert (await client.put("/admin/usage/prices", json=body, headers=AUTH)).status_code == 200
    await spend(usage, user_id, [ModelCall("answer", "gpt-4o", 1_000_000, 0)])
    stats = (await client.get("/admin/usage/statistics", params={"period": "month"}, headers=AUTH)).json()
    assert stats["cost_usd"] == pytest.approx(2.5 + 5.0)


async def test_limit_overrides(client: httpx.AsyncClient, db: Database) -> None:
    user_id = await add_user(db, "limited")
    put = await client.put(f"/admin/usage/limits/users/{user_id}", headers=AUTH,
                           json={"monthly_token_limit": 5000, "policy": "warn"})
    assert put.status_code == 200
    await client.put("/admin/usage/limits/bots/bot-1", headers=AUTH, json={"monthly_token_limit": 0, "policy": None})
    limits = (await client.get("/admin/usage/limits", headers=AUTH)).json()
    assert limits["defaults"] == {"user_monthly_token_limit": 0, "bot_monthly_token_limit": 0,
                                  "user_monthly_message_limit": 0, "non_friend_monthly_token_limit": 0,
                                  "policy": "block"}
    assert [(i["scope"], i["holder_id"], i["kakao_user_id"], i["bot_id"], i["monthly_token_limit"], i["policy"])
            for i in limits["items"]] == [("bot", "bot-1", None, "bot-1", 0, None),
                                          ("user", str(user_id), "limited", "bot-1", 5000, "warn")]
    back = await client.put(f"/admin/usage/limits/users/{user_id}", headers=AUTH,
                            json={"monthly_token_limit": None, "policy": None})
    assert [i["scope"] for i in back.json()["items"]] == ["bot"]
    missing = await client.put("/admin/usage/limits/users/999999", headers=AUTH, json={"monthly_token_limit": 1})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    for bad in ({"monthly_token_limit": -1}, {"monthly_token_limit": "5"}, {"monthly_token_limit": True},
                {"monthly_token_limit": 5, "policy": "stop"}):
        response = await client.put(f"/admin/usage/limits/users/{user_id}", headers=AUTH, json=bad)
        assert response.status_code == 422, bad


async def test_users_alerts_and_detail(client: httpx.AsyncClient, usage: UsageService, db: Database) -> None:
    heavy, light = await add_user(db, "heavy"), await add_user(db, "light")
    await spend(usage, heavy, [ModelCall("answer", "gpt-4o", 8000, 500)])
    await spend(usage, light, [ModelCall("answer", "gpt-4o-mini", 100, 50)])
    users = (await client.get("/admin/usage/users", params={"bot_id": "bot-1"}, headers=AUTH)).json()["items"]
    assert [(u["kakao_user_id"], u["total_tokens"], u["limit"], u["percent"], u["policy"]) for u in users] == [
        ("heavy", 8500, 10_000, 85.0, "block"), ("light", 150, 10_000, 1.5, "block")
    ]
    one = (await client.get("/admin/usage/users", params={"kakao_user_id": "light"}, headers=AUTH)).json()["items"]
    assert [u["user_id"] for u in one] == [light]
    alerts = (await client.get("/admin/usage/alerts", params={"user_id": heavy}, headers=AUTH)).json()["items"]
    assert [(a["scope"], a["kakao_user_id"], a["threshold"], a["used"], a["limit"]) for a in alerts] == [
        ("user", "heavy", 80, 8500, 10_000)
    ]
    detail = (await client.get(f"/admin/usage/users/{heavy}", headers=AUTH)).json()
    assert detail["total_tokens"] == 8500 and detail["period"] == "month"
    assert [d["total_tokens"] for d in detail["by_day"]] == [8500]
    assert (await client.get("/admin/usage/users/999999", headers=AUTH)).status_code == 404
    assert (await client.get("/admin/usage/statistics", params={"period": "year"}, headers=AUTH)).status_code == 422


async def test_rollup_keeps_the_statistics_and_the_report(
    client: httpx.AsyncClient, usage: UsageService, db: Database
) -> None:
    user_id = await add_user(db, "rolled")
    today = local_day(utcnow(), usage.tz)
    month_start = today.replace(day=1)
    days = [month_start + timedelta(days=i) for i in range((today - month_start).days + 1)][-3:]
    for i, day in enumerate(days):
        noon = datetime.combine(day, datetime.min.time(), tzinfo=usage.tz).replace(hour=12).astimezone(UTC)
        await spend(usage, user_id, [ModelCall("answer", "gpt-4o", 100 * (i + 1), 10),
                                     ModelCall("embedding", "unpriced-embedder", 5, 0)], now=noon)
    params = {"period": "month"}
    before = (await client.get("/admin/usage/statistics", params=params, headers=AUTH)).json()
    rolled = await roll_up(db.engine, now=utcnow() + timedelta(days=1), tz=usage.tz)
    assert rolled == days
    async with db.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(UsageRolledDay))).scalar() == len(days)
        assert (await session.execute(select(func.count()).select_from(UsageDaily))).scalar() == 2 * len(days)
    after = (await client.get("/admin/usage/statistics", params=params, headers=AUTH)).json()
    assert after == before
    assert before["requests"] == 2 * len(days) and before["unpriced_requests"] == len(days)
    assert {m["model"]: m["cost_usd"] for m in before["by_model"]}["unpriced-embedder"] is None
    assert await roll_up(db.engine, now=utcnow() + timedelta(days=1), tz=usage.tz) == []  # once per day

    month = today.strftime("%Y-%m")
    report = (await client.get("/admin/usage/reports", params={"month": month}, headers=AUTH)).json()
    assert report["total_tokens"] == before["total_tokens"] and len(report["rows"]) == 2
    text = (await client.get("/admin/usage/reports", params={"month": month, "format": "csv"}, headers=AUTH)).text
    lines = list(csv.DictReader(io.StringIO(text)))
    assert lines[0].keys() >= {"month", "bot_id", "user_id", "kakao_user_id", "model", "total_tokens", "cost_usd"}
    assert sum(int(line["total_tokens"]) for line in lines) == before["total_tokens"]
    for bad in ({"month": "2026-13"}, {"month": "26-01"}, {"format": "xml"}, {"period": "week"}):
        assert (await client.get("/admin/usage/reports", params=bad, headers=AUTH)).status_code == 422, bad


async def test_week_and_day_periods(client: httpx.AsyncClient, usage: UsageService, db: Database) -> None:
    user_id = await add_user(db, "weekly")
    monday = date(2026, 11, 30)
    for offset in (0, 6, 7):  # Monday, Sunday of the same week, the next Monday
        noon = datetime.combine(monday + timedelta(days=offset), datetime.min.time(), tzinfo=usage.tz)
        await spend(usage, user_id, [ModelCall("answer", "gpt-4o", 10, 0)], now=noon.replace(hour=12).astimezone(UTC))
    week = (await client.get("/admin/usage/statistics", params={"period": "week", "date": "2026-12-03"},
                             headers=AUTH)).json()
    assert (week["start"], week["end"], week["requests"]) == ("2026-11-30", "2026-12-07", 2)
    day = (await client.get("/admin/usage/statistics", params={"period": "day", "date": "2026-12-07",
                                                               "bot_id": "bot-1"}, headers=AUTH)).json()
    assert (day["start"], day["requests"]) == ("2026-12-07", 1)
