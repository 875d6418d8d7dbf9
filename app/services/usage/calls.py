"""A model call's usage as the provider reported it, and the collector that gathers a unit of work's calls."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What a model call was for."""

    ANSWER = "answer"
    SUMMARY = "summary"
    EMBEDDING = "embedding"
    CHAT = "chat"
    AUDIO = "audio"


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One call: tokens from the provider's `usage` (for audio, the billed units), latency, and whether a cache
    answered it (a hit costs 0 tokens)."""

    kind: str
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: int | None = None
    cache_hit: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


_collected: ContextVar[list[ModelCall] | None] = ContextVar("usage_calls", default=None)


@contextmanager
def collect() -> Iterator[list[ModelCall]]:
    """Gather every call `note`d in this context (and in tasks it starts) into the yielded list."""
    calls: list[ModelCall] = []
    token = _collected.set(calls)
    try:
        yield calls
    finally:
        _collected.reset(token)


def note(call: ModelCall) -> None:
    """Add a call to the current collector; outside one the caller records its own usage (or none is kept)."""
    calls = _collected.get()
    if calls is not None:
        calls.append(call)
