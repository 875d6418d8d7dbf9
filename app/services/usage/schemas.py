"""What the usage admin API reads and returns."""

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, Field

Money = Annotated[float, Field(strict=True, ge=0, le=1_000_000)]  # a JSON number, never "1.5" or true


class ModelUsage(BaseModel):
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float | None = Field(description="null when some calls of the model had no price")


class DayUsage(BaseModel):
    date: dt.date
    requests: int
    total_tokens: int
    cost_usd: float


class TopUser(BaseModel):
    user_id: int
    kakao_user_id: str
    bot_id: str
    total_tokens: int
    cost_usd: float


class Statistics(BaseModel):
    """Usage of one day, week or month (local days in USAGE_TIMEZONE, `end` exclusive)."""

    period: str
    start: dt.date
    end: dt.date
    requests: int
    cache_hits: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float = Field(description="Priced calls only; see unpriced_requests")
    unpriced_requests: int = Field(description="Calls of models without a price (cost_usd null on their rows)")
    by_model: list[ModelUsage]
    by_day: list[DayUsage]
    top_users: list[TopUser]


class UserUsage(BaseModel):
    user_id: int
    kakao_user_id: str
    bot_id: str
    total_tokens: int
    cost_usd: float
    limit: int | None = Field(description="Monthly token limit in force (null: none)")
    percent: float | None = Field(description="Share of the monthly limit used this month")
    policy: str


class UserUsageList(BaseModel):
    items: list[UserUsage]


class UserUsageDetail(UserUsage):
    period: str
    start: dt.date
    end: dt.date
    by_day: list[DayUsage]


class AlertView(BaseModel):
    scope: str
    user_id: int | None
    kakao_user_id: str | None
    bot_id: str | None
    threshold: int
    period: str
    used: int
    limit: int
    created_at: dt.datetime


class AlertList(BaseModel):
    items: list[AlertView]


class PriceIn(BaseModel):
    """USD per 1M input / output tokens (audio: per 1M billed units, see the README)."""

    model: str = Field(min_length=1, max_length=100, pattern=r"^\S+$")
    input_usd_per_million: Money
    output_usd_per_million: Money


class PricesIn(BaseModel):
    items: list[PriceIn] = Field(min_length=1, max_length=200)


class PriceView(PriceIn):
    updated_at: dt.datetime


class PriceList(BaseModel):
    items: list[PriceView]


class LimitView(BaseModel):
    scope: str
    holder_id: str
    user_id: int | None
    kakao_user_id: str | None
    bot_id: str | None
    monthly_token_limit: int | None
    policy: str | None
    updated_at: dt.datetime


class LimitDefaults(BaseModel):
    user_monthly_token_limit: int
    bot_monthly_token_limit: int
    user_monthly_message_limit: int
    non_friend_monthly_token_limit: int
    policy: str


class LimitList(BaseModel):
    defaults: LimitDefaults
    items: list[LimitView]


class ReportRow(BaseModel):
    bot_id: str
    user_id: int | None
    kakao_user_id: str | None
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    unpriced_requests: int


class Report(BaseModel):
    period: Literal["month"] = "month"
    month: str
    start: dt.date
    end: dt.date
    requests: int
    total_tokens: int
    cost_usd: float
    rows: list[ReportRow]
