"""The connections queue statements run on, and the NOTIFY that wakes PostgreSQL workers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.queue.wakeup import NOTIFY_CHANNEL

Conn = AsyncSession | AsyncConnection


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection without a transaction, for one-statement calls (saves BEGIN and COMMIT)."""
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


def dialect(conn: Conn) -> str:
    return conn.bind.dialect.name if isinstance(conn, AsyncSession) else conn.dialect.name


async def notify(conn: Conn) -> None:
    if dialect(conn) == "postgresql":
        # NOTIFY inside the transaction is delivered only if it commits.
        await conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
