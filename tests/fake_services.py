"""Local stand-ins for end-to-end tests, served by a real uvicorn: an OpenAI-compatible chat server and
Kakao's callback endpoint, both recording what they receive.

    OPENAI_BASE_URL = f"{base_url}/v1"
    callbackUrl     = f"{base_url}/v1/bots/<bot>/callback/<token>"
"""

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request

FAKE_MODEL = "fake-gpt"


def answer_for(utterance: str) -> str:
    """What the fake LLM answers to a user message."""
    return f"가짜 LLM의 답변입니다. 질문은 '{utterance}' 였어요."


class FakeServices:
    """The recorded traffic of one fake server."""

    def __init__(self) -> None:
        self.llm_requests: list[dict[str, Any]] = []
        self.callbacks: list[tuple[str, dict[str, Any]]] = []  # (token, body)
        self.app = self._build()

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat_completions(request: Request) -> dict[str, Any]:
            body = await request.json()
            self.llm_requests.append(body)
            text = answer_for(body["messages"][-1]["content"])
            return {
                "id": f"chatcmpl-fake-{len(self.llm_requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": FAKE_MODEL,
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
            }

        @app.post("/v1/bots/{bot}/callback/{token}")
        async def callback(bot: str, token: str, request: Request) -> dict[str, Any]:
            seen = any(t == token for t, _ in self.callbacks)
            self.callbacks.append((token, await request.json()))
            status = "FAIL" if seen else "SUCCESS"  # single use, like Kakao
            return {"taskId": token, "status": status, "message": "ok", "timestamp": int(time.time() * 1000)}

        return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on this event loop; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # surfaces a bind error
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
