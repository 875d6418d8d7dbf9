"""Local time in USAGE_TIMEZONE: the budget month (reset at local midnight on the 1st) and statistics periods."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Span:
    """Local days [start, end): the period's first day and the day after its last."""

    start: date
    end: date


def local_day(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def month_key(now: datetime, tz: ZoneInfo) -> str:
    """The budget month `YYYY-MM` that `now` falls in, local time."""
    return now.astimezone(tz).strftime("%Y-%m")


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    later = _later(day.replace(day=28), 4)
    return later if later.month == day.month else later.replace(day=1)  # same month: the calendar's end


def _later(day: date, days: int) -> date:
    """`day` plus `days`, stopping at the calendar's last day (a period of year 9999 ends there)."""
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.max


def resets_at(now: datetime, tz: ZoneInfo) -> datetime:
    """When the current month's budgets reset: local midnight on the next 1st (aware, local time)."""
    return datetime.combine(next_month(local_day(now, tz)), time(0), tzinfo=tz)


def span(period: Period, day: date) -> Span:
    """The day, ISO week (Monday first) or calendar month that contains `day`."""
    if period == Period.DAY:
        return Span(day, _later(day, 1))
    if period == Period.WEEK:
        start = day - timedelta(days=day.weekday())
        return Span(start, _later(start, 7))
    return Span(month_start(day), next_month(day))


def month_span(month: str) -> Span:
    """`YYYY-MM` as a span of local days; raises ValueError for anything else."""
    first = date(int(month[:4]), int(month[5:7]), 1)
    return Span(first, next_month(first))

