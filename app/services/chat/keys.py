"""API keys of the chat API: created with a secret shown once, stored as its SHA-256, revoked at once."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey, utcnow
from app.services.chat.errors import InvalidApiKey

KEY_PREFIX = "kb-"
# The visible start of a key: the prefix and 8 random characters, enough to tell keys apart in a listing.
_SHOWN = len(KEY_PREFIX) + 8
_key = ApiKey.__table__


@dataclass(frozen=True, slots=True)
class KeyRef:
    """What a request needs of its key."""

    id: int
    bot_id: str
    monthly_token_limit: int | None
    allow_system_messages: bool


def hash_secret(secret: str) -> str:
    # A 256-bit random secret needs no salt or slow hash: nothing short of the secret itself matches.
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(
    session: AsyncSession,
    *,
    name: str,
    bot_id: str,
    monthly_token_limit: int | None,
    allow_system_messages: bool,
) -> tuple[ApiKey, str]:
    """A new key and its secret; the secret is not stored and cannot be shown again."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name,
        bot_id=bot_id,
        prefix=secret[:_SHOWN],
        key_hash=hash_secret(secret),
        monthly_token_limit=monthly_token_limit,
        allow_system_messages=allow_system_messages,
    )
    session.add(key)
    await session.commit()
    await session.refresh(key)
    return key, secret


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.id))).all())


async def revoke_key(session: AsyncSession, key_id: int, *, now: datetime | None = None) -> bool:
    """Revoke a key (again is fine); False when there is no such key."""
    key = await session.get(ApiKey, key_id)
    if key is None:
        return False
    if key.revoked_at is None:
        await session.execute(update(_key).where(_key.c.id == key_id).values(revoked_at=now or utcnow()))
        await session.commit()
    return True


async def authenticate(session: AsyncSession, secret: str) -> KeyRef:
    """The live key with this secret; read on every request, so a revoked key stops working at once."""
    row = (
        await session.execute(
            select(_key.c.id, _key.c.bot_id, _key.c.monthly_token_limit, _key.c.allow_system_messages).where(
                _key.c.key_hash == hash_secret(secret), _key.c.revoked_at.is_(None)
            )
        )
    ).one_or_none()
    if row is None:
        raise InvalidApiKey("Incorrect API key provided, or the key was revoked.")
    return KeyRef(
        id=row.id,
        bot_id=row.bot_id,
        monthly_token_limit=row.monthly_token_limit,
        allow_system_messages=row.allow_system_messages,
    )
