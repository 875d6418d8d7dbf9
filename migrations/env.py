"""Alembic environment: async engine from DATABASE_URL, or a connection handed in by tests."""

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from app.config import get_settings
from app.db import ensure_sqlite_folder
from app.logs import setup_logging
from migrations.autogen import render_item

config = context.config
target_metadata = SQLModel.metadata


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.dialect.name == "sqlite":
        # WAL is kept in the file: set it here, once, so the API and the embedded worker never race to switch
        # the journal mode on their first connections ("database is locked" at start-up).
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")


async def run_async_migrations(url: str) -> None:
    ensure_sqlite_folder(url)
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    settings = get_settings()
    setup_logging(settings)
    url = config.attributes.get("database_url") or settings.database_url
    asyncio.run(run_async_migrations(url))


if context.is_offline_mode():
    raise SystemExit("Offline (--sql) migrations are not supported; run against a database.")
run_migrations_online()
