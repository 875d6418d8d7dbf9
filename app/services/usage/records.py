"""`usagerecord`: one row per model call, priced in the same statement at the price then in force."""

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from loguru import logger
from app.queue import Conn

from app import metrics
from app.services.usage.calls import ModelCall
from app.services.usage.statements import run

# The price of a model is its own row, else that of the longest priced name it extends with "-"
# (gpt-4o-2024-08-06 is priced as gpt-4o, gpt-4o-mini-2024-07-18 as gpt-4o-mini). No row: cost NULL.
PRICE_OF = (
    "(SELECT p.model FROM usageprice p WHERE c.model = p.model OR c.model LIKE p.model || '-%'"
    " ORDER BY length(p.model) DESC LIMIT 1)"
)

_INSERT = f"""
INSERT INTO usagerecord (
    created_at, day, kind, bot_id, user_id, api_key_id, model, input_tokens, output_tokens, total_tokens,
    cost_usd, input_usd_per_million, output_usd_per_million, latency_ms, cache_hit, task_id, message_id
)
SELECT :now, :day, c.kind, :bot_id, :user_id, :api_key_id, c.model, c.input_tokens, c.output_tokens,
       c.input_tokens + c.output_tokens,
       (c.input_tokens * p.input_usd_per_million + c.output_tokens * p.output_usd_per_million) / 1000000.0,
       p.input_usd_per_million, p.output_usd_per_million, c.latency_ms, c.cache_hit, :task_id, :message_id
FROM c LEFT JOIN usageprice p ON p.model = {PRICE_OF}
RETURNING model, kind, input_tokens, output_tokens, cost_usd
"""


@dataclass(frozen=True, slots=True)
class Recorded:
    """A stored usage row: its model and cost (None: the model has no price)."""

    model: str
    kind: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


def _calls_cte(calls: list[ModelCall], params: dict[str, Any]) -> str:
    rows = []
    for i, call in enumerate(calls):
        params.update({f"k{i}": call.kind, f"mo{i}": call.model, f"i{i}": call.input_tokens,
                       f"o{i}": call.output_tokens, f"l{i}": call.latency_ms, f"ch{i}": call.cache_hit})
        rows.append(f"(CAST(:k{i} AS VARCHAR), CAST(:mo{i} AS VARCHAR), CAST(:i{i} AS BIGINT), CAST(:o{i} AS BIGINT),"
                    f" CAST(:l{i} AS INTEGER), CAST(:ch{i} AS BOOLEAN))")
    return f"c(kind, model, input_tokens, output_tokens, latency_ms, cache_hit) AS (VALUES {', '.join(rows)})"


async def record_calls(
    conn: Conn,
    calls: list[ModelCall],
    *,
    now: datetime,
    day: date,
    bot_id: str,
    user_id: int | None = None,
    api_key_id: str | None = None,
    task_id: uuid.UUID | None = None,
    message_id: int | None = None,
) -> list[Recorded]:
    """Insert one usage row per call (one statement) and count them in the metrics."""
    if not calls:
        return []
    params: dict[str, Any] = {"now": now, "day": day, "bot_id": bot_id, "user_id": user_id,
                              "api_key_id": api_key_id, "task_id": task_id, "message_id": message_id}
    sql = f"WITH {_calls_cte(calls, params)}\n{_INSERT}"
    recorded = [Recorded(**dict(row)) for row in (await run(conn, sql, params)).mappings()]
    count(recorded, bot_id)
    return recorded


def count(recorded: list[Recorded], bot_id: str) -> None:
    """Add stored calls to the metrics; a model without a price is logged as well."""
    for row in recorded:
        metrics.USAGE_TOKENS.labels(row.model, bot_id, "input").inc(row.input_tokens)
        metrics.USAGE_TOKENS.labels(row.model, bot_id, "output").inc(row.output_tokens)
        if row.cost_usd is None:
            metrics.USAGE_UNPRICED.labels(row.model).inc()
            logger.warning("Model {} has no price: its usage is recorded with cost_usd null (PUT /admin/usage/prices)",
                           row.model)
        else:
            metrics.USAGE_COST.labels(row.model, bot_id).inc(row.cost_usd)
