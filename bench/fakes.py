"""Local stand-ins for the outside world: an OpenAI-compatible chat server and Kakao's callback endpoint.

A bare ASGI app, so the fakes cost the benchmarked worker as little CPU as possible:

    uvicorn bench.fakes:app --port 9100
    LLM:      OPENAI_BASE_URL=http://127.0.0.1:9100/llm/<delay seconds>/v1
               (streamed when asked: the first word after the delay, then STREAM_WORDS more; with
               /llm/<delay>/<gap seconds>/v1 the words come `gap` apart, so streams stay open)
    Callback: http://127.0.0.1:9100/v1/bots/<bot>/callback/<token>   (GET /stats counts them and the LLM calls)
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 0,
    "model": "bench-fake",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "벤치마크 답변입니다."}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
}
STREAM_WORDS = 20
received = {"callbacks": 0, "llm": 0, "streams_cancelled": 0}


async def _reply(send: Send, body: dict[str, Any], status: int = 200) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _drain(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def _event(delta: dict[str, Any] | None, *, finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    chunk: dict[str, Any] = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "bench-fake"}
    chunk["choices"] = [] if usage else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage:
        chunk["usage"] = usage
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"


async def _hung_up(receive: Receive, seconds: float) -> bool:
    """Wait `seconds`; True as soon as the client hangs up."""
    try:
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True


async def _stream(receive: Receive, send: Send, delay: float, gap: float) -> None:
    """The answer word by word as Server-Sent Events, usage last; counts streams whose client hung up."""
    await asyncio.sleep(delay)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": _event({"role": "assistant", "content": ""}), "more_body": True})
    for n in range(STREAM_WORDS):
        if n and gap and await _hung_up(receive, gap):
            received["streams_cancelled"] += 1
            return
        await send({"type": "http.response.body", "body": _event({"content": "벤치 "}), "more_body": True})
    tail = _event(None, finish="stop") + _event(None, usage={"prompt_tokens": 12, "completion_tokens": STREAM_WORDS,
                                                             "total_tokens": 12 + STREAM_WORDS})
    await send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n", "more_body": False})


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    body = await _drain(receive)
    if path.startswith("/llm/") and path.endswith("/chat/completions"):
        received["llm"] += 1
        parts = path.split("/")  # "", "llm", delay, [gap,] "v1", "chat", "completions"
        delay, gap = float(parts[2]), float(parts[3]) if len(parts) == 7 else 0.0
        if json.loads(body).get("stream"):
            await _stream(receive, send, delay, gap)
            return
        await asyncio.sleep(delay)
        await _reply(send, _COMPLETION)
    elif "/callback/" in path:
        received["callbacks"] += 1
        token = path.rsplit("/", 1)[1]
        await _reply(send, {"taskId": token, "status": "SUCCESS", "message": "ok", "timestamp": int(time.time() * 1000)})
    elif path in ("/stats", "/health"):
        await _reply(send, received)
    else:
        await _reply(send, {"error": "not found"}, 404)
