"""The chat API's budgets through the usage service: the key's month and its bot's, reserved before the model is
called, settled with the model's usage after (app/services/usage)."""

from loguru import logger

from app.config import Settings
from app.models import utcnow
from app.services.chat.callers import Caller, api_key_id, describe
from app.services.chat.errors import BudgetExceeded
from app.services.chat.keys import KeyRef
from app.services.pipeline import OFFLINE_MODEL, Answer
from app.services.usage import Holder, Kind, ModelCall, Reservation, Scope, UsageService


class ChatBudget:
    """An API key is one more budget holder (`monthly_token_limit`, 0 = none), next to its bot's budget; the
    console's chat holds only the bot's."""

    def __init__(self, settings: Settings, usage: UsageService) -> None:
        self.settings = settings
        self.usage = usage

    def holders(self, caller: Caller) -> list[Holder]:
        bot = Holder(Scope.BOT, caller.bot_id, self.settings.bot_monthly_token_limit)
        if isinstance(caller, KeyRef):
            return [Holder(Scope.API_KEY, str(caller.id), caller.monthly_token_limit or 0), bot]
        return [bot]

    async def reserve(self, caller: Caller, tokens: int) -> Reservation:
        """Hold `tokens` on the key's and the bot's months (one statement), or refuse with a 429."""
        reservation = await self.usage.reserve(
            self.holders(caller), tokens=tokens, now=utcnow(), bot_id=caller.bot_id
        )
        refused = reservation.refused
        if refused is not None:
            whose = "This API key's" if refused.scope == Scope.API_KEY else "The bot's"
            raise BudgetExceeded(
                f"{whose} monthly token limit ({refused.token_limit}) is used up ({refused.used_tokens} used this "
                "month)."
            )
        return reservation

    async def settle(
        self, reservation: Reservation, caller: Caller, answer: Answer | None, *, user_id: int | None = None,
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
                reservation, calls, now=utcnow(), bot_id=caller.bot_id, user_id=user_id, api_key_id=api_key_id(caller),
                message_id=message_id, answered=answer is not None,
            )
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logger.error("Usage of a chat answer for {} not recorded: {}", describe(caller), type(exc).__name__)
