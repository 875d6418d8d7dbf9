"""The chat API's parts without a server: the rate limit, the streamed LLM call, OpenAI's error shape."""

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from fastapi.exceptions import RequestValidationError

from app.api.openai_errors import _invalid
from app.services.chat.errors import BudgetExceeded, InvalidApiKey, RateLimited, error_body
from app.services.chat.ratelimit import RateLimiter
from app.services.chat.streaming import ChatStream
from app.services.errors import PermanentError, RetryableError
from app.services.llm import LLMClient
from app.services.pipeline import Answer, AnswerStream
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


class _Pieces(AnswerStream):
    """An answer stream from a script: text pieces, a pause (float seconds) or an error to raise."""

    def __init__(self, *script: object) -> None:
        self.script = script
        self.sent: list[str] = []
        self.cancelled = False

    async def pieces(self) -> AsyncIterator[str]:
        try:
            for step in self.script:
                if isinstance(step, Exception):
                    raise step
                if isinstance(step, float):
                    await asyncio.sleep(step)
                    continue
                self.sent.append(str(step))
                yield str(step)
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    def answer(self) -> Answer:
        return Answer(text="".join(self.sent), input_tokens=5, output_tokens=len(self.sent))


def _stream(pieces: _Pieces, stored: list[Answer], **options: object) -> ChatStream:
    async def finish(answer: Answer) -> None:
        stored.append(answer)

    settings = {"model": "bot", "include_usage": True, "keepalive": 5.0, "timeout": 5.0, **options}
    return ChatStream(pieces, finish=finish, **settings)  # type: ignore[arg-type]


async def test_a_stream_ends_with_finish_usage_and_done_and_is_stored_once() -> None:
    stored: list[Answer] = []
    stream = _stream(_Pieces("안녕", "하세요"), stored)
    events = [e async for e in stream.events()]
    await stream.close()  # the response's background close: nothing more to do
    data = [json.loads(e[6:]) for e in events[:-1]]
    assert data[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [d["choices"][0]["delta"].get("content") for d in data[1:3]] == ["안녕", "하세요"]
    assert data[3]["choices"][0]["finish_reason"] == "stop"
    assert data[4]["choices"] == [] and data[4]["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert events[-1] == b"data: [DONE]\n\n"
    assert [a.text for a in stored] == ["안녕하세요"]


async def test_an_upstream_failure_mid_stream_is_an_error_event_and_the_partial_answer_is_stored() -> None:
    stored: list[Answer] = []
    stream = _stream(_Pieces("안녕", RetryableError("LLM stream broke off")), stored)
    events = [e async for e in stream.events()]
    error = json.loads(events[-1][6:])
    assert error["error"]["type"] == "server_error" and error["error"]["code"] == "upstream_unavailable"
    assert b"[DONE]" not in b"".join(events)
    assert [a.text for a in stored] == ["안녕"]


async def test_closing_a_stream_early_cancels_the_model_and_stores_what_was_written() -> None:
    stored: list[Answer] = []
    pieces = _Pieces("첫", 30.0, "둘")
    stream = _stream(pieces, stored)
    events = stream.events()
    assert b'"role":"assistant"' in await anext(events)
    assert b'"content":"\xec\xb2\xab"' in await anext(events)  # "첫"
    await events.aclose()  # the client left
    assert pieces.cancelled and [a.text for a in stored] == ["첫"]
    await stream.close()
    assert len(stored) == 1


async def test_a_silent_model_gets_keep_alive_comments() -> None:
    stored: list[Answer] = []
    stream = _stream(_Pieces(0.3, "끝"), stored, keepalive=0.05)
    events = [e async for e in stream.events()]
    assert b": keep-alive\n\n" in events and events.index(b": keep-alive\n\n") == 1
