"""The chat API's budgets through the usage service: the key's month and its bot's, reserved before the model is
called, settled with the model's usage after (app/services/usage)."""

from loguru import logger

from app.config import Settings
from app.models import utcnow
from app.services.chat.errors import BudgetExceeded
from app.services.chat.keys import KeyRef
from app.services.pipeline import OFFLINE_MODEL, Answer
from app.services.usage import Holder, Kind, ModelCall, Reservation, Scope, UsageService


class ChatBudget:
    """An API key is one more budget holder (`monthly_token_limit`, 0 = none), next to its bot's budget."""

    def __init__(self, settings: Settings, usage: UsageService) -> None:
        self.settings = settings
        self.usage = usage

    def holders(self, key: KeyRef) -> list[Holder]:
        return [
            Holder(Scope.API_KEY, str(key.id), key.monthly_token_limit or 0),
            Holder(Scope.BOT, key.bot_id, self.settings.bot_monthly_token_limit),
        ]

    async def reserve(self, key: KeyRef, tokens: int) -> Reservation:
        """Hold `tokens` on the key's and the bot's months (one statement), or refuse with a 429."""
        reservation = await self.usage.reserve(self.holders(key), tokens=tokens, now=utcnow(), bot_id=key.bot_id)
        refused = reservation.refused
        if refused is not None:
            whose = "This API key's" if refused.scope == Scope.API_KEY else "The bot's"
            raise BudgetExceeded(
                f"{whose} monthly token limit ({refused.token_limit}) is used up ({refused.used_tokens} used this "
                "month)."
            )
        return reservation

    async def settle(
        self, reservation: Reservation, key: KeyRef, answer: Answer | None, *, user_id: int | None = None,
        message_id: int | None = None,
    ) -> None:
        """Record the answer's model call and turn the reservation into it; no answer gives the reservation back.

        Never raises: the client has (or will get) its answer; a lost record is logged.
        """
        calls = [] if answer is None or answer.model == OFFLINE_MODEL else [
            # A response cache hit is a call of 0 tokens, marked as such.
            ModelCall(Kind.CHAT, answer.model or "", answer.input_tokens, answer.output_tokens, answer.latency_ms,
                      cache_hit=answer.cache_hit)
        ]
        try:
            await self.usage.settle(
                reservation, calls, now=utcnow(), bot_id=key.bot_id, user_id=user_id, api_key_id=str(key.id),
                message_id=message_id, answered=answer is not None,
            )
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logger.error("Usage of a chat answer for key {} not recorded: {}", key.id, type(exc).__name__)
