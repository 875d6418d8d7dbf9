"""The daily rollup: each finished local day's usage rows summed into `usagedaily` (a worker job)."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from app.services.usage.periods import local_day
from app.services.usage.statements import as_date, run

# A day is rolled this long after local midnight, so a call recorded just before it is in.
SETTLE_MARGIN = timedelta(minutes=5)
_EPOCH = date(1970, 1, 1)

_LAST_ROLLED = "SELECT MAX(day) FROM usagerolledday"
_NEXT_DAY = "SELECT MIN(day) FROM usagerecord WHERE day > :start AND day < :end"
_CLEAR = "DELETE FROM usagedaily WHERE day = :day"
_SUM = """
INSERT INTO usagedaily (
    day, bot_id, user_id, model, requests, cache_hits, input_tokens, output_tokens, total_tokens, cost_usd, unpriced
)
SELECT day, bot_id, COALESCE(user_id, 0), model, COUNT(*), SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END),
       SUM(input_tokens), SUM(output_tokens), SUM(total_tokens), COALESCE(SUM(cost_usd), 0),
       SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END)
FROM usagerecord WHERE day = :day
GROUP BY day, bot_id, COALESCE(user_id, 0), model
"""
_MARK = "INSERT INTO usagerolledday (day, rolled_at) VALUES (:day, :now)"


async def roll_up(engine: AsyncEngine, *, now: datetime, tz: ZoneInfo) -> list[date]:
    """Sum every finished day not yet rolled, oldest first, one transaction per day; returns the days rolled."""
    before = local_day(now - SETTLE_MARGIN, tz)
    rolled: list[date] = []
    while True:
        async with engine.begin() as conn:
            last = as_date((await run(conn, _LAST_ROLLED, {})).scalar()) or _EPOCH
            day = as_date((await run(conn, _NEXT_DAY, {"start": last, "end": before})).scalar())
            if day is None:
                return rolled
            await run(conn, _CLEAR, {"day": day})
            await run(conn, _SUM, {"day": day})
            await run(conn, _MARK, {"day": day, "now": now})
        rolled.append(day)
