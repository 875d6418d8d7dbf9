"""Exact response cache: a model answer reused for a request whose messages, bot, model and parameters match.

`keys` builds the key from what the model would see, `store` holds the table's statements, `lru` the
in-process part in front, `cache` puts them together with the metrics.
"""

from app.services.response_cache.cache import PURGE_CHANNEL, ResponseCache, purge
from app.services.response_cache.keys import CacheKey, ModelParameters, cache_key, normalise_utterance
from app.services.response_cache.store import CachedAnswer

__all__ = [
    "PURGE_CHANNEL",
    "CacheKey",
    "CachedAnswer",
    "ModelParameters",
    "ResponseCache",
    "cache_key",
    "normalise_utterance",
    "purge",
]
