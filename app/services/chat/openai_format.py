"""OpenAI's response bodies and Server-Sent Events, built as plain dicts (one answer is many chunks)."""

import json
import time
import uuid
from typing import Any

from app.services.pipeline import Answer

OWNER = "kakao-ai-skill-server"
DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
    }


def completion(*, id: str, model: str, answer: Answer) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": answer.finish_reason or "stop",
            }
        ],
        "usage": usage(answer),
    }


def chunk(
    *,
    id: str,
    created: int,
    model: str,
    delta: dict[str, str] | None = None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A `chat.completion.chunk`; the usage chunk has no choices, as OpenAI sends it."""
    body: dict[str, Any] = {"id": id, "object": "chat.completion.chunk", "created": created, "model": model}
    if usage is not None:
        body["choices"] = []
        body["usage"] = usage
    else:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}]
    return body


def event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def model_list(model_ids: list[str]) -> dict[str, Any]:
    return {"object": "list", "data": [model_entry(model_id) for model_id in model_ids]}


def model_entry(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": OWNER}
