"""The cache key: a hash of everything the model would see, so a different context can only miss."""

import hashlib
import json
from dataclasses import dataclass

from app.services.llm import ChatMessage

# Bumped when the key's layout changes, so old rows can never match a new key.
KEY_VERSION = 1


@dataclass(frozen=True, slots=True)
class ModelParameters:
    """Which model, where, and how it samples: a change in any of them is another answer."""

    model: str
    temperature: float
    max_tokens: int
    base_url: str | None


@dataclass(frozen=True, slots=True)
class CacheKey:
    """The bot (to check and purge by) and the sha256 hex digest of the whole request."""

    bot_id: str
    digest: str


def normalise_utterance(utterance: str) -> str:
    """Trimmed, with every run of whitespace one space: "배송  언제 와요? " and "배송 언제 와요?" are one question."""
    return " ".join(utterance.split())


def cache_key(bot_id: str, parameters: ModelParameters, messages: list[ChatMessage]) -> CacheKey:
    """Hash the bot, the model parameters and the exact messages (template, passages, history, name, summary)."""
    request = {
        "v": KEY_VERSION,
        "bot": bot_id,
        "model": parameters.model,
        "temperature": parameters.temperature,
        "max_tokens": parameters.max_tokens,
        "base_url": parameters.base_url,
        "messages": [[m.role, m.content] for m in messages],
    }
    canonical = json.dumps(request, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return CacheKey(bot_id=bot_id, digest=hashlib.sha256(canonical.encode()).hexdigest())
