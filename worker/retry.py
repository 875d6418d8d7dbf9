"""When a failed attempt runs again: exponential backoff with full jitter, inside the task's time limits."""

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.config import Settings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float
    max_seconds: float
    window_seconds: float
    apology_margin_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetryPolicy":
        return cls(
            base_seconds=settings.task_retry_base_seconds,
            max_seconds=settings.task_retry_max_seconds,
            window_seconds=settings.task_retry_window_seconds,
            apology_margin_seconds=settings.apology_margin_seconds,
        )


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """`run_after` None means give up; `apologize` means the retry cannot answer through the callback in time."""

    run_after: datetime | None
    apologize: bool = False


def backoff(attempt: int, policy: RetryPolicy, rand: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(max, base * 2^(attempt-1))] seconds."""
    return rand() * min(policy.max_seconds, policy.base_seconds * 2 ** (attempt - 1))


def plan_retry(
    *,
    attempts: int,
    max_attempts: int,
    created_at: datetime,
    callback_deadline: datetime | None,
    now: datetime,
    retry_after: float | None,
    policy: RetryPolicy,
    rand: Callable[[], float] = random.random,
) -> RetryPlan:
    """Decide the next attempt; `callback_deadline` is None when no callback is left to answer through."""
    if attempts >= max_attempts:
        return RetryPlan(None)
    delay = backoff(attempts, policy, rand)
    if retry_after is not None:
        delay = max(delay, retry_after)
    run_after = now + timedelta(seconds=delay)
    if run_after > created_at + timedelta(seconds=policy.window_seconds):
        return RetryPlan(None)
    if callback_deadline is None:
        return RetryPlan(run_after)
    # A retry starting after the apology point could no longer answer through the callback.
    apology_at = callback_deadline - timedelta(seconds=policy.apology_margin_seconds)
    return RetryPlan(run_after, apologize=run_after >= apology_at)
