"""One streamed answer as Server-Sent Events: chunks as the model writes them, keep-alives in long pauses.

The model's pieces are read by a task of their own, so waiting for the next one can time out (a keep-alive
goes out) without disturbing the upstream read. If the client leaves, the response is cancelled; `close()`
then cancels that task, which closes the upstream request, and still stores and counts what was written.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from loguru import logger

from app.errors import AppError
from app.services.chat import openai_format as fmt
from app.services.chat.errors import error_body
from app.services.errors import RetryableError
from app.services.pipeline import Answer, AnswerStream

_END = object()
# How long storing a cut-off answer may hold up the end of a cancelled response.
_CLOSE_TIMEOUT = 10.0


class ChatStream:
    """The SSE body of one streamed completion; `finish(answer)` stores and counts the answer (exactly once)."""

    def __init__(
        self,
        stream: AnswerStream,
        *,
        model: str,
        include_usage: bool,
        keepalive: float,
        timeout: float,
        finish: Callable[[Answer], Awaitable[None]],
    ) -> None:
        self._stream = stream
        self._model = model
        self._include_usage = include_usage
        self._keepalive = keepalive
        self._finish = finish
        self._finished = False
        self._id = fmt.completion_id()
        self._created = fmt.now()
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(timeout))

    async def _read(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                async for piece in self._stream.pieces():
                    self._queue.put_nowait(piece)
        except TimeoutError:
            self._queue.put_nowait(RetryableError(f"the answer took longer than {timeout:.0f} s"))
        except AppError as exc:
            self._queue.put_nowait(exc)
        except Exception as exc:  # noqa: BLE001 - the client gets an error event, not a hung stream
            logger.exception("Chat stream failed")
            self._queue.put_nowait(AppError(f"the answer failed: {type(exc).__name__}"))
        else:
            self._queue.put_nowait(_END)

    def _chunk(self, **fields: object) -> bytes:
        return fmt.event(fmt.chunk(id=self._id, created=self._created, model=self._model, **fields))  # type: ignore[arg-type]

    async def events(self) -> AsyncIterator[bytes]:
        try:
            yield self._chunk(delta={"role": "assistant", "content": ""})
            while True:
                try:
                    async with asyncio.timeout(self._keepalive):
                        item = await self._queue.get()
                except TimeoutError:
                    yield fmt.KEEPALIVE
                    continue
                if isinstance(item, str):
                    yield self._chunk(delta={"content": item})
                    continue
                answer = self._stream.answer()
                await self._store(answer)
                if isinstance(item, AppError):
                    yield fmt.event(error_body(item))
                    return
                yield self._chunk(finish_reason=answer.finish_reason or "stop")
                if self._include_usage:
                    yield self._chunk(usage=fmt.usage(answer))
                yield fmt.DONE
                return
        finally:
            # Cancelled (the client left) or closed early: no await may run unshielded here.
            with anyio.CancelScope(shield=True):
                await self.close()

    async def close(self) -> None:
        """Stop reading the model (closing the upstream request) and store what was written; safe to repeat."""
        if not self._reader.done():
            self._reader.cancel()
        with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await asyncio.gather(self._reader, return_exceptions=True)
            await self._store(self._stream.answer())

    async def _store(self, answer: Answer) -> None:
        if self._finished:
            return
        self._finished = True
        try:
            await self._finish(answer)
        except Exception:  # noqa: BLE001 - the client has its answer; losing its record must not break the stream
            logger.exception("Could not store a streamed chat answer")
