"""Typed text statements: both drivers get dates, UTC timestamps and UUIDs the way the columns store them."""

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
    """`sql` with the known parameters among `params` typed."""
    return sa.text(sql).bindparams(*(sa.bindparam(name, type_=_TYPES[name]) for name in params if name in _TYPES))


async def run(conn: Conn, sql: str, params: dict[str, Any]) -> Result[Any]:
    """Execute `sql` with `params`, typed as above."""
    return await conn.execute(statement(sql, params), params)
