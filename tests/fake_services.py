"""Local stand-ins for end-to-end tests and chaos runs, served by a real uvicorn: an OpenAI-compatible chat
server with injectable faults (streaming and speech too) and a Kakao callback peer that keeps Kakao's rules,
both recording what they receive.

    OPENAI_BASE_URL = f"{base_url}/v1"
    callbackUrl     = f"{base_url}/v1/bots/<bot>/callback/<token>"

The LLM answers with `answer_for(last user message)`, so a test can tell which message an answer belongs to;
with `"stream": true` it sends the answer word by word as `chat.completion.chunk` events (`chunk_delay` apart),
and counts in `streams_cancelled` the streams whose client hung up before the end.
The Kakao peer answers `{"taskId", "status", "message", "timestamp"}` and, for tokens handed out with
`issue()`, behaves like Kakao: each URL works once, and is rejected when used before `not_before` seconds or
after `expires_after` seconds. It can be slow (`delay`), answer with a redirect (`redirect_to`), or hold POSTs
unanswered until their sender dies (`hold`).
"""

import asyncio
import json
import random
import re
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

FAKE_MODEL = "fake-gpt"
FAKE_TRANSCRIPT = "가짜 받아쓰기 결과입니다."
FAKE_AUDIO = b"ID3-fake-audio:"
INVALID_TOKEN = "Invalid callback token. Check your callback token."
INVALID_JSON = "Invalid json response from bot-skill."


def answer_for(utterance: str) -> str:
    """What the fake LLM answers to a user message."""
    return f"가짜 LLM의 답변입니다. 질문은 '{utterance}' 였어요."


@dataclass
class LLMFaults:
    """How the fake LLM misbehaves. `errors` are drawn uniformly for the `error_rate` share of requests:
    "429" (with Retry-After), "500", "timeout" (holds the request `hang_seconds`), "malformed" (a 200 whose
    body is not a chat completion)."""

    latency: float = 0.0
    jitter: float = 0.0
    error_rate: float = 0.0
    errors: tuple[str, ...] = ("429", "500", "timeout")
    retry_after: float = 1.0
    hang_seconds: float = 60.0
    seed: int = 7
    chunk_delay: float = 0.0  # pause before each streamed chunk


@dataclass
class KakaoRules:
    """How the fake Kakao treats callback POSTs."""

    not_before: float = 1.0
    expires_after: float = 60.0
    delay: float = 0.0  # answer this late (a slow Kakao); a client gone by then never saw the answer
    redirect_to: str | None = None  # answer every POST with a 307 to this URL
    # Hold the next `hold` POSTs Kakao would accept, unanswered until their sender hangs up (a test kills it).
    # Whether Kakao received a POST whose sender died is unknowable to the sender, so both happen: the 1st,
    # 3rd... held POST is shown (its URL spent), the 2nd, 4th... never arrived (status LOST, URL unspent).
    hold: int = 0


@dataclass(frozen=True, slots=True)
class CallbackPost:
    """One POST the Kakao peer received. `status` is what it answered (SUCCESS, FAIL, REDIRECT), or
    ABANDONED when the sender hung up before a slow answer was ready (the user never saw it), or LOST for a
    held POST taken as never received. `held`: its sender died waiting for the answer."""

    token: str
    body: Any
    status: str
    message: str
    at: float  # time.monotonic()
    age: float | None  # seconds since the token was issued
    held: bool = False


@dataclass
class FakeServices:
    """The recorded traffic of one fake server (LLM and Kakao on the same app)."""

    llm: LLMFaults = field(default_factory=LLMFaults)
    kakao: KakaoRules = field(default_factory=KakaoRules)

    def __post_init__(self) -> None:
        self.llm_requests: list[dict[str, Any]] = []
        self.streams_cancelled = 0
        self.speech_requests: list[tuple[str, bytes]] = []  # (path, raw body)
        self.llm_outcomes: Counter[str] = Counter()
        self.callbacks: list[tuple[str, dict[str, Any]]] = []  # (token, body) of every POST, in order
        self.posts: list[CallbackPost] = []
        self.issued: dict[str, float] = {}
        self.spent: set[str] = set()  # tokens Kakao has taken a POST for
        self.holding: set[str] = set()  # tokens of the POSTs held right now
        self._held = 0
        self._random = random.Random(self.llm.seed)

    def issue(self, token: str) -> None:
        """Hand out a callback token now (Kakao's clock for the 1 s and expiry rules starts here)."""
        self.issued[token] = time.monotonic()

    def posts_to(self, token: str) -> list[CallbackPost]:
        return [post for post in self.posts if post.token == token]

    # --- a bare ASGI app: the fakes share a core with the load generator, so they must be cheap ---

    async def app(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        raw = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None  # the sender died mid-request: like any HTTP server, nothing was received
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        if scope["method"] == "POST" and path == "/v1/chat/completions":
            await self._complete(json.loads(raw), receive, send)
        elif scope["method"] == "POST" and path in ("/v1/audio/transcriptions", "/v1/audio/speech"):
            await self._speech(path, bytes(raw), send)
        elif scope["method"] == "POST" and _CALLBACK_PATH.fullmatch(path):
            await self._callback(path.rsplit("/", 1)[1], bytes(raw), receive, send)
        else:
            await _reply(send, 404, {"detail": "Not Found"})

    # --- the LLM ---------------------------------------------------------------------------------

    async def _complete(self, body: dict[str, Any], receive: Receive, send: Send) -> None:
        self.llm_requests.append(body)
        faults = self.llm
        if (faults.latency or faults.jitter) and await _disconnected(
            receive, faults.latency + self._random.random() * faults.jitter
        ):
            return None  # the client gave up (or its worker died)
        fault = self._random.choice(faults.errors) if self._random.random() < faults.error_rate else "ok"
        self.llm_outcomes[fault] += 1
        if fault == "429":
            error = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
            return await _reply(send, 429, error, [(b"retry-after", str(faults.retry_after).encode())])
        if fault == "500":
            return await _reply(send, 500, {"error": {"message": "The server had an error", "type": "server_error"}})
        if fault == "timeout":
            # Hold the request until the client gives up (or `hang_seconds`), then answer normally.
            if not await _disconnected(receive, faults.hang_seconds):
                return await _reply(send, 200, self._completion(body))
            return None
        if fault == "malformed":
            if self._random.random() < 0.5:
                return await _reply(send, 200, b'{"choices": [{"message": ')
            return await _reply(send, 200, {"id": "x", "object": "chat.completion", "choices": "not a list"})
        if body.get("stream"):
            return await self._stream(body, receive, send)
        return await _reply(send, 200, self._completion(body))

    async def _stream(self, body: dict[str, Any], receive: Receive, send: Send) -> None:
        """The answer word by word as Server-Sent Events; usage last when asked for."""
        words = re.findall(r"\s*\S+", answer_for(body["messages"][-1]["content"]))
        head = {"id": f"chatcmpl-fake-{len(self.llm_requests)}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": FAKE_MODEL}
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}, *({"content": w} for w in words)]
        events = [{**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 50, "completion_tokens": len(words), "total_tokens": 50 + len(words)}
            events.append({**head, "choices": [], "usage": usage})
        head_sent = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": head_sent})
        for event in events:
            if self.llm.chunk_delay and await _disconnected(receive, self.llm.chunk_delay):
                self.streams_cancelled += 1  # the client hung up mid-answer
                return
            data = b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _speech(self, path: str, raw: bytes, send: Send) -> None:
        self.speech_requests.append((path, raw))
        if path.endswith("/transcriptions"):
            return await _reply(send, 200, {"text": FAKE_TRANSCRIPT, "usage": {"type": "duration", "seconds": 3}})
        text = json.loads(raw)["input"].encode()
        audio = FAKE_AUDIO + text
        head = [(b"content-type", b"audio/mpeg"), (b"content-length", str(len(audio)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": audio})

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        text = answer_for(body["messages"][-1]["content"])
        return {
            "id": f"chatcmpl-fake-{len(self.llm_requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": FAKE_MODEL,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
        }

    # --- Kakao's callback endpoint ------------------------------------------------------------------

    async def _callback(self, token: str, raw: bytes, receive: Receive, send: Send) -> None:
        arrived = time.monotonic()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        issued = self.issued.get(token)
        age = arrived - issued if issued is not None else None
        used = token in self.spent
        self.callbacks.append((token, body))
        rules = self.kakao
        if rules.redirect_to:
            self.posts.append(CallbackPost(token, body, "REDIRECT", "", arrived, age))
            return await _reply(send, 307, b"", [(b"location", rules.redirect_to.encode())])
        if used:
            status, message = "FAIL", INVALID_TOKEN  # single use
        elif age is not None and (age < rules.not_before or age > rules.expires_after):
            status, message = "FAIL", INVALID_TOKEN  # raced the skill reply, or expired
        elif not _valid_final_response(body):
            status, message = "FAIL", INVALID_JSON
        else:
            status, message = "SUCCESS", "OK"
        if status == "SUCCESS" and rules.hold > 0:
            return await self._hold(token, body, arrived, age, receive)
        self.spent.add(token)
        if rules.delay and await _disconnected(receive, rules.delay):
            status = "ABANDONED" if status == "SUCCESS" else status
        self.posts.append(CallbackPost(token, body, status, message, arrived, age))
        answer = {"taskId": token, "status": status, "message": message, "timestamp": int(time.time() * 1000)}
        return await _reply(send, 200, answer)

    async def _hold(self, token: str, body: Any, arrived: float, age: float | None, receive: Receive) -> None:
        """Answer nothing until the sender hangs up; then the POST was shown or never arrived, in turn."""
        self.kakao.hold -= 1
        shown = self._held % 2 == 0
        self._held += 1
        if shown:
            self.spent.add(token)
        self.holding.add(token)
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            self.holding.discard(token)
            self.posts.append(CallbackPost(token, body, "SUCCESS" if shown else "LOST", "OK", arrived, age, held=True))


_CALLBACK_PATH = re.compile(r"/v1/bots/[^/]+/callback/[^/]+")


async def _reply(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": data})


async def _disconnected(receive: Receive, seconds: float) -> bool:
    """Wait up to `seconds`; True as soon as the client hangs up."""
    try:
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True


def _valid_final_response(body: Any) -> bool:
    """What Kakao checks before showing a callback: a 2.0 skill response with a template, no useCallback."""
    return (
        isinstance(body, dict)
        and body.get("version") == "2.0"
        and "useCallback" not in body
        and isinstance(body.get("template"), dict)
        and 1 <= len(body["template"].get("outputs") or []) <= 3
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """An ASGI app on a fixed local port that can be stopped (connections refused) and started again."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
            timeout_graceful_shutdown=1, backlog=4096, interface="asgi3", proxy_headers=False,
        )
        self._server = server = uvicorn.Server(config)
        self._task = task = asyncio.create_task(server.serve())
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # surfaces a bind error
                    raise RuntimeError(f"server on port {self.port} stopped before starting")
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on this event loop; yields its base URL."""
    served = Served(app)
    await served.start()
    try:
        yield served.url
    finally:
        await served.stop()
