"""Reading a Kakao request safely: shared-secret check, capped body, tolerant parsing."""

import hmac
import json
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from app.config import Settings
from app.errors import InvalidInput, MalformedBody, PayloadTooLarge, Unauthorized
from app.kakao import SkillResponse, text_reply
from app.kakao.payload import DEFAULT_BOT_CONTEXT, MAX_UTTERANCE_CHARS, SkillPayload
from app.services import texts


def authenticate(request: Request, settings: Settings) -> None:
    """Require the shared-secret header configured on the Kakao skill, when one is set."""
    if not settings.kakao_skill_secret:
        return
    given = request.headers.get(settings.kakao_skill_secret_header, "")
    if not hmac.compare_digest(given.encode(), settings.kakao_skill_secret.encode()):
        raise Unauthorized(f"missing or wrong {settings.kakao_skill_secret_header}")


async def read_capped_body(request: Request, limit: int) -> bytes:
    """The body, refusing anything over `limit` bytes before it is all read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body over {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"body over {limit} bytes")
    except ClientDisconnect:
        raise MalformedBody("client disconnected before sending the body") from None
    return bytes(body)


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])


def _only_long_utterance(exc: ValidationError) -> bool:
    return all(e["type"] == "string_too_long" and e["loc"][-1:] == ("utterance",) for e in exc.errors())


def parse_payload(body: bytes, default_bot_id: str) -> SkillPayload | SkillResponse:
    """The payload (`default_bot_id` when it names no bot), or a Kakao reply for input a real user can produce."""
    try:
        data: Any = json.loads(body)
    except UnicodeDecodeError:
        raise MalformedBody("body is not valid UTF-8") from None
    except ValueError:
        raise MalformedBody("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise MalformedBody("body must be a JSON object (Kakao SkillPayload)")
    try:
        payload = SkillPayload.model_validate(data, context={DEFAULT_BOT_CONTEXT: default_bot_id})
    except ValidationError as exc:
        if _only_long_utterance(exc):
            return text_reply(texts.TOO_LONG.format(limit=MAX_UTTERANCE_CHARS))
        raise InvalidInput(_describe(exc), code="invalid_payload") from None
    if not payload.utterance.strip():
        return text_reply(texts.EMPTY_UTTERANCE)
    return payload
