"""The database schema's Alembic revision: read it, compare it with the code's head, upgrade to it."""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, pool, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.config import Settings
from app.db import ensure_sqlite_folder

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"
UPGRADE_COMMAND = "alembic upgrade head"
# Any fixed 64-bit key: every process upgrading the same PostgreSQL database waits for it first.
UPGRADE_LOCK_KEY = 0x6B616B616F5F6462  # "kakao_db"


class SchemaNotReady(Exception):
    """The database cannot serve this code: its schema is not at head, or it could not be read."""


@dataclass(frozen=True)
class SchemaState:
    """A database's revision (None when never migrated) against the head of this code's migrations."""

    current: str | None
    head: str

    @property
    def status(self) -> str:
        """`ok` at head, `behind` when an upgrade reaches head, `unknown` for a revision this code lacks."""
        if self.current == self.head:
            return "ok"
        return "behind" if self.current is None or self.current in _known_revisions() else "unknown"

    @property
    def problem(self) -> str | None:
        """One line saying what is wrong and what to run, or None at head."""
        if self.status == "ok":
            return None
        current = self.current or "none"
        if self.status == "unknown":
            return f"database schema is at {current}, which this code does not know (it needs {self.head})"
        return f"database schema is at {current}, this code needs {self.head}: run `{UPGRADE_COMMAND}`"


def alembic_config() -> Config:
    return Config(str(ALEMBIC_INI))


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The revision this code needs, read from `migrations/` once per process."""
    head = _scripts().get_current_head()
    if head is None:
        raise RuntimeError("migrations/ holds no revision")
    return head


@lru_cache(maxsize=1)
def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


async def current_revision(conn: AsyncConnection) -> str | None:
    """The database's revision, None when it was never migrated; one query when it was."""
    try:
        rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    except DBAPIError:
        await conn.rollback()
        # Only a missing table means "never migrated"; any other failure is the database's.
        if await conn.run_sync(lambda sync_conn: inspect(sync_conn).has_table("alembic_version")):
            raise
        return None
    return ", ".join(sorted(rows)) or None


async def schema_state(conn: AsyncConnection) -> SchemaState:
    return SchemaState(current=await current_revision(conn), head=head_revision())


async def check_at_head(engine: AsyncEngine) -> None:
    """Raise SchemaNotReady (its message one line) unless the database is at head."""
    head = head_revision()
    try:
        async with engine.connect() as conn:
            state = SchemaState(current=await current_revision(conn), head=head)
    except Exception as exc:  # unreachable, refused, timed out: the reason is enough
        reason = (str(exc).splitlines() or [""])[0]
        raise SchemaNotReady(f"cannot read the database schema revision: {type(exc).__name__}: {reason}") from exc
    if state.problem is not None:
        raise SchemaNotReady(state.problem)


async def upgrade_to_head(settings: Settings) -> None:
    """Bring the database to head, as `alembic upgrade head` does; on PostgreSQL one process at a time."""
    ensure_sqlite_folder(settings.database_url)
    # A connection of its own and no statement_timeout, like the alembic command (migrations may take long).
    engine = create_async_engine(settings.database_url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # Replicas starting together queue here; the lock belongs to this session, so it outlives
                # the commit and is released when the connection closes (NullPool), even after a failure.
                await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": UPGRADE_LOCK_KEY})
                await conn.commit()
            await conn.run_sync(_upgrade)
    finally:
        await engine.dispose()


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection  # migrations/env.py runs on it
    command.upgrade(config, "head")
