"""Who asks the chat service: a client with an API key, or the admin console's 채팅 page (no key)."""

from dataclasses import dataclass

from app.services.chat.keys import KeyRef


@dataclass(frozen=True, slots=True)
class ConsoleCaller:
    """The operator logged into the console: any bot, counted against that bot's budget alone."""

    bot_id: str
    allow_system_messages: bool = False


Caller = KeyRef | ConsoleCaller


def api_key_id(caller: Caller) -> str | None:
    """The `usagerecord.api_key_id` of the caller's answers (none for the console)."""
    return str(caller.id) if isinstance(caller, KeyRef) else None


def stored_user_id(caller: Caller, end_user: str | None) -> str:
    """The `appuser.kakao_user_id` the caller's exchanges are stored under: one user per key and end user
    (`user` of the request), and `console` (or `console:<user>`) for the console."""
    if isinstance(caller, KeyRef):
        return f"api:{caller.id}:{end_user or ''}"
    return f"console:{end_user}" if end_user else "console"


def describe(caller: Caller) -> str:
    """The caller as logs name it."""
    return f"key {caller.id}" if isinstance(caller, KeyRef) else f"console (bot {caller.bot_id})"
