"""SQLModel tables. Table names come from the original system and are kept."""

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores naive UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def ts(*, nullable: bool = False, index: bool = False, default: bool = True) -> Any:
    """A UTC timestamp column (defaults to now when `default`)."""
    return Field(
        default_factory=utcnow if default and not nullable else None,
        sa_type=UTCDateTime,
        nullable=nullable,
        index=index,
    )


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


class TaskStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class CallbackStatus(StrEnum):
    NONE = "none"
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"


class CallbackKind(StrEnum):
    """What a callback POST carries."""

    ANSWER = "answer"
    APOLOGY = "apology"


class AppUser(SQLModel, table=True):
    __tablename__ = "appuser"
    __table_args__ = (sa.UniqueConstraint("bot_id", "kakao_user_id", name="uq_appuser_bot_user"),)

    id: int | None = Field(default=None, primary_key=True)
    bot_id: str = Field(max_length=100)
    kakao_user_id: str = Field(max_length=70)
    plusfriend_user_key: str | None = Field(default=None, max_length=100)
    name: str | None = Field(default=None, max_length=20)
    name_mode: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    created_at: datetime = ts()
    last_seen_at: datetime = ts()


class Conversation(SQLModel, table=True):
    __tablename__ = "conversation"
    __table_args__ = (
        sa.Index("ix_conversation_user_last", "user_id", "last_message_at"),
        # The summary job's queue: ended conversations not yet folded into the user's summary.
        sa.Index(
            "ix_conversation_unsummarized",
            "last_message_at",
            postgresql_where=sa.text("summarized_at IS NULL"),
            sqlite_where=sa.text("summarized_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="appuser.id", ondelete="CASCADE")
    started_at: datetime = ts()
    last_message_at: datetime = ts()
    summarized_at: datetime | None = ts(nullable=True)


class Message(SQLModel, table=True):
    __tablename__ = "message"
    __table_args__ = (sa.Index("ix_message_conversation_id", "conversation_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", ondelete="CASCADE")
    user_id: int = Field(foreign_key="appuser.id", ondelete="CASCADE", index=True)
    role: str = Field(max_length=16)
    text: str = Field(sa_type=sa.Text)
    created_at: datetime = ts()


class PromptLog(SQLModel, table=True):
    __tablename__ = "promptlog"

    msg_id: int = Field(primary_key=True, foreign_key="message.id", ondelete="CASCADE")
    task_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid, index=True)
    template_name: str | None = Field(default=None, max_length=100)
    template_version: int | None = None
    rendered_prompt: str = Field(sa_type=sa.Text)
    model: str | None = Field(default=None, max_length=100)
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: int | None = None
    finish_reason: str | None = Field(default=None, max_length=32)
    sources: str | None = Field(default=None, sa_type=sa.Text)
    # The response cache key (sha256 hex) of an LLM answer; `cache_hit` when it was served from the cache.
    cache_key: str | None = Field(default=None, max_length=64)
    cache_hit: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    created_at: datetime = ts()


class EventLog(SQLModel, table=True):
    __tablename__ = "eventlog"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int | None = Field(default=None, foreign_key="appuser.id", ondelete="SET NULL", index=True)
    bot_id: str | None = Field(default=None, max_length=100)
    event_type: str = Field(max_length=64, index=True)
    detail: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = ts(index=True)


class LogMessage(SQLModel, table=True):
    __tablename__ = "logmessage"

    id: int | None = Field(default=None, primary_key=True)
    level: str = Field(max_length=16, index=True)
    logger: str | None = Field(default=None, max_length=200)
    message: str = Field(sa_type=sa.Text)
    created_at: datetime = ts(index=True)


class PromptTemplate(SQLModel, table=True):
    __tablename__ = "prompttemplate"
    __table_args__ = (
        sa.UniqueConstraint("bot_id", "name", "version", name="uq_prompttemplate_version"),
        sa.Index(
            "uq_prompttemplate_active",
            "bot_id",
            "name",
            unique=True,
            postgresql_where=sa.text("is_active"),
            sqlite_where=sa.text("is_active"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    # "" means every bot; a Kakao bot id overrides it for that bot only.
    bot_id: str = Field(default="", max_length=100, sa_column_kwargs={"server_default": ""})
    name: str = Field(max_length=100)
    version: int = 1
    system_prompt: str = Field(sa_type=sa.Text)
    description: str | None = Field(default=None, max_length=500)
    is_active: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    created_at: datetime = ts()


class UserSummary(SQLModel, table=True):
    __tablename__ = "usersummary"

    user_id: int = Field(primary_key=True, foreign_key="appuser.id", ondelete="CASCADE")
    summary: str = Field(sa_type=sa.Text)
    conversations: int = 0
    updated_at: datetime = ts()


class AIProcessingTask(SQLModel, table=True):
    __tablename__ = "aiprocessingtask"
    __table_args__ = (
        sa.Index(
            "ix_aiprocessingtask_pending",
            "run_after",
            "created_at",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        ),
        sa.Index(
            "ix_aiprocessingtask_lease",
            "lease_expires_at",
            postgresql_where=sa.text("status = 'processing'"),
            sqlite_where=sa.text("status = 'processing'"),
        ),
        # The reaper's sweep for callbacks whose sender died mid-POST.
        sa.Index(
            "ix_aiprocessingtask_sending",
            "callback_lease_expires_at",
            postgresql_where=sa.text("callback_status = 'sending'"),
            sqlite_where=sa.text("callback_status = 'sending'"),
        ),
        sa.Index("ix_aiprocessingtask_user_status", "user_id", "status"),
        sa.Index("ix_aiprocessingtask_status_created", "status", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True, sa_type=sa.Uuid)
    bot_id: str = Field(max_length=100)
    user_id: int = Field(foreign_key="appuser.id", ondelete="CASCADE")
    conversation_id: int = Field(foreign_key="conversation.id", ondelete="CASCADE", index=True)
    message_id: int = Field(foreign_key="message.id", ondelete="CASCADE", index=True)
    response_message_id: int | None = Field(default=None, foreign_key="message.id", ondelete="SET NULL")
    block_name: str | None = Field(default=None, max_length=200)
    status: str = Field(default=TaskStatus.PENDING, max_length=16)
    attempts: int = 0
    max_attempts: int = 3
    run_after: datetime = ts()
    locked_by: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = ts(nullable=True)
    callback_url: str | None = Field(default=None, sa_type=sa.Text)
    callback_not_before: datetime | None = ts(nullable=True)
    callback_deadline: datetime | None = ts(nullable=True)
    callback_status: str = Field(default=CallbackStatus.NONE, max_length=16)
    callback_error: str | None = Field(default=None, sa_type=sa.Text)
    # Who holds (or last held) the POST, its lease (renewed while the POST is in flight; expired in `sending`
    # means the sender died and the POST is sent once more), and what it carries (answer or apology).
    callback_sender: str | None = Field(default=None, max_length=200)
    callback_lease_expires_at: datetime | None = ts(nullable=True)
    callback_kind: str | None = Field(default=None, max_length=16)
    ai_response: str | None = Field(default=None, sa_type=sa.Text)
    # When the answer reached the user (callback, sync reply or their next message); NULL = still owed.
    answer_delivered_at: datetime | None = ts(nullable=True)
    input_tokens: int = 0
    output_tokens: int = 0
    # Tokens reserved on the month's budgets for this task (0 = none held); settled to the real usage after.
    reserved_tokens: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # `userRequest.user.properties.isFriend` of the message (None: Kakao did not say).
    user_is_friend: bool | None = None
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = ts()
    started_at: datetime | None = ts(nullable=True)
    completed_at: datetime | None = ts(nullable=True)


class WorkerHeartbeat(SQLModel, table=True):
    __tablename__ = "workerheartbeat"

    worker_id: str = Field(primary_key=True, max_length=200)
    hostname: str = Field(max_length=200)
    pid: int
    started_at: datetime = ts()
    last_seen_at: datetime = ts(index=True)
    in_flight: int = 0
    listen_connected: bool = False


class KnowledgeDocument(SQLModel, table=True):
    __tablename__ = "knowledgedocument"
    __table_args__ = (
        sa.UniqueConstraint("bot_id", "source", name="uq_knowledgedocument_bot_source"),
        sa.Index("ix_knowledgedocument_bot_type_category", "bot_id", "type", "category"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True, sa_type=sa.Uuid)
    bot_id: str = Field(max_length=100)
    # The file name or given key: uploading the same source again replaces the document's chunks.
    source: str = Field(max_length=255)
    title: str = Field(max_length=255)
    type: str = Field(max_length=16)
    category: str | None = Field(default=None, max_length=100)
    # Bumped on each re-upload; chunk ids carry it so old chunks can be told apart and removed.
    version: int = 1
    chunk_count: int = 0
    char_count: int = 0
    content_hash: str = Field(max_length=64)
    created_at: datetime = ts()
    updated_at: datetime = ts()


class UsagePrice(SQLModel, table=True):
    """USD per 1M input/output tokens of a model (for audio models, per 1M billed units: see docs)."""

    __tablename__ = "usageprice"

    model: str = Field(primary_key=True, max_length=100)
    input_usd_per_million: float
    output_usd_per_million: float
    updated_at: datetime = ts()


class UsageRecord(SQLModel, table=True):
    """One model call: who, which model, the provider's token counts, and the cost at the price then in force."""

    __tablename__ = "usagerecord"
    __table_args__ = (
        sa.Index("ix_usagerecord_day", "day"),
        sa.Index("ix_usagerecord_user_day", "user_id", "day"),
    )

    # BIGINT on PostgreSQL; INTEGER on SQLite, where only that is the auto-numbered rowid.
    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"))
    created_at: datetime = ts()
    day: date  # the local day in USAGE_TIMEZONE
    kind: str = Field(max_length=16)
    bot_id: str = Field(max_length=100)
    user_id: int | None = Field(default=None, foreign_key="appuser.id", ondelete="SET NULL")
    api_key_id: str | None = Field(default=None, max_length=100)
    model: str = Field(max_length=100)
    input_tokens: int = Field(sa_type=sa.BigInteger)
    output_tokens: int = Field(sa_type=sa.BigInteger)
    total_tokens: int = Field(sa_type=sa.BigInteger)
    # NULL when the model has no price: flagged, never counted as $0.
    cost_usd: float | None = None
    input_usd_per_million: float | None = None
    output_usd_per_million: float | None = None
    latency_ms: int | None = None
    cache_hit: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    task_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid)
    message_id: int | None = None


class UsageDaily(SQLModel, table=True):
    """The daily rollup of `usagerecord`: one row per local day, bot, user (0 = none) and model."""

    __tablename__ = "usagedaily"
    __table_args__ = (
        sa.UniqueConstraint("day", "bot_id", "user_id", "model", name="uq_usagedaily_key"),
        sa.Index("ix_usagedaily_user_day", "user_id", "day"),
    )

    id: int | None = Field(default=None, primary_key=True)
    day: date
    bot_id: str = Field(max_length=100)
    user_id: int = 0
    model: str = Field(max_length=100)
    requests: int = Field(sa_type=sa.BigInteger)
    cache_hits: int = Field(sa_type=sa.BigInteger)
    input_tokens: int = Field(sa_type=sa.BigInteger)
    output_tokens: int = Field(sa_type=sa.BigInteger)
    total_tokens: int = Field(sa_type=sa.BigInteger)
    cost_usd: float = 0.0
    unpriced: int = 0


class UsageRolledDay(SQLModel, table=True):
    """A local day whose records are summed in `usagedaily` (statistics read the rest from the records)."""

    __tablename__ = "usagerolledday"

    day: date = Field(primary_key=True)
    rolled_at: datetime = ts()


class UsageCounter(SQLModel, table=True):
    """A budget holder's month: tokens used and reserved, answers, the limit and policy of its last reservation."""

    __tablename__ = "usagecounter"

    scope: str = Field(primary_key=True, max_length=16)
    holder_id: str = Field(primary_key=True, max_length=100)
    period: str = Field(primary_key=True, max_length=7)  # YYYY-MM in USAGE_TIMEZONE
    bot_id: str | None = Field(default=None, max_length=100)
    token_limit: int = Field(default=0, sa_type=sa.BigInteger)
    message_limit: int = 0
    policy: str = Field(default="block", max_length=8)
    used_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    reserved_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    messages: int = 0
    alerted_percent: int = 0
    updated_at: datetime = ts()


class UsageLimit(SQLModel, table=True):
    """An admin's override of a holder's monthly token limit (NULL: the default) and policy (NULL: the default)."""

    __tablename__ = "usagelimit"

    scope: str = Field(primary_key=True, max_length=16)
    holder_id: str = Field(primary_key=True, max_length=100)
    monthly_token_limit: int | None = Field(default=None, sa_type=sa.BigInteger)
    policy: str | None = Field(default=None, max_length=8)
    updated_at: datetime = ts()


class UsageAlert(SQLModel, table=True):
    """A budget threshold reached, once per holder, month and threshold."""

    __tablename__ = "usagealert"
    __table_args__ = (
        sa.UniqueConstraint("scope", "holder_id", "period", "threshold", name="uq_usagealert_once"),
    )

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=16)
    holder_id: str = Field(max_length=100)
    user_id: int | None = Field(default=None, foreign_key="appuser.id", ondelete="SET NULL")
    bot_id: str | None = Field(default=None, max_length=100)
    threshold: int
    period: str = Field(max_length=7)
    used: int = Field(sa_type=sa.BigInteger)
    limit_tokens: int = Field(sa_type=sa.BigInteger)
    created_at: datetime = ts(index=True)


class ResponseCache(SQLModel, table=True):
    """A model answer reusable until `expires_at` by any request whose key (what the model saw) is the same."""

    __tablename__ = "responsecache"

    key: str = Field(primary_key=True, max_length=64)
    # Kept beside the key (which covers it) so a lookup checks it and a purge can target one bot.
    bot_id: str = Field(max_length=100, index=True)
    model: str = Field(max_length=100)
    text: str = Field(sa_type=sa.Text)
    finish_reason: str | None = Field(default=None, max_length=32)
    created_at: datetime = ts()
    expires_at: datetime = ts(index=True)
class ApiKey(SQLModel, table=True):
    """A key of the chat API: it belongs to one bot; only the SHA-256 of its secret is stored."""

    __tablename__ = "apikey"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    bot_id: str = Field(max_length=100, index=True)
    # The first characters of the key, shown in listings so a key can be recognised without its secret.
    prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True)
    monthly_token_limit: int | None = None
    allow_system_messages: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    created_at: datetime = ts()
    revoked_at: datetime | None = ts(nullable=True)
