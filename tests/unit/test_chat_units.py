"""The chat API's parts without a server: the rate limit, the streamed LLM call, OpenAI's error shape."""

import json

import httpx
import pytest
import respx
from fastapi.exceptions import RequestValidationError

from app.api.openai_errors import _invalid
from app.services.chat.errors import BudgetExceeded, InvalidApiKey, RateLimited, error_body
from app.services.chat.ratelimit import RateLimiter
from app.services.errors import PermanentError, RetryableError
from app.services.llm import LLMClient
from tests.conftest import make_settings
from tests.unit.test_llm import MESSAGES, OPENAI_URL, error


def test_rate_limit_allows_a_minute_of_requests_then_says_when_to_return() -> None:
    now = [0.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    for _ in range(3):
        limiter.check(1)
    with pytest.raises(RateLimited) as limited:
        limiter.check(1)
    assert limited.value.headers["Retry-After"] == "20" and limited.value.status == 429
    limiter.check(2)  # another key has its own bucket
    now[0] = 20.0
    limiter.check(1)  # one request refilled after 60 / 3 seconds
    with pytest.raises(RateLimited):
        limiter.check(1)


def test_rate_limit_zero_is_off() -> None:
    limiter = RateLimiter(0)
    for _ in range(1000):
        limiter.check(1)


def test_errors_have_openais_shape_and_types() -> None:
    assert error_body(InvalidApiKey("bad key")) == {
        "error": {"message": "bad key", "type": "authentication_error", "param": None, "code": "invalid_api_key"}
    }
    assert error_body(BudgetExceeded("spent"))["error"]["type"] == "insufficient_quota"
    assert error_body(RateLimited("slow down", retry_after=3))["error"]["type"] == "requests"
    assert error_body(RetryableError("upstream down"))["error"]["type"] == "server_error"


def test_validation_errors_name_the_parameter_as_openai_does() -> None:
    exc = RequestValidationError([
        {"loc": ("body", "messages", 0, "role"), "msg": "Input should be 'user'", "type": "literal_error"},
        {"loc": ("body", "temperature"), "msg": "too high", "type": "less_than_equal"},
    ])
    invalid = _invalid(exc)
    assert invalid.param == "messages[0].role" and invalid.status == 400
    assert "messages[0].role" in invalid.message and "1 more" in invalid.message


def _sse(*chunks: dict[str, object]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def _chunk(content: str | None = None, finish: str | None = None, usage: dict[str, int] | None = None) -> dict[str, object]:
    head = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-2024-08-06"}
    if usage:
        return {**head, "choices": [], "usage": usage}
    delta = {} if content is None else {"content": content}
    return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


@pytest.fixture
async def llm():  # type: ignore[no-untyped-def]
    client = LLMClient(make_settings("sqlite+aiosqlite://", openai_api_key="sk-test-key-123456"))
    yield client
    await client.aclose()


async def test_a_stream_gives_pieces_then_the_servers_usage(llm: LLMClient) -> None:
    body = _sse(_chunk("배송은 "), _chunk("이틀"), _chunk(finish="stop"),
                _chunk(usage={"prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32}))
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(OPENAI_URL).respond(200, content=body, headers={"content-type": "text/event-stream"})
        stream = await llm.open_stream(MESSAGES, timeout=5, temperature=0.7, max_tokens=50)
        pieces = [piece async for piece in stream.pieces()]
    sent = json.loads(route.calls.last.request.content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert (sent["temperature"], sent["max_tokens"]) == (0.7, 50)
    assert pieces == ["배송은 ", "이틀"]
    result = stream.result()
    assert (result.text, result.input_tokens, result.output_tokens) == ("배송은 이틀", 30, 2)
    assert (result.finish_reason, result.model) == ("stop", "gpt-4o-2024-08-06")


async def test_a_stream_without_usage_is_estimated(llm: LLMClient) -> None:
    with respx.mock() as mock:
        mock.post(OPENAI_URL).respond(200, content=_sse(_chunk("안녕하세요")), headers={"content-type": "text/event-stream"})
        stream = await llm.open_stream(MESSAGES, timeout=5)
        assert [p async for p in stream.pieces()] == ["안녕하세요"]
    result = stream.result()
    assert result.input_tokens > 10 and result.output_tokens > 0


@pytest.mark.parametrize(("status", "expected"), [(429, RetryableError), (500, RetryableError), (400, PermanentError)])
async def test_a_refused_stream_fails_before_any_piece(llm: LLMClient, status: int, expected: type[Exception]) -> None:
    with respx.mock() as mock:
        mock.post(OPENAI_URL).mock(return_value=error(status))
        with pytest.raises(expected):
            await llm.open_stream(MESSAGES, timeout=5)


async def test_a_broken_stream_is_retryable(llm: LLMClient) -> None:
    with respx.mock() as mock:
        mock.post(OPENAI_URL).mock(side_effect=[httpx.Response(200, content=b"data: {not json\n\n",
                                                              headers={"content-type": "text/event-stream"})])
        stream = await llm.open_stream(MESSAGES, timeout=5)
        with pytest.raises(RetryableError):
            _ = [p async for p in stream.pieces()]
