"""Models and migrations must agree on both backends; timestamps come back as aware UTC."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from app.db import Database
from app.models import AppUser, Conversation, PromptTemplate
from migrations.autogen import render_item


async def test_migrations_match_models(db: Database) -> None:
    def diff(sync_conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(
            sync_conn, opts={"compare_type": True, "render_item": render_item}
        )
        return compare_metadata(ctx, SQLModel.metadata)

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_default_prompt_template_seeded(db: Database) -> None:
    async with db.sessions() as session:
        templates = (await session.execute(select(PromptTemplate))).scalars().all()
    assert [(t.bot_id, t.name, t.version, t.is_active) for t in templates] == [("", "default", 1, True)]
    assert "{bot_name}" in templates[0].system_prompt


async def test_timestamps_round_trip_as_aware_utc(db: Database) -> None:
    seoul = timezone(timedelta(hours=9))
    created = datetime(2026, 1, 2, 9, 30, tzinfo=seoul)
    async with db.sessions() as session:
        session.add(AppUser(bot_id="b", kakao_user_id="u", created_at=created))
        await session.commit()
    async with db.sessions() as session:
        user = (await session.execute(select(AppUser))).scalar_one()
    assert user.created_at == created
    assert user.created_at.tzinfo is not None
    assert user.created_at.utcoffset() == timedelta(0)
    assert user.created_at.astimezone(UTC).hour == 0


async def test_naive_datetime_is_refused(db: Database) -> None:
    async with db.sessions() as session:
        session.add(AppUser(bot_id="b", kakao_user_id="u", created_at=datetime(2026, 1, 1)))
        with pytest.raises(Exception, match="naive datetime"):
            await session.commit()


async def test_foreign_keys_enforced(db: Database) -> None:
    async with db.sessions() as session:
        session.add(Conversation(user_id=999))
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_one_active_template_per_bot_and_name(db: Database) -> None:
    async with db.sessions() as session:
        session.add(PromptTemplate(bot_id="", name="default", version=2, system_prompt="x", is_active=True))
        with pytest.raises(IntegrityError):
            await session.commit()
