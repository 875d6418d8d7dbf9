"""Budget alerts: each threshold once per holder and month (`usagealert` + `eventlog`), optionally POSTed."""

import json
from dataclasses import asdict, dataclass
from datetime import datetime

import httpx
from loguru import logger

from app.queue import Conn
from app.services import events
from app.services.usage.budgets import HolderState, Scope
from app.services.usage.statements import run

USAGE_ALERT = "usage_alert"
WEBHOOK_TIMEOUT_SECONDS = 5.0

# The unique key (scope, holder, month, threshold) makes a concurrent second insert a no-op: one alert each.
_INSERT = """
INSERT INTO usagealert (scope, holder_id, user_id, bot_id, threshold, period, used, limit_tokens, created_at)
VALUES (:scope, :holder_id, :user_id, :bot_id, :threshold, :period, :used, :limit_tokens, :now)
ON CONFLICT (scope, holder_id, period, threshold) DO NOTHING
RETURNING id
"""
_MARK = """
UPDATE usagecounter SET alerted_percent = :threshold
WHERE scope = :scope AND holder_id = :holder_id AND period = :period AND alerted_percent < :threshold
"""


@dataclass(frozen=True, slots=True)
class Alert:
    """One threshold reached by one holder in one month."""

    scope: str
    holder_id: str
    user_id: int | None
    bot_id: str | None
    threshold: int
    period: str
    used: int
    limit: int
    created_at: datetime


def due(state: HolderState, thresholds: list[int], *, refused: bool = False) -> list[int]:
    """Thresholds reached and not yet alerted; a refusal reaches them all (the budget is spent for this month)."""
    if not state.token_limit:
        return []
    percent = 100.0 if refused else (state.percent or 0.0)
    return [t for t in thresholds if state.alerted_percent < t <= percent]


async def raise_alerts(
    conn: Conn, state: HolderState, thresholds: list[int], *, period: str, now: datetime
) -> list[Alert]:
    """Record the given thresholds of `state` (those not already recorded); returns the new ones."""
    raised = []
    user_id = int(state.holder_id) if state.scope == Scope.USER else None
    bot_id = state.holder_id if state.scope == Scope.BOT else state.bot_id
    for threshold in thresholds:
        alert = Alert(state.scope, state.holder_id, user_id, bot_id, threshold, period, state.used_tokens,
                      state.token_limit, now)
        params = {**asdict(alert), "limit_tokens": alert.limit, "now": now}
        del params["limit"], params["created_at"]
        if (await run(conn, _INSERT, params)).first() is None:
            continue
        await events.record_event(
            conn, USAGE_ALERT, user_id=user_id, bot_id=bot_id, now=now,  # type: ignore[arg-type]
            detail={"scope": state.scope, "holder_id": state.holder_id, "threshold": threshold, "period": period,
                    "used": state.used_tokens, "limit": state.token_limit},
        )
        raised.append(alert)
    if thresholds:
        await run(conn, _MARK, {"threshold": max(thresholds), "scope": state.scope, "holder_id": state.holder_id,
                                "period": period})
    for alert in raised:
        logger.warning("Usage alert: {} {} reached {}% of its monthly budget ({} of {} tokens)",
                       alert.scope, alert.holder_id, alert.threshold, alert.used, alert.limit)
    return raised


async def post_webhook(http: httpx.AsyncClient, url: str, alerts: list[Alert]) -> None:
    """POST each alert as JSON to `USAGE_ALERT_WEBHOOK_URL`; a failure is logged, never raised."""
    for alert in alerts:
        body = {"type": USAGE_ALERT, **asdict(alert), "created_at": alert.created_at.isoformat()}
        try:
            response = await http.post(url, content=json.dumps(body), timeout=WEBHOOK_TIMEOUT_SECONDS,
                                       headers={"content-type": "application/json"})
            response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.warning("Usage alert webhook failed: {}", type(exc).__name__)
