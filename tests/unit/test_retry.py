"""The retry policy: backoff with full jitter, Retry-After, attempt limit, retry window, callback deadline."""

from datetime import UTC, datetime, timedelta

from worker.retry import RetryPlan, RetryPolicy, backoff, plan_retry

POLICY = RetryPolicy(base_seconds=1.0, max_seconds=20.0, window_seconds=600.0, apology_margin_seconds=5.0)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def plan(**overrides: object) -> RetryPlan:
    values: dict[str, object] = {
        "attempts": 1,
        "max_attempts": 3,
        "created_at": T0,
        "callback_deadline": None,
        "now": T0 + timedelta(seconds=2),
        "retry_after": None,
        "policy": POLICY,
        "rand": lambda: 1.0,
    }
    values.update(overrides)
    return plan_retry(**values)  # type: ignore[arg-type]


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    assert [backoff(n, POLICY, lambda: 1.0) for n in (1, 2, 3, 4, 5, 6)] == [1, 2, 4, 8, 16, 20]
    assert backoff(3, POLICY, lambda: 0.25) == 1.0
    assert backoff(3, POLICY, lambda: 0.0) == 0.0


def test_retry_after_is_a_lower_bound() -> None:
    assert plan(retry_after=7.0).run_after == T0 + timedelta(seconds=9)
    assert plan(attempts=2, retry_after=0.5).run_after == T0 + timedelta(seconds=4)


def test_no_retry_after_the_last_attempt() -> None:
    assert plan(attempts=3) == RetryPlan(None)


def test_no_retry_past_the_retry_window() -> None:
    assert plan(retry_after=700.0) == RetryPlan(None)


def test_retry_inside_the_callback_deadline_keeps_the_callback() -> None:
    result = plan(callback_deadline=T0 + timedelta(seconds=50))
    assert result == RetryPlan(T0 + timedelta(seconds=3), apologize=False)


def test_retry_past_the_apology_point_apologises_first() -> None:
    result = plan(callback_deadline=T0 + timedelta(seconds=50), retry_after=44.0)
    assert result == RetryPlan(T0 + timedelta(seconds=46), apologize=True)
