"""Every statement on the `responsecache` table, built once (they run for every answer).

They run on the engine's pool, with the task's other reads, not on the raw asyncpg pool that the worker keeps for
callbacks and apologies (a burst of lookups must not queue in front of an apology).
"""

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import ResponseCache

_cache = ResponseCache.__table__


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A stored model answer and until when it may be served."""

    bot_id: str
    model: str
    text: str
    finish_reason: str | None
    expires_at: datetime


_FIND = select(_cache.c.bot_id, _cache.c.model, _cache.c.text, _cache.c.finish_reason, _cache.c.expires_at).where(
    _cache.c.key == bindparam("digest"), _cache.c.bot_id == bindparam("bot_id"), _cache.c.expires_at > bindparam("now")
)


def _upsert(insert: Any) -> Any:
    statement = insert(_cache)
    return statement.on_conflict_do_update(
        index_elements=[_cache.c.key], set_={c.name: statement.excluded[c.name] for c in _cache.c if c.name != "key"}
    )


_UPSERT = {"postgresql": _upsert(postgresql.insert), "sqlite": _upsert(sqlite.insert)}


async def find(conn: AsyncConnection, *, digest: str, bot_id: str, now: datetime) -> CachedAnswer | None:
    """The live answer of the key; the bot is checked too, so an answer never crosses bots."""
    row = (await conn.execute(_FIND, {"digest": digest, "bot_id": bot_id, "now": now})).one_or_none()
    return CachedAnswer(*row) if row is not None else None


async def save(conn: AsyncConnection, *, digest: str, answer: CachedAnswer, now: datetime) -> None:
    """Insert or refresh the key's row (two workers answering the same question at once both write)."""
    await conn.execute(_UPSERT[conn.dialect.name], {"key": digest, "created_at": now, **asdict(answer)})


async def purge(conn: AsyncConnection, *, bot_id: str | None, notify_channel: str | None) -> int:
    """Delete every row (or one bot's); on PostgreSQL, tell every process to drop its in-process entries."""
    statement = delete(_cache)
    if bot_id is not None:
        statement = statement.where(_cache.c.bot_id == bot_id)
    deleted = (await conn.execute(statement)).rowcount
    if notify_channel is not None:
        # Delivered only if the transaction commits, so no process forgets what is still stored.
        await conn.execute(text(f"NOTIFY {notify_channel}"))
    return deleted


async def prune(conn: AsyncConnection, *, now: datetime) -> int:
    """Delete expired rows."""
    return (await conn.execute(delete(_cache).where(_cache.c.expires_at <= now))).rowcount
