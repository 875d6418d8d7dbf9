"""Budgets with the process's settings: reserve and settle (one statement each on PostgreSQL), alerts, webhook,
the 80/90 % notice."""

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine

from app import metrics
from app.config import Settings
from app.db import Database
from app.services import texts
from app.services.usage import alerts, budgets, periods, pg, records
from app.services.usage.alerts import Alert
from app.services.usage.budgets import Holder, HolderState, Reservation, Scope
from app.services.usage.calls import ModelCall
from app.services.usage.statements import run

# A typical answer before any is seen, and the bounds of the running estimate (tokens, input and output).
DEFAULT_ANSWER_TOKENS = 1000
MIN_ESTIMATE = 100
MAX_ESTIMATE = 16_000
_WEIGHT = 0.1  # of the newest answer in the running average
_RECENT = 50

_RECENT_ANSWERS = """
SELECT AVG(total_tokens) FROM (
    SELECT total_tokens FROM usagerecord WHERE kind = 'answer' AND NOT cache_hit ORDER BY id DESC LIMIT :n
) recent
"""


class TokenEstimate:
    """A running average of answers' total tokens: what a reservation holds before the call (not the maximum)."""

    def __init__(self, initial: float = DEFAULT_ANSWER_TOKENS) -> None:
        self._value = float(initial)
        self.seeded = False

    @property
    def tokens(self) -> int:
        return int(min(max(round(self._value), MIN_ESTIMATE), MAX_ESTIMATE))

    def observe(self, total_tokens: int) -> None:
        if total_tokens > 0:
            self._value += _WEIGHT * (total_tokens - self._value)

    async def seed(self, engine: AsyncEngine) -> None:
        """Start from the average of the latest answers in the database (once per process)."""
        async with engine.connect() as conn:
            average = (await run(conn, _RECENT_ANSWERS, {"n": _RECENT})).scalar()
        if average:
            self._value = float(average)
        self.seeded = True


@dataclass(frozen=True, slots=True)
class Settled:
    """A settlement's effect the caller shows: new alerts and, at 80/90 % of the user's budget, a notice line."""

    alerts: list[Alert] = field(default_factory=list)
    notice: str | None = None


class UsageService:
    """Reserve before a model call, settle after; one per process. On PostgreSQL each is one raw statement."""

    def __init__(self, settings: Settings, db: Database, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.db = db
        self.engine = db.engine
        self.tz = ZoneInfo(settings.usage_timezone)
        self._http = http
        self._webhooks: set[asyncio.Task[None]] = set()

    def period(self, now: datetime) -> str:
        return periods.month_key(now, self.tz)

    def kakao_holders(self, *, bot_id: str, user_id: int, is_friend: bool | None) -> list[Holder]:
        """A Kakao user's and their bot's budgets; a user who has not added the channel gets the non-friend limit."""
        settings = self.settings
        user_limit = settings.user_monthly_token_limit
        if is_friend is False and settings.non_friend_monthly_token_limit:
            user_limit = settings.non_friend_monthly_token_limit
        return [
            Holder(Scope.USER, str(user_id), user_limit, settings.user_monthly_message_limit),
            Holder(Scope.BOT, bot_id, settings.bot_monthly_token_limit),
        ]

    async def reserve(
        self, holders: list[Holder], *, tokens: int, now: datetime, bot_id: str, task_id: uuid.UUID | None = None
    ) -> Reservation:
        """Hold `tokens` on every holder or refuse; a refusal records the spent budget's alerts and is counted."""
        period = self.period(now)
        policy = self.settings.usage_limit_policy
        if self.db.is_postgres:
            states = await pg.reserve(await self.db.raw_pool(), holders, tokens=tokens, period=period, policy=policy,
                                      now=now, bot_id=bot_id, task_id=task_id)
            reservation = Reservation(holders, period, tokens, task_id, states)
            if len(states) == len(holders):
                return reservation
            async with self.engine.begin() as conn:
                await budgets.refuse(conn, reservation)
        else:
            async with self.engine.begin() as conn:
                reservation = await budgets.reserve(conn, holders, tokens=tokens, period=period, policy=policy,
                                                    now=now, bot_id=bot_id, task_id=task_id)
        refused = reservation.refused
        if refused is not None:
            metrics.BUDGET_REFUSALS.labels(refused.scope, bot_id).inc()
            due = alerts.due(refused, self.settings.usage_alert_thresholds, refused=not refused.out_of_messages)
            await self._raise([(refused, due)], period=period, now=now)
        return reservation

    def held(self, holders: list[Holder], *, tokens: int, now: datetime, task_id: uuid.UUID) -> Reservation:
        """The reservation an earlier attempt of the task made (the task row says how much it holds)."""
        return Reservation(holders=holders, period=self.period(now), tokens=tokens, task_id=task_id)

    async def settle(
        self,
        reservation: Reservation,
        calls: list[ModelCall],
        *,
        now: datetime,
        bot_id: str,
        user_id: int | None = None,
        api_key_id: str | None = None,
        message_id: int | None = None,
        keep_reservation: bool = False,
        answered: bool = True,
    ) -> Settled:
        """Record the calls and turn the reservation into the real usage; no calls releases it (see `budgets.settle`
        for `keep_reservation` and `answered`)."""
        day = periods.local_day(now, self.tz)
        policy = self.settings.usage_limit_policy
        if self.db.is_postgres:
            recorded, states = await pg.settle(
                await self.db.raw_pool(), reservation, calls, now=now, day=day, policy=policy, bot_id=bot_id,
                user_id=user_id, api_key_id=api_key_id, message_id=message_id,
                released=0 if keep_reservation else reservation.tokens,
                unanswered=int(not keep_reservation and not answered),
            )
            records.count(recorded, bot_id)
        else:
            async with self.engine.begin() as conn:
                settlement = await budgets.settle(
                    conn, reservation, calls, now=now, day=day, policy=policy, bot_id=bot_id, user_id=user_id,
                    api_key_id=api_key_id, message_id=message_id, keep_reservation=keep_reservation,
                    answered=answered,
                )
            states = settlement.states
        thresholds = self.settings.usage_alert_thresholds
        raised = await self._raise([(s, alerts.due(s, thresholds)) for s in states], period=reservation.period,
                                   now=now)
        return Settled(raised, self._notice(raised, now))

    async def _raise(self, due: list[tuple[HolderState, list[int]]], *, period: str, now: datetime) -> list[Alert]:
        """Record the thresholds reached (a transaction only when there are some) and post them to the webhook."""
        due = [(state, thresholds) for state, thresholds in due if thresholds]
        if not due:
            return []
        async with self.engine.begin() as conn:
            raised = [a for state, thresholds in due
                      for a in await alerts.raise_alerts(conn, state, thresholds, period=period, now=now)]
        self._post(raised)
        return raised

    def refusal(self, state: HolderState, *, now: datetime, is_friend: bool | None) -> str:
        """The short Korean reply to a refused message, saying when the budget resets."""
        reset = periods.resets_at(now, self.tz)
        when = texts.USAGE_RESET_AT.format(month=reset.month, day=reset.day)
        if state.scope == Scope.BOT:
            return texts.USAGE_BOT_LIMIT.format(reset=when)
        if is_friend is False and self.settings.non_friend_monthly_token_limit and not state.out_of_messages:
            return texts.USAGE_NON_FRIEND_LIMIT.format(reset=when)
        return texts.USAGE_USER_LIMIT.format(reset=when)

    def _notice(self, raised: list[Alert], now: datetime) -> str | None:
        """One line for the answer that crossed a threshold of the user's own budget (the highest one crossed)."""
        mine = [a.threshold for a in raised if a.scope == Scope.USER]
        if not mine or not self.settings.usage_notice_enabled:
            return None
        if max(mine) >= 100:
            reset = periods.resets_at(now, self.tz)
            return texts.USAGE_NOTICE_SPENT.format(reset=texts.USAGE_RESET_AT.format(month=reset.month, day=reset.day))
        return texts.USAGE_NOTICE.format(percent=max(mine))

    def _post(self, raised: list[Alert]) -> None:
        """Send new alerts to the webhook in the background: the answer does not wait for it."""
        url = self.settings.usage_alert_webhook_url
        if not raised or not url or self._http is None:
            return
        task = asyncio.create_task(alerts.post_webhook(self._http, url, raised))
        self._webhooks.add(task)
        task.add_done_callback(self._webhooks.discard)


async def record_outside_budgets(
    settings: Settings, engine: AsyncEngine, calls: list[ModelCall], *, bot_id: str, now: datetime
) -> None:
    """Calls no user or key is charged for (knowledge uploads, admin questions), in their own transaction.

    Never raises: the request's own result matters more; a lost record is logged.
    """
    if not calls:
        return
    try:
        async with engine.begin() as conn:
            day = periods.local_day(now, ZoneInfo(settings.usage_timezone))
            await records.record_calls(conn, calls, now=now, day=day, bot_id=bot_id)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        logger.error("Usage of {} call(s) for bot {} not recorded: {}", len(calls), bot_id, type(exc).__name__)
