"""send_callback: one POST, classified so that a spent callback URL is never retried."""

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.kakao.builders import callback_ack, text_reply
from app.kakao.callback import CallbackOutcome, send_callback

FIXTURES = Path(__file__).parents[2] / "fixtures" / "kakao"
URL = "https://bot-api.kakao.com/v1/bots/65a1f0c2e4b0d1a2b3c4d5e6/callback/AbC%2Bd_e-f~g.h%41"
BODY = text_reply("전세 계약 시에는 등기부등본을 꼭 확인하세요.")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


@pytest.fixture
def kakao() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


async def test_success_is_sent(kakao: respx.MockRouter, client: httpx.AsyncClient) -> None:
    route = kakao.post(URL).respond(200, json=load("callback_result_success.json"))

    result = await send_callback(client, URL, BODY)

    assert result.outcome is CallbackOutcome.SENT
    assert (result.http_status, result.kakao_status, result.retryable) == (200, "SUCCESS", False)
    request = route.calls.last.request
    assert json.loads(request.content) == BODY.to_dict()
    assert request.headers["content-type"] == "application/json"


async def test_exact_url_string_reaches_kakao(kakao: respx.MockRouter, client: httpx.AsyncClient) -> None:
    seen: list[httpx.Request] = []

    def capture(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=load("callback_result_success.json"))

    kakao.route().mock(side_effect=capture)

    await send_callback(client, URL, BODY)

    assert str(seen[0].url) == URL
    assert seen[0].url.raw_path == URL.removeprefix("https://bot-api.kakao.com").encode()


@pytest.mark.parametrize(
    ("status", "fixture", "message"),
    [
        (200, "callback_result_fail_expired.json", "Invalid callback token. Check your callback token."),
        (400, "callback_result_fail_expired.json", "Invalid callback token. Check your callback token."),
        (400, "callback_result_fail_bottest.json", "Invalid callback token for testing purposes."),
    ],
)
async def test_fail_is_rejected(
    kakao: respx.MockRouter, client: httpx.AsyncClient, status: int, fixture: str, message: str
) -> None:
    kakao.post(URL).respond(status, json=load(fixture))

    result = await send_callback(client, URL, BODY)

    assert result.outcome is CallbackOutcome.REJECTED
    assert (result.http_status, result.kakao_status, result.message) == (status, "FAIL", message)
    assert not result.retryable
    assert result.token_refused  # what a repeat of a POST that arrived gets (single use)


@pytest.mark.parametrize(
    ("status", "payload", "kakao_status"),
    [
        (200, {"status": "ERROR", "message": "boom"}, "ERROR"),
        (500, {"status": "SUCCESS"}, "SUCCESS"),
        (200, {"taskId": "x"}, None),
        (200, ["SUCCESS"], None),
    ],
)
async def test_anything_but_2xx_success_is_rejected(
    kakao: respx.MockRouter, client: httpx.AsyncClient, status: int, payload: Any, kakao_status: str | None
) -> None:
    kakao.post(URL).respond(status, json=payload)

    result = await send_callback(client, URL, BODY)

    assert result.outcome is CallbackOutcome.REJECTED
    assert result.kakao_status == kakao_status
    assert not result.token_refused


async def test_non_json_answer_is_rejected(kakao: respx.MockRouter, client: httpx.AsyncClient) -> None:
    kakao.post(URL).respond(502, text="<html>Bad Gateway</html>")

    result = await send_callback(client, URL, BODY)

    assert (result.outcome, result.http_status, result.message) == (CallbackOutcome.REJECTED, 502, "non-JSON response")
    assert not result.token_refused


async def test_redirect_is_rejected_and_not_followed(kakao: respx.MockRouter, client: httpx.AsyncClient) -> None:
    kakao.post(URL).respond(302, headers={"Location": "http://169.254.169.254/latest/meta-data"})
    elsewhere = kakao.route(host="169.254.169.254").respond(200, json={"status": "SUCCESS"})

    result = await send_callback(client, URL, BODY)

    assert (result.outcome, result.http_status) == (CallbackOutcome.REJECTED, 302)
    assert not elsewhere.called


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_never_connected_is_not_sent(
    kakao: respx.MockRouter, client: httpx.AsyncClient, error: type[Exception]
) -> None:
    kakao.post(URL).mock(side_effect=error("connection refused"))

    result = await send_callback(client, URL, BODY)

    assert (result.outcome, result.message, result.http_status) == (CallbackOutcome.NOT_SENT, error.__name__, None)
    assert result.retryable


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError]
)
async def test_maybe_delivered_is_unknown(
    kakao: respx.MockRouter, client: httpx.AsyncClient, error: type[Exception]
) -> None:
    kakao.post(URL).mock(side_effect=error("timed out"))

    result = await send_callback(client, URL, BODY)

    assert (result.outcome, result.message) == (CallbackOutcome.UNKNOWN, error.__name__)
    assert not result.retryable


async def test_kakao_message_never_carries_the_url(kakao: respx.MockRouter, client: httpx.AsyncClient) -> None:
    token = URL.rsplit("/", 1)[-1]
    kakao.post(URL).respond(400, json={"status": "FAIL", "message": f"Invalid token {token} for {URL}"})

    result = await send_callback(client, URL, BODY)

    assert result.message == "Invalid token *** for ***"


class _BrokenStream(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"status": "SUC'
        raise httpx.ReadError("connection reset")


async def test_read_error_after_status_is_unknown(kakao: respx.MockRouter, client: httpx.AsyncClient) -> None:
    kakao.post(URL).mock(return_value=httpx.Response(200, stream=_BrokenStream()))

    result = await send_callback(client, URL, BODY)

    assert (result.outcome, result.http_status, result.message) == (CallbackOutcome.UNKNOWN, 200, "ReadError")


async def test_response_size_is_capped(kakao: respx.MockRouter, client: httpx.AsyncClient) -> None:
    huge = json.dumps({"status": "SUCCESS", "message": "x" * 200_000})
    kakao.post(URL).respond(200, text=huge)

    result = await send_callback(client, URL, BODY, max_response_bytes=1_000)

    assert (result.outcome, result.message) == (CallbackOutcome.REJECTED, "non-JSON response")


async def test_timeout_is_applied(kakao: respx.MockRouter, client: httpx.AsyncClient) -> None:
    route = kakao.post(URL).respond(200, json={"status": "SUCCESS"})

    await send_callback(client, URL, BODY, timeout=2.5)

    assert route.calls.last.request.extensions["timeout"] == {"connect": 2.5, "read": 2.5, "write": 2.5, "pool": 2.5}


async def test_dict_body_is_validated_and_sent(kakao: respx.MockRouter, client: httpx.AsyncClient) -> None:
    route = kakao.post(URL).respond(200, json={"status": "SUCCESS"})
    body = load("callback_request_body.json")

    result = await send_callback(client, URL, body)

    assert result.outcome is CallbackOutcome.SENT
    assert json.loads(route.calls.last.request.content) == body


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {"version": "2.0", "template": {"outputs": [{"simpleText": {"text": "가" * 1001}}]}}, id="too-long"
        ),
        pytest.param(callback_ack("잠시만요"), id="use-callback"),
        pytest.param({"version": "2.0", "useCallback": False}, id="use-callback-false"),
    ],
)
async def test_invalid_body_raises_before_any_io(kakao: respx.MockRouter, client: httpx.AsyncClient, body: Any) -> None:
    route = kakao.route().respond(200, json={"status": "SUCCESS"})

    with pytest.raises(ValueError):
        await send_callback(client, URL, body)
    assert not route.called


@pytest.mark.parametrize(
    "url",
    [
        "https://bot-api.kakao.com/v1/bots/b/callback/a b",
        "https://bot-api.kakao.com/v1/bots/b/../callback/t",
        "https://bot-api.kakao.com/v1/bots/b/callback/{t}",
        "https://[bot-api.kakao.com]/v1/bots/b",
    ],
)
async def test_url_that_would_be_rewritten_raises_before_any_io(
    kakao: respx.MockRouter, client: httpx.AsyncClient, url: str
) -> None:
    route = kakao.route().respond(200, json={"status": "SUCCESS"})

    with pytest.raises(ValueError) as caught:
        await send_callback(client, url, BODY)
    assert not route.called
    assert url not in str(caught.value)
