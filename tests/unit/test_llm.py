"""The LLM client against a mocked Chat Completions API: results, and errors sorted for the retry policy."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx

from app.services.errors import PermanentError, RetryableError
from app.services.llm import ChatMessage, LLMClient, retry_after
from tests.conftest import make_settings

OPENAI_URL = "https://api.openai.com/v1/chat/completions"
MESSAGES = [
    ChatMessage(role="system", content="당신은 친절한 상담 챗봇입니다."),
    ChatMessage(role="user", content="배송은 얼마나 걸려요?"),
]


def completion(
    text: str | None = "보통 2~3일 걸려요.",
    *,
    finish_reason: str = "stop",
    usage: bool = True,
    choices: bool = True,
) -> dict[str, object]:
    body: dict[str, object] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ]
        if choices
        else [],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}
    return body


def error(status: int, code: str | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"message": f"error {status}", "type": "test", "code": code, "param": None}}
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
async def llm() -> AsyncIterator[LLMClient]:
    client = LLMClient(make_settings("sqlite+aiosqlite://", openai_api_key="sk-test-key-123456"))
    yield client
    await client.aclose()


async def test_success_returns_text_usage_model_and_latency(llm: LLMClient) -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(OPENAI_URL).respond(200, json=completion())
        result = await llm.complete(MESSAGES, timeout=5)

    assert result.text == "보통 2~3일 걸려요."
    assert (result.input_tokens, result.output_tokens) == (42, 7)
    assert result.model == "gpt-4o-2024-08-06"
    assert result.finish_reason == "stop"
    assert result.latency_ms >= 0
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer sk-test-key-123456"
    sent = httpx.Response(200, content=request.content).json()
    assert sent["model"] == "gpt-4o"
    assert sent["temperature"] == 0.2
    assert sent["max_tokens"] == 1000
    assert sent["messages"] == [m.model_dump() for m in MESSAGES]


async def test_overrides_and_custom_base_url() -> None:
    settings = make_settings(
        "sqlite+aiosqlite://", openai_api_key="sk-local", openai_base_url="http://127.0.0.1:11434/v1"
    )
    client = LLMClient(settings)
    try:
        with respx.mock(assert_all_called=True) as mock:
            route = mock.post("http://127.0.0.1:11434/v1/chat/completions").respond(
                200, json=completion(usage=False)
            )
            result = await client.complete(
                MESSAGES, timeout=5, model="llama3", temperature=0.7, max_tokens=50
            )
    finally:
        await client.aclose()
    sent = httpx.Response(200, content=route.calls.last.request.content).json()
    assert (sent["model"], sent["temperature"], sent["max_tokens"]) == ("llama3", 0.7, 50)
    # No usage in the response: estimated, never zero.
    assert result.input_tokens > 0 and result.output_tokens > 0


def test_requires_api_key() -> None:
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        LLMClient(make_settings("sqlite+aiosqlite://"))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({}, None),
        ({"retry-after": "soon"}, None),
    ],
)
async def test_rate_limit_is_retryable_with_retry_after(
    llm: LLMClient, headers: dict[str, str], expected: float | None
) -> None:
    with respx.mock() as mock:
        route = mock.post(OPENAI_URL).mock(return_value=error(429, "rate_limit_exceeded", headers))
        with pytest.raises(RetryableError) as info:
            await llm.complete(MESSAGES, timeout=5)
    assert info.value.retry_after == expected
    assert route.call_count == 1


def test_retry_after_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 <= (retry_after({"retry-after": format_datetime(when, usegmt=True)}) or 0) <= 31


async def test_insufficient_quota_is_permanent(llm: LLMClient) -> None:
    with respx.mock() as mock:
        mock.post(OPENAI_URL).mock(return_value=error(429, "insufficient_quota"))
        with pytest.raises(PermanentError):
            await llm.complete(MESSAGES, timeout=5)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 409])
async def test_server_errors_are_retryable(llm: LLMClient, status: int) -> None:
    with respx.mock() as mock:
        route = mock.post(OPENAI_URL).mock(return_value=error(status))
        with pytest.raises(RetryableError, match=str(status)):
            await llm.complete(MESSAGES, timeout=5)
    assert route.call_count == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_permanent(llm: LLMClient, status: int) -> None:
    with respx.mock() as mock:
        route = mock.post(OPENAI_URL).mock(return_value=error(status))
        with pytest.raises(PermanentError, match=str(status)):
            await llm.complete(MESSAGES, timeout=5)
    assert route.call_count == 1


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"), httpx.ConnectError("refused")]
)
async def test_transport_failures_are_retryable(llm: LLMClient, exc: Exception) -> None:
    with respx.mock() as mock:
        route = mock.post(OPENAI_URL).mock(side_effect=exc)
        with pytest.raises(RetryableError):
            await llm.complete(MESSAGES, timeout=5)
    assert route.call_count == 1


async def test_attempt_is_bounded_by_the_given_timeout(llm: LLMClient) -> None:
    async def stall(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200, json=completion())

    # The cancelled call is not recorded, so the route counts as uncalled.
    with respx.mock(assert_all_called=False) as mock:
        mock.post(OPENAI_URL).mock(side_effect=stall)
        started = datetime.now(UTC)
        with pytest.raises(RetryableError, match="timed out"):
            await llm.complete(MESSAGES, timeout=0.2)
    assert (datetime.now(UTC) - started).total_seconds() < 2


async def test_no_time_left_fails_without_a_call(llm: LLMClient) -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(OPENAI_URL).respond(200, json=completion())
        with pytest.raises(RetryableError):
            await llm.complete(MESSAGES, timeout=0)
    assert route.call_count == 0


@pytest.mark.parametrize(
    "body",
    [completion(finish_reason="content_filter"), completion(choices=False)],
    ids=["content_filter", "no_choices"],
)
async def test_blocked_or_empty_choices_are_permanent(llm: LLMClient, body: dict[str, object]) -> None:
    with respx.mock() as mock:
        mock.post(OPENAI_URL).respond(200, json=body)
        with pytest.raises(PermanentError):
            await llm.complete(MESSAGES, timeout=5)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>bad gateway</html>", headers={"content-type": "text/html"}),
        httpx.Response(200, content=b"{not json", headers={"content-type": "application/json"}),
        httpx.Response(200, json={"unexpected": True}),
        httpx.Response(200, json=completion(text=None)),
        httpx.Response(200, json=completion(text="   ")),
    ],
    ids=["html", "broken_json", "wrong_shape", "null_content", "blank_content"],
)
async def test_malformed_bodies_are_retryable(llm: LLMClient, response: httpx.Response) -> None:
    with respx.mock() as mock:
        route = mock.post(OPENAI_URL).mock(return_value=response)
        with pytest.raises(RetryableError):
            await llm.complete(MESSAGES, timeout=5)
    assert route.call_count == 1
