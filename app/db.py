"""One async engine per process, its session factory, and the raw asyncpg pool of the hot paths."""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.config import Settings


def _sqlite_pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def apply(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        # WAL lets readers (API) and the writer (worker) work side by side. busy_timeout waits out short
        # locks, and stays under the skill's store timeout: a statement blocked in SQLite cannot be cancelled.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return apply


def pg_dsn(database_url: str) -> str:
    """The libpq-style DSN asyncpg wants, from a SQLAlchemy `postgresql+asyncpg://` URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_server_settings(settings: Settings) -> dict[str, str]:
    if settings.db_statement_timeout_ms:
        return {"statement_timeout": str(settings.db_statement_timeout_ms)}
    return {}


def ensure_sqlite_folder(database_url: str) -> None:
    """Create the folder of a SQLite database file so a fresh checkout starts without set-up."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(settings: Settings, *, pool_timeout: float | None = None) -> AsyncEngine:
    """Build the engine for `DATABASE_URL` with pool settings suited to its backend.

    `pool_timeout`: how long a checkout waits for a free connection (default `DB_POOL_TIMEOUT`).
    """
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        ensure_sqlite_folder(settings.database_url)
        engine = create_async_engine(url, connect_args={"timeout": 5})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(settings.sqlite_busy_timeout_ms))
        return engine
    connect_args: dict[str, Any] = {
        "timeout": settings.db_pool_timeout,
        "server_settings": _pg_server_settings(settings),
    }
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=pool_timeout or settings.db_pool_timeout,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=connect_args,
    )


async def _no_reset(_connection: asyncpg.Connection) -> None:
    return None


class Database:
    """The process's engine and its session factory (plus a raw asyncpg pool for hot paths)."""

    def __init__(self, settings: Settings, *, pool_timeout: float | None = None) -> None:
        self.settings = settings
        self.engine = create_engine(settings, pool_timeout=pool_timeout)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._raw_pool: asyncpg.Pool | None = None
        self._raw_pool_lock = asyncio.Lock()

    async def raw_pool(self) -> asyncpg.Pool:
        """A plain asyncpg pool on the same PostgreSQL database, for single-statement hot paths."""
        if self._raw_pool is None:
            async with self._raw_pool_lock:
                if self._raw_pool is None:
                    self._raw_pool = await asyncpg.create_pool(
                        pg_dsn(self.settings.database_url),
                        min_size=1,
                        max_size=self.settings.db_pool_size,
                        timeout=self.settings.db_pool_timeout,
                        server_settings=_pg_server_settings(self.settings),
                        # Hot paths run single statements with no session state to undo, so the
                        # default reset (a round trip on every release) is skipped.
                        reset=_no_reset,
                    )
        return self._raw_pool

    async def dispose(self) -> None:
        if self._raw_pool is not None:
            await self._raw_pool.close()
            self._raw_pool = None
        await self.engine.dispose()
