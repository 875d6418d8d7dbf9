"""Application settings, read once from the environment and `.env`."""

import sys
from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting the server and the worker read; names match `.env.example`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Database
    database_url: str = "sqlite+aiosqlite:///./data/app.db"
    db_pool_size: int = Field(10, ge=1)
    db_max_overflow: int = Field(10, ge=0)
    db_pool_timeout: float = Field(5.0, gt=0)
    db_statement_timeout_ms: int = Field(4000, ge=0)
    sqlite_busy_timeout_ms: int = Field(2000, ge=0, le=60_000)

    # OpenAI (or any compatible server)
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o"
    openai_temperature: float = Field(0.2, ge=0, le=2)
    openai_max_tokens: int = Field(1000, ge=1)

    # Conversations
    session_timeout_minutes: int = Field(30, ge=1)

    # Answers: memory and summaries
    bot_name: str | None = None
    history_token_budget: int = Field(2000, ge=0)
    summary_max_chars: int = Field(1000, ge=100, le=10_000)
    summary_interval_seconds: float = Field(60.0, gt=0)

    # Response cache (0 seconds turns it off)
    response_cache_ttl_seconds: int = Field(3600, ge=0)
    response_cache_max_entries: int = Field(1000, ge=0)

    # Server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    debug: bool = False
    admin_token: str | None = None
    console_session_ttl_seconds: int = Field(28_800, ge=60, le=30 * 86_400)

    # Kakao
    kakao_skill_secret: str | None = None
    kakao_skill_secret_header: str = "X-Skill-Secret"
    default_bot_id: str = Field("default", min_length=1, max_length=100)
    kakao_callback_allowed_hosts: Annotated[list[str], NoDecode] = ["bot-api.kakao.com"]
    kakao_callback_allow_http: bool = False
    kakao_ack_text: str = "AI가 답변을 생성하고 있어요!"
    skill_sync_wait_seconds: float = Field(3.5, ge=0, le=4.5)
    skill_max_body_bytes: int = Field(64_000, ge=1024)
    skill_store_timeout_seconds: float = Field(3.0, gt=0, le=4.5)

    # Worker and queue
    embedded_worker: bool = True
    worker_concurrency: int = Field(200, ge=1)
    worker_poll_seconds: float = Field(2.0, gt=0)
    worker_shutdown_grace_seconds: float = Field(10.0, ge=0)
    task_max_attempts: int = Field(3, ge=1)
    task_lease_seconds: float = Field(15.0, gt=0)
    task_retention_days: int = Field(30, ge=1)
    callback_deadline_seconds: float = Field(50.0, gt=1, le=60)
    callback_timeout_seconds: float = Field(5.0, gt=0, le=10)
    apology_margin_seconds: float = Field(5.0, ge=0, lt=50)
    task_answer_timeout_seconds: float = Field(40.0, gt=0)
    task_retry_base_seconds: float = Field(1.0, ge=0)
    task_retry_max_seconds: float = Field(20.0, ge=0)
    task_retry_window_seconds: float = Field(600.0, gt=0)
    worker_metrics_port: int = Field(0, ge=0, le=65535)

    # Knowledge base
    chroma_path: str = "./data/chroma"
    chroma_host: str | None = None
    embedding_backend: Literal["auto", "local", "openai"] = "auto"
    embedding_model: str = "text-embedding-3-small"
    embedding_batch_size: int = Field(100, ge=1, le=2048)
    rag_chunk_size: int = Field(1000, ge=100, le=20_000)
    rag_chunk_overlap: int = Field(150, ge=0)
    rag_top_k: int = Field(4, ge=1, le=50)
    rag_score_threshold: float = Field(0.3, ge=0, le=1)
    semantic_rerank: Literal["auto", "none", "e5"] = "auto"
    semantic_score_threshold: float = Field(0.76, ge=0, le=1)
    semantic_max_chunks: int = Field(500, ge=0)
    knowledge_max_upload_bytes: int = Field(10_000_000, ge=1024)

    # Usage and budgets (0 = no limit)
    user_monthly_token_limit: int = Field(0, ge=0)
    bot_monthly_token_limit: int = Field(0, ge=0)
    user_monthly_message_limit: int = Field(0, ge=0)
    non_friend_monthly_token_limit: int = Field(0, ge=0)
    usage_limit_policy: Literal["block", "warn"] = "block"
    usage_alert_thresholds: Annotated[list[int], NoDecode] = [80, 90, 100]
    usage_timezone: str = "Asia/Seoul"
    usage_alert_webhook_url: str | None = None
    usage_notice_enabled: bool = True
    # Chat API (OpenAI-compatible /v1) and speech
    chat_rate_limit_per_minute: int = Field(120, ge=0)
    chat_max_temperature: float = Field(1.0, ge=0, le=2)
    chat_timeout_seconds: float = Field(120.0, gt=0)
    chat_keepalive_seconds: float = Field(15.0, gt=0)
    openai_stt_model: str = Field("whisper-1", min_length=1)
    openai_tts_model: str = Field("tts-1", min_length=1)
    audio_max_upload_bytes: int = Field(25_000_000, ge=1024)

    @field_validator("kakao_callback_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [h.strip().lower() for h in value.split(",") if h.strip()]
        return value

    @field_validator("usage_alert_thresholds", mode="before")
    @classmethod
    def _split_thresholds(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(p) for p in value.split(",") if p.strip()]
        return value

    @field_validator("usage_alert_thresholds")
    @classmethod
    def _thresholds_are_percents(cls, value: list[int]) -> list[int]:
        if any(not 1 <= t <= 100 for t in value):
            raise ValueError("each threshold must be a percent from 1 to 100")
        return sorted(set(value))

    @field_validator("usage_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator(
        "openai_api_key", "admin_token", "kakao_skill_secret", "openai_base_url", "chroma_host", "bot_name",
        "usage_alert_webhook_url",
    )
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("embedding_backend")
    @classmethod
    def _openai_backend_needs_key(cls, value: str, info: ValidationInfo) -> str:
        if value == "openai" and not info.data.get("openai_api_key"):
            raise ValueError("needs OPENAI_API_KEY (use auto or local without a key)")
        return value

    @field_validator("rag_chunk_overlap")
    @classmethod
    def _overlap_below_half_chunk(cls, value: int, info: ValidationInfo) -> int:
        size = info.data.get("rag_chunk_size")
        if size is not None and value >= size // 2:
            raise ValueError("must be less than half of RAG_CHUNK_SIZE")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def secrets(self) -> list[str]:
        """Values that must never appear in logs."""
        return [s for s in (self.openai_api_key, self.admin_token, self.kakao_skill_secret) if s]


def load_settings() -> Settings:
    """Build settings, turning a bad value into one clear line and exit code 2."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}={err.get('input')!r}: {err['msg']}"
            for err in exc.errors()
        )
        print(f"Invalid configuration: {problems}", file=sys.stderr)
        raise SystemExit(2) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
