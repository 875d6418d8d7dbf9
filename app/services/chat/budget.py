"""A key's monthly token limit: reserved before the model is called, settled once the answer is stored."""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import AppUser, Message, PromptLog, utcnow
from app.services.chat.errors import BudgetExceeded
from app.services.chat.exchanges import key_users_pattern
from app.services.chat.keys import KeyRef

# Months are counted as the customers' calendar has them.
_SEOUL = ZoneInfo("Asia/Seoul")


@dataclass(frozen=True, slots=True)
class Reservation:
    key_id: int
    tokens: int


class KeyBudget:
    """Tokens a key used this month (its answers' prompt logs) plus the calls it has in flight here.

    A call is refused when what is used and in flight, plus the call's own prompt, passes the limit; the answer
    itself may go over by at most its `max_tokens`.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._in_flight: dict[int, int] = {}

    async def reserve(self, key: KeyRef, prompt_tokens: int) -> Reservation:
        if key.monthly_token_limit is None:
            return Reservation(key.id, 0)
        used = await self.used_this_month(key)
        pending = self._in_flight.get(key.id, 0)
        if used + pending + prompt_tokens > key.monthly_token_limit:
            raise BudgetExceeded(
                f"This API key's monthly token limit ({key.monthly_token_limit}) is used up "
                f"({used} used this month)."
            )
        self._in_flight[key.id] = pending + prompt_tokens
        return Reservation(key.id, prompt_tokens)

    def settle(self, reservation: Reservation) -> None:
        """Release the reservation: the stored prompt log now counts the call's real tokens."""
        if reservation.tokens:
            left = self._in_flight.get(reservation.key_id, 0) - reservation.tokens
            if left > 0:
                self._in_flight[reservation.key_id] = left
            else:
                self._in_flight.pop(reservation.key_id, None)

    async def used_this_month(self, key: KeyRef, *, now: datetime | None = None) -> int:
        month_start = (now or utcnow()).astimezone(_SEOUL).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        log, msg, user = PromptLog.__table__, Message.__table__, AppUser.__table__
        async with self._sessions() as session:
            used = await session.scalar(
                select(func.coalesce(func.sum(log.c.input_tokens + log.c.output_tokens), 0))
                .select_from(log.join(msg, msg.c.id == log.c.msg_id).join(user, user.c.id == msg.c.user_id))
                .where(
                    user.c.bot_id == key.bot_id,
                    user.c.kakao_user_id.like(key_users_pattern(key.id)),
                    log.c.created_at >= month_start,
                )
            )
        return int(used or 0)
