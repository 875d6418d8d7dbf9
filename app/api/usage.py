"""Admin API for usage: statistics, per-user usage, alerts, monthly reports, prices and budget overrides."""

import re
from datetime import date
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, BeforeValidator, Field

from app.api.deps import (
    ADMIN_ERRORS,
    MAX_DB_INT,
    JsonInt,
    RowId,
    SessionDep,
    SettingsDep,
    error_responses,
    require_admin,
)
from app.models import utcnow
from app.services.usage import Scope, admin, periods, statistics
from app.services.usage.periods import Period
from app.services.usage.schemas import (
    AlertList,
    LimitList,
    PriceList,
    PricesIn,
    Report,
    Statistics,
    UserUsageDetail,
    UserUsageList,
)

router = APIRouter(
    prefix="/admin/usage", tags=["admin: usage"], dependencies=[Depends(require_admin)], responses=ADMIN_ERRORS
)

BotId = Annotated[str | None, Query(min_length=1, max_length=100)]
PeriodQuery = Annotated[Period, Query(description="day, week (Monday first) or month, local time")]
def _iso_day(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("Input should be a date as YYYY-MM-DD")
    return value


DayQuery = Annotated[
    date | None,
    BeforeValidator(_iso_day),
    Query(alias="date", description="A day in the period, YYYY-MM-DD (default: today, local)"),
]
Month = Annotated[
    str | None, Query(pattern=r"^[1-9]\d{3}-(0[1-9]|1[0-2])$", description="YYYY-MM (default: this month)")
]


MAX_LIMIT = 10**15


class LimitIn(BaseModel):
    """An override: a null limit is back to the default; a null policy is USAGE_LIMIT_POLICY."""

    # pydantic writes the bounds of a nullable validated integer as "ge"/"le"; the schema states them properly.
    monthly_token_limit: Annotated[JsonInt, Field(ge=0, le=MAX_LIMIT)] | None = Field(
        json_schema_extra={"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_LIMIT}, {"type": "null"}]}
    )
    policy: Literal["block", "warn"] | None = None


def _today(settings: SettingsDep) -> tuple[date, str]:
    tz = ZoneInfo(settings.usage_timezone)
    now = utcnow()
    return periods.local_day(now, tz), periods.month_key(now, tz)


@router.get("/statistics", response_model=Statistics, summary="Totals, per model, per day and top users")
async def get_statistics(
    session: SessionDep, settings: SettingsDep, period: PeriodQuery = Period.DAY, bot_id: BotId = None,
    day: DayQuery = None,
) -> Statistics:
    today, _ = _today(settings)
    return await statistics.statistics(session, period=period, days=periods.span(period, day or today), bot_id=bot_id)


@router.get("/users", response_model=UserUsageList, summary="Users by tokens used, with their monthly limit")
async def list_users(
    session: SessionDep, settings: SettingsDep, bot_id: BotId = None, period: PeriodQuery = Period.MONTH,
    kakao_user_id: Annotated[str | None, Query(min_length=1, max_length=70)] = None, day: DayQuery = None,
) -> UserUsageList:
    today, month = _today(settings)
    items = await admin.user_usage(session, settings, periods.span(period, day or today), month=month, bot_id=bot_id,
                                   kakao_user_id=kakao_user_id)
    return UserUsageList(items=items)


@router.get("/users/{user_id}", response_model=UserUsageDetail, responses=error_responses(404),
            summary="One user's usage with the days of the period")
async def get_user(
    user_id: RowId, session: SessionDep, settings: SettingsDep, period: PeriodQuery = Period.MONTH,
    day: DayQuery = None,
) -> UserUsageDetail:
    today, month = _today(settings)
    return await admin.user_detail(session, settings, user_id, periods.span(period, day or today), period=period,
                                   month=month)


@router.get("/alerts", response_model=AlertList, summary="Budget alerts, newest first")
async def list_alerts(
    session: SessionDep, bot_id: BotId = None,
    user_id: Annotated[int | None, Query(ge=1, le=MAX_DB_INT)] = None,
) -> AlertList:
    return AlertList(items=await admin.list_alerts(session, bot_id=bot_id, user_id=user_id))


@router.get(
    "/reports", response_model=Report, summary="A month's usage per bot, user and model (JSON or CSV)",
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_report(
    session: SessionDep, settings: SettingsDep, period: Literal["month"] = "month", month: Month = None,
    format_: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Report | PlainTextResponse:
    month = month or _today(settings)[1]
    report = await admin.monthly_report(session, month, periods.month_span(month))
    if format_ == "csv":
        return PlainTextResponse(admin.report_csv(report), media_type="text/csv",
                                 headers={"content-disposition": f'attachment; filename="usage-{month}.csv"'})
    return report


@router.get("/prices", response_model=PriceList, summary="USD per 1M input/output tokens per model")
async def list_prices(session: SessionDep) -> PriceList:
    return PriceList(items=await admin.list_prices(session))


@router.put("/prices", response_model=PriceList, responses=error_responses(400),
            summary="Set models' prices (calls recorded before keep theirs)")
async def put_prices(body: PricesIn, session: SessionDep) -> PriceList:
    async with session.begin():
        await admin.put_prices(session, body.items, now=utcnow())
    return PriceList(items=await admin.list_prices(session))


@router.get("/limits", response_model=LimitList, summary="Default budgets and the overrides")
async def list_limits(session: SessionDep, settings: SettingsDep) -> LimitList:
    return await admin.list_limits(session, settings)


@router.put("/limits/users/{user_id}", response_model=LimitList, responses=error_responses(400, 404),
            summary="Override one user's monthly token limit and policy (null: the default)")
async def put_user_limit(user_id: RowId, body: LimitIn, session: SessionDep, settings: SettingsDep) -> LimitList:
    async with session.begin():
        await admin.put_limit(session, Scope.USER, str(user_id), **body.model_dump(), now=utcnow())
    return await admin.list_limits(session, settings)


@router.put("/limits/bots/{bot_id}", response_model=LimitList, responses=error_responses(400),
            summary="Override one bot's monthly token limit and policy (null: the default)")
async def put_bot_limit(
    bot_id: Annotated[str, Path(min_length=1, max_length=100)], body: LimitIn, session: SessionDep,
    settings: SettingsDep,
) -> LimitList:
    async with session.begin():
        await admin.put_limit(session, Scope.BOT, bot_id, **body.model_dump(), now=utcnow())
    return await admin.list_limits(session, settings)
