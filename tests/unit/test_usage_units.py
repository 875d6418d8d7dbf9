"""Usage pieces without a database: the token estimate, local periods, which alerts are due."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from app.services.usage import TokenEstimate
from app.services.usage.alerts import due
from app.services.usage.budgets import HolderState
from app.services.usage.periods import Period, month_span, resets_at, span
from app.services.usage.service import MAX_ESTIMATE, MIN_ESTIMATE

SEOUL = ZoneInfo("Asia/Seoul")


def test_the_estimate_follows_recent_answers_within_bounds() -> None:
    estimate = TokenEstimate(1000)
    for _ in range(60):
        estimate.observe(300)
    assert 300 <= estimate.tokens <= 305  # a typical answer, not the maximum
    estimate.observe(0)  # a cache hit or an offline answer says nothing about a model call's size
    assert 300 <= estimate.tokens <= 305
    assert TokenEstimate(5).tokens == MIN_ESTIMATE and TokenEstimate(10**9).tokens == MAX_ESTIMATE


def test_periods_are_local_days() -> None:
    assert span(Period.WEEK, date(2026, 12, 3)) == span(Period.WEEK, date(2026, 11, 30))
    assert (span(Period.WEEK, date(2026, 12, 3)).start, span(Period.WEEK, date(2026, 12, 3)).end) == (
        date(2026, 11, 30), date(2026, 12, 7))
    assert span(Period.MONTH, date(2026, 12, 31)).end == date(2027, 1, 1)
    assert span(Period.DAY, date(2026, 2, 28)).end == date(2026, 3, 1)
    assert month_span("2026-02").end == date(2026, 3, 1)
    with pytest.raises(ValueError):
        month_span("2026-13")
    # 31 December 15:00 UTC is already 1 January in Seoul: the next reset is 1 February.
    assert resets_at(datetime(2026, 12, 31, 15, 0, tzinfo=UTC), SEOUL) == datetime(2027, 2, 1, tzinfo=SEOUL)


def state(used: int, limit: int, alerted: int = 0) -> HolderState:
    return HolderState("user", "1", "bot", used, 0, limit, 0, 0, "block", alerted)


def test_due_thresholds() -> None:
    thresholds = [80, 90, 100]
    assert due(state(799, 1000), thresholds) == []
    assert due(state(905, 1000), thresholds) == [80, 90]
    assert due(state(905, 1000, alerted=80), thresholds) == [90]
    assert due(state(1000, 1000, alerted=90), thresholds) == [100]
    assert due(state(0, 1000), thresholds, refused=True) == [80, 90, 100]
    assert due(state(10**6, 0), thresholds) == []  # no limit, no alerts
