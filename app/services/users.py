"""Kakao users: one row per (bot, botUserKey)."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AppUser
from app.services import events

_user = AppUser.__table__


@dataclass(frozen=True, slots=True)
class UserRef:
    """The few user fields a request needs."""

    id: int
    name: str | None
    name_mode: bool


# The asker of a free question (the knowledge query API): no row, no name.
ANONYMOUS = UserRef(id=0, name=None, name_mode=False)


async def touch_user(session: AsyncSession, *, bot_id: str, kakao_user_id: str, now: datetime) -> UserRef:
    """Find or create the user in one statement, recording when they were last seen."""
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(_user).values(
        bot_id=bot_id, kakao_user_id=kakao_user_id, name_mode=False, created_at=now, last_seen_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[_user.c.bot_id, _user.c.kakao_user_id],
        set_={"last_seen_at": stmt.excluded.last_seen_at},
    ).returning(_user.c.id, _user.c.name, _user.c.name_mode)
    row = (await session.execute(stmt)).one()
    return UserRef(id=row.id, name=row.name, name_mode=row.name_mode)


async def find_user(session: AsyncSession, *, bot_id: str, kakao_user_id: str) -> UserRef | None:
    row = (
        await session.execute(
            select(_user.c.id, _user.c.name, _user.c.name_mode).where(
                _user.c.bot_id == bot_id, _user.c.kakao_user_id == kakao_user_id
            )
        )
    ).one_or_none()
    return UserRef(id=row.id, name=row.name, name_mode=row.name_mode) if row else None


async def set_name_mode(session: AsyncSession, user: UserRef, *, on: bool) -> None:
    await session.execute(update(_user).where(_user.c.id == user.id).values(name_mode=on))


async def set_name(session: AsyncSession, user: UserRef, *, bot_id: str, name: str, now: datetime, source: str) -> None:
    """Store the user's name, leave name mode and record the change in `eventlog`."""
    await session.execute(update(_user).where(_user.c.id == user.id).values(name=name, name_mode=False))
    await events.record_event(
        session,
        events.NAME_CHANGED if user.name else events.NAME_SET,
        user_id=user.id,
        bot_id=bot_id,
        detail={"old": user.name, "new": name, "source": source},
        now=now,
    )


async def list_users(
    session: AsyncSession, *, bot_id: str | None = None, search: str | None = None, limit: int = 50
) -> list[AppUser]:
    """Users most recently seen first, optionally of one bot and matching part of their Kakao id or name."""
    query = select(AppUser).order_by(AppUser.last_seen_at.desc()).limit(limit)
    if bot_id:
        query = query.where(AppUser.bot_id == bot_id)
    if search:
        query = query.where(
            AppUser.kakao_user_id.contains(search, autoescape=True)  # type: ignore[attr-defined]
            | AppUser.name.contains(search, autoescape=True)  # type: ignore[union-attr]
        )
    return list(await session.scalars(query))


async def get_user(session: AsyncSession, user_id: int) -> AppUser | None:
    return await session.get(AppUser, user_id)


async def bot_ids(session: AsyncSession, *, limit: int = 100) -> list[str]:
    """The bots users have talked to, in name order (the console offers them to pick from)."""
    stmt = select(_user.c.bot_id).distinct().order_by(_user.c.bot_id).limit(limit)
    return list((await session.scalars(stmt)).all())
