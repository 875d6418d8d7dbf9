"""Monthly token budgets: an atomic reservation before a model call, settled to the provider's usage after.

Each holder (user, bot, api_key, ...) has one `usagecounter` row per local month. `reserve` adds an estimate to
every holder's row in one conditional upsert: a row whose budget is spent (used + reserved >= limit, or its answer
count at the message limit) is not updated and not returned, so concurrent reservations can never all pass a
stale check. `settle` records the calls, moves the reservation to `used_tokens` and, for a task, clears the task's
own mark so a second settle of the same reservation subtracts nothing.
"""

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from app.queue import Conn

from app.services.usage.calls import ModelCall
from app.services.usage.records import Recorded, record_calls
from app.services.usage.statements import run


class Scope(StrEnum):
    """Who a budget belongs to; an API key is one more holder."""

    USER = "user"
    BOT = "bot"
    API_KEY = "api_key"


class Policy(StrEnum):
    BLOCK = "block"
    WARN = "warn"


@dataclass(frozen=True, slots=True)
class Holder:
    """A budget holder (scope, id) with the limits that apply when no admin override exists (0 = none)."""

    scope: str
    id: str
    default_limit: int = 0
    message_limit: int = 0


@dataclass(frozen=True, slots=True)
class HolderState:
    """A holder's month as the last statement left it."""

    scope: str
    holder_id: str
    bot_id: str | None
    used_tokens: int
    reserved_tokens: int
    token_limit: int
    message_limit: int
    messages: int
    policy: str
    alerted_percent: int

    @property
    def percent(self) -> float | None:
        return 100.0 * self.used_tokens / self.token_limit if self.token_limit else None

    @property
    def out_of_messages(self) -> bool:
        return bool(self.message_limit) and self.messages >= self.message_limit


@dataclass(slots=True)
class Reservation:
    """The outcome of `reserve`: admitted (tokens held on every holder) or refused by `refused`."""

    holders: list[Holder]
    period: str
    tokens: int
    task_id: uuid.UUID | None = None
    states: list[HolderState] = field(default_factory=list)
    refused: HolderState | None = None

    @property
    def admitted(self) -> bool:
        return self.refused is None


@dataclass(frozen=True, slots=True)
class Settlement:
    """What `settle` wrote: the usage rows and each holder's month after it."""

    records: list[Recorded]
    states: list[HolderState]


_STATE_COLUMNS = (
    "scope, holder_id, bot_id, used_tokens, reserved_tokens, token_limit, message_limit, messages, policy,"
    " alerted_percent"
)


def _holders_cte(holders: list[Holder], params: dict[str, Any]) -> str:
    """`h(scope, holder_id, default_limit, message_limit)` as VALUES rows, in the given order (the lock order)."""
    rows = []
    for i, holder in enumerate(holders):
        params.update({f"s{i}": holder.scope, f"h{i}": holder.id, f"d{i}": holder.default_limit,
                       f"m{i}": holder.message_limit})
        rows.append(f"(CAST(:s{i} AS VARCHAR), CAST(:h{i} AS VARCHAR), CAST(:d{i} AS BIGINT), CAST(:m{i} AS INTEGER))")
    return f"h(scope, holder_id, default_limit, message_limit) AS (VALUES {', '.join(rows)})"


# The reservation: a spent budget's row fails the DO UPDATE condition, so it is neither changed nor returned.
# A holder's first reservation of the month inserts its row (nothing is spent yet). An override in `usagelimit`
# wins over the default at once. `WHERE true` keeps SQLite's parser from reading ON CONFLICT as a join.
_RESERVE = """
INSERT INTO usagecounter AS c (
    scope, holder_id, period, bot_id, token_limit, message_limit, policy,
    used_tokens, reserved_tokens, messages, alerted_percent, updated_at
)
SELECT h.scope, h.holder_id, :period, :bot_id, COALESCE(l.monthly_token_limit, h.default_limit), h.message_limit,
       COALESCE(l.policy, :policy), 0, :tokens, 1, 0, :now
FROM h LEFT JOIN usagelimit l ON l.scope = h.scope AND l.holder_id = h.holder_id
WHERE true
ON CONFLICT (scope, holder_id, period) DO UPDATE
SET reserved_tokens = c.reserved_tokens + excluded.reserved_tokens, messages = c.messages + 1,
    token_limit = excluded.token_limit, message_limit = excluded.message_limit, policy = excluded.policy,
    updated_at = excluded.updated_at
WHERE excluded.policy = 'warn'
   OR ((excluded.token_limit = 0 OR c.used_tokens + c.reserved_tokens < excluded.token_limit)
       AND (excluded.message_limit = 0 OR c.messages < excluded.message_limit))
RETURNING {columns}
"""

# The task carries its reservation, so a later attempt (or a second settle) knows one is held.
_MARK_TASK = "UPDATE aiprocessingtask SET reserved_tokens = :tokens WHERE id = :task_id AND reserved_tokens = 0"

_UNDO = """
UPDATE usagecounter SET reserved_tokens = reserved_tokens - :tokens, messages = messages - 1
WHERE period = :period AND scope = :scope AND holder_id = :holder_id
"""

_READ = (
    f"SELECT {_STATE_COLUMNS} FROM usagecounter WHERE period = :period AND scope = :scope AND holder_id = :holder_id"
)

_RELEASE_TASK = """
UPDATE aiprocessingtask SET reserved_tokens = 0 WHERE id = :task_id AND reserved_tokens = :tokens
RETURNING id
"""

# Settling: used += the calls' tokens; the reservation is given back when it is still held (or not task-bound).
_SETTLE = """
INSERT INTO usagecounter AS c (
    scope, holder_id, period, bot_id, token_limit, message_limit, policy,
    used_tokens, reserved_tokens, messages, alerted_percent, updated_at
)
SELECT h.scope, h.holder_id, :period, :bot_id, h.default_limit, h.message_limit, :policy, :used, 0, 0, 0, :now
FROM h
WHERE true
ON CONFLICT (scope, holder_id, period) DO UPDATE
SET used_tokens = c.used_tokens + excluded.used_tokens,
    reserved_tokens = CASE WHEN c.reserved_tokens > :released THEN c.reserved_tokens - :released ELSE 0 END,
    messages = CASE WHEN c.messages > :unanswered THEN c.messages - :unanswered ELSE 0 END,
    updated_at = excluded.updated_at
RETURNING {columns}
"""


def _states(rows: Any) -> list[HolderState]:
    return [HolderState(**dict(row)) for row in rows.mappings()]


async def reserve(
    conn: Conn,
    holders: list[Holder],
    *,
    tokens: int,
    period: str,
    policy: str,
    now: datetime,
    bot_id: str | None = None,
    task_id: uuid.UUID | None = None,
) -> Reservation:
    """Hold `tokens` on every holder's month, or on none (refused by the first holder whose budget is spent).

    Run in the transaction that admits the work; with `task_id` the task row is marked as holding them.
    """
    reservation = Reservation(holders=holders, period=period, tokens=tokens, task_id=task_id)
    if not holders:
        return reservation
    params: dict[str, Any] = {"period": period, "bot_id": bot_id, "policy": policy, "tokens": tokens, "now": now}
    sql = f"WITH {_holders_cte(holders, params)}\n{_RESERVE.format(columns=_STATE_COLUMNS)}"
    reservation.states = _states(await run(conn, sql, params))
    if len(reservation.states) == len(holders):
        if task_id is not None:
            await run(conn, _MARK_TASK, {"tokens": tokens, "task_id": task_id})
        return reservation
    await refuse(conn, reservation)
    return reservation


async def refuse(conn: Conn, reservation: Reservation) -> None:
    """After a partial reservation: the holders that had room (`states`) give their share back, and `refused` is
    set to the first holder without room."""
    held = {(s.scope, s.holder_id) for s in reservation.states}
    for state in reservation.states:
        await run(conn, _UNDO, {"tokens": reservation.tokens, "period": reservation.period, "scope": state.scope,
                                "holder_id": state.holder_id})
    refused = next(h for h in reservation.holders if (h.scope, h.id) not in held)
    row = await run(conn, _READ, {"period": reservation.period, "scope": refused.scope, "holder_id": refused.id})
    reservation.refused = _states(row)[0]
    reservation.states = []


async def settle(
    conn: Conn,
    reservation: Reservation,
    calls: list[ModelCall],
    *,
    now: datetime,
    day: date,
    policy: str,
    bot_id: str,
    user_id: int | None = None,
    api_key_id: str | None = None,
    message_id: int | None = None,
    keep_reservation: bool = False,
    answered: bool = True,
) -> Settlement:
    """Record `calls` and move the reservation to the real usage on every holder (no calls: a plain release).

    `keep_reservation`: the work goes on (a retry), so the reservation stays held; only the calls are counted.
    `answered=False`: the work ended without an answer, so it does not count towards the month's answers.
    """
    records = await record_calls(
        conn, calls, now=now, day=day, bot_id=bot_id, user_id=user_id, api_key_id=api_key_id,
        task_id=reservation.task_id, message_id=message_id,
    )
    if not reservation.holders:
        return Settlement(records, [])
    released = 0 if keep_reservation else reservation.tokens
    given_back = not keep_reservation
    if reservation.task_id is not None and released:
        marked = await run(conn, _RELEASE_TASK, {"task_id": reservation.task_id, "tokens": released})
        if marked.first() is None:
            released, given_back = 0, False  # already given back by another settle of this task
    params: dict[str, Any] = {
        "period": reservation.period, "bot_id": bot_id, "policy": policy, "now": now,
        "used": sum(c.total_tokens for c in calls), "released": released,
        "unanswered": int(given_back and not answered),
    }
    sql = f"WITH {_holders_cte(reservation.holders, params)}\n{_SETTLE.format(columns=_STATE_COLUMNS)}"
    return Settlement(records, _states(await run(conn, sql, params)))
