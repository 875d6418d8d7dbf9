"""Local stand-ins for the outside world: an OpenAI-compatible chat server and Kakao's callback endpoint.

A bare ASGI app, so the fakes cost the benchmarked worker as little CPU as possible:

    uvicorn bench.fakes:app --port 9100
    LLM:      OPENAI_BASE_URL=http://127.0.0.1:9100/llm/<delay seconds>/v1
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
received = {"callbacks": 0, "llm": 0}


async def _reply(send: Send, body: dict[str, Any], status: int = 200) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _drain(receive: Receive) -> None:
    while (await receive()).get("more_body"):
        pass


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    await _drain(receive)
    if path.startswith("/llm/") and path.endswith("/chat/completions"):
        received["llm"] += 1
        await asyncio.sleep(float(path.split("/")[2]))
        await _reply(send, _COMPLETION)
    elif "/callback/" in path:
        received["callbacks"] += 1
        token = path.rsplit("/", 1)[1]
        await _reply(send, {"taskId": token, "status": "SUCCESS", "message": "ok", "timestamp": int(time.time() * 1000)})
    elif path in ("/stats", "/health"):
        await _reply(send, received)
    else:
        await _reply(send, {"error": "not found"}, 404)
