"""What the queue hands out and takes in: a claimed task, an orphaned callback, a stored answer, queue statistics."""

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class ClaimedTask(BaseModel):
    """A task a worker holds the lease on: what the pipeline and the delivery read."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    bot_id: str
    user_id: int
    conversation_id: int
    message_id: int
    block_name: str | None
    attempts: int
    max_attempts: int
    callback_url: str | None
    callback_not_before: datetime | None
    callback_deadline: datetime | None
    callback_status: str
    created_at: datetime
    started_at: datetime
    reserved_tokens: int = 0  # held on the month's budgets by an earlier attempt (0: none)
    user_is_friend: bool | None = None


class OrphanedCallback(BaseModel):
    """A callback its sender left `sending` when it died, taken over to be POSTed once more."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    status: str
    callback_url: str
    callback_not_before: datetime | None
    callback_deadline: datetime | None
    callback_status: str
    callback_kind: str | None  # what the lost POST carried
    ai_response: str | None
    created_at: datetime


class StoredAnswer(BaseModel):
    """What `complete` writes: the answer text, its usage and (optionally) its prompt log."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None
    latency_ms: int | None = None
    rendered_prompt: str | None = None
    template_name: str | None = None
    template_version: int | None = None
    finish_reason: str | None = None
    sources: str | None = None
    cache_key: str | None = None  # the response cache key of an LLM answer
    cache_hit: bool = False  # served from the response cache: no model call, 0 tokens

    def promptlog_values(self) -> dict[str, object]:
        """The `promptlog` columns this answer fills (the caller adds the message, task and time)."""
        return {
            "template_name": self.template_name,
            "template_version": self.template_version,
            "rendered_prompt": self.rendered_prompt or "",
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "latency_ms": self.latency_ms,
            "finish_reason": self.finish_reason,
            "sources": self.sources,
            "cache_key": self.cache_key,
            "cache_hit": self.cache_hit,
        }


class QueueStats(BaseModel):
    """Queue depth by status and the age of the oldest runnable task."""

    by_status: dict[str, int]
    oldest_pending_seconds: float | None


class LeaseLost(Exception):
    """The task is no longer ours (its lease expired and it was reclaimed); roll back and let go."""
