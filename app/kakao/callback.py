"""Deliver the final answer to Kakao's single-use callback URL and classify what happened.

Callers MUST vet the URL with `check_callback_url` first: this module trusts it. Never log the
URL itself; use `redact_callback_url`.
"""

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.kakao.response import SkillResponse

_MAX_MESSAGE_CHARS = 300
# Shorter last segments are ordinary words (e.g. a local test path), not tokens.
_MIN_TOKEN_CHARS = 8
# How Kakao's FAIL message starts when the token is wrong, expired or already used (Kakao i Open Builder guide:
# skill_guide/ai_chatbot_callback_guide).
_INVALID_TOKEN = "invalid callback token"


class CallbackOutcome(StrEnum):
    """What a callback POST achieved; only NOT_SENT leaves the single-use URL unspent."""

    SENT = "sent"  # 2xx and Kakao said "SUCCESS"
    REJECTED = "rejected"  # Kakao answered, but not with success
    NOT_SENT = "not_sent"  # provably never reached Kakao
    UNKNOWN = "unknown"  # may have reached Kakao; treat the URL as spent


@dataclass(frozen=True, slots=True)
class CallbackResult:
    """The outcome of one callback POST; `message` is Kakao's text or an error class, never the URL."""

    outcome: CallbackOutcome
    http_status: int | None = None
    kakao_status: str | None = None
    message: str | None = None

    @property
    def retryable(self) -> bool:
        return self.outcome is CallbackOutcome.NOT_SENT

    @property
    def token_refused(self) -> bool:
        """Kakao refused the callback token (wrong, expired or already used): its single use is gone."""
        return (
            self.outcome is CallbackOutcome.REJECTED
            and self.kakao_status == "FAIL"
            and (self.message or "").lower().startswith(_INVALID_TOKEN)
        )


def _verbatim_url(url: str) -> httpx.URL:
    """The URL as httpx will send it, refusing any re-encoding of the path or query (the token)."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if "?" in url else "")
    try:
        prepared = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise ValueError("callback url is not a valid URL") from error
    if prepared.raw_path != target.encode("ascii", "replace"):
        raise ValueError("callback url cannot be sent verbatim; vet it with check_callback_url")
    return prepared


def _body(body: SkillResponse | dict[str, Any]) -> dict[str, Any]:
    response = body if isinstance(body, SkillResponse) else SkillResponse.model_validate(body)
    if response.use_callback is not None:
        raise ValueError("a callback body must not carry useCallback")
    return response.to_dict()


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    received = bytearray()
    async for chunk in response.aiter_bytes():
        received += chunk
        if len(received) >= limit:
            break
    return bytes(received[:limit])


def _scrub(message: str, url: str) -> str:
    """Mask the URL and its token, in case Kakao ever echoes them back."""
    token = url.rsplit("/", 1)[-1]
    for secret in (url, token if len(token) >= _MIN_TOKEN_CHARS else ""):
        if secret:
            message = message.replace(secret, "***")
    return message


def _classify(status: int, content: bytes, url: str) -> CallbackResult:
    if 300 <= status < 400:
        return CallbackResult(CallbackOutcome.REJECTED, status, None, "redirect")
    try:
        answer = json.loads(content)
    except (ValueError, RecursionError):
        return CallbackResult(CallbackOutcome.REJECTED, status, None, "non-JSON response")
    if not isinstance(answer, dict):
        return CallbackResult(CallbackOutcome.REJECTED, status, None, "non-object JSON response")
    kakao_status, text = answer.get("status"), answer.get("message")
    kakao_status = kakao_status if isinstance(kakao_status, str) else None
    message = _scrub(text, url)[:_MAX_MESSAGE_CHARS] if isinstance(text, str) and text else None
    delivered = 200 <= status < 300 and kakao_status == "SUCCESS"
    outcome = CallbackOutcome.SENT if delivered else CallbackOutcome.REJECTED
    return CallbackResult(outcome, status, kakao_status, message)


async def send_callback(
    client: httpx.AsyncClient,
    url: str,
    body: SkillResponse | dict[str, Any],
    *,
    timeout: float = 5.0,
    max_response_bytes: int = 64_000,
) -> CallbackResult:
    """POST `body` once to the exact `url` (no redirects) and report the outcome; never raises for network errors.

    Raises ValueError before any I/O for a body that is not a valid callback response or a URL
    httpx would re-encode. `timeout` applies to each phase (connect, write, each read).
    """
    request = client.build_request("POST", _verbatim_url(url), json=_body(body), timeout=timeout)
    try:
        response = await client.send(request, follow_redirects=False, stream=True)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
        # No connection was ever made, so no request bytes left this host.
        return CallbackResult(CallbackOutcome.NOT_SENT, message=type(error).__name__)
    except httpx.HTTPError as error:
        return CallbackResult(CallbackOutcome.UNKNOWN, message=type(error).__name__)
    try:
        content = await _read_capped(response, max_response_bytes)
    except httpx.HTTPError as error:
        return CallbackResult(CallbackOutcome.UNKNOWN, response.status_code, message=type(error).__name__)
    finally:
        await response.aclose()
    return _classify(response.status_code, content, url)
