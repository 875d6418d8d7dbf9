"""Loguru set-up: standard logging routed in, secrets and callback tokens masked, warnings kept in the database."""

import asyncio
import logging
import logging.config
import queue
import re
import sys
from contextvars import ContextVar
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger
from sqlalchemy import insert

from app.config import Settings
from app.models import LogMessage

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

LOGGING_INI = Path(__file__).resolve().parent.parent / "logging.ini"

# Kakao callback URLs carry a single-use token after /callback/; OpenAI keys start with sk-.
_PATTERNS = [
    (re.compile(r"(/callback/)[^\s\"'<>?#]+"), r"\1***"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"), "sk-***"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/=]{4,}"), r"\1***"),
]


class InterceptHandler(logging.Handler):
    """Send standard-library log records (uvicorn, SQLAlchemy, alembic) to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info, depth=6).log(level, record.getMessage())


def redact(text: str, secrets: list[str]) -> str:
    """Mask configured secret values and token-shaped strings."""
    for secret in secrets:
        text = text.replace(secret, "***")
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def setup_logging(settings: Settings) -> None:
    """Configure loguru once per process (text or JSON) and apply `logging.ini`."""
    secrets = settings.secrets()

    def patch(record: Any) -> None:
        record["message"] = redact(record["message"], secrets)

    logger.remove()
    logger.configure(patcher=patch)
    logger.add(
        sys.stderr,
        level=settings.log_level,
        serialize=settings.log_format == "json",
        backtrace=False,
        diagnose=False,
    )
    if LOGGING_INI.exists():
        logging.config.fileConfig(LOGGING_INI, disable_existing_loggers=False)
    else:
        logging.basicConfig(handlers=[InterceptHandler()], level=logging.WARNING, force=True)


# --- WARNING and above kept in the database (`logmessage`) ---------------------------------------------

# Records raised by the sink's own writer are not stored: no feedback loop when the database is the problem.
_WRITING_LOGS: ContextVar[bool] = ContextVar("writing_logs", default=False)
_MAX_STORED_CHARS = 4000


class DatabaseLogSink:
    """Stores WARNING+ records in `logmessage` from a background task.

    The loguru sink only puts the record on a bounded queue: it never blocks, never touches the database
    and never logs. When the queue is full the record is dropped (counted in `dropped`).
    """

    def __init__(
        self,
        sessions: "async_sessionmaker[AsyncSession]",
        *,
        secrets: list[str] | None = None,
        level: str = "WARNING",
        max_queued: int = 1000,
        batch: int = 100,
    ) -> None:
        self._sessions = sessions
        self._secrets = secrets or []
        self._level = level
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_queued)
        self._batch = batch
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._handler_id: int | None = None
        self.dropped = 0

    def start(self) -> "DatabaseLogSink":
        """Begin storing records; call from the event loop the writer should run on."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._write_forever(), name="logmessage-writer")
        self._handler_id = logger.add(self._sink, level=self._level, format="{message}", catch=True)
        return self

    async def stop(self, timeout: float = 2.0) -> None:
        """Stop taking records and write what is queued, within `timeout` seconds."""
        if self._handler_id is not None:
            logger.remove(self._handler_id)
            self._handler_id = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        token = _WRITING_LOGS.set(True)
        try:
            async with asyncio.timeout(timeout):
                await self._write_queued()
        except TimeoutError:
            pass
        finally:
            _WRITING_LOGS.reset(token)

    def _sink(self, message: Any) -> None:
        if _WRITING_LOGS.get():
            return
        record = message.record
        text = record["message"]
        if record["exception"] is not None and record["exception"].type is not None:
            exc = record["exception"]
            text += f"\n{exc.type.__name__}: {redact(str(exc.value), self._secrets)}"
        row = {
            "level": record["level"].name[:16],
            "logger": f"{record['name']}:{record['function']}:{record['line']}"[:200],
            "message": text[:_MAX_STORED_CHARS],
            "created_at": record["time"].astimezone(UTC),
        }
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self.dropped += 1
            return
        try:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop is closed; stop() or the next wake-up writes it
            pass

    async def _write_forever(self) -> None:
        _WRITING_LOGS.set(True)  # this task's context only
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._write_queued()

    async def _write_queued(self) -> None:
        while rows := self._take():
            try:
                async with self._sessions.begin() as session:
                    await session.execute(insert(LogMessage.__table__), rows)
            except Exception:  # noqa: BLE001 - never log from here: the record would come straight back
                self.dropped += len(rows)

    def _take(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while len(rows) < self._batch:
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return rows
