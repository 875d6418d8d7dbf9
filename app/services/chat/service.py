"""The chat API's rules: a key's model, the client's messages as the question, budgets, storing each exchange.

The console's 채팅 page calls the same service as a `ConsoleCaller` (no key: its bot's budget alone).

Every answer comes from the one answer pipeline (app/services/pipeline.py): the bot's active template, its
knowledge passages and the client's messages as the conversation so far.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from loguru import logger

from app.config import Settings
from app.db import Database
from app.models import utcnow
from app.services import memory, prompts
from app.services.chat import openai_format as fmt
from app.services.chat.budget import ChatBudget
from app.services.chat.callers import Caller, describe
from app.services.chat.errors import InvalidRequest, ModelNotFound
from app.services.chat.exchanges import store_exchange
from app.services.chat.keys import KeyRef
from app.services.chat.ratelimit import RateLimiter
from app.services.chat.schemas import ChatCompletionRequest
from app.services.chat.streaming import ChatStream
from app.services.errors import RetryableError
from app.services.knowledge.documents import has_documents
from app.services.llm import ChatMessage
from app.services.pipeline import Answer, AnswerPipeline, Question
from app.services.tokens import count_messages
from app.services.usage import Reservation, UsageService
from app.services.users import ANONYMOUS


@dataclass(frozen=True, slots=True)
class _Call:
    """A validated request: the pipeline's question and what storing its answer needs."""

    caller: Caller
    question: Question
    end_user: str | None
    model: str
    reservation: Reservation


class ChatService:
    """One per process: the rate limiter lives here; budgets and usage go through the usage service."""

    def __init__(self, settings: Settings, db: Database, pipeline: AnswerPipeline, usage: UsageService) -> None:
        self.settings = settings
        self.sessions = db.sessions
        self.pipeline = pipeline
        self.limiter = RateLimiter(settings.chat_rate_limit_per_minute)
        self.budget = ChatBudget(settings, usage)
        # SQLite takes one writer at a time: queued here, the reservations and stored exchanges of hundreds of
        # streams starting or ending together go in turn instead of timing out in SQLite's busy wait (seen at 300
        # streams cut off at once, and at 1,000 starting at once).
        self._writes: asyncio.Lock | contextlib.nullcontext[None] = (
            asyncio.Lock() if db.is_sqlite else contextlib.nullcontext()
        )

    @staticmethod
    def models(key: KeyRef) -> dict[str, Any]:
        """The one model a key may call: its bot, under the bot's id."""
        return fmt.model_list([key.bot_id])

    @staticmethod
    def model(key: KeyRef, model_id: str) -> dict[str, Any]:
        check_model(key, model_id)
        return fmt.model_entry(model_id)

    async def complete(self, caller: Caller, request: ChatCompletionRequest) -> dict[str, Any]:
        call = await self._start(caller, request)
        async with self._released_on_failure(call):
            answer = await self.pipeline.answer_question(call.question, timeout=self.settings.chat_timeout_seconds)
        await self._finish(call, answer)
        return fmt.completion(id=fmt.completion_id(), model=call.model, answer=answer)

    async def open_stream(self, caller: Caller, request: ChatCompletionRequest) -> ChatStream:
        """Start the answer; errors until the model accepted the request are raised (a plain HTTP error)."""
        call = await self._start(caller, request)
        started = time.monotonic()
        async with self._released_on_failure(call):
            stream = await self.pipeline.open_stream(call.question, timeout=self.settings.chat_timeout_seconds)
        return ChatStream(
            stream,
            model=call.model,
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
            keepalive=self.settings.chat_keepalive_seconds,
            timeout=self.settings.chat_timeout_seconds - (time.monotonic() - started),
            finish=lambda answer: self._finish(call, answer),
        )

    @contextlib.asynccontextmanager
    async def _released_on_failure(self, call: _Call) -> AsyncIterator[None]:
        """A call that fails before its answer gives its reservation back; running out of time is retryable."""
        try:
            yield
        except TimeoutError as exc:
            await self._settle(call, None)
            raise RetryableError("the answer took too long") from exc
        except BaseException:
            await self._settle(call, None)
            raise

    async def _start(self, caller: Caller, request: ChatCompletionRequest) -> _Call:
        check_model(caller, request.model)
        history = [self._message(caller, m.role, m.text, index) for index, m in enumerate(request.messages)]
        last = history.pop()
        if last.role != "user":
            raise InvalidRequest("The last message must be the user's.", param="messages")
        async with self.sessions() as session:
            # Read together, as the worker reads a task's question: one connection checkout, not two.
            template = await prompts.resolve_template(session, bot_id=caller.bot_id, block_name=None)
            documents = await has_documents(session, caller.bot_id)
        async with self._writes:
            reservation = await self.budget.reserve(caller, count_messages([*history, last]))
        question = Question(
            bot_id=caller.bot_id,
            block_name=None,
            turn=memory.Turn(
                user=ANONYMOUS, utterance=last.content, history=history, summary=None, has_documents=documents
            ),
            template=template,
            temperature=None if request.temperature is None else min(request.temperature, self.settings.chat_max_temperature),
            max_tokens=min(request.max_completion_tokens or request.max_tokens or self.settings.openai_max_tokens,
                           self.settings.openai_max_tokens),
        )
        return _Call(caller=caller, question=question, end_user=request.user, model=request.model, reservation=reservation)

    @staticmethod
    def _message(caller: Caller, role: str, text: str, index: int) -> ChatMessage:
        if role in ("system", "developer"):
            if not caller.allow_system_messages:
                raise InvalidRequest(
                    "System messages are not allowed with this API key; the bot's prompt template sets the system "
                    "prompt.",
                    param=f"messages[{index}].role",
                )
            return ChatMessage(role="system", content=text)
        return ChatMessage(role=role, content=text)  # type: ignore[arg-type]

    async def _finish(self, call: _Call, answer: Answer) -> None:
        """Store the exchange, then settle its reservation to the answer's usage (a stored exchange or none)."""
        try:
            async with self._writes, self.sessions.begin() as session:
                user_id, message_id = await store_exchange(
                    session,
                    caller=call.caller,
                    end_user=call.end_user,
                    question=call.question.turn.utterance,
                    answer=answer,
                    now=utcnow(),
                    session_timeout_minutes=self.settings.session_timeout_minutes,
                )
        except BaseException:
            await self._settle(call, answer)
            raise
        await self._settle(call, answer, user_id=user_id, message_id=message_id)
        logger.debug(
            "Chat answer for {}: in={} out={}", describe(call.caller), answer.input_tokens, answer.output_tokens
        )

    async def _settle(
        self, call: _Call, answer: Answer | None, *, user_id: int | None = None, message_id: int | None = None
    ) -> None:
        async with self._writes:
            await self.budget.settle(call.reservation, call.caller, answer, user_id=user_id, message_id=message_id)


def check_model(caller: Caller, model_id: str) -> None:
    if model_id != caller.bot_id:
        raise ModelNotFound(
            f"The model '{model_id}' does not exist or this API key cannot use it; GET /v1/models lists the key's "
            "model.",
        )

