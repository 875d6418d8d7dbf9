"""What the usage admin API does: prices, limit overrides, per-user usage, alerts and monthly reports."""

import csv
import io
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import NotFound
from app.models import AppUser, UsageAlert, UsageCounter, UsageLimit, UsagePrice
from app.services.usage.budgets import Scope
from app.services.usage.periods import Span
from app.services.usage.schemas import (
    AlertView,
    LimitDefaults,
    LimitList,
    LimitView,
    PriceIn,
    PriceView,
    Report,
    ReportRow,
    UserUsage,
    UserUsageDetail,
)
from app.services.usage.statistics import UsageRows, by_day_and_model, by_user, days_of, report_rows

MAX_USERS = 1000
_price = UsagePrice.__table__
_limit = UsageLimit.__table__
_counter = UsageCounter.__table__
_alert = UsageAlert.__table__
_user = AppUser.__table__


async def list_prices(session: AsyncSession) -> list[PriceView]:
    rows = (await session.execute(select(_price).order_by(_price.c.model))).mappings()
    return [PriceView.model_validate(dict(r)) for r in rows]


async def put_prices(session: AsyncSession, prices: list[PriceIn], *, now: datetime) -> None:
    """Insert or replace each model's price; rows recorded before keep the price they were recorded at."""
    for price in prices:
        values = {**price.model_dump(), "updated_at": now}
        changed = await session.execute(update(_price).where(_price.c.model == price.model).values(**values))
        if not changed.rowcount:
            await session.execute(insert(_price).values(**values))


def defaults(settings: Settings) -> LimitDefaults:
    return LimitDefaults(
        user_monthly_token_limit=settings.user_monthly_token_limit,
        bot_monthly_token_limit=settings.bot_monthly_token_limit,
        user_monthly_message_limit=settings.user_monthly_message_limit,
        non_friend_monthly_token_limit=settings.non_friend_monthly_token_limit,
        policy=settings.usage_limit_policy,
    )


async def list_limits(session: AsyncSession, settings: Settings) -> LimitList:
    rows = (await session.execute(select(_limit).order_by(_limit.c.scope, _limit.c.holder_id))).mappings().all()
    user_ids = [int(r["holder_id"]) for r in rows if r["scope"] == Scope.USER]
    users = await _users(session, user_ids)
    items = []
    for r in rows:
        user = users.get(int(r["holder_id"])) if r["scope"] == Scope.USER else None
        items.append(LimitView(
            scope=r["scope"], holder_id=r["holder_id"], user_id=user["id"] if user else None,
            kakao_user_id=user["kakao_user_id"] if user else None,
            bot_id=user["bot_id"] if user else (r["holder_id"] if r["scope"] == Scope.BOT else None),
            monthly_token_limit=r["monthly_token_limit"], policy=r["policy"], updated_at=r["updated_at"],
        ))
    return LimitList(defaults=defaults(settings), items=items)


async def put_limit(
    session: AsyncSession, scope: Scope, holder_id: str, *, monthly_token_limit: int | None, policy: str | None,
    now: datetime,
) -> None:
    """Set a holder's override (both null: remove it); the next reservation applies it."""
    if scope == Scope.USER and not await _users(session, [int(holder_id)]):
        raise NotFound(f"no user {holder_id}")
    key = (_limit.c.scope == scope) & (_limit.c.holder_id == holder_id)
    await session.execute(delete(_limit).where(key))
    if monthly_token_limit is not None or policy is not None:
        await session.execute(insert(_limit).values(scope=scope, holder_id=holder_id, updated_at=now,
                                                    monthly_token_limit=monthly_token_limit, policy=policy))


async def _users(session: AsyncSession, user_ids: list[int]) -> dict[int, Any]:
    if not user_ids:
        return {}
    rows = await session.execute(
        select(_user.c.id, _user.c.kakao_user_id, _user.c.bot_id).where(_user.c.id.in_(user_ids))
    )
    return {r["id"]: r for r in rows.mappings()}


async def user_usage(
    session: AsyncSession, settings: Settings, days: Span, *, month: str, bot_id: str | None = None,
    kakao_user_id: str | None = None,
) -> list[UserUsage]:
    """Users with usage in the span, most tokens first, with their monthly limit, share used and policy."""
    rows = await UsageRows(days, bot_id=bot_id).load(session)
    top = await by_user(session, rows, limit=MAX_USERS, kakao_user_id=kakao_user_id)
    holders = [str(u.user_id) for u in top]
    overrides = {r["holder_id"]: r for r in (await session.execute(
        select(_limit).where(_limit.c.scope == Scope.USER, _limit.c.holder_id.in_(holders))
    )).mappings()}
    counters = {r["holder_id"]: r for r in (await session.execute(
        select(_counter).where(_counter.c.scope == Scope.USER, _counter.c.period == month,
                               _counter.c.holder_id.in_(holders))
    )).mappings()}
    items = []
    for u in top:
        override, counter = overrides.get(str(u.user_id)), counters.get(str(u.user_id))
        limit = settings.user_monthly_token_limit
        if override is not None and override["monthly_token_limit"] is not None:
            limit = override["monthly_token_limit"]
        elif counter is not None:
            limit = counter["token_limit"]  # the limit of its last reservation (the non-friend one, say)
        policy = (override and override["policy"]) or settings.usage_limit_policy
        used = counter["used_tokens"] if counter is not None else 0
        items.append(UserUsage(**u.model_dump(), limit=limit or None, policy=policy,
                               percent=round(100 * used / limit, 2) if limit else None))
    return items


async def user_detail(
    session: AsyncSession, settings: Settings, user_id: int, days: Span, *, period: str, month: str
) -> UserUsageDetail:
    users = await _users(session, [user_id])
    if not users:
        raise NotFound(f"no user {user_id}")
    user = users[user_id]
    items = await user_usage(session, settings, days, month=month, bot_id=user["bot_id"],
                             kakao_user_id=user["kakao_user_id"])
    summary = items[0].model_dump() if items else {
        "user_id": user_id, "kakao_user_id": user["kakao_user_id"], "bot_id": user["bot_id"], "total_tokens": 0,
        "cost_usd": 0.0, "limit": settings.user_monthly_token_limit or None, "percent": None,
        "policy": settings.usage_limit_policy,
    }
    rows = await UsageRows(days, user_id=user_id).load(session)
    by_day = days_of(await by_day_and_model(session, rows))
    return UserUsageDetail(**summary, period=period, start=days.start, end=days.end, by_day=by_day)


async def list_alerts(
    session: AsyncSession, *, bot_id: str | None = None, user_id: int | None = None, limit: int = 200
) -> list[AlertView]:
    query = (
        select(_alert, _user.c.kakao_user_id).outerjoin(_user, _user.c.id == _alert.c.user_id)
        .order_by(_alert.c.created_at.desc(), _alert.c.id.desc()).limit(limit)
    )
    if bot_id is not None:
        query = query.where(_alert.c.bot_id == bot_id)
    if user_id is not None:
        query = query.where(_alert.c.user_id == user_id)
    return [
        AlertView(scope=r["scope"], user_id=r["user_id"], kakao_user_id=r["kakao_user_id"], bot_id=r["bot_id"],
                  threshold=r["threshold"], period=r["period"], used=r["used"], limit=r["limit_tokens"],
                  created_at=r["created_at"])
        for r in (await session.execute(query)).mappings()
    ]


async def monthly_report(session: AsyncSession, month: str, days: Span) -> Report:
    rows = await report_rows(session, days)
    return Report(
        month=month, start=days.start, end=days.end, rows=rows,
        requests=sum(r.requests for r in rows), total_tokens=sum(r.total_tokens for r in rows),
        cost_usd=round(sum(r.cost_usd for r in rows), 8),
    )


def report_csv(report: Report) -> str:
    """The report's rows as CSV with a header row."""
    out = io.StringIO()
    fields = ["month", *ReportRow.model_fields]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow({"month": report.month, **row.model_dump()})
    return out.getvalue()

