"""Budgets on both backends: atomic reservations under concurrency, settling, alerts once, overrides, the month."""

import asyncio
import json
from datetime import UTC, date, datetime, timedelta

import httpx
import respx
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from app.config import Settings
from app.db import Database
from app.models import EventLog, UsageAlert, UsageCounter, UsageLimit, UsageRecord
from app.services.usage import Holder, ModelCall, Scope, UsageService, record_calls
from app.services.usage.periods import local_day, month_key, resets_at
from tests.conftest import make_settings
from tests.pipeline_helpers import add_user

NOW = datetime(2026, 12, 10, 3, 0, tzinfo=UTC)


def service(settings: Settings, db: Database, **overrides: object) -> UsageService:
    values = {"database_url": settings.database_url, **overrides}
    return UsageService(make_settings(**values), db)  # type: ignore[arg-type]


def answer(tokens_in: int, tokens_out: int, model: str = "gpt-4o-2024-08-06") -> ModelCall:
    return ModelCall("answer", model, tokens_in, tokens_out, latency_ms=5)


async def counter(db: Database, scope: str, holder: str, period: str = "2026-12") -> UsageCounter:
    async with db.sessions() as session:
        return (await session.execute(select(UsageCounter).where(
            UsageCounter.scope == scope, UsageCounter.holder_id == holder, UsageCounter.period == period
        ))).scalar_one()


async def test_settle_records_the_providers_usage_priced_from_the_table(settings: Settings, db: Database) -> None:
    usage = service(settings, db)
    user_id = await add_user(db, "u1")
    holders = usage.kakao_holders(bot_id="bot-1", user_id=user_id, is_friend=True)
    reservation = await usage.reserve(holders, tokens=500, now=NOW, bot_id="bot-1")
    assert reservation.admitted
    calls = [answer(1200, 300), ModelCall("embedding", "text-embedding-3-small", 40, 0)]
    await usage.settle(reservation, calls, now=NOW, bot_id="bot-1", user_id=user_id)

    async with db.sessions() as session:
        rows = (await session.execute(select(UsageRecord).order_by(UsageRecord.id))).scalars().all()
    assert [(r.kind, r.model, r.input_tokens, r.output_tokens, r.total_tokens) for r in rows] == [
        ("answer", "gpt-4o-2024-08-06", 1200, 300, 1500), ("embedding", "text-embedding-3-small", 40, 0, 40)
    ]
    # gpt-4o-2024-08-06 is priced as gpt-4o: 2.50 / 10.00 USD per 1M tokens, the price kept on the row.
    assert rows[0].cost_usd is not None and abs(rows[0].cost_usd - (1200 * 2.5 + 300 * 10.0) / 1e6) < 1e-12
    assert (rows[0].input_usd_per_million, rows[0].output_usd_per_million) == (2.5, 10.0)
    assert rows[1].cost_usd is not None and abs(rows[1].cost_usd - 40 * 0.02 / 1e6) < 1e-15
    assert rows[0].day == date(2026, 12, 10) and rows[0].user_id == user_id and rows[0].bot_id == "bot-1"
    for scope, holder in ((Scope.USER, str(user_id)), (Scope.BOT, "bot-1")):
        row = await counter(db, scope, holder)
        assert (row.used_tokens, row.reserved_tokens, row.messages) == (1540, 0, 1)


async def test_a_model_without_price_is_flagged_not_free(settings: Settings, db: Database) -> None:
    before = REGISTRY.get_sample_value("skill_usage_unpriced_calls_total", {"model": "mystery-model"}) or 0
    async with db.engine.begin() as conn:
        recorded = await record_calls(conn, [answer(10, 5, "mystery-model")], now=NOW, day=date(2026, 12, 10),
                                      bot_id="bot-1")
    assert recorded[0].cost_usd is None
    assert REGISTRY.get_sample_value("skill_usage_unpriced_calls_total", {"model": "mystery-model"}) == before + 1
    async with db.sessions() as session:
        row = (await session.execute(select(UsageRecord))).scalar_one()
    assert (row.cost_usd, row.input_usd_per_million) == (None, None)


async def test_twenty_five_concurrent_reservations_overshoot_by_at_most_one_answer(
    settings: Settings, db: Database
) -> None:
    usage = service(settings, db, user_monthly_token_limit=5000)
    user_id = await add_user(db, "busy")
    holders = usage.kakao_holders(bot_id="bot-1", user_id=user_id, is_friend=True)
    # Room for several answers is not refused early: 2,400 tokens used of 5,000 leaves room for some.
    first = await usage.reserve(holders, tokens=600, now=NOW, bot_id="bot-1")
    await usage.settle(first, [answer(2000, 400)], now=NOW, bot_id="bot-1", user_id=user_id)

    async def one() -> bool:
        reservation = await usage.reserve(holders, tokens=600, now=NOW, bot_id="bot-1")
        if reservation.admitted:
            await asyncio.sleep(0.01)  # the model call: the others reserve meanwhile
            await usage.settle(reservation, [answer(500, 100)], now=NOW, bot_id="bot-1", user_id=user_id)
        return reservation.admitted

    admitted = await asyncio.gather(*(one() for _ in range(25)))
    row = await counter(db, Scope.USER, str(user_id))
    assert sum(admitted) == 5  # 2,400 + 5 x 600 reserved: the fifth starts at 4,800 < 5,000
    assert row.used_tokens == 2400 + 5 * 600 and row.reserved_tokens == 0
    assert row.used_tokens <= 5000 + 600  # over by less than one answer
    assert row.messages == 6


async def test_warn_policy_answers_past_the_limit(settings: Settings, db: Database) -> None:
    usage = service(settings, db, user_monthly_token_limit=100, usage_limit_policy="warn")
    user_id = await add_user(db, "warned")
    holders = usage.kakao_holders(bot_id="bot-1", user_id=user_id, is_friend=True)
    for _ in range(3):
        reservation = await usage.reserve(holders, tokens=80, now=NOW, bot_id="bot-1")
        assert reservation.admitted
        await usage.settle(reservation, [answer(60, 20)], now=NOW, bot_id="bot-1", user_id=user_id)
    assert (await counter(db, Scope.USER, str(user_id))).used_tokens == 240


async def test_alerts_at_80_90_100_once_each_and_the_notice(settings: Settings, db: Database) -> None:
    usage = service(settings, db, user_monthly_token_limit=1000)
    user_id = await add_user(db, "alerted")
    holders = usage.kakao_holders(bot_id="bot-1", user_id=user_id, is_friend=True)
    notices, thresholds = [], []
    for used in (500, 320, 10, 70, 50, 200):  # 500, 820, 830, 900, 950, 1150 of 1,000
        reservation = await usage.reserve(holders, tokens=100, now=NOW, bot_id="bot-1")
        settled = await usage.settle(reservation, [answer(used, 0)], now=NOW, bot_id="bot-1", user_id=user_id)
        notices.append(settled.notice)
        thresholds.append([a.threshold for a in settled.alerts])
    assert thresholds == [[], [80], [], [90], [], [100]]
    assert notices == [None, "※ 이번 달 이용 한도의 80%를 사용하셨어요.", None,
                       "※ 이번 달 이용 한도의 90%를 사용하셨어요.", None,
                       "※ 이번 달 이용 한도를 모두 사용하셨어요. 한도는 1월 1일 0시에 초기화돼요."]
    refused = await usage.reserve(holders, tokens=100, now=NOW, bot_id="bot-1")
    assert refused.refused is not None and refused.refused.scope == Scope.USER
    async with db.sessions() as session:
        alerts = (await session.execute(select(UsageAlert.threshold, UsageAlert.used, UsageAlert.limit_tokens)
                                        .order_by(UsageAlert.id))).all()
        events = (await session.execute(select(func.count()).where(EventLog.event_type == "usage_alert"))).scalar()
    assert [tuple(a) for a in alerts] == [(80, 820, 1000), (90, 900, 1000), (100, 1150, 1000)]
    assert events == 3


async def test_the_first_refusal_raises_the_100_alert(settings: Settings, db: Database) -> None:
    usage = service(settings, db, user_monthly_token_limit=1000)
    user_id = await add_user(db, "refused")
    holders = usage.kakao_holders(bot_id="bot-1", user_id=user_id, is_friend=True)
    # Reserved but not yet settled: all 1,000 held, so the next message is refused before any is used.
    held = await usage.reserve(holders, tokens=1000, now=NOW, bot_id="bot-1")
    assert held.admitted
    refused = await usage.reserve(holders, tokens=100, now=NOW, bot_id="bot-1")
    assert not refused.admitted
    again = await usage.reserve(holders, tokens=100, now=NOW, bot_id="bot-1")
    assert not again.admitted
    async with db.sessions() as session:
        alerts = (await session.execute(select(UsageAlert.threshold).order_by(UsageAlert.id))).scalars().all()
    assert alerts == [80, 90, 100]  # the spent budget reaches them all, once
    # The refused reservations left nothing behind on any holder.
    assert (await counter(db, Scope.USER, str(user_id))).reserved_tokens == 1000
    assert (await counter(db, Scope.BOT, "bot-1")).reserved_tokens == 1000


async def test_a_spent_bot_budget_refuses_every_user_of_the_bot(settings: Settings, db: Database) -> None:
    usage = service(settings, db, bot_monthly_token_limit=1000)
    first, second = await add_user(db, "a"), await add_user(db, "b")
    reservation = await usage.reserve(usage.kakao_holders(bot_id="bot-1", user_id=first, is_friend=True),
                                      tokens=100, now=NOW, bot_id="bot-1")
    await usage.settle(reservation, [answer(900, 200)], now=NOW, bot_id="bot-1", user_id=first)
    refused = await usage.reserve(usage.kakao_holders(bot_id="bot-1", user_id=second, is_friend=True),
                                  tokens=100, now=NOW, bot_id="bot-1")
    assert refused.refused is not None and refused.refused.scope == Scope.BOT
    # The user's own share was given back when the bot refused.
    assert (await counter(db, Scope.USER, str(second))).reserved_tokens == 0
    assert "이번 달 준비된 답변 용량" in usage.refusal(refused.refused, now=NOW, is_friend=True)


async def test_an_override_applies_to_the_next_message(settings: Settings, db: Database) -> None:
    usage = service(settings, db, user_monthly_token_limit=100)
    user_id = await add_user(db, "vip")
    holders = usage.kakao_holders(bot_id="bot-1", user_id=user_id, is_friend=True)
    reservation = await usage.reserve(holders, tokens=50, now=NOW, bot_id="bot-1")
    await usage.settle(reservation, [answer(100, 20)], now=NOW, bot_id="bot-1", user_id=user_id)
    assert not (await usage.reserve(holders, tokens=50, now=NOW, bot_id="bot-1")).admitted
    async with db.sessions.begin() as session:
        session.add(UsageLimit(scope=Scope.USER, holder_id=str(user_id), monthly_token_limit=10_000))
    assert (await usage.reserve(holders, tokens=50, now=NOW, bot_id="bot-1")).admitted
    assert (await counter(db, Scope.USER, str(user_id))).token_limit == 10_000


async def test_message_limit_and_the_non_friend_limit(settings: Settings, db: Database) -> None:
    usage = service(settings, db, user_monthly_message_limit=2, non_friend_monthly_token_limit=100)
    friend, stranger = await add_user(db, "friend"), await add_user(db, "stranger")
    friend_holders = usage.kakao_holders(bot_id="bot-1", user_id=friend, is_friend=True)
    admitted = [(await usage.reserve(friend_holders, tokens=10, now=NOW, bot_id="bot-1")).admitted for _ in range(3)]
    assert admitted == [True, True, False]
    stranger_holders = usage.kakao_holders(bot_id="bot-1", user_id=stranger, is_friend=False)
    reservation = await usage.reserve(stranger_holders, tokens=10, now=NOW, bot_id="bot-1")
    await usage.settle(reservation, [answer(90, 20)], now=NOW, bot_id="bot-1", user_id=stranger)
    refused = await usage.reserve(stranger_holders, tokens=10, now=NOW, bot_id="bot-1")
    assert refused.refused is not None
    assert "채널을 추가해 주시면" in usage.refusal(refused.refused, now=NOW, is_friend=False)


async def test_the_month_turns_at_midnight_in_seoul(settings: Settings, db: Database) -> None:
    usage = service(settings, db, user_monthly_token_limit=100)
    user_id = await add_user(db, "month")
    holders = usage.kakao_holders(bot_id="bot-1", user_id=user_id, is_friend=True)
    last_second = datetime(2026, 11, 30, 14, 59, 59, tzinfo=UTC)  # 23:59:59 on 30 November in Seoul
    midnight = last_second + timedelta(seconds=1)  # 00:00 on 1 December in Seoul, still 30 November in UTC
    assert (month_key(last_second, usage.tz), month_key(midnight, usage.tz)) == ("2026-11", "2026-12")
    assert local_day(midnight, usage.tz) == date(2026, 12, 1)
    spent = await usage.reserve(holders, tokens=50, now=last_second, bot_id="bot-1")
    await usage.settle(spent, [answer(150, 0)], now=last_second, bot_id="bot-1", user_id=user_id)
    refused = await usage.reserve(holders, tokens=50, now=last_second, bot_id="bot-1")
    assert refused.refused is not None
    assert usage.refusal(refused.refused, now=last_second, is_friend=True).count("12월 1일 0시") == 1
    assert resets_at(last_second, usage.tz).astimezone(UTC) == midnight
    assert (await usage.reserve(holders, tokens=50, now=midnight, bot_id="bot-1")).admitted
    assert (await counter(db, Scope.USER, str(user_id), "2026-12")).used_tokens == 0


async def test_an_api_key_is_one_more_holder(settings: Settings, db: Database) -> None:
    usage = service(settings, db)
    key = Holder(Scope.API_KEY, "key-1", default_limit=300)
    first = await usage.reserve([key], tokens=200, now=NOW, bot_id="bot-1")
    await usage.settle(first, [ModelCall("chat", "gpt-4o-mini", 250, 100)], now=NOW, bot_id="bot-1",
                       api_key_id="key-1")
    assert not (await usage.reserve([key], tokens=200, now=NOW, bot_id="bot-1")).admitted
    async with db.sessions() as session:
        row = (await session.execute(select(UsageRecord))).scalar_one()
    assert (row.api_key_id, row.kind, row.user_id) == ("key-1", "chat", None)


async def test_alerts_are_posted_to_the_webhook(settings: Settings, db: Database) -> None:
    url = "https://hooks.example.test/usage"
    async with httpx.AsyncClient() as http:
        usage = UsageService(make_settings(settings.database_url, user_monthly_token_limit=1000,
                                           usage_alert_webhook_url=url), db, http)
        user_id = await add_user(db, "hooked")
        holders = usage.kakao_holders(bot_id="bot-1", user_id=user_id, is_friend=True)
        with respx.mock(assert_all_called=True) as mock:
            hook = mock.post(url).respond(204)
            reservation = await usage.reserve(holders, tokens=100, now=NOW, bot_id="bot-1")
            await usage.settle(reservation, [answer(850, 0)], now=NOW, bot_id="bot-1", user_id=user_id)
            await asyncio.gather(*usage._webhooks)  # posted in the background: the answer does not wait
    body = json.loads(hook.calls.last.request.content)
    assert {k: body[k] for k in ("type", "scope", "user_id", "threshold", "period", "used", "limit")} == {
        "type": "usage_alert", "scope": "user", "user_id": user_id, "threshold": 80, "period": "2026-12",
        "used": 850, "limit": 1000,
    }


async def test_refusals_are_counted(settings: Settings, db: Database) -> None:
    usage = service(settings, db, bot_monthly_token_limit=10)
    user_id = await add_user(db, "counted-refusal")
    holders = usage.kakao_holders(bot_id="bot-m", user_id=user_id, is_friend=True)
    labels = {"scope": "bot", "bot_id": "bot-m"}
    before = REGISTRY.get_sample_value("skill_usage_budget_refusals_total", labels) or 0
    first = await usage.reserve(holders, tokens=100, now=NOW, bot_id="bot-m")
    assert first.admitted and not (await usage.reserve(holders, tokens=100, now=NOW, bot_id="bot-m")).admitted
    assert REGISTRY.get_sample_value("skill_usage_budget_refusals_total", labels) == before + 1


async def test_work_given_up_is_not_an_answer_of_the_month(settings: Settings, db: Database) -> None:
    usage = service(settings, db, user_monthly_message_limit=1)
    user_id = await add_user(db, "unlucky")
    holders = usage.kakao_holders(bot_id="bot-1", user_id=user_id, is_friend=True)
    failed = await usage.reserve(holders, tokens=100, now=NOW, bot_id="bot-1")
    await usage.settle(failed, [answer(10, 0)], now=NOW, bot_id="bot-1", user_id=user_id, answered=False)
    assert (await counter(db, Scope.USER, str(user_id))).messages == 0
    answered = await usage.reserve(holders, tokens=100, now=NOW, bot_id="bot-1")
    assert answered.admitted
    await usage.settle(answered, [answer(10, 0)], now=NOW, bot_id="bot-1", user_id=user_id)
    assert not (await usage.reserve(holders, tokens=100, now=NOW, bot_id="bot-1")).admitted
    row = await counter(db, Scope.USER, str(user_id))
    assert (row.messages, row.used_tokens, row.reserved_tokens) == (1, 20, 0)  # the failed call's tokens count
