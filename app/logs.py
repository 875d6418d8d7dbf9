"""Loguru set-up: standard logging routed in, secrets and callback tokens masked."""

import logging
import logging.config
import re
import sys
from pathlib import Path
from typing import Any

from loguru import logger

from app.config import Settings

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
