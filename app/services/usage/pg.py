"""The PostgreSQL hot path of budgets: reserve and settle as one raw asyncpg statement each (no BEGIN/COMMIT).

Each mirrors the SQLAlchemy form in `budgets` (used on SQLite) exactly, and the tests run both against the same
expectations. A holder's row lock lasts one statement, so tasks of one bot contend on its row only that long.
"""

import json
import uuid
from datetime import date, datetime

import asyncpg

from app.services.usage.budgets import Holder, HolderState, Reservation
from app.services.usage.calls import ModelCall
from app.services.usage.records import PRICE_OF, Recorded

_COUNTER_COLUMNS = (
    "scope, holder_id, period, bot_id, token_limit, message_limit, policy, used_tokens, reserved_tokens, messages,"
    " alerted_percent, updated_at"
)
_STATE = (
    "c.scope, c.holder_id, c.bot_id, c.used_tokens, c.reserved_tokens, c.token_limit, c.message_limit, c.messages,"
    " c.policy, c.alerted_percent"
)
# Holders in the caller's order, which is the order their rows are locked in (user before bot: no deadlock).
_HOLDERS = """h AS (
    SELECT * FROM unnest({0}::varchar[], {1}::varchar[], {2}::bigint[], {3}::int[]) WITH ORDINALITY
        AS h(scope, holder_id, default_limit, message_limit, ord)
)"""

RESERVE_SQL = f"""
WITH {_HOLDERS.format("$1", "$2", "$3", "$4")},
r AS (
    INSERT INTO usagecounter AS c ({_COUNTER_COLUMNS})
    SELECT h.scope, h.holder_id, $5, $6, COALESCE(l.monthly_token_limit, h.default_limit), h.message_limit,
           COALESCE(l.policy, $7), 0, $8, 1, 0, $9
    FROM h LEFT JOIN usagelimit l ON l.scope = h.scope AND l.holder_id = h.holder_id
    ORDER BY h.ord
    ON CONFLICT (scope, holder_id, period) DO UPDATE
    SET reserved_tokens = c.reserved_tokens + excluded.reserved_tokens, messages = c.messages + 1,
        token_limit = excluded.token_limit, message_limit = excluded.message_limit, policy = excluded.policy,
        updated_at = excluded.updated_at
    WHERE excluded.policy = 'warn'
       OR ((excluded.token_limit = 0 OR c.used_tokens + c.reserved_tokens < excluded.token_limit)
           AND (excluded.message_limit = 0 OR c.messages < excluded.message_limit))
    RETURNING {_STATE}
),
t AS (
    UPDATE aiprocessingtask SET reserved_tokens = $8
    WHERE id = $10 AND reserved_tokens = 0 AND (SELECT count(*) FROM r) = cardinality($1::varchar[])
)
SELECT * FROM r
"""

SETTLE_SQL = f"""
WITH calls AS (
    SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::bigint[], $4::bigint[], $5::int[], $6::bool[])
        AS c(kind, model, input_tokens, output_tokens, latency_ms, cache_hit)
),
rec AS (
    INSERT INTO usagerecord (
        created_at, day, kind, bot_id, user_id, api_key_id, model, input_tokens, output_tokens, total_tokens,
        cost_usd, input_usd_per_million, output_usd_per_million, latency_ms, cache_hit, task_id, message_id
    )
    SELECT $7, $8, c.kind, $9, $10, $11, c.model, c.input_tokens, c.output_tokens, c.input_tokens + c.output_tokens,
           (c.input_tokens * p.input_usd_per_million + c.output_tokens * p.output_usd_per_million) / 1000000.0,
           p.input_usd_per_million, p.output_usd_per_million, c.latency_ms, c.cache_hit, $12, $13
    FROM calls c LEFT JOIN usageprice p ON p.model = {PRICE_OF}
    RETURNING model, kind, input_tokens, output_tokens, cost_usd
),
released AS (
    UPDATE aiprocessingtask SET reserved_tokens = 0 WHERE id = $12 AND reserved_tokens = $14 AND $14 > 0
    RETURNING id
),
{_HOLDERS.format("$15", "$16", "$17", "$18")},
counted AS (
    INSERT INTO usagecounter AS c ({_COUNTER_COLUMNS})
    SELECT h.scope, h.holder_id, $19, $9, h.default_limit, h.message_limit, $20, $21, 0, 0, 0, $7
    FROM h ORDER BY h.ord
    ON CONFLICT (scope, holder_id, period) DO UPDATE
    SET used_tokens = c.used_tokens + excluded.used_tokens,
        reserved_tokens = GREATEST(c.reserved_tokens - CASE WHEN $12::uuid IS NULL THEN $14
                                                            ELSE (SELECT count(*) FROM released) * $14 END, 0),
        messages = GREATEST(c.messages - CASE WHEN $12::uuid IS NULL THEN $22
                                              ELSE (SELECT count(*) FROM released) * $22 END, 0),
        updated_at = excluded.updated_at
    RETURNING {_STATE}
)
SELECT (SELECT json_agg(counted) FROM counted) AS states, (SELECT json_agg(rec) FROM rec) AS records
"""


def _holder_arrays(holders: list[Holder]) -> list[list[object]]:
    return [[h.scope for h in holders], [h.id for h in holders], [h.default_limit for h in holders],
            [h.message_limit for h in holders]]


async def reserve(
    pool: asyncpg.Pool, holders: list[Holder], *, tokens: int, period: str, policy: str, now: datetime,
    bot_id: str | None, task_id: uuid.UUID | None,
) -> list[HolderState]:
    """The holders that had room (all of them: admitted, the task marked); the caller undoes a partial one."""
    rows = await pool.fetch(RESERVE_SQL, *_holder_arrays(holders), period, bot_id, policy, tokens, now, task_id)
    return [HolderState(**dict(row)) for row in rows]


async def settle(
    pool: asyncpg.Pool, reservation: Reservation, calls: list[ModelCall], *, now: datetime, day: date, policy: str,
    bot_id: str, user_id: int | None, api_key_id: str | None, message_id: int | None, released: int,
    unanswered: int,
) -> tuple[list[Recorded], list[HolderState]]:
    """Record the calls, release `released` tokens and `unanswered` answers (if the task still holds them) and count
    the usage."""
    row = await pool.fetchrow(
        SETTLE_SQL,
        [c.kind for c in calls], [c.model for c in calls], [c.input_tokens for c in calls],
        [c.output_tokens for c in calls], [c.latency_ms for c in calls], [c.cache_hit for c in calls],
        now, day, bot_id, user_id, api_key_id, reservation.task_id, message_id, released,
        *_holder_arrays(reservation.holders), reservation.period, policy, sum(c.total_tokens for c in calls),
        unanswered,
    )
    states = [HolderState(**s) for s in json.loads(row["states"] or "[]")]
    records = [Recorded(**r) for r in json.loads(row["records"] or "[]")]
    return records, states
