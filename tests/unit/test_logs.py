"""Secrets and callback tokens never reach the logs, whichever logger writes them."""

import io
import logging

from loguru import logger

from app.config import Settings
from app.logs import setup_logging


def test_secrets_and_tokens_are_masked_in_every_log_line() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        openai_api_key="sk-live-abcdefghijklmnop",
        admin_token="admin-token-value-42",
        kakao_skill_secret="skill-secret-value-7",
        log_format="json",
    )
    setup_logging(settings)
    sink = io.StringIO()
    logger.add(sink, level="DEBUG", serialize=True)
    callback = "https://bot-api.kakao.com/v1/bots/abc/callback/one-time-token-XYZ"
    logger.warning("key={} admin={} secret={} url={}", settings.openai_api_key, settings.admin_token,
                   settings.kakao_skill_secret, callback)
    logging.getLogger("uvicorn.error").error("Authorization: Bearer admin-token-value-42 from %s", callback)
    logger.info("other key sk-proj-0123456789abcdef")
    out = sink.getvalue()
    for secret in ("sk-live-abcdefghijklmnop", "admin-token-value-42", "skill-secret-value-7",
                   "one-time-token-XYZ", "sk-proj-0123456789abcdef"):
        assert secret not in out
    assert "/callback/***" in out
    assert out.count("\n") == 3, "standard logging is routed into loguru"
