"""Typed text statements: both drivers get dates, UTC timestamps and UUIDs the way the columns store them."""

import re
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Result
from sqlalchemy.sql.elements import TextClause

from app.models import UTCDateTime
from app.queue import Conn

# Parameters whose Python value alone does not say the column type (None, aware datetimes, UUIDs on SQLite).
_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "now": UTCDateTime(),
    "since": UTCDateTime(),
    "day": sa.Date(),
    "start": sa.Date(),
    "end": sa.Date(),
    "task_id": sa.Uuid(),
    "user_id": sa.Integer(),
    "message_id": sa.Integer(),
    "bot_id": sa.String(),
    "api_key_id": sa.String(),
    "period": sa.String(),
    "policy": sa.String(),
    "tokens": sa.BigInteger(),
    "used": sa.BigInteger(),
    "released": sa.BigInteger(),
}


def statement(sql: str, params: dict[str, Any]) -> TextClause:
    """`sql` with the known parameters among `params` typed (`day3` is typed as `day`)."""
    used = set(re.findall(r"(?<!:):(\w+)", sql))  # `params` may carry more than this statement uses
    typed = ((name, _TYPES.get(name) or _TYPES.get(name.rstrip("0123456789"))) for name in params if name in used)
    return sa.text(sql).bindparams(*(sa.bindparam(name, type_=type_) for name, type_ in typed if type_ is not None))


async def run(conn: Conn, sql: str, params: dict[str, Any]) -> Result[Any]:
    """Execute `sql` with `params`, typed as above."""
    return await conn.execute(statement(sql, params), params)


def as_date(value: date | str | None) -> date | None:
    """A date read back from a text statement (SQLite returns the stored ISO string)."""
    return date.fromisoformat(value) if isinstance(value, str) else value
