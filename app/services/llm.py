"""Chat Completions client: one call per attempt, errors sorted into retryable and permanent."""

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Literal

import httpx
import openai
from loguru import logger
from openai import AsyncStream
from pydantic import BaseModel

from app.config import Settings
from app.services import usage
from app.services.errors import PermanentError, RetryableError
from app.services.tokens import count_messages, count_tokens

# Statuses worth another attempt; every other 4xx will fail the same way again.
_RETRYABLE_STATUS = {408, 409, 429}
_MAX_ERROR_TEXT = 300


class ChatMessage(BaseModel):
    """One message of a Chat Completions request."""

    role: Literal["system", "user", "assistant"]
    content: str


class LLMResult(BaseModel):
    """The answer text with what it cost and how long it took."""

    text: str
    input_tokens: int
    output_tokens: int
    model: str
    latency_ms: int
    finish_reason: str | None


class LLMClient:
    """One `AsyncOpenAI` per process; the SDK's own retries are off because the queue owns retries."""

    def __init__(self, settings: Settings) -> None:
        if not settings.openai_api_key:
            raise ValueError("OPENAI_API_KEY is not set; use the offline answerer instead")
        self.model = settings.openai_model
        self.temperature = settings.openai_temperature
        self.max_tokens = settings.openai_max_tokens
        # The standard httpx client (not the SDK's bundled one) keeps one HTTP stack in the project
        # and lets tests mock the API with respx. Per-call timeouts override this default.
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=5.0),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        )
        self._client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            max_retries=0,
            http_client=self._http,
        )

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()

    async def complete(
        self,
        messages: list[ChatMessage],
        *,
        timeout: float,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        kind: str = usage.Kind.ANSWER,
    ) -> LLMResult:
        """One Chat Completions attempt finishing within `timeout` seconds (the task's remaining time).

        Its usage is noted (as `kind`) to the current usage collector (`app.services.usage.collect`).
        """
        if timeout <= 0:
            raise RetryableError("no time left for an LLM attempt")
        model = model or self.model
        started = time.perf_counter()
        try:
            # asyncio.timeout caps the whole attempt; httpx's timeout alone bounds each read, not the sum.
            async with asyncio.timeout(timeout):
                # The SDK's generic `post` keeps its auth, error classes and timeouts but skips the per-call
                # request transform and response models, which cost more CPU than the rest of an answer.
                response = await self._client.post(
                    "/chat/completions",
                    body={
                        "model": model,
                        "messages": [{"role": m.role, "content": m.content} for m in messages],
                        "temperature": self.temperature if temperature is None else temperature,
                        "max_tokens": max_tokens or self.max_tokens,
                    },
                    cast_to=httpx.Response,
                    options={"timeout": timeout},
                )
                completion = response.json()
        except TimeoutError as exc:
            raise RetryableError(f"LLM attempt timed out after {timeout:.1f}s") from exc
        except json.JSONDecodeError as exc:
            raise RetryableError("malformed LLM response: invalid JSON") from exc
        except openai.APIError as exc:
            raise classify(exc) from exc
        latency_ms = round((time.perf_counter() - started) * 1000)
        result = _result(completion, messages, model, latency_ms)
        usage.note(usage.ModelCall(kind, result.model, result.input_tokens, result.output_tokens, latency_ms))
        logger.debug(
            "LLM answered: model={} in={} out={} latency_ms={} finish={}",
            result.model,
            result.input_tokens,
            result.output_tokens,
            result.latency_ms,
            result.finish_reason,
        )
        return result

    async def open_stream(
        self,
        messages: list[ChatMessage],
        *,
        timeout: float,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> "LLMStream":
        """Start a streamed answer; returns once the server accepted the request (its errors are raised here)."""
        if timeout <= 0:
            raise RetryableError("no time left for an LLM attempt")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                # The generic `post`, as in `complete`: the SDK's own stream of plain dicts (building a chunk model
                # per piece cost more CPU than the rest of a streamed answer), without its request transform.
                stream = await self._client.post(
                    "/chat/completions",
                    body={
                        "model": self.model,
                        "messages": [{"role": m.role, "content": m.content} for m in messages],
                        "temperature": self.temperature if temperature is None else temperature,
                        "max_tokens": max_tokens or self.max_tokens,
                        "stream": True,
                        # Usage comes in a last chunk without choices; without it a stream would go uncounted.
                        "stream_options": {"include_usage": True},
                    },
                    cast_to=object,
                    stream=True,
                    stream_cls=AsyncStream[object],
                    options={"timeout": timeout},
                )
        except TimeoutError as exc:
            raise RetryableError(f"LLM attempt timed out after {timeout:.1f}s") from exc
        except openai.APIError as exc:
            raise classify(exc) from exc
        return LLMStream(stream, messages, self.model, started)


class LLMStream:
    """A streamed answer: iterate `pieces()` for the text as the model writes it; then `result()`.

    `result()` after the stream was cut off (the client left, a timeout) gives what was written so far, with
    estimated tokens where the server had not reported usage yet.
    """

    def __init__(
        self, stream: AsyncStream[object], messages: list[ChatMessage], model: str, started: float
    ) -> None:
        self._stream = stream
        self._messages = messages
        self._model = model
        self._started = started
        self._parts: list[str] = []
        self._usage: tuple[int, int] | None = None
        self._finish_reason: str | None = None

    async def pieces(self) -> AsyncIterator[str]:
        try:
            async for chunk in self._stream:
                if not isinstance(chunk, dict):
                    raise RetryableError(f"malformed LLM stream chunk ({type(chunk).__name__})")
                if usage := chunk.get("usage"):
                    self._usage = (int(usage["prompt_tokens"]), int(usage["completion_tokens"]))
                self._model = chunk.get("model") or self._model
                for choice in (chunk.get("choices") or [])[:1]:
                    self._finish_reason = choice.get("finish_reason") or self._finish_reason
                    if text := (choice.get("delta") or {}).get("content"):
                        self._parts.append(text)
                        yield text
        except openai.APIError as exc:
            raise classify(exc) from exc
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise RetryableError(f"LLM stream broke off: {type(exc).__name__}") from exc
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            raise RetryableError(f"malformed LLM stream chunk: {exc}") from exc
        finally:
            await self._stream.close()

    def result(self) -> LLMResult:
        text = "".join(self._parts)
        # Compatible servers may omit usage, and a cut-off stream never gets it: an estimate keeps limits meaningful.
        input_tokens, output_tokens = self._usage or (count_messages(self._messages), count_tokens(text))
        return LLMResult(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            model=self._model,
            latency_ms=round((time.perf_counter() - self._started) * 1000),
            finish_reason=self._finish_reason,
        )


def _result(completion: object, messages: list[ChatMessage], model: str, latency_ms: int) -> LLMResult:
    """Read the completion body, rejecting shapes a compatible server may send by mistake."""
    if not isinstance(completion, dict):
        raise RetryableError(f"malformed LLM response ({type(completion).__name__})")
    try:
        choices = completion.get("choices")
        if not isinstance(choices, list):
            raise RetryableError("malformed LLM response: no choices field")
        if not choices:
            raise PermanentError("LLM returned no choices")
        choice = choices[0]
        finish_reason = choice.get("finish_reason")
        if finish_reason == "content_filter":
            raise PermanentError("LLM answer blocked by the content filter")
        message = choice["message"]
        if message.get("refusal"):
            raise PermanentError("LLM refused to answer")
        text = (message.get("content") or "").strip()
        if not text:
            raise RetryableError(f"LLM returned an empty answer (finish_reason={finish_reason})")
        usage = completion.get("usage") or {}
        # Compatible servers may omit usage; an estimate keeps limits meaningful.
        input_tokens = usage.get("prompt_tokens")
        output_tokens = usage.get("completion_tokens")
        return LLMResult(
            text=text,
            input_tokens=count_messages(messages) if input_tokens is None else input_tokens,
            output_tokens=count_tokens(text) if output_tokens is None else output_tokens,
            model=completion.get("model") or model,
            latency_ms=latency_ms,
            finish_reason=finish_reason,
        )
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        # A compatible server's body is not validated by the SDK on this path; a broken one surfaces here.
        raise RetryableError(f"malformed LLM response: {exc}") from exc


def classify(exc: openai.APIError) -> RetryableError | PermanentError:
    """Map an SDK error to the worker's retry policy."""
    if isinstance(exc, openai.APITimeoutError):
        return RetryableError("LLM request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return RetryableError("LLM connection failed")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"LLM HTTP {status}: {_error_text(exc)}"
        if status == 429 and exc.code == "insufficient_quota":
            # Billing quota, not rate: waiting does not help.
            return PermanentError(message)
        if status in _RETRYABLE_STATUS or status >= 500:
            return RetryableError(message, retry_after=retry_after(exc.response.headers))
        return PermanentError(message)
    # APIResponseValidationError and anything new: the body was not what we expected.
    return RetryableError(f"malformed LLM response: {_error_text(exc)}")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _error_text(exc: openai.APIError) -> str:
    return " ".join(str(exc.message).split())[:_MAX_ERROR_TEXT]
